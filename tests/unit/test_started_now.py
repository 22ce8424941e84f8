"""The `nx_started_now` Jinja test the handlers of kafka, opensearch and seaweedfs skip a repeat start with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("result", "expected"), [
    ({"changed": True, "status": {"ActiveState": "inactive"}}, True),
    ({"changed": True, "status": {"ActiveState": "failed"}}, True),
    ({"changed": True, "status": {"ActiveState": "active"}}, False),  # restarted, not started
    ({"changed": False, "status": {"ActiveState": "inactive"}}, False),
    ({"changed": True}, False),  # no status: nothing says the unit was stopped
    ({"skipped": True, "changed": False}, False),
])
def test_through_ansible_with_the_projects_configuration(result: dict, expected: bool) -> None:
    """Resolved as the roles resolve it: from ansible.cfg's test_plugins, by a real ansible run."""
    bin_dir = Path(sys.executable).parent
    run = subprocess.run(
        [str(bin_dir / "ansible"), "localhost", "-c", "local", "-m", "ansible.builtin.debug",
         "-a", "msg={{ r is nx_started_now }}", "-e", json.dumps({"r": result})],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f'"msg": {json.dumps(expected)}' in run.stdout, run.stdout
