"""One changing run per inventory at a time.

Two runs against one cluster interleave their drains and restarts (a rolling restart during a secret rotation
can take both nodes of a pair out at once), so every verb that changes hosts holds an exclusive lock on the
inventory for its whole length. The lock is an flock on a hidden file in the inventory folder (Ansible skips
hidden files there): the kernel releases it when the holding process ends, so a killed run never leaves a stale
lock behind. Read-only verbs (validate, plan, status) never take it. AWX serialises its jobs by itself.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nxprovision.errors import NxError

LOCK_NAME = ".nxprovision.lock"

# in-process holders: a verb that runs several playbooks (a rotation) or calls another verb keeps one lock
_held: dict[Path, int] = {}


def lock_path(inventory: Path) -> Path:
    """One lock per inventory folder, however -i spells it (`inv`, `inv/`, `inv/hosts.yml`, a symlink): two
    spellings of one cluster must not run side by side."""
    inventory = inventory.resolve()
    if not inventory.exists():
        raise NxError(f"{inventory}: no such inventory file or directory", "pass -i with an existing inventory")
    folder = inventory if inventory.is_dir() else inventory.parent
    return folder / LOCK_NAME


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return "another nxprovision run"
    return (f"`nxprovision {info.get('verb', '?')}` (pid {info.get('pid', '?')}, started "
            f"{info.get('started', '?')})")


@contextmanager
def inventory_lock(inventory: Path, verb: str) -> Iterator[None]:
    path = lock_path(inventory)
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise NxError(f"{inventory}: cannot create the run lock {path}: {e.strerror}",
                      "run nxprovision as a user who can write to the inventory folder") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NxError(
                f"{inventory}: {_holder(fd)} is changing this cluster; nothing was done",
                "wait for it to end (`nxprovision runs` lists runs), then run again; the lock goes with its process",
            ) from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"verb": verb, "pid": os.getpid(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        _held[path] = 1
        try:
            yield
        finally:
            del _held[path]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def exclusive(verb: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Decorate a command: it runs holding the inventory's lock (args.inventory)."""

    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            if getattr(args, "check", False) or getattr(args, "plan", False):
                return fn(args)  # dry runs and plans change nothing
            with inventory_lock(Path(args.inventory), verb):
                return fn(args)

        return run

    return wrap
