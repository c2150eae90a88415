"""The verdicts and evidence of a fixed database do not move when the code around them does.

The database (tests/claims_fixture.py) is a real offline run plus a few hand-made community
rows; ``expected.json`` was judged from it by the code of issue #12 (typed claims, decision
specs, timings from samples) and the registry of that change, and written again deliberately
with tests/fixtures/claims/record.py (the verdicts that moved, and why, are in that change's
note). Judging it now, with the current code and the shipped claims.toml, must store the same
rows, column by column.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fwsurvey.claims import default_registry_path, evaluate, load_registry
from fwsurvey.config import load_config
from tests.claims_equivalence import KEYS, compare_rows
from tests.claims_fixture import EXPECTED, JUDGED_AT, build_db, judged_rows

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    config = load_config(REPO / "fwsurvey.toml")
    registry = load_registry(default_registry_path(config))
    store, run_id = build_db(tmp_path_factory.mktemp("fixed") / "fixed.db")
    try:
        _, records = evaluate(store, run_id, config, registry, now=JUDGED_AT)
    finally:
        store.close()
    return judged_rows(records)


@pytest.mark.parametrize("table", ["claims", "claim_evidence"])
def test_fixed_database_judges_as_before(judged, table):
    expected = json.loads(EXPECTED.read_text())[table]
    # JSON has no tuples: compare what the store would write, through the same encoding.
    fresh = json.loads(json.dumps(judged[table]))
    assert len(fresh) == len(expected) > 0
    assert compare_rows(table, KEYS[table], expected, fresh) == []


def test_fixed_database_exercises_every_outcome(judged):
    """The fixture is worth comparing: it has verdicts and evidence of every kind."""
    verdicts = Counter(r["verdict"] for r in judged["claims"])
    favours = Counter(r["favours"] for r in judged["claim_evidence"])
    decisions = Counter(r["decision"] for r in judged["claim_evidence"])
    assert len(judged["claims"]) == 35
    assert set(verdicts) == {"supported", "contradicted", "mixed", "insufficient evidence",
                             "unmeasurable"}
    assert {"pytorch", "trax"} <= {r["favours"] for r in judged["claims"]}
    assert set(favours) == {"a", "b", "even", "missing", "stale"}
    # Trax's crashes (2 devices, checkpoint resume) are evidence against it, not missing.
    assert set(decisions) == {"a", "b", "even", "failed_b", "missing"}
    # A CPU-only database: no verdict on a GPU-scoped claim.
    gpu = [r for r in judged["claims"] if r["device_scope"] == "gpu"]
    assert gpu and {r["verdict"] for r in gpu} == {"insufficient evidence"}
