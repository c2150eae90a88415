"""The git-history collector on a repository built here with fixed dates, authors and a
.mailmap, and on this project's own history.

The built history (FIXED_NOW is 2026-11-27T12:00Z, window 365 days from 2025-11-27T12:00Z):

    c1 2024-01-15 Alice <alice@old.example>   .mailmap, a.py
    c2 2024-01-20 Bob                         b.py, c.py        tag v0.1 (lightweight)
    c3 2024-02-10 alice <alice@new.example>   a.py              (.mailmap: both are Alice Smith)
    c4 2024-02-11 Bob                         b.py              tag v0.2 (annotated 2024-03-01)
    c5 2026-06-01 Carol                       d.py
    c6 2026-10-01 Dan                         e.py

Authors after .mailmap: Alice Smith 2, Bob 2, Carol 1, Dan 1 (4 people, not 5). The
collector stores commits, tags and the clone's snapshot; it writes no community metrics
(they are computed from git_commits).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fwsurvey.collectors import git_history
from fwsurvey.collectors.git_history import FRONTIER, GitHistoryCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import Checkpoint, Item, ItemNotFound, Record
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW

REPO_ROOT = Path(__file__).parent.parent.parent
MAILMAP = "Alice Smith <alice@new.example>\nAlice Smith <alice@new.example> <alice@old.example>\n"


def run_git(repo: Path, *args: str, date: str | None = None, author: str | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_COMMITTER_NAME": "Committer", "GIT_COMMITTER_EMAIL": "committer@example"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    if author:
        name, email = author.split(" <")
        env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email.rstrip(">"))
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str], date: str, author: str) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    run_git(repo, "add", *files)
    run_git(repo, "commit", "-q", "-m", f"change {', '.join(files)}", date=date, author=author)
    return run_git(repo, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path) -> tuple[Path, list[str]]:
    repo = tmp_path / "clone"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    shas = [
        commit(repo, {".mailmap": MAILMAP, "a.py": "a = 1\n"}, "2024-01-15T10:00:00+00:00",
               "Alice <alice@old.example>"),
        commit(repo, {"b.py": "b = 1\n", "c.py": "c = 1\n"}, "2024-01-20T10:00:00+00:00",
               "Bob <bob@example.com>"),
    ]
    run_git(repo, "tag", "v0.1")
    shas.append(commit(repo, {"a.py": "a = 2\n"}, "2024-02-10T10:00:00+02:00",
                       "alice <alice@new.example>"))
    shas.append(commit(repo, {"b.py": "b = 2\n"}, "2024-02-11T10:00:00+00:00",
                       "Bob <bob@example.com>"))
    run_git(repo, "tag", "-a", "v0.2", "-m", "v0.2", date="2024-03-01T00:00:00+00:00",
            author="Bob <bob@example.com>")
    shas.append(commit(repo, {"d.py": "d = 1\n"}, "2026-06-01T10:00:00+00:00",
                       "Carol <carol@example.com>"))
    shas.append(commit(repo, {"e.py": "e = 1\n"}, "2026-10-01T10:00:00+00:00",
                       "Dan <dan@example.com>"))
    return repo, shas


def config_with_clone(write_config, clone: Path):
    path = write_config()
    path.write_text(path.read_text().replace(
        'github = "google/trax"\n', f'github = "google/trax"\ngit_clone = "{clone}"\n', 1))
    return load_config(path)


def collector(config, **options) -> GitHistoryCollector:
    c = GitHistoryCollector(config, now=lambda: FIXED_NOW)
    c.options = c.options.model_copy(update=options)
    return c


def fetch_all(c: GitHistoryCollector) -> list[Record | Checkpoint]:
    return list(c.fetch(Item("trax", "trax")))


def rows(records, table):
    return [r.row for r in records if isinstance(r, Record) and r.table == table]


def test_history_authors_tags_and_metrics(write_config, history):
    repo, shas = history
    config = config_with_clone(write_config, repo)
    c = collector(config)
    assert [i.key for i in c.items()] == ["trax"]
    records = fetch_all(c)

    commits = {r["sha"]: r for r in rows(records, "git_commits")}
    assert set(commits) == set(shas)
    assert commits[shas[0]]["author_name"] == "Alice Smith"  # .mailmap applied
    assert commits[shas[0]]["author_email"] == "alice@new.example"
    assert commits[shas[2]]["author_name"] == "Alice Smith"
    assert commits[shas[2]]["authored_at"] == "2024-02-10T08:00:00+00:00"  # stored in UTC
    assert (commits[shas[1]]["files_changed"], commits[shas[1]]["insertions"]) == (2, 2)
    assert commits[shas[3]]["deletions"] == 1
    assert {(r["parents"], r["stats_status"], r["reachable"], r["committer_email"])
            for r in commits.values()} == {(1, "ok", 1, "committer@example")} | {
        (0, "ok", 1, "committer@example")}
    assert commits[shas[0]]["parents"] == 0  # the root

    [repo_row] = rows(records, "git_repos")
    assert repo_row["head_sha"] == shas[-1]
    assert (repo_row["commit_count"], repo_row["author_count"]) == (6, 4)
    assert repo_row["first_commit_at"] == "2024-01-15T10:00:00+00:00"
    assert repo_row["last_commit_at"] == "2026-10-01T10:00:00+00:00"
    assert (repo_row["tag_count"], repo_row["new_commits"]) == (2, 6)

    tags = {t["tag"]: t for t in rows(records, "git_tags")}
    assert tags["v0.1"] == {**tags["v0.1"], "sha": shas[1],
                            "tagged_at": "2024-01-20T10:00:00+00:00"}
    assert tags["v0.2"]["sha"] == shas[3]  # the annotated tag, peeled to its commit
    assert tags["v0.2"]["tagged_at"] == "2024-03-01T00:00:00+00:00"

    assert rows(records, "community_metrics") == []  # computed from the store, not here
    states = [(s["name"], s["value"]) for s in rows(records, "source_state")]
    assert states[0] == (FRONTIER, shas[-1])  # one batch of 6, then the snapshot's cache
    assert [s[0] for s in states] == [FRONTIER, git_history.SUMMARY]
    # The batch of commits is followed by a checkpoint: committed before tags and snapshot.
    kinds = ["cp" if isinstance(r, Checkpoint) else r.table for r in records]
    assert kinds == ["git_commits"] * 6 + ["source_state", "cp", "git_tags", "git_tags",
                                           "source_state", "git_repos"]


def test_batches_carry_a_frontier_watermark(write_config, history):
    """chunk_size 4 over 6 linear commits: two batches, each with the newest commit it stored
    as its watermark."""
    repo, shas = history
    records = fetch_all(collector(config_with_clone(write_config, repo), chunk_size=4))
    kinds = ["cp" if isinstance(r, Checkpoint) else r.table for r in records]
    assert kinds[:10] == (["git_commits"] * 4 + ["source_state", "cp"]
                          + ["git_commits"] * 2 + ["source_state", "cp"])
    assert [r["sha"] for r in rows(records, "git_commits")] == shas  # oldest first
    frontiers = [s["value"] for s in rows(records, "source_state") if s["name"] == FRONTIER]
    assert frontiers == [shas[3], shas[5]]


def test_incremental_runs_store_only_new_commits(write_config, history, tmp_path):
    repo, shas = history
    config = config_with_clone(write_config, repo)
    store = Store(tmp_path / "s.db")
    first = collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    assert first.status == "ok"
    monthly = store.query("SELECT month, commits, authors, files_changed"
                          " FROM git_monthly_activity ORDER BY month")
    assert monthly == [
        {"month": "2024-01", "commits": 2, "authors": 2, "files_changed": 4},
        {"month": "2024-02", "commits": 2, "authors": 2, "files_changed": 2},
        {"month": "2026-06", "commits": 1, "authors": 1, "files_changed": 1},
        {"month": "2026-10", "commits": 1, "authors": 1, "files_changed": 1},
    ]

    new = commit(repo, {"a.py": "a = 3\n"}, "2026-11-01T10:00:00+00:00",
                 "Alice <alice@old.example>")
    c = collector(config)
    c.state = store.source_state("git")
    records = fetch_all(c)
    assert [r["sha"] for r in rows(records, "git_commits")] == [new]  # only what is new
    assert rows(records, "git_repos")[0]["new_commits"] == 1

    collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    third = collector(config)
    third.state = store.source_state("git")
    assert rows(fetch_all(third), "git_commits") == []
    assert store.query("SELECT count(*) AS n FROM git_commits") == [{"n": 7}]
    assert store.query("SELECT count(*) AS n FROM git_repos") == [{"n": 2}]  # one per run


def test_a_run_after_no_change_reads_no_history(write_config, history, tmp_path, monkeypatch):
    """The old collector ran shortlog, rev-list --count and log over all history every run;
    now an unchanged HEAD costs rev-parse and for-each-ref only."""
    repo, shas = history
    config = config_with_clone(write_config, repo)
    store = Store(tmp_path / "s.db")
    collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    calls: list[tuple[str, ...]] = []
    real_git, real_stream = git_history.git, git_history.stream
    monkeypatch.setattr(git_history, "git", lambda clone, *a, **k: (
        calls.append(a), real_git(clone, *a, **k))[1])
    monkeypatch.setattr(git_history, "stream", lambda clone, *a, **k: (
        calls.append(a), real_stream(clone, *a, **k))[1])
    again = collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    assert again.status == "ok"
    assert [a[0] for a in calls] == ["rev-parse", "for-each-ref"]
    latest = store.query("SELECT commit_count, author_count, new_commits, head_sha"
                         " FROM git_repos_latest")
    assert latest == [{"commit_count": 6, "author_count": 4, "new_commits": 0,
                       "head_sha": shas[-1]}]


def test_a_missing_clone_is_an_item_error(write_config, tmp_path):
    config = config_with_clone(write_config, tmp_path / "nowhere")
    with pytest.raises(ItemNotFound, match="nowhere"):
        fetch_all(collector(config))
    assert not collector(config).check().reachable


def test_this_projects_own_history(write_config):
    config = config_with_clone(write_config, REPO_ROOT)
    records = fetch_all(collector(config))
    expected = int(subprocess.run(["git", "-C", str(REPO_ROOT), "rev-list", "--count", "HEAD"],
                                  capture_output=True, text=True, check=True).stdout)
    [repo_row] = rows(records, "git_repos")
    assert repo_row["commit_count"] == expected == len(rows(records, "git_commits"))
    assert repo_row["author_count"] >= 1
    assert repo_row["first_commit_at"] <= repo_row["last_commit_at"]
    assert all(r["files_changed"] >= 0 for r in rows(records, "git_commits"))
