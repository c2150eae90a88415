"""Samples, not a number: windows of per-step samples, data/compute split, outcomes, time to
target, the fingerprint, and Trax timed inside one ``Loop.run(n)``."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from fwsurvey.config import load_config
from fwsurvey.kernels import stage
from fwsurvey.kernels.framework import DataClock
from fwsurvey.kernels.harness import window_sizes
from fwsurvey.kernels.records import fingerprint, job_records, outcome
from fwsurvey.kernels.runner import Job, run_job
from fwsurvey.kernels.stage import TrainOptions, TrainStage
from fwsurvey.kernels.trax_adapter import TraxAdapter
from fwsurvey.store import Store

REPO = Path(__file__).parent.parent.parent
SPEC = {"batch": 4, "steps": 16, "warmup_steps": 1, "metric": "accuracy", "target": 0.5,
        "task": "fake", "profile": "quick"}


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    # The harness subprocess imports tests.kernels.fake_impl from the repository root.
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def fake_job(behaviour: str | None = None, **spec) -> Job:
    return Job("fake", "jax", "jax-jit", "tests.kernels.fake_impl",
               {**SPEC, "behaviour": behaviour, **spec})


def test_three_windows_of_samples_split_into_data_and_compute_time():
    # 14 steady steps (16 - first - 1 warm-up) in 3 windows; each batch takes 20 ms to come.
    result = run_job(fake_job(data_sleep=0.02, compute_sleep=0.01))
    assert result["status"] == "ok" and result["windows"] == 3
    samples = result["samples"]
    assert [w for w, *_ in samples] == [1] * 5 + [2] * 5 + [3] * 4
    assert [s for _, s, *_ in samples] == [1, 2, 3, 4, 5] * 2 + [1, 2, 3, 4]
    for _, _, step_ms, data_ms in samples:
        assert 19 <= data_ms < step_ms  # the 20 ms wait is data time, the 10 ms the rest
        assert step_ms - data_ms >= 9
    assert result["data_ms_median"] == pytest.approx(
        statistics.median(d for *_, d in samples))
    assert result["data_ms_median"] + result["compute_ms_median"] == pytest.approx(
        result["step_median_ms"], rel=0.2)


def test_a_timeout_after_the_steady_phase_keeps_the_steady_samples(tmp_path, monkeypatch,
                                                                   write_config, run_stage):
    job = fake_job("hang_in_final_eval")
    job.timeouts["eval"] = 2
    result = run_job(job)
    assert (result["status"], result["phase"]) == ("timeout", "eval")
    assert "passed its 2 s limit" in result["error"]
    assert len(result["samples"]) == 14 and result["step_median_ms"] > 0
    assert len(result["losses"]) == 16  # every step's loss came with the steady event

    monkeypatch.setattr(stage, "plan", lambda config, options: [job])
    monkeypatch.setattr(stage, "run_job", lambda j: result)
    run_stage(load_config(write_config()), tmp_path / "s.db", TrainStage(TrainOptions()))
    store = Store(tmp_path / "s.db")
    [row] = store.query("SELECT * FROM kernel_runs")
    assert (row["status"], row["outcome"], row["windows"]) == ("timeout", "timeout", 3)
    assert row["step_median_ms"] == pytest.approx(result["step_median_ms"])
    stored = store.query("SELECT window, COUNT(*) AS n FROM kernel_samples GROUP BY window")
    assert [(r["window"], r["n"]) for r in stored] == [(1, 5), (2, 5), (3, 4)]


def test_the_evaluations_after_each_window_share_one_eval_limit():
    job = fake_job(eval_sleep=1.2)
    job.timeouts["eval"] = 3  # each evaluation fits; three together do not
    result = run_job(job)
    assert (result["status"], result["phase"]) == ("timeout", "eval")
    assert len(result["samples"]) == 14  # the third window was measured before its eval


def test_time_to_target_is_the_first_window_end_that_meets_it():
    # Quality step/16 meets 0.5 from step 8: windows end at steps 7, 12 and 16.
    result = run_job(fake_job("learns"))
    assert result["status"] == "ok"
    assert [e[0] for e in result["target_evals"]] == [7, 12, 16]
    assert result["steps_to_target"] == 12
    assert 0 < result["time_to_target_s"] < result["train_s"]


def test_a_dynamic_shape_job_ends_without_evaluating():
    # No quality target in the dynamic experiment: no evaluation (and its recompiles) at all,
    # where the same job as a training is evaluated after each of its three windows.
    job = fake_job("learns")
    job.experiment = "dynamic"
    result = run_job(job)
    assert result["status"] == "ok" and result["windows"] == 3
    assert (result["target_evals"], result["metrics"], result["eval_s"]) == ([], {}, 0.0)
    assert len(run_job(fake_job("learns"))["target_evals"]) == 3


@pytest.mark.parametrize("behaviour, status, expected", [
    ("crash_in_build", "crashed", "crashed"),
    ("low_accuracy", "ok", "missed_target"),
    (None, "ok", "ok"),
])
def test_a_failure_is_stored_as_the_outcome(behaviour, status, expected):
    job = fake_job(behaviour)
    result = run_job(job)
    assert result["status"] == status
    assert outcome(job, result) == expected
    [row, *_] = job_records(job, result, "2026-12-01T00:00:00+00:00")
    assert row.row["outcome"] == expected


def test_a_job_that_cannot_run_here_is_unsupported():
    job = fake_job()
    job.unsupported = "2 GPUs needed, 0 visible"
    assert outcome(job, run_job(job)) == "unsupported"


def test_a_gpu_job_without_a_gpu_backend_is_refused_before_training():
    # This machine's jaxlib is CPU-only: JAX would quietly train on the host.
    job = fake_job()
    job.device = "cuda"
    result = run_job(job)
    assert (result["status"], result["phase"]) == ("unsupported", "import")
    assert "has no GPU backend here" in result["error"]
    assert outcome(job, result) == "unsupported" and not result["samples"]


def test_the_fingerprint_changes_with_the_code_or_the_versions():
    job = fake_job()
    result = {"device_name": "cpu (x86_64, 2 cores)", "versions": {"jax": "0.10.2"}}
    base = fingerprint(job, result, "a" * 64)
    assert len(base) == 16 and base == fingerprint(job, dict(result), "a" * 64)
    assert fingerprint(job, result, "b" * 64) != base
    assert fingerprint(job, {**result, "versions": {"jax": "0.10.3"}}, "a" * 64) != base
    bf16 = fake_job()
    bf16.precision = "bf16"
    assert fingerprint(bf16, result, "a" * 64) != base


def test_windows_cut_the_steady_steps_evenly():
    assert window_sizes(14, 3) == [5, 5, 4]
    assert window_sizes(2, 3) == [1, 1]
    assert window_sizes(0, 3) == []


def test_the_data_clock_times_a_loader_and_a_generator_alike():
    clock = DataClock([1, 2, 3])  # iterated per epoch, as a DataLoader is
    assert list(clock) == [1, 2, 3] and list(clock) == [1, 2, 3]
    stream = DataClock(iter(range(5)))  # next() on it, as a generator is
    assert [next(stream), next(stream)] == [0, 1]
    assert stream.seconds >= 0 and clock.seconds >= 0


class FakeLoop:
    """What LoopStepper relies on in ``trax.supervised.training.Loop``: ``run(n)`` calls
    ``_run_one_step`` once per step, after a setup (summary writers) done once per call."""

    def __init__(self, data: DataClock):
        self.data, self.run_calls, self.step = data, [], 0

    def _run_one_step(self, task_index, task_changed):
        next(self.data)
        self.step += 1
        return 1.0 / self.step, {}

    def run(self, n_steps=1):
        self.run_calls.append(n_steps)
        for _ in range(n_steps):
            self._run_one_step(0, False)


def test_trax_steps_are_timed_inside_one_loop_run():
    clock = DataClock(iter(range(100)))
    loop = FakeLoop(clock)
    adapter = TraxAdapter()
    samples = adapter.timed_steps(loop, 7, clock)
    assert loop.run_calls == [7]  # one Loop.run(7), not seven Loop.run(1)
    assert [s.loss for s in samples] == pytest.approx([1 / n for n in range(1, 8)])
    assert all(s.step_s >= s.data_s >= 0 for s in samples)
    assert adapter.stepper(loop)() == pytest.approx(1 / 8)  # the same hook, once
    assert loop.run_calls == [7, 1]


def test_gpu_jobs_run_fp32_everywhere_bf16_apart_each_on_one_gpu():
    from fwsurvey.kernels.matrix import dynamic_jobs, train_jobs
    from fwsurvey.kernels.tasks import discover

    task = discover()["transformer_lm"]
    jobs = train_jobs([task], ["pytorch", "jax", "trax"], "full", "cuda", gpus=["2", "3"])
    shown = {(j.framework, j.mode, j.variant, j.precision) for j in jobs}
    assert {(f, p) for f, _, _, p in shown if p == "fp32"} == {
        ("pytorch", "fp32"), ("jax", "fp32"), ("trax", "fp32")}
    bf16 = {(f, v) for f, _, v, p in shown if p == "bf16"}
    assert bf16 == {(f, "bf16") for f in task.spec["bf16"]}
    assert {j.env["CUDA_VISIBLE_DEVICES"] for j in jobs} == {"2"}
    assert {j.code_sha256 for j in jobs if j.framework == "jax"} != {None}
    dynamic = dynamic_jobs(task, ["pytorch", "jax", "trax"], "full", "cuda", gpus=["2"])
    assert {j.precision for j in dynamic} == {"fp32"}
    assert all("CUDA_VISIBLE_DEVICES" not in j.env
               for j in train_jobs([task], ["jax"], "quick", "cpu"))
