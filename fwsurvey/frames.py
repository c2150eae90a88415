"""A shortcut in Python's frame introspection, installed before a framework is imported.

Trax decorates 65 layer classes at import with ``assert_shape``, which calls
``inspect.stack()`` to name where each layer was defined. ``inspect.stack`` resolves the
module of every frame on the stack, and for frames of synthetic files such as
``<frozen importlib._bootstrap>`` (an import is deep in them) ``inspect.getmodule`` scans all of
``sys.modules`` before answering "none" — with TensorFlow loaded, about 4,000 modules per
frame, 35 million ``hasattr`` calls per ``import trax``. On this project's 2-core machine that
is 36 s of a 44 s import, paid by every Trax job, each in its fresh process.

The shortcut answers those frames at once with the answer the scan would give: a frame,
code object or traceback has no ``__name__``, so ``getmodule`` can only return the module
whose file is the frame's file, and no module's file is ``<...>``. Every other call goes to
the original function, so what any framework computes is unchanged; only the wall time of
the import phase (``import_s``, which no verdict reads) shrinks. The training harness installs it
before each job's import, the library-surface introspection before it imports the libraries
it inventories (``analyzers/introspect_library.py``). The real cost of
``import trax`` for a user, with and without the shortcut, is measured by
``scripts/bench_import.py``.
"""

from __future__ import annotations

import inspect
import sys
from types import CodeType, FrameType, TracebackType
from typing import Any

_SYNTHETIC = (CodeType, FrameType, TracebackType)
_installed = False


def _synthetic_file(obj: Any, filename: str | None) -> bool:
    if not isinstance(obj, _SYNTHETIC):
        return False
    if filename is None:
        code = obj if isinstance(obj, CodeType) else (
            obj.f_code if isinstance(obj, FrameType) else obj.tb_frame.f_code)
        filename = code.co_filename
    return filename.startswith("<") and filename.endswith(">")


def install() -> bool:
    """Install the shortcut once per process; return whether this call installed it."""
    global _installed
    if _installed:
        return False
    original = inspect.getmodule

    def getmodule(obj: Any, _filename: str | None = None) -> Any:
        if _synthetic_file(obj, _filename) and _filename not in inspect.modulesbyfile:
            return None
        return original(obj, _filename)

    getmodule.__doc__ = original.__doc__
    getmodule.__wrapped__ = original  # type: ignore[attr-defined]
    inspect.getmodule = getmodule
    _installed = True
    return True


def installed() -> bool:
    return _installed and "inspect" in sys.modules
