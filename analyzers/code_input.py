"""Reading code to analyze: Python files and notebooks, as text, never imported or run.

A file that cannot be analyzed becomes an :class:`InputError` with a kind the store records in
``item_errors`` (``too_large``, ``decode_error``, ``empty``, ``bad_notebook``); the caller goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceText:
    """Python source ready for the metrics; ``magic_lines`` were skipped (notebooks only)."""

    text: str
    notebook: bool = False
    magic_lines: int = 0


class InputError(Exception):
    """A file-level problem: ``kind`` is the item_errors kind, the message says what."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def is_analyzable(path: Path) -> bool:
    """Python files and Jupyter notebooks."""
    return path.suffix in (".py", ".ipynb")


def decode(data: bytes, name: str, max_bytes: int) -> SourceText:
    """Turn a file's bytes into source text, or raise InputError saying why not."""
    if len(data) > max_bytes:
        raise InputError("too_large", f"{len(data):,} bytes is over the limit of "
                                      f"{max_bytes:,} (analyzers.ergonomics.max_file_bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("decode_error", f"not UTF-8: byte {data[exc.start]:#04x} at offset "
                                         f"{exc.start}") from None
    if name.endswith(".ipynb"):
        return notebook_source(text)
    if not text.strip():
        raise InputError("empty", "the file is empty")
    return SourceText(text)


def notebook_source(text: str) -> SourceText:
    """The code cells of a notebook as one module; ``!``/``%`` lines are skipped and counted.

    A skipped line becomes ``pass`` at its indentation, so the cell still parses and its
    line numbers stay put (``pass`` adds nothing to the complexity metrics; it is one SLOC,
    which is what the magic line was).
    """
    try:
        nb = json.loads(text)
        cells = nb["cells"]
        if not isinstance(cells, list):
            raise TypeError("cells is not a list")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError("bad_notebook", f"not a Jupyter notebook: {exc}") from None
    parts: list[str] = []
    magics = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = []
        for line in source.splitlines():
            stripped = line.lstrip()
            if stripped.startswith(("!", "%")):
                magics += 1
                lines.append(line[: len(line) - len(stripped)] + "pass")
            else:
                lines.append(line)
        parts.append("\n".join(lines))
    code = "\n\n".join(p for p in parts if p.strip())
    if not code.strip():
        raise InputError("empty", "the notebook has no code cells")
    return SourceText(code + "\n", notebook=True, magic_lines=magics)
