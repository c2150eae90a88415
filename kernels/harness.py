"""Runs ONE (task, framework, mode) in this process and reports it phase by phase.

Started by :mod:`fwsurvey.kernels.runner` in a fresh subprocess::

    python -m fwsurvey.kernels.harness '<job as JSON>'

It prints one JSON object per line on stdout: ``{"event": "phase", "phase": ...}`` when a
phase starts (so the parent can apply a timeout per phase and knows where a killed run
stopped) and ``{"event": "result", ...}`` at the end. The implementation files contain
only what a user would write; everything that measures lives here, and what differs between
frameworks (the step, compile counts, memory, versions...) in each framework's adapter
(:mod:`fwsurvey.kernels.adapters`): this module never names a framework.

Timing: every step is synchronised by reading its loss back to the host (``float``), the
same for every framework, so a step's time includes the device work it queued.

A job with ``n_devices`` trains data parallel on that many devices with the framework's own
engine (its adapter's :class:`~fwsurvey.kernels.framework.DataParallel`); under ``torchrun``
every rank runs this module and only rank 0 reports.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import sys
import time
import traceback
from typing import Any

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.flops import device_peak_flops, transformer_flops_per_step
from fwsurvey.kernels.framework import FrameworkAdapter

#: Whether this process reports to the parent (False on the other ranks of a torchrun job).
REPORTING = True


def emit(event: str, **payload: Any) -> None:
    """One protocol line to the parent."""
    if not REPORTING:
        return
    sys.stdout.write(json.dumps({"event": event, **payload}, default=str) + "\n")
    sys.stdout.flush()


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """Median and the interquartile range's ends."""
    if len(values) < 2:
        v = values[0] if values else math.nan
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q1, q3


def check_resume(module: Any, adapter: FrameworkAdapter, data: Any, spec: dict[str, Any]
                 ) -> dict[str, Any]:
    """Restart from the checkpoints the training wrote: a fresh model and trainer on the
    same folder must pick up the saved step and take one more step."""
    try:
        model = module.build_model({**spec, "seed": spec["seed"] + 1})
        trainer = module.make_trainer(model, data, spec)
        step = adapter.resume_step(trainer)
        adapter.stepper(trainer)()
        return {"resume_status": "ok", "resumed_at_step": step, "resume_error": None}
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        frames = traceback.extract_tb(exc.__traceback__)
        # Name the framework's own line, not the array library's operator it tripped on.
        where = next((f for f in reversed(frames) if adapter.own_frame(f.filename)),
                     frames[-1])
        return {"resume_status": "failed", "resumed_at_step": None,
                "resume_error": f"{text[-500:]} (at {where.filename.split('site-packages/')[-1]}"
                                f":{where.lineno})"}


def run(job: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute the job, emitting phases; return the result record.

    ``result`` is filled as the job goes, so a caller still has the versions and device of
    a job that raised.
    """
    adapter, spec = ADAPTERS[job["framework"]], dict(job["spec"])
    spec["device"] = job["device"]
    spec["precision"] = job.get("precision", "fp32")
    result = result if result is not None else {}
    result.update({"status": "ok", "versions": {}})
    counter = adapter.compile_counter()

    emit("phase", phase="import")
    t0 = time.perf_counter()
    module = importlib.import_module(job["module"])
    parallel = None
    if job.get("n_devices"):
        parallel = adapter.data_parallel(job["n_devices"], job["device"])
        parallel.setup(spec)
    result["import_s"] = time.perf_counter() - t0
    result["versions"] = adapter.versions()
    counter.install()

    emit("phase", phase="data")
    t0 = time.perf_counter()
    data = module.load_data(spec)
    if parallel:
        data = parallel.shard_data(data)
    result["data_s"] = time.perf_counter() - t0

    emit("phase", phase="build")
    t0 = time.perf_counter()
    result["device_name"] = adapter.device_name(spec["device"])
    model = module.build_model(spec)
    if parallel:
        model = parallel.wrap_model(model)
    trainer = module.make_trainer(model, data, spec)
    if parallel:
        parallel.check_trainer(trainer)
    result["build_s"] = time.perf_counter() - t0
    result["n_params"] = adapter.count_params(model, trainer)
    step = adapter.stepper(trainer)

    losses: list[float] = []
    emit("phase", phase="first_step")
    t0 = time.perf_counter()
    losses.append(step())
    result["first_step_s"] = time.perf_counter() - t0

    emit("phase", phase="warmup")
    for _ in range(spec["warmup_steps"]):
        losses.append(step())

    timed = spec["steps"] - 1 - spec["warmup_steps"]
    emit("phase", phase="steady", steps=timed)
    compiles0, compile_s0 = counter.snapshot()
    comm0 = parallel.comm_seconds() if parallel else None
    times = []
    for _ in range(timed):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    compiles1, compile_s1 = counter.snapshot()
    if parallel:
        comm1 = parallel.comm_seconds()
        result["n_devices"] = parallel.n_devices
        result["comm_share"] = ((comm1 - comm0) / sum(times)
                                if comm0 is not None and comm1 is not None and times else None)
        losses = parallel.global_losses(losses)
    result["compiles_timed"] = compiles1 - compiles0
    result["compile_s_timed"] = compile_s1 - compile_s0
    result["compile_s_total"] = compile_s1
    result["compiles_total"] = compiles1

    metrics: dict[str, float] = {}
    if not parallel:  # a scaling run measures steps and loss parity, not quality
        emit("phase", phase="eval")
        t0 = time.perf_counter()
        metrics = module.evaluate(model, trainer, data, spec)
        result["eval_s"] = time.perf_counter() - t0

    if "checkpoint_every" in spec:
        emit("phase", phase="resume")
        result.update(check_resume(module, adapter, data, spec))

    median, q1, q3 = quantiles(times)
    result.update({
        "timed_steps": timed,
        "step_median_ms": median * 1000,
        "step_mean_ms": statistics.fmean(times) * 1000 if times else None,
        "step_iqr_ms": (q3 - q1) * 1000,
        "step_times_ms": [t * 1000 for t in times],
        "losses": losses,
        "metrics": metrics,
    })
    # Tokens for language models (the mean length when lengths vary), samples otherwise.
    items = spec.get("tokens_per_step") or spec["batch"] * spec.get("seq_len", 1)
    result["throughput"] = items / median if median else None
    result["throughput_unit"] = "tokens/s" if "seq_len" in spec else "samples/s"
    result["peak_mem_mb"], result["mem_kind"] = adapter.peak_memory_mb(job["device"])
    if spec.get("flops_model") == "transformer" and "seq_lens" not in spec:
        flops = transformer_flops_per_step(spec)
        result["flops_per_step"] = flops
        peak = device_peak_flops(result["device_name"], job.get("precision", "fp32"))
        n_devices = parallel.n_devices if parallel else 1
        result["mfu"] = flops / median / (peak * n_devices) if (peak and median) else None
    if parallel:
        parallel.close()
    return result


def main() -> None:
    global REPORTING
    job = json.loads(sys.argv[1])
    if job["device"] == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # Under a launcher that starts N processes (torchrun), one of them reports.
    REPORTING = ADAPTERS[job["framework"]].reporting(job.get("n_devices"))
    partial: dict[str, Any] = {}
    try:
        result = run(job, partial)
    except Exception as exc:  # MemoryError included
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        oom = (isinstance(exc, MemoryError) or "out of memory" in text.lower()
               or "RESOURCE_EXHAUSTED" in text)
        emit("result", status="oom" if oom else "crashed", error=text[-2000:],
             traceback=traceback.format_exc()[-4000:], versions=partial.get("versions"),
             device_name=partial.get("device_name"))
        if job.get("n_devices"):
            sys.exit(1)  # torchrun then stops the other ranks instead of leaving them waiting
        return
    emit("result", **result)


if __name__ == "__main__":
    main()
