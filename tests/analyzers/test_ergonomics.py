"""Ergonomics of one file: known answers worked out by hand, radon parity, bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import radon
from radon.complexity import cc_visit
from radon.metrics import h_visit, mi_visit
from radon.raw import analyze as radon_raw
from radon.visitors import ComplexityVisitor

from fwsurvey.analyzers.cognitive import cognitive_complexity, max_nesting
from fwsurvey.analyzers.ergonomics import LibraryIndex, analyze_source
from fwsurvey.analyzers.measure import measure, measure_all
from fwsurvey.analyzers.phases import split_phases
from fwsurvey.analyzers.settings import ErgonomicsSettings
from tests.analyzers.snippets import CEREMONY, IMPORTS, JAX, TORCH, TRAX

INDEX = LibraryIndex(
    canonical={"torch.nn.modules.linear.Linear": "torch.nn.Linear",
               "trax.layers.core.Dense": "trax.layers.Dense"},
    defaults={"torch.nn.Linear": {"bias": True, "device": None},
              "trax.layers.Dense": {"use_bias": True}},
    methods={"torch.nn.Module": ("__init__", "eval", "forward", "parameters")},
)
SETTINGS = ErgonomicsSettings(kernels=Path("."), workers=1, max_file_bytes=10_000,
                              ceremony=CEREMONY, imports=IMPORTS)


def run(text: str, framework: str | None = None, index: LibraryIndex = INDEX) -> dict:
    return analyze_source(text, framework=framework, imports=IMPORTS, ceremony=CEREMONY,
                          index=index)


def phase(result: dict, name: str) -> dict:
    return next(p for p in result["phases"] if p["phase"] == name)


def test_pytorch_snippet_known_answers():
    result = run(TORCH)
    assert result["framework"] == "pytorch"  # from its imports
    assert result["phase_split"] == "markers"
    assert [p["phase"] for p in result["phases"]] == ["all", "preamble", "model", "training"]
    whole = phase(result, "all")
    # nn.Module, nn.Linear, optim.SGD, nn.functional.mse_loss, torch.no_grad
    assert whole["concept_names"] == ["torch.nn.Linear", "torch.nn.Module",
                                      "torch.nn.functional.mse_loss", "torch.no_grad",
                                      "torch.optim.SGD"]
    # Linear(4, 2, bias=True), SGD(params, lr=0.1), mse_loss(model(x), y), no_grad()
    assert (whole["call_sites"], whole["positional_args"], whole["keyword_args"]) == (4, 5, 2)
    assert whole["args_per_call"] == 1.75
    assert whole["default_keywords"] == 1  # bias=True is Linear's default
    assert whole["framework_subclasses"] == 1
    assert whole["overridden_methods"] == 2  # __init__ and forward; helper is not Module's
    # zero_grad, backward, step, eval, no_grad, item
    assert whole["ceremony_calls"] == 6
    assert whole["ceremony"] == {"backward": 1, "eval": 1, "item": 1, "no_grad": 1,
                                 "step": 1, "zero_grad": 1}
    assert whole["cognitive"] == 2  # for (+1), if inside with (+1: with does not nest)
    assert whole["max_nesting"] == 3  # def > with > if
    model, training = phase(result, "model"), phase(result, "training")
    assert (model["start_line"], model["end_line"]) == (6, 18)  # marker to the line before the next
    assert model["concept_names"] == ["torch.nn.Linear", "torch.nn.Module"]
    assert (model["ceremony_calls"], model["call_sites"], model["max_nesting"]) == (0, 1, 2)
    assert training["concepts"] == 3 and training["ceremony_calls"] == 6
    assert phase(result, "preamble")["concepts"] == 0  # imports are not uses


def test_trax_snippet_known_answers_and_reexport():
    result = run(TRAX)
    whole = phase(result, "all")
    assert result["framework"] == "trax"
    # tl.Dense and Dense imported from trax.layers.core are one concept: trax.layers.Dense.
    assert whole["concept_names"] == [
        "trax.layers.CategoryCrossEntropy", "trax.layers.Dense", "trax.layers.Relu",
        "trax.layers.Serial", "trax.supervised.training.Loop",
        "trax.supervised.training.TrainTask"]
    # Serial(3), Dense(1), Dense(1, kw), Relu(), TrainTask(2 kw), CCE(), Loop(2)
    assert (whole["call_sites"], whole["positional_args"], whole["keyword_args"]) == (7, 7, 3)
    assert whole["default_keywords"] == 0  # use_bias=False is not the default
    assert whole["ceremony_calls"] == 3  # TrainTask, Loop, run
    assert (whole["framework_subclasses"], whole["cognitive"], whole["max_nesting"]) == (0, 0, 0)
    # Halstead sees no operators in call-only code: volume 0, MI 100, flagged unreliable.
    assert whole["halstead_volume"] == 0 and whole["maintainability_index"] == 100.0
    assert whole["halstead_unreliable"] is True and whole["calls"] == 8


def test_aliases_resolve_to_one_name():
    spellings = ["import torch.nn as nn\nx = nn.Linear(1, 2)\n",
                 "from torch import nn\nx = nn.Linear(1, 2)\n",
                 "import torch\nx = torch.nn.Linear(1, 2)\n",
                 "from torch.nn.modules.linear import Linear as L\nx = L(1, 2)\n"]
    names = [phase(run(s), "all")["concept_names"] for s in spellings]
    assert names == [["torch.nn.Linear"]] * 4
    # Without a library index the last one keeps the name it was imported by.
    assert phase(run(spellings[3], index=LibraryIndex()), "all")["concept_names"] == [
        "torch.nn.modules.linear.Linear"]
    assert phase(run(spellings[3], index=LibraryIndex()), "all")["default_keywords"] is None


def test_jax_file_and_unmarked_code_is_one_phase():
    result = run(JAX)
    assert result["framework"] == "jax" and result["phase_split"] == "none"
    assert [p["phase"] for p in result["phases"]] == ["all"]
    whole = result["phases"][0]
    assert whole["concept_names"] == ["jax.grad", "jax.jit", "jax.numpy.sum"]
    assert whole["ceremony_calls"] == 2


def test_phase_markers():
    text = "import a\n# %% Model\nx = 1\n#%% data\ny = 2\n    # %% not a marker\n# %%\nz = 3\n"
    assert [(p.name, p.start, p.end) for p in split_phases(text)] == [
        ("preamble", 1, 1), ("model", 2, 3), ("data", 4, 6), ("unnamed", 7, 8)]
    # A marker inside a block: phases do not stand alone, the file is measured whole.
    inside = "def f():\n# %% model\n    return 1\n"
    result = run(inside)
    assert result["phase_split"].startswith("unsplittable: line 3: expected an indented block")
    assert [p["phase"] for p in result["phases"]] == ["all"]


COGNITIVE_CASES = [
    ("""def words(n):
    if n == 1:
        return "one"
    elif n == 2:
        return "a couple"
    elif n == 3:
        return "a few"
    else:
        return "lots"
""", 4, 2),  # if +1, elif +1, elif +1, else +1; an elif does not nest deeper
    ("""def outer(xs):
    def inner(x):
        return x if x else 0
    for x in xs:
        if x and xs or not x:
            outer(x)
    return inner
""", 8, 3),  # ternary in nested fn +2, for +1, if +2, and/or +2, recursion +1
    ("""def g(a, b):
    if a:
        pass
    else:
        if b:
            pass
""", 4, 3),  # if +1, else +1, nested if +2
    ("""def h(xs):
    for x in xs:
        try:
            x()
        except ValueError:
            pass
""", 3, 3),  # for +1, except +2 (try adds nothing, but is a compound statement)
]


@pytest.mark.parametrize(("code", "cognitive", "nesting"), COGNITIVE_CASES)
def test_cognitive_complexity_known_answers(code, cognitive, nesting):
    import ast

    tree = ast.parse(code)
    assert cognitive_complexity(tree) == cognitive
    assert max_nesting(tree) == nesting


def test_whole_file_metrics_equal_radons_own():
    path = Path(radon.__file__).with_name("complexity.py")
    text = path.read_text(encoding="utf-8")
    whole = run(text)["phases"][0]
    raw = radon_raw(text)
    assert (whole["sloc"], whole["lloc"], whole["comments"]) == (raw.sloc, raw.lloc,
                                                                 raw.comments)
    assert whole["cyclomatic"] == ComplexityVisitor.from_code(text).total_complexity
    assert whole["cyclomatic_max"] == max(b.complexity for b in cc_visit(text))
    assert whole["halstead_volume"] == round(h_visit(text).total.volume, 3)
    assert whole["maintainability_index"] == round(mi_visit(text, True), 3)
    for snippet in (TORCH, TRAX):
        whole = run(snippet)["phases"][0]
        assert whole["lloc"] == radon_raw(snippet).lloc
        assert whole["cyclomatic"] == ComplexityVisitor.from_code(snippet).total_complexity


def notebook(*cells) -> bytes:
    return json.dumps({"cells": [{"cell_type": kind, "source": src} for kind, src in cells],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def test_notebook_with_magics():
    data = notebook(("code", ["!pip install torch\n", "import torch\n", "%matplotlib inline\n",
                              "x = torch.zeros(3)\n"]),
                    ("markdown", ["# not code: torch.ones(1)\n"]),
                    ("code", "if x is not None:\n    %time y = torch.ones(1)\n"))
    result = measure("nb.ipynb", data, None, SETTINGS, INDEX)
    assert result["notebook"] is True and result["magic_lines"] == 3
    assert result["framework"] == "pytorch"
    whole = result["phases"][0]
    assert whole["concept_names"] == ["torch.zeros"]  # the %time line was skipped
    assert whole["cognitive"] == 1


@pytest.mark.parametrize(("name", "data", "kind", "message"), [
    ("bad.py", b"def f(:\n    pass\n", "syntax_error", "line 1"),
    ("latin1.py", b"x = '\xe9t\xe9'\n", "decode_error", "byte 0xe9 at offset 5"),
    ("empty.py", b"", "empty", "the file is empty"),
    ("blank.py", b"\n   \n", "empty", "the file is empty"),
    ("big.py", b"x = 1\n" * 2000, "too_large", "12,000 bytes is over the limit of 10,000"),
    ("broken.ipynb", b'{"cells": [', "bad_notebook", "not a Jupyter notebook"),
    ("nocells.ipynb", b'{"metadata": {}}', "bad_notebook", "not a Jupyter notebook"),
    ("markdown.ipynb", notebook(("markdown", "hi")), "empty", "no code cells"),
])
def test_bad_inputs_are_file_errors(name, data, kind, message):
    result = measure(name, data, None, SETTINGS, INDEX)
    assert result["error"] == kind
    assert message in result["message"]


# -- workers: what makes them fast changes no result -----------------------------------------

REPO = Path(__file__).resolve().parents[2]


def test_workers_measure_the_paired_implementations_as_this_process_does():
    # Workers tune the garbage collector (fwsurvey.analyzers.workers.GC_THRESHOLD) and skip
    # the parent's main module: the rows must not move.
    files = sorted(REPO.glob("kernels/*/*_impl.py"))
    assert len(files) >= 10, "the paired implementations were not found"
    jobs = [(str(p), p.read_bytes(), None) for p in files]
    settings = replace(SETTINGS, workers=2, max_file_bytes=2_000_000)
    here = [measure(*job, settings, INDEX) for job in jobs]
    assert [r.get("error") for r in here] == [None] * len(jobs)
    assert list(measure_all(jobs, settings, INDEX)) == here


MAIN = """
import os
import sys
from pathlib import Path

Path(sys.argv[1], str(os.getpid())).write_text("")  # each process that runs this file

from fwsurvey.analyzers.ergonomics import LibraryIndex
from fwsurvey.analyzers.measure import measure_all
from fwsurvey.analyzers.settings import ErgonomicsSettings

if __name__ == "__main__":
    settings = ErgonomicsSettings(kernels=Path("."), workers=2)
    jobs = [(f"{i}.py", b"x = (1 +\\n  2)\\n", None) for i in range(4)]
    print(sum(r["phases"][0]["sloc"] for r in measure_all(jobs, settings, LibraryIndex())))
    print(os.getpid(), __file__)
"""


def test_workers_do_not_run_the_parents_main_module(tmp_path):
    script, ran = tmp_path / "main.py", tmp_path / "ran"
    script.write_text(MAIN)
    ran.mkdir()
    out = subprocess.run([sys.executable, str(script), str(ran)], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split("\n")
    assert out[0] == "8"  # 4 files of 2 lines of code, measured by the workers
    parent, main_file = out[1].split(" ", 1)
    assert main_file == str(script)  # restored after the workers started
    assert [p.name for p in ran.iterdir()] == [parent]
