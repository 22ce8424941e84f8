"""Reading the run records `nxprovision runs` lists, whatever state they were left in.

A run killed while writing (power cut, full disk, SIGKILL) leaves a truncated command.json or summary.json;
an operator may have edited or half-copied a folder. One such record must not hide the others: each file is
read on its own, a bad one is named, and the row shows what could be read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nxprovision.errors import NxError


@dataclass
class RunRow:
    id: str
    verb: str = ""
    inventory: str = ""
    limit: str = ""
    status: str = "running or killed"
    rc: int | None = None
    hosts: int = 0
    changed: int = 0
    failed_hosts: list[str] = field(default_factory=list)
    path: str = ""
    # "file: what is wrong with it", one per record that could not be read whole
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _read(path: Path, problems: list[str]) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(errors="replace"))
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
        return {}
    except ValueError as exc:
        problems.append(f"{path}: not valid JSON, probably cut short ({exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: holds a {type(data).__name__}, not a run record")
        return {}
    return data


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_run(run: Path) -> RunRow:
    row = RunRow(id=run.name, path=str(run))
    cmd = _read(run / "command.json", row.problems)
    summ = _read(run / "summary.json", row.problems)
    row.verb = str(cmd.get("verb") or "")
    row.inventory = str(cmd.get("inventory") or "")
    row.limit = str(cmd.get("limit") or "")
    if summ:
        row.status = str(summ.get("status") or "unknown")
        row.rc = summ.get("rc") if isinstance(summ.get("rc"), int) else None
    elif any(p.startswith(str(run / "summary.json")) for p in row.problems):
        row.status = "unreadable record"
    recap = summ.get("recap")
    if isinstance(recap, dict):
        row.hosts = len(recap)
        row.changed = sum(_count(r.get("changed")) for r in recap.values() if isinstance(r, dict))
    failures = summ.get("failures")
    if isinstance(failures, list):
        row.failed_hosts = sorted({str(f["host"]) for f in failures if isinstance(f, dict) and f.get("host")})
    return row


def read_runs(base: Path) -> list[RunRow]:
    """Every run under base, oldest first. A base that cannot be listed is the only error."""
    if not base.exists():
        return []
    if not base.is_dir():
        raise NxError(f"{base}: the run records folder is a file", "move it away, or set NXPROVISION_RUNS_DIR "
                      "to a folder")
    try:
        runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name)
    except OSError as exc:
        raise NxError(f"{base}: cannot list the run records ({exc.strerror})",
                      "run as the user who ran the verbs, or set NXPROVISION_RUNS_DIR") from None
    return [read_run(r) for r in runs]
