"""Stand-ins for ``measure`` that misbehave, run in the analyzer's worker processes.

Workers are spawned, so a stand-in is passed by name (``measure_all(..., measure_fn=...)``)
and imported there: these live in a module of their own, without pytest.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from fwsurvey.analyzers.measure import measure


def die_on_die(name: str, data: bytes, framework: str | None, settings: Any,
               index: Any) -> dict[str, Any]:
    """Kill the worker that measures a file named ``die*``; measure the others."""
    if Path(name).name.startswith("die"):
        os.kill(os.getpid(), signal.SIGKILL)
    return measure(name, data, framework, settings, index)


def hang_on_hang(name: str, data: bytes, framework: str | None, settings: Any,
                 index: Any) -> dict[str, Any]:
    """Never finish a file named ``hang*``; measure the others."""
    if Path(name).name.startswith("hang"):
        time.sleep(3600)
    return measure(name, data, framework, settings, index)


def pid_then_hang(name: str, data: bytes, framework: str | None, settings: Any,
                  index: Any) -> dict[str, Any]:
    """Write the worker's pid to the file ``name``, then never finish."""
    Path(name).write_text(str(os.getpid()))
    time.sleep(3600)
    return {}


def whose_pid(name: str, data: bytes, framework: str | None, settings: Any,
              index: Any) -> dict[str, Any]:
    """The pid of the process that measured the file."""
    return {"pid": os.getpid()}
