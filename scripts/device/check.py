"""The kernels' GPU check (issue #13, item 7): one script that reaches its answer in budget.

Order, so that a short lease still yields the diagnosis:

1. **Preflight**: what can be imported (torch and its GPU, JAX and its devices, Trax through
   the TensorFlow stand-in, psutil, pydantic, fwsurvey's kernels and records), one line each;
   a missing piece says what it skips.
2. **The Trax probe** (``trax_probe.py``), first: the default trainer, then the variant with
   the optimizer slots kept on the device, a few steps each, printing where Trax's update
   step runs.
3. **The LM's harness jobs** (torch.compile, JAX, PyTorch eager, Trax), each through the
   harness's job-JSON protocol (``python -m fwsurvey.kernels.harness '<job>'``: one JSON
   object per line, ``phase`` and ``result`` events; other events and fields are kept as
   they come). Every phase has a limit; a phase whose limit does not fit in what is left of
   the budget is not started: the job is stopped there and recorded as skipped for budget,
   never as a framework's timeout.

Everything printed also goes to ``OUT/check.log`` as it happens; ``OUT/results.json`` (what
each step found) and ``OUT/records.json`` (the rows for ``fwsurvey import``) are rewritten
after every job, so a kill keeps what was done. Runs on the CPU too (``--device cpu
--profile quick``), which is how its test checks it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DIR = ROOT / ".device"
PROBE = Path(__file__).with_name("trax_probe.py")
#: The format ``fwsurvey import`` reads (fwsurvey/importer.py).
RECORDS_FORMAT = "fwsurvey-records/1"
SOURCE = "device-check"

#: Seconds each harness phase may take on an H200 (GPT-2 small, full profile). A phase is
#: started only when its limit fits in the budget left; an unknown phase gets DEFAULT_LIMIT.
LIMITS = {"import": 60, "data": 60, "build": 60, "first_step": 120, "warmup": 60,
          "steady": 60, "eval": 60, "resume": 60}
DEFAULT_LIMIT = 60
#: Trax's first step took 32 s on an H200 before it stalled: a stall is a timeout in warmup.
FRAMEWORK_LIMITS = {"trax": {"first_step": 90, "warmup": 60}}
#: Seconds each probe variant may take (import, build and its steps); the default variant
#: may run its steps on the host (about 15 s each for GPT-2 small).
PROBE_LIMITS = {"default": 180, "slots-on-device": 120}
#: Seconds the preflight's imports may take.
PREFLIGHT_LIMIT = 120
#: torch.compile first: its MFU is the issue's headline target; Trax last (the probe has
#: already said where its step runs).
MODE_ORDER = {"torch-compile": 0, "jax-jit": 1, "torch-eager": 2, "trax": 3}
#: Result lists longer than this are cut in results.json (records.json keeps them whole).
SUMMARY_LIST = 8


class Log:
    """Prints a line and appends it to ``check.log`` at once (a kill loses nothing)."""

    def __init__(self, path: Path):
        self.file: TextIO = path.open("a", buffering=1)

    def __call__(self, text: str, *, quiet: bool = False) -> None:
        self.file.write(text.rstrip("\n") + "\n")
        if not quiet:
            print(text.rstrip("\n"), flush=True)


class Budget:
    """The check's deadline: what is left, and whether a limit still fits."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, limit: float) -> bool:
        return limit <= self.left()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def python_path(extra: list[Path]) -> str:
    """PYTHONPATH with ``extra`` (where present) before what the caller had."""
    parts = [str(p) for p in extra if p.exists()]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def child_env(device: str, trax: bool = False) -> dict[str, str]:
    """A subprocess's environment: the carried wheels, and for Trax the TensorFlow stand-in
    (``.device/sitecustomize.py``); on the CPU, JAX and PyTorch see no GPU."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    dirs = [DEVICE_DIR / "site"] + ([DEVICE_DIR] if trax else [])
    env["PYTHONPATH"] = python_path(dirs)
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# -- 1. preflight ---------------------------------------------------------------------------

PREFLIGHT = r'''
import json, sys
def report(name, ok, detail):
    print(json.dumps({"name": name, "ok": ok, "detail": detail}), flush=True)
def attempt(name, fn):
    try:
        report(name, True, fn())
    except BaseException as exc:
        report(name, False, f"{type(exc).__name__}: {exc}"[:300])
def torch_():
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"version": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu}
def jax_():
    import jax
    return {"version": jax.__version__, "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]}
def trax_():
    import trax
    from importlib.metadata import version
    return {"version": version("trax"), "file": trax.__file__}
def psutil_():
    import psutil
    return {"version": psutil.__version__}
def pydantic_():
    import pydantic
    return {"version": pydantic.VERSION}
def kernels_():
    from fwsurvey.kernels.tasks import discover
    return {"tasks": sorted(discover())}
def records_():
    from fwsurvey.kernels.records import job_records
    return {"job_records": job_records.__module__}
for name, fn in [("torch", torch_), ("jax", jax_), ("trax", trax_), ("psutil", psutil_),
                 ("pydantic", pydantic_), ("fwsurvey.kernels", kernels_),
                 ("fwsurvey.kernels.records", records_)]:
    attempt(name, fn)
'''

#: What each missing piece stops, for the preflight's lines.
NEEDED_FOR = {"torch": "skips the PyTorch jobs",
              "jax": "skips the JAX and Trax jobs and the probe",
              "trax": "skips the Trax probe and job",
              "psutil": "Trax's Loop cannot run (it imports psutil)",
              "pydantic": "fwsurvey.kernels cannot read the task specs",
              "fwsurvey.kernels": "skips every job and the probe",
              "fwsurvey.kernels.records": "keeps raw results instead of store rows"}


def preflight(args: argparse.Namespace, budget: Budget, log: Log) -> dict[str, Any]:
    """Import each piece in a subprocess (the check itself holds no GPU memory)."""
    env = child_env(args.device, trax=True)
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    limit = min(PREFLIGHT_LIMIT, max(budget.left(), 1))
    found: dict[str, Any] = {}
    try:
        done = subprocess.run([sys.executable, "-c", PREFLIGHT], env=env, capture_output=True,
                              text=True, timeout=limit, cwd=ROOT)
        lines, tail = done.stdout.splitlines(), done.stderr[-1500:]
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        lines, tail = out.splitlines(), f"preflight passed its {limit:.0f} s limit"
    for text in lines:
        try:
            item = json.loads(text)
        except ValueError:
            continue
        found[item["name"]] = item
    for name, needed in NEEDED_FOR.items():
        item = found.get(name)
        if item is None:
            found[name] = item = {"name": name, "ok": False, "detail": f"not reached: {tail}"}
        if item["ok"]:
            log(f"preflight: {name}: ok {json.dumps(item['detail'])}")
        else:
            log(f"preflight: {name}: MISSING ({item['detail']}) -> {needed}")
    if args.device != "cpu" and found["jax"]["ok"] and found["jax"]["detail"]["backend"] == "cpu":
        log("preflight: jax: sees no GPU (CPU-only jaxlib?) -> JAX and Trax jobs skipped; "
            "install the gpu extra (README, GPU install)")
    return found


def jax_on_device(found: dict[str, Any], device: str) -> bool:
    """Whether JAX can run on ``device`` here (a CPU-only jaxlib on a GPU check cannot)."""
    jax = found.get("jax", {})
    return bool(jax.get("ok")) and (device == "cpu" or jax["detail"]["backend"] != "cpu")


# -- 2. the Trax probe ----------------------------------------------------------------------

def run_probe(args: argparse.Namespace, variant: str, budget: Budget, log: Log
              ) -> dict[str, Any]:
    """One probe variant in its own process, streamed into the log; its events kept."""
    limit = args.probe_limit or PROBE_LIMITS[variant]
    if not budget.fits(limit):
        log(f"probe[{variant}]: skipped for budget: needs up to {limit:.0f} s, "
            f"{budget.left():.0f} s left")
        return {"variant": variant, "status": "skipped", "skipped_for": "budget",
                "limit_s": limit}
    command = [sys.executable, str(PROBE), "--out", str(args.out), "--device", args.device,
               "--profile", args.profile, "--steps", str(args.probe_steps),
               "--variant", variant]
    log(f"probe[{variant}]: started ({args.probe_steps} steps, limit {limit:.0f} s)")
    started = time.monotonic()
    status, lines = _stream(command, child_env(args.device, trax=True), limit, log)
    steps: list[dict[str, Any]] = []
    conclusion: dict[str, Any] | None = None
    for text in lines:
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if event.get("event") == "step":
            steps.append({k: event.get(k) for k in ("step", "seconds", "loss", "weights",
                                                    "slots", "memory", "compile_messages")})
        elif event.get("event") == "conclusion":
            conclusion = event
    return {"variant": variant, "status": status, "limit_s": limit,
            "wall_s": round(time.monotonic() - started, 1), "steps": steps,
            "runs_on": conclusion.get("runs_on") if conclusion else None,
            "slots_on": conclusion.get("slots_on") if conclusion else None}


def _stream(command: list[str], env: dict[str, str], limit: float, log: Log
            ) -> tuple[str, list[str]]:
    """Run ``command``, relaying its output into the log; kill it past ``limit`` seconds."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=ROOT, start_new_session=True)
    lines: list[str] = []
    timer = threading.Timer(limit, _kill, args=(proc,))
    timer.start()
    try:
        for text in proc.stdout:
            lines.append(text.rstrip("\n"))
            log(text, quiet=text.startswith("{"))  # JSON events: the log only
    finally:
        timer.cancel()
        proc.wait()
    status = "ok" if proc.returncode == 0 else (
        "timeout" if proc.returncode == -signal.SIGKILL else f"exited {proc.returncode}")
    return status, lines


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- 3. the harness jobs --------------------------------------------------------------------

def phase_limit(job: Any, phase: str, overrides: dict[str, float]) -> float:
    limits = {**LIMITS, **FRAMEWORK_LIMITS.get(job.framework, {}), **overrides}
    return limits.get(phase, DEFAULT_LIMIT)


def run_harness(job: Any, budget: Budget, overrides: dict[str, float], log: Log
                ) -> dict[str, Any]:
    """Run one job through the harness's protocol, phase by phase within the budget.

    Returns the harness's result (the last ``result`` event, over the fields of any other
    event it sent), with ``status`` and ``phase``; a phase that would not fit is not
    started: ``status`` ``skipped``, ``skipped_for`` ``budget``.
    """
    started = time.monotonic()
    first = phase_limit(job, "import", overrides)
    if not budget.fits(first):
        return _skipped("import", first, budget, started)
    with tempfile.TemporaryDirectory(prefix="fwsurvey-device-") as workdir:
        run = dataclasses.replace(job, spec={**job.spec, "workdir": workdir})
        env = child_env(job.device, trax=job.framework == "trax")
        env.update(getattr(job, "env", {}) or {})
        env.update({"TORCHINDUCTOR_CACHE_DIR": os.path.join(workdir, "inductor"),
                    "TRITON_CACHE_DIR": os.path.join(workdir, "triton")})
        proc = subprocess.Popen(run.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=ROOT, start_new_session=True)
        try:
            return _watch(job, proc, budget, overrides, log, started)
        finally:
            _kill(proc)
            proc.wait()


def _skipped(phase: str, limit: float, budget: Budget, started: float) -> dict[str, Any]:
    return {"status": "skipped", "skipped_for": "budget", "phase": phase,
            "error": f"phase {phase!r} needs up to {limit:.0f} s; {budget.left():.0f} s of "
                     "the budget left",
            "wall_s": round(time.monotonic() - started, 1)}


def _watch(job: Any, proc: subprocess.Popen, budget: Budget, overrides: dict[str, float],
           log: Log, started: float) -> dict[str, Any]:
    lines: queue.Queue = queue.Queue()
    err_tail: list[str] = []

    def read_out() -> None:
        for text in proc.stdout:
            lines.put(text)
        lines.put(None)

    def read_err() -> None:
        for text in proc.stderr:
            err_tail.append(text)
            del err_tail[:-40]
            log(f"  [{job.mode} stderr] {text}", quiet=True)

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    phase = "start"
    limit = phase_limit(job, "import", overrides)
    deadline = time.monotonic() + limit
    extra: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    while True:
        try:
            text = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            result = {"status": "timeout",
                      "error": f"phase {phase!r} passed its {limit:.0f} s limit"}
            break
        if text is None:
            break
        try:
            event = json.loads(text)
        except ValueError:
            continue  # a library printed to stdout
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "phase":
            phase = str(event.get("phase"))
            limit = phase_limit(job, phase, overrides)
            log(f"  {job.key}: phase {phase} (limit {limit:.0f} s, {budget.left():.0f} s "
                "left)")
            if not budget.fits(limit):
                return {**extra, **_skipped(phase, limit, budget, started)}
            deadline = time.monotonic() + limit
        elif kind == "result":
            result = {k: v for k, v in event.items() if k != "event"}
        else:  # a newer harness's events (samples, windows, steady results): kept
            extra.update({k: v for k, v in event.items() if k != "event"})
    if result is None:
        tail = "".join(err_tail[-15:]).strip()[-2000:]
        result = {"status": "crashed", "error": f"exited with {proc.poll()}: {tail}"}
    result = {**extra, **result}
    result["phase"] = "done" if result.get("status") == "ok" else phase
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def summary(job: Any, result: dict[str, Any]) -> dict[str, Any]:
    """A job's line in results.json: every field the harness sent, long lists cut."""
    def cut(value: Any) -> Any:
        if isinstance(value, list) and len(value) > SUMMARY_LIST:
            return {"first": value[:SUMMARY_LIST], "n": len(value)}
        if isinstance(value, str) and len(value) > 2000:
            return value[-2000:]
        return value
    return {"job": job.key, "mode": job.mode, "precision": job.precision,
            **{k: cut(v) for k, v in result.items()}}


def records_of(job: Any, result: dict[str, Any], fetched_at: str) -> dict[str, Any]:
    """The job's store rows (``records``), or its raw description and result (``jobs``)
    where fwsurvey's records cannot be made here; ``fwsurvey import`` reads both."""
    try:
        from fwsurvey.kernels.records import job_records

        rows = [{"table": r.table, "row": r.row} for r in job_records(job, result, fetched_at)]
        return {"records": rows}
    except Exception as exc:  # noqa: BLE001 - kept raw; the importer makes the rows
        return {"jobs": [{"job": dataclasses.asdict(job), "result": result,
                          "fetched_at": fetched_at, "why_raw": f"{type(exc).__name__}: {exc}"}]}


def records_document(device: str, device_name: str | None, versions: dict[str, Any],
                     parts: list[dict[str, Any]], source: str = SOURCE) -> dict[str, Any]:
    """The file ``fwsurvey import`` loads: provenance, then rows and raw jobs."""
    return {"format": RECORDS_FORMAT, "source": source, "fetched_at": now(),
            "device": device, "device_name": device_name, "versions": versions,
            "records": [r for p in parts for r in p.get("records", [])],
            "jobs": [j for p in parts for j in p.get("jobs", [])]}


def write_json(path: Path, payload: Any) -> None:
    """Write whole or not at all: a kill mid-write leaves the previous file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)


def parse_limits(items: list[str]) -> dict[str, float]:
    limits = {}
    for item in items:
        name, _, seconds = item.partition("=")
        limits[name] = float(seconds)
    return limits


def preflight_versions(found: dict[str, Any]) -> dict[str, Any]:
    """This machine's Python and the versions the preflight imported (the run's versions)."""
    versions: dict[str, Any] = {"python": platform.python_version()}
    for name, item in found.items():
        if item.get("ok") and isinstance(item.get("detail"), dict) and "version" in item["detail"]:
            versions[name] = item["detail"]["version"]
    return versions


#: The preflight piece each framework's jobs need.
NEEDS = {"pytorch": "torch", "jax": "jax", "trax": "trax"}


def plan_jobs(args: argparse.Namespace) -> list[Any]:
    """The task's training jobs in ``args.frameworks`` (and ``args.modes``), headline first."""
    from fwsurvey.kernels.matrix import train_jobs
    from fwsurvey.kernels.tasks import discover

    frameworks = [f for f in args.frameworks.split(",") if f]
    modes = set(filter(None, args.modes.split(",")))
    jobs = [j for j in train_jobs([discover()[args.task]], frameworks, args.profile,
                                  args.device) if not modes or j.mode in modes]
    return sorted(jobs, key=lambda j: MODE_ORDER.get(j.mode, 9))


def run_jobs(args: argparse.Namespace, jobs: list[Any], found: dict[str, Any],
             budget: Budget, log: Log, results: dict[str, Any]) -> None:
    """Each job within the budget; results.json and records.json rewritten after each."""
    parts: list[dict[str, Any]] = []
    versions = preflight_versions(found)
    device_name = (found.get("torch", {}).get("detail") or {}).get("gpu") if found.get(
        "torch", {}).get("ok") else None
    records_path = args.out / "records.json"
    for job in jobs:
        needs = NEEDS.get(job.framework)
        runnable = (not needs or found.get(needs, {}).get("ok")) and (
            needs not in ("jax", "trax") or jax_on_device(found, args.device))
        if not runnable:
            result = {"status": "skipped", "skipped_for": "preflight", "phase": "import",
                      "wall_s": 0.0,
                      "error": f"preflight: {needs} cannot run on {args.device} here"}
        else:
            log(f"job {job.key} ({job.precision}): started, {budget.left():.0f} s left")
            result = run_harness(job, budget, parse_limits(args.limit), log)
        results["jobs"].append(summary(job, result))
        log(f"job {job.key}: {result.get('status')} in {result.get('phase')}"
            f" ({result.get('wall_s')} s) step_median_ms={result.get('step_median_ms')}"
            f" mfu={result.get('mfu')} error={str(result.get('error') or '')[:300]!r}")
        # A job skipped (for budget or preflight) says nothing about its framework: no rows.
        if result.get("status") != "skipped":
            parts.append(records_of(job, result, now()))
            device_name = result.get("device_name") or device_name
            versions = {**versions, **(result.get("versions") or {})}
        write_json(args.out / "results.json", results)
        write_json(records_path, records_document(args.device, device_name, versions, parts))
    write_json(records_path, records_document(args.device, device_name, versions, parts))


def main() -> int:
    if str(ROOT) not in sys.path:  # fwsurvey from this tree where it is not installed
        sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=460, help="seconds for everything")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--task", default="transformer_lm")
    parser.add_argument("--frameworks", default="pytorch,jax,trax",
                        help="comma-separated; empty for the probe only")
    parser.add_argument("--modes", default="", help="only these modes (comma-separated)")
    parser.add_argument("--probe-steps", type=int, default=3)
    parser.add_argument("--probe-variants", default="default,slots-on-device",
                        help="comma-separated; empty for no probe")
    parser.add_argument("--probe-limit", type=float, default=None,
                        help="seconds per probe variant [default: PROBE_LIMITS]")
    parser.add_argument("--limit", action="append", default=[], metavar="PHASE=SECONDS",
                        help="override a harness phase's limit (repeatable)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget)
    log = Log(args.out / "check.log")
    results: dict[str, Any] = {"started_at": now(), "device": args.device,
                               "profile": args.profile, "budget_s": args.budget,
                               "preflight": {}, "probe": [], "jobs": []}
    results_path = args.out / "results.json"
    log(f"check: device {args.device}, profile {args.profile}, budget {args.budget:.0f} s")

    found = preflight(args, budget, log)
    results["preflight"] = found
    write_json(results_path, results)
    trax_ok = (found["fwsurvey.kernels"]["ok"] and found["trax"]["ok"]
               and jax_on_device(found, args.device))

    for variant in filter(None, args.probe_variants.split(",")):
        if not trax_ok:
            results["probe"].append({"variant": variant, "status": "skipped",
                                     "skipped_for": "preflight"})
            continue
        results["probe"].append(run_probe(args, variant, budget, log))
        write_json(results_path, results)

    jobs = plan_jobs(args) if found["fwsurvey.kernels"]["ok"] else []
    run_jobs(args, jobs, found, budget, log, results)
    for probe in results["probe"]:
        if probe.get("runs_on"):
            log(f"Trax's update step runs on: {probe['runs_on']} (slots on "
                f"{probe['slots_on']}) [variant {probe['variant']}]")
    results["finished_at"] = now()
    write_json(results_path, results)
    log(f"check: done, {budget.left():.0f} s of the budget left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
