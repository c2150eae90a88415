"""Data-parallel scaling: 1 and 2 devices give the same gradient in each framework, and the
scaling runs reach the store with their simulated-device caveat and their failures.

N devices are set before JAX is imported and PyTorch needs a process per device, so every
multi-device step runs in processes of its own (tests/kernels/grad_check.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fwsurvey import cli
from fwsurvey.config import load_config
from fwsurvey.kernels import stage
from fwsurvey.kernels.records import SIMULATED_NOTE, scaling_records
from fwsurvey.kernels.runner import Job
from fwsurvey.kernels.stage import TrainOptions, TrainStage
from fwsurvey.pipeline import run_survey
from fwsurvey.reports.stage import ReportStage
from fwsurvey.store import Store

REPO = Path(__file__).parents[2]
LEGACY_PYTHON = REPO / ".venv-jax-legacy" / "bin" / "python"


def legacy_python() -> Path:
    """The pinned older JAX's interpreter; its absence is a failure, never a skip."""
    if not LEGACY_PYTHON.exists():
        pytest.fail(f"{LEGACY_PYTHON} is missing: scripts/setup.sh (run by `make test`) builds "
                    "it; or run `bash scripts/setup-jax-legacy.sh`")
    return LEGACY_PYTHON


def run_check(args: list[str], n_devices: int = 1, python: Path | None = None,
              torchrun: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}"}
    launcher = (["-m", "torch.distributed.run", "--standalone",
                 f"--nproc-per-node={n_devices}"] if torchrun else [])
    return subprocess.Popen([str(python or sys.executable), *launcher, "-m",
                             "tests.kernels.grad_check", *args],
                            env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]


def test_ddp_gradient_over_two_ranks_equals_the_full_batch_gradient(tmp_path):
    out = tmp_path / "torch.json"
    finish(run_check(["pytorch", str(out)], n_devices=2, torchrun=True))
    result = json.loads(out.read_text())
    assert result["world"] == 2
    # DDP's averaged gradient is the full batch's, to float32 rounding...
    assert result["max_diff"] <= 1e-6 * max(1.0, result["scale"])
    assert result["loss_diff"] < 1e-6
    # ...and one rank's half alone is not: the all-reduce did the work.
    assert result["local_diff"] > 1e-3 * result["scale"]


def test_jax_gradient_sharded_over_two_devices_equals_one_device(tmp_path):
    out = tmp_path / "jax.json"
    finish(run_check(["jax", str(out)], n_devices=2))
    result = json.loads(out.read_text())
    assert result["devices"] == 2 and result["input_devices"] == 2
    assert result["input_shard_rows"] * 2 == result["batch"]  # each device holds half
    assert result["grad_devices"] == 2  # the gradient comes back replicated on both
    assert result["all_reduce_in_step"]  # XLA inserted the collective
    assert result["max_diff"] <= 1e-5 * max(1.0, result["scale"])


def test_trax_loop_on_two_devices_applies_the_one_device_gradient(tmp_path):
    python = legacy_python()
    outs = {n: tmp_path / f"trax{n}.npz" for n in (1, 2)}
    procs = [run_check(["trax", str(outs[n]), str(n)], n_devices=n, python=python)
             for n in (1, 2)]
    for proc in procs:
        finish(proc)
    one, two = (np.load(outs[n]) for n in (1, 2))
    assert (int(one["n_devices"]), int(two["n_devices"])) == (1, 2)
    assert int(two["local_devices"]) == 2
    assert str(two["jax_version"]) == _legacy_jax_version()
    grads = sorted(k for k in one.files if k.startswith("grad"))
    assert len(grads) == 6  # three Dense layers: weights and biases
    scale = max(float(np.abs(one[k]).max()) for k in grads)
    assert scale > 1e-3  # the step moved the weights
    for k in grads:
        np.testing.assert_allclose(two[k], one[k], atol=1e-6 * max(1.0, scale), rtol=0)


def _legacy_jax_version() -> str:
    pins = (REPO / "constraints-jax-legacy.txt").read_text().splitlines()
    return next(line.split("==")[1] for line in pins if line.startswith("jax=="))


# -- the stage ------------------------------------------------------------------------------

def _job(framework: str, n: int, environment: str = "main", **spec) -> Job:
    job = Job("toy", framework, "m", "x", {"batch": 8, "steps": 3, "profile": "quick",
                                          "loss_tolerance": 1e-3, **spec},
              experiment="scaling", variant=f"n{n}", n_devices=n, environment=environment)
    return job


def _ok(throughput: float, losses: list[float]) -> dict:
    return {"status": "ok", "phase": "done", "throughput": throughput, "losses": losses,
            "throughput_unit": "samples/s", "versions": {"jax": "0.10.2"}}


def test_scaling_records_compare_each_n_with_its_own_baseline():
    runs = [
        (_job("jax", 1), _ok(1000.0, [2.0, 1.5, 1.2]), "t"),
        (_job("jax", 2), _ok(1600.0, [2.0, 1.5004, 1.2]), "t"),
        (_job("jax", 4), _ok(2000.0, [2.0, 1.6, 1.2]), "t"),  # drifted: parity fails
        (_job("trax", 1, "jax-legacy"), _ok(500.0, [3.0, 2.0, 1.0]), "t"),
        (_job("trax", 2, "jax-legacy"), {"status": "crashed", "phase": "build",
                                         "error": "boom", "versions": {"jax": "0.7.2"}}, "t"),
    ]
    rows = {(r.row["framework"], r.row["n_devices"]): r.row
            for r in scaling_records(runs) if r.table == "kernel_scaling"}
    assert rows[("jax", 1)]["efficiency"] == 1.0 and rows[("jax", 1)]["loss_matches_1"] is None
    assert rows[("jax", 2)]["efficiency"] == pytest.approx(0.8)
    assert rows[("jax", 2)]["loss_max_abs_diff"] == pytest.approx(4e-4)
    assert rows[("jax", 2)]["loss_matches_1"] is True
    assert rows[("jax", 4)]["efficiency"] == pytest.approx(0.5)
    assert rows[("jax", 4)]["loss_matches_1"] is False
    assert rows[("jax", 2)]["per_device_batch"] == 4 and rows[("jax", 4)]["per_device_batch"] == 2
    failed = rows[("trax", 2)]
    assert (failed["status"], failed["efficiency"], failed["loss_matches_1"]) == (
        "crashed", None, None)
    assert failed["env"] == "jax-legacy" and failed["jax_version"] == "0.7.2"
    assert all(r["simulated"] and r["note"] == SIMULATED_NOTE for r in rows.values())


@pytest.fixture
def scaling_config(write_config):
    """The test survey with PyTorch added and the repository's legacy environment."""
    path = write_config()
    text = path.read_text().replace(
        "[kernels]\nenabled = false",
        f'[kernels]\nenabled = false\njax_legacy_python = "{legacy_python()}"')
    path.write_text(text + '\n[frameworks.pytorch]\nname = "PyTorch"\npypi = ["torch"]\n')
    return load_config(path)


def test_stage_stores_scaling_rows_the_caveat_and_trax_failing_on_current_jax(
        scaling_config, tmp_path, monkeypatch):
    planned = stage.scaling_jobs

    def short(*args, **kwargs):
        jobs = [j for j in planned(*args, **kwargs)
                if not (j.framework == "trax" and j.environment == "main" and j.n_devices == 1)]
        for job in jobs:
            job.spec.update(steps=8, warmup_steps=2)
        return jobs

    monkeypatch.setattr(stage, "scaling_jobs", short)
    options = TrainOptions(tasks=("mlp_digits",), frameworks=("pytorch", "trax"),
                           device="cpu", experiments=(), scaling=(2,))
    result = run_survey(scaling_config, tmp_path / "s.db",
                        stages=[TrainStage(options=options),
                                ReportStage(out_dir=tmp_path / "report")])
    [outcome] = [o for o in result.outcomes if o.stage == "train"]
    assert outcome.source == "kernels/scaling/mlp_digits"
    # Trax on the JAX installed here fails on 2 devices: one job short, recorded as such.
    assert (outcome.status, outcome.items_ok, len(outcome.errors)) == ("partial", 4, 1)

    store = Store(tmp_path / "s.db")
    rows = {(r["framework"], r["env"], r["n_devices"]): r
            for r in store.query("SELECT * FROM kernel_scaling")}
    assert set(rows) == {("pytorch", "main", 1), ("pytorch", "main", 2),
                         ("trax", "main", 2), ("trax", "jax-legacy", 1),
                         ("trax", "jax-legacy", 2)}
    assert all(r["simulated"] == 1 and r["note"] == SIMULATED_NOTE for r in rows.values())
    assert all(r["global_batch"] == 64 for r in rows.values())

    current = rows[("trax", "main", 2)]
    assert (current["status"], current["phase_reached"]) == ("crashed", "build")
    assert "jax.device_put_replicated" in current["error"]
    assert "AttributeError" in current["error"]
    import jax

    assert current["jax_version"] == jax.__version__

    for key in [("pytorch", "main", 2), ("trax", "jax-legacy", 2)]:
        row = rows[key]
        assert row["status"] == "ok" and row["per_device_batch"] == 32, row
        assert row["loss_matches_1"] == 1 and row["loss_max_abs_diff"] < 1e-5, row
        assert row["efficiency"] > 0 and row["timed_steps"] == 5
    assert rows[("trax", "jax-legacy", 2)]["jax_version"] == _legacy_jax_version()
    assert rows[("pytorch", "main", 2)]["backend"] == "gloo"
    assert 0 < rows[("pytorch", "main", 2)]["comm_share"] < 1
    assert rows[("trax", "jax-legacy", 2)]["comm_share"] is None
    curve = store.query("SELECT count(*) AS n FROM kernel_curves WHERE job = ?",
                        [current["job"].replace("/n2", "/n2-jax-legacy")])
    assert curve == [{"n": 8}]

    report = (tmp_path / "report" / "report.md").read_text()
    assert "N devices simulated on one CPU: this checks correctness and machinery" in report
    assert "**Does not run with the JAX installed today:**" in report
    assert f"It runs with JAX {_legacy_jax_version()}" in report


def invoke(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return info.value.code


@pytest.mark.parametrize("value", ["0", "1,x", "2,-1", "", "1.5"])
def test_scaling_option_rejects_what_is_not_a_device_count(write_config, capsys, value):
    assert invoke("train", "--scaling", value, "--config", str(write_config())) == 2
    assert "expected positive integers separated by commas" in capsys.readouterr().err


def test_a_device_count_must_divide_the_global_batch(write_config, capsys):
    assert invoke("train", "--scaling", "1,3", "--task", "transformer_lm",
                  "--config", str(write_config())) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "transformer_lm: the global batch (16) is not divisible by 3 devices" in err


def test_a_task_without_a_scaling_table_is_named(write_config, capsys):
    assert invoke("train", "--scaling", "2", "--task", "cnn_digits",
                  "--config", str(write_config())) == cli.EXIT_USAGE
    assert ("task 'cnn_digits' has no 'scaling' table in its spec.toml; tasks that scale: "
            "mlp_digits, transformer_lm") in capsys.readouterr().err


def test_scaling_counts_always_hold_the_baseline(write_config):
    assert stage.scaling_counts([4, 2, 2]) == (1, 2, 4)
    assert stage.scaling_counts([]) == ()
    path = write_config()
    path.write_text(path.read_text().replace("[kernels]\nenabled = false",
                                             "[kernels]\nenabled = false\nscaling = [2, 0]"))
    from fwsurvey.config import ConfigError

    with pytest.raises(ConfigError, match=r"kernels\.scaling: device counts must be positive"):
        TrainStage().check(load_config(path))
