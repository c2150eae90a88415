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
