# The two entry points the README documents. Both set up .venv/ first (idempotent).
.PHONY: setup test-deps run test lint

# What ruff checks (also part of `make test`).
LINT_PATHS = fwsurvey collectors analyzers kernels claims reports tests scripts

setup:
	@bash scripts/setup.sh

# Chromium and its driver for the browser test (apt-get as root, or says what to do).
test-deps:
	@bash scripts/test-deps.sh

# Exit 3 means the run completed degraded (a source unreachable, e.g. offline): the report
# says which and why, so that is not a failure of `make run`.
run: setup
	.venv/bin/fwsurvey run || [ $$? -eq 3 ]

# ruff, the layer contract (import-linter, [tool.importlinter] in pyproject.toml), then pytest.
test: setup test-deps lint
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check $(LINT_PATHS)
	.venv/bin/python scripts/lint_layers.py
