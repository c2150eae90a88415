"""The SQLite store: opening and migrating, run bookkeeping, and transactional writes.

Every write of a source's results happens in one transaction, together with the record of
how that source ended, so a crash or a kill leaves either the whole source or none of it.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from fwsurvey import __version__
from fwsurvey.schema import TableSpec, migrations, table_specs
from fwsurvey.sources import Record

RUN_STATUSES = ("running", "ok", "degraded", "failed", "interrupted")
SOURCE_STATUSES = ("ok", "partial", "unreachable", "error", "skipped")


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
    """A migrated fwsurvey database."""

    def __init__(self, path: Path | str, *, migrate: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.path)
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        if migrate:
            migrations.apply(self.db)
        self._tables: dict[str, TableSpec] | None = None

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
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO runs (started_at, status, command, stages, tool_version,"
                " python_version, platform, versions, config_sha256, pid)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                [utcnow(), command, json.dumps(stages), __version__,
                 platform.python_version(), platform.platform(), json.dumps(versions),
                 config_sha256, os.getpid()],
            )
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str) -> None:
        """Close a run with its final status."""
        assert status in RUN_STATUSES, status
        with self.db.atomic():
            self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                            [status, utcnow(), run_id])

    def mark_interrupted_runs(self) -> list[int]:
        """Close runs left ``running`` by a killed process. Call only while holding the lock."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM runs WHERE status = 'running'")]
        if ids:
            with self.db.atomic():
                self.db.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?)"
                    " WHERE status = 'running'", [utcnow()])
        return ids

    # -- writes -------------------------------------------------------------------------

    def write_source(self, run_id: int, outcome: SourceOutcome,
                     records: Iterable[Record] = ()) -> int:
        """Write a source's records and its outcome in one transaction; return rows written."""
        assert outcome.status in SOURCE_STATUSES, outcome.status
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            if record.table not in self.tables:
                raise ValueError(f"no table spec for {record.table!r}")
            by_table[record.table].append(record.row)
        written = 0
        with self.db.atomic():
            for table, rows in by_table.items():
                written += self._write_rows(table, rows, run_id, outcome.source)
            self.db.execute(
                "INSERT OR REPLACE INTO run_sources (run_id, stage, source, status, reason,"
                " items_ok, items_failed, rows_written, started_at, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, outcome.stage, outcome.source, outcome.status, outcome.reason,
                 outcome.items_ok, len(outcome.errors), written, outcome.started_at,
                 outcome.finished_at])
            for err in outcome.errors:
                self.db.execute(
                    "INSERT INTO item_errors (run_id, stage, source, item, kind, message, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, outcome.stage, outcome.source, err.item, err.kind, err.message,
                     outcome.finished_at])
        return written

    def _write_rows(self, table: str, rows: list[dict[str, Any]], run_id: int,
                    source: str) -> int:
        spec = self.tables[table]
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            row = {**row, "run_id": run_id, "source": source}
            if spec.kind == "fact":
                row["first_run_id"] = run_id
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
            self.db.conn.executemany(sql, [[_sql_value(row[c]) for c in columns]
                                           for row in group])
        return len(rows)

    # -- reads --------------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict]:
        """Rows of a read query as dicts."""
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
        """Checkpoint and close the connection."""
        try:
            self.checkpoint()
        except sqlite3.OperationalError:
            pass  # another reader holds the WAL; SQLite checkpoints later
        self.db.close()


def _sql_value(value: Any) -> Any:
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, sort_keys=isinstance(value, dict))
    if isinstance(value, bool):
        return int(value)
    return value
