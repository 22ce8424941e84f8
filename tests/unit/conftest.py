"""Builders for inventories under test: start from a valid sample, then break one thing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible.module_utils
import pytest
import yaml

from nxprovision import secrets
from nxprovision.cli import main
from nxprovision.init import write_inventory

# The modules of plugins/modules import the project's module_utils as Ansible ships them to a host
# (`from ansible.module_utils import nx_stamp`): tests that import a module directly find them the same way.
_MODULE_UTILS = str(Path(__file__).resolve().parents[2] / "plugins" / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

_CACHE: dict[tuple[str, str], Path] = {}

# `init` writes LTS 2025 on Debian 13; the settings of an LTS 2023 cluster on Debian 12 hosts, for that line's tests
LTS2023 = {
    "nuxeo_version": "2023.35", "nx_os_release": "debian12", "postgresql_version": "15",
    "nx_compat_overrides": {"postgresql": "Debian 12 packages PostgreSQL 15; Nuxeo's LTS 2023 matrix lists 11-13."},
}


def _template(arch: str, database: str, tmp_root: Path) -> Path:
    key = (arch, database)
    if key not in _CACHE:
        d = tmp_root / f"tpl-{arch}-{database}"
        write_inventory(d, arch, database=database)
        _CACHE[key] = d
    return _CACHE[key]


@pytest.fixture(scope="session")
def _tpl_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inventory-templates")


InvBuilder = Callable[..., Path]


@pytest.fixture
def make_inv(tmp_path: Path, _tpl_root: Path) -> InvBuilder:
    """make_inv(arch, database=..., set={...}, unset=[...], layout={...}, drop_secrets=[...])"""
    counter = {"n": 0}

    def build(
        arch: str = "compact",
        *,
        database: str = "postgresql",
        set: dict[str, Any] | None = None,
        unset: list[str] | None = None,
        layout: dict[str, list[str]] | None = None,
        drop_secrets: list[str] | None = None,
        hostvars: dict[str, dict[str, Any]] | None = None,
    ) -> Path:
        counter["n"] += 1
        d = tmp_path / f"inv{counter['n']}"
        shutil.copytree(_template(arch, database, _tpl_root), d)
        main_yml = d / "group_vars" / "all" / "main.yml"
        data = yaml.safe_load(main_yml.read_text())
        data.update(set or {})
        for k in unset or []:
            data.pop(k, None)
        main_yml.write_text(yaml.safe_dump(data, sort_keys=False))
        if layout is not None or hostvars is not None:
            from nxprovision.init import _sample_layout, render_hosts_yaml

            lay = layout if layout is not None else _sample_layout(arch, database)
            (d / "hosts.yml").write_text(render_hosts_yaml(lay, hostvars))
        if drop_secrets:
            pw = secrets.read_vault_password(d / ".vault-pass")
            path = d / secrets.SECRETS_RELPATH
            values = secrets.load_secrets_file(path, pw)
            for name in drop_secrets:
                values.pop(name, None)
            secrets.write_secrets_file(path, values, pw)
        return d

    return build


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
