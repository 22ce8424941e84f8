"""Per-host control groups: which hierarchies, and clearing a host's tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nxprovision_lab import cgroups

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_hybrid_layout_gives_name_systemd_and_the_v2_hierarchy_only() -> None:
    assert cgroups.hierarchies(HYBRID) == [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]


def test_unified_layout_gives_the_one_hierarchy() -> None:
    assert cgroups.hierarchies(UNIFIED) == [Path("/sys/fs/cgroup")]


def test_remove_tree_removes_empty_dirs_deepest_first(tmp_path: Path) -> None:
    (tmp_path / "h" / "payload" / "system.slice" / "ssh.service").mkdir(parents=True)
    (tmp_path / "h" / "supervisor").mkdir()
    cgroups.remove_tree(tmp_path / "h")
    assert not (tmp_path / "h").exists()


def test_remove_tree_keeps_what_it_cannot_remove(tmp_path: Path) -> None:
    # a cgroup that still holds a process refuses rmdir; on a plain directory a file does the same
    (tmp_path / "h" / "payload").mkdir(parents=True)
    (tmp_path / "h" / "payload" / "busy").write_text("1")
    (tmp_path / "h" / "empty").mkdir()
    cgroups.remove_tree(tmp_path / "h")
    assert (tmp_path / "h" / "payload" / "busy").exists()
    assert not (tmp_path / "h" / "empty").exists()


@pytest.mark.skipif(not Path("/sys/fs/cgroup").is_dir() or os.geteuid() != 0, reason="needs root")
def test_a_child_started_with_the_joiner_runs_in_its_own_cgroup() -> None:
    lab, host = "nxunittest", "h1"
    files = cgroups.prepare_host(lab, host)
    if not files:
        pytest.skip("no cgroup hierarchy mounted")
    try:
        out = subprocess.run(
            [sys.executable, "-c", "print(open('/proc/self/cgroup').read())"],
            capture_output=True, text=True, check=True, preexec_fn=cgroups.joiner(files),
        ).stdout
        assert f"/{cgroups.BRANCH}/{lab}/{host}" in out
    finally:
        cgroups.remove_lab(lab)
    assert not any(d.exists() for d in cgroups.lab_dirs(lab))
