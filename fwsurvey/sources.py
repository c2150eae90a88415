"""The one interface every collector implements.

A collector turns the configuration into a list of items (a package, a repository, ...) and
each item into :class:`Record` objects. It never writes to the store: its stage gathers
the records of a whole source and the store writes them in one transaction, so a failure
halfway through a source leaves the previous data untouched.

A long item (a big repository's issues, a long git history) may be fetched as a generator
that yields :class:`Checkpoint` markers between its records: at each one the stage commits
everything yielded so far (rows and the ``source_state`` watermark that resumes after them),
so a fault or a killed process later in the source keeps every batch already committed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import model_validator

from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.model import ConfigModel, validate


@dataclass(frozen=True)
class Record:
    """One row for one table. The store adds ``run_id`` and ``source``."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """Yielded by :meth:`Collector.fetch` between records: commit everything yielded so far.

    The records before it (with the state record of the batch they complete, yielded before
    the marker) are written and committed in one transaction. Records yielded after the last
    checkpoint of an item that then fails are dropped: only whole batches are kept, so a
    watermark never runs ahead of the rows it covers. ``note`` says what the batch was (logs).
    """

    note: str = ""


@dataclass(frozen=True)
class Item:
    """One unit of work for a source: the key it is known by and the framework it belongs to."""

    key: str
    framework: str


@dataclass(frozen=True)
class Reachability:
    """Whether a source answered a cheap probe, and why not if it did not."""

    reachable: bool
    detail: str


class ItemNotFound(Exception):
    """The source answered, and the item does not exist there (a 404, a missing repo)."""


class SourceUnreachable(Exception):
    """The source could not be reached (connection refused, timeouts, 5xx after retries)."""


class PartialItem(Exception):
    """An item was only partly fetched (a rate limit ran out, a page failed midway).

    ``records`` holds what was fetched and is consistent on its own (whole pages only,
    with a state record that resumes after them); the collect stage stores it and records the
    item as ``incomplete``. With ``stop_source`` the remaining items are not attempted.
    """

    def __init__(self, message: str, records: Iterable[Record], stop_source: bool = False):
        super().__init__(message)
        self.records = list(records)
        self.stop_source = stop_source


class SourceOptions(ConfigModel):
    """A source's own keys in ``[sources.NAME]`` (besides enabled, timeout, retries, backoff).

    Each collector subclasses it with its keys and their defaults. An empty string means the
    default, as the shipped ``fwsurvey.toml`` documents (``api_url = ""``).
    """

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != ""}
        return data


class Collector(ABC):
    """Base class of every source. Subclasses set ``name``, ``title`` and ``Options``."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: The model of the source's own keys in ``[sources.NAME]``.
    Options: ClassVar[type[SourceOptions]] = SourceOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None):
        self.config = config
        self.settings = settings or config.source(self.name)
        #: The validated options (an instance of ``Options``).
        self.options = self.parse_options(config, self.settings)
        #: Stored resume points by (item, name), loaded by the stage before items().
        self.state: dict[tuple[str, str], str | None] = {}

    @classmethod
    def parse_options(cls, config: SurveyConfig,
                      settings: SourceSettings | None = None) -> SourceOptions:
        """``[sources.NAME]``'s own keys as ``Options``; ConfigError naming the dotted key."""
        settings = settings or config.source(cls.name)
        return validate(cls.Options, settings.options, config.path, prefix=f"sources.{cls.name}")

    def state_record(self, item: str, name: str, value: str | None,
                     fetched_at: str) -> Record:
        """A record that moves a resume point; it commits with the rows it covers."""
        return Record("source_state", {"item": item, "name": name, "value": value,
                                       "fetched_at": fetched_at})

    @abstractmethod
    def items(self) -> list[Item]:
        """The items this source covers under the current configuration."""

    @abstractmethod
    def fetch(self, item: Item) -> Iterable[Record | Checkpoint]:
        """Fetch one item: its records, optionally in batches separated by :class:`Checkpoint`.

        Raises ItemNotFound (the item does not exist), PartialItem (part of it fetched) or
        SourceUnreachable (the whole source is gone: the remaining items are not attempted).
        Any other exception fails this item only (kind ``error``); the next item runs.
        """

    @abstractmethod
    def check(self) -> Reachability:
        """A cheap probe: can the source be reached right now?"""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once after the source has run."""
