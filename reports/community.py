"""The "Community & ecosystem" section: PyPI releases, GitHub activity, git history,
downloads, documentation and the CHAOSS metrics, each with its trend across runs.

Everything comes from the store, as of the run shown. When a source did not answer in that
run the section says "not collected in this run" and shows the newest data the database
holds, with its date: never zeros.
"""

from __future__ import annotations

from typing import Any

from fwsurvey.reports.charts import monthly_chart, releases_chart
from fwsurvey.reports.sections import SectionInput

RELEASES_CHART = "releases.png"
COMMITS_CHART = "commits-per-month.png"

#: Metrics shown, in order, with a label; the unit and window come from the rows.
METRICS = (
    ("github", "time_to_first_response_median", "Time to first response, median"),
    ("github", "time_to_first_response_p90", "Time to first response, 90th percentile"),
    ("github", "issue_age_median", "Age of all open issues at the data's time, median"),
    ("github", "change_request_closure_ratio", "Pull requests closed per pull request opened"),
    ("github", "contributor_absence_factor_all_time",
     "Contributor absence factor (GitHub, all time)"),
    ("git", "contributor_absence_factor_all_time", "Contributor absence factor (git, all time)"),
    ("git", "contributor_absence_factor_365d", "Contributor absence factor (git, last 365 days)"),
    ("git", "commits_in_window", "Commits (git)"),
    ("git", "active_authors_in_window", "Active authors (git)"),
    ("github", "releases_in_window", "GitHub releases"),
    ("github", "median_days_between_releases", "Median days between GitHub releases"),
    ("github", "maintained_score", "Maintained (Scorecard-style)"),
)
NOT_COLLECTED = ("unreachable", "error")


def community_section(inp: SectionInput) -> dict[str, Any]:
    """Every community table's newest rows as of the run, trends, and the charts."""
    names = inp.names()
    order = {key: i for i, key in enumerate(inp.config.frameworks)}
    pypi = _pypi(inp, names, order)
    github = _github(inp, names, order)
    git = _git(inp, names, order)
    downloads = _downloads(inp, names, order)
    docs = _docs(inp, names, order)
    metrics = _metrics(inp, names, order)
    orgs = _org_shares(inp, names, order)
    measured = any(part["rows"] for part in (pypi, github, git, downloads, docs))
    return {"measured": measured or bool(metrics["rows"]), "pypi": pypi, "github": github,
            "git": git, "downloads": downloads, "docs": docs, "metrics": metrics,
            "orgs": orgs}


def _configured(rows: list[dict], names: dict[str, str], order: dict[str, int],
                *keys: str) -> list[dict]:
    """Rows of frameworks configured now, in configuration order, with display names."""
    kept = sorted((r for r in rows if r["framework"] in order),
                  key=lambda r: (order[r["framework"]], *(r[k] for k in keys)))
    for r in kept:
        r["framework_name"] = names[r["framework"]]
    return kept


def _status(inp: SectionInput, source: str, rows: list[dict]) -> dict[str, Any]:
    outcome = inp.source_outcome(source)
    errors = inp.store.query(
        "SELECT item, kind, message FROM item_errors WHERE run_id = ? AND stage = 'collect'"
        " AND source = ? ORDER BY id", [inp.run_id, source]) if outcome else []
    return {
        "this_run": outcome,
        "errors": errors,
        "not_collected": bool(outcome and outcome["status"] in NOT_COLLECTED),
        "newest_fetched_at": max((r["fetched_at"] for r in rows), default=None),
    }


def _first_snapshots(inp: SectionInput, table: str, key: str) -> dict[str, dict]:
    """The oldest row per ``key`` of a history table, as of the run shown (the trend's start)."""
    rows = inp.store.query(
        f'SELECT t.* FROM "{table}" t JOIN (SELECT "{key}", MIN(run_id) AS run_id'
        f' FROM "{table}" WHERE run_id <= ? GROUP BY "{key}") first USING ("{key}", run_id)',
        [inp.run_id])
    return {r[key]: r for r in rows}


def _pypi(inp: SectionInput, names, order) -> dict[str, Any]:
    packages = _configured(inp.latest_as_of_run("pypi_packages", "package"), names, order,
                           "package")
    chart = None
    if packages:
        frameworks = {p["framework"] for p in packages}
        releases = inp.store.query(
            "SELECT framework, uploaded_at FROM pypi_releases WHERE is_prerelease = 0"
            " AND yanked = 0 AND uploaded_at IS NOT NULL AND first_run_id <= ?"
            " ORDER BY uploaded_at", [inp.run_id])
        releases_chart(
            [(names[r["framework"]], r["uploaded_at"]) for r in releases
             if r["framework"] in frameworks],
            inp.out_dir / RELEASES_CHART,
            title=f"Final releases on PyPI (run {inp.run_id})",
            order=[names[k] for k in inp.config.frameworks],
        )
        chart = RELEASES_CHART
    return {"rows": packages, "packages": packages, "chart": chart,
            **_status(inp, "pypi", packages)}


def _github(inp: SectionInput, names, order) -> dict[str, Any]:
    repos = _configured(inp.latest_as_of_run("github_repos", "repo"), names, order, "repo")
    first = _first_snapshots(inp, "github_repos", "repo")
    for r in repos:
        then = first.get(r["repo"])
        r["trend"] = then if then and then["run_id"] != r["run_id"] else None
    return {"rows": repos, **_status(inp, "github", repos)}


def _git(inp: SectionInput, names, order) -> dict[str, Any]:
    clones = _configured(inp.latest_as_of_run("git_repos", "framework"), names, order)
    chart = None
    if clones:
        keys = {c["framework"] for c in clones}
        monthly = inp.store.query(
            # Reachable, non-merge commits: what git_monthly_activity counts.
            "SELECT framework, substr(committed_at, 1, 7) AS month, count(*) AS commits"
            " FROM git_commits WHERE first_run_id <= ? AND COALESCE(reachable, 1) = 1"
            " AND COALESCE(parents, 1) <= 1 GROUP BY framework, month"
            " ORDER BY framework, month", [inp.run_id])
        series: dict[str, list[tuple[str, int]]] = {names[k]: [] for k in inp.config.frameworks
                                                    if k in keys}
        for m in monthly:
            if m["framework"] in keys:
                series[names[m["framework"]]].append((m["month"], m["commits"]))
        series = {name: _fill_months(points) for name, points in series.items()}
        monthly_chart(series, inp.out_dir / COMMITS_CHART,
                      title=f"Commits per month in the local clones (run {inp.run_id})",
                      ylabel="commits")
        chart = COMMITS_CHART
    return {"rows": clones, "chart": chart, **_status(inp, "git", clones)}


def _org_shares(inp: SectionInput, names, order) -> dict[str, Any]:
    """Who backs each framework: commit and author shares by organisation, as of the run."""
    rows = [dict(r, framework_name=names[r["framework"]])
            for r in inp.latest_as_of_run("community_org_shares", "framework")
            if r["framework"] in order]
    rows.sort(key=lambda r: (order[r["framework"]], r["period"] != "all_time", -r["commits"],
                             r["org"]))
    return {"rows": rows, "basis": rows[0]["basis"] if rows else None}


def _fill_months(points: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Monthly counts with the months in between that had none (every commit is stored)."""
    if not points:
        return points
    counts = dict(points)
    year, month = map(int, points[0][0].split("-"))
    filled = []
    while f"{year:04d}-{month:02d}" <= points[-1][0]:
        key = f"{year:04d}-{month:02d}"
        filled.append((key, counts.get(key, 0)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return filled


def _downloads(inp: SectionInput, names, order) -> dict[str, Any]:
    rows = _configured(inp.latest_as_of_run("downloads", "package"), names, order, "package")
    first = _first_snapshots(inp, "downloads", "package")
    for r in rows:
        then = first.get(r["package"])
        r["trend"] = then if then and then["run_id"] != r["run_id"] else None
    return {"rows": rows, **_status(inp, "downloads", rows)}


def _docs(inp: SectionInput, names, order) -> dict[str, Any]:
    rows = inp.store.query(
        "SELECT d.* FROM docs_metrics d JOIN (SELECT framework, origin, MAX(run_id) AS run_id"
        " FROM docs_metrics WHERE run_id <= ? GROUP BY framework, origin) latest"
        " USING (framework, origin, run_id)", [inp.run_id])
    rows = _configured(rows, names, order, "origin")
    by_framework: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = by_framework.setdefault(r["framework"], {"framework_name": r["framework_name"],
                                                         "site": None, "clone": None})
        entry[r["origin"]] = r
    return {"rows": rows, "frameworks": list(by_framework.values()),
            **_status(inp, "docs", rows)}


def _metrics(inp: SectionInput, names, order) -> dict[str, Any]:
    rows = inp.store.query(
        "SELECT m.* FROM community_metrics m JOIN (SELECT source, item, metric,"
        " MAX(run_id) AS run_id FROM community_metrics WHERE run_id <= ?"
        " GROUP BY source, item, metric) latest USING (source, item, metric, run_id)",
        [inp.run_id])
    rows = [r for r in rows if r["framework"] in order]
    present = [k for k in inp.config.frameworks if any(r["framework"] == k for r in rows)]
    table = []
    for source, metric, label in METRICS:
        found = {r["framework"]: r for r in rows
                 if r["source"] == source and r["metric"] == metric}
        if not found:
            continue
        sample = next(iter(found.values()))
        table.append({
            "label": label, "source": source, "metric": metric, "unit": sample["unit"],
            "window": _window(sample), "basis": sample["basis"],
            "cells": [_cell(found.get(k)) for k in present],
        })
    return {"rows": table, "frameworks": [names[k] for k in present]}


COUNT_UNITS = {"contributors", "commits", "authors", "releases"}


def _cell(row: dict[str, Any] | None) -> str:
    """A metric as shown: value (n=sample size); "—" where there is nothing to show."""
    if row is None:
        return "—"
    value = row["value"]
    if value is None:
        text = "—"
    elif row["unit"] in COUNT_UNITS:
        text = f"{round(value):,}"
    elif row["unit"] == "ratio":
        text = f"{value:.2f}"
    else:
        text = f"{value:,.1f}"
    if row["sample_size"] is not None:
        text = f"{text} (n={row['sample_size']:,})"
    shares = [f"{label} {row[key]:.0%}" for key, label in
              (("answered_share", "answered"), ("looked_up_share", "looked up"))
              if row.get(key) is not None]
    return f"{text}; {', '.join(shares)}" if shares else text


def _window(row: dict[str, Any]) -> str:
    if not row["window_start"]:
        return "all history"
    return f"{row['window_start'][:10]} to {row['window_end'][:10]}"
