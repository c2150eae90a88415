"""The stage contract: what every step of a survey (collect, analyze, train, claims, report)
implements, and the one helper that runs it.

A :class:`Stage` has a name, the stages whose data it reads (``needs``) and a list of
:class:`Unit` objects. A unit is one *source* in ``run_sources`` terms (``pypi``,
``ergonomics``, ``kernels/mlp_digits``, ``claims``, ...): it adds records and item errors to a
:class:`Tally`, and :func:`run_unit` does the rest the same way for every stage — timing,
progress, the status (ok / partial / unreachable / error / skipped) and the write of the
unit's rows together with its outcome in one transaction. A unit that raises writes nothing
but its outcome, so a failure halfway leaves the previous data intact.

A unit whose work is long (a source of big repositories) may commit in batches with
:meth:`Tally.checkpoint`: the rows tallied so far are written and committed at once, so a
fault or a killed process keeps them; the outcome is still written at the end. A unit that
never calls it keeps the one transaction.

Each domain package owns its ``stage.py`` (``fwsurvey.collectors.stage``, ...); the
application (``fwsurvey.pipeline``) registers them in run order and runs them in a loop.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Protocol

from fwsurvey.config import SurveyConfig
from fwsurvey.errors import ConfigError
from fwsurvey.sources import Record
from fwsurvey.store import ItemError, SourceOutcome, Store, utcnow

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What a running stage tells a user interface."""

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


class UnitFailed(Exception):
    """A unit cannot run at all; the message is stored as the reason, nothing else is written."""


class UnitSkipped(Exception):
    """A unit has nothing to do (disabled, nothing configured); the message says why."""


@dataclass
class StageContext:
    """What a stage runs against: the open store, the run, the configuration, the UI.

    ``artifacts`` carries what one stage hands on to the caller (the report's path).
    """

    store: Store
    run_id: int
    config: SurveyConfig
    progress: Progress = field(default_factory=SilentProgress)
    artifacts: dict[str, Any] = field(default_factory=dict)


class BatchWriteFailed(UnitFailed):
    """A batch commit (:meth:`Tally.checkpoint`) failed: the unit stops, earlier batches stay.

    A unit that isolates item faults must let this through: the store, not an item, failed.
    """


@dataclass
class Tally:
    """What one unit produced: rows to write, items done, items that failed.

    ``records`` holds the rows not yet committed; ``rows_committed`` counts those that
    :meth:`checkpoint` already wrote. ``commit`` (set by :func:`run_unit`) writes one batch in
    its own transaction and returns the rows written.
    """

    source: str
    progress: Progress
    records: list[Record] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    items_ok: int = 0
    total: int | None = None
    commit: Callable[[list[Record]], int] | None = None
    rows_committed: int = 0
    batches_committed: int = 0

    def start(self, total: int) -> None:
        """Say how many items the unit will work through (shows a progress bar)."""
        self.total = total
        self.progress.source_started(self.source, total)

    def add(self, records: Iterable[Record]) -> None:
        self.records.extend(records)

    def done(self, item: str, records: Iterable[Record] = ()) -> None:
        """One item finished well, with its rows."""
        self.records.extend(records)
        self.items_ok += 1
        self.progress.item_done(self.source, item)

    def checkpoint(self, note: str = "") -> int:
        """Write and commit every record tallied so far; return the rows written.

        Without a ``commit`` (a tally outside :func:`run_unit`) the records stay for the end.
        Raises :class:`BatchWriteFailed` when the write fails (nothing of this batch is kept).
        """
        if self.commit is None or not self.records:
            return 0
        try:
            written = self.commit(self.records)
        except Exception as exc:  # noqa: BLE001 - reworded for the unit's outcome
            raise BatchWriteFailed(f"writing a batch failed ({note or 'checkpoint'}):"
                                   f" {type(exc).__name__}: {exc}") from exc
        log.debug("%s: committed %d rows (%s)", self.source, written, note or "checkpoint")
        self.records = []
        self.rows_committed += written
        self.batches_committed += 1
        return written

    def fail(self, item: str, kind: str, message: str, *, advance: bool = True) -> None:
        """One item failed (``not_found``, ``unreachable``, ``incomplete``, ``error``, ...)."""
        self.errors.append(ItemError(item, kind, message))
        if advance:
            self.progress.item_done(self.source, item)


class Unit(ABC):
    """One source of a stage, written in one transaction together with its outcome."""

    #: The ``run_sources.source`` this unit's rows and outcome are written under.
    source: str
    #: How the default :meth:`summarize` names the unit's items ("3 of 5 items not collected").
    noun: ClassVar[str] = "items"
    verb: ClassVar[str] = "collected"

    @abstractmethod
    def run(self, ctx: StageContext, tally: Tally) -> None:
        """Do the work: ``tally.start``/``done``/``fail``/``add``. Raise to write nothing."""

    def summarize(self, tally: Tally) -> tuple[str, str | None]:
        """The unit's status and reason from what it tallied.

        ok without errors; ``unreachable`` when nothing came and the source could not be
        reached; ``error`` when nothing came at all; otherwise ``partial``.
        """
        if not tally.errors:
            return "ok", None
        unreachable = [e for e in tally.errors if e.kind == "unreachable"]
        if tally.items_ok == 0 and unreachable:
            return "unreachable", unreachable[0].message
        if tally.items_ok == 0 and not tally.records and not tally.rows_committed:
            return "error", f"no {self.noun.rstrip('s')} could be {self.verb}"
        return "partial", (f"{len(tally.errors)} of {len(tally.errors) + tally.items_ok}"
                           f" {self.noun} not {self.verb}")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the unit holds (connections). Called once, however it ended."""


class Stage(ABC):
    """One step of a survey: a name, what it reads, and the units it runs."""

    #: The stage's name, as ``runs.stages`` and ``run_sources.stage`` store it.
    name: ClassVar[str]
    #: Stages whose stored data this one reads (documentation and ordering checks).
    needs: ClassVar[tuple[str, ...]] = ()

    def check(self, config: SurveyConfig) -> None:  # noqa: B027 - optional hook
        """Validate this stage's configuration before the run starts (raise ConfigError)."""

    @abstractmethod
    def units(self, ctx: StageContext) -> Iterable[Unit]:
        """The units to run, in order. A generator may plan lazily."""

    def run(self, ctx: StageContext) -> list[SourceOutcome]:
        """Run every unit with :func:`run_unit`; the outcomes in order."""
        return [run_unit(ctx, self.name, unit) for unit in self.units(ctx)]


def skipped(ctx: StageContext, stage: str, source: str, reason: str) -> SourceOutcome:
    """Record that a unit was skipped, and why."""
    now = utcnow()
    outcome = SourceOutcome(stage, source, "skipped", now, now, reason=reason)
    ctx.store.write_source(ctx.run_id, outcome)
    ctx.progress.source_finished(outcome)
    return outcome


def run_unit(ctx: StageContext, stage: str, unit: Unit) -> SourceOutcome:
    """Run one unit and write its rows with its outcome in one transaction.

    An exception from the unit (a bug, or an answer nobody planned for) stores the unit as
    ``error`` with the reason and its item errors, and none of its uncommitted rows (batches
    the unit committed with :meth:`Tally.checkpoint` stay); the run goes on.
    """
    started = utcnow()
    tally = Tally(unit.source, ctx.progress)
    tally.commit = partial(ctx.store.write_records, ctx.run_id, unit.source)
    try:
        unit.run(ctx, tally)
    except UnitSkipped as exc:
        unit.close()
        return skipped(ctx, stage, unit.source, str(exc))
    except Exception as exc:  # noqa: BLE001 - isolate the unit; the run goes on
        log.debug("%s %s failed", stage, unit.source, exc_info=True)
        reason = (str(exc) if isinstance(exc, UnitFailed | ConfigError)
                  else f"{type(exc).__name__}: {exc}")
        outcome = SourceOutcome(stage, unit.source, "error", started, utcnow(), reason=reason,
                                errors=tally.errors)
        unit.close()
        ctx.store.write_source(ctx.run_id, outcome, rows_before=tally.rows_committed)
        ctx.progress.source_finished(outcome)
        return outcome
    unit.close()
    status, reason = unit.summarize(tally)
    outcome = SourceOutcome(stage, unit.source, status, started, utcnow(), reason=reason,
                            items_ok=tally.items_ok, errors=tally.errors)
    try:
        ctx.store.write_source(ctx.run_id, outcome, tally.records,
                               rows_before=tally.rows_committed)
    except Exception as exc:  # noqa: BLE001 - the transaction rolled back: record why
        log.debug("writing %s %s failed", stage, unit.source, exc_info=True)
        outcome = SourceOutcome(stage, unit.source, "error", started, utcnow(),
                                reason=f"writing failed: {type(exc).__name__}: {exc}",
                                errors=tally.errors)
        ctx.store.write_source(ctx.run_id, outcome, rows_before=tally.rows_committed)
    ctx.progress.source_finished(outcome)
    return outcome
