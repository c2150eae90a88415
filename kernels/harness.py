"""Runs ONE (task, framework, mode) in this process and reports it phase by phase.

Started by :mod:`fwsurvey.kernels.runner` in a fresh subprocess::

    python -m fwsurvey.kernels.harness '<job as JSON>'

It prints one JSON object per line on stdout: ``{"event": "phase", "phase": ...}`` when a
phase starts (so the parent can apply a timeout per phase and knows where a killed run
stopped), ``{"event": "window", ...}`` with each measurement window's per-step samples,
``{"event": "steady", ...}`` with the steady statistics before the final evaluation (so a
later timeout keeps them), and ``{"event": "result", ...}`` at the end. The implementation
files contain only what a user would write; everything that measures lives here, what the
harness applies around them (device placement, compilation, precision: contract A) and
what differs between frameworks (the step, compile counts, memory, versions...) in each
framework's adapter (:mod:`fwsurvey.kernels.adapters`): this module never names a framework.

Timing: every step is synchronised by reading its loss back to the host (``float``), the
same for every framework, so a step's time includes the device work it queued. The
training stream is wrapped in a :class:`~fwsurvey.kernels.framework.DataClock` before the
trainer is made, so each step's data time (seconds inside the stream's ``__next__``) is
split from its compute time.

A job that cannot measure what its row would say is refused: ``unsupported`` when the
framework has no backend for the device here (a CPU-only jaxlib asked for ``cuda``), before
anything trains; ``wrong_device`` when the built parameters live on the host although a GPU
was asked for.

A job with ``n_devices`` trains data parallel on that many devices with the framework's own
engine (its adapter's :class:`~fwsurvey.kernels.framework.DataParallel`); under ``torchrun``
every rank runs this module and only rank 0 reports.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any

from fwsurvey import frames as frame_lookup
from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.flops import device_peak_flops, transformer_flops_per_step
from fwsurvey.kernels.framework import DataClock, FrameworkAdapter, StepSample

#: Whether this process reports to the parent (False on the other ranks of a torchrun job).
REPORTING = True

#: Measurement windows of the steady phase, unless the job's spec says ``windows``.
WINDOWS = 3
#: Experiments whose jobs end without a final evaluation: a dynamic-shape run has no quality
#: target (its model and data are the train job's, evaluated there), and evaluating it would
#: add the eval graph's recompiles to the run's time for nothing a verdict reads.
NO_FINAL_EVAL = ("dynamic",)


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


class Refused(Exception):
    """The job cannot measure what its row would say; stored with :attr:`status`
    (``unsupported``: no backend for the device here; ``wrong_device``: built on another
    device than the one asked for)."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def target_reached(spec: dict[str, Any], metrics: dict[str, float]) -> bool | None:
    """Whether ``metrics`` meet the task's quality target (None: no target or no value)."""
    value = metrics.get(spec.get("metric", ""))
    if value is None or spec.get("target") is None:
        return None
    if spec.get("target_mode") == "max":  # the metric must end at or below the target
        return value <= spec["target"]
    return value >= spec["target"]


def window_sizes(timed: int, windows: int) -> list[int]:
    """``timed`` steady steps cut into ``windows`` windows as equal as can be (the first
    ones one step longer), fewer windows when there are fewer steps than windows."""
    windows = max(1, min(windows, timed))
    if timed <= 0:
        return []
    base, extra = divmod(timed, windows)
    return [base + (1 if i < extra else 0) for i in range(windows)]


def check_resume(module: Any, adapter: FrameworkAdapter, data: Any, spec: dict[str, Any]
                 ) -> dict[str, Any]:
    """Restart from the checkpoints the training wrote: a fresh model and trainer on the
    same folder must pick up the saved step and take one more step."""
    try:
        model = adapter.prepare_model(module.build_model({**spec, "seed": spec["seed"] + 1}),
                                      spec)
        trainer = module.make_trainer(model, data, spec)
        step = adapter.resume_step(trainer)
        with adapter.precision_context(spec):
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


class Training:
    """The steps of one job, timed, with the training time (evaluation excluded) so far."""

    def __init__(self, adapter: FrameworkAdapter, trainer: Any, spec: dict[str, Any],
                 clock: DataClock | None):
        self.adapter, self.trainer, self.spec, self.clock = adapter, trainer, spec, clock
        self.losses: list[float] = []
        self.train_s = 0.0
        self.steps_done = 0

    def steps(self, n: int) -> list[StepSample]:
        if n <= 0:
            return []
        with self.adapter.precision_context(self.spec):
            samples = self.adapter.timed_steps(self.trainer, n, self.clock)
        self.losses += [s.loss for s in samples]
        self.train_s += sum(s.step_s for s in samples)
        self.steps_done += len(samples)
        return samples


def steady_summary(spec: dict[str, Any], samples: list[StepSample], training: Training,
                   ) -> dict[str, Any]:
    """The steady phase's statistics over every window's steps.

    Throughput: items per step over the median step for fixed shapes; for varying shapes
    (``seq_lens``) the expected items of all training steps over their total time, from
    the first step on, so each new shape's compile counts where a user pays it.
    """
    times = [s.step_s for s in samples]
    median, q1, q3 = quantiles(times)
    summary: dict[str, Any] = {
        "timed_steps": len(samples),
        "step_median_ms": median * 1000 if times else None,
        "step_mean_ms": statistics.fmean(times) * 1000 if times else None,
        "step_iqr_ms": (q3 - q1) * 1000 if times else None,
        "step_times_ms": [t * 1000 for t in times],
        "data_ms_median": (statistics.median(s.data_s for s in samples) * 1000
                           if samples else None),
        "compute_ms_median": (statistics.median(s.compute_s for s in samples) * 1000
                              if samples else None),
        "train_s": training.train_s,
    }
    # Tokens for language models (the mean length when lengths vary), samples otherwise.
    items = spec.get("tokens_per_step") or spec["batch"] * spec.get("seq_len", 1)
    if "seq_lens" in spec:
        summary["throughput"] = (items * training.steps_done / training.train_s
                                 if training.train_s else None)
    else:
        summary["throughput"] = items / median if times and median else None
    summary["throughput_unit"] = "tokens/s" if ("seq_len" in spec or "seq_lens" in spec) \
        else "samples/s"
    return summary


def run(job: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute the job, emitting phases; return the result record.

    ``result`` is filled as the job goes, so a caller still has the versions, the device
    and the steady measurements of a job that raised later.

    The steps: one first step (compilation), ``warmup_steps``, then the steady steps cut
    into ``windows`` measurement windows (at least 3: each window's median is one sample
    of run-to-run variation; every step's time, split into data and compute time, is
    reported). After each window the samples are emitted (a ``window`` event), and the
    steady statistics before the final evaluation (a ``steady`` event), so a timeout in
    a later phase keeps them.

    Time to target, MLPerf style: a training job with a quality target is evaluated at the
    end of every window (the tasks' evaluations take seconds); ``time_to_target_s`` is the
    training time up to the first evaluation that meets the target (every step from the
    first, compilation and data included; the evaluations themselves excluded) and
    ``steps_to_target`` the steps run by then. Evaluating only at window ends makes both an
    upper bound whose resolution is one window: the target was first met at most one
    window earlier. The last window's evaluation is the job's final quality.
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
    result["versions"] = adapter.versions()
    refusal = adapter.check_backend(job["device"])
    if refusal:
        raise Refused("unsupported", refusal)
    parallel = None
    if job.get("n_devices"):
        parallel = adapter.data_parallel(job["n_devices"], job["device"])
        parallel.setup(spec)
    result["import_s"] = time.perf_counter() - t0
    counter.install()

    emit("phase", phase="data")
    t0 = time.perf_counter()
    data = module.load_data(spec)
    if parallel:
        data = parallel.shard_data(data)
    if isinstance(data, dict):
        data = adapter.place_data(data, spec)
    clock = None
    if isinstance(data, dict) and data.get("train") is not None:
        clock = DataClock(data["train"])
        data = {**data, "train": clock}
    result["data_s"] = time.perf_counter() - t0

    emit("phase", phase="build")
    t0 = time.perf_counter()
    result["device_name"] = adapter.device_name(spec["device"])
    model = adapter.prepare_model(module.build_model(spec), spec)
    if parallel:
        model = parallel.wrap_model(model)
    trainer = module.make_trainer(model, data, spec)
    if parallel:
        parallel.check_trainer(trainer)
    result["build_s"] = time.perf_counter() - t0
    result["n_params"] = adapter.count_params(model, trainer)
    platform = adapter.param_platform(model, trainer)
    result["param_platform"] = platform
    if job["device"] != "cpu" and platform == "cpu":
        raise Refused("wrong_device", f"the job asked for {job['device']} but the trained "
                                      "parameters live on the host (cpu) after the build")

    training = Training(adapter, trainer, spec, clock)
    emit("phase", phase="first_step")
    [first] = training.steps(1)
    result["first_step_s"] = first.step_s

    emit("phase", phase="warmup")
    training.steps(spec["warmup_steps"])

    sizes = window_sizes(spec["steps"] - 1 - spec["warmup_steps"],
                         spec.get("windows", WINDOWS))
    experiment = job.get("experiment", "train")
    per_window_eval = (not parallel and experiment == "train"
                       and spec.get("target") is not None and "seq_lens" not in spec)
    comm0 = parallel.comm_seconds() if parallel else None
    steady: list[StepSample] = []
    samples: list[list[float]] = []
    compiles_timed, compile_s_timed = 0, 0.0
    metrics: dict[str, float] = {}
    result.update({"eval_s": 0.0, "time_to_target_s": None, "steps_to_target": None,
                   "target_evals": []})
    if not sizes:
        result.update(steady_summary(spec, steady, training))
        emit("steady", **_steady_payload(result, training))
    for k, size in enumerate(sizes, 1):
        emit("phase", phase="steady", window=k, windows=len(sizes), steps=size)
        compiles0, compile_s0 = counter.snapshot()
        window = training.steps(size)
        compiles1, compile_s1 = counter.snapshot()
        compiles_timed += compiles1 - compiles0
        compile_s_timed += compile_s1 - compile_s0
        steady += window
        rows = [[k, i, s.step_s * 1000, s.data_s * 1000] for i, s in enumerate(window, 1)]
        samples += rows
        emit("window", window=k, samples=rows)
        last = k == len(sizes)
        if last:
            compiles_total, compile_s_total = counter.snapshot()
            result.update({"compiles_timed": compiles_timed, "compile_s_timed": compile_s_timed,
                           "compiles_total": compiles_total,
                           "compile_s_total": compile_s_total,
                           "windows": len(sizes), "samples": samples})
            result.update(steady_summary(spec, steady, training))
            if parallel:
                comm1 = parallel.comm_seconds()
                result["n_devices"] = parallel.n_devices
                result["comm_share"] = ((comm1 - comm0) / sum(s.step_s for s in steady)
                                        if comm0 is not None and comm1 is not None and steady
                                        else None)
            emit("steady", **_steady_payload(result, training))
        if per_window_eval or (last and not parallel and experiment not in NO_FINAL_EVAL):
            # A scaling run measures steps and loss parity, not quality; a dynamic-shape run
            # measures throughput with its recompiles (its quality is the train job's).
            emit("phase", phase="eval", window=k)
            t0 = time.perf_counter()
            with adapter.precision_context(spec):
                metrics = module.evaluate(model, trainer, data, spec)
            result["eval_s"] += time.perf_counter() - t0
            reached = target_reached(spec, metrics)
            result["target_evals"].append([training.steps_done, training.train_s,
                                           metrics.get(spec.get("metric", ""))])
            if per_window_eval and reached and result["time_to_target_s"] is None:
                result["time_to_target_s"] = training.train_s
                result["steps_to_target"] = training.steps_done

    if "checkpoint_every" in spec:
        emit("phase", phase="resume")
        result.update(check_resume(module, adapter, data, spec))

    losses = training.losses
    if parallel:
        losses = parallel.global_losses(losses)
    result.update({"losses": losses, "metrics": metrics})
    result["peak_mem_mb"], result["mem_kind"] = adapter.peak_memory_mb(job["device"])
    median = result.get("step_median_ms")
    if spec.get("flops_model") == "transformer" and "seq_lens" not in spec:
        flops = transformer_flops_per_step(spec)
        result["flops_per_step"] = flops
        arithmetic = adapter.matmul_precision(spec["precision"], job["device"])
        result["matmul_precision"] = arithmetic
        peak = device_peak_flops(result["device_name"], arithmetic)
        n_devices = parallel.n_devices if parallel else 1
        result["mfu"] = (flops / (median / 1000) / (peak * n_devices)
                         if (peak and median) else None)
    else:
        result["matmul_precision"] = adapter.matmul_precision(spec["precision"], job["device"])
    result["graph_breaks"] = adapter.graph_breaks()
    if parallel:
        parallel.close()
    else:
        result["checks"] = run_checks(job, spec, result, announce=True)
        deploy_checks = run_deploy(job, spec, adapter, data, model, trainer)
        if deploy_checks:
            result["checks"] = (result["checks"] or []) + deploy_checks
        variant_checks = run_variants(job, spec, adapter, data, model, trainer)
        if variant_checks:
            result["checks"] = (result["checks"] or []) + variant_checks
    return result


#: The keys of one check a task's ``checks()`` returns (``kernel_checks``' columns).
CHECK_KEYS = ("check", "ok", "value", "unit", "detail")


def run_checks(job: dict[str, Any], spec: dict[str, Any], result: dict[str, Any],
               announce: bool = False) -> list[dict[str, Any]] | None:
    """What the task's own ``checks.py`` observes in this job, or None when it has none.

    ``checks.py`` sits next to the implementation (``kernels/<task>/checks.py``): harness
    code of the task (what its experiment records: did recursion run, what padding it
    needed...), never a scored file. Its ``checks(framework, mode, spec, workdir, result)``
    returns a list of ``{"check", "ok", "value", "unit", "detail"}``; each becomes one
    ``kernel_checks`` row. A ``checks()`` that raises (or returns something else) is one
    check named ``checks`` with ``ok`` False and the error: the job's outcome stays what
    the training made it. ``announce``: a ``checks`` phase is emitted first (its own
    timeout; not after a failure, whose phase is where the job stopped).
    """
    name = job["module"].rpartition(".")[0] + ".checks"
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    if announce:
        emit("phase", phase="checks")
    try:
        module = importlib.import_module(name)
        workdir = pathlib.Path(spec.get("workdir") or tempfile.gettempdir())
        found = module.checks(job["framework"], job.get("mode", ""), spec, workdir, result)
        checks = []
        for entry in found:
            unknown = set(entry) - set(CHECK_KEYS)
            if "check" not in entry or unknown:
                raise ValueError(f"a check needs 'check' and only {CHECK_KEYS}: {entry!r}")
            value = entry.get("value")
            ok = entry.get("ok")
            checks.append({"check": str(entry["check"]),
                           "ok": None if ok is None else bool(ok),
                           "value": None if value is None else float(value),
                           "unit": entry.get("unit"), "detail": entry.get("detail")})
        return checks
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return [{"check": "checks", "ok": False, "value": None, "unit": None,
                 "detail": f"checks() raised: {text[-1000:]}"}]


def run_variants(job: dict[str, Any], spec: dict[str, Any], adapter: FrameworkAdapter,
                 data: Any, model: Any, trainer: Any) -> list[dict[str, Any]] | None:
    """Modular changes (issue #14 §4): train each variant file of the job's task a few steps
    in this process, on the data already loaded (:mod:`fwsurvey.kernels.variants`); one
    ``variant.<edit>`` check per variant (and ``variant.<edit>.changed``).

    Only in the framework's reference job: its adapter's first mode the task runs (a spec's
    ``modes`` may leave some out), a training job in fp32, so each variant trains once per
    framework. None when the job is not that or the task has no variants; a failure of the
    whole hook is one ``variants`` check with the error.
    """
    runs = [m for m in adapter.mode_names if m in (spec.get("modes") or adapter.mode_names)]
    if (job.get("experiment", "train") != "train" or not runs or job.get("mode") != runs[0]
            or spec.get("precision", "fp32") != "fp32"):
        return None
    from fwsurvey.kernels.variants import KERNELS_DIR, train_variants

    task = job.get("task") or spec.get("task")  # a job run in-process may name it in its spec
    if not task or not (KERNELS_DIR / task / "variants").is_dir():
        return None
    job = {**job, "task": task}
    try:  # each variant is its own phase (variant.<edit>), under the runner's phase limit
        return train_variants(job, spec, data, model, trainer, adapter,
                              announce=lambda edit: emit("phase", phase=f"variant.{edit}"))
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return [{"check": "variants", "ok": False, "value": None, "unit": None,
                 "detail": f"variants raised: {text[-1000:]}"}]


def run_deploy(job: dict[str, Any], spec: dict[str, Any], adapter: FrameworkAdapter,
               data: Any, model: Any, trainer: Any) -> list[dict[str, Any]] | None:
    """Deployment (issue #14 §2): export the model this job trained by the task's
    ``<framework>_deploy.py`` and run it in each target runtime
    (:mod:`fwsurvey.kernels.deploy.driver`); ``deploy.<path>.*`` checks.

    Only where the task's spec has a ``[deploy]`` table, in the framework's reference job
    (its adapter's first mode, a CPU training job in fp32: the targets are CPU runtimes), so
    each model deploys once per framework. A failure of the whole hook is one ``deploy``
    check with the error.
    """
    if (not spec.get("deploy") or job.get("experiment", "train") != "train"
            or job.get("mode") != adapter.modes[0].name or job["device"] != "cpu"
            or spec.get("precision", "fp32") != "fp32"):
        return None
    emit("phase", phase="deploy")
    try:
        from fwsurvey.kernels.deploy.driver import deploy

        return deploy(job["framework"], job["module"], spec, model, trainer, data)
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return [{"check": "deploy", "ok": False, "value": None, "unit": None,
                 "detail": f"deploy raised: {text[-1000:]}"}]


def _steady_payload(result: dict[str, Any], training: Training) -> dict[str, Any]:
    """What the ``steady`` event carries: everything measured so far but the samples (sent
    window by window), with the losses of every step so far."""
    return {**{k: v for k, v in result.items() if k not in ("samples", "status")},
            "losses": list(training.losses)}


def main() -> None:
    global REPORTING
    job = json.loads(sys.argv[1])
    # Answers the import-time frame lookups of synthetic files at once (see fwsurvey/frames.py):
    # same results, a fraction of Trax's import time. Before any framework is imported.
    frame_lookup.install()
    if job["device"] == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # Under a launcher that starts N processes (torchrun), one of them reports.
    REPORTING = ADAPTERS[job["framework"]].reporting(job.get("n_devices"))
    partial: dict[str, Any] = {}
    try:
        result = run(job, partial)
    except Refused as exc:
        emit("result", **{**partial, "status": exc.status, "error": str(exc)})
        return
    except Exception as exc:  # MemoryError included
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        oom = (isinstance(exc, MemoryError) or "out of memory" in text.lower()
               or "RESOURCE_EXHAUSTED" in text)
        # What was measured before the failure (the steady windows) is kept.
        failed = {**partial, "status": "oom" if oom else "crashed", "error": text[-2000:],
                  "traceback": traceback.format_exc()[-4000:]}
        if not job.get("n_devices") and not oom:
            # Cheap, and what an experiment most needs to see: the breaks before the crash,
            # and the task's checks of a job that did not run through (e.g. "runs": no).
            with contextlib.suppress(Exception):
                failed["graph_breaks"] = ADAPTERS[job["framework"]].graph_breaks()
            spec = {**job["spec"], "device": job["device"],
                    "precision": job.get("precision", "fp32")}
            failed["checks"] = run_checks(job, spec, failed)
        emit("result", **failed)
        if job.get("n_devices"):
            sys.exit(1)  # torchrun then stops the other ranks instead of leaving them waiting
        return
    emit("result", **result)


if __name__ == "__main__":
    main()
