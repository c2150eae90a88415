"""The Markdown report, rendered from a database built in the test, compared to a snapshot."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import requests
import responses

from fwsurvey.claims import run_claims
from fwsurvey.collectors.stage import CollectStage
from fwsurvey.config import load_config
from fwsurvey.pipeline import run_survey
from fwsurvey.reports.render import render_report
from fwsurvey.reports.stage import ReportStage
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW, INDEX

SNAPSHOT = Path(__file__).parent / "snapshots" / "report.md"


def fixed_clock(cls, config):
    return cls(config, now=lambda: FIXED_NOW)


def normalise_runs(db: Path) -> None:
    """Pin what differs between machines and moments (times, platform, versions)."""
    store = Store(db)
    with store.db.atomic():
        store.db.execute(
            "UPDATE runs SET started_at = '2026-11-27T12:00:00+00:00',"
            " finished_at = CASE WHEN finished_at IS NULL THEN NULL"
            " ELSE '2026-11-27T12:00:05+00:00' END,"
            " platform = 'Linux-x86_64', python_version = '3.11.7', tool_version = '0.1.0',"
            " versions = ?", [json.dumps({"python": "3.11.7", "pypi-simple": "1.8.0",
                                          "torch": None})])
        store.db.execute("UPDATE run_sources SET started_at = '2026-11-27T12:00:01+00:00',"
                         " finished_at = '2026-11-27T12:00:02+00:00'")
        store.db.execute("UPDATE item_errors SET at = '2026-11-27T12:00:02+00:00'")
    store.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def add_scaling_runs(db: Path) -> None:
    """Data-parallel rows as the train stage writes them, and the strategies the analyzers
    found, into run 1: Trax fails on 2 devices with current JAX and runs with the older one."""
    from fwsurvey.kernels.runner import Job
    from fwsurvey.kernels.stage import scaling_records
    from fwsurvey.store import ItemError, SourceOutcome

    spec = {"batch": 16, "seq_len": 64, "steps": 3, "profile": "quick", "loss_tolerance": 1e-3}
    at = "2026-11-27T12:00:01+00:00"

    def run(framework, n, env, jax, throughput=None, losses=(), error=None):
        job = Job("transformer_lm", framework, "jax-jit" if framework == "jax" else "trax", "m",
                  spec, experiment="scaling", n_devices=n, environment=env,
                  variant=f"n{n}" if env == "main" else f"n{n}-{env}")
        versions = {"jax": jax, **({"trax": "1.4.1"} if framework == "trax" else {})}
        if error:
            return job, {"status": "crashed", "phase": "build", "error": error,
                         "versions": versions, "device_name": "cpu (x86_64, 2 cores)"}, at
        return job, {"status": "ok", "phase": "done", "throughput": throughput,
                     "throughput_unit": "tokens/s", "step_median_ms": 1024_000 / throughput,
                     "timed_steps": 2, "losses": list(losses), "versions": versions,
                     "device_name": "cpu (x86_64, 2 cores)"}, at

    runs = [
        run("trax", 1, "main", "0.10.2", 30000.0, [5.6, 4.4, 3.9]),
        run("trax", 2, "main", "0.10.2", error="AttributeError: jax.device_put_replicated is "
                                                "deprecated; use jax.device_put instead."),
        run("trax", 1, "jax-legacy", "0.7.2", 25000.0, [5.6, 4.4, 3.9]),
        run("trax", 2, "jax-legacy", "0.7.2", 22500.0, [5.6, 4.400001, 3.900002]),
        run("jax", 1, "main", "0.10.2", 31000.0, [5.7, 4.5, 4.2]),
        run("jax", 2, "main", "0.10.2", 35650.0, [5.7, 4.50004, 4.2]),
    ]
    store = Store(db)
    store.write_source(1, SourceOutcome(
        "train", "kernels/scaling/transformer_lm", "partial", at, at,
        reason="1 of 6 jobs did not finish", items_ok=5,
        errors=[ItemError(runs[1][0].key, "crashed", "crashed in phase build")]),
        scaling_records(runs))
    strategies = {
        "trax": {"data_parallel": ["trax.supervised.training.Loop(n_devices)"],
                 "tensor_parallel": []},
        "jax": {"data_parallel": ["jax.sharding.NamedSharding", "jax.pmap"],
                "tensor_parallel": ["jax.shard_map"]},
    }
    # Rows only, no library_surface outcome: the claims' evidence stays as collect left it.
    store.db["distributed_strategies"].insert_all([{
        "run_id": 1, "source": "library_surface", "fetched_at": at, "framework": fw,
        "strategy": strategy, "symbols": json.dumps(symbols), "found": json.dumps(symbols),
        "missing": "[]", "shipped": int(bool(symbols)),
        "package_version": {"trax": "1.4.1", "jax": "0.10.2"}[fw],
        "note": None if symbols else "none shipped"}
        for fw, table in strategies.items() for strategy, symbols in table.items()])
    store.close()


def add_experiment_rows(db: Path) -> None:
    """What the experiments record, into run 1: checks of a recursion job per framework, a
    deployment path that works on one side and fails on the other, and one modular edit."""
    from fwsurvey.sources import Record

    at = "2026-11-27T12:00:01+00:00"

    def check(task, framework, mode, experiment, name, ok, value, unit, detail=None):
        return Record("kernel_checks", {
            "fetched_at": at, "job": f"{task}/{framework}/{mode}/{experiment}/default",
            "task": task, "framework": framework, "mode": mode, "experiment": experiment,
            "variant": "default", "device": "cpu", "check_name": name, "ok": ok,
            "value": value, "unit": unit, "detail": detail})

    def edit(framework, tokens, lines, scopes):
        return Record("code_edits", {
            "fetched_at": at, "task": "mlp_digits", "edit": "dropout", "framework": framework,
            "status": "ok", "lines_changed": lines, "tokens_changed": tokens,
            "scopes_touched": scopes, "analyzer_version": "1"})

    store = Store(db)
    store.write_records(1, "kernels", [
        check("tree_recursion", "jax", "jax-jit", "recursion", "runs", 1, 1.0, "1 = runs"),
        check("tree_recursion", "jax", "jax-jit", "recursion", "callback_needed", None, 0.0,
              "1 = needed"),
        check("tree_recursion", "trax", "trax", "recursion", "static_padding", 1, None, None,
              "trees linearised and padded to a fixed length"),
        check("mlp_digits", "jax", "jax-jit", "train", "deploy.mobile.works", 1, 1.0,
              "1 = works", "ExecuTorch runtime"),
        check("mlp_digits", "trax", "trax", "train", "deploy.mobile.works", 0, 0.0,
              "1 = works", "LiteRT: select TF ops need the Flex delegate | not linked"),
        check("mlp_digits", "trax", "trax", "train", "variant.dropout", 1, 2.31, "loss"),
    ])
    store.write_records(1, "ergonomics", [edit("jax", 14, 3, 2), edit("trax", 5, 1, 1)])
    store.close()


def test_report_matches_snapshot(write_config, pypi_index, tmp_path):
    config = load_config(write_config())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    add_scaling_runs(db)
    add_experiment_rows(db)
    normalise_runs(db)
    store = Store(db)
    # The verdicts as of run 1 (pinned above), from the shipped registry: only PyPI data.
    outcome, _ = run_claims(store, 1, config)
    assert outcome.status == "ok", outcome.reason
    store.db.execute("UPDATE run_sources SET started_at = '2026-11-27T12:00:03+00:00',"
                     " finished_at = '2026-11-27T12:00:04+00:00' WHERE stage = 'claims'")
    path = render_report(store, config, tmp_path / "report")
    store.close()

    text = path.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    # Each experiment's own table, in its section: a failure shows its reason, a yes/no value
    # says which, and the modular edits their size per framework.
    assert ("| `mlp_digits` | `deploy.mobile.works` | ✗ (LiteRT: select TF ops need the Flex"
            " delegate / not linked) | ✓ |") in text
    assert "| `tree_recursion` | `runs` | — | ✓ |" in text
    assert "| `tree_recursion` | `callback_needed` | — | not needed |" in text
    assert ("| `mlp_digits` | `dropout` | 5 tokens, 1 lines, 1 scope(s) | 14 tokens, 3 lines,"
            " 2 scope(s) |") in text
    # The chart the report links to exists and is a real PNG of the configured size.
    assert "![Cumulative final releases on PyPI per framework](releases.png)" in text
    assert png_size(path.parent / "releases.png") == (800, 450)


def test_report_says_when_a_source_was_not_collected(write_config, pypi_index, tmp_path):
    config = load_config(write_config())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    pypi_index.reset()  # the registry goes away
    pypi_index.add(responses.GET, INDEX + "simple/trax/",
                   body=requests.exceptions.ConnectionError("Name or service not known"))
    second = run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock),
                                            ReportStage(out_dir=tmp_path / "report")])
    assert second.status == "degraded"
    text = second.report.read_text(encoding="utf-8")
    assert "**Not collected in this run**: PyPI was `unreachable`" in text
    assert "Name or service not known" in text
    assert "newest the database holds, fetched 2026-11-27T12:00:00+00:00" in text
    # The numbers shown are run 1's, never zeros.
    assert "| Trax | `trax` | 1.4.1 | 2019-10-08 | 2021-10-26 | 24 |" in text
    assert "2026-11-27 (1) |" in text


def test_report_without_any_run_is_a_clear_error(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    try:
        render_report(store, config, tmp_path / "report")
    except LookupError as exc:
        assert "holds no run yet" in str(exc)
    else:
        raise AssertionError("expected LookupError")
