"""The PyPI collector against recorded index responses, with the HTTP layer faked."""

from __future__ import annotations

import json
import socket
from contextlib import contextmanager
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


# -- faults (issue #15): what each keeps, row by row ----------------------------------------


def recorded_versions(name: str) -> list[str]:
    """The versions the recorded Simple page lists, read independently of the collector."""
    return sorted(json.loads((PYPI_FIXTURES / f"simple-{name}.json").read_text())["versions"])


def collect_with(config_path, tmp_path, serve, sleeps=None):
    """Collect trax and jax against ``serve(rsps)``; (outcome, {package: versions}, packages)."""
    store = Store(tmp_path / "s.db")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve(rsps)
        collector = collector_for(config_path, sleep=(sleeps if sleeps is not None
                                                      else []).append)
        outcome = collect_source(store, store.start_run("collect", ["collect"], {}), collector)
    versions: dict[str, list[str]] = {}
    for row in store.query("SELECT package, version FROM pypi_releases ORDER BY package"):
        versions.setdefault(row["package"], []).append(row["version"])
    packages = store.query("SELECT package, metadata_source, release_count FROM pypi_packages"
                           " ORDER BY package")
    store.close()
    return outcome, {k: sorted(v) for k, v in versions.items()}, packages


def serve_all_but(*replaced: str):
    def serve(rsps):
        for name in ("trax", "jax"):
            for key in (f"simple/{name}/", f"pypi/{name}/json"):
                if key not in replaced:
                    add_recorded(rsps, key)
    return serve


@pytest.mark.parametrize("fault, kept_reason", [
    ({"status": 403, "body": "forbidden"}, "HTTP 403 Forbidden from"),
    ({"status": 410, "body": "gone"}, "HTTP 410 Gone from"),
    ({"status": 500, "body": "oops"}, "HTTP 500 Internal Server Error from"),
    ({"body": requests.exceptions.ReadTimeout("read timed out")}, "timed out"),
])
def test_a_metadata_failure_keeps_the_releases_and_the_next_package(write_config, tmp_path,
                                                                    fault, kept_reason):
    def serve(rsps):
        serve_all_but("pypi/trax/json")(rsps)
        for _ in range(3):  # retries = 3 in the test config
            rsps.add(responses.GET, INDEX + "pypi/trax/json", **fault)

    outcome, versions, packages = collect_with(write_config(), tmp_path, serve)
    assert versions == {"jax": recorded_versions("jax"), "trax": recorded_versions("trax")}
    assert [(p["package"], p["metadata_source"]) for p in packages] == [
        ("jax", "json-api"), ("trax", None)]
    assert packages[1]["release_count"] == 24  # the releases were read whole
    [error] = outcome.errors
    assert (outcome.status, outcome.items_ok, error.item, error.kind) == (
        "partial", 1, "trax", "incomplete")
    assert error.message.startswith("metadata not collected: ") and kept_reason in error.message


def test_a_429_with_retry_after_waits_that_long(write_config, tmp_path):
    def serve(rsps):
        rsps.add(responses.GET, INDEX + "pypi/trax/json", status=429,
                 headers={"Retry-After": "7"})
        serve_all_but()(rsps)

    sleeps: list[float] = []
    outcome, versions, packages = collect_with(write_config(), tmp_path, serve, sleeps)
    assert outcome.status == "ok" and sleeps == [7.0]
    assert [p["metadata_source"] for p in packages] == ["json-api", "json-api"]


def test_a_429_without_retry_after_backs_off_then_keeps_the_releases(write_config, tmp_path):
    def serve(rsps):
        for _ in range(3):
            rsps.add(responses.GET, INDEX + "pypi/trax/json", status=429)
        serve_all_but("pypi/trax/json")(rsps)

    sleeps: list[float] = []
    outcome, versions, packages = collect_with(write_config(), tmp_path, serve, sleeps)
    assert sleeps == [1.0, 2.0]  # backoff 0 -> the 1 s floor, doubled; the third gives up
    assert versions["trax"] == recorded_versions("trax")
    assert packages[1] == {"package": "trax", "metadata_source": None, "release_count": 24}
    [error] = outcome.errors
    assert (error.item, error.kind) == ("trax", "incomplete")
    assert "rate limit exhausted while fetching trax metadata" in error.message


def test_a_403_on_a_simple_page_fails_that_package_only(write_config, tmp_path):
    def serve(rsps):
        rsps.add(responses.GET, INDEX + "simple/trax/", status=403, body="forbidden")
        serve_all_but("simple/trax/")(rsps)

    outcome, versions, packages = collect_with(write_config(), tmp_path, serve)
    assert versions == {"jax": recorded_versions("jax")}
    assert [p["package"] for p in packages] == ["jax"]
    assert [(e.item, e.kind, e.message) for e in outcome.errors] == [
        ("trax", "error", "HTTPError: HTTP 403 Forbidden from https://index.invalid/simple/trax/")]
    assert outcome.status == "partial"


def test_package_names_are_normalised(write_config):
    # Two spellings of one project (PEP 503) are one item, under its normalised name.
    path = write_config(extra_packages=("Trax_Utils.Extra", "trax-utils-extra"))
    assert [(i.key, i.framework) for i in collector_for(path).items()] == [
        ("trax", "trax"), ("jax", "jax"), ("trax-utils-extra", "jax")]


def test_an_index_without_upload_times_leaves_the_12_month_count_unknown(write_config,
                                                                           tmp_path):
    status, content_type, body = recorded("simple/trax/")
    page = json.loads(body)
    for file in page["files"]:
        file.pop("upload-time", None)

    def serve(rsps):
        rsps.add(responses.GET, INDEX + "simple/trax/", json=page, content_type=content_type)
        serve_all_but("simple/trax/")(rsps)

    store = Store(tmp_path / "s.db")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve(rsps)
        collect_source(store, store.start_run("collect", ["collect"], {}),
                       collector_for(write_config()))
    rows = store.query("SELECT package, release_count, releases_last_12_months,"
                       " median_days_between_releases, latest_release_at FROM pypi_packages"
                       " ORDER BY package")
    assert rows[1] == {"package": "trax", "release_count": 24, "releases_last_12_months": None,
                       "median_days_between_releases": None, "latest_release_at": None}
    assert rows[0]["package"] == "jax" and rows[0]["releases_last_12_months"] is not None
    store.close()


def test_a_deleted_release_drops_out_of_the_current_view(write_config, tmp_path):
    status, content_type, body = recorded("simple/trax/")
    page = json.loads(body)
    page["files"] = [f for f in page["files"] if "-1.0.0" not in f["filename"]
                     and "-1.0.0." not in f["filename"]]
    store = Store(tmp_path / "s.db")
    config_path = write_config()
    with recorded_index_for(None):
        first = store.start_run("collect", ["collect"], {})
        collect_source(store, first, collector_for(config_path))
    with recorded_index_for(page):
        second = store.start_run("collect", ["collect"], {})
        collect_source(store, second, collector_for(config_path))
    current = {r["version"] for r in store.query(
        "SELECT version FROM pypi_releases_current WHERE package = 'trax'")}
    assert current == set(recorded_versions("trax")) - {"1.0.0"}
    [gone] = store.query("SELECT version, first_run_id, last_seen_run_id FROM pypi_releases"
                         " WHERE package = 'trax' AND last_seen_run_id < ?", [second])
    assert gone == {"version": "1.0.0", "first_run_id": first, "last_seen_run_id": first}
    assert len(store.query("SELECT 1 FROM pypi_releases_current WHERE package = 'jax'")) == len(
        recorded_versions("jax"))
    store.close()


@contextmanager
def recorded_index_for(trax_page: dict | None):
    """The recorded index; with ``trax_page``, that Simple page for trax instead."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if trax_page is not None:
            rsps.add(responses.GET, INDEX + "simple/trax/", json=trax_page,
                     content_type="application/vnd.pypi.simple.v1+json")
        serve_all_but(*(["simple/trax/"] if trax_page is not None else []))(rsps)
        yield rsps
