"""No-op re-run of the compact lab, this checkout against an older one, alternating on the same lab, with a profile.

Run as root from the repository:
`.venv/bin/python benchmarks/noop_bench.py --old DIR [--runs 3] [--reuse] [--keep] [--name NAME]`
where DIR is a checkout of the commit to compare with (`git worktree add DIR <commit>`); without --old only this
checkout runs. The lab is `NXP_TEST_LAB_PREFIX` + "noop" unless --name says otherwise; --reuse takes a lab that
is already up and deployed (no boot, no first deploy), --keep leaves it up at the end. Each checkout runs
`nxprovision deploy` with its own code and playbooks (cwd and NXPROVISION_HOME), the kinds alternating and the
first kind changing every round, so that neither always meets a warm SSH control connection or a quiet moment.

Writes benchmarks/results/noop.json (every run's seconds, changed count and load average, the medians, the
speed-up, the profile of each checkout's median run) and benchmarks/results/noop_profile.md (the same profiles
as tables, see events_profile.py), and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events_profile import markdown, profile

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
LAB = [sys.executable, "-m", "nxprovision_lab.cli"]
TARGET_S = 30.0
TARGET_SPEEDUP = 2.5


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def deploy(checkout: Path, inventory: Path, runs_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "NXPROVISION_HOME": str(checkout), "PYTHONPATH": str(checkout),
           "NXPROVISION_RUNS_DIR": str(runs_dir)}
    runs_dir.mkdir(parents=True, exist_ok=True)
    load = loadavg()
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "nxprovision.cli", "deploy", "-i", str(inventory), "--progress",
                        "plain"], capture_output=True, text=True, env=env, cwd=checkout, timeout=3600)
    took = round(time.monotonic() - t0, 2)
    if p.returncode != 0:
        raise SystemExit(f"noop_bench: deploy from {checkout} failed ({p.returncode}):\n{p.stdout[-3000:]}\n"
                         f"{p.stderr[-2000:]}")
    run_dir = max(runs_dir.iterdir(), key=lambda d: d.stat().st_mtime)
    prof = profile(run_dir)
    return {"s": took, "load": load, "changed": prof["changed"], "profile": prof}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="checkout of the commit to compare with")
    parser.add_argument("--new", type=Path, default=REPO, help="checkout of the new code (default this one)")
    parser.add_argument("--runs", type=int, default=3, help="no-op runs of each checkout (default 3)")
    parser.add_argument("--name", default=(os.environ.get("NXP_TEST_LAB_PREFIX", "") + "noop")[:20])
    parser.add_argument("--reuse", action="store_true", help="the lab is up and deployed already")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--first-from", choices=["new", "old"], default="new",
                        help="which checkout makes the first deploy (default new)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("noop_bench: run as root", file=sys.stderr)
        return 2
    kinds = {"new": args.new.resolve()} | ({"old": args.old.resolve()} if args.old else {})
    work = Path(tempfile.mkdtemp(prefix="noop-bench-"))
    figures: dict[str, Any] = {"architecture": "compact", "lab": args.name, "load_start": loadavg(),
                               "checkouts": {k: subprocess.run(["git", "-C", str(v), "rev-parse", "--short", "HEAD"],
                                                               capture_output=True, text=True).stdout.strip()
                                             for k, v in kinds.items()},
                               "targets": {"noop_rerun_s": TARGET_S, "speedup": TARGET_SPEEDUP}}
    status = subprocess.run([*LAB, "status", "--json", "--name", args.name], capture_output=True, text=True)
    try:
        if args.reuse and status.returncode == 0:
            inventory = Path(json.loads(status.stdout)["inventory"])
        else:
            subprocess.run([*LAB, "down", "--name", args.name], stderr=subprocess.DEVNULL)
            up = subprocess.run([*LAB, "up", "--name", args.name, "--architecture", "compact"], capture_output=True,
                                text=True, check=True, timeout=600)
            inventory = Path(up.stdout.strip().splitlines()[-1])
            first = deploy(kinds[args.first_from], inventory, work / "first")
            figures["first_deploy"] = {"from": args.first_from, "s": first["s"], "load": first["load"],
                                       "changed": first["changed"]}
            (RESULTS / "first_deploy_profile.md").write_text(
                markdown(first["profile"], f"First deploy profile ({args.first_from} checkout)") + "\n")
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for i in range(args.runs):
            order = list(kinds) if i % 2 == 0 else list(kinds)[::-1]
            for kind in order:
                r = deploy(kinds[kind], inventory, work / f"{kind}-{i}")
                runs[kind].append(r)
                print(f"noop_bench: {kind} run {i + 1}: {r['s']} s, changed {r['changed']}, load {r['load']}",
                      flush=True)
    finally:
        if not args.keep:
            subprocess.run([*LAB, "down", "--name", args.name], stderr=subprocess.DEVNULL)
    figures["load_end"] = loadavg()
    md = [f"# No-op deploy of the compact lab ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
          f"load average at start {figures['load_start']}, at end {figures['load_end']}, "
          f"{os.cpu_count()} CPUs", ""]
    for kind, rs in runs.items():
        secs = [r["s"] for r in rs]
        med = sorted(rs, key=lambda r: r["s"])[len(rs) // 2]
        figures[kind] = {"runs_s": secs, "median_s": round(statistics.median(secs), 2),
                         "changed": [r["changed"] for r in rs], "load": [r["load"] for r in rs],
                         "profile": med["profile"]}
        md.append(f"{kind} ({figures['checkouts'][kind]}): runs {secs} s, median {figures[kind]['median_s']} s, "
                  f"changed {figures[kind]['changed']}, load {figures[kind]['load']}")
        md.append("")
        md.append(markdown(med["profile"], f"Profile of the median {kind} run ({med['s']} s)"))
    if "old" in figures and "new" in figures:
        figures["speedup"] = round(figures["old"]["median_s"] / figures["new"]["median_s"], 2)
        md.insert(4, f"speed-up (median old / median new): {figures['speedup']}x\n")
    figures["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "noop.json").write_text(json.dumps(figures, indent=2) + "\n")
    (RESULTS / "noop_profile.md").write_text("\n".join(md) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k not in ("old", "new")}
                     | {k: {kk: vv for kk, vv in figures[k].items() if kk != "profile"}
                        for k in ("old", "new") if k in figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
