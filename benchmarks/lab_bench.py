"""Lab figures: base image build, 10-host up until SSH answers, down, and memory of an idle 10-host lab.

Run as root from the repository: `.venv/bin/python benchmarks/lab_bench.py [--force-build]`.
Writes benchmarks/results/lab.json and prints it. Memory is the sum of PSS (proportional set size) over
every process of the lab: each host's processes (everything in its network namespace), the nspawn
processes and the lab's daemons. PSS splits pages shared between processes (the base image's libraries,
shared by every host through the overlay's lower layer) among them, so the sum is the physical memory
the lab really holds; the RSS sum, which counts shared pages once per process, is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nxprovision_lab import aptsources, image, manager  # noqa: E402
from nxprovision_lab.naming import LabNames  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "lab.json"
NAME = "nxbench"
HOSTS = 10
TARGETS = {"base_build_s": 90.0, "up_10_hosts_s": 15.0, "down_10_hosts_s": 15.0, "idle_memory_mib": 1536.0}
LAB = [sys.executable, "-m", "nxprovision_lab.cli"]


def _smaps_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_memory(name: str) -> dict[str, float]:
    pids = manager.pids_of_lab(LabNames(name))
    pss = sum(_smaps_kib(p, "Pss") for p in pids)
    rss = sum(_smaps_kib(p, "Rss") for p in pids)
    return {"processes": len(pids), "pss_mib": round(pss / 1024, 1), "rss_mib": round(rss / 1024, 1)}


def timed(cmd: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - t0, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force-build", action="store_true", help="rebuild the base image even if cached")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds idle before measuring memory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("lab_bench: run as root", file=sys.stderr)
        return 2

    figures: dict[str, Any] = {"hosts": HOSTS, "targets": TARGETS}
    subprocess.run([*LAB, "down", "--name", NAME], check=True, stderr=subprocess.DEVNULL)
    cached = image.image_path().is_dir() and not args.force_build
    if cached:
        figures["base_build_s"] = None
        figures["base_build_note"] = "cached (run with --force-build to time a build)"
    else:
        _path, took = image.ensure_base(aptsources.machine_mirrors().archive, force=True)
        figures["base_build_s"] = round(took or 0.0, 2)
    figures["base_image_mib"] = round(
        int(subprocess.run(["du", "-sk", str(image.image_path())], capture_output=True, text=True).stdout.split()[0])
        / 1024,
        1,
    )

    try:
        figures["up_10_hosts_s"] = timed([*LAB, "up", "--name", NAME, "--hosts", str(HOSTS)])
        time.sleep(args.settle)
        mem = lab_memory(NAME)
        figures["idle_memory_mib"] = mem["pss_mib"]
        figures["idle_memory_detail"] = {**mem, "settle_s": args.settle, "measure": "sum of PSS"}
    finally:
        figures["down_10_hosts_s"] = timed([*LAB, "down", "--name", NAME])

    figures["pass"] = {k: (figures[k] is None or figures[k] < target) for k, target in TARGETS.items()}
    figures["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0 if all(figures["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
