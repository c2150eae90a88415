"""The harness and runner: phases, timeouts, crashes, and what reaches the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwsurvey.config import ConfigError, load_config
from fwsurvey.kernels import stage
from fwsurvey.kernels.runner import Job, run_job
from fwsurvey.kernels.stage import TrainOptions, TrainStage
from fwsurvey.store import Store

REPO = Path(__file__).parent.parent.parent
SPEC = {"batch": 4, "steps": 6, "warmup_steps": 2, "metric": "accuracy", "target": 0.5,
        "task": "fake", "profile": "quick"}


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    # The harness subprocess imports tests.kernels.fake_impl from the repository root.
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def fake_job(behaviour: str | None = None, **timeouts) -> Job:
    job = Job("fake", "jax", "jax-jit", "tests.kernels.fake_impl",
              {**SPEC, "behaviour": behaviour})
    job.timeouts.update(timeouts)
    return job


def test_a_finished_job_reports_every_measurement():
    result = run_job(fake_job())
    assert result["status"] == "ok" and result["phase"] == "done"
    assert result["losses"] == pytest.approx([1 / n for n in range(1, 7)])
    assert result["timed_steps"] == 3 and len(result["step_times_ms"]) == 3
    assert result["metrics"] == {"accuracy": 1.0}
    assert result["throughput_unit"] == "samples/s"
    assert result["peak_mem_mb"] > 0 and result["mem_kind"] == "rss"


def test_a_hang_in_steady_state_is_a_timeout_in_that_phase():
    result = run_job(fake_job("hang_in_steady", steady=2))
    assert result["status"] == "timeout"
    assert result["phase"] == "steady"
    assert "passed its 2 s limit" in result["error"]
    assert result["wall_s"] < 60


def test_a_crash_records_the_phase_and_the_error():
    result = run_job(fake_job("crash_in_build"))
    assert (result["status"], result["phase"]) == ("crashed", "build")
    assert "RuntimeError: model does not fit the spec" in result["error"]


def test_a_process_that_dies_is_recorded_with_its_exit_code():
    result = run_job(fake_job("die_in_warmup"))
    assert (result["status"], result["phase"]) == ("crashed", "warmup")
    assert "exited with 9" in result["error"]


def test_train_stage_stores_ok_and_failed_jobs(write_config, tmp_path, monkeypatch,
                                               run_stage):
    jobs = [fake_job(), fake_job("crash_in_build")]
    jobs[1].variant = "broken"
    monkeypatch.setattr(stage, "plan", lambda config, options: jobs)
    config = load_config(write_config())
    [outcome] = run_stage(config, tmp_path / "s.db", TrainStage(options=TrainOptions()))
    assert (outcome.stage, outcome.source, outcome.status, outcome.items_ok) == (
        "train", "kernels/fake", "partial", 1)
    assert outcome.reason == "1 of 2 jobs did not finish"

    store = Store(tmp_path / "s.db")
    rows = {r["variant"]: r for r in store.query("SELECT * FROM kernel_runs")}
    assert rows["default"]["status"] == "ok" and rows["default"]["reached_target"] == 1
    assert rows["default"]["final_loss"] == pytest.approx(sum(1 / n for n in range(1, 7)) / 6)
    assert rows["broken"]["status"] == "crashed"
    assert rows["broken"]["phase_reached"] == "build"
    curve = store.query("SELECT step, loss FROM kernel_curves WHERE job = ? ORDER BY step",
                        [jobs[0].key])
    assert [c["step"] for c in curve] == [1, 2, 3, 4, 5, 6]
    [error] = store.query("SELECT * FROM item_errors")
    assert error["item"] == jobs[1].key and error["kind"] == "crashed"
    assert error["message"].startswith("crashed in phase build: RuntimeError: model does not")


def test_a_run_with_a_failed_job_is_degraded(write_config, tmp_path, monkeypatch):
    from fwsurvey.pipeline import run_survey

    jobs = [fake_job(), fake_job("crash_in_build")]
    jobs[1].variant = "broken"
    monkeypatch.setattr(stage, "plan", lambda config, options: jobs)
    config = load_config(write_config())
    result = run_survey(config, tmp_path / "s.db", stages=[TrainStage(options=TrainOptions())])
    assert result.status == "degraded"
    [outcome] = result.outcomes
    assert (outcome.source, outcome.status, outcome.items_ok) == ("kernels/fake", "partial", 1)


def test_report_shows_the_trainings_and_what_failed(write_config, tmp_path, monkeypatch):
    from fwsurvey.pipeline import run_survey
    from fwsurvey.reports.render import render_report

    jobs = [fake_job(), fake_job("crash_in_build")]
    jobs[1].variant = "broken"
    monkeypatch.setattr(stage, "plan", lambda config, options: jobs)
    config = load_config(write_config())
    run_survey(config, tmp_path / "s.db", stages=[TrainStage(options=TrainOptions())])
    store = Store(tmp_path / "s.db")
    text = render_report(store, config, tmp_path / "report").read_text()
    assert "#### `fake`" in text
    assert "| JAX | jax-jit | `ok` |" in text
    assert "| JAX | jax-jit | `crashed` in build |" in text
    assert "`fake/jax/jax-jit/train/broken`: `crashed` in phase build" in text
    assert "Measured on cpu" in text  # the CPU-only caveat


def test_disabled_kernels_are_skipped_with_the_reason(write_config, tmp_path, run_stage):
    config = load_config(write_config())  # the test config has [kernels] enabled = false
    [outcome] = run_stage(config, tmp_path / "s.db", TrainStage())
    assert (outcome.stage, outcome.source, outcome.status) == ("train", "kernels", "skipped")
    assert outcome.reason == "disabled in the configuration ([kernels] enabled)"


def with_kernels(write_config, lines: str):
    """The test config with ``lines`` added to its ``[kernels]`` table."""
    path = write_config()
    path.write_text(path.read_text().replace("[kernels]\nenabled = false",
                                             f"[kernels]\nenabled = false\n{lines}"))
    return load_config(path)


@pytest.mark.parametrize("lines, message", [
    ("profil = 'quick'", "kernels.profil: unknown key (misspelt?)"),
    ("profile = 'fast'", "kernels.profile: expected one of quick, full, got 'fast'"),
    ("device = 3", "kernels.device: expected a string, got 3"),
    ("tasks = 'mlp_digits'", "kernels.tasks: expected a list, got 'mlp_digits'"),
    ("frameworks = ['pytroch']", "kernels.frameworks[0]: 'pytroch' is not a framework with an "
                                 "adapter; known: jax, pytorch, trax"),
    ("tasks = ['mlp_digits', 'mlp_digit']", "kernels.tasks[1]: 'mlp_digit' is not a task; "
                                            "known: adaptive_depth, cnn_digits, "
                                            "custom_checkpoint, hybrid_numpy, hybrid_pure, "
                                            "loss_logging, lstm_text, mlp_digits, "
                                            "text_pipeline, transformer_lm, tree_recursion"),
    ("experiments = ['trian']", "kernels.experiments[0]: expected one of 'train' or "
                                "'dynamic', got 'trian'"),
    ("scaling = [2, 0]", "kernels.scaling: device counts must be positive integers, got 0"),
])
def test_a_bad_kernels_table_is_one_line_naming_the_key(write_config, lines, message):
    config = with_kernels(write_config, lines)
    with pytest.raises(ConfigError) as info:
        TrainStage().check(config)
    assert str(info.value) == f"fwsurvey.toml: {message}"
    with pytest.raises(ConfigError):
        stage.options_from_config(config)  # what `fwsurvey run` checks before it starts


def test_the_kernels_table_becomes_the_options(write_config):
    config = with_kernels(write_config, "profile = 'full'\nframeworks = ['jax']\n"
                                        "tasks = ['transformer_lm']\nscaling = [4, 2]")
    TrainStage().check(config)
    assert stage.options_from_config(config) == TrainOptions(
        profile="full", tasks=("transformer_lm",), frameworks=("jax",), enabled=False,
        scaling=(1, 2, 4))
