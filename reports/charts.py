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
        tmp = path.with_suffix(".tmp.png")
        fig.savefig(tmp, format="png", metadata={"Software": None})
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
