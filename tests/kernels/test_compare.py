"""The executor comparison: what it leaves out, what it reports, and its command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fwsurvey.kernels.compare import VARYING, comparable, differences
from fwsurvey.sources import Record
from fwsurvey.store import Store

REPO = Path(__file__).parent.parent.parent


JOB = {"fetched_at": "2026-12-01T00:00:00Z", "job": "t/jax/jax-jit/train/default",
       "task": "t", "framework": "jax", "mode": "jax-jit",
       "experiment": "train", "variant": "default", "device": "cpu", "precision": "fp32"}


def store_with(path: Path, runs: int, final_loss: float, wall_s: float, node: str) -> Path:
    """A store whose latest run (of ``runs``) holds one training job with two samples."""
    store = Store(path)
    try:
        for _ in range(runs):
            run = store.start_run("train", ["train"], {})
        store.write_records(run, "kernels", [
            Record("kernel_runs", {**JOB, "profile": "quick", "status": "ok", "outcome": "ok",
                                   "final_loss": final_loss, "wall_s": wall_s, "node": node}),
            *[Record("kernel_samples", {**JOB, "fingerprint": "f1", "window": 1, "step": step,
                                        "step_ms": wall_s + step, "data_ms": 0.0,
                                        "compute_ms": wall_s + step}) for step in (1, 2)]])
    finally:
        store.close()
    return path


def test_timings_and_place_differ_freely_everything_else_is_reported(tmp_path):
    a = comparable(store_with(tmp_path / "a.db", 1, 0.5, 10.0, "here"))
    same = comparable(store_with(tmp_path / "b.db", 2, 0.5, 99.0, "there"))
    assert {"wall_s", "node", "run_id", "fetched_at"} <= VARYING
    assert differences(a, same) == []
    other = comparable(store_with(tmp_path / "c.db", 1, 0.25, 10.0, "here"))
    assert differences(a, other) == [
        "kernel_runs ('t/jax/jax-jit/train/default',).final_loss: 0.5 != 0.25"]


def test_the_command_exits_1_on_a_difference_and_names_it(tmp_path):
    a = store_with(tmp_path / "a.db", 1, 0.5, 10.0, "here")
    b = store_with(tmp_path / "b.db", 1, 0.25, 12.0, "there")
    script = [sys.executable, str(REPO / "scripts" / "compare_executors.py")]
    same = subprocess.run([*script, str(a), str(a)], capture_output=True, text=True)
    assert same.returncode == 0 and "0 difference(s)" in same.stdout
    assert "1 training jobs, 2 samples" in same.stdout
    differ = subprocess.run([*script, str(a), str(b)], capture_output=True, text=True)
    assert differ.returncode == 1
    assert "final_loss: 0.5 != 0.25" in differ.stdout and "1 difference(s)" in differ.stdout
