"""Git history of a local clone, offline: commits, authors, tags and the absence factor.

For each framework whose configuration names a ``git_clone``. Commits are read
incrementally: the source remembers the last commit it stored (``source_state``) and reads
only ``LAST..HEAD`` next time (the whole history again if that commit is no longer an
ancestor, e.g. after a force-push; the upsert makes that harmless). Author names and
e-mails go through the clone's ``.mailmap`` (git's ``%aN``/``%aE`` and ``shortlog``), so one
person with two addresses counts once. Monthly commits and authors are the view
``git_monthly_activity`` over ``git_commits``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fwsurvey.collectors import chaoss
from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.sources import (
    Collector,
    Item,
    ItemNotFound,
    Reachability,
    Record,
    SourceOptions,
)

LAST_COMMIT = "last_commit"
_SHORTSTAT = re.compile(r"(\d+) files? changed(?:, (\d+) insertions?\(\+\))?"
                        r"(?:, (\d+) deletions?\(-\))?")
_RS, _US = "\x1e", "\x1f"


class GitError(Exception):
    """A git command failed."""


def git(clone: Path, *args: str, timeout: float = 600) -> str:
    """Run git in ``clone`` and return its standard output (UTF-8, C locale)."""
    env = {**os.environ, "LC_ALL": "C", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(["git", "-c", "core.quotepath=off", "-C", str(clone), *args],
                              capture_output=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git {args[0]} failed")
    return done.stdout.decode("utf-8", "replace")


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="seconds")


def parse_log(text: str) -> list[dict[str, Any]]:
    """Commits from ``git log --format=<RS>%H<US>%aN<US>%aE<US>%aI<US>%cI --shortstat``."""
    commits = []
    for chunk in text.split(_RS)[1:]:
        header, _, rest = chunk.partition("\n")
        sha, name, email, authored, committed = header.split(_US)
        stat = _SHORTSTAT.search(rest)
        commits.append({
            "sha": sha,
            "author_name": name,
            "author_email": email.lower(),
            "authored_at": _utc(authored),
            "committed_at": _utc(committed),
            "files_changed": int(stat.group(1)) if stat else 0,
            "insertions": int(stat.group(2) or 0) if stat else 0,
            "deletions": int(stat.group(3) or 0) if stat else 0,
        })
    return commits


def parse_shortlog(text: str) -> dict[str, int]:
    """Commits per author from ``git shortlog -sne`` (mailmap applied by git)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        count, _, who = line.strip().partition("\t")
        if who:
            counts[who] = counts.get(who, 0) + int(count)
    return counts


class GitOptions(SourceOptions):
    """``[sources.git]``'s own keys."""

    #: Window of the recent-activity metrics, in days.
    window_days: int = 365


class GitHistoryCollector(Collector):
    """Tables ``git_repos`` (history), ``git_commits``, ``git_tags`` and ``community_metrics``."""

    name = "git"
    title = "Git history of local clones"
    Options = GitOptions
    options: GitOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None,
                 now: Callable[[], datetime] | None = None):
        super().__init__(config, settings)
        self.now = now or (lambda: datetime.now(UTC))
        self.window_days = self.options.window_days

    def items(self) -> list[Item]:
        return [Item(fw.key, fw.key) for fw in self.config.frameworks.values() if fw.git_clone]

    def check(self) -> Reachability:
        if shutil.which("git") is None:
            return Reachability(False, "git is not installed")
        clones = {fw.key: fw.git_clone for fw in self.config.frameworks.values() if fw.git_clone}
        if not clones:
            return Reachability(True, "no git_clone configured (nothing to read)")
        missing = [k for k, path in clones.items() if not (path / ".git").exists()
                   and not (path / "HEAD").exists()]
        if missing:
            return Reachability(False, f"no git clone at {clones[missing[0]]} ({missing[0]})")
        return Reachability(True, f"{len(clones)} local clone(s)")

    def fetch(self, item: Item) -> list[Record]:
        clone = self.config.frameworks[item.framework].git_clone
        assert clone is not None
        now = self.now()
        fetched_at = now.isoformat(timespec="seconds")
        try:
            return self._fetch(item, clone, now, fetched_at)
        except GitError as exc:
            raise ItemNotFound(f"{clone}: {exc}") from None

    def _fetch(self, item: Item, clone: Path, now: datetime, fetched_at: str) -> list[Record]:
        if not clone.is_dir():
            raise GitError("no such directory")
        head = git(clone, "rev-parse", "--verify", "HEAD").strip()
        last = self.state.get((item.key, LAST_COMMIT))
        revs = "HEAD"
        if last and last != head:
            try:
                git(clone, "merge-base", "--is-ancestor", last, head)
                revs = f"{last}..HEAD"
            except GitError:
                pass  # rewritten history: read it all again
        fmt = f"--format={_RS}%H{_US}%aN{_US}%aE{_US}%aI{_US}%cI"
        new = [] if last == head else parse_log(git(clone, "log", fmt, "--shortstat", revs))

        def row(table: str, **values: Any) -> Record:
            return Record(table, {"framework": item.framework, **values,
                                  "fetched_at": fetched_at})

        records = [row("git_commits", **c) for c in new]
        tags = []
        for line in git(clone, "for-each-ref", "refs/tags", "--format=%(refname:short)"
                        "%1f%(objectname)%1f%(*objectname)%1f%(creatordate:iso-strict)"
                        ).splitlines():
            tag, obj, peeled, date = line.split(_US)
            tags.append(row("git_tags", tag=tag, sha=peeled or obj,
                            tagged_at=_utc(date) if date else None))
        records += tags

        authors = parse_shortlog(git(clone, "shortlog", "-sne", "HEAD"))
        roots = git(clone, "log", "--max-parents=0", "--format=%cI", "HEAD").split()
        last_date = git(clone, "log", "-1", "--format=%cI", "HEAD").strip()
        records.append(row(
            "git_repos", clone_path=str(clone), head_sha=head,
            commit_count=int(git(clone, "rev-list", "--count", "HEAD")),
            author_count=len(authors),
            first_commit_at=min(_utc(r) for r in roots) if roots else None,
            last_commit_at=_utc(last_date) if last_date else None,
            tag_count=len(tags), new_commits=len(new)))

        window = chaoss.Window.last_days(now, self.window_days)
        since = f"--since={window.start.isoformat()}"
        recent = parse_shortlog(git(clone, "shortlog", "-sne", since, "HEAD"))
        metrics = [
            chaoss.contributor_absence_factor(
                authors.values(), "commits per author, all history (git, .mailmap applied)"),
            chaoss.contributor_absence_factor(
                recent.values(), "commits per author in the window (git, .mailmap applied)",
                window),
            chaoss.Metric("commits_in_window", sum(recent.values()), "commits", window,
                          sum(recent.values()), "commits reachable from HEAD (git)"),
            chaoss.Metric("active_authors_in_window", len(recent), "authors", window,
                          len(recent), "distinct authors after .mailmap (git)"),
        ]
        metrics[0] = chaoss.Metric("contributor_absence_factor_all_time", metrics[0].value,
                                   metrics[0].unit, None, metrics[0].sample_size,
                                   metrics[0].basis)
        records += [Record("community_metrics",
                           chaoss.metric_row(m, item.key, item.framework, fetched_at))
                    for m in metrics]
        records.append(self.state_record(item.key, LAST_COMMIT, head, fetched_at))
        return records

