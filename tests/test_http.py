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


def test_rate_limits_are_waited_for_within_the_cap():
    """429 without Retry-After and a secondary-limit 403 are retried after the secondary
    wait (doubling); a primary limit waits until its reset; a longer wait raises."""
    from fwsurvey.http import RateLimitExceeded, RateLimits, get_with_limits

    sleeps: list[float] = []
    limits = RateLimits(max_wait=60, secondary_wait=5, sleep=sleeps.append, clock=lambda: 1000.0)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=429)
        rsps.add(responses.GET, URL, status=403,
                 json={"message": "You have exceeded a secondary rate limit."})
        rsps.add(responses.GET, URL, status=403,
                 headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1030"})
        rsps.add(responses.GET, URL, json={"ok": 1})
        assert get_with_limits(make_session(), URL, SETTINGS, limits).json() == {"ok": 1}
    assert sleeps == [5, 10, 31.0]
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=403,
                 headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4102444800"})
        with pytest.raises(RateLimitExceeded, match="resets at 2100-01-01") as info:
            get_with_limits(make_session(), URL, SETTINGS, limits)
    assert info.value.reset_at == "2100-01-01T00:00:00+00:00"
    with responses.RequestsMock() as rsps:  # Retry-After beyond the cap: not waited for
        rsps.add(responses.GET, URL, status=429, headers={"Retry-After": "600"})
        with pytest.raises(RateLimitExceeded, match="max_rate_limit_wait"):
            get_with_limits(make_session(), URL, SETTINGS, limits)
    with responses.RequestsMock() as rsps:  # a plain 403 is an answer, not a rate limit
        rsps.add(responses.GET, URL, status=403, json={"message": "Resource not accessible"})
        assert get_with_limits(make_session(), URL, SETTINGS, limits).status_code == 403
        assert len(rsps.calls) == 1


def test_get_with_limits_retries_5xx_and_timeouts_then_gives_up():
    from fwsurvey.http import RateLimits, get_with_limits

    limits = RateLimits(sleep=lambda s: None)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=502)
        rsps.add(responses.GET, URL, json={"ok": 1})
        assert get_with_limits(make_session(), URL, SETTINGS, limits).json() == {"ok": 1}
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, body=requests.exceptions.ReadTimeout("slow"))
        rsps.add(responses.GET, URL, body=requests.exceptions.ReadTimeout("slow"))
        with pytest.raises(SourceUnreachable, match="timed out .*after 2 attempts"):
            get_with_limits(make_session(), URL, SETTINGS, limits)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=503)
        rsps.add(responses.GET, URL, status=503)
        with pytest.raises(SourceUnreachable, match="HTTP 503 .*after 2 attempts"):
            get_with_limits(make_session(), URL, SETTINGS, limits)
