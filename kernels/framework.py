"""What the kernels need to know about one framework: the :class:`FrameworkAdapter` contract.

The harness (:mod:`fwsurvey.kernels.harness`) and the job matrix
(:mod:`fwsurvey.kernels.matrix`) never branch on a framework's name; they ask its adapter
(registered in :mod:`fwsurvey.kernels.adapters`). An adapter answers two kinds of questions:

* **planning**, in the parent process: the framework's modes and the spec each sets, its
  dynamic-shape variants, the precision a job computes in, the environments and launcher of
  its data-parallel scaling jobs, the engine and collective backend stored with them;
* **measuring**, in the job's own process: installed versions, the device's name, the
  parameter count, one training step read back as a host float (:class:`Stepper`), timed
  steps split into data and compute time (:meth:`FrameworkAdapter.timed_steps`), the
  compile counter, peak memory, the step a resumed trainer starts at, and the data-parallel
  engine (:class:`DataParallel`) wrapped around the implementation on N devices;
* **applying what a user does not write in a scored file** (contract A): device placement
  (:meth:`~FrameworkAdapter.prepare_model`, :meth:`~FrameworkAdapter.place_data`), compilation
  and the precision context (:meth:`~FrameworkAdapter.precision_context`). The implementation
  files hold only what a user of the framework writes; these switches are the harness's, the
  same for every task, so they are never counted as a framework's concepts.

Heavy imports (torch, jax, trax) happen inside the methods that need them, so importing the
registry costs nothing measurable: the harness measures import time in a fresh process.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
import weakref
from abc import ABC
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

#: The environment a scaling job runs in: fwsurvey's own, or the pinned older JAX under Trax
#: (Trax 1.4.1's multi-device Loop needs JAX APIs that current JAX removed).
MAIN_ENV, JAX_LEGACY_ENV = "main", "jax-legacy"


@dataclass(frozen=True)
class Mode:
    """One way of running the same implementation, and the spec keys that select it."""

    name: str
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DynamicVariant:
    """One variant of the dynamic-shape experiment: its mode, name and spec overrides."""

    mode: str
    variant: str
    overrides: dict[str, Any] = field(default_factory=dict)
    #: The profiles that run it. A CPU-sized run keeps each framework's default shape
    #: policies and leaves some alternatives to the full profile (the run-time budget).
    profiles: tuple[str, ...] = ("quick", "full")


@dataclass(frozen=True)
class StepSample:
    """One timed training step: its loss, its wall time, and the part of it spent waiting
    for the next batch (seconds inside the data stream's ``__next__``)."""

    loss: float
    step_s: float
    data_s: float

    @property
    def compute_s(self) -> float:
        """The rest of the step: the framework's own work (forward, backward, update)."""
        return self.step_s - self.data_s


class DataClock:
    """A training stream that counts the seconds spent producing its batches.

    The harness wraps ``data["train"]`` in one before ``make_trainer``, so an implementation
    consumes it exactly as it consumed the stream: by iterating it (a ``DataLoader``'s
    epochs: ``iter()``, then ``next()``) or calling ``next()`` on it (a generator, a
    ``trax.data`` pipeline). :attr:`seconds` is then the data time of every step, whatever
    the framework's data pipeline does (collation, host-to-device copies issued there...);
    a step's compute time is the rest.
    """

    def __init__(self, source: Any):
        self.source = source
        self.seconds = 0.0
        self._stream: Iterator | None = None

    def _timed(self, iterator: Iterator) -> Iterator:
        while True:
            t0 = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - t0
                return
            self.seconds += time.perf_counter() - t0
            yield item

    def __iter__(self) -> Iterator:
        t0 = time.perf_counter()
        iterator = iter(self.source)  # a DataLoader starts its epoch (and workers) here
        self.seconds += time.perf_counter() - t0
        return self._timed(iterator)

    def __next__(self) -> Any:
        if self._stream is None:
            t0 = time.perf_counter()
            self._stream = iter(self.source)
            self.seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            return next(self._stream)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        # Anything else (a DataLoader's dataset, batch_size...) is the source's.
        if name in ("source", "seconds", "_stream"):
            raise AttributeError(name)
        return getattr(self.source, name)


class Stepper:
    """One training step returning its loss as a host float.

    Reading the loss back synchronises the step, the same for every framework, so a step's
    time includes the device work it queued.
    """

    def __init__(self, trainer: Callable[[], Any]):
        self.trainer = trainer

    def __call__(self) -> float:
        loss = self.trainer()
        # Detached, as a user would log it.
        return float(loss.detach() if hasattr(loss, "detach") else loss)

    def timed(self, n: int, clock: DataClock | None) -> list[StepSample]:
        """``n`` steps, each timed from the call to the loss read back on the host."""
        samples = []
        for _ in range(n):
            data0 = clock.seconds if clock is not None else 0.0
            t0 = time.perf_counter()
            loss = self()
            step_s = time.perf_counter() - t0
            data_s = (clock.seconds - data0) if clock is not None else 0.0
            samples.append(StepSample(loss, step_s, min(data_s, step_s)))
        return samples


#: One stepper per trainer: a stepper may hook into its trainer (Trax's Loop), once.
_STEPPERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class CompileCounter:
    """Counts compilations of the framework under test and the seconds they took.

    This one counts nothing (a framework that never compiles).
    """

    def install(self) -> None:
        """Start listening, once the framework is imported."""

    def snapshot(self) -> tuple[int, float]:
        """Compilations so far, and their seconds."""
        return 0, 0.0


class DataParallel:
    """What the harness calls around the implementation on N devices; a no-op engine."""

    #: How ``comm_seconds`` is measured, or why it is not.
    comm_note: ClassVar[str | None] = None

    def __init__(self, n_devices: int, device: str):
        self.n_devices, self.device = n_devices, device

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


def rss_peak_mb() -> float:
    """The process's peak resident set, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


class FrameworkAdapter(ABC):
    """Everything framework-specific the harness and the matrix need, for one framework."""

    #: The framework's key, as in ``fwsurvey.toml`` and ``<framework>_impl.py``.
    name: ClassVar[str]
    #: Distributions whose installed versions every result records.
    packages: ClassVar[tuple[str, ...]]
    #: How its implementations run; the first is the one scaling jobs use.
    modes: ClassVar[tuple[Mode, ...]]
    #: The dynamic-shape experiment's variants, in run order.
    dynamic_variants: ClassVar[tuple[DynamicVariant, ...]] = ()
    #: The N-device engine, as stored in ``kernel_scaling.engine``.
    engine: ClassVar[str]
    #: The environments a scaling job runs in, each with its own interpreter.
    scaling_envs: ClassVar[tuple[str, ...]] = (MAIN_ENV,)
    #: The data-parallel engine the harness wraps around an implementation on N devices.
    parallel: ClassVar[type[DataParallel]] = DataParallel

    # -- planning (parent process) ---------------------------------------------------------

    @property
    def mode_names(self) -> tuple[str, ...]:
        return tuple(mode.name for mode in self.modes)

    def mode_spec(self, mode: str) -> dict[str, Any]:
        """The spec keys one mode sets (``compile = true``)."""
        return dict(next(m.spec for m in self.modes if m.name == mode))

    @property
    def scaling_mode(self) -> str:
        return self.modes[0].name

    def precision(self, device: str, profile: str, spec: dict[str, Any]) -> str:
        """The best available precision: bf16 on a GPU in the full profile where the
        implementation supports it, else fp32. Used by the scaling runs (each N compared with
        its own framework's N=1); training jobs run each of :meth:`precisions` instead.

        A task says which of its implementations compute in bf16 (``bf16 = [...]`` in its
        spec), so the recorded precision is the one that actually ran.
        """
        if profile == "full" and device != "cpu" and self.name in spec.get("bf16", []):
            return "bf16"
        return "fp32"

    def precisions(self, device: str, profile: str, spec: dict[str, Any]) -> tuple[str, ...]:
        """The precisions a training job runs in: fp32 always, so one comparison holds every
        framework in the same precision; bf16 as well, a separate labelled comparison, on a
        GPU in the full profile where the task lists this implementation as bf16-capable."""
        if profile == "full" and device != "cpu" and self.name in spec.get("bf16", []):
            return ("fp32", "bf16")
        return ("fp32",)

    def backend(self, device: str) -> str:
        """The collective backend of its N-device runs."""
        return "xla"

    @property
    def comm_note(self) -> str | None:
        """How the communication share is measured, or why it is not."""
        return self.parallel.comm_note

    def launcher(self, n_devices: int) -> tuple[str, ...]:
        """Placed before the harness module on the command line of an N-device job."""
        return ()

    def host_devices_env(self, n_devices: int) -> dict[str, str]:
        """Environment variables that stand N devices in for one CPU."""
        return {}

    # -- measuring (the job's process) -----------------------------------------------------

    def versions(self) -> dict[str, str]:
        """The installed versions of :attr:`packages` (those installed)."""
        found = {}
        for package in self.packages:
            try:
                found[package] = version(package)
            except PackageNotFoundError:
                pass
        return found

    def reporting(self, n_devices: int | None) -> bool:
        """Whether this process reports to the runner (one of N launched processes does)."""
        return True

    def data_parallel(self, n_devices: int, device: str) -> DataParallel:
        """The engine that runs an implementation on ``n_devices`` devices."""
        return self.parallel(n_devices, device)

    def device_name(self, device: str) -> str:
        return cpu_name()

    def count_params(self, model: Any, trainer: Any) -> int:
        raise NotImplementedError

    def stepper(self, trainer: Any) -> Stepper:
        """One training step of ``trainer``, returning its loss as a host float.

        The same object for the same trainer: a stepper may hook into its trainer once.
        """
        try:
            return _STEPPERS[trainer]
        except TypeError:  # not weak-referenceable: nothing to share
            return self.make_stepper(trainer)
        except KeyError:
            stepper = _STEPPERS[trainer] = self.make_stepper(trainer)
            return stepper

    def make_stepper(self, trainer: Any) -> Stepper:
        """A new :class:`Stepper` around ``trainer`` (:meth:`stepper` keeps one per trainer)."""
        return Stepper(trainer)

    def timed_steps(self, trainer: Any, n: int, data_clock: DataClock | None
                    ) -> list[StepSample]:
        """Run ``n`` steps of ``trainer`` and time each (contract B).

        Each sample's ``data_s`` is what ``data_clock`` (the :class:`DataClock` around
        ``data["train"]``) counted during that step. By default the steps are called one by
        one; a framework whose users run steps in a loop of its own (Trax's
        ``Loop.run(n)``) overrides this to time them inside one call of that loop.
        """
        return self.stepper(trainer).timed(n, data_clock)

    # -- what the harness applies around a user's file (contract A) ------------------------

    def check_backend(self, device: str) -> str | None:
        """Why this framework cannot run on ``device`` here (no GPU backend installed), or
        None. The harness refuses such a job before it trains, instead of letting it run
        on the host under a row that says ``cuda``."""
        return None

    def prepare_model(self, model: Any, spec: dict[str, Any]) -> Any:
        """The model as the harness trains it: on the job's device, compiled if the mode
        compiles (``spec["compile"]``). Identity where the framework places and compiles by
        itself (JAX's ``jit``, Trax's ``Loop``)."""
        return model

    def place_data(self, data: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """The data with every batch moved to the job's device as it is drawn. Identity
        where the framework moves host arrays itself."""
        return data

    def precision_context(self, spec: dict[str, Any]) -> contextlib.AbstractContextManager:
        """Entered around every step and every evaluation: the compute precision of
        ``spec["precision"]`` where the framework sets it by a context (PyTorch's autocast).
        JAX-based implementations read ``spec["precision"]`` for their dtype, as a JAX user
        would, so here it is a no-op."""
        return contextlib.nullcontext()

    def param_platform(self, model: Any, trainer: Any) -> str | None:
        """Where the trained parameters live: ``cpu`` or ``gpu`` (None: unknown). Checked
        after the build: a job that asked for a GPU and trains on the host is stored as
        ``wrong_device``."""
        return None

    def matmul_precision(self, precision: str, device: str) -> str:
        """The arithmetic a job's fp32 matmuls actually use (``tf32`` where the framework
        uses TensorFloat-32 tensor cores by default on this device), for the MFU's peak."""
        return precision

    def compile_counter(self) -> CompileCounter:
        return CompileCounter()

    def graph_breaks(self) -> int | None:
        """Graph breaks the framework's compiler took in this process so far (the job's own
        process: since the job started), or None where the framework has no such notion
        (a tracer that fails instead of breaking the graph, or no compiler in this mode).
        The harness records it as ``result["graph_breaks"]`` at the end of a job."""
        return None

    def peak_memory_mb(self, device: str) -> tuple[float | None, str]:
        """Peak memory: the device's on a GPU, the process's resident set on a CPU."""
        return rss_peak_mb(), "rss"

    def resume_step(self, trainer: Any) -> int:
        """The step a trainer restored from its checkpoints starts at."""
        return trainer.state["step"]

    def own_frame(self, filename: str) -> bool:
        """Whether a traceback frame is in the framework's own code (named in errors)."""
        return f"/{self.name}/" in filename
