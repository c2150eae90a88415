"""Runs the stages of a survey in order and records how each source ended.

config -> collectors -> store -> report. Each source is isolated: a missing package is an
item error, an unreachable registry marks the source ``unreachable`` with the reason, and
an unexpected exception marks it ``error`` with nothing written; the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fwsurvey.config import SurveyConfig
from fwsurvey.lock import RunLock
from fwsurvey.provenance import run_versions
from fwsurvey.sources import Collector, ItemNotFound, PartialItem, Record, SourceUnreachable
from fwsurvey.store import ItemError, SourceOutcome, Store, utcnow

log = logging.getLogger(__name__)

STAGES = ("collect", "analyze", "train", "claims", "report")


class Progress(Protocol):
    """What the pipeline tells a user interface while it works."""

    def source_started(self, source: str, total: int) -> None: ...
    def item_done(self, source: str, item: str) -> None: ...
    def source_finished(self, outcome: SourceOutcome) -> None: ...


class SilentProgress:
    """Progress that shows nothing (tests, library use)."""

    def source_started(self, source: str, total: int) -> None:
        pass

    def item_done(self, source: str, item: str) -> None:
        pass

    def source_finished(self, outcome: SourceOutcome) -> None:
        pass


@dataclass
class RunResult:
    """What a run did: its id, final status, each source's outcome and the report path."""

    run_id: int
    status: str
    outcomes: list[SourceOutcome] = field(default_factory=list)
    report: Path | None = None


def collector_classes() -> dict[str, type[Collector]]:
    """Every registered source, by name, in run order."""
    from fwsurvey.collectors import SOURCES

    return SOURCES


def collect_source(store: Store, run_id: int, collector: Collector,
                   progress: Progress | None = None) -> SourceOutcome:
    """Fetch every item of one source and write it all, with its outcome, in one transaction."""
    progress = progress or SilentProgress()
    started = utcnow()
    records: list[Record] = []
    errors: list[ItemError] = []
    items_ok = 0
    name = collector.name
    try:
        collector.state = store.source_state(name)
        items = collector.items()
        progress.source_started(name, len(items))
        for index, item in enumerate(items):
            try:
                records.extend(collector.fetch(item))
                items_ok += 1
            except ItemNotFound as exc:
                errors.append(ItemError(item.key, "not_found", str(exc)))
            except PartialItem as exc:
                records.extend(exc.records)
                errors.append(ItemError(item.key, "incomplete", str(exc)))
                if exc.stop_source:
                    for rest in items[index + 1:]:
                        errors.append(ItemError(rest.key, "incomplete",
                                                f"not attempted: {exc}"))
                    break
            except SourceUnreachable as exc:
                # Retries are spent: the rest of this source would fail the same way.
                errors.append(ItemError(item.key, "unreachable", str(exc)))
                for rest in items[index + 1:]:
                    errors.append(ItemError(rest.key, "unreachable",
                                            f"not attempted: source unreachable ({exc})"))
                break
            finally:
                progress.item_done(name, item.key)
    except Exception as exc:  # a bug or an answer nobody planned for: write nothing of it
        log.debug("source %s failed", name, exc_info=True)
        outcome = SourceOutcome("collect", name, "error", started, utcnow(),
                                reason=f"{type(exc).__name__}: {exc}", items_ok=0, errors=errors)
        store.write_source(run_id, outcome)
        progress.source_finished(outcome)
        return outcome
    finally:
        collector.close()

    unreachable = [e for e in errors if e.kind == "unreachable"]
    if not errors:
        status, reason = "ok", None
    elif items_ok == 0 and unreachable:
        status, reason = "unreachable", unreachable[0].message
    elif items_ok == 0 and not records:
        status, reason = "error", "no item could be collected"
    else:
        status = "partial"
        reason = f"{len(errors)} of {len(errors) + items_ok} items not collected"
    outcome = SourceOutcome("collect", name, status, started, utcnow(), reason=reason,
                            items_ok=items_ok, errors=errors)
    try:
        store.write_source(run_id, outcome, records)
    except Exception as exc:  # the transaction rolled back: record why, keep going
        log.debug("writing source %s failed", name, exc_info=True)
        outcome = SourceOutcome("collect", name, "error", started, utcnow(),
                                reason=f"writing failed: {type(exc).__name__}: {exc}",
                                errors=errors)
        store.write_source(run_id, outcome)
    progress.source_finished(outcome)
    return outcome


def run_status(outcomes: list[SourceOutcome]) -> str:
    """``ok`` when every source is ok or skipped, ``failed`` on any error, else ``degraded``."""
    statuses = {o.status for o in outcomes}
    if "error" in statuses:
        return "failed"
    if statuses - {"ok", "skipped"}:
        return "degraded"
    return "ok"


def run_survey(
    config: SurveyConfig,
    db_path: Path,
    *,
    stages: tuple[str, ...] = STAGES,
    sources: list[str] | None = None,
    command: str = "run",
    progress: Progress | None = None,
    make_collector: Callable[[type[Collector], SurveyConfig], Collector] | None = None,
    report_dir: Path | None = None,
    analyze_paths: list[Path] | None = None,
    train_options: Any = None,
) -> RunResult:
    """Run ``stages`` under the database's lock, as one row of ``runs``.

    Raises LockHeld when another run holds the lock.
    """
    available = collector_classes()
    names = list(sources) if sources else list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; known sources: {', '.join(available)}")
    make_collector = make_collector or (lambda cls, cfg: cls(cfg))

    with RunLock(db_path):
        store = Store(db_path)
        try:
            interrupted = store.mark_interrupted_runs()
            if interrupted:
                log.warning("runs %s were interrupted; marked as such", interrupted)
            run_id = store.start_run(command, list(stages), run_versions(), config.sha256)
            result = RunResult(run_id, "running")
            try:
                if "collect" in stages:
                    for name in names:
                        result.outcomes.append(
                            _collect_one(store, run_id, config, available[name], name,
                                         make_collector, progress))
                if "analyze" in stages:
                    from fwsurvey.analyze import run_analyze

                    result.outcomes.extend(
                        run_analyze(store, run_id, config, analyze_paths, progress))
                if "train" in stages:
                    from fwsurvey.kernels.stage import options_from_config, run_train

                    options = train_options or options_from_config(config)
                    result.outcomes.extend(run_train(store, run_id, config, options, progress))
                if "claims" in stages:
                    from fwsurvey.claims import run_claims

                    result.outcomes.append(run_claims(store, run_id, config)[0])
                if "report" in stages:
                    result.outcomes.append(
                        _render(store, run_id, config, report_dir or config.report_dir, result))
                result.status = run_status(result.outcomes)
                store.finish_run(run_id, result.status)
            except KeyboardInterrupt:
                store.finish_run(run_id, "interrupted")
                raise
            except BaseException:
                store.finish_run(run_id, "failed")
                raise
            return result
        finally:
            store.close()


def _collect_one(store: Store, run_id: int, config: SurveyConfig, cls: type[Collector],
                 name: str, make_collector, progress: Progress | None) -> SourceOutcome:
    if not config.source(name).enabled:
        now = utcnow()
        outcome = SourceOutcome("collect", name, "skipped", now, now,
                                reason="disabled in the configuration")
        store.write_source(run_id, outcome)
        return outcome
    collector = make_collector(cls, config)
    return collect_source(store, run_id, collector, progress)


def _render(store: Store, run_id: int, config: SurveyConfig, out_dir: Path,
            result: RunResult) -> SourceOutcome:
    from fwsurvey.reports.render import render_report

    started = utcnow()
    try:
        result.report = render_report(store, config, out_dir, run_id=run_id)
        outcome = SourceOutcome("report", "markdown", "ok", started, utcnow(), items_ok=1)
    except Exception as exc:
        log.debug("report failed", exc_info=True)
        outcome = SourceOutcome("report", "markdown", "error", started, utcnow(),
                                reason=f"{type(exc).__name__}: {exc}")
    store.write_source(run_id, outcome)
    return outcome
