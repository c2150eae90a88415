"""CHAOSS community metrics as pure functions, shared by the GitHub and git-history sources.

Each function takes plain rows (dicts with ISO 8601 times) and a window, and returns the
number with what it was computed from, so the caller can store the window and sample size
next to the value (table ``community_metrics``). Definitions follow CHAOSS
(https://chaoss.community/kb-metrics-and-metrics-models/) and, for "maintained", the
OpenSSF Scorecard check of that name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Scorecard's "Maintained" looks back 90 days and wants about one activity a week.
MAINTAINED_LOOKBACK_DAYS = 90


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def last_days(cls, end: datetime, days: int) -> Window:
        return cls(end - timedelta(days=days), end)

    def __contains__(self, when: datetime | str | None) -> bool:
        if when is None:
            return False
        when = parse_time(when) if isinstance(when, str) else when
        return self.start <= when < self.end

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


@dataclass(frozen=True)
class Metric:
    """One metric value with the window and the number of things it was computed from."""

    name: str
    value: float | None
    unit: str
    window: Window | None
    sample_size: int | None
    basis: str


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` suffix accepted) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as ``numpy.percentile``'s default: for [1, 2, 3, 4], the median is
    2.5 and the 90th percentile 3.7.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def is_bot(login: str | None, user_type: str | None = None) -> bool:
    """GitHub marks apps as type ``Bot``; their logins end in ``[bot]``."""
    return user_type == "Bot" or bool(login and login.endswith("[bot]"))


def first_response(author: str | None, comments: Iterable[dict[str, Any]]) -> dict | None:
    """The earliest comment that is neither by the issue's author nor by a bot."""
    answers = [c for c in comments
               if c.get("login") != author and not is_bot(c.get("login"), c.get("type"))]
    return min(answers, key=lambda c: parse_time(c["created_at"]), default=None)


def time_to_first_response(issues: Iterable[dict[str, Any]], window: Window) -> list[Metric]:
    """Median and 90th percentile of hours from opening to the first response.

    Over issues and pull requests opened in ``window`` that have had a response
    (``first_response_at`` set); replies by the author and by bots were excluded upstream
    (:func:`first_response`).
    """
    hours = [(parse_time(i["first_response_at"]) - parse_time(i["created_at"])).total_seconds()
             / 3600 for i in issues
             if i["created_at"] in window and i.get("first_response_at")]
    basis = "issues and pull requests opened in the window with a response"
    return [
        Metric("time_to_first_response_median", _round(percentile(hours, 50)), "hours",
               window, len(hours), basis),
        Metric("time_to_first_response_p90", _round(percentile(hours, 90)), "hours",
               window, len(hours), basis),
    ]


def issue_age(issues: Iterable[dict[str, Any]], window: Window) -> Metric:
    """Median age in days, at the window's end, of issues opened in the window still open."""
    ages = [(window.end - parse_time(i["created_at"])).total_seconds() / 86400
            for i in issues
            if not i["is_pull_request"] and i["state"] == "open" and i["created_at"] in window]
    return Metric("issue_age_median", _round(percentile(ages, 50)), "days", window, len(ages),
                  "issues opened in the window and still open at its end")


def change_request_closure_ratio(issues: Iterable[dict[str, Any]], window: Window) -> Metric:
    """Pull requests closed (merged or not) in the window per pull request opened in it."""
    pulls = [i for i in issues if i["is_pull_request"]]
    opened = sum(1 for p in pulls if p["created_at"] in window)
    closed = sum(1 for p in pulls if p.get("closed_at") in window)
    return Metric("change_request_closure_ratio",
                  _round(closed / opened, 3) if opened else None, "ratio", window, opened,
                  "pull requests closed in the window / opened in the window")


def contributor_absence_factor(contributions: Iterable[int], basis: str,
                               window: Window | None = None) -> Metric:
    """The fewest contributors who together made 50% of the contributions (bus factor)."""
    counts = sorted((c for c in contributions if c > 0), reverse=True)
    total = sum(counts)
    factor = None
    if total:
        running = 0
        for index, count in enumerate(counts, start=1):
            running += count
            if running * 2 >= total:
                factor = index
                break
    return Metric("contributor_absence_factor", factor, "contributors", window, len(counts),
                  basis)


def release_frequency(release_times: Iterable[str | None], window: Window) -> list[Metric]:
    """Releases published in the window, and the median days between consecutive releases."""
    times = sorted(parse_time(t) for t in release_times if t)
    in_window = [t for t in times if t in window]
    gaps = [(b - a).total_seconds() / 86400 for a, b in zip(in_window, in_window[1:],
                                                               strict=False)]
    basis = "published, non-draft releases"
    return [
        Metric("releases_in_window", len(in_window), "releases", window, len(in_window), basis),
        Metric("median_days_between_releases", _round(percentile(gaps, 50)), "days", window,
               len(gaps), basis),
    ]


def maintained(commits: int | None, issue_activity: int, archived: bool,
               created_at: str | None, window: Window) -> Metric:
    """Scorecard's "Maintained" signal, 0-10: activity in the last 90 days.

    Activity is commits plus issues and pull requests updated in the window; 13 (one a week)
    or more scores 10. An archived repository, or one created within the window, scores 0.
    """
    activity = (commits or 0) + issue_activity
    if archived or (created_at and created_at in window):
        score = 0.0
    else:
        score = min(10.0, activity * 10 / 13)
    return Metric("maintained_score", _round(score, 1), "score 0-10", window, activity,
                  "commits + issues/pull requests updated in the last 90 days"
                  + (" (archived)" if archived else ""))


def metric_row(metric: Metric, item: str, framework: str, fetched_at: str) -> dict[str, Any]:
    """A ``community_metrics`` row."""
    return {
        "item": item,
        "framework": framework,
        "fetched_at": fetched_at,
        "metric": metric.name,
        "value": metric.value,
        "unit": metric.unit,
        "window_start": _iso(metric.window.start) if metric.window else None,
        "window_end": _iso(metric.window.end) if metric.window else None,
        "sample_size": metric.sample_size,
        "basis": metric.basis,
    }


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
