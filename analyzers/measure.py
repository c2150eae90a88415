"""Measuring files: one file's ergonomics result (in worker processes), its cache key, its rows.

A result is a plain dict (``analyze_source``'s, plus notebook details) or an error
``{"error": kind, "message": ...}``; it is what ``ergonomics_cache`` stores, so a cached
file and a measured one give the same rows. Every file is measured in a bounded worker
(time and memory limits, see fwsurvey.analyzers.workers): in-process measuring could not be
stopped, so there is none. Failures due to a limit or a lost worker are not cached
(``cacheable``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fwsurvey.analyzers.code_input import InputError, decode
from fwsurvey.analyzers.ergonomics import (
    ANALYZER_VERSION,
    AnalysisError,
    LibraryIndex,
    analyze_source,
)
from fwsurvey.analyzers.settings import ErgonomicsSettings
from fwsurvey.analyzers.targets import Target
from fwsurvey.analyzers.workers import DIED, MEMORY, TIMEOUT, Limits, near_memory_limit, run_bounded
from fwsurvey.sources import Record

if TYPE_CHECKING:
    from fwsurvey.store import ItemError

#: Error kinds that depend on the limits, the machine's load or its memory rather than on the
#: file and the analyzer key alone: never cached, so the next run measures the file again
#: (its cost bounded by the limits), and raising a limit takes effect at once.
TRANSIENT_ERRORS = frozenset({TIMEOUT, MEMORY, DIED, "unreadable"})
_SETTINGS = "analyzers.ergonomics."


def limits(settings: ErgonomicsSettings) -> Limits:
    """The per-file limits of ``settings``, with the keys that raise them."""
    return Limits(settings.max_file_seconds, settings.max_file_memory_mb,
                  seconds_setting=f"{_SETTINGS}max_file_seconds",
                  memory_setting=f"{_SETTINGS}max_file_memory_mb")


def measure(name: str, data: bytes, framework: str | None, settings: ErgonomicsSettings,
            index: LibraryIndex) -> dict[str, Any]:
    """One file's result, or its error: ``{"error": kind, "message": ...}``. Never raises."""
    try:
        source = decode(data, name, settings.max_file_bytes)
        result = analyze_source(source.text, framework=framework, imports=settings.imports,
                                ceremony=settings.ceremony, index=index)
    except (InputError, AnalysisError) as exc:
        return {"error": exc.kind, "message": str(exc)}
    except MemoryError:
        if near_memory_limit():
            return {"error": MEMORY, "message": limits(settings).memory_message()}
        # Python 3.11's parser raises a bare MemoryError on code nested too deeply for it.
        return {"error": "too_complex", "message": "nested too deeply for Python's parser"
                " (it gave up with a MemoryError, far below the memory limit)"}
    except RecursionError:
        return {"error": "too_complex", "message": "nested too deeply for the analyzer"
                f" (over {sys.getrecursionlimit():,} levels of recursion)"}
    except Exception as exc:  # noqa: BLE001 - a file nobody planned for must not stop the run
        return {"error": "analyzer_error", "message": f"{type(exc).__name__}: {exc}"}
    return {**result, "notebook": source.notebook, "magic_lines": source.magic_lines}


def measure_all(jobs: list[tuple[str, bytes, str | None]], settings: ErgonomicsSettings,
                index: LibraryIndex, *,
                measure_fn: Callable[..., dict[str, Any]] = measure) -> Iterator[dict[str, Any]]:
    """Results in job order, each file measured in a worker process under the per-file time
    and memory limits (fwsurvey.analyzers.workers); ``settings.workers`` of them at a time.

    ``measure_fn`` (importable by name) stands in for :func:`measure` in tests.
    """
    yield from run_bounded(measure_fn, jobs, (settings, index), limits(settings),
                           settings.workers)


def cacheable(result: dict[str, Any]) -> bool:
    """Whether a result may be cached: measured, or failed for a reason of the file's own."""
    return result.get("error") not in TRANSIENT_ERRORS


def analyzer_key(settings: ErgonomicsSettings, index: LibraryIndex, target: Target) -> str:
    """What besides the content decides a file's result: versions, settings, index, hints."""
    kind = "ipynb" if target.path.suffix == ".ipynb" else "py"
    return (f"{ANALYZER_VERSION}:{settings.fingerprint()}:{index.fingerprint()}:"
            f"{target.framework or '-'}:{kind}")


def file_records(targets: list[Target], results: dict[str, dict], info: dict[str, dict],
                 fetched_at: str) -> tuple[list[Record], list[ItemError]]:
    """ergonomics_files and ergonomics_metrics rows, and an item error per failed file."""
    # Imported here, not above: every worker imports this module, and the store's import
    # (sqlite_utils, numpy) would cost each one a quarter of a second for nothing.
    from fwsurvey.store import ItemError

    records: list[Record] = []
    errors: list[ItemError] = []
    for t in targets:
        result = results[t.display]
        error = result.get("error")
        framework = t.framework or result.get("framework")
        records.append(Record("ergonomics_files", {
            "fetched_at": fetched_at, "path": t.display, "origin": t.origin, "task": t.task,
            "framework": framework, "status": error or "ok", "message": result.get("message"),
            **info[t.display],
            "notebook": result.get("notebook", t.path.suffix == ".ipynb"),
            "magic_lines": result.get("magic_lines", 0),
            "phase_split": result.get("phase_split"), "analyzer_version": ANALYZER_VERSION}))
        if error:
            errors.append(ItemError(t.display, error, result["message"]))
            continue
        for row in result["phases"]:
            records.append(Record("ergonomics_metrics", {
                "fetched_at": fetched_at, "path": t.display, "task": t.task,
                "framework": framework, **row}))
    return records, errors
