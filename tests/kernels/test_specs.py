"""Every task's spec.toml is validated when the tasks are discovered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fwsurvey.config import ConfigError
from fwsurvey.kernels.tasks import KERNELS_DIR, discover


def copy_task(tmp_path: Path, task: str, old: str = "", new: str = "") -> Path:
    """A ``kernels/`` folder holding one task, its spec.toml edited (``old`` → ``new``)."""
    root = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR / task, root / task,
                    ignore=shutil.ignore_patterns("__pycache__"))
    spec = root / task / "spec.toml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))
    return root


def test_the_shipped_specs_are_valid():
    assert len(discover()) == 11  # 6 reference trainings, 5 experiment tasks (issue #14)


@pytest.mark.parametrize("task, old, new, message", [
    ("mlp_digits", "batch = 64", "btach = 64", "quick.btach: unknown key (misspelt?)"),
    ("mlp_digits", "[optimizer]", "[optimiser]", "optimiser: unknown key (misspelt?)"),
    ("mlp_digits", "eps = 1e-8\n", "", "optimizer.eps: required key is missing"),
    ("mlp_digits", 'name = "adam"', 'name = "sgd"',
     "optimizer.name: expected one of 'adam' or 'adamw', got 'sgd'"),
    ("mlp_digits", "bf16 = []", "", "bf16: required key is missing"),
    ("transformer_lm", "[dynamic]\n", "[dynamic]\nlr = 0.1\n",
     "dynamic.lr: unknown key (misspelt?)"),
    ("mlp_digits", "steps = 200", "steps = 3.5", "quick.steps: expected an integer, got 3.5"),
    ("mlp_digits", "target = 0.9", "target = '0.9'", "target: expected a number, got '0.9'"),
    ("mlp_digits", "[quick]\nhidden = 128\nbatch = 64", "[quick]\nhidden = 128",
     "quick.batch: required key is missing (in this table or at the top level)"),
    ("mlp_digits", "loss_tolerance =", "loss_tolerence =",
     "scaling.loss_tolerence: unknown key (misspelt?)"),
    ("lstm_text", 'target_mode = "max"', 'target_mode = "maximum"',
     "target_mode: expected one of 'min' or 'max', got 'maximum'"),
    ("transformer_lm", 'bf16 = ["pytorch", "jax"]', 'bf16 = ["pytroch", "jax"]',
     "bf16[0]: 'pytroch' is not a framework with an adapter; known: jax, pytorch, trax"),
    ("transformer_lm", "seq_lens = [", "seq_len = [",
     "dynamic.seq_len: expected an integer, got [24, 40, 56, 72, 96]"),
    ("loss_logging", 'modes = ["torch-eager",', 'modes = ["torch-eagre",',
     "modes[0]: unknown mode 'torch-eagre'; known: torch-eager, torch-compile, jax-jit, trax"),
    ("loss_logging", 'experiment = "visualization"', 'experiment = "scaling"',
     "experiment: 'scaling': a lowercase name other than dynamic and scaling"),
])
def test_a_bad_spec_is_one_line_naming_the_file_and_key(tmp_path, task, old, new, message):
    root = copy_task(tmp_path, task, old, new)
    with pytest.raises(ConfigError) as info:
        discover(root)
    assert str(info.value) == f"kernels/{task}/spec.toml: {message}"
    assert info.value.path == root / task / "spec.toml"


def test_a_spec_that_is_not_toml_is_named(tmp_path):
    root = copy_task(tmp_path, "cnn_digits", "seed = 0", "seed = ")
    with pytest.raises(ConfigError, match=r"^kernels/cnn_digits/spec.toml: not valid TOML"):
        discover(root)


def test_a_profiles_lr_overrides_the_optimizer_tables():
    """One place to read the optimizer from: ``spec["optimizer"]``, lr resolved per profile."""
    task = discover()["cnn_digits"]
    quick, full = task.profile("quick"), task.profile("full")
    assert task.spec["quick"]["lr"] == 0.002 and task.spec["optimizer"]["lr"] == 0.001
    assert quick["optimizer"] == {"name": "adam", "lr": 0.002, "b1": 0.9, "b2": 0.999,
                                  "eps": 1e-8, "weight_decay": 0.0}
    assert full["optimizer"]["lr"] == 0.001
    assert "lr" not in quick and "lr" not in full
    assert task.spec["optimizer"]["lr"] == 0.001  # the table itself is left as written
