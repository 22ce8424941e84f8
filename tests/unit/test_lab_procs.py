"""/proc and mount helpers, against real processes and a written mountinfo."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nxprovision_lab import mounts, procs


def test_cmdline_children_and_state_of_a_real_process() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess,sys; subprocess.Popen(['sleep','60']); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            kids = procs.children(parent.pid)
            if kids:
                break
            subprocess.run(["sleep", "0.05"])
        assert len(kids) == 1
        assert procs.cmdline(kids[0]) == ["sleep", "60"]
        assert procs.ppid(kids[0]) == parent.pid
        assert procs.alive(kids[0])
        assert kids[0] in procs.find(lambda c: c == ["sleep", "60"])
        procs.terminate(kids, timeout=2)
        assert not procs.alive(kids[0])
    finally:
        parent.kill()
        parent.wait()


def test_terminate_escalates_to_sigkill_for_processes_that_ignore_sigterm() -> None:
    code = (
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout and p.stdout.readline() == b"ready\n"
    procs.terminate([p.pid], timeout=0.3)
    assert p.wait(5) == -signal.SIGKILL


def test_wait_reaped_reaps_our_own_children() -> None:
    p = subprocess.Popen(["sleep", "60"])
    procs.signal_pid(p.pid, signal.SIGKILL)
    assert procs.wait_reaped([p.pid], timeout=5) == []
    assert procs.state(p.pid) == ""


def test_pid_files(tmp_path: Path) -> None:
    f = tmp_path / "pids" / "x.pid"
    assert procs.read_pid_file(f) is None
    procs.write_pid_file(f, 1234)
    assert procs.read_pid_file(f) == 1234
    f.write_text("garbage")
    assert procs.read_pid_file(f) is None


def test_mounts_under_lists_deepest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        "30 22 0:30 / /var/lib/nxprovision/labs/a/hosts/h1/root rw - overlay overlay rw\n"
        "31 30 0:31 / /var/lib/nxprovision/labs/a/hosts/h1/root/proc rw - proc proc rw\n"
        "32 22 0:32 / /var/lib/nxprovision/labs/ab/hosts/h1/root rw - overlay overlay rw\n"
        "33 22 0:33 / /var/lib/nxprovision/labs/a/with\\040space rw - tmpfs tmpfs rw\n"
    )
    monkeypatch.setattr(mounts, "MOUNTINFO", info)
    found = mounts.mounts_under(Path("/var/lib/nxprovision/labs/a"))
    assert found[0] == Path("/var/lib/nxprovision/labs/a/hosts/h1/root/proc")
    assert set(found) == {
        Path("/var/lib/nxprovision/labs/a/hosts/h1/root/proc"),
        Path("/var/lib/nxprovision/labs/a/hosts/h1/root"),
        Path("/var/lib/nxprovision/labs/a/with space"),
    }
