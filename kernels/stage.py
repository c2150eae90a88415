"""The ``train`` stage: runs the kernel matrix and stores every job's measurements.

Each task is one unit, written in one transaction (source ``kernels/<task>``, and
``kernels/scaling/<task>`` for its data-parallel runs) once all its jobs have run, so a
killed run leaves whole tasks or none. A job that crashed, ran out of memory or timed out
is stored with its status and the phase it reached; the matrix goes on.

What ``fwsurvey run`` trains is the ``[kernels]`` table of ``fwsurvey.toml``
(:class:`KernelsTable`); ``fwsurvey train`` passes its options instead (:class:`TrainOptions`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ValidationInfo

from fwsurvey.config import SurveyConfig
from fwsurvey.kernels.adapters import adapter_for
from fwsurvey.kernels.matrix import DYNAMIC_TASK, dynamic_jobs, scaling_jobs, train_jobs
from fwsurvey.kernels.records import job_records, scaling_records
from fwsurvey.kernels.runner import Job, run_job
from fwsurvey.kernels.tasks import PROFILES, discover
from fwsurvey.model import ConfigModel, validate
from fwsurvey.stage import Stage, StageContext, Tally, Unit, UnitSkipped

#: The older JAX's interpreter, relative to the configuration's folder (scripts/setup.sh).
DEFAULT_JAX_LEGACY_PYTHON = ".venv-jax-legacy/bin/python"

#: Why nothing trained when ``[kernels] enabled = false``.
DISABLED_REASON = "disabled in the configuration ([kernels] enabled)"


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
    #: The tasks whose scaling runs ``fwsurvey run`` trains; empty: every chosen task with a
    #: ``[scaling]`` table.
    scaling_tasks: tuple[str, ...] = ()


def scaling_counts(values: list[Any] | tuple[Any, ...]) -> tuple[int, ...]:
    """Validated device counts, sorted, with 1 added: the baseline every N is compared with."""
    counts = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"device counts must be positive integers, got {value!r}")
        counts.add(value)
    return tuple(sorted(counts | {1})) if counts else ()


# -- the [kernels] table ----------------------------------------------------------------------

def _known_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"expected one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


def _known_task(task: str, info: ValidationInfo) -> str:
    known = (info.context or {}).get("tasks", ())
    if task not in known:
        raise ValueError(f"{task!r} is not a task; known: {', '.join(known)}")
    return task


def _has_adapter(framework: str) -> str:
    adapter_for(framework)  # its ValueError is the message
    return framework


def _device_counts(values: list[int]) -> list[int]:
    scaling_counts(values)
    return values


class KernelsTable(ConfigModel):
    """``[kernels]`` of ``fwsurvey.toml``: what ``fwsurvey run`` trains."""

    enabled: bool = True
    profile: Annotated[str, AfterValidator(_known_profile)] = "quick"
    #: Empty: every task under kernels/.
    tasks: list[Annotated[str, AfterValidator(_known_task)]] = []
    #: Empty: every configured framework.
    frameworks: list[Annotated[str, AfterValidator(_has_adapter)]] = []
    #: Empty: cuda when PyTorch sees a GPU, else cpu.
    device: str = ""
    experiments: list[Literal["train", "dynamic"]] = ["train", "dynamic"]
    #: Device counts of the data-parallel runs; empty: none.
    scaling: Annotated[list[int], AfterValidator(_device_counts)] = []
    #: Which tasks the data-parallel runs train; empty: every task with a [scaling] table.
    #: On a CPU the N devices are simulated (machinery and loss parity, not speed), so one
    #: task that every framework implements shows as much as all of them, in less time.
    scaling_tasks: list[Annotated[str, AfterValidator(_known_task)]] = []
    jax_legacy_python: str = DEFAULT_JAX_LEGACY_PYTHON


def kernels_table(config: SurveyConfig) -> KernelsTable:
    """The ``[kernels]`` table, validated (ConfigError naming ``kernels.<key>``)."""
    return validate(KernelsTable, dict(config.kernels), config.path, prefix="kernels",
                    context={"tasks": tuple(discover())})


def options_from_config(config: SurveyConfig) -> TrainOptions:
    """What ``fwsurvey run`` trains: the ``[kernels]`` table of the configuration."""
    table = kernels_table(config)
    return TrainOptions(
        profile=table.profile,
        tasks=tuple(table.tasks),
        frameworks=tuple(table.frameworks),
        device=table.device or None,
        experiments=tuple(table.experiments),
        enabled=table.enabled,
        scaling=scaling_counts(table.scaling),
        scaling_tasks=tuple(table.scaling_tasks),
    )


def jax_legacy_python(config: SurveyConfig) -> Path:
    """The interpreter of the older JAX environment (``[kernels] jax_legacy_python``)."""
    path = Path(config.kernels.get("jax_legacy_python", DEFAULT_JAX_LEGACY_PYTHON)).expanduser()
    return path if path.is_absolute() else config.path.parent / path


# -- planning ---------------------------------------------------------------------------------

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
    gpus = visible_gpus() if device != "cpu" else None
    chosen = [tasks[t] for t in (options.tasks or tasks)]
    jobs = []
    if "train" in options.experiments:
        jobs += train_jobs(chosen, frameworks, options.profile, device, gpus)
    if "dynamic" in options.experiments and DYNAMIC_TASK in {t.name for t in chosen}:
        jobs += dynamic_jobs(tasks[DYNAMIC_TASK], frameworks, options.profile, device, gpus)
    if options.scaling:
        unscaled = [t.name for t in chosen if "scaling" not in t.spec]
        if options.tasks and unscaled:
            scalable = ", ".join(t for t in tasks if "scaling" in tasks[t].spec)
            raise ValueError(f"task {unscaled[0]!r} has no 'scaling' table in its spec.toml; "
                             f"tasks that scale: {scalable}")
        scaled = [t for t in chosen if not options.scaling_tasks
                  or t.name in options.scaling_tasks]
        jobs += scaling_jobs(scaled, frameworks, options.profile, device,
                             scaling_counts(options.scaling), jax_legacy_python(config),
                             gpus)
    return jobs


def source_of(job: Job) -> str:
    """The source a job's rows are written under, one transaction each."""
    if job.experiment == "scaling":
        return f"kernels/scaling/{job.task}"
    return f"kernels/{job.task}"


# -- the stage --------------------------------------------------------------------------------

class TaskJobs(Unit):
    """One source's jobs (a task's trainings, or its scaling runs), each in a subprocess."""

    def __init__(self, source: str, jobs: list[Job]):
        self.source = source
        self.jobs = jobs

    def run(self, ctx: StageContext, tally: Tally) -> None:
        tally.start(len(self.jobs))
        scaling_runs: list[tuple[Job, dict[str, Any], str]] = []
        for job in self.jobs:
            result = run_job(job)
            fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
            records = []
            if job.experiment == "scaling":  # compared with their baseline once all ran
                scaling_runs.append((job, result, fetched_at))
            else:
                records = job_records(job, result, fetched_at)
            shown = f"{job.framework}/{job.mode}/{job.variant}"
            if result["status"] == "ok":
                tally.done(shown, records)
                continue
            tally.add(records)  # a failed job is stored too, with its status and phase
            tally.fail(job.key, result["status"],
                       f"{result['status']} in phase {result.get('phase')}: "
                       f"{(result.get('error') or '')[:500]}", advance=False)
            tally.progress.item_done(self.source, shown)
        tally.add(scaling_records(scaling_runs))

    def summarize(self, tally: Tally) -> tuple[str, str | None]:
        """ok, or partial with how many jobs did not finish (their rows are stored)."""
        if not tally.errors:
            return "ok", None
        return "partial", f"{len(tally.errors)} of {len(self.jobs)} jobs did not finish"


class Disabled(Unit):
    """``[kernels] enabled = false``: nothing to train, stored as skipped."""

    source = "kernels"

    def run(self, ctx: StageContext, tally: Tally) -> None:
        raise UnitSkipped(DISABLED_REASON)


class TrainStage(Stage):
    """Trains the paired kernels: one unit per task (and per task's scaling runs)."""

    name = "train"
    needs = ()

    def __init__(self, options: TrainOptions | None = None):
        #: None: what the configuration's ``[kernels]`` table says.
        self.options = options

    def check(self, config: SurveyConfig) -> None:
        """Validate ``[kernels]`` (and, through the task names, every task's spec.toml)."""
        kernels_table(config)

    def units(self, ctx: StageContext) -> Iterator[Unit]:
        options = self.options if self.options is not None else options_from_config(ctx.config)
        if not options.enabled:
            yield Disabled()
            return
        by_source: dict[str, list[Job]] = {}
        for job in plan(ctx.config, options):
            by_source.setdefault(source_of(job), []).append(job)
        for source, jobs in by_source.items():
            yield TaskJobs(source, jobs)
