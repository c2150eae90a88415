"""Which jobs a training run executes: the (task, framework, mode) matrix, the
dynamic-shape experiment and the data-parallel scaling runs.

What differs between frameworks (modes, variants, launchers, environments) comes from
their adapters (:mod:`fwsurvey.kernels.adapters`); this module never names a framework.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.framework import JAX_LEGACY_ENV, MAIN_ENV, FrameworkAdapter
from fwsurvey.kernels.records import code_sha256
from fwsurvey.kernels.runner import PHASE_TIMEOUTS, Job
from fwsurvey.kernels.tasks import Task

#: The task the dynamic-shape experiment runs on.
DYNAMIC_TASK = "transformer_lm"


def _job(task: Task, adapter: FrameworkAdapter, mode: str, spec: dict[str, Any], device: str,
         profile: str, experiment: str, variant: str, precision: str | None = None,
         gpus: list[str] | None = None) -> Job:
    """One job; a single-device GPU job sees exactly one GPU (``CUDA_VISIBLE_DEVICES``), so
    a framework that takes every visible device (Trax's Loop) trains on one like the rest."""
    job = Job(task=task.name, framework=adapter.name, mode=mode,
              module=task.impl_module(adapter.name), spec=spec, device=device,
              precision=precision or adapter.precision(device, profile, spec),
              experiment=experiment, variant=variant, timeouts=dict(PHASE_TIMEOUTS[profile]),
              code_sha256=code_sha256(task.impl_module(adapter.name)))
    if device != "cpu" and experiment != "scaling":
        visible = gpus if gpus is not None else []
        job.env["CUDA_VISIBLE_DEVICES"] = visible[0] if visible else "0"
    return job


def _adapters(task: Task, frameworks: list[str]) -> list[FrameworkAdapter]:
    """The adapters of ``frameworks`` that implement ``task``, in the order given."""
    return [ADAPTERS[f] for f in frameworks if f in ADAPTERS and f in task.frameworks]


def train_jobs(tasks: list[Task], frameworks: list[str], profile: str, device: str,
               gpus: list[str] | None = None) -> list[Job]:
    """Every (task, framework, mode) to train, in a stable order: in fp32 on every side, and
    also in bf16 (variant ``bf16``, a separate comparison) where the adapter says so. A task's
    jobs carry its ``experiment`` label (``train`` for the reference trainings) and, where
    its spec names ``modes``, only those modes."""
    jobs = []
    for task in tasks:
        experiment = task.spec.get("experiment", "train")
        only = task.profile(profile).get("modes")  # the profile's own list, else the task's
        for adapter in _adapters(task, frameworks):
            for mode in adapter.mode_names:
                if only is not None and mode not in only:
                    continue
                spec = {**task.profile(profile), **adapter.mode_spec(mode)}
                for precision in adapter.precisions(device, profile, spec):
                    variant = "default" if precision == "fp32" else precision
                    jobs.append(_job(task, adapter, mode, spec, device, profile, experiment,
                                     variant, precision, gpus))
    return jobs


def dynamic_jobs(task: Task, frameworks: list[str], profile: str, device: str,
                 gpus: list[str] | None = None) -> list[Job]:
    """The language model fed batches whose sequence length varies, in each mode; fp32 on
    every side, so the variants compare in one precision."""
    jobs = []
    for adapter in ADAPTERS.values():  # the registry's order, whatever order was asked
        if adapter.name not in frameworks or adapter.name not in task.frameworks:
            continue
        for dyn in adapter.dynamic_variants:
            if profile not in dyn.profiles:
                continue
            spec = {**task.profile(profile), **task.spec.get("dynamic", {}), **dyn.overrides}
            spec["tokens_per_step"] = spec["batch"] * statistics.mean(spec["seq_lens"])
            jobs.append(_job(task, adapter, dyn.mode, spec, device, profile, "dynamic",
                             dyn.variant, "fp32", gpus))
    return jobs


def scaling_jobs(tasks: list[Task], frameworks: list[str], profile: str, device: str,
                 counts: tuple[int, ...], legacy_python: Path | None = None,
                 gpus: list[str] | None = None) -> list[Job]:
    """Each task with a ``[scaling]`` table, trained data parallel on each N of ``counts``.

    Every N gets the same global batch (the profile's ``batch``), so losses compare across
    N. A framework whose adapter names more environments runs in each (Trax: on the JAX
    installed here, and on the pinned older JAX of ``legacy_python``'s environment).
    ``gpus`` are the visible GPU ids (on ``cuda``); a job needing more is stored as
    unsupported.
    """
    pythons = {MAIN_ENV: None, JAX_LEGACY_ENV: legacy_python}
    jobs = []
    for task in tasks:
        if "scaling" not in task.spec:
            continue
        for adapter in _adapters(task, frameworks):
            for env_name in adapter.scaling_envs:
                for n in counts:
                    jobs.append(_scaling_job(task, adapter, profile, device, n, env_name,
                                             pythons[env_name], gpus))
    return jobs


def _scaling_job(task: Task, adapter: FrameworkAdapter, profile: str, device: str, n: int,
                 env_name: str, python: Path | None, gpus: list[str] | None) -> Job:
    spec = {**task.profile(profile), **task.spec["scaling"]}
    if spec["batch"] % n:
        raise ValueError(f"{task.name}: the global batch ({spec['batch']}) is not divisible by "
                         f"{n} devices; choose device counts that divide it")
    variant = f"n{n}" if env_name == MAIN_ENV else f"n{n}-{env_name}"
    job = _job(task, adapter, adapter.scaling_mode, spec, device, profile, "scaling", variant)
    job.n_devices = n
    job.environment = env_name
    if env_name != MAIN_ENV:
        job.python = str(python) if python else None
        if python is None or not Path(python).exists():
            job.unsupported = (f"no {env_name} environment at {python}: scripts/setup.sh "
                               "builds it")
    job.launcher = adapter.launcher(n)
    if device == "cpu":
        job.env.update(adapter.host_devices_env(n))
    else:
        visible = gpus or []
        if len(visible) < n:
            job.unsupported = f"{n} GPUs needed, {len(visible)} visible"
        # Trax's Loop insists on every local device: show each job exactly its N.
        job.env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[:n])
    return job
