"""Which jobs a training run executes: the (task, framework, mode) matrix and the
dynamic-shape experiment."""

from __future__ import annotations

import statistics
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
