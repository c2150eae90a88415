"""The HTTP plumbing every collector shares: reachability probes and 404-tolerant GETs."""

from __future__ import annotations

import socket

import pytest
import requests
import responses

from fwsurvey.config import SourceSettings
from fwsurvey.http import get_allowing_404, make_session, probe
from fwsurvey.sources import SourceUnreachable

SETTINGS = SourceSettings(name="t", retries=2, backoff=0, timeout=5)
URL = "https://example.invalid/thing"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("status, reachable", [(200, True), (404, True), (429, False),
                                               (503, False)])
def test_probe_judges_the_status(status, reachable):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.HEAD, URL, status=status)
        result = probe(make_session(), URL, SETTINGS)
        assert len(rsps.calls) == 1  # a probe is never retried
    assert result.reachable is reachable
    assert result.detail == f"HTTP {status} from {URL}"


def test_probe_of_a_closed_port_says_why():
    result = probe(make_session(), f"http://127.0.0.1:{closed_port()}/x?token=secret",
                   SETTINGS, method="GET")
    assert not result.reachable
    assert result.detail.startswith("connection failed")


def test_get_allowing_404_returns_the_404_and_retries_5xx():
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=404)
        assert get_allowing_404(make_session(), URL, SETTINGS).status_code == 404
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=502)
        rsps.add(responses.GET, URL, json={"ok": 1})
        assert get_allowing_404(make_session(), URL, SETTINGS).json() == {"ok": 1}
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=403)
        with pytest.raises(requests.HTTPError):
            get_allowing_404(make_session(), URL, SETTINGS)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=500)
        rsps.add(responses.GET, URL, status=500)
        with pytest.raises(SourceUnreachable, match="HTTP 500 .*after 2 attempts"):
            get_allowing_404(make_session(), URL, SETTINGS)
