"""Every sample inventory validates, and plans, with exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "inventories").iterdir() if p.is_dir())


def test_there_is_a_sample_per_architecture() -> None:
    names = {p.name for p in SAMPLES}
    assert {"single", "compact", "distributed"} <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_validates(sample: Path, run_cli) -> None:
    code, out, err = run_cli("validate", "-i", str(sample))
    assert code == 0, out + err
    assert "ERROR" not in out
    assert f"{sample}: valid" in out.replace(str(sample.resolve()), str(sample))


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_plans(sample: Path, run_cli) -> None:
    code, out, err = run_cli("plan", "-i", str(sample))
    assert code == 0, err
    assert "Topology" in out and "nuxeo.conf" in out
