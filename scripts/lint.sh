#!/usr/bin/env bash
# Lint lanes: ruff (Python), yamllint (YAML), ansible-lint production profile (roles, playbooks).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "lint: ruff"; $BIN/ruff check nxprovision lab plugins tests benchmarks setup.py
echo "lint: yamllint"; $BIN/yamllint -s -c .yamllint inventories roles playbooks molecule \
  galaxy.yml meta requirements.yml execution-environment.yml
if compgen -G "roles/*/tasks/main.yml" >/dev/null; then
  echo "lint: ansible-lint (production profile)"
  ANSIBLE_CONFIG=$PWD/ansible.cfg $BIN/ansible-lint -q --profile production roles playbooks
fi
