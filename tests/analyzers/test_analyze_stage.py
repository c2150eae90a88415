"""The analyze stage end to end: paired kernels, pairs and composite, cache, user code, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fwsurvey import cli
from fwsurvey.analyzers.stage import AnalyzeStage
from fwsurvey.config import ConfigError, load_config
from fwsurvey.pipeline import run_survey
from fwsurvey.stage import StageContext, run_unit
from fwsurvey.store import Store
from tests.analyzers.snippets import JAX, TORCH, TRAX


def rows(store: Store, sql: str, *params) -> list[dict]:
    return store.query(sql, list(params))


def test_paired_kernels_pairs_and_composite(project, tmp_path):
    config = load_config(project())
    db = tmp_path / "s.db"
    result = run_survey(config, db, stages=["analyze"])
    assert result.status == "ok"
    store = Store(db)
    assert rows(store, "SELECT source, status, items_ok, reason FROM run_sources ORDER BY source"
                ) == [
        {"source": "ergonomics", "status": "ok", "items_ok": 3, "reason": None},
        {"source": "library_surface", "status": "skipped", "items_ok": 0,
         "reason": "no [analyzers.library_surface] in the configuration"}]
    files = rows(store, "SELECT path, task, framework, status, phase_split, cached, origin"
                        " FROM ergonomics_files ORDER BY path")
    assert [(f["path"], f["framework"], f["status"], f["origin"]) for f in files] == [
        ("kernels/toy/jax_impl.py", "jax", "ok", "kernels"),
        ("kernels/toy/pytorch_impl.py", "pytorch", "ok", "kernels"),
        ("kernels/toy/trax_impl.py", "trax", "ok", "kernels")]
    pairs = {(p["phase"], p["metric"]): p for p in rows(store, "SELECT * FROM ergonomics_pairs")}
    assert {phase for phase, _ in pairs} == {"all", "preamble", "model", "training"}
    # No library index in this database: Dense stays under the name it was imported by,
    # so trax shows 7 concepts (see test_ergonomics for the resolved 6).
    concepts = pairs[("all", "concepts")]
    assert (concepts["value_a"], concepts["value_b"], concepts["weight"]) == (5, 7, 1.0)
    assert concepts["ratio"] == round(5 / 7, 4)
    ceremony = pairs[("all", "ceremony_calls")]
    assert (ceremony["value_a"], ceremony["value_b"], ceremony["ratio"]) == (6, 3, 2.0)
    assert pairs[("all", "lloc")]["weight"] is None  # not weighted in this config
    # Composite: weighted geometric mean of (a + 1) / (b + 1): sqrt(6/8 * 7/4).
    composite = pairs[("all", "ease_of_use_composite")]
    assert composite["ratio"] == round(math.sqrt(6 / 8 * 7 / 4), 4)
    assert (composite["framework_a"], composite["framework_b"]) == ("pytorch", "trax")
    model = pairs[("model", "ceremony_calls")]
    assert (model["value_a"], model["value_b"]) == (0, 0)
    assert model["ratio"] is None  # b is 0
    metrics = rows(store, "SELECT phase, concepts, ceremony FROM ergonomics_metrics"
                          " WHERE path = 'kernels/toy/pytorch_impl.py' ORDER BY start_line, phase")
    assert [m["phase"] for m in metrics] == ["all", "preamble", "model", "training"]
    assert json.loads(metrics[3]["ceremony"])["zero_grad"] == 1


def test_cache_returns_identical_rows(project, tmp_path):
    config = load_config(project(workers=2))
    db = tmp_path / "s.db"
    run_survey(config, db, stages=["analyze"])
    run_survey(config, db, stages=["analyze"])
    store = Store(db)
    assert rows(store, "SELECT run_id, sum(cached) AS cached, count(*) AS n"
                       " FROM ergonomics_files GROUP BY run_id") == [
        {"run_id": 1, "cached": 0, "n": 3}, {"run_id": 2, "cached": 3, "n": 3}]
    assert rows(store, "SELECT count(*) AS n FROM ergonomics_cache") == [{"n": 3}]

    def table(name: str, run_id: int) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("run_id", "fetched_at")}
                for r in rows(store, f"SELECT * FROM {name} WHERE run_id = ?"
                                     " ORDER BY 1, 2, 3, 4, 5", run_id)]

    for name in ("ergonomics_metrics", "ergonomics_pairs"):
        assert table(name, 1) == table(name, 2) != []
    # An edited file is measured again; the others still come from the cache.
    path = tmp_path / "kernels" / "toy" / "jax_impl.py"
    path.write_text(JAX + "\nextra = jax.numpy.ones(2)\n")
    run_survey(config, db, stages=["analyze"])
    assert rows(store, "SELECT path FROM ergonomics_files WHERE run_id = 3 AND cached = 0"
                ) == [{"path": "kernels/toy/jax_impl.py"}]


def write_user_folder(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "model.py").write_text(TORCH)
    (root / "pkg" / "sub" / "train.py").write_text(TRAX)
    (root / "pkg" / "broken.py").write_text("def f(:\n")
    (root / "pkg" / "latin1.py").write_bytes(b"s = '\xe9'\n")
    (root / "pkg" / "empty.py").write_text("")
    (root / "pkg" / "nb.ipynb").write_text('{"cells": [')
    (root / "pkg" / "big.py").write_text("x = 1\n" * 400_000)
    (root / "pkg" / "notes.txt").write_text("not code")
    (root / "pkg" / ".hidden").mkdir()
    (root / "pkg" / ".hidden" / "skip.py").write_text("x = 1\n")


def test_user_folder_with_bad_files_goes_on(project, tmp_path, monkeypatch, capsys):
    config = project(workers=2)
    write_user_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["analyze", "pkg", "--config", str(config)])
    assert info.value.code == cli.EXIT_DEGRADED  # some files could not be analyzed
    store = Store(tmp_path / "out" / "test.db")
    files = {f["path"]: f for f in rows(store, "SELECT * FROM ergonomics_files")}
    assert {p: f["status"] for p, f in files.items()} == {
        "pkg/big.py": "too_large", "pkg/broken.py": "syntax_error", "pkg/empty.py": "empty",
        "pkg/latin1.py": "decode_error", "pkg/model.py": "ok", "pkg/nb.ipynb": "bad_notebook",
        "pkg/sub/train.py": "ok"}
    assert files["pkg/model.py"]["framework"] == "pytorch"  # from its imports
    assert files["pkg/sub/train.py"]["framework"] == "trax"
    assert files["pkg/big.py"]["content_sha256"] is None  # too large: not even read
    errors = rows(store, "SELECT item, kind, message FROM item_errors ORDER BY item")
    assert [(e["item"], e["kind"]) for e in errors] == [
        ("pkg/big.py", "too_large"), ("pkg/broken.py", "syntax_error"),
        ("pkg/empty.py", "empty"), ("pkg/latin1.py", "decode_error"),
        ("pkg/nb.ipynb", "bad_notebook")]
    assert errors[1]["message"].startswith("line 1:")
    assert rows(store, "SELECT status, items_ok, reason FROM run_sources") == [
        {"status": "partial", "items_ok": 2, "reason": "5 of 7 files not analyzed"}]
    assert rows(store, "SELECT count(*) AS n FROM ergonomics_pairs") == [{"n": 0}]
    assert rows(store, "SELECT command FROM runs") == [{"command": "analyze pkg"}]


def test_missing_path_is_a_usage_error(project, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["analyze", "no/such/dir", "--config", str(project())])
    assert info.value.code == cli.EXIT_USAGE


@pytest.mark.parametrize(("ergonomics", "message"), [
    ({"workers": 0}, "analyzers.ergonomics.workers: expected a positive integer, got 0"),
    ({"speed": 3}, "analyzers.ergonomics.speed: unknown key (misspelt?)"),
    ({"ceremony": {"mxnet": ["step"]}},
     "analyzers.ergonomics.ceremony.mxnet: 'mxnet' is not a configured framework"),
    ({"ceremony": {"a": "step"}},
     "analyzers.ergonomics.ceremony.a: expected a list of non-empty strings, got 'step'"),
    ({"weights": {"halstead_volume": 1}}, "analyzers.ergonomics.weights.halstead_volume: "
     "unknown metric; one of concepts, call_sites, positional_args, keyword_args, "
     "default_keywords, framework_subclasses, overridden_methods, ceremony_calls, sloc, lloc, "
     "cyclomatic, cognitive, max_nesting"),
    ({"weights": {"lloc": -1}}, "analyzers.ergonomics.weights.lloc: expected a number >= 0, "
     "got -1"),
    ({"weights": {"lloc": 0}}, "analyzers.ergonomics.weights: at least one weight must be > 0"),
])
def test_ergonomics_config_errors_name_the_key(tmp_path, ergonomics, message):
    from fwsurvey.analyzers.settings import ergonomics_settings
    from fwsurvey.config import parse_config

    raw = {"frameworks": {"a": {"name": "A"}, "b": {"name": "B"}},
           "analyzers": {"ergonomics": ergonomics}}
    with pytest.raises(ConfigError) as info:
        ergonomics_settings(parse_config(raw, tmp_path / "fwsurvey.toml"))
    assert str(info.value) == f"fwsurvey.toml: {message}"


def test_ergonomics_resolves_names_through_the_surfaces_just_read(project, tmp_path):
    path = project()
    # Stand-ins for the libraries: a stdlib module, and one that does not exist.
    path.write_text(path.read_text() + (
        '[analyzers.library_surface.pytorch]\ndata = { modules = ["json"] }\n'
        '[analyzers.library_surface.trax]\ndata = { modules = ["fwsurvey_no_such_mod"] }\n'))
    config = load_config(path)
    AnalyzeStage().check(config)
    store = Store(tmp_path / "s.db")
    ctx = StageContext(store, store.start_run("analyze", ["analyze"], {}), config)
    surface, ergonomics = AnalyzeStage().units(ctx)
    outcome = run_unit(ctx, "analyze", surface)
    assert (outcome.status, outcome.items_ok, outcome.reason) == (
        "partial", 2, "1 modules or symbols not found")
    assert [(e.item, e.kind) for e in outcome.errors] == [
        ("trax:fwsurvey_no_such_mod", "import_error")]
    assert ergonomics.library_index(store) is surface.index
    assert surface.index.canonical_name("json.decoder.JSONDecoder") == "json.JSONDecoder"
    assert run_unit(ctx, "analyze", ergonomics).status == "ok"
    assert rows(store, "SELECT DISTINCT framework FROM library_summary ORDER BY 1") == [
        {"framework": "pytorch"}, {"framework": "trax"}]
    store.close()


def test_stage_check_names_a_misspelt_analyzer_table(project):
    config = load_config(project())
    config.analyzers["ergonomic"] = {"workers": 1}
    with pytest.raises(ConfigError) as info:
        AnalyzeStage().check(config)
    assert str(info.value) == "fwsurvey.toml: analyzers.ergonomic: unknown key (misspelt?)"


def test_stage_check_refuses_a_missing_path(project, tmp_path):
    config = load_config(project())
    with pytest.raises(ValueError, match="no such file or folder: .*nope"):
        AnalyzeStage(paths=[tmp_path / "nope"]).check(config)
