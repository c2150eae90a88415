"""The ``train`` stage: runs the kernel matrix and stores every job's measurements.

Each task is written in one transaction (source ``kernels/<task>``, and
``kernels/scaling/<task>`` for its data-parallel runs) once all its jobs have run, so a
killed run leaves whole tasks or none. A job that crashed, ran out of memory or timed out
is stored with its status and the phase it reached; the matrix goes on.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fwsurvey.config import ConfigError, SurveyConfig
from fwsurvey.kernels.matrix import DYNAMIC_TASK, dynamic_jobs, scaling_jobs, train_jobs
from fwsurvey.kernels.parallel import ADAPTERS, ENGINES, backend_for
from fwsurvey.kernels.runner import Job, run_job
from fwsurvey.kernels.tasks import PROFILES, discover
from fwsurvey.sources import Record
from fwsurvey.store import ItemError, SourceOutcome, Store, utcnow

#: Training losses averaged for ``final_loss`` (single steps are noisy).
FINAL_LOSS_WINDOW = 10

#: Where scaling runs on a CPU stand in for N devices, every row says so.
SIMULATED_NOTE = ("N devices simulated on one CPU: this checks correctness and machinery, "
                  "not speed")

#: The older JAX's interpreter, relative to the configuration's folder (scripts/setup.sh).
DEFAULT_JAX_LEGACY_PYTHON = ".venv-jax-legacy/bin/python"


@dataclass(frozen=True)
class TrainOptions:
    """What ``fwsurvey train`` was asked to run."""

    profile: str = "quick"
    tasks: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    device: str | None = None
    experiments: tuple[str, ...] = ("train", "dynamic")
    enabled: bool = True
    #: Device counts of the data-parallel scaling runs; empty: no scaling runs.
    scaling: tuple[int, ...] = ()


def scaling_counts(values: list[Any] | tuple[Any, ...]) -> tuple[int, ...]:
    """Validated device counts, sorted, with 1 added: the baseline every N is compared with."""
    counts = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"device counts must be positive integers, got {value!r}")
        counts.add(value)
    return tuple(sorted(counts | {1})) if counts else ()


def options_from_config(config: SurveyConfig) -> TrainOptions:
    """What ``fwsurvey run`` trains: the ``[kernels]`` table of the configuration."""
    table = dict(config.kernels)
    allowed = {"enabled": bool, "profile": str, "tasks": list, "frameworks": list,
               "device": str, "experiments": list, "scaling": list, "jax_legacy_python": str}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(config.path, f"kernels.{key}", "unknown key (misspelt?)")
        if not isinstance(value, allowed[key]):
            raise ConfigError(config.path, f"kernels.{key}",
                              f"expected {allowed[key].__name__}, got {value!r}")
    if table.get("profile", "quick") not in PROFILES:
        raise ConfigError(config.path, "kernels.profile",
                          f"expected one of {', '.join(PROFILES)}, got {table['profile']!r}")
    try:
        counts = scaling_counts(table.get("scaling", []))
    except ValueError as exc:
        raise ConfigError(config.path, "kernels.scaling", str(exc)) from None
    return TrainOptions(
        profile=table.get("profile", "quick"),
        tasks=tuple(table.get("tasks", ())),
        frameworks=tuple(table.get("frameworks", ())),
        device=table.get("device") or None,
        experiments=tuple(table.get("experiments", ("train", "dynamic"))),
        enabled=table.get("enabled", True),
        scaling=counts,
    )


def jax_legacy_python(config: SurveyConfig) -> Path:
    """The interpreter of the older JAX environment (``[kernels] jax_legacy_python``)."""
    path = Path(config.kernels.get("jax_legacy_python", DEFAULT_JAX_LEGACY_PYTHON)).expanduser()
    return path if path.is_absolute() else config.path.parent / path


def visible_gpus() -> list[str]:
    """The GPU ids scaling jobs may use: CUDA_VISIBLE_DEVICES, else every GPU PyTorch sees."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def default_device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def plan(config: SurveyConfig, options: TrainOptions) -> list[Job]:
    """The jobs to run, validated against the tasks on disk and the configuration."""
    if options.profile not in PROFILES:
        raise ValueError(f"unknown profile {options.profile!r}; known: {', '.join(PROFILES)}")
    tasks = discover()
    unknown = [t for t in options.tasks if t not in tasks]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; known tasks: {', '.join(tasks)}")
    frameworks = list(options.frameworks or config.frameworks)
    missing = [f for f in frameworks if f not in config.frameworks]
    if missing:
        raise ValueError(f"unknown framework {missing[0]!r}; configured: "
                         f"{', '.join(config.frameworks)}")
    device = options.device or default_device()
    chosen = [tasks[t] for t in (options.tasks or tasks)]
    jobs = []
    if "train" in options.experiments:
        jobs += train_jobs(chosen, frameworks, options.profile, device)
    if "dynamic" in options.experiments and DYNAMIC_TASK in {t.name for t in chosen}:
        jobs += dynamic_jobs(tasks[DYNAMIC_TASK], frameworks, options.profile, device)
    if options.scaling:
        unscaled = [t.name for t in chosen if "scaling" not in t.spec]
        if options.tasks and unscaled:
            scalable = ", ".join(t for t in tasks if "scaling" in tasks[t].spec)
            raise ValueError(f"task {unscaled[0]!r} has no 'scaling' table in its spec.toml; "
                             f"tasks that scale: {scalable}")
        jobs += scaling_jobs(chosen, frameworks, options.profile, device,
                             scaling_counts(options.scaling), jax_legacy_python(config),
                             visible_gpus() if device != "cpu" else None)
    return jobs


def source_of(job: Job) -> str:
    """The source a job's rows are written under, one transaction each."""
    if job.experiment == "scaling":
        return f"kernels/scaling/{job.task}"
    return f"kernels/{job.task}"


def _target_reached(spec: dict[str, Any], metrics: dict[str, float]) -> bool | None:
    value = metrics.get(spec.get("metric", ""))
    if value is None or "target" not in spec:
        return None
    if spec.get("target_mode") == "max":  # the metric must end at or below the target
        return value <= spec["target"]
    return value >= spec["target"]


def job_records(job: Job, result: dict[str, Any], fetched_at: str) -> list[Record]:
    """The rows one job contributes: its ``kernel_runs`` row and its loss curve."""
    spec = job.spec
    losses = result.get("losses") or []
    metrics = result.get("metrics") or {}
    metric = spec.get("metric")
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
        "reached_target": _target_reached(spec, metrics) if job.experiment == "train" else None,
        "compiles_total": result.get("compiles_total"),
        "compiles_timed": result.get("compiles_timed"),
        "compile_s_total": result.get("compile_s_total"),
        "compile_s_timed": result.get("compile_s_timed"),
        "flops_per_step": result.get("flops_per_step"), "mfu": result.get("mfu"),
        "resume_status": result.get("resume_status"),
        "resumed_at_step": result.get("resumed_at_step"),
        "resume_error": result.get("resume_error"),
        "wall_s": result.get("wall_s"), "fetched_at": fetched_at,
    }
    return [Record("kernel_runs", row), *curve_records(job, losses, fetched_at)]


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
        row = {
            "job": job.key, "task": job.task, "framework": job.framework, "env": env,
            "engine": ENGINES[job.framework], "backend": backend_for(job.framework, job.device),
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
            "comm_note": ADAPTERS[job.framework].comm_note,
            "first_loss": losses[0] if losses else None, "final_loss": _final_loss(losses),
            "loss_max_abs_diff": diff, "loss_tolerance": tolerance, "loss_matches_1": matches,
            "mfu": result.get("mfu"), "peak_mem_mb": result.get("peak_mem_mb"),
            "mem_kind": result.get("mem_kind"),
            "wall_s": result.get("wall_s"), "fetched_at": fetched_at,
        }
        records.append(Record("kernel_scaling", row))
        records += curve_records(job, losses, fetched_at)
    return records


def run_train(store: Store, run_id: int, config: SurveyConfig, options: TrainOptions,
              progress=None) -> list[SourceOutcome]:
    """Run the planned jobs task by task; write each task in one transaction."""
    if not options.enabled:
        now = utcnow()
        outcome = SourceOutcome("train", "kernels", "skipped", now, now,
                                reason="disabled in the configuration ([kernels] enabled)")
        store.write_source(run_id, outcome)
        return [outcome]
    jobs = plan(config, options)
    by_source: dict[str, list[Job]] = {}
    for job in jobs:
        by_source.setdefault(source_of(job), []).append(job)
    outcomes = []
    for source, task_jobs in by_source.items():
        if progress is not None:
            progress.source_started(source, len(task_jobs))
        started = utcnow()
        records: list[Record] = []
        errors: list[ItemError] = []
        scaling_runs: list[tuple[Job, dict[str, Any], str]] = []
        for job in task_jobs:
            result = run_job(job)
            fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
            if job.experiment == "scaling":
                scaling_runs.append((job, result, fetched_at))
            else:
                records += job_records(job, result, fetched_at)
            if result["status"] != "ok":
                errors.append(ItemError(job.key, result["status"],
                                        f"{result['status']} in phase {result.get('phase')}: "
                                        f"{(result.get('error') or '')[:500]}"))
            if progress is not None:
                progress.item_done(source, f"{job.framework}/{job.mode}/{job.variant}")
        records += scaling_records(scaling_runs)
        ok = len(task_jobs) - len(errors)
        status = "ok" if not errors else "partial"
        reason = None if not errors else f"{len(errors)} of {len(task_jobs)} jobs did not finish"
        outcome = SourceOutcome("train", source, status, started, utcnow(), reason=reason,
                                items_ok=ok, errors=errors)
        store.write_source(run_id, outcome, records)
        if progress is not None:
            progress.source_finished(outcome)
        outcomes.append(outcome)
    return outcomes
