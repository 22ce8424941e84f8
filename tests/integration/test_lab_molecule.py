"""The molecule smoke scenario on the lab driver: create, converge, idempotence, verify, destroy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import lab_name, lab_traces, require_lab_machine

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def test_molecule_smoke_scenario_runs_its_whole_sequence() -> None:
    require_lab_machine()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }
    run = subprocess.run(
        [str(bin_dir / "molecule"), "test", "-s", "smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"{action}: Executed: Successful" in out, action
    left = lab_traces(lab_name("molsmoke"))  # the scenario prefixes NXLAB_NAME too
    assert left == {k: [] for k in left}, left
