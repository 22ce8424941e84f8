"""A lab's recorded state: /var/lib/nxprovision/labs/<name>/state.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from nxprovision_lab.naming import STATE_ROOT, LabNames

# States written before labs could mix releases hold one image, of the only release labs had then.
LEGACY_OS = "debian12"


@dataclass
class LabHost:
    name: str
    index: int  # 1-based; names the host's veth and picks its address
    ip: str
    groups: list[str] = field(default_factory=list)
    os: str = LEGACY_OS  # a key of releases.RELEASES; a lab may mix releases


@dataclass
class LabState:
    name: str
    subnet: str
    bridge_ip: str
    architecture: str
    database: str
    hosts: list[LabHost]
    phase: str = "creating"  # creating -> running
    base_image: str = ""  # the LEGACY_OS image (states written before labs could mix releases)
    base_images: dict[str, str] = field(default_factory=dict)  # os -> cached base image its hosts overlay
    apt_cache_dir: str = ""
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def names(self) -> LabNames:
        return LabNames(self.name)

    def host(self, name: str) -> LabHost | None:
        return next((h for h in self.hosts if h.name == name), None)

    def base_for(self, os_name: str) -> str:
        return self.base_images.get(os_name) or (self.base_image if os_name == LEGACY_OS else "")

    def save(self) -> None:
        path = self.names.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.rename(path)

    @classmethod
    def load(cls, name: str) -> LabState | None:
        path = LabNames(name).state_file
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        # states written before every host got CAP_NET_ADMIN (hosts.boot) record which ones had it
        data["hosts"] = [LabHost(**{k: v for k, v in h.items() if k != "net_admin"}) for h in data.get("hosts", [])]
        return cls(**data)


def lab_names_on_disk() -> list[str]:
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
