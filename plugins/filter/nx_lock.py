"""Filter nx_lock_pins: the packages and versions the inventory's version lock holds a host to.

`nx_version_lock | nx_lock_pins(release, components)` -> {package: version}, empty when there is no lock or it has
nothing for the host's Debian release. The rule lives in nxprovision/versionlock.py (`pins`), shared with the CLI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# AWX projects run from the checkout without installing the package: find it beside the plugins.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "nxprovision" / "__init__.py").exists() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
# Run from an installed collection (AWX): the model reads the defaults of the roles beside this plugin.
if not (_REPO / "nxprovision").is_dir() and (_REPO / "roles").is_dir():
    os.environ.setdefault("NXPROVISION_HOME", str(_REPO))


def nx_lock_pins(lock: Any, release: str, components: list[str]) -> dict[str, str]:
    from nxprovision.versionlock import pins, profile

    return {str(k): str(v) for k, v in (pins(lock or None, str(release), profile(components or [])) or {}).items()}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"nx_lock_pins": nx_lock_pins}
