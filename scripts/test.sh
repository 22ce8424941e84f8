#!/usr/bin/env bash
# The whole test suite, fastest first: lint, unit tests, then the lab integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
scripts/lint.sh
echo "test: unit"
$BIN/pytest -q -m "not lab and not slow" tests/unit
echo "test: lab integration"
$BIN/pytest -q --durations=25 -m "lab and not slow" tests/integration
