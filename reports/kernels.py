"""The "Performance & scalability" and "Graph building" sections: the paired trainings."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from fwsurvey.kernels.tasks import MODES
from fwsurvey.reports.charts import loss_curves_chart, relative_throughput_chart
from fwsurvey.reports.sections import SectionInput

THROUGHPUT_CHART = "kernels_throughput.png"
LM_LOSS_CHART = "kernels_lm_loss.png"
#: The mode every other mode's throughput is compared with.
BASELINE_MODE = "torch-eager"


def _latest_runs(inp: SectionInput, experiment: str) -> list[dict[str, Any]]:
    rows = [r for r in inp.latest_as_of_run("kernel_runs", "job")
            if r["experiment"] == experiment and r["framework"] in inp.config.frameworks]
    order = {key: i for i, key in enumerate(inp.config.frameworks)}
    modes = {mode: i for i, mode in enumerate(m for ms in MODES.values() for m in ms)}
    rows.sort(key=lambda r: (r["task"], order[r["framework"]], modes.get(r["mode"], 99),
                             r["variant"]))
    names = inp.names()
    for r in rows:
        r["framework_name"] = names[r["framework"]]
        r["seq_lens"] = json.loads(r["seq_lens"]) if r["seq_lens"] else None
    return rows


def performance_section(inp: SectionInput) -> dict[str, Any]:
    """Per task: each framework and mode side by side, with loss parity and the target."""
    rows = _latest_runs(inp, "train")
    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        tasks[r["task"]].append(r)
    throughput_chart = lm_chart = None
    ratios = []
    for task, task_rows in tasks.items():
        base = next((r for r in task_rows if r["mode"] == BASELINE_MODE
                     and r["status"] == "ok"), None)
        for r in task_rows:
            r["vs_baseline"] = (r["throughput"] / base["throughput"]
                                if base and r["throughput"] and r["status"] == "ok" else None)
            if r["vs_baseline"] is not None:
                ratios.append((task, r["mode"], r["vs_baseline"]))
    if ratios:
        relative_throughput_chart(ratios, inp.out_dir / THROUGHPUT_CHART,
                                  title=f"Throughput relative to {BASELINE_MODE} (run "
                                        f"{inp.run_id})")
        throughput_chart = THROUGHPUT_CHART
    lm_rows = [r for r in tasks.get("transformer_lm", []) if r["status"] == "ok"]
    if lm_rows:
        curves = {}
        for r in lm_rows:
            points = inp.store.query("SELECT step, loss FROM kernel_curves WHERE run_id = ?"
                                     " AND job = ? ORDER BY step", [r["run_id"], r["job"]])
            curves[f"{r['framework_name']} ({r['mode']})"] = [(p["step"], p["loss"])
                                                               for p in points]
        loss_curves_chart(curves, inp.out_dir / LM_LOSS_CHART,
                          title=f"Transformer LM training loss (run {inp.run_id})")
        lm_chart = LM_LOSS_CHART
    devices = sorted({r["device_name"] for r in rows if r["device_name"]})
    return {
        "measured": bool(rows),
        "kernels": {
            "tasks": dict(tasks),
            "devices": devices,
            "on_cpu_only": bool(rows) and all(r["device"] == "cpu" for r in rows),
            "throughput_chart": throughput_chart,
            "lm_chart": lm_chart,
            "failed": [r for r in rows if r["status"] != "ok"],
        },
    }


def graph_building_section(inp: SectionInput) -> dict[str, Any]:
    """Compile counts and costs: the dynamic-shape experiment and first-step times."""
    dynamic = _latest_runs(inp, "dynamic")
    train = [r for r in _latest_runs(inp, "train") if r["status"] == "ok"]
    return {
        "measured": bool(dynamic or train),
        "graphs": {
            "dynamic": dynamic,
            "seq_lens": next((r["seq_lens"] for r in dynamic if r["seq_lens"]), None),
            "first_steps": train,
        },
    }
