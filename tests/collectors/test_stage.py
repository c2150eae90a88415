"""The collect stage: how a source's item outcomes become its status, reason and rows."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.collectors.stage import CollectStage, collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import (
    Checkpoint,
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Reachability,
    Record,
    SourceUnreachable,
)
from fwsurvey.stage import StageContext
from fwsurvey.store import Store

FETCHED_AT = "2026-11-27T12:00:00+00:00"


def release(package: str) -> Record:
    return Record("pypi_releases", {
        "package": package, "version": "1", "framework": "trax", "yanked": False,
        "file_count": 1, "wheel_count": 1, "sdist_count": 0, "other_count": 0,
        "fetched_at": FETCHED_AT})


class ScriptedCollector(Collector):
    """Items a, b, c; each answers as ``script`` says (a row, or an exception)."""

    name = "pypi"
    title = "scripted"
    Options = PyPICollector.Options  # the test config's [sources.pypi] has index_url

    def __init__(self, config, script: dict[str, Exception | None]):
        super().__init__(config)
        self.script = script
        self.closed = False

    def items(self):
        return [Item(key, "trax") for key in ("a", "b", "c")]

    def fetch(self, item: Item):
        answer = self.script.get(item.key)
        if answer is not None:
            raise answer
        return [release(item.key)]

    def check(self):
        return Reachability(True, "")

    def close(self):
        self.closed = True


@pytest.fixture
def collect(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")

    def run(script):
        collector = ScriptedCollector(config, script)
        outcome = collect_source(store, store.start_run("collect", ["collect"], {}), collector)
        assert collector.closed
        rows = [r["package"] for r in store.query(
            "SELECT package FROM pypi_releases WHERE run_id = (SELECT MAX(id) FROM runs)")]
        return outcome, rows

    yield run
    store.close()


def test_every_item_ok(collect):
    outcome, rows = collect({})
    assert (outcome.stage, outcome.source, outcome.status, outcome.reason) == (
        "collect", "pypi", "ok", None)
    assert outcome.items_ok == 3 and rows == ["a", "b", "c"]


def test_a_missing_item_makes_the_source_partial(collect):
    outcome, rows = collect({"b": ItemNotFound("b: not found (HTTP 404)")})
    assert (outcome.status, outcome.reason) == ("partial", "1 of 3 items not collected")
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("b", "not_found", "b: not found (HTTP 404)")]
    assert rows == ["a", "c"]


def test_nothing_found_is_an_error(collect):
    outcome, rows = collect({k: ItemNotFound(f"{k}: gone") for k in "abc"})
    assert (outcome.status, outcome.reason) == ("error", "no item could be collected")
    assert rows == []


def test_unreachable_stops_the_source(collect):
    outcome, _ = collect({"a": SourceUnreachable("index: connection refused")})
    assert (outcome.status, outcome.reason) == ("unreachable", "index: connection refused")
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("a", "unreachable", "index: connection refused"),
        ("b", "unreachable", "not attempted: source unreachable (index: connection refused)"),
        ("c", "unreachable", "not attempted: source unreachable (index: connection refused)")]


def test_unreachable_after_an_item_keeps_that_item(collect):
    outcome, rows = collect({"b": SourceUnreachable("timed out")})
    assert (outcome.status, outcome.reason) == ("partial", "2 of 3 items not collected")
    assert rows == ["a"]


def test_a_partial_item_that_stops_the_source_keeps_its_pages(collect):
    stop = PartialItem("rate limit exhausted", [release("b")], stop_source=True)
    outcome, rows = collect({"b": stop})
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("b", "incomplete", "rate limit exhausted"),
        ("c", "incomplete", "not attempted: rate limit exhausted")]
    assert (outcome.status, outcome.items_ok, rows) == ("partial", 1, ["a", "b"])


def test_an_unexpected_exception_fails_only_its_item(collect):
    outcome, rows = collect({"b": RuntimeError("parser bug")})
    assert (outcome.status, outcome.reason) == ("partial", "1 of 3 items not collected")
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("b", "error", "RuntimeError: parser bug")]
    assert outcome.items_ok == 2 and rows == ["a", "c"]


def test_a_timeout_of_a_subprocess_fails_only_its_item(collect):
    timeout = subprocess.TimeoutExpired(["git", "log"], 600)
    outcome, rows = collect({"a": timeout})
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("a", "error", "TimeoutExpired: Command '['git', 'log']' timed out after 600 seconds")]
    assert rows == ["b", "c"]


def versioned(package: str, version: str) -> Record:
    return Record("pypi_releases", {**release(package).row, "version": version})


class BatchedCollector(ScriptedCollector):
    """Item a: two committed batches, a third uncommitted, then a fault; b and c plain."""

    def __init__(self, config, fault: Exception):
        super().__init__(config, {})
        self.fault = fault
        self.fetched: list[str] = []

    def fetch(self, item: Item):
        self.fetched.append(item.key)
        if item.key != "a":
            yield release(item.key)
            return
        yield versioned("a", "1")
        yield self.state_record("a", "watermark", "1", FETCHED_AT)
        yield Checkpoint("batch 1")
        yield versioned("a", "2")
        yield self.state_record("a", "watermark", "2", FETCHED_AT)
        yield Checkpoint()
        yield versioned("a", "3")  # after the last checkpoint: dropped with the fault
        yield self.state_record("a", "watermark", "3", FETCHED_AT)
        raise self.fault


def test_batches_committed_before_a_fault_stay_and_the_next_item_runs(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    collector = BatchedCollector(config, ValueError("unexpected HTTP 418"))
    outcome = collect_source(store, run_id, collector)
    assert collector.fetched == ["a", "b", "c"]
    assert store.query("SELECT package, version, run_id FROM pypi_releases"
                       " ORDER BY package, version") == [
        {"package": "a", "version": "1", "run_id": run_id},
        {"package": "a", "version": "2", "run_id": run_id},
        {"package": "b", "version": "1", "run_id": run_id},
        {"package": "c", "version": "1", "run_id": run_id}]
    assert store.query("SELECT item, name, value FROM source_state") == [
        {"item": "a", "name": "watermark", "value": "2"}]
    assert store.query("SELECT item, kind, message FROM item_errors WHERE run_id = ?",
                       [run_id]) == [{"item": "a", "kind": "error",
                                     "message": "ValueError: unexpected HTTP 418"}]
    assert store.query("SELECT status, items_ok, items_failed, rows_written FROM run_sources"
                       " WHERE run_id = ?", [run_id]) == [
        {"status": "partial", "items_ok": 2, "items_failed": 1, "rows_written": 6}]
    assert outcome.reason == "1 of 3 items not collected"
    store.close()


def test_a_partial_item_after_checkpoints_keeps_batches_and_its_records(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    fault = PartialItem("rate limit exhausted", [versioned("a", "9")], stop_source=True)
    outcome = collect_source(store, run_id, BatchedCollector(config, fault))
    assert [r["version"] for r in store.query(
        "SELECT version FROM pypi_releases ORDER BY version")] == ["1", "2", "9"]
    assert [(e.item, e.kind) for e in outcome.errors] == [
        ("a", "incomplete"), ("b", "incomplete"), ("c", "incomplete")]
    store.close()


def test_a_failed_batch_write_ends_the_unit_keeping_earlier_batches(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})

    class BadSecondBatch(ScriptedCollector):
        def fetch(self, item: Item):
            yield versioned(item.key, "1")
            yield Checkpoint()
            yield Record("no_such_table", {})
            yield Checkpoint()

    outcome = collect_source(store, run_id, BadSecondBatch(config, {}))
    assert (outcome.status, outcome.reason) == (
        "error", "writing a batch failed (a): ValueError: no table spec for 'no_such_table'")
    assert [r["package"] for r in store.query("SELECT package FROM pypi_releases")] == ["a"]
    store.close()


#: Run by test_a_killed_collect_keeps_its_committed_batches in its own process.
KILLED_COLLECT = """
import sys, time
from pathlib import Path
from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import Checkpoint, Collector, Item, Reachability, Record
from fwsurvey.store import Store

config_path, db_path, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def row(package, version):
    return Record("pypi_releases", {
        "package": package, "version": version, "framework": "trax", "yanked": False,
        "file_count": 1, "wheel_count": 1, "sdist_count": 0, "other_count": 0,
        "fetched_at": "2026-11-27T12:00:00+00:00"})

class Blocking(Collector):
    name = "pypi"
    title = "blocks after one committed batch"
    Options = PyPICollector.Options

    def items(self):
        return [Item("a", "trax"), Item("b", "trax")]

    def fetch(self, item):
        if item.key == "a":
            return [row("a", "1")]
        return self.batches()

    def batches(self):
        yield row("b", "1")
        yield row("b", "2")
        yield self.state_record("b", "watermark", "2", "2026-11-27T12:00:00+00:00")
        yield Checkpoint("first batch")
        yield row("b", "3")
        ready.write_text("committed")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until killed
            time.sleep(0.02)

    def check(self):
        return Reachability(True, "")

store = Store(db_path)
collect_source(store, store.start_run("collect", ["collect"], {}),
               Blocking(load_config(config_path)))
"""


def test_a_killed_collect_keeps_its_committed_batches(write_config, tmp_path):
    config_path = write_config()
    script = tmp_path / "killed_collect.py"
    script.write_text(KILLED_COLLECT)
    db, ready = tmp_path / "killed.db", tmp_path / "ready"
    process = subprocess.Popen([sys.executable, str(script), str(config_path), str(db),
                                str(ready)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the collect never committed its batch"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    store = Store(db)  # opening runs quick_check: the killed writer left a sound file
    try:
        assert store.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        assert store.query("SELECT package, version, run_id, source FROM pypi_releases"
                           " ORDER BY package, version") == [
            {"package": "a", "version": "1", "run_id": 1, "source": "pypi"},
            {"package": "b", "version": "1", "run_id": 1, "source": "pypi"},
            {"package": "b", "version": "2", "run_id": 1, "source": "pypi"}]
        assert store.query("SELECT source, item, name, value FROM source_state") == [
            {"source": "pypi", "item": "b", "name": "watermark", "value": "2"}]
        assert store.query("SELECT * FROM run_sources") == []
        assert store.mark_interrupted_runs() == [1]
    finally:
        store.close()


def test_a_disabled_source_is_skipped_and_never_built(write_config, tmp_path):
    config = load_config(write_config())
    built = []
    stage = CollectStage(sources=["github", "pypi"],
                         make_collector=lambda cls, cfg: built.append(cls.name) or
                         ScriptedCollector(cfg, {}))
    store = Store(tmp_path / "s.db")
    ctx = StageContext(store, store.start_run("collect", ["collect"], {}), config)
    github, pypi = stage.run(ctx)
    assert (github.source, github.status, github.reason) == (
        "github", "skipped", "disabled in the configuration")
    assert (pypi.source, pypi.status) == ("pypi", "ok")
    assert built == ["pypi"]
    store.close()


def test_unknown_source_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        CollectStage(sources=["pypi", "cran"])
    assert str(info.value) == ("unknown source 'cran'; known sources: "
                               "pypi, github, git, downloads, docs, hub")
