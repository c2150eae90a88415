"""The "Performance & scalability" and "Graph building" sections: the paired trainings."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from fwsurvey.analyzers.settings import STRATEGIES
from fwsurvey.claims.stats import ratio_interval
from fwsurvey.kernels.adapters import MODES
from fwsurvey.reports.charts import loss_curves_chart, relative_throughput_chart
from fwsurvey.reports.sections import SectionInput

THROUGHPUT_CHART = "kernels_step_time.png"
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
        for key in CONTRACT_C_COLUMNS:  # a run before the samples existed: shown as unknown
            r.setdefault(key, None)
        r["outcome_shown"] = r["outcome"] or _outcome(r)
    return rows


#: kernel_runs columns of contract C (migration m009); older runs lack them.
CONTRACT_C_COLUMNS = ("fingerprint", "code_sha256", "windows", "outcome", "time_to_target_s",
                      "steps_to_target", "data_ms_median", "compute_ms_median")


OUTCOMES = ("ok", "crashed", "oom", "timeout", "wrong_device", "missed_target", "unsupported")


def _outcome(row: dict[str, Any]) -> str:
    """The outcome of a run stored before ``outcome`` existed, from what it did store."""
    if row["status"] != "ok":
        return row["status"] if row["status"] in OUTCOMES else "crashed"
    return "missed_target" if row["reached_target"] == 0 else "ok"


def performance_section(inp: SectionInput) -> dict[str, Any]:
    """Per task: each framework and mode side by side, its step time against the baseline
    with a 95% interval, time to target and outcome (a failure is a result, not a blank)."""
    rows = _latest_runs(inp, "train")
    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        tasks[r["task"]].append(r)
    samples = _window_medians(inp, rows)
    throughput_chart = lm_chart = None
    ratios = []
    baselines = {}
    for task, task_rows in tasks.items():
        base = _baseline(task_rows)
        baselines[task] = base
        for r in task_rows:
            r.update(_step_ratio(r, base, samples))
            if r["step_ratio"] is not None and r is not base:
                ratios.append((task, f"{r['framework_name']} ({r['mode']})", r["step_ratio"],
                               r["step_ratio_low"], r["step_ratio_high"]))
    if ratios:
        relative_throughput_chart(ratios, inp.out_dir / THROUGHPUT_CHART,
                                  title=f"Step time relative to the baseline (run {inp.run_id})",
                                  ylabel="step time / baseline's")
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
    scaling = scaling_summary(inp)
    return {
        "measured": bool(rows or scaling["tasks"] or scaling["strategies"]["rows"]),
        "scaling": scaling,
        "kernels": {
            "tasks": dict(tasks),
            "baselines": {t: (f"{b['framework_name']} ({b['mode']})" if b else None)
                          for t, b in baselines.items()},
            "devices": devices,
            "on_cpu_only": bool(rows) and all(r["device"] == "cpu" for r in rows),
            "with_samples": any(r["samples_n"] for r in rows),
            "throughput_chart": throughput_chart,
            "lm_chart": lm_chart,
            "failed": [r for r in rows if r["status"] != "ok"],
        },
    }


def _baseline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row every other row of a task is compared with: PyTorch eager when it ran, else
    the first row that finished (configuration order)."""
    ok = [r for r in rows if r["status"] == "ok" and r["step_median_ms"]]
    return next((r for r in ok if r["mode"] == BASELINE_MODE), ok[0] if ok else None)


def _window_medians(inp: SectionInput, rows: list[dict[str, Any]]) -> dict[str, dict]:
    """Per fingerprint (contract C): every measured window's step times, from every run up to
    the one shown (comparable samples accumulate across runs), and the number of steps and
    runs behind them. Empty on a store without ``kernel_samples``."""
    fingerprints = sorted({r["fingerprint"] for r in rows if r.get("fingerprint")})
    if not fingerprints or "kernel_samples" not in inp.store.db.table_names():
        return {}
    marks = ", ".join("?" for _ in fingerprints)
    found = inp.store.query(
        f"SELECT fingerprint, run_id, job, window, step_ms FROM kernel_samples"
        f" WHERE fingerprint IN ({marks}) AND run_id <= ? AND step_ms IS NOT NULL"
        f" ORDER BY fingerprint, run_id, job, window, step", [*fingerprints, inp.run_id])
    windows: dict[str, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in found:
        windows[s["fingerprint"]][(s["run_id"], s["job"], s["window"])].append(s["step_ms"])
    return {fp: {"windows": list(w.values()),
                 "steps": sum(len(v) for v in w.values()),
                 "runs": len({key[0] for key in w})}
            for fp, w in windows.items()}


def _step_ratio(row: dict[str, Any], base: dict[str, Any] | None,
                samples: dict[str, dict]) -> dict[str, Any]:
    """The row's step time over the baseline's, with a 95% interval when both have samples.

    The same statistics the claims judge timings with (:func:`fwsurvey.claims.stats.
    ratio_interval`: a seeded bootstrap of the ratio of medians, resampling each window's
    steps), so the report's interval and the verdict's evidence never disagree.
    Without samples (an older run), the ratio of the stored medians, without an interval.
    """
    mine = samples.get(row.get("fingerprint") or "")
    out: dict[str, Any] = {"step_ratio": None, "step_ratio_low": None,
                           "step_ratio_high": None, "ratio_basis": None,
                           "samples_n": mine["steps"] if mine else None,
                           "samples_windows": len(mine["windows"]) if mine else None,
                           "samples_runs": mine["runs"] if mine else None}
    if base is None or row["status"] != "ok" or not row["step_median_ms"]:
        return out
    theirs = samples.get(base.get("fingerprint") or "")
    if mine and theirs:
        interval = ratio_interval(f"report:{row['job']}", theirs["windows"], mine["windows"])
        out["step_ratio"] = interval.ratio
        out["ratio_basis"] = "samples"
        if row is not base:
            out["step_ratio_low"], out["step_ratio_high"] = interval.low, interval.high
    else:
        out["step_ratio"] = row["step_median_ms"] / base["step_median_ms"]
        out["ratio_basis"] = "medians"
    return out


def scaling_summary(inp: SectionInput) -> dict[str, Any]:
    """The data-parallel runs per task, the environments that failed, and the strategies."""
    rows = [r for r in inp.latest_as_of_run("kernel_scaling", "job")
            if r["framework"] in inp.config.frameworks]
    order = {key: i for i, key in enumerate(inp.config.frameworks)}
    rows.sort(key=lambda r: (r["task"], order[r["framework"]], r["env"] != "main", r["env"],
                             r["n_devices"]))
    names = inp.names()
    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        r["framework_name"] = names[r["framework"]]
        tasks[r["task"]].append(r)
    # A framework whose N-device run fails on the installed JAX but works in another
    # environment: evidence that the JAX a user gets today does not run it.
    broken_here = []
    for r in rows:
        if r["env"] != "main" or r["n_devices"] < 2 or r["status"] == "ok":
            continue
        elsewhere = [o for o in rows if (o["task"], o["framework"], o["n_devices"])
                     == (r["task"], r["framework"], r["n_devices"])
                     and o["env"] != "main" and o["status"] == "ok"]
        broken_here.append({**r, "works_with": sorted({o["jax_version"] for o in elsewhere
                                                       if o["jax_version"]})})
    return {
        "tasks": dict(tasks),
        "simulated": any(r["simulated"] for r in rows),
        "devices": sorted({r["device_name"] for r in rows if r["device_name"]}),
        "failed": [r for r in rows if r["status"] != "ok"],
        "broken_here": broken_here,
        "strategies": strategies_table(inp),
    }


def _short_symbol(symbol: str) -> str:
    """The last two parts say enough beside the framework's name: ``fsdp.fully_shard``,
    ``training.Loop(n_devices)``."""
    name, paren, param = symbol.partition("(")
    return ".".join(name.split(".")[-2:]) + paren + param


def strategies_table(inp: SectionInput) -> dict[str, Any]:
    """Strategy × framework: which configured symbols the installed package ships."""
    rows = inp.store.query(
        "SELECT d.* FROM distributed_strategies d JOIN (SELECT framework, MAX(run_id) AS run_id"
        " FROM distributed_strategies WHERE run_id <= ? GROUP BY framework) latest"
        " USING (framework, run_id)", [inp.run_id])
    frameworks = [fw for fw in inp.config.frameworks if any(r["framework"] == fw for r in rows)]
    names = inp.names()
    cells: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if r["framework"] not in frameworks:
            continue
        found = [_short_symbol(s) for s in json.loads(r["found"])]
        cells[r["strategy"]][r["framework"]] = {"shipped": bool(r["shipped"]), "found": found,
                                                "note": r["note"],
                                                "version": r["package_version"]}
    strategies = [s for s in STRATEGIES if s in cells]
    return {
        "frameworks": [(fw, names[fw]) for fw in frameworks],
        "rows": [(s.replace("_", " "), cells[s]) for s in strategies],
        "shipped": {fw: sum(cells[s].get(fw, {}).get("shipped", False) for s in strategies)
                    for fw in frameworks},
        "total": len(strategies),
        "versions": {fw: next((cells[s][fw]["version"] for s in strategies if fw in cells[s]),
                              None) for fw in frameworks},
    }


def graph_building_section(inp: SectionInput) -> dict[str, Any]:
    """Compile counts and costs: the dynamic-shape experiment and first-step times."""
    dynamic = _latest_runs(inp, "dynamic")
    train = [r for r in _latest_runs(inp, "train") if r["status"] == "ok"]
    chart = None
    timed = [r for r in dynamic if r["status"] == "ok" and r["compiles_timed"] is not None]
    if timed:
        from fwsurvey.reports.charts import compile_cost_chart

        chart = "dynamic-compiles.png"
        compile_cost_chart(
            [(f"{r['framework_name']} {r['mode']} ({r['variant']})", r["compile_s_timed"] or 0.0,
              r["compiles_timed"]) for r in timed],
            inp.out_dir / chart, "Compiling while sequence lengths vary")
    return {
        "measured": bool(dynamic or train),
        "graphs": {
            "chart": chart,
            "dynamic": dynamic,
            "seq_lens": next((r["seq_lens"] for r in dynamic if r["seq_lens"]), None),
            "first_steps": train,
        },
    }
