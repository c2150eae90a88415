"""The GitHub collector against recorded REST responses, with the HTTP layer faked.

The fixtures (tests/fixtures/github/, built by build.py in the documented shapes) describe
google/trax on 2026-11-27T12:00:00Z (FIXED_NOW), with ``per_page = 3`` so that lists span
pages. Metric values worked out by hand from them (90-day window from 2026-08-29T12:00Z):

* time to first response: #2100 (opened 09-01 00:00 by alice; alice's own reply and a
  bot's are skipped; bob at 10:00) 10 h, #2101 4 h, #2102 20 h; #2103 has no comment.
  Median 10 h; 90th percentile 10 + (20 - 10) * 0.8 = 18 h; n = 3.
* issue age: open issues opened in the window, #2100 (87.5 days) and #2103 (26.5 days):
  median 57 days.
* change request closure ratio: pull requests opened in the window #2101, #2102; closed in
  it #2101: 0.5.
* contributor absence factor: humans 400, 300, 200, 100 (the bot's 900 left out): 400 < 500,
  400 + 300 >= 500, so 2.
* commit activity: week i of 52 has i % 3 commits: 51 in the year, 12 in the last 13 weeks.
* maintained: 12 commits + 5 issues updated in 90 days = 17 >= 13: score 10.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from fwsurvey.collectors.github import ISSUES_WATERMARK, GitHubCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import Item, ItemNotFound, PartialItem
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


def body(name: str) -> str:
    return (GH / name).read_text(encoding="utf-8")


class FakeGitHub:
    """Serves the recorded files by (path, page); faults queue up before a route's answer."""

    def __init__(self, rsps: responses.RequestsMock, repo: str = "google/trax",
                 repo_file: str = "repo.json", served_as: str | None = None):
        r = f"/repos/{served_as or repo}"
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
            (f"{r}/issues", 1): [(200, {}, body("issues-1.json"))],
            (f"{r}/issues", 2): [(200, {}, body("issues-2.json"))],
            (f"{r}/issues", 3): [(200, {}, body("issues-3.json"))],
            ("/rate_limit", 1): [(200, {}, body("rate-limit.json"))],
        }
        for number in (2100, 2101, 2102):  # at the URLs the issues' JSON gives
            self.routes[(f"/repos/{repo}/issues/{number}/comments", 1)] = [
                (200, {}, body(f"comments-{number}.json"))]
        self.calls: list[requests.PreparedRequest] = []
        rsps.add_callback(responses.GET, re.compile(r"https://api\.github\.com(:443)?/.*"),
                          self.answer)

    def fault(self, path: str, page: int, *answers) -> None:
        """Answer ``path`` page ``page`` with ``answers`` first (tuples or exceptions)."""
        self.routes[(path, page)][:0] = list(answers)

    def answer(self, request: requests.PreparedRequest):
        self.calls.append(request)
        parts = urlsplit(request.url)
        page = int(parse_qs(parts.query).get("page", ["1"])[0])
        queue = self.routes.get((parts.path, page))
        if not queue:
            return 404, HEADERS, body("not-found.json")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        status, headers, text = answer
        return status, {**HEADERS, **headers}, text

    def paths(self, path: str) -> list[str]:
        return [c.url for c in self.calls if urlsplit(c.url).path == path]


@pytest.fixture
def config(write_config):
    return load_config(write_config())


@pytest.fixture
def fake():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def collector(config, sleeps: list | None = None) -> GitHubCollector:
    return GitHubCollector(config, now=lambda: FIXED_NOW,
                           sleep=(sleeps.append if sleeps is not None else lambda s: None))


def rows(records, table):
    return [r.row for r in records if r.table == table]


def metrics(records) -> dict[str, dict]:
    return {m["metric"]: m for m in rows(records, "community_metrics")}


def test_repository_snapshot_lists_and_metrics(config, fake):
    api = FakeGitHub(fake)
    sleeps: list[float] = []
    records = collector(config, sleeps).fetch(TRAX)

    [repo] = rows(records, "github_repos")
    assert repo["full_name"] == "google/trax" and repo["renamed"] is False
    assert (repo["stars"], repo["forks"], repo["subscribers"]) == (8187, 819, 152)
    # open_issues_count 110 includes the 10 open pull requests (Link rel="last" page=10).
    assert (repo["open_issues"], repo["open_pull_requests"]) == (100, 10)
    assert repo["license"] == "Apache-2.0" and repo["default_branch"] == "master"
    assert repo["archived"] is False and "jax" in repo["topics"]
    assert repo["created_at"] == "2019-10-05T16:59:46+00:00"
    assert repo["pushed_at"] == "2026-10-01T10:00:00+00:00"
    assert (repo["contributor_count"], repo["contributors_complete"]) == (5, True)
    assert repo["commit_activity_status"] == "ok"
    assert (repo["commits_last_52_weeks"], repo["commits_last_13_weeks"]) == (51, 12)
    assert (repo["release_count"], repo["tag_count"]) == (3, 4)
    assert repo["issues_synced_until"] == "2026-11-01T00:00:00+00:00"
    assert repo["rate_limit_remaining"] == 52
    assert repo["fetched_at"] == "2026-11-27T12:00:00+00:00"

    # 202 first ("computing"), then the statistics: one pause of stats_wait between.
    assert sleeps == [0.0]
    assert len(api.paths("/repos/google/trax/stats/commit_activity")) == 2
    weeks = rows(records, "github_commit_activity")
    assert len(weeks) == 52 and weeks[-1]["week"] == "2026-11-22"
    assert weeks[-1]["commits"] == 51 % 3 and weeks[-2]["days"] == [0, 2, 0, 0, 0, 0, 0]

    contributors = {c["login"]: c for c in rows(records, "github_contributors")}
    assert contributors["lukaszkaiser"]["contributions"] == 400
    assert contributors["copybara-service[bot]"]["is_bot"] is True
    assert len(api.paths("/repos/google/trax/contributors")) == 2  # two pages of 3

    releases = {(r["kind"], r["tag_name"]): r for r in rows(records, "github_releases")}
    assert releases[("release", "v1.4.1")]["published_at"] == "2021-10-26T20:27:35+00:00"
    assert releases[("tag", "v1.4.1")]["published_at"] == "2021-10-26T20:27:35+00:00"
    assert releases[("tag", "v1.3.8")]["published_at"] is None  # a tag without a release
    assert releases[("tag", "v1.3.8")]["commit_sha"] == "d" * 40

    issues = {i["number"]: i for i in rows(records, "github_issues")}
    assert sorted(issues) == [1001, 1500, 2000, 2100, 2101, 2102, 2103]  # 3 pages: 3, 3, 1
    assert issues[1500]["is_pull_request"] is True
    assert issues[1500]["merged_at"] == "2021-01-05T00:00:00+00:00"
    assert issues[2100]["first_response_at"] == "2026-09-01T10:00:00+00:00"
    assert issues[2100]["first_response_by"] == "bob"  # not alice (author), not the bot
    assert issues[2103]["first_response_at"] is None  # no comment yet
    assert "first_response_at" not in issues[2000]  # opened before the window: not looked up
    # First run: no watermark, so the whole history, oldest update first.
    first = parse_qs(urlsplit(api.paths("/repos/google/trax/issues")[0]).query)
    assert first == {"state": ["all"], "sort": ["updated"], "direction": ["asc"],
                     "per_page": ["3"]}
    [state] = [r.row for r in records if r.table == "source_state"]
    assert (state["name"], state["value"]) == (ISSUES_WATERMARK, "2026-11-01T00:00:00+00:00")

    m = metrics(records)
    assert m["time_to_first_response_median"]["value"] == 10.0
    assert m["time_to_first_response_p90"]["value"] == 18.0
    assert m["time_to_first_response_median"]["sample_size"] == 3
    assert m["time_to_first_response_median"]["window_start"] == "2026-08-29T12:00:00+00:00"
    assert m["time_to_first_response_median"]["window_end"] == "2026-11-27T12:00:00+00:00"
    assert (m["issue_age_median"]["value"], m["issue_age_median"]["sample_size"]) == (57.0, 2)
    assert m["change_request_closure_ratio"]["value"] == 0.5
    assert m["contributor_absence_factor"]["value"] == 2
    assert m["contributor_absence_factor"]["sample_size"] == 4
    assert m["releases_in_window"]["value"] == 0  # trax's last release was in 2021
    assert m["median_days_between_releases"]["value"] is None
    assert (m["maintained_score"]["value"], m["maintained_score"]["sample_size"]) == (10.0, 17)


def test_second_run_is_incremental_from_the_watermark(config, fake, tmp_path):
    api = FakeGitHub(fake)
    store = Store(tmp_path / "s.db")
    first = collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    assert first.status == "partial"  # jax-ml/jax is not in the fixtures: not found
    assert [(e.item, e.kind) for e in first.errors] == [("jax-ml/jax", "not_found")]
    assert store.source_state("github") == {
        ("google/trax", ISSUES_WATERMARK): "2026-11-01T00:00:00+00:00"}
    api.calls.clear()
    collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    query = parse_qs(urlsplit(api.paths("/repos/google/trax/issues")[0]).query)
    # watermark - 24 h is later than the window's start: the window is re-read.
    assert query["since"] == ["2026-08-29T12:00:00Z"]
    assert store.query("SELECT count(*) AS n FROM github_issues") == [{"n": 7}]
    assert store.query("SELECT count(*) AS n FROM github_repos") == [{"n": 2}]  # history
    [row] = store.query("SELECT first_response_at, first_run_id, run_id FROM github_issues"
                        " WHERE number = 2100")
    assert row == {"first_response_at": "2026-09-01T10:00:00+00:00", "first_run_id": 1,
                   "run_id": 2}


def test_primary_rate_limit_keeps_whole_pages_and_stops_the_source(config, fake, tmp_path):
    api = FakeGitHub(fake)
    api.fault("/repos/google/trax/issues", 2,
              (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": RESET},
               body("primary-rate-limit.json")))
    with pytest.raises(PartialItem) as info:
        collector(config).fetch(TRAX)
    assert "rate limit exhausted" in str(info.value)
    assert "resets at 2100-01-01T00:00:00+00:00" in str(info.value)
    assert info.value.stop_source
    kept = info.value.records
    assert sorted(i["number"] for i in rows(kept, "github_issues")) == [1001, 1500, 2100]
    [state] = rows(kept, "source_state")
    assert state["value"] == "2026-09-03T00:00:00+00:00"  # the last stored issue, not beyond
    # A short batch gives no windowed metric; those of complete lists are kept.
    assert {m["metric"] for m in rows(kept, "community_metrics")} == {
        "releases_in_window", "median_days_between_releases", "contributor_absence_factor"}
    assert len(rows(kept, "github_repos")) == 1

    store = Store(tmp_path / "s.db")
    api.fault("/repos/google/trax/issues", 2,
              (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": RESET},
               body("primary-rate-limit.json")))
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config))
    assert outcome.status == "partial"
    assert [(e.item, e.kind) for e in outcome.errors] == [("google/trax", "incomplete"),
                                                          ("jax-ml/jax", "incomplete")]
    assert "not attempted" in outcome.errors[1].message
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-09-03T00:00:00+00:00")


def test_secondary_rate_limit_with_retry_after_is_retried(config, fake):
    api = FakeGitHub(fake)
    api.fault("/repos/google/trax/contributors", 1,
              (403, {"Retry-After": "60"}, body("secondary-rate-limit.json")))
    records = collector(config).fetch(TRAX)
    assert len(api.paths("/repos/google/trax/contributors")) == 3  # 403, then pages 1 and 2
    assert len(rows(records, "github_contributors")) == 5


def test_server_errors_then_success_are_retried(config, fake):
    api = FakeGitHub(fake)
    api.fault("/repos/google/trax/releases", 1, (502, {}, '{"message": "Server Error"}'),
              (503, {}, '{"message": "Service Unavailable"}'))
    api.fault("/repos/google/trax/stats/commit_activity", 1, (500, {}, "{}"))
    records = collector(config).fetch(TRAX)
    assert len(api.paths("/repos/google/trax/releases")) == 3
    assert len([r for r in rows(records, "github_releases") if r["kind"] == "release"]) == 3
    assert rows(records, "github_repos")[0]["commit_activity_status"] == "ok"


def test_statistics_never_ready_are_recorded_as_not_ready(config, fake):
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax/stats/commit_activity", 1)] = [(202, {}, "{}")]
    sleeps: list[float] = []
    records = collector(config, sleeps).fetch(TRAX)
    [repo] = rows(records, "github_repos")
    assert repo["commit_activity_status"] == "not ready"
    assert repo["commits_last_52_weeks"] is None and repo["commits_last_13_weeks"] is None
    assert rows(records, "github_commit_activity") == []  # not an empty year of commits
    assert len(api.paths("/repos/google/trax/stats/commit_activity")) == 3  # stats_attempts
    assert sleeps == [0.0, 0.0]
    # Without commit statistics, "maintained" counts the 5 recently updated issues alone.
    assert metrics(records)["maintained_score"]["sample_size"] == 5


def test_timeout_makes_the_source_unreachable(config, fake, tmp_path):
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax", 1)] = [requests.exceptions.ReadTimeout("read timed out")]
    store = Store(tmp_path / "s.db")
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config))
    assert outcome.status == "unreachable"
    assert "timed out" in outcome.reason
    assert [e.kind for e in outcome.errors] == ["unreachable", "unreachable"]
    assert store.query("SELECT count(*) AS n FROM github_repos") == [{"n": 0}]


def test_connection_dropped_on_page_3_of_5_keeps_pages_1_and_2(config, fake, tmp_path):
    api = FakeGitHub(fake)
    last = f'<{API}/repositories/220233428/issues?state=all&per_page=3&page=5>; rel="last"'
    for page in (1, 2):
        status, headers, text = api.routes[("/repos/google/trax/issues", page)][0]
        api.routes[("/repos/google/trax/issues", page)] = [(status, {"Link": last}, text)]
    api.routes[("/repos/google/trax/issues", 3)] = [
        requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")]
    store = Store(tmp_path / "s.db")
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config))
    assert outcome.status == "partial"
    assert outcome.errors[0].kind == "incomplete"
    assert "stopped after 2 issue pages" in outcome.errors[0].message
    numbers = [r["number"] for r in store.query("SELECT number FROM github_issues"
                                                " ORDER BY updated_at")]
    assert numbers == [1001, 1500, 2100, 2000, 2101, 2102]  # two whole pages, nothing more
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-10-11T00:00:00+00:00")  # the newest stored update, not beyond
    assert store.query("SELECT count(*) AS n FROM community_metrics"
                       " WHERE metric LIKE 'time_to_first%'") == [{"n": 0}]


def test_missing_repository_is_an_item_error(config, fake):
    FakeGitHub(fake)
    with pytest.raises(ItemNotFound, match=r"jax-ml/jax: not found on GitHub \(HTTP 404\)"):
        collector(config).fetch(Item("jax-ml/jax", "jax"))


def test_renamed_repository_is_followed_and_flagged(config, fake):
    api = FakeGitHub(fake, repo_file="repo-renamed.json", served_as="trax-ml/trax")
    api.routes[("/repos/google/trax", 1)] = [
        (301, {"Location": f"{API}/repositories/220233428"},
         '{"message": "Moved Permanently", "url": "https://api.github.com/repositories/220233428"}')]
    api.routes[("/repositories/220233428", 1)] = [(200, {}, body("repo-renamed.json"))]
    records = collector(config).fetch(TRAX)
    [repo] = rows(records, "github_repos")
    assert repo["repo"] == "google/trax"  # the configured name stays the key
    assert (repo["full_name"], repo["renamed"]) == ("trax-ml/trax", True)
    assert len(rows(records, "github_issues")) == 7


def test_archived_repository_is_not_maintained(config, fake):
    FakeGitHub(fake, repo_file="repo-archived.json")
    records = collector(config).fetch(TRAX)
    assert rows(records, "github_repos")[0]["archived"] is True
    maintained = metrics(records)["maintained_score"]
    assert maintained["value"] == 0.0 and "(archived)" in maintained["basis"]


def test_token_is_used_but_never_stored_or_logged(config, fake, tmp_path, monkeypatch, caplog):
    token = "ghp_FAKEtoken0123456789abcdefABCDEF0123"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    api = FakeGitHub(fake)
    api.fault("/repos/google/trax/issues", 2,
              (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": RESET},
               body("primary-rate-limit.json")))
    caplog.set_level(logging.DEBUG)
    store = Store(tmp_path / "s.db")
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config))
    assert outcome.status == "partial"
    assert api.calls[0].headers["Authorization"].endswith(token)  # it was used
    store.close()
    dumped = "\n".join(Store(tmp_path / "s.db").db.conn.iterdump())
    assert "google/trax" in dumped and token not in dumped
    assert token not in caplog.text and token[4:] not in caplog.text
    assert token not in json.dumps([e.message for e in outcome.errors]) + (outcome.reason or "")


def test_http_cache_revalidates_and_a_304_costs_nothing(config, fake, tmp_path, monkeypatch):
    token = "ghp_FAKEtoken0123456789abcdefABCDEF0123"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    cache = tmp_path / "cache" / "github"
    settings = config.source("github")
    settings.options["http_cache"] = str(cache)
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax", 1)] = [(200, {"ETag": '"abc123"'}, body("repo.json"))]
    collector(config).fetch(TRAX)
    api.routes[("/repos/google/trax", 1)] = [(304, {"ETag": '"abc123"'}, "")]
    api.calls.clear()
    records = collector(config).fetch(TRAX)
    [request] = [c for c in api.calls if urlsplit(c.url).path == "/repos/google/trax"]
    assert request.headers.get("If-None-Match") == '"abc123"'
    assert rows(records, "github_repos")[0]["stars"] == 8187  # served from the cache
    stored = b"".join(p.read_bytes() for p in Path(cache.parent).iterdir())
    assert token.encode() not in stored


def test_check_reports_the_rate_limit(config, fake):
    FakeGitHub(fake)
    probe = collector(config).check()
    assert probe.reachable and "52 requests left" in probe.detail


def test_issue_page_budget_stops_one_repository_not_the_source(config, fake, tmp_path):
    FakeGitHub(fake)
    config.source("github").options["max_issue_pages"] = 2
    store = Store(tmp_path / "s.db")
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config))
    assert [(e.item, e.kind) for e in outcome.errors] == [("google/trax", "incomplete"),
                                                          ("jax-ml/jax", "not_found")]
    assert "stopped after 2 pages (max_issue_pages)" in outcome.errors[0].message
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-10-11T00:00:00+00:00")


def test_first_sync_reaches_back_history_days(config, fake):
    api = FakeGitHub(fake)
    config.source("github").options.pop("history_days")  # default: the metrics window
    collector(config).fetch(TRAX)
    query = parse_qs(urlsplit(api.paths("/repos/google/trax/issues")[0]).query)
    assert query["since"] == ["2026-08-29T12:00:00Z"]


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

    assert invoke("collect", "--source", "github") == cli.EXIT_DEGRADED
    assert invoke("report") == cli.EXIT_OK
    assert invoke("status") == cli.EXIT_DEGRADED
    assert api.calls[0].headers["Authorization"].endswith(token)  # it was sent
    output = capsys.readouterr()
    shown = output.out + output.err
    assert token not in shown and "[REDACTED GITHUB_TOKEN]" in shown

    out = tmp_path / "out"
    stored = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert (out / "test.db").exists() and (out / "report" / "report.md").exists()
    assert token.encode() not in stored
    store = Store(out / "test.db")
    [source] = store.query("SELECT status, reason FROM run_sources WHERE source = 'github'")
    assert source == {"status": "unreachable",
                      "reason": "google/trax: HTTP 403 Resource not accessible with "
                                "Authorization: Bearer [REDACTED GITHUB_TOKEN]"}
    assert "[REDACTED GITHUB_TOKEN]" in (out / "report" / "report.md").read_text()


def test_the_http_cache_follows_the_database_used(config, tmp_path):
    config.source("github").options.pop("http_cache")
    assert collector(config).http_cache == tmp_path / "out" / "http-cache" / "github"
    copy = config.with_database(tmp_path / "elsewhere" / "copy.db")
    assert GitHubCollector(copy).http_cache == tmp_path / "elsewhere" / "http-cache" / "github"
