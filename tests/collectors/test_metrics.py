"""Community metrics computed in SQL from stored items (collectors/metrics.py, issue #15).

A real SQLite store (fwsurvey.store) is filled row by row here, as the collectors would have
stored a small repository, and every metric is checked against the value worked out by hand
in the comments. The data's time (the latest fetch) is 2026-11-01; the wall clock is later,
and no value may depend on it.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from fwsurvey.claims.stage import ClaimsStage, run_claims
from fwsurvey.collectors.bots import BotRules
from fwsurvey.collectors.metrics import CommunityMetricsUnit, OrgRules
from fwsurvey.config import CommunityTable, parse_config
from fwsurvey.errors import ConfigError
from fwsurvey.stage import StageContext, run_unit
from fwsurvey.store import Store

T = "2026-11-01T00:00:00+00:00"  # the time of the data (every source's latest fetch)
REPO = "google/trax"


def make_config(tmp_path: Path, community: dict[str, Any] | None = None):
    raw: dict[str, Any] = {
        "survey": {"compare": ["trax", "jax"], "database": "test.db"},
        "frameworks": {"trax": {"name": "Trax", "pypi": ["trax"], "github": REPO},
                       "jax": {"name": "JAX", "pypi": ["jax"], "github": "jax-ml/jax"}},
    }
    if community is not None:
        raw["community"] = community
    return parse_config(raw, tmp_path / "fwsurvey.toml")


def _columns(store: Store, table: str) -> set[str]:
    return set(store.db.table(table).columns_dict)


def _ensure_collector_columns(store: Store) -> None:
    """The columns the fetchers add in m012/m013 (contract D), where this tree lacks them."""
    if "github_responses" not in store.db.table_names():
        store.db.execute("""CREATE TABLE github_responses (
            repo TEXT NOT NULL, number INTEGER NOT NULL, framework TEXT NOT NULL,
            responder TEXT NOT NULL, responder_type TEXT, author_association TEXT,
            kind TEXT NOT NULL, responded_at TEXT NOT NULL,
            first_run_id INTEGER NOT NULL, run_id INTEGER NOT NULL, source TEXT NOT NULL,
            fetched_at TEXT NOT NULL, PRIMARY KEY (repo, number, responder))""")
    wanted = {"github_issues": {"responses_checked_at": "TEXT", "last_seen_run_id": "INTEGER"},
              "git_commits": {"parents": "INTEGER", "reachable": "INTEGER NOT NULL DEFAULT 1",
                              "stats_status": "TEXT", "committer_email": "TEXT"}}
    for table, columns in wanted.items():
        for column, kind in columns.items():
            if column not in _columns(store, table):
                store.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def insert(store: Store, table: str, run_id: int, **row: Any) -> None:
    row = {"run_id": run_id, "source": table.split("_")[0], "fetched_at": T, **row}
    columns = _columns(store, table)
    if "first_run_id" in columns:
        row.setdefault("first_run_id", run_id)
    if "last_seen_run_id" in columns:  # m012/m013: the listing saw it in this run
        row.setdefault("last_seen_run_id", run_id)
    store.db.table(table).insert(row)


def hours(h: float, day: str) -> str:
    """``day`` (YYYY-MM-DD) at midnight plus ``h`` hours, as the store writes times."""
    whole, frac = int(h), h - int(h)
    return f"{day}T{whole:02d}:{int(frac * 60):02d}:00+00:00"


def issue(store, run, number, author, created, *, pr=False, state="open", closed=None,
          checked=True, association="NONE", author_is_bot=False):
    insert(store, "github_issues", run, repo=REPO, number=number, framework="trax",
           is_pull_request=pr, state=state, author=author, author_is_bot=author_is_bot,
           author_association=association, comments=0, created_at=created, updated_at=T,
           closed_at=closed, merged_at=None, responses_checked_at=T if checked else None)


def response(store, run, number, responder, when, *, kind="comment", association="NONE",
             user_type="User"):
    insert(store, "github_responses", run, repo=REPO, number=number, framework="trax",
           responder=responder, responder_type=user_type, author_association=association,
           kind=kind, responded_at=when)


def commit(store, run, sha, name, email, when, *, parents=1, reachable=1):
    insert(store, "git_commits", run, framework="trax", sha=sha, author_name=name,
           author_email=email, authored_at=when, committed_at=when, files_changed=1,
           insertions=1, deletions=0, parents=parents, reachable=reachable,
           stats_status="ok", committer_email=email)


def build(store: Store, *, activity_status: str = "not ready", commits_13: int | None = None
          ) -> int:
    """One run's stored items for trax (GitHub, PyPI, git) and an empty jax."""
    run = store.start_run("test", ["collect"], {})
    _ensure_collector_columns(store)
    insert(store, "github_repos", run, repo=REPO, framework="trax", full_name=REPO, renamed=0,
           stars=1, forks=1, open_issues=8, open_pull_requests=1, archived=0,
           created_at="2019-01-01T00:00:00+00:00", contributor_count=5,
           contributors_complete=1, commit_activity_status=activity_status,
           commits_last_13_weeks=commits_13)
    # Issues and pull requests; the 90-day window is [2026-08-03, 2026-11-01).
    issue(store, run, 1, "alice", hours(0, "2026-10-01"))
    response(store, run, 1, "alice", hours(0.2, "2026-10-01"))  # the author: not a response
    response(store, run, 1, "github-actions[bot]", hours(0.5, "2026-10-01"), user_type="Bot")
    response(store, run, 1, "helperbot", hours(1, "2026-10-01"), association="COLLABORATOR")
    response(store, run, 1, "bob", hours(10, "2026-10-01"))
    issue(store, run, 2, "carol", hours(0, "2026-10-02"), pr=True, state="closed",
          closed=hours(0, "2026-10-05"))
    response(store, run, 2, "dave", hours(4, "2026-10-02"), kind="review", association="MEMBER")
    issue(store, run, 3, "erin", hours(0, "2026-10-03"))  # looked up, never answered
    response(store, run, 3, "github-actions[bot]", hours(0.1, "2026-10-03"), user_type="Bot",
             association="MEMBER")
    issue(store, run, 4, "frank", hours(0, "2026-10-04"), checked=False)  # not looked up
    response(store, run, 4, "gina", hours(1, "2026-10-04"))
    issue(store, run, 5, "ivy", "2026-01-01T00:00:00+00:00")  # open since before the window
    issue(store, run, 6, "jo", hours(0, "2026-09-01"), state="closed",
          closed=hours(0, "2026-09-05"))
    response(store, run, 6, "hank", hours(2, "2026-09-01"))
    issue(store, run, 7, "dependabot[bot]", hours(0, "2026-10-06"), pr=True,
          author_is_bot=True)
    issue(store, run, 8, "kim", "2026-07-01T00:00:00+00:00", pr=True, state="closed",
          closed=hours(0, "2026-10-10"))
    # Releases: the 365-day window is [2025-11-01, 2026-11-01).
    for tag, when, pre, draft in (("v1.0", "2026-02-01", 0, 0), ("v1.1", "2026-05-01", 0, 0),
                                  ("v1.2rc1", "2026-06-01", 1, 0), ("v1.2", "2026-08-01", 0, 0),
                                  ("v2.0", "2026-09-01", 0, 1)):
        insert(store, "github_releases", run, repo=REPO, kind="release", tag_name=tag,
               framework="trax", published_at=f"{when}T00:00:00+00:00", prerelease=pre,
               draft=draft)
    for version, when, pre, yanked in (("1.0", "2026-02-01", 0, 0), ("1.1", "2026-05-01", 0, 0),
                                       ("1.2rc1", "2026-06-01", 1, 0),
                                       ("1.2", "2026-08-01", 0, 0),
                                       ("1.2.1", "2026-08-15", 0, 1)):
        insert(store, "pypi_releases", run, package="trax", version=version, framework="trax",
               is_prerelease=pre, uploaded_at=f"{when}T00:00:00+00:00", yanked=yanked,
               file_count=1, wheel_count=1, sdist_count=0, other_count=0)
    # An index without upload times: the count is unknown, not zero.
    insert(store, "pypi_releases", run, package="jax", version="0.4", framework="jax",
           is_prerelease=0, uploaded_at=None, yanked=0, file_count=1, wheel_count=1,
           sdist_count=0, other_count=0)
    for login, n, is_bot in (("alice", 40, 0), ("bob", 35, 0), ("carol", 25, 0),
                             ("copybara-service[bot]", 900, 1), ("pytorchmergebot", 200, 0)):
        insert(store, "github_contributors", run, repo=REPO, login=login, framework="trax",
               contributions=n, is_bot=is_bot)
    # Git history, as of 2026-11-01.
    insert(store, "git_repos", run, framework="trax", clone_path="/x", head_sha="c1",
           commit_count=9, author_count=7, tag_count=0, new_commits=9)
    commit(store, run, "c1", "Alice", "alice@google.com", "2026-10-01T00:00:00+00:00")
    commit(store, run, "c2", "Alice", "alice@google.com", "2026-09-01T00:00:00+00:00")
    commit(store, run, "c3", "Bob", "bob@gmail.com", "2026-08-01T00:00:00+00:00")
    commit(store, run, "c4", "Carol", "carol@fb.com", "2025-01-01T00:00:00+00:00")
    commit(store, run, "c5", "Alice", "alice@google.com", "2026-10-02T00:00:00+00:00",
           parents=2)  # a merge
    commit(store, run, "c6", "A. Unique TensorFlower", "gardener@tensorflow.org",
           "2026-10-03T00:00:00+00:00")  # the robot
    commit(store, run, "c7", "Dave", "12+dave@users.noreply.github.com",
           "2026-10-04T00:00:00+00:00")
    commit(store, run, "c8", "Erin", "erin@nvidia.com", "2026-10-05T00:00:00+00:00",
           reachable=0)  # dropped by a force-push
    commit(store, run, "c9", "Carol", "carol@fb.com", "2024-06-01T00:00:00+00:00")
    store.db.conn.commit()
    return run


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "metrics.db")
    yield s
    s.close()


def compute(store: Store, config, run: int) -> dict[tuple[str, str, str], dict[str, Any]]:
    outcome = run_unit(StageContext(store, run, config), ClaimsStage.name,
                       CommunityMetricsUnit())
    assert outcome.status == "ok", (outcome.reason, outcome.errors)
    rows = store.query("SELECT * FROM community_metrics WHERE run_id = ?", [run])
    return {(r["source"], r["item"], r["metric"]): r for r in rows}


ORGS = {"google.com": "Google", "fb.com": "Meta"}


def test_first_response_skips_bots_and_the_author_counts_reviews_and_reports_shares(
        store, tmp_path):
    config = make_config(tmp_path)
    run = build(store)
    m = compute(store, config, run)
    median = m["github", REPO, "time_to_first_response_median"]
    # Items in the window by people: #1, #2, #3, #4, #6 (#7 is dependabot's). Looked up: all
    # but #4. Answered: #1 (helperbot after 1 h: the author's own comment and the [bot] are
    # skipped), #2 (a review after 4 h), #6 (2 h); #3 only had a bot. Hours [1, 4, 2].
    assert (median["value"], median["sample_size"]) == (2.0, 3)
    assert m["github", REPO, "time_to_first_response_p90"]["value"] == 3.6
    assert (median["answered_share"], median["looked_up_share"]) == (0.75, 0.8)
    assert (median["window_start"], median["window_end"], median["fetched_at"]) == (
        "2026-08-03T00:00:00+00:00", T, T)
    assert "not the wall clock" in median["basis"]


def test_issue_age_covers_every_open_issue_and_closure_ratio(store, tmp_path):
    m = compute(store, make_config(tmp_path), build(store))
    age = m["github", REPO, "issue_age_median"]
    # Open issues on 2026-11-01: #1 (31 days), #3 (29), #4 (28) and #5, opened before the
    # window (304): the median is 30.0 (29.0 if #5 were left out).
    assert (age["value"], age["sample_size"], age["looked_up_share"]) == (30.0, 4, 0.5)
    ratio = m["github", REPO, "change_request_closure_ratio"]
    # Opened in the window by people: #2 (dependabot's #7 is not counted); closed in it: #2
    # and #8 (opened in July).
    assert (ratio["value"], ratio["sample_size"]) == (2.0, 1)


def test_releases_exclude_prereleases_the_same_way_on_github_and_pypi(store, tmp_path):
    m = compute(store, make_config(tmp_path), build(store))
    for source, item in (("github", REPO), ("pypi", "trax")):
        # 2026-02-01, 05-01 and 08-01: gaps of 89 and 92 days (the rc, the draft and the
        # yanked release do not count).
        assert m[source, item, "releases_in_window"]["value"] == 3, source
        assert m[source, item, "median_days_between_releases"]["value"] == 90.5, source
    unknown = m["pypi", "jax", "releases_in_window"]
    assert unknown["value"] is None and "unknown" in unknown["basis"]


def test_absence_factors_are_named_by_basis_without_bots_merges_or_lost_commits(
        store, tmp_path):
    m = compute(store, make_config(tmp_path), build(store))
    # GitHub: alice 40, bob 35, carol 25 (copybara-service[bot] by its type, pytorchmergebot
    # by the configured list, are out): two make half. With pytorchmergebot in, one would.
    github = m["github", REPO, "contributor_absence_factor_all_time"]
    assert (github["value"], github["sample_size"]) == (2, 3)
    # git, 365 days: c1, c2 (alice), c3 (bob), c7 (dave); the merge c5, the robot c6 and the
    # unreachable c8 are out.
    assert m["git", "trax", "commits_in_window"]["value"] == 4
    assert m["git", "trax", "active_authors_in_window"]["value"] == 3
    assert m["git", "trax", "contributor_absence_factor_365d"]["value"] == 1
    # All history: alice 2, carol 2, bob 1, dave 1 -> two authors make 4 of 6.
    assert m["git", "trax", "contributor_absence_factor_all_time"]["value"] == 2
    basis = m["git", "trax", "commits_in_window"]["basis"]
    assert "1 merge commits, 1 bot commits and 1 commits no longer reachable" in basis
    assert ("git", "trax", "contributor_absence_factor") not in m


def test_maintained_is_unknown_when_commits_are_not_ready(store, tmp_path):
    m = compute(store, make_config(tmp_path), build(store, activity_status="not ready"))
    maintained = m["github", REPO, "maintained_score"]
    assert maintained["value"] is None
    assert "not ready" in maintained["basis"] and "unknown" in maintained["basis"]


def test_maintained_counts_only_collaborator_activity_without_bots(store, tmp_path):
    m = compute(store, make_config(tmp_path), build(store, activity_status="ok", commits_13=5))
    # Collaborator activity: #1 (helperbot, COLLABORATOR) and #2 (dave, MEMBER); the
    # MEMBER bot on #3 and bob (NONE) do not count: (5 + 2) * 10 / 13 = 5.38.
    assert (m["github", REPO, "maintained_score"]["value"],
            m["github", REPO, "maintained_score"]["sample_size"]) == (5.4, 7)


def test_org_shares_from_the_mapping(store, tmp_path):
    config = make_config(tmp_path, {"organizations": ORGS})
    run = build(store)
    compute(store, config, run)
    rows = store.query("SELECT period, org, commits, commit_share, authors, author_share"
                       " FROM community_org_shares WHERE run_id = ? ORDER BY period, org",
                       [run])
    shares = {(r["period"], r["org"]): (r["commits"], r["commit_share"], r["authors"],
                                        r["author_share"]) for r in rows}
    assert shares == {
        ("all_time", "Google"): (2, 0.3333, 1, 0.25),
        ("all_time", "Meta"): (2, 0.3333, 1, 0.25),
        ("all_time", "independent"): (1, 0.1667, 1, 0.25),
        ("all_time", "unknown"): (1, 0.1667, 1, 0.25),
        ("365d", "Google"): (2, 0.5, 1, 0.3333),
        ("365d", "independent"): (1, 0.25, 1, 0.3333),
        ("365d", "unknown"): (1, 0.25, 1, 0.3333),
    }


def test_run_claims_recomputes_offline_after_a_bot_is_added(store, tmp_path, monkeypatch):
    run = build(store)

    def no_network(*args, **kwargs):
        raise AssertionError("the claims stage must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    registry = Path(__file__).parents[2] / "claims.toml"
    run_claims(store, run, make_config(tmp_path), registry)
    later = store.start_run("claims", ["claims"], {})
    config = make_config(tmp_path, {"bots": [*CommunityTable().bots, "helperbot"]})
    outcome, _ = run_claims(store, later, config, registry)
    assert outcome.status in ("ok", "partial"), outcome.reason
    values = {r["run_id"]: r["value"] for r in store.query(
        "SELECT run_id, value FROM community_metrics WHERE source = 'github'"
        " AND metric = 'time_to_first_response_median'")}
    # helperbot's 1 h reply on #1 no longer counts: bob's after 10 h does -> [10, 4, 2].
    assert values == {run: 2.0, later: 4.0}
    evidence = store.query("SELECT value_a FROM claim_evidence WHERE run_id = ?"
                           " AND metric = 'first_response_hours'", [later])
    assert evidence and evidence[0]["value_a"] == 4.0
    # Running the metrics twice on one run replaces its rows.
    compute(store, config, later)
    assert store.query("SELECT count(*) AS n FROM community_metrics WHERE run_id = ?"
                       " AND metric = 'time_to_first_response_median'", [later]) == [{"n": 1}]


def test_bot_rules_patterns_are_literal_except_wildcards():
    rules = BotRules.from_config(CommunityTable())
    assert rules.is_bot("pytorch-bot[bot]")
    assert not rules.is_bot("robert")  # fnmatch would read [bot] as "b, o or t"
    assert rules.is_bot("Someone", "123+pytorchmergebot@users.noreply.github.com")
    assert rules.is_bot("Copybara", "copybara-worker@google.com")
    assert rules.is_bot("alice", None, "Bot")
    assert not rules.is_bot("alice", "alice@google.com", "User")
    custom = BotRules.from_config(CommunityTable(bots=[], bot_patterns=["ci-*"]))
    assert custom.is_bot("CI-Runner") and not custom.is_bot("pytorchmergebot")


def test_org_rules():
    orgs = OrgRules.from_config(CommunityTable(organizations=ORGS))
    assert orgs.org_of("x@research.google.com") == "Google"
    assert orgs.org_of("x@gmail.com") == "independent"
    assert orgs.org_of("12+x@users.noreply.github.com") == "unknown"
    assert orgs.org_of("not-an-address") == "unknown"
    assert orgs.org_of("x@tensorflow.org") == "tensorflow.org"


def test_community_table_rejects_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="community.bot_pattern: unknown key"):
        make_config(tmp_path, {"bot_pattern": ["*-bot"]})
    with pytest.raises(ConfigError, match="community.issue_window_days"):
        make_config(tmp_path, {"issue_window_days": 0})


@pytest.mark.parametrize("domain, verdict", [("google.com", "supported"),
                                              ("gmail.com", "contradicted")])
def test_google_backing_is_judged_from_the_org_shares(store, tmp_path, domain, verdict):
    """The possession claim "{b} is backed by Google" reads b's 365-day Google commit share:
    2 of b's 3 commits in the year by ``domain`` authors either meet the bar (half) or not."""
    config = make_config(tmp_path, {"organizations": ORGS})
    run = build(store)
    insert(store, "git_repos", run, framework="jax", clone_path="/y", head_sha="j1",
           commit_count=3, author_count=2, tag_count=0, new_commits=3)
    for sha, email, when in (("j1", f"ann@{domain}", "2026-10-01"),
                             ("j2", f"ann@{domain}", "2026-09-01"),
                             ("j3", "ben@nvidia.com", "2026-08-01")):
        insert(store, "git_commits", run, framework="jax", sha=sha, author_name=email[:3],
               author_email=email, authored_at=f"{when}T00:00:00+00:00",
               committed_at=f"{when}T00:00:00+00:00", files_changed=1, insertions=1,
               deletions=0, parents=1, reachable=1, stats_status="ok", committer_email=email)
    store.db.conn.commit()
    registry = Path(__file__).parents[2] / "claims.toml"
    run_claims(store, run, config, registry)
    [row] = store.query("SELECT value_a, value_b, favours FROM claim_evidence"
                        " WHERE run_id = ? AND metric = 'google_commit_share'", [run])
    # a = trax: 2 of its 4 commits of the year are alice@google.com's (c6, the robot, is a bot).
    assert row["value_a"] == 0.5
    assert row["value_b"] == (0.6667 if domain == "google.com" else 0.0)
    [claim] = store.query("SELECT verdict FROM claims WHERE run_id = ?"
                          " AND claim_id = 'community.google-backed'", [run])
    assert claim["verdict"] == verdict
