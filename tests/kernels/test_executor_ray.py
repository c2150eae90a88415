"""The train stage on a local Ray cluster: the same rows as the local executor (timings and
where it ran aside), a job whose worker is killed recorded as that job's crash while the
others complete, and the executor's own failures (a raising job, one no node can hold)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from fwsurvey import cli
from fwsurvey.config import load_config
from fwsurvey.executor import (
    CRASHED,
    ERROR,
    UNSCHEDULABLE,
    ExecJob,
    LocalExecutor,
    RayExecutor,
    Resources,
    ray_options,
)
from fwsurvey.kernels import stage
from fwsurvey.kernels.compare import comparable, differences
from fwsurvey.kernels.runner import Job
from fwsurvey.kernels.stage import TrainOptions, TrainStage
from fwsurvey.store import Store

ray = pytest.importorskip("ray")

REPO = Path(__file__).parent.parent.parent
SPEC = {"batch": 4, "steps": 6, "warmup_steps": 2, "metric": "accuracy", "target": 0.5,
        "task": "fake", "profile": "quick"}

@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the module; its workers import the tests' fakes."""
    with pytest.MonkeyPatch.context() as mp:
        # Workers inherit the environment the cluster starts with: the harness subprocess
        # imports tests.kernels.fake_impl from the repository root.
        mp.setenv("PYTHONPATH", str(REPO))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, object_store_memory=80 << 20)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the local executor's subprocesses


def fake_job(task: str = "fake", variant: str = "default", behaviour: str | None = None) -> Job:
    return Job(task, "jax", "jax-jit", "tests.kernels.fake_impl",
               {**SPEC, "task": task, "behaviour": behaviour}, variant=variant)


def matrix() -> list[Job]:
    """Two tasks (two units, one transaction each), an ok job, a crash, a missed target."""
    return [fake_job(), fake_job(variant="broken", behaviour="crash_in_build"),
            fake_job("fake2", "low", "low_accuracy")]


def rows(db: Path, table: str, order: str) -> list[dict]:
    store = Store(db)
    try:
        return store.query(f"SELECT * FROM {table} ORDER BY {order}")
    finally:
        store.close()


def test_the_matrix_on_ray_stores_what_the_local_executor_stores(
        ray_cluster, write_config, tmp_path, monkeypatch, run_stage):
    config_path = write_config()
    config = load_config(config_path)
    monkeypatch.setattr(stage, "plan", lambda config, options: matrix())
    run_stage(config, tmp_path / "local.db", TrainStage(TrainOptions(),
                                                        executor=LocalExecutor()))
    # Through the command line, as a user runs it (Ray is up: the executor joins it).
    monkeypatch.setattr(cli, "plan", lambda config, options: matrix())
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--executor", "ray", "--config", str(config_path),
                  "--db", str(tmp_path / "ray.db")])
    assert info.value.code == cli.EXIT_DEGRADED  # the crash and the missed target

    local, remote = comparable(tmp_path / "local.db"), comparable(tmp_path / "ray.db")
    assert remote == local and differences(local, remote) == []
    local_sources = rows(tmp_path / "local.db", "run_sources", "source")
    assert ([(r["source"], r["status"], r["items_ok"], r["reason"]) for r in local_sources]
            == [(r["source"], r["status"], r["items_ok"], r["reason"])
                for r in rows(tmp_path / "ray.db", "run_sources", "source")])
    assert ([(r["item"], r["kind"], r["message"])
             for r in rows(tmp_path / "local.db", "item_errors", "item")]
            == [(r["item"], r["kind"], r["message"])
                for r in rows(tmp_path / "ray.db", "item_errors", "item")])
    outcomes = {r["job"]: r["outcome"] for r in local["kernel_runs"]}
    assert outcomes == {"fake/jax/jax-jit/train/default": "ok",
                        "fake/jax/jax-jit/train/broken": "crashed",
                        "fake2/jax/jax-jit/train/low": "missed_target"}
    assert len(local["samples"]) == 3 * 2  # 3 timed steps of each job that trained

    host = socket.gethostname()
    node_id = ray.get_runtime_context().get_node_id()
    for r in rows(tmp_path / "local.db", "kernel_runs", "job"):
        assert (r["executor"], r["node"]) == ("local", host)
    for r in rows(tmp_path / "ray.db", "kernel_runs", "job"):
        assert (r["executor"], r["node"]) == ("ray", f"{host} ({node_id})")
    [run] = rows(tmp_path / "ray.db", "runs", "id")
    assert run["command"] == "train --profile=quick --executor=ray"


def test_a_job_whose_worker_is_killed_is_its_crash_and_the_others_complete(
        ray_cluster, write_config, tmp_path, monkeypatch, run_stage):
    pid_file = tmp_path / "orphan.pid"
    killer = fake_job(variant="killed")
    # In place of the harness's launcher: a child that kills its parent (the Ray worker
    # running the job) and would then train for an hour, were it not tied to its parent.
    killer.launcher = ("-c", "import os, signal, sys, time; "
                             f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                             "os.kill(os.getppid(), signal.SIGKILL); time.sleep(3600)")
    jobs = [fake_job(), killer, fake_job("fake2")]
    monkeypatch.setattr(stage, "plan", lambda config, options: jobs)
    outcomes = run_stage(load_config(write_config()), tmp_path / "s.db",
                         TrainStage(TrainOptions(executor="ray"), executor=RayExecutor()))
    assert [(o.source, o.status, o.items_ok, o.reason) for o in outcomes] == [
        ("kernels/fake", "partial", 1, "1 of 2 jobs did not finish"),
        ("kernels/fake2", "ok", 1, None)]
    runs = {r["variant"] + "/" + r["task"]: r for r in rows(tmp_path / "s.db", "kernel_runs",
                                                              "job")}
    assert runs["default/fake"]["outcome"] == runs["default/fake2"]["outcome"] == "ok"
    killed = runs["killed/fake"]
    assert (killed["status"], killed["outcome"], killed["phase_reached"]) == (
        "crashed", "crashed", None)
    assert killed["error"].startswith("the Ray worker running it was lost (WorkerCrashedError")
    assert (killed["executor"], killed["node"]) == ("ray", None)
    [error] = rows(tmp_path / "s.db", "item_errors", "item")
    assert (error["item"], error["kind"]) == (killer.key, "crashed")
    assert error["message"].startswith("crashed on the ray executor: the Ray worker running")
    # The job's own process died with its worker (PR_SET_PDEATHSIG): no orphan trains on.
    orphan = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(orphan)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def _raises(message: str) -> None:
    raise ValueError(message)


def _kills_its_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_ray_executor_failures_are_per_job(ray_cluster):
    executor = RayExecutor()
    jobs = [ExecJob("adds", int.__add__, (2, 3)),
            ExecJob("raises", _raises, ("no such file",)),
            ExecJob("too big", int.__add__, (1, 1), Resources(gpus=1)),
            ExecJob("dies", _kills_its_worker)]
    done = {c.job.label: c for c in executor.run(jobs)}
    assert (done["adds"].result, done["adds"].failure) == (5, None)
    node_id = ray.get_runtime_context().get_node_id()
    assert done["adds"].node == f"{socket.gethostname()} ({node_id})"
    assert (done["raises"].failure, done["raises"].reason) == (ERROR, "ValueError: no such file")
    assert done["too big"].failure == UNSCHEDULABLE
    assert done["too big"].reason == ("needs 1 CPUs and 1 GPUs on one node; the cluster's nodes"
                                      " have at most 2 CPUs and 0 GPUs")
    assert done["dies"].failure == CRASHED
    assert "WorkerCrashedError" in done["dies"].reason
    executor.close()
    assert ray.is_initialized()  # it joined the cluster; it does not stop what it did not start


def test_a_timing_job_asks_for_a_whole_node_by_default(ray_cluster):
    executor = RayExecutor()
    nodes = executor._nodes()
    assert nodes[0]["CPU"] == 2
    cpu_job = stage.resources(fake_job())
    assert ray_options(cpu_job, nodes) == {"num_cpus": 2, "num_gpus": 0, "max_retries": 0,
                                           "retry_exceptions": False}  # every CPU it has
    assert ray_options(stage.resources(fake_job(), jobs_per_node=2), nodes)["num_cpus"] == 1


def test_a_gpu_job_takes_the_share_of_a_node_with_gpus():
    # A big CPU-only head and smaller GPU nodes, as on many clusters.
    nodes = [{"CPU": 64.0}, {"CPU": 32.0, "GPU": 8.0}, {"CPU": 16.0, "GPU": 2.0}]
    gpu_job = fake_job()
    gpu_job.device = "cuda"
    assert stage.resources(gpu_job) == Resources(cpus=1.0, gpus=1, per_node=1)
    assert ray_options(stage.resources(gpu_job), nodes)["num_cpus"] == 32
    assert ray_options(stage.resources(gpu_job, jobs_per_node=8), nodes)["num_cpus"] == 4
    gpu_job.n_devices = 4
    assert ray_options(stage.resources(gpu_job), nodes)["num_gpus"] == 4
    gpu_job.n_devices = 16
    with pytest.raises(ValueError) as info:
        ray_options(stage.resources(gpu_job), nodes)
    assert str(info.value) == ("needs 1 CPUs and 16 GPUs on one node; the cluster's nodes"
                               " have at most 64 CPUs and 8 GPUs")
    assert ray_options(Resources(memory_mb=512), nodes)["memory"] == 512 << 20


def test_local_executor_keeps_the_order_and_words_a_raise():
    done = list(LocalExecutor().run([ExecJob("a", _raises, ("boom",)),
                                     ExecJob("b", int.__add__, (1, 2))]))
    assert [(c.index, c.failure, c.reason, c.result) for c in done] == [
        (0, ERROR, "ValueError: boom", None), (1, None, None, 3)]


def test_jobs_are_planned_for_the_clusters_gpus_and_ask_for_them(write_config):
    config = load_config(write_config())
    options = TrainOptions(tasks=("mlp_digits",), frameworks=("trax",),
                           experiments=("train",), scaling=(1, 2, 4), cluster_gpus=2)
    jobs = stage.plan(config, options)  # this machine has no GPU; the cluster's nodes have 2
    single = [j for j in jobs if j.experiment == "train"]
    assert single and {(j.device, j.env["CUDA_VISIBLE_DEVICES"]) for j in single} == {
        ("cuda", "0")}
    assert {stage.resources(j).gpus for j in single} == {1}
    scaled = {j.n_devices: j for j in jobs
              if j.experiment == "scaling" and j.environment == "main"}
    assert [stage.resources(scaled[n]).gpus for n in (1, 2, 4)] == [1, 2, 4]
    assert (scaled[2].unsupported, scaled[4].unsupported) == (None, "4 GPUs needed, 2 visible")
    # A cluster without GPUs: the default device is the CPU, as on a machine without one.
    cpu = stage.plan(config, TrainOptions(tasks=("mlp_digits",), frameworks=("trax",),
                                          experiments=("train",), cluster_gpus=0))
    assert {(j.device, stage.resources(j).gpus) for j in cpu} == {("cpu", 0)}


def test_a_placed_gpu_job_uses_the_devices_its_executor_gave(monkeypatch):
    from fwsurvey.kernels import runner

    seen: list[Job] = []
    monkeypatch.setattr(runner, "run_job", lambda job: seen.append(job) or {"status": "ok"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # as Ray sets it for a 1-GPU task
    job = fake_job()
    job.device, job.env = "cuda", {"CUDA_VISIBLE_DEVICES": "0", "NCCL_DEBUG": "WARN"}
    runner.run_placed_job(job)
    cpu_job = fake_job()
    cpu_job.env = {"CUDA_VISIBLE_DEVICES": ""}
    runner.run_placed_job(cpu_job)
    assert [j.env for j in seen] == [{"NCCL_DEBUG": "WARN"}, {"CUDA_VISIBLE_DEVICES": ""}]
    assert job.env["CUDA_VISIBLE_DEVICES"] == "0"  # the planned job itself is left as it was


def test_the_kernels_table_names_the_executor(write_config):
    from fwsurvey.config import ConfigError

    path = write_config()
    text = path.read_text()
    path.write_text(text.replace("[kernels]\nenabled = false", "[kernels]\nenabled = false\n"
                                 "executor = 'ray'\naddress = 'auto'\njobs_per_node = 2"))
    options = stage.options_from_config(load_config(path))
    assert (options.executor, options.address, options.jobs_per_node) == ("ray", "auto", 2)
    path.write_text(text.replace("[kernels]\nenabled = false",
                                 "[kernels]\nenabled = false\nexecutor = 'dask'"))
    with pytest.raises(ConfigError) as info:
        TrainStage().check(load_config(path))
    assert str(info.value) == ("fwsurvey.toml: kernels.executor: expected one of 'local' or 'ray', "
                               "got 'dask'")
