"""The wheel and the collection installed outside the checkout: a fresh venv, a collections path in a temporary
folder, every command run from a folder that is no checkout, with nothing of this checkout on any path.

`init`, `validate` and `plan` of the wheel's CLI give what the checkout's give; the collection's playbooks run
through ansible-runner as AWX runs them (a private data dir, the inventory, a vault password file, the collection
from its installed path). A few minutes, no lab: the venv's packages come from pip's cache after the first run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nxprovision
from nxprovision import collection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "NXPROVISION_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # the checkout's venv off PATH: only the fresh venv's commands run
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class Installed:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.venv = base / "venv"
        self.collections = base / "collections"
        self.work = base / "work"  # the operator's folder: no checkout, no ansible.cfg
        self.runs = base / "runs"
        self.build_log = ""
        self.wheel = Path()
        # the fresh venv's commands first on PATH, as an execution environment has them
        self.env = _clean_env(NXPROVISION_RUNS_DIR=str(self.runs))
        self.env["PATH"] = os.pathsep.join([str(self.venv / "bin"), self.env["PATH"]])

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    inst = Installed(tmp_path_factory.mktemp("installed"))
    dist = inst.base / "dist"
    built = _run([str(BIN / "python"), "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(dist), str(ROOT)],
                 ROOT, _clean_env(PATH=os.environ["PATH"]))
    assert built.returncode == 0, built.stderr[-3000:]
    inst.build_log = built.stdout + built.stderr
    wheel = dist / f"nxprovision-{nxprovision.__version__}-py3-none-any.whl"
    inst.wheel = wheel
    tarball = collection.build(dist, work=inst.base / "collection-tree")
    made = _run([sys.executable, "-m", "venv", str(inst.venv)], inst.base, inst.env)
    assert made.returncode == 0, made.stderr
    pip = _run([inst.bin("python"), "-m", "pip", "install", "-q", str(wheel)], inst.base, inst.env, timeout=1500)
    assert pip.returncode == 0, pip.stderr[-3000:]
    # --force: the wheel's copy in site-packages would count as installed, and the tarball would be skipped
    galaxy = _run([inst.bin("ansible-galaxy"), "collection", "install", "--offline", "--force", "-p",
                   str(inst.collections), str(tarball)], inst.base, inst.env)
    assert galaxy.returncode == 0, galaxy.stderr + galaxy.stdout
    assert (inst.collections / "ansible_collections" / "nxprovision" / "cluster" / "MANIFEST.json").exists()
    inst.work.mkdir()
    return inst


def test_the_build_warns_of_no_deprecated_license_table(installed: Installed) -> None:
    assert "project.license" not in installed.build_log
    assert "License classifiers are deprecated" not in installed.build_log


def test_the_wheel_holds_no_lab_and_no_stand_in(installed: Installed) -> None:
    """The product wheel (package and collection) names no stand-in: the lab is a distribution of its own."""
    import zipfile

    from tests.unit.test_no_standin_in_product import PATTERN

    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
        assert not [n for n in names if "nxprovision_lab" in n or n.startswith("nxprovision/lab/")]
        assert any(n.startswith("ansible_collections/nxprovision/cluster/roles/") for n in names)
        found = [n for n in names if PATTERN.search(whl.read(n).decode("utf-8", "replace"))]
    assert found == []
    # without the lab's distribution there is no `lab` verb, and nothing else is lost
    verbs = _run([installed.bin("nxprovision"), "--help"], installed.work, installed.env)
    assert verbs.returncode == 0, verbs.stderr
    assert re.search(r"^ {4}deploy ", verbs.stdout, re.M) and not re.search(r"^ {4}lab ", verbs.stdout, re.M)


def test_the_installed_package_finds_the_collection_it_carries(installed: Installed) -> None:
    out = _run([installed.bin("python"), "-c", "from nxprovision.model.roledefaults import project_root, role_defaults;"
                "print(project_root()); print(role_defaults()['haproxy_http_port'])"], installed.work, installed.env)
    assert out.returncode == 0, out.stderr
    root, port = out.stdout.split()
    assert Path(root).is_relative_to(installed.venv)
    assert Path(root).parts[-3:] == ("ansible_collections", "nxprovision", "cluster")
    assert int(port) > 0


def test_init_validate_plan_outside_the_checkout_equal_the_checkouts(installed: Installed) -> None:
    cli = installed.bin("nxprovision")
    init = _run([cli, "init", "inv"], installed.work, installed.env)
    assert init.returncode == 0, init.stderr + init.stdout
    validate = _run([cli, "validate", "-i", "inv", "--json"], installed.work, installed.env)
    assert validate.returncode == 0, validate.stderr + validate.stdout
    found = json.loads(validate.stdout)
    assert found["valid"] is True
    assert not [e for e in found["errors"] if "is not a port number" in e["message"]]
    # the checkout's own CLI on the same inventory, from the same folder
    here = _run([str(BIN / "nxprovision"), "validate", "-i", "inv", "--json"], installed.work,
                _clean_env(NXPROVISION_RUNS_DIR=str(installed.runs)))
    assert here.returncode == 0, here.stderr
    assert found == json.loads(here.stdout)
    plan = _run([cli, "plan", "-i", "inv", "--files", "--output-dir", "files"], installed.work, installed.env)
    assert plan.returncode == 0, plan.stderr + plan.stdout
    assert (installed.work / "files" / "lb1").is_dir()
    # the rendered configurations of both agree, file for file
    here_plan = _run([str(BIN / "nxprovision"), "plan", "-i", "inv", "--files", "--output-dir", "files-checkout"],
                     installed.work, _clean_env(NXPROVISION_RUNS_DIR=str(installed.runs)))
    assert here_plan.returncode == 0, here_plan.stderr
    mine = {p.relative_to(installed.work / "files"): p.read_bytes()
            for p in (installed.work / "files").rglob("*") if p.is_file()}
    theirs = {p.relative_to(installed.work / "files-checkout"): p.read_bytes()
              for p in (installed.work / "files-checkout").rglob("*") if p.is_file()}
    assert mine and mine == theirs


AWX_RUN = textwrap.dedent("""
    import json, sys
    import ansible_runner
    pdd, inventory, playbook, *extra = sys.argv[1:]
    r = ansible_runner.run(private_data_dir=pdd, playbook=playbook, inventory=inventory,
                           cmdline=" ".join(["--vault-password-file", inventory + "/.vault-pass", *extra]),
                           quiet=True)
    print(json.dumps({"rc": r.rc, "status": r.status, "ok": r.stats and r.stats.get("ok"),
                      "stdout": r.stdout.read()}))
""")


@pytest.mark.parametrize(("playbook", "extra"), [("nxprovision.cluster.validate", []),
                                                 ("nxprovision.cluster.site", ["--syntax-check"])])
def test_the_playbooks_run_through_ansible_runner_from_the_installed_collection(
        installed: Installed, playbook: str, extra: list[str]) -> None:
    inventory = installed.work / "inv"
    if not inventory.exists():
        assert _run([installed.bin("nxprovision"), "init", "inv"], installed.work, installed.env).returncode == 0
    pdd = installed.base / f"pdd-{playbook.rsplit('.', 1)[1]}"
    (pdd / "env").mkdir(parents=True)
    # AWX hands the collection's path to the job through the environment, nothing else
    (pdd / "env" / "envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(installed.collections)}))
    script = installed.base / "awx_run.py"
    script.write_text(AWX_RUN)
    out = _run([installed.bin("python"), str(script), str(pdd), str(inventory), playbook, *extra],
               installed.work, installed.env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["rc"], result["status"]) == (0, "successful"), result["stdout"][-3000:]
    assert "is not a port number" not in result["stdout"]
    if playbook.endswith(".validate"):
        # the action plugin built the model and ran the rules on a host of the inventory
        assert result["ok"], result["stdout"][-3000:]
    else:
        assert f"{installed.collections}/ansible_collections/nxprovision/cluster/playbooks/site.yml" in \
            result["stdout"]
    for checkout_path in (ROOT / "roles", ROOT / "playbooks", ROOT / "plugins"):
        assert str(checkout_path) not in result["stdout"]
