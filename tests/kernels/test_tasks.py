"""The paired implementations: each trains (its loss falls), and pairs match in size.

Each implementation runs in-process through the harness, with the quick profile shortened
to a few dozen steps.
"""

from __future__ import annotations

import statistics

import pytest

from fwsurvey.kernels import harness
from fwsurvey.kernels.adapters import MODES
from fwsurvey.kernels.flops import transformer_params
from fwsurvey.kernels.matrix import dynamic_jobs, train_jobs
from fwsurvey.kernels.tasks import discover

TASKS = discover()
#: The reference trainings; an experiment's tasks (issue #14) are trained by their own test
#: files (tests/kernels/test_recursion.py, test_hybrid.py, test_visualization.py).
REFERENCE = sorted(t for t in TASKS if TASKS[t].spec.get("experiment", "train") == "train")
EXPERIMENTS = {"tree_recursion": "recursion", "adaptive_depth": "recursion",
               "hybrid_numpy": "hybrid", "hybrid_pure": "hybrid",
               "loss_logging": "visualization"}
PAIRS = [(task, fw) for task in REFERENCE for fw in TASKS[task].frameworks]
SHORT = {"steps": 40, "warmup_steps": 2}


def run_short(task: str, framework: str, tmp_path, **overrides):
    spec = {**TASKS[task].profile("quick"), **SHORT, "workdir": str(tmp_path), **overrides}
    job = {"framework": framework, "module": TASKS[task].impl_module(framework),
           "spec": spec, "device": "cpu"}
    return harness.run(job)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every implementation, trained briefly once for the whole module."""
    return {(task, fw): run_short(task, fw, tmp_path_factory.mktemp(f"{task}-{fw}"))
            for task, fw in PAIRS}


def test_every_task_is_paired():
    assert REFERENCE == sorted({"mlp_digits", "cnn_digits", "lstm_text", "transformer_lm",
                                "custom_checkpoint", "text_pipeline"})
    assert {t: TASKS[t].spec["experiment"] for t in set(TASKS) - set(REFERENCE)} == EXPERIMENTS
    for task in TASKS.values():
        assert {"pytorch", "trax"} <= set(task.frameworks), task.name
    assert TASKS["transformer_lm"].frameworks == ("jax", "pytorch", "trax")
    assert set(MODES) == {"pytorch", "trax", "jax"}


@pytest.mark.parametrize("task, framework", PAIRS)
def test_training_reduces_the_loss(results, task, framework):
    result = results[(task, framework)]
    losses = result["losses"]
    assert len(losses) == SHORT["steps"]
    assert statistics.fmean(losses[-5:]) < 0.8 * losses[0], (losses[0], losses[-5:])
    assert result["metrics"], "evaluation returned no metric"


@pytest.mark.parametrize("task", REFERENCE)
def test_paired_models_match_in_parameter_count(results, task):
    counts = {fw: results[(task, fw)]["n_params"] for fw in TASKS[task].frameworks}
    reference = counts["pytorch"]
    for count in counts.values():
        assert abs(count - reference) / reference <= 0.01, counts


def test_flops_model_counts_the_same_parameters_as_the_real_models(results):
    spec = TASKS["transformer_lm"].profile("quick")
    assert sum(transformer_params(spec).values()) == results[("transformer_lm", "pytorch")][
        "n_params"]


def test_bucketing_bounds_jax_recompilations():
    """Exact lengths compile once per new length; bucketing once per bucket."""
    task = TASKS["transformer_lm"]
    jobs = {j.variant: j for j in dynamic_jobs(task, ["jax"], "quick", "cpu")}
    compiles = {}
    for variant in ("exact-lengths", "bucketed"):
        job = jobs[variant]
        spec = {**job.spec, "steps": 30, "warmup_steps": 0}
        result = harness.run({"framework": "jax", "module": job.module, "spec": spec,
                              "device": "cpu"})
        compiles[variant] = result["compiles_timed"]
    lengths, buckets = task.spec["dynamic"]["seq_lens"], task.spec["dynamic"]["buckets"]
    # 29 timed steps draw (almost surely) most of the lengths, minus the first one seen.
    assert compiles["exact-lengths"] >= len(lengths) - 3
    assert compiles["bucketed"] <= len(buckets) - 1
    assert compiles["bucketed"] < compiles["exact-lengths"]


def test_a_profile_runs_its_own_modes_and_dynamic_variants():
    """The quick profile leaves PyTorch's alternative shape policies and custom_checkpoint's
    compiled run to the full profile (the run-time budget); the full profile runs them all."""
    def variants(profile):
        return {(j.framework, j.variant)
                for j in dynamic_jobs(TASKS["transformer_lm"], ["pytorch", "trax", "jax"],
                                      profile, "cpu")}

    quick, full = variants("quick"), variants("full")
    assert quick == {("pytorch", "eager"), ("pytorch", "dynamic=None"),
                     ("trax", "exact-lengths"), ("trax", "bucketed"),
                     ("jax", "exact-lengths"), ("jax", "bucketed")}
    assert full - quick == {("pytorch", "dynamic=True"), ("pytorch", "bucketed")}

    def modes(profile):
        return sorted(j.mode for j in train_jobs([TASKS["custom_checkpoint"]],
                                                 ["pytorch", "trax"], profile, "cpu"))

    assert modes("quick") == ["torch-eager", "trax"]
    assert modes("full") == ["torch-compile", "torch-eager", "trax"]


def test_every_task_folder_is_packaged():
    """A task missing from pyproject.toml would work here (editable) but not when installed."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    packaged = set(pyproject["tool"]["setuptools"]["packages"])
    assert {f"fwsurvey.kernels.{name}" for name in TASKS} <= packaged
    assert "*/spec.toml" in pyproject["tool"]["setuptools"]["package-data"]["fwsurvey.kernels"]
