"""``fwsurvey import PATH``: rows measured elsewhere, loaded into the store as a run of their own.

The GPU check (``scripts/device/check.py``) runs on a lent machine that has no database: it
writes ``records.json``, the rows its jobs produced in the shape the train stage writes them
(``{"table": ..., "row": ...}`` from :func:`fwsurvey.kernels.records.job_records`), or, where
fwsurvey's records could not be made there, each job's description and raw harness result,
which are turned into rows here by the same function. Importing the file adds one ``runs`` row
(command ``import …``, stage ``import``) and one ``run_sources`` row (the file's ``source``,
e.g. ``device-check``); the rows keep the provenance the file gives them (device,
device_name, versions, fetched_at), and the run's ``versions`` are the versions the file
reports, those of the machine that measured.

Every row is checked against its table's columns before anything is written: an unknown
table or column, a missing required column or a repeated key is one line naming the file and
the record, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsurvey.errors import ConfigError
from fwsurvey.lock import RunLock
from fwsurvey.sources import Record
from fwsurvey.store import SourceOutcome, Store, utcnow

#: The format scripts/device/check.py writes.
FORMAT = "fwsurvey-records/1"
#: The ``run_sources.stage`` of an import.
STAGE = "import"
#: Columns the store sets itself on every row (which run, which source, first run).
STORE_COLUMNS = ("run_id", "source", "first_run_id")
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_/.-]{0,63}$")


class ImportFileError(ConfigError):
    """A records file that cannot be imported: one line naming the file (exit 2)."""

    def __init__(self, path: Path, message: str):
        super().__init__(path, None, message)


@dataclass
class RecordsFile:
    """A parsed records file: where the rows come from, and the rows."""

    path: Path
    source: str
    fetched_at: str
    device: str | None
    device_name: str | None
    versions: dict[str, Any]
    records: list[Record] = field(default_factory=list)


@dataclass
class Imported:
    """What an import wrote: the new run and the rows per table."""

    run_id: int
    source: str
    rows: dict[str, int]


def read_records_file(path: Path) -> RecordsFile:
    """Parse ``path`` into records; raw jobs become rows through the train stage's function."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(path, f"cannot be read: {exc}") from None
    except ValueError as exc:
        raise ImportFileError(path, f"is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImportFileError(path, "expected a JSON object with 'records' or 'jobs'")
    if doc.get("format", FORMAT) != FORMAT:
        raise ImportFileError(path, f"format {doc.get('format')!r} is not {FORMAT!r}")
    source = doc.get("source", "device-check")
    if not isinstance(source, str) or not _SOURCE_NAME.match(source):
        raise ImportFileError(path, f"source {source!r}: expected a short lower-case name "
                                    "(letters, digits, '_', '-', '/', '.')")
    fetched_at = doc.get("fetched_at") or utcnow()
    versions = doc.get("versions") or {}
    if not isinstance(versions, dict):
        raise ImportFileError(path, "versions: expected an object")
    raw_records, raw_jobs = doc.get("records", []), doc.get("jobs", [])
    if not isinstance(raw_records, list) or not isinstance(raw_jobs, list):
        raise ImportFileError(path, "'records' and 'jobs' must be lists")
    if not raw_records and not raw_jobs:
        raise ImportFileError(path, "holds no records and no jobs: nothing to import")
    records = []
    for i, item in enumerate(raw_records):
        if (not isinstance(item, dict) or not isinstance(item.get("table"), str)
                or not isinstance(item.get("row"), dict)):
            raise ImportFileError(path, f"records[{i}]: expected {{\"table\": NAME, \"row\": "
                                        "{COLUMN: VALUE, ...}}")
        records.append(Record(item["table"], item["row"]))
    for i, item in enumerate(raw_jobs):
        records += _job_rows(path, i, item, fetched_at)
    return RecordsFile(path, source, str(fetched_at), doc.get("device"), doc.get("device_name"),
                       versions, records)


def _job_rows(path: Path, i: int, item: Any, fetched_at: str) -> list[Record]:
    """A raw job (description and harness result) as the train stage's rows."""
    from fwsurvey.kernels.records import job_records
    from fwsurvey.kernels.runner import Job

    if (not isinstance(item, dict) or not isinstance(item.get("job"), dict)
            or not isinstance(item.get("result"), dict)):
        raise ImportFileError(path, f"jobs[{i}]: expected {{\"job\": {{...}}, \"result\": "
                                    "{...}}")
    known = {f.name for f in dataclasses.fields(Job)}
    description = {k: v for k, v in item["job"].items() if k in known}
    if "launcher" in description:
        description["launcher"] = tuple(description["launcher"] or ())
    result = item["result"]
    try:
        job = Job(**description)
        if "status" not in result:
            raise KeyError("status")
        return job_records(job, result, str(item.get("fetched_at") or fetched_at))
    except (TypeError, KeyError, ValueError) as exc:
        raise ImportFileError(path, f"jobs[{i}]: cannot be made into rows: "
                                    f"{type(exc).__name__}: {exc}") from None


def validate(store: Store, loaded: RecordsFile) -> None:
    """Every row against its table: known table and columns, required columns present, no
    key twice. Fills a row's missing ``fetched_at`` from the file's."""
    keys: Counter[tuple[str, tuple[Any, ...]]] = Counter()
    for i, record in enumerate(loaded.records):
        where = f"records[{i}] ({record.table})"
        spec = store.tables.get(record.table)
        if spec is None:
            raise ImportFileError(loaded.path, f"records[{i}]: unknown table {record.table!r}")
        columns = store.db.table(record.table).columns
        names = {c.name for c in columns}
        unknown = sorted(set(record.row) - names)
        if unknown:
            raise ImportFileError(loaded.path, f"{where}: unknown column {unknown[0]!r}")
        set_here = sorted(set(record.row) & set(STORE_COLUMNS))
        if set_here:
            raise ImportFileError(loaded.path, f"{where}: column {set_here[0]!r} is set by the"
                                               " import, not by the file")
        record.row.setdefault("fetched_at", loaded.fetched_at)
        for column in columns:
            if (column.notnull and column.default_value is None
                    and column.name not in STORE_COLUMNS and record.row.get(column.name) is None):
                raise ImportFileError(loaded.path, f"{where}: required column "
                                                   f"{column.name!r} is missing")
        for name, value in record.row.items():
            if not isinstance(value, str | int | float | bool | list | dict | type(None)):
                raise ImportFileError(loaded.path, f"{where}: column {name!r}: a "
                                                   f"{type(value).__name__} cannot be stored")
        key = tuple(json.dumps(record.row.get(c), sort_keys=True) for c in spec.key
                    if c not in STORE_COLUMNS)
        keys[(record.table, key)] += 1
        if spec.kind == "history" and keys[(record.table, key)] > 1:
            shown = dict(zip([c for c in spec.key if c not in STORE_COLUMNS], key, strict=True))
            raise ImportFileError(loaded.path, f"{where}: a second row with the key {shown}")


def import_file(db_path: Path, path: Path) -> Imported:
    """Load ``path`` into the database at ``db_path`` as a new run (under the run lock)."""
    loaded = read_records_file(path)
    with RunLock(db_path):
        store = Store(db_path)
        try:
            validate(store, loaded)
            run_id = store.start_run(shlex.join(["import", str(path)]), [STAGE],
                                     {k: None if v is None else str(v)
                                      for k, v in loaded.versions.items()})
            started = utcnow()
            outcome = SourceOutcome(STAGE, loaded.source, "ok", started, utcnow(),
                                    items_ok=len(loaded.records))
            try:
                store.write_source(run_id, outcome, loaded.records)
            except Exception:
                store.finish_run(run_id, "failed")
                raise
            store.finish_run(run_id, "ok")
        finally:
            store.close()
    return Imported(run_id, loaded.source, dict(Counter(r.table for r in loaded.records)))
