"""GitHub: repository snapshots, contributors, commit activity, releases, issues, responses.

The collector only fetches and stores raw items; the community metrics are computed from
the store by ``collectors/metrics.py`` at the start of the claims stage (Contract D), so a
metric change needs no network.

**Issues and pull requests** are listed with plain GETs, ``sort=updated&direction=asc``,
``since`` = the stored watermark minus ``issue_overlap_hours`` (on the first run,
``history_days`` back, 0: all history), following the ``Link: rel="next"`` header (never
``len(page) < per_page``). After each page its rows, the watermark (the newest ``updated_at``
stored) and a :class:`~fwsurvey.sources.Checkpoint` are yielded, so a fault, a spent rate
limit or a killed process keeps every page already committed and the next run resumes from
the watermark; ``max_issue_pages`` ends a run's sync cleanly (the item is ``incomplete``)
without re-reading the same first pages next time. An issue updated mid-sync moves to the
end of the list: rows are de-duplicated by number within a run, and since the move shifts
the later pages by one (an issue may slip past a page boundary unseen), a repeat triggers
one more pass from the first page that could have lost one.

**First responses**: per (issue, responder) the earliest issue comment, pull-request review
or review comment, the issue author's and bots' included (``github_responses``; bots and the
author are left out at metric time). Looked up for issues never checked or updated since
(``github_issues.responses_checked_at``), newest first, at most ``max_response_lookups``
per run; the rest keep ``responses_checked_at`` empty and are looked up on later runs.

**Faults**: a 404 of the repository is ``not_found``; 401 ends the source (the token); a
rate limit waits at most ``max_rate_limit_wait`` (longer: the item is ``incomplete`` and the
source stops until the reset); a 403/409/410/422 of one part (the contributor list too large,
an empty repository, disabled issues) leaves that part empty, says why in
``github_repos.unavailable`` and keeps the rest; 5xx and timeouts are retried, then the item
keeps what it had (``incomplete``). Only a repository that cannot be reached at all raises
SourceUnreachable. Commit statistics still computing (HTTP 202) are asked again with a
doubling pause (``stats_wait`` .. ``stats_max_wait``), then stored as unknown, never zero.

PyGithub serves the repository, the open pull-request count, releases and tags (its
PaginatedList iteration follows ``Link: rel="next"``: ``_fetchNextPage`` in
github/PaginatedList.py takes ``links["next"]``; only ``get_page(n)``, not used here, asks
by page number). Those responses are cached on disk (requests-cache, revalidated with their
ETag every time: an unchanged resource answers 304, which costs no quota); the cache holds one
entry per URL of that fixed set, so it stays bounded. Issue pages (a ``since`` that moves every
run: never revalidated) and response lookups go through fwsurvey's own uncached session.

The token comes from the environment (``GITHUB_TOKEN``, or the variable ``token_env`` names);
it is sent in headers only, and the variable is registered with :mod:`fwsurvey.secrets`, so
an answer that echoes the token is redacted from every row, log line and message.
"""

from __future__ import annotations

import logging
import os
import sqlite3
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

from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.http import RateLimitExceeded, RateLimits, describe, get_with_limits, make_session
from fwsurvey.secrets import register_env
from fwsurvey.sources import (
    Checkpoint,
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
#: Response lookups per committed batch.
LOOKUPS_PER_BATCH = 20


class RateLimited(Exception):
    """The primary rate limit ran out (or would need too long a wait)."""


class GitHubError(Exception):
    """GitHub answered a request with a status that is neither success nor a known fault."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _raw(obj: Any) -> dict[str, Any]:
    # PyGithub's raw_data property would "complete" a listed object with one more request
    # per object; the listed JSON is all we need.
    return obj._rawData


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(value: str | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = _parse_time(value)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _is_bot(login: str | None, user_type: str | None = None) -> bool:
    """The fetch-time flag kept for compatibility only; metrics classify bots from the
    ``[community]`` configuration when they are computed (collectors/bots.py)."""
    return user_type == "Bot" or bool(login and login.endswith("[bot]"))


def _rate_limit_reset(exc: GithubException) -> str | None:
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    reset = headers.get("x-ratelimit-reset")
    if reset and str(reset).isdigit():
        return datetime.fromtimestamp(int(reset), UTC).isoformat(timespec="seconds")
    return None


def _github_message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return f"HTTP {exc.status} {data.get('message') or ''}".strip()


def _response_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    message = data.get("message") if isinstance(data, dict) else None
    return f"HTTP {response.status_code} {message or response.reason or ''}".strip()


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
        if exc.status in (403, 429) and "rate limit" in str(exc.data).lower():
            raise RateLimited(f"rate limit exhausted while fetching {what}"
                              + (f"; resets at {r}" if (r := _rate_limit_reset(exc)) else "")
                              ) from None
        if exc.status in (403, 451) and isinstance(exc.data, dict) and exc.data.get("block"):
            raise ItemNotFound(f"{what}: {_github_message(exc)}") from None
        if exc.status >= 500:
            raise SourceUnreachable(f"{what}: {_github_message(exc)}") from None
        raise GitHubError(exc.status, f"{what}: {_github_message(exc)}") from None
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
    #: The window the metrics look at, in days: the default reach of the first issue sync
    #: and of the response lookups.
    metrics_window_days: int = 90
    #: Issues re-read before the stored watermark (updates GitHub indexes late).
    issue_overlap_hours: int = 1
    #: Issue pages per repository per run; the rest next run, from the watermark.
    max_issue_pages: int = 100
    #: How far back the first issue sync reaches; 0: all history; default: the metrics window.
    history_days: int | None = None
    max_contributor_pages: int = 10
    #: Issues whose responses are looked up per repository per run (newest first).
    max_response_lookups: int = 200
    #: Issues opened this many days back are looked up; 0: all; default: the metrics window.
    response_history_days: int | None = None
    #: Pages read per comment, review and review-comment list of one issue.
    max_response_pages: int = 3
    #: Asks of a statistics endpoint that answers 202 ("computing"), with a pause between
    #: that starts at stats_wait and doubles up to stats_max_wait.
    stats_attempts: int = 6
    stats_wait: float = 2.0
    stats_max_wait: float = 60.0
    max_rate_limit_wait: float = 60.0
    secondary_rate_wait: float = 60.0
    seconds_between_requests: float = 0.25
    #: The HTTP cache ("off" disables it); default: http-cache/github beside the database.
    http_cache: str | None = None


class GitHubCollector(Collector):
    """Tables ``github_repos`` (history), ``github_issues``, ``github_responses``,
    ``github_releases``, ``github_contributors`` and ``github_commit_activity``."""

    name = "github"
    title = "GitHub repository activity, issues and responses"
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
        self.api_url = options.api_url.rstrip("/")
        self.per_page = options.per_page
        self.window_days = options.metrics_window_days
        self.overlap = timedelta(hours=options.issue_overlap_hours)
        self.max_issue_pages = options.max_issue_pages
        self.history_days = (options.history_days if options.history_days is not None
                             else self.window_days)
        self.response_days = (options.response_history_days
                              if options.response_history_days is not None else self.window_days)
        self.max_contributor_pages = options.max_contributor_pages
        self.max_response_lookups = options.max_response_lookups
        self.max_response_pages = options.max_response_pages
        self.stats_attempts = options.stats_attempts
        self.stats_wait = options.stats_wait
        self.stats_max_wait = options.stats_max_wait
        self.limits = RateLimits(max_wait=options.max_rate_limit_wait,
                                 secondary_wait=options.secondary_rate_wait,
                                 tries=max(2, self.settings.retries + 1), sleep=self.sleep)
        self.database = config.database
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
        # For the requests made outside PyGithub; never logged or stored.
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
        except (SourceUnreachable, RateLimited, ItemNotFound, GitHubError) as exc:
            return Reachability(False, str(exc))
        if status != 200:
            return Reachability(False, f"HTTP {status} from the GitHub API")
        who = "authenticated" if self.authenticated else "unauthenticated"
        return Reachability(True, f"GitHub API answers ({who}; "
                                  f"{headers.get('x-ratelimit-remaining', '?')} requests left)")

    def fetch(self, item: Item) -> Iterator[Record | Checkpoint]:
        """One repository, in committed batches (see the module's docstring)."""
        fetch = _RepoFetch(self, item)
        try:
            with self._cached():
                yield from fetch.run()
        except RateLimited as exc:  # before the issues: what was committed stays
            raise PartialItem(str(exc), [], stop_source=True) from None

    def close(self) -> None:
        self.gh.close()
        self.session.close()

    def get(self, url: str, what: str, params: dict[str, Any] | None = None,
            ok: tuple[int, ...] = (200,)) -> requests.Response:
        """A plain GET (rate limits and retries in :func:`fwsurvey.http.get_with_limits`);
        a status in ``ok`` comes back, the rest become the pipeline's errors."""
        try:
            response = get_with_limits(self.session, url, self.settings, self.limits,
                                       params=params, headers=self._headers, what=what)
        except RateLimitExceeded as exc:
            raise RateLimited(str(exc)) from None
        except SourceUnreachable as exc:
            raise SourceUnreachable(f"{what}: {exc}") from None
        status = response.status_code
        if status in ok:
            return response
        if status == 404:
            raise ItemNotFound(f"{what}: not found on GitHub (HTTP 404)")
        if status == 401:
            raise SourceUnreachable("GitHub refused the token (HTTP 401); check GITHUB_TOKEN")
        raise GitHubError(status, f"{what}: {_response_message(response)}")

    def pages(self, url: str, what: str, params: dict[str, Any] | None,
              max_pages: int) -> Iterator[tuple[list[Any], str | None]]:
        """The pages of a list, following ``Link: rel="next"``: (items, next URL or None)."""
        for _ in range(max_pages):
            response = self.get(url, what, params, ok=(200, 204))
            batch = response.json() if response.status_code == 200 and response.content else []
            following = response.links.get("next", {}).get("url")
            yield batch, following
            if not following:
                return
            url, params = following, None  # the next URL carries the whole query

    def stored_issues(self, repo: str) -> dict[int, dict[str, Any]]:
        """This repository's stored issues, read-only from the run's database (committed
        batches included): what the response lookups choose from."""
        if not self.database.exists():
            return {}
        try:
            conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        except sqlite3.Error:
            return {}
        conn.row_factory = sqlite3.Row
        try:
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(github_issues)")}
            if "responses_checked_at" not in columns:
                return {}
            rows = conn.execute("SELECT * FROM github_issues WHERE repo = ?", [repo]).fetchall()
        except sqlite3.Error:
            return {}
        finally:
            conn.close()
        return {r["number"]: dict(r) for r in rows}

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
        # fwsurvey's own session (issue pages, responses) was made before: never cached.
        return requests_cache.enabled(str(self.http_cache), backend="sqlite",
                                      expire_after=requests_cache.EXPIRE_IMMEDIATELY,
                                      allowable_codes=(200,))


class _RepoFetch:
    """One repository's fetch, as a generator of records and checkpoints."""

    def __init__(self, collector: GitHubCollector, item: Item):
        self.c = collector
        self.item = item
        self.fetched_at_dt = collector.now()
        self.fetched_at = _iso(self.fetched_at_dt)
        self.old_watermark = collector.state.get((item.key, ISSUES_WATERMARK))
        self.watermark = self.old_watermark
        #: Parts GitHub would not give, with the reason (github_repos.unavailable).
        self.unavailable: dict[str, str] = {}
        #: This run's issue rows by number (the newest version seen).
        self.issue_rows: dict[int, dict[str, Any]] = {}
        self.comment_urls: dict[int, str] = {}
        self.pages_read = 0

    def row(self, table: str, **values: Any) -> Record:
        return Record(table, {"repo": self.item.key, "framework": self.item.framework,
                              **values, "fetched_at": values.get("fetched_at", self.fetched_at)})

    def run(self) -> Iterator[Record | Checkpoint]:
        key = self.item.key
        with github_errors(key):
            repo = self.c.gh.get_repo(key)
        raw = _raw(repo)
        self.repo_url = raw.get("url") or f"{self.c.api_url}/repos/{key}"

        open_pulls = self.part("open pull requests",
                               lambda: repo.get_pulls(state="open").totalCount)
        contributors = self.part("contributors", self.contributors)
        weeks, activity_status = self.part("commit activity", self.commit_activity) or (
            None, "unavailable")
        releases = self.part("releases", lambda: self.releases(repo))
        tags = self.part("tags", lambda: self.tags(repo, releases or []))
        for rows, table in ((contributors[0] if contributors else [], "github_contributors"),
                            (releases or [], "github_releases"), (tags or [], "github_releases")):
            for r in rows:
                yield self.row(table, **r)
        for w in weeks or []:
            week = datetime.fromtimestamp(w["week"], UTC).date().isoformat()
            yield self.row("github_commit_activity", week=week, commits=w["total"],
                           days=w["days"])
        yield Checkpoint("repository lists")

        snapshot = {
            "full_name": raw["full_name"],
            "renamed": raw["full_name"].lower() != key.lower(),
            "stars": raw["stargazers_count"],
            "forks": raw["forks_count"],
            "subscribers": raw.get("subscribers_count"),
            # GitHub's open_issues_count counts open pull requests too.
            "open_issues": (raw["open_issues_count"] - open_pulls
                            if open_pulls is not None else None),
            "open_pull_requests": open_pulls,
            "archived": bool(raw.get("archived")),
            "default_branch": raw.get("default_branch"),
            "license": (raw.get("license") or {}).get("spdx_id"),
            "topics": raw.get("topics") or [],
            "created_at": _iso(raw.get("created_at")),
            "pushed_at": _iso(raw.get("pushed_at")),
            "contributor_count": len(contributors[0]) if contributors else None,
            "contributors_complete": bool(contributors and contributors[1]),
            "commit_activity_status": activity_status,
            "commits_last_52_weeks": (sum(w["total"] for w in weeks)
                                      if weeks is not None else None),
            # The last 13 weeks of GitHub's 52 (the newest is the current, partial week).
            "commits_last_13_weeks": (sum(w["total"] for w in weeks[-13:])
                                      if weeks is not None else None),
            "release_count": len(releases) if releases is not None else None,
            "tag_count": len(tags) if tags is not None else None,
        }
        # The snapshot row goes last (it says how far the issues got); a fault on the way
        # still writes it, with what was reached, before the fault is raised.
        failure: BaseException | None = None
        budget_spent = False
        try:
            budget_spent = yield from self.issues()
            yield from self.responses()
        except RateLimited as exc:
            failure = PartialItem(f"{exc} (after {self.pages_read} issue pages)", [],
                                  stop_source=True)
        except (SourceUnreachable, GitHubError, ItemNotFound) as exc:
            failure = PartialItem(f"stopped after {self.pages_read} issue pages: {exc}", [])
        yield self.row("github_repos", **snapshot,
                       unavailable=self.unavailable or None,
                       issues_synced_until=self.watermark,
                       rate_limit_remaining=self.rate_limit_remaining())
        yield Checkpoint("repository snapshot")
        if failure is not None:
            raise failure
        if budget_spent:
            raise PartialItem(f"issue sync of {key} stopped after {self.pages_read} pages "
                              "(max_issue_pages); resumes from the watermark next run", [])

    # -- the parts --------------------------------------------------------------------

    def part(self, name: str, get: Callable[[], Any]) -> Any:
        """One part of the repository, or None when GitHub will not give it (403 list too
        large, 409 empty repository, 5xx after the retries, ...): the reason goes to
        ``unavailable``, the rest of the repository is kept. A spent rate limit still
        stops the item (and the source)."""
        try:
            with github_errors(f"{self.item.key} {name}"):
                return get()
        except (GitHubError, ItemNotFound, SourceUnreachable) as exc:
            log.info("github: %s unavailable: %s", name, exc)
            self.unavailable[name] = str(exc)
            return None

    def contributors(self) -> tuple[list[dict[str, Any]], bool]:
        """GitHub's contributor list; complete when its last page (no ``next``) was read."""
        rows: list[dict[str, Any]] = []
        complete = False
        for batch, following in self.c.pages(f"{self.repo_url}/contributors",
                                             f"{self.item.key} contributors",
                                             {"per_page": self.c.per_page},
                                             self.c.max_contributor_pages):
            for data in batch:
                rows.append({"login": data["login"], "contributions": data["contributions"],
                             "is_bot": _is_bot(data["login"], data.get("type"))})
            complete = following is None
        return rows, complete

    def commit_activity(self) -> tuple[list[dict[str, Any]] | None, str]:
        """Weekly commits of the last year and the status: ``ok``, ``empty`` (204: no
        commits), ``not ready`` (GitHub still computing after every try: unknown, not zero)
        or ``unavailable`` (a 403/409/..., reason in ``unavailable``)."""
        what = f"{self.item.key} commit activity"
        url = f"{self.repo_url}/stats/commit_activity"
        pause = self.c.stats_wait
        for attempt in range(self.c.stats_attempts):
            response = self.c.get(url, what, ok=(200, 202, 204))
            if response.status_code == 204:
                return [], "empty"
            if response.status_code == 200:
                return response.json() or [], "ok"
            if attempt + 1 < self.c.stats_attempts:
                self.c.sleep(pause)
                pause = min(pause * 2, self.c.stats_max_wait)
        log.info("github: %s not ready after %d attempts", what, self.c.stats_attempts)
        return None, "not ready"

    def releases(self, repo) -> list[dict[str, Any]]:
        return [{"kind": "release", "tag_name": data["tag_name"], "name": data.get("name"),
                 "published_at": _iso(data.get("published_at")),
                 "prerelease": bool(data.get("prerelease")),
                 "draft": bool(data.get("draft")), "commit_sha": None}
                for data in map(_raw, repo.get_releases())]

    def tags(self, repo, releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The tags endpoint gives no dates (one more request per tag would); a tag that has a
        # release takes the release's date. The git source has every tag's date offline.
        published = {r["tag_name"]: r["published_at"] for r in releases}
        return [{"kind": "tag", "tag_name": data["name"], "name": data["name"],
                 "published_at": published.get(data["name"]), "prerelease": None,
                 "draft": None, "commit_sha": (data.get("commit") or {}).get("sha")}
                for data in map(_raw, repo.get_tags())]

    # -- issues ------------------------------------------------------------------------

    def issues_since(self) -> datetime | None:
        """The stored watermark minus the overlap; on the first run ``history_days`` back
        (None: all history)."""
        if self.old_watermark is not None:
            return _parse_time(self.old_watermark) - self.c.overlap
        if self.c.history_days == 0:
            return None
        return self.fetched_at_dt - timedelta(days=self.c.history_days)

    def issue_row(self, data: dict[str, Any]) -> dict[str, Any]:
        user = data.get("user") or {}
        pull = data.get("pull_request")
        return {
            "number": data["number"],
            "is_pull_request": pull is not None,
            "state": data["state"],
            "author": user.get("login"),
            "author_is_bot": _is_bot(user.get("login"), user.get("type")),
            "author_association": data.get("author_association"),
            "comments": data.get("comments") or 0,
            "created_at": _iso(data["created_at"]),
            "updated_at": _iso(data["updated_at"]),
            "closed_at": _iso(data.get("closed_at")),
            "merged_at": _iso((pull or {}).get("merged_at")),
        }

    def issues(self) -> Iterator[Record | Checkpoint]:
        """The issue sync; returns True when ``max_issue_pages`` ended it early."""
        since = self.issues_since()
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc",
                                  "per_page": self.c.per_page}
        if since is not None:
            params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        #: The newest updated_at of each page read, and the page each number was first on.
        page_newest: list[str] = []
        first_page: dict[int, int] = {}
        passes = 0
        while True:
            passes += 1
            reread_from: str | None = None
            following: str | None = None
            listing = self.c.pages(f"{self.repo_url}/issues", f"{self.item.key} issues",
                                   params, self.c.max_issue_pages - self.pages_read)
            for batch, following in listing:  # noqa: B007 - read after the loop
                page = self.pages_read
                self.pages_read += 1
                fresh = []
                for data in batch:
                    row = self.issue_row(data)
                    number = row["number"]
                    seen = self.issue_rows.get(number)
                    if seen is not None:
                        # Seen before in this run: the list moved under us. Keep one row
                        # (the newer), and re-read from the page it was first on.
                        start = page_newest[first_page[number]]
                        reread_from = min(reread_from or start, start)
                        if row["updated_at"] <= seen["updated_at"]:
                            continue
                    else:
                        first_page[number] = page
                    self.issue_rows[number] = row
                    self.comment_urls[number] = data.get("comments_url") or ""
                    fresh.append(row)
                page_newest.append(max((self.issue_row(d)["updated_at"] for d in batch),
                                       default=page_newest[-1] if page_newest else ""))
                for row in fresh:
                    yield self.row("github_issues", **row)
                newest = max((r["updated_at"] for r in fresh), default=None)
                if newest and (self.watermark is None or newest > self.watermark):
                    self.watermark = newest
                    yield self.c.state_record(self.item.key, ISSUES_WATERMARK, newest,
                                              self.fetched_at)
                yield Checkpoint(f"issues page {self.pages_read}")
            if following is not None or self.pages_read >= self.c.max_issue_pages:
                return following is not None or (reread_from is not None and passes == 1)
            if reread_from is None or passes > 1:
                return False
            # One more pass over the stretch where an issue may have slipped past a page
            # boundary (GitHub's ``since`` is inclusive).
            log.info("github: %s issue list shifted during the sync; re-reading from %s",
                     self.item.key, reread_from)
            params = {**params, "since": _parse_time(reread_from).strftime("%Y-%m-%dT%H:%M:%SZ")}

    # -- first responses ---------------------------------------------------------------

    def to_look_up(self) -> list[dict[str, Any]]:
        """Issues whose responses are unknown or older than their last update, newest
        first, opened within ``response_history_days``."""
        stored = self.c.stored_issues(self.item.key)
        candidates: dict[int, dict[str, Any]] = {}
        for number, row in stored.items():
            # Re-written only to mark the lookup: the stored fetched_at and last_seen_run_id
            # stay (the listing did not see it again).
            row = {k: v for k, v in row.items() if k not in ("run_id", "source", "first_run_id")}
            candidates[number] = row
        for number, row in self.issue_rows.items():
            checked = (stored.get(number) or {}).get("responses_checked_at")
            candidates[number] = {**row, "fetched_at": self.fetched_at,
                                  "responses_checked_at": checked,
                                  "first_response_at": (stored.get(number) or {}).get(
                                      "first_response_at"),
                                  "first_response_by": (stored.get(number) or {}).get(
                                      "first_response_by")}
        start = (_iso(self.fetched_at_dt - timedelta(days=self.c.response_days))
                 if self.c.response_days else "")
        due = [r for r in candidates.values()
               if r["created_at"] >= start and (r.get("responses_checked_at") is None
                                                or r["responses_checked_at"] < r["updated_at"])]
        return sorted(due, key=lambda r: (r["created_at"], r["number"]), reverse=True)

    def responses(self) -> Iterator[Record | Checkpoint]:
        lookups = done = 0
        for issue in self.to_look_up():
            costs = bool(issue["is_pull_request"]) or issue["comments"] > 0
            if costs and lookups >= self.c.max_response_lookups:
                continue  # left unchecked (NULL): looked up on a later run
            lookups += costs
            try:
                earliest = self.earliest_responses(issue) if costs else {}
            except (ItemNotFound, GitHubError) as exc:
                log.info("github: %s", exc)  # left unchecked, tried again next run
                continue
            except Exception:
                # The lookups before are whole (rows and mark yielded together): keep them.
                yield Checkpoint(f"responses {done} before a fault")
                raise
            for who, r in earliest.items():
                yield self.row("github_responses", number=issue["number"], responder=who, **r)
            # The compatibility columns: the first reply by neither the author nor a bot.
            first = min(((r["responded_at"], who) for who, r in earliest.items()
                         if who != issue["author"] and not _is_bot(who, r["responder_type"])),
                        default=None)
            checked = {k: v for k, v in issue.items() if k not in ("repo", "framework")}
            checked.update(responses_checked_at=_iso(self.c.now()),
                           first_response_at=first[0] if first else None,
                           first_response_by=first[1] if first else None)
            yield self.row("github_issues", **checked)
            done += 1
            if done % LOOKUPS_PER_BATCH == 0:
                yield Checkpoint(f"responses {done}")
        if done % LOOKUPS_PER_BATCH:
            yield Checkpoint(f"responses {done}")

    def earliest_responses(self, issue: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each responder's earliest comment, review or review comment on one issue."""
        number = issue["number"]
        sources = []
        if issue["comments"] > 0:
            sources.append(("comment", self.comment_urls.get(number)
                            or f"{self.repo_url}/issues/{number}/comments", "created_at"))
        if issue["is_pull_request"]:
            sources.append(("review", f"{self.repo_url}/pulls/{number}/reviews", "submitted_at"))
            sources.append(("review_comment", f"{self.repo_url}/pulls/{number}/comments",
                            "created_at"))
        earliest: dict[str, dict[str, Any]] = {}
        for kind, url, when in sources:
            for batch, _ in self.c.pages(url, f"{self.item.key}#{number} {kind}s",
                                         {"per_page": self.c.per_page},
                                         self.c.max_response_pages):
                for data in batch:
                    at = _iso(data.get(when))
                    if at is None:  # a pending review has no submitted_at
                        continue
                    user = data.get("user") or {}
                    # A deleted account shows as GitHub's "ghost" user.
                    who = user.get("login") or "ghost"
                    if who in earliest and earliest[who]["responded_at"] <= at:
                        continue
                    earliest[who] = {"responder_type": user.get("type"),
                                     "author_association": data.get("author_association"),
                                     "kind": kind, "responded_at": at}
        return earliest

    def rate_limit_remaining(self) -> int | None:
        remaining, _ = self.c.gh.rate_limiting
        return remaining if remaining >= 0 else None
