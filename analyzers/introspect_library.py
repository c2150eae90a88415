"""Run as a script in its own process: list a library's public API by importing it.

Usage: ``python -I introspect_library.py SPEC.json OUT.json``. Imports the configured
library modules (never any code under analysis) and writes the public symbols each category's
rule takes (``Classifier.rule``: the same code for every framework, given its ``types``),
with the evidence (``basis``) and their docs, plus an index (canonical names, literal
defaults, class methods) for the ergonomics analyzer, and whether each probed symbol
exists (``Name(param)``: and takes that parameter). Standard library only, so it runs in a
bare interpreter.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import re
import signal
import sys
import typing
import warnings

EXAMPLE_RE = re.compile(r">>>|^\s*(Examples?|Usage|Example usage)\s*:{1,2}\s*$|\.\. code-block::",
                        re.MULTILINE | re.IGNORECASE)
LITERALS = (bool, int, float, str, type(None))
KEEP_DUNDERS = {"__init__", "__call__", "__len__", "__getitem__", "__iter__"}
PROBE = re.compile(r"([\w.]+)(?:\((\w+)\))?")


def public_names(module) -> tuple[list[str], bool]:
    """``__all__`` when the module declares it, else its names without a leading underscore."""
    names = getattr(module, "__all__", None)
    if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names):
        return list(names), True
    return [n for n in dir(module) if not n.startswith("_")], False


def resolve(dotted: str):
    """Import the longest importable module prefix of ``dotted`` and walk the rest."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot import {dotted}")


def kind_of(obj) -> str | None:
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj) or (callable(obj) and hasattr(obj, "__wrapped__")):
        return "function"
    return None


def defaults_of(obj) -> dict:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in sig.parameters.values()
            if p.default is not inspect.Parameter.empty and type(p.default) in LITERALS
            and not (isinstance(p.default, str) and len(p.default) > 200)}


def methods_of(cls) -> list[str]:
    return sorted(n for n in dir(cls)
                  if (not n.startswith("_") or n in KEEP_DUNDERS)
                  and callable(getattr(cls, n, None)))


def describe(public: str, obj, kind: str) -> dict:
    doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else None
    module = getattr(obj, "__module__", None) or ""
    qual = getattr(obj, "__qualname__", None) or public.rsplit(".", 1)[-1]
    return {
        "symbol": public, "kind": kind,
        "defined_as": f"{module}.{qual}" if module else public,
        "has_docstring": bool(doc and doc.strip()),
        "has_example": bool(doc and EXAMPLE_RE.search(doc)),
        "doc_lines": len(inspect.cleandoc(doc).splitlines()) if doc else 0,
    }


def probe(spec: str) -> dict:
    """Whether ``a.b.Name`` resolves (and, for ``a.b.Name(param)``, takes ``param``)."""
    match = PROBE.fullmatch(spec)
    if not match:
        return {"found": False, "defined_as": None, "error": "not a dotted name"}
    dotted, param = match.groups()
    try:
        obj = resolve(dotted)
    except Exception as exc:  # noqa: BLE001 - an absent symbol is the answer, not a failure
        return {"found": False, "defined_as": None, "error": f"{type(exc).__name__}: {exc}"}
    defined_as = describe(dotted, obj, kind_of(obj) or "object")["defined_as"]
    if param:
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError) as exc:
            return {"found": False, "defined_as": defined_as,
                    "error": f"no signature: {exc}"}
        if param not in params:
            return {"found": False, "defined_as": defined_as,
                    "error": f"{dotted} takes no parameter {param!r}"}
    return {"found": True, "defined_as": defined_as, "error": None}


def subclass_of(obj, bases) -> bool:
    try:
        return any(issubclass(obj, b) for b in bases)
    except TypeError:
        return False


# -- the category rules: written once, applied to every framework ------------------------------
# Each rule answers "why is this symbol in the category" with a short basis (stored in
# library_symbols.basis), or None. The framework-specific part is only ``types`` (its layer,
# optimizer, schedule and loss types) and the namespaces each category looks in.
#
# Known misclassifications (the basis column shows each decision):
# * a factory function that needs arguments, has no return annotation and whose docstring does
#   not say "returns a ... layer" is missed (Trax: LSTM, GRU, SRU, Conv1d, ...);
# * a composing layer whose sub-layer parameters have other names and no annotation counts as
#   a layer (Trax: Cond(cond, true, false)); a wrapper taking one module counts as a combinator
#   (torch.nn.DataParallel, trax.layers.Accelerate, TransformerEncoder(encoder_layer));
# * abstract bases below the layer type count as layers (trax ReversibleLayer, PureLayer);
# * losses are recognised by their type, a target parameter, or their docstring's opening
#   (torch triplet losses only by their type).

#: A parameter that takes sub-layers (by name; by annotation when it names the layer type):
#: ``layers``, ``sublayers``, ``module``, ``encoder_layer``; not counts (``num_layers``,
#: ``n_modules``) nor a parameter whose default is a number, string or flag.
SUBLAYER_PARAM = re.compile(r"^(sub)?(layers?|modules?)$|_(layers?|modules?)$")
COUNT_PARAM = re.compile(r"^(num|n)_")
#: The target of a loss or metric, in a call signature.
TARGET_PARAM = re.compile(r"^(targets?|labels?|y_true)_?$")
LOSS_DOC = re.compile(r"\b(loss|criterion|cross[- ]entrop(y|ies)|accuracy|f-score)\b",
                      re.IGNORECASE)
#: What a docstring says a factory returns ("Returns a layer that ..."), or what it opens on
#: ("Serial layer with side outputs.", "Bidirectional combinator for RNNs."): the noun within
#: the first five words.
RETURNS_DOC = r"\breturns?\b[^.]*?\b({})\b"
LEAD_DOC = r"^\W*(\S+\s+){{0,4}}\W*({})\b"
LAYER_NOUNS = "layers?|models?|networks?|combinators?"
SCHEDULE_NOUNS = "schedules?|learning[- ]rates?"
#: Parameters naming devices, processes or a mesh axis.
DEVICE_PARAMS = {"device_ids", "devices", "n_devices", "target_gpus", "group", "process_group",
                 "world_size", "rank", "axis_name", "num_replicas", "n_hosts", "host_id",
                 "device_mesh", "mesh", "ranks"}
DIST_DOC = re.compile(
    r"\b(multiple|several|many|all)\s+(devices|accelerators|gpus|tpus|processes|hosts|ranks|"
    r"workers|machines|replicas)\b|\bacross\s+(devices|processes|hosts|ranks|workers|machines)\b"
    r"|\bprocess group\b|\bparallel[- ](map|sum)\b|\bdata[- ]parallel\b",
    re.IGNORECASE)
#: A parameter holding the model, and one holding the destination file (export).
MODEL_PARAMS = {"model", "module", "mod", "m", "layer", "ep", "exported_program", "nn_module"}
FILE_PARAMS = {"f", "file", "path", "filename", "file_name", "file_path", "fname", "output_path",
               "export_path", "output_file"}
CALL_SECONDS = 5


def first_paragraph(obj) -> str:
    doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()) if doc else ""


def dotted_name(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


def parameters(obj) -> list:
    """The parameters of ``obj`` (a class: its constructor), with every typing overload's."""
    sigs = []
    try:
        sigs.append(inspect.signature(obj))
    except (TypeError, ValueError):
        pass
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sigs += [inspect.signature(o) for o in typing.get_overloads(target)]
    except Exception:  # noqa: BLE001 - no overloads
        pass
    return [p for sig in sigs for p in sig.parameters.values()
            if p.name not in ("self", "cls") and p.kind is not p.VAR_KEYWORD]


def annotation_text(annotation) -> str:
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def names_type(text: str, cls) -> bool:
    """Whether an annotation's text names ``cls`` (as a word: ``Module``, not ``ModuleList``)."""
    return bool(text and cls is not None
                and re.search(rf"(?<![\w]){re.escape(cls.__name__)}(?![\w])", text))


class Classifier:
    """The rules, bound to one framework's types; facts about a symbol are computed once."""

    def __init__(self, types: dict, roots: set[str]):
        self.types = types  # concept -> the framework's class, or None
        self.roots = roots  # top-level packages of the namespaces (factories called only there)
        self._calls: dict[int, tuple[bool, object]] = {}

    # -- facts ---------------------------------------------------------------------------------
    def call(self, obj) -> tuple[bool, object]:
        """``obj()`` where safe: a function of the framework taking no required argument,
        under a time limit and with its output discarded; (called, result)."""
        key = id(obj)
        if key not in self._calls:
            self._calls[key] = (False, None)
            owner = (getattr(obj, "__module__", None) or "").split(".")[0]
            try:
                inspect.signature(obj).bind()
            except (TypeError, ValueError):
                return self._calls[key]
            if owner not in self.roots:
                return self._calls[key]
            old = signal.signal(signal.SIGALRM, _timeout)
            signal.alarm(CALL_SECONDS)
            try:
                with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                    self._calls[key] = (True, obj())
            except BaseException:  # noqa: BLE001 - any failure: the call tells nothing
                pass
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
        return self._calls[key]

    def is_a(self, obj, kind: str, concept: str, nouns: str) -> str | None:
        """Whether ``obj`` is, or returns, an instance of the framework's ``concept`` type."""
        cls = self.types.get(concept)
        if kind == "class":
            if cls is not None and obj is not cls and subclass_of(obj, [cls]):
                return f"subclass of {dotted_name(cls)}"
            return None
        try:
            ret = inspect.signature(obj).return_annotation
        except (TypeError, ValueError):
            ret = inspect.Signature.empty
        if cls is not None and (subclass_of(ret, [cls]) if inspect.isclass(ret)
                                else names_type(annotation_text(ret), cls)):
            return f"return annotation {annotation_text(ret)}"
        called, result = self.call(obj)
        if called and cls is not None and isinstance(result, cls):
            return f"called without arguments: returned a {dotted_name(type(result))}"
        if called and cls is None and concept == "schedule" and callable(result):
            return "called without arguments: returned a function"
        doc = first_paragraph(obj)
        sentence = doc.split(". ")[0]
        match = (re.search(RETURNS_DOC.format(nouns), sentence, re.IGNORECASE)
                 or (concept == "layer"  # "Serial layer with ...": layers only
                     and re.search(LEAD_DOC.format(nouns), sentence, re.IGNORECASE)))
        if match:
            return f"docstring: {sentence[:90]}"
        return None

    def sublayers(self, obj) -> str | None:
        for p in parameters(obj):
            text = annotation_text(p.annotation)
            if names_type(text, self.types.get("layer")):
                return f"parameter {p.name}: {text}"
            if (SUBLAYER_PARAM.search(p.name) and not COUNT_PARAM.match(p.name)
                    and not isinstance(p.default, bool | int | float | str)):
                return f"parameter {p.name}"
        return None

    def loss(self, obj, kind: str) -> str | None:
        cls = self.types.get("loss")
        if kind == "class" and cls is not None and obj is not cls and subclass_of(obj, [cls]):
            return f"subclass of {dotted_name(cls)}"
        if kind == "class":
            for method in ("forward", "__call__"):
                fn = getattr(obj, method, None)
                layer = self.types.get("layer")
                if fn is None or (layer is not None and fn is getattr(layer, method, None)):
                    continue
                takes = [p.name for p in parameters(fn) if TARGET_PARAM.match(p.name)]
                if takes:
                    return f"{method}() takes {takes[0]}"
        doc = first_paragraph(obj)
        match = LOSS_DOC.search(doc)
        if match:
            return f"docstring: {doc[:90]}"
        return None

    # -- the rules -----------------------------------------------------------------------------
    def layer_like(self, obj, kind):
        return self.is_a(obj, kind, "layer", LAYER_NOUNS)

    def rule(self, category: str, obj, kind: str) -> str | None:
        if kind == "class" and (subclass_of(obj, [BaseException])
                                or any(obj is t for t in self.types.values())):
            return None  # exceptions, and the framework's own concept types
        if category in ("layers", "combinators", "losses_metrics"):
            layer = self.layer_like(obj, kind)
            if layer is None:
                return None
            loss = self.loss(obj, kind)
            if category == "losses_metrics":
                return f"{layer}; loss: {loss}" if loss else None
            if loss:
                return None
            sub = self.sublayers(obj)
            if category == "combinators":
                return f"{layer}; takes sub-layers: {sub}" if sub else None
            return None if sub else layer
        if category == "models":
            return self.layer_like(obj, kind)
        if category == "optimizers":
            return self.is_a(obj, kind, "optimizer", "optimizers?")
        if category == "lr_schedules":
            return self.is_a(obj, kind, "schedule", SCHEDULE_NOUNS)
        if category == "data":
            return f"defined in {getattr(obj, '__module__', '?')}"
        if category == "export":
            params = parameters(obj) if kind == "function" else []
            model = next((p.name for p in params if p.name in MODEL_PARAMS
                          or names_type(annotation_text(p.annotation), self.types.get("layer"))),
                         None)
            dest = next((p.name for p in params if p.name in FILE_PARAMS), None)
            return f"takes model {model} and file {dest}" if model and dest else None
        if category == "distributed":
            param = next((p.name for p in parameters(obj) if p.name in DEVICE_PARAMS), None)
            if param:
                return f"parameter {param}"
            doc = first_paragraph(obj)
            return f"docstring: {doc[:90]}" if DIST_DOC.search(doc) else None
        return None


def _timeout(signum, frame):
    raise TimeoutError("call took too long")


def main(spec_path: str, out_path: str) -> None:
    # Python's frame lookups of synthetic files answered at once (fwsurvey/frames.py): the
    # same results, a fraction of Trax's import time (it calls inspect.stack() at import).
    from fwsurvey import frames

    frames.install()
    warnings.simplefilter("ignore")
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    sys.path[:0] = spec.get("paths", [])
    symbols, index, errors = [], {}, []

    def note_index(public: str, obj, kind: str) -> None:
        entry = index.setdefault(public, {"defined_as": describe(public, obj, kind)["defined_as"]})
        entry["defaults"] = defaults_of(obj)
        if kind == "class":
            entry["methods"] = methods_of(obj)

    types = {}
    for concept, dotted in spec.get("types", {}).items():
        if not dotted:
            continue
        try:
            types[concept] = resolve(dotted)
        except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
            errors.append({"item": dotted, "kind": "not_found",
                           "message": f"types.{concept}: {type(exc).__name__}: {exc}"})
    roots = {m.split(".")[0] for rules in spec["categories"].values()
             for m in rules.get("modules", [])}
    classifier = Classifier(types, roots)

    for category, rules in spec["categories"].items():
        candidates = []
        for modname in rules.get("modules", []):
            try:
                module = importlib.import_module(modname)
            except Exception as exc:  # noqa: BLE001
                errors.append({"item": modname, "kind": "import_error",
                               "message": f"{category}: {type(exc).__name__}: {exc}"})
                continue
            names, declared = public_names(module)
            root = modname.split(".")[0]
            for name in names:
                obj = getattr(module, name, None)
                if obj is None or inspect.ismodule(obj) or name.startswith("_"):
                    continue
                # Without __all__, names a module merely imports (typing, numpy) are not its API.
                owner = getattr(obj, "__module__", None) or ""
                if not declared and owner.split(".")[0] != root:
                    continue
                candidates.append((f"{modname}.{name}", obj))
        for public, obj in candidates:
            kind = kind_of(obj)
            if kind is None:
                continue
            note_index(public, obj, kind)
            try:
                basis = classifier.rule(category, obj, kind)
            except Exception as exc:  # noqa: BLE001 - one odd symbol never stops the rest
                basis = None
                errors.append({"item": public, "kind": "rule_error",
                               "message": f"{category}: {type(exc).__name__}: {exc}"})
            if basis:
                symbols.append({"category": category, **describe(public, obj, kind),
                                "basis": basis})

    probes = {spec_: probe(spec_) for spec_ in spec.get("probes", [])}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"symbols": symbols, "index": index, "errors": errors, "probes": probes}, f,
                  default=repr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
