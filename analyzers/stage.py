"""The ``analyze`` stage: library surfaces and the ergonomics of code, into the store.

Three units, each written in one transaction with its outcome:

* ``library_surface``: each framework configured under ``[analyzers.library_surface.FW]``,
  introspected in a subprocess (fwsurvey.analyzers.library_surface), with the distributed
  strategies of ``[analyzers.distributed_strategies.FW]`` probed there too;
* ``ergonomics``: the paired implementations (``kernels/<task>/<framework>_impl.py``) or any
  files, folders and notebooks given, measured without importing them. Results are cached in
  ``ergonomics_cache`` by content hash and analyzer key, and misses are measured by worker
  processes under a per-file time and memory limit (fwsurvey.analyzers.measure and .workers);
  a file that cannot be read, overruns a limit or loses its worker is an item error, and the
  other files are still measured. Names resolve through the library index the surface unit
  just read, else the newest stored one. Given an executor other than the local one
  (``fwsurvey analyze --executor ray``), the misses go to it in batches of files
  (fwsurvey.analyzers.workers.run_batched), each batch under the same limits on its node;
  this process still writes every row;
* ``edits``: the size of each standard edit of the paired tasks (modular changes, issue #14:
  ``kernels/<task>/variants/``, fwsurvey.analyzers.edits), when ``kernels/variants.toml``
  lists them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fwsurvey.analyzers.edits import INDEX_NAME, edit_records
from fwsurvey.analyzers.ergonomics import LibraryIndex
from fwsurvey.analyzers.library_surface import (
    SurfaceFailed,
    build_index,
    inventory,
    strategy_records,
    surface_index,
    surface_records,
)
from fwsurvey.analyzers.measure import (
    analyzer_key,
    cacheable,
    file_records,
    limits,
    measure,
    measure_all,
)
from fwsurvey.analyzers.pairs import pair_records
from fwsurvey.analyzers.settings import (
    StrategySpec,
    check_settings,
    ergonomics_settings,
    strategy_settings,
    surface_fingerprint,
    surface_settings,
)
from fwsurvey.analyzers.targets import IMPL_SUFFIX, Target, kernel_targets, user_targets
from fwsurvey.analyzers.workers import WorkersFailed, run_batched
from fwsurvey.config import SurveyConfig
from fwsurvey.executor import Executor, LocalExecutor
from fwsurvey.provenance import installed_version
from fwsurvey.sources import Record
from fwsurvey.stage import Stage, StageContext, Tally, Unit, UnitFailed, UnitSkipped
from fwsurvey.store import Store, utcnow

SURFACE_SOURCE = "library_surface"
EDITS_SOURCE = "edits"
ERGONOMICS_SOURCE = "ergonomics"


class AnalyzeStage(Stage):
    """Library surfaces (unless paths are given), then the ergonomics of the code."""

    name = "analyze"

    def __init__(self, paths: list[Path] | None = None, executor: Executor | None = None):
        #: Files, folders or notebooks to measure instead of the paired implementations.
        self.paths = [Path(p) for p in paths] if paths else None
        #: Where the files are measured; None or local: worker processes of this machine.
        self.executor = executor

    def check(self, config: SurveyConfig) -> None:
        """Every ``[analyzers.*]`` table is valid, and every path given exists."""
        check_settings(config)
        for path in self.paths or ():
            if not path.exists():
                raise ValueError(f"no such file or folder: {path}")

    def units(self, ctx: StageContext) -> Iterator[Unit]:
        surface = None
        if not self.paths:
            surface = SurfaceUnit()
            yield surface
        yield ErgonomicsUnit(self.paths, surface=surface, executor=self.executor)
        # Modular changes: only where the kernels folder has a variant index (a survey of
        # other code or kernels without variants gets no row for it).
        if not self.paths and (ergonomics_settings(ctx.config).kernels / INDEX_NAME).exists():
            yield EditsUnit()


class SurfaceUnit(Unit):
    """Introspect each configured framework's surface; ``index`` holds what it read."""

    source = SURFACE_SOURCE

    def __init__(self) -> None:
        #: The library index of the surfaces read by :meth:`run`; None when none was.
        self.index: LibraryIndex | None = None

    def run(self, ctx: StageContext, tally: Tally) -> None:
        config = ctx.config
        specs = dict(surface_settings(config))
        strategies = strategy_settings(config)
        specs.update({fw: {} for fw in strategies if fw not in specs})
        if not specs:
            raise UnitSkipped("no [analyzers.library_surface] in the configuration")
        tally.start(len(specs))
        surfaces = []
        for fw, spec in specs.items():
            fw_strategies = strategies.get(fw, StrategySpec())
            try:
                surface = inventory(fw, spec, probes=fw_strategies.probes())
            except SurfaceFailed as exc:
                tally.fail(fw, "error", str(exc))
                continue
            surfaces.append(surface)
            package = config.frameworks[fw].pypi[0] if config.frameworks[fw].pypi else fw
            version = installed_version(package)
            tally.done(fw, [
                *surface_records(surface, spec, fetched_at=utcnow(), package_version=version,
                                 spec_sha256=surface_fingerprint(spec)),
                *strategy_records(surface, fw_strategies, fetched_at=utcnow(),
                                  package_version=version)])
            for e in surface.errors:
                tally.fail(f"{fw}:{e['item']}", e["kind"], e["message"], advance=False)
        self.index = surface_index(surfaces) if surfaces else None

    def summarize(self, tally: Tally) -> tuple[str, str | None]:
        if tally.items_ok == 0:
            return "error", "no framework's surface could be read"
        if tally.errors:
            return "partial", f"{len(tally.errors)} modules or symbols not found"
        return "ok", None


class ErgonomicsUnit(Unit):
    """Measure the paired implementations (no paths) or the given files, with their pairs."""

    source = ERGONOMICS_SOURCE

    def __init__(self, paths: list[Path] | None = None, *, surface: SurfaceUnit | None = None,
                 index: LibraryIndex | None = None, executor: Executor | None = None):
        self.paths = paths
        self.executor = executor
        # The index names resolve through: given, else the surface unit's (run before this
        # one), else the newest stored.
        self.surface = surface
        self.index = index

    def library_index(self, store: Store) -> LibraryIndex:
        """The index this unit resolves names through."""
        if self.index is not None:
            return self.index
        if self.surface is not None and self.surface.index is not None:
            return self.surface.index
        return stored_index(store)

    def run(self, ctx: StageContext, tally: Tally) -> None:
        config, paths = ctx.config, self.paths
        settings = ergonomics_settings(config)
        targets = user_targets(paths) if paths else kernel_targets(config, settings.kernels)
        if not targets:
            where = ", ".join(map(str, paths)) if paths else f"{settings.kernels}/*/*{IMPL_SUFFIX}"
            raise UnitSkipped(f"nothing to analyze under {where}")
        index = self.library_index(ctx.store)
        tally.start(len(targets))

        results: dict[str, dict[str, Any]] = {}
        info: dict[str, dict[str, Any]] = {}
        misses: list[tuple[Target, str, str, bytes]] = []
        cache_rows: list[Record] = []
        keys = {t.display: analyzer_key(settings, index, t) for t in targets}
        for t in targets:
            info[t.display] = {"bytes": None, "content_sha256": None, "cached": False}
            try:
                size = info[t.display]["bytes"] = t.path.stat().st_size
                if size > settings.max_file_bytes:  # not even read
                    results[t.display] = {"error": "too_large", "message":
                                          f"{size:,} bytes is over the limit of "
                                          f"{settings.max_file_bytes:,} (analyzers.ergonomics."
                                          "max_file_bytes)"}
                    continue
                data = t.path.read_bytes()
            except OSError as exc:  # gone, a broken link, no permission: this file only
                results[t.display] = {"error": "unreadable", "message": f"cannot be read"
                                      f" ({exc.strerror or exc}); check the file and its"
                                      " permissions"}
                continue
            sha = hashlib.sha256(data).hexdigest()
            info[t.display]["content_sha256"] = sha
            misses.append((t, sha, keys[t.display], data))
        cached = _cache_lookup(ctx.store, [(sha, key) for _, sha, key, _ in misses])
        jobs = []
        for t, sha, key, data in misses:
            if (sha, key) in cached:
                results[t.display] = cached[(sha, key)]
                info[t.display]["cached"] = True
                tally.progress.item_done(self.source, t.display)
            else:
                jobs.append((t, sha, key, data))
        fetched_at = utcnow()
        files = [(t.display, data, t.framework) for t, _, _, data in jobs]
        if self.executor is None or isinstance(self.executor, LocalExecutor):
            measured = measure_all(files, settings, index)
        else:
            measured = run_batched(self.executor, measure, files, (settings, index),
                                   limits(settings), settings.workers)
        try:
            for (t, sha, key, _), result in zip(jobs, measured, strict=True):
                results[t.display] = result
                if cacheable(result):  # a failure due to a limit is measured again next run
                    cache_rows.append(Record("ergonomics_cache", {
                        "content_sha256": sha, "analyzer_key": key,
                        "result": json.dumps(result), "fetched_at": fetched_at}))
                tally.progress.item_done(self.source, t.display)
        except WorkersFailed as exc:
            raise UnitFailed(str(exc)) from None

        records, errors = file_records(targets, results, info, fetched_at)
        if not paths:
            records += pair_records(config.compare, settings, targets, results, fetched_at)
        tally.add([*records, *cache_rows])
        # Progress went as results came (cache hits first); the errors keep the files' order.
        for error in errors:
            tally.fail(error.item, error.kind, error.message, advance=False)
        tally.items_ok = len(targets) - len(errors)

    def summarize(self, tally: Tally) -> tuple[str, str | None]:
        if not tally.errors:
            return "ok", None
        if tally.items_ok == 0:
            return "error", "no file could be analyzed"
        total = tally.items_ok + len(tally.errors)
        return "partial", f"{len(tally.errors)} of {total} files not analyzed"


class EditsUnit(Unit):
    """Modular changes: the size of each standard edit of the paired tasks, per framework
    (fwsurvey.analyzers.edits), from ``kernels/variants.toml`` and the variant files."""

    source = EDITS_SOURCE
    noun = "edits"
    verb = "measured"

    def run(self, ctx: StageContext, tally: Tally) -> None:
        kernels = ergonomics_settings(ctx.config).kernels
        records, items = edit_records(kernels, tuple(ctx.config.compare), utcnow(),
                                      ctx.config.path.parent)
        if not items:
            raise UnitSkipped(f"no edits listed in {kernels / INDEX_NAME}")
        tally.start(len(items))
        tally.add(records)
        for record in records:
            if record.row["status"] == "error":
                item = f"{record.row['task']}/{record.row['edit']}/" \
                       f"{record.row['framework']}"
                tally.fail(item, "parse_error", record.row["note"], advance=False)
        tally.items_ok = len(items) - len(tally.errors)


def stored_index(store: Store) -> LibraryIndex:
    """The library index of the newest run that stored one, per framework."""
    rows = store.query(
        "SELECT i.name, i.defined_as, i.defaults, i.methods FROM library_index i"
        " JOIN (SELECT framework, MAX(run_id) AS run_id FROM library_index GROUP BY framework)"
        " latest USING (framework, run_id)")
    return build_index(rows)


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
