"""Judging a stored run again must give the stored verdicts: the check behind every change to
the claims code or the registry's form (e.g. a metric moved to the ``from`` shorthand).

:func:`rejudge` copies a database (the original is never touched), evaluates the claims of
one run again with the current code and registry, and compares every ``claims`` and
``claim_evidence`` row with the stored one, ignoring only what may differ by design.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsurvey.claims import Registry, evaluate
from fwsurvey.config import SurveyConfig
from fwsurvey.store import Store

#: Columns that may differ: when it was judged, the registry file's hash, the SQL's text.
IGNORED = frozenset({"fetched_at", "registry_sha256", "metric_sql"})
#: Columns the store adds when it writes a row (not part of an evaluated record).
WRITTEN_BY_STORE = frozenset({"run_id", "source"})
KEYS = {"claims": ("claim_id",), "claim_evidence": ("claim_id", "metric", "item")}


@dataclass
class Comparison:
    """How many rows were compared per table, and every difference found."""

    run_id: int
    compared: dict[str, int] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)


def newest_judged_run(db_path: Path) -> int:
    """The newest run of ``db_path`` that stored verdicts."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT MAX(run_id) FROM claims").fetchone()[0]
    finally:
        conn.close()


def rejudge(db_path: Path, config: SurveyConfig, registry: Registry,
            run_id: int | None = None) -> Comparison:
    """Judge run ``run_id`` (default: the newest judged) of a copy of ``db_path`` again and
    compare the result with the rows stored for that run."""
    run_id = run_id if run_id is not None else newest_judged_run(db_path)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        _copy(db_path, copy)
        store = Store(copy)
        try:
            _, records = evaluate(store, run_id, config, registry)
            result = Comparison(run_id)
            for table, key in KEYS.items():
                fresh = [r.row for r in records if r.table == table]
                stored = store.query(f"SELECT * FROM {table} WHERE run_id = ?", [run_id])
                result.compared[table] = len(stored)
                result.differences += compare_rows(table, key, stored, fresh)
        finally:
            store.close()
    return result


def _copy(source: Path, dest: Path) -> None:
    """A consistent copy, WAL included (a raw file copy could miss it)."""
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        conn.execute("VACUUM INTO ?", [str(dest)])
    except sqlite3.OperationalError:
        shutil.copyfile(source, dest)  # an old SQLite: no VACUUM INTO
    finally:
        conn.close()


def compare_rows(table: str, key: tuple[str, ...], stored: list[dict[str, Any]],
                 fresh: list[dict[str, Any]]) -> list[str]:
    """Every difference between stored and freshly judged rows, matched by ``key``."""
    by_key = {tuple(r[k] for k in key): r for r in stored}
    new_by_key = {tuple(r[k] for k in key): r for r in fresh}
    out = [f"{table} {k}: stored, not judged again" for k in by_key.keys() - new_by_key.keys()]
    out += [f"{table} {k}: judged again, not stored" for k in new_by_key.keys() - by_key.keys()]
    if len(new_by_key) != len(fresh):
        out.append(f"{table}: the new rows repeat a key")
    for k in sorted(by_key.keys() & new_by_key.keys()):
        old, new = by_key[k], new_by_key[k]
        columns = (set(old) | set(new)) - IGNORED - WRITTEN_BY_STORE
        out += [f"{table} {k}.{c}: stored {old.get(c)!r}, now {new.get(c)!r}"
                for c in sorted(columns) if old.get(c) != new.get(c)]
    return out
