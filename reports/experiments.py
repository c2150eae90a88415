"""Each experiment's own table (issue #14): what the experiment observed, job by job.

The claims show the metrics that decide them; these tables show everything the experiments
recorded, so a reader can check a verdict against what happened: each ``kernel_checks`` row
of the run shown (the newest per job and check, as of that run) as one cell per framework and
mode, a failure with its reason, and the size of each modular edit (``code_edits``).

Which experiment goes to which section is stated once, in :data:`SECTION_EXPERIMENTS`; the
selection is by experiment label (the tasks of an experiment) or by check-name prefix (checks
recorded in the reference trainings: deployment, modular variants).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from fwsurvey.kernels.adapters import MODES
from fwsurvey.reports.sections import SectionInput


@dataclass(frozen=True)
class ExperimentTable:
    """One table: its title, and the checks it shows (an experiment, or a check prefix)."""

    title: str
    note: str
    experiment: str | None = None
    prefix: str | None = None


SECTION_EXPERIMENTS: dict[str, tuple[ExperimentTable, ...]] = {
    "graph-building": (
        ExperimentTable("Control flow and recursion", "a recursive model over generated "
                        "expression trees and an adaptive-depth loop, each as its framework "
                        "allows it", experiment="recursion"),
    ),
    "model-architecture": (
        ExperimentTable("Hybrid code", "NumPy/SciPy inside the training step, and zero-copy "
                        "exchange through DLPack", experiment="hybrid"),
    ),
    "training-deployment": (
        ExperimentTable("Visualization", "the training loss logged through each framework's "
                        "own API, read back with TensorBoard's reader",
                        experiment="visualization"),
        ExperimentTable("Deployment", "the trained digits models exported by each "
                        "framework's documented path and run in the target runtime",
                        prefix="deploy."),
    ),
    "ease-of-use": (
        ExperimentTable("Modular changes: each variant trained", "every standard edit's "
                        "variant trained a few steps in the reference job",
                        prefix="variant."),
    ),
}

#: Longest detail text shown in a cell (the store keeps all of it).
DETAIL_CHARS = 90


def experiment_tables(inp: SectionInput, slug: str) -> list[dict[str, Any]]:
    """The experiment tables of one section, each with its columns (framework, mode) and
    rows (task, check) of cells; tables with no rows in the run shown are left out."""
    specs = SECTION_EXPERIMENTS.get(slug, ())
    if not specs or not inp.store.db["kernel_checks"].exists():
        return []
    checks = inp.store.query(
        "SELECT c.* FROM kernel_checks c JOIN (SELECT job, check_name, MAX(run_id) AS run_id"
        " FROM kernel_checks WHERE run_id <= ? GROUP BY job, check_name) latest"
        " USING (job, check_name, run_id)", [inp.run_id])
    names = inp.names()
    checks = [c for c in checks if c["framework"] in names]
    tables = []
    for spec in specs:
        rows = [c for c in checks
                if (spec.experiment is not None and c["experiment"] == spec.experiment)
                or (spec.prefix is not None and c["check_name"].startswith(spec.prefix))]
        if rows:
            tables.append(_table(spec, rows, inp, names))
    if slug == "ease-of-use":
        edits = _edits_table(inp, names)
        if edits:
            tables.append(edits)
    return tables


def _table(spec: ExperimentTable, rows: list[dict[str, Any]], inp: SectionInput,
           names: dict[str, str]) -> dict[str, Any]:
    order = {key: i for i, key in enumerate(inp.config.frameworks)}
    modes = {mode: i for i, mode in enumerate(m for ms in MODES.values() for m in ms)}
    columns = sorted({(r["framework"], r["mode"]) for r in rows},
                     key=lambda c: (order.get(c[0], 99), modes.get(c[1], 99)))
    cells: dict[tuple[str, str], dict[tuple[str, str], str]] = defaultdict(dict)
    runs = set()
    for r in rows:
        cells[(r["task"], r["check_name"])][(r["framework"], r["mode"])] = _cell(r)
        runs.add(r["run_id"])
    return {
        "title": spec.title, "note": spec.note, "label": "Check",
        "columns": [f"{names[fw]} ({mode})" for fw, mode in columns],
        "rows": [{"task": task, "check": check,
                  "cells": [cells[(task, check)].get(col, "—") for col in columns]}
                 for task, check in sorted(cells)],
        "runs": sorted(runs),
    }


def _cell(row: dict[str, Any]) -> str:
    """✓/✗ (or nothing, where the check states a value only), the value and unit, and the
    detail where it explains a failure or stands in for a missing value."""
    parts = []
    if row["ok"] is not None:
        parts.append("✓" if row["ok"] else "✗")
    unit = str(row["unit"] or "")
    if row["value"] is not None and unit.startswith("1 = "):  # a yes/no value: say which
        if row["ok"] is None:  # (where ✓/✗ says it already, nothing more)
            parts.append(unit[4:] if row["value"] == 1 else f"not {unit[4:]}")
    elif row["value"] is not None:
        value = row["value"]
        parts.append(f"{value:.3g}" if isinstance(value, float) and not value.is_integer()
                     else f"{int(value):,}")
        if unit:
            parts.append(unit)
    detail = (row["detail"] or "").replace("|", "/").replace("\n", " ")
    if detail and (row["ok"] == 0 or row["value"] is None):
        shown = detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS - 1] + "…"
        parts.append(f"({shown})")
    return " ".join(parts) or "—"


def _edits_table(inp: SectionInput, names: dict[str, str]) -> dict[str, Any] | None:
    if not inp.store.db["code_edits"].exists():
        return None
    # Every edit is measured in each analysis: the newest analysis as of the run shown.
    edits = [e for e in inp.store.query(
        "SELECT * FROM code_edits WHERE run_id = (SELECT MAX(run_id) FROM code_edits"
        " WHERE run_id <= ?)", [inp.run_id]) if e["framework"] in names]
    if not edits:
        return None
    frameworks = [fw for fw in inp.config.frameworks if any(e["framework"] == fw for e in edits)]
    by_edit: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for e in edits:
        by_edit[(e["task"], e["edit"])][e["framework"]] = e

    def cell(e: dict[str, Any] | None) -> str:
        if e is None:
            return "—"
        if e["status"] != "ok":
            return f"{e['status']}" + (f" ({e['note']})" if e["note"] else "")
        return (f"{e['tokens_changed']} tokens, {e['lines_changed']} lines, "
                f"{e['scopes_touched']} scope(s)")

    return {
        "title": "Modular changes: the size of each edit", "label": "Edit",
        "note": "tokens and lines changed against the base implementation (comments and "
                "blank lines excluded), and the functions or classes the edit touched",
        "columns": [names[fw] for fw in frameworks],
        "rows": [{"task": task, "check": edit,
                  "cells": [cell(by_edit[(task, edit)].get(fw)) for fw in frameworks]}
                 for task, edit in sorted(by_edit)],
        "runs": sorted({e["run_id"] for e in edits}),
    }
