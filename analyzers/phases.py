"""Splitting a file into phases (model, data, training, evaluation, ...).

The paired implementations mark phases with percent-format cell comments on their own line,
at column 0: ``# %% model``. Code before the first marker is the ``preamble`` (imports count
where they are). A file without markers is one phase, ``all``: guessing phases from
structure would put our guess in the numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER_RE = re.compile(r"^# ?%%[ \t]*([A-Za-z][\w-]*)?")
WHOLE = "all"
PREAMBLE = "preamble"


@dataclass(frozen=True)
class Phase:
    """Lines ``start``..``end`` (1-based, inclusive) of one phase."""

    name: str
    start: int
    end: int


def split_phases(text: str) -> list[Phase]:
    """The marked phases of ``text`` in order; [] when the file has no marker.

    A phase named twice (two ``# %% model`` cells) stays two ranges with the same name; the
    metrics add them up.
    """
    lines = text.splitlines()
    marks = [(i + 1, (m.group(1) or "unnamed").lower())
             for i, line in enumerate(lines) if (m := MARKER_RE.match(line))]
    if not marks:
        return []
    phases = []
    if marks[0][0] > 1:
        phases.append(Phase(PREAMBLE, 1, marks[0][0] - 1))
    for (line, name), nxt in zip(marks, [*marks[1:], (len(lines) + 1, "")], strict=True):
        phases.append(Phase(name, line, nxt[0] - 1))
    return phases


def phase_text(text: str, phase: Phase) -> str:
    """The source of one phase, with the lines of other phases blanked (line numbers kept)."""
    lines = text.splitlines()
    return "\n".join(line if phase.start <= i + 1 <= phase.end else ""
                     for i, line in enumerate(lines)) + "\n"
