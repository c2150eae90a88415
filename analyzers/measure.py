"""Measuring files: one file's ergonomics result (in worker processes), its cache key, its rows.

A result is a plain dict (``analyze_source``'s, plus notebook details) or an error
``{"error": kind, "message": ...}``; it is what ``ergonomics_cache`` stores, so a cached
file and a measured one give the same rows.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from fwsurvey.analyzers.code_input import InputError, decode
from fwsurvey.analyzers.ergonomics import (
    ANALYZER_VERSION,
    AnalysisError,
    LibraryIndex,
    analyze_source,
)
from fwsurvey.analyzers.settings import ErgonomicsSettings
from fwsurvey.analyzers.targets import Target
from fwsurvey.sources import Record
from fwsurvey.store import ItemError

_worker: dict[str, Any] = {}


def _init_worker(settings: ErgonomicsSettings, index: LibraryIndex) -> None:
    _worker["settings"], _worker["index"] = settings, index


def measure(name: str, data: bytes, framework: str | None, settings: ErgonomicsSettings,
            index: LibraryIndex) -> dict[str, Any]:
    """One file's result, or its error: ``{"error": kind, "message": ...}``. Never raises."""
    try:
        source = decode(data, name, settings.max_file_bytes)
        result = analyze_source(source.text, framework=framework, imports=settings.imports,
                                ceremony=settings.ceremony, index=index)
    except (InputError, AnalysisError) as exc:
        return {"error": exc.kind, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a file nobody planned for must not stop the run
        return {"error": "analyzer_error", "message": f"{type(exc).__name__}: {exc}"}
    return {**result, "notebook": source.notebook, "magic_lines": source.magic_lines}


def _measure_in_worker(job: tuple[str, bytes, str | None]) -> dict[str, Any]:
    return measure(*job, _worker["settings"], _worker["index"])


def measure_all(jobs: list[tuple[str, bytes, str | None]], settings: ErgonomicsSettings,
                index: LibraryIndex) -> Iterator[dict[str, Any]]:
    """Results in job order; a pool of ``settings.workers`` processes when it pays off."""
    if settings.workers <= 1 or len(jobs) < 4:
        for job in jobs:
            yield measure(*job, settings, index)
        return
    # spawn, not fork: the parent may hold threads (rich's progress) and open SQLite handles.
    with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(settings, index)) as pool:
        chunk = max(1, min(16, len(jobs) // (settings.workers * 4)))
        yield from pool.map(_measure_in_worker, jobs, chunksize=chunk)


def analyzer_key(settings: ErgonomicsSettings, index: LibraryIndex, target: Target) -> str:
    """What besides the content decides a file's result: versions, settings, index, hints."""
    kind = "ipynb" if target.path.suffix == ".ipynb" else "py"
    return (f"{ANALYZER_VERSION}:{settings.fingerprint()}:{index.fingerprint()}:"
            f"{target.framework or '-'}:{kind}")


def file_records(targets: list[Target], results: dict[str, dict], info: dict[str, dict],
                 fetched_at: str) -> tuple[list[Record], list[ItemError]]:
    """ergonomics_files and ergonomics_metrics rows, and an item error per failed file."""
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
