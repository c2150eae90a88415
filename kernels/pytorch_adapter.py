"""PyTorch: eager and ``torch.compile`` modes, and DistributedDataParallel on N devices.

On N devices ``torchrun`` starts N processes (the runner launches it); each joins the default
process group (gloo on a CPU, NCCL on GPUs), wraps the model in ``DistributedDataParallel``
and trains on its own contiguous slice of every global batch, as a ``DistributedSampler``
would give it. DDP all-reduces (averages) the gradients in buckets during the backward pass;
a communication hook (DDP's own extension point) wraps its default all-reduce with a timer.

What a PyTorch user writes around a model and leaves out of a scored file, the adapter
applies (contract A): ``model.to(device)`` and ``torch.compile(model, dynamic=...)`` in the
compile mode (:meth:`PyTorchAdapter.prepare_model`), each batch copied to the device from
pinned memory without blocking (:class:`DevicePlaced`), and bf16 ``torch.autocast`` around
every step and evaluation of a bf16 job (:meth:`PyTorchAdapter.precision_context`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from fwsurvey.kernels.framework import (
    CompileCounter,
    DataParallel,
    DynamicVariant,
    FrameworkAdapter,
    Mode,
)


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


def to_device(batch: Any, device: str) -> Any:
    """A batch (a tensor, or a tuple / list / dict of them) on ``device``.

    On a GPU each tensor is first pinned (page-locked) so the copy runs without blocking the
    host, as PyTorch's performance guide advises (``pin_memory`` + ``non_blocking``). Other
    values (numbers, strings) pass as they are; a tensor already there is not copied.
    """
    import torch

    if isinstance(batch, torch.Tensor):
        if batch.device.type == torch.device(device).type:
            return batch
        if device.startswith("cuda"):
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(part, device) for part in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


class DevicePlaced:
    """Every batch of ``source`` moved to ``device`` as it is drawn (iterable and iterator,
    like :class:`RankSlice`)."""

    def __init__(self, source: Iterable, device: str):
        self.source, self.device = source, device
        self._stream: Iterator | None = None

    def __iter__(self) -> Iterator:
        return (to_device(batch, self.device) for batch in self.source)

    def __next__(self) -> Any:
        if self._stream is None:
            self._stream = iter(self.source)
        return to_device(next(self._stream), self.device)


def _is_batch(value: Any) -> bool:
    """A tensor, or a tuple / list / dict holding tensors: data placed once, as a whole."""
    import torch

    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, tuple | list):
        return any(_is_batch(v) for v in value)
    if isinstance(value, dict):
        return any(_is_batch(v) for v in value.values())
    return False


def backend(device: str) -> str:
    """The process group's backend: NCCL on GPUs, gloo on a CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


class TorchDDP(DataParallel):
    """One torchrun worker: a rank of the process group, training a DDP-wrapped model."""

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
        dist.init_process_group(backend(device), timeout=timedelta(minutes=10))
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


class TorchCompileCounter(CompileCounter):
    """Graphs dynamo compiled, and the seconds dynamo, AOT and inductor spent on them."""

    def snapshot(self) -> tuple[int, float]:
        from torch._dynamo.utils import compilation_time_metrics, counters

        forward = sum(compilation_time_metrics.get("_compile.compile_inner", []))
        backward = sum(compilation_time_metrics.get("compile_fx.<locals>.bw_compiler", []))
        # Frames dynamo compiled successfully: one per graph (re)compilation.
        return int(counters["frames"]["ok"]), float(forward + backward)


class PyTorchAdapter(FrameworkAdapter):
    name = "pytorch"
    packages = ("torch",)
    modes = (Mode("torch-eager"), Mode("torch-compile", {"compile": True}))
    dynamic_variants = (
        DynamicVariant("torch-eager", "eager"),
        DynamicVariant("torch-compile", "dynamic=None", {"compile": True, "dynamic": None}),
        # The full profile only: each costs a minute of compiling on 2 CPU cores, and the
        # quick profile keeps PyTorch's default policy per mode (eager; torch.compile's
        # dynamic=None, which recompiles as dynamic once a shape changes). Fewer PyTorch
        # policies can only make its best total worse, never better, in the quick verdicts.
        DynamicVariant("torch-compile", "dynamic=True", {"compile": True, "dynamic": True},
                       profiles=("full",)),
        # The same padding to buckets the JAX and Trax variants get (a collate function), so
        # "each framework's best setting" is chosen from the same shape policies.
        DynamicVariant("torch-compile", "bucketed",
                       {"compile": True, "dynamic": False, "bucketed": True},
                       profiles=("full",)),
    )
    engine = "torch.nn.parallel.DistributedDataParallel (torchrun)"
    parallel: ClassVar[type[DataParallel]] = TorchDDP

    def backend(self, device: str) -> str:
        return backend(device)

    def launcher(self, n_devices: int) -> tuple[str, ...]:
        return ("-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_devices}")

    def host_devices_env(self, n_devices: int) -> dict[str, str]:
        # N processes share the cores, as N XLA host devices do.
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n_devices))}

    def reporting(self, n_devices: int | None) -> bool:
        # torchrun starts every rank with this module: rank 0 reports.
        return not n_devices or os.environ.get("RANK", "0") == "0"

    def device_name(self, device: str) -> str:
        import torch

        if device.startswith("cuda"):
            return torch.cuda.get_device_name(torch.device(device).index or 0)
        return super().device_name(device)

    def check_backend(self, device: str) -> str | None:
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return (f"torch {torch.__version__} sees no GPU (a CPU-only build, or no "
                        "visible device): refusing to run a cuda job on the host")
        return None

    def prepare_model(self, model: Any, spec: dict[str, Any]) -> Any:
        if hasattr(model, "to"):
            model = model.to(spec["device"])
        if spec.get("compile"):
            import torch
            from torch._dynamo.eval_frame import OptimizedModule

            # A file written before the harness compiled may have compiled already: not twice.
            if not isinstance(model, OptimizedModule):
                model = torch.compile(model, dynamic=spec.get("dynamic"))
        return model

    def place_data(self, data: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        device = spec["device"]
        if device == "cpu":
            return data  # tensors are made on the host: nothing to move, nothing to wrap
        placed = {}
        for key, value in data.items():
            if _is_batch(value):
                placed[key] = to_device(value, device)
            elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
                placed[key] = DevicePlaced(value, device)
            else:
                placed[key] = value
        return placed

    def precision_context(self, spec: dict[str, Any]) -> contextlib.AbstractContextManager:
        if spec.get("precision") == "bf16":
            import torch

            device_type = "cuda" if spec["device"].startswith("cuda") else "cpu"
            return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def param_platform(self, model: Any, trainer: Any) -> str | None:
        parameters = getattr(model, "parameters", None)
        first = next(iter(parameters()), None) if parameters else None
        if first is None:
            return None
        return "gpu" if first.device.type == "cuda" else first.device.type

    def matmul_precision(self, precision: str, device: str) -> str:
        if precision == "fp32" and device.startswith("cuda"):
            import torch

            # PyTorch's default is "highest" (true fp32); "high"/"medium" allow TF32.
            if torch.get_float32_matmul_precision() != "highest":
                return "tf32"
        return precision

    def count_params(self, model: Any, trainer: Any) -> int:
        return sum(p.numel() for p in model.parameters())

    def compile_counter(self) -> CompileCounter:
        return TorchCompileCounter()

    def graph_breaks(self) -> int | None:
        """Every graph break dynamo took, as its graph-break registry names them: those it
        resumed after, splitting the frame (``torch._dynamo.utils.counters["graph_break"]``),
        and those that made it run a frame in eager instead (``counters["unimplemented"]``:
        a data-dependent ``while`` on a tensor, a break inside a loop, the recompile limit
        reached); counted once per trace that met them, summed. None when dynamo traced no
        frame in this job's process (eager mode: nothing was compiled, nothing could break)."""
        import sys

        if "torch._dynamo" not in sys.modules:
            return None
        from torch._dynamo.utils import counters

        if not counters["frames"]["total"]:
            return None
        return int(sum(counters["graph_break"].values())
                   + sum(counters["unimplemented"].values()))

    def peak_memory_mb(self, device: str) -> tuple[float | None, str]:
        if device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated() / 2**20, "device"
        return super().peak_memory_mb(device)
