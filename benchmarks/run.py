"""Run every benchmark and leave its figures in benchmarks/results/ (`make bench`). Not a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, its arguments): status_bench reads the lab noop_bench leaves up, and the last entry takes it down
BENCHES = [("validate_plan_bench.py", []), ("lab_bench.py", []), ("deploy_bench.py", []),
           ("noop_bench.py", ["--keep"]), ("status_bench.py", []), ("daytwo_bench.py", [])]


def main() -> int:
    failed = []
    for b, args in BENCHES:
        if not (HERE / b).exists():
            continue
        print(f"== {b}", flush=True)
        if subprocess.run([sys.executable, str(HERE / b), *args]).returncode != 0:
            failed.append(b)
    noop_lab = (os.environ.get("NXP_TEST_LAB_PREFIX", "") + "noop")[:20]
    subprocess.run([sys.executable, "-m", "nxprovision_lab.cli", "down", "--name", noop_lab], cwd=HERE.parent,
                   stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    print(f"figures in {HERE / 'results'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
