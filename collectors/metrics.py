"""Community metrics computed in SQL from the stored items, at the start of the claims stage.

The collectors only fetch and store (issues, first responses, releases, contributors,
commits); the unit here reads those tables and writes ``community_metrics`` (one row per
source, item and metric) and ``community_org_shares`` (who backs a framework). Because the
numbers come from the store, ``fwsurvey claims`` recomputes them with no network after a
change of definition or of ``[community]`` (a bot added to the list changes the median at
once), as GrimoireLab and Augur compute from their stored items.

Three rules hold for every metric:

* **The window ends at the time of the data**, the latest fetch of that source for that item
  (``fetched_at`` of the row says which), never the wall clock: re-running the claims a
  month later gives the same numbers.
* **Unknown stays unknown.** A value that cannot be computed is NULL with the reason in
  ``basis`` (commits not yet computed by GitHub, no upload times), never a stand-in zero;
  items that were not looked up are not dropped silently: they lower ``looked_up_share``.
* **Machines do not count.** Bots (:mod:`fwsurvey.collectors.bots`, SQL ``is_bot``) are
  excluded as responders, authors and contributors; git merge commits and commits no longer
  reachable from the tracked refs (a force-push) are excluded too, as GitHub's own
  statistics exclude merges.

Definitions follow CHAOSS (https://chaoss.community/kb-metrics-and-metrics-models/) and, for
``maintained_score``, the OpenSSF Scorecard check "Maintained".
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fwsurvey.collectors.bots import BotRules
from fwsurvey.config import CommunityTable, SurveyConfig
from fwsurvey.sources import Record
from fwsurvey.stage import StageContext, Tally, Unit

SOURCE = "community_metrics"
#: Scorecard counts issue activity only by these GitHub author associations.
COLLABORATORS = ("OWNER", "MEMBER", "COLLABORATOR")
#: Scorecard's "Maintained": about one activity a week over the look-back scores 10.
MAINTAINED_FULL_ACTIVITY = 13

AS_OF = ("the window ends at the time of the data ({as_of}, the latest {source} fetch of this"
         " item), not the wall clock, so a later re-run gives the same number")


# -- pure helpers ----------------------------------------------------------------------------

def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` suffix accepted) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def iso(when: datetime) -> str:
    """The store's time format: UTC ISO 8601 with seconds."""
    return when.astimezone(UTC).isoformat(timespec="seconds")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks (``numpy.percentile``'s
    default): for [1, 2, 3, 4] the median is 2.5 and the 90th percentile 3.7."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


class _Percentile:
    """SQL aggregate ``percentile(value, q)``; NULL values are skipped."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.q = 50.0

    def step(self, value: float | None, q: float) -> None:
        self.q = q
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        return percentile(self.values, self.q)


@dataclass(frozen=True)
class OrgRules:
    """The organisation behind an e-mail address, from its domain.

    A domain (or a parent domain: ``research.google.com`` → ``google.com``) named in
    ``[community.organizations]`` gives that organisation; a mail provider of individuals
    gives ``independent``; a no-reply or missing address gives ``unknown``; any other domain
    stands for itself (``tensorflow.org``), so nothing is attributed by guesswork.
    """

    organizations: dict[str, str]
    personal: frozenset[str]
    unknown: frozenset[str]

    @classmethod
    def from_config(cls, config: SurveyConfig | CommunityTable) -> OrgRules:
        table = config if isinstance(config, CommunityTable) else config.community
        return cls(dict(table.organizations), frozenset(table.personal_domains),
                   frozenset(table.unknown_domains))

    def org_of(self, email: str | None) -> str:
        domain = (email or "").strip().lower().rpartition("@")[2] if "@" in (email or "") else ""
        if not domain:
            return "unknown"
        parts = domain.split(".")
        suffixes = [".".join(parts[i:]) for i in range(len(parts))]
        if any(s in self.unknown for s in suffixes):
            return "unknown"
        for s in suffixes:
            if s in self.organizations:
                return self.organizations[s]
        if any(s in self.personal for s in suffixes):
            return "independent"
        return domain


def register(conn: sqlite3.Connection, config: SurveyConfig | CommunityTable) -> None:
    """The SQL functions the metric SQL calls: ``is_bot``, ``org_of``, ``percentile``."""
    BotRules.from_config(config).register(conn)
    orgs = OrgRules.from_config(config)
    conn.create_function("org_of", 1, orgs.org_of, deterministic=True)
    conn.create_aggregate("percentile", 2, _Percentile)


# -- the metrics -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """[start, end): ``start`` is None for all-time metrics."""

    start: datetime | None
    end: datetime

    @classmethod
    def last_days(cls, end: datetime, days: int) -> Window:
        return cls(end - timedelta(days=days), end)

    def params(self) -> dict[str, str | None]:
        return {"start": iso(self.start) if self.start else None, "end": iso(self.end)}


def _in_window(column: str) -> str:
    return (f"julianday({column}) >= julianday(:start)"
            f" AND julianday({column}) < julianday(:end)")


class _Computer:
    """The rows of one computation: every metric of every configured item."""

    def __init__(self, conn: sqlite3.Connection, config: SurveyConfig):
        self.conn = conn
        self.config = config
        self.community = config.community

    # -- SQL plumbing ----------------------------------------------------------------------

    def one(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        return dict(zip(names, row, strict=True)) if row else dict.fromkeys(names)

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')}

    def as_of(self, sql: str, params: dict[str, Any]) -> datetime | None:
        """The newest of the times ``sql`` returns (one column), parsed."""
        times = [parse_time(r[0]) for r in self.conn.execute(sql, params) if r[0]]
        return max(times, default=None)

    @staticmethod
    def metric(source: str, item: str, framework: str, as_of: datetime, name: str,
               value: float | None, unit: str, window: Window | None, sample_size: int | None,
               basis: str, definition: str, answered_share: float | None = None,
               looked_up_share: float | None = None) -> Record:
        return Record("community_metrics", {
            "source": source, "item": item, "framework": framework, "fetched_at": iso(as_of),
            "metric": name, "value": value, "unit": unit,
            "window_start": iso(window.start) if window and window.start else None,
            "window_end": iso(window.end) if window else None,
            "sample_size": sample_size, "basis": basis, "definition": definition,
            "answered_share": answered_share, "looked_up_share": looked_up_share})

    # -- GitHub ----------------------------------------------------------------------------

    def github(self, framework: str, repo: str) -> list[Record]:
        as_of = self.as_of(
            "SELECT MAX(fetched_at) FROM github_repos WHERE repo = :repo UNION ALL"
            " SELECT MAX(fetched_at) FROM github_issues WHERE repo = :repo", {"repo": repo})
        if as_of is None:
            return []
        when = AS_OF.format(as_of=iso(as_of), source="GitHub")
        c = self.community
        issues = Window.last_days(as_of, c.issue_window_days)
        year = Window.last_days(as_of, c.activity_window_days)
        lookback = Window.last_days(as_of, c.maintained_days)
        snapshot = self.one("SELECT * FROM github_repos WHERE repo = :repo"
                            " ORDER BY run_id DESC LIMIT 1", {"repo": repo})

        def m(*args: Any, **kwargs: Any) -> Record:
            return self.metric("github", repo, framework, as_of, *args, **kwargs)

        out = [*self._first_response(m, repo, issues, when),
               self._issue_age(m, repo, as_of, snapshot, when),
               self._closure_ratio(m, repo, issues, when),
               *self._github_releases(m, repo, year, when),
               self._github_absence(m, repo, snapshot, when),
               self._maintained(m, repo, lookback, snapshot, when)]
        return out

    def _first_response(self, m, repo: str, window: Window, when: str) -> list[Record]:
        has_checked = "responses_checked_at" in self.columns("github_issues")
        checked = "i.responses_checked_at" if has_checked else "NULL"
        row = self.one(f"""
            WITH items AS (
                SELECT i.number, i.author, i.created_at, {checked} AS checked
                FROM github_issues i
                WHERE i.repo = :repo AND {_in_window('i.created_at')}
                  AND NOT is_bot(i.author, NULL, CASE WHEN i.author_is_bot THEN 'Bot' END)
            ), firsts AS (
                SELECT it.checked, (
                    SELECT MIN(julianday(r.responded_at)) FROM github_responses r
                    WHERE r.repo = :repo AND r.number = it.number
                      AND r.responder IS NOT it.author
                      AND NOT is_bot(r.responder, NULL, r.responder_type)
                ) - julianday(it.created_at) AS days
                FROM items it
            )
            SELECT count(*) AS items, count(checked) AS looked,
                   count(CASE WHEN checked IS NOT NULL THEN days END) AS answered,
                   percentile(CASE WHEN checked IS NOT NULL THEN days * 24 END, 50) AS median,
                   percentile(CASE WHEN checked IS NOT NULL THEN days * 24 END, 90) AS p90
            FROM firsts""", {"repo": repo, **window.params()})
        items, looked, answered = row["items"], row["looked"], row["answered"]
        basis = (f"{items} issues and pull requests opened in the window by people (bots'"
                 f" excluded), {looked} with their responses looked up, {answered} answered;"
                 f" the value is over the answered ones; {when}")
        definition = ("CHAOSS Time to First Response: hours from opening to the earliest"
                      " issue comment, pull-request review or review comment by someone other"
                      " than the author and not a bot ([community] bots, bot_patterns)")
        shares = {"answered_share": _share(answered, looked),
                  "looked_up_share": _share(looked, items)}
        return [m("time_to_first_response_median", _round(row["median"]), "hours", window,
                  answered, basis, definition + "; median", **shares),
                m("time_to_first_response_p90", _round(row["p90"]), "hours", window,
                  answered, basis, definition + "; 90th percentile (linear)", **shares)]

    def _issue_age(self, m, repo: str, as_of: datetime, snapshot: dict[str, Any],
                   when: str) -> Record:
        row = self.one("""
            SELECT count(*) AS n,
                   percentile(julianday(:end) - julianday(created_at), 50) AS median
            FROM github_issues
            WHERE repo = :repo AND NOT is_pull_request AND state = 'open'
              AND julianday(created_at) < julianday(:end)""", {"repo": repo, "end": iso(as_of)})
        open_issues = snapshot.get("open_issues")
        coverage = (min(1.0, round(row["n"] / open_issues, 4)) if open_issues else None)
        basis = (f"{row['n']} open issues in the store"
                 + (f" of {open_issues} GitHub counts open" if open_issues is not None else "")
                 + f"; {when}")
        return m("issue_age_median", _round(row["median"]), "days",
                 Window(None, as_of), row["n"], basis,
                 "CHAOSS Issue Age: days from opening to the end of the window, over every"
                 " issue (not pull request) open then, whenever it was opened; median;"
                 " looked_up_share = stored open issues / GitHub's open-issue count",
                 looked_up_share=coverage)

    def _closure_ratio(self, m, repo: str, window: Window, when: str) -> Record:
        row = self.one(f"""
            SELECT count(CASE WHEN {_in_window('created_at')} THEN 1 END) AS opened,
                   count(CASE WHEN closed_at IS NOT NULL AND {_in_window('closed_at')}
                              THEN 1 END) AS closed
            FROM github_issues
            WHERE repo = :repo AND is_pull_request
              AND NOT is_bot(author, NULL, CASE WHEN author_is_bot THEN 'Bot' END)""",
                       {"repo": repo, **window.params()})
        opened, closed = row["opened"], row["closed"]
        return m("change_request_closure_ratio",
                 round(closed / opened, 3) if opened else None, "ratio", window, opened,
                 f"{closed} pull requests closed (merged or not) in the window / {opened}"
                 f" opened in it, bots' excluded; {when}",
                 "CHAOSS Change Request Closure Ratio: pull requests closed in the window per"
                 " pull request opened in it")

    def _current(self, table: str) -> str:
        """The view of the items the newest listing still saw (``<table>_current``, m013:
        deleted releases and contributors drop out), or the table where it has none."""
        views = {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'view'")}
        return f"{table}_current" if f"{table}_current" in views else table

    def _releases(self, m, times_sql: str, params: dict[str, Any], window: Window,
                  basis: str, definition: str) -> list[Record]:
        row = self.one(f"""
            WITH r AS ({times_sql}),
                 inw AS (SELECT t FROM r WHERE t >= julianday(:start) AND t < julianday(:end)),
                 gaps AS (SELECT t - LAG(t) OVER (ORDER BY t) AS gap FROM inw)
            SELECT (SELECT count(*) FROM r) AS final, (SELECT count(t) FROM r) AS timed,
                   (SELECT count(*) FROM inw) AS n, count(gap) AS gaps,
                   percentile(gap, 50) AS median
            FROM gaps""", {**params, **window.params()})
        if row["final"] and not row["timed"]:
            why = f"unknown: none of the {row['final']} final releases has a publication time; "
            return [m("releases_in_window", None, "releases", window, None, why + basis,
                      definition),
                    m("median_days_between_releases", None, "days", window, None, why + basis,
                      definition)]
        untimed = row["final"] - row["timed"]
        if untimed:
            basis = f"{untimed} final releases without a time not counted; " + basis
        return [m("releases_in_window", row["n"], "releases", window, row["n"], basis,
                  definition),
                m("median_days_between_releases", _round(row["median"]), "days", window,
                  row["gaps"], basis, definition + "; median of the gaps between consecutive"
                  " releases in the window")]

    def _github_releases(self, m, repo: str, window: Window, when: str) -> list[Record]:
        releases = self._current("github_releases")
        times = f"""SELECT julianday(g.published_at) AS t FROM {releases} g
                    WHERE g.repo = :repo AND g.kind = 'release' AND NOT COALESCE(g.draft, 0)
                      AND NOT COALESCE(g.prerelease, 0)"""
        return self._releases(m, times, {"repo": repo}, window,
                              f"published GitHub releases, drafts and pre-releases excluded;"
                              f" {when}",
                              "CHAOSS Release Frequency: final releases published in the window")

    @staticmethod
    def _absence_sql(counts_sql: str) -> str:
        """The fewest contributors who made half the contributions, over ``counts_sql``
        (columns ``who``, ``n``)."""
        return f"""
            WITH c AS ({counts_sql}),
                 o AS (SELECT n, SUM(n) OVER (ORDER BY n DESC, who ROWS UNBOUNDED PRECEDING)
                                 AS running,
                              ROW_NUMBER() OVER (ORDER BY n DESC, who) AS k,
                              SUM(n) OVER () AS total
                       FROM c WHERE n > 0)
            SELECT MIN(CASE WHEN running * 2 >= total THEN k END) AS factor,
                   count(*) AS contributors, MAX(total) AS total
            FROM o"""

    def _github_absence(self, m, repo: str, snapshot: dict[str, Any], when: str) -> Record:
        name = "contributor_absence_factor_all_time"
        definition = ("CHAOSS Contributor Absence Factor (bus factor): the fewest contributors"
                      " who together made half of the contributions")
        if not snapshot.get("contributors_complete"):
            return m(name, None, "contributors", None, None,
                     "unknown: GitHub's contributor list was not read to its end; " + when,
                     definition)
        contributors = self._current("github_contributors")
        row = self.one(self._absence_sql(f"""
            SELECT g.login AS who, g.contributions AS n FROM {contributors} g
            WHERE g.repo = :repo
              AND NOT is_bot(g.login, NULL, CASE WHEN g.is_bot THEN 'Bot' END)"""),
                       {"repo": repo})
        return m(name, row["factor"], "contributors", None, row["contributors"],
                 f"commits on the default branch per GitHub contributor, all time, bots"
                 f" excluded ({row['total'] or 0} commits; GitHub's counts include merges);"
                 f" {when}", definition)

    def _maintained(self, m, repo: str, window: Window, snapshot: dict[str, Any],
                    when: str) -> Record:
        associations = ", ".join(f"'{a}'" for a in COLLABORATORS)
        activity = self.one(f"""
            SELECT count(*) AS n FROM github_issues i
            WHERE i.repo = :repo AND (
                ({_in_window('i.created_at')} AND i.author_association IN ({associations})
                 AND NOT is_bot(i.author, NULL, CASE WHEN i.author_is_bot THEN 'Bot' END))
                OR EXISTS (SELECT 1 FROM github_responses r
                           WHERE r.repo = i.repo AND r.number = i.number
                             AND r.author_association IN ({associations})
                             AND NOT is_bot(r.responder, NULL, r.responder_type)
                             AND {_in_window('r.responded_at')}))""",
                            {"repo": repo, **window.params()})["n"]
        definition = ("OpenSSF Scorecard Maintained, 0-10: (commits + issues with activity by"
                      f" collaborators or above) in the window, {MAINTAINED_FULL_ACTIVITY} or"
                      " more scoring 10; archived or newly created repositories score 0")
        status = snapshot.get("commit_activity_status")
        commits = snapshot.get("commits_last_13_weeks") if status == "ok" else None
        issue_part = (f"{activity} issues and pull requests opened or answered by an owner,"
                      " member or collaborator (not a bot) in the window; only each"
                      " responder's first response is stored, so this is a lower bound")
        if commits is None:
            return m("maintained_score", None, "score 0-10", window, None,
                     f"unknown: GitHub's commit statistics were {status or 'never read'!s}"
                     f" at the latest fetch, so commits in the window are unknown; {issue_part};"
                     f" {when}", definition)
        created = snapshot.get("created_at")
        young = bool(created and parse_time(created) >= window.start)  # type: ignore[operator]
        archived = bool(snapshot.get("archived"))
        total = commits + activity
        score = 0.0 if archived or young else min(10.0, total * 10 / MAINTAINED_FULL_ACTIVITY)
        notes = " (archived: 0)" if archived else " (created in the window: 0)" if young else ""
        return m("maintained_score", round(score, 1), "score 0-10", window, total,
                 f"{commits} commits (GitHub's statistics, last 13 weeks) + {issue_part}"
                 f"{notes}; {when}", definition)

    # -- PyPI ------------------------------------------------------------------------------

    def pypi(self, framework: str, package: str) -> list[Record]:
        as_of = self.as_of(
            "SELECT MAX(fetched_at) FROM pypi_packages WHERE package = :p UNION ALL"
            " SELECT MAX(fetched_at) FROM pypi_releases WHERE package = :p", {"p": package})
        if as_of is None:
            return []
        when = AS_OF.format(as_of=iso(as_of), source="package index")
        window = Window.last_days(as_of, self.community.activity_window_days)

        def m(*args: Any, **kwargs: Any) -> Record:
            return self.metric("pypi", package, framework, as_of, *args, **kwargs)

        times = """SELECT julianday(uploaded_at) AS t FROM pypi_releases
                   WHERE package = :p AND is_prerelease = 0 AND NOT yanked"""
        return self._releases(m, times, {"p": package}, window,
                              f"final releases (PEP 440 pre- and dev-releases and yanked ones"
                              f" excluded) by their first upload; {when}",
                              "CHAOSS Release Frequency: final releases published in the window")

    # -- git -------------------------------------------------------------------------------

    def _commit_filters(self) -> tuple[str, str, str]:
        """SQL for (a merge, an unreachable commit, a bot author) over ``git_commits``."""
        columns = self.columns("git_commits")
        merge = "COALESCE(parents, 1) > 1" if "parents" in columns else "0"
        gone = "COALESCE(reachable, 1) = 0" if "reachable" in columns else "0"
        return merge, gone, "is_bot(author_name, author_email, NULL)"

    def git(self, framework: str) -> list[Record]:
        as_of = self.as_of(
            "SELECT MAX(fetched_at) FROM git_repos WHERE framework = :fw UNION ALL"
            " SELECT MAX(fetched_at) FROM git_commits WHERE framework = :fw", {"fw": framework})
        if as_of is None:
            return []
        when = AS_OF.format(as_of=iso(as_of), source="git")
        year = Window.last_days(as_of, self.community.activity_window_days)
        merge, gone, bot = self._commit_filters()
        keep = f"NOT ({merge}) AND NOT ({gone}) AND NOT {bot}"
        ident = "COALESCE(NULLIF(lower(author_email), ''), author_name)"
        params = {"fw": framework, **year.params()}

        def m(*args: Any, **kwargs: Any) -> Record:
            return self.metric("git", framework, framework, as_of, *args, **kwargs)

        def excluded(window_sql: str) -> str:
            row = self.one(f"""
                SELECT count(CASE WHEN {gone} THEN 1 END) AS gone,
                       count(CASE WHEN NOT ({gone}) AND {merge} THEN 1 END) AS merges,
                       count(CASE WHEN NOT ({gone}) AND NOT ({merge}) AND {bot} THEN 1 END)
                           AS bots
                FROM git_commits WHERE framework = :fw AND {window_sql}""", params)
            return (f"{row['merges']} merge commits, {row['bots']} bot commits and"
                    f" {row['gone']} commits no longer reachable excluded")

        recent = f"{_in_window('committed_at')}"
        counts = self.one(f"""
            SELECT count(*) AS commits, count(DISTINCT {ident}) AS authors
            FROM git_commits WHERE framework = :fw AND {keep} AND {recent}""", params)
        absence = {}
        for period, where in (("all_time", "1"), ("365d", recent)):
            absence[period] = self.one(self._absence_sql(f"""
                SELECT {ident} AS who, count(*) AS n FROM git_commits
                WHERE framework = :fw AND {keep} AND {where} GROUP BY who"""), params)
        excluded_recent, excluded_all = excluded(recent), excluded("1")
        absence_definition = ("CHAOSS Contributor Absence Factor (bus factor): the fewest"
                              " authors (after .mailmap) who together made half of the commits")
        if self.community.activity_window_days != 365:
            # The metric's name says its window; a configured window other than a year
            # would make the name lie, so the name follows the configuration.
            recent_name = f"contributor_absence_factor_{self.community.activity_window_days}d"
        else:
            recent_name = "contributor_absence_factor_365d"
        return [
            m("commits_in_window", counts["commits"], "commits", year, counts["commits"],
              f"commits by people in the window (committer date); {excluded_recent}; {when}",
              "commits in the window, by committer date"),
            m("active_authors_in_window", counts["authors"], "authors", year,
              counts["authors"],
              f"distinct authors (.mailmap applied, by e-mail) of those commits;"
              f" {excluded_recent}; {when}", "distinct commit authors in the window"),
            m("contributor_absence_factor_all_time", absence["all_time"]["factor"],
              "contributors", None, absence["all_time"]["contributors"],
              f"{absence['all_time']['total'] or 0} commits per author, all history;"
              f" {excluded_all}; {when}", absence_definition),
            m(recent_name, absence["365d"]["factor"], "contributors", year,
              absence["365d"]["contributors"],
              f"{absence['365d']['total'] or 0} commits per author in the window;"
              f" {excluded_recent}; {when}", absence_definition),
        ]

    def org_shares(self, framework: str) -> list[Record]:
        """Who backs a framework: commits and authors per organisation, all time and recent."""
        as_of = self.as_of(
            "SELECT MAX(fetched_at) FROM git_repos WHERE framework = :fw UNION ALL"
            " SELECT MAX(fetched_at) FROM git_commits WHERE framework = :fw", {"fw": framework})
        if as_of is None:
            return []
        when = AS_OF.format(as_of=iso(as_of), source="git")
        merge, gone, bot = self._commit_filters()
        keep = f"NOT ({merge}) AND NOT ({gone}) AND NOT {bot}"
        ident = "COALESCE(NULLIF(lower(author_email), ''), author_name)"
        days = self.community.activity_window_days
        records = []
        for period, window in (("all_time", Window(None, as_of)),
                               (f"{days}d", Window.last_days(as_of, days))):
            where = _in_window("committed_at") if window.start else "1"
            params = {"fw": framework, **window.params()}
            rows = self.rows(f"""
                WITH k AS (SELECT org_of(author_email) AS org, {ident} AS who
                           FROM git_commits WHERE framework = :fw AND {keep} AND {where})
                SELECT org, count(*) AS commits, count(DISTINCT who) AS authors,
                       (SELECT count(*) FROM k) AS all_commits,
                       (SELECT count(DISTINCT who) FROM k) AS all_authors
                FROM k GROUP BY org ORDER BY commits DESC, org""", params)
            for r in rows:
                records.append(Record("community_org_shares", {
                    "source": "git", "framework": framework, "fetched_at": iso(as_of),
                    "period": period, "org": r["org"], "commits": r["commits"],
                    "commit_share": round(r["commits"] / r["all_commits"], 4),
                    "authors": r["authors"],
                    "author_share": round(r["authors"] / r["all_authors"], 4),
                    "window_start": params["start"], "window_end": params["end"],
                    "basis": (f"{r['all_commits']} commits by {r['all_authors']} authors"
                              f" ({'all history' if window.start is None else 'the window'}),"
                              " merges, bots and unreachable commits excluded; organisation"
                              " from the author's e-mail domain and [community.organizations]"
                              " (mail providers: independent; no-reply: unknown; other domains"
                              f" as themselves); {when}")}))
        return records


def compute(conn: sqlite3.Connection, config: SurveyConfig
            ) -> Iterator[tuple[str, list[Record] | Exception]]:
    """Every configured item's records, as (item label, records or the error it raised).

    The SQL functions are registered on ``conn`` first (:func:`register`).
    """
    register(conn, config)
    computer = _Computer(conn, config)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for fw in config.frameworks.values():
        jobs: list[tuple[str, Any]] = []
        if fw.github and {"github_issues", "github_responses"} <= tables:
            jobs.append((f"github:{fw.github}", lambda fw=fw: computer.github(fw.key,
                                                                              fw.github)))
        for package in fw.pypi:
            jobs.append((f"pypi:{package}", lambda fw=fw, p=package: computer.pypi(fw.key, p)))
        jobs.append((f"git:{fw.key}", lambda fw=fw: computer.git(fw.key)
                     + computer.org_shares(fw.key)))
        for label, job in jobs:
            try:
                yield label, job()
            except sqlite3.Error as exc:
                yield label, exc


class CommunityMetricsUnit(Unit):
    """Compute the community metrics from the store (the claims stage's first unit).

    Each row keeps the source whose items it reads (``github``, ``git``, ``pypi``), so the
    claims registry's ``source = 'github'`` conditions hold; all rows are committed together
    (:meth:`fwsurvey.store.Store.write_records`, once per source) before the outcome, replacing
    any the same run held.
    """

    source = SOURCE
    noun, verb = "items", "computed"

    def run(self, ctx: StageContext, tally: Tally) -> None:
        results = list(compute(ctx.store.db.conn, ctx.config))
        tally.start(len(results))
        by_source: dict[str, list[Record]] = {}
        for label, outcome in results:
            if isinstance(outcome, Exception):
                tally.fail(label, "error", f"{type(outcome).__name__}: {outcome}")
                continue
            for record in outcome:
                by_source.setdefault(record.row["source"], []).append(record)
            tally.done(label)
        if not by_source:
            return
        with ctx.store.db.atomic():
            # Recomputing for a run replaces that run's values (history tables are keyed
            # by run): a second `claims` on one run, or rows a collector wrote before.
            for table in ("community_metrics", "community_org_shares"):
                ctx.store.db.execute(f"DELETE FROM {table} WHERE run_id = ?", [ctx.run_id])
            for source, records in sorted(by_source.items()):
                tally.rows_committed += ctx.store.write_records(ctx.run_id, source, records)
