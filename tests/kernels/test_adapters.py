"""The framework adapters: the only place that knows a framework, and cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fwsurvey.kernels.adapters import ADAPTERS, MODES, adapter_for
from fwsurvey.kernels.tasks import discover

KERNELS = Path(__file__).parents[2] / "kernels"
#: Every name a module could branch on a framework with.
FRAMEWORK_WORDS = set(ADAPTERS) | {mode for modes in MODES.values() for mode in modes}


@pytest.mark.parametrize("module", ["harness.py", "matrix.py"])
def test_harness_and_matrix_never_name_a_framework(module):
    tree = ast.parse((KERNELS / module).read_text(encoding="utf-8"))
    named = sorted({(node.value, node.lineno) for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and node.value in FRAMEWORK_WORDS})
    assert not named, f"{module} names frameworks or modes (ask the adapter): {named}"


def test_every_implemented_framework_has_an_adapter():
    implemented = {fw for task in discover().values() for fw in task.frameworks}
    assert implemented <= set(ADAPTERS)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_an_adapter_is_consistent(name):
    adapter = ADAPTERS[name]
    assert adapter.name == name and MODES[name] == adapter.mode_names
    assert adapter.scaling_mode == adapter.mode_names[0]
    assert {v.mode for v in adapter.dynamic_variants} <= set(adapter.mode_names)
    assert adapter.engine and adapter.comm_note and adapter.packages


def test_what_each_framework_runs_in():
    assert MODES == {"pytorch": ("torch-eager", "torch-compile"), "jax": ("jax-jit",),
                     "trax": ("trax",)}
    assert ADAPTERS["pytorch"].mode_spec("torch-compile") == {"compile": True}
    assert ADAPTERS["pytorch"].backend("cpu") == "gloo"
    assert ADAPTERS["pytorch"].backend("cuda") == "nccl"
    assert ADAPTERS["trax"].backend("cuda") == "xla"
    assert ADAPTERS["trax"].scaling_envs == ("main", "jax-legacy")
    assert ADAPTERS["pytorch"].launcher(2)[:2] == ("-m", "torch.distributed.run")
    assert ADAPTERS["jax"].launcher(2) == ()


def test_an_unknown_framework_names_the_known_ones():
    with pytest.raises(ValueError, match=r"^'pytroch' is not a framework with an adapter; "
                                         r"known: jax, pytorch, trax$"):
        adapter_for("pytroch")


def test_the_registry_imports_no_framework():
    """The harness measures import time in a fresh process: the registry must not add to it."""
    code = ("import sys, fwsurvey.kernels.adapters, fwsurvey.kernels.harness; "
            "print(sorted(m for m in ('torch', 'jax', 'trax', 'tensorflow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_pytorch_hooks_place_compile_and_autocast_for_the_file():
    """Contract A: what a PyTorch user leaves out of a scored file, its adapter applies."""
    import torch
    from torch._dynamo.eval_frame import OptimizedModule

    adapter = ADAPTERS["pytorch"]
    spec = {"device": "cpu", "precision": "fp32", "compile": True, "dynamic": None}
    model = adapter.prepare_model(torch.nn.Linear(4, 2), spec)
    assert isinstance(model, OptimizedModule)
    assert adapter.prepare_model(model, spec) is model  # a file that compiled: not twice
    assert adapter.param_platform(model, None) == "cpu"
    data = {"train": [torch.ones(2, 4)], "test": (torch.ones(1), torch.zeros(1))}
    assert adapter.place_data(data, spec) is data  # on the host nothing moves
    x = torch.ones(2, 4)
    with adapter.precision_context({**spec, "precision": "bf16"}):
        assert (x @ x.T).dtype == torch.bfloat16
    with adapter.precision_context(spec):
        assert (x @ x.T).dtype == torch.float32
    assert adapter.matmul_precision("fp32", "cpu") == "fp32"


def test_jax_hooks_are_identity_and_report_where_params_live():
    import jax.numpy as jnp

    adapter = ADAPTERS["jax"]
    spec = {"device": "cpu", "precision": "bf16"}
    params = {"w": jnp.ones(3)}
    assert adapter.prepare_model(params, spec) is params
    data = {"train": iter([1])}
    assert adapter.place_data(data, spec) is data
    assert adapter.param_platform(params, None) == "cpu"
    assert adapter.check_backend("cpu") is None
    assert "has no GPU backend here" in adapter.check_backend("cuda")  # CPU-only jaxlib


def test_the_mfu_peak_is_the_arithmetic_the_matmuls_used():
    from fwsurvey.kernels.flops import device_peak_flops

    assert device_peak_flops("NVIDIA H200", "tf32") == 494.7e12
    assert device_peak_flops("NVIDIA H100 80GB HBM3", "fp32") == 67e12
    assert device_peak_flops("NVIDIA A100-SXM4-80GB", "bf16") == 312e12
    assert device_peak_flops("cpu (x86_64, 2 cores)", "fp32") is None


def test_every_framework_trains_fp32_and_bf16_only_as_a_second_comparison():
    spec = {"bf16": ["pytorch", "jax"]}
    assert ADAPTERS["pytorch"].precisions("cuda", "full", spec) == ("fp32", "bf16")
    assert ADAPTERS["trax"].precisions("cuda", "full", spec) == ("fp32",)
    assert ADAPTERS["pytorch"].precisions("cpu", "full", spec) == ("fp32",)
    assert ADAPTERS["jax"].precisions("cuda", "quick", spec) == ("fp32",)
