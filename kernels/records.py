"""The rows a training job contributes: ``kernel_runs``, ``kernel_curves``,
``kernel_samples`` (every timed step, window by window), ``kernel_checks`` (what the task's
own ``checks.py`` observed) and, for the data-parallel runs,
``kernel_scaling`` (each N compared with its 1-device baseline).

Every job's rows carry its **outcome** (:func:`outcome`) — a failure is that framework's
result on that task, not missing data — and its **fingerprint** (:func:`fingerprint`): the
environment its timings belong to. Samples with the same fingerprint are comparable across
runs, so the verdicts can pool them.

Where a job ran is part of its row too: ``executor`` (local or ray) and ``node`` (host, and on
Ray the node id and the GPU ids it was given), which the train stage adds to the job's result
(:func:`placed`) once its executor has said.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.harness import target_reached
from fwsurvey.kernels.runner import Job
from fwsurvey.sources import Record

#: Every value of ``kernel_runs.outcome``.
OUTCOMES = ("ok", "crashed", "oom", "timeout", "wrong_device", "missed_target", "unsupported")

#: Training losses averaged for ``final_loss`` (single steps are noisy).
FINAL_LOSS_WINDOW = 10

#: Where scaling runs on a CPU stand in for N devices, every row says so.
SIMULATED_NOTE = ("N devices simulated on one CPU: this checks correctness and machinery, "
                  "not speed")


def placed(result: dict[str, Any], executor: str, node: str | None) -> dict[str, Any]:
    """``result`` with where it ran: the executor's name and the node (None if unknown)."""
    return {**result, "executor": executor, "node": node}


#: Runs that measure compilation or data-parallel parity, not quality: no target there. Every
#: other experiment label is a task's own training (``train``, an experiment's tasks).
NO_TARGET = ("dynamic", "scaling")


def outcome(job: Job, result: dict[str, Any]) -> str:
    """How the job ended, as evidence: ``ok``; ``missed_target`` when it trained but its
    final evaluation misses the task's quality target; otherwise how it failed
    (``crashed``, ``oom``, ``timeout``, ``wrong_device``, ``unsupported``)."""
    status = result.get("status")
    if status == "ok":
        if job.experiment not in NO_TARGET and target_reached(
                job.spec, result.get("metrics") or {}) is False:
            return "missed_target"
        return "ok"
    return status if status in OUTCOMES else "crashed"


@lru_cache(maxsize=256)
def code_sha256(module: str) -> str | None:
    """sha256 of an implementation file followed by its task's ``spec.toml`` (when there is
    one next to it): what the code of a job was. None when the module cannot be found."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin:
        return None
    impl = Path(found.origin)
    digest = hashlib.sha256(impl.read_bytes())
    spec = impl.parent / "spec.toml"
    if spec.exists():
        digest.update(spec.read_bytes())
    return digest.hexdigest()


def fingerprint(job: Job, result: dict[str, Any], code: str | None) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON of what a timing depends
    on: task, framework, mode, experiment, variant, profile, device name, precision, the
    installed versions and the code's hash. Equal fingerprints: comparable samples."""
    payload = {"task": job.task, "framework": job.framework, "mode": job.mode,
               "experiment": job.experiment, "variant": job.variant,
               "profile": job.spec.get("profile"), "device_name": result.get("device_name"),
               "precision": job.precision, "versions": result.get("versions") or {},
               "code_sha256": code}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def job_records(job: Job, result: dict[str, Any], fetched_at: str) -> list[Record]:
    """The rows one job contributes: its ``kernel_runs`` row, its loss curve and its
    per-step samples."""
    spec = job.spec
    losses = result.get("losses") or []
    metrics = result.get("metrics") or {}
    metric = spec.get("metric")
    code = job.code_sha256 or code_sha256(job.module)
    print_ = fingerprint(job, result, code)
    samples = result.get("samples") or []
    row = {
        "job": job.key, "task": job.task, "framework": job.framework, "mode": job.mode,
        "experiment": job.experiment, "variant": job.variant,
        "profile": spec.get("profile"), "status": result["status"],
        "phase_reached": result.get("phase"), "error": result.get("error"),
        "device": job.device, "device_name": result.get("device_name"),
        "precision": job.precision, "versions": result.get("versions") or {},
        "n_params": result.get("n_params"), "batch": spec.get("batch"),
        "seq_len": spec.get("seq_len") if "seq_lens" not in spec else None,
        "seq_lens": spec.get("seq_lens"),
        "steps": spec.get("steps"), "timed_steps": result.get("timed_steps"),
        "import_s": result.get("import_s"), "data_s": result.get("data_s"),
        "build_s": result.get("build_s"), "first_step_s": result.get("first_step_s"),
        "step_median_ms": result.get("step_median_ms"),
        "step_iqr_ms": result.get("step_iqr_ms"), "step_mean_ms": result.get("step_mean_ms"),
        "throughput": result.get("throughput"),
        "throughput_unit": result.get("throughput_unit"),
        "peak_mem_mb": result.get("peak_mem_mb"), "mem_kind": result.get("mem_kind"),
        "first_loss": losses[0] if losses else None,
        "final_loss": _final_loss(losses),
        "eval_metric": metric, "eval_value": metrics.get(metric),
        "target": spec.get("target"), "target_mode": spec.get("target_mode", "min"),
        # The dynamic experiment measures compilation, not quality: no target there.
        "reached_target": (target_reached(spec, metrics)
                           if job.experiment not in NO_TARGET else None),
        "compiles_total": result.get("compiles_total"),
        "compiles_timed": result.get("compiles_timed"),
        "compile_s_total": result.get("compile_s_total"),
        "compile_s_timed": result.get("compile_s_timed"),
        "flops_per_step": result.get("flops_per_step"), "mfu": result.get("mfu"),
        "resume_status": result.get("resume_status"),
        "resumed_at_step": result.get("resumed_at_step"),
        "resume_error": result.get("resume_error"),
        "wall_s": result.get("wall_s"), "fetched_at": fetched_at,
        "fingerprint": print_, "code_sha256": code,
        "windows": result.get("windows") or (len({s[0] for s in samples}) or None),
        "outcome": outcome(job, result),
        "time_to_target_s": result.get("time_to_target_s"),
        "steps_to_target": result.get("steps_to_target"),
        "data_ms_median": result.get("data_ms_median"),
        "compute_ms_median": result.get("compute_ms_median"),
        "matmul_precision": result.get("matmul_precision"),
        "eval_s": result.get("eval_s"),
        "executor": result.get("executor"), "node": result.get("node"),
        "graph_breaks": result.get("graph_breaks"),
    }
    return [Record("kernel_runs", row), *curve_records(job, losses, fetched_at),
            *sample_records(job, result, print_, samples, fetched_at),
            *check_records(job, result, fetched_at)]


def check_records(job: Job, result: dict[str, Any], fetched_at: str) -> list[Record]:
    """One ``kernel_checks`` row per check the task's ``checks.py`` made in this job
    (``result["checks"]``, see :func:`fwsurvey.kernels.harness.run_checks`); a name met
    twice keeps its first entry (the table's key is the job and the check's name)."""
    rows, seen = [], set()
    for entry in result.get("checks") or []:
        name = entry.get("check")
        if not name or name in seen:
            continue
        seen.add(name)
        ok = entry.get("ok")
        rows.append(Record("kernel_checks", {
            "job": job.key, "task": job.task, "framework": job.framework, "mode": job.mode,
            "experiment": job.experiment, "variant": job.variant, "device": job.device,
            "check_name": name, "ok": None if ok is None else int(bool(ok)),
            "value": entry.get("value"), "unit": entry.get("unit"),
            "detail": entry.get("detail"), "fetched_at": fetched_at}))
    return rows


def sample_records(job: Job, result: dict[str, Any], print_: str, samples: list[list[float]],
                   fetched_at: str) -> list[Record]:
    """One ``kernel_samples`` row per timed step: ``[window, step, step_ms, data_ms]``."""
    common = {"job": job.key, "task": job.task, "framework": job.framework, "mode": job.mode,
              "experiment": job.experiment, "variant": job.variant, "device": job.device,
              "device_name": result.get("device_name"), "precision": job.precision,
              "fingerprint": print_, "fetched_at": fetched_at}
    return [Record("kernel_samples", {**common, "window": int(window), "step": int(step),
                                      "step_ms": step_ms, "data_ms": data_ms,
                                      "compute_ms": step_ms - data_ms})
            for window, step, step_ms, data_ms in samples]


def curve_records(job: Job, losses: list[float], fetched_at: str) -> list[Record]:
    """A job's loss at every step (``kernel_curves``)."""
    return [Record("kernel_curves", {"job": job.key, "step": i + 1, "loss": loss,
                                     "fetched_at": fetched_at})
            for i, loss in enumerate(losses)]


def _final_loss(losses: list[float]) -> float | None:
    return statistics.fmean(losses[-FINAL_LOSS_WINDOW:]) if losses else None


def scaling_records(runs: list[tuple[Job, dict[str, Any], str]]) -> list[Record]:
    """``kernel_scaling`` rows (and loss curves) of one task's data-parallel runs.

    Each N is compared with the 1-device run of the same framework and environment:
    scaling efficiency ``throughput_N / (N × throughput_1)``, and loss parity, the largest
    per-step difference between the two loss curves (same global batches, same seed)
    against the task's ``loss_tolerance``.
    """
    baselines = {(job.framework, job.environment): result for job, result, _ in runs
                 if job.n_devices == 1 and result["status"] == "ok"}
    records: list[Record] = []
    for job, result, fetched_at in runs:
        spec, n, env = job.spec, job.n_devices or 1, job.environment
        losses = result.get("losses") or []
        base = baselines.get((job.framework, env))
        ok = result["status"] == "ok"
        versions = result.get("versions") or {}
        tolerance = spec.get("loss_tolerance_bf16" if job.precision == "bf16"
                             else "loss_tolerance")
        efficiency = diff = matches = None
        if ok and base and result.get("throughput") and base.get("throughput"):
            efficiency = result["throughput"] / (n * base["throughput"])
        if ok and base and n > 1:
            reference = base.get("losses") or []
            if len(reference) == len(losses) and losses:
                diff = max(abs(a - b) for a, b in zip(losses, reference, strict=True))
                matches = tolerance is not None and diff <= tolerance
            else:
                matches = False
        simulated = job.device == "cpu"
        adapter = ADAPTERS[job.framework]
        row = {
            "job": job.key, "task": job.task, "framework": job.framework, "env": env,
            "engine": adapter.engine, "backend": adapter.backend(job.device),
            "n_devices": n, "device": job.device, "device_name": result.get("device_name"),
            "simulated": simulated, "note": SIMULATED_NOTE if simulated else None,
            "profile": spec.get("profile"), "precision": job.precision,
            "status": result["status"], "phase_reached": result.get("phase"),
            "error": result.get("error"), "versions": versions,
            "jax_version": versions.get("jax"),
            "global_batch": spec["batch"], "per_device_batch": spec["batch"] // n,
            "seq_len": spec.get("seq_len"), "steps": spec.get("steps"),
            "timed_steps": result.get("timed_steps"),
            "step_median_ms": result.get("step_median_ms"),
            "step_iqr_ms": result.get("step_iqr_ms"),
            "throughput": result.get("throughput"),
            "throughput_unit": result.get("throughput_unit"),
            "efficiency": efficiency, "comm_share": result.get("comm_share"),
            "comm_note": adapter.comm_note,
            "first_loss": losses[0] if losses else None, "final_loss": _final_loss(losses),
            "loss_max_abs_diff": diff, "loss_tolerance": tolerance, "loss_matches_1": matches,
            "mfu": result.get("mfu"), "peak_mem_mb": result.get("peak_mem_mb"),
            "mem_kind": result.get("mem_kind"),
            "wall_s": result.get("wall_s"), "fetched_at": fetched_at,
            "executor": result.get("executor"), "node": result.get("node"),
        }
        records.append(Record("kernel_scaling", row))
        records += curve_records(job, losses, fetched_at)
        code = job.code_sha256 or code_sha256(job.module)
        records += sample_records(job, result, fingerprint(job, result, code),
                                  result.get("samples") or [], fetched_at)
    return records
