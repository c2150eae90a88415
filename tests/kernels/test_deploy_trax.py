"""The deploy phase (issue #14 §2), Trax side: a tiny MLP trained here by the task's real
``trax_impl.py`` (``training.Loop``) is deployed by the task's real ``trax_deploy.py`` through
the harness's hook: ``trax.AsKeras`` to a TF SavedModel (server), to LiteRT (mobile) and via
tf2onnx to ONNX Runtime Web in headless Chromium (web, where this checkout has it)."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from fwsurvey import frames
from fwsurvey.kernels import harness
from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.tasks import discover

TASK = discover()["mlp_digits"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    spec = {**TASK.profile("quick"), "hidden": 16, "device": "cpu", "precision": "fp32",
            "deploy": {"paths": ["server", "mobile", "web"], "repeats": 2}}
    spec["optimizer"] = {**spec["optimizer"], "lr": 0.01}
    with pytest.MonkeyPatch.context() as patch:
        # The harness's import shortcut (fwsurvey/frames.py), for this import only.
        patch.setattr(frames, "_installed", False)
        patch.setattr(inspect, "getmodule", inspect.getmodule)
        frames.install()
        module = importlib.import_module(TASK.impl_module("trax"))
    data = module.load_data(spec)
    model = module.build_model(spec)
    trainer = module.make_trainer(model, data, spec)
    trainer.run(40)
    assert module.evaluate(model, trainer, data, spec)["accuracy"] > 0.3  # chance: 0.1
    job = {"framework": "trax", "mode": "trax", "device": "cpu", "experiment": "train",
           "module": TASK.impl_module("trax"), "spec": spec}
    rows = harness.run_deploy(job, spec, ADAPTERS["trax"], data, model, trainer)
    return {row["check"]: row for row in rows}


def test_the_server_path_serves_the_saved_model(deployed):
    works = deployed["deploy.server.works"]
    assert works["ok"] is True, works["detail"]
    assert "runtime tf-savedmodel" in works["detail"]
    assert deployed["deploy.server.max_abs_diff"]["value"] <= 1e-4
    assert deployed["deploy.server.size_bytes"]["detail"] == "saved_model"
    # The Keras conversion is a helper every path calls: its lines count for each.
    assert deployed["deploy.server.export_lines"]["detail"] == "export_server + to_keras"


def test_the_mobile_path_records_what_litert_needs_and_whether_it_ran(deployed, tmp_path):
    works = deployed["deploy.mobile.works"]
    select = deployed["deploy.mobile.select_ops"]
    names = select["detail"].split(", ") if select["value"] else []
    assert select["value"] == len(names) and all(re.fullmatch(r"Flex\w+", n) for n in names)
    assert select["ok"] is (not names)
    if works["ok"]:
        assert deployed["deploy.mobile.max_abs_diff"]["value"] <= 1e-4
    else:
        # The runtime's own error is the evidence: ops outside LiteRT's builtins need the
        # Flex delegate, which the interpreter here does not link.
        assert names and works["detail"].startswith("run (litert): RuntimeError:")
        assert "Flex delegate" in works["detail"]


def test_the_web_path_converts_with_tf2onnx_and_runs_in_chromium(deployed):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnx")
    works = deployed["deploy.web.works"]
    assert deployed["deploy.web.export_s"]["value"] > 0
    if works["ok"] is None:  # this checkout lacks Chromium or the npm package
        assert "unavailable: " in works["detail"]
    else:
        assert works["ok"] is True, works["detail"]
        assert deployed["deploy.web.max_abs_diff"]["value"] <= 1e-4
