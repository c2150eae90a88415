"""Each framework's public surface: layers, optimizers, schedules, losses, data, models,
export and distributed APIs, and whether each symbol is documented with an example; and
which distributed training strategies it ships (the symbols configured for each, probed).

Introspection, in a subprocess of its own (``introspect_library.py``), rather than static
analysis of the installed source: what ``torch.nn`` and ``trax.layers`` export is decided at
import time (``from .core import *`` chains, ``__all__`` built in code, gin-wrapped layer
functions) and "is a ``torch.nn.Module`` subclass" needs the whole class hierarchy across
modules and C extensions. Python itself answers both exactly; a static reader would have to
re-implement imports. Only the configured library modules are imported there, never code
under analysis, and the subprocess keeps their side effects (TensorFlow's threads, gin
registries, warnings) out of fwsurvey's process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsurvey.analyzers.ergonomics import LibraryIndex
from fwsurvey.analyzers.settings import (
    CATEGORY_RULES,
    STRATEGIES,
    SURFACE_CATEGORIES,
    StrategySpec,
    SurfaceCategory,
    spec_types,
)
from fwsurvey.sources import Record

SCRIPT = Path(__file__).with_name("introspect_library.py")


@dataclass
class Surface:
    """What the subprocess found for one framework."""

    framework: str
    symbols: list[dict[str, Any]] = field(default_factory=list)
    index: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    #: Probed symbol → {"found", "defined_as", "error"}.
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)


class SurfaceFailed(Exception):
    """The introspection subprocess failed as a whole (crash, timeout, bad output)."""


def inventory(framework: str, spec: dict[str, SurfaceCategory], *, paths: tuple[str, ...] = (),
              probes: tuple[str, ...] = (), timeout: float = 600,
              python: str = sys.executable) -> Surface:
    """Import the configured modules in a fresh interpreter and classify their public API by
    the category rules (``spec``: namespaces per category, and the framework's ``types``);
    ``probes`` are symbols (``Name`` or ``Name(param)``) whose existence is checked."""
    with tempfile.TemporaryDirectory(prefix="fwsurvey-surface-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({
            "paths": list(paths),
            "categories": {cat: c.model_dump() for cat, c in spec.items()},
            "types": spec_types(spec).model_dump(),
            "probes": list(probes),
        }), encoding="utf-8")
        try:
            proc = subprocess.run([python, "-I", str(SCRIPT), str(spec_path), str(out_path)],
                                  capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise SurfaceFailed(f"introspection took over {timeout:.0f} s") from None
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise SurfaceFailed(f"introspection exited {proc.returncode}: {tail[0]}")
        data = json.loads(out_path.read_text(encoding="utf-8"))
    return Surface(framework, data["symbols"], data["index"], data["errors"],
                   data.get("probes", {}))


def surface_records(surface: Surface, spec: dict[str, SurfaceCategory], *, fetched_at: str,
                    package_version: str | None, spec_sha256: str) -> list[Record]:
    """Rows for library_symbols, library_summary and library_index."""
    fw = surface.framework
    records = [Record("library_symbols", {
        "fetched_at": fetched_at, "framework": fw, "category": s["category"],
        "symbol": s["symbol"], "kind": s["kind"], "defined_as": s["defined_as"],
        "has_docstring": s["has_docstring"], "has_example": s["has_example"],
        "doc_lines": s["doc_lines"], "basis": s.get("basis")}) for s in surface.symbols]
    by_category: dict[str, list[dict]] = defaultdict(list)
    for s in surface.symbols:
        by_category[s["category"]].append(s)
    for category in SURFACE_CATEGORIES:
        if category not in spec:
            continue
        rows = by_category.get(category, [])
        records.append(Record("library_summary", {
            "fetched_at": fetched_at, "framework": fw, "category": category,
            "symbols": len(rows),
            "classes": sum(r["kind"] == "class" for r in rows),
            "functions": sum(r["kind"] == "function" for r in rows),
            "documented": sum(r["has_docstring"] for r in rows),
            "with_example": sum(r["has_example"] for r in rows),
            "package_version": package_version, "spec_sha256": spec_sha256,
            "note": spec[category].note or None, "rule": CATEGORY_RULES[category]}))
    records += [Record("library_index", {
        "fetched_at": fetched_at, "framework": fw, "name": name,
        "defined_as": entry.get("defined_as"), "defaults": entry.get("defaults") or None,
        "methods": entry.get("methods")}) for name, entry in sorted(surface.index.items())]
    return records


def strategy_records(surface: Surface, strategies: StrategySpec, *, fetched_at: str,
                     package_version: str | None) -> list[Record]:
    """``distributed_strategies`` rows: per strategy, which configured symbols exist."""
    records = []
    for strategy in STRATEGIES:
        symbols = strategies.symbols.get(strategy)
        if symbols is None and strategy not in strategies.notes:
            continue  # not configured for this framework
        symbols = symbols or ()
        found = [s for s in symbols if surface.probes.get(s, {}).get("found")]
        records.append(Record("distributed_strategies", {
            "fetched_at": fetched_at, "framework": surface.framework, "strategy": strategy,
            "symbols": list(symbols), "found": found,
            "missing": [s for s in symbols if s not in found], "shipped": bool(found),
            "package_version": package_version, "note": strategies.notes.get(strategy)}))
    return records


def build_index(entries: list[dict[str, Any]]) -> LibraryIndex:
    """A LibraryIndex from library_index rows (or the subprocess's index entries).

    A definition exported under several names maps to the shortest (``torch.nn.Linear``
    rather than ``torch.nn.modules.Linear``).
    """
    canonical: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: (len(e["name"]), e["name"])):
        defined = e.get("defined_as")
        if defined and defined != e["name"]:
            canonical.setdefault(defined, e["name"])
    # Every exported name points at the one canonical name of its definition.
    for e in entries:
        defined = e.get("defined_as")
        if defined in canonical and canonical[defined] != e["name"]:
            canonical[e["name"]] = canonical[defined]
    defaults = {canonical.get(e["name"], e["name"]): _json(e.get("defaults")) for e in entries
                if e.get("defaults")}
    methods = {canonical.get(e["name"], e["name"]): tuple(_json(e.get("methods")) or ())
               for e in entries if e.get("methods")}
    return LibraryIndex(canonical, defaults, methods)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def surface_index(surfaces: list[Surface]) -> LibraryIndex:
    """The LibraryIndex of freshly introspected surfaces."""
    return build_index([{"name": name, **entry} for s in surfaces
                        for name, entry in s.index.items()])
