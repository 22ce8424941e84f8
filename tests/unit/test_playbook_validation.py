"""The same rules run as the first play of every playbook (for ansible-playbook and AWX users)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def _run_validate_play(inv: Path, limit: str | None = None) -> subprocess.CompletedProcess[str]:
    main_yml = inv / "group_vars" / "all" / "main.yml"
    data = yaml.safe_load(main_yml.read_text())
    data["ansible_connection"] = "local"  # the validate play never needs a host; prove it
    main_yml.write_text(yaml.safe_dump(data))
    probe = inv / "probe.yml"
    probe.write_text(
        f"- ansible.builtin.import_playbook: {ROOT}/playbooks/validate.yml\n"
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        '    - ansible.builtin.debug:\n        msg: "NODE={{ nx.nodes[inventory_hostname].node_id '
        "| default('-') }} LB={{ nx.lb.backends | map(attribute='name') | join(',') }}\"\n"
    )
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inv), "--vault-password-file", str(inv / ".vault-pass"), str(probe)]
    if limit:
        cmd += ["--limit", limit]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


def test_valid_inventory_gives_every_host_the_model(make_inv) -> None:
    proc = _run_validate_play(make_inv())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NODE=front1 LB=front1,front2" in proc.stdout
    assert "NODE=- LB=front1,front2" in proc.stdout  # non-Nuxeo hosts see the same model


def test_limit_still_sees_the_whole_cluster(make_inv) -> None:
    proc = _run_validate_play(make_inv(), limit="front2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NODE=front2 LB=front1,front2" in proc.stdout


def test_broken_inventory_stops_the_play_with_the_rules(make_inv) -> None:
    from tests.unit.test_broken_inventories import layout

    proc = _run_validate_play(make_inv(layout=layout(opensearch=["s1", "s2"])))
    assert proc.returncode != 0
    assert "[counts.opensearch]" in proc.stdout
    assert "nothing was changed" in proc.stdout
    assert "NODE=" not in proc.stdout
