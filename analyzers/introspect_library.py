"""Run as a script in its own process: list a library's public API by importing it.

Usage: ``python -I introspect_library.py SPEC.json OUT.json``. Imports the configured
library modules (never any code under analysis) and writes the public symbols of each
category with their docs, plus an index (canonical names, literal defaults, class methods)
for the ergonomics analyzer, and whether each probed symbol exists (``Name(param)``: and
takes that parameter). Standard library only, so it runs in a bare interpreter.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
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


def main(spec_path: str, out_path: str) -> None:
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

    for category, rules in spec["categories"].items():
        bases, excluded_bases = [], []
        for key, target in (("bases", bases), ("exclude_bases", excluded_bases)):
            for dotted in rules.get(key, []):
                try:
                    target.append(resolve(dotted))
                except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                    errors.append({"item": dotted, "kind": "not_found",
                                   "message": f"{category}.{key}: {type(exc).__name__}: {exc}"})
        kinds = set(rules.get("kinds", ["class", "function"]))
        excluded = set(rules.get("exclude", []))
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
                if obj is None or inspect.ismodule(obj):
                    continue
                # Without __all__, names a module merely imports (typing, numpy) are not its API.
                owner = getattr(obj, "__module__", None) or ""
                if not declared and owner.split(".")[0] != root:
                    continue
                candidates.append((f"{modname}.{name}", obj))
        for dotted in rules.get("symbols", []):
            try:
                candidates.append((dotted, resolve(dotted)))
            except Exception as exc:  # noqa: BLE001
                errors.append({"item": dotted, "kind": "not_found",
                               "message": f"{category}: {type(exc).__name__}: {exc}"})
        explicit = set(rules.get("symbols", []))
        for public, obj in candidates:
            kind = kind_of(obj)
            if kind is None:
                continue
            note_index(public, obj, kind)
            if public not in explicit:
                owner = getattr(obj, "__module__", None) or ""
                if (kind not in kinds or public in excluded
                        or (kind == "class" and bases and not subclass_of(obj, bases))
                        or (kind == "class" and subclass_of(obj, excluded_bases))
                        or (rules.get("defined_in")
                            and not owner.startswith(tuple(rules["defined_in"])))
                        or owner.startswith(tuple(rules.get("exclude_defined_in", [])) or
                                            ("\0",))):
                    continue
            symbols.append({"category": category, **describe(public, obj, kind)})

    probes = {spec_: probe(spec_) for spec_ in spec.get("probes", [])}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"symbols": symbols, "index": index, "errors": errors, "probes": probes}, f,
                  default=repr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
