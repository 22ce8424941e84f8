"""`nxprovision status` on a deployed lab (target < 5 s on the compact lab), with Mitogen and without, alternating.

Run as root from the repository, on a lab that is up and deployed (noop_bench.py --keep leaves one):
`.venv/bin/python benchmarks/status_bench.py [--name LAB] [--runs 3]`. Each round runs `status --mitogen` and
`status --no-mitogen` (the default), the first kind changing every round. Writes
benchmarks/results/status.json (every run's seconds, exit code and load average, the medians) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "status.json"
TARGET_S = 5.0


def status_once(inventory: str, mitogen: bool) -> dict[str, Any]:
    load = [round(x, 2) for x in os.getloadavg()]
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "nxprovision.cli", "status", "-i", inventory,
                        "--mitogen" if mitogen else "--no-mitogen"], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    return {"s": round(time.monotonic() - t0, 2), "rc": p.returncode, "load": load,
            "healthy": (p.stdout.strip().splitlines() or [""])[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=(os.environ.get("NXP_TEST_LAB_PREFIX", "") + "noop")[:20])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab = subprocess.run([sys.executable, "-m", "nxprovision_lab.cli", "status", "--json", "--name", args.name],
                         capture_output=True, text=True, cwd=REPO)
    if lab.returncode != 0:
        print(f"status_bench: no lab {args.name} up: {lab.stderr.strip()}", file=sys.stderr)
        return 2
    info = json.loads(lab.stdout)
    runs: dict[str, list[dict[str, Any]]] = {"mitogen": [], "ansible": []}
    for i in range(args.runs):
        for kind in (["mitogen", "ansible"] if i % 2 == 0 else ["ansible", "mitogen"]):
            r = status_once(info["inventory"], kind == "mitogen")
            runs[kind].append(r)
            print(f"status_bench: {kind} run {i + 1}: {r['s']} s, rc {r['rc']}, {r['healthy']}", flush=True)
    figures: dict[str, Any] = {
        "what": f"nxprovision status on the {info.get('architecture')} lab ({len(info.get('hosts') or [])} hosts), "
                "with Mitogen and with Ansible's own strategies, alternating",
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count()},
    }
    for kind, rs in runs.items():
        figures[kind] = {"runs_s": [r["s"] for r in rs], "median_s": round(statistics.median(r["s"] for r in rs), 2),
                         "rc": [r["rc"] for r in rs], "load": [r["load"] for r in rs]}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
