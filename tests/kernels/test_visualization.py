"""The visualization experiment: each framework logs its loss through its own API, and
kernels/loss_logging's checks read the event files back with TensorBoard's reader.

Tiny real trainings through the harness (PyTorch eager, Trax): the event files are read here
again, independently, and their values compared with the losses the harness recorded; the
checks rows must agree with what the files hold. A tampered loss record must fail the match,
and JAX, which has no visualization API of its own, is recorded as writing nothing.
"""

from __future__ import annotations

import pathlib
from collections import Counter

import pytest

from fwsurvey.kernels import harness
from fwsurvey.kernels.loss_logging import checks as logging_checks
from fwsurvey.kernels.tasks import discover

TASKS = discover()
SHORT = {"steps": 25, "warmup_steps": 2}


def run_short(framework: str, mode: str, workdir: pathlib.Path) -> dict:
    spec = {**TASKS["loss_logging"].profile("quick"), **SHORT, "workdir": str(workdir)}
    return harness.run({"framework": framework, "mode": mode, "spec": spec, "device": "cpu",
                        "module": TASKS["loss_logging"].impl_module(framework)})


def read_back(folder: pathlib.Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


@pytest.fixture(scope="module")
def pytorch_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pytorch")
    return workdir, run_short("pytorch", "torch-eager", workdir)


@pytest.fixture(scope="module")
def trax_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trax")
    return workdir, run_short("trax", "trax", workdir)


def rows(result: dict) -> dict[str, dict]:
    return {row["check"]: row for row in result["checks"]}


def test_pytorch_writes_the_step_losses_every_ten_steps(pytorch_run):
    workdir, result = pytorch_run
    assert result["status"] == "ok"
    points = read_back(workdir, "loss/train")
    assert [step for step, _ in points] == [10, 20]
    for step, value in points:
        assert value == pytest.approx(result["losses"][step - 1], rel=1e-6)
    got = rows(result)
    assert got["events_written"]["ok"] is True and got["events_written"]["value"] == 2.0
    assert got["loss_matches"]["ok"] is True and got["loss_matches"]["value"] == 2.0
    assert got["points_complete"]["ok"] is True and got["points_complete"]["value"] == 1.0
    assert got["tags"]["detail"] == ".: loss/train"


def test_trax_writes_the_mean_loss_since_its_last_log(trax_run):
    workdir, result = trax_run
    assert result["status"] == "ok"
    points = read_back(workdir / "train", "metrics/CategoryCrossEntropy")
    assert points, "Trax's Loop wrote no training loss"
    losses = result["losses"]
    # The harness ran Loop.run(1), run(2), then one run per window: the mean restarts at
    # each call and after each log.
    windows = Counter(row[0] for row in result["samples"]).values()
    starts = [0, 1, 3]
    for size in list(windows)[:-1]:
        starts.append(starts[-1] + size)
    assert logging_checks.run_starts({"warmup_steps": 2}, result) == starts
    previous = 0
    for step, value in points:
        begin = max(previous, max(s for s in starts if s < step))
        assert value == pytest.approx(sum(losses[begin:step]) / (step - begin), rel=1e-5)
        previous = step
    got = rows(result)
    assert got["events_written"]["ok"] is True
    assert got["events_written"]["value"] == float(len(points))
    assert got["loss_matches"]["ok"] is True
    assert got["points_complete"]["value"] == len(points) / 2  # steps 10 and 20 were asked
    assert "train: " in got["tags"]["detail"] and "eval: " in got["tags"]["detail"]


def test_a_loss_record_that_differs_from_the_files_fails_the_match(pytorch_run):
    workdir, result = pytorch_run
    spec = {**TASKS["loss_logging"].profile("quick"), **SHORT}
    tampered = {**result, "losses": [v + 0.01 for v in result["losses"]]}
    got = {r["check"]: r for r in logging_checks.checks("pytorch", "torch-eager", spec,
                                                        workdir, tampered)}
    assert got["events_written"]["ok"] is True
    assert got["loss_matches"]["ok"] is False


def test_no_event_files_means_nothing_written(tmp_path):
    spec = {**TASKS["loss_logging"].profile("quick"), **SHORT}
    got = {r["check"]: r for r in logging_checks.checks(
        "trax", "trax", spec, tmp_path, {"status": "ok", "losses": [2.0] * 25, "samples": []})}
    assert got["events_written"]["ok"] is False and got["events_written"]["value"] == 0.0
    assert got["loss_matches"]["ok"] is None
    assert got["points_complete"]["ok"] is False and got["points_complete"]["value"] == 0.0
    assert got["tags"]["detail"] == "no event files"


def test_jax_has_no_visualization_api_and_writes_nothing(tmp_path):
    [row] = logging_checks.checks("jax", "jax-jit", {}, tmp_path, {"status": "ok"})
    assert row["check"] == "events_written"
    assert row["ok"] is False and row["value"] == 0.0
    assert "no built-in visualization API" in row["detail"]
    assert "jax" in TASKS["loss_logging"].frameworks
