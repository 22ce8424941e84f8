"""Run every benchmark and leave its figures in benchmarks/results/ (`make bench`). Not a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["validate_plan_bench.py", "lab_bench.py", "deploy_bench.py", "noop_bench.py", "daytwo_bench.py"]


def main() -> int:
    failed = []
    for b in BENCHES:
        if not (HERE / b).exists():
            continue
        print(f"== {b}", flush=True)
        if subprocess.run([sys.executable, str(HERE / b)]).returncode != 0:
            failed.append(b)
    print(f"figures in {HERE / 'results'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
