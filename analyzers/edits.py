"""Modular changes (issue #14 §4): the size of each standard edit, per task and framework.

Each paired task has variant files, ``kernels/<task>/variants/<edit>/<framework>_impl.py``:
the task's implementation with one standard edit (swap the optimizer, swap an activation,
add a residual block, add dropout) made the way its framework's docs would.
``kernels/variants.toml`` lists the edits per task, one list for every framework, an edit
that does not apply skipped with its reason. This measures, reading the files (never
importing them), how much of the base file each edit changed:

* **lines**: a unified diff (``difflib``) of the base file's code lines against the
  variant's, blank lines and comments left out of both; added + removed lines (a line
  changed in place counts twice: once removed, once added);
* **tokens**: Python ``tokenize`` tokens (comments, newlines and indentation left out), the
  base's against the variant's with ``difflib.SequenceMatcher``; added + removed tokens, so
  ``nn.ReLU`` → ``nn.GELU`` is 2 (one token out, one in);
* **locality**: the scopes (innermost function or class; ``<module>`` outside any) and the
  marked phases (``# %% model``...) holding a changed line: the base's for removed lines,
  the variant's for added ones. An edit that stays in one scope and one phase is local.

The same definitions hold for every framework; a variant file that is missing, or does not
parse, is a row with its status (``missing``, ``error``), not a gap.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import io
import tokenize
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwsurvey.analyzers.phases import split_phases
from fwsurvey.sources import Record

#: Stored with every row: a change of these definitions changes the version.
EDITS_VERSION = "1"
INDEX_NAME = "variants.toml"
IMPL_SUFFIX = "_impl.py"
#: Tokens that carry no code: left out of the token diff.
_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
MODULE_SCOPE = "<module>"


@dataclass(frozen=True)
class EditSize:
    """How much one edit changed a file."""

    lines_added: int
    lines_removed: int
    tokens_added: int
    tokens_removed: int
    base_tokens: int
    scopes: tuple[str, ...]
    phases: tuple[str, ...]

    @property
    def lines_changed(self) -> int:
        return self.lines_added + self.lines_removed

    @property
    def tokens_changed(self) -> int:
        return self.tokens_added + self.tokens_removed


def code_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of every line that holds code, its comment cut off (the
    tokenizer's comments, so a ``#`` inside a string stays) and trailing space stripped:
    blank and comment-only lines left out."""
    lines = text.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    return [(number, line.rstrip()) for number, line in enumerate(lines, 1) if line.strip()]


def code_tokens(text: str) -> list[str]:
    """The token strings of ``text`` that carry code (see :data:`_SKIP_TOKENS`)."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [t.string for t in tokens if t.type not in _SKIP_TOKENS]


def scope_of_lines(text: str) -> dict[int, str]:
    """Line number → the innermost function or class holding it (dotted: ``Block.forward``);
    lines outside any are not in the map (:data:`MODULE_SCOPE`)."""
    found: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                for line in range(start, (child.end_lineno or child.lineno) + 1):
                    found[line] = name  # inner scopes visited after, so they win
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(text), "")
    return found


def phase_of_lines(text: str) -> dict[int, str]:
    """Line number → its marked phase (none when the file has no markers)."""
    return {line: phase.name for phase in split_phases(text)
            for line in range(phase.start, phase.end + 1)}


def edit_size(base: str, variant: str) -> EditSize:
    """The size and locality of the edit turning ``base`` into ``variant`` (both parsed:
    a SyntaxError propagates)."""
    ast.parse(base)  # a file that does not parse is a SyntaxError, before the tokenizer's
    ast.parse(variant)
    old, new = code_lines(base), code_lines(variant)
    added: list[int] = []
    removed: list[int] = []
    matcher = difflib.SequenceMatcher(None, [t for _, t in old], [t for _, t in new],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += [old[i][0] for i in range(i1, i2)]
            added += [new[j][0] for j in range(j1, j2)]
    old_tokens, new_tokens = code_tokens(base), code_tokens(variant)
    tokens_added = tokens_removed = 0
    tmatcher = difflib.SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in tmatcher.get_opcodes():
        if tag != "equal":
            tokens_removed += i2 - i1
            tokens_added += j2 - j1
    scopes_old, scopes_new = scope_of_lines(base), scope_of_lines(variant)
    phases_old, phases_new = phase_of_lines(base), phase_of_lines(variant)
    scopes = {scopes_old.get(n, MODULE_SCOPE) for n in removed} | \
        {scopes_new.get(n, MODULE_SCOPE) for n in added}
    phases = {phases_old[n] for n in removed if n in phases_old} | \
        {phases_new[n] for n in added if n in phases_new}
    return EditSize(len(added), len(removed), tokens_added, tokens_removed, len(old_tokens),
                    tuple(sorted(scopes)), tuple(sorted(phases)))


def unified_diff_counts(base: str, variant: str) -> tuple[int, int]:
    """(added, removed) code lines as ``difflib.unified_diff`` reports them: the check of
    :func:`edit_size`'s line counts (the same opcodes, printed the way a reader sees them)."""
    old = [t for _, t in code_lines(base)]
    new = [t for _, t in code_lines(variant)]
    plus = minus = 0
    for line in difflib.unified_diff(old, new, lineterm="", n=0):
        if line.startswith(("+++", "---", "@@")):
            continue
        plus += line.startswith("+")
        minus += line.startswith("-")
    return plus, minus


def load_index(kernels: Path) -> dict[str, Any] | None:
    """``kernels/variants.toml`` as read (the kernels package validates it; this reads only
    the per-task edit lists and skips), or None when there is none."""
    path = kernels / INDEX_NAME
    if not path.exists():
        return None
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def edit_records(kernels: Path, frameworks: tuple[str, ...], fetched_at: str,
                 display_base: Path | None = None) -> tuple[list[Record], list[str]]:
    """One ``code_edits`` row per task × edit × framework of the index; the items measured.

    Every edit the index names, applied or skipped, gets a row for each framework, so both
    sides are counted by the same list.
    """
    index = load_index(kernels)
    if index is None:
        return [], []
    base_dir = display_base or kernels.parent
    records: list[Record] = []
    items: list[str] = []
    edits_known = list(index.get("edits", {}))
    for task, entry in sorted(index.get("tasks", {}).items()):
        applied = list(entry.get("edits", []))
        skipped = dict(entry.get("skipped", {}))
        notes = dict(entry.get("notes", {}))
        for edit in [e for e in edits_known if e in applied or e in skipped]:
            for framework in frameworks:
                base_path = kernels / task / f"{framework}{IMPL_SUFFIX}"
                variant = kernels / task / "variants" / edit / f"{framework}{IMPL_SUFFIX}"
                row: dict[str, Any] = {
                    "fetched_at": fetched_at, "task": task, "edit": edit,
                    "framework": framework, "base_path": _show(base_path, base_dir),
                    "variant_path": None, "note": notes.get(edit),
                    "analyzer_version": EDITS_VERSION}
                items.append(f"{task}/{edit}/{framework}")
                if edit in skipped:
                    row.update(status="skipped", note=skipped[edit])
                elif not base_path.exists() or not variant.exists():
                    row.update(status="missing", note=f"no {_show(variant, base_dir)}"
                               if base_path.exists() else f"no {_show(base_path, base_dir)}")
                else:
                    row["variant_path"] = _show(variant, base_dir)
                    base_bytes, variant_bytes = base_path.read_bytes(), variant.read_bytes()
                    row.update(base_sha256=_sha(base_bytes), variant_sha256=_sha(variant_bytes))
                    try:
                        size = edit_size(base_bytes.decode("utf-8"),
                                         variant_bytes.decode("utf-8"))
                    except (SyntaxError, UnicodeDecodeError, tokenize.TokenError) as exc:
                        row.update(status="error", note=f"{type(exc).__name__}: {exc}")
                    else:
                        row.update(
                            status="measured", lines_added=size.lines_added,
                            lines_removed=size.lines_removed, lines_changed=size.lines_changed,
                            tokens_added=size.tokens_added,
                            tokens_removed=size.tokens_removed,
                            tokens_changed=size.tokens_changed, base_tokens=size.base_tokens,
                            scopes_touched=len(size.scopes), scopes=", ".join(size.scopes),
                            phases_touched=len(size.phases), phases=", ".join(size.phases))
                records.append(Record("code_edits", row))
    return records, items


def _show(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()
