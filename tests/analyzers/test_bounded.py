"""The analyzer's fault matrix: each file is measured in a bounded worker, and a file over a
limit, a lost worker or an unreadable file costs that file only; workers die with their
parent; failures are worded so a user knows what happened and what to change."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import libcst
import pytest

from fwsurvey import cli
from fwsurvey.analyzers import ergonomics, workers
from fwsurvey.analyzers import stage as analyze_stage
from fwsurvey.analyzers.ergonomics import AnalysisError, LibraryIndex, analyze_source
from fwsurvey.analyzers.measure import measure_all
from fwsurvey.analyzers.settings import ErgonomicsSettings
from fwsurvey.store import Store
from tests.analyzers import faults
from tests.analyzers.snippets import TORCH, TRAX

REPO = Path(__file__).parents[2]
SETTINGS = ErgonomicsSettings(kernels=Path("."), workers=2)


def deep_parentheses(depth: int, size: int) -> str:
    """Valid code whose parse takes libcst about 14 KB of memory per byte."""
    line = "x = " + "(" * depth + "1" + ")" * depth + "\n"
    return line * max(1, size // len(line))


def analyze(config: Path, folder: Path, monkeypatch, *, limits: str = "",
            measure_fn=None) -> tuple[int, Store]:
    """``fwsurvey analyze FOLDER`` with extra ``[analyzers.ergonomics]`` keys and stand-in."""
    if limits:
        config.write_text(config.read_text().replace(
            "[analyzers.ergonomics]\n", f"[analyzers.ergonomics]\n{limits}\n"))
    if measure_fn is not None:
        monkeypatch.setattr(analyze_stage, "measure_all",
                            functools.partial(measure_all, measure_fn=measure_fn))
    monkeypatch.chdir(folder.parent)
    with pytest.raises(SystemExit) as info:
        cli.main(["analyze", folder.name, "--config", str(config)])
    return info.value.code, Store(config.parent / "out" / "test.db")


def files_of(store: Store, run_id: int) -> dict[str, tuple]:
    return {r["path"]: (r["status"], r["message"], r["cached"]) for r in store.query(
        "SELECT path, status, message, cached FROM ergonomics_files WHERE run_id = ?",
        [run_id])}


def test_a_file_over_the_memory_limit_is_an_item_error_and_is_measured_again(
        project, tmp_path, monkeypatch):
    config = project(workers=1)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "deep.py").write_text(deep_parentheses(190, 40_000))  # ~560 MB to parse
    (pkg / "model.py").write_text(TORCH)
    code, store = analyze(config, pkg, monkeypatch, limits="max_file_memory_mb = 256")
    assert code == cli.EXIT_DEGRADED
    files = files_of(store, 1)
    assert files["pkg/model.py"] == ("ok", None, 0)
    status, message, _ = files["pkg/deep.py"]
    assert status == "memory"
    assert message == ("measuring needed over 256 MB and was stopped;"
                       " raise analyzers.ergonomics.max_file_memory_mb to allow more")
    assert store.query("SELECT status, reason FROM run_sources") == [
        {"status": "partial", "reason": "1 of 2 files not analyzed"}]
    # Not cached as if it were the file's own result: the next run measures it again.
    assert store.query("SELECT COUNT(*) AS n FROM ergonomics_cache")[0]["n"] == 1
    code, store = analyze(config, pkg, monkeypatch)
    assert files_of(store, 2) == {"pkg/model.py": ("ok", None, 1),
                                  "pkg/deep.py": ("memory", message, 0)}


def test_a_file_over_the_time_limit_is_stopped_and_the_others_are_measured(
        project, tmp_path, monkeypatch):
    config = project(workers=1)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "hang.py").write_text("x = 1\n")
    (pkg / "model.py").write_text(TORCH)
    code, store = analyze(config, pkg, monkeypatch, limits="max_file_seconds = 0.5",
                          measure_fn=faults.hang_on_hang)
    assert code == cli.EXIT_DEGRADED
    assert files_of(store, 1) == {
        "pkg/model.py": ("ok", None, 0),
        "pkg/hang.py": ("timeout", "measuring took over 0.5 s and was stopped;"
                        " raise analyzers.ergonomics.max_file_seconds to allow more", 0)}
    assert store.query("SELECT item, kind FROM item_errors") == [
        {"item": "pkg/hang.py", "kind": "timeout"}]
    assert store.query("SELECT COUNT(*) AS n FROM ergonomics_cache")[0]["n"] == 1


def test_a_dead_worker_costs_only_its_file(project, tmp_path, monkeypatch):
    config = project(workers=2)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name in ("a.py", "b.py", "die.py", "y.py", "z.py"):
        (pkg / name).write_text(TRAX)
    code, store = analyze(config, pkg, monkeypatch, measure_fn=faults.die_on_die)
    assert code == cli.EXIT_DEGRADED
    files = files_of(store, 1)
    assert {p: f[0] for p, f in files.items()} == {
        "pkg/a.py": "ok", "pkg/b.py": "ok", "pkg/die.py": "worker_died", "pkg/y.py": "ok",
        "pkg/z.py": "ok"}
    assert files["pkg/die.py"][1] == ("the worker process measuring it died (killed by"
                                      " SIGKILL); the other files were measured")
    assert store.query("SELECT status, items_ok FROM run_sources") == [
        {"status": "partial", "items_ok": 4}]
    assert store.query("SELECT COUNT(*) AS n FROM ergonomics_metrics")[0]["n"] == 4 * 4


def test_an_unreadable_file_costs_only_itself(project, tmp_path, monkeypatch):
    config = project(workers=1)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "model.py").write_text(TORCH)
    (pkg / "secret.py").write_text("x = 1\n")
    (pkg / "gone.py").symlink_to(tmp_path / "nowhere.py")  # a broken link
    read_bytes = Path.read_bytes

    def refuse(path: Path) -> bytes:  # tests run as root, where chmod 000 reads anyway
        if path.name == "secret.py":
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    code, store = analyze(config, pkg, monkeypatch)
    assert code == cli.EXIT_DEGRADED
    assert files_of(store, 1) == {
        "pkg/model.py": ("ok", None, 0),
        "pkg/secret.py": ("unreadable", "cannot be read (Permission denied); check the file"
                          " and its permissions", 0),
        "pkg/gone.py": ("unreadable", "cannot be read (No such file or directory); check the"
                        " file and its permissions", 0)}
    assert store.query("SELECT COUNT(*) AS n FROM ergonomics_cache")[0]["n"] == 1


def test_every_file_is_measured_in_a_worker(tmp_path):
    jobs = [("one.py", b"x = 1\n", None)]
    settings = replace(SETTINGS, workers=1)
    [result] = measure_all(jobs, settings, LibraryIndex(), measure_fn=faults.whose_pid)
    assert result["pid"] != os.getpid()


WATCHED = """
import sys
from pathlib import Path
from fwsurvey.analyzers.ergonomics import LibraryIndex
from fwsurvey.analyzers.measure import measure_all
from fwsurvey.analyzers.settings import ErgonomicsSettings
from tests.analyzers.faults import pid_then_hang

if __name__ == "__main__":
    jobs = [(path, b"", None) for path in sys.argv[1:]]
    list(measure_all(jobs, ErgonomicsSettings(kernels=Path("."), workers=2), LibraryIndex(),
                     measure_fn=pid_then_hang))
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_their_parent_even_on_kill_9(tmp_path):
    script = tmp_path / "watched.py"
    script.write_text(WATCHED)
    pid_files = [tmp_path / f"job{i}.pid" for i in range(4)]
    parent = subprocess.Popen([sys.executable, str(script), *map(str, pid_files)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    workers: list[int] = []
    try:
        for _ in range(1200):  # two workers are busy: each wrote its pid
            written = [p for p in pid_files if p.exists() and p.read_text()]
            if len(written) >= 2 or parent.poll() is not None:
                break
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in written]
        assert len(workers) == 2 and parent.pid not in workers
        assert all(map(alive, workers))
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(200):
            if not any(map(alive, workers)):
                break
            time.sleep(0.05)
        assert [w for w in workers if alive(w)] == []
    finally:
        parent.kill()
        for w in workers:  # orphans of a failed run must not outlive the test
            if alive(w):
                os.kill(w, signal.SIGKILL)


# -- messages -----------------------------------------------------------------------------------

def measured(text: str | bytes) -> dict:
    data = text.encode() if isinstance(text, str) else text
    [result] = measure_all([("f.py", data, None)], SETTINGS, LibraryIndex())
    return result


def test_a_syntax_error_without_a_line_says_no_line_none():
    result = measured(b"x = 1\n\x00\n")
    assert result["error"] == "syntax_error"
    assert "None" not in result["message"]
    assert "null bytes" in result["message"]


def test_code_too_deep_for_pythons_parser_is_too_complex_with_a_message():
    result = measured("x = " + "-" * 200_000 + "1\n")  # Python 3.11: a bare MemoryError
    assert result["error"] == "too_complex"
    assert result["message"].startswith("nested too deeply for Python's parser")


def test_deeply_nested_valid_code_is_measured():
    # libcst's visitors recurse past Python's default limit of 1,000 frames here.
    result = measured("x = " + "[" * 190 + "1" + "]" * 190 + "\n")
    assert "error" not in result
    assert result["phases"][0]["sloc"] == 1


def test_valid_code_libcst_cannot_read_is_a_parser_limit_not_a_syntax_error(monkeypatch):
    def refuse(text: str) -> libcst.Module:
        raise libcst.ParserSyntaxError("nested too deeply", lines=text.splitlines(True),
                                       raw_line=1, raw_column=4)

    monkeypatch.setattr(ergonomics.cst, "parse_module", refuse)
    with pytest.raises(AnalysisError) as info:
        analyze_source("x = ((1))\n", framework=None, imports={}, ceremony={},
                       index=LibraryIndex())
    assert info.value.kind == "parser_limit"
    assert "parser limit" in str(info.value)
    with pytest.raises(AnalysisError) as info:  # Python itself refuses it: a syntax error
        analyze_source("x = ((1)\n", framework=None, imports={}, ceremony={},
                       index=LibraryIndex())
    assert info.value.kind == "syntax_error"


def test_limits_are_settings_outside_the_cache_key(tmp_path):
    from fwsurvey.analyzers.settings import ergonomics_settings
    from fwsurvey.config import ConfigError, parse_config

    def settings(**ergonomics) -> ErgonomicsSettings:
        raw = {"frameworks": {"a": {"name": "A"}, "b": {"name": "B"}},
               "analyzers": {"ergonomics": ergonomics}}
        return ergonomics_settings(parse_config(raw, tmp_path / "fwsurvey.toml"))

    default = settings()
    assert (default.max_file_seconds, default.max_file_memory_mb) == (60.0, 2048)
    raised = settings(max_file_seconds=600, max_file_memory_mb=8192)
    assert (raised.max_file_seconds, raised.max_file_memory_mb) == (600.0, 8192)
    assert raised.fingerprint() == default.fingerprint()
    for key, value, message in [
            ("max_file_seconds", 0, "expected a number > 0, got 0"),
            ("max_file_seconds", "1m", "expected a number > 0, got '1m'"),
            ("max_file_memory_mb", 1.5, "expected a positive integer, got 1.5")]:
        with pytest.raises(ConfigError) as info:
            settings(**{key: value})
        assert str(info.value) == f"fwsurvey.toml: analyzers.ergonomics.{key}: {message}"


# -- the same measurements through an executor (a Ray cluster) ---------------------------------

def _measured(db: Path) -> dict[str, list]:
    """What a run stored about its files, less when and in which run."""
    store = Store(db)
    try:
        return {table: [{k: v for k, v in r.items() if k not in ("run_id", "fetched_at", "at")}
                        for r in store.query(f"SELECT {columns} FROM {table} ORDER BY {order}")]
                for table, columns, order in (("ergonomics_files", "*", "path"),
                                              ("ergonomics_metrics", "*", "path, phase"),
                                              ("item_errors", "item, kind, message", "item"))}
    finally:
        store.close()


def test_files_measured_in_batches_on_ray_give_the_local_rows(project, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    config = project(workers=1)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "model.py").write_text(TORCH)
    (pkg / "loop.py").write_text(TRAX)
    (pkg / "broken.py").write_text("def f(:\n")  # a syntax error: an item error either way
    monkeypatch.setattr(workers, "BATCH_JOBS", 2)  # two batches, two Ray tasks
    monkeypatch.chdir(tmp_path)
    for name, extra in (("local", []), ("ray", ["--executor", "ray"])):
        with pytest.raises(SystemExit) as info:
            cli.main(["analyze", "pkg", "--config", str(config),
                      "--db", str(tmp_path / f"{name}.db"), *extra])
        assert info.value.code == cli.EXIT_DEGRADED
    local, remote = _measured(tmp_path / "local.db"), _measured(tmp_path / "ray.db")
    assert remote == local
    assert {r["path"]: r["status"] for r in local["ergonomics_files"]} == {
        "pkg/broken.py": "syntax_error", "pkg/loop.py": "ok", "pkg/model.py": "ok"}
    assert len(local["ergonomics_metrics"]) == 2 * 4  # every phase of the two good files
    import ray

    assert not ray.is_initialized()  # the local cluster started for the run was stopped


class _LosesSecondBatch:
    """An executor whose second job's worker is lost; the others run here."""

    name = "fake"

    def run(self, jobs):
        from fwsurvey.executor import CRASHED, Completion

        for index, job in reversed(list(enumerate(jobs))):  # out of order, as a cluster may
            if index == 1:
                yield Completion(index, job, self.name, failure=CRASHED,
                                 reason="the Ray worker running it was lost")
            else:
                yield Completion(index, job, self.name, result=job.fn(*job.args))


def test_a_lost_batch_costs_its_files_and_the_rest_keep_their_order():
    from fwsurvey.analyzers.measure import limits, measure

    files = [(f"f{i}.py", TRAX.encode(), "trax") for i in range(5)]
    results = list(workers.run_batched(_LosesSecondBatch(), measure, files,
                                       (SETTINGS, LibraryIndex()), limits(SETTINGS), 1,
                                       batch_jobs=2))
    assert [r.get("error") for r in results] == [None, None, "worker_died", "worker_died",
                                                 None]
    assert results[2]["message"] == (
        "the fake worker measuring its batch of 2 files was lost (the Ray worker running it"
        " was lost); the other batches were measured")
    here = measure("f0.py", TRAX.encode(), "trax", SETTINGS, LibraryIndex())
    assert results[0] == results[4] == here and here["phases"][0]["sloc"] == 7
