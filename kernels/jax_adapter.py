"""JAX: ``jax.jit``, and on N devices a one-axis ``jax.sharding.Mesh``.

On N devices one process holds N devices in a mesh with one ``data`` axis; the parameters
are replicated and every batch is sharded over that axis (``NamedSharding``), so
``jax.jit`` partitions the unchanged step and inserts the gradient all-reduce itself.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from fwsurvey.kernels.framework import (
    CompileCounter,
    DataParallel,
    DynamicVariant,
    FrameworkAdapter,
    Mode,
)

#: Why a JAX-based framework's communication time is not measured.
NO_COMM_TIME = ("XLA compiles the gradient all-reduce into the step; JAX exposes no "
                "per-step communication time outside a profiler trace")


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


class JaxSharding(DataParallel):
    """N devices of one process in a mesh: parameters replicated, batches sharded."""

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


class JaxCompileCounter(CompileCounter):
    """One backend compile per jit cache miss (a new shape, dtype, ...), from JAX's events."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def install(self) -> None:
        import jax.monitoring

        def on_duration(event: str, duration: float, **_: Any) -> None:
            if event.endswith("backend_compile_duration"):
                self.count += 1
                self.seconds += duration

        jax.monitoring.register_event_duration_secs_listener(on_duration)

    def snapshot(self) -> tuple[int, float]:
        return self.count, self.seconds


class JaxAdapter(FrameworkAdapter):
    """JAX itself; also the base of the frameworks built on it (Trax)."""

    name = "jax"
    packages = ("jax", "jaxlib")
    modes = (Mode("jax-jit"),)
    dynamic_variants = (
        DynamicVariant("jax-jit", "exact-lengths"),
        DynamicVariant("jax-jit", "bucketed", {"bucketed": True}),
    )
    engine = "jax.sharding.NamedSharding + jax.jit"
    parallel: ClassVar[type[DataParallel]] = JaxSharding

    def host_devices_env(self, n_devices: int) -> dict[str, str]:
        flags = os.environ.get("XLA_FLAGS", "")
        return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n_devices}"
                .strip()}

    def device_name(self, device: str) -> str:
        import jax

        first = jax.devices()[0]
        if first.platform != "cpu":
            return first.device_kind
        return super().device_name(device)

    def count_params(self, model: Any, trainer: Any) -> int:
        return tree_size(model)

    def check_backend(self, device: str) -> str | None:
        if device == "cpu":
            return None
        import jax

        if jax.default_backend() == "cpu":
            return (f"jax {jax.__version__} has no GPU backend here (jax.default_backend() is "
                    "'cpu': a CPU-only jaxlib, without its CUDA plugin): refusing to run a "
                    f"{device} job on the host")
        return None

    def params_tree(self, model: Any, trainer: Any) -> Any:
        """The trained parameters' pytree (where :meth:`param_platform` looks)."""
        return model

    def param_platform(self, model: Any, trainer: Any) -> str | None:
        import jax

        for leaf in jax.tree_util.tree_leaves(self.params_tree(model, trainer)):
            devices = getattr(leaf, "devices", None)
            if callable(devices):
                platforms = {d.platform for d in devices()}
                return "gpu" if platforms & {"gpu", "cuda", "rocm"} else sorted(platforms)[0]
        return None

    def matmul_precision(self, precision: str, device: str) -> str:
        if precision == "fp32" and device != "cpu":
            import jax

            # XLA's default precision on a GPU runs fp32 matmuls as TF32 (tensor cores);
            # only "highest" / "float32" asks for true fp32.
            chosen = str(jax.config.jax_default_matmul_precision or "default").lower()
            if chosen not in ("highest", "float32", "precision.highest"):
                return "tf32"
        return precision

    def compile_counter(self) -> CompileCounter:
        return JaxCompileCounter()

    def peak_memory_mb(self, device: str) -> tuple[float | None, str]:
        if device != "cpu":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                return stats["peak_bytes_in_use"] / 2**20, "device"
        return super().peak_memory_mb(device)


def tree_size(tree: Any) -> int:
    """Elements in every array leaf of a pytree."""
    import jax

    return int(sum(getattr(x, "size", 0) for x in jax.tree_util.tree_leaves(tree)))
