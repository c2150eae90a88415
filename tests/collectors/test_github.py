"""The GitHub collector against recorded REST responses, with the HTTP layer faked.

The fixtures (tests/fixtures/github/, built by build.py in the documented shapes) describe
google/trax on 2026-11-27T12:00:00Z (FIXED_NOW), with ``per_page = 3`` so that lists span
pages. The fake serves the issue list as GitHub does: filtered by ``since``, sorted by
``updated`` ascending, cut into pages with ``Link: rel="next"`` headers; other lists get
a ``next`` link when a further recorded page exists.

First responses worked out by hand (response lookups reach back the 90-day metrics window,
from 2026-08-29T12:00Z): #2100 alice (the author) 01:00, github-actions[bot] 02:00, bob
10:00 (comments); #2101 dave's review at 03:00 before his 04:00 comment; #2102 erin (the
author) on the diff at 05:00, frank on the diff at 12:00 before his 20:00 comment, carol's
pending review (no submitted_at) is no response; #2103 has no comment and is no pull
request: checked without a request. The collector stores them all; metrics leave out
authors and bots when computed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
import responses

from fwsurvey.collectors.github import ISSUES_WATERMARK, GitHubCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.sources import Checkpoint, Item, ItemNotFound
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW, FIXTURES

GH = FIXTURES / "github"
API = "https://api.github.com"
RESET = "4102444800"  # 2100-01-01T00:00:00Z: a reset too far away to wait for
HEADERS = {"Content-Type": "application/json; charset=utf-8", "X-RateLimit-Limit": "60",
           "X-RateLimit-Remaining": "52", "X-RateLimit-Reset": "1795780800",
           "X-RateLimit-Used": "8", "X-RateLimit-Resource": "core",
           "X-GitHub-Api-Version-Selected": "2022-11-28"}
TRAX = Item("google/trax", "trax")
ISSUES = "/repos/google/trax/issues"


def body(name: str) -> str:
    return (GH / name).read_text(encoding="utf-8")


def recorded_issues() -> list[dict]:
    return [i for n in (1, 2, 3) for i in json.loads(body(f"issues-{n}.json"))]


def merged(headers: dict) -> dict:
    """The usual headers with a route's own; a None value removes one."""
    return {k: v for k, v in {**HEADERS, **headers}.items() if v is not None}


class FakeGitHub:
    """Serves the recorded files by (path, page); faults queue up before a route's answer."""

    def __init__(self, rsps: responses.RequestsMock, repo: str = "google/trax",
                 repo_file: str = "repo.json", served_as: str | None = None):
        r = f"/repos/{served_as or repo}"
        self.issues_path = f"{r}/issues"
        last_pulls = f'<{API}/repositories/220233428/pulls?state=open&per_page=1&page=10>'
        self.routes: dict[tuple[str, int], list] = {
            (f"/repos/{repo}", 1): [(200, {}, body(repo_file))],
            (f"{r}/pulls", 1): [(200, {"Link": f'{last_pulls}; rel="last"'},
                                 body("pulls-open.json"))],
            (f"{r}/contributors", 1): [(200, {}, body("contributors-1.json"))],
            (f"{r}/contributors", 2): [(200, {}, body("contributors-2.json"))],
            (f"{r}/stats/commit_activity", 1): [(202, {}, "{}"),
                                                (200, {}, body("commit-activity.json"))],
            (f"{r}/releases", 1): [(200, {}, body("releases.json"))],
            (f"{r}/tags", 1): [(200, {}, body("tags.json"))],
            ("/rate_limit", 1): [(200, {}, body("rate-limit.json"))],
        }
        for number in (2100, 2101, 2102):  # at the URLs the issues' JSON gives
            self.routes[(f"/repos/{repo}/issues/{number}/comments", 1)] = [
                (200, {}, body(f"comments-{number}.json"))]
        for number in (2101, 2102):
            self.routes[(f"{r}/pulls/{number}/reviews", 1)] = [
                (200, {}, body(f"reviews-{number}.json"))]
            self.routes[(f"{r}/pulls/{number}/comments", 1)] = [
                (200, {}, body(f"review-comments-{number}.json"))]
        #: The issue list GitHub holds now (tests change it mid-sync).
        self.issues = recorded_issues()
        #: Faults of issue-list pages by page number, served before the page.
        self.issue_faults: dict[int, list] = {}
        #: Called after an issue page is served, with its number.
        self.after_issue_page: Callable[[int], None] = lambda page: None
        self.calls: list[requests.PreparedRequest] = []
        rsps.add_callback(responses.GET, re.compile(r"https://api\.github\.com(:443)?/.*"),
                          self.answer)

    def fault(self, path: str, page: int, *answers) -> None:
        """Answer ``path`` page ``page`` with ``answers`` first (tuples or exceptions)."""
        if path == self.issues_path:
            self.issue_faults.setdefault(page, [])[:0] = list(answers)
        else:
            self.routes[(path, page)][:0] = list(answers)

    def answer(self, request: requests.PreparedRequest):
        self.calls.append(request)
        parts = urlsplit(request.url)
        query = parse_qs(parts.query)
        page = int(query.get("page", ["1"])[0])
        if parts.path == self.issues_path:
            return self.issue_page(parts, query, page)
        queue = self.routes.get((parts.path, page))
        if not queue:
            return 404, HEADERS, body("not-found.json")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        status, headers, text = answer
        if (parts.path, page + 1) in self.routes and "Link" not in headers:
            headers = {**headers, "Link": self.link(parts, query, page + 1)}
        return status, merged(headers), text

    def issue_page(self, parts, query, page: int):
        if self.issue_faults.get(page):
            answer = self.issue_faults[page].pop(0)
            if isinstance(answer, Exception):
                raise answer
            status, headers, text = answer
            return status, merged(headers), text
        since = query.get("since", [""])[0].replace("Z", "+00:00")
        listed = sorted((i for i in self.issues
                         if not since or i["updated_at"].replace("Z", "+00:00") >= since),
                        key=lambda i: i["updated_at"])
        per_page = int(query.get("per_page", ["30"])[0])
        batch = listed[(page - 1) * per_page:page * per_page]
        headers = dict(HEADERS)
        if page * per_page < len(listed):
            headers["Link"] = self.link(parts, query, page + 1)
        text = json.dumps(batch)  # as sent, before the list changes
        self.after_issue_page(page)
        return 200, headers, text

    @staticmethod
    def link(parts, query, page: int) -> str:
        q = urlencode({**{k: v[0] for k, v in query.items()}, "page": page})
        return f'<{urlunsplit((parts.scheme, parts.netloc, parts.path, q, ""))}>; rel="next"'

    def update_issue(self, number: int, updated: str) -> None:
        for i in self.issues:
            if i["number"] == number:
                i["updated_at"] = updated

    def paths(self, path: str) -> list[str]:
        return [c.url for c in self.calls if urlsplit(c.url).path == path]

    def since(self) -> list[str]:
        """The ``since`` of each issue listing begun (first pages only)."""
        queries = [parse_qs(urlsplit(u).query) for u in self.paths(self.issues_path)]
        return [q.get("since", [""])[0] for q in queries if "page" not in q]




def collector(config, sleeps: list | None = None, now=FIXED_NOW) -> GitHubCollector:
    return GitHubCollector(config, now=lambda: now,
                           sleep=(sleeps.append if sleeps is not None else lambda s: None))


def fetch(c: GitHubCollector, item: Item = TRAX) -> list:
    """Every record of one fetch (checkpoints left out)."""
    return [r for r in c.fetch(item) if not isinstance(r, Checkpoint)]


def rows(records, table):
    return [r.row for r in records if r.table == table]


def run(config, sleeps: list | None = None, now=FIXED_NOW):
    """One collect run of the github source into the configuration's database."""
    store = Store(config.database)
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config, sleeps, now))
    return store, outcome


def test_repository_snapshot_lists_issues_and_responses(config, fake):
    api = FakeGitHub(fake)
    sleeps: list[float] = []
    entries = list(collector(config, sleeps).fetch(TRAX))
    records = [r for r in entries if not isinstance(r, Checkpoint)]

    [repo] = rows(records, "github_repos")
    assert repo["full_name"] == "google/trax" and repo["renamed"] is False
    assert (repo["stars"], repo["forks"], repo["subscribers"]) == (8187, 819, 152)
    # open_issues_count 110 includes the 10 open pull requests (Link rel="last" page=10).
    assert (repo["open_issues"], repo["open_pull_requests"]) == (100, 10)
    assert repo["license"] == "Apache-2.0" and repo["default_branch"] == "master"
    assert repo["archived"] is False and "jax" in repo["topics"]
    assert repo["created_at"] == "2019-10-05T16:59:46+00:00"
    assert (repo["contributor_count"], repo["contributors_complete"]) == (5, True)
    assert repo["commit_activity_status"] == "ok" and repo["unavailable"] is None
    assert (repo["commits_last_52_weeks"], repo["commits_last_13_weeks"]) == (51, 12)
    assert (repo["release_count"], repo["tag_count"]) == (3, 4)
    assert repo["issues_synced_until"] == "2026-11-01T00:00:00+00:00"
    assert repo["rate_limit_remaining"] == 52
    assert sleeps == [0.0]  # 202 first ("computing"), then the statistics

    weeks = rows(records, "github_commit_activity")
    assert len(weeks) == 52 and weeks[-1]["week"] == "2026-11-22"
    contributors = {c["login"]: c for c in rows(records, "github_contributors")}
    assert contributors["lukaszkaiser"]["contributions"] == 400
    assert contributors["copybara-service[bot]"]["is_bot"] is True
    # Two pages of 3, the second reached by the Link header of the first.
    assert len(api.paths("/repos/google/trax/contributors")) == 2
    releases = {(r["kind"], r["tag_name"]): r for r in rows(records, "github_releases")}
    assert releases[("tag", "v1.4.1")]["published_at"] == "2021-10-26T20:27:35+00:00"
    assert releases[("tag", "v1.3.8")]["commit_sha"] == "d" * 40

    listed = [i for i in rows(records, "github_issues") if "responses_checked_at" not in i]
    assert [i["number"] for i in listed] == [1001, 1500, 2100, 2000, 2101, 2102, 2103]
    # First run (history_days = 0): the whole history, oldest update first, 3 pages by Link.
    first = parse_qs(urlsplit(api.paths(ISSUES)[0]).query)
    assert first == {"state": ["all"], "sort": ["updated"], "direction": ["asc"],
                     "per_page": ["3"]}
    assert len(api.paths(ISSUES)) == 3
    assert [s["value"] for s in rows(records, "source_state")] == [
        "2026-09-03T00:00:00+00:00", "2026-10-11T00:00:00+00:00", "2026-11-01T00:00:00+00:00"]
    # A checkpoint after the lists, after each issue page, after the responses, at the end.
    assert sum(isinstance(e, Checkpoint) for e in entries) == 1 + 3 + 1 + 1

    responses_ = {(r["number"], r["responder"]): r for r in rows(records, "github_responses")}
    assert sorted(responses_) == [(2100, "alice"), (2100, "bob"), (2100, "github-actions[bot]"),
                                  (2101, "dave"), (2102, "erin"), (2102, "frank")]
    assert responses_[(2101, "dave")]["kind"] == "review"
    assert responses_[(2101, "dave")]["responded_at"] == "2026-10-01T03:00:00+00:00"
    assert responses_[(2102, "frank")]["kind"] == "review_comment"
    assert responses_[(2102, "frank")]["responded_at"] == "2026-10-10T12:00:00+00:00"
    assert responses_[(2100, "github-actions[bot]")]["responder_type"] == "Bot"
    checked = {i["number"]: i for i in rows(records, "github_issues")
               if "responses_checked_at" in i}
    assert sorted(checked) == [2100, 2101, 2102, 2103]  # opened in the window; newest first
    assert all(i["responses_checked_at"] == "2026-11-27T12:00:00+00:00"
               for i in checked.values())
    assert (checked[2100]["first_response_by"], checked[2101]["first_response_by"],
            checked[2102]["first_response_by"]) == ("bob", "dave", "frank")
    assert checked[2103]["first_response_at"] is None
    assert not api.paths("/repos/google/trax/issues/2103/comments")  # no comment: no request
    assert rows(records, "community_metrics") == []  # computed from the store, not here


def test_second_run_resumes_from_the_watermark_and_reuses_stored_responses(config, fake):
    api = FakeGitHub(fake)
    store, first = run(config)
    assert first.status == "partial"  # jax-ml/jax is not in the fixtures: not found
    assert [(e.item, e.kind) for e in first.errors] == [("jax-ml/jax", "not_found")]
    assert store.source_state("github") == {
        ("google/trax", ISSUES_WATERMARK): "2026-11-01T00:00:00+00:00"}
    assert store.query("SELECT count(*) AS n FROM github_responses") == [{"n": 6}]
    api.calls.clear()
    store, _ = run(config)
    # The watermark minus the 1 h overlap, not the metrics window's start.
    assert api.since() == ["2026-10-31T23:00:00Z"]
    assert len(api.paths(ISSUES)) == 1  # one page: #2103 only
    assert not [c for c in api.calls if "/comments" in c.url or "/reviews" in c.url]
    assert store.query("SELECT count(*) AS n FROM github_issues") == [{"n": 7}]
    assert store.query("SELECT count(*) AS n FROM github_repos") == [{"n": 2}]  # history
    [row] = store.query("SELECT first_response_at, responses_checked_at, first_run_id, run_id,"
                        " last_seen_run_id FROM github_issues WHERE number = 2100")
    assert row == {"first_response_at": "2026-09-01T10:00:00+00:00",
                   "responses_checked_at": "2026-11-27T12:00:00+00:00", "first_run_id": 1,
                   "run_id": 1, "last_seen_run_id": 1}

    # A day later #2100 got a new comment: its responses are looked up again, alone.
    later = FIXED_NOW + timedelta(days=1)
    api.update_issue(2100, "2026-11-27T14:00:00Z")
    api.calls.clear()
    store, _ = run(config, now=later)
    assert [urlsplit(c.url).path for c in api.calls if "/comments" in c.url
            or "/reviews" in c.url] == ["/repos/google/trax/issues/2100/comments"]
    [row] = store.query("SELECT responses_checked_at, last_seen_run_id FROM github_issues"
                        " WHERE number = 2100")
    assert row == {"responses_checked_at": "2026-11-28T12:00:00+00:00", "last_seen_run_id": 3}


def test_response_lookups_go_newest_first_and_leave_the_rest_unchecked(config, fake):
    api = FakeGitHub(fake)
    config.source("github").options["max_response_lookups"] = 1
    store, _ = run(config)
    checked = store.query("SELECT number, responses_checked_at IS NOT NULL AS checked"
                          " FROM github_issues WHERE created_at >= '2026-08-29' ORDER BY number")
    # #2103 costs no request; of the rest the newest, #2102, fits the budget of one.
    assert checked == [{"number": 2100, "checked": 0}, {"number": 2101, "checked": 0},
                       {"number": 2102, "checked": 1}, {"number": 2103, "checked": 1}]
    assert {r["number"] for r in store.query("SELECT number FROM github_responses")} == {2102}
    api.calls.clear()
    store, _ = run(config)  # the next run takes the next newest, from the store
    assert [r["number"] for r in store.query(
        "SELECT number FROM github_issues WHERE responses_checked_at IS NOT NULL"
        " ORDER BY number")] == [2101, 2102, 2103]


def test_issue_page_budget_stops_cleanly_and_the_next_run_goes_on(config, fake):
    api = FakeGitHub(fake)
    config.source("github").options["max_issue_pages"] = 2
    store, outcome = run(config)
    assert [(e.item, e.kind) for e in outcome.errors] == [("google/trax", "incomplete"),
                                                          ("jax-ml/jax", "not_found")]
    assert "stopped after 2 pages (max_issue_pages)" in outcome.errors[0].message
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-10-11T00:00:00+00:00")
    assert store.query("SELECT count(*) AS n FROM github_issues") == [{"n": 6}]
    assert store.query("SELECT issues_synced_until FROM github_repos") == [
        {"issues_synced_until": "2026-10-11T00:00:00+00:00"}]
    api.calls.clear()
    store, outcome = run(config)
    # Not the same first pages again: from the watermark (minus 1 h), one page to the end.
    assert api.since() == ["2026-10-10T23:00:00Z"] and len(api.paths(ISSUES)) == 1
    assert [(e.item, e.kind) for e in outcome.errors] == [("jax-ml/jax", "not_found")]
    assert store.query("SELECT count(*) AS n FROM github_issues") == [{"n": 7}]


def test_first_sync_reaches_back_history_days(config, fake):
    api = FakeGitHub(fake)
    config.source("github").options.pop("history_days")  # default: the metrics window
    numbers = [i["number"] for i in rows(fetch(collector(config)), "github_issues")
               if "responses_checked_at" not in i]
    assert api.since() == ["2026-08-29T12:00:00Z"]
    assert numbers == [2100, 2000, 2101, 2102, 2103]


def test_missing_repository_is_an_item_error(config, fake):
    FakeGitHub(fake)
    with pytest.raises(ItemNotFound, match=r"jax-ml/jax: not found on GitHub \(HTTP 404\)"):
        fetch(collector(config), Item("jax-ml/jax", "jax"))


def test_renamed_repository_is_followed_and_flagged(config, fake):
    api = FakeGitHub(fake, repo_file="repo-renamed.json", served_as="trax-ml/trax")
    api.routes[("/repos/google/trax", 1)] = [
        (301, {"Location": f"{API}/repositories/220233428"},
         '{"message": "Moved Permanently", "url": "https://api.github.com/repositories/220233428"}')]
    api.routes[("/repositories/220233428", 1)] = [(200, {}, body("repo-renamed.json"))]
    records = fetch(collector(config))
    [repo] = rows(records, "github_repos")
    assert repo["repo"] == "google/trax"  # the configured name stays the key
    assert (repo["full_name"], repo["renamed"]) == ("trax-ml/trax", True)
    assert len({i["number"] for i in rows(records, "github_issues")}) == 7


def test_archived_repository_is_flagged(config, fake):
    FakeGitHub(fake, repo_file="repo-archived.json")
    assert rows(fetch(collector(config)), "github_repos")[0]["archived"] is True


def test_token_is_used_but_never_stored_or_logged(config, fake, monkeypatch, caplog):
    token = "ghp_FAKEtoken0123456789abcdefABCDEF0123"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    api = FakeGitHub(fake)
    api.fault(ISSUES, 2, (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": RESET},
                          body("primary-rate-limit.json")))
    caplog.set_level(logging.DEBUG)
    store, outcome = run(config)
    assert outcome.status == "partial"
    assert api.calls[0].headers["Authorization"].endswith(token)  # it was used
    assert all(c.headers["Authorization"].endswith(token) for c in api.calls)
    store.close()
    dumped = "\n".join(Store(config.database).db.conn.iterdump())
    assert "google/trax" in dumped and token not in dumped
    assert token not in caplog.text and token[4:] not in caplog.text
    assert token not in json.dumps([e.message for e in outcome.errors]) + (outcome.reason or "")


def test_http_cache_revalidates_and_keeps_issue_pages_out(config, fake, tmp_path, monkeypatch):
    token = "ghp_FAKEtoken0123456789abcdefABCDEF0123"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    cache = tmp_path / "cache" / "github"
    config.source("github").options["http_cache"] = str(cache)
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax", 1)] = [(200, {"ETag": '"abc123"'}, body("repo.json"))]
    fetch(collector(config))
    api.routes[("/repos/google/trax", 1)] = [(304, {"ETag": '"abc123"'}, "")]
    api.calls.clear()
    records = fetch(collector(config))
    [request] = [c for c in api.calls if urlsplit(c.url).path == "/repos/google/trax"]
    assert request.headers.get("If-None-Match") == '"abc123"'
    assert rows(records, "github_repos")[0]["stars"] == 8187  # served from the cache
    stored = b"".join(p.read_bytes() for p in Path(cache.parent).iterdir())
    assert token.encode() not in stored
    # Issue pages (a since that moves every run) and lookups never enter the cache: it is
    # bounded by the fixed set of repository URLs.
    import requests_cache

    cached = [urlsplit(r.url).path for r in requests_cache.SQLiteCache(cache).responses.values()]
    assert cached and not [p for p in cached if "/issues" in p or "/pulls/" in p]


def test_check_reports_the_rate_limit(config, fake):
    FakeGitHub(fake)
    probe = collector(config).check()
    assert probe.reachable and "52 requests left" in probe.detail


def test_a_token_github_echoes_is_redacted_from_database_report_logs_and_output(
        write_config, fake, tmp_path, monkeypatch, capsys):
    """A 403 whose body quotes the Authorization value: the token is stored and shown
    nowhere (database file and WAL, report, log lines, output), the marker instead."""
    from fwsurvey import cli

    token = "ghp_ECHOEDtoken0123456789abcdefABCDEF42"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    echo = json.dumps({"message": f"Resource not accessible with Authorization: Bearer {token}",
                       "documentation_url": "https://docs.github.com/rest"})
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax", 1)] = [(403, {}, echo)]
    api.routes[("/repos/jax-ml/jax", 1)] = [(403, {}, echo)]
    api.routes[("/rate_limit", 1)] = [(403, {}, echo)]
    path = write_config()
    text = path.read_text()
    path.write_text(text.replace("[sources.github]\nenabled = false",
                                 "[sources.github]\nenabled = true")
                        .replace("[sources.pypi]\n", "[sources.pypi]\nenabled = false\n"))

    def invoke(*args: str) -> int:
        with pytest.raises(SystemExit) as info:
            cli.main([*args, "--config", str(path), "--verbose"])
        return info.value.code

    # Every repository answered 403: each is an item error, and nothing was collected.
    assert invoke("collect", "--source", "github") == cli.EXIT_FAILED
    assert invoke("report") == cli.EXIT_OK
    assert invoke("status") in (cli.EXIT_DEGRADED, cli.EXIT_FAILED)
    assert api.calls[0].headers["Authorization"].endswith(token)  # it was sent
    output = capsys.readouterr()
    shown = output.out + output.err
    assert token not in shown and "[REDACTED GITHUB_TOKEN]" in shown

    out = tmp_path / "out"
    stored = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert (out / "test.db").exists() and (out / "report" / "report.md").exists()
    assert token.encode() not in stored
    store = Store(out / "test.db")
    # A 403 on one repository is that item's error (Contract E), not the source's end.
    errors = store.query("SELECT item, kind, message FROM item_errors WHERE source = 'github'"
                         " ORDER BY item")
    assert [(e["item"], e["kind"]) for e in errors] == [("google/trax", "error"),
                                                        ("jax-ml/jax", "error")]
    assert errors[1]["message"] == ("GitHubError: google/trax: HTTP 403 Resource not accessible"
                                    " with Authorization: Bearer [REDACTED GITHUB_TOKEN]"
                                    ).replace("google/trax", "jax-ml/jax")
    assert "[REDACTED GITHUB_TOKEN]" in (out / "report" / "report.md").read_text()


def test_the_http_cache_follows_the_database_used(config, tmp_path):
    config.source("github").options.pop("http_cache")
    assert collector(config).http_cache == tmp_path / "out" / "http-cache" / "github"
    copy = config.with_database(tmp_path / "elsewhere" / "copy.db")
    assert GitHubCollector(copy).http_cache == tmp_path / "elsewhere" / "http-cache" / "github"
