"""/proc helpers: find, check and end the processes a lab started, by PID only."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def state(pid: int) -> str:
    """One-letter process state ('R', 'S', 'Z', ...) or '' when there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    # the command name sits in parentheses and may itself hold spaces or parentheses
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """A zombie is not alive: it has ended and only waits for its parent to reap it."""
    return state(pid) not in ("", "Z", "X")


def ppid(pid: int) -> int:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """Direct children of `pid`, read from the kernel's per-task children lists."""
    found: list[int] = []
    task_dir = PROC / str(pid) / "task"
    try:
        tasks = list(task_dir.iterdir())
    except FileNotFoundError:
        return []
    for t in tasks:
        try:
            found += [int(c) for c in (t / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def all_pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def find(match: Callable[[list[str]], bool]) -> list[int]:
    me = os.getpid()
    return [p for p in all_pids() if p != me and (cl := cmdline(p)) and match(cl)]


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.rename(path)


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until no pid is alive; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def wait_reaped(pids: list[int], timeout: float) -> list[int]:
    """Wait until the pids have left the process table (reaped by their parent), up to `timeout`."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if state(p)]
    while left and time.monotonic() < deadline:
        for p in left:
            _reap_if_child(p)
        time.sleep(0.05)
        left = [p for p in left if state(p)]
    return left


def _reap_if_child(pid: int) -> None:
    if ppid(pid) != os.getpid():
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after `timeout`."""
    for p in pids:
        signal_pid(p, signal.SIGTERM)
    for p in wait_gone(pids, timeout):
        signal_pid(p, signal.SIGKILL)
    wait_gone(pids, 5)
