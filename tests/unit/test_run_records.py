"""`runs` lists every record it can read: a cut-short or corrupt record is named and shown as far as it goes,
never an internal error; only a records folder that cannot be listed stops it (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD_COMMAND = {"verb": "deploy", "inventory": "inv", "limit": None}
GOOD_SUMMARY = {"rc": 2, "status": "failed", "recap": {"front1": {"changed": 3}, "db1": {"changed": 1}},
                "failures": [{"host": "db1", "task": "t"}]}


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "runs"
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(base))
    return base


def _record(base: Path, name: str, command: str | bytes | None, summary: str | bytes | None) -> Path:
    d = base / name
    d.mkdir(parents=True)
    for file, content in (("command.json", command), ("summary.json", summary)):
        if content is not None:
            (d / file).write_bytes(content.encode() if isinstance(content, str) else content)
    return d


# id -> (command.json, summary.json, the file named as bad)
BAD: dict[str, tuple[str | bytes, str | bytes | None, str]] = {
    "summary-cut-short": (json.dumps(GOOD_COMMAND), json.dumps(GOOD_SUMMARY)[:40], "summary.json"),
    "command-cut-short": (json.dumps(GOOD_COMMAND)[:12], json.dumps(GOOD_SUMMARY), "command.json"),
    "empty-command": ("", None, "command.json"),
    "summary-a-list": (json.dumps(GOOD_COMMAND), "[1, 2]", "summary.json"),
    "not-text": (b"\xff\xfe\x00", None, "command.json"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_corrupt_record_is_named_and_the_others_are_listed(case: str, runs: Path, run_cli) -> None:
    command, summary, bad_file = BAD[case]
    _record(runs, "2026-01-01T00-00-00-good", json.dumps(GOOD_COMMAND), json.dumps(GOOD_SUMMARY))
    bad = _record(runs, "2026-01-02T00-00-00-bad", command, summary)
    code, out, err = run_cli("runs")
    assert code == 0, out + err
    assert "2026-01-01T00-00-00-good" in out and "2026-01-02T00-00-00-bad" in out
    good_row = next(ln for ln in out.splitlines() if "good" in ln)
    assert "deploy" in good_row and "failed" in good_row and "db1" in good_row
    assert str(bad / bad_file) in err and "Traceback" not in err and "internal error" not in err

    code, out, err = run_cli("runs", "--json")
    assert code == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["2026-01-01T00-00-00-good"]["changed"] == 4 and not rows["2026-01-01T00-00-00-good"]["problems"]
    assert any(str(bad / bad_file) in p for p in rows["2026-01-02T00-00-00-bad"]["problems"])


def test_odd_values_inside_a_readable_record_do_not_break_the_listing(runs: Path, run_cli) -> None:
    _record(runs, "odd", json.dumps({"verb": 3}), json.dumps({"rc": "x", "recap": {"h": 5, "g": {"changed": "2"}},
                                                              "failures": ["x", {"nohost": 1}]}))
    code, out, err = run_cli("runs", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["rc"] is None and row["hosts"] == 2 and row["changed"] == 0 and row["failed_hosts"] == []


def test_a_records_folder_that_is_a_file_is_one_line(runs: Path, run_cli) -> None:
    runs.write_text("x\n")
    code, out, err = run_cli("runs")
    assert code == 2, out + err
    assert err.startswith("nxprovision: error: ") and len(err.strip().splitlines()) == 1
    assert str(runs) in err and "(fix: " in err


def test_no_records_folder_is_no_runs(runs: Path, run_cli) -> None:
    code, out, _err = run_cli("runs")
    assert code == 0 and "no runs recorded" in out
