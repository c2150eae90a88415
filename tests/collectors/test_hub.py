"""The Hub source against built listing pages, served through huggingface_hub's own client.

huggingface_hub 2.x sends its requests with httpx2 (which ``responses`` cannot intercept), so
the pages are served by an ``httpx2.MockTransport`` under the collector's transport guard:
the client's real code paths run (Link-header pagination, its retries of 429 and 5xx).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.utils import _http as hf_http

from fwsurvey.collectors import hub
from fwsurvey.collectors.hub import HubCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import ConfigError, load_config
from fwsurvey.sources import Item, SourceUnreachable
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW

REPO = Path(__file__).parent.parent.parent
MODELS = json.loads((REPO / "tests" / "fixtures" / "hub" / "models.json").read_text())

CONFIG = """
[survey]
compare = ["pytorch", "trax"]
database = "out/test.db"
datasette = "{datasette}"

[frameworks.pytorch]
name = "PyTorch"
pypi = ["torch"]

[frameworks.trax]
name = "Trax"
pypi = ["trax"]

[sources.hub]
retries = 3
backoff = 0
timeout = 5
max_models = {max_models}
top_n = 2
{extra}
"""


@pytest.fixture
def config_path(tmp_path):
    def write(max_models: int = 100, extra: str = "") -> Path:
        path = tmp_path / "fwsurvey.toml"
        path.write_text(CONFIG.format(datasette=REPO / "datasette.yml", max_models=max_models,
                                      extra=extra))
        return path
    return write


@pytest.fixture
def sleeps(monkeypatch):
    """The client's waits between retries, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(hf_http.time, "sleep", waited.append)
    return waited


class Hub:
    """The model listing, in pages of ``page_size`` with ``Link`` headers to the next one.

    ``faults`` are answered first, in order (a status code with headers, or an exception).
    """

    def __init__(self, page_size: int = 2, faults: list | None = None):
        self.page_size = page_size
        self.faults = list(faults or [])
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            status, headers = fault
            return httpx2.Response(status, headers=headers, text="busy")
        assert request.url.path == "/api/models"
        params = request.url.params
        models = list(MODELS.get(params["filter"], []))
        if params.get("sort") == "downloads":
            models.sort(key=lambda m: -m["downloads"])
        size = min(int(params.get("limit", self.page_size)), self.page_size)
        cursor = int(params.get("cursor", 0))
        headers = {}
        if cursor + size < len(models):
            following = request.url.copy_merge_params({"cursor": cursor + size})
            headers["Link"] = f'<{following}>; rel="next"'
        return httpx2.Response(200, json=models[cursor:cursor + size], headers=headers)


def collector(path: Path, server: Hub) -> HubCollector:
    return HubCollector(load_config(path), now=lambda: FIXED_NOW,
                        transport=lambda: httpx2.MockTransport(server))


@pytest.fixture
def closing():
    """Collectors built in a test give huggingface_hub its own client back afterwards."""
    built: list[HubCollector] = []
    yield built.append
    for c in built:
        c.close()


def rows(records, table):
    return [r.row for r in records if r.table == table]


def test_count_pages_through_the_link_header(config_path, closing):
    server = Hub(page_size=2)
    c = collector(config_path(), server)
    closing(c)
    records = c.fetch(Item("trax:trax", "trax"))
    [count] = rows(records, "hub_model_counts")
    assert count["model_count"] == len(MODELS["trax"]) == 3
    assert count["complete"] is True and count["primary_tag"] is True
    # Two pages of the count: the second is the Link header's URL, followed by the client.
    listing = [r for r in server.requests if "sort" not in r.url.params]
    assert count["requests"] == len(listing) == 2
    assert listing[1].url.params["cursor"] == "2"
    assert json.loads(count["query"]) == {"method": "HfApi.list_models", "filter": "trax",
                                          "full": False}
    assert count["client_version"] == huggingface_hub.__version__
    assert count["fetched_at"] == "2026-11-27T12:00:00+00:00"
    assert count["endpoint"] == c.api.endpoint
    # The top models by downloads, as the listing sorted them (top_n = 2).
    top = rows(records, "hub_top_models")
    assert [(t["rank"], t["model_id"], t["downloads"], t["likes"]) for t in top] == [
        (1, "someone/trax-transformer-lm", 40, 1), (2, "google/trax-reformer-enwik8", 12, 3)]
    assert top[0]["last_modified"] == "2022-07-15T08:30:00+00:00"
    assert json.loads(top[0]["query"])["expand"] == ["downloads", "likes", "lastModified"]


def test_the_cap_stores_a_lower_bound(config_path, closing, tmp_path):
    server = Hub(page_size=2)
    c = collector(config_path(max_models=3), server)
    closing(c)
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    outcome = collect_source(store, run_id, c)
    assert outcome.status == "ok"
    counts = {r["framework"]: r for r in store.query("SELECT * FROM hub_model_counts")}
    # 7 pytorch models: paging stops after the 4th (two pages of 2), not at the listing's end.
    assert (counts["pytorch"]["model_count"], counts["pytorch"]["complete"]) == (3, 0)
    assert counts["pytorch"]["requests"] == 2 and counts["pytorch"]["max_models"] == 3
    assert (counts["trax"]["model_count"], counts["trax"]["complete"]) == (3, 1)


@pytest.mark.parametrize("fault, reason", [
    ((503, {}), "HTTP 503 from"),
    (httpx2.ReadTimeout("read timed out"), "timed out (ReadTimeout)"),
])
def test_a_hub_that_stays_down_is_unreachable_not_zero(config_path, closing, sleeps, tmp_path,
                                                       fault, reason):
    server = Hub(faults=[fault] * 10)
    c = collector(config_path(), server)
    closing(c)
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    outcome = collect_source(store, run_id, c)
    assert outcome.status == "unreachable"
    assert reason in outcome.reason and "after 3 attempts" in outcome.reason
    assert "?" not in outcome.reason  # the query string is not repeated
    assert len(server.requests) == 3  # the source's retries, not the client's five
    assert len(sleeps) == 2
    assert [e.item for e in outcome.errors] == ["pytorch:pytorch", "trax:trax"]
    assert store.query("SELECT count(*) AS n FROM hub_model_counts")[0]["n"] == 0
    assert store.query("SELECT count(*) AS n FROM hub_top_models")[0]["n"] == 0
    [row] = store.query("SELECT status, reason, rows_written FROM run_sources")
    assert row["status"] == "unreachable" and row["rows_written"] == 0


def test_a_5xx_then_success_is_retried(config_path, closing, sleeps):
    server = Hub(faults=[(502, {})])
    c = collector(config_path(), server)
    closing(c)
    [count] = rows(c.fetch(Item("trax:trax", "trax")), "hub_model_counts")
    assert count["model_count"] == 3 and count["requests"] == 3  # one retry, two pages
    assert sleeps == [1]


def test_a_429_waits_its_retry_after(config_path, closing, sleeps):
    server = Hub(faults=[(429, {"Retry-After": "7"})])
    c = collector(config_path(), server)
    closing(c)
    [count] = rows(c.fetch(Item("trax:trax", "trax")), "hub_model_counts")
    assert count["model_count"] == 3
    assert sleeps == [8.0]  # the client waits Retry-After plus one second


def test_a_429_longer_than_allowed_stops_the_source(config_path, closing, sleeps, tmp_path):
    server = Hub(faults=[(429, {"Retry-After": "3600"})])
    c = collector(config_path(extra="max_rate_limit_wait = 60.0"), server)
    closing(c)
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    outcome = collect_source(store, run_id, c)
    assert sleeps == [] and len(server.requests) == 1
    assert [(e.item, e.kind) for e in outcome.errors] == [
        ("pytorch:pytorch", "incomplete"), ("trax:trax", "incomplete")]
    assert "Retry-After 3600 s" in outcome.errors[0].message
    assert "not attempted" in outcome.errors[1].message
    assert store.query("SELECT count(*) AS n FROM hub_model_counts")[0]["n"] == 0


def test_offline_mode_is_unreachable(config_path, closing, monkeypatch):
    monkeypatch.setattr(hub, "is_offline_mode", lambda: True)
    server = Hub()
    c = collector(config_path(), server)
    closing(c)
    with pytest.raises(SourceUnreachable, match="HF_HUB_OFFLINE"):
        c.fetch(Item("trax:trax", "trax"))
    assert server.requests == []
    assert not c.check().reachable


def test_tags_name_configured_frameworks(config_path):
    path = config_path(extra='tags = { pytorch = ["pytorch", "transformers"], mxnet = ["mxnet"] }')
    with pytest.raises(ConfigError, match=r"sources\.hub\.tags\.mxnet: not a configured"):
        HubCollector(load_config(path))
    path = config_path(extra='tags = { pytorch = ["pytorch", "transformers"] }')
    c = HubCollector(load_config(path))
    assert [i.key for i in c.items()] == ["pytorch:pytorch", "pytorch:transformers"]
    # Absent: each configured framework's own tag.
    c = HubCollector(load_config(config_path()))
    assert [i.key for i in c.items()] == ["pytorch:pytorch", "trax:trax"]


def _metric_values(store: Store, run_id: int) -> dict[str, dict]:
    from fwsurvey.claims.registry import load_registry
    metric = load_registry(REPO / "claims.toml").metrics["hub_models"]
    got = store.query(metric.sql, {"run_id": run_id, "a": "pytorch", "b": "trax"})
    return {r["framework"]: r for r in got}


def test_the_metric_reads_the_counts_either_way(config_path, closing, tmp_path):
    store = Store(tmp_path / "s.db")
    # Run 1: complete counts (pytorch 7, trax 3) and a context tag that never counts.
    extra = 'tags = { pytorch = ["pytorch", "trax"], trax = ["trax"] }'
    c = collector(config_path(extra=extra), Hub(page_size=5))
    closing(c)
    run1 = store.start_run("collect", ["collect"], {})
    collect_source(store, run1, c)
    values = _metric_values(store, run1)
    assert {fw: r["value"] for fw, r in values.items()} == {"pytorch": 7, "trax": 3}
    assert values["trax"]["note"] == "tag trax: 3 models"
    # Run 2: the tags swapped: the metric goes the other way (trax 7, pytorch 3).
    swapped = 'tags = { pytorch = ["trax"], trax = ["pytorch"] }'
    c = collector(config_path(extra=swapped), Hub(page_size=5))
    closing(c)
    run2 = store.start_run("collect", ["collect"], {})
    collect_source(store, run2, c)
    assert {fw: r["value"] for fw, r in _metric_values(store, run2).items()} == {
        "pytorch": 3, "trax": 7}
    # As of run 1, run 1's values still read.
    assert _metric_values(store, run1)["pytorch"]["value"] == 7
    # Run 3: capped at 3: pytorch's 3 is a lower bound no larger than trax's complete 3,
    # so it decides nothing (no value); a lower bound above the other side still counts.
    c = collector(config_path(max_models=3), Hub(page_size=5))
    closing(c)
    run3 = store.start_run("collect", ["collect"], {})
    collect_source(store, run3, c)
    values = _metric_values(store, run3)
    assert values["pytorch"]["value"] is None and values["trax"]["value"] == 3
    assert values["pytorch"]["note"] == ("tag pytorch: at least 3 models"
                                         " (listing capped at 3)")
    c = collector(config_path(max_models=2), Hub(page_size=5))
    closing(c)
    run4 = store.start_run("collect", ["collect"], {})
    collect_source(store, run4, c)
    values = _metric_values(store, run4)
    assert values["pytorch"]["value"] is None and values["trax"]["value"] is None
