"""Benchmark: the harness's steady-state step time against a bare loop of the same step.

    .venv/bin/python scripts/bench_harness.py [TASK] [FRAMEWORK] [ROUNDS]

Both loops run in this one process on the same trainer, in alternating rounds, so machine
noise hits both alike; the ratio of the medians is the harness's overhead.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.tasks import discover


def main() -> None:
    task_name = sys.argv[1] if len(sys.argv) > 1 else "mlp_digits"
    framework = sys.argv[2] if len(sys.argv) > 2 else "pytorch"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    task = discover()[task_name]
    spec = {**task.profile("quick"), "device": "cpu", "workdir": "/tmp"}
    impl = importlib.import_module(task.impl_module(framework))
    data = impl.load_data(spec)
    model = impl.build_model(spec)
    trainer = impl.make_trainer(model, data, spec)
    step = ADAPTERS[framework].stepper(trainer)
    for _ in range(20):  # warm-up, compile
        step()

    per_round = 50
    bare, harness = [], []
    for _ in range(rounds):
        # Bare: what a user's loop does, reading the loss back each step.
        t0 = time.perf_counter()
        for _ in range(per_round):
            if framework == "trax":
                trainer.run(1)
                float(step._last_loss)
            else:
                float(trainer())
        bare.append((time.perf_counter() - t0) / per_round)
        # Harness: the timed loop of fwsurvey.kernels.harness.run, step by step.
        times, losses = [], []
        for _ in range(per_round):
            t0 = time.perf_counter()
            losses.append(step())
            times.append(time.perf_counter() - t0)
        harness.append(statistics.fmean(times))
    # Means on both sides: the bare loop cannot see single steps, so compare like with like
    # (the harness reports medians, which are lower still when a step is an outlier).
    b, h = statistics.median(bare) * 1000, statistics.median(harness) * 1000
    print(f"{task_name}/{framework}: bare loop {b:.4f} ms/step, harness {h:.4f} ms/step "
          f"(medians over rounds of per-round means), harness/bare = {h / b:.3f} "
          f"({rounds} rounds of {per_round} steps)")


if __name__ == "__main__":
    main()
