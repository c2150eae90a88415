"""Bounded worker processes: every job runs in a spawned process under a time and a memory
limit, and whatever happens to a worker costs only the job it was running.

* **Memory.** A worker caps its own address space (``RLIMIT_AS``) at what it uses idle plus
  ``Limits.memory_mb``. Python code then raises MemoryError (the job function words it), and
  native code that cannot allocate (libcst's Rust parser) aborts the worker: both come back
  as a ``memory`` failure of that job.
* **Time.** The parent kills a worker whose job runs past ``Limits.seconds`` (``timeout``).
* **Death.** A worker that dies (killed, crashed) costs its job (``worker_died``); a fresh
  one takes its place and the other jobs go on. A ``memory`` failure or a death in a worker
  that had run other jobs before is tried once more in a fresh worker, so a job's result
  does not depend on what ran before it in the same process.
* **Orphans.** Workers die with their parent, even one killed with SIGKILL:
  ``PR_SET_PDEATHSIG`` on Linux, a thread watching the parent's pid elsewhere.

Workers are spawned (not forked: the parent may hold threads and SQLite handles) and reused
from job to job, so the spawn cost (about a second: the analyzers' imports) is paid once per
worker, not per job. A worker's stderr goes to a file: native crash messages tell an abort
for lack of memory from other deaths, and warnings about the code analyzed stay off the
user's terminal.

**Beyond one machine.** :func:`run_batched` sends the jobs in batches through an executor
(:mod:`fwsurvey.executor`, e.g. a Ray cluster): each batch is one executor job that runs
:func:`run_bounded` on its node, so every file keeps its limits there; results come back to
the caller (the only writer of the store) in job order. A batch whose executor worker is
lost costs the files of that batch (``worker_died``), and the other batches go on.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, BinaryIO

from fwsurvey.executor import CRASHED, ERROR, ExecJob, Executor, Resources

#: Failure kinds the pool itself reports (as ``{"error": kind, "message": ...}``).
MEMORY, TIMEOUT, DIED = "memory", "timeout", "worker_died"
#: Recursion limit and thread stack of a worker: deeply nested but valid code (a list 190
#: brackets deep) recurses past Python's default 1,000 frames in libcst's visitors; the
#: stack is big enough that the recursion limit, not a C stack overflow, is hit first.
RECURSION_LIMIT = 50_000
STACK_BYTES = 256 << 20
#: Seconds a worker may take to start (import the analyzers) before it counts as failed.
START_SECONDS = 120.0
#: Workers that fail to start in a row before the pool gives up (a broken installation).
MAX_START_FAILURES = 3
_PR_SET_PDEATHSIG = 1
#: A worker's first-generation GC threshold (Python's default: 700 allocations). A job builds
#: two syntax trees of tens of thousands of objects that hold no cycles: at the default, the
#: collector traverses them again and again while they are built and walked (a tenth of the
#: job's time); at this threshold it still runs every 10,000 allocations, so the garbage a
#: job's cycles leave stays bounded. Only when it runs changes, never a result.
GC_THRESHOLD = 10_000


class WorkersFailed(Exception):
    """The workers cannot start at all (not one job's fault): the caller fails as a whole."""


@dataclass(frozen=True)
class Limits:
    """What one job may take, and the settings that raise each limit (named in messages)."""

    seconds: float
    memory_mb: int
    seconds_setting: str = "max_seconds"
    memory_setting: str = "max_memory_mb"

    def timeout_message(self) -> str:
        """Why a job that ran out of time was stopped, and what raises the limit."""
        return (f"measuring took over {self.seconds:g} s and was stopped;"
                f" raise {self.seconds_setting} to allow more")

    def memory_message(self) -> str:
        """Why a job that ran out of memory was stopped, and what raises the limit."""
        return (f"measuring needed over {self.memory_mb:,} MB and was stopped;"
                f" raise {self.memory_setting} to allow more")


def run_bounded(fn: Callable[..., dict[str, Any]], jobs: Sequence[tuple], init: tuple,
                limits: Limits, processes: int) -> Iterator[dict[str, Any]]:
    """``fn(*job, *init)`` for each job, in job order, in up to ``processes`` workers.

    ``fn`` must be importable by name (workers are spawned) and return a dict; a job that
    overruns a limit or loses its worker yields ``{"error": kind, "message": ...}``.
    Raises WorkersFailed when workers cannot be started at all.
    """
    if not jobs:
        return
    pool = _Pool(fn, init, limits)
    try:
        yield from pool.run(jobs, max(1, processes))
    finally:
        pool.close()


#: Files per executor job in :func:`run_batched`: enough that a batch's start (spawning its
#: workers, about a second) is small beside its files, few enough to spread a corpus.
BATCH_JOBS = 200


def _run_batch(fn: Callable[..., dict[str, Any]], jobs: Sequence[tuple], init: tuple,
               limits: Limits, processes: int) -> list[dict[str, Any]]:
    """One batch on an executor's worker: :func:`run_bounded` there, its results as a list."""
    return list(run_bounded(fn, jobs, init, limits, processes))


def run_batched(executor: Executor, fn: Callable[..., dict[str, Any]], jobs: Sequence[tuple],
                init: tuple, limits: Limits, processes: int,
                batch_jobs: int | None = None) -> Iterator[dict[str, Any]]:
    """Like :func:`run_bounded` (results in job order, the same failures per job), with the
    jobs sent through ``executor`` in batches of ``batch_jobs`` (:data:`BATCH_JOBS`), each by
    ``processes`` bounded workers on the node it lands on (and asking for that many CPUs).

    ``fn``, ``init`` and the jobs must be picklable and importable where the batch runs.
    Raises WorkersFailed when a batch's workers cannot start at all.
    """
    processes, size = max(1, processes), max(1, batch_jobs or BATCH_JOBS)
    batches = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    resources = Resources(cpus=float(processes), memory_mb=limits.memory_mb * processes)
    work = [ExecJob(f"analyze batch {k + 1}/{len(batches)}", _run_batch,
                    (fn, batch, init, limits, processes), resources)
            for k, batch in enumerate(batches)]
    ready: dict[int, list[dict[str, Any]]] = {}
    following = 0
    for done in executor.run(work):
        count, reason = len(batches[done.index]), done.reason or ""
        if done.ok:
            ready[done.index] = done.result
        elif done.failure == ERROR and reason.startswith(WorkersFailed.__name__):
            raise WorkersFailed(reason.split(": ", 1)[-1])
        else:
            what = ("was lost" if done.failure == CRASHED else "failed"
                    if done.failure == ERROR else "could not be placed")
            ready[done.index] = [{"error": DIED, "message": (
                f"the {executor.name} worker measuring its batch of {count} files {what}"
                f" ({reason}); the other batches were measured")}] * count
        while following in ready:
            yield from ready.pop(following)
            following += 1


# -- the parent's side -------------------------------------------------------------------------

@dataclass
class _Worker:
    proc: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    #: The worker's stderr, read through the parent's own handle: the file is unlinked as
    #: soon as the worker has opened it, so nothing is left behind, even after a kill -9.
    stderr: BinaryIO
    stderr_path: Path
    started: float
    ready: bool = False
    jobs_done: int = 0
    job: tuple[int, int] | None = None  # (index, attempt)
    deadline: float = 0.0
    #: Where its stderr stood when the current job was sent: what the job made it write.
    mark: int = 0

    def stderr_size(self) -> int:
        try:
            return os.fstat(self.stderr.fileno()).st_size
        except (OSError, ValueError):
            return 0

    def stderr_tail(self) -> str:
        """The last of what it wrote to stderr since its current job was sent."""
        try:
            self.stderr.seek(max(self.mark, self.stderr_size() - 4096))
            return self.stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def send(self, job: tuple[int, int], data: tuple) -> None:
        self.job, self.mark = job, self.stderr_size()
        with contextlib.suppress(OSError, ValueError):  # if it just died, it reads as lost
            self.conn.send(data)

    def forget_stderr_path(self) -> None:
        with contextlib.suppress(OSError):
            self.stderr_path.unlink()

    def ask_to_stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)

    def stop(self, *, kill: bool) -> None:
        if not kill:
            self.ask_to_stop()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()
        self.forget_stderr_path()
        self.stderr.close()


@dataclass
class _Pool:
    fn: Callable[..., dict[str, Any]]
    init: tuple
    limits: Limits
    workers: list[_Worker] = field(default_factory=list)
    started: int = 0
    start_failures: int = 0

    def _start(self) -> _Worker:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        self.started += 1
        fd, path = tempfile.mkstemp(prefix="fwsurvey-worker-", suffix=".stderr")
        proc = ctx.Process(target=_serve, name=f"fwsurvey-worker-{self.started}", daemon=True,
                           args=(child_conn, self.fn, self.init, self.limits, os.getpid(),
                                 path))
        with _main_hidden():
            proc.start()
        child_conn.close()  # the worker holds the only other end: EOF when it dies
        worker = _Worker(proc, parent_conn, os.fdopen(fd, "rb"), Path(path), time.monotonic())
        self.workers.append(worker)
        return worker

    def run(self, jobs: Sequence[tuple], processes: int) -> Iterator[dict[str, Any]]:
        queue: deque[tuple[int, int]] = deque((i, 0) for i in range(len(jobs)))
        results: dict[int, dict[str, Any]] = {}
        yielded = 0
        while yielded < len(jobs):
            while yielded in results:
                yield results.pop(yielded)
                yielded += 1
            if yielded == len(jobs):
                break
            idle = [w for w in self.workers if w.job is None]
            while queue and len(self.workers) < processes and len(idle) < len(queue):
                idle.append(self._start())
            for w in idle:
                if w.ready and queue:
                    job = queue.popleft()
                    w.send(job, jobs[job[0]])
                    w.deadline = time.monotonic() + self.limits.seconds
            self._wait_and_collect(queue, results)

    def _wait_and_collect(self, queue: deque[tuple[int, int]],
                          results: dict[int, dict[str, Any]]) -> None:
        now = time.monotonic()
        deadlines = [w.deadline if w.job else w.started + START_SECONDS
                     for w in self.workers if w.job or not w.ready]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        if not self.workers:
            return
        wait([w.conn for w in self.workers] + [w.proc.sentinel for w in self.workers], timeout)
        now = time.monotonic()
        for w in list(self.workers):
            if w.conn.poll():
                try:
                    message = w.conn.recv()
                except (EOFError, OSError):
                    self._lost(w, queue, results)
                    continue
                self._received(w, message, queue, results)
            elif not w.proc.is_alive():
                self._lost(w, queue, results)
            elif w.job and now >= w.deadline:
                self._retire(w, kill=True)
                results[w.job[0]] = {"error": TIMEOUT, "message": self.limits.timeout_message()}
            elif not w.ready and now >= w.started + START_SECONDS:
                self._retire(w, kill=True)
                self._start_failed(f"did not start within {START_SECONDS:g} s")

    def _received(self, w: _Worker, message: Any, queue: deque[tuple[int, int]],
                  results: dict[int, dict[str, Any]]) -> None:
        if not w.ready:  # its first message says it is ready (and has opened its stderr)
            w.ready, self.start_failures = True, 0
            w.forget_stderr_path()
            return
        assert w.job is not None
        (index, attempt), w.job = w.job, None
        w.jobs_done += 1
        if isinstance(message, dict) and message.get("error") == MEMORY:
            # Its address space may be fragmented or still hold what the job allocated.
            self._retire(w, kill=True)
            if w.jobs_done > 1 and attempt == 0:
                queue.appendleft((index, 1))
                return
        results[index] = message

    def _lost(self, w: _Worker, queue: deque[tuple[int, int]],
              results: dict[int, dict[str, Any]]) -> None:
        w.proc.join(5)  # it died (or is dying): read its exit status and last words first
        tail = w.stderr_tail()
        how = _how(w.proc.exitcode, tail)
        self._retire(w, kill=True)
        if not w.ready:
            self._start_failed(how)
            return
        if w.job is None:
            return
        index, attempt = w.job
        if w.jobs_done > 0 and attempt == 0:
            queue.appendleft((index, 1))  # perhaps an earlier job's doing: try a fresh worker
            return
        if "memory allocation of" in tail or "MemoryError" in tail:
            results[index] = {"error": MEMORY, "message": self.limits.memory_message()}
        else:
            results[index] = {"error": DIED, "message": f"the worker process measuring it"
                              f" died ({how}); the other files were measured"}

    def _start_failed(self, how: str) -> None:
        self.start_failures += 1
        if self.start_failures >= MAX_START_FAILURES:
            raise WorkersFailed(f"the analyzer's worker processes fail to start ({how})")

    def _retire(self, w: _Worker, *, kill: bool) -> None:
        if w in self.workers:
            self.workers.remove(w)
            w.stop(kill=kill)

    def close(self) -> None:
        """Stop every worker: idle ones asked to exit (all at once), busy ones killed."""
        for w in self.workers:
            if w.job is None:
                w.ask_to_stop()
        for w in list(self.workers):
            if w.job is None:
                w.proc.join(5)
            self._retire(w, kill=True)  # a no-op kill for those that exited


def _how(code: int | None, stderr: str) -> str:
    """How a worker ended: its signal or exit status, and its last line on stderr."""
    if code is not None and code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit status {code}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"{how}: {lines[-1][:200]}" if lines else how


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Start workers without running the parent's main module in them.

    A spawned process runs the parent's ``__main__`` script (as ``__mp_main__``) before its
    target, for functions defined there; ours are importable by name, and the script is the
    ``fwsurvey`` command or a benchmark, whose imports (the CLI, the store, numpy ...) cost
    each worker about half a second of start for nothing. ``multiprocessing`` finds the script
    through ``__main__.__file__`` and ``__main__.__spec__`` while ``start()`` prepares the
    process: both are hidden for that call only.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


# -- the worker's side -------------------------------------------------------------------------

def _serve(conn: Connection, fn: Callable[..., dict[str, Any]], init: tuple, limits: Limits,
           parent: int, stderr: str) -> None:
    """A worker's life: tie it to its parent, then answer jobs until told to stop."""
    _die_with_parent(parent)
    fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    # The jobs run in a thread with a big stack (see RECURSION_LIMIT).
    threading.stack_size(STACK_BYTES)
    thread = threading.Thread(target=_answer, args=(conn, fn, init, limits), daemon=True)
    thread.start()
    thread.join()
    sys.stderr.flush()
    os._exit(0)  # nothing to clean up: skip tearing down the analyzers' modules (~0.2 s)


def _answer(conn: Connection, fn: Callable[..., dict[str, Any]], init: tuple,
            limits: Limits) -> None:
    sys.setrecursionlimit(RECURSION_LIMIT)
    _cap_memory(limits.memory_mb)
    # What is loaded now (the analyzers' modules) lives as long as the worker: frozen, the
    # collector stops traversing it on every full collection.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            result = fn(*job, *init)
        except MemoryError:  # fn words its own; this is the last resort
            result = {"error": MEMORY, "message": limits.memory_message()}
        try:
            conn.send(result)
        except MemoryError:
            conn.send({"error": MEMORY, "message": limits.memory_message()})


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (a watching thread elsewhere)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _address_space() -> int | None:
    """This process's address space in bytes (Linux), None where it cannot be read."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _cap_memory(memory_mb: int) -> None:
    """Cap the address space at what the idle worker uses plus ``memory_mb``."""
    try:
        import resource
    except ImportError:  # not on this platform: the time limit still holds
        return
    used = _address_space()
    if used is None:
        return
    cap = used + (memory_mb << 20)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def near_memory_limit() -> bool:
    """Whether this process's peak address space came within 1/8 of its ``RLIMIT_AS``.

    Tells a MemoryError for lack of memory from one Python's parser raises on code nested
    too deeply for it (Python 3.11 words both the same): the parser's gives up early, with
    most of the limit unused. In a worker that ran other jobs the peak may be theirs: the
    pool then tries the job again in a fresh worker.
    """
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        status = Path("/proc/self/status").read_text()
    except (ImportError, OSError):
        return False
    if soft == resource.RLIM_INFINITY:
        return False
    peak = next((int(line.split()[1]) << 10 for line in status.splitlines()
                 if line.startswith("VmPeak:")), 0)
    return peak >= soft - soft // 8
