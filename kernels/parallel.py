"""Data-parallel training on N devices, with each framework's own distributed engine.

Used by the harness (:mod:`fwsurvey.kernels.harness`) when a job carries ``n_devices``. The
task's implementation file runs unchanged and is given the *global* batch of every step;
what its documentation teaches for N devices is added around it here:

* **PyTorch**: ``torchrun`` starts N processes (the runner launches it); each joins the
  default process group (gloo on a CPU, NCCL on GPUs), wraps the model in
  ``DistributedDataParallel`` and trains on its own contiguous slice of every global batch,
  as a ``DistributedSampler`` would give it. DDP all-reduces (averages) the gradients in
  buckets during the backward pass; a communication hook (DDP's own extension point) wraps
  its default all-reduce with a timer.
* **JAX**: one process, N devices in a ``jax.sharding.Mesh`` with one ``data`` axis; the
  parameters are replicated and every batch is sharded over that axis
  (``NamedSharding``), so ``jax.jit`` partitions the unchanged step and inserts the
  gradient all-reduce itself.
* **Trax**: one process; ``training.Loop``'s ``n_devices`` (by default every local device)
  replicates the weights, splits each batch and ``pmap``s the step. Nothing is wrapped:
  the adapter only checks the Loop took N devices.

Every step's loss is the mean over the whole global batch (per-device losses are averaged
after the timed window), so curves compare across N.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

#: The engine each framework's N-device run uses, as stored in ``kernel_scaling.engine``.
ENGINES = {
    "pytorch": "torch.nn.parallel.DistributedDataParallel (torchrun)",
    "jax": "jax.sharding.NamedSharding + jax.jit",
    "trax": "trax.supervised.training.Loop(n_devices)",
}

#: Why a framework's communication time is not measured.
NO_COMM_TIME = ("XLA compiles the gradient all-reduce into the step; JAX exposes no "
                "per-step communication time outside a profiler trace")


def backend_for(framework: str, device: str) -> str:
    """The collective backend: gloo or NCCL for PyTorch, XLA's own for JAX and Trax."""
    if framework == "pytorch":
        return "nccl" if device.startswith("cuda") else "gloo"
    return "xla"


def jax_devices(n_devices: int, device: str) -> list:
    """The first N devices JAX sees, refusing to stand in CPUs for the GPUs a job asked for
    (a jaxlib without its CUDA plugin quietly runs on the host)."""
    import jax

    devices = jax.devices()
    if device != "cpu" and devices[0].platform == "cpu":
        raise RuntimeError(f"JAX {jax.__version__} sees no GPU (is its CUDA plugin installed "
                           "in this environment?)")
    if len(devices) < n_devices:
        raise RuntimeError(f"{n_devices} devices asked for, {len(devices)} visible")
    return devices[:n_devices]


class RankSlice:
    """Every batch of ``source`` cut to one rank's contiguous slice along dimension 0.

    Iterable (a DataLoader's epochs) and an iterator (a generator's stream) alike, so an
    implementation consumes it the way it consumed the unsliced data.
    """

    def __init__(self, source: Iterable, rank: int, world: int):
        self.source, self.rank, self.world = source, rank, world
        self._stream: Iterator | None = None

    def cut(self, batch: Any) -> Any:
        if isinstance(batch, tuple | list):
            return type(batch)(self.cut(part) for part in batch)
        size = batch.shape[0]
        if size % self.world:
            raise ValueError(f"global batch {size} is not divisible by {self.world} ranks")
        per_rank = size // self.world
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __iter__(self) -> Iterator:
        return (self.cut(batch) for batch in self.source)

    def __next__(self) -> Any:
        if self._stream is None:
            self._stream = iter(self.source)
        return self.cut(next(self._stream))


class DataParallel:
    """What the harness calls around the implementation; a no-op engine by default."""

    framework = ""
    #: How ``comm_seconds`` is measured, or why it is not.
    comm_note: str | None = None

    def __init__(self, n_devices: int, device: str):
        self.n_devices, self.device = n_devices, device
        self.backend = backend_for(self.framework, device)

    @property
    def reports(self) -> bool:
        """Whether this process reports to the runner (rank 0 only)."""
        return True

    def setup(self, spec: dict[str, Any]) -> None:
        """Adjust the spec before anything is built (the device a rank uses)."""

    def shard_data(self, data: dict[str, Any]) -> dict[str, Any]:
        return data

    def wrap_model(self, model: Any) -> Any:
        return model

    def check_trainer(self, trainer: Any) -> None:
        """Fail if the trainer does not train on N devices."""

    def comm_seconds(self) -> float | None:
        """Seconds of gradient communication so far, where the framework exposes them."""
        return None

    def global_losses(self, losses: list[float]) -> list[float]:
        """Each step's loss over the whole global batch."""
        return losses

    def close(self) -> None:
        """Leave the process group (PyTorch)."""


class TorchDDP(DataParallel):
    """One torchrun worker: a rank of the process group, training a DDP-wrapped model."""

    framework = "pytorch"
    comm_note = ("time each gradient bucket's all-reduce was in flight (DDP communication hook "
                 "around its default all-reduce), over step time; it overlaps the backward pass")

    def __init__(self, n_devices: int, device: str):
        super().__init__(n_devices, device)
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != n_devices:
            raise RuntimeError(f"launched with {world} processes, the job asks for {n_devices}")
        self.on_gpu = device.startswith("cuda")
        if self.on_gpu:
            torch.cuda.set_device(self.local_rank)
        # A rank that waits longer than this on a collective has lost its peers.
        dist.init_process_group(self.backend, timeout=timedelta(minutes=10))
        self._comm_s = 0.0

    @property
    def reports(self) -> bool:
        return self.rank == 0

    def setup(self, spec: dict[str, Any]) -> None:
        if self.on_gpu:
            spec["device"] = f"cuda:{self.local_rank}"

    def shard_data(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "train": RankSlice(data["train"], self.rank, self.n_devices)}

    def wrap_model(self, model: Any) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model,
                                      device_ids=[self.local_rank] if self.on_gpu else None)
        ddp.register_comm_hook(None, self._timed_allreduce)
        return ddp

    def _timed_allreduce(self, process_group, bucket):  # DDP rejects other annotations
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        started = time.perf_counter()

        def finished(future: Any) -> Any:
            self._comm_s += time.perf_counter() - started
            return future.value()

        return allreduce_hook(process_group, bucket).then(finished)

    def comm_seconds(self) -> float | None:
        return self._comm_s

    def global_losses(self, losses: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        # Each rank's loss is the mean over its equal slice: their mean is the global mean.
        total = torch.tensor(losses, dtype=torch.float64,
                             device=f"cuda:{self.local_rank}" if self.on_gpu else "cpu")
        dist.all_reduce(total)
        return (total / self.n_devices).tolist()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class JaxSharding(DataParallel):
    """N devices of one process in a mesh: parameters replicated, batches sharded."""

    framework = "jax"
    comm_note = NO_COMM_TIME

    def __init__(self, n_devices: int, device: str):
        super().__init__(n_devices, device)
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(jax_devices(n_devices, device)), ("data",))
        self.batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self.replicated = NamedSharding(mesh, PartitionSpec())

    def shard_data(self, data: dict[str, Any]) -> dict[str, Any]:
        import jax

        stream = data["train"]
        return {**data, "train": (jax.device_put(batch, self.batch_sharding)
                                  for batch in stream)}

    def wrap_model(self, model: Any) -> Any:
        import jax

        return jax.device_put(model, self.replicated)


class TraxLoop(DataParallel):
    """Trax's Loop runs data parallel on every local device by itself."""

    framework = "trax"
    comm_note = NO_COMM_TIME

    def __init__(self, n_devices: int, device: str):
        super().__init__(n_devices, device)
        jax_devices(n_devices, device)

    def check_trainer(self, trainer: Any) -> None:
        if trainer.n_devices != self.n_devices:
            raise RuntimeError(f"training.Loop uses {trainer.n_devices} devices, "
                               f"the job asks for {self.n_devices}")


ADAPTERS: dict[str, type[DataParallel]] = {
    "pytorch": TorchDDP, "jax": JaxSharding, "trax": TraxLoop}


def data_parallel(framework: str, n_devices: int, device: str) -> DataParallel:
    """The adapter that runs ``framework``'s implementation on ``n_devices`` devices."""
    return ADAPTERS[framework](n_devices, device)
