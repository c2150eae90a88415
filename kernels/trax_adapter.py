"""Trax: ``training.Loop``, on the JAX installed here and, for N devices, on an older one.

On N devices Trax needs nothing wrapped: ``training.Loop``'s ``n_devices`` (by default every
local device) replicates the weights, splits each batch and ``pmap``s the step; the adapter
only checks the Loop took N devices. Trax 1.4.1's multi-device Loop needs JAX APIs current
JAX removed, so its scaling jobs also run in the pinned older JAX's environment.

Steps are timed inside one ``Loop.run(n)`` per measurement window (:class:`LoopStepper`),
the way a Trax user runs a Loop.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from fwsurvey.kernels.framework import (
    JAX_LEGACY_ENV,
    MAIN_ENV,
    DataClock,
    DataParallel,
    DynamicVariant,
    Mode,
    Stepper,
    StepSample,
)
from fwsurvey.kernels.jax_adapter import NO_COMM_TIME, JaxAdapter, jax_devices, tree_size


class TraxLoop(DataParallel):
    """Trax's Loop runs data parallel on every local device by itself."""

    comm_note = NO_COMM_TIME

    def __init__(self, n_devices: int, device: str):
        super().__init__(n_devices, device)
        jax_devices(n_devices, device)

    def check_trainer(self, trainer: Any) -> None:
        if trainer.n_devices != self.n_devices:
            raise RuntimeError(f"training.Loop uses {trainer.n_devices} devices, "
                               f"the job asks for {self.n_devices}")


class LoopStepper(Stepper):
    """Steps of a ``training.Loop``, timed inside the Loop's own ``run(n)``.

    ``Loop.run()`` computes each step's loss but does not return it; a per-step hook on the
    Loop's step (``Loop._run_one_step``, called once per step by ``run``) reads it back to
    the host (the same synchronisation as every framework's step) and stamps the time. A
    step's time is the interval between two stamps, so it includes everything ``run``
    does per step around the update (loss averaging, logging, checkpoints); the first step
    of a call also carries ``run``'s setup (summary writers, ``psutil``) and the last its
    teardown (the weights copied back), so the samples of one call add up to its wall time.
    ``timed(n)`` is ONE ``run(n)``, as a Trax user trains: per-call setup is paid once per
    call, not once per step.
    """

    def __init__(self, loop: Any):
        super().__init__(loop)
        self._last_loss: float | None = None
        self._clock: DataClock | None = None
        self._samples: list[StepSample] = []
        self._stamp = self._data_stamp = 0.0
        inner = loop._run_one_step

        def hooked(*args: Any, **kwargs: Any):
            loss, metrics = inner(*args, **kwargs)
            # On N devices Loop returns one loss per device, each over its equal slice.
            self._last_loss = float(np.mean(np.asarray(loss)))
            now = time.perf_counter()
            data_now = self._clock.seconds if self._clock is not None else 0.0
            step_s, data_s = now - self._stamp, data_now - self._data_stamp
            self._samples.append(StepSample(self._last_loss, step_s, min(data_s, step_s)))
            self._stamp, self._data_stamp = now, data_now
            return loss, metrics

        loop._run_one_step = hooked

    def __call__(self) -> float:
        [sample] = self.timed(1, None)
        return sample.loss

    def timed(self, n: int, clock: DataClock | None) -> list[StepSample]:
        self._clock, self._samples = clock, []
        self._data_stamp = clock.seconds if clock is not None else 0.0
        self._stamp = time.perf_counter()
        self.trainer.run(n)
        end = time.perf_counter()
        samples, self._samples = self._samples, []
        if len(samples) != n:
            raise RuntimeError(f"training.Loop.run({n}) ran {len(samples)} steps")
        # run()'s teardown after the last step belongs to that step.
        last = samples[-1]
        samples[-1] = StepSample(last.loss, last.step_s + (end - self._stamp), last.data_s)
        return samples


class TraxAdapter(JaxAdapter):
    name = "trax"
    packages = ("trax", "jax", "jaxlib", "tensorflow")
    modes = (Mode("trax"),)
    dynamic_variants = (
        DynamicVariant("trax", "exact-lengths"),
        DynamicVariant("trax", "bucketed", {"bucketed": True}),
    )
    engine = "trax.supervised.training.Loop(n_devices)"
    scaling_envs = (MAIN_ENV, JAX_LEGACY_ENV)
    parallel: ClassVar[type[DataParallel]] = TraxLoop

    def count_params(self, model: Any, trainer: Any) -> int:
        return tree_size(trainer.model.weights)

    def make_stepper(self, trainer: Any) -> LoopStepper:
        return LoopStepper(trainer)

    def params_tree(self, model: Any, trainer: Any) -> Any:
        return trainer.model.weights

    def resume_step(self, trainer: Any) -> int:
        return trainer.step
