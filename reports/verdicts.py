"""The verdicts as the report shows them: normalised rows, decision labels, and each
section's bottom line.

The claims stage stores verdicts (``claims``) and the evidence behind them
(``claim_evidence``); contract D adds a claim's type, confidence, fragility, device scope,
sample count and previous verdict, and each evidence row's decision, interval and samples.
A database written before those columns existed still renders: every missing column reads
as unknown (``None``) and the report says "—", never a guess.

Nothing here judges: the bottom line only retells, in sentences, the verdicts and
confidences stored, and names what was not measured, so that a reader who stops after it
knows what the section found and what it could not find.
"""

from __future__ import annotations

import json
from typing import Any

#: Every verdict contract D allows, in the order the report tallies them.
VERDICT_ORDER = ("supported", "contradicted", "mixed", "inconclusive", "insufficient evidence",
                 "unmeasurable")
#: Verdicts that say which way the evidence goes (the others say it could not be told).
DECIDED = ("supported", "contradicted", "mixed")
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}

#: Columns contract D adds (migration m010); an older database lacks them.
CLAIM_COLUMNS = ("claim_type", "confidence", "fragile", "sensitivity", "previous_verdict",
                 "change_reason", "device_scope", "unmeasurable_reason", "primary_metrics",
                 "n_samples")
EVIDENCE_COLUMNS = ("decision", "ci_low", "ci_high", "delta", "n_a", "n_b", "tier",
                    "device_scope", "primary_metric")
#: Prefix the claims stage puts before the reason of a claim nothing can settle.
_NO_DATA_CAN = "no data can settle it: "


def normalise_claim(claim: dict[str, Any]) -> dict[str, Any]:
    """``claim`` with every contract-D column present (None where the row predates it) and
    what the report derives from them: unmeasurable or not, its reason, the fragile flag."""
    for key in CLAIM_COLUMNS:
        claim.setdefault(key, None)
    for e in claim.get("evidence", []):
        normalise_evidence(e)
    claim["primary_metrics"] = _json_list(claim["primary_metrics"])
    claim["unmeasurable"] = (claim["verdict"] == "unmeasurable"
                             or claim["claim_type"] == "unmeasurable"
                             or claim.get("settleable") == 0)
    reason = claim["unmeasurable_reason"] or claim.get("reason") or ""
    claim["unmeasurable_why"] = reason.removeprefix(_NO_DATA_CAN) if claim["unmeasurable"] \
        else None
    claim["not_collected"] = (claim["verdict"] == "insufficient evidence"
                              and not claim["unmeasurable"])
    claim["missing_metrics"] = list(dict.fromkeys(
        e.get("label") or e.get("metric") for e in claim.get("evidence", [])
        if e.get("counts") not in ("for", "against", "even", "shown")
        and e.get("decision") != "inconclusive"))
    claim["fragile_shown"] = {1: "**fragile**", 0: "no"}.get(claim["fragile"], "—")
    return claim


def normalise_evidence(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every contract-D column present; ``ratio`` is b/a where both exist."""
    for key in EVIDENCE_COLUMNS:
        row.setdefault(key, None)
    a, b = row.get("value_a"), row.get("value_b")
    row["ratio"] = b / a if isinstance(a, int | float) and isinstance(b, int | float) and a \
        else None
    return row


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    try:
        parsed = json.loads(value) if value else []
    except (TypeError, ValueError):
        return [value]
    return parsed if isinstance(parsed, list) else [parsed]


def decision_label(row: dict[str, Any], pair: tuple[str, str]) -> str:
    """How an evidence row decided, in words: the framework it favours, "even",
    "inconclusive (not counted)" (its interval straddles the equivalence band), a failure, or
    "missing". Rows stored before ``decision`` existed say what ``favours`` said."""
    a, b = pair
    decision = row.get("decision")
    if decision is None:
        favours = row.get("favours")
        return a if favours == "a" else b if favours == "b" else str(favours or "—")
    return {"a": a, "b": b, "even": "even", "inconclusive": "inconclusive (not counted)",
            "failed_a": f"{a} failed", "failed_b": f"{b} failed",
            "missing": "missing"}.get(decision, decision)


def evidence_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Evidence rows by how they counted: for, against, even, inconclusive (shown, never
    counted), shown (a task's timing, counted through the geometric mean across tasks) and
    unusable (missing, stale or failed to measure)."""
    out = {"for": 0, "against": 0, "even": 0, "inconclusive": 0, "shown": 0, "unusable": 0}
    for r in rows:
        if r.get("decision") == "inconclusive":
            out["inconclusive"] += 1
        elif r.get("counts") in ("for", "against", "even", "shown"):
            out[r["counts"]] += 1
        else:
            out["unusable"] += 1
    return out


def tally(claims: list[dict[str, Any]],
          order: tuple[str, ...] = VERDICT_ORDER) -> list[tuple[str, int]]:
    """(verdict, count) for every verdict given, in ``order`` then contract D's (unknown
    ones last)."""
    found = [c["verdict"] for c in claims]
    order = list(dict.fromkeys((*order, *VERDICT_ORDER)))
    order += sorted(set(found) - set(order))
    return [(v, found.count(v)) for v in order if v in found]


def _quote(claim: dict[str, Any]) -> str:
    return f"“{claim['text']}”"


def _names(claims: list[dict[str, Any]], describe, limit: int = 3) -> str:
    shown = [f"{_quote(c)}{describe(c)}" for c in claims[:limit]]
    more = len(claims) - limit
    if more > 0:
        shown.append(f"{more} more")
    return _join(shown)


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _with_confidence(verdict: str, claims: list[dict[str, Any]]) -> str:
    """"2 supported (1 high, 1 medium confidence)": the confidence breakdown when known."""
    levels = [c["confidence"] for c in claims if c["confidence"]]
    words = {"insufficient evidence": "with insufficient evidence"}.get(verdict, verdict)
    text = f"{len(claims)} {words}"
    if levels:
        counts = [f"{levels.count(level)} {level}" for level in CONFIDENCE_ORDER
                  if level in levels]
        text += f" ({', '.join(counts)} confidence)"
    return text


def _in_parens(claim: dict[str, Any]) -> str:
    return f" ({claim['verdict']})"


def _not_measured_why(claim: dict[str, Any]) -> str:
    if claim["unmeasurable"]:
        return " (cannot be measured)"
    if claim["device_scope"] == "gpu":
        return " (needs a GPU run)"
    return " (no data in this run)"


def bottom_line(claims: list[dict[str, Any]], measured_by: str | None = None) -> str:
    """Two to four sentences that answer the section: how its claims were judged and how
    surely, the most solid finding, what is fragile or within the noise, and what was not
    measured. Built from the stored verdicts only (``claims`` normalised)."""
    if not claims:
        what = f": {measured_by}" if measured_by else ""
        return ("No claim of the article is judged in this section; it shows measurements"
                f" only{what}.")
    sentences = []
    by_verdict = {v: [c for c in claims if c["verdict"] == v] for v, _ in tally(claims)}
    parts = [_with_confidence(v, cs) for v, cs in by_verdict.items()]
    noun = "claim" if len(claims) == 1 else "claims"
    sentences.append(f"Of {len(claims)} {noun} here: {_join(parts)}.")

    decided = [c for c in claims if c["verdict"] in DECIDED]
    solid = sorted((c for c in decided if c["fragile"] != 1),
                   key=lambda c: CONFIDENCE_ORDER.get(c["confidence"], 3))
    fragile = [c for c in decided if c["fragile"] == 1]
    if solid:
        best = solid[0]
        how = f" with {best['confidence']} confidence" if best["confidence"] else ""
        headline = f"The firmest answer: {_quote(best)} is {best['verdict']}{how}"
        if fragile:
            headline += (f"; {_names(fragile, _in_parens)} would change under another"
                         " margin or weighting (fragile)")
        sentences.append(headline + ".")
    elif fragile:
        which = "The only verdict" if len(fragile) == 1 else "Every verdict"
        sentences.append(f"{which} here is fragile (it changes under another margin or"
                         f" weighting): {_names(fragile, _in_parens)}.")
    else:
        sentences.append("No claim here has a verdict that says which way the evidence goes.")

    inconclusive = by_verdict.get("inconclusive", [])
    if inconclusive:
        verb = "is" if len(inconclusive) == 1 else "are"
        sentences.append(f"{_names(inconclusive, lambda c: '')} {verb} inconclusive: no"
                         " difference beyond the margin or the noise, so neither way.")
    missing = [c for c in claims if c["unmeasurable"] or c["not_collected"]]
    if missing:
        sentences.append(f"Not measured: {_names(missing, _not_measured_why)}.")
    return " ".join(sentences)
