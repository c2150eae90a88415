"""Modular changes (issue #14 §4): each task's variant files, and training them a few steps.

A variant is a task's implementation file with one standard edit (swap the optimizer, swap
an activation, add a residual block, add dropout), kept whole under
``kernels/<task>/variants/<edit>/<framework>_impl.py``. ``kernels/variants.toml`` lists the
edits per task (one list for every framework, an edit that does not apply skipped with its
reason) and the hyperparameters the variants read, once for all.

The analyzers measure each edit's size from the files (never importing them). Here, the
harness's reference-mode job of a task (its adapter's first mode, fp32, one device) trains
each variant of its framework :data:`steps <VariantIndex>` steps in the same process, on the
data the job already loaded: the edits never touch the data phase, so the variants'
``load_data`` would load the same data again. Each variant gives ``kernel_checks`` rows:

* ``variant.<edit>``: ok when the variant built and its steps ran with finite losses; value
  the last loss; detail the losses or the error (a failure is evidence, stored as it is);
* ``variant.<edit>.changed``: what the edit changed, read back from what was built: the
  optimizer's class, the parameter count and residual layers against the base model's, the
  dropout layers with a non-zero rate; ok whether it moved the way the edit says, null where
  nothing cheap shows it (an activation function, a residual connection without parameters
  written in a forward method);

and one ``variants`` row: ok when every variant trained, value the seconds they all took.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from fwsurvey.model import ConfigModel, validate

KERNELS_DIR = pathlib.Path(__file__).parent
INDEX_PATH = KERNELS_DIR / "variants.toml"
EDITS = ("optimizer", "activation", "residual", "dropout")


class SgdTable(ConfigModel):
    """The optimizer variant's ``spec["optimizer"]``: SGD with momentum, all explicit."""

    name: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float


class VariantHyperparameters(ConfigModel):
    steps: int
    dropout: float
    #: The tasks whose variants the quick profile trains (its run-time budget); the full
    #: profile trains every task's. The edit sizes are measured for every task either way.
    quick_tasks: list[str]
    #: Seconds after which no further variant starts (its row says why, ok null): each
    #: variant is its own harness phase with the runner's per-phase limit, and the hook must
    #: never turn the job it rides on into a timeout.
    budget_s: float
    sgd: SgdTable


class TaskVariants(ConfigModel):
    edits: list[str]
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}


class VariantIndex(ConfigModel):
    """``kernels/variants.toml``."""

    hyperparameters: VariantHyperparameters
    edits: dict[str, str]
    tasks: dict[str, TaskVariants]


def load_index(path: pathlib.Path = INDEX_PATH) -> VariantIndex:
    """The variant index, validated (a misspelt key is one line naming it)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return validate(VariantIndex, data, path)


def variant_path(task_dir: pathlib.Path, edit: str, framework: str) -> pathlib.Path:
    return task_dir / "variants" / edit / f"{framework}_impl.py"


def variant_spec(spec: dict[str, Any], edit: str, hyper: VariantHyperparameters,
                 workdir: pathlib.Path) -> dict[str, Any]:
    """The job's spec with what this edit reads: the SGD table (the base's gradient clipping
    kept), the dropout rate; a fresh workdir so no variant resumes another's checkpoint."""
    out = {**spec, "workdir": str(workdir)}
    if edit == "optimizer":
        base = spec.get("optimizer", {})
        out["optimizer"] = {**hyper.sgd.model_dump(),
                            "clip_grad_norm": base.get("clip_grad_norm")}
    if edit == "dropout":
        out["dropout"] = hyper.dropout
    return out


def load_module(path: pathlib.Path, name: str) -> ModuleType:
    """Import one variant file by path (variants are files, not packages of the install)."""
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def find_optimizer(root: Any, depth: int = 4) -> Any:
    """The optimizer object a trainer holds, found by its class's name (``Optimizer`` in the
    MRO: torch.optim's and trax.optimizers' base classes are both named so) through closure
    cells, attributes and sequences; None when none is found."""
    seen: set[int] = set()
    frontier = [root]
    for _ in range(depth):
        nxt = []
        for obj in frontier:
            if id(obj) in seen or obj is None or isinstance(obj, str | bytes | int | float):
                continue
            seen.add(id(obj))
            if any(c.__name__ == "Optimizer" for c in type(obj).__mro__[1:]):
                return obj
            for cell in getattr(obj, "__closure__", None) or ():
                try:
                    nxt.append(cell.cell_contents)
                except ValueError:
                    continue
            if isinstance(obj, list | tuple):
                nxt += list(obj)[:20]
            elif hasattr(obj, "__dict__") and not isinstance(obj, type | ModuleType):
                nxt += list(vars(obj).values())[:50]
        frontier = nxt
    return None


def layers(model: Any) -> list[Any]:
    """Every layer or module of a model (``modules()`` or Trax's ``sublayers``, recursively)."""
    if hasattr(model, "modules") and callable(model.modules):
        return list(model.modules())
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack += list(getattr(layer, "sublayers", None) or ())
    return found


def active_dropouts(model: Any) -> int:
    """Dropout layers with a non-zero rate (``p`` in torch.nn, ``_initial_rate`` in Trax)."""
    count = 0
    for layer in layers(model):
        if "dropout" in type(layer).__name__.lower() or \
                str(getattr(layer, "name", "")).lower() == "dropout":
            rate = getattr(layer, "p", getattr(layer, "_initial_rate", None))
            count += bool(rate)
    return count


def observe(model: Any, trainer: Any, adapter: Any) -> dict[str, Any]:
    """What the edit may have changed, read back from the built model and trainer."""
    optimizer = find_optimizer(trainer)
    try:
        n_params = adapter.count_params(model, trainer)
    except Exception:  # a count that cannot be read is left out, not guessed
        n_params = None
    return {"optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "n_params": n_params, "dropouts": active_dropouts(model),
            "residuals": sum("residual" in (type(layer).__name__ + str(getattr(
                layer, "name", ""))).lower() for layer in layers(model))}


def changed_check(edit: str, base: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    """``variant.<edit>.changed``: did the build change the way the edit says?"""
    row: dict[str, Any] = {"check": f"variant.{edit}.changed", "ok": None, "value": None,
                           "unit": None, "detail": None}
    if edit == "optimizer":
        row["ok"] = seen["optimizer"] is not None and seen["optimizer"] != base["optimizer"]
        row["detail"] = f"optimizer {base['optimizer']} -> {seen['optimizer']}"
    elif edit == "residual" and None not in (seen["n_params"], base["n_params"]):
        # A residual connection around existing layers adds no parameter and may live in a
        # forward method: then nothing built shows it (null), which is not a failure.
        grew = seen["n_params"] > base["n_params"] or seen["residuals"] > base["residuals"]
        row.update(ok=True if grew else None, value=seen["n_params"] - base["n_params"],
                   unit="parameters",
                   detail=f"parameters {base['n_params']} -> {seen['n_params']}; residual "
                          f"layers {base['residuals']} -> {seen['residuals']}")
    elif edit == "dropout":
        row.update(ok=seen["dropouts"] > base["dropouts"], value=seen["dropouts"],
                   unit="count", detail=f"dropout layers with a non-zero rate "
                                        f"{base['dropouts']} -> {seen['dropouts']}")
    else:
        row["detail"] = "not observable from the built objects (an activation function)"
    return row


def train_variants(job: dict[str, Any], spec: dict[str, Any], data: Any, model: Any,
                   trainer: Any, adapter: Any, task_dir: pathlib.Path | None = None,
                   index: VariantIndex | None = None,
                   announce: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train each variant of the job's task and framework a few steps; its checks.

    ``model``/``trainer``: the job's own, read for the base side of ``.changed``.
    ``announce(edit)`` is called before each variant starts (the harness's phase event).
    """
    task = job["task"]
    task_dir = task_dir or KERNELS_DIR / task
    index = index or load_index()
    entry = index.tasks.get(task)
    if entry is None:
        return []
    hyper = index.hyperparameters
    if spec.get("profile") == "quick" and task not in hyper.quick_tasks:
        return [{"check": "variants", "ok": None, "value": None, "unit": None,
                 "detail": "not trained in the quick profile (its run-time budget trains the "
                           f"variants of {', '.join(hyper.quick_tasks)}); the full profile "
                           "trains them"}]
    base = observe(model, trainer, adapter)
    checks: list[dict[str, Any]] = []
    root = pathlib.Path(spec.get("workdir") or tempfile.gettempdir())
    started = time.perf_counter()
    for edit in entry.edits:
        path = variant_path(task_dir, edit, job["framework"])
        if not path.exists():
            continue
        name = f"variant.{edit}"
        if time.perf_counter() - started > hyper.budget_s:
            checks.append({"check": name, "ok": None, "value": None, "unit": "loss",
                           "detail": f"not trained: the variants' time budget "
                                     f"({hyper.budget_s:g} s) was spent"})
            continue
        if announce:
            announce(edit)
        t0 = time.perf_counter()
        try:
            workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"variant-{edit}-", dir=root))
            vspec = variant_spec(spec, edit, hyper, workdir)
            module = load_module(path, f"fwsurvey_variant_{task}_{edit}_{job['framework']}")
            vmodel = adapter.prepare_model(module.build_model(vspec), vspec)
            vtrainer = module.make_trainer(vmodel, data, vspec)
            with adapter.precision_context(vspec):
                samples = adapter.timed_steps(vtrainer, hyper.steps, None)
            losses = [s.loss for s in samples]
            finite = bool(losses) and all(math.isfinite(v) for v in losses)
            checks.append({"check": name, "ok": finite, "value": losses[-1] if losses else None,
                           "unit": "loss", "detail": f"{len(losses)} steps in "
                           f"{time.perf_counter() - t0:.2f} s; losses "
                           + ", ".join(f"{v:.4g}" for v in losses)})
            checks.append(changed_check(edit, base, observe(vmodel, vtrainer, adapter)))
        except Exception as exc:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            checks.append({"check": name, "ok": False, "value": None, "unit": "loss",
                           "detail": text[-1000:]})
    trained = [c for c in checks if c["unit"] == "loss" and c["ok"] is not None]
    if trained:
        checks.append({"check": "variants", "ok": all(c["ok"] for c in trained),
                       "value": time.perf_counter() - started, "unit": "s",
                       "detail": f"{sum(bool(c['ok']) for c in trained)} of {len(trained)} "
                                 f"variants trained {hyper.steps} steps; value: the seconds "
                                 "all took (built, compiled, trained)"})
    return checks
