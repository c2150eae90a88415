"""API ergonomics of one Python file: framework concepts, boilerplate, size and control flow.

A pure function from source text to rows (per phase and for the whole file). Nothing here
imports or runs the code it measures.

* Framework symbols are resolved on libcst's tree by fwsurvey.analyzers.names (the module's
  import table and attribute chains: ``import torch.nn as nn``, ``from trax import layers as
  tl`` ...; the same names as libcst's ``QualifiedNameProvider`` at a tenth of its cost, and
  no name for a method of a returned value) and mapped to one canonical public name with the
  library index (``trax.layers.core.Dense`` -> ``trax.layers.Dense``).
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
import tokenize
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider
from radon.metrics import h_visit_ast, mi_compute
from radon.raw import Module as RawMetrics
from radon.raw import _generate, _get_all_tokens, _logical, is_single_token
from radon.visitors import ComplexityVisitor

from fwsurvey.analyzers.cognitive import _COMPOUND, _is_elif, cognitive_complexity
from fwsurvey.analyzers.names import ModuleNames, scan
from fwsurvey.analyzers.phases import WHOLE, split_phases

#: Bump when any metric's definition changes, or what can be measured and how a failure is
#: classed (2: deeper nesting measured, too_complex and parser_limit; 3: names resolved by
#: fwsurvey.analyzers.names, no qualified name for a method of a returned value): cached
#: results of older versions are ignored.
ANALYZER_VERSION = "3"

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
    return _walk_tree(tree)[2]


def detect_framework(tree: ast.AST, imports: dict[str, tuple[str, ...]],
                     roots: Counter | None = None) -> str | None:
    """The framework whose import names the file imports most often (config order on ties).

    ``roots``: the tree's imported_roots, when already counted.
    """
    if roots is None:
        roots = imported_roots(tree)
    counts = {fw: sum(roots[r] for r in names) for fw, names in imports.items()}
    best = max(counts.values(), default=0)
    return next((fw for fw, n in counts.items() if n == best), None) if best else None


#: Resolves the names of one module's expressions: ``resolver(module, found)`` returns
#: ``names(node)``, the qualified names of the imports ``node`` stands for. The analysis uses
#: ``found.names`` (fwsurvey.analyzers.names); tests pass libcst's QualifiedNameProvider here
#: to compare the two.
Resolver = Callable[[cst.Module, ModuleNames], Callable[[cst.CSTNode], Iterable[str]]]


def _own_names(module: cst.Module, found: ModuleNames) -> Callable[[cst.CSTNode], Iterable[str]]:
    return found.names


@dataclass
class _ApiCounts:
    """Framework concepts, calls, boilerplate and ceremony, per phase."""

    concepts: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, Counter] = field(default_factory=dict)
    ceremony_by: dict[str, Counter] = field(default_factory=dict)


def _statement_lines(module: cst.Module, tree: ast.Module) -> list[int] | None:
    """The first line of each of ``module.body``'s statements, read off Python's ast.

    A libcst statement line holds one or more small statements (``a = 1; b = 2``), each of
    which is one ast statement; every compound statement is one. Computing libcst's positions
    instead would generate the code of the whole module again. None if the two disagree.
    """
    lines, i, body = [], 0, tree.body
    for stmt in module.body:
        if i >= len(body):
            return None
        lines.append(body[i].lineno)
        i += len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
    return lines if i == len(body) else None


def _api_counts(module: cst.Module, tree: ast.Module, roots: frozenset[str],
                ceremony: frozenset[str], index: LibraryIndex, phase_at,
                resolver: Resolver) -> _ApiCounts:
    found = scan(module)
    names_of = resolver(module, found)
    lines = _statement_lines(module, tree)
    if lines is None:  # never seen; libcst's own positions, at their cost
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        lines = [positions[stmt].start.line for stmt in module.body]
    phases = [phase_at(line) for line in lines]
    out = _ApiCounts()

    def framework_names(node: cst.CSTNode) -> list[str]:
        return sorted({index.canonical_name(q) for q in names_of(node)
                       if q.split(".")[0] in roots})

    def count(phase: str, key: str, n: int = 1) -> None:
        out.counts.setdefault(phase, Counter())[key] += n

    for stmt, chain in found.chains:
        # The whole chain is one symbol: torch.nn.Linear, not torch.nn too.
        for node in chain:
            names = framework_names(node)
            if names:
                out.concepts.setdefault(phases[stmt], set()).update(names)
                break
    for stmt, node in found.classes:
        bases = [n for arg in node.bases for n in framework_names(arg.value)]
        if not bases:
            continue
        phase = phases[stmt]
        count(phase, "framework_subclasses")
        known = [set(index.methods[b]) for b in bases if b in index.methods]
        for body_stmt in node.body.body:
            if not isinstance(body_stmt, cst.FunctionDef):
                continue
            name = body_stmt.name.value
            if known:
                overridden = any(name in methods for methods in known)
            else:  # a base the index does not know: its constructor and public methods
                overridden = name in ("__init__", "__call__") or not name.startswith("_")
            if overridden:
                count(phase, "overridden_methods")
    for stmt, node in found.calls:
        phase = phases[stmt]
        func = node.func
        names = framework_names(func)
        if names:
            count(phase, "call_sites")
            defaults = next((index.defaults[n] for n in names if n in index.defaults), None)
            for arg in node.args:
                if arg.keyword is None and arg.star != "**":
                    count(phase, "positional_args")
                    continue
                count(phase, "keyword_args")
                if defaults and arg.keyword is not None and arg.keyword.value in defaults:
                    if _is_literal(module, arg.value, defaults[arg.keyword.value]):
                        count(phase, "default_keywords")
        last = (func.attr.value if isinstance(func, cst.Attribute)
                else func.value if isinstance(func, cst.Name) else None)
        if last in ceremony:
            out.ceremony_by.setdefault(phase, Counter())[last] += 1
    return out


def _is_literal(module: cst.Module, value: cst.BaseExpression, default: Any) -> bool:
    try:
        passed = ast.literal_eval(module.code_for_node(value).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return type(passed) is type(default) and passed == default


#: Characters of a line radon's raw metrics can count without tokenizing it: no brackets,
#: quotes, continuation, comment, colon or semicolon, nothing the tokenizer rejects.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                   "_ .=+-*/%<>&|^~,@")
#: Plain characters plus brackets and colons: a line of these whose brackets close on the line
#: (``x = f(a, b[1:2])``, ``def f(x):``) is complete too (see :func:`_bracketed_lloc`).
_BRACKETED = _PLAIN | frozenset("()[]{}:")
_DEPTH = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


def _bracketed_lloc(line: str) -> int:
    """radon's logical lines for a stripped ``_BRACKETED`` line that is complete, else 0.

    Without quotes, comments, backslashes or semicolons, a line whose brackets never close
    more than they opened and end balanced is one complete statement for the tokenizer: radon
    counts it as one line of code, and ``_logical`` counts 2 logical lines when it holds a
    colon that is not its last token (``y = x[1:2]``, ``if a: b``: a quirk of radon's, kept),
    else 1. ``:=`` is a token of its own, so a line with one takes radon's own steps.
    """
    depth = 0
    for ch in line:
        step = _DEPTH.get(ch)
        if step:
            depth += step
            if depth < 0:
                return 0
    if depth or ":=" in line:
        return 0
    return 2 if ":" in line and not line.endswith(":") else 1


def raw_analyze(source: str) -> RawMetrics:
    """radon.raw.analyze, same numbers, without tokenizing the lines that need none.

    radon tokenizes each (stripped) line on its own, with the lines that follow until the
    tokens are complete, which costs a third of the whole suite. A plain line (``_PLAIN``
    characters only) is one complete logical line of code, or a blank one; a line that adds
    only brackets closed on it and colons is one line of code (:func:`_bracketed_lloc`), with
    a comment after it or not; a line opening on ``#`` is a comment: all counted as radon
    would, untokenized. Every other line goes through radon's own steps, copied from
    ``radon.raw.analyze`` (radon 6); tests/analyzers/test_names.py checks the numbers equal.
    """
    lloc = comments = single_comments = multi = blank = sloc = 0
    stripped = [line.strip() for line in source.splitlines()]
    lines = iter(stripped)
    lineno = 1
    plain, bracketed = _PLAIN.issuperset, _BRACKETED.issuperset
    for line in lines:
        if plain(line):
            lineno += 1
            if line:
                sloc += 1
                lloc += 1
            else:
                blank += 1
            continue
        if line.startswith("#"):  # a comment to the line's end: no code, no logical line
            lineno += 1
            comments += 1
            single_comments += 1
            continue
        code, sharp, _ = line.partition("#")  # with no quotes before it, a comment
        code = code.rstrip()
        if bracketed(code) and (logical := _bracketed_lloc(code)):
            lineno += 1
            sloc += 1
            lloc += logical
            comments += bool(sharp)
            continue
        group = _group(stripped, lineno - 1)
        if group:  # the lines radon's retries would have ended with, found in one pass
            tokens, parsed_lines = group
            for _ in parsed_lines[1:]:
                next(lines)
        else:
            try:
                tokens, parsed_lines = _get_all_tokens(line, lines)
            except StopIteration:
                raise SyntaxError(f"SyntaxError at line: {lineno}") from None
        lineno += len(parsed_lines)
        comments += sum(1 for t in tokens if t[0] == tokenize.COMMENT)
        if is_single_token(tokenize.COMMENT, tokens):
            single_comments += 1
        elif is_single_token(tokenize.STRING, tokens):
            _, _, (start_row, _), (end_row, _), _ = tokens[0]
            if end_row == start_row:
                single_comments += 1
            else:
                multi += sum(1 for parsed in parsed_lines if parsed)
                blank += sum(1 for parsed in parsed_lines if not parsed)
        else:
            for parsed in parsed_lines:
                if parsed:
                    sloc += 1
                else:
                    blank += 1
        lloc += _logical(tokens)
    loc = sloc + blank + multi + single_comments
    return RawMetrics(loc, lloc, sloc, comments, multi, blank, single_comments)


_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")


def _group(lines: list[str], start: int) -> tuple[list, list[str]] | None:
    """radon's tokens and lines for the statement starting at ``lines[start]``, or None.

    radon (``_get_all_tokens``) tokenizes the first line, then the first two, three ... until
    the tokens are complete: quadratic in the length of a statement, which puts a long
    literal (torch's 20,000-line ``op_db = [...]``) past any time limit. Here one pass of
    the tokenizer finds the first line at which the statement is complete (a NEWLINE or NL
    outside brackets), and those lines are tokenized once, as radon would have last. None
    (radon's own steps then run) when that is not plain: an error token, the file's end.
    """
    first = lines[start]
    try:
        tokens = _generate(first)
        if not any(t[0] == tokenize.ERRORTOKEN for t in tokens):
            return tokens, [first]
    except tokenize.TokenError:
        pass
    feed = (lines[i] + "\n" for i in range(start, len(lines)))
    depth, end = 0, 0
    try:
        for tok in tokenize.generate_tokens(lambda: next(feed, "")):
            kind = tok[0]
            if kind == tokenize.ERRORTOKEN:
                return None
            if kind == tokenize.OP:
                if tok[1] in _OPEN:
                    depth += 1
                elif tok[1] in _CLOSE:
                    depth -= 1
            elif kind in (tokenize.NEWLINE, tokenize.NL) and depth == 0:
                end = tok[2][0]
                break
    except (tokenize.TokenError, SyntaxError):
        return None
    if not end:
        return None
    used = lines[start:start + end]
    try:
        tokens = _generate("\n".join(used))
    except tokenize.TokenError:
        return None
    if any(t[0] == tokenize.ERRORTOKEN for t in tokens):
        return None
    return tokens, used


def _walk_tree(tree: ast.AST) -> tuple[int, int, Counter]:
    """The number of calls, cognitive.max_nesting and imported_roots, in one walk of the
    tree (not three)."""
    calls = deepest = 0
    roots: Counter = Counter()
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.Call):
            calls += 1
        elif isinstance(node, _COMPOUND):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots[node.module.split(".")[0]] += 1
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth - 1 if _is_elif(node, child) else depth))
    return calls, deepest, roots


def _code_metrics(text: str, tree: ast.Module | None = None,
                  walked: tuple[int, int, Counter] | None = None) -> dict[str, Any]:
    """radon raw/cc/Halstead/MI and the cognitive visitor on one piece of source.

    ``tree``: ``text`` already parsed (each piece is, once), else it is parsed here;
    ``walked``: its _walk_tree, when already done.
    """
    if tree is None:
        tree = ast.parse(text)
    raw = raw_analyze(text)
    cc = ComplexityVisitor.from_ast(tree)
    halstead = h_visit_ast(tree).total
    comments = (raw.comments + raw.multi) / raw.sloc * 100 if raw.sloc else 0
    calls, nesting, _ = walked or _walk_tree(tree)
    return {
        "sloc": raw.sloc, "lloc": raw.lloc, "comments": raw.comments,
        "cyclomatic": cc.total_complexity,
        "cyclomatic_max": max((b.complexity for b in cc.blocks), default=0),
        "cognitive": cognitive_complexity(tree), "max_nesting": nesting,
        "halstead_volume": round(halstead.volume, 3),
        # radon's own formula and inputs (mi_parameters with multi-line strings as comments).
        "maintainability_index": round(mi_compute(halstead.volume, cc.total_complexity,
                                                  raw.lloc, comments), 3),
        "halstead_unreliable": calls > halstead.N1,
        "calls": calls,
    }


def analyze_source(text: str, *, framework: str | None, imports: dict[str, tuple[str, ...]],
                   ceremony: dict[str, tuple[str, ...]], index: LibraryIndex,
                   resolver: Resolver = _own_names) -> dict[str, Any]:
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
    walked = _walk_tree(tree)
    if framework is None:
        framework = detect_framework(tree, imports, walked[2])

    phases = split_phases(text)
    split = "markers" if phases else "none"
    pieces: dict[str, str] = {}
    trees: dict[str, ast.Module] = {WHOLE: tree}
    if phases:
        lines = text.splitlines()
        keep: dict[str, set[int]] = {}
        for p in phases:
            keep.setdefault(p.name, set()).update(range(p.start, p.end + 1))
        pieces = {name: "\n".join(line if i + 1 in rows else "" for i, line in enumerate(lines))
                  + "\n" for name, rows in keep.items()}
        try:
            trees.update((name, ast.parse(piece)) for name, piece in pieces.items())
        except SyntaxError as exc:
            # A marker inside a block: the phases do not stand alone; measure the whole file.
            split, phases, pieces = f"unsplittable: line {exc.lineno}: {exc.msg}", [], {}

    def phase_at(line: int) -> str:
        for p in phases:
            if p.start <= line <= p.end:
                return p.name
        return WHOLE

    roots = frozenset(r for names in imports.values() for r in names)
    visitor = _api_counts(module, tree, roots, frozenset(ceremony.get(framework or "", ())),
                          index, phase_at, resolver)

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
            **_code_metrics(piece, trees[name], walked if name == WHOLE else None),
        })
    return {"framework": framework, "phase_split": split, "phases": rows}
