"""Library surface: a small package built in tmp_path, introspected in a subprocess.

The category rules themselves (both framework styles) are in test_categories.py.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from fwsurvey.analyzers.library_surface import inventory, surface_index, surface_records
from fwsurvey.analyzers.settings import (
    CATEGORY_RULES,
    SurfaceCategory,
    SurfaceSpec,
    SurfaceTypes,
    surface_settings,
)
from fwsurvey.config import ConfigError, parse_config

FILES = {
    "toylib/__init__.py": "from toylib.layers import *\nfrom toylib import optim\n",
    "toylib/base.py": '''
        class Layer:
            """The base of every layer."""

            def forward(self, x):
                return x

            def save(self, path):
                """Write the weights."""


        def save_model(model, f):
            """Write a model in a format another runtime loads."""
        ''',
    "toylib/layers.py": '''
        from toylib.base import Layer

        __all__ = ["Dense", "Relu", "Serial", "helper"]


        class Dense(Layer):
            """A dense layer.

            Example::

                Dense(3)
            """

            def __init__(self, n, use_bias=True, name="dense", init=object()):
                self.n = n


        class Relu(Layer):
            pass


        def Serial(*layers):
            """Chain layers.

            >>> Serial(Dense(2))
            """


        def helper():
            return None


        class NotExported:
            """Not in __all__."""
        ''',
    "toylib/optim.py": '''
        from math import sqrt


        class Optimizer:
            """Base."""


        class SGD(Optimizer):
            """Plain SGD."""

            def __init__(self, lr=0.01):
                self.lr = sqrt(lr)


        _private = 1
        ''',
}

SPEC = SurfaceSpec({
    "layers": SurfaceCategory(modules=("toylib",)),
    "combinators": SurfaceCategory(modules=("toylib",)),
    "optimizers": SurfaceCategory(modules=("toylib.optim",)),
    "export": SurfaceCategory(modules=("toylib.base", "toylib.nothing")),
    "models": SurfaceCategory(note="no zoo"),
}, SurfaceTypes(layer="toylib.base.Layer", optimizer="toylib.optim.Optimizer"))


@pytest.fixture(scope="module")
def surface(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return inventory("toy", SPEC, paths=(str(root),), timeout=60)


def test_categories_docs_and_examples(surface):
    by = {(s["category"], s["symbol"]): s for s in surface.symbols}
    assert sorted(by) == [
        ("combinators", "toylib.Serial"),  # takes *layers
        ("export", "toylib.base.save_model"),  # takes a model and a file
        ("layers", "toylib.Dense"), ("layers", "toylib.Relu"),  # helper returns no layer
        ("optimizers", "toylib.optim.SGD"),  # Optimizer itself excluded; sqrt is math's
    ]
    dense = by[("layers", "toylib.Dense")]
    assert dense["kind"] == "class" and dense["defined_as"] == "toylib.layers.Dense"
    assert dense["basis"] == "subclass of toylib.base.Layer"
    assert dense["has_docstring"] and dense["has_example"]  # an Example:: section
    serial = by[("combinators", "toylib.Serial")]
    assert serial["has_example"]  # a doctest
    assert serial["basis"] == ("docstring: Chain layers.; takes sub-layers: parameter layers")
    assert not by[("layers", "toylib.Relu")]["has_docstring"]  # the base's doc is not its own
    assert surface.errors == [{"item": "toylib.nothing", "kind": "import_error",
                               "message": "export: ModuleNotFoundError: No module named "
                                          "'toylib.nothing'"}]
    assert "toylib" not in sys.modules  # introspected in its own process only


def test_index_maps_definitions_to_public_names(surface):
    index = surface_index([surface])
    assert index.canonical_name("toylib.layers.Dense") == "toylib.Dense"
    assert index.defaults["toylib.Dense"] == {"use_bias": True, "name": "dense"}
    assert {"__init__", "forward", "save"} <= set(index.methods["toylib.Dense"])
    assert index.defaults["toylib.optim.SGD"] == {"lr": 0.01}


def test_summary_rows(surface):
    records = surface_records(surface, SPEC, fetched_at="2026-11-27T12:00:00+00:00",
                              package_version="0.1", spec_sha256="abc")
    summary = {r.row["category"]: r.row for r in records if r.table == "library_summary"}
    assert list(summary) == ["layers", "combinators", "optimizers", "models", "export"]
    layers = summary["layers"]
    assert (layers["symbols"], layers["classes"], layers["functions"], layers["documented"],
            layers["with_example"]) == (2, 2, 0, 1, 1)
    assert layers["rule"] == CATEGORY_RULES["layers"]
    assert summary["models"]["symbols"] == 0 and summary["models"]["note"] == "no zoo"
    symbols = [r.row for r in records if r.table == "library_symbols"]
    assert all(r["basis"] for r in symbols)
    assert {r.table for r in records} == {"library_symbols", "library_summary", "library_index"}


def test_surface_config_errors_name_the_key(tmp_path):
    base = {"frameworks": {"a": {"name": "A"}, "b": {"name": "B"}}}

    def check(analyzers, key, message):
        config = parse_config({**base, "analyzers": analyzers}, tmp_path / "fwsurvey.toml")
        with pytest.raises(ConfigError) as info:
            surface_settings(config)
        assert str(info.value) == f"fwsurvey.toml: {key}: {message}"

    check({"library_surface": {"c": {}}}, "analyzers.library_surface.c",
          "'c' is not a configured framework")
    check({"library_surface": {"a": {"layerz": {}}}}, "analyzers.library_surface.a.layerz",
          "unknown key (misspelt?)")
    check({"library_surface": {"a": {"types": {"layers": "x.Layer"}}}},
          "analyzers.library_surface.a.types.layers", "unknown key (misspelt?)")
    check({"library_surface": {"a": {"layers": {"modules": "x"}}}},
          "analyzers.library_surface.a.layers.modules",
          "expected a list of non-empty strings, got 'x'")
    check({"library_surface": {"a": {"layers": {"bases": ["x.Layer"]}}}},
          "analyzers.library_surface.a.layers.bases", "unknown key (misspelt?)")


def test_repository_config_is_valid():
    from fwsurvey.analyzers.settings import ergonomics_settings
    from fwsurvey.config import load_config

    config = load_config(Path(__file__).parents[2] / "fwsurvey.toml")
    assert set(surface_settings(config)) == {"pytorch", "trax"}
    assert ergonomics_settings(config).workers <= 2
