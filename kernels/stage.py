"""The ``train`` stage: runs the kernel matrix and stores every job's measurements.

Each task is one unit, written in one transaction (source ``kernels/<task>``, and
``kernels/scaling/<task>`` for its data-parallel runs) once all its jobs have run, so a
killed run leaves whole tasks or none. A job that crashed, ran out of memory or timed out
is stored with its status and the phase it reached; the matrix goes on.

What ``fwsurvey run`` trains is the ``[kernels]`` table of ``fwsurvey.toml``
(:class:`KernelsTable`); ``fwsurvey train`` passes its options instead (:class:`TrainOptions`).

Where jobs run is the executor's business (:mod:`fwsurvey.executor`): ``local`` runs them one
after the other from this process, as before; ``ray`` sends the whole matrix to a Ray cluster
at once, each job a task that starts the same fresh harness subprocess with the same phase
timeouts on the node it lands on. Each job declares its resources: one GPU for a
single-device GPU job, N for a scaling job on N GPUs, and a share of a node's CPUs: by
default (``jobs_per_node = 1``) all of them, so no timing is ever taken beside another job.
Units still take their jobs' results in task order, and only this process writes the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, PositiveInt, ValidationInfo

from fwsurvey.config import SurveyConfig
from fwsurvey.executor import (
    UNSCHEDULABLE,
    Completion,
    ExecJob,
    Executor,
    LocalExecutor,
    Resources,
    make_executor,
)
from fwsurvey.kernels.adapters import adapter_for
from fwsurvey.kernels.matrix import DYNAMIC_TASK, dynamic_jobs, scaling_jobs, train_jobs
from fwsurvey.kernels.records import job_records, placed, scaling_records
from fwsurvey.kernels.runner import Job, run_job, run_placed_job
from fwsurvey.kernels.tasks import PROFILES, discover
from fwsurvey.model import ConfigModel, validate
from fwsurvey.stage import Stage, StageContext, Tally, Unit, UnitFailed, UnitSkipped

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
    #: Where the jobs run: ``local`` (one after the other, from this process) or ``ray``.
    executor: str = "local"
    #: The Ray cluster (``auto``, ``ray://host:10001``); None: a local one for the run.
    address: str | None = None
    #: At most this many jobs at once on one node (each asks for that share of its CPUs).
    jobs_per_node: int = 1
    #: GPUs per node of the executor's cluster, when it knows (set from the executor, not
    #: by users): the GPU ids a job is planned on there, instead of this machine's.
    cluster_gpus: int | None = None


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
    #: Where the jobs run: local (one after the other, here) or ray (a Ray cluster).
    executor: Literal["local", "ray"] = "local"
    #: The Ray cluster's address (auto, ray://host:10001); empty: a local Ray for the run.
    address: str = ""
    #: Jobs at once on one node; 1 (the default) keeps every timing alone on its machine.
    jobs_per_node: PositiveInt = 1


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
        executor=table.executor,
        address=table.address or None,
        jobs_per_node=table.jobs_per_node,
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
    if options.cluster_gpus is not None:  # planned for the cluster's nodes, not this one
        device = options.device or ("cuda" if options.cluster_gpus else "cpu")
        gpus = [str(i) for i in range(options.cluster_gpus)] if device != "cpu" else None
    else:
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


def resources(job: Job, jobs_per_node: int = 1) -> Resources:
    """What a job asks its executor for: its GPUs (one for a single-device GPU job, N for a
    scaling job on N GPUs, none on a CPU) and ``1/jobs_per_node`` of a node's CPUs."""
    gpus = 0
    if job.device != "cpu":
        gpus = job.n_devices or 1
    return Resources(cpus=1.0, gpus=gpus, per_node=jobs_per_node)


def failed_result(done: Completion) -> dict[str, Any]:
    """The result of a job whose executor could not run it to the end: ``unsupported`` when
    no node can hold it, else ``crashed`` (its worker lost, or the call itself raised),
    with the reason; the phase it reached is not known."""
    status = "unsupported" if done.failure == UNSCHEDULABLE else "crashed"
    return {"status": status, "phase": None, "error": done.reason, "wall_s": None}


class Matrix:
    """Every job of the stage sent through one executor at once; each unit takes its own
    jobs' completions (in any order they finish), keeping the others for their units.

    Jobs that cannot run here (``unsupported``) never reach the executor. The local executor
    runs jobs as they are asked for, so units see them in plan order, as before.
    """

    def __init__(self, executor: Executor, jobs: list[Job], jobs_per_node: int = 1):
        self.executor = executor
        self.jobs = jobs
        self.done: dict[int, Completion] = {}
        self.runnable = [i for i, job in enumerate(jobs) if not job.unsupported]
        fn = run_job if isinstance(executor, LocalExecutor) else run_placed_job
        self._exec_jobs = [ExecJob(jobs[i].key, fn, (jobs[i],),
                                   resources(jobs[i], jobs_per_node)) for i in self.runnable]
        self._stream: Iterator[Completion] | None = None

    def result(self, index: int) -> tuple[dict[str, Any], str]:
        """Job ``index``'s result (with where it ran) and when it finished; waits for it."""
        job = self.jobs[index]
        if job.unsupported:
            return run_job(job), datetime.now(UTC).isoformat(timespec="seconds")
        if self._stream is None:
            self._stream = self.executor.run(self._exec_jobs)
        while index not in self.done:
            try:
                done = next(self._stream)
            except StopIteration:
                raise UnitFailed(f"the {self.executor.name} executor stopped before "
                                 f"{job.key} ran") from None
            self.done[self.runnable[done.index]] = done
        done = self.done.pop(index)
        result = done.result if done.ok else failed_result(done)
        node = done.node
        if done.devices:
            node = f"{node} GPUs {','.join(done.devices)}"
        return placed(result, done.executor, node), done.finished_at

    def stop(self) -> None:
        """Stop what is still running (the executor cancels the jobs it has not finished)."""
        if self._stream is not None:
            self._stream.close()

    def close(self) -> None:
        """Stop, and release the executor."""
        self.stop()
        self.executor.close()


# -- the stage --------------------------------------------------------------------------------

class TaskJobs(Unit):
    """One source's jobs (a task's trainings, or its scaling runs), each in a subprocess."""

    def __init__(self, source: str, jobs: list[Job], matrix: Matrix | None = None,
                 indices: list[int] | None = None):
        self.source = source
        self.jobs = jobs
        self.matrix = matrix if matrix is not None else Matrix(LocalExecutor(), jobs)
        #: The jobs' positions in the matrix.
        self.indices = indices if indices is not None else list(range(len(jobs)))

    def run(self, ctx: StageContext, tally: Tally) -> None:
        tally.start(len(self.jobs))
        scaling_runs: list[tuple[Job, dict[str, Any], str]] = []
        for job, index in zip(self.jobs, self.indices, strict=True):
            result, fetched_at = self.matrix.result(index)
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
            where = (f"in phase {result['phase']}" if result.get("phase")
                     else f"on the {result.get('executor')} executor")
            tally.fail(job.key, result["status"],
                       f"{result['status']} {where}: "
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


def executor_for(options: TrainOptions) -> Executor:
    """The executor ``options`` name (``ray`` connects to its cluster here)."""
    return make_executor(options.executor, options.address)


def for_executor(options: TrainOptions, executor: Executor) -> TrainOptions:
    """``options`` planned for ``executor``'s nodes (their GPUs, when it knows them)."""
    return replace(options, cluster_gpus=executor.max_gpus_per_node())


class TrainStage(Stage):
    """Trains the paired kernels: one unit per task (and per task's scaling runs)."""

    name = "train"
    needs = ()

    def __init__(self, options: TrainOptions | None = None, executor: Executor | None = None):
        #: None: what the configuration's ``[kernels]`` table says.
        self.options = options
        #: None: the one ``options.executor`` names, made (and closed) by the stage.
        self.executor = executor

    def check(self, config: SurveyConfig) -> None:
        """Validate ``[kernels]`` (and, through the task names, every task's spec.toml)."""
        kernels_table(config)

    def units(self, ctx: StageContext) -> Iterator[Unit]:
        options = self.options if self.options is not None else options_from_config(ctx.config)
        if not options.enabled:
            yield Disabled()
            return
        executor = self.executor or executor_for(options)
        options = for_executor(options, executor)
        by_source: dict[str, list[int]] = {}
        jobs = plan(ctx.config, options)
        for i, job in enumerate(jobs):
            by_source.setdefault(source_of(job), []).append(i)
        matrix = Matrix(executor, jobs, options.jobs_per_node)
        try:
            for source, indices in by_source.items():
                yield TaskJobs(source, [jobs[i] for i in indices], matrix, indices)
        finally:
            if self.executor is None:  # ours to close; a given one is its owner's
                matrix.close()
            else:
                matrix.stop()
