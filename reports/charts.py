"""PNG charts for the report (matplotlib, no display needed).

Ratios are drawn on a log axis centred on 1 (a 2x lead and a 2x lag look the same size) and
measured values carry their interval as an error bar: a chart never shows a difference
without the noise it sits in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: schedulers and CI have no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def releases_chart(releases: Iterable[tuple[str, str]], path: Path, title: str,
                   order: Iterable[str] = ()) -> Path:
    """Cumulative count of releases over time, one line per framework.

    ``releases`` holds (framework name, ISO upload time) pairs; ``order`` fixes the order
    of the lines (and so their colours) across reports.
    """
    by_framework: dict[str, list[datetime]] = {name: [] for name in order}
    for name, uploaded_at in releases:
        by_framework.setdefault(name, []).append(datetime.fromisoformat(uploaded_at))
    by_framework = {name: times for name, times in by_framework.items() if times}
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for name, times in by_framework.items():
            times.sort()
            ax.step(times, range(1, len(times) + 1), where="post",
                    label=f"{name} ({len(times)})")
        ax.set_title(title)
        ax.set_ylabel("cumulative final releases")
        ax.xaxis.set_major_locator(mdates.YearLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
        ax.grid(True, alpha=0.3)
        if by_framework:
            ax.legend(loc="upper left")
        fig.autofmt_xdate()
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def monthly_chart(series: dict[str, list[tuple[str, int]]], path: Path, title: str,
                  ylabel: str) -> Path:
    """One line per framework of a monthly count; ``series`` maps a name to (YYYY-MM, n)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for name, points in series.items():
            if not points:
                continue
            months = [datetime.strptime(month, "%Y-%m") for month, _ in points]
            ax.plot(months, [n for _, n in points], label=name, linewidth=1.2,
                    marker="o" if len(points) < 24 else None, markersize=3)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(mdates.YearLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
        ax.grid(True, alpha=0.3)
        if any(series.values()):
            ax.legend(loc="upper left")
        fig.autofmt_xdate()
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def ratio_axis(ax, values: Iterable[float], axis: str = "y") -> None:
    """A log axis centred on 1: a ratio of 2 and one of 1/2 sit at the same distance from
    the line of equality, which a linear axis (where 0.5 looks half as far as 2) misleads on.

    The limits are symmetric in log space, wide enough for every value and interval end.
    """
    finite = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    span = max((abs(math.log10(v)) for v in finite), default=0.0)
    span = max(span * 1.15, math.log10(1.25))  # never narrower than 0.8x to 1.25x
    set_scale = ax.set_yscale if axis == "y" else ax.set_xscale
    set_lim = ax.set_ylim if axis == "y" else ax.set_xlim
    set_scale("log")
    set_lim(10 ** -span, 10 ** span)
    line = ax.axhline if axis == "y" else ax.axvline
    line(1.0, color="grey", linewidth=0.9)
    target = ax.yaxis if axis == "y" else ax.xaxis
    finest = 0.03 if span < math.log10(1.6) else 0.1  # ticks closer than this (in log10) drop
    ticks = [t for t in _RATIO_TICKS if abs(math.log10(t)) <= span
             and (t == 1.0 or abs(math.log10(t)) >= finest)]
    target.set_major_locator(mticker.FixedLocator(ticks))
    target.set_minor_locator(mticker.NullLocator())
    target.set_major_formatter(mticker.FuncFormatter(_ratio_label))


#: Ratios labelled on a ratio axis, symmetric around 1 (those within its limits are shown).
_RATIO_TICKS = sorted({v for t in (1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
                       for v in (t, 1 / t)})


def _ratio_label(value: float, _pos: int) -> str:
    return f"{value:g}×" if value >= 1 else f"1/{1 / value:.3g}×"


def relative_throughput_chart(ratios: Iterable[tuple], path: Path, title: str,
                              ylabel: str = "throughput / baseline") -> Path:
    """Per group (task), each series' ratio to a baseline of 1, as points on a log axis
    centred on 1, with its interval as an error bar where one is known.

    ``ratios`` holds ``(group, series, ratio)`` or ``(group, series, ratio, low, high)``;
    a missing or None interval draws the point alone (a static count has no noise).
    """
    fig = relative_ratio_figure(ratios, title, ylabel)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def relative_ratio_figure(ratios: Iterable[tuple], title: str, ylabel: str) -> Figure:
    """The figure :func:`relative_throughput_chart` saves (tests inspect its axes)."""
    points = [(*r, None, None)[:5] for r in ratios]
    groups = list(dict.fromkeys(p[0] for p in points))
    series = list(dict.fromkeys(p[1] for p in points))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for i, name in enumerate(series):
        mine = [p for p in points if p[1] == name]
        xs = [groups.index(p[0]) + (i - (len(series) - 1) / 2) * width for p in mine]
        ys = [p[2] for p in mine]
        low = [p[2] - p[3] if p[3] is not None else 0.0 for p in mine]
        high = [p[4] - p[2] if p[4] is not None else 0.0 for p in mine]
        ax.errorbar(xs, ys, yerr=[low, high], fmt="o", capsize=3, markersize=5, label=name)
    ratio_axis(ax, [v for p in points for v in p[2:5] if v is not None])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=15)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(f"{ylabel} (log scale)")
    ax.set_title(title)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def interval_figure(rows: Iterable[tuple], title: str, xlabel: str) -> Figure:
    """One line per comparison: its ratio and 95% interval on a log axis centred on 1, and
    its equivalence band (1/(1+δ) to 1+δ) shaded behind it: an interval inside the band is
    "even", one straddling its edge "inconclusive", one beyond it a difference.

    ``rows`` holds ``(label, ratio, low, high)`` or ``(label, ratio, low, high, delta)``.
    """
    rows = [(*r, None)[:5] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.6), dpi=100)
    ys = list(range(len(rows)))
    for y, (_, ratio, low, high, delta) in zip(ys, rows, strict=True):
        if delta:
            ax.barh(y, (1 + delta) - 1 / (1 + delta), left=1 / (1 + delta), height=0.7,
                    color="grey", alpha=0.18, label="equivalence band" if y == 0 else None)
        err = [[ratio - low if low is not None else 0.0],
               [high - ratio if high is not None else 0.0]]
        ax.errorbar([ratio], [y], xerr=err, fmt="o", capsize=3, color="#4c72b0")
    ratio_axis(ax, [v for r in rows for v in r[1:4] if v is not None]
               + [1 + r[4] for r in rows if r[4]], axis="x")
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"{xlabel} (log scale; 1 = equal)")
    ax.set_title(title)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    if any(r[4] for r in rows):
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def interval_chart(rows: Iterable[tuple], path: Path, title: str, xlabel: str) -> Path:
    """Save :func:`interval_figure` to ``path``."""
    fig = interval_figure(rows, title, xlabel)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def compile_cost_chart(rows: Iterable[tuple[str, float, int]], path: Path, title: str) -> Path:
    """Horizontal bars: seconds spent compiling per run, annotated with the compile count."""
    rows = list(rows)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5), dpi=100)
    try:
        labels = [label for label, _, _ in rows]
        seconds = [s for _, s, _ in rows]
        bars = ax.barh(range(len(rows)), seconds, color="#4c72b0")
        for bar, (_, s, n) in zip(bars, rows, strict=True):
            ax.annotate(f"{s:.1f} s, {n} compilation{'s' if n != 1 else ''}",
                        (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds compiling during the timed steps")
        ax.set_xlim(0, max(seconds + [1.0]) * 1.35)
        ax.set_title(title)
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def loss_curves_chart(curves: dict[str, list[tuple[int, float]]], path: Path,
                      title: str) -> Path:
    """Training loss against step, one line per framework and mode."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for label, points in curves.items():
            ax.plot([s for s, _ in points], [v for _, v in points], label=label, linewidth=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (nats/token)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def _save(fig: Figure, path: Path) -> None:
    """Write the PNG beside its final name, then rename: readers never see half a chart."""
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    tmp.replace(path)
