"""Lab fixtures: real systemd-nspawn hosts, brought up through the CLI and always taken down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
LAB_CLI = [sys.executable, "-m", "nxprovision_lab.cli"]


def lab_name(base: str) -> str:
    """The lab name a test uses: NXP_TEST_LAB_PREFIX lets two test runs share this machine without colliding."""
    return (os.environ.get("NXP_TEST_LAB_PREFIX", "") + base)[:20]


STATE_ROOT = Path("/var/lib/nxprovision/labs")


# Durations of the steps inside lab tests, printed in the run's summary: pytest's per-test durations cannot say
# which step of a scenario grew. Every nxprovision, lab, ansible and molecule command a test runs is timed (the
# tests call subprocess.run in many places), and a scenario may add its own figures.
FIGURES: dict[str, float] = {}
_STEPS: list[tuple[float, str]] = []
_TIMED = ("nxprovision.cli", "nxprovision_lab.cli", "ansible-playbook", "ansible", "molecule")
_run = subprocess.run


def _timed_run(args: Any, *rest: Any, **kwargs: Any) -> Any:
    argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
    what = next((i for i, a in enumerate(argv[:3]) if a.rsplit("/", 1)[-1] in _TIMED), None)
    if what is None or (argv[what].endswith("lab.cli") and argv[what + 1 : what + 2] in (["ssh"], ["status"])):
        return _run(args, *rest, **kwargs)
    started = time.monotonic()
    try:
        return _run(args, *rest, **kwargs)
    finally:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0].rsplit("/", 1)[-1]
        words, rest = [], argv[what:]
        while rest and len(words) < 3:
            word, rest = rest[0], rest[1:]
            if word.startswith("-"):
                rest = rest[1:] if rest and not rest[0].startswith("-") else rest  # the option's value
            elif "/" not in word:
                words.append(word)
        _STEPS.append((time.monotonic() - started, f"{test}: {' '.join(words)}"))


subprocess.run = _timed_run  # type: ignore[assignment]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STEPS or FIGURES:
        terminalreporter.section("lab steps, slowest first (s)")
        for seconds, name in sorted(_STEPS, reverse=True)[:50]:
            terminalreporter.write_line(f"{seconds:8.1f}  {name}")
        terminalreporter.write_line(f"{sum(s for s, _ in _STEPS):8.1f}  all {len(_STEPS)} timed commands")
        for name, seconds in FIGURES.items():
            terminalreporter.write_line(f"{seconds:8.1f}  {name}")


def lab(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*LAB_CLI, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@dataclass
class Lab:
    name: str
    inventory: Path
    status: dict[str, Any]

    def ip(self, host: str) -> str:
        return next(h["ip"] for h in self.status["hosts"] if h["host"] == host)

    def refresh(self) -> dict[str, Any]:
        self.status = json.loads(lab("status", "--json", "--name", self.name).stdout)
        return self.status

    def host_state(self, host: str) -> str:
        return next(h["state"] for h in self.refresh()["hosts"] if h["host"] == host)

    def ssh(self, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return lab("ssh", "--name", self.name, host, command, check=False, timeout=timeout)

    def ansible(self, pattern: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "ansible"),
                pattern,
                "-i",
                str(self.inventory),
                "--vault-password-file",
                str(self.inventory / ".vault-pass"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "ANSIBLE_DEPRECATION_WARNINGS": "false", "ANSIBLE_NOCOLOR": "1"},
        )


def require_lab_machine() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root")
    for tool in ("systemd-nspawn", "debootstrap", "apt-cacher-ng"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run scripts/setup.sh")


def bring_up(name: str, *args: str) -> Lab:
    lab("down", "--name", name)  # leftovers of an earlier, interrupted run
    up = lab("up", "--name", name, *args, timeout=600)
    inventory = Path(up.stdout.strip().splitlines()[-1])
    status = json.loads(lab("status", "--json", "--name", name).stdout)
    return Lab(name=name, inventory=inventory, status=status)


@pytest.fixture(scope="session")
def lab3() -> Iterator[Lab]:
    """A 3-host lab (`--hosts 3`, name nxtest) for the whole session."""
    require_lab_machine()
    try:
        yield bring_up(lab_name("nxtest"), "--hosts", "3")
    finally:
        lab("down", "--name", lab_name("nxtest"), check=False)


# -- what a lab leaves on the machine, seen without the lab's own code -------------------------------


def lab_traces(name: str, pids: list[int] | None = None) -> dict[str, list[str]]:
    lab_dir = str(STATE_ROOT / name)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    procs = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if lab_dir + "/" in cmd or cmd.rstrip().endswith(lab_dir):
            procs.append(f"{p.name}: {cmd}")
    alive = []
    for pid in pids or []:
        try:
            st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        alive.append(f"{pid} ({st})")
    return {
        "netns": [n.split()[0] for n in netns if n.startswith(f"nx-{name}-")],
        "links": [link["ifname"] for link in links if link.get("ifalias") == f"nxprovision-lab:{name}"],
        "mounts": [m.split()[4] for m in mounts if m.split()[4].startswith(lab_dir)],
        "processes": procs,
        "pids_alive": alive,
        "state_dir": [lab_dir] if Path(lab_dir).exists() else [],
    }


def all_lab_pids(name: str) -> list[int]:
    """Every process of a running lab: nspawns, everything inside its hosts, its daemons."""
    status = json.loads(lab("status", "--json", "--name", name).stdout)
    pids = set(status["pids"].values())
    for h in status["hosts"]:
        ns = f"nx-{name}-{h['host']}"
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        pids |= {int(p) for p in out.stdout.split()}
    return sorted(pids)


# -- a deployed compact cluster, shared by the deploy checks and the day-2 scenario --------------------

NXP = [sys.executable, "-m", "nxprovision.cli"]


def nxprovision(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NXP, *args], capture_output=True, text=True, timeout=timeout)


DEFAULT_VERSION = "2025.9"  # what `init` writes
COMPACT_VERSION = "2025.8"  # what compact_cluster deploys
LTS2023_VERSION = "2023.35"


def set_nuxeo_version(inventory: Path, version: str, expect: str = DEFAULT_VERSION) -> None:
    main_yml = inventory / "group_vars" / "all" / "main.yml"
    text = main_yml.read_text()
    assert f"nuxeo_version: '{expect}'" in text, text
    main_yml.write_text(text.replace(f"nuxeo_version: '{expect}'", f"nuxeo_version: '{version}'"))


def pin_lts2023(inventory: Path, version: str = LTS2023_VERSION) -> None:
    """An LTS 2023 cluster on a lab booted with `--os debian12` (the lab wrote that release and its PostgreSQL 15):
    LTS 2023 is still in service, and Nuxeo's 2023 matrix lists PostgreSQL 11-13 only."""
    set_nuxeo_version(inventory, version)
    main_yml = inventory / "group_vars" / "all" / "main.yml"
    text = main_yml.read_text()
    assert "nx_compat_overrides: {}" in text and "nx_os_release: debian12" in text, text
    reason = "Debian 12 packages PostgreSQL 15; Nuxeo's LTS 2023 matrix lists 11-13."
    main_yml.write_text(text.replace("nx_compat_overrides: {}", f"nx_compat_overrides:\n  postgresql: {reason}"))


@pytest.fixture(scope="session")
def compact_cluster() -> Iterator[tuple[Lab, subprocess.CompletedProcess[str]]]:
    """The compact architecture deployed from nothing by `nxprovision deploy` (once per session)."""
    require_lab_machine()
    name = lab_name("nxcompact")
    try:
        # LTS 2025 on Debian 13, as `init` writes it
        lab_ = bring_up(name, "--architecture", "compact")
        # the older of the mirror's two 2025 hotfix levels, so that the day-2 scenario can roll an upgrade
        set_nuxeo_version(lab_.inventory, COMPACT_VERSION, expect=DEFAULT_VERSION)
        first = nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain")
        yield lab_, first
    finally:
        lab("down", "--name", name, check=False)
