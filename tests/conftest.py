"""Shared test helpers: survey configs written to tmp_path and recorded PyPI responses."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses

FIXTURES = Path(__file__).parent / "fixtures"
PYPI_FIXTURES = FIXTURES / "pypi"
#: Recorded responses were scrubbed to this host (see tests/fixtures/pypi/record.py).
INDEX = "https://index.invalid/"
MISSING = "fwsurvey-no-such-package-7f3a"
#: The clock the collectors see in tests: the day the fixtures were recorded.
FIXED_NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

BASE_CONFIG = """
[survey]
title = "Test survey"
article = "PyTorch vs Trax: what are the differences?"
compare = ["trax", "jax"]
database = "out/test.db"
report_dir = "out/report"
datasette = "{datasette}"

[frameworks.trax]
name = "Trax"
pypi = ["trax"]
github = "google/trax"

[frameworks.jax]
name = "JAX"
pypi = ["jax"{extra_packages}]
github = "jax-ml/jax"

# Trainings are measured by tests/kernels; a plain `fwsurvey run` here does not train.
[kernels]
enabled = false

# The live community sources are off in a plain run here (nothing fakes them); their own
# tests build these collectors directly, with these settings (tests/collectors/).
[sources.github]
enabled = false
retries = 3
backoff = 0
timeout = 5
per_page = 3
history_days = 0
stats_attempts = 3
stats_wait = 0.0
seconds_between_requests = 0.0
secondary_rate_wait = 0.0
http_cache = "off"

[sources.hub]
enabled = false
retries = 2
backoff = 0
timeout = 5

[sources.downloads]
enabled = false
api_url = "https://downloads.invalid/api/"
retries = 3
backoff = 0
timeout = 5

[sources.docs]
enabled = false
retries = 2
backoff = 0
timeout = 5
crawl_delay = 0.0
max_pages = 20

[sources.pypi]
index_url = "{index}simple/"
retries = 3
backoff = 0
timeout = 5
"""


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a survey config into tmp_path; ``extra_packages`` adds packages to jax."""

    def write(extra_packages: tuple[str, ...] = (), index: str = INDEX, text: str | None = None):
        path = tmp_path / "fwsurvey.toml"
        extra = "".join(f', "{p}"' for p in extra_packages)
        repo_root = Path(__file__).parent.parent
        path.write_text(text if text is not None else BASE_CONFIG.format(
            extra_packages=extra, index=index, datasette=repo_root / "datasette.yml"))
        return path

    return write


def recorded(key: str) -> tuple[int, str, str]:
    """(status, content type, body) of a recorded response, e.g. ``simple/trax/``."""
    index = json.loads((PYPI_FIXTURES / "responses.json").read_text())
    entry = index[key]
    body = (PYPI_FIXTURES / entry["file"]).read_text(encoding="utf-8")
    return entry["status"], entry["content_type"], body


def add_recorded(rsps: responses.RequestsMock, key: str, times: int = 1) -> None:
    """Serve a recorded response at its URL under INDEX."""
    status, content_type, body = recorded(key)
    for _ in range(times):
        rsps.add(responses.GET, INDEX + key, body=body, status=status,
                 content_type=content_type or None)


@contextmanager
def recorded_index():
    """A faked HTTP layer serving the recorded trax, jax and missing-package responses."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for name in ("trax", "jax", MISSING):
            add_recorded(rsps, f"simple/{name}/")
            add_recorded(rsps, f"pypi/{name}/json")
        yield rsps


@pytest.fixture
def pypi_index():
    """recorded_index() for the whole test."""
    with recorded_index() as rsps:
        yield rsps
