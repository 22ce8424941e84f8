"""Role defaults (roles/*/defaults/main.yml) read by the model, so each knob has one home."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml


def project_root() -> Path:
    """The tree holding roles/, playbooks/, plugins/ and ansible.cfg: NXPROVISION_HOME when set, else the checkout
    this package runs from, else the collection the wheel installed beside it
    (site-packages/ansible_collections/nxprovision/cluster, same layout)."""
    env = os.environ.get("NXPROVISION_HOME")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    if (here / "roles").is_dir() and (here / "playbooks").is_dir():
        return here
    installed = here / "ansible_collections" / "nxprovision" / "cluster"
    # no collection either: the checkout's path, so that the errors name the files that are missing
    return installed if (installed / "playbooks").is_dir() else here


def role_defaults() -> dict[str, Any]:
    return _role_defaults(project_root())


# keyed by the checkout: a process that changes NXPROVISION_HOME (the tests do) reads the other checkout's roles
@functools.lru_cache(maxsize=4)
def _role_defaults(root: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    roles = root / "roles"
    for f in sorted(roles.glob("*/defaults/main.yml")):
        data = yaml.safe_load(f.read_text()) or {}
        merged.update(data)
    return merged
