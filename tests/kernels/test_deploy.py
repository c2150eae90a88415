"""The deploy phase (issue #14 §2), PyTorch side and the driver's own rules.

A tiny MLP trained here by the task's real ``pytorch_impl.py`` is deployed by the task's real
``pytorch_deploy.py`` through the harness's hook: ONNX Runtime (server), ExecuTorch (mobile,
where it is installed) and ONNX Runtime Web in headless Chromium (web, where this checkout
has it). What the driver records for failures (a toolchain that does not import, a missing
export function, a runtime that is unavailable or fails) is checked on small deploy modules
written here; the web runner is replaced by a stub only in those unit tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import textwrap

import numpy as np
import pytest

from fwsurvey.kernels import harness
from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.deploy import driver, web
from fwsurvey.kernels.tasks import discover

TASK = discover()["mlp_digits"]
PATHS = ["server", "mobile", "web"]


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["check"]: row for row in rows}


@pytest.fixture(scope="module")
def trained():
    """A tiny MLP trained a few steps by the task's own implementation; the job around it."""
    spec = {**TASK.profile("quick"), "hidden": 16, "device": "cpu", "precision": "fp32",
            "deploy": {"paths": PATHS, "repeats": 2}}
    spec["optimizer"] = {**spec["optimizer"], "lr": 0.01}
    module = importlib.import_module(TASK.impl_module("pytorch"))
    data = module.load_data(spec)
    model = module.build_model(spec)
    trainer = module.make_trainer(model, data, spec)
    for _ in range(40):
        trainer()
    assert module.evaluate(model, trainer, data, spec)["accuracy"] > 0.3  # chance: 0.1
    job = {"framework": "pytorch", "mode": "torch-eager", "device": "cpu",
           "experiment": "train", "module": TASK.impl_module("pytorch"), "spec": spec}
    return job, spec, data, model, trainer


@pytest.fixture(scope="module")
def deployed(trained):
    job, spec, data, model, trainer = trained
    return by_name(harness.run_deploy(job, spec, ADAPTERS["pytorch"], data, model, trainer))


def test_the_server_path_runs_the_onnx_export_in_onnx_runtime(deployed, trained):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    works = deployed["deploy.server.works"]
    assert works["ok"] is True, works["detail"]
    assert "runtime onnxruntime" in works["detail"]
    assert deployed["deploy.server.max_abs_diff"]["value"] <= 1e-5
    # Every file the export wrote: one ONNX file holding the weights (no external data).
    n_weights = sum(p.numel() for p in trained[3].parameters())
    assert deployed["deploy.server.size_bytes"]["value"] > 4 * n_weights
    assert deployed["deploy.server.latency_ms"]["value"] > 0
    assert deployed["deploy.phase_s"]["value"] > deployed["deploy.server.export_s"]["value"]


def test_the_web_path_reuses_the_server_export_and_counts_its_lines(deployed):
    pytest.importorskip("onnxscript")  # torch.onnx.export's exporter
    # pytorch_deploy.py says ``export_web = export_server``: one export, both paths.
    assert deployed["deploy.web.export_s"]["value"] == 0.0
    web_lines, server_lines = (deployed[f"deploy.{p}.export_lines"] for p in ("web", "server"))
    assert (web_lines["value"], web_lines["detail"]) == \
        (server_lines["value"], server_lines["detail"]) == (server_lines["value"], "export_server")
    assert deployed["deploy.web.size_bytes"]["value"] == \
        deployed["deploy.server.size_bytes"]["value"]


def test_the_web_path_runs_in_chromium_or_says_it_is_unavailable(deployed):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnx")
    works = deployed["deploy.web.works"]
    if works["ok"] is None:  # this checkout lacks Chromium or the npm package
        assert "unavailable: " in works["detail"]
        assert "deploy.web.latency_ms" not in deployed
    else:
        assert works["ok"] is True, works["detail"]
        assert "runtime ort-web" in works["detail"]
        assert deployed["deploy.web.max_abs_diff"]["value"] <= 1e-4


def test_the_mobile_path_runs_the_executorch_program(deployed):
    works = deployed["deploy.mobile.works"]
    if importlib.util.find_spec("executorch") is None:
        # Not installed: the failed import is the outcome, with pip's module name.
        assert works["ok"] is False and "No module named 'executorch'" in works["detail"]
        return
    assert works["ok"] is True, works["detail"]
    assert "runtime executorch" in works["detail"]
    assert deployed["deploy.mobile.max_abs_diff"]["value"] <= 1e-4
    assert deployed["deploy.mobile.size_bytes"]["value"] > 0


def test_the_hook_runs_only_in_the_reference_cpu_training_job(trained):
    job, spec, data, model, trainer = trained
    adapter = ADAPTERS["pytorch"]
    for other in ({**job, "mode": "torch-compile"}, {**job, "device": "cuda"},
                  {**job, "experiment": "dynamic"}):
        assert harness.run_deploy(other, spec, adapter, data, model, trainer) is None
    no_table = {k: v for k, v in spec.items() if k != "deploy"}
    assert harness.run_deploy(job, no_table, adapter, data, model, trainer) is None


# -- the driver's rules, on deploy modules written here ------------------------------------

DEPLOY_SOURCE = '''
import numpy as np

# %% server


def save(array, path):
    """Docstrings are not code."""
    np.save(path, array)  # a comment on a code line counts
    return path


def export_server(model, example, folder):
    # a comment line does not count
    return save(np.zeros(1), folder / "model.npy")


def export_mobile(model, example, folder):
    import toolchain_that_is_not_installed  # noqa: F401

    return folder / "model.pte"


def export_web(model, example, folder):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["pixels"], ["logits"])], "g",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, list(example.shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(example.shape))])
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), path)
    return path
'''


def test_export_lines_count_code_helpers_and_used_imports_only():
    lines, counted = driver.export_lines(textwrap.dedent(DEPLOY_SOURCE), "export_server")
    # def + return of export_server, def + 2 code lines of save, ``import numpy as np``.
    assert (lines, counted) == (6, ["export_server", "save"])
    lines, counted = driver.export_lines(textwrap.dedent(DEPLOY_SOURCE), "export_mobile")
    assert (lines, counted) == (3, ["export_mobile"])  # no module-level import used


@pytest.fixture
def fake_task(tmp_path, monkeypatch):
    """A package ``fake_deploy_task`` with ``pytorch_deploy.py`` = DEPLOY_SOURCE."""
    package = tmp_path / "fake_deploy_task"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pytorch_deploy.py").write_text(textwrap.dedent(DEPLOY_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    monkeypatch.setitem(driver.REFERENCES, "pytorch", lambda model, trainer, data: (x, x))
    yield "fake_deploy_task.pytorch_impl", x
    for name in ("fake_deploy_task.pytorch_deploy", "fake_deploy_task"):
        importlib.sys.modules.pop(name, None)


def deploy_fake(impl: str, paths: list[str]) -> dict[str, dict]:
    return by_name(driver.deploy("pytorch", impl, {"deploy": {"paths": paths, "repeats": 2}},
                                 None, None, None))


def test_failures_are_recorded_with_their_errors(fake_task):
    impl, _ = fake_task
    rows = deploy_fake(impl, ["server", "mobile"])
    # An artifact no runtime of the path takes.
    assert rows["deploy.server.works"]["ok"] is False
    assert "no server runtime takes a .npy artifact" in rows["deploy.server.works"]["detail"]
    assert rows["deploy.server.size_bytes"]["value"] == 136  # np.save of one float64
    # A toolchain that does not import fails only its own path.
    mobile = rows["deploy.mobile.works"]
    assert mobile["ok"] is False and mobile["value"] == 0.0
    assert "export: ModuleNotFoundError: No module named 'toolchain_that_is_not_installed'" \
        in mobile["detail"]
    assert "deploy.mobile.latency_ms" not in rows


def test_a_missing_export_function_or_deploy_file_fails_its_paths(fake_task, monkeypatch):
    impl, _ = fake_task
    module = importlib.import_module("fake_deploy_task.pytorch_deploy")
    monkeypatch.delattr(module, "export_web")
    rows = deploy_fake(impl, ["web"])
    assert rows["deploy.web.works"]["ok"] is False
    assert "has no export_web" in rows["deploy.web.works"]["detail"]
    rows = deploy_fake("fake_deploy_task_absent.pytorch_impl", ["server", "web"])
    assert [r["ok"] for r in rows.values()] == [False, False]
    assert "No module named 'fake_deploy_task_absent'" in rows["deploy.web.works"]["detail"]


@pytest.mark.parametrize("outcome", ["runs", "unavailable", "fails", "wrong"])
def test_the_web_runner_outcomes(fake_task, monkeypatch, outcome):
    """D-WEB's ``run_onnx`` stubbed: what its WebRun says becomes the web path's rows."""
    pytest.importorskip("onnx")
    impl, x = fake_task
    seen = {}

    def run_onnx(model_path, inputs, repeats):
        seen.update(inputs=inputs, repeats=repeats, exists=model_path.is_file())
        if outcome == "unavailable":
            return web.WebRun(error="unavailable: no chromium here")
        if outcome == "fails":
            return web.WebRun(error="Error: failed to create the session", versions={"o": "1"})
        outputs = [inputs["pixels"] + (0.5 if outcome == "wrong" else 0.0)]
        return web.WebRun(outputs=outputs, latency_ms=[3.0, 1.0], versions={"ort-web": "9"})

    monkeypatch.setattr(web, "run_onnx", run_onnx)
    rows = deploy_fake(impl, ["web"])
    assert seen["exists"] and seen["repeats"] == 2
    np.testing.assert_array_equal(seen["inputs"]["pixels"], x)
    works = rows["deploy.web.works"]
    if outcome == "runs":
        assert works["ok"] is True and "ort-web 9" in works["detail"]
        assert rows["deploy.web.max_abs_diff"]["value"] == 0.0
        assert rows["deploy.web.latency_ms"]["value"] == 2.0  # median of [3, 1]
    elif outcome == "wrong":
        assert works["ok"] is False and rows["deploy.web.max_abs_diff"]["value"] == 0.5
    elif outcome == "unavailable":
        assert works["ok"] is None and works["value"] is None  # not measured, not failed
    else:
        assert works["ok"] is False and "failed to create the session" in works["detail"]
