"""Downloads: PyPI download statistics from the pypistats API, with their date range.

pypistats.org aggregates the public BigQuery dataset of PyPI downloads: recent totals (last
day, week and month) and a daily series of about 180 days. The series is recorded without
mirrors (``mirrors=false``); each day is a row of ``downloads_daily``, and each run's
snapshot in ``downloads`` states the range the series covers. The endpoint is pypistats'
own (``pypistats.BASE_URL``).

Packages are named by their normalised name (PEP 503), as the pypi source stores them. The
API's rate limit is waited for (``Retry-After``, bounded by ``max_rate_limit_wait``); a limit
that outlasts it stops the source (the rest would hit it too) and an unexpected status fails
only its package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pypistats

from fwsurvey.collectors.pypi import package_items
from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.http import (
    RateLimitExceeded,
    RateLimits,
    get_with_limits,
    make_session,
    probe,
    redact_url,
)
from fwsurvey.sources import (
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Reachability,
    Record,
    SourceOptions,
)

log = logging.getLogger(__name__)


class DownloadsOptions(SourceOptions):
    """``[sources.downloads]``'s own keys."""

    #: The pypistats API; default: pypistats' own endpoint.
    api_url: str = pypistats.BASE_URL
    #: Longest wait for the API's rate limit (Retry-After); a longer one stops the source.
    max_rate_limit_wait: float = 60.0


class DownloadsCollector(Collector):
    """Tables ``downloads`` (history) and ``downloads_daily``."""

    name = "downloads"
    title = "PyPI download statistics (pypistats)"
    Options = DownloadsOptions
    options: DownloadsOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None,
                 now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] | None = None):
        super().__init__(config, settings)
        self.api_url = self.options.api_url
        if not self.api_url.endswith("/"):
            self.api_url += "/"
        self.now = now or (lambda: datetime.now(UTC))
        self.session = make_session()
        wait = self.options.max_rate_limit_wait
        self.limits = RateLimits(max_wait=wait, secondary_wait=min(max(self.settings.backoff, 1.0),
                                                                    wait),
                                 tries=max(self.settings.retries, 2), sleep=sleep or time.sleep)

    def items(self) -> list[Item]:
        return package_items(self.config)

    def _get(self, path: str) -> dict[str, Any]:
        url = self.api_url + path

        try:
            response = get_with_limits(self.session, url, self.settings, self.limits,
                                       headers={"Accept": "application/json"})
        except RateLimitExceeded as exc:
            # The limit is the API's, not the package's: the next packages would wait too.
            raise PartialItem(str(exc), [], stop_source=True) from None
        if response.status_code == 404:
            raise ItemNotFound(f"pypistats has no package at {redact_url(url)}")
        response.raise_for_status()  # another 4xx fails this package only (HTTPError)
        try:
            return response.json()
        except ValueError:
            raise ItemNotFound(f"unexpected answer from {redact_url(url)}: not JSON") from None

    def fetch(self, item: Item) -> list[Record]:
        package = item.key
        recent = self._get(f"packages/{package}/recent").get("data") or {}
        overall = self._get(f"packages/{package}/overall?mirrors=false").get("data") or []
        fetched_at = self.now().isoformat(timespec="seconds")
        daily = sorted((d["date"], int(d["downloads"])) for d in overall
                       if d.get("category") == "without_mirrors")
        records = [Record("downloads_daily", {"package": item.key, "framework": item.framework,
                                              "date": date, "downloads": count,
                                              "fetched_at": fetched_at})
                   for date, count in daily]
        records.append(Record("downloads", {
            "package": item.key,
            "framework": item.framework,
            "fetched_at": fetched_at,
            "last_day": recent.get("last_day"),
            "last_week": recent.get("last_week"),
            "last_month": recent.get("last_month"),
            "series_start": daily[0][0] if daily else None,
            "series_end": daily[-1][0] if daily else None,
            "series_days": len(daily),
            "series_total": sum(count for _, count in daily),
        }))
        return records

    def check(self) -> Reachability:
        items = self.items()
        if not items:
            return Reachability(True, "no packages configured")
        url = f"{self.api_url}packages/{items[0].key}/recent"
        return probe(self.session, url, self.settings, method="GET")

    def close(self) -> None:
        self.session.close()

