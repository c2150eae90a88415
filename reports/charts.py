"""PNG charts for the report (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: schedulers and CI have no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


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


def relative_throughput_chart(ratios: Iterable[tuple[str, str, float]], path: Path,
                              title: str, ylabel: str = "throughput / baseline") -> Path:
    """Grouped bars: per group (task), each series' value relative to a baseline of 1."""
    ratios = list(ratios)
    tasks = list(dict.fromkeys(t for t, _, _ in ratios))
    modes = list(dict.fromkeys(m for _, m, _ in ratios))
    value = {(t, m): v for t, m, v in ratios}
    width = 0.8 / max(len(modes), 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for i, mode in enumerate(modes):
            xs = [j + i * width for j, t in enumerate(tasks) if (t, mode) in value]
            ys = [value[(t, mode)] for t in tasks if (t, mode) in value]
            ax.bar(xs, ys, width=width, label=mode)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(tasks))])
        ax.set_xticklabels(tasks, rotation=15)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
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


def _save(fig, path: Path) -> None:
    """Write the PNG beside its final name, then rename: readers never see half a chart."""
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    tmp.replace(path)
