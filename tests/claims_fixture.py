"""A fixed survey database for the claims: the rows its metrics read, rebuilt in a test.

``tests/fixtures/claims/survey-rows.json`` holds them: run 1 of a real offline
``fwsurvey run`` on the shipped configuration (PyPI, analyzers, every training job, its
``run_sources``), plus a few community rows made by hand (see its ``synthetic`` note).
``expected.json`` holds the ``claims`` and ``claim_evidence`` rows that the code of issue
#12 judged from it; ``tests/fixtures/claims/record.py`` writes it again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fwsurvey.store import Store
from tests.claims_equivalence import IGNORED

FIXTURE = Path(__file__).parent / "fixtures" / "claims"
ROWS = FIXTURE / "survey-rows.json"
EXPECTED = FIXTURE / "expected.json"
#: When the fixed run is judged (the stored rows' fetched_at; ignored when comparing).
JUDGED_AT = "2026-11-30T23:30:00+00:00"


def build_db(path: Path) -> tuple[Store, int]:
    """A migrated database holding the fixture's rows; the store and the run to judge."""
    data = json.loads(ROWS.read_text())
    store = Store(path)
    tables: dict[str, list[dict[str, Any]]] = data["tables"]
    with store.db.atomic():
        store.db["runs"].insert_all(tables["runs"])  # first: every row references a run
        for table, rows in sorted(tables.items()):
            if table != "runs" and rows:
                store.db[table].insert_all(rows)
    return store, data["run_id"]


def judged_rows(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """The ``claims`` and ``claim_evidence`` rows of evaluated records, without IGNORED."""
    out: dict[str, list[dict[str, Any]]] = {"claims": [], "claim_evidence": []}
    for record in records:
        if record.table in out:
            out[record.table].append({k: v for k, v in sorted(record.row.items())
                                      if k not in IGNORED})
    return out
