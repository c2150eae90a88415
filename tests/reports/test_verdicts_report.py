"""The report reads like an answer: summary with confidence and fragility, a bottom line per
section, inconclusive evidence shown as such, unmeasurable claims apart from uncollected ones,
timing ratios with intervals, charts on a log axis centred on 1.

The store is built here with the rows the claims stage (contract D) and the train stage
(contract C) write. Until migrations m010/m009 land, their columns and kernel_samples are
added by the test itself (``tests.reports.contract``), guarded by "if missing".
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from fwsurvey.config import load_config
from fwsurvey.reports import charts
from fwsurvey.reports.render import render_report
from fwsurvey.reports.verdicts import bottom_line, normalise_claim
from fwsurvey.store import Store
from tests.reports.contract import (
    AT,
    CLAIM_COLUMNS,
    EVIDENCE_COLUMNS,
    KERNEL_RUN_COLUMNS,
    claim,
    evidence,
)


def kernel_run(framework: str, mode: str, fingerprint: str, median: float, **extra) -> dict:
    row = {"run_id": 1, "source": "kernels/cnn_digits", "fetched_at": AT,
           "job": f"cnn_digits/{framework}/{mode}/train/default", "task": "cnn_digits",
           "framework": framework, "mode": mode, "experiment": "train", "variant": "default",
           "profile": "quick", "status": "ok", "phase_reached": "done", "device": "cuda",
           "device_name": "NVIDIA H200", "precision": "bf16", "n_params": 100_000,
           "timed_steps": 60, "step_median_ms": median, "step_iqr_ms": 0.1,
           "throughput": 1000 / median, "throughput_unit": "samples/s", "eval_metric": "acc",
           "target": 0.9, "target_mode": "min", "reached_target": 1, "first_step_s": 1.0,
           "fingerprint": fingerprint, "windows": 4, "outcome": "ok",
           "time_to_target_s": 12.5, "steps_to_target": 400}
    row.update(extra)
    return row


def samples(run: dict, medians: list[float]) -> list[dict]:
    """Ten steps per window around each window's median (deterministic), as the train stage
    stores them for ``run`` (a kernel_runs row)."""
    keys = ("job", "task", "framework", "mode", "experiment", "variant", "device",
            "device_name", "precision", "fingerprint")
    return [{"run_id": 1, "source": run["source"], "fetched_at": AT,
             **{k: run[k] for k in keys}, "window": w + 1, "step": s + 1,
             "step_ms": m + (s - 4.5) * 0.01, "data_ms": 0.1, "compute_ms": m - 0.1}
            for w, m in enumerate(medians) for s in range(10)]


@pytest.fixture
def judged(write_config, tmp_path):
    """A store whose run 1 holds contract-D verdicts and contract-C timings."""
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("test", ["train", "claims"], {})
    assert run_id == 1
    claims = [
        claim("perf.speed", "performance-scalability", "Trax is faster than JAX", "supported",
              confidence="high", fragile=0, device_scope="gpu", n_samples=480,
              claim_type="comparative", previous_verdict="mixed",
              change_reason="GPU samples from run 1 narrowed the interval",
              key_numbers="step time: Trax 5.0 vs JAX 8.0 ms"),
        claim("perf.memory", "performance-scalability", "Trax uses less memory than JAX",
              "contradicted", confidence="low", fragile=1, device_scope="gpu", n_samples=12,
              claim_type="comparative", previous_verdict="contradicted"),
        claim("perf.compile", "performance-scalability", "JAX compiles faster than Trax",
              "inconclusive", confidence=None, fragile=0, device_scope="any", n_samples=24,
              claim_type="comparative"),
        claim("perf.production", "performance-scalability",
              "JAX suits production-size models better", "insufficient evidence",
              device_scope="gpu", n_samples=0, claim_type="comparative"),
        claim("perf.research", "performance-scalability", "Trax is suited to research",
              "unmeasurable", claim_type="unmeasurable", settleable=0,
              unmeasurable_reason="\"suited to research\" names no property a run measures"),
    ]
    rows = [
        evidence("perf.speed", "step_time", "cnn_digits", 5.0, 8.0, "for", decision="a",
                 ci_low=1.5, ci_high=1.7, delta=0.1, n_a=240, n_b=240, tier="behaviour",
                 primary_metric=1, device_scope="gpu"),
        evidence("perf.compile", "compile_s", "transformer_lm", 20.0, 21.0, "unusable",
                 decision="inconclusive", ci_low=0.93, ci_high=1.18, delta=0.1, n_a=12,
                 n_b=12, tier="behaviour", primary_metric=1,
                 note="compile time includes the first step's tracing"),
        evidence("perf.memory", "device_memory", "cnn_digits", 300.0, 280.0, "against",
                 decision="b", note="device peak, not process RSS"),
        evidence("perf.production", "gpt2_step", "transformer_lm", None, None, "unusable",
                 decision="missing", note="no value: needs a GPU run"),
    ]
    store.db["claims"].insert_all(claims)
    store.db["claim_evidence"].insert_all(rows)
    # Timings: JAX's windows around 8 ms (baseline: first in configuration order is Trax).
    trax = kernel_run("trax", "trax", "f" * 16, 5.0)
    jax = kernel_run("jax", "jax-jit", "e" * 16, 8.0, outcome="missed_target",
                     reached_target=0, time_to_target_s=None, steps_to_target=None)
    store.db["kernel_runs"].insert_all([trax, jax])
    store.db["kernel_samples"].insert_all(
        samples(trax, [4.9, 5.0, 5.1, 5.05]) + samples(jax, [7.8, 8.0, 8.2, 8.1]))
    store.finish_run(run_id, "ok")
    yield store, config
    store.close()


def test_report_reads_like_an_answer(judged, tmp_path, monkeypatch):
    store, config = judged
    figures = {}
    save = charts._save

    def keep(fig, path):  # the figure each chart file was drawn from, to inspect its axes
        figures[path.name] = [(ax.get_xscale(), ax.get_yscale(), ax.get_xlim(), ax.get_ylim())
                              for ax in fig.axes]
        save(fig, path)

    monkeypatch.setattr(charts, "_save", keep)
    text = render_report(store, config, tmp_path / "report").read_text(encoding="utf-8")

    # The summary: every claim with its verdict, confidence, fragile flag, device, samples,
    # and the previous verdict with the reason where it changed.
    summary = text.split("## Summary", 1)[1].split("\n\n", 2)[1]
    rows = {m[0]: m[1:] for m in re.findall(
        r"\| \[[^]]+\]\(#[^)]+\) \| \[([^]]+)\]\(#claim-[^)]+\) \| \*\*([^*]+)\*\* \|"
        r" ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|", summary)}
    assert rows["Trax is faster than JAX"] == (
        "supported", "high", "no", "gpu", "480",
        "was **mixed**: GPU samples from run 1 narrowed the interval")
    assert rows["Trax uses less memory than JAX"] == (
        "contradicted", "low", "**fragile**", "gpu", "12", "unchanged")
    assert rows["JAX compiles faster than Trax"][:3] == ("inconclusive", "—", "no")
    assert len(rows) == 5
    assert "5 claims judged in run 1: 1 supported, 1 contradicted, 1 inconclusive," \
           " 1 insufficient evidence, 1 unmeasurable." in text

    # The bottom line names what was not measured, and why, and retells confidence.
    bottom = re.search(r"\*\*Bottom line\.\*\* (.*)", text.split("## Performance")[1])[1]
    assert "1 supported (1 high confidence)" in bottom
    assert "“JAX suits production-size models better” (needs a GPU run)" in bottom
    assert "“Trax is suited to research” (cannot be measured)" in bottom
    assert "“Trax uses less memory than JAX” (contradicted) would change" in bottom
    assert "“JAX compiles faster than Trax” is inconclusive" in bottom
    assert 2 <= bottom.count(". ") + 1 <= 4

    # Unmeasurable claims apart from those whose data was not collected.
    apart = text.split("### What this run could not judge", 1)[1].split("<a id=", 1)[0]
    cannot, uncollected = apart.split("**Not collected in this run**")
    assert "Trax is suited to research" in cannot and "names no property" in cannot
    assert "production-size" not in cannot
    assert "production-size models better](#claim-perf-production) (Performance & " \
           "scalability, needs a GPU run): no usable data for gpt2 step" in uncollected

    # The inconclusive row is shown as such, with its interval, band and caveat.
    assert ("| compile s ★ | transformer_lm | 20 | 21 | 1.05 (0.93–1.18) | ±10% | 12 / 12 |"
            " inconclusive (not counted) | unusable | behaviour | — |"
            " compile time includes the first step's tracing |") in text
    assert "1 inconclusive (not counted)" in text
    assert "| device memory | cnn_digits | 300 | 280 | JAX | against | — |" \
           " device peak, not process RSS |" in text

    # Timings: the ratio against the baseline with its bootstrap interval, samples, device,
    # precision, time to target and the outcome (a missed target is a result).
    jax_row = next(line for line in text.splitlines() if line.startswith("| JAX | jax-jit |"))
    cells = [c.strip() for c in jax_row.strip("|").split("|")]
    assert cells[3:7] == ["NVIDIA H200", "bf16", "100,000", "40 / 4 / 1"]
    ratio = re.fullmatch(r"([\d.]+)× \(([\d.]+)–([\d.]+)\)", cells[8])
    assert ratio, cells[8]
    point, low, high = map(float, ratio.groups())
    assert point == pytest.approx(np.median([7.8, 8.0, 8.2, 8.1]) / np.median(
        [4.9, 5.0, 5.1, 5.05]), abs=0.005)
    assert low <= point <= high and high - low < 0.2  # the claims judge's interval
    assert cells[11] == "not reached" and cells[-1] == "**missed_target**"
    trax_row = next(line for line in text.splitlines() if line.startswith("| Trax | trax |"))
    assert "| 12.5 (400) |" in trax_row and "| 1.00× |" in trax_row

    # The chart exists, is linked, and draws the ratio on a log axis centred on 1.
    assert "(kernels_step_time.png)" in text
    assert (tmp_path / "report" / "kernels_step_time.png").stat().st_size > 1000
    [(xscale, yscale, _, (ylow, yhigh))] = figures["kernels_step_time.png"]
    assert yscale == "log"
    assert math.log10(ylow) == pytest.approx(-math.log10(yhigh))
    assert yhigh > high  # the interval's top fits
    # The timing evidence: every row with an interval, on a log x axis centred on 1.
    assert "(evidence-intervals.png)" in text
    [(xscale, _, (xlow, xhigh), _)] = figures["evidence-intervals.png"]
    assert xscale == "log" and math.log10(xlow) == pytest.approx(-math.log10(xhigh))
    assert xhigh > 1.7


def test_interval_chart_is_log_and_centred(tmp_path):
    fig = charts.interval_figure([("cnn", 1.6, 1.5, 1.7, 0.1), ("lstm", 0.5, 0.4, 0.6)],
                                 "ratios", "JAX / Trax")
    try:
        [ax] = fig.axes
        low, high = ax.get_xlim()
        assert ax.get_xscale() == "log"
        assert math.log10(low) == pytest.approx(-math.log10(high))
        assert high > 2.5  # 1/0.4 fits on the other side
        # One error bar per comparison, from its interval.
        segments = [c for c in ax.collections if c.get_segments()]
        assert sum(len(c.get_segments()) for c in segments) >= 2
    finally:
        charts.plt.close(fig)


def test_bottom_line_without_new_columns_names_unmeasured_claims():
    """A claim stored before contract D (no confidence, settleable = 0) still reads."""
    old = [normalise_claim({"claim_id": "x", "text": "A is nicer", "verdict":
                            "insufficient evidence", "settleable": 0,
                            "reason": "no data can settle it: taste", "evidence": []}),
           normalise_claim({"claim_id": "y", "text": "A is faster", "verdict": "supported",
                            "settleable": 1, "reason": "r", "evidence": []})]
    line = bottom_line(old)
    assert line.startswith("Of 2 claims here: 1 supported and 1 with insufficient evidence.")
    assert "The firmest answer: “A is faster” is supported." in line
    assert "Not measured: “A is nicer” (cannot be measured)." in line
    assert old[0]["unmeasurable_why"] == "taste"
    assert bottom_line([], "kernels") == ("No claim of the article is judged in this section;"
                                          " it shows measurements only: kernels.")


def test_report_renders_a_database_without_contract_columns(write_config, tmp_path):
    """Today's shape: claims without the contract-D columns, kernel_runs without contract C."""
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("test", ["claims"], {})
    for table, columns in (("claims", CLAIM_COLUMNS), ("claim_evidence", EVIDENCE_COLUMNS),
                           ("kernel_runs", KERNEL_RUN_COLUMNS)):
        for name in columns:
            if name in store.db[table].columns_dict:
                store.db[table].transform(drop={name})
    assert not set(CLAIM_COLUMNS) & set(store.db["claims"].columns_dict)
    assert "outcome" not in store.db["kernel_runs"].columns_dict
    store.db["claims"].insert(claim("perf.speed", "performance-scalability", "Trax is faster",
                                    "mixed", rule="{}"))
    store.db["claim_evidence"].insert(evidence("perf.speed", "step_time", "cnn", 5.0, 8.0,
                                               "for", favours="a", note="CPU timing"))
    old_run = kernel_run("trax", "trax", None, 5.0)
    for name in KERNEL_RUN_COLUMNS:
        old_run.pop(name, None)
    store.db["kernel_runs"].insert(old_run)
    store.finish_run(run_id, "ok")
    text = render_report(store, config, tmp_path / "report").read_text(encoding="utf-8")
    store.close()
    assert "| **mixed** | — | — | — | — | — |" in text
    assert "| step time | cnn | 5 | 8 | Trax | for | — | CPU timing |" in text
    assert "**Bottom line.** Of 1 claim here: 1 mixed." in text
    assert "| Trax | trax | `ok` |" in text and "| 60 / — / 1 |" in text
    assert "| **ok** |" in text
