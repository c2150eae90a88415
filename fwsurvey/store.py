"""The SQLite store: opening and migrating, run bookkeeping, and transactional writes.

Every write of a source's results happens in one transaction, together with the record of
how that source ended, so a crash or a kill leaves either the whole source or none of it.

Opening checks the file before anything is written to it: that it is a database SQLite can
open, that no newer fwsurvey wrote it (a migration this code does not know), and that
SQLite's ``quick_check`` passes. Each refusal, and a write to a file that cannot be written,
is a :class:`StoreError`: one line naming the file and what to do (exit 2). Every string
written is scrubbed of secret values (:mod:`fwsurvey.secrets`), whatever produced it.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database

from fwsurvey import __version__
from fwsurvey.errors import ConfigError
from fwsurvey.schema import TableSpec, migrations, table_specs
from fwsurvey.secrets import redactor
from fwsurvey.sources import Record

RUN_STATUSES = ("running", "ok", "degraded", "failed", "interrupted")
SOURCE_STATUSES = ("ok", "partial", "unreachable", "error", "skipped")

#: Databases up to this size get SQLite's ``quick_check`` each time they are opened. It reads
#: every page once, about 4 ms per MB (measured: 0.03 s for 4 MB, 0.17 s for 40 MB), so at
#: most about half a second; past this size a damaged page is left to SQLite's own errors,
#: which :class:`StoreError` words the same way.
QUICK_CHECK_MAX_BYTES = 128 * 1024 * 1024


class StoreError(ConfigError):
    """A database fwsurvey cannot use, as one line naming the file and what to do (exit 2).

    Not a database, damaged, written by a newer fwsurvey, needing a migration a read-only
    open cannot make, read-only for a command that writes, or a path SQLite cannot open.
    """

    def __init__(self, path: Path | str, message: str):
        super().__init__(path, None, message)


def utcnow() -> str:
    """The current UTC time as ISO 8601 with seconds, the format of every timestamp stored."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ItemError:
    """Why one item of a source was not collected."""

    item: str
    #: not_found, unreachable, incomplete or error; for a training job, its status
    #: (timeout, crashed, oom, unsupported, ...)
    kind: str
    message: str


@dataclass
class SourceOutcome:
    """How one source ended in one run."""

    stage: str
    source: str
    status: str
    started_at: str
    finished_at: str
    reason: str | None = None
    items_ok: int = 0
    errors: list[ItemError] = field(default_factory=list)


class Store:
    """A migrated fwsurvey database.

    ``readonly``: open it for reading only (``status``, ``report``): nothing is created,
    migrated or written, so a database in a read-only file or folder serves; a database that
    needs migrating is refused (a write command migrates it).
    """

    def __init__(self, path: Path | str, *, migrate: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._tables: dict[str, TableSpec] | None = None
        self._last_seen: set[str] | None = None
        if self.path.is_dir():
            raise StoreError(self.path, "is a folder, not a database file: pass the path of a"
                                        " database file (--db)")
        if readonly and not self.path.exists():
            raise StoreError(self.path, "no database here: run `fwsurvey run` first")
        try:
            if readonly:
                self.db = Database(_connect_read_only(self.path))
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = Database(self.path)
        except OSError as exc:
            raise StoreError(self.path, f"cannot create the database's folder: {exc.strerror}"
                                        f" ({exc.filename})") from None
        except sqlite3.DatabaseError as exc:
            raise _store_error(self.path, exc) from None
        try:
            self._open(migrate)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise _store_error(self.path, exc) from None
        except BaseException:
            self.db.close()
            raise

    def _open(self, migrate: bool) -> None:
        self.db.execute("PRAGMA busy_timeout = 10000")
        # Before anything is written: a damaged or newer database is left as it is.
        self._check_integrity()
        self._check_version()
        if self.readonly:
            pending = migrations.pending(self.db)
            if pending:
                raise StoreError(self.path, "was written by an older fwsurvey and needs"
                                            f" migrating ({pending[0].name}), which a read-only"
                                            " command does not do: run any write command"
                                            " (e.g. `fwsurvey collect`) on it first")
            return
        self.db.execute("PRAGMA foreign_keys = ON")
        # A read-only file opens without complaint: its first write (a migration here, else
        # the run's row) raises, and _translated names the file.
        self.db.enable_wal()
        if migrate:
            migrations.apply(self.db)

    def _check_integrity(self) -> None:
        if self.path.exists() and self.path.stat().st_size > QUICK_CHECK_MAX_BYTES:
            return
        problems = [row[0] for row in self.db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            # SQLite's first problem may span lines ("*** in database main ***\nPage 88: ...");
            # errors are one line.
            first = "; ".join(line.strip() for line in problems[0].splitlines() if line.strip())
            raise StoreError(self.path, _damaged(f"quick_check: {first}"))

    def _check_version(self) -> None:
        known = {m.name for m in migrations._migrations}
        newer = [m.name for m in migrations.applied(self.db) if m.name not in known]
        if newer:
            raise StoreError(self.path, f"was written by a newer fwsurvey (migration {newer[0]});"
                                        " upgrade fwsurvey or use another --db")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite's errors about the file itself as StoreError; the rest (a constraint a row
        breaks) unchanged, for the unit that wrote it."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            error = _file_error(self.path, exc)
            if error is None:
                raise
            raise error from None

    @property
    def tables(self) -> dict[str, TableSpec]:
        """How each table a stage may write is written, read off the schema (once)."""
        if self._tables is None:
            self._tables = table_specs(self.db)
        return self._tables

    # -- runs ---------------------------------------------------------------------------

    def start_run(self, command: str, stages: list[str], versions: dict[str, str | None],
                  config_sha256: str | None = None) -> int:
        """Insert a ``running`` row into ``runs`` and return its id."""
        with self._translated(), self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO runs (started_at, status, command, stages, tool_version,"
                " python_version, platform, versions, config_sha256, pid)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                [utcnow(), redactor()(command), json.dumps(stages), __version__,
                 platform.python_version(), platform.platform(), json.dumps(versions),
                 config_sha256, os.getpid()],
            )
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str) -> None:
        """Close a run with its final status."""
        assert status in RUN_STATUSES, status
        with self._translated(), self.db.atomic():
            self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                            [status, utcnow(), run_id])

    def mark_interrupted_runs(self) -> list[int]:
        """Close runs left ``running`` by a killed process. Call only while holding the lock."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM runs WHERE status = 'running'")]
        if ids:
            with self._translated(), self.db.atomic():
                self.db.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?)"
                    " WHERE status = 'running'", [utcnow()])
        return ids

    # -- writes -------------------------------------------------------------------------

    def write_records(self, run_id: int, source: str, records: Iterable[Record]) -> int:
        """Write one batch of a source's records in its own transaction; return rows written.

        A source that commits in batches (``fwsurvey.sources.Checkpoint``) calls this per batch,
        so a fault or a kill later keeps every batch committed; its outcome comes last with
        :meth:`write_source` (``rows_before`` = what the batches wrote).
        """
        by_table = self._by_table(records)
        scrub = redactor()
        with self._translated(), self.db.atomic():
            return sum(self._write_rows(table, rows, run_id, source, scrub)
                       for table, rows in by_table.items())

    def _by_table(self, records: Iterable[Record]) -> dict[str, list[dict[str, Any]]]:
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            if record.table not in self.tables:
                raise ValueError(f"no table spec for {record.table!r}")
            by_table[record.table].append(record.row)
        return by_table

    def write_source(self, run_id: int, outcome: SourceOutcome,
                     records: Iterable[Record] = (), *, rows_before: int = 0) -> int:
        """Write a source's records and its outcome in one transaction; return rows written.

        Secret values are redacted from every string written; the outcome's reason and item
        errors are redacted in place, so what the caller shows is what was stored.
        ``rows_before``: rows the source already committed in batches (:meth:`write_records`),
        counted in the outcome's ``rows_written``.
        """
        assert outcome.status in SOURCE_STATUSES, outcome.status
        scrub = redactor()
        if outcome.reason:
            outcome.reason = scrub(outcome.reason)
        outcome.errors[:] = [ItemError(scrub(e.item), e.kind, scrub(e.message))
                             for e in outcome.errors]
        by_table = self._by_table(records)
        written = 0
        with self._translated(), self.db.atomic():
            for table, rows in by_table.items():
                written += self._write_rows(table, rows, run_id, outcome.source, scrub)
            self.db.execute(
                "INSERT OR REPLACE INTO run_sources (run_id, stage, source, status, reason,"
                " items_ok, items_failed, rows_written, started_at, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, outcome.stage, outcome.source, outcome.status, outcome.reason,
                 outcome.items_ok, len(outcome.errors), rows_before + written,
                 outcome.started_at,
                 outcome.finished_at])
            for err in outcome.errors:
                self.db.execute(
                    "INSERT INTO item_errors (run_id, stage, source, item, kind, message, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, outcome.stage, outcome.source, err.item, err.kind, err.message,
                     outcome.finished_at])
        return written

    def _last_seen_tables(self) -> set[str]:
        """Tables with a ``last_seen_run_id`` column (read once, like :attr:`tables`)."""
        if self._last_seen is None:
            self._last_seen = {name for name in self.tables
                               if "last_seen_run_id" in self.db[name].columns_dict}
        return self._last_seen

    def _write_rows(self, table: str, rows: list[dict[str, Any]], run_id: int,
                    source: str, scrub: Callable[[str], str]) -> int:
        spec = self.tables[table]
        # A table with last_seen_run_id (issue #15) gets the run that wrote the row, unless
        # the row says otherwise: "current" views drop items a later fetch no longer lists.
        seen = table in self._last_seen_tables()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            row = {**row, "run_id": run_id, "source": source}
            if spec.kind == "fact":
                row["first_run_id"] = run_id
            if seen and "last_seen_run_id" not in row:
                row["last_seen_run_id"] = run_id
            groups[tuple(row)].append(row)
        for columns, group in groups.items():
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
            if spec.kind in ("fact", "state"):
                # Upsert: a release seen again updates its mutable columns (yanked, ...)
                # and its last-seen provenance; first_run_id keeps the run that found it.
                updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns
                                    if c not in spec.key and c != "first_run_id")
                keys = ", ".join(f'"{c}"' for c in spec.key)
                sql += f" ON CONFLICT ({keys}) DO UPDATE SET {updates}"
            self.db.conn.executemany(sql, [[_scrubbed(_sql_value(row[c]), scrub)
                                            for c in columns] for row in group])
        return len(rows)

    # -- reads --------------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict]:
        """Rows of a read query as dicts."""
        with self._translated():
            return list(self.db.query(sql, params))

    def latest_run(self, finished_only: bool = True) -> dict | None:
        """The newest run (by default the newest that has finished)."""
        where = "WHERE finished_at IS NOT NULL" if finished_only else ""
        rows = self.query(f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    def source_state(self, source: str) -> dict[tuple[str, str], str | None]:
        """A source's stored resume points, by (item, name)."""
        return {(r["item"], r["name"]): r["value"] for r in self.query(
            "SELECT item, name, value FROM source_state WHERE source = ?", [source])}

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so immutable readers (Datasette -i) see it all."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint (unless read-only) and close the connection."""
        if not self.readonly:
            try:
                self.checkpoint()
            except sqlite3.DatabaseError:
                pass  # another reader holds the WAL; SQLite checkpoints later
        self.db.close()


def _sql_value(value: Any) -> Any:
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, sort_keys=isinstance(value, dict))
    if isinstance(value, bool):
        return int(value)
    return value


def _scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    return scrub(value) if isinstance(value, str) else value


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that only reads ``path``: it creates and changes nothing there."""
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if Path(f"{path}-wal").exists():
            raise
    # A WAL database in a folder this process cannot write: SQLite cannot create the
    # shared-memory file it reads through. With no -wal file there is no writer at work (a
    # writer creates one), so the file is read as it stands.
    return sqlite3.connect(uri + "&immutable=1", uri=True)


def _damaged(detail: str) -> str:
    return (f"the database is damaged ({detail}); restore the copy `fwsurvey publish` made"
            " (the .db file in the publication folder) or start afresh with another --db")


#: SQLite's messages about the file itself, and what to tell the user instead.
_FILE_ERRORS = {
    "file is not a database": lambda path, text: (
        f"is not an SQLite database ({text}): pass another --db, or move the file away"),
    "malformed": lambda path, text: _damaged(text),
    "readonly database": lambda path, text: (
        f"cannot be written ({text}): this command writes to the database; give fwsurvey write"
        f" access to the file and to its folder {path.parent}, or use another --db"),
    "unable to open database file": lambda path, text: (
        f"cannot be opened ({text}): the path must be a database file in a folder fwsurvey can"
        f" read and, for a command that writes, write ({path.parent})"),
    "disk is full": lambda path, text: (
        f"cannot be written ({text}): free some space on the disk that holds it"),
    "disk i/o error": lambda path, text: (
        f"cannot be read or written ({text}): check the disk and the file's permissions"),
}


def _file_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError | None:
    """SQLite's error about the database file ``path``, worded for the user; None when the
    error is about something else."""
    text = str(exc)
    for fragment, explain in _FILE_ERRORS.items():
        if fragment in text.lower():
            return StoreError(path, explain(path, text))
    return None


def _store_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """Any SQLite error while opening ``path``, worded for the user."""
    return _file_error(path, exc) or StoreError(path, f"cannot be used: {exc}")
