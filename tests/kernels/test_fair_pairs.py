"""The pairs train the same way: what each side built is read back, not what its file says.

* the optimizer's hyperparameters, read from the optimizer each trainer holds (PyTorch's
  param_groups, Trax's opt_params, the closure of jax.example_libraries' adam), equal the
  spec's ``[optimizer]`` table;
* the scored positions agree: on one fixed batch of real tokens, the positions whose logits
  get a gradient from each side's own loss are the same (row, target token) pairs;
* Trax's TrainTask takes its explicit sample batch, not the first batch of its stream;
* the digits MLP computes the same loss in PyTorch and Trax at identical weights.

Everything runs on the CPU on the quick profile's small models (the harness's device and
compile hooks are not involved: the files hold no device code).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np
import pytest

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.tasks import discover

TASKS = discover()
PAIRS = [(task, fw) for task in sorted(TASKS) for fw in TASKS[task].frameworks]


def quick_spec(task: str, tmp_path, **overrides: Any) -> dict[str, Any]:
    return {**TASKS[task].profile("quick"), "workdir": str(tmp_path), "device": "cpu",
            "precision": "fp32", **overrides}


def impl(task: str, framework: str):
    return importlib.import_module(TASKS[task].impl_module(framework))


def built(task: str, framework: str, spec: dict[str, Any]):
    module = impl(task, framework)
    data = module.load_data(spec)
    model = module.build_model(spec)
    return module, data, model, module.make_trainer(model, data, spec)


@pytest.mark.parametrize("task", sorted(t for t in TASKS
                                         if TASKS[t].spec.get("experiment", "train") != "train"))
def test_the_experiment_pairs_match_in_parameter_count(tmp_path, task):
    """Each experiment's models, built from the spec on every side, have the same number of
    parameters (the reference pairs are checked after training, in test_tasks.py)."""
    counts = {}
    for framework in TASKS[task].frameworks:
        spec = quick_spec(task, tmp_path / framework)
        _, _, model, trainer = built(task, framework, spec)
        counts[framework] = ADAPTERS[framework].count_params(model, trainer)
    assert len(counts) == 3 and counts["pytorch"] > 0
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("task, framework",
                         [(t, fw) for t, fw in PAIRS if fw in ("pytorch", "trax")])
def test_the_scored_files_leave_devices_compile_and_precision_to_the_harness(task, framework):
    """The harness applies them through the adapter; a file naming them would be scored for
    harness code (and would apply it on one side only)."""
    text = TASKS[task].impl_path(framework).read_text().lower()
    for word in ("device", "compile", "autocast", "bfloat16", "float16", "cuda"):
        assert word not in text, f"{task}/{framework}_impl.py mentions {word!r}"


def optimizer_read_back(framework: str, trainer: Any) -> dict[str, Any]:
    """The hyperparameters the built optimizer holds, in the spec's names."""
    if framework == "pytorch":
        optimizer = inspect.getclosurevars(trainer).nonlocals["optimizer"]
        (group,) = optimizer.param_groups
        return {"name": type(optimizer).__name__.lower(), "lr": group["lr"],
                "b1": group["betas"][0], "b2": group["betas"][1], "eps": group["eps"],
                "weight_decay": group["weight_decay"], "fused": group["fused"]}
    if framework == "trax":
        optimizer = trainer.tasks[0].optimizer
        params = {k: float(v) for k, v in optimizer.opt_params.items()}
        return {"name": type(optimizer).__name__.lower(), "lr": params["learning_rate"],
                "b1": params["b1"], "b2": params["b2"], "eps": params["eps"],
                "weight_decay_rate": params["weight_decay_rate"],
                "clip_grad_norm": optimizer._clip_grad_norm}
    # JAX: train_step -> jitted update -> opt_update (tree map) -> adam's own update.
    update = inspect.getclosurevars(trainer).nonlocals["update"]
    opt_update = inspect.getclosurevars(update.__wrapped__).nonlocals["opt_update"]
    adam_update = inspect.getclosurevars(opt_update).nonlocals["update"]
    hyper = inspect.getclosurevars(adam_update).nonlocals
    return {"name": adam_update.__qualname__.split(".")[0], "lr": float(hyper["step_size"](0)),
            "b1": hyper["b1"], "b2": hyper["b2"], "eps": hyper["eps"]}


@pytest.mark.parametrize("task, framework", PAIRS)
def test_every_side_builds_the_specs_optimizer(tmp_path, monkeypatch, task, framework):
    spec = quick_spec(task, tmp_path)
    want = spec["optimizer"]
    assert set(want) >= {"name", "lr", "b1", "b2", "eps", "weight_decay"}
    assert want["lr"] == TASKS[task].spec["quick"].get("lr", TASKS[task].spec["optimizer"]["lr"])
    _, _, _, trainer = built(task, framework, spec)
    got = optimizer_read_back(framework, trainer)

    assert got["lr"] == pytest.approx(want["lr"], rel=1e-6)
    assert got["b1"] == pytest.approx(want["b1"], rel=1e-6)
    assert got["b2"] == pytest.approx(want["b2"], rel=1e-6)
    assert got["eps"] == pytest.approx(want["eps"], rel=1e-6)
    if framework == "pytorch":
        assert got["name"] == want["name"]
        assert got["weight_decay"] == want["weight_decay"]
        # The LM is tuned: a fused AdamW (which torch 2.13 runs on CPUs as well as GPUs).
        assert bool(got["fused"]) is (task == "transformer_lm")
    elif framework == "trax":
        assert got["name"] == "adam"  # Trax's Adam: decay decoupled, per step
        assert got["weight_decay_rate"] == pytest.approx(want["lr"] * want["weight_decay"])
        assert got["clip_grad_norm"] == want.get("clip_grad_norm")
    else:
        assert got["name"] == "adam"
        assert want["weight_decay"] == 0.0, "jax.example_libraries' adam has no weight decay"

    if framework == "pytorch" and want.get("clip_grad_norm") is not None:
        import torch

        seen = []
        real = torch.nn.utils.clip_grad_norm_

        def recording(parameters, max_norm, *args, **kwargs):
            seen.append(max_norm)
            return real(parameters, max_norm, *args, **kwargs)

        monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
        trainer()
        assert seen == [want["clip_grad_norm"]]


def test_the_frameworks_adam_defaults_differ_so_passing_them_matters():
    """Why the spec lists every value: Trax's Adam would otherwise run eps 1e-5, decay 1e-5."""
    import trax

    defaults = {k: float(v) for k, v in trax.optimizers.Adam(0.001).opt_params.items()}
    assert defaults["eps"] == pytest.approx(1e-5)
    assert defaults["weight_decay_rate"] == pytest.approx(1e-5)
    for task in TASKS.values():
        assert task.spec["optimizer"]["eps"] == 1e-8
        assert task.spec["optimizer"]["weight_decay"] == 0.0


@pytest.mark.parametrize("task", sorted(t for t in TASKS if "trax" in TASKS[t].frameworks))
def test_trax_takes_its_sample_batch_not_a_training_batch(tmp_path, task):
    spec = quick_spec(task, tmp_path)
    module = impl(task, "trax")
    first = next(module.load_data(spec)["train"])
    data = module.load_data(spec)
    module.make_trainer(module.build_model(spec), data, spec)
    after_build = next(data["train"])
    for a, b in zip(first, after_build, strict=True):
        np.testing.assert_array_equal(a, b)


# -- scored positions ----------------------------------------------------------------------


def trax_scored(logits_shape: tuple[int, ...], batch: tuple[np.ndarray, ...]) -> set:
    """(row, target index) pairs Trax's WeightedCategoryCrossEntropy trains on: a Trax LM
    shifts right itself, so its position i predicts token i."""
    import jax
    from trax import layers as tl

    _, targets, weights = batch
    logits = np.random.default_rng(0).normal(size=logits_shape).astype(np.float32)
    loss = tl.WeightedCategoryCrossEntropy()
    grad = jax.grad(lambda x: loss((x, targets, weights)))(logits)
    rows, cols = np.nonzero(np.abs(np.asarray(grad)).sum(-1))
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def torch_scored(model: Any, loss_of_model) -> set:
    """(row, target index) pairs a PyTorch side's loss trains on: the positions of the output
    layer that receive a gradient; position i predicts token i + 1."""
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["logits"] = output

    handle = model.head.register_forward_hook(keep)
    try:
        loss_of_model().backward()
    finally:
        handle.remove()
    rows, cols = np.nonzero(captured["logits"].grad.abs().sum(-1).numpy())
    return set(zip(rows.tolist(), (cols + 1).tolist(), strict=True))


def trax_batch(task: str, tmp_path, **overrides: Any) -> tuple[np.ndarray, ...]:
    """The first batch of the Trax side's own pipeline: real tokens, its own weights."""
    spec = quick_spec(task, tmp_path, **overrides)
    return tuple(np.asarray(x) for x in next(impl(task, "trax").load_data(spec)["train"]))


@pytest.mark.parametrize("task", ["lstm_text", "text_pipeline"])
def test_the_lstm_pairs_score_the_same_positions(tmp_path, task):
    import torch

    spec = quick_spec(task, tmp_path)
    batch = trax_batch(task, tmp_path)
    tokens = batch[0]
    trax_set = trax_scored(tokens.shape + (spec["vocab"],), batch)

    module = impl(task, "pytorch")
    model = module.build_model(spec)
    loss_fn = module.masked_loss if task == "text_pipeline" else module.next_token_loss
    tensor = torch.from_numpy(tokens).long()
    torch_set = torch_scored(model, lambda: loss_fn(model(tensor), tensor))

    assert torch_set == trax_set
    n_rows, length = tokens.shape
    real = int((tokens != 0).sum())
    # Every token but the first of each row (and never padding) is scored.
    assert len(torch_set) == real - n_rows
    if task == "lstm_text":
        assert len(torch_set) == n_rows * (length - 1)
    else:
        assert real < tokens.size, "the fixed batch should hold padding"


@pytest.mark.parametrize("variant", [{}, {"seq_lens": [24, 40, 56], "buckets": [32, 64],
                                          "bucketed": True}])
def test_the_three_lms_score_the_same_positions(tmp_path, variant):
    import jax
    import torch

    spec = quick_spec("transformer_lm", tmp_path, **variant)
    batch = trax_batch("transformer_lm", tmp_path, **variant)
    tokens = batch[0]
    trax_set = trax_scored(tokens.shape + (spec["vocab"],), batch)

    module = impl("transformer_lm", "pytorch")
    model = module.build_model(spec)
    torch_set = torch_scored(model, lambda: model(torch.from_numpy(tokens).long()))

    # JAX: its own targets and its own loss_fn, the model's logits replaced by free ones.
    jax_module = impl("transformer_lm", "jax")
    targets = jax_module.next_tokens(tokens)
    logits = np.random.default_rng(0).normal(size=tokens.shape + (spec["vocab"],))
    original = jax_module.forward
    jax_module.forward = lambda params, inputs, n_heads: params["logits"]
    try:
        grad = jax.grad(jax_module.loss_fn)({"logits": logits.astype(np.float32)}, tokens,
                                            targets, spec["n_heads"])["logits"]
    finally:
        jax_module.forward = original
    rows, cols = np.nonzero(np.abs(np.asarray(grad)).sum(-1))
    jax_set = set(zip(rows.tolist(), (cols + 1).tolist(), strict=True))

    assert torch_set == trax_set == jax_set
    n_rows, length = tokens.shape
    assert len(torch_set) == int((tokens != 0).sum()) - n_rows
    if not variant:
        assert len(torch_set) == n_rows * (spec["seq_len"] - 1)
    else:
        assert (tokens == 0).any(), "the bucketed batch should hold padding"


# -- same loss at the same weights -----------------------------------------------------------


def test_the_mlp_pair_computes_the_same_loss_at_the_same_weights(tmp_path):
    import torch
    from trax import layers as tl
    from trax import shapes

    spec = quick_spec("mlp_digits", tmp_path)
    x, y = impl("mlp_digits", "trax").load_data(spec)["test"]
    torch_model = impl("mlp_digits", "pytorch").build_model(spec)
    trax_model = impl("mlp_digits", "trax").build_model(spec)
    trax_model.init(shapes.signature(x))

    linears = [m for m in torch_model if isinstance(m, torch.nn.Linear)]
    denses = [layer for layer in trax_model.sublayers if isinstance(layer, tl.Dense)]
    assert len(linears) == len(denses) == 3
    for linear, layer in zip(linears, denses, strict=True):
        layer.weights = (linear.weight.detach().numpy().T.copy(),
                         linear.bias.detach().numpy().copy())

    torch_loss = torch.nn.CrossEntropyLoss()(torch_model(torch.from_numpy(x)),
                                             torch.from_numpy(y).long())
    trax_loss = tl.CategoryCrossEntropy()((trax_model(x), y))
    assert float(trax_loss) == pytest.approx(float(torch_loss), rel=1e-5)
    assert 2.0 < float(torch_loss) < 2.6  # an untrained 10-way classifier: about ln 10
