"""Benchmark: validate + plan of a generated 1,000-host distributed inventory (target: under 2 s wall).

Writes its figures to benchmarks/results/validate_plan.json. Not a timed test: run it by hand or via
`make bench`.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nxprovision.init import render_hosts_yaml, write_inventory  # noqa: E402

TARGET_S = 2.0
NOTE = (
    "wall time of one CLI process, best of 3; `plan` runs every rule before rendering, "
    "so total_s = plan_s; validate_s is validation alone"
)


def generate(directory: Path, total: int = 1000) -> dict[str, list[str]]:
    layout: dict[str, list[str]] = {
        "loadbalancers": ["lb1", "lb2"],
        "postgresql": ["db1", "db2", "db3"],
        "etcd": ["db1", "db2", "db3"],
        "opensearch": [f"search{i}" for i in range(1, 32)],
        "kafka": [f"kafka{i}" for i in range(1, 16)],
        "s3": [f"s3-{i}" for i in range(1, 5)],
    }
    used = 2 + 3 + 31 + 15 + 4
    workers = 200
    fronts = total - used - workers
    layout["nuxeo_front"] = [f"front{i}" for i in range(1, fronts + 1)]
    layout["nuxeo_worker"] = [f"worker{i}" for i in range(1, workers + 1)]
    write_inventory(directory, "distributed")
    hostvars = {}
    n = 0
    for hosts in layout.values():
        for h in hosts:
            if h not in hostvars:
                n += 1
                hostvars[h] = {"ansible_host": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}
    (directory / "hosts.yml").write_text(render_hosts_yaml(layout, hostvars))
    return layout


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="nxbench-"))
    try:
        inv = tmp / "inv"
        layout = generate(inv)
        hosts = len({h for hs in layout.values() for h in hs})
        exe = [str(ROOT / ".venv" / "bin" / "nxprovision")]
        runs = {}
        for verb in ("validate", "plan"):
            best = None
            for _ in range(3):
                t0 = time.perf_counter()
                proc = subprocess.run([*exe, verb, "-i", str(inv)], capture_output=True, text=True)
                dt = time.perf_counter() - t0
                if proc.returncode != 0:
                    print(proc.stdout[-2000:], proc.stderr[-2000:])
                    return 1
                best = dt if best is None else min(best, dt)
            runs[verb] = round(best or 0, 3)
        # `plan` loads, validates (every rule) and renders: it is the validate+plan figure.
        total = runs["plan"]
        result = {
            "benchmark": "validate+plan, generated distributed inventory",
            "hosts": hosts,
            "validate_s": runs["validate"],
            "plan_s": runs["plan"],
            "total_s": total,
            "target_s": TARGET_S,
            "met": total < TARGET_S,
            "note": NOTE,
            "machine": f"{platform.machine()} {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d"),
        }
        out = ROOT / "benchmarks" / "results" / "validate_plan.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
