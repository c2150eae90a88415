"""The control-flow experiments (issue #14): generated trees are what their expressions
say, each side's linearisation computes the same value, the declared static rewrite is what
each implementation really does, and tiny real trainings report their checks."""

from __future__ import annotations

import importlib
import statistics

import numpy as np
import pytest

from fwsurvey.kernels import harness
from fwsurvey.kernels.adaptive_depth import steps
from fwsurvey.kernels.tasks import discover
from fwsurvey.kernels.tree_recursion import checks as tree_checks
from fwsurvey.kernels.tree_recursion import trees

TASKS = discover()
SMALL = {"n_train": 400, "n_test": 100}


def quick(task: str, **overrides) -> dict:
    return {**TASKS[task].profile("quick"), **SMALL, "device": "cpu", "precision": "fp32",
            **overrides}


def impl(task: str, framework: str):
    return importlib.import_module(TASKS[task].impl_module(framework))


def test_generated_trees_have_the_values_python_computes():
    data = trees.dataset(quick("tree_recursion"))
    train_trees, targets = data["train"]
    assert len(train_trees) == 400 and len(data["test"][0]) == 100
    for tree, target in zip(train_trees, targets, strict=True):
        exact = eval(trees.expression(tree))  # noqa: S307 - our own generated arithmetic
        assert trees.value(tree) == exact
        assert target * data["scale"] == pytest.approx(trees.squash(exact))
    # Shapes vary: many sizes and depths, up to the spec's leaves.
    sizes = {trees.n_nodes(t) for t in train_trees}
    assert sizes == {3, 5, 7, 9}
    assert {trees.depth(t) for t in train_trees} >= {1, 2, 3, 4}
    assert statistics.pstdev(targets) == pytest.approx(1.0)
    # The same seed, the same trees; another seed, others.
    assert trees.dataset(quick("tree_recursion"))["train"][0] == train_trees
    assert trees.dataset(quick("tree_recursion", seed=1))["train"][0] != train_trees


def run_program(program: np.ndarray, first_leaf: int) -> int:
    """The post-order program evaluated with numbers on a stack, as the scan runs it."""
    stack: list[int] = []
    for token in program.tolist():
        if token == 0:
            continue
        if token >= first_leaf:
            stack.append(token - first_leaf + trees.LOW)
        else:
            b, a = stack.pop(), stack.pop()
            stack.append(trees.value((trees.OPS[token - 1], a, b)))
    assert len(stack) == 1
    return stack[0]


@pytest.mark.parametrize("framework", ["trax", "jax"])
def test_the_static_sides_linearise_and_pad_every_tree_faithfully(framework):
    module = impl("tree_recursion", framework)
    spec = quick("tree_recursion")
    test_trees = trees.dataset(spec)["test"][0]
    programs = module.encode(test_trees, 2 * spec["max_leaves"] - 1)
    assert programs.shape == (100, 9) and programs.dtype == np.int32
    for tree, program in zip(test_trees, programs, strict=True):
        assert run_program(program, module.FIRST_LEAF) == trees.value(tree)
    # The padded positions are the share checks.py records as waste.
    padded = float((programs == module.PAD).mean())
    waste = 1 - statistics.fmean(trees.n_nodes(t) for t in test_trees) / 9
    assert padded == pytest.approx(waste)
    assert 0.2 < padded < 0.6


def test_the_declared_static_rewrite_is_what_each_side_feeds_its_model():
    assert TASKS["tree_recursion"].spec["static_structure"] == ["jax", "trax"]
    assert TASKS["adaptive_depth"].spec["static_structure"] == ["jax", "trax"]
    spec = quick("tree_recursion", batch=8)
    batch_trees, _ = next(impl("tree_recursion", "pytorch").load_data(spec)["train"])
    assert all(isinstance(t, tuple) for t in batch_trees)  # the trees themselves, unpadded
    programs, _ = next(impl("tree_recursion", "jax").load_data(spec)["train"])
    assert programs.shape == (8, 9)


def test_pytorch_steps_each_example_only_as_often_as_it_needs():
    """The adaptive-depth model applies its step to sum(k) rows; a static side computes
    batch * max_depth (the masked rest is the waste checks.py records)."""
    module = impl("adaptive_depth", "pytorch")
    spec = quick("adaptive_depth")
    model = module.build_model(spec)
    x, k, _ = next(iter(module.load_data(spec)["train"]))
    rows = []
    model.step.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    model(x, k)
    assert sum(rows) == int(k.sum()) and len(rows) == int(k.max())
    assert sum(rows) < spec["batch"] * spec["max_depth"]
    data_k = steps.dataset(spec)["train"][1]
    assert 1 <= data_k.min() and data_k.max() == spec["max_depth"]


def test_the_adaptive_targets_are_k_rotations():
    spec = quick("adaptive_depth")
    x, k, y = steps.dataset(spec)["train"]
    # A rotation keeps lengths: |A^k x| = |x| for every k.
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-4)
    once = y[k == 1]
    assert len(once) > 100 and not np.allclose(once, x[k == 1])


def train(task: str, framework: str, steps_: int, **overrides) -> dict:
    spec = {**quick(task), "steps": steps_, "warmup_steps": 2, **overrides}
    job = {"framework": framework, "mode": f"{framework}-test",
           "module": TASKS[task].impl_module(framework), "spec": spec, "device": "cpu"}
    return harness.run(job)


@pytest.mark.parametrize("framework", ["pytorch", "trax"])
def test_a_tiny_training_of_the_tree_task_learns_and_reports_its_checks(framework):
    result = train("tree_recursion", framework, 60)
    losses = result["losses"]
    assert len(losses) == 60
    assert statistics.fmean(losses[-10:]) < 0.7 * statistics.fmean(losses[:5])
    assert result["metrics"]["r2"] > 0.1  # predicting the mean scores 0
    checks = {c["check"]: c for c in result["checks"]}
    assert set(checks) == {"runs", "recompiles", "graph_breaks", "static_padding",
                           "padding_waste"}
    assert checks["runs"]["ok"] is True
    assert checks["graph_breaks"]["value"] is None  # nothing compiled by dynamo here
    static = framework == "trax"
    assert checks["static_padding"]["ok"] is static
    waste = tree_checks.padding_waste(quick("tree_recursion"))
    assert checks["padding_waste"]["value"] == (pytest.approx(waste) if static else 0.0)
    assert checks["recompiles"]["value"] == result["compiles_timed"]
    if static:
        assert result["compiles_timed"] == 0  # one shape: compiled once, before timing
