"""The category rules are written once: two frameworks offering the same API, one built from
classes (PyTorch's style) and one from factory functions (Trax's style), get the same counts.

Both toy frameworks are written into tmp_path and introspected in the subprocess, as the real
libraries are; then one real surface (torch's, a few seconds) shows what the rules decide.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from fwsurvey.analyzers.library_surface import inventory
from fwsurvey.analyzers.settings import (
    SURFACE_CATEGORIES,
    SurfaceCategory,
    SurfaceSpec,
    SurfaceTypes,
    surface_settings,
)
from fwsurvey.config import load_config

#: Class-based: layers, losses, optimizers and schedules are subclasses of the framework's types.
CLASS_STYLE = {
    "klib/__init__.py": "",
    "klib/base.py": '''
        class Module:
            """Base of every layer."""

            def forward(self, x):
                return x


        class Loss(Module):
            """Base of the losses."""


        class Optimizer:
            """Base of the optimizers."""


        class Scheduler:
            """Base of the schedules."""
        ''',
    "klib/nn.py": '''
        from klib.base import Loss, Module


        class Linear(Module):
            def __init__(self, n_in: int, n_out: int, bias: bool = True):
                self.n = n_out


        class ReLU(Module):
            """Rectified linear unit."""


        class Sequential(Module):
            """Runs modules one after the other."""

            def __init__(self, *args: Module):
                self.args = args


        class Residual(Module):
            def __init__(self, block: "Module", num_layers: int = 1):
                self.block = block


        class MSELoss(Loss):
            def forward(self, prediction, target):
                return 0.0


        class Accuracy(Module):
            def forward(self, prediction, target):
                return 1.0


        class Counter(Module):
            def __init__(self, num_layers=2, visible_layer=False):
                """Counts; its layer parameters are numbers and flags, not sub-layers."""
        ''',
    "klib/optim.py": '''
        from klib.base import Optimizer, Scheduler


        class SGD(Optimizer):
            pass


        class Adam(Optimizer):
            pass


        class StepLR(Scheduler):
            pass


        def clip(grads, max_norm):
            """Clip gradients."""
        ''',
    "klib/data.py": '''
        class Dataset:
            """A map-style dataset."""


        def batch(stream, size):
            """Batch a stream."""
        ''',
    "klib/distributed.py": '''
        class DistError(Exception):
            """A failure in the distributed package."""


        def all_reduce(tensor, group=None):
            """Reduce a tensor."""


        def is_available():
            """Whether this build has it."""
        ''',
    "klib/onnx.py": '''
        def export(model, args, f):
            """Write the model in a format other runtimes load."""


        def is_exporting():
            """Whether an export is running."""
        ''',
}

#: Factory-based: the same API as functions returning instances of the framework's layer type.
FACTORY_STYLE = {
    "flib/__init__.py": "",
    "flib/base.py": '''
        class Layer:
            """Base of every layer."""

            def __init__(self, sublayers=()):
                self.sublayers = sublayers
        ''',
    "flib/layers.py": '''
        from flib.base import Layer


        def Dense(n_units, use_bias=True):
            """Returns a layer that applies a learned affine map (needs its width)."""
            return Layer()


        def Relu():
            return Layer()


        def Serial(*layers):
            """Combinator that applies layers serially."""
            return Layer(layers)


        def Residual(layer) -> Layer:
            return Layer([layer])


        def L2Loss():
            """Returns a layer that computes an L2 loss."""
            return Layer()


        def Accuracy():
            """Returns a layer that computes accuracy against the targets."""
            return Layer()


        def Counter(n_layers=2, visible_layer=False):
            """Returns a layer that counts; its layer parameters are numbers and flags."""
            return Layer()


        def glorot(shape):
            """Returns an initializer for weights of the given shape."""
        ''',
    "flib/optimizers.py": '''
        class Optimizer:
            """Base of the optimizers."""


        def SGD(lr=0.1):
            return Optimizer()


        def Adam(lr: float) -> Optimizer:
            return Optimizer()


        def clip(grads, max_norm):
            """Clip gradients."""
        ''',
    "flib/schedules.py": '''
        def constant(value):
            """Returns an LR schedule that is constant in the step."""
            return lambda step: value
        ''',
    "flib/data.py": '''
        def Dataset(name):
            """A named dataset."""


        def batch(stream, size):
            """Batch a stream."""
        ''',
    "flib/parallel.py": '''
        def pmean(x, axis_name):
            """Mean over the mapped axis."""


        def shapes(x):
            """The shapes of x."""
        ''',
    "flib/export.py": '''
        def save(model, f):
            """Write the model in a format other runtimes load."""


        def describe(model):
            """A text description of the model."""
        ''',
}

CLASS_SPEC = SurfaceSpec({
    "layers": SurfaceCategory(modules=("klib.nn",)),
    "combinators": SurfaceCategory(modules=("klib.nn",)),
    "losses_metrics": SurfaceCategory(modules=("klib.nn",)),
    "optimizers": SurfaceCategory(modules=("klib.optim",)),
    "lr_schedules": SurfaceCategory(modules=("klib.optim",)),
    "data": SurfaceCategory(modules=("klib.data",)),
    "models": SurfaceCategory(),
    "export": SurfaceCategory(modules=("klib.onnx",)),
    "distributed": SurfaceCategory(modules=("klib.distributed",)),
}, SurfaceTypes(layer="klib.base.Module", optimizer="klib.base.Optimizer",
                schedule="klib.base.Scheduler", loss="klib.base.Loss"))

FACTORY_SPEC = SurfaceSpec({
    "layers": SurfaceCategory(modules=("flib.layers",)),
    "combinators": SurfaceCategory(modules=("flib.layers",)),
    "losses_metrics": SurfaceCategory(modules=("flib.layers",)),
    "optimizers": SurfaceCategory(modules=("flib.optimizers",)),
    "lr_schedules": SurfaceCategory(modules=("flib.schedules",)),
    "data": SurfaceCategory(modules=("flib.data",)),
    "models": SurfaceCategory(),
    "export": SurfaceCategory(modules=("flib.export",)),
    "distributed": SurfaceCategory(modules=("flib.parallel",)),
}, SurfaceTypes(layer="flib.base.Layer", optimizer="flib.optimizers.Optimizer"))


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory):
    root = tmp_path_factory.mktemp("frameworks")
    write(root, CLASS_STYLE)
    write(root, FACTORY_STYLE)
    return (inventory("klib", CLASS_SPEC, paths=(str(root),), timeout=60),
            inventory("flib", FACTORY_SPEC, paths=(str(root),), timeout=60))


def by_category(surface) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in surface.symbols:
        out.setdefault(s["category"], []).append(s["symbol"].rsplit(".", 1)[-1])
    return {cat: sorted(names) for cat, names in out.items()}


def test_both_styles_get_the_same_counts(surfaces):
    classes, factories = surfaces
    assert classes.errors == [] and factories.errors == []
    counts = [Counter(s["category"] for s in surface.symbols) for surface in surfaces]
    assert counts[0] == counts[1]
    assert {cat: counts[0][cat] for cat in SURFACE_CATEGORIES} == {
        "layers": 3, "combinators": 2, "losses_metrics": 2, "optimizers": 2,
        "lr_schedules": 1, "data": 2, "models": 0, "export": 1, "distributed": 1}


def test_what_each_rule_took_and_why(surfaces):
    classes, factories = surfaces
    assert by_category(classes) == {
        "layers": ["Counter", "Linear", "ReLU"],  # num_layers, visible_layer: no sub-layers
        "combinators": ["Residual", "Sequential"],
        "losses_metrics": ["Accuracy", "MSELoss"],  # the loss type, or forward(..., target)
        "optimizers": ["Adam", "SGD"],  # not the Optimizer type itself, nor clip
        "lr_schedules": ["StepLR"],
        "data": ["Dataset", "batch"],
        "export": ["export"],  # is_exporting takes no model
        "distributed": ["all_reduce"],  # not the exception, nor is_available
    }
    assert by_category(factories) == {
        "layers": ["Counter", "Dense", "Relu"],  # glorot returns an initializer
        "combinators": ["Residual", "Serial"],
        "losses_metrics": ["Accuracy", "L2Loss"],
        "optimizers": ["Adam", "SGD"],
        "lr_schedules": ["constant"],
        "data": ["Dataset", "batch"],
        "export": ["save"],
        "distributed": ["pmean"],
    }
    basis = {(s["category"], s["symbol"]): s["basis"] for s in factories.symbols}
    # Each way a factory is recognised, stored for a reader to check.
    assert basis[("layers", "flib.layers.Relu")] == (
        "called without arguments: returned a flib.base.Layer")
    assert basis[("layers", "flib.layers.Dense")] == (
        "docstring: Returns a layer that applies a learned affine map (needs its width).")
    assert basis[("combinators", "flib.layers.Residual")] == (
        "return annotation flib.base.Layer; takes sub-layers: parameter layer")
    assert basis[("optimizers", "flib.optimizers.Adam")] == (
        "return annotation flib.optimizers.Optimizer")
    assert basis[("distributed", "flib.parallel.pmean")] == "parameter axis_name"
    cls_basis = {(s["category"], s["symbol"]): s["basis"] for s in classes.symbols}
    assert cls_basis[("combinators", "klib.nn.Sequential")] == (
        "subclass of klib.base.Module; takes sub-layers: parameter args: klib.base.Module")
    assert cls_basis[("losses_metrics", "klib.nn.Accuracy")] == (
        "subclass of klib.base.Module; loss: forward() takes target")


def test_real_torch_surface():
    """torch.nn by the same rules (trax.layers takes 30-90 s to import: counts in the report)."""
    pytest.importorskip("torch")
    config = load_config(Path(__file__).parents[2] / "fwsurvey.toml")
    surface = inventory("pytorch", surface_settings(config)["pytorch"], timeout=300)
    assert surface.errors == []
    got = by_category(surface)
    assert got["combinators"] == ["DataParallel", "ModuleDict", "ModuleList", "Sequential",
                                  "TransformerDecoder", "TransformerEncoder"]
    assert "ParameterList" in got["layers"] and "Module" not in got["layers"]
    assert "CrossEntropyLoss" in got["losses_metrics"] and "MSELoss" not in got["layers"]
    assert sorted(s["symbol"] for s in surface.symbols if s["category"] == "export") == [
        "torch.export.save", "torch.jit.save", "torch.onnx.export"]
    assert "Adam" in got["optimizers"] and "Optimizer" not in got["optimizers"]
    assert {"all_reduce", "DistributedDataParallel"} <= set(got["distributed"])
    assert "is_available" not in got["distributed"]
