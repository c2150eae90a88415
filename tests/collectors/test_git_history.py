"""The git-history collector on a repository built here with fixed dates, authors and a
.mailmap, and on this project's own history.

The built history (FIXED_NOW is 2026-11-27T12:00Z, window 365 days from 2025-11-27T12:00Z):

    c1 2024-01-15 Alice <alice@old.example>   .mailmap, a.py
    c2 2024-01-20 Bob                         b.py, c.py        tag v0.1 (lightweight)
    c3 2024-02-10 alice <alice@new.example>   a.py              (.mailmap: both are Alice Smith)
    c4 2024-02-11 Bob                         b.py              tag v0.2 (annotated 2024-03-01)
    c5 2026-06-01 Carol                       d.py
    c6 2026-10-01 Dan                         e.py

Authors after .mailmap: Alice Smith 2, Bob 2, Carol 1, Dan 1 (4 people, not 5). Absence
factor over all history: 2 + 2 = 4 of 6 commits >= half, so 2. In the window: c5 and c6,
2 commits by 2 authors, factor 1.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fwsurvey.collectors.git_history import LAST_COMMIT, GitHistoryCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import Item, ItemNotFound
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


def collector(config) -> GitHistoryCollector:
    return GitHistoryCollector(config, now=lambda: FIXED_NOW)


def rows(records, table):
    return [r.row for r in records if r.table == table]


def test_history_authors_tags_and_metrics(write_config, history):
    repo, shas = history
    config = config_with_clone(write_config, repo)
    c = collector(config)
    assert [i.key for i in c.items()] == ["trax"]
    records = c.fetch(Item("trax", "trax"))

    commits = {r["sha"]: r for r in rows(records, "git_commits")}
    assert set(commits) == set(shas)
    assert commits[shas[0]]["author_name"] == "Alice Smith"  # .mailmap applied
    assert commits[shas[0]]["author_email"] == "alice@new.example"
    assert commits[shas[2]]["author_name"] == "Alice Smith"
    assert commits[shas[2]]["authored_at"] == "2024-02-10T08:00:00+00:00"  # stored in UTC
    assert (commits[shas[1]]["files_changed"], commits[shas[1]]["insertions"]) == (2, 2)
    assert commits[shas[3]]["deletions"] == 1

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

    metrics = {m["metric"]: m for m in rows(records, "community_metrics")}
    assert metrics["contributor_absence_factor_all_time"]["value"] == 2
    assert metrics["contributor_absence_factor_all_time"]["window_start"] is None
    assert metrics["contributor_absence_factor"]["value"] == 1
    assert metrics["contributor_absence_factor"]["window_start"] == "2025-11-27T12:00:00+00:00"
    assert metrics["commits_in_window"]["value"] == 2
    assert metrics["active_authors_in_window"]["value"] == 2
    [state] = rows(records, "source_state")
    assert (state["name"], state["value"]) == (LAST_COMMIT, shas[-1])


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
    records = c.fetch(Item("trax", "trax"))
    assert [r["sha"] for r in rows(records, "git_commits")] == [new]  # only what is new
    assert rows(records, "git_repos")[0]["new_commits"] == 1

    collect_source(store, store.start_run("collect", ["collect"], {}), collector(config))
    third = collector(config)
    third.state = store.source_state("git")
    assert rows(third.fetch(Item("trax", "trax")), "git_commits") == []
    assert store.query("SELECT count(*) AS n FROM git_commits") == [{"n": 7}]
    assert store.query("SELECT count(*) AS n FROM git_repos") == [{"n": 2}]  # one per run


def test_a_missing_clone_is_an_item_error(write_config, tmp_path):
    config = config_with_clone(write_config, tmp_path / "nowhere")
    with pytest.raises(ItemNotFound, match="nowhere"):
        collector(config).fetch(Item("trax", "trax"))
    assert not collector(config).check().reachable


def test_this_projects_own_history(write_config):
    config = config_with_clone(write_config, REPO_ROOT)
    records = collector(config).fetch(Item("trax", "trax"))
    expected = int(subprocess.run(["git", "-C", str(REPO_ROOT), "rev-list", "--count", "HEAD"],
                                  capture_output=True, text=True, check=True).stdout)
    [repo_row] = rows(records, "git_repos")
    assert repo_row["commit_count"] == expected == len(rows(records, "git_commits"))
    assert repo_row["author_count"] >= 1
    assert repo_row["first_commit_at"] <= repo_row["last_commit_at"]
    assert all(r["files_changed"] >= 0 for r in rows(records, "git_commits"))
