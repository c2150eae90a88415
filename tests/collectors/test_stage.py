"""The collect stage: how a source's item outcomes become its status, reason and rows."""

from __future__ import annotations

import pytest

from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.collectors.stage import CollectStage, collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import (
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Reachability,
    Record,
    SourceUnreachable,
)
from fwsurvey.stage import StageContext
from fwsurvey.store import Store

FETCHED_AT = "2026-11-27T12:00:00+00:00"


def release(package: str) -> Record:
    return Record("pypi_releases", {
        "package": package, "version": "1", "framework": "trax", "yanked": False,
        "file_count": 1, "wheel_count": 1, "sdist_count": 0, "other_count": 0,
        "fetched_at": FETCHED_AT})


class ScriptedCollector(Collector):
    """Items a, b, c; each answers as ``script`` says (a row, or an exception)."""

    name = "pypi"
    title = "scripted"
    Options = PyPICollector.Options  # the test config's [sources.pypi] has index_url

    def __init__(self, config, script: dict[str, Exception | None]):
        super().__init__(config)
        self.script = script
        self.closed = False

    def items(self):
        return [Item(key, "trax") for key in ("a", "b", "c")]

    def fetch(self, item: Item):
        answer = self.script.get(item.key)
        if answer is not None:
            raise answer
        return [release(item.key)]

    def check(self):
        return Reachability(True, "")

    def close(self):
        self.closed = True


@pytest.fixture
def collect(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")

    def run(script):
        collector = ScriptedCollector(config, script)
        outcome = collect_source(store, store.start_run("collect", ["collect"], {}), collector)
        assert collector.closed
        rows = [r["package"] for r in store.query(
            "SELECT package FROM pypi_releases WHERE run_id = (SELECT MAX(id) FROM runs)")]
        return outcome, rows

    yield run
    store.close()


def test_every_item_ok(collect):
    outcome, rows = collect({})
    assert (outcome.stage, outcome.source, outcome.status, outcome.reason) == (
        "collect", "pypi", "ok", None)
    assert outcome.items_ok == 3 and rows == ["a", "b", "c"]


def test_a_missing_item_makes_the_source_partial(collect):
    outcome, rows = collect({"b": ItemNotFound("b: not found (HTTP 404)")})
    assert (outcome.status, outcome.reason) == ("partial", "1 of 3 items not collected")
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("b", "not_found", "b: not found (HTTP 404)")]
    assert rows == ["a", "c"]


def test_nothing_found_is_an_error(collect):
    outcome, rows = collect({k: ItemNotFound(f"{k}: gone") for k in "abc"})
    assert (outcome.status, outcome.reason) == ("error", "no item could be collected")
    assert rows == []


def test_unreachable_stops_the_source(collect):
    outcome, _ = collect({"a": SourceUnreachable("index: connection refused")})
    assert (outcome.status, outcome.reason) == ("unreachable", "index: connection refused")
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("a", "unreachable", "index: connection refused"),
        ("b", "unreachable", "not attempted: source unreachable (index: connection refused)"),
        ("c", "unreachable", "not attempted: source unreachable (index: connection refused)")]


def test_unreachable_after_an_item_keeps_that_item(collect):
    outcome, rows = collect({"b": SourceUnreachable("timed out")})
    assert (outcome.status, outcome.reason) == ("partial", "2 of 3 items not collected")
    assert rows == ["a"]


def test_a_partial_item_that_stops_the_source_keeps_its_pages(collect):
    stop = PartialItem("rate limit exhausted", [release("b")], stop_source=True)
    outcome, rows = collect({"b": stop})
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("b", "incomplete", "rate limit exhausted"),
        ("c", "incomplete", "not attempted: rate limit exhausted")]
    assert (outcome.status, outcome.items_ok, rows) == ("partial", 1, ["a", "b"])


def test_a_bug_writes_nothing_of_the_source(collect):
    outcome, rows = collect({"b": RuntimeError("parser bug")})
    assert (outcome.status, outcome.reason) == ("error", "RuntimeError: parser bug")
    assert outcome.items_ok == 0 and rows == []


def test_a_disabled_source_is_skipped_and_never_built(write_config, tmp_path):
    config = load_config(write_config())
    built = []
    stage = CollectStage(sources=["github", "pypi"],
                         make_collector=lambda cls, cfg: built.append(cls.name) or
                         ScriptedCollector(cfg, {}))
    store = Store(tmp_path / "s.db")
    ctx = StageContext(store, store.start_run("collect", ["collect"], {}), config)
    github, pypi = stage.run(ctx)
    assert (github.source, github.status, github.reason) == (
        "github", "skipped", "disabled in the configuration")
    assert (pypi.source, pypi.status) == ("pypi", "ok")
    assert built == ["pypi"]
    store.close()


def test_unknown_source_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        CollectStage(sources=["pypi", "cran"])
    assert str(info.value) == ("unknown source 'cran'; known sources: "
                               "pypi, github, git, downloads, docs")
