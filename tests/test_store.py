"""The store: migrations, idempotent re-runs, transactions that survive failures and kills."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from sqlite_utils import Database

from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.collectors.stage import CollectStage, collect_source
from fwsurvey.config import load_config
from fwsurvey.lock import LockHeld, RunLock
from fwsurvey.pipeline import run_survey
from fwsurvey.schema import migrations, table_spec
from fwsurvey.sources import Collector, Item, PartialItem, Reachability, Record
from fwsurvey.store import SourceOutcome, Store, StoreError, utcnow
from tests.conftest import FIXED_NOW


def fixed_clock(cls, config):
    return cls(config, now=lambda: FIXED_NOW)


def dump(store: Store, table: str) -> list[dict]:
    return store.query(f"SELECT * FROM {table} ORDER BY 1, 2")


def test_migrations_from_empty(tmp_path):
    store = Store(tmp_path / "s.db")
    tables = set(store.db.table_names())
    assert {"runs", "run_sources", "item_errors", "pypi_packages", "pypi_releases"} <= tables
    assert {"pypi_packages_latest", "source_status_latest"} <= set(store.db.view_names())
    applied = [m.name for m in migrations.applied(store.db)]
    assert applied == [m.name for m in migrations._migrations]
    assert store.db.journal_mode == "wal"


def test_migrations_from_previous_version_keep_data(tmp_path):
    path = tmp_path / "s.db"
    db = Database(path)
    migrations.apply(db, stop_before="m002_pypi")  # a database from before the PyPI source
    assert "pypi_releases" not in db.table_names()
    db.execute("INSERT INTO runs (started_at, finished_at, status, command, stages,"
               " tool_version, python_version, platform, versions)"
               " VALUES ('2026-01-01T00:00:00+00:00', '2026-01-01T00:01:00+00:00', 'ok',"
               " 'collect', '[]', '0.0.1', '3.11', 'linux', '{}')")
    db.conn.commit()
    db.close()

    store = Store(path)
    assert "pypi_releases" in store.db.table_names()
    [run] = store.query("SELECT * FROM runs")
    assert run["tool_version"] == "0.0.1" and run["status"] == "ok"
    assert store.start_run("collect", ["collect"], {}) == 2


def test_rerun_adds_a_run_and_no_duplicate_releases(write_config, pypi_index, tmp_path):
    config = load_config(write_config())
    db = tmp_path / "s.db"
    first = run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    store = Store(db)
    releases_before = dump(store, "pypi_releases")
    store.close()
    second = run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    assert (first.status, second.status) == ("ok", "ok")
    assert (first.run_id, second.run_id) == (1, 2)

    store = Store(db)
    releases_after = dump(store, "pypi_releases")
    assert len(releases_after) == len(releases_before) > 0
    assert {r["first_run_id"] for r in releases_after} == {1}
    assert {r["run_id"] for r in releases_after} == {2}
    # History: one snapshot per run per package; the latest view has one per package.
    counts = store.query("SELECT run_id, count(*) AS n FROM pypi_packages GROUP BY run_id")
    assert counts == [{"run_id": 1, "n": 2}, {"run_id": 2, "n": 2}]
    latest = store.query("SELECT package, run_id FROM pypi_packages_latest ORDER BY package")
    assert latest == [{"package": "jax", "run_id": 2}, {"package": "trax", "run_id": 2}]
    assert [r["status"] for r in store.query("SELECT status FROM runs")] == ["ok", "ok"]


class ExplodingCollector(Collector):
    """Collects its first item and raises on the second, like a bug halfway through."""

    name = "pypi"
    title = "exploding"
    Options = PyPICollector.Options

    def __init__(self, config, delegate):
        super().__init__(config)
        self.delegate = delegate

    def items(self):
        return self.delegate.items()

    def fetch(self, item: Item):
        if item.key == "jax":
            raise RuntimeError("parser bug on the second item")
        return self.delegate.fetch(item)

    def check(self):
        return Reachability(True, "")


def test_item_raising_midway_fails_only_that_item(write_config, pypi_index, tmp_path):
    """An unexpected exception is the item's fault: the items before it are written."""
    config = load_config(write_config())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])

    result = run_survey(config, db, stages=[CollectStage(
        sources=["pypi"],
        make_collector=lambda cls, cfg: ExplodingCollector(cfg, fixed_clock(cls, cfg)))])
    assert result.status == "degraded"
    [outcome] = result.outcomes
    assert outcome.status == "partial"
    assert outcome.reason == "1 of 2 items not collected"

    store = Store(db)
    errors = store.query("SELECT item, kind, message FROM item_errors WHERE run_id = 2")
    assert errors == [{"item": "jax", "kind": "error",
                       "message": "RuntimeError: parser bug on the second item"}]
    packages = store.query("SELECT package FROM pypi_packages WHERE run_id = 2")
    assert packages == [{"package": "trax"}]  # the item before the fault was kept
    [row] = store.query("SELECT * FROM run_sources WHERE run_id = 2")
    assert row["status"] == "partial" and row["rows_written"] > 0


def test_source_raising_before_its_items_writes_nothing(write_config, pypi_index, tmp_path):
    """A whole-source fault (listing the items fails) leaves the store as it was."""
    config = load_config(write_config())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    store = Store(db)
    before = {t: dump(store, t) for t in ("pypi_packages", "pypi_releases")}
    store.close()

    class NoItems(ExplodingCollector):
        def items(self):
            raise RuntimeError("index listing failed")

    result = run_survey(config, db, stages=[CollectStage(
        sources=["pypi"], make_collector=lambda cls, cfg: NoItems(cfg, fixed_clock(cls, cfg)))])
    assert result.status == "failed"
    [outcome] = result.outcomes
    assert outcome.status == "error"
    assert outcome.reason == "RuntimeError: index listing failed"
    store = Store(db)
    assert {t: dump(store, t) for t in before} == before
    [row] = store.query("SELECT * FROM run_sources WHERE run_id = 2")
    assert row["status"] == "error" and row["rows_written"] == 0
    assert store.query("SELECT status FROM runs WHERE id = 2") == [{"status": "failed"}]


def test_failed_write_rolls_back_the_whole_source(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    now = utcnow()
    good = Record("pypi_packages", {
        "package": "x", "framework": "x", "fetched_at": now, "file_count": 1,
        "release_count": 1, "prerelease_count": 0, "yanked_release_count": 0,
        "releases_last_12_months": 1})
    bad = Record("pypi_releases", {"package": "x", "version": "1", "no_such_column": 1})
    outcome = SourceOutcome("collect", "pypi", "ok", now, now, items_ok=1)
    with pytest.raises(Exception, match="no_such_column"):
        store.write_source(run_id, outcome, [good, bad])
    assert store.query("SELECT count(*) AS n FROM pypi_packages") == [{"n": 0}]
    assert store.query("SELECT count(*) AS n FROM run_sources") == [{"n": 0}]


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from fwsurvey.store import Store
    store = Store(sys.argv[1])
    run_id = store.start_run("collect", ["collect"], {})
    store.db.execute("BEGIN")
    for i in range(1000):
        store.db.execute(
            "INSERT INTO pypi_releases (package, version, framework, yanked, file_count,"
            " wheel_count, sdist_count, other_count, first_run_id, run_id, source, fetched_at)"
            " VALUES ('killed', ?, 'x', 0, 1, 1, 0, 0, ?, ?, 'pypi', 'now')", [str(i), run_id,
            run_id])
    print("writing", flush=True)
    time.sleep(60)
""")


def test_killed_run_leaves_store_consistent_and_is_closed_by_the_next(
        write_config, pypi_index, tmp_path):
    db = tmp_path / "s.db"
    config = load_config(write_config())
    run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    store = Store(db)
    before = dump(store, "pypi_releases")
    store.close()

    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"  # mid-transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    store = Store(db)
    assert dump(store, "pypi_releases") == before
    assert store.query("SELECT id, status FROM runs") == [
        {"id": 1, "status": "ok"}, {"id": 2, "status": "running"}]
    store.close()
    result = run_survey(config, db, stages=[CollectStage(make_collector=fixed_clock)])
    assert result.run_id == 3 and result.status == "ok"
    store = Store(db)
    assert store.query("SELECT status FROM runs WHERE id = 2") == [{"status": "interrupted"}]


def test_second_writer_is_refused_by_the_lock(tmp_path, write_config):
    db = tmp_path / "s.db"
    config = load_config(write_config())
    with RunLock(db):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            run_survey(config, db, stages=["collect"])
    # Released: the lock does not outlive its holder.
    with RunLock(db):
        pass


def test_lock_is_released_when_its_process_dies(tmp_path):
    db = tmp_path / "s.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from fwsurvey.lock import RunLock\n"
         "with RunLock(sys.argv[1]): print('held', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        with RunLock(db):
            pass
    holder.kill()
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with RunLock(db):
                break
        except LockHeld:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_table_specs_are_read_off_the_schema(tmp_path):
    store = Store(tmp_path / "s.db")
    specs = {name: (spec.kind, spec.key) for name, spec in store.tables.items()}
    assert specs["pypi_packages"] == ("history", ("run_id", "package"))
    assert specs["claim_evidence"] == ("history", ("run_id", "claim_id", "metric", "item"))
    assert specs["pypi_releases"] == ("fact", ("package", "version"))
    assert specs["github_releases"] == ("fact", ("repo", "kind", "tag_name"))
    assert specs["source_state"] == ("state", ("source", "item", "name"))
    assert specs["ergonomics_cache"] == ("state", ("content_sha256", "analyzer_key"))
    # Bookkeeping tables are the store's own: no stage writes them.
    assert not {"runs", "run_sources", "item_errors"} & set(specs)
    # Each kind follows from the definition: run_id in the key, or first_run_id.
    for name, (kind, key) in specs.items():
        columns = store.db[name].columns_dict
        assert kind == ("history" if "run_id" in key
                        else "fact" if "first_run_id" in columns else "state"), name
        assert table_spec(store.db, name).key == tuple(store.db[name].pks)


def test_record_for_unknown_table_is_refused(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    now = utcnow()
    with pytest.raises(ValueError, match="no table spec"):
        store.write_source(run_id, SourceOutcome("collect", "x", "ok", now, now),
                           [Record("nope", {})])


def test_pypi_collector_rows_carry_provenance(write_config, pypi_index, tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {"pypi-simple": "1.8.0"})
    collect_source(store, run_id, PyPICollector(load_config(write_config()),
                                                now=lambda: FIXED_NOW))
    for table in ("pypi_packages", "pypi_releases"):
        rows = store.query(f"SELECT DISTINCT run_id, source, fetched_at FROM {table}")
        assert rows == [{"run_id": run_id, "source": "pypi",
                         "fetched_at": "2026-11-27T12:00:00+00:00"}]


class PagedCollector(Collector):
    """Two items; the second stops midway like a rate limit, keeping whole pages only."""

    name = "pypi"
    title = "paged"
    Options = PyPICollector.Options

    def items(self):
        return [Item("a", "trax"), Item("b", "trax")]

    def _rows(self, key):
        return Record("pypi_releases", {
            "package": key, "version": "1", "framework": "trax", "yanked": False,
            "file_count": 1, "wheel_count": 1, "sdist_count": 0, "other_count": 0,
            "fetched_at": "2026-11-27T12:00:00+00:00"})

    def fetch(self, item: Item):
        seen = self.state.get((item.key, "since"))
        if item.key == "b" and seen is None:
            raise PartialItem("rate limit exhausted; resumes at page 2", [
                self._rows("b"), self.state_record("b", "since", "page-2",
                                                   "2026-11-27T12:00:00+00:00")])
        return [self._rows(item.key),
                self.state_record(item.key, "since", f"done-after-{seen}",
                                  "2026-11-27T12:00:00+00:00")]

    def check(self):
        return Reachability(True, "")


def test_partial_item_keeps_its_pages_and_state_resumes_next_run(write_config, tmp_path):
    config = load_config(write_config())
    db = tmp_path / "s.db"
    first = run_survey(config, db, stages=[CollectStage(
        sources=["pypi"], make_collector=lambda cls, cfg: PagedCollector(cfg))])
    [outcome] = first.outcomes
    assert (outcome.status, outcome.items_ok) == ("partial", 1)
    assert [(e.item, e.kind) for e in outcome.errors] == [("b", "incomplete")]
    store = Store(db)
    assert store.source_state("pypi") == {("a", "since"): "done-after-None",
                                          ("b", "since"): "page-2"}
    assert [r["package"] for r in dump(store, "pypi_releases")] == ["a", "b"]
    store.close()

    second = run_survey(config, db, stages=[CollectStage(
        sources=["pypi"], make_collector=lambda cls, cfg: PagedCollector(cfg))])
    assert second.outcomes[0].status == "ok"
    store = Store(db)
    assert store.source_state("pypi")[("b", "since")] == "done-after-page-2"
    assert store.query("SELECT DISTINCT run_id FROM source_state") == [{"run_id": 2}]


# -- what opening checks --------------------------------------------------------------------

def newer_database(path) -> None:
    """A database a later fwsurvey migrated: it holds a migration this code does not know."""
    Store(path).close()
    db = Database(path)
    db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
               " VALUES ('fwsurvey', 'm999_from_the_future', '2030-01-01 00:00:00+00:00')")
    db.conn.commit()
    db.close()


def damaged_database(path) -> None:
    """A database with rows over many pages, one of them overwritten with garbage."""
    store = Store(path)
    run = store.start_run("collect", ["collect"], {})
    now = utcnow()
    store.write_source(run, SourceOutcome("collect", "github", "ok", now, now), [
        Record("github_contributors", {"repo": "google/trax", "framework": "trax",
                                       "login": f"contributor-{i:05d}", "contributions": i,
                                       "is_bot": False, "fetched_at": now})
        for i in range(3000)])
    store.close()
    pages = path.stat().st_size // 4096
    with open(path, "r+b") as f:  # a page in the middle: a leaf of github_contributors
        f.seek(pages // 2 * 4096)
        f.write(b"\xde\xad\xbe\xef" * 1024)


def test_database_from_a_newer_fwsurvey_is_refused_untouched(tmp_path):
    path = tmp_path / "s.db"
    newer_database(path)
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            Store(path, readonly=readonly)
        assert str(info.value) == (f"{path}: was written by a newer fwsurvey (migration"
                                   " m999_from_the_future); upgrade fwsurvey or use another --db")
    assert path.read_bytes() == before


def test_damaged_database_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "s.db"
    damaged_database(path)
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            Store(path, readonly=readonly)
        message = str(info.value)
        assert message.startswith(f"{path}: the database is damaged (")
        assert "restore the copy `fwsurvey publish` made" in message
        assert "another --db" in message
    assert path.read_bytes() == before


def test_read_only_store_reads_and_cannot_write(tmp_path):
    path = tmp_path / "s.db"
    store = Store(path)
    store.start_run("collect", ["collect"], {})
    store.close()
    before = path.read_bytes()
    store = Store(path, readonly=True)
    assert store.latest_run(finished_only=False)["id"] == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.db.execute("UPDATE runs SET status = 'ok'")
    store.close()
    assert path.read_bytes() == before


def test_read_only_store_refuses_a_database_that_needs_migrating(tmp_path):
    path = tmp_path / "s.db"
    db = Database(path)
    migrations.apply(db, stop_before="m002_pypi")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        Store(path, readonly=True)
    assert str(info.value) == (
        f"{path}: was written by an older fwsurvey and needs migrating (m002_pypi), which a"
        " read-only command does not do: run any write command (e.g. `fwsurvey collect`) on"
        " it first")
    assert path.read_bytes() == before


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not SQLite at all\n" * 200),
     "is not an SQLite database (file is not a database)"),
    (lambda p: p.mkdir(), "is a folder, not a database file"),
])
def test_a_path_that_is_no_database_is_one_line_naming_it(tmp_path, make, message):
    path = tmp_path / "s.db"
    make(path)
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            Store(path, readonly=readonly)
        assert str(info.value).startswith(f"{path}: {message}")
