"""``fwsurvey import``: the GPU check's rows land in the store as a run of their own, with the
provenance the file gives them; a file that does not fit the schema writes nothing."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from fwsurvey import cli
from fwsurvey.kernels.records import job_records
from fwsurvey.kernels.runner import Job, run_job
from fwsurvey.store import Store

REPO = Path(__file__).parent.parent
#: A time the rows were measured, well before the import: it must survive it.
MEASURED_AT = "2026-11-30T12:00:00+00:00"
DEVICE_VERSIONS = {"jax": "0.11.2", "jaxlib": "0.11.2", "python": "3.12.3"}


def _check_module():
    spec = importlib.util.spec_from_file_location("device_check",
                                                  REPO / "scripts/device/check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _check_module()


def invoke(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return info.value.code


@pytest.fixture(scope="module")
def finished_job() -> tuple[Job, dict]:
    """A real harness run of the tests' stand-in implementation (a second or two)."""
    job = Job("fake", "jax", "jax-jit", "tests.kernels.fake_impl",
              {"batch": 4, "steps": 6, "warmup_steps": 2, "metric": "accuracy", "target": 0.5,
               "task": "fake", "profile": "quick"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(REPO))  # the harness imports tests.kernels.fake_impl
        result = run_job(job)
    assert result["status"] == "ok", result.get("error")
    return job, result


def write_doc(path: Path, parts: list[dict]) -> Path:
    doc = check.records_document("cuda", "NVIDIA H200", DEVICE_VERSIONS, parts)
    path.write_text(json.dumps(doc))
    return path


def test_the_checks_rows_become_a_run_with_their_provenance(finished_job, write_config,
                                                            tmp_path, capsys):
    job, result = finished_job
    records = job_records(job, result, MEASURED_AT)
    path = write_doc(tmp_path / "records.json",
                     [{"records": [{"table": r.table, "row": r.row} for r in records]}])
    config = str(write_config())
    assert invoke("import", str(path), "--config", config) == cli.EXIT_OK
    shown = capsys.readouterr().err
    assert "run 1: imported " in shown and "kernel_runs 1" in shown and "device-check" in shown

    store = Store(tmp_path / "out" / "test.db")
    run = store.query("SELECT * FROM runs")
    assert len(run) == 1 and run[0]["status"] == "ok"
    assert run[0]["command"] == f"import {path}"
    assert json.loads(run[0]["stages"]) == ["import"]
    assert json.loads(run[0]["versions"]) == DEVICE_VERSIONS
    assert store.query("SELECT stage, source, status, items_ok, rows_written FROM run_sources"
                       ) == [{"stage": "import", "source": "device-check", "status": "ok",
                              "items_ok": len(records), "rows_written": len(records)}]
    row = store.query("SELECT * FROM kernel_runs")[0]
    assert (row["run_id"], row["source"], row["fetched_at"]) == (1, "device-check", MEASURED_AT)
    assert (row["job"], row["status"], row["device"]) == ("fake/jax/jax-jit/train/default",
                                                          "ok", "cpu")
    assert json.loads(row["versions"]) == result["versions"]
    assert row["eval_value"] == 1.0 and row["reached_target"] == 1
    assert row["step_median_ms"] == pytest.approx(result["step_median_ms"])
    losses = [r["loss"] for r in store.query("SELECT loss FROM kernel_curves ORDER BY step")]
    assert losses == pytest.approx([1 / n for n in range(1, 7)])

    # The same file again is a second run, beside the first: nothing is overwritten.
    assert invoke("import", str(path), "--config", config) == cli.EXIT_OK
    assert [r["run_id"] for r in store.query("SELECT run_id FROM kernel_runs ORDER BY run_id")
            ] == [1, 2]
    store.close()


def test_raw_jobs_become_the_same_rows_as_the_train_stage_makes(finished_job, write_config,
                                                                tmp_path):
    job, result = finished_job
    raw = {"jobs": [{"job": dataclasses.asdict(job), "result": result,
                     "fetched_at": MEASURED_AT}]}
    path = write_doc(tmp_path / "raw.json", [raw])
    assert invoke("import", str(path), "--config", str(write_config())) == cli.EXIT_OK
    store = Store(tmp_path / "out" / "test.db")
    stored = store.query("SELECT * FROM kernel_runs")[0]
    store.close()
    expected = next(r.row for r in job_records(job, result, MEASURED_AT)
                    if r.table == "kernel_runs")
    assert {k: stored[k] for k in ("job", "status", "timed_steps", "final_loss", "eval_value",
                                   "fetched_at")} == {
        k: expected[k] for k in ("job", "status", "timed_steps", "final_loss", "eval_value",
                                 "fetched_at")}


KERNEL_ROW = {"job": "t/jax/jax-jit/train/default", "task": "t", "framework": "jax",
              "mode": "jax-jit", "experiment": "train", "variant": "default",
              "profile": "full", "status": "ok", "device": "cuda", "precision": "bf16",
              "fetched_at": MEASURED_AT}


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    (json.dumps({"records": [{"table": "kernel_rows", "row": KERNEL_ROW}]}),
     "records[0]: unknown table 'kernel_rows'"),
    (json.dumps({"records": [{"table": "kernel_runs", "row": KERNEL_ROW},
                             {"table": "kernel_runs", "row": {**KERNEL_ROW, "tflops": 1}}]}),
     "records[1] (kernel_runs): unknown column 'tflops'"),
    (json.dumps({"records": [{"table": "kernel_runs",
                              "row": {k: v for k, v in KERNEL_ROW.items() if k != "task"}}]}),
     "records[0] (kernel_runs): required column 'task' is missing"),
    (json.dumps({"records": [{"table": "kernel_runs", "row": KERNEL_ROW}] * 2}),
     "records[1] (kernel_runs): a second row with the key"),
    (json.dumps({"records": [{"table": "kernel_runs", "row": {**KERNEL_ROW, "run_id": 7}}]}),
     "column 'run_id' is set by the import"),
    (json.dumps({"records": []}), "nothing to import"),
])
def test_a_bad_file_is_one_line_and_writes_nothing(write_config, tmp_path, capsys, content,
                                                   message):
    path = tmp_path / "records.json"
    path.write_text(content)
    assert invoke("import", str(path), "--config", str(write_config())) == cli.EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ")
    assert message in lines[0]
    db = tmp_path / "out" / "test.db"
    if db.exists():
        store = Store(db)
        assert store.query("SELECT count(*) AS n FROM runs") == [{"n": 0}]
        assert store.query("SELECT count(*) AS n FROM kernel_runs") == [{"n": 0}]
        store.close()
