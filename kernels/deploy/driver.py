"""The deploy phase of a reference training (issue #14 §2): harness code, never scored.

The task's ``<framework>_deploy.py`` (next to its ``<framework>_impl.py``) holds what a user
writes to deploy the trained model: one ``export_<path>(model, example, folder)`` per path
(``server``, ``mobile``, ``web``), returning the artifact it wrote. This module calls each with
the model the job just trained and the task's test inputs, runs the artifact in the path's
runtime and records, per path, ``kernel_checks`` rows named ``deploy.<path>.<what>``:

* ``works``: exported, ran, and its predictions equal the framework's own within
  :data:`DIFF_TOLERANCE` (ok; value 1/0). The error is the detail when not: a toolchain that
  does not install or import, a conversion or a runtime that fails is an outcome. A runtime
  this machine lacks (the web path without Chromium: ``unavailable: ...``) is ok NULL: not
  measured, which no framework is charged with.
* ``max_abs_diff``: max |artifact's output - the framework's| over the test set (logits);
* ``size_bytes``: every file the export wrote (a SavedModel folder, ONNX's external data);
* ``latency_ms``: median of ``[deploy] repeats`` timed inferences of the whole test set in
  one call, after an untimed first one (CPU of this machine: no phone, one browser page);
* ``export_lines``: code lines of the export function, with the module's own functions it
  calls and the imports it uses (read with ``ast``; a path served by another path's function,
  ``export_web = export_server``, counts that function);
* ``export_s``: seconds the export took (0 when a path reuses another path's artifact);
* ``select_ops`` (LiteRT only): TensorFlow ops the file needs the Flex delegate for;

and one ``deploy.phase_s``: the seconds the whole phase took in the job (the run-time budget).

The check names carry no runtime, so they stay the same whether or not an export got as far
as a runtime; the runtime is named in each ``works`` detail. The runtime follows from the
path and the artifact's kind (:data:`RUNTIMES`): the deploy files choose formats, as users do.
Toolchains are imported here only when a path needs them, so a job without ``[deploy]`` pays
nothing. Frameworks are named only in :data:`REFERENCES` (the framework's own predictions).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PATHS = ("server", "mobile", "web")
#: Largest |difference| of an artifact's logits from the framework's that still "works":
#: float32 logits of magnitude ~10 recomputed by another runtime differ by ~1e-6.
DIFF_TOLERANCE = 1e-3
#: Distributions whose versions a ``works`` detail names, when installed.
TOOLCHAIN_DISTS = ("torch", "onnx", "onnxscript", "onnxruntime", "executorch", "tensorflow",
                   "keras", "trax", "tf2onnx", "ai-edge-litert")
UNAVAILABLE = "unavailable: "


@dataclass
class Ran:
    """One artifact run in its runtime: the first run's outputs, the timed repeats."""

    outputs: np.ndarray
    latency_ms: list[float]
    versions: dict[str, str] = field(default_factory=dict)


def _timed(call: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, list[float]]:
    """The outputs of a first (untimed) call, then ``repeats`` timed calls in ms."""
    outputs = call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return outputs, times


def run_onnxruntime(artifact: Path, x: np.ndarray, repeats: int) -> Ran:
    """ONNX Runtime's CPU provider, as a server runs it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs, times = _timed(lambda: session.run(None, {name: x})[0], repeats)
    return Ran(np.asarray(outputs), times)


def run_executorch(artifact: Path, x: np.ndarray, repeats: int) -> Ran:
    """ExecuTorch's runtime (its Python bindings: the C++ runtime a phone app links)."""
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(artifact)).load_method("forward")
    inputs = [torch.from_numpy(x)]
    outputs, times = _timed(lambda: method.execute(inputs)[0].numpy(), repeats)
    return Ran(outputs, times)


def run_litert(artifact: Path, x: np.ndarray, repeats: int) -> Ran:
    """LiteRT's interpreter (``ai_edge_litert``; TensorFlow's ``tf.lite`` one if absent)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 - the class, under its own name
    interpreter = Interpreter(model_path=str(artifact))
    given = interpreter.get_input_details()[0]
    if tuple(given["shape"]) != x.shape:
        interpreter.resize_tensor_input(given["index"], list(x.shape))
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]["index"]

    def call() -> np.ndarray:
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    outputs, times = _timed(call, repeats)
    return Ran(outputs, times)


def run_saved_model(artifact: Path, x: np.ndarray, repeats: int) -> Ran:
    """A TF SavedModel's serving signature, as TF Serving calls it."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(artifact)).signatures["serving_default"]
    [name] = list(serve.structured_input_signature[1])
    tensor = tf.constant(x)

    def call() -> np.ndarray:
        [value] = list(serve(**{name: tensor}).values())
        return value.numpy()

    outputs, times = _timed(call, repeats)
    return Ran(outputs, times)


def run_web(artifact: Path, x: np.ndarray, repeats: int) -> Ran:
    """ONNX Runtime Web in headless Chromium (:func:`fwsurvey.kernels.deploy.web.run_onnx`)."""
    import onnx

    from fwsurvey.kernels.deploy import web

    graph = onnx.load(str(artifact), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    [name] = [i.name for i in graph.input if i.name not in initializers]
    ran = web.run_onnx(artifact, {name: x}, repeats)
    if ran.error is not None or not ran.outputs:
        raise RuntimeError(ran.error or "the page returned no outputs")
    return Ran(np.asarray(ran.outputs[0]), list(ran.latency_ms), dict(ran.versions))


#: (path, artifact kind) → (runtime, its runner). The kind: a file's suffix, or
#: ``saved_model`` for a folder holding ``saved_model.pb``.
RUNTIMES: dict[tuple[str, str], tuple[str, Callable[[Path, np.ndarray, int], Ran]]] = {
    ("server", ".onnx"): ("onnxruntime", run_onnxruntime),
    ("server", "saved_model"): ("tf-savedmodel", run_saved_model),
    ("mobile", ".pte"): ("executorch", run_executorch),
    ("mobile", ".tflite"): ("litert", run_litert),
    ("web", ".onnx"): ("ort-web", run_web),
}


def artifact_kind(artifact: Path) -> str:
    return "saved_model" if (artifact / "saved_model.pb").is_file() else artifact.suffix


def _pytorch_reference(model: Any, trainer: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = torch.cat([batch[0] for batch in data["test"]])
    model.eval()
    with torch.no_grad():
        return x.numpy(), model(x).numpy()


def _trax_reference(model: Any, trainer: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(data["test"][0])
    return x, np.asarray(trainer.eval_model(x))


#: Per framework: (test inputs as NumPy, the framework's own predictions on them), from what
#: the task's ``load_data`` returned, the way the task's ``evaluate`` predicts.
REFERENCES: dict[str, Callable[[Any, Any, Any], tuple[np.ndarray, np.ndarray]]] = {
    "pytorch": _pytorch_reference,
    "trax": _trax_reference,
}


def export_lines(source: str, function: str) -> tuple[int, list[str]]:
    """Code lines of top-level ``function`` in ``source``, with the module's functions it
    calls (transitively) and the top-level imports the counted code uses: every line of
    their source but blank, comment-only and docstring lines. Returns (lines, names)."""
    tree = ast.parse(source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    imports: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                imports[(alias.asname or alias.name).split(".")[0]] = node
    todo, seen, used = [function], [], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.append(name)
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Name):
                todo.append(node.id)
                used.add(node.id)
    lines = source.splitlines()
    counted: set[int] = set()
    for name in seen:
        node = functions[name]
        counted.update(range(node.lineno, node.end_lineno + 1))
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            counted.difference_update(range(body[0].lineno, body[0].end_lineno + 1))
    for name in used & set(imports):
        node = imports[name]
        counted.update(range(node.lineno, node.end_lineno + 1))
    code = [n for n in counted
            if lines[n - 1].strip() and not lines[n - 1].strip().startswith("#")]
    return len(code), seen


def folder_size(artifact: Path) -> int:
    """Bytes of every file the export wrote: its folder (one per path) holds nothing else."""
    return sum(p.stat().st_size for p in artifact.parent.rglob("*") if p.is_file())


def select_ops(artifact: Path) -> list[str]:
    """The TensorFlow ops a LiteRT file runs through the Flex delegate (custom ops named
    ``Flex<Op>`` in the flatbuffer)."""
    return sorted({m.decode() for m in re.findall(rb"Flex[A-Z][A-Za-z0-9]*",
                                                   artifact.read_bytes())})


def versions() -> dict[str, str]:
    found = {}
    for dist in TOOLCHAIN_DISTS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _error(stage: str, exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"{stage}: {text[-600:]}"


def _row(check: str, ok: bool | None, value: float | None, unit: str | None,
         detail: str | None) -> dict[str, Any]:
    return {"check": check, "ok": ok, "value": value, "unit": unit, "detail": detail}


def deploy(framework: str, impl_module: str, spec: dict[str, Any], model: Any, trainer: Any,
           data: Any, workdir: Path | None = None) -> list[dict[str, Any]]:
    """Every path of the spec's ``[deploy]`` table for this trained model: the checks.

    ``impl_module`` is the job's implementation (``fwsurvey.kernels.<task>.<fw>_impl``); the
    export code is its sibling ``<fw>_deploy``. Never raises for a path's failure: each
    path's rows say what happened. Artifacts go to a temporary folder (or ``workdir``).
    """
    table = spec["deploy"]
    repeats = int(table.get("repeats", 3))
    reference = REFERENCES.get(framework)
    name = impl_module.rpartition(".")[0] + f".{framework}_deploy"
    if reference is None:
        return [_row("deploy", None, None, None,
                     f"not applicable: no reference predictions for {framework}")]
    try:
        module = importlib.import_module(name)
        source = Path(module.__file__).read_text(encoding="utf-8")
    except Exception as exc:
        return [_row(f"deploy.{path}.works", False, 0.0, "1 = works",
                     _error(f"import {name}", exc)) for path in table["paths"]]
    t0 = time.perf_counter()
    x, expected = reference(model, trainer, data)
    x = np.ascontiguousarray(x, dtype=np.float32)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        done: dict[Callable[..., Any], tuple[str, Path]] = {}
        rows: list[dict[str, Any]] = []
        for path in table["paths"]:
            rows += _deploy_path(path, module, source, model, x, expected, repeats,
                                 Path(tmp), done)
    # What the phase adds to the job (toolchain imports included): the run-time budget's.
    rows.append(_row("deploy.phase_s", None, time.perf_counter() - t0, "s",
                     f"paths {', '.join(table['paths'])}, {repeats} timed repeats each"))
    return rows


def _deploy_path(path: str, module: Any, source: str, model: Any, x: np.ndarray,
                 expected: np.ndarray, repeats: int, tmp: Path,
                 done: dict[Callable[..., Any], tuple[str, Path]]) -> list[dict[str, Any]]:
    """One path's rows: export (or reuse the artifact of the same function), run, compare."""
    check = f"deploy.{path}"
    export = getattr(module, f"export_{path}", None)
    if export is None:
        return [_row(f"{check}.works", False, 0.0, "1 = works",
                     f"export: {module.__name__} has no export_{path}")]
    lines, counted = export_lines(source, export.__name__)
    rows = [_row(f"{check}.export_lines", None, float(lines), "lines", " + ".join(counted))]
    notes = [f"versions: {', '.join(f'{k} {v}' for k, v in versions().items())}"]
    try:
        if export in done:
            first, artifact = done[export]
            export_s = 0.0
            notes.append(f"the {first} path's artifact ({export.__name__})")
        else:
            folder = tmp / path
            folder.mkdir()
            t0 = time.perf_counter()
            artifact = Path(export(model, x, folder))
            export_s = time.perf_counter() - t0
            done[export] = (path, artifact)
        rows.append(_row(f"{check}.export_s", None, export_s, "s", None))
        rows.append(_row(f"{check}.size_bytes", None, float(folder_size(artifact)), "bytes",
                         artifact.name))
    except Exception as exc:
        return [*rows, _row(f"{check}.works", False, 0.0, "1 = works",
                            "; ".join([_error("export", exc), *notes]))]
    kind = artifact_kind(artifact)
    runtime, runner = RUNTIMES.get((path, kind), (None, None))
    if kind == ".tflite":
        ops = select_ops(artifact)
        rows.append(_row(f"{check}.select_ops", not ops, float(len(ops)), "ops",
                         ", ".join(ops) or "builtin operators only"))
    if runner is None:
        return [*rows, _row(f"{check}.works", False, 0.0, "1 = works",
                            f"run: no {path} runtime takes a {kind or 'folder'} artifact")]
    try:
        ran = runner(artifact, x, repeats)
        if ran.outputs.shape != expected.shape:
            raise ValueError(f"outputs of shape {ran.outputs.shape}, the framework's "
                             f"{expected.shape}")
    except Exception as exc:
        error = _error(f"run ({runtime})", exc)
        ok = None if f"RuntimeError: {UNAVAILABLE}" in error else False
        return [*rows, _row(f"{check}.works", ok, None if ok is None else 0.0, "1 = works",
                            "; ".join([error, *notes]))]
    diff = float(np.max(np.abs(ran.outputs.astype(np.float64) - expected)))
    ok = diff <= DIFF_TOLERANCE
    notes += [f"{k} {v}" for k, v in ran.versions.items() if k not in versions()]
    rows += [
        _row(f"{check}.works", ok, float(ok), "1 = works",
             "; ".join([f"runtime {runtime}",
                        f"max |diff| {diff:.3g} {'<=' if ok else '>'} {DIFF_TOLERANCE}",
                        *notes])),
        _row(f"{check}.max_abs_diff", ok, diff, "abs", f"logits of {len(x)} test inputs"),
        _row(f"{check}.latency_ms", None,
             statistics.median(ran.latency_ms) if ran.latency_ms else None, "ms",
             f"{runtime}, {len(x)} inputs in one call, median of "
             f"{[round(t, 3) for t in ran.latency_ms]}"),
    ]
    return rows
