"""The downloads collector against recorded pypistats answers, with the HTTP layer faked."""

from __future__ import annotations

import socket

import pytest
import requests
import responses

from fwsurvey.collectors.downloads import DownloadsCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import Item, ItemNotFound
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW, FIXTURES

API = "https://downloads.invalid/api/"  # [sources.downloads] api_url in the test config
TRAX = Item("trax", "trax")


def recorded(name: str) -> str:
    return (FIXTURES / "downloads" / name).read_text(encoding="utf-8")


def serve_trax(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, API + "packages/trax/recent", body=recorded("trax-recent.json"),
             content_type="application/json")
    rsps.add(responses.GET, API + "packages/trax/overall?mirrors=false",
             body=recorded("trax-overall.json"), content_type="application/json")


def collector(config, sleeps: list[float] | None = None) -> DownloadsCollector:
    return DownloadsCollector(config, now=lambda: FIXED_NOW,
                              sleep=(sleeps if sleeps is not None else []).append)


def test_recent_totals_and_the_daily_series(write_config):
    with responses.RequestsMock() as rsps:
        serve_trax(rsps)
        records = collector(load_config(write_config())).fetch(TRAX)
    [snapshot] = [r.row for r in records if r.table == "downloads"]
    assert (snapshot["last_day"], snapshot["last_week"], snapshot["last_month"]) == (
        412, 2997, 12873)
    assert (snapshot["series_start"], snapshot["series_end"]) == ("2026-11-22", "2026-11-26")
    assert snapshot["series_days"] == 5
    assert snapshot["series_total"] == 380 + 402 + 455 + 431 + 398
    assert snapshot["fetched_at"] == "2026-11-27T12:00:00+00:00"
    daily = [(r.row["date"], r.row["downloads"]) for r in records if r.table == "downloads_daily"]
    assert daily[0] == ("2026-11-22", 380) and len(daily) == 5


def test_unknown_package_is_an_item_error(write_config):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, API + "packages/nope/recent", status=404,
                 body=recorded("not-found.html"), content_type="text/html")
        with pytest.raises(ItemNotFound, match="pypistats has no package"):
            collector(load_config(write_config())).fetch(Item("nope", "jax"))


def test_server_error_then_success_is_retried(write_config):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, API + "packages/trax/recent", status=503, body="busy")
        rsps.add(responses.GET, API + "packages/trax/recent", status=429, body="slow down")
        serve_trax(rsps)
        records = collector(load_config(write_config())).fetch(TRAX)
    assert len([r for r in records if r.table == "downloads_daily"]) == 5


def test_timeouts_make_the_source_unreachable_with_no_rows(write_config, tmp_path):
    store = Store(tmp_path / "s.db")
    with responses.RequestsMock() as rsps:
        for _ in range(3):
            rsps.add(responses.GET, API + "packages/trax/recent",
                     body=requests.exceptions.ReadTimeout("read timed out"))
        outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                                 collector(load_config(write_config())))
    assert outcome.status == "unreachable"
    assert "timed out" in outcome.reason and "after 3 attempts" in outcome.reason
    assert store.query("SELECT count(*) AS n FROM downloads") == [{"n": 0}]


def test_unreachable_api_is_recorded_with_the_reason(write_config, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_config()
    path.write_text(path.read_text().replace(API, f"http://127.0.0.1:{port}/api/"))
    config = load_config(path)
    store = Store(tmp_path / "s.db")
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             collector(config))
    assert outcome.status == "unreachable" and "connection failed" in outcome.reason
    assert not collector(config).check().reachable


# -- faults (issue #15): what each keeps, row by row ----------------------------------------

#: A constructed answer for jax (the API's shape, as in the recorded trax answers).
JAX_RECENT = {"data": {"last_day": 10, "last_week": 70, "last_month": 300}, "package": "jax",
              "type": "recent_downloads"}
JAX_OVERALL = {"data": [{"category": "without_mirrors", "date": "2026-11-26", "downloads": 9},
                        {"category": "with_mirrors", "date": "2026-11-26", "downloads": 11}],
               "package": "jax", "type": "overall_downloads"}


def serve_jax(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, API + "packages/jax/recent", json=JAX_RECENT)
    rsps.add(responses.GET, API + "packages/jax/overall?mirrors=false", json=JAX_OVERALL)


def collect(write_config, tmp_path, serve, sleeps=None):
    store = Store(tmp_path / "s.db")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve(rsps)
        outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                                 collector(load_config(write_config()), sleeps))
    daily = store.query("SELECT package, date, downloads FROM downloads_daily"
                        " ORDER BY package, date")
    snapshots = store.query("SELECT package, last_month, series_days FROM downloads"
                            " ORDER BY package")
    store.close()
    return outcome, daily, snapshots


def test_a_403_fails_that_package_only(write_config, tmp_path):
    def serve(rsps):
        rsps.add(responses.GET, API + "packages/trax/recent", status=403, body="forbidden")
        serve_jax(rsps)

    outcome, daily, snapshots = collect(write_config, tmp_path, serve)
    assert daily == [{"package": "jax", "date": "2026-11-26", "downloads": 9}]
    assert snapshots == [{"package": "jax", "last_month": 300, "series_days": 1}]
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("trax", "error", "HTTPError: HTTP 403 Forbidden from "
                          "https://downloads.invalid/api/packages/trax/recent")]


def test_a_429_with_retry_after_waits_that_long(write_config, tmp_path):
    def serve(rsps):
        rsps.add(responses.GET, API + "packages/trax/recent", status=429,
                 headers={"Retry-After": "5"})
        serve_trax(rsps)
        serve_jax(rsps)

    sleeps: list[float] = []
    outcome, daily, snapshots = collect(write_config, tmp_path, serve, sleeps)
    assert outcome.status == "ok" and sleeps == [5.0]
    assert [(s["package"], s["series_days"]) for s in snapshots] == [("jax", 1), ("trax", 5)]


@pytest.mark.parametrize("headers, waits", [({}, [1.0, 2.0]), ({"Retry-After": "3600"}, [])])
def test_a_rate_limit_that_outlasts_the_wait_stops_the_source(write_config, tmp_path,
                                                              headers, waits):
    def serve(rsps):
        for _ in range(3):
            rsps.add(responses.GET, API + "packages/trax/recent", status=429, headers=headers)
        serve_jax(rsps)

    sleeps: list[float] = []
    outcome, daily, snapshots = collect(write_config, tmp_path, serve, sleeps)
    assert sleeps == waits and daily == [] and snapshots == []
    assert [(e.item, e.kind) for e in outcome.errors] == [("trax", "incomplete"),
                                                          ("jax", "incomplete")]
    assert outcome.errors[0].message.startswith("rate limit exhausted while fetching")
    assert outcome.errors[1].message.startswith("not attempted: rate limit exhausted")


def test_a_5xx_midway_through_a_package_keeps_the_packages_before(write_config, tmp_path):
    def serve(rsps):
        serve_jax(rsps)
        rsps.add(responses.GET, API + "packages/trax/recent", body=recorded("trax-recent.json"),
                 content_type="application/json")
        for _ in range(3):
            rsps.add(responses.GET, API + "packages/trax/overall?mirrors=false", status=502)

    path = write_config()
    path.write_text(path.read_text().replace('pypi = ["trax"]', 'pypi = []', 1)
                    .replace('pypi = ["jax"]', 'pypi = ["jax", "trax"]', 1))
    outcome, daily, snapshots = collect(lambda: path, tmp_path, serve)
    assert [s["package"] for s in snapshots] == ["jax"] and len(daily) == 1
    [error] = outcome.errors
    assert (error.item, error.kind) == ("trax", "unreachable") and "HTTP 502" in error.message
