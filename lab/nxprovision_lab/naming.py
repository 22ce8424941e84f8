"""Names and paths of everything a lab creates, derived from the lab name alone.

Every kernel object a lab owns carries a prefix derived from its name, so that `down` can find
leftovers of an interrupted `up` without any state file, and two labs never collide. Interface names
are limited to 15 characters by the kernel, hence a short hash id instead of the full name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from nxprovision.errors import NxError

DEFAULT_NAME = "nxlab"
STATE_ROOT = Path("/var/lib/nxprovision/labs")
CACHE_ROOT = Path("/var/cache/nxprovision")
APT_CACHE_ROOT = CACHE_ROOT / "apt-cacher-ng"

# Lab names are plain words: netns names join lab and host names with '-', and host names may hold
# dashes themselves (s3-1), so a dash in the lab name would make leftovers ambiguous.
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,19}$")
_HOST_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
IFNAMSIZ = 15  # the kernel's interface name limit, without the trailing NUL


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise NxError(
            f"invalid lab name '{name}'",
            "use 1-20 lower-case letters and digits, starting with a letter (e.g. nxlab)",
        )
    return name


def valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def check_host(host: str) -> str:
    if not _HOST_RE.match(host):
        raise NxError(f"invalid lab host name '{host}'", "use lower-case letters, digits and dashes")
    return host


def short_id(name: str) -> str:
    """5 hex digits of the name's hash: short enough for interface names, collisions are checked at up."""
    return hashlib.sha1(name.encode()).hexdigest()[:5]


@dataclass(frozen=True)
class LabNames:
    name: str

    @property
    def sid(self) -> str:
        return short_id(self.name)

    @property
    def bridge(self) -> str:
        return f"nxb-{self.sid}"

    @property
    def veth_prefix(self) -> str:
        return f"nxh-{self.sid}-"

    def veth(self, index: int) -> str:
        """Host-side end of host number `index` (1-based); the lab host sees its end as eth0."""
        name = f"{self.veth_prefix}{index}"
        assert len(name) <= IFNAMSIZ, name
        return name

    @property
    def netns_prefix(self) -> str:
        return f"nx-{self.name}-"

    def netns(self, host: str) -> str:
        return f"{self.netns_prefix}{host}"

    # -- files ---------------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def mirror_dir(self) -> Path:
        """The lab's own download mirror: archives built from this checkout's stand-ins, hard-linked from the
        machine-wide archive cache. One folder shared by every lab let one checkout's `lab up` replace the
        archives another lab's deploy was about to download."""
        return self.state_dir / "mirror"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return STATE_ROOT / f".{self.name}.lock"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    def pid_file(self, what: str) -> Path:
        return self.pid_dir / f"{what}.pid"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def inventory_dir(self) -> Path:
        return self.state_dir / "inventory"

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    def host_dir(self, host: str) -> Path:
        return self.hosts_dir / host

    def host_root(self, host: str) -> Path:
        return self.host_dir(host) / "root"

    @property
    def acng_conf_dir(self) -> Path:
        return self.state_dir / "apt-cacher-ng"
