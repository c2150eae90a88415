"""Fixtures the GitHub collector's tests share (test_github.py, test_github_faults.py)."""

from __future__ import annotations

import pytest
import responses

from fwsurvey.config import load_config


@pytest.fixture
def config(write_config):
    """The test configuration (tests/conftest.py), loaded."""
    return load_config(write_config())


@pytest.fixture
def fake():
    """Recorded GitHub answers: requests no route answers fail the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
