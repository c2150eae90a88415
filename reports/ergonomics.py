"""The "Ease of use", "Model architecture" and "Training & deployment" sections.

They show what the analyze stage stored: the ergonomics of the paired implementations
(``ergonomics_pairs``, ``ergonomics_metrics``) and the library surfaces (``library_summary``,
``library_symbols``), each as of the run shown. Nothing is computed here beyond picking rows.
"""

from __future__ import annotations

from typing import Any

from fwsurvey.analyzers.ergonomics import METRIC_COLUMNS
from fwsurvey.reports.sections import SectionInput

#: Per-phase headline metrics (the whole-file table shows them all).
PHASE_METRICS = ("concepts", "call_sites", "ceremony_calls", "lloc", "cognitive")
COMPOSITE = "ease_of_use_composite"
PHASE_ORDER = ("all", "preamble", "spec", "data", "model", "training", "evaluation")
ARCHITECTURE = ("layers", "combinators", "losses_metrics", "models")
TRAINING = ("optimizers", "lr_schedules", "data", "export", "distributed")
CATEGORY_TITLES = {
    "layers": "Layers / modules", "combinators": "Combinators / containers",
    "losses_metrics": "Losses and metrics", "models": "Model zoo", "optimizers": "Optimizers",
    "lr_schedules": "Learning-rate schedules", "data": "Data utilities",
    "export": "Export and deployment paths", "distributed": "Distributed training APIs",
}


def _phase_key(phase: str) -> tuple[int, str]:
    return (PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER), phase)


#: Metrics drawn in the per-pair chart (ratios of the whole files). The composite score is
#: not among them, nor anywhere in the report: no claim uses it and its weights are a choice
#: (the appendix says so).
CHART_METRICS = ("concepts", "lloc", "ceremony_calls", "cognitive")


def ease_of_use_section(inp: SectionInput) -> dict[str, Any]:
    """Raw metrics side by side per task and phase, the composite and its weights."""
    names = inp.names()
    a, b = inp.config.compare
    latest = inp.store.query("SELECT MAX(run_id) AS run_id FROM ergonomics_files"
                             " WHERE origin = 'kernels' AND run_id <= ?", [inp.run_id])
    run_id = latest[0]["run_id"] if latest else None
    pairs = inp.store.query("SELECT * FROM ergonomics_pairs WHERE run_id = ?"
                            " ORDER BY task, phase, metric", [run_id]) if run_id else []
    for p in pairs:  # counts are stored as REAL; show 5, not 5.00
        for key in ("value_a", "value_b"):
            if isinstance(p[key], float) and p[key].is_integer():
                p[key] = int(p[key])
    metric_order = {m: i for i, m in enumerate(METRIC_COLUMNS)}
    files = inp.store.query(
        "SELECT f.path, f.task, f.framework, f.status, f.message, m.* FROM ergonomics_files f"
        " LEFT JOIN ergonomics_metrics m ON m.run_id = f.run_id AND m.path = f.path"
        " AND m.phase = 'all' WHERE f.run_id = ? AND f.origin = 'kernels'"
        " ORDER BY f.task, f.framework", [run_id]) if run_id else []
    order = {key: i for i, key in enumerate(inp.config.frameworks)}
    files.sort(key=lambda f: (f["task"] or "", order.get(f["framework"], 99)))
    for f in files:
        f["framework_name"] = names.get(f["framework"], f["framework"])

    tasks = []
    for task in sorted({p["task"] for p in pairs}):
        rows = [p for p in pairs if p["task"] == task]
        phases = sorted({p["phase"] for p in rows}, key=_phase_key)
        by = {(p["phase"], p["metric"]): p for p in rows}
        tasks.append({
            "task": task,
            "whole": sorted((p for p in rows if p["phase"] == "all" and p["metric"] != COMPOSITE),
                            key=lambda p: metric_order.get(p["metric"], 99)),
            "composite": by.get(("all", COMPOSITE), {}).get("ratio"),
            "phases": [{"phase": ph, "composite": by.get((ph, COMPOSITE), {}).get("ratio"),
                        "metrics": [by.get((ph, m)) for m in PHASE_METRICS]}
                       for ph in phases if ph != "all"],
        })
    weights = {p["metric"]: p["weight"] for p in pairs if p["weight"]}
    chart = None
    ratios = [(p["task"], p["metric"], p["ratio"]) for p in pairs
              if p["phase"] == "all" and p["metric"] in CHART_METRICS and p["ratio"] is not None]
    if ratios:
        from fwsurvey.reports.charts import relative_throughput_chart

        chart = "ergonomics-pairs.png"
        ratios.sort(key=lambda r: CHART_METRICS.index(r[1]))
        relative_throughput_chart(ratios, inp.out_dir / chart,
                                  f"Paired implementations: {names[a]} / {names[b]}",
                                  ylabel=f"{names[a]} / {names[b]} (1 = equal)")
    return {
        "measured": bool(pairs or files),
        "ergonomics": {
            "run_id": run_id,
            "a": names[a], "b": names[b],
            "tasks": tasks,
            "chart": chart,
            "files": files,
            "weights": sorted(weights.items()),
            "phase_metrics": PHASE_METRICS,
            "this_run": inp.source_outcome("ergonomics", "analyze"),
        },
    }


def _surface(inp: SectionInput, categories: tuple[str, ...]) -> dict[str, Any]:
    names = inp.names()
    rows = inp.store.query(
        "SELECT s.* FROM library_summary s JOIN (SELECT framework, MAX(run_id) AS run_id"
        " FROM library_summary WHERE run_id <= ? GROUP BY framework) latest"
        " USING (framework, run_id)", [inp.run_id])
    present = {r["framework"] for r in rows}
    frameworks = [k for k in (*inp.config.compare, *inp.config.frameworks) if k in present]
    frameworks = list(dict.fromkeys(frameworks))
    by = {(r["framework"], r["category"]): r for r in rows}
    table = []
    for cat in categories:
        cells = [by.get((fw, cat)) for fw in frameworks]
        if any(cells):
            table.append({"category": cat, "title": CATEGORY_TITLES[cat], "cells": cells,
                          "notes": [(names[fw], c["note"]) for fw, c in zip(frameworks, cells,
                                                                            strict=True)
                                    if c and c["note"]]})
    return {
        "frameworks": [names[fw] for fw in frameworks],
        "framework_keys": frameworks,
        "versions": [next((r["package_version"] for r in rows if r["framework"] == fw), None)
                     for fw in frameworks],
        "run_ids": [next((r["run_id"] for r in rows if r["framework"] == fw), None)
                    for fw in frameworks],
        "table": table,
        "this_run": inp.source_outcome("library_surface", "analyze"),
    }


def model_architecture_section(inp: SectionInput) -> dict[str, Any]:
    """Layers, combinators, losses and model zoo per framework, with documentation coverage."""
    surface = _surface(inp, ARCHITECTURE)
    return {"measured": bool(surface["table"]), "surface": surface}


def training_deployment_section(inp: SectionInput) -> dict[str, Any]:
    """Optimizers, schedules, data, export paths and distributed APIs per framework."""
    surface = _surface(inp, TRAINING)
    export = {}
    for fw, run_id in zip(surface["framework_keys"], surface["run_ids"], strict=True):
        export[inp.names()[fw]] = [r["symbol"] for r in inp.store.query(
            "SELECT symbol FROM library_symbols WHERE run_id = ? AND framework = ?"
            " AND category = 'export' ORDER BY symbol", [run_id, fw])]
    return {"measured": bool(surface["table"]), "surface": surface,
            "export_symbols": [(fw, syms) for fw, syms in export.items() if syms]}

