"""Which jobs a training run executes: the (task, framework, mode) matrix, the
dynamic-shape experiment and the data-parallel scaling runs."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from fwsurvey.kernels.runner import PHASE_TIMEOUTS, Job
from fwsurvey.kernels.tasks import MODES, Task

#: The task the dynamic-shape experiment runs on.
DYNAMIC_TASK = "transformer_lm"

#: Variants of the dynamic-shape experiment: (framework, mode, variant, spec overrides).
DYNAMIC_VARIANTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("pytorch", "torch-eager", "eager", {}),
    ("pytorch", "torch-compile", "dynamic=None", {"compile": True, "dynamic": None}),
    ("pytorch", "torch-compile", "dynamic=True", {"compile": True, "dynamic": True}),
    ("jax", "jax-jit", "exact-lengths", {}),
    ("jax", "jax-jit", "bucketed", {"bucketed": True}),
    ("trax", "trax", "exact-lengths", {}),
    ("trax", "trax", "bucketed", {"bucketed": True}),
]


#: The environment a scaling job runs in: fwsurvey's own, or the pinned older JAX under Trax
#: (Trax 1.4.1's multi-device Loop needs JAX APIs that current JAX removed).
MAIN_ENV, JAX_LEGACY_ENV = "main", "jax-legacy"


def precision_for(framework: str, device: str, profile: str, spec: dict[str, Any]) -> str:
    """bf16 on a GPU in the full profile where the implementation supports it, else fp32.

    A task says which of its implementations compute in bf16 (``bf16 = [...]`` in its
    spec), so the recorded precision is the one that actually ran.
    """
    if profile == "full" and device != "cpu" and framework in spec.get("bf16", []):
        return "bf16"
    return "fp32"


def _job(task: Task, framework: str, mode: str, spec: dict[str, Any], device: str,
         profile: str, experiment: str, variant: str) -> Job:
    return Job(task=task.name, framework=framework, mode=mode,
               module=task.impl_module(framework), spec=spec, device=device,
               precision=precision_for(framework, device, profile, spec),
               experiment=experiment,
               variant=variant, timeouts=dict(PHASE_TIMEOUTS[profile]))


def train_jobs(tasks: list[Task], frameworks: list[str], profile: str, device: str
               ) -> list[Job]:
    """Every (task, framework, mode) to train, in a stable order."""
    jobs = []
    for task in tasks:
        for framework in frameworks:
            if framework not in task.frameworks:
                continue
            for mode in MODES.get(framework, ()):
                spec = task.profile(profile)
                if mode == "torch-compile":
                    spec["compile"] = True
                jobs.append(_job(task, framework, mode, spec, device, profile, "train",
                                 "default"))
    return jobs


def dynamic_jobs(task: Task, frameworks: list[str], profile: str, device: str) -> list[Job]:
    """The language model fed batches whose sequence length varies, in each mode."""
    jobs = []
    for framework, mode, variant, overrides in DYNAMIC_VARIANTS:
        if framework not in frameworks or framework not in task.frameworks:
            continue
        spec = {**task.profile(profile), **task.spec.get("dynamic", {}), **overrides}
        spec["tokens_per_step"] = spec["batch"] * statistics.mean(spec["seq_lens"])
        jobs.append(_job(task, framework, mode, spec, device, profile, "dynamic", variant))
    return jobs


def scaling_jobs(tasks: list[Task], frameworks: list[str], profile: str, device: str,
                 counts: tuple[int, ...], legacy_python: Path | None = None,
                 gpus: list[str] | None = None) -> list[Job]:
    """Each task with a ``[scaling]`` table, trained data parallel on each N of ``counts``.

    Every N gets the same global batch (the profile's ``batch``), so losses compare across
    N. Trax runs twice: on the JAX installed here, and on the pinned older JAX of
    ``legacy_python``'s environment. ``gpus`` are the visible GPU ids (on ``cuda``); a job
    needing more is stored as unsupported.
    """
    jobs = []
    for task in tasks:
        if "scaling" not in task.spec:
            continue
        for framework in frameworks:
            if framework not in task.frameworks:
                continue
            envs = [(MAIN_ENV, None)]
            if framework == "trax":
                envs.append((JAX_LEGACY_ENV, legacy_python))
            for env_name, python in envs:
                for n in counts:
                    jobs.append(_scaling_job(task, framework, profile, device, n, env_name,
                                             python, gpus))
    return jobs


def _scaling_job(task: Task, framework: str, profile: str, device: str, n: int, env_name: str,
                 python: Path | None, gpus: list[str] | None) -> Job:
    spec = {**task.profile(profile), **task.spec["scaling"]}
    if spec["batch"] % n:
        raise ValueError(f"{task.name}: the global batch ({spec['batch']}) is not divisible by "
                         f"{n} devices; choose device counts that divide it")
    variant = f"n{n}" if env_name == MAIN_ENV else f"n{n}-{env_name}"
    job = _job(task, framework, MODES[framework][0], spec, device, profile, "scaling", variant)
    job.n_devices = n
    job.environment = env_name
    if env_name != MAIN_ENV:
        job.python = str(python) if python else None
        if python is None or not Path(python).exists():
            job.unsupported = (f"no {env_name} environment at {python}: scripts/setup.sh "
                               "builds it")
    if framework == "pytorch":
        job.launcher = ("-m", "torch.distributed.run", "--standalone",
                        f"--nproc-per-node={n}")
    if device == "cpu":
        if framework == "pytorch":  # N processes share the cores, as N XLA host devices do
            job.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
        else:
            flags = os.environ.get("XLA_FLAGS", "")
            job.env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    else:
        visible = gpus or []
        if len(visible) < n:
            job.unsupported = f"{n} GPUs needed, {len(visible)} visible"
        # Trax's Loop insists on every local device: show each job exactly its N.
        job.env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[:n])
    return job
