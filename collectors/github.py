"""GitHub: repository snapshots, contributors, commit activity, releases, issues, CHAOSS metrics.

Everything goes through PyGithub. Its urllib3 ``GithubRetry`` (inside the HTTP adapter)
retries 5xx answers and secondary rate limits (``Retry-After``); a primary rate limit that
would need a longer wait than ``max_rate_limit_wait`` ends the source for this run as
``incomplete``: what was fetched is kept, and the issues watermark resumes after the last
whole page stored. Responses are cached on disk (requests-cache, revalidated with their
ETag every time), so an unchanged resource answers 304, which costs no quota.

Issues and pull requests are fetched incrementally, sorted by ``updated`` ascending, from
the stored watermark minus an overlap, and never from later than the start of the metrics
window, so each run sees every issue the windowed metrics need.

The token comes from the environment (``GITHUB_TOKEN``, or the variable ``token_env`` names);
it is handed to PyGithub only, and the variable is registered with :mod:`fwsurvey.secrets`, so
an answer that echoes the token is redacted from every row, log line and message.

The HTTP cache lives beside the database the run uses (``http-cache/github``), unless
``http_cache`` names another place; where it cannot be written (a read-only folder), requests
go uncached.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import requests_cache
from github import Auth, Github, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    GithubException,
    RateLimitExceededException,
    UnknownObjectException,
)

from fwsurvey.collectors import chaoss
from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.http import call_with_retries, describe, make_session
from fwsurvey.secrets import register_env
from fwsurvey.sources import (
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Reachability,
    Record,
    SourceOptions,
    SourceUnreachable,
)

log = logging.getLogger(__name__)

DEFAULT_API = "https://api.github.com"
ISSUES_WATERMARK = "issues_updated_since"


class RateLimited(Exception):
    """The primary rate limit ran out (or would need too long a wait)."""


class PageBudgetSpent(Exception):
    """A repository's issue sync used its ``max_issue_pages`` for this run."""


def _raw(obj: Any) -> dict[str, Any]:
    # PyGithub's raw_data property would "complete" a listed object with one more request
    # per object; the listed JSON is all we need.
    return obj._rawData


def _iso(value: str | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = chaoss.parse_time(value)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _rate_limit_reset(exc: GithubException) -> str | None:
    reset = (exc.headers or {}).get("x-ratelimit-reset") or (exc.headers or {}).get(
        "X-RateLimit-Reset")
    if reset and str(reset).isdigit():
        return datetime.fromtimestamp(int(reset), UTC).isoformat(timespec="seconds")
    return None


def _github_message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return f"HTTP {exc.status} {data.get('message') or ''}".strip()


@contextmanager
def github_errors(what: str) -> Iterator[None]:
    """Turn PyGithub's and requests' exceptions into the pipeline's, with token-free text."""
    try:
        yield
    except RateLimitExceededException as exc:
        reset = _rate_limit_reset(exc)
        raise RateLimited(f"rate limit exhausted while fetching {what}"
                          + (f"; resets at {reset}" if reset else "")) from None
    except UnknownObjectException:
        raise ItemNotFound(f"{what}: not found on GitHub (HTTP 404)") from None
    except BadCredentialsException:
        raise SourceUnreachable("GitHub refused the token (HTTP 401); check GITHUB_TOKEN") from None
    except GithubException as exc:
        if exc.status == 403 and "rate limit" in str(exc.data).lower():
            raise RateLimited(f"rate limit exhausted while fetching {what}") from None
        if exc.status in (403, 451) and isinstance(exc.data, dict) and exc.data.get("block"):
            raise ItemNotFound(f"{what}: {_github_message(exc)}") from None
        raise SourceUnreachable(f"{what}: {_github_message(exc)}") from None
    except requests.exceptions.RetryError as exc:
        # urllib3 gave up: every attempt answered with a retryable status.
        reason = exc.args[0].reason if exc.args and hasattr(exc.args[0], "reason") else exc
        raise SourceUnreachable(f"{what}: {reason}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise SourceUnreachable(f"{what}: {describe(exc)}") from None


class GitHubOptions(SourceOptions):
    """``[sources.github]``'s own keys (the shipped fwsurvey.toml describes each)."""

    api_url: str = DEFAULT_API
    #: The environment variable holding the token (never stored).
    token_env: str = "GITHUB_TOKEN"
    per_page: int = 100
    #: Window of the CHAOSS issue and pull-request metrics, in days.
    metrics_window_days: int = 90
    issue_overlap_hours: int = 24
    max_issue_pages: int = 100
    #: How far back the first issue sync reaches; 0: all history; default: the metrics window.
    history_days: int | None = None
    max_contributor_pages: int = 10
    max_response_lookups: int = 200
    stats_attempts: int = 4
    stats_wait: float = 2.0
    max_rate_limit_wait: float = 60.0
    secondary_rate_wait: float = 60.0
    seconds_between_requests: float = 0.25
    #: The HTTP cache ("off" disables it); default: http-cache/github beside the database.
    http_cache: str | None = None


class GitHubCollector(Collector):
    """Tables ``github_repos`` (history), ``github_issues``, ``github_releases``,
    ``github_contributors``, ``github_commit_activity`` and ``community_metrics``."""

    name = "github"
    title = "GitHub repository activity and CHAOSS metrics"
    Options = GitHubOptions
    options: GitHubOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None,
                 now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] | None = None):
        super().__init__(config, settings)
        import time

        self.now = now or (lambda: datetime.now(UTC))
        self.sleep = sleep or time.sleep
        options = self.options
        self.per_page = options.per_page
        self.window_days = options.metrics_window_days
        self.overlap = timedelta(hours=options.issue_overlap_hours)
        self.max_issue_pages = options.max_issue_pages
        # How far back the first issue sync reaches; 0: all history. Later runs go on from
        # the watermark. The default covers the metrics window.
        self.history_days = (options.history_days if options.history_days is not None
                             else self.window_days)
        self.max_contributor_pages = options.max_contributor_pages
        self.max_response_lookups = options.max_response_lookups
        self.stats_attempts = options.stats_attempts
        self.stats_wait = options.stats_wait
        cache = options.http_cache or str(config.database.parent / "http-cache" / "github")
        self.http_cache: Path | None = None if cache == "off" else Path(cache)
        register_env(options.token_env)
        token = os.environ.get(options.token_env) or None
        retry = GithubRetry(
            total=self.settings.retries - 1,
            backoff_factor=self.settings.backoff,
            secondary_rate_wait=options.secondary_rate_wait,
            max_rate_limit_wait=options.max_rate_limit_wait,
        )
        self.authenticated = token is not None
        # For the one endpoint asked outside PyGithub; never logged or stored.
        self._headers = {"Accept": "application/vnd.github+json",
                         "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.session = make_session()
        self.gh = Github(
            auth=Auth.Token(token) if token else None,
            base_url=options.api_url,
            timeout=int(self.settings.timeout),
            per_page=self.per_page,
            retry=retry,
            seconds_between_requests=options.seconds_between_requests,
            seconds_between_writes=0,
        )

    # -- the Collector interface ------------------------------------------------------

    def items(self) -> list[Item]:
        return [Item(fw.github, fw.key) for fw in self.config.frameworks.values() if fw.github]

    def check(self) -> Reachability:
        try:
            with self._cached(), github_errors("GitHub API"):
                status, headers, _ = self.gh.requester.requestJson("GET", "/rate_limit")
        except (SourceUnreachable, RateLimited, ItemNotFound) as exc:
            return Reachability(False, str(exc))
        if status != 200:
            return Reachability(False, f"HTTP {status} from the GitHub API")
        who = "authenticated" if self.authenticated else "unauthenticated"
        return Reachability(True, f"GitHub API answers ({who}; "
                                  f"{headers.get('x-ratelimit-remaining', '?')} requests left)")

    def fetch(self, item: Item) -> list[Record]:
        fetch = _RepoFetch(self, item)
        try:
            with self._cached():
                return fetch.run()
        except RateLimited as exc:
            raise PartialItem(str(exc), fetch.consistent_records(), stop_source=True) from None
        except PageBudgetSpent as exc:  # the other repositories still get their turn
            raise PartialItem(str(exc), fetch.consistent_records()) from None
        except SourceUnreachable as exc:
            if fetch.issue_rows:  # a page failed midway: keep the whole pages before it
                raise PartialItem(f"stopped after {fetch.pages_stored} issue pages: {exc}",
                                  fetch.consistent_records(), stop_source=True) from None
            raise

    def close(self) -> None:
        self.gh.close()
        self.session.close()

    def plain_get(self, url: str, what: str) -> requests.Response:
        """GET with fwsurvey's retries; 2xx answers returned, the rest mapped to our errors."""

        def get() -> requests.Response:
            response = self.session.get(url, headers=self._headers, timeout=self.settings.timeout)
            response.raise_for_status()
            return response

        try:
            return call_with_retries(self.settings, get)
        except requests.HTTPError as exc:
            status = exc.response.status_code
            if status == 404:
                raise ItemNotFound(f"{what}: not found on GitHub (HTTP 404)") from None
            if status in (403, 429) and exc.response.headers.get("X-RateLimit-Remaining") == "0":
                reset = exc.response.headers.get("X-RateLimit-Reset", "")
                when = (f"; resets at {datetime.fromtimestamp(int(reset), UTC).isoformat()}"
                        if reset.isdigit() else "")
                raise RateLimited(f"rate limit exhausted while fetching {what}{when}") from None
            raise SourceUnreachable(f"{what}: {describe(exc)}") from None
        except SourceUnreachable as exc:
            raise SourceUnreachable(f"{what}: {exc}") from None

    def _cached(self):
        if self.http_cache is None:
            return nullcontext()
        folder = self.http_cache.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        store = Path(f"{self.http_cache}.sqlite")
        if not os.access(folder, os.W_OK) or (store.exists() and not os.access(store, os.W_OK)):
            # A read-only folder (``fwsurvey status`` on a read-only database): no cache.
            log.info("github: HTTP cache %s is not writable; requests go uncached", store)
            return nullcontext()
        # Scoped patch of requests.Session while PyGithub opens its connection: every
        # response is stored and revalidated with If-None-Match (a 304 costs no quota).
        return requests_cache.enabled(str(self.http_cache), backend="sqlite",
                                      expire_after=requests_cache.EXPIRE_IMMEDIATELY,
                                      allowable_codes=(200,))


class _RepoFetch:
    """One repository's fetch; keeps what it has so far for a partial result."""

    def __init__(self, collector: GitHubCollector, item: Item):
        self.c = collector
        self.item = item
        self.fetched_at_dt = collector.now()
        self.fetched_at = _iso(self.fetched_at_dt)
        self.records: list[Record] = []
        self.issue_rows: list[dict[str, Any]] = []
        self.pages_stored = 0
        self.old_watermark = collector.state.get((item.key, ISSUES_WATERMARK))

    def row(self, table: str, **values: Any) -> None:
        self.records.append(Record(table, {"repo": self.item.key, "framework": self.item.framework,
                                           **values, "fetched_at": self.fetched_at}))

    def consistent_records(self) -> list[Record]:
        """What a partial fetch keeps: the parts fetched whole, the issue pages that arrived
        whole, and the watermark just after them (no windowed metrics: the batch is short)."""
        records = [r for r in self.records if r.table != "github_issues"]
        records += [Record("github_issues", {"repo": self.item.key,
                                             "framework": self.item.framework, **row,
                                             "fetched_at": self.fetched_at})
                    for row in self.issue_rows]
        return records + self.issue_state()

    def issue_state(self) -> list[Record]:
        """The watermark record: the newest ``updated_at`` among the stored issue pages."""
        newest = max((r["updated_at"] for r in self.issue_rows), default=None)
        if newest is None or (self.old_watermark and newest <= self.old_watermark):
            return []
        return [self.c.state_record(self.item.key, ISSUES_WATERMARK, newest, self.fetched_at)]

    def run(self) -> list[Record]:
        key = self.item.key
        with github_errors(key):
            repo = self.c.gh.get_repo(key)
        raw = _raw(repo)
        window = chaoss.Window.last_days(self.fetched_at_dt, self.c.window_days)
        lookback = chaoss.Window.last_days(self.fetched_at_dt, chaoss.MAINTAINED_LOOKBACK_DAYS)

        with github_errors(f"{key} open pull requests"):
            open_pulls = repo.get_pulls(state="open").totalCount
        contributors, contributors_complete = self.contributors(repo)
        weeks = self.commit_activity(repo)
        releases = self.releases(repo)
        tags = self.tags(repo, releases)
        commits_52 = sum(w["total"] for w in weeks) if weeks is not None else None
        # The last 13 weeks of GitHub's 52 (the newest is the current, partial week).
        commits_13 = sum(w["total"] for w in weeks[-13:]) if weeks is not None else None
        self.row("github_repos", **{
            "full_name": raw["full_name"],
            "renamed": raw["full_name"].lower() != key.lower(),
            "stars": raw["stargazers_count"],
            "forks": raw["forks_count"],
            "subscribers": raw.get("subscribers_count"),
            # GitHub's open_issues_count counts open pull requests too.
            "open_issues": raw["open_issues_count"] - open_pulls,
            "open_pull_requests": open_pulls,
            "archived": bool(raw.get("archived")),
            "default_branch": raw.get("default_branch"),
            "license": (raw.get("license") or {}).get("spdx_id"),
            "topics": raw.get("topics") or [],
            "created_at": _iso(raw.get("created_at")),
            "pushed_at": _iso(raw.get("pushed_at")),
            "contributor_count": len(contributors),
            "contributors_complete": contributors_complete,
            "commit_activity_status": "ok" if weeks is not None else "not ready",
            "commits_last_52_weeks": commits_52,
            "commits_last_13_weeks": commits_13,
            "release_count": len(releases),
            "tag_count": len(tags),
            "issues_synced_until": self.old_watermark,
            "rate_limit_remaining": None,
        })
        snapshot = self.records[-1].row
        # Metrics of complete lists, kept even if the issue sync stops short.
        static = chaoss.release_frequency(
            [r["published_at"] for r in releases if not r["draft"]],
            chaoss.Window.last_days(self.fetched_at_dt, 365))
        if contributors_complete:
            static.append(chaoss.contributor_absence_factor(
                [c["contributions"] for c in contributors if not c["is_bot"]],
                "commits on the default branch per contributor (GitHub, bots excluded)"))
        self.metrics(static)

        self.issues(repo, self.issues_since(window, lookback))
        self.first_responses(window)
        snapshot["issues_synced_until"] = max(
            [r["updated_at"] for r in self.issue_rows] + [self.old_watermark or ""]) or None
        snapshot["rate_limit_remaining"] = self.rate_limit_remaining()

        # Windowed CHAOSS metrics: this run's batch covers every issue updated since the
        # window began (a partial batch never gets here).
        issues = self.issue_rows
        metrics = [
            *chaoss.time_to_first_response(issues, window),
            chaoss.issue_age(issues, window),
            chaoss.change_request_closure_ratio(issues, window),
            chaoss.maintained(commits_13, sum(1 for i in issues if i["updated_at"] in lookback),
                              bool(raw.get("archived")), _iso(raw.get("created_at")), lookback),
        ]
        self.metrics(metrics)
        return self.records + self.issue_state()

    # -- the parts --------------------------------------------------------------------

    def metrics(self, metrics: list[chaoss.Metric]) -> None:
        for m in metrics:
            self.records.append(Record("community_metrics", chaoss.metric_row(
                m, self.item.key, self.item.framework, self.fetched_at)))

    def contributors(self, repo) -> tuple[list[dict[str, Any]], bool]:
        rows: list[dict[str, Any]] = []
        pages = repo.get_contributors()
        complete = False
        for page in range(self.c.max_contributor_pages):
            with github_errors(f"{self.item.key} contributors"):
                batch = pages.get_page(page)
            for user in batch:
                data = _raw(user)
                rows.append({"login": data["login"], "contributions": data["contributions"],
                             "is_bot": chaoss.is_bot(data["login"], data.get("type"))})
            if len(batch) < self.c.per_page:
                complete = True
                break
        for r in rows:
            self.row("github_contributors", **r)
        return rows, complete

    def commit_activity(self, repo) -> list[dict[str, Any]] | None:
        """Weekly commits of the last year, or None while GitHub is still computing (202).

        Asked outside PyGithub, whose requester retries a 202 after a fixed pause without
        a bound; here the tries are counted and the pause is configurable.
        """
        url = f"{repo.url}/stats/commit_activity"
        for attempt in range(self.c.stats_attempts):
            response = self.c.plain_get(url, f"{self.item.key} commit activity")
            if response.status_code == 200:
                weeks = response.json() or []
                for w in weeks:
                    week = datetime.fromtimestamp(w["week"], UTC).date().isoformat()
                    self.row("github_commit_activity", week=week, commits=w["total"],
                             days=w["days"])
                return weeks
            if attempt + 1 < self.c.stats_attempts:
                self.c.sleep(self.c.stats_wait)
        log.info("github: %s: commit activity not ready after %d attempts", self.item.key,
                 self.c.stats_attempts)
        return None

    def releases(self, repo) -> list[dict[str, Any]]:
        rows = []
        with github_errors(f"{self.item.key} releases"):
            for release in repo.get_releases():
                data = _raw(release)
                rows.append({"kind": "release", "tag_name": data["tag_name"],
                             "name": data.get("name"),
                             "published_at": _iso(data.get("published_at")),
                             "prerelease": bool(data.get("prerelease")),
                             "draft": bool(data.get("draft")), "commit_sha": None})
        for r in rows:
            self.row("github_releases", **r)
        return rows

    def tags(self, repo, releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The tags endpoint gives no dates (one more request per tag would); a tag that has a
        # release takes the release's date. The git source has every tag's date offline.
        published = {r["tag_name"]: r["published_at"] for r in releases}
        rows = []
        with github_errors(f"{self.item.key} tags"):
            for tag in repo.get_tags():
                data = _raw(tag)
                rows.append({"kind": "tag", "tag_name": data["name"], "name": data["name"],
                             "published_at": published.get(data["name"]),
                             "prerelease": None, "draft": None,
                             "commit_sha": (data.get("commit") or {}).get("sha")})
        for r in rows:
            self.row("github_releases", **r)
        return rows

    def issues_since(self, window: chaoss.Window, lookback: chaoss.Window) -> datetime | None:
        """Where the issue sync starts: the watermark minus the overlap, never later than the
        windows' start; on the first run, ``history_days`` back (None: all history)."""
        earliest = min(window.start, lookback.start)
        if self.old_watermark is None:
            if self.c.history_days == 0:
                return None
            return min(earliest, self.fetched_at_dt - timedelta(days=self.c.history_days))
        return min(chaoss.parse_time(self.old_watermark) - self.c.overlap, earliest)

    def issues(self, repo, since: datetime | None) -> None:
        kwargs: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc"}
        if since is not None:
            kwargs["since"] = since
        listing = repo.get_issues(**kwargs)
        self.issue_objects: dict[int, Any] = {}
        for page in range(self.c.max_issue_pages):
            with github_errors(f"{self.item.key} issues page {page + 1}"):
                batch = listing.get_page(page)
            rows = []
            for issue in batch:
                data = _raw(issue)
                user = data.get("user") or {}
                pull = data.get("pull_request")
                rows.append({
                    "number": data["number"],
                    "is_pull_request": pull is not None,
                    "state": data["state"],
                    "author": user.get("login"),
                    "author_is_bot": chaoss.is_bot(user.get("login"), user.get("type")),
                    "author_association": data.get("author_association"),
                    "comments": data.get("comments") or 0,
                    "created_at": _iso(data["created_at"]),
                    "updated_at": _iso(data["updated_at"]),
                    "closed_at": _iso(data.get("closed_at")),
                    "merged_at": _iso((pull or {}).get("merged_at")),
                })
                self.issue_objects[data["number"]] = issue
            # A page is kept whole or not at all: rows join only once the page has arrived.
            self.issue_rows.extend(rows)
            self.pages_stored += 1
            if len(batch) < self.c.per_page:
                return
        raise PageBudgetSpent(f"issue sync of {self.item.key} stopped after {self.pages_stored}"
                              " pages (max_issue_pages); resumes next run")

    def first_responses(self, window: chaoss.Window) -> None:
        """Look up the first non-author, non-bot reply of issues opened in the window."""
        lookups = 0
        for row in self.issue_rows:
            if row["created_at"] not in window:
                continue
            if row["comments"] == 0:
                row["first_response_at"] = row["first_response_by"] = None
                continue
            if lookups >= self.c.max_response_lookups:
                continue  # left unknown (not written), the stored value stays
            lookups += 1
            issue = self.issue_objects[row["number"]]
            with github_errors(f"{self.item.key}#{row['number']} comments"):
                comments = [{"login": (_raw(c).get("user") or {}).get("login"),
                             "type": (_raw(c).get("user") or {}).get("type"),
                             "created_at": _raw(c)["created_at"]}
                            for c in issue.get_comments().get_page(0)]
            first = chaoss.first_response(row["author"], comments)
            row["first_response_at"] = _iso(first["created_at"]) if first else None
            row["first_response_by"] = first["login"] if first else None
        for row in self.issue_rows:
            self.row("github_issues", **row)
    def rate_limit_remaining(self) -> int | None:
        remaining, _ = self.c.gh.rate_limiting
        return remaining if remaining >= 0 else None
