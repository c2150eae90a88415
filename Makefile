# The two entry points the README documents. Both set up .venv/ first (idempotent).
.PHONY: setup run test lint

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/fwsurvey run

test: setup
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check fwsurvey collectors analyzers kernels reports tests
