"""Modular changes: edit sizes measured on files built here, the stage's rows, and the real
variants under kernels/ (they parse, differ from their base, and are no extra pairs)."""

from __future__ import annotations

import ast
import difflib
import tomllib
from pathlib import Path

from fwsurvey.analyzers.edits import (
    code_tokens,
    edit_records,
    edit_size,
    unified_diff_counts,
)
from fwsurvey.analyzers.settings import ergonomics_settings
from fwsurvey.analyzers.targets import kernel_targets
from fwsurvey.config import load_config
from fwsurvey.pipeline import run_survey
from fwsurvey.store import Store

REPO = Path(__file__).parents[2]
KERNELS = REPO / "kernels"

BASE = '''"""A toy model."""

import torch
from torch import nn

# %% model


def build_model(spec):
    return nn.Sequential(
        nn.Linear(64, spec["hidden"]),
        nn.ReLU(),
        nn.Linear(spec["hidden"], 10),
    )


# %% training


def make_trainer(model, data, spec):
    optimizer = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    return optimizer
'''


def test_swapped_name_is_one_line_and_two_tokens_each_way():
    variant = BASE.replace("nn.ReLU()", "nn.GELU()")
    size = edit_size(BASE, variant)
    assert (size.lines_added, size.lines_removed, size.lines_changed) == (1, 1, 2)
    assert (size.tokens_added, size.tokens_removed, size.tokens_changed) == (1, 1, 2)
    assert size.scopes == ("build_model",)
    assert size.phases == ("model",)
    # docstring 1, imports 6, build_model 42, make_trainer 33.
    assert size.base_tokens == len(code_tokens(BASE)) == 82


def test_comments_blank_lines_and_layout_do_not_count():
    variant = BASE.replace("        nn.ReLU(),\n",
                           "        # the activation\n\n        nn.ReLU(),  # kept\n")
    size = edit_size(BASE, variant)
    assert (size.lines_changed, size.tokens_changed) == (0, 0)
    assert size.scopes == () and size.phases == ()


def test_an_edit_across_scopes_and_phases_is_not_local():
    variant = BASE.replace("import torch\n", "import torch\nimport torch.nn.functional as F\n")
    variant = variant.replace("lr=spec[\"lr\"])", "lr=spec[\"lr\"], momentum=0.9)")
    variant = variant.replace("torch.optim.Adam", "torch.optim.SGD")
    size = edit_size(BASE, variant)
    assert (size.lines_added, size.lines_removed) == (2, 1)
    # "import torch . nn . functional as F" is 8 tokens; Adam -> SGD 1 + 1; ", momentum = 0.9"
    # is 4 more.
    assert (size.tokens_added, size.tokens_removed) == (8 + 1 + 4, 1)
    assert size.scopes == ("<module>", "make_trainer")
    assert size.phases == ("preamble", "training")


def test_a_new_class_counts_its_scopes():
    variant = BASE.replace("# %% model\n\n\n", "# %% model\n\n\nclass Residual(nn.Module):\n"
                           "    def forward(self, x):\n        return x + self.body(x)\n\n\n")
    size = edit_size(BASE, variant)
    assert (size.lines_added, size.lines_removed) == (3, 0)
    assert size.scopes == ("Residual", "Residual.forward")
    assert size.phases == ("model",)


def test_line_counts_match_a_unified_diff():
    variant = BASE.replace("nn.ReLU(),\n", "nn.ReLU(),\n        nn.Dropout(0.1),\n")
    size = edit_size(BASE, variant)
    assert unified_diff_counts(BASE, variant) == (size.lines_added, size.lines_removed) == (1, 0)


INDEX = """
[edits]
activation = "ReLU for GELU"
residual = "add a residual block"
dropout = "add dropout"

[tasks.toy]
edits = ["activation", "dropout"]
skipped = { residual = "no layer to wrap" }
notes = { dropout = "before the output" }
"""


def make_kernels(root: Path, name: str = "toy") -> Path:
    kernels = root / "kernels"
    task = kernels / name
    for framework in ("pytorch", "trax"):
        (task / "variants" / "activation").mkdir(parents=True, exist_ok=True)
        (task / f"{framework}_impl.py").write_text(BASE)
    (task / "variants" / "activation" / "pytorch_impl.py").write_text(
        BASE.replace("nn.ReLU()", "nn.GELU()"))
    (task / "variants" / "activation" / "trax_impl.py").write_text(BASE + "def broken(:\n")
    (task / "variants" / "dropout").mkdir()
    (task / "variants" / "dropout" / "pytorch_impl.py").write_text(
        BASE.replace("nn.ReLU(),\n", "nn.ReLU(),\n        nn.Dropout(spec[\"dropout\"]),\n"))
    (kernels / "variants.toml").write_text(INDEX.replace("tasks.toy", f"tasks.{name}"))
    return kernels


def test_records_cover_every_edit_and_framework_with_a_status(tmp_path):
    kernels = make_kernels(tmp_path)
    records, items = edit_records(kernels, ("pytorch", "trax"), "2026-12-01T00:00:00Z")
    rows = {(r.row["edit"], r.row["framework"]): r.row for r in records}
    assert items == ["toy/activation/pytorch", "toy/activation/trax", "toy/residual/pytorch",
                     "toy/residual/trax", "toy/dropout/pytorch", "toy/dropout/trax"]
    assert {k: v["status"] for k, v in rows.items()} == {
        ("activation", "pytorch"): "measured", ("activation", "trax"): "error",
        ("residual", "pytorch"): "skipped", ("residual", "trax"): "skipped",
        ("dropout", "pytorch"): "measured", ("dropout", "trax"): "missing"}
    act = rows[("activation", "pytorch")]
    assert (act["lines_changed"], act["tokens_changed"], act["scopes_touched"]) == (2, 2, 1)
    assert act["variant_path"] == "kernels/toy/variants/activation/pytorch_impl.py"
    drop = rows[("dropout", "pytorch")]
    # "nn . Dropout ( spec [ "dropout" ] ) ," : 10 tokens, one line.
    assert (drop["lines_added"], drop["tokens_added"], drop["tokens_removed"]) == (1, 10, 0)
    assert drop["note"] == "before the output"
    assert rows[("residual", "trax")]["note"] == "no layer to wrap"
    assert rows[("activation", "trax")]["note"].startswith("SyntaxError")
    assert rows[("dropout", "trax")]["note"] == "no kernels/toy/variants/dropout/trax_impl.py"


def test_analyze_stage_writes_code_edits_and_no_extra_pairs(project, tmp_path):
    config = load_config(project())
    make_kernels(tmp_path, "edited")  # beside the fixture's paired task "toy"
    result = run_survey(config, tmp_path / "s.db", stages=["analyze"])
    assert result.status == "degraded"  # the broken trax variant is an item error
    store = Store(tmp_path / "s.db")
    sources = {r["source"]: r for r in store.query(
        "SELECT source, status, items_ok, reason FROM run_sources")}
    assert (sources["edits"]["status"], sources["edits"]["items_ok"]) == ("partial", 5)
    assert sources["ergonomics"]["status"] == "ok"
    edits = store.query("SELECT task, edit, framework, status, tokens_changed, source"
                        " FROM code_edits ORDER BY edit, framework")
    assert [(e["edit"], e["framework"], e["status"], e["tokens_changed"]) for e in edits] == [
        ("activation", "pytorch", "measured", 2), ("activation", "trax", "error", None),
        ("dropout", "pytorch", "measured", 10), ("dropout", "trax", "missing", None),
        ("residual", "pytorch", "skipped", None), ("residual", "trax", "skipped", None)]
    assert {e["source"] for e in edits} == {"edits"}
    # Variant files are no extra targets of the ergonomics analyzer, nor pairs.
    files = [f["path"] for f in store.query("SELECT path FROM ergonomics_files ORDER BY path")]
    assert files == ["kernels/edited/pytorch_impl.py", "kernels/edited/trax_impl.py",
                     "kernels/toy/jax_impl.py", "kernels/toy/pytorch_impl.py",
                     "kernels/toy/trax_impl.py"]
    tasks = {r["task"] for r in store.query("SELECT DISTINCT task FROM ergonomics_pairs")}
    assert tasks == {"edited", "toy"}


def test_real_variants_parse_differ_and_are_no_pairs():
    index = tomllib.loads((KERNELS / "variants.toml").read_text())
    unchanged = []
    for task, entry in index["tasks"].items():
        assert set(entry["edits"]) | set(entry.get("skipped", {})) == set(index["edits"]), task
        for edit in entry["edits"]:
            differs = []
            for framework in ("pytorch", "trax"):
                variant = KERNELS / task / "variants" / edit / f"{framework}_impl.py"
                base = (KERNELS / task / f"{framework}_impl.py").read_text()
                ast.parse(variant.read_text())
                size = edit_size(base, variant.read_text())
                differs.append(size.tokens_changed > 0)
                if not size.tokens_changed:
                    unchanged.append(f"{task}/{edit}/{framework}")
                # The edit leaves the data phase alone (the harness trains variants on the
                # job's data).
                assert "data" not in size.phases, (task, edit, framework)
            assert any(differs), (task, edit)
        for edit in entry.get("skipped", {}):
            assert not (KERNELS / task / "variants" / edit).exists()
    # Trax's TransformerLM already takes spec["dropout"]: its variant is the base file.
    assert unchanged == ["transformer_lm/dropout/trax"]
    config = load_config(REPO / "fwsurvey.toml")
    targets = kernel_targets(config, ergonomics_settings(config).kernels)
    assert targets and not any("variants" in t.path.parts for t in targets)


def test_real_sizes_against_difflib():
    """The measured sizes are difflib's: one real variant checked by hand."""
    base = (KERNELS / "mlp_digits" / "trax_impl.py").read_text()
    variant = (KERNELS / "mlp_digits" / "variants" / "residual" / "trax_impl.py").read_text()
    size = edit_size(base, variant)
    diff = [line for line in difflib.unified_diff(base.splitlines(), variant.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert diff == ['+        tl.Residual(tl.Dense(spec["hidden"]), tl.Relu()),']
    # tl . Residual ( tl . Dense ( spec [ "hidden" ] ) , tl . Relu ( ) ) ,
    assert (size.lines_changed, size.tokens_changed) == (1, 21)
