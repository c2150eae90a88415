"""Git clones as pytorch users have them, built here with git: a missing blob, a blobless clone
read offline, a force-push that drops commits, a deleted tag, a merge, a hung git.

Each asserts, row by row, what the store keeps. The old collector stored nothing for the
first two (``git log --shortstat`` failed: ``not_found``), kept orphans counted after a
force-push, kept deleted tags, counted merges, and had one 600 s timeout for the whole log.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from fwsurvey.collectors import git_history
from fwsurvey.collectors.git_history import FRONTIER, GitError, stream
from fwsurvey.collectors.stage import collect_source
from fwsurvey.store import Store
from tests.collectors.test_git_history import (  # noqa: F401 - history is a fixture
    collector,
    commit,
    config_with_clone,
    history,
    run_git,
)

AUTHORS = ["Ann <ann@example.com>", "Ben <ben@example.com>", "ci-bot <ci-bot@example.com>"]


def linear(repo: Path, n: int, start: int = 0) -> list[str]:
    """``n`` commits, each changing one file of its own and a shared log file."""
    shas = []
    for i in range(start, start + n):
        log = repo / "log.txt"
        text = (log.read_text() if log.exists() else "") + f"line {i}\n"
        shas.append(commit(repo, {f"f{i}.py": f"x = {i}\n", "log.txt": text},
                           f"2026-0{1 + i % 9}-01T10:00:00+00:00", AUTHORS[i % 3]))
    return shas


def new_repo(path: Path) -> Path:
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    return path


def stored(store: Store, framework: str = "trax") -> dict[str, dict]:
    return {r["sha"]: r for r in store.query(
        "SELECT sha, author_name, author_email, parents, files_changed, insertions, deletions,"
        " stats_status, reachable, first_run_id, run_id FROM git_commits WHERE framework = ?",
        [framework])}


def run(store: Store, config, **options):
    run_id = store.start_run("collect", ["collect"], {})
    return run_id, collect_source(store, run_id, collector(config, **options))


def blob_path(repo: Path, content: str) -> Path:
    sha = subprocess.run(["git", "-C", str(repo), "hash-object", "--stdin"], input=content,
                         capture_output=True, text=True, check=True).stdout.strip()
    return repo / ".git" / "objects" / sha[:2] / sha[2:]


def test_a_missing_blob_keeps_every_commit_and_says_which_lack_stats(write_config, tmp_path):
    repo = new_repo(tmp_path / "clone")
    shas = linear(repo, 5)
    # f2.py's only version: the commit adding it cannot count its lines any more.
    blob_path(repo, "x = 2\n").unlink()
    store = Store(tmp_path / "s.db")
    _, outcome = run(store, config_with_clone(write_config, repo))

    assert outcome.status == "partial"
    [error] = outcome.errors
    assert error.kind == "incomplete"
    assert "file stats unavailable for 1 commit(s)" in error.message
    rows = stored(store)
    assert set(rows) == set(shas)  # every commit and author is kept
    for i, sha in enumerate(shas):
        row = rows[sha]
        assert (row["author_email"], row["parents"], row["reachable"]) == (
            AUTHORS[i % 3].split("<")[1].rstrip(">"), 0 if i == 0 else 1, 1)
        if i == 2:
            assert (row["stats_status"], row["files_changed"], row["insertions"]) == (
                "unavailable", 0, 0)
        else:
            # f{i}.py added (1 line), log.txt gains a line: 2 files, 2 insertions.
            assert (row["stats_status"], row["files_changed"], row["insertions"],
                    row["deletions"]) == ("ok", 2, 2, 0)
    monthly = {m["month"]: m for m in store.query("SELECT * FROM git_monthly_activity")}
    assert monthly["2026-03"] == {**monthly["2026-03"], "commits": 1, "files_changed": None,
                                  "commits_without_stats": 1}
    assert monthly["2026-02"]["files_changed"] == 2
    # The snapshot and the watermark were written too: the next run reads nothing new.
    assert store.query("SELECT commit_count, author_count FROM git_repos") == [
        {"commit_count": 5, "author_count": 3}]
    assert store.source_state("git")[("trax", FRONTIER)] == shas[-1]


@pytest.fixture
def origin(tmp_path) -> tuple[Path, Path, list[str]]:
    """A bare origin allowing partial clones, and a working repository that pushes to it."""
    work = new_repo(tmp_path / "work")
    shas = linear(work, 6)
    bare = tmp_path / "origin.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    run_git(bare, "config", "uploadpack.allowFilter", "true")
    run_git(work, "remote", "add", "origin", str(bare))
    run_git(work, "push", "-q", "origin", "main")
    return bare, work, shas


def test_a_blobless_clone_is_read_offline_without_fetching(write_config, origin, tmp_path):
    bare, work, shas = origin
    # A last commit that only adds a file: its one blob is checked out, its stats readable.
    shas.append(commit(work, {"README.md": "read me\n"}, "2026-10-01T10:00:00+00:00",
                       AUTHORS[0]))
    run_git(work, "push", "-q", "origin", "main")
    clone = tmp_path / "blobless"
    run_git(tmp_path, "clone", "-q", "--filter=blob:none", f"file://{bare}", str(clone))
    old_blob = blob_path(clone, "line 0\n")  # log.txt's first version: not in the clone
    assert not old_blob.exists()
    store = Store(tmp_path / "s.db")
    _, outcome = run(store, config_with_clone(write_config, clone))

    rows = stored(store)
    assert set(rows) == set(shas)
    assert [rows[s]["author_name"] for s in shas] == ["Ann", "Ben", "ci-bot"] * 2 + ["Ann"]
    missing = [s for s in shas if rows[s]["stats_status"] == "unavailable"]
    # Only the checked-out versions are there: older diffs cannot be counted. Which ones
    # fail, asked of git commit by commit (lazy fetching off, as the collector runs it):
    alone = [s for s in shas if subprocess.run(
        ["git", "-C", str(clone), "show", "--shortstat", "--format=", s],
        env={**os.environ, "GIT_NO_LAZY_FETCH": "1", "GIT_ALLOW_PROTOCOL": "none"},
        capture_output=True, check=False).returncode != 0]
    assert missing == alone == shas[:-1]
    assert (rows[shas[-1]]["stats_status"], rows[shas[-1]]["files_changed"],
            rows[shas[-1]]["insertions"]) == ("ok", 1, 1)
    assert all((rows[s]["files_changed"], rows[s]["insertions"]) == (0, 0) for s in missing)
    assert outcome.status == "partial"
    assert f"file stats unavailable for {len(missing)} commit(s)" in outcome.errors[0].message
    # The origin was reachable (file://) and still nothing was fetched: git stayed offline.
    assert not old_blob.exists()
    assert run_git(clone, "count-objects").startswith("0 objects")


def test_a_force_push_marks_the_dropped_commits_unreachable(write_config, origin, tmp_path,
                                                             monkeypatch):
    bare, work, shas = origin
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", f"file://{bare}", str(clone))
    config = config_with_clone(write_config, clone)
    store = Store(tmp_path / "s.db")
    first, _ = run(store, config)

    # Upstream drops the last two commits and pushes one new commit instead.
    run_git(work, "reset", "-q", "--hard", shas[3])
    [replacement] = linear(work, 1, start=10)
    run_git(work, "push", "-q", "--force", "origin", "main")
    run_git(clone, "fetch", "-q", "origin")
    run_git(clone, "reset", "-q", "--hard", "origin/main")
    calls: list[tuple[str, ...]] = []
    real = git_history.stream

    def spy(clone_path, *args, **kwargs):
        calls.append(args)
        return real(clone_path, *args, **kwargs)

    monkeypatch.setattr(git_history, "stream", spy)
    second, outcome = run(store, config)
    monkeypatch.undo()

    assert outcome.status == "ok"
    rows = stored(store)
    assert set(rows) == {*shas, replacement}
    assert [rows[s]["reachable"] for s in shas] == [1, 1, 1, 1, 0, 0]
    assert rows[replacement]["reachable"] == 1 and rows[replacement]["first_run_id"] == second
    # The dropped commits keep their stats (re-read, not zeroed) and their first run.
    assert [(rows[s]["stats_status"], rows[s]["files_changed"], rows[s]["first_run_id"])
            for s in shas[4:]] == [("ok", 2, first)] * 2
    # The shared history was not read again: only the orphans and the new commit.
    logs = [a for a in calls if a[0] == "log" and "--topo-order" in a]
    assert len(logs) == 2
    assert store.query("SELECT sum(commits) AS n FROM git_monthly_activity") == [{"n": 5}]
    assert store.query("SELECT commit_count, new_commits FROM git_repos WHERE run_id = ?",
                       [second]) == [{"commit_count": 5, "new_commits": 1}]
    assert store.source_state("git")[("trax", FRONTIER)] == replacement

    # The commits come back (upstream reverts the force-push): reachable again.
    run_git(clone, "reset", "-q", "--hard", shas[-1])
    run(store, config)
    rows = stored(store)
    assert [rows[s]["reachable"] for s in shas] == [1] * 6
    assert rows[replacement]["reachable"] == 0
    assert store.query("SELECT sum(commits) AS n FROM git_monthly_activity") == [{"n": 6}]


def test_a_force_push_that_only_drops_commits_leaves_a_cheap_next_run(
        write_config, history, tmp_path, monkeypatch):  # noqa: F811
    repo, shas = history
    config = config_with_clone(write_config, repo)
    store = Store(tmp_path / "s.db")
    run(store, config)
    run_git(repo, "reset", "-q", "--hard", shas[3])  # c5 and c6 dropped, nothing new
    second, outcome = run(store, config)
    assert outcome.status == "ok"
    assert [r["reachable"] for r in map(stored(store).get, shas)] == [1, 1, 1, 1, 0, 0]
    assert store.source_state("git")[("trax", FRONTIER)] == shas[3]
    calls: list[tuple[str, ...]] = []
    real = git_history.stream
    monkeypatch.setattr(git_history, "stream",
                        lambda clone, *a, **k: (calls.append(a), real(clone, *a, **k))[1])
    run(store, config)
    assert calls == []  # the dropped commits are not listed again


def test_a_pruned_old_history_is_read_again_and_said(write_config, history,  # noqa: F811
                                                      tmp_path):
    repo, shas = history
    config = config_with_clone(write_config, repo)
    store = Store(tmp_path / "s.db")
    run(store, config)
    run_git(repo, "reset", "-q", "--hard", shas[3])
    new = commit(repo, {"z.py": "z\n"}, "2026-11-01T10:00:00+00:00", "Eve <eve@example.com>")
    run_git(repo, "reflog", "expire", "--expire=now", "--all")
    run_git(repo, "gc", "-q", "--prune=now")
    second, outcome = run(store, config)

    assert outcome.status == "partial"
    assert "no longer in the clone" in outcome.errors[0].message
    rows = stored(store)
    assert {s for s, r in rows.items() if r["run_id"] == second} == {*shas[:4], new}
    assert store.source_state("git")[("trax", FRONTIER)] == new


def test_merges_are_stored_and_left_out_of_the_monthly_view(write_config, tmp_path):
    repo = new_repo(tmp_path / "clone")
    base = linear(repo, 2)
    run_git(repo, "checkout", "-q", "-b", "side")
    side = [commit(repo, {f"s{i}.py": "s\n"}, f"2026-0{i}-15T10:00:00+00:00", AUTHORS[1])
            for i in (5, 6)]
    run_git(repo, "checkout", "-q", "main")
    main = linear(repo, 1, start=8)
    run_git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side",
            date="2026-09-02T10:00:00+00:00", author="Ann <ann@example.com>")
    merge = run_git(repo, "rev-parse", "HEAD")
    store = Store(tmp_path / "s.db")
    # Chunks of 2 over a branching history: each batch's frontier is a valid resume point.
    _, outcome = run(store, config_with_clone(write_config, repo), chunk_size=2)

    assert outcome.status == "ok"
    rows = stored(store)
    assert set(rows) == {*base, *side, *main, merge}
    assert rows[merge]["parents"] == 2 and rows[merge]["files_changed"] == 0
    assert store.query("SELECT sum(commits) AS n FROM git_monthly_activity") == [{"n": 5}]
    assert store.source_state("git")[("trax", FRONTIER)] == merge


def test_a_deleted_tag_drops_out_of_the_current_tags(write_config, history,  # noqa: F811
                                                     tmp_path):
    repo, _ = history
    config = config_with_clone(write_config, repo)
    store = Store(tmp_path / "s.db")
    first, _ = run(store, config)
    run_git(repo, "tag", "-d", "v0.1")
    second, _ = run(store, config)

    assert store.query("SELECT tag, first_run_id, last_seen_run_id FROM git_tags"
                       " ORDER BY tag") == [
        {"tag": "v0.1", "first_run_id": first, "last_seen_run_id": first},
        {"tag": "v0.2", "first_run_id": first, "last_seen_run_id": second}]
    assert store.query("SELECT tag FROM git_tags_current") == [{"tag": "v0.2"}]
    assert store.query("SELECT tag_count FROM git_repos_latest") == [{"tag_count": 1}]


def test_a_silent_git_is_killed_after_the_stall_timeout(tmp_path):
    repo = new_repo(tmp_path / "clone")
    started = time.monotonic()
    lines = stream(repo, "-c", "alias.hang=!echo first; sleep 3", "hang", stall=0.5)
    assert next(lines) == "first"
    with pytest.raises(subprocess.TimeoutExpired):
        next(lines)
    assert time.monotonic() - started < 2.5
    with pytest.raises(GitError, match="not a valid object name|unknown revision"):
        list(stream(repo, "log", "no-such-rev", stall=5))
