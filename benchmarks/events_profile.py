"""Where a playbook run spends its time, read from ansible-runner's job events (artifacts/*/job_events/*.json).

`profile(run_dir)` gives per play, per role and per task wall times and the fixed costs: fact gathering, the
validation plays, the first contact with each host (SSH connection set-up), handlers (throttled restarts), tasks
that ran on no host (every host skipped: pure controller cost) and the controller's per-task overhead.
`markdown(profile)` renders it for benchmarks/results/. Used by noop_bench.py; also runnable on any run record:
`python benchmarks/events_profile.py /var/lib/nxprovision/runs/<run>`.

Wall time of a task: from its start event to the next task's (or play's, or the recap's) start event, so the
walls of one run add up to the run. Host time: the sum of the per-host durations ansible-runner records.
A play with `strategy: free` sends one task start per host, so its tasks count once per host there (its play wall
time stays right).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

TASK_STARTS = ("playbook_on_task_start", "playbook_on_handler_task_start")
HOST_ENDS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
FACTS = ("gather_facts", "setup", "ansible.builtin.gather_facts", "ansible.builtin.setup")
# plays every run of site.yml pays before it touches a service
VALIDATION_PLAYS = ("Validate the inventory", "Prechecks", "Check the Nuxeo version")


def load_events(run_dir: Path) -> list[dict[str, Any]]:
    files = sorted(run_dir.glob("artifacts/*/job_events/*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [json.loads(p.read_text()) for p in files]


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["created"])).timestamp()


def profile(run_dir: Path, top: int = 25) -> dict[str, Any]:
    events = [e for e in load_events(run_dir) if e.get("created")]
    if not events:
        raise ValueError(f"no job events under {run_dir}")
    t0, t_end = _ts(events[0]), _ts(events[-1])
    # the boundaries: every play start, task start and the recap
    marks = [e for e in events if e.get("event") in ("playbook_on_play_start", *TASK_STARTS, "playbook_on_stats")]
    tasks: dict[str, dict[str, Any]] = {}
    plays: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for i, e in enumerate(marks):
        nxt = _ts(marks[i + 1]) if i + 1 < len(marks) else t_end
        d = e.get("event_data") or {}
        wall = max(nxt - _ts(e), 0.0)
        if e["event"] == "playbook_on_play_start":
            plays[d.get("play_uuid") or d.get("uuid")] = {"play": d.get("play") or d.get("name"), "wall_s": 0.0,
                                                          "startup_s": wall, "tasks": 0, "hosts": set()}
            order.append(d.get("play_uuid") or d.get("uuid"))
            continue
        if e["event"] == "playbook_on_stats":
            continue
        key = f"{d.get('task_uuid')}-{i}"
        tasks[key] = {"uuid": d.get("task_uuid"), "task": d.get("task") or d.get("name"),
                      "action": d.get("resolved_action") or d.get("task_action"), "role": d.get("role") or "",
                      "play": d.get("play"), "play_uuid": d.get("play_uuid"), "wall_s": wall,
                      "handler": e["event"] == "playbook_on_handler_task_start", "host_s": 0.0, "ran": 0,
                      "skipped": 0, "changed": 0, "durations": {}}
    by_uuid: dict[str, list[str]] = defaultdict(list)
    for k, t in tasks.items():
        by_uuid[t["uuid"]].append(k)
    first_contact: dict[str, float] = {}
    later: list[float] = []
    for e in events:
        if e.get("event") not in HOST_ENDS:
            continue
        d = e.get("event_data") or {}
        keys = by_uuid.get(d.get("task_uuid")) or []
        if not keys:
            continue
        t = tasks[keys[-1]]
        host = str(d.get("host"))
        dur = float(d.get("duration") or 0.0)
        if e["event"] == "runner_on_skipped":
            t["skipped"] += 1
            continue
        t["ran"] += 1
        t["host_s"] += dur
        t["durations"][host] = t["durations"].get(host, 0.0) + dur
        if (d.get("res") or {}).get("changed"):
            t["changed"] += 1
        if host not in first_contact:
            first_contact[host] = dur
        elif t["action"] not in FACTS:
            later.append(dur)
        p = plays.get(t["play_uuid"])
        if p is not None:
            p["hosts"].add(host)
    for t in tasks.values():
        p = plays.get(t["play_uuid"])
        if p is not None:
            p["tasks"] += 1
            p["wall_s"] += t["wall_s"]
    for p in plays.values():
        p["wall_s"] += p["startup_s"]

    roles: dict[str, dict[str, float]] = defaultdict(lambda: {"wall_s": 0.0, "host_s": 0.0, "tasks": 0})
    for t in tasks.values():
        r = roles[t["role"] or "(play tasks)"]
        r["wall_s"] += t["wall_s"]
        r["host_s"] += t["host_s"]
        r["tasks"] += 1
    facts = [t for t in tasks.values() if t["action"] in FACTS]
    nowhere = [t for t in tasks.values() if t["ran"] == 0]
    handlers = [t for t in tasks.values() if t["handler"]]
    # the controller's share of a task: its wall time beyond its slowest host (templating, forks, results)
    overhead = sum(max(t["wall_s"] - max(t["durations"].values(), default=0.0), 0.0) for t in tasks.values())
    validation = [p for p in plays.values() if str(p["play"]).startswith(VALIDATION_PLAYS)]
    hosts = sorted(first_contact)
    per_host_tasks = defaultdict(int)
    for t in tasks.values():
        for h in t["durations"]:
            per_host_tasks[h] += 1

    def r2(x: float) -> float:
        return round(x, 2)

    return {
        "run_dir": str(run_dir),
        "wall_s": r2(t_end - t0),
        "tasks": len(tasks),
        "hosts": len(hosts),
        "tasks_run_per_host": {h: per_host_tasks[h] for h in hosts},
        "changed": sum(t["changed"] for t in tasks.values()),
        "fixed": {
            "fact_gathering": {"tasks": len(facts), "wall_s": r2(sum(t["wall_s"] for t in facts)),
                               "hosts_gathered": sum(t["ran"] for t in facts)},
            "validation_plays": {str(p["play"]): r2(p["wall_s"]) for p in validation},
            "first_contact_per_host_median_s": r2(statistics.median(first_contact.values())) if hosts else 0.0,
            "later_task_per_host_median_s": r2(statistics.median(later)) if later else 0.0,
            "play_startup_s": r2(sum(p["startup_s"] for p in plays.values())),
            "handlers": {"tasks": len(handlers), "wall_s": r2(sum(t["wall_s"] for t in handlers))},
            "tasks_on_no_host": {"tasks": len(nowhere), "wall_s": r2(sum(t["wall_s"] for t in nowhere))},
            "controller_overhead_s": r2(overhead),
        },
        "plays": [{"play": plays[u]["play"], "wall_s": r2(plays[u]["wall_s"]), "tasks": plays[u]["tasks"],
                   "hosts": len(plays[u]["hosts"])} for u in order],
        "roles": {k: {"wall_s": r2(v["wall_s"]), "host_s": r2(v["host_s"]), "tasks": int(v["tasks"])}
                  for k, v in sorted(roles.items(), key=lambda kv: -kv[1]["wall_s"])},
        "top_tasks": [{"task": t["task"], "role": t["role"], "action": t["action"], "wall_s": r2(t["wall_s"]),
                       "host_s": r2(t["host_s"]), "ran": t["ran"], "skipped": t["skipped"]}
                      for t in sorted(tasks.values(), key=lambda t: -t["wall_s"])[:top]],
    }


def markdown(p: dict[str, Any], title: str = "No-op deploy profile") -> str:
    f = p["fixed"]
    lines = [f"## {title}", "", f"run: {p['wall_s']} s wall, {p['tasks']} task starts, {p['hosts']} hosts, "
             f"{p['changed']} changed; tasks run per host: "
             + ", ".join(f"{h} {n}" for h, n in p["tasks_run_per_host"].items()), "",
             "| fixed cost | figure |", "| --- | --- |",
             f"| fact gathering | {f['fact_gathering']['tasks']} tasks, {f['fact_gathering']['hosts_gathered']} "
             f"host gathers, {f['fact_gathering']['wall_s']} s |",
             *[f"| play: {k} | {v} s |" for k, v in f["validation_plays"].items()],
             f"| first contact per host (SSH set-up included), median | {f['first_contact_per_host_median_s']} s |",
             f"| later task per host, median | {f['later_task_per_host_median_s']} s |",
             f"| play start-up (before the first task), all plays | {f['play_startup_s']} s |",
             f"| handlers | {f['handlers']['tasks']} tasks, {f['handlers']['wall_s']} s |",
             f"| tasks that ran on no host (all skipped) | {f['tasks_on_no_host']['tasks']} tasks, "
             f"{f['tasks_on_no_host']['wall_s']} s |",
             f"| controller overhead (task wall beyond its slowest host) | {f['controller_overhead_s']} s |",
             "", "| play | wall s | tasks | hosts |", "| --- | --- | --- | --- |",
             *[f"| {x['play']} | {x['wall_s']} | {x['tasks']} | {x['hosts']} |" for x in p["plays"]],
             "", "| role | wall s | host s | tasks |", "| --- | --- | --- | --- |",
             *[f"| {k} | {v['wall_s']} | {v['host_s']} | {v['tasks']} |" for k, v in p["roles"].items()],
             "", "| task (slowest) | role | action | wall s | host s | ran | skipped |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             *[f"| {t['task']} | {t['role']} | {t['action']} | {t['wall_s']} | {t['host_s']} | {t['ran']} | "
               f"{t['skipped']} |" for t in p["top_tasks"]], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    prof = profile(Path(sys.argv[1]))
    print(markdown(prof) if "--json" not in sys.argv else json.dumps(prof, indent=2))
