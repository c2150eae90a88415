"""The database schema, as migrations, and how each table is written.

The schema is a public interface (Datasette users query it): tables and columns are only
ever added by new migrations, never renamed in place. Every table and column has a
description in ``datasette.yml``; a test checks that none is missing.

Two kinds of fact tables:

* **history** tables keep one row per run per item (``run_id`` is part of the key), so
  values that change over time can be trended; each has a ``*_latest`` view.
* **fact** tables keep one row per immutable thing (a release), upserted on every run:
  ``first_run_id`` records the run that first saw it, ``run_id``/``fetched_at`` the last.
* ``source_state`` keeps each source's resume points (watermarks), upserted in the same
  transaction as the rows they cover, so a watermark never passes what was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("fwsurvey")

PROVENANCE = """
    run_id INTEGER NOT NULL REFERENCES runs(id),
    source TEXT NOT NULL,
    fetched_at TEXT NOT NULL"""


@migrations()
def m001_runs(db: Database) -> None:
    db.executescript("""
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        command TEXT NOT NULL,
        stages TEXT NOT NULL,
        tool_version TEXT NOT NULL,
        python_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        versions TEXT NOT NULL,
        config_sha256 TEXT,
        pid INTEGER
    );
    CREATE TABLE run_sources (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        stage TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        items_ok INTEGER NOT NULL DEFAULT 0,
        items_failed INTEGER NOT NULL DEFAULT 0,
        rows_written INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (run_id, stage, source)
    );
    CREATE TABLE item_errors (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        stage TEXT NOT NULL,
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX item_errors_run ON item_errors(run_id, source);
    CREATE VIEW source_status_latest AS
        SELECT rs.* FROM run_sources rs
        JOIN (SELECT stage, source, MAX(run_id) AS run_id FROM run_sources
              GROUP BY stage, source) latest
        USING (stage, source, run_id);
    """)


@migrations()
def m002_pypi(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE pypi_packages (
        {PROVENANCE},
        package TEXT NOT NULL,
        framework TEXT NOT NULL,
        latest_version TEXT,
        file_count INTEGER NOT NULL,
        release_count INTEGER NOT NULL,
        prerelease_count INTEGER NOT NULL,
        yanked_release_count INTEGER NOT NULL,
        releases_last_12_months INTEGER NOT NULL,
        median_days_between_releases REAL,
        days_since_last_release REAL,
        first_release_at TEXT,
        latest_release_at TEXT,
        metadata_source TEXT,
        metadata_version TEXT,
        summary TEXT,
        license TEXT,
        license_expression TEXT,
        requires_python TEXT,
        requires_dist_count INTEGER,
        project_urls TEXT,
        home_page TEXT,
        PRIMARY KEY (run_id, package)
    );
    CREATE VIEW pypi_packages_latest AS
        SELECT p.* FROM pypi_packages p
        JOIN (SELECT package, MAX(run_id) AS run_id FROM pypi_packages GROUP BY package) latest
        USING (package, run_id);
    CREATE TABLE pypi_releases (
        package TEXT NOT NULL,
        version TEXT NOT NULL,
        framework TEXT NOT NULL,
        is_prerelease INTEGER,
        uploaded_at TEXT,
        last_upload_at TEXT,
        yanked INTEGER NOT NULL,
        yanked_reason TEXT,
        file_count INTEGER NOT NULL,
        wheel_count INTEGER NOT NULL,
        sdist_count INTEGER NOT NULL,
        other_count INTEGER NOT NULL,
        total_bytes INTEGER,
        python_tags TEXT,
        abi_tags TEXT,
        platforms TEXT,
        requires_python TEXT,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (package, version)
    );
    CREATE INDEX pypi_releases_framework ON pypi_releases(framework, uploaded_at);
    """)


@migrations()
def m003_source_state(db: Database) -> None:
    db.executescript("""
    CREATE TABLE source_state (
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (source, item, name)
    );
    """)


@dataclass(frozen=True)
class TableSpec:
    """How the store writes one table.

    ``history``: plain inserts, ``run_id`` is part of the key. ``fact``: upsert on ``key``,
    keeping ``first_run_id``. ``state``: upsert on ``key`` (a source's resume points, e.g. an
    incremental watermark, written in the same transaction as the rows they describe).
    """

    name: str
    kind: Literal["history", "fact", "state"]
    key: tuple[str, ...]


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec("pypi_packages", "history", ("run_id", "package")),
        TableSpec("pypi_releases", "fact", ("package", "version")),
        TableSpec("source_state", "state", ("source", "item", "name")),
    ]
}
