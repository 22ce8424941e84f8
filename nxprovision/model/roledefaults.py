"""Role defaults (roles/*/defaults/main.yml) read by the model, so each knob has one home."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml


def project_root() -> Path:
    """The checkout holding roles/ and playbooks/ (NXPROVISION_HOME overrides)."""
    env = os.environ.get("NXPROVISION_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[2]


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
