"""Benchmark: the harness's steady-state step time against a bare loop of the same steps.

    .venv/bin/python scripts/bench_harness.py [TASK] [FRAMEWORK] [ROUNDS] [MODE]

Both loops run in this one process on the same trainer, in alternating rounds, so machine
noise hits both alike; the ratio of the medians is the harness's overhead.

The bare loop is what a user of each framework writes, with nothing of the harness: the
trainer's step called N times (``for _ in range(n): step()``), or, for a trainer that is a
training loop of the framework's own (Trax's ``Loop``), ONE ``loop.run(n)`` — never a
``run(1)`` per step, which would repeat the loop's per-call setup and hide the harness's cost
behind it. The loss is read back once, at the end of the round, which waits for the queued
device work. The harness's loop is :meth:`FrameworkAdapter.timed_steps` over the same N
steps, with its data clock: per-step timing, the loss read back every step and the data
time split. So harness/bare includes the cost of synchronising every step, a real cost of
measuring step by step.

The model and data go through the adapter's hooks first (device, compilation, data
placement), as in the harness, so both loops run the same prepared trainer.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from typing import Any

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.framework import DataClock
from fwsurvey.kernels.tasks import discover


def host_float(loss: Any) -> float:
    """A step's loss read back to the host (waits for the device work it depends on)."""
    import numpy as np

    if hasattr(loss, "detach"):
        loss = loss.detach()
    return float(np.mean(np.asarray(loss)))


def bare_round(trainer: Any, n: int) -> None:
    """N steps as a user runs them: one framework loop call, or the step N times."""
    hook = trainer.__dict__.pop("_run_one_step", None) if hasattr(trainer, "__dict__") else None
    try:
        if callable(getattr(trainer, "run", None)):  # the framework's own training loop
            trainer.run(n)
            return
        loss = None
        for _ in range(n):
            loss = trainer()
        host_float(loss)
    finally:
        if hook is not None:  # the harness's per-step hook, back for its rounds
            trainer._run_one_step = hook


def main() -> None:
    task_name = sys.argv[1] if len(sys.argv) > 1 else "mlp_digits"
    framework = sys.argv[2] if len(sys.argv) > 2 else "pytorch"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    adapter = ADAPTERS[framework]
    mode = sys.argv[4] if len(sys.argv) > 4 else adapter.mode_names[0]
    task = discover()[task_name]
    spec = {**task.profile("quick"), **adapter.mode_spec(mode), "device": "cpu",
            "precision": "fp32", "workdir": "/tmp"}
    impl = importlib.import_module(task.impl_module(framework))
    data = adapter.place_data(impl.load_data(spec), spec)
    clock = DataClock(data["train"])
    data = {**data, "train": clock}
    model = adapter.prepare_model(impl.build_model(spec), spec)
    trainer = impl.make_trainer(model, data, spec)
    adapter.timed_steps(trainer, 20, clock)  # warm-up, compile; installs any per-step hook

    per_round = 50
    bare, harness = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        bare_round(trainer, per_round)
        bare.append((time.perf_counter() - t0) / per_round)
        t0 = time.perf_counter()
        with adapter.precision_context(spec):
            samples = adapter.timed_steps(trainer, per_round, clock)
        harness.append((time.perf_counter() - t0) / per_round)
        assert len(samples) == per_round
    # Means per round on both sides: the bare loop cannot see single steps, so compare like
    # with like (the harness reports medians, which are lower still when a step is an outlier).
    b, h = statistics.median(bare) * 1000, statistics.median(harness) * 1000
    print(f"{task_name}/{framework}/{mode}: bare loop {b:.4f} ms/step, harness {h:.4f} ms/step "
          f"(medians over rounds of per-round means), harness/bare = {h / b:.3f} "
          f"({rounds} rounds of {per_round} steps)")


if __name__ == "__main__":
    main()
