"""The nxprovision.cluster collection: its metadata agrees with the code, its tree resolves every name inside a
collection, its tarball installs offline and every playbook passes a syntax check from the installed copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import nxprovision
from nxprovision import collection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# module_utils and plugin imports written as Python (`ansible.module_utils.basic`), not collections
_NOT_COLLECTIONS = {"ansible.builtin", "ansible.module_utils", "ansible.plugins", "ansible.utils", "ansible.errors"}


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a run that must not see this checkout: no config, no home override, no module path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "NXPROVISION_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _used_collections() -> set[str]:
    found: set[str] = set()
    for folder in ("roles", "playbooks"):
        for f in (ROOT / folder).rglob("*"):
            if f.suffix in (".yml", ".j2") and f.is_file():
                found |= {m for m in re.findall(r"\b((?:community|ansible)\.[a-z_]+)\.[a-z_]+\b", f.read_text())}
    return found - _NOT_COLLECTIONS


def test_requirements_name_exactly_the_collections_the_roles_call() -> None:
    req = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert {c["name"] for c in req} == _used_collections()
    assert {c["name"]: c["version"] for c in req} == galaxy["dependencies"]


def test_requirements_admit_the_collections_the_suite_runs_with() -> None:
    out = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
                         capture_output=True, text=True, check=True, env=_clean_env())
    installed: dict[str, str] = {}
    for by_name in yaml.safe_load(out.stdout).values():
        for name, info in by_name.items():
            installed.setdefault(name, info["version"])
    for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]:
        assert Version(installed[c["name"]]) in SpecifierSet(c["version"].replace(",", ", ")), c


def test_galaxy_metadata_names_the_collection_and_follows_the_wheel() -> None:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == (collection.NAMESPACE, collection.NAME)
    assert galaxy["version"] == nxprovision.__version__
    import ansible

    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert Version(ansible.__version__) in SpecifierSet(runtime["requires_ansible"])


def test_the_tree_qualifies_filters_tests_and_module_utils_and_the_checkout_keeps_short_names(tmp_path: Path) -> None:
    tree = collection.assemble(tmp_path / "c")
    texts = {p: p.read_text() for p in tree.rglob("*") if p.suffix in (".yml", ".j2", ".py") and p.is_file()}
    joined = "\n".join(texts.values())
    assert "from ansible.module_utils import nx_" not in joined
    assert "from ansible.module_utils.nx_" not in joined
    assert re.search(r"\|\s*nx_lock_pins\b", joined) is None
    assert re.search(r"\bis\s+(not\s+)?nx_started_now\b", joined) is None
    assert "| nxprovision.cluster.nx_lock_pins(" in joined
    assert "is nxprovision.cluster.nx_started_now" in joined
    # the checkout is left as it is: ansible.cfg's plugin paths resolve the short names there
    assert "is nx_started_now" in (ROOT / "roles" / "kafka" / "vars" / "main.yml").read_text()
    assert not list(tree.rglob("__pycache__"))


def test_the_execution_environment_renders_with_ansible_builder(tmp_path: Path) -> None:
    builder = BIN / "ansible-builder"
    if not builder.exists():
        pytest.fail("ansible-builder is a test dependency (pyproject.toml): run make setup")
    tree = collection.assemble(tmp_path / "c")
    (tree / "dist").mkdir()
    (tree / "dist" / "nxprovision-0.1.0-py3-none-any.whl").write_bytes(b"")
    (tree / "dist" / "nxprovision-cluster-0.1.0.tar.gz").write_bytes(b"")
    ctx = tmp_path / "context"
    out = subprocess.run([str(builder), "create", "-f", str(tree / "execution-environment.yml"), "-c", str(ctx),
                          "--output-filename", "Containerfile"], capture_output=True, text=True, env=_clean_env())
    assert out.returncode == 0, out.stderr + out.stdout
    containerfile = (ctx / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "ansible-core>=2.19,<2.20" in containerfile
    assert "--no-deps /tmp/nxprovision/nxprovision-*.whl" in containerfile
    assert "nxprovision-cluster-*.tar.gz" in containerfile
    assert yaml.safe_load((ctx / "_build" / "requirements.yml").read_text()) == \
        yaml.safe_load((ROOT / "requirements.yml").read_text())
    python = (ctx / "_build" / "requirements.txt").read_text().split()
    assert "pyyaml>=6.0" in python and "cryptography>=41" in python
    assert "openssh-clients [platform:rpm]" in (ctx / "_build" / "bindep.txt").read_text()
    assert (ctx / "_build" / "nxprovision" / "nxprovision-0.1.0-py3-none-any.whl").exists()


def test_the_tarball_installs_offline_and_every_playbook_resolves_from_it(tmp_path: Path) -> None:
    tarball = collection.build(tmp_path / "dist", work=tmp_path / "work")
    assert tarball.name == f"nxprovision-cluster-{nxprovision.__version__}.tar.gz"
    shutil.rmtree(tmp_path / "work")
    coll = tmp_path / "collections"
    env = _clean_env(ANSIBLE_COLLECTIONS_PATH=str(coll))
    out = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(coll),
                          str(tarball)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    installed = coll / "ansible_collections" / "nxprovision" / "cluster"
    assert (installed / "MANIFEST.json").exists()
    playbooks = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yml"))
    assert "site" in playbooks
    # from a folder outside the checkout, no ansible.cfg: only the installed collection can resolve the roles,
    # modules and action plugins the playbooks name
    out = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check",
                          *(f"nxprovision.cluster.{p}" for p in playbooks)],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert f"playbook: {installed}/playbooks/site.yml" in out.stdout
    for checkout_path in (ROOT / "roles", ROOT / "playbooks", ROOT / "plugins"):
        assert str(checkout_path) not in out.stdout + out.stderr
