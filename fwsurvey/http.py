"""HTTP plumbing shared by the collectors: one session, retries with backoff, clean errors.

Retries are done with tenacity around each request (not inside urllib3) so that every
attempt goes through ``requests``' adapter and can be observed and faked in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
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
