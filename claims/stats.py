"""Statistics for timings: an interval for the ratio of two frameworks' step times, the
measured run-to-run variation, the equivalence band and the decision they give.

Why a bootstrap: step times are skewed (a recompile, a garbage collection) and their
distribution is unknown, so the interval of the ratio of medians is taken from the samples
themselves rather than from a normal approximation.

* **Samples.** All per-step ``step_ms`` of ``kernel_samples`` with the job's fingerprint, up
  to the judged run (samples of one fingerprint are comparable and accumulate across runs).
* **Interval.** :data:`BOOTSTRAP_RESAMPLES` resamples; each resamples every measurement
  window's steps with replacement (windows kept, so a side with more windows is not
  over-weighted by one window) and takes the median of the pooled resample. The ratio is
  ``median_b / median_a``; the 95% interval is its 2.5th and 97.5th percentiles. The random
  generator is NumPy's PCG64 seeded with :data:`BOOTSTRAP_SEED` and the pair's name, so
  judging the same database twice gives the same interval to the last digit.
* **Variation.** Per side, the relative half-range of its window medians
  ``(max - min) / (2 * median)``: how far the same job moves between windows and runs.
* **Band.** ``delta = max(margin, 2 * variation)`` (the larger side's variation): a ratio
  inside ``[1 / (1 + delta), 1 + delta]`` is no meaningful difference.
* **Decision.** The whole interval beyond the band favours one side; the whole interval
  inside it is ``even``; an interval straddling the band's edge is ``inconclusive`` (shown,
  never counted).
* **Across tasks.** The geometric mean of the per-task ratios, with its interval from the
  same replicates (replicate ``i`` of every task combined), and the band's geometric mean.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The bootstrap's seed (fixed: the same samples always give the same interval).
BOOTSTRAP_SEED = 20261201
#: Resamples per interval.
BOOTSTRAP_RESAMPLES = 2000
#: The interval's coverage.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class RatioInterval:
    """``median_b / median_a`` with its bootstrap interval and the measured variation."""

    ratio: float
    low: float
    high: float
    variation: float  # the larger side's relative half-range of window medians
    n_a: int
    n_b: int
    windows_a: int
    windows_b: int
    replicates: tuple[float, ...]  # log ratios, for combining tasks

    def band(self, margin: float) -> float:
        """The equivalence band ``delta = max(margin, 2 * variation)`` (relative)."""
        return max(margin, 2 * self.variation)


def _seed(name: str) -> int:
    digest = hashlib.sha256(f"{BOOTSTRAP_SEED}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def variation(windows: Sequence[Sequence[float]]) -> float:
    """The relative half-range of the window medians (0 with fewer than two windows)."""
    medians = [float(np.median(w)) for w in windows if len(w)]
    if len(medians) < 2:
        return 0.0
    centre = float(np.median(medians))
    return (max(medians) - min(medians)) / (2 * centre) if centre > 0 else 0.0


def _resampled_medians(rng: np.random.Generator, windows: Sequence[Sequence[float]],
                       resamples: int) -> np.ndarray:
    parts = []
    for w in windows:
        values = np.asarray(w, dtype=float)
        parts.append(values[rng.integers(0, len(values), size=(resamples, len(values)))])
    return np.median(np.concatenate(parts, axis=1), axis=1)


def ratio_interval(name: str, windows_a: Sequence[Sequence[float]],
                   windows_b: Sequence[Sequence[float]],
                   resamples: int = BOOTSTRAP_RESAMPLES) -> RatioInterval:
    """The bootstrap interval of ``median(b) / median(a)`` (see the module's docstring).

    ``name`` (e.g. metric and item) seeds the generator together with BOOTSTRAP_SEED.
    """
    windows_a = [w for w in windows_a if len(w)]
    windows_b = [w for w in windows_b if len(w)]
    if not windows_a or not windows_b:
        raise ValueError("both sides need samples")
    rng = np.random.Generator(np.random.PCG64(_seed(name)))
    med_a = _resampled_medians(rng, windows_a, resamples)
    med_b = _resampled_medians(rng, windows_b, resamples)
    logs = np.log(med_b) - np.log(med_a)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(logs, [tail, 100 - tail])
    pooled_a = np.concatenate([np.asarray(w, dtype=float) for w in windows_a])
    pooled_b = np.concatenate([np.asarray(w, dtype=float) for w in windows_b])
    return RatioInterval(
        ratio=round(float(np.median(pooled_b) / np.median(pooled_a)), 6),
        low=round(math.exp(low), 6), high=round(math.exp(high), 6),
        variation=round(max(variation(windows_a), variation(windows_b)), 6),
        n_a=int(pooled_a.size), n_b=int(pooled_b.size),
        windows_a=len(windows_a), windows_b=len(windows_b),
        replicates=tuple(float(x) for x in logs))


def geometric_mean(intervals: Sequence[RatioInterval]) -> tuple[float, float, float, float]:
    """Across tasks: the geometric mean of the ratios, its 95% interval and variation.

    Replicate ``i`` of every task is combined (tasks are measured independently, so the
    combined replicates are draws of the geometric mean); the variation is the largest of
    the tasks' (a band is never narrower than its noisiest task's).
    """
    logs = np.mean([np.asarray(i.replicates) for i in intervals], axis=0)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(logs, [tail, 100 - tail])
    ratio = math.exp(sum(math.log(i.ratio) for i in intervals) / len(intervals))
    return (round(ratio, 6), round(math.exp(low), 6), round(math.exp(high), 6),
            max(i.variation for i in intervals))


def decide_ratio(low: float, high: float, delta: float, better: str) -> str:
    """``a``, ``b``, ``even`` or ``inconclusive`` for an interval of ``b / a``.

    ``better`` is the metric's direction (``lower`` for times): with lower better, an
    interval wholly above ``1 + delta`` says b is slower, i.e. favours a.
    """
    upper, lower = 1 + delta, 1 / (1 + delta)
    if low > upper:
        return "a" if better == "lower" else "b"
    if high < lower:
        return "b" if better == "lower" else "a"
    if low >= lower and high <= upper:
        return "even"
    return "inconclusive"
