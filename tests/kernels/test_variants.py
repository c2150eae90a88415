"""Modular changes: the harness's variant hook trains each variant file a few steps in the
job's process and records what happened (kernel_checks rows variant.<edit>)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from fwsurvey.kernels import harness  # noqa: E402
from fwsurvey.kernels.adapters import ADAPTERS  # noqa: E402
from fwsurvey.kernels.tasks import discover  # noqa: E402
from fwsurvey.kernels.variants import load_index, train_variants  # noqa: E402

BASE = '''
import torch
from torch import nn


def load_data(spec):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return {"train": [(x, x.sum(1, keepdim=True))]}


def build_model(spec):
    torch.manual_seed(spec["seed"])
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"])

    def batches():
        while True:
            yield from data["train"]

    stream = batches()

    def train_step():
        x, y = next(stream)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return train_step
'''

INDEX = """
[hyperparameters]
steps = 3
dropout = 0.5
quick_tasks = ["tiny"]
budget_s = 100

[hyperparameters.sgd]
name = "sgd"
lr = 0.05
momentum = 0.9
nesterov = false
weight_decay = 0.0

[edits]
optimizer = "Adam for SGD"
activation = "ReLU for GELU"
residual = "add a residual block"
dropout = "add dropout"

[tasks.tiny]
edits = ["optimizer", "residual", "dropout"]
skipped = { activation = "not here" }
"""


def make_task(tmp_path: Path) -> tuple[Path, Path]:
    task = tmp_path / "tiny"
    variants = {
        "optimizer": BASE.replace(
            'torch.optim.Adam(model.parameters(), lr=opt["lr"])',
            'torch.optim.SGD(model.parameters(), lr=opt["lr"], momentum=opt["momentum"])'),
        "residual": BASE.replace("nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))",
                                 "nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8),"
                                 " nn.Linear(8, 1))"),
        # A user's mistake: the layer is named wrong. Recorded as it is, never fixed.
        "dropout": BASE.replace("nn.ReLU(), nn.Linear(8, 1)",
                                'nn.ReLU(), nn.DropOut(spec["dropout"]), nn.Linear(8, 1)'),
    }
    for edit, text in variants.items():
        (task / "variants" / edit).mkdir(parents=True)
        (task / "variants" / edit / "pytorch_impl.py").write_text(text)
    (task / "pytorch_impl.py").write_text(BASE)
    index = tmp_path / "variants.toml"
    index.write_text(INDEX)
    return task, index


def base_job(task: Path, tmp_path: Path) -> tuple[dict, dict, object, object, object]:
    import importlib.util

    spec_obj = importlib.util.spec_from_file_location("tiny_base", task / "pytorch_impl.py")
    module = importlib.util.module_from_spec(spec_obj)
    spec_obj.loader.exec_module(module)
    spec = {"seed": 0, "optimizer": {"name": "adam", "lr": 0.01}, "device": "cpu",
            "precision": "fp32", "workdir": str(tmp_path)}
    data = module.load_data(spec)
    model = module.build_model(spec)
    trainer = module.make_trainer(model, data, spec)
    trainer()
    return {"task": "tiny", "framework": "pytorch", "mode": "torch-eager"}, spec, data, \
        model, trainer


def test_variants_train_and_a_broken_one_is_recorded(tmp_path):
    task, index_path = make_task(tmp_path)
    job, spec, data, model, trainer = base_job(task, tmp_path)
    checks = train_variants(job, spec, data, model, trainer, ADAPTERS["pytorch"],
                            task_dir=task, index=load_index(index_path))
    rows = {c["check"]: c for c in checks}
    assert list(rows) == ["variant.optimizer", "variant.optimizer.changed",
                          "variant.residual", "variant.residual.changed",
                          "variant.dropout", "variants"]
    opt = rows["variant.optimizer"]
    assert opt["ok"] is True and opt["unit"] == "loss" and math.isfinite(opt["value"])
    assert opt["detail"].startswith("3 steps in ")
    assert opt["detail"].endswith(f"{opt['value']:.4g}")  # the last of the losses shown
    changed = rows["variant.optimizer.changed"]
    assert (changed["ok"], changed["detail"]) == (True, "optimizer Adam -> SGD")
    # One more Linear(8, 8): 72 parameters.
    residual = rows["variant.residual.changed"]
    assert (residual["ok"], residual["value"], residual["detail"]) == (
        True, 72, "parameters 49 -> 121; residual layers 0 -> 0")
    broken = rows["variant.dropout"]
    assert broken["ok"] is False and broken["value"] is None
    assert "AttributeError" in broken["detail"] and "DropOut" in broken["detail"]
    total = rows["variants"]
    assert total["ok"] is False and total["unit"] == "s" and total["value"] > 0
    assert total["detail"].startswith("2 of 3 variants trained 3 steps")


def test_the_optimizer_variant_reads_the_indexed_sgd(tmp_path):
    task, index_path = make_task(tmp_path)
    job, spec, data, model, trainer = base_job(task, tmp_path)
    index = load_index(index_path)
    seen = {}
    original = ADAPTERS["pytorch"].prepare_model

    class Spy:
        """The adapter, recording the spec each variant was built with."""

        def __getattr__(self, name):
            return getattr(ADAPTERS["pytorch"], name)

        def prepare_model(self, model, spec):
            seen.setdefault("specs", []).append(spec)
            return original(model, spec)

    train_variants(job, spec, data, model, trainer, Spy(), task_dir=task, index=index)
    optimizer_spec, residual_spec = seen["specs"][:2]
    assert optimizer_spec["optimizer"] == {"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                           "nesterov": False, "weight_decay": 0.0,
                                           "clip_grad_norm": None}
    assert residual_spec["optimizer"] == spec["optimizer"]  # the base's, untouched
    assert optimizer_spec["workdir"] != residual_spec["workdir"]  # a fresh folder each


def test_hook_runs_only_in_the_reference_job(tmp_path):
    adapter = ADAPTERS["pytorch"]
    spec = {"precision": "fp32"}
    for job in ({"task": "mlp_digits", "mode": "torch-compile", "experiment": "train"},
                {"task": "mlp_digits", "mode": "torch-eager", "experiment": "dynamic"},
                {"task": "no_such_task", "mode": "torch-eager", "experiment": "train"}):
        assert harness.run_variants({**job, "framework": "pytorch"}, spec, adapter,
                                    None, None, None) is None
    job = {"task": "mlp_digits", "framework": "pytorch", "mode": "torch-eager",
           "experiment": "train"}
    assert harness.run_variants(job, {"precision": "bf16"}, adapter, None, None, None) is None


def test_real_pytorch_variants_of_mlp_digits_train(tmp_path):
    """The shipped variants of one task, on its real data, through the harness's hook."""
    task = discover()["mlp_digits"]
    spec = {**task.profile("quick"), "device": "cpu", "precision": "fp32",
            "workdir": str(tmp_path)}
    adapter = ADAPTERS["pytorch"]
    module = __import__(task.impl_module("pytorch"), fromlist=["load_data"])
    data = module.load_data(spec)
    model = adapter.prepare_model(module.build_model(spec), spec)
    trainer = module.make_trainer(model, data, spec)
    job = {"task": "mlp_digits", "framework": "pytorch", "mode": "torch-eager",
           "experiment": "train"}
    checks = {c["check"]: c for c in harness.run_variants(job, spec, adapter, data, model,
                                                          trainer)}
    for edit in ("optimizer", "activation", "residual", "dropout"):
        assert checks[f"variant.{edit}"]["ok"] is True, checks[f"variant.{edit}"]
    assert checks["variant.optimizer.changed"]["detail"] == "optimizer Adam -> SGD"
    # Residual(Linear(128, 128), ReLU): 128 * 128 + 128 parameters more.
    assert checks["variant.residual.changed"]["value"] == 128 * 128 + 128
    assert checks["variant.dropout.changed"]["value"] == 1
    assert checks["variant.activation.changed"]["ok"] is None
    assert checks["variants"]["ok"] is True


def test_quick_profile_trains_only_its_listed_tasks(tmp_path):
    task, index_path = make_task(tmp_path)
    index_path.write_text(INDEX.replace('quick_tasks = ["tiny"]', 'quick_tasks = ["other"]'))
    job, spec, data, model, trainer = base_job(task, tmp_path)
    index = load_index(index_path)
    [row] = train_variants(job, {**spec, "profile": "quick"}, data, model, trainer,
                           ADAPTERS["pytorch"], task_dir=task, index=index)
    assert (row["check"], row["ok"]) == ("variants", None)
    assert "not trained in the quick profile" in row["detail"]
    full = train_variants(job, {**spec, "profile": "full"}, data, model, trainer,
                          ADAPTERS["pytorch"], task_dir=task, index=index)
    assert [c["check"] for c in full if c["unit"] == "loss"] == [
        "variant.optimizer", "variant.residual", "variant.dropout"]


def test_reference_job_is_the_first_mode_the_task_runs(tmp_path):
    adapter = ADAPTERS["pytorch"]
    job = {"task": "mlp_digits", "framework": "pytorch", "experiment": "train"}
    # A task that runs only torch-compile: that is its PyTorch reference job.
    spec = {**discover()["mlp_digits"].profile("quick"), "device": "cpu", "precision": "fp32",
            "workdir": str(tmp_path), "modes": ["torch-compile", "trax"]}
    assert harness.run_variants({**job, "mode": "torch-eager"}, spec, adapter,
                                None, None, None) is None
    # No data given: every variant is built, then fails at its first step, and says so.
    checks = harness.run_variants({**job, "mode": "torch-compile"}, spec, adapter, None,
                                  None, None)
    failed = {c["check"]: c["detail"] for c in checks if c["unit"] == "loss"}
    assert list(failed) == ["variant.optimizer", "variant.activation", "variant.residual",
                            "variant.dropout"]
    assert all("TypeError" in detail for detail in failed.values())


def test_no_variant_starts_once_the_time_budget_is_spent(tmp_path):
    task, index_path = make_task(tmp_path)
    job, spec, data, model, trainer = base_job(task, tmp_path)
    announced = []
    index = load_index(index_path)
    checks = train_variants(job, spec, data, model, trainer, ADAPTERS["pytorch"],
                            task_dir=task, index=index, announce=announced.append)
    assert announced == ["optimizer", "residual", "dropout"]  # one phase per variant
    index_path.write_text(INDEX.replace("budget_s = 100", "budget_s = 0"))
    announced.clear()
    checks = train_variants(job, spec, data, model, trainer, ADAPTERS["pytorch"],
                            task_dir=task, index=load_index(index_path),
                            announce=announced.append)
    assert announced == []
    assert [(c["check"], c["ok"]) for c in checks] == [
        ("variant.optimizer", None), ("variant.residual", None), ("variant.dropout", None)]
    assert checks[0]["detail"] == "not trained: the variants' time budget (0 s) was spent"
