"""What the visualization experiment observes in each job (harness code of the task, not scored).

The job's implementation logged its training loss through its framework's own visualization
API into ``spec["workdir"]``; this reads the event files back with TensorBoard's own reader
(``EventAccumulator``) and records:

* ``events_written``: whether the loss was written (ok) and how many scalar points of it;
* ``points_complete``: whether a point was read back for every step the file asked to log
  (every ``LOG_EVERY`` steps), with the steps missing. Trax's writer names its event file by
  the second it opens it (one per ``Loop.run`` call), so calls less than a second apart
  overwrite each other's file: recorded, not worked around;
* ``tags``: every scalar tag found, per folder (what was written besides the loss);
* ``loss_matches``: whether each logged point equals the loss the harness recorded for that
  step, in the framework's own documented sense: PyTorch's ``add_scalar`` logs the value it
  is given (the step's loss); Trax's Loop logs, at each eval step, the mean training loss
  since its last log or since the start of the current ``Loop.run`` call, whichever is later
  (``training.Loop.run``: the accumulator is reset after each log and per call).

A framework without a visualization API of its own (JAX) gets ``events_written`` ok=0 with
what its docs offer instead; nothing is written for it, so nothing is faked.
"""

from __future__ import annotations

import math
import pathlib
from collections import Counter
from typing import Any

#: Where each framework's file logs its training loss: (folder under the workdir, tag).
LOSS_TAGS: dict[str, tuple[str, str]] = {
    "pytorch": (".", "loss/train"),
    "trax": ("train", "metrics/CategoryCrossEntropy"),
}
#: Frameworks with no visualization API of their own, and what their docs point to instead.
NO_API: dict[str, str] = {
    "jax": ("no built-in visualization API: JAX writes no event files; the JAX AI stack's "
            "tutorial (\"Visualize JAX model metrics with TensorBoard\") logs through "
            "TensorFlow's tf.summary"),
}
#: Every side's file logs the loss every this many steps (the spec's comment says so).
LOG_EVERY = 10
#: A logged float32 loss (Trax's a float32 mean) against the harness's float of it.
REL_TOLERANCE = 1e-4


def read_scalars(workdir: pathlib.Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every scalar series in the event files under ``workdir``: folder (relative, ``.`` for
    the workdir itself) → tag → [(step, value)], read by TensorBoard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, dict[str, list[tuple[int, float]]]] = {}
    folders = sorted({p.parent for p in workdir.rglob("events.out.tfevents.*")})
    for folder in folders:
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        accumulator.Reload()
        series = {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
                  for tag in accumulator.Tags()["scalars"]}
        found[folder.relative_to(workdir).as_posix()] = series
    return found


def run_starts(spec: dict[str, Any], result: dict[str, Any]) -> list[int]:
    """The steps after which the harness started a new step call: the first step, the warmup,
    then each measurement window (``result["samples"]`` rows are ``[window, i, ...]``)."""
    sizes = [1, spec["warmup_steps"]]
    sizes += list(Counter(row[0] for row in result.get("samples") or []).values())
    starts, total = [], 0
    for size in sizes:
        starts.append(total)
        total += size
    return starts


def expected_losses(framework: str, logged: list[tuple[int, float]], losses: list[float],
                    starts: list[int]) -> list[float | None]:
    """The value each logged point should hold, from the harness's per-step losses (step s
    is ``losses[s - 1]``); None where the harness has no loss for it."""
    expected: list[float | None] = []
    previous = 0
    for step, _ in logged:
        if step > len(losses) or step < 1:
            expected.append(None)
        elif framework == "trax":  # the mean since the last log or the call's start
            begin = max(previous, max(s for s in starts if s < step))
            window = losses[begin:step]
            expected.append(sum(window) / len(window))
        else:
            expected.append(losses[step - 1])
        previous = step
    return expected


def checks(framework: str, mode: str, spec: dict[str, Any], workdir: pathlib.Path,
           result: dict[str, Any]) -> list[dict[str, Any]]:
    """The experiment's rows for one job (see the module's docstring)."""
    if framework in NO_API:
        return [{"check": "events_written", "ok": False, "value": 0.0, "unit": "points",
                 "detail": NO_API[framework]}]
    scalars = read_scalars(workdir)
    rows: list[dict[str, Any]] = [{
        "check": "tags", "ok": None, "value": float(sum(len(t) for t in scalars.values())),
        "unit": "tags",
        "detail": "; ".join(f"{folder}: {', '.join(sorted(tags))}"
                            for folder, tags in sorted(scalars.items())) or "no event files"}]
    folder, tag = LOSS_TAGS[framework]
    logged = scalars.get(folder, {}).get(tag, [])
    rows.append({"check": "events_written", "ok": bool(logged), "value": float(len(logged)),
                 "unit": "points",
                 "detail": f"{tag} in {folder}: steps {[s for s, _ in logged]}" if logged
                 else f"no {tag!r} scalars in {folder} under the workdir"})
    losses = list(result.get("losses") or [])
    asked = list(range(LOG_EVERY, len(losses) + 1, LOG_EVERY))
    missing = sorted(set(asked) - {s for s, _ in logged})
    rows.append({"check": "points_complete", "ok": bool(asked) and not missing,
                 "value": (len(asked) - len(missing)) / len(asked) if asked else None,
                 "unit": "share of the asked points read back",
                 "detail": f"{len(asked) - len(missing)} of {len(asked)} asked points"
                           + (f"; missing steps {missing}" if missing else "")})
    expected = expected_losses(framework, logged, losses, run_starts(spec, result))
    compared = [(step, value, want) for (step, value), want in zip(logged, expected, strict=True)
                if want is not None]
    worst = max((abs(v - w) / max(abs(w), 1e-12) for _, v, w in compared), default=None)
    matches = bool(compared) and all(math.isclose(v, w, rel_tol=REL_TOLERANCE, abs_tol=1e-6)
                                     for _, v, w in compared)
    rows.append({"check": "loss_matches", "ok": matches if compared else None,
                 "value": float(len(compared)), "unit": "points compared",
                 "detail": (f"largest relative difference {worst:.2e} over {len(compared)} "
                            f"points (tolerance {REL_TOLERANCE:g})") if compared
                 else "nothing to compare: no logged point has a recorded loss"})
    return rows
