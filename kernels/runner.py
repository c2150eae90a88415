"""Runs kernel jobs in fresh subprocesses with a timeout per phase.

A job that crashes, runs out of memory or passes a phase's timeout is returned with its
status and the phase it reached; the caller goes on with the rest of the matrix. What the
job reported before it stopped is kept: the samples of every measurement window it
finished (``window`` events) and its steady statistics (the ``steady`` event, sent before
the final evaluation), so a timeout in the evaluation still stores the step times.

A phase's limit covers all the time spent in that phase: the steady windows share the
``steady`` limit, the evaluations after each window share the ``eval`` limit.

The job's subprocess dies with the process that started it (``PR_SET_PDEATHSIG`` on Linux):
when an executor's worker is lost mid-job (a Ray worker killed, its node gone), the training
it started does not go on alone, holding the device the next job is given.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: Seconds allowed per phase, by profile. ``steady`` covers all timed steps.
PHASE_TIMEOUTS = {
    "quick": {"import": 120, "data": 60, "build": 120, "first_step": 300, "warmup": 300,
              "steady": 300, "eval": 120},
    "full": {"import": 300, "data": 300, "build": 300, "first_step": 900, "warmup": 900,
             "steady": 600, "eval": 300},
}
#: Seconds allowed for a phase no profile names (the task's checks, its deployment paths,
#: each modular variant): the message of a timeout states it too.
DEFAULT_PHASE_LIMIT = 300


@dataclass
class Job:
    """One (task, framework, mode) to run, with its experiment variant and spec.

    A scaling job also names its device count (``n_devices``), the Python environment it
    runs in (``environment``, with its interpreter ``python``: e.g. an older JAX), a
    launcher placed before the harness module (``torch.distributed.run``) and extra
    environment variables (``env``). A job that cannot run here says why in
    ``unsupported`` and is stored without running.
    """

    task: str
    framework: str
    mode: str
    module: str
    spec: dict[str, Any]
    device: str = "cpu"
    precision: str = "fp32"
    experiment: str = "train"
    variant: str = "default"
    timeouts: dict[str, float] = field(default_factory=lambda: dict(PHASE_TIMEOUTS["quick"]))
    n_devices: int | None = None
    environment: str = "main"
    python: str | None = None
    launcher: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    unsupported: str | None = None
    #: sha256 of the implementation file and the task's spec.toml (set by the matrix).
    code_sha256: str | None = None

    @property
    def key(self) -> str:
        return f"{self.task}/{self.framework}/{self.mode}/{self.experiment}/{self.variant}"

    def payload(self) -> str:
        return json.dumps({"task": self.task, "framework": self.framework, "mode": self.mode,
                           "module": self.module, "spec": self.spec, "device": self.device,
                           "precision": self.precision, "n_devices": self.n_devices,
                           "experiment": self.experiment})

    def command(self) -> list[str]:
        """The interpreter, the launcher if any, and the harness with this job."""
        return [self.python or sys.executable, *self.launcher, "-m", "fwsurvey.kernels.harness",
                self.payload()]


def _libc_prctl() -> Any:
    """libc's prctl, resolved once here: the child calls it between fork and exec, where
    loading a library (taking locks another thread may hold) is not safe."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills it with SIGKILL when its parent dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_placed_job(job: Job) -> dict[str, Any]:
    """Run one job where an executor placed it (a Ray task): on a GPU job, the devices are
    the ones the executor gave this process (Ray sets ``CUDA_VISIBLE_DEVICES``), not the ids
    planned on the driver, which may have no GPU at all or other ones."""
    assigned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if job.device != "cpu" and assigned:
        env = {k: v for k, v in job.env.items() if k != "CUDA_VISIBLE_DEVICES"}
        job = Job(**{**job.__dict__, "env": env})
    return run_job(job)


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_job(job: Job) -> dict[str, Any]:
    """Run one job in a subprocess; always returns a result with ``status`` and ``phase``."""
    if job.unsupported:
        return {"status": "unsupported", "phase": "start", "error": job.unsupported,
                "wall_s": 0.0}
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if job.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(job.env)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fwsurvey-kernel-") as workdir:
        return _run_in(job, env, started, workdir)


def _run_in(job: Job, env: dict[str, str], started: float, workdir: str) -> dict[str, Any]:
    job = Job(**{**job.__dict__, "spec": {**job.spec, "workdir": workdir}})
    # A fresh compile cache per job: torch.compile's on-disk caches would otherwise make
    # its compile time depend on what ran on this machine before.
    env = {**env, "TORCHINDUCTOR_CACHE_DIR": os.path.join(workdir, "inductor"),
           "TRITON_CACHE_DIR": os.path.join(workdir, "triton")}
    proc = subprocess.Popen(
        job.command(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True, preexec_fn=_die_with_parent if _PRCTL is not None else None)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    err_lines: list[str] = []
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()

    try:
        return _watch(job, proc, lines, err_lines, started)
    except BaseException:  # Ctrl-C or a bug here: never leave the job running on its own
        _kill(proc)
        raise


def _watch(job: Job, proc: subprocess.Popen, lines: queue.Queue, err_lines: list[str],
           started: float) -> dict[str, Any]:
    phase, deadline = "start", started + job.timeouts.get("import", 120)
    spent: dict[str, float] = {}
    entered = started
    result: dict[str, Any] | None = None
    partial: dict[str, Any] = {}
    samples: list[list[float]] = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            _kill(proc)
            limit = job.timeouts.get(phase if phase != "start" else "import",
                                     DEFAULT_PHASE_LIMIT)
            result = {**partial, "samples": samples, "status": "timeout",
                      "error": f"phase {phase!r} passed its {limit} s limit"}
            break
        if line is None:  # the child exited
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a library printed to stdout
        kind = event.get("event")
        if kind == "phase":
            now = time.monotonic()
            spent[phase] = spent.get(phase, 0.0) + now - entered
            phase, entered = event["phase"], now
            deadline = now + job.timeouts.get(phase, DEFAULT_PHASE_LIMIT) - spent.get(phase, 0.0)
        elif kind == "window":
            samples += event.get("samples") or []
        elif kind == "steady":
            partial.update({k: v for k, v in event.items() if k != "event"})
        elif kind == "result":
            result = {**partial, "samples": samples,
                      **{k: v for k, v in event.items() if k != "event"}}
    proc.wait()
    if result is None:
        tail = "".join(err_lines[-15:]).strip()
        code = proc.returncode
        status = "oom" if code == -signal.SIGKILL else "crashed"
        result = {**partial, "samples": samples, "status": status,
                  "error": f"exited with {code}: {tail[-2000:]}" if tail else f"exited with {code}"}
    result["phase"] = phase if result["status"] != "ok" else "done"
    result["wall_s"] = time.monotonic() - started
    return result


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
