"""The compared pair, side by side: per task, phase and metric, both values and their ratio,
and the "ease of use" composite (``ergonomics_pairs``).
"""

from __future__ import annotations

import math

from fwsurvey.analyzers.ergonomics import METRIC_COLUMNS
from fwsurvey.analyzers.settings import ErgonomicsSettings
from fwsurvey.analyzers.targets import Target
from fwsurvey.sources import Record

#: The composite's row in ergonomics_pairs (its ``metric``).
COMPOSITE = "ease_of_use_composite"


def pair_records(compare: tuple[str, str], settings: ErgonomicsSettings, targets: list[Target],
                 results: dict[str, dict], fetched_at: str) -> list[Record]:
    """Per task, phase and metric: the compared pair's values, ratio a/b, and the composite.

    The composite is the weighted geometric mean of (a + 1) / (b + 1) over the weighted
    metrics (add-one, so a zero on either side stays finite): above 1, the first framework's
    code needs more of what the weights count; below 1, less.
    """
    a, b = compare
    phases_of: dict[tuple[str, str], dict[str, dict]] = {}
    for t in targets:
        result = results[t.display]
        if t.task and t.framework in (a, b) and "phases" in result:
            phases_of[(t.task, t.framework)] = {p["phase"]: p for p in result["phases"]}
    records = []
    for task in sorted({task for task, _ in phases_of}):
        if (task, a) not in phases_of or (task, b) not in phases_of:
            continue
        pa, pb = phases_of[(task, a)], phases_of[(task, b)]
        for phase in [p for p in pa if p in pb]:
            logs, total = 0.0, 0.0
            for metric in METRIC_COLUMNS:
                va, vb = pa[phase].get(metric), pb[phase].get(metric)
                weight = settings.weights.get(metric, 0.0)
                if isinstance(va, bool) or isinstance(vb, bool):
                    continue
                ratio = va / vb if va is not None and vb not in (None, 0) else None
                records.append(Record("ergonomics_pairs", {
                    "fetched_at": fetched_at, "task": task, "phase": phase, "metric": metric,
                    "framework_a": a, "framework_b": b, "value_a": va, "value_b": vb,
                    "ratio": round(ratio, 4) if ratio is not None else None,
                    "weight": weight or None}))
                if weight and va is not None and vb is not None:
                    logs += weight * math.log((va + 1) / (vb + 1))
                    total += weight
            records.append(Record("ergonomics_pairs", {
                "fetched_at": fetched_at, "task": task, "phase": phase, "metric": COMPOSITE,
                "framework_a": a, "framework_b": b, "value_a": None, "value_b": None,
                "ratio": round(math.exp(logs / total), 4) if total else None,
                "weight": None}))
    return records
