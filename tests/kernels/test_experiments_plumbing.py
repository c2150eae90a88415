"""Contract F's plumbing: a task's ``checks.py`` observed in a real job subprocess lands in
``kernel_checks``; a ``checks()`` that raises is one failed check and leaves the job's
outcome alone; PyTorch's graph breaks are read from dynamo's own counters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fwsurvey.config import load_config
from fwsurvey.kernels import stage
from fwsurvey.kernels.records import check_records, job_records
from fwsurvey.kernels.runner import Job, run_job
from fwsurvey.kernels.stage import TrainOptions, TrainStage
from fwsurvey.store import Store

REPO = Path(__file__).parent.parent.parent
SPEC = {"batch": 4, "steps": 6, "warmup_steps": 1, "metric": "accuracy", "target": 0.5,
        "task": "fakechk", "profile": "quick"}

#: A task's checks.py: reads what the harness gives it and writes a file in the workdir.
CHECKS = '''
import json


def checks(framework, mode, spec, workdir, result):
    if spec.get("checks_raise"):
        raise KeyError("no such measurement")
    (workdir / "seen.json").write_text(json.dumps({"mode": mode}))
    return [
        {"check": "runs", "ok": result["status"] == "ok", "value": None, "unit": None,
         "detail": result.get("error")},
        {"check": "steps_seen", "ok": None, "value": len(result.get("losses") or []),
         "unit": "count", "detail": f"{framework}/{mode} in {workdir.name}"},
        {"check": "workdir_written", "ok": (workdir / "seen.json").exists(), "value": None,
         "unit": None, "detail": None},
    ]
'''


@pytest.fixture
def fake_task(tmp_path, monkeypatch) -> str:
    """A task package outside the repository: the fake implementation plus a checks.py."""
    package = tmp_path / "pkgs" / "fakechk"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "fake_impl.py").write_text("from tests.kernels.fake_impl import *  # noqa\n")
    (package / "checks.py").write_text(CHECKS)
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{tmp_path / 'pkgs'}")
    return "fakechk.fake_impl"


def job_of(module: str, behaviour: str | None = None, **spec) -> Job:
    return Job("fakechk", "jax", "jax-jit", module, {**SPEC, "behaviour": behaviour, **spec})


def test_a_tasks_checks_land_in_kernel_checks(fake_task, tmp_path, monkeypatch, write_config,
                                              run_stage):
    job = job_of(fake_task)
    result = run_job(job)
    assert result["status"] == "ok" and result["phase"] == "done"
    checks = {c["check"]: c for c in result["checks"]}
    assert checks["runs"]["ok"] is True
    assert checks["steps_seen"]["value"] == 6.0  # every step's loss reached checks()
    assert checks["steps_seen"]["detail"].startswith("jax/jax-jit in fwsurvey-kernel-")
    assert checks["workdir_written"]["ok"] is True  # spec["workdir"] is a writable folder
    assert result["graph_breaks"] is None  # JAX has no graph breaks to count

    monkeypatch.setattr(stage, "plan", lambda config, options: [job])
    monkeypatch.setattr(stage, "run_job", lambda j: result)
    run_stage(load_config(write_config()), tmp_path / "s.db", TrainStage(TrainOptions()))
    store = Store(tmp_path / "s.db")
    rows = store.query("SELECT * FROM kernel_checks_latest ORDER BY check_name")
    assert [(r["check_name"], r["ok"], r["value"], r["unit"]) for r in rows] == [
        ("runs", 1, None, None), ("steps_seen", None, 6.0, "count"),
        ("workdir_written", 1, None, None)]
    assert {(r["job"], r["task"], r["mode"], r["source"]) for r in rows} == {
        (job.key, "fakechk", "jax-jit", "kernels/fakechk")}
    [run] = store.query("SELECT outcome, graph_breaks FROM kernel_runs")
    assert run == {"outcome": "ok", "graph_breaks": None}


def test_a_checks_that_raises_is_one_failed_check_and_the_job_stays_ok(fake_task):
    job = job_of(fake_task, checks_raise=True)
    result = run_job(job)
    assert result["status"] == "ok"
    [check] = result["checks"]
    assert (check["check"], check["ok"]) == ("checks", False)
    assert "KeyError: 'no such measurement'" in check["detail"]
    [run, *rest] = job_records(job, result, "2026-12-01T00:00:00+00:00")
    assert run.row["outcome"] == "ok"
    [row] = [r.row for r in rest if r.table == "kernel_checks"]
    assert (row["check_name"], row["ok"]) == ("checks", 0)


def test_a_crashed_job_still_reports_its_checks(fake_task):
    result = run_job(job_of(fake_task, "crash_in_build"))
    assert result["status"] == "crashed" and result["phase"] == "build"
    runs = next(c for c in result["checks"] if c["check"] == "runs")
    assert runs["ok"] is False and "model does not fit the spec" in runs["detail"]


def test_a_task_without_checks_has_none():
    monkey_free = Job("fake", "jax", "jax-jit", "tests.kernels.fake_impl", dict(SPEC))
    result = {"status": "ok", "checks": None}
    assert check_records(monkey_free, result, "t") == []


def test_a_check_name_met_twice_is_written_once():
    job = Job("fake", "jax", "jax-jit", "tests.kernels.fake_impl", dict(SPEC))
    result = {"checks": [{"check": "a", "ok": True}, {"check": "a", "ok": False}]}
    [row] = [r.row for r in check_records(job, result, "t")]
    assert row["ok"] == 1


PROBE = """
import json, torch
from fwsurvey.kernels.pytorch_adapter import PyTorchAdapter
adapter = PyTorchAdapter()
before = adapter.graph_breaks()
torch.ones(2) * 2  # eager work compiles nothing
eager = adapter.graph_breaks()

def f(x):
    y = x * 2
    print("a side effect dynamo cannot trace")
    return y + 1

torch.compile(f, backend="eager")(torch.ones(3))
print(json.dumps({"before": before, "eager": eager, "compiled": adapter.graph_breaks()}))
"""


def test_pytorch_graph_breaks_come_from_dynamos_counters():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    # Nothing compiled: no graph to break. The print splits f's graph once.
    assert seen == {"before": None, "eager": None, "compiled": 1}
