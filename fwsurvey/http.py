"""HTTP plumbing shared by the collectors: one session, retries with backoff, clean errors.

Retries are done with tenacity around each request (not inside urllib3) so that every
attempt goes through ``requests``' adapter and can be observed and faked in tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from fwsurvey import __version__
from fwsurvey.config import SourceSettings
from fwsurvey.sources import Reachability, SourceUnreachable

T = TypeVar("T")

USER_AGENT = f"fwsurvey/{__version__} (+framework survey; requests/{requests.__version__})"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def make_session() -> requests.Session:
    """A requests session with fwsurvey's User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def is_transient(exc: BaseException) -> bool:
    """Connection faults, timeouts and retryable HTTP statuses are worth another try."""
    if isinstance(exc, requests.HTTPError):
        return exc.response is not None and exc.response.status_code in RETRY_STATUSES
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def describe(exc: BaseException) -> str:
    """One line about a request failure, without query strings (which may carry secrets)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        r = exc.response
        return f"HTTP {r.status_code} {r.reason or ''} from {redact_url(r.url)}".replace("  ", " ")
    if isinstance(exc, requests.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        # The innermost reason is the useful part ("Name or service not known", ...).
        reason = exc.args[0] if exc.args else exc
        text = str(getattr(reason, "reason", reason))
        return f"connection failed: {text}"
    return f"{type(exc).__name__}: {exc}"


def redact_url(url: str | None) -> str:
    """Drop query string, fragment and credentials from a URL before it is logged or stored."""
    if not url:
        return ""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def call_with_retries(
    settings: SourceSettings,
    fn: Callable[[], T],
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Call ``fn``; retry transient failures up to ``settings.retries`` attempts in all.

    Raises SourceUnreachable when the last attempt still fails transiently; other
    exceptions (a 404, a parse error) propagate at once.
    """

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            on_retry(state.attempt_number, state.outcome.exception())

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(settings.retries),
        wait=wait_exponential(multiplier=settings.backoff, max=60),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
        if not is_transient(exc):
            raise
        raise SourceUnreachable(f"{describe(exc)} (after {settings.retries} attempts)") from exc


def get_allowing_404(
    session: requests.Session,
    url: str,
    settings: SourceSettings,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> requests.Response:
    """GET a JSON resource with retries. A 404 comes back as a response (the caller says
    what is missing); other HTTP errors raise, transient ones after the retries."""

    def get() -> requests.Response:
        response = session.get(url, timeout=settings.timeout,
                               headers={"Accept": "application/json"})
        if response.status_code != 404:
            response.raise_for_status()
        return response

    return call_with_retries(settings, get, on_retry)


def probe(session: requests.Session, url: str, settings: SourceSettings,
          method: str = "HEAD") -> Reachability:
    """One cheap request, not retried: reachable unless the connection fails or the
    server answers with a status worth retrying (429, 5xx)."""
    try:
        response = session.request(method, url, timeout=min(settings.timeout, 10),
                                   allow_redirects=True)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return Reachability(False, describe(exc))
    status = response.status_code
    return Reachability(status not in RETRY_STATUSES and status < 500,
                        f"HTTP {status} from {redact_url(url)}")


# -- rate limits (GitHub's documented headers; any API that uses them) ---------------------


class RateLimitExceeded(Exception):
    """A rate limit whose wait would pass ``max_wait`` (or whose retries are spent).

    ``reset_at`` is the ISO time the limit resets, when the server said so.
    """

    def __init__(self, message: str, reset_at: str | None = None):
        super().__init__(message)
        self.reset_at = reset_at


@dataclass
class RateLimits:
    """How long to wait for a rate limit, and how often.

    ``max_wait`` caps one wait (a longer one raises :class:`RateLimitExceeded`, so a run
    never sleeps for an hour); ``secondary_wait`` is the first wait when the server gives no
    time (GitHub: "wait at least one minute"), doubled on each further try; ``tries`` bounds
    the rate-limited answers per request. ``sleep`` and ``clock`` are faked by tests.
    """

    max_wait: float = 60.0
    secondary_wait: float = 60.0
    tries: int = 4
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


def rate_limit_wait(response: requests.Response, limits: RateLimits,
                    attempt: int = 1) -> float | None:
    """Seconds to wait before asking again, or None when ``response`` is no rate limit.

    GitHub's rules (REST docs, "rate limits"): ``Retry-After`` first; then, with
    ``x-ratelimit-remaining: 0``, until ``x-ratelimit-reset``; otherwise a 429, or a 403
    whose message names a (secondary) rate limit, waits at least a minute, growing
    exponentially. Any other 403 (permissions, a too-large list) is not a rate limit.
    """
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    retry_after = (headers.get("Retry-After") or "").strip()
    if retry_after.isdigit():
        return float(retry_after)
    backoff = limits.secondary_wait * 2 ** (attempt - 1)
    if headers.get("X-RateLimit-Remaining") == "0":
        reset = (headers.get("X-RateLimit-Reset") or "").strip()
        if reset.isdigit():
            return max(0.0, int(reset) - limits.clock()) + 1.0
        return backoff
    if response.status_code == 429:
        return backoff
    try:
        text = response.text[:4000].lower()
    except (UnicodeDecodeError, requests.RequestException):
        text = ""
    return backoff if "rate limit" in text else None


def reset_time(response: requests.Response) -> str | None:
    """The ISO time a primary rate limit resets (``X-RateLimit-Reset``), if given."""
    reset = (response.headers.get("X-RateLimit-Reset") or "").strip()
    if not reset.isdigit():
        return None
    return datetime.fromtimestamp(int(reset), UTC).isoformat(timespec="seconds")


def get_with_limits(
    session: requests.Session,
    url: str,
    settings: SourceSettings,
    limits: RateLimits,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    what: str = "",
) -> requests.Response:
    """GET ``url``: transient faults retried, rate limits waited for (bounded).

    Returns the first answer that is neither transient nor a rate limit, whatever its
    status (the caller decides what a 404, 409 or 403 means for its item). Raises
    :class:`RateLimitExceeded` when a wait would pass ``limits.max_wait`` or the rate-limited
    tries are spent, and :class:`SourceUnreachable` when ``settings.retries`` attempts all
    failed with a connection fault, a timeout or a 5xx.
    """
    label = what or redact_url(url)
    attempt = limited = 0
    while True:
        attempt += 1
        try:
            response = session.get(url, params=params, headers=headers,
                                   timeout=settings.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt >= settings.retries:
                raise SourceUnreachable(f"{describe(exc)} (after {settings.retries} attempts)"
                                        ) from exc
            limits.sleep(min(settings.backoff * 2 ** (attempt - 1), 60.0))
            continue
        wait = rate_limit_wait(response, limits, limited + 1)
        if wait is not None:
            limited += 1
            attempt -= 1  # a rate limit is no failed attempt
            reset = reset_time(response)
            if wait > limits.max_wait or limited >= limits.tries:
                raise RateLimitExceeded(
                    f"rate limit exhausted while fetching {label}"
                    + (f"; resets at {reset}" if reset else "")
                    + (f" (a wait of {wait:.0f} s passes max_rate_limit_wait)"
                       if wait > limits.max_wait else f" ({limited} rate-limited answers)"),
                    reset)
            limits.sleep(wait)
            continue
        if response.status_code >= 500 or response.status_code == 429:
            if attempt >= settings.retries:
                raise SourceUnreachable(
                    f"HTTP {response.status_code} {response.reason or ''} from "
                    f"{redact_url(response.url or url)} (after {settings.retries} attempts)"
                    .replace("  ", " "))
            limits.sleep(min(settings.backoff * 2 ** (attempt - 1), 60.0))
            continue
        return response
