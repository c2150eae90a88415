"""The hybrid-code experiment: SciPy inside the step, and what kernels/hybrid_numpy's checks record.

* the host-computed GELU (scipy.special.ndtr behind torch.autograd.Function, and behind
  jax.pure_callback + jax.custom_vjp) gives the framework's own exact GELU's values and
  gradients, so the hybrid and pure tasks train the same function;
* tiny real trainings through the harness, PyTorch eager and Trax: the step with SciPy in it
  runs, the loss falls, and the checks rows say so (runs, graph breaks, DLPack);
* the DLPack exchange is read off real buffers: the check sees a copy where one is made.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fwsurvey.kernels import harness
from fwsurvey.kernels.hybrid_numpy import checks as hybrid_checks
from fwsurvey.kernels.tasks import discover

TASKS = discover()
SHORT = {"steps": 30, "warmup_steps": 2}


def run_short(task: str, framework: str, mode: str, tmp_path) -> dict:
    spec = {**TASKS[task].profile("quick"), **SHORT, "workdir": str(tmp_path)}
    return harness.run({"framework": framework, "mode": mode, "spec": spec, "device": "cpu",
                        "module": TASKS[task].impl_module(framework)})


def by_name(result: dict) -> dict[str, dict]:
    return {row["check"]: row for row in result["checks"]}


def test_the_pair_of_tasks_differs_only_in_the_step_call():
    hybrid, pure = TASKS["hybrid_numpy"], TASKS["hybrid_pure"]
    assert hybrid.frameworks == pure.frameworks == ("jax", "pytorch", "trax")
    # The baseline runs in each framework's default mode only (its spec's ``modes``).
    strip = {"description", "modes"}
    assert pure.spec["modes"] == ["torch-eager", "trax", "jax-jit"]
    assert ({k: v for k, v in hybrid.spec.items() if k not in strip}
            == {k: v for k, v in pure.spec.items() if k not in strip})


def test_the_scipy_gelu_matches_torchs_gelu_in_value_and_gradient():
    import torch

    module = importlib.import_module(TASKS["hybrid_numpy"].impl_module("pytorch"))
    x = torch.linspace(-4, 4, 101, dtype=torch.float32, requires_grad=True)
    y = module.Gelu()(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = torch.nn.GELU()(x_ref)
    (grad_ref,) = torch.autograd.grad(y_ref.sum(), x_ref)
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), grad_ref.numpy(), atol=1e-5)
    assert float(grad[0]) < 0 < float(grad[-1])  # GELU dips below zero before rising


@pytest.mark.parametrize("framework", ["jax", "trax"])
def test_the_callback_gelu_matches_jaxs_gelu_under_jit(framework):
    import jax

    module = importlib.import_module(TASKS["hybrid_numpy"].impl_module(framework))
    x = np.linspace(-4, 4, 101, dtype=np.float32)
    value, grad = jax.jit(jax.value_and_grad(lambda v: module.scipy_gelu(v).sum()))(x)
    ref_value, ref_grad = jax.value_and_grad(
        lambda v: jax.nn.gelu(v, approximate=False).sum())(x)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-5)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), atol=1e-5)


@pytest.mark.parametrize("framework, mode", [("pytorch", "torch-eager"), ("trax", "trax")])
def test_a_short_hybrid_training_runs_and_records_its_checks(tmp_path, framework, mode):
    result = run_short("hybrid_numpy", framework, mode, tmp_path)
    assert result["status"] == "ok"
    losses = result["losses"]
    assert len(losses) == SHORT["steps"]
    assert np.mean(losses[-5:]) < 0.9 * losses[0], (losses[0], losses[-5:])
    rows = by_name(result)
    assert set(rows) == {"runs", "graph_breaks", "dlpack_zero_copy"}
    assert rows["runs"]["ok"] is True and rows["runs"]["value"] == 1.0
    # Eager PyTorch and Trax have no graph-breaking compiler: nothing to count.
    assert rows["graph_breaks"]["value"] is None
    dlpack = rows["dlpack_zero_copy"]
    assert "to_numpy: shared" in dlpack["detail"]
    assert "from_numpy_64B_aligned: shared" in dlpack["detail"]
    assert dlpack["ok"] is (dlpack["value"] == 3.0)


def test_a_failed_job_is_recorded_as_not_running():
    rows = {r["check"]: r for r in hybrid_checks.checks(
        "jax", "jax-jit", {"device": "cpu"}, None,
        {"status": "crashed", "error": "XlaRuntimeError: callback failed"})}
    assert rows["runs"]["ok"] is False and rows["runs"]["value"] == 0.0
    assert "XlaRuntimeError" in rows["runs"]["detail"]


def test_the_dlpack_check_tells_a_shared_buffer_from_a_copy(monkeypatch):
    import torch

    exchange = hybrid_checks.dlpack_exchange("pytorch", "cpu")
    assert exchange == {"to_numpy": True, "from_numpy_64B_aligned": True,
                        "from_numpy_16B_aligned": True}
    # A copying importer (what torch.tensor does) is seen as a copy, not as shared.
    monkeypatch.setattr(torch, "from_dlpack", lambda a: torch.tensor(np.asarray(a)))
    exchange = hybrid_checks.dlpack_exchange("pytorch", "cpu")
    assert exchange["from_numpy_64B_aligned"] is False
    assert exchange["to_numpy"] is True


def test_jax_copies_a_numpy_buffer_that_is_not_64_byte_aligned():
    """The evidence the check records for JAX (and Trax), from real buffers."""
    exchange = hybrid_checks.dlpack_exchange("jax", "cpu")
    assert exchange["to_numpy"] is True
    assert exchange["from_numpy_64B_aligned"] is True
    assert exchange["from_numpy_16B_aligned"] is False


@pytest.mark.parametrize("torch_concepts, expected", [
    (["torch.autograd.Function", "torch.from_numpy"], (0.0, 1.0, "a")),
    # A PyTorch file that registers the host call as a custom op pays the same cost.
    (["torch.autograd.Function", "torch.library.custom_op"], (1.0, 1.0, "even")),
])
def test_host_callback_apis_are_read_from_the_files(tmp_path, torch_concepts, expected):
    """``hybrid_callback`` counts, from each file's concept names as the analyzers stored
    them, the host-callback APIs called: one list for both sides, so either side can lose."""
    import json
    from pathlib import Path

    from fwsurvey.claims.stage import run_claims
    from fwsurvey.config import parse_config
    from fwsurvey.store import Store

    config = parse_config({
        "survey": {"compare": ["pytorch", "trax"], "database": "t.db"},
        "frameworks": {"pytorch": {"name": "PyTorch", "pypi": ["torch"]},
                       "trax": {"name": "Trax", "pypi": ["trax"]}}},
        tmp_path / "fwsurvey.toml")
    store = Store(tmp_path / "t.db")
    run = store.start_run("test", ["analyze"], {})
    concepts = {"pytorch": torch_concepts,
                "trax": ["jax.custom_vjp", "jax.pure_callback", "trax.layers.Fn"]}
    for framework, names in concepts.items():
        store.db.table("ergonomics_metrics").insert({
            "run_id": run, "source": "ergonomics", "fetched_at": "2026-12-01T00:00:00+00:00",
            "path": f"kernels/hybrid_numpy/{framework}_impl.py", "task": "hybrid_numpy",
            "framework": framework, "phase": "all", "concept_names": json.dumps(names)})
    store.db.conn.commit()
    run_claims(store, run, config, Path(__file__).parents[2] / "claims.toml")
    [row] = store.query("SELECT value_a, value_b, favours FROM claim_evidence"
                        " WHERE run_id = ? AND metric = 'hybrid_callback'", [run])
    assert (row["value_a"], row["value_b"], row["favours"]) == expected
