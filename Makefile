# nxprovision developer and operator entry points. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
ARCH ?= compact

.PHONY: help setup lab-demo test test-unit test-lab test-long test-ha lint bench clean-lab collection wheel

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: ## install Debian packages and the .venv (idempotent)
	@scripts/setup.sh

lab-demo: setup ## build a local lab and deploy the default architecture into it
	@scripts/lab-demo.sh $(ARCH)

test: setup ## the whole suite CI runs: lint, unit tests, then lab integration tests
	@scripts/test.sh

test-unit: setup ## unit tests only (seconds, no root needed)
	$(BIN)/pytest -q -m "not lab and not slow" tests/unit

test-lab: setup ## lab integration tests (root)
	$(BIN)/pytest -q -m "lab and not slow" tests/integration

test-long: setup ## the long scenarios kept out of CI's default run
	$(BIN)/pytest -q -m "slow" tests

test-ha: setup ## every failure test of the distributed architecture
	$(BIN)/pytest -q -m "ha" tests

lint: setup ## ruff, yamllint, ansible-lint
	@scripts/lint.sh

collection: setup ## the nxprovision.cluster collection's tarball into dist/ (ansible-galaxy, offline)
	$(BIN)/python -m nxprovision.collection --output dist

wheel: setup ## the nxprovision wheel into dist/, the collection inside (pip install it anywhere)
	$(BIN)/pip wheel --no-deps -w dist .

bench: setup ## run the benchmarks, figures into benchmarks/results/
	$(BIN)/python benchmarks/run.py

clean-lab: ## remove every lab this machine runs (leftovers included)
	-$(BIN)/nxprovision lab down --all
