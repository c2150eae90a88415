"""Downloads: PyPI download statistics from the pypistats API, with their date range.

pypistats.org aggregates the public BigQuery dataset of PyPI downloads: recent totals (last
day, week and month) and a daily series of about 180 days. The series is recorded without
mirrors (``mirrors=false``); each day is a row of ``downloads_daily``, and each run's
snapshot in ``downloads`` states the range the series covers. The endpoint is pypistats'
own (``pypistats.BASE_URL``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pypistats

from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.http import describe, get_allowing_404, make_session, probe, redact_url
from fwsurvey.sources import (
    Collector,
    Item,
    ItemNotFound,
    Reachability,
    Record,
    SourceOptions,
)

log = logging.getLogger(__name__)


class DownloadsOptions(SourceOptions):
    """``[sources.downloads]``'s own keys."""

    #: The pypistats API; default: pypistats' own endpoint.
    api_url: str = pypistats.BASE_URL


class DownloadsCollector(Collector):
    """Tables ``downloads`` (history) and ``downloads_daily``."""

    name = "downloads"
    title = "PyPI download statistics (pypistats)"
    Options = DownloadsOptions
    options: DownloadsOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None,
                 now: Callable[[], datetime] | None = None):
        super().__init__(config, settings)
        self.api_url = self.options.api_url
        if not self.api_url.endswith("/"):
            self.api_url += "/"
        self.now = now or (lambda: datetime.now(UTC))
        self.session = make_session()

    def items(self) -> list[Item]:
        return [Item(pkg, fw.key) for fw in self.config.frameworks.values() for pkg in fw.pypi]

    def _get(self, path: str) -> dict[str, Any]:
        url = self.api_url + path

        def note(attempt: int, exc: BaseException) -> None:
            log.warning("downloads: %s: attempt %d failed (%s); retrying", redact_url(url),
                        attempt, describe(exc))

        response = get_allowing_404(self.session, url, self.settings, note)
        if response.status_code == 404:
            raise ItemNotFound(f"pypistats has no package at {redact_url(url)}")
        try:
            return response.json()
        except ValueError:
            raise ItemNotFound(f"unexpected answer from {redact_url(url)}: not JSON") from None

    def fetch(self, item: Item) -> list[Record]:
        package = item.key.lower()
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
        url = f"{self.api_url}packages/{items[0].key.lower()}/recent"
        return probe(self.session, url, self.settings, method="GET")

    def close(self) -> None:
        self.session.close()
