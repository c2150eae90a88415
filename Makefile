# The two entry points the README documents. Both set up .venv/ first (idempotent).
.PHONY: setup run test lint

setup:
	@bash scripts/setup.sh

# Exit 3 means the run completed degraded (a source unreachable, e.g. offline): the report
# says which and why, so that is not a failure of `make run`.
run: setup
	.venv/bin/fwsurvey run || [ $$? -eq 3 ]

test: setup
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check fwsurvey collectors analyzers kernels reports tests
