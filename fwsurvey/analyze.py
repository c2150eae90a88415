"""The ``analyze`` stage: library surfaces and the ergonomics of code, into the store.

Two sources, each written in one transaction with its outcome:

* ``library_surface``: each framework configured under ``[analyzers.library_surface.FW]``,
  introspected in a subprocess (fwsurvey.analyzers.library_surface), with the distributed
  strategies of ``[analyzers.distributed_strategies.FW]`` probed there too;
* ``ergonomics``: the paired implementations (``kernels/<task>/<framework>_impl.py``) or any
  files, folders and notebooks given, measured without importing them. Results are cached in
  ``ergonomics_cache`` by content hash and analyzer key, and misses are measured by a pool of
  worker processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fwsurvey.analyzers.code_input import InputError, decode, is_analyzable
from fwsurvey.analyzers.ergonomics import (
    ANALYZER_VERSION,
    METRIC_COLUMNS,
    AnalysisError,
    LibraryIndex,
    analyze_source,
)
from fwsurvey.analyzers.library_surface import (
    SurfaceFailed,
    build_index,
    inventory,
    strategy_records,
    surface_index,
    surface_records,
)
from fwsurvey.analyzers.settings import (
    ErgonomicsSettings,
    StrategySpec,
    ergonomics_settings,
    strategy_settings,
    surface_fingerprint,
    surface_settings,
)
from fwsurvey.config import SurveyConfig
from fwsurvey.provenance import installed_version
from fwsurvey.sources import Record
from fwsurvey.store import ItemError, SourceOutcome, Store, utcnow

log = logging.getLogger(__name__)

SURFACE_SOURCE = "library_surface"
ERGONOMICS_SOURCE = "ergonomics"
IMPL_SUFFIX = "_impl.py"
#: Folders never walked into when a user points at a tree.
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", ".git", ".venv", "venv"}
COMPOSITE = "ease_of_use_composite"


@dataclass(frozen=True)
class Target:
    """One file to measure: where it is, how it is shown, and what it belongs to."""

    path: Path
    display: str
    origin: str  # kernels | user
    task: str | None = None
    framework: str | None = None


# -- discovery -------------------------------------------------------------------------------

def kernel_targets(config: SurveyConfig, kernels: Path) -> list[Target]:
    """Every ``kernels/<task>/<framework>_impl.py`` whose framework is configured."""
    targets = []
    for path in sorted(kernels.glob(f"*/*{IMPL_SUFFIX}")):
        framework = path.name[: -len(IMPL_SUFFIX)]
        if framework in config.frameworks:
            targets.append(Target(path, _display(path, config.path.parent), "kernels",
                                  task=path.parent.name, framework=framework))
        else:
            log.warning("%s: %r is not a configured framework; not analyzed", path, framework)
    return targets


def user_targets(paths: list[Path]) -> list[Target]:
    """Python files and notebooks under ``paths`` (files taken as given, folders walked)."""
    targets: list[Target] = []
    for root in paths:
        if not root.exists():
            raise ValueError(f"no such file or folder: {root}")
        if root.is_file():
            targets.append(Target(root, _display(root, Path.cwd()), "user"))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if is_analyzable(path) and path.is_file():
                    targets.append(Target(path, _display(path, Path.cwd()), "user"))
    return targets


def _display(path: Path, base: Path) -> str:
    path = path.absolute()
    try:
        return path.relative_to(base.absolute()).as_posix()
    except ValueError:
        return path.as_posix()


# -- measuring (in worker processes) -------------------------------------------------------

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


# -- the stage -----------------------------------------------------------------------------

def run_analyze(store: Store, run_id: int, config: SurveyConfig,
                paths: list[Path] | None = None, progress=None) -> list[SourceOutcome]:
    """The analyze stage: library surfaces (when no paths are given), then ergonomics."""
    outcomes = []
    index = None
    if not paths:
        outcome, index = analyze_library_surface(store, run_id, config, progress)
        outcomes.append(outcome)
    if index is None:
        index = stored_index(store)
    outcomes.append(analyze_ergonomics(store, run_id, config, paths, index, progress))
    return outcomes


def stored_index(store: Store) -> LibraryIndex:
    """The library index of the newest run that stored one, per framework."""
    rows = store.query(
        "SELECT i.name, i.defined_as, i.defaults, i.methods FROM library_index i"
        " JOIN (SELECT framework, MAX(run_id) AS run_id FROM library_index GROUP BY framework)"
        " latest USING (framework, run_id)")
    return build_index(rows)


def analyze_library_surface(store: Store, run_id: int, config: SurveyConfig,
                            progress=None) -> tuple[SourceOutcome, LibraryIndex | None]:
    """Introspect each configured framework's surface; write it all in one transaction."""
    started = utcnow()
    try:
        specs = surface_settings(config)
        strategies = strategy_settings(config)
        specs.update({fw: {} for fw in strategies if fw not in specs})
    except Exception as exc:
        outcome = SourceOutcome("analyze", SURFACE_SOURCE, "error", started, utcnow(),
                                reason=str(exc))
        store.write_source(run_id, outcome)
        return outcome, None
    if not specs:
        outcome = SourceOutcome("analyze", SURFACE_SOURCE, "skipped", started, utcnow(),
                                reason="no [analyzers.library_surface] in the configuration")
        store.write_source(run_id, outcome)
        return outcome, None
    if progress:
        progress.source_started(SURFACE_SOURCE, len(specs))
    records: list[Record] = []
    errors: list[ItemError] = []
    surfaces = []
    for fw, spec in specs.items():
        fw_strategies = strategies.get(fw, StrategySpec())
        try:
            surface = inventory(fw, spec, probes=fw_strategies.probes())
        except SurfaceFailed as exc:
            errors.append(ItemError(fw, "error", str(exc)))
        else:
            surfaces.append(surface)
            package = config.frameworks[fw].pypi[0] if config.frameworks[fw].pypi else fw
            version = installed_version(package)
            records += surface_records(surface, spec, fetched_at=utcnow(),
                                       package_version=version,
                                       spec_sha256=surface_fingerprint(spec))
            records += strategy_records(surface, fw_strategies, fetched_at=utcnow(),
                                        package_version=version)
            errors += [ItemError(f"{fw}:{e['item']}", e["kind"], e["message"])
                       for e in surface.errors]
        if progress:
            progress.item_done(SURFACE_SOURCE, fw)
    if not surfaces:
        status, reason = "error", "no framework's surface could be read"
    elif errors:
        status, reason = "partial", f"{len(errors)} modules or symbols not found"
    else:
        status, reason = "ok", None
    outcome = SourceOutcome("analyze", SURFACE_SOURCE, status, started, utcnow(), reason=reason,
                            items_ok=len(surfaces), errors=errors)
    store.write_source(run_id, outcome, records)
    if progress:
        progress.source_finished(outcome)
    return outcome, surface_index(surfaces) if surfaces else None


def analyzer_key(settings: ErgonomicsSettings, index: LibraryIndex, target: Target) -> str:
    """What besides the content decides a file's result: versions, settings, index, hints."""
    kind = "ipynb" if target.path.suffix == ".ipynb" else "py"
    return (f"{ANALYZER_VERSION}:{settings.fingerprint()}:{index.fingerprint()}:"
            f"{target.framework or '-'}:{kind}")


def analyze_ergonomics(store: Store, run_id: int, config: SurveyConfig,
                       paths: list[Path] | None, index: LibraryIndex,
                       progress=None) -> SourceOutcome:
    """Measure the paired implementations (no paths) or the given files; write one transaction."""
    started = utcnow()
    settings = ergonomics_settings(config)
    targets = user_targets(paths) if paths else kernel_targets(config, settings.kernels)
    if not targets:
        where = ", ".join(map(str, paths)) if paths else f"{settings.kernels}/*/*{IMPL_SUFFIX}"
        outcome = SourceOutcome("analyze", ERGONOMICS_SOURCE, "skipped", started, utcnow(),
                                reason=f"nothing to analyze under {where}")
        store.write_source(run_id, outcome)
        return outcome
    if progress:
        progress.source_started(ERGONOMICS_SOURCE, len(targets))

    results: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    misses: list[tuple[Target, str, str, bytes]] = []
    cache_rows: list[Record] = []
    keys = {t.display: analyzer_key(settings, index, t) for t in targets}
    for t in targets:
        size = t.path.stat().st_size
        info[t.display] = {"bytes": size, "content_sha256": None, "cached": False}
        if size > settings.max_file_bytes:  # not even read
            results[t.display] = {"error": "too_large", "message":
                                  f"{size:,} bytes is over the limit of "
                                  f"{settings.max_file_bytes:,} (analyzers.ergonomics."
                                  "max_file_bytes)"}
            continue
        data = t.path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        info[t.display]["content_sha256"] = sha
        misses.append((t, sha, keys[t.display], data))
    cached = _cache_lookup(store, [(sha, key) for _, sha, key, _ in misses])
    jobs = []
    for t, sha, key, data in misses:
        if (sha, key) in cached:
            results[t.display] = cached[(sha, key)]
            info[t.display]["cached"] = True
            if progress:
                progress.item_done(ERGONOMICS_SOURCE, t.display)
        else:
            jobs.append((t, sha, key, data))
    fetched_at = utcnow()
    measured = measure_all([(t.display, data, t.framework) for t, _, _, data in jobs],
                           settings, index)
    for (t, sha, key, _), result in zip(jobs, measured, strict=True):
        results[t.display] = result
        cache_rows.append(Record("ergonomics_cache", {
            "content_sha256": sha, "analyzer_key": key, "result": json.dumps(result),
            "fetched_at": fetched_at}))
        if progress:
            progress.item_done(ERGONOMICS_SOURCE, t.display)

    records, errors = file_records(targets, results, info, fetched_at)
    if not paths:
        records += pair_records(config, settings, targets, results, fetched_at)
    ok = len(targets) - len(errors)
    if not errors:
        status, reason = "ok", None
    elif ok == 0:
        status, reason = "error", "no file could be analyzed"
    else:
        status, reason = "partial", f"{len(errors)} of {len(targets)} files not analyzed"
    outcome = SourceOutcome("analyze", ERGONOMICS_SOURCE, status, started, utcnow(),
                            reason=reason, items_ok=ok, errors=errors)
    store.write_source(run_id, outcome, [*records, *cache_rows])
    if progress:
        progress.source_finished(outcome)
    return outcome


def _cache_lookup(store: Store, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    found: dict[tuple[str, str], dict] = {}
    wanted = set(keys)
    shas = sorted({sha for sha, _ in keys})
    for i in range(0, len(shas), 500):
        batch = shas[i:i + 500]
        marks = ", ".join("?" for _ in batch)
        for row in store.db.execute(
                "SELECT content_sha256, analyzer_key, result FROM ergonomics_cache"
                f" WHERE content_sha256 IN ({marks})", batch).fetchall():
            if (row[0], row[1]) in wanted:
                found[(row[0], row[1])] = json.loads(row[2])
    return found


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


def pair_records(config: SurveyConfig, settings: ErgonomicsSettings, targets: list[Target],
                 results: dict[str, dict], fetched_at: str) -> list[Record]:
    """Per task, phase and metric: the compared pair's values, ratio a/b, and the composite.

    The composite is the weighted geometric mean of (a + 1) / (b + 1) over the weighted
    metrics (add-one, so a zero on either side stays finite): above 1, the first framework's
    code needs more of what the weights count; below 1, less.
    """
    a, b = config.compare
    phases_of: dict[tuple[str, str], dict[str, dict]] = {}
    for t in targets:
        result = results[t.display]
        if t.task and t.framework in (a, b) and "phases" in result:
            phases_of[(t.task, t.framework)] = {p["phase"]: p for p in result["phases"]}
    records = []
    for task in sorted({task for task, _ in phases_of}):
        if (task, a) not in phases_of or (task, b) not in phases_of:
            continue
        pa, pb = phases_of[(task, a)], phases_of[(task, b)]
        for phase in [p for p in pa if p in pb]:
            logs, total = 0.0, 0.0
            for metric in METRIC_COLUMNS:
                va, vb = pa[phase].get(metric), pb[phase].get(metric)
                weight = settings.weights.get(metric, 0.0)
                if isinstance(va, bool) or isinstance(vb, bool):
                    continue
                ratio = va / vb if va is not None and vb not in (None, 0) else None
                records.append(Record("ergonomics_pairs", {
                    "fetched_at": fetched_at, "task": task, "phase": phase, "metric": metric,
                    "framework_a": a, "framework_b": b, "value_a": va, "value_b": vb,
                    "ratio": round(ratio, 4) if ratio is not None else None,
                    "weight": weight or None}))
                if weight and va is not None and vb is not None:
                    logs += weight * math.log((va + 1) / (vb + 1))
                    total += weight
            records.append(Record("ergonomics_pairs", {
                "fetched_at": fetched_at, "task": task, "phase": phase, "metric": COMPOSITE,
                "framework_a": a, "framework_b": b, "value_a": None, "value_b": None,
                "ratio": round(math.exp(logs / total), 4) if total else None,
                "weight": None}))
    return records


def settings_summary(config: SurveyConfig) -> dict[str, Any]:
    """The ergonomics settings as plain data (for the report)."""
    data = asdict(ergonomics_settings(config))
    data["kernels"] = str(data["kernels"])
    return data
