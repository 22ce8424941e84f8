"""The benchmark's profile of a run, read from ansible-runner job events (synthetic events here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from events_profile import markdown, profile  # noqa: E402


def write_events(run_dir: Path, events: list[tuple[float, str, dict]]) -> None:
    d = run_dir / "artifacts" / "ident" / "job_events"
    d.mkdir(parents=True)
    for n, (t, kind, data) in enumerate(events, 1):
        created = f"2026-12-05T10:00:{t:09.6f}+00:00"
        (d / f"{n}-x.json").write_text(json.dumps({"counter": n, "event": kind, "created": created,
                                                   "event_data": data}))


def test_walls_roles_facts_and_first_contact(tmp_path: Path) -> None:
    play = {"play": "OS baseline on every host", "play_uuid": "p1"}
    facts = {**play, "task": "Gathering Facts", "task_uuid": "t1", "resolved_action": "ansible.builtin.gather_facts"}
    copy = {**play, "task": "Write a file", "task_uuid": "t2", "resolved_action": "ansible.builtin.copy",
            "role": "common"}
    skip = {**play, "task": "Never here", "task_uuid": "t3", "resolved_action": "ansible.builtin.copy",
            "role": "common"}
    write_events(tmp_path, [
        (0.0, "playbook_on_play_start", {"play": play["play"], "uuid": "p1"}),
        (1.0, "playbook_on_task_start", facts),
        (3.0, "runner_on_ok", {**facts, "host": "a", "duration": 1.5}),
        (3.5, "runner_on_ok", {**facts, "host": "b", "duration": 2.0}),
        (4.0, "playbook_on_task_start", copy),
        (5.0, "runner_on_ok", {**copy, "host": "a", "duration": 0.5, "res": {"changed": True}}),
        (6.0, "runner_on_ok", {**copy, "host": "b", "duration": 0.8}),
        (7.0, "playbook_on_task_start", skip),
        (7.5, "runner_on_skipped", {**skip, "host": "a"}),
        (8.0, "playbook_on_stats", {}),
    ])
    p = profile(tmp_path)
    assert p["wall_s"] == 8.0 and p["hosts"] == 2 and p["changed"] == 1
    assert p["plays"] == [{"play": "OS baseline on every host", "wall_s": 8.0, "tasks": 3, "hosts": 2}]
    assert p["roles"]["common"] == {"wall_s": 4.0, "host_s": 1.3, "tasks": 2}
    assert p["fixed"]["fact_gathering"] == {"tasks": 1, "wall_s": 3.0, "hosts_gathered": 2}
    assert p["fixed"]["tasks_on_no_host"] == {"tasks": 1, "wall_s": 1.0}
    assert p["fixed"]["first_contact_per_host_median_s"] == 1.75
    assert p["top_tasks"][0]["task"] == "Gathering Facts"
    assert "| OS baseline on every host | 8.0 | 3 | 2 |" in markdown(p)
