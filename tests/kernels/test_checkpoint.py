"""The custom-layer task saves checkpoints and resumes from them, in both frameworks."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fwsurvey.kernels.tasks import discover

TASK = discover()["custom_checkpoint"]


def spec_for(tmp_path):
    return {**TASK.profile("quick"), "workdir": str(tmp_path), "device": "cpu",
            "checkpoint_every": 10}


def test_pytorch_resumes_from_its_checkpoint(tmp_path):
    import torch

    impl = importlib.import_module(TASK.impl_module("pytorch"))
    spec = spec_for(tmp_path)
    data = impl.load_data(spec)
    model = impl.build_model(spec)
    step = impl.make_trainer(model, data, spec)
    for _ in range(25):
        step()
    saved = torch.load(tmp_path / "checkpoint.pt")
    assert saved["step"] == 20  # the last multiple of checkpoint_every

    fresh = impl.build_model({**spec, "seed": 123})  # different initial weights
    resumed = impl.make_trainer(fresh, impl.load_data(spec), spec)
    assert resumed.state["step"] == 20
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, saved["model"][name]), name
    resumed()
    assert resumed.state["step"] == 21


@pytest.mark.xfail(
    raises=TypeError, strict=True,
    reason="Trax 1.4.1 restores checkpoints with tree_unflatten, which tests `leaf in [()]`; "
           "current JAX arrays refuse == with a tuple (trax/fastmath/numpy.py). Strict: "
           "this test starts failing the day resuming works, so the finding gets updated.")
def test_trax_loop_resumes_from_its_checkpoint(tmp_path):
    impl = importlib.import_module(TASK.impl_module("trax"))
    spec = spec_for(tmp_path)
    loop = impl.make_trainer(impl.build_model(spec), impl.load_data(spec), spec)
    loop.run(20)  # a checkpoint is written at step 20
    assert (tmp_path / "model.pkl.gz").exists()
    trained = [np.asarray(w) for w in _leaves(loop.model.weights)]

    resumed = impl.make_trainer(impl.build_model({**spec, "seed": 123}),
                                impl.load_data(spec), spec)
    assert resumed.step == 20
    restored = [np.asarray(w) for w in _leaves(resumed.model.weights)]
    assert len(restored) == len(trained)
    for a, b in zip(restored, trained, strict=True):
        np.testing.assert_array_equal(a, b)
    resumed.run(1)
    assert resumed.step == 21


def _leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)
