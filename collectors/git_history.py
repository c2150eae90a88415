"""Git history of a local clone, offline: commits, authors and tags, streamed in batches.

For each framework whose configuration names a ``git_clone``. Why it is built this way:

* **Streamed, in committed batches.** A pytorch-sized history does not fit one buffered
  ``git log`` under one timeout. ``git log --reverse --topo-order`` is read line by line
  (:func:`stream`), every ``chunk_size`` commits are yielded with their watermark and a
  :class:`~fwsurvey.sources.Checkpoint`, so a fault or a killed process keeps every batch
  committed. git may stay silent at most ``stall_timeout`` seconds (per read, not per
  history); then it is killed and :class:`subprocess.TimeoutExpired` fails the item.
* **The watermark is a frontier.** Oldest-first (parents before children), the commits stored
  so far are closed under ancestry, so the heads of that set (``commits_frontier``, space
  separated) say exactly what is stored: the next run reads ``HEAD --not <frontier>`` and a
  run after no change reads nothing (one ``rev-parse``, no re-parse of the history).
* **Metadata first, file stats apart.** ``git log --format`` needs only commit objects, so
  commits and authors land even in a clone with a missing blob or a blobless
  (``--filter=blob:none``) clone read offline. Stats (``--shortstat``) are read per batch in a
  second process; a commit whose blobs cannot be read is stored with ``stats_status =
  'unavailable'`` (and zeros no sum counts), and the item ends ``incomplete`` saying how many.
  git never goes to the network: lazy fetching from a promisor remote is disabled.
* **Rewritten history.** When a frontier commit is no longer an ancestor of ``HEAD`` (a
  force-push), the commits reachable from the old frontier but not from ``HEAD`` are stored
  again with ``reachable = 0``; ``git_monthly_activity`` counts reachable, non-merge commits.
  If the old frontier has been pruned from the clone, the orphans cannot be listed: the whole
  history is read again (all reachable commits marked reachable) and the item says so.

Author names and e-mails go through the clone's ``.mailmap`` (git's ``%aN``/``%aE``), so one
person with two addresses counts once. Bots are not filtered here: metrics classify them from
the configuration, using the stored author and committer e-mails and the parent count.
This collector writes no ``community_metrics`` (they are computed from ``git_commits``).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.sources import (
    Checkpoint,
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Reachability,
    Record,
    SourceOptions,
)

#: source_state name of the watermark: the heads of the set of stored commits (space separated).
FRONTIER = "commits_frontier"
#: source_state name of the last ``git_repos`` summary, reused while HEAD does not move.
SUMMARY = "repo_summary"
_SHORTSTAT = re.compile(r"(\d+) files? changed(?:, (\d+) insertions?\(\+\))?"
                        r"(?:, (\d+) deletions?\(-\))?")
_RS, _US = "\x1e", "\x1f"
#: One line per commit: hash, parents, author (mailmap), author e-mail, dates, committer e-mail.
_LOG_FORMAT = "--format=tformat:%H%x1f%P%x1f%aN%x1f%aE%x1f%aI%x1f%cI%x1f%cE"
#: git must never fetch: a promisor (blobless) clone would try its remote for missing blobs.
_ENV = {"LC_ALL": "C", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_LAZY_FETCH": "1", "GIT_ALLOW_PROTOCOL": "none"}


class GitError(Exception):
    """A git command failed."""


def _message(stderr: bytes, args: tuple[str, ...]) -> str:
    """git's first ``fatal:``/``error:`` line (the cause; usage text may follow), else its last."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    causes = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (causes or lines or [f"git {args[0] if args else ''} failed"])[0 if causes else -1]


def _command(clone: Path, args: Iterable[str]) -> list[str]:
    return ["git", "-c", "core.quotepath=off", "-C", str(clone), *args]


def git(clone: Path, *args: str, timeout: float = 600) -> str:
    """Run git in ``clone`` and return its standard output (UTF-8, C locale); short commands."""
    try:
        done = subprocess.run(_command(clone, args), capture_output=True,
                              env={**os.environ, **_ENV}, timeout=timeout, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        raise GitError(_message(done.stderr, args))
    return done.stdout.decode("utf-8", "replace")


def stream(clone: Path, *args: str, stall: float, stdin: Path | None = None) -> Iterator[str]:
    """git's output line by line as it comes, never buffered whole.

    ``stall``: seconds git may stay silent before it is killed and
    :class:`subprocess.TimeoutExpired` raised (a hung git, not a long history). A failing git
    raises :class:`GitError` after the lines it did print. Closing the generator early kills
    git. stderr goes to a file, so a chatty git can never block on a full pipe.
    """
    cmd = _command(clone, args)
    with tempfile.TemporaryFile() as err, \
            (stdin.open("rb") if stdin else open(os.devnull, "rb")) as inp:
        try:
            proc = subprocess.Popen(cmd, stdin=inp, stdout=subprocess.PIPE, stderr=err,
                                    env={**os.environ, **_ENV})
        except FileNotFoundError:
            raise GitError("git is not installed") from None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                tail = b""
                while True:
                    if not sel.select(stall):
                        raise subprocess.TimeoutExpired(cmd, stall)
                    data = os.read(fd, 1 << 16)
                    if not data:
                        break
                    *lines, tail = (tail + data).split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", "replace")
                if tail:
                    yield tail.decode("utf-8", "replace")
            if proc.wait(timeout=stall) != 0:
                err.seek(0)
                raise GitError(_message(err.read(), args))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="seconds")


def parse_commit(line: str) -> tuple[dict[str, Any], list[str]]:
    """One commit from a line of :data:`_LOG_FORMAT` (no file stats), and its parents."""
    sha, parents, name, email, authored, committed, committer = line.split(_US)
    parent_shas = parents.split()
    return {
        "sha": sha,
        "parents": len(parent_shas),
        "author_name": name,
        "author_email": email.lower(),
        "committer_email": committer.lower(),
        "authored_at": _utc(authored),
        "committed_at": _utc(committed),
    }, parent_shas


def parse_stats(lines: Iterable[str]) -> Iterator[tuple[str, tuple[int, int, int]]]:
    """``(sha, (files, insertions, deletions))`` from ``--format=%x1e%H --shortstat`` output.

    Each commit is yielded when the next one starts (the last at the end of the output), so
    when git dies mid-way the commit it was on is never yielded: it may have printed its
    header and not its stats. A commit without a stat line (a merge, an empty one) has zeros.
    """
    sha: str | None = None
    stats = (0, 0, 0)
    for line in lines:
        if line.startswith(_RS):
            if sha is not None:
                yield sha, stats
            sha, stats = line[1:].strip(), (0, 0, 0)
        elif sha is not None and (match := _SHORTSTAT.search(line)):
            stats = (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))
    if sha is not None:
        yield sha, stats


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

    #: Kept so existing configurations stay valid; windowed metrics are computed from the store.
    window_days: int = 365
    #: Commits per committed batch (rows, watermark and a checkpoint).
    chunk_size: int = 5000
    #: Seconds git may print nothing before it is killed (per read, not per history).
    stall_timeout: float = 300.0
    #: Commits whose stats failed after which the item stops trying (a blobless clone fails
    #: on nearly every commit; each failure costs a git process).
    max_stat_failures: int = 50


class _Stats:
    """File stats of batches of commits, commit by commit when blobs are missing."""

    def __init__(self, clone: Path, stall: float, max_failures: int):
        self.clone, self.stall, self.max_failures = clone, stall, max_failures
        self.failures = 0
        self.unavailable = 0
        self.first_error: str | None = None

    def read(self, shas: list[str]) -> dict[str, tuple[int, int, int] | None]:
        """Stats by sha; None where they could not be read."""
        found: dict[str, tuple[int, int, int] | None] = {}
        pending = shas
        while pending:
            if self.failures >= self.max_failures:
                found.update(dict.fromkeys(pending))
                break
            done, error = self._attempt(pending)
            found.update(done)
            if error is None:
                break
            self.failures += 1
            self.first_error = self.first_error or error
            rest = [s for s in pending if s not in found]
            if len(rest) == len(pending):
                # No commit finished: the first one failed, or git died before printing the
                # second one's header. Alone, the first one says which.
                alone, error = self._attempt(rest[:1])
                found[rest[0]] = alone.get(rest[0]) if error is None else None
                rest = rest[1:]
            pending = rest
        self.unavailable += sum(v is None for v in found.values())
        return found

    def _attempt(self, shas: list[str]) -> tuple[dict[str, tuple[int, int, int]], str | None]:
        """Stats of the commits git finished before it failed (if it did), and its error.

        Only commits followed by another one count as finished (:func:`parse_stats`); the one
        git was on when it died is tried again, first in the next attempt.
        """
        done: dict[str, tuple[int, int, int]] = {}
        with tempfile.NamedTemporaryFile("w", suffix=".revs", delete=False) as revs:
            revs.write("\n".join(shas) + "\n")
        try:
            for sha, stats in parse_stats(stream(
                    self.clone, "log", "--no-walk=unsorted", "--stdin", "--no-color",
                    f"--format=tformat:{_RS}%H", "--shortstat", stall=self.stall,
                    stdin=Path(revs.name))):
                done[sha] = stats
        except GitError as exc:
            return done, str(exc)
        finally:
            os.unlink(revs.name)
        return done, None


class GitHistoryCollector(Collector):
    """Tables ``git_repos`` (history), ``git_commits`` and ``git_tags``."""

    name = "git"
    title = "Git history of local clones"
    Options = GitOptions
    options: GitOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None,
                 now: Callable[[], datetime] | None = None):
        super().__init__(config, settings)
        self.now = now or (lambda: datetime.now(UTC))

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

    def fetch(self, item: Item) -> Iterator[Record | Checkpoint]:
        clone = self.config.frameworks[item.framework].git_clone
        assert clone is not None
        fetched_at = self.now().isoformat(timespec="seconds")
        try:
            if not clone.is_dir():
                raise GitError("no such directory")
            head = git(clone, "rev-parse", "--verify", "--end-of-options",
                       "HEAD^{commit}").strip()
        except GitError as exc:
            raise ItemNotFound(f"{clone}: {exc}") from None
        try:
            yield from _Run(self, item, clone, head, fetched_at).records()
        except GitError as exc:
            # Batches already yielded are committed; say what failed, keep them.
            raise PartialItem(f"{clone}: {exc}", []) from None


class _Run:
    """One item's fetch: what to read, the batches, the notes for the outcome."""

    def __init__(self, collector: GitHistoryCollector, item: Item, clone: Path, head: str,
                 fetched_at: str):
        self.c, self.item, self.clone, self.head = collector, item, clone, head
        self.fetched_at = fetched_at
        opts = collector.options
        self.stats = _Stats(clone, opts.stall_timeout, opts.max_stat_failures)
        self.notes: list[str] = []

    def row(self, table: str, **values: Any) -> Record:
        return Record(table, {"framework": self.item.framework, **values,
                              "fetched_at": self.fetched_at})

    def state(self, name: str, value: str) -> Record:
        return self.c.state_record(self.item.key, name, value, self.fetched_at)

    def records(self) -> Iterator[Record | Checkpoint]:
        old = (self.c.state.get((self.item.key, FRONTIER)) or "").split()
        new = 0
        if old != [self.head]:
            base, orphans = self._base(old)
            if orphans:
                # The old history first: stored again as unreachable (its stats re-read, so
                # an upsert never overwrites good stats with zeros).
                yield from self._commits([*orphans, "--not", self.head, "--"], None, reachable=0)
            new = yield from self._commits([self.head, "--not", *base, "--"], set(base))
        yield from self._summary(new)
        if self.stats.unavailable:
            self.notes.append(
                f"file stats unavailable for {self.stats.unavailable} commit(s), stored with"
                f" stats_status='unavailable' ({self.stats.first_error})")
        if self.notes:
            yield Checkpoint("git summary")
            raise PartialItem(f"{self.clone}: " + "; ".join(self.notes), [])

    def _base(self, old: list[str]) -> tuple[list[str], list[str]]:
        """Commits under HEAD whose whole ancestry is stored; frontier commits left behind.

        A frontier commit still under HEAD is kept; one a force-push left behind contributes
        its merge bases with HEAD (their ancestry was stored with it), so dropping commits
        never re-reads the shared history.
        """
        under, behind, gone = [], [], []
        for sha in old:
            if self._code("cat-file", "-e", f"{sha}^{{commit}}") != 0:
                gone.append(sha)
            elif self._code("merge-base", "--is-ancestor", sha, self.head) == 0:
                under.append(sha)
            else:
                behind.append(sha)
        if gone:
            self.notes.append(
                f"the stored watermark {gone[0][:12]} is no longer in the clone (history"
                " rewritten and pruned): every reachable commit was read again, and commits"
                " of the old history cannot be marked unreachable")
            return [], []
        for sha in behind:
            try:
                under += git(self.clone, "merge-base", "--all", sha, self.head).split()
            except GitError:
                pass  # unrelated histories: nothing shared
        return sorted(set(under)), behind

    def _code(self, *args: str) -> int:
        """The exit status of a quick git query."""
        return subprocess.run(_command(self.clone, args), capture_output=True,
                              env={**os.environ, **_ENV}, check=False,
                              timeout=self.c.options.stall_timeout).returncode

    def _commits(self, revs: list[str], frontier: set[str] | None,
                 reachable: int = 1) -> Generator[Record | Checkpoint, None, int]:
        """Stream ``git log`` over ``revs`` oldest first, one committed batch per chunk.

        With a ``frontier`` (the reachable history), each batch carries the watermark; the
        generator returns how many commits it stored.
        """
        size = max(1, self.c.options.chunk_size)
        lines = stream(self.clone, "log", "--reverse", "--topo-order", "--no-color",
                       _LOG_FORMAT, *revs, stall=self.c.options.stall_timeout)
        total, written = 0, None
        chunk: list[tuple[dict[str, Any], list[str]]] = []
        for line in lines:
            if line:
                chunk.append(parse_commit(line))
            if len(chunk) >= size:
                written = yield from self._batch(chunk, frontier, reachable)
                total += len(chunk)
                chunk = []
        if chunk:
            written = yield from self._batch(chunk, frontier, reachable)
            total += len(chunk)
        if frontier is not None and written != self.head:
            # Everything under HEAD is stored now (also after a force-push that only dropped
            # commits, which lists nothing new): HEAD alone says it.
            yield self.state(FRONTIER, self.head)
        return total

    def _batch(self, chunk: list[tuple[dict[str, Any], list[str]]], frontier: set[str] | None,
               reachable: int) -> Generator[Record | Checkpoint, None, str | None]:
        """One batch: its rows, its watermark (returned), a checkpoint."""
        stats = self.stats.read([c["sha"] for c, _ in chunk])
        for commit, parents in chunk:
            numbers = stats.get(commit["sha"])
            files, plus, minus = numbers or (0, 0, 0)
            yield self.row("git_commits", **commit, files_changed=files, insertions=plus,
                           deletions=minus,
                           stats_status="unavailable" if numbers is None else "ok",
                           reachable=reachable)
            if frontier is not None:
                # Oldest first: a commit's parents are stored before it; it replaces them.
                frontier.difference_update(parents)
                frontier.add(commit["sha"])
        watermark = None
        if frontier is not None:
            watermark = " ".join(sorted(frontier))
            yield self.state(FRONTIER, watermark)
        yield Checkpoint(f"{len(chunk)} commits")
        return watermark

    def _summary(self, new: int) -> Iterator[Record]:
        """Tags (all, every run: last seen) and the ``git_repos`` snapshot.

        The counts walk the whole history, so they are reused from the state while HEAD has
        not moved: a no-change run stays cheap.
        """
        stall = self.c.options.stall_timeout
        tags = []
        refs = git(self.clone, "for-each-ref", "refs/tags", "--format=%(refname:short)%1f"
                   "%(objectname)%1f%(*objectname)%1f%(creatordate:iso-strict)", timeout=stall)
        for line in refs.splitlines():
            tag, obj, peeled, date = line.split(_US)
            tags.append(self.row("git_tags", tag=tag, sha=peeled or obj,
                                 tagged_at=_utc(date) if date else None))
        yield from tags
        cached = json.loads(self.c.state.get((self.item.key, SUMMARY)) or "{}")
        if cached.get("head_sha") != self.head:
            roots = git(self.clone, "log", "--max-parents=0", "--format=%cI", self.head,
                        timeout=stall).split()
            last_date = git(self.clone, "log", "-1", "--format=%cI", self.head,
                            timeout=stall).strip()
            cached = {
                "head_sha": self.head,
                "commit_count": int(git(self.clone, "rev-list", "--count", self.head,
                                        timeout=stall)),
                "author_count": len(parse_shortlog(
                    git(self.clone, "shortlog", "-sne", self.head, "--", timeout=stall))),
                "first_commit_at": min(_utc(r) for r in roots) if roots else None,
                "last_commit_at": _utc(last_date) if last_date else None,
            }
            yield self.state(SUMMARY, json.dumps(cached, sort_keys=True))
        yield self.row("git_repos", clone_path=str(self.clone), **cached,
                       tag_count=len(tags), new_commits=new)

