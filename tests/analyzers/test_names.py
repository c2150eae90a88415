"""The names pass (fwsurvey.analyzers.names) against libcst's QualifiedNameProvider.

The analysis resolves names with its own pass; libcst's full scope analysis stays here only,
as the reference. File by file, over the paired implementations, the analyzer test corpus
and the tricky snippets below, the two must give the same qualified names for every name
and attribute chain outside import statements, and the same metric rows. Where they differ
by design (see fwsurvey.analyzers.names), the rule is stated and asserted:

1. only a chain of plain names has a qualified name: libcst names ``.item`` of a returned
   value after the callee (``torch.nn.functional.nll_loss.item``), and a call of a call or a
   subscript after what was called or subscripted; we give them no name;
2. the name a ``def`` or ``class`` statement binds is not a use of an import of that name.
"""

from __future__ import annotations

import ast
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import (
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
)
from radon.raw import analyze as radon_raw

from fwsurvey.analyzers import ergonomics
from fwsurvey.analyzers.cognitive import max_nesting
from fwsurvey.analyzers.ergonomics import LibraryIndex, analyze_source
from fwsurvey.analyzers.names import ModuleNames, _full_name, scan
from tests.analyzers import snippets

REPO = Path(__file__).resolve().parents[2]
IMPORTS = {"pytorch": ("torch",), "trax": ("trax",), "jax": ("jax",), "other": ("a", "os")}

TRICKY = {
    "aliases": """
import torch
import torch.nn
import torch.nn as nn, torch.optim as optim
from torch.nn import functional as F, Linear
from torch import (nn as tnn, cuda)
x = torch.nn.Linear(1, 2)
y = nn.Conv2d(1, 2, 3), tnn.ReLU(), F.relu(x), Linear(2, 3), cuda.is_available()
z = optim.SGD([], lr=0.1).step()
torch.backends.cudnn.benchmark = True
""",
    "shadowing": """
import torch.nn as nn
from torch import optim
import jax.numpy as jnp

def params(nn, x=nn.Linear):  # a parameter; the default is read outside
    return nn.Linear(x)

def local():
    before = optim.SGD  # read before the local binding
    optim = 3
    return optim.Adam, before

def rebinds():
    jnp = None
    return jnp.zeros(3)

nn = nn  # a module-level rebinding keeps the import's meaning (as libcst)
del jnp  # del does not unbind (as libcst)
w = jnp.ones(2), nn.Module
""",
    "relative_and_star": """
from . import sibling
from .pkg import thing as th
from ..up import *
from os.path import *
from torch.nn import *
sibling.f(th.g(), join("a", "b"), Linear(1, 2))
""",
    "chained_calls": """
import torch
import torch.nn.functional as F

def step(output, target, model):
    loss = F.nll_loss(output, target).item()
    out = torch.nn.Linear(2, 2)(output)
    first = torch.randn(3)[0].item()
    return torch.zeros(2).to(torch.float32).sum().backward(), loss, out, first
""",
    "comprehensions_lambdas": """
import torch
from torch import nn
a = [torch.zeros(i) for i in range(3) if torch.cuda.is_available()]
b = {nn: torch.ones(1) for nn in ("x", "y")}
c = [nn.Linear for _ in range(2)]
d = (torch for torch in range(3))
e = lambda torch: torch.zeros(1)
f = lambda x=torch.ones(1): nn.ReLU()(x)
g = {k: v for k, v in zip(a, b) for torch in [k] if torch}
h = [y for x in [torch.tensor([1])] for y in x]
""",
    "decorators_nested_classes": """
import functools
import jax
from jax import numpy as jnp
from torch.nn.functional import relu

@jax.jit
@functools.partial(jax.vmap, in_axes=0)
def f(x):
    def inner(y):
        return jnp.sum(y) + relu(y)
    return inner(x)

def relu(x):  # the def binds relu; it is not a use of torch's relu
    return x

class Model:
    jnp = 1  # a class attribute: not visible in the methods
    layer = jnp + 1
    def apply(self, x):
        return jnp.tanh(x), self.jnp, Model.jnp

    class Inner(jax.tree_util.Partial):
        pass
""",
    "global_nonlocal": """
import torch
import jax

def g():
    global torch
    torch = None
    return torch.zeros(1)

def outer():
    jax = 1
    def inner():
        nonlocal jax
        jax = 2
        return jax.numpy
    return inner, jax.grad

def later():
    return late.thing()

import os as late
""",
    "annotations_fstrings_walrus": """
from __future__ import annotations
import torch
from typing import Optional

def f(x: torch.Tensor, y: Optional[torch.dtype] = None) -> torch.Tensor:
    z: torch.Size = x.shape
    if (n := torch.numel(x)) > 1:
        print(f"{torch.__version__} {n} {x!r:>{torch.get_num_threads()}}")
    with torch.no_grad() as ctx, torch.enable_grad():
        pass
    try:
        pass
    except torch.cuda.OutOfMemoryError as torch_error:
        raise
    for torch.manual_seed in []:
        pass
    match x:
        case torch.Tensor(shape=s):
            pass
    return z
""",
}


def corpus() -> dict[str, str]:
    """Every file the comparison covers, by name."""
    files = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
             for p in sorted(REPO.glob("kernels/*/*_impl.py"))}
    assert len(files) >= 10, "the paired implementations were not found"
    for name in ("TORCH", "TRAX", "JAX"):
        files[f"snippets.{name}"] = getattr(snippets, name)
    for path in sorted((REPO / "tests" / "analyzers").glob("*.py")):
        files[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    files.update({f"tricky.{k}": v for k, v in TRICKY.items()})
    return files


CORPUS = corpus()


def libcst_names(module: cst.Module) -> Callable[[cst.CSTNode], frozenset[str]]:
    """QualifiedNameProvider's imported names of a node, raw."""
    found = MetadataWrapper(module, unsafe_skip_copy=True).resolve(QualifiedNameProvider)

    def names(node: cst.CSTNode) -> frozenset[str]:
        value = found.get(node, ())
        value = value() if callable(value) else value  # libcst computes them lazily
        return frozenset(q.name for q in value if q.source is QualifiedNameSource.IMPORT)

    return names


def libcst_resolver(module: cst.Module,
                    found: ModuleNames) -> Callable[[cst.CSTNode], Iterable[str]]:
    """QualifiedNameProvider under rule 1 (a chain of plain names, or no name)."""
    names = libcst_names(module)
    return lambda node: names(node) if _full_name(node) is not None else frozenset()


def expressions(module: cst.Module) -> list[cst.CSTNode]:
    """Every Name and Attribute outside imports, but the names def and class bind (rule 2)."""
    out: list[cst.CSTNode] = []

    def walk(node: cst.CSTNode, binds: bool) -> None:
        if isinstance(node, (cst.Import, cst.ImportFrom)):
            return
        if isinstance(node, (cst.Name, cst.Attribute)) and not binds:
            out.append(node)
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            for child in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(child, cst.CSTNode):
                    walk(child, f.name == "name" and isinstance(node, (cst.FunctionDef,
                                                                        cst.ClassDef)))

    walk(module, False)
    return out


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_same_names_as_libcst(name):
    module = cst.parse_module(CORPUS[name])
    found = scan(module)
    reference = libcst_resolver(module, found)
    nodes = expressions(module)
    differ = [(module.code_for_node(n), sorted(found.names(n)), sorted(reference(n)))
              for n in nodes if found.names(n) != reference(n)]
    assert differ == []
    assert any(found.names(n) for n in nodes) or name.startswith("tests/")


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_same_metric_rows_as_libcst(name):
    def rows(resolver):
        return analyze_source(CORPUS[name], framework=None, imports=IMPORTS,
                              ceremony=snippets.CEREMONY, index=LibraryIndex(),
                              resolver=resolver)

    assert rows(ergonomics._own_names) == rows(libcst_resolver)


def names_by_code(text: str) -> dict[str, list[str]]:
    module = cst.parse_module(text)
    found = scan(module)
    return {module.code_for_node(n): sorted(found.names(n))
            for n in expressions(module) if found.names(n)}


def test_known_answers_of_tricky_snippets():
    aliases = names_by_code(TRICKY["aliases"])
    assert aliases["torch.nn.Linear"] == ["torch.nn.Linear"]
    assert aliases["nn.Conv2d"] == ["torch.nn.Conv2d"]
    assert aliases["tnn.ReLU"] == ["torch.nn.ReLU"]
    assert aliases["F.relu"] == ["torch.nn.functional.relu"]
    assert aliases["Linear"] == ["torch.nn.Linear"]
    assert aliases["cuda.is_available"] == ["torch.cuda.is_available"]
    assert aliases["torch.backends.cudnn.benchmark"] == ["torch.backends.cudnn.benchmark"]
    assert "optim.SGD([], lr=0.1).step" not in aliases  # rule 1

    shadow = names_by_code(TRICKY["shadowing"])
    assert shadow["nn.Linear"] == ["torch.nn.Linear"]  # the default, read outside
    # Read before the local binding, the name is the import but the chain is not (as libcst:
    # a name looks at the bindings before it, a chain at the scope it is in).
    assert shadow["optim"] == ["torch.optim"] and "optim.SGD" not in shadow
    assert "optim.Adam" not in shadow and "jnp.zeros" not in shadow
    assert shadow["jnp.ones"] == ["jax.numpy.ones"] and shadow["nn.Module"] == ["torch.nn.Module"]

    module = cst.parse_module(TRICKY["relative_and_star"])
    found = scan(module)
    assert found.star_imports == ["..up", "os.path", "torch.nn"]
    assert ("th", ".pkg.thing") in found.imports
    star = names_by_code(TRICKY["relative_and_star"])
    assert star == {"sibling": [".sibling"], "sibling.f": [".sibling.f"],
                    "th": [".pkg.thing"], "th.g": [".pkg.thing.g"]}  # nothing via a star

    nested = names_by_code(TRICKY["decorators_nested_classes"])
    assert nested["jax.jit"] == ["jax.jit"] and nested["jnp.sum"] == ["jax.numpy.sum"]
    assert nested["jnp.tanh"] == ["jax.numpy.tanh"]  # the class attribute is not visible
    assert nested["relu"] == ["torch.nn.functional.relu"]  # in inner: the import (as libcst)

    scoped = names_by_code(TRICKY["global_nonlocal"])
    assert scoped["torch.zeros"] == ["torch.zeros"]  # global: the module's bindings
    assert "jax.numpy" not in scoped and "jax.grad" not in scoped
    assert scoped["late.thing"] == ["os.thing"]  # a function runs after the whole module


def analyze(text: str, resolver=ergonomics._own_names) -> dict:
    return analyze_source(text, framework="pytorch", imports=IMPORTS,
                          ceremony=snippets.CEREMONY, index=LibraryIndex(),
                          resolver=resolver)["phases"][0]


def test_rule_1_no_name_for_a_method_of_a_returned_value():
    # pytorch/examples mnist/main.py
    text = ("import torch.nn.functional as F\n"
            "def test(output, target):\n"
            "    return F.nll_loss(output, target, reduction='sum').item()\n")
    module = cst.parse_module(text)
    outer = module.body[1].body.body[0].body[0].value.func  # the .item attribute
    assert libcst_names(module)(outer) == {"torch.nn.functional.nll_loss.item"}
    assert scan(module).names(outer) == frozenset()
    row = analyze(text)
    assert row["concept_names"] == ["torch.nn.functional.nll_loss"]
    assert (row["call_sites"], row["positional_args"], row["keyword_args"]) == (1, 2, 1)
    assert row["ceremony"] == {"item": 1}
    # With libcst's raw names .item's call is a framework call site too (of no arguments).
    raw = analyze(text, resolver=lambda module, found: libcst_names(module))
    assert (raw["call_sites"], raw["positional_args"], raw["keyword_args"]) == (2, 2, 1)

    # A call of a call: the layer is built once and called once; one call of Linear.
    row = analyze("import torch\ny = torch.nn.Linear(2, 2)(torch.ones(2))\n")
    assert row["concept_names"] == ["torch.nn.Linear", "torch.ones"]
    assert (row["call_sites"], row["positional_args"]) == (2, 3)


def test_rule_2_a_def_is_not_a_use_of_an_import():
    text = "from torch.nn.functional import relu\ndef relu(x):\n    return x\n"
    module = cst.parse_module(text)
    name = module.body[1].name
    assert libcst_names(module)(name) == {"torch.nn.functional.relu"}
    assert scan(module).names(name) == frozenset()
    assert analyze(text)["concepts"] == 0


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_statement_lines_and_one_walk_equal_what_they_replace(name):
    text = CORPUS[name]
    module, tree = cst.parse_module(text), ast.parse(text)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    assert ergonomics._statement_lines(module, tree) == [
        positions[s].start.line for s in module.body]
    calls = sum(isinstance(n, ast.Call) for n in ast.walk(tree))
    roots: Counter = Counter()
    for node in ast.walk(tree):  # what imported_roots counted before it joined the one walk
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots[node.module.split(".")[0]] += 1
    assert ergonomics._walk_tree(tree) == (calls, max_nesting(tree), roots)
    assert ergonomics.raw_analyze(text) == radon_raw(text)


RAW_CASES = [
    "x = 1\n\n  y = x + 2\n",
    "if x: return 0  # two logical lines\nelse:\n    pass\n",
    "a = 1; b = 2\n# a comment\n'''doc\n\nstring'''\n'one line doc'\n",
    "f(a,\n  b)  # ok\nz = [\n1,\n]\n",
    "s = 'a' \\\n    'b'\nx = a$b\nt = a ! b\n",
    "def f():\n    \"\"\"Doc.\"\"\"\n    return (\n        1)\n",
    "x = 0777 + 1__0\n~y@z\n",
    # Lines raw_analyze counts untokenized: brackets closed on the line, colons (radon counts
    # 2 logical lines when one is not last), comments; and their neighbours that are not.
    "y = x[1:2]\nif a: b\ndef f(x, *a, **k) -> int:  # c: d\n    return {a: b[::2]}  # x\n"
    "# only: a (comment\n  #indented\nz = (a]\nw = (x := 1)\nf(a)(b)[c]\n",
    "t = f(a,\n  b)  # open\n)\nu = g()) + (\n1)\nv = h(\n# (\n)\nk = {\n'a': 1}\n",
    "s = 'x'  # quote\nq = [a, \"#\"]  # hash in a string\nif (a and\n    b):\n    c: int = 1\n",
]


@pytest.mark.parametrize("text", RAW_CASES)
def test_raw_metrics_equal_radons(text):
    try:
        expected = radon_raw(text)
    except SyntaxError as exc:
        with pytest.raises(SyntaxError, match=str(exc)):
            ergonomics.raw_analyze(text)
    else:
        assert ergonomics.raw_analyze(text) == expected
