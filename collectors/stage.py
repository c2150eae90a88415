"""The ``collect`` stage: every configured source, one unit (and one transaction) each.

A source's items are fetched one by one. A missing item is an item error; a partly fetched
item keeps its whole pages (and may stop the source, e.g. a spent rate limit); an
unreachable source stops at the first item that finds it so, the rest recorded as not
attempted. Any other exception (an unexpected HTTP status, a subprocess timeout, a parser
bug) fails that item only, as ``error``: one bad item never discards the others.

A collector's ``fetch`` may yield :class:`fwsurvey.sources.Checkpoint` markers between its
records: each commits everything tallied so far (:meth:`fwsurvey.stage.Tally.checkpoint`),
so a fault or a killed process keeps every committed batch. A source that never yields one
is written in one transaction with its outcome, as before. The unit's status and reason come
from :meth:`fwsurvey.stage.Unit.summarize`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial

import requests

from fwsurvey.collectors import SOURCES
from fwsurvey.config import SurveyConfig
from fwsurvey.errors import ConfigError
from fwsurvey.http import describe
from fwsurvey.sources import (
    Checkpoint,
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Record,
    SourceUnreachable,
)
from fwsurvey.stage import (
    BatchWriteFailed,
    Progress,
    SilentProgress,
    Stage,
    StageContext,
    Tally,
    Unit,
    UnitSkipped,
    run_unit,
)
from fwsurvey.store import SourceOutcome, Store

log = logging.getLogger(__name__)

#: Builds a source's collector from its class and the configuration (tests fake the clock).
MakeCollector = Callable[[type[Collector], SurveyConfig], Collector]


def default_collector(cls: type[Collector], config: SurveyConfig) -> Collector:
    """The collector as a run builds it."""
    return cls(config)


class SourceUnit(Unit):
    """One source: each item fetched in turn, written together or in committed batches."""

    def __init__(self, source: str, build: Callable[[], Collector], *,
                 skip_disabled: bool = True):
        self.source = source
        # Built when the unit runs: a disabled source never builds its collector.
        self.build = build
        self.skip_disabled = skip_disabled
        self.collector: Collector | None = None

    def run(self, ctx: StageContext, tally: Tally) -> None:
        if self.skip_disabled and not ctx.config.source(self.source).enabled:
            raise UnitSkipped("disabled in the configuration")
        self.collector = collector = self.build()
        collector.state = ctx.store.source_state(self.source)
        items = collector.items()
        tally.start(len(items))
        for index, item in enumerate(items):
            try:
                tally.done(item.key, fetch_item(collector, item, tally))
            except BatchWriteFailed:
                raise  # the store failed, not the item: the unit ends as error
            except ItemNotFound as exc:
                tally.fail(item.key, "not_found", str(exc))
            except PartialItem as exc:
                tally.add(exc.records)
                tally.fail(item.key, "incomplete", str(exc))
                if exc.stop_source:
                    for rest in items[index + 1:]:
                        tally.fail(rest.key, "incomplete", f"not attempted: {exc}",
                                   advance=False)
                    break
            except SourceUnreachable as exc:
                # Retries are spent: the rest of this source would fail the same way.
                tally.fail(item.key, "unreachable", str(exc))
                for rest in items[index + 1:]:
                    tally.fail(rest.key, "unreachable",
                               f"not attempted: source unreachable ({exc})", advance=False)
                break
            except Exception as exc:  # noqa: BLE001 - one item's fault, not the source's
                log.debug("%s %s failed", self.source, item.key, exc_info=True)
                tally.fail(item.key, "error", item_fault(exc))

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()


def item_fault(exc: BaseException) -> str:
    """``<Type>: message`` of an item's unexpected fault; an HTTP error's URL without its query."""
    detail = describe(exc) if isinstance(exc, requests.RequestException) else str(exc)
    return f"{type(exc).__name__}: {detail}"


def fetch_item(collector: Collector, item: Item, tally: Tally) -> list[Record]:
    """One item's records after its last :class:`Checkpoint`; the batches before it commit.

    At each checkpoint the item's records so far join the tally and are committed with it.
    If the item raises, the records since its last checkpoint are lost with the exception
    (only whole batches are kept); the caller records the item's fault.
    """
    pending: list[Record] = []
    for entry in collector.fetch(item):
        if isinstance(entry, Checkpoint):
            tally.add(pending)
            pending = []
            tally.checkpoint(f"{item.key}: {entry.note}" if entry.note else item.key)
        else:
            pending.append(entry)
    return pending


class CollectStage(Stage):
    """Collect every registered source (or the ones named), in registry order."""

    name = "collect"

    def __init__(self, sources: list[str] | None = None,
                 make_collector: MakeCollector | None = None):
        names = list(sources) if sources else list(SOURCES)
        unknown = [n for n in names if n not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; known sources: {', '.join(SOURCES)}")
        self.sources = names
        self.make_collector = make_collector or default_collector

    def check(self, config: SurveyConfig) -> None:
        """Every ``[sources.NAME]`` names a registered source, with keys it knows."""
        for name in config.sources:
            if name not in SOURCES:
                raise ConfigError(config.path, f"sources.{name}",
                                  f"unknown source (misspelt?); known: {', '.join(SOURCES)}")
            SOURCES[name].parse_options(config)

    def units(self, ctx: StageContext) -> Iterator[Unit]:
        for name in self.sources:
            yield SourceUnit(name, partial(self.make_collector, SOURCES[name], ctx.config))


def collect_source(store: Store, run_id: int, collector: Collector,
                   progress: Progress | None = None) -> SourceOutcome:
    """Fetch every item of one collector and write it, with its outcome (in batches where the
    collector yields checkpoints).

    The collector is used as given, enabled or not (tests, one-off collections).
    """
    ctx = StageContext(store, run_id, collector.config, progress or SilentProgress())
    unit = SourceUnit(collector.name, lambda: collector, skip_disabled=False)
    return run_unit(ctx, CollectStage.name, unit)
