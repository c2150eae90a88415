"""Where does Trax's update step run on a GPU? (issue #13, item 7)

Trax 1.4.1's ``optimizers.Trainer`` puts the optimizer slots and parameters on the host
(``tl.on_cpu`` in ``trax/optimizers/trainer.py``): committed host arrays, which make JAX run the
jitted update step where they live, so the weights it returns come back on the host too and
every later step runs on the CPU. This probe checks that on the device instead of guessing:
it builds the LM with the task's own ``trax_impl`` (Trax's default ``training.Loop``), runs
a few steps one at a time and, after each, logs which devices hold the weights, the slots,
the optimizer parameters and the rng (``jax.Array.devices()``/``.sharding`` of every leaf,
summarised), the accelerator memory in use (``Device.memory_stats()``), the step's seconds
and JAX's compile messages. ``--variant slots-on-device`` first replaces ``tl.on_cpu`` with
the identity in this process only (the trainer looks it up at call time), so the slots stay
where the weights are: the comparison of the two variants is the diagnosis.

The update step runs where its outputs land (JAX places a computation on its committed
arguments' device), so the conclusion reads the weights' device after the last step:
``Trax's update step runs on: <device> (slots on <device>)``.

One JSON line per event on stdout and in ``OUT/trax_probe.jsonl``, flushed as it happens;
Python stack dumps every 30 s while a step hangs go to ``OUT/trax_stacks.txt``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jax
import numpy as np

VARIANTS = ("default", "slots-on-device")


class CompileLog(logging.Handler):
    """JAX's compile messages and cache-miss explanations, collected per step."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "TRACING CACHE MISS" in text:
            self.messages.append(text[:600])
        elif text.startswith("Compiling ") or "to compile" in text:
            self.messages.append(text[:200])


def device_label(device: Any) -> str:
    """``cuda:0``, ``cpu:0``: the platform and id, the same words on every JAX version."""
    return f"{device.platform}:{device.id}"


def placement(tree: Any) -> dict[str, Any]:
    """Where the leaves of ``tree`` live: leaves and MB per device set, and how they are held.

    A NumPy leaf is ``host-numpy`` (JAX copies it to the computation's device at each call);
    a ``jax.Array`` is named by its devices, its sharding's class and whether it is
    committed (a committed array decides where a computation runs).
    """
    where: Counter[str] = Counter()
    megabytes: Counter[str] = Counter()
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array):
            devices = ",".join(sorted(device_label(d) for d in leaf.devices()))
            committed = getattr(leaf, "committed", getattr(leaf, "_committed", None))
            key = (f"{devices} {type(leaf.sharding).__name__}"
                   f"{' committed' if committed else ' uncommitted' if committed is False else ''}")
        elif isinstance(leaf, np.ndarray | np.generic):
            key = "host-numpy"
        else:
            key = type(leaf).__name__
        where[key] += 1
        megabytes[key] += getattr(leaf, "nbytes", 0) / 2**20
    return {key: {"leaves": n, "mb": round(megabytes[key], 1)} for key, n in where.items()}


def main_device(summary: dict[str, Any]) -> str:
    """The device holding most of a tree's bytes (``none`` for an empty tree)."""
    if not summary:
        return "none"
    key = max(summary, key=lambda k: (summary[k]["mb"], summary[k]["leaves"]))
    return key.split(" ")[0]


def memory() -> dict[str, Any] | None:
    """Bytes in use and peak on the default device, in MB (None where JAX keeps no stats)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - a backend without the call
        return None
    if not stats:
        return None
    return {"device": device_label(jax.devices()[0]),
            "in_use_mb": round(stats.get("bytes_in_use", 0) / 2**20, 1),
            "peak_mb": round(stats.get("peak_bytes_in_use", 0) / 2**20, 1),
            "limit_mb": round(stats.get("bytes_limit", 0) / 2**20, 1)}


def keep_slots_on_device() -> None:
    """Make ``tl.on_cpu`` the identity in this process (the probe's variant only).

    ``Trainer.__init__`` and its ``slots`` setter call ``tl.on_cpu`` through the module
    attribute at call time, so replacing it before the Loop is built reaches them.
    """
    from trax import layers as tl
    from trax.layers import acceleration

    def identity(x: Any) -> Any:
        return x

    tl.on_cpu = identity
    acceleration.on_cpu = identity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, default="default")
    args = parser.parse_args()
    from fwsurvey import frames  # the harness's import shortcut (fwsurvey/frames.py)

    frames.install()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "trax_probe.jsonl"
    stacks = (args.out / "trax_stacks.txt").open("a")  # open until the process ends
    stacks.write(f"== variant {args.variant}: stacks every 30 s while a step runs ==\n")
    stacks.flush()
    faulthandler.dump_traceback_later(30, repeat=True, file=stacks)

    def line(event: str, **payload: Any) -> None:
        text = json.dumps({"event": event, "variant": args.variant, **payload}, default=str)
        with log_path.open("a") as f:
            f.write(text + "\n")
        print(text, flush=True)

    jax.config.update("jax_log_compiles", True)
    jax.config.update("jax_explain_cache_misses", True)
    compiles = CompileLog()
    jax_log = logging.getLogger("jax")
    jax_log.addHandler(compiles)
    jax_log.setLevel(logging.DEBUG)
    jax_log.propagate = False  # collected per step, not printed

    line("start", jax=jax.__version__, backend=jax.default_backend(),
         devices=[device_label(d) for d in jax.devices()])
    if args.variant == "slots-on-device":
        keep_slots_on_device()

    from fwsurvey.kernels.tasks import discover
    from fwsurvey.kernels.transformer_lm import trax_impl

    spec = {**discover()["transformer_lm"].profile(args.profile), "device": args.device,
            "precision": "fp32",
            # Not under --out: what comes back from the device is a few files at most.
            "workdir": tempfile.mkdtemp(prefix=f"trax-probe-{args.variant}-")}
    t0 = time.perf_counter()
    data = trax_impl.load_data(spec)
    model = trax_impl.build_model(spec)
    loop = trax_impl.make_trainer(model, data, spec)
    trainer = loop._trainer_per_task[0]  # Trax 1.4.1: one optimizers.Trainer per task

    losses: list[Any] = []
    inner = loop._run_one_step

    def capture(*a: Any, **kw: Any) -> Any:  # Loop.run does not return the loss
        loss, stats = inner(*a, **kw)
        losses.append(loss)
        return loss, stats

    loop._run_one_step = capture

    def where() -> dict[str, Any]:
        return {"weights": placement(trainer.accelerated_model_with_loss.weights),
                "slots": placement(trainer._slots),
                "opt_params": placement(trainer._opt_params),
                "rng": placement(loop._rng), "memory": memory()}

    line("built", seconds=round(time.perf_counter() - t0, 2), n_devices=loop.n_devices,
         compile_messages=len(compiles.messages), **where())
    seconds = []
    for i in range(1, args.steps + 1):
        compiles.messages.clear()
        t0 = time.perf_counter()
        loop.run(1)
        jax.block_until_ready(trainer.accelerated_model_with_loss.weights)
        loss = float(np.mean(np.asarray(losses[-1]))) if losses else None
        seconds.append(time.perf_counter() - t0)
        placed = where()
        line("step", step=i, seconds=round(seconds[-1], 3), loss=loss,
             compile_messages=len(compiles.messages), messages=compiles.messages[:6], **placed)
        mem = placed["memory"]
        print(f"probe[{args.variant}] step {i}: {seconds[-1]:.2f} s, loss {loss}, "
              f"weights on {main_device(placed['weights'])}, "
              f"slots on {main_device(placed['slots'])}, "
              f"memory in use {mem['in_use_mb'] if mem else 'n/a'} MB", flush=True)
    faulthandler.cancel_dump_traceback_later()
    placed = where()
    runs_on, slots_on = main_device(placed["weights"]), main_device(placed["slots"])
    line("conclusion", runs_on=runs_on, slots_on=slots_on,
         step_seconds=[round(s, 3) for s in seconds])
    print(f"Trax's update step runs on: {runs_on} (slots on {slots_on}) "
          f"[variant {args.variant}]", flush=True)


if __name__ == "__main__":
    main()
