"""Stand-in programs and archive builders for the lab: components that cannot be obtained here.

`build_mirror` fills the lab's HTTP mirror with archives laid out like the vendors' release archives.
"""

from __future__ import annotations

from nxprovision_lab.standins.mirror import build_mirror

__all__ = ["build_mirror"]
