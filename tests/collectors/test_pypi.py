"""The PyPI collector against recorded index responses, with the HTTP layer faked."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests
import responses
from pypi_simple import PYPI_SIMPLE_ENDPOINT

from fwsurvey.collectors.pypi import (
    PyPICollector,
    json_api_base,
    release_cadence,
)
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import ConfigError, load_config
from fwsurvey.sources import Item, ItemNotFound, SourceUnreachable
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW, INDEX, MISSING, PYPI_FIXTURES, add_recorded, recorded


def collector_for(config_path, **kwargs) -> PyPICollector:
    return PyPICollector(load_config(config_path), now=lambda: FIXED_NOW, **kwargs)


def by_table(records, table):
    return [r.row for r in records if r.table == table]


def test_json_api_base_is_derived_from_the_simple_endpoint():
    assert json_api_base("https://example.test/simple/") == "https://example.test/pypi/"
    assert json_api_base("https://example.test/mirror/simple") == "https://example.test/mirror/pypi/"
    assert json_api_base("https://example.test/custom/index/") is None


def test_normal_package(write_config, pypi_index):
    records = collector_for(write_config()).fetch(Item("trax", "trax"))
    releases = {r["version"]: r for r in by_table(records, "pypi_releases")}
    # The page's own "versions" list, read independently of the collector.
    page = json.loads((PYPI_FIXTURES / "simple-trax.json").read_text())
    assert sorted(releases) == sorted(page["versions"]) and len(releases) == 24

    first = releases["1.0.0"]  # trax-1.0.0-py2.py3-none-any.whl and trax-1.0.0.tar.gz
    assert first["uploaded_at"] == "2019-10-08T06:18:10+00:00"
    assert first["last_upload_at"] == "2019-10-08T06:18:14+00:00"
    assert (first["file_count"], first["wheel_count"], first["sdist_count"]) == (2, 1, 1)
    assert first["total_bytes"] == 207186 + 144676
    assert first["python_tags"] == ["py2", "py3"]
    assert first["abi_tags"] == ["none"] and first["platforms"] == ["any"]
    assert first["yanked"] is False and first["is_prerelease"] is False
    assert first["framework"] == "trax"

    [package] = by_table(records, "pypi_packages")
    assert package["latest_version"] == "1.4.1"
    assert package["release_count"] == 24
    assert package["file_count"] == len(page["files"])
    assert package["first_release_at"] == "2019-10-08T06:18:10+00:00"
    assert package["latest_release_at"] == "2021-10-26T20:27:35+00:00"
    # 2021-10-26T20:27:35 to 2026-11-27T12:00:00
    expected_days = (FIXED_NOW - datetime(2021, 10, 26, 20, 27, 35, tzinfo=UTC)).total_seconds()
    assert package["days_since_last_release"] == round(expected_days / 86400, 2)
    assert package["releases_last_12_months"] == 0
    assert package["summary"] == "Trax"
    assert package["license"] == "Apache 2.0"
    assert package["metadata_source"] == "json-api"
    assert package["project_urls"] == {"Homepage": "http://github.com/google/trax"}
    assert package["fetched_at"] == "2026-11-27T12:00:00+00:00"


def test_yanked_releases(write_config, pypi_index):
    records = collector_for(write_config()).fetch(Item("jax", "jax"))
    releases = {r["version"]: r for r in by_table(records, "pypi_releases")}
    yanked = {v: r["yanked_reason"] for v, r in releases.items() if r["yanked"]}
    assert yanked == {
        "0.2.23": "Install command errors",
        "0.3.18": "Requires jaxlib==0.3.18 which doesn't exist",
        "0.4.0": "Bad jaxlib GPU release",
        "0.4.15": "accidentally required JAX_RELEASE=1",
        "0.4.32": None,
    }
    [package] = by_table(records, "pypi_packages")
    assert package["yanked_release_count"] == 5
    # A yanked version is not the latest and does not count as a release.
    finals = [v for v, r in releases.items() if r["is_prerelease"] is False and not r["yanked"]]
    assert package["release_count"] == len(finals)
    assert package["latest_version"] == "0.12.0.1"


def test_missing_package_is_an_item_error(write_config, pypi_index):
    collector = collector_for(write_config())
    with pytest.raises(ItemNotFound, match=MISSING):
        collector.fetch(Item(MISSING, "jax"))


def test_missing_package_does_not_stop_the_others(write_config, pypi_index, tmp_path):
    config_path = write_config(extra_packages=(MISSING,))
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    outcome = collect_source(store, run_id, collector_for(config_path))
    assert outcome.status == "partial"
    assert outcome.items_ok == 2
    [error] = outcome.errors
    assert (error.item, error.kind) == (MISSING, "not_found")
    assert "no project named" in error.message
    packages = [r["package"] for r in store.query("SELECT package FROM pypi_packages")]
    assert sorted(packages) == ["jax", "trax"]
    [row] = store.query("SELECT * FROM item_errors")
    assert row["item"] == MISSING and row["kind"] == "not_found"


def test_server_error_then_success_is_retried(write_config):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, INDEX + "simple/trax/", status=503, body="busy")
        rsps.add(responses.GET, INDEX + "simple/trax/", status=502, body="bad gateway")
        add_recorded(rsps, "simple/trax/")
        add_recorded(rsps, "pypi/trax/json")
        records = collector_for(write_config()).fetch(Item("trax", "trax"))
        simple_calls = [c for c in rsps.calls if c.request.url.endswith("simple/trax/")]
        assert len(simple_calls) == 3
    assert len(by_table(records, "pypi_releases")) == 24


def test_timeout_then_success_is_retried(write_config):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, INDEX + "simple/trax/",
                 body=requests.exceptions.ReadTimeout("read timed out"))
        add_recorded(rsps, "simple/trax/")
        add_recorded(rsps, "pypi/trax/json")
        records = collector_for(write_config()).fetch(Item("trax", "trax"))
    assert len(by_table(records, "pypi_packages")) == 1


def test_persistent_timeout_makes_the_source_unreachable(write_config):
    with responses.RequestsMock() as rsps:
        for _ in range(3):  # retries = 3 in the test config
            rsps.add(responses.GET, INDEX + "simple/trax/",
                     body=requests.exceptions.ReadTimeout("read timed out"))
        with pytest.raises(SourceUnreachable, match=r"timed out .*after 3 attempts"):
            collector_for(write_config()).fetch(Item("trax", "trax"))
        assert len(rsps.calls) == 3


def test_persistent_5xx_makes_the_source_unreachable(write_config):
    with responses.RequestsMock() as rsps:
        for _ in range(3):
            rsps.add(responses.GET, INDEX + "simple/trax/", status=500, body="oops")
        with pytest.raises(SourceUnreachable, match=r"HTTP 500"):
            collector_for(write_config()).fetch(Item("trax", "trax"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_registry_is_recorded_not_zeroed(write_config, tmp_path):
    """A real connection refused (nothing listens on the port): no rows, a reason."""
    config_path = write_config(index=f"http://127.0.0.1:{_closed_port()}/")
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("collect", ["collect"], {})
    outcome = collect_source(store, run_id, collector_for(config_path))
    assert outcome.status == "unreachable"
    assert "connection failed" in outcome.reason and "after 3 attempts" in outcome.reason
    assert [e.item for e in outcome.errors] == ["trax", "jax"]
    assert store.query("SELECT count(*) AS n FROM pypi_packages")[0]["n"] == 0
    assert store.query("SELECT count(*) AS n FROM pypi_releases")[0]["n"] == 0
    [row] = store.query("SELECT * FROM run_sources")
    assert row["status"] == "unreachable" and row["rows_written"] == 0
    assert row["reason"] == outcome.reason


def test_check_reports_reachability(write_config):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.HEAD, INDEX + "simple/trax/", status=200)
        assert collector_for(write_config()).check().reachable
    config_path = write_config(index=f"http://127.0.0.1:{_closed_port()}/")
    probe = collector_for(config_path).check()
    assert not probe.reachable and "connection failed" in probe.detail


def test_unknown_source_option_is_a_config_error(write_config):
    path = write_config()
    path.write_text(path.read_text() + 'index_ulr = "x"\n')
    with pytest.raises(ConfigError, match=r"sources\.pypi\.index_ulr: unknown key"):
        PyPICollector(load_config(path))


def test_release_cadence_known_answer():
    def rel(version, day, pre=False, yanked=False):
        return {"version": version, "is_prerelease": pre, "yanked": yanked,
                "uploaded_at": f"2026-{day}T00:00:00+00:00"}

    now = datetime(2026, 12, 31, tzinfo=UTC)
    releases = [
        rel("1.0", "01-01"),
        rel("1.1", "01-11"),           # gap 10 days
        rel("1.2rc1", "02-01", pre=True),
        rel("1.2", "03-02"),           # gap 50 days
        rel("1.3", "03-05", yanked=True),
        rel("1.4", "03-22"),           # gap 20 days
    ]
    cadence = release_cadence(releases, now)
    assert cadence["release_count"] == 4
    assert cadence["prerelease_count"] == 1
    assert cadence["yanked_release_count"] == 1
    assert cadence["median_days_between_releases"] == 20.0  # median of 10, 50, 20
    assert cadence["days_since_last_release"] == 284.0  # 2026-03-22 -> 2026-12-31
    assert cadence["releases_last_12_months"] == 4
    assert cadence["first_release_at"] == "2026-01-01T00:00:00+00:00"


def test_release_cadence_without_releases():
    cadence = release_cadence([], datetime(2026, 1, 1, tzinfo=UTC))
    assert cadence["release_count"] == 0
    assert cadence["median_days_between_releases"] is None
    assert cadence["days_since_last_release"] is None


def test_recorded_fixtures_name_no_registry_host():
    index_host = urlsplit(PYPI_SIMPLE_ENDPOINT).netloc
    for path in PYPI_FIXTURES.iterdir():
        assert index_host not in path.read_text(encoding="utf-8"), path.name
    for name in ("trax", "jax"):
        status, _, body = recorded(f"simple/{name}/")
        hosts = {urlsplit(f["url"]).netloc for f in json.loads(body)["files"]}
        assert status == 200 and hosts == {"files.invalid"}
