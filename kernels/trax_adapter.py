"""Trax: ``training.Loop``, on the JAX installed here and, for N devices, on an older one.

On N devices Trax needs nothing wrapped: ``training.Loop``'s ``n_devices`` (by default every
local device) replicates the weights, splits each batch and ``pmap``s the step; the adapter
only checks the Loop took N devices. Trax 1.4.1's multi-device Loop needs JAX APIs current
JAX removed, so its scaling jobs also run in the pinned older JAX's environment.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fwsurvey.kernels.framework import (
    JAX_LEGACY_ENV,
    MAIN_ENV,
    DataParallel,
    DynamicVariant,
    Mode,
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


class LoopStepper:
    """One step of a ``training.Loop``, returning the loss it computed as a host float."""

    def __init__(self, loop: Any):
        self.trainer = loop
        self._last_loss: Any = None
        # Loop.run() computes each step's loss but does not return it; capture it where
        # Loop produces it, without changing what the user's file does.
        inner = loop._run_one_step

        def capture(*args: Any, **kwargs: Any):
            loss, metrics = inner(*args, **kwargs)
            self._last_loss = loss
            return loss, metrics

        loop._run_one_step = capture

    def __call__(self) -> float:
        self.trainer.run(1)
        # On N devices Loop returns one loss per device, each over its equal slice.
        return float(np.mean(np.asarray(self._last_loss)))


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

    def stepper(self, trainer: Any) -> LoopStepper:
        return LoopStepper(trainer)

    def resume_step(self, trainer: Any) -> int:
        return trainer.step
