"""API ergonomics of one Python file: framework concepts, boilerplate, size and control flow.

A pure function from source text to rows (per phase and for the whole file). Nothing here
imports or runs the code it measures.

* Framework symbols are resolved with libcst's ``QualifiedNameProvider`` (``import torch.nn
  as nn``, ``from trax import layers as tl`` ...) and mapped to one canonical public name with
  the library index (``trax.layers.core.Dense`` -> ``trax.layers.Dense``).
* Size and control flow come from radon (raw, cc, Halstead, MI) and from a SonarSource
  cognitive-complexity visitor, on Python's ast of each phase.
* radon's Halstead counts operators and operands but no calls, so declarative code
  (``tl.Serial(tl.Dense(10), ...)``) scores a volume near zero and an MI near 100:
  ``halstead_unreliable`` flags a phase whose calls outnumber the operators radon saw.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import (
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
)
from radon.metrics import h_visit_ast, mi_compute
from radon.raw import analyze as raw_analyze
from radon.visitors import ComplexityVisitor

from fwsurvey.analyzers.cognitive import cognitive_complexity, max_nesting
from fwsurvey.analyzers.phases import PREAMBLE, WHOLE, split_phases

#: Bump when any metric's definition changes, or what can be measured and how a failure is
#: classed (2: deeper nesting measured, too_complex and parser_limit): cached results of
#: older versions are ignored.
ANALYZER_VERSION = "2"

#: Metric columns of ergonomics_metrics, in table order.
METRIC_COLUMNS = (
    "concepts", "call_sites", "positional_args", "keyword_args", "args_per_call",
    "default_keywords", "framework_subclasses", "overridden_methods", "ceremony_calls",
    "sloc", "lloc", "comments", "cyclomatic", "cyclomatic_max", "cognitive", "max_nesting",
    "halstead_volume", "maintainability_index", "halstead_unreliable", "calls",
)


@dataclass(frozen=True)
class LibraryIndex:
    """What the analyzers know of the libraries: canonical names, defaults, class methods.

    Built from the library surface (``library_symbols``); empty, names stay as written and
    keywords equal to their default are not counted (``default_keywords`` is then None).
    """

    canonical: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        data = [sorted(self.canonical.items()), sorted((k, sorted(v.items(), key=str))
                                                       for k, v in self.defaults.items()),
                sorted(self.methods.items())]
        return hashlib.sha256(json.dumps(data, default=repr).encode()).hexdigest()[:16]

    def canonical_name(self, name: str) -> str:
        """The public name of ``name``, or of its longest known prefix (``X.Linear.forward``)."""
        if name in self.canonical:
            return self.canonical[name]
        parts = name.split(".")
        for i in range(len(parts) - 1, 1, -1):
            prefix = ".".join(parts[:i])
            if prefix in self.canonical:
                return ".".join([self.canonical[prefix], *parts[i:]])
        return name


class AnalysisError(Exception):
    """The file cannot be measured (a syntax error, ...): ``kind`` goes to item_errors."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def imported_roots(tree: ast.AST) -> Counter:
    """Top-level package names imported anywhere in the module, with how often."""
    roots: Counter = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots[node.module.split(".")[0]] += 1
    return roots


def detect_framework(tree: ast.AST, imports: dict[str, tuple[str, ...]]) -> str | None:
    """The framework whose import names the file imports most often (config order on ties)."""
    roots = imported_roots(tree)
    counts = {fw: sum(roots[r] for r in names) for fw, names in imports.items()}
    best = max(counts.values(), default=0)
    return next((fw for fw, n in counts.items() if n == best), None) if best else None


class _ApiVisitor(cst.CSTVisitor):
    """Counts framework concepts, calls, boilerplate and ceremony, per phase."""

    METADATA_DEPENDENCIES = (QualifiedNameProvider, PositionProvider)

    def __init__(self, module: cst.Module, roots: frozenset[str], ceremony: frozenset[str],
                 index: LibraryIndex, phase_at) -> None:
        super().__init__()
        self.module, self.roots, self.ceremony, self.index = module, roots, ceremony, index
        self.phase_at = phase_at
        self.phase = PREAMBLE
        self.top: set[int] = set()
        self.concepts: dict[str, set[str]] = {}
        self.counts: dict[str, Counter] = {}
        self.ceremony_by: dict[str, Counter] = {}

    def _count(self, key: str, n: int = 1) -> None:
        self.counts.setdefault(self.phase, Counter())[key] += n

    def _framework_names(self, node: cst.CSTNode) -> list[str]:
        names = self.get_metadata(QualifiedNameProvider, node, set())
        return sorted({self.index.canonical_name(q.name) for q in names
                       if q.source is QualifiedNameSource.IMPORT
                       and q.name.split(".")[0] in self.roots})

    def on_visit(self, node: cst.CSTNode) -> bool:
        if id(node) in self.top:
            self.phase = self.phase_at(self.get_metadata(PositionProvider, node).start.line)
        return super().on_visit(node)

    def visit_Module(self, node: cst.Module) -> None:
        self.top = {id(stmt) for stmt in node.body}

    def visit_Import(self, node: cst.Import) -> bool:
        return False  # an import is not a use; its names are counted where they are used

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def _symbol(self, node: cst.CSTNode) -> bool:
        names = self._framework_names(node)
        if names:
            self.concepts.setdefault(self.phase, set()).update(names)
            return False  # the whole chain is one symbol: torch.nn.Linear, not torch.nn too
        return True

    visit_Attribute = visit_Name = _symbol

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        bases = [n for arg in node.bases for n in self._framework_names(arg.value)]
        if not bases:
            return
        self._count("framework_subclasses")
        known = [set(self.index.methods[b]) for b in bases if b in self.index.methods]
        for stmt in node.body.body:
            if not isinstance(stmt, cst.FunctionDef):
                continue
            name = stmt.name.value
            if known:
                overridden = any(name in methods for methods in known)
            else:  # a base the index does not know: its constructor and public methods
                overridden = name in ("__init__", "__call__") or not name.startswith("_")
            if overridden:
                self._count("overridden_methods")

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        names = self._framework_names(func)
        if names:
            self._count("call_sites")
            defaults = next((self.index.defaults[n] for n in names if n in self.index.defaults),
                            None)
            for arg in node.args:
                if arg.keyword is None and arg.star != "**":
                    self._count("positional_args")
                    continue
                self._count("keyword_args")
                if defaults and arg.keyword is not None and arg.keyword.value in defaults:
                    if _is_literal(self.module, arg.value, defaults[arg.keyword.value]):
                        self._count("default_keywords")
        last = (func.attr.value if isinstance(func, cst.Attribute)
                else func.value if isinstance(func, cst.Name) else None)
        if last in self.ceremony:
            self._count("ceremony_calls")
            self.ceremony_by.setdefault(self.phase, Counter())[last] += 1


def _is_literal(module: cst.Module, value: cst.BaseExpression, default: Any) -> bool:
    try:
        passed = ast.literal_eval(module.code_for_node(value).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return type(passed) is type(default) and passed == default


def _code_metrics(text: str) -> dict[str, Any]:
    """radon raw/cc/Halstead/MI and the cognitive visitor on one piece of source."""
    tree = ast.parse(text)
    raw = raw_analyze(text)
    cc = ComplexityVisitor.from_ast(tree)
    halstead = h_visit_ast(tree).total
    comments = (raw.comments + raw.multi) / raw.sloc * 100 if raw.sloc else 0
    calls = sum(isinstance(n, ast.Call) for n in ast.walk(tree))
    return {
        "sloc": raw.sloc, "lloc": raw.lloc, "comments": raw.comments,
        "cyclomatic": cc.total_complexity,
        "cyclomatic_max": max((b.complexity for b in cc.blocks), default=0),
        "cognitive": cognitive_complexity(tree), "max_nesting": max_nesting(tree),
        "halstead_volume": round(halstead.volume, 3),
        # radon's own formula and inputs (mi_parameters with multi-line strings as comments).
        "maintainability_index": round(mi_compute(halstead.volume, cc.total_complexity,
                                                  raw.lloc, comments), 3),
        "halstead_unreliable": calls > halstead.N1,
        "calls": calls,
    }


def analyze_source(text: str, *, framework: str | None, imports: dict[str, tuple[str, ...]],
                   ceremony: dict[str, tuple[str, ...]], index: LibraryIndex) -> dict[str, Any]:
    """Measure one file: ``{"framework", "phase_split", "phases": [row per phase]}``.

    ``framework`` None: detected from the imports. The first row is the whole file
    (phase ``all``); marked files add one row per phase. Raises AnalysisError on a syntax
    error (``syntax_error``), on valid code libcst cannot read (``parser_limit``) and on
    nesting too deep to parse (``too_complex``); MemoryError and RecursionError of the
    later steps propagate (measure.measure words them).
    """
    # Python's own parser decides what is valid code (it only parses: nothing is run).
    # A MemoryError goes to the caller, which tells exhaustion from the parser giving up.
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        raise AnalysisError("syntax_error", f"{where}{exc.msg}") from None
    except ValueError as exc:  # e.g. null bytes, on some Python versions
        raise AnalysisError("syntax_error", str(exc)) from None
    except RecursionError:
        raise AnalysisError("too_complex", "nested too deeply for Python's parser"
                                           " (its recursion limit)") from None
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        # Valid (Python parsed it) but beyond what libcst's parser reads.
        raise AnalysisError("parser_limit", "valid Python that libcst's parser cannot read"
                            f" (a parser limit): line {exc.raw_line}: {exc.message}") from None
    except RecursionError:
        raise AnalysisError("too_complex", "nested too deeply for libcst's parser"
                                           " (its recursion limit)") from None
    if framework is None:
        framework = detect_framework(tree, imports)

    phases = split_phases(text)
    split = "markers" if phases else "none"
    pieces: dict[str, str] = {}
    if phases:
        lines = text.splitlines()
        keep: dict[str, set[int]] = {}
        for p in phases:
            keep.setdefault(p.name, set()).update(range(p.start, p.end + 1))
        pieces = {name: "\n".join(line if i + 1 in rows else "" for i, line in enumerate(lines))
                  + "\n" for name, rows in keep.items()}
        try:
            for piece in pieces.values():
                ast.parse(piece)
        except SyntaxError as exc:
            # A marker inside a block: the phases do not stand alone; measure the whole file.
            split, phases, pieces = f"unsplittable: line {exc.lineno}: {exc.msg}", [], {}

    def phase_at(line: int) -> str:
        for p in phases:
            if p.start <= line <= p.end:
                return p.name
        return WHOLE

    roots = frozenset(r for names in imports.values() for r in names)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    visitor = _ApiVisitor(module, roots, frozenset(ceremony.get(framework or "", ())), index,
                          phase_at)
    wrapper.visit(visitor)

    has_defaults = bool(index.defaults)
    rows = []
    for name, piece in [(WHOLE, text), *pieces.items()]:
        counts = (sum(visitor.counts.values(), Counter()) if name == WHOLE
                  else visitor.counts.get(name, Counter()))
        concepts = (set().union(*visitor.concepts.values()) if name == WHOLE
                    else visitor.concepts.get(name, set()))
        ceremony_calls = (sum(visitor.ceremony_by.values(), Counter()) if name == WHOLE
                          else visitor.ceremony_by.get(name, Counter()))
        span = [p for p in phases if p.name == name]
        call_sites = counts["call_sites"]
        args = counts["positional_args"] + counts["keyword_args"]
        rows.append({
            "phase": name,
            "start_line": min((p.start for p in span), default=1),
            "end_line": max((p.end for p in span), default=len(text.splitlines())),
            "concepts": len(concepts),
            "concept_names": sorted(concepts),
            "call_sites": call_sites,
            "positional_args": counts["positional_args"],
            "keyword_args": counts["keyword_args"],
            "args_per_call": round(args / call_sites, 3) if call_sites else None,
            "default_keywords": counts["default_keywords"] if has_defaults else None,
            "framework_subclasses": counts["framework_subclasses"],
            "overridden_methods": counts["overridden_methods"],
            "ceremony_calls": sum(ceremony_calls.values()),
            "ceremony": dict(sorted(ceremony_calls.items())),
            **_code_metrics(piece),
        })
    return {"framework": framework, "phase_split": split, "phases": rows}
