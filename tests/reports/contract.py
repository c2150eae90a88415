"""Rows of ``claims`` and ``claim_evidence`` as the claims stage writes them, for tests."""

from __future__ import annotations

import json

from fwsurvey.schema import VERDICT_CLAIM_COLUMNS, VERDICT_EVIDENCE_COLUMNS

AT = "2026-11-27T12:00:00+00:00"
RULE = json.dumps({"margin": 0.1, "max_age_days": 45, "support_share": 0.75,
                   "contradict_share": 0.25, "min_metric_coverage": 0.5})


#: The columns contracts C and D added (m009, m010): a test drops them to render an older store.
CLAIM_COLUMNS, EVIDENCE_COLUMNS = VERDICT_CLAIM_COLUMNS, VERDICT_EVIDENCE_COLUMNS
KERNEL_RUN_COLUMNS = {"fingerprint": "TEXT", "code_sha256": "TEXT", "windows": "INTEGER",
                      "outcome": "TEXT", "time_to_target_s": "REAL",
                      "steps_to_target": "INTEGER", "data_ms_median": "REAL",
                      "compute_ms_median": "REAL"}


def claim(claim_id: str, section: str, text: str, verdict: str, **extra) -> dict:
    """A row of ``claims`` as the claims stage writes it in run 1 (``extra``: any column)."""
    row = {"run_id": 1, "source": "claims", "fetched_at": AT, "claim_id": claim_id,
           "section": section, "text": text, "sentence": None, "framework_a": "trax",
           "framework_b": "jax", "favours": "a", "verdict": verdict,
           "reason": extra.pop("reason", f"reason of {claim_id}"), "key_numbers": None,
           "evidence_for": 0, "evidence_against": 0, "evidence_even": 0,
           "evidence_unusable": 0, "settleable": 1, "rule": RULE, "registry_sha256": "ab" * 32}
    row.update(extra)
    return row


def evidence(claim_id: str, metric: str, item: str, a: float | None, b: float | None,
             counts: str, **extra) -> dict:
    """A row of ``claim_evidence`` in run 1 (``extra``: any column)."""
    row = {"run_id": 1, "source": "claims", "fetched_at": AT, "claim_id": claim_id,
           "metric": metric, "item": item, "label": metric.replace("_", " "), "unit": None,
           "better": "lower", "value_a": a, "value_b": b, "relative_difference": None,
           "favours": "even", "counts": counts, "note": None, "metric_sql": "select 1"}
    row.update(extra)
    return row
