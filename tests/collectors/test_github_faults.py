"""The GitHub collector's fault matrix, against recorded responses (tests/fixtures/github):
what each fault keeps, row by row, and where the next run resumes."""

from __future__ import annotations

import json

import requests

from fwsurvey.collectors.github import ISSUES_WATERMARK
from tests.collectors.test_github import (
    ISSUES,
    RESET,
    FakeGitHub,
    body,
    collector,
    fetch,
    rows,
    run,
)

RATE_LIMITED = (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": RESET},
                body("primary-rate-limit.json"))


def numbers(store) -> list[int]:
    return [r["number"] for r in store.query("SELECT number FROM github_issues ORDER BY number")]


def test_primary_rate_limit_with_a_far_reset_keeps_page_one_and_stops_the_source(config, fake):
    api = FakeGitHub(fake)
    api.fault(ISSUES, 2, RATE_LIMITED)
    store, outcome = run(config)
    assert [(e.item, e.kind) for e in outcome.errors] == [("google/trax", "incomplete"),
                                                          ("jax-ml/jax", "incomplete")]
    assert "resets at 2100-01-01T00:00:00+00:00" in outcome.errors[0].message
    assert "not attempted" in outcome.errors[1].message
    assert numbers(store) == [1001, 1500, 2100]  # page 1, committed
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-09-03T00:00:00+00:00")
    [repo] = store.query("SELECT issues_synced_until, contributor_count FROM github_repos")
    assert repo == {"issues_synced_until": "2026-09-03T00:00:00+00:00", "contributor_count": 5}
    assert store.query("SELECT count(*) AS n FROM github_responses") == [{"n": 0}]


def test_rate_limit_without_reset_headers_waits_and_retries(config, fake):
    """429 without Retry-After, and a secondary-limit 403 without any header: retried after
    secondary_rate_wait (doubling); a primary limit without a reset passes the cap."""
    api = FakeGitHub(fake)
    config.source("github").options["secondary_rate_wait"] = 5.0
    api.fault(ISSUES, 1, (429, {}, '{"message": "Too Many Requests"}'))
    api.fault(ISSUES, 2, (403, {}, body("secondary-rate-limit.json")))
    sleeps: list[float] = []
    records = fetch(collector(config, sleeps))
    assert 5.0 in sleeps and len([s for s in sleeps if s == 5.0]) == 2
    assert len({i["number"] for i in rows(records, "github_issues")}) == 7

    fake.reset()
    api = FakeGitHub(fake)
    config.source("github").options.update(secondary_rate_wait=120.0, max_rate_limit_wait=60.0)
    api.fault(ISSUES, 1, (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": None},
                          body("primary-rate-limit.json")))
    store, outcome = run(config)
    assert outcome.errors[0].kind == "incomplete"
    assert "rate limit exhausted" in outcome.errors[0].message
    assert "resets at" not in outcome.errors[0].message
    assert numbers(store) == []  # nothing listed; the repository's lists are kept
    assert store.query("SELECT count(*) AS n FROM github_releases") == [{"n": 7}]


def test_statistics_never_ready_stay_unknown_after_doubling_waits(config, fake):
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax/stats/commit_activity", 1)] = [(202, {}, "{}")]
    config.source("github").options.update(stats_attempts=5, stats_wait=1.0,
                                           stats_max_wait=4.0)
    sleeps: list[float] = []
    records = fetch(collector(config, sleeps))
    [repo] = rows(records, "github_repos")
    assert repo["commit_activity_status"] == "not ready"
    assert repo["commits_last_52_weeks"] is None and repo["commits_last_13_weeks"] is None
    assert rows(records, "github_commit_activity") == []  # not an empty year of commits
    assert len(api.paths("/repos/google/trax/stats/commit_activity")) == 5
    assert sleeps == [1.0, 2.0, 4.0, 4.0]


def test_empty_repository_409_and_too_large_403_leave_those_parts_out(config, fake):
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax/stats/commit_activity", 1)] = [
        (409, {}, body("empty-repository.json"))]
    api.routes[("/repos/google/trax/contributors", 1)] = [
        (403, {}, body("contributors-too-large.json"))]
    store, outcome = run(config)
    assert [(e.item, e.kind) for e in outcome.errors] == [("jax-ml/jax", "not_found")]
    [repo] = store.query("SELECT contributor_count, contributors_complete,"
                         " commit_activity_status, commits_last_52_weeks, unavailable, stars"
                         " FROM github_repos")
    assert json.loads(repo["unavailable"]) == {
        "contributors": "google/trax contributors: HTTP 403 The history or contributor list"
                        " is too large to list contributors for this repository via the API.",
        "commit activity": "google/trax commit activity: HTTP 409 Git Repository is empty."}
    assert (repo["contributor_count"], repo["contributors_complete"]) == (None, 0)
    assert (repo["commit_activity_status"], repo["commits_last_52_weeks"]) == (
        "unavailable", None)
    assert repo["stars"] == 8187
    assert len(numbers(store)) == 7  # the rest of the repository is there
    assert store.query("SELECT count(*) AS n FROM github_contributors") == [{"n": 0}]


def test_server_errors_are_retried_then_keep_what_came(config, fake):
    api = FakeGitHub(fake)
    api.fault("/repos/google/trax/releases", 1, (502, {}, '{"message": "Server Error"}'),
              (503, {}, '{"message": "Service Unavailable"}'))
    api.fault(ISSUES, 1, (500, {}, "{}"))
    records = fetch(collector(config))
    assert len(api.paths("/repos/google/trax/releases")) == 3
    assert len([r for r in rows(records, "github_releases") if r["kind"] == "release"]) == 3
    assert len({i["number"] for i in rows(records, "github_issues")}) == 7

    fake.reset()
    api = FakeGitHub(fake)
    api.fault(ISSUES, 2, *[(502, {}, '{"message": "Server Error"}')] * 3)
    store, outcome = run(config)
    assert outcome.errors[0].kind == "incomplete"
    message = outcome.errors[0].message
    assert "HTTP 502" in message and "after 3 attempts" in message
    assert numbers(store) == [1001, 1500, 2100]
    assert [e.item for e in outcome.errors] == ["google/trax", "jax-ml/jax"]  # jax tried


def test_timeouts_on_the_repository_make_the_source_unreachable(config, fake):
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax", 1)] = [requests.exceptions.ReadTimeout("read timed out")]
    store, outcome = run(config)
    assert outcome.status == "unreachable" and "timed out" in outcome.reason
    assert [e.kind for e in outcome.errors] == ["unreachable", "unreachable"]
    assert store.query("SELECT count(*) AS n FROM github_repos") == [{"n": 0}]


def test_a_timeout_on_a_response_lookup_keeps_the_issues(config, fake):
    api = FakeGitHub(fake)
    api.routes[("/repos/google/trax/issues/2100/comments", 1)] = [
        requests.exceptions.ReadTimeout("read timed out")]
    store, outcome = run(config)
    assert outcome.errors[0].kind == "incomplete" and "timed out" in outcome.errors[0].message
    assert len(numbers(store)) == 7
    # Newest first: #2103 (free), #2102 and #2101 were looked up and committed; #2100 not.
    checked = store.query("SELECT number FROM github_issues WHERE responses_checked_at"
                          " IS NOT NULL ORDER BY number")
    assert [r["number"] for r in checked] == [2101, 2102, 2103]
    assert {r["number"] for r in store.query("SELECT number FROM github_responses")} == {
        2101, 2102}


def test_a_cut_mid_pagination_keeps_whole_pages_and_the_next_run_resumes(config, fake):
    api = FakeGitHub(fake)
    api.fault(ISSUES, 3, *[requests.exceptions.ConnectionError("RemoteDisconnected")] * 3)
    store, outcome = run(config)
    assert outcome.errors[0].kind == "incomplete"
    assert "stopped after 2 issue pages" in outcome.errors[0].message
    kept = store.query("SELECT number, updated_at FROM github_issues ORDER BY updated_at")
    assert [(r["number"], r["updated_at"]) for r in kept] == [
        (1001, "2020-01-01T09:00:00+00:00"), (1500, "2021-01-05T00:00:00+00:00"),
        (2100, "2026-09-03T00:00:00+00:00"), (2000, "2026-09-15T00:00:00+00:00"),
        (2101, "2026-10-02T00:00:00+00:00"), (2102, "2026-10-11T00:00:00+00:00")]
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-10-11T00:00:00+00:00")
    api.calls.clear()
    store, outcome = run(config)
    assert api.since() == ["2026-10-10T23:00:00Z"]  # from the watermark, minus the overlap
    assert len(numbers(store)) == 7
    assert store.source_state("github")[("google/trax", ISSUES_WATERMARK)] == (
        "2026-11-01T00:00:00+00:00")


def test_a_list_shifted_mid_sync_counts_each_issue_once_and_misses_none(config, fake):
    """#1001 (page 1) is updated while page 1 is read: it moves to the end, and #2000 slips
    onto page 1 unseen. The repeat of #1001 triggers one more pass that finds #2000."""
    api = FakeGitHub(fake)

    def shift(page: int) -> None:
        if page == 1 and not api.issue_faults.get("shifted"):
            api.issue_faults["shifted"] = [True]
            api.update_issue(1001, "2026-11-20T00:00:00Z")

    api.after_issue_page = shift
    records = fetch(collector(config))
    listed = [i for i in rows(records, "github_issues") if "responses_checked_at" not in i]
    # #1001 comes twice (its old and its new version: the newer is an update, upserted);
    # #2000, which slipped past a page boundary, is found by the second pass.
    assert sorted({i["number"] for i in listed}) == [1001, 1500, 2000, 2100, 2101, 2102, 2103]
    assert [i["updated_at"] for i in listed if i["number"] == 1001][-1] == (
        "2026-11-20T00:00:00+00:00")
    assert api.since() == ["", "2026-09-03T00:00:00Z"]  # the second pass
    [state] = [s for s in rows(records, "source_state")][-1:]
    assert state["value"] == "2026-11-20T00:00:00+00:00"

    store, _ = run(config)
    assert store.query("SELECT count(*) AS n FROM github_issues") == [{"n": 7}]
    [row] = store.query("SELECT updated_at FROM github_issues WHERE number = 1001")
    assert row["updated_at"] == "2026-11-20T00:00:00+00:00"


def test_deleted_releases_and_contributors_drop_out_of_the_current_views(config, fake):
    api = FakeGitHub(fake)
    store, _ = run(config)
    api.routes[("/repos/google/trax/releases", 1)] = [
        (200, {}, body("releases.json").replace('"v1.3.9"', '"v1.3.9-gone"'))]
    del api.routes[("/repos/google/trax/contributors", 2)]
    store, _ = run(config)
    current = store.query("SELECT tag_name FROM github_releases_current WHERE kind = 'release'"
                          " ORDER BY tag_name")
    assert [r["tag_name"] for r in current] == ["v1.3.9-gone", "v1.4.0", "v1.4.1"]
    assert store.query("SELECT count(*) AS n FROM github_releases WHERE kind = 'release'") == [
        {"n": 4}]
    logins = {r["login"] for r in store.query("SELECT login FROM github_contributors_current")}
    assert logins == {"copybara-service[bot]", "lukaszkaiser", "afrozenator"}
