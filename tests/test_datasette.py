"""Publication through Datasette: metadata complete, canned queries, a real served process."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from fwsurvey.collectors.stage import CollectStage
from fwsurvey.config import load_config
from fwsurvey.pipeline import run_survey
from fwsurvey.publish import (
    canned_queries_for,
    datasette_command,
    load_datasette_yml,
    make_app,
    metadata_for,
)
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW, recorded_index
from tests.reports.contract import claim
from tests.serving import serving

REPO = Path(__file__).parent.parent
DATASETTE_YML = REPO / "datasette.yml"


def assert_security_headers(response: requests.Response) -> None:
    """``response`` carries the headers of fwsurvey's Datasette plugin
    (fwsurvey/datasette_headers.py): no sniffing, no framing, a content security policy."""
    assert response.status_code == 200, response.text[:300]
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    policy = {d.split()[0]: d.split()[1:] for d in headers["Content-Security-Policy"].split("; ")}
    assert policy["frame-ancestors"] == ["'none'"] and policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]


@pytest.fixture
def survey_db(write_config, tmp_path) -> Path:
    """A database collected from the recorded responses (the HTTP fake ends with it)."""
    config = load_config(write_config())
    db = tmp_path / "fwsurvey.db"
    with recorded_index():
        result = run_survey(config, db, stages=[
            CollectStage(make_collector=lambda cls, cfg: cls(cfg, now=lambda: FIXED_NOW))])
    assert result.status == "ok"
    return db


def test_every_table_view_and_column_is_described(tmp_path):
    store = Store(tmp_path / "fwsurvey.db")
    described = load_datasette_yml(DATASETTE_YML)["databases"]["fwsurvey"]["tables"]
    names = store.db.table_names() + store.db.view_names()
    missing = []
    for name in names:
        if name not in described or not described[name].get("description"):
            missing.append(name)
            continue
        columns = described[name].get("columns", {})
        for col in store.db[name].columns_dict:
            if not columns.get(col):
                missing.append(f"{name}.{col}")
        missing += [f"{name}.{c} (no such column)" for c in columns
                    if c not in store.db[name].columns_dict]
    assert missing == []
    # And nothing described that the schema lacks.
    assert set(described) - set(names) == set()


def test_publication_settings_are_safe():
    config = load_datasette_yml(DATASETTE_YML)
    assert config["immutable"] is True
    assert 0 < config["settings"]["sql_time_limit_ms"] <= 5000
    queries = config["databases"]["fwsurvey"]["queries"]
    assert "release_cadence" in queries
    assert not any(q.get("write") for q in queries.values())
    command = datasette_command(Path("/d/x.db"), Path("/d/m.json"), config, "127.0.0.1", 9)
    assert command[command.index("-i") + 1] == "/d/x.db"
    assert ["--setting", "sql_time_limit_ms", "3000"] == command[
        command.index("sql_time_limit_ms") - 1:command.index("sql_time_limit_ms") + 2]


def test_metadata_follows_the_database_file_name():
    config = load_datasette_yml(DATASETTE_YML)
    metadata = metadata_for(config, Path("/tmp/other-name.db"))
    assert list(metadata["databases"]) == ["other-name"]
    assert "settings" not in metadata and "immutable" not in metadata


def test_canned_query_answers_in_process(survey_db):
    app = make_app(survey_db, load_datasette_yml(DATASETTE_YML))

    async def fetch():
        response = await app.client.get("/fwsurvey/release_cadence.json?_shape=array")
        return response.status_code, response.json()

    status, rows = asyncio.run(fetch())
    assert status == 200
    by_package = {r["package"]: r for r in rows}
    assert set(by_package) == {"trax", "jax"}
    assert by_package["trax"]["release_count"] == 24
    assert by_package["trax"]["latest_version"] == "1.4.1"
    assert by_package["jax"]["releases_last_12_months"] == 14
    assert rows[0]["package"] == "jax"  # fastest releaser first


def test_database_is_read_only_when_served(survey_db):
    app = make_app(survey_db, load_datasette_yml(DATASETTE_YML))

    async def fetch():
        r = await app.client.get("/fwsurvey.json?sql=delete+from+runs&_shape=array")
        return r.status_code, r.text

    status, text = asyncio.run(fetch())
    assert status == 400 and "must be a select" in text.lower()
    assert app.databases["fwsurvey"].is_mutable is False  # opened immutable (-i)
    store = Store(survey_db)
    assert store.query("SELECT count(*) AS n FROM runs") == [{"n": 1}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fwsurvey_serve_runs_a_real_server(survey_db, write_config, tmp_path):
    config_path = write_config()
    port = free_port()
    fwsurvey = Path(sys.executable).with_name("fwsurvey")
    proc = subprocess.Popen(
        [str(fwsurvey), "serve", "--config", str(config_path), "--db", str(survey_db),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/fwsurvey/release_cadence",
                                    timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.25)
        assert page.status_code == 200
        assert "Release cadence per framework" in page.text
        assert "trax" in page.text and "1.4.1" in page.text
        home = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "fwsurvey — framework claims, measured" in home.text
        # Every response, pages, JSON and static files alike, carries the security headers.
        assert_security_headers(page)
        assert_security_headers(home)
        for path in ("/fwsurvey/runs.json", "/-/static/app.css", "/-/plugins.json"):
            assert_security_headers(requests.get(f"http://127.0.0.1:{port}{path}", timeout=5))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_serve_shows_a_consistent_snapshot_while_a_run_writes(survey_db, write_config,
                                                              tmp_path):
    """``fwsurvey serve`` serves a copy of the database taken when it starts: a run that
    commits (and checkpoints) afterwards changes nothing served (an immutable reader of the
    live file saw torn pages), and serve writes nothing to the database or beside it."""
    config_path = write_config()
    writer = Store(survey_db)
    runs_at_start = writer.query("SELECT count(*) AS n FROM runs")[0]["n"]
    # Committed but still in the WAL when serve starts: the snapshot must hold it.
    writer.finish_run(writer.start_run("in-the-wal", [], {}), "ok")
    runs_at_start += 1
    beside = {p.name: p.stat().st_mtime_ns for p in survey_db.parent.iterdir()}
    port = free_port()
    fwsurvey = Path(sys.executable).with_name("fwsurvey")
    with serving([str(fwsurvey), "serve", "--config", str(config_path), "--db", str(survey_db),
                  "--port", str(port)], port, tmp_path.parent / f"{tmp_path.name}-serve.log") \
            as base:
        for i in range(4):
            writer.finish_run(writer.start_run(f"after-serve-{i}", [], {}), "ok")
            writer.db.execute("CREATE TABLE IF NOT EXISTS filler (x)")
            writer.db.execute("INSERT INTO filler SELECT randomblob(4000) FROM runs")
            writer.db.conn.commit()
        writer.checkpoint()
        assert writer.query("SELECT count(*) AS n FROM runs")[0]["n"] == runs_at_start + 4

        served = [d["path"] for d in requests.get(f"{base}/-/databases.json", timeout=10).json()]
        assert len(served) == 1 and Path(served[0]).resolve() != survey_db.resolve()
        count = requests.get(f"{base}/fwsurvey.json", timeout=10, params={
            "sql": "select count(*) as n from runs", "_shape": "array"})
        assert count.status_code == 200, count.text
        assert count.json() == [{"n": runs_at_start}]
        page = requests.get(f"{base}/fwsurvey/runs.json?_shape=array&_size=max", timeout=10)
        assert page.status_code == 200, page.text
        assert len(page.json()) == runs_at_start
        assert "in-the-wal" in {r["command"] for r in page.json()}
        # serve wrote nothing beside the database (no metadata, no snapshot).
        assert {p.name for p in survey_db.parent.iterdir()} - set(beside) == set()
    writer.close()


def _empty_db(tmp_path) -> Path:
    """A migrated database with no rows, checkpointed (immutable readers ignore the WAL)."""
    store = Store(tmp_path / "fwsurvey.db")
    store.close()
    return store.path


def test_charts_plugin_is_loaded(tmp_path):
    app = make_app(_empty_db(tmp_path), load_datasette_yml(DATASETTE_YML))

    async def fetch():
        return (await app.client.get("/-/plugins.json")).json()

    plugins = {p["name"]: p for p in asyncio.run(fetch())}
    assert plugins["datasette-vega"]["version"] == "0.6.2"
    assert set(plugins["datasette-vega"]["hooks"]) == {"extra_css_urls", "extra_js_urls"}


def test_chart_links_name_columns_their_query_returns(tmp_path):
    """Every datasette-vega link in datasette.yml (PAGE?_hide_sql=1#g.KEY=VALUE&...) charts
    columns its canned query has, with a mark and types the plugin knows."""
    config = load_datasette_yml(DATASETTE_YML)
    app = make_app(_empty_db(tmp_path), config)
    links = {}
    for name, query in config["databases"]["fwsurvey"]["queries"].items():
        for href in re.findall(r'href="([^"]*#g\.[^"]*)"', query.get("description_html", "")):
            links[name] = html.unescape(href)
    assert {"releases_per_year", "downloads_per_month", "stars_over_time"} <= set(links)

    async def columns(name):
        return (await app.client.get(f"/fwsurvey/{name}.json")).json()["columns"]

    types = {"quantitative", "ordinal", "nominal", "temporal"}
    for name, href in links.items():
        assert href.startswith("?_hide_sql=1#"), href  # a fresh page load: the plugin reads it
        chart = dict(part.split("=", 1) for part in href.split("#", 1)[1].split("&"))
        assert set(chart) <= {"g.mark", "g.x_column", "g.x_type", "g.y_column", "g.y_type",
                              "g.color_column", "g.size_column"}, href
        assert chart["g.mark"] in {"bar", "line", "circle"}
        assert {chart["g.x_type"].removesuffix("-bin"),
                chart["g.y_type"].removesuffix("-bin")} <= types
        returned = asyncio.run(columns(name))
        charted = {v for k, v in chart.items() if k.endswith("_column")}
        assert charted <= set(returned), (name, charted - set(returned))


def test_front_page_lists_the_verdicts(tmp_path):
    """The first page a visitor sees holds the verdict table: the index page's description
    carries the table's container and the script that fills it from ``verdict_summary``;
    that query, at the database link the script takes from the page, answers every claim with
    its verdict, confidence and fragile flag, and each claim's link leads to its evidence."""
    store = Store(tmp_path / "survey.db")
    run_id = store.start_run("test", ["claims"], {})
    store.db["claims"].insert_all([
        claim("perf.speed", "performance-scalability", "Trax is faster than JAX", "supported",
              confidence="high", fragile=0, device_scope="gpu", n_samples=480,
              claim_type="comparative", previous_verdict="mixed"),
        claim("perf.memory", "performance-scalability", "Trax uses less memory", "contradicted",
              confidence="low", fragile=1, device_scope="gpu", n_samples=12),
        claim("community.research", "community-ecosystem", "Trax suits research",
              "unmeasurable", claim_type="unmeasurable")])
    store.finish_run(run_id, "ok")
    store.close()
    db = store.path
    app = make_app(db, load_datasette_yml(DATASETTE_YML), canned_queries_for(db))

    async def fetch(path):
        response = await app.client.get(path)
        return response.status_code, response.text

    status, page = asyncio.run(fetch("/"))
    assert status == 200
    assert "The article's claims and their verdicts" in page
    assert '<div id="fwsurvey-verdicts" data-query="verdict_summary"' in page
    assert 'document.querySelector("body.index h2 > a[href]")' in page
    assert '<body class="index">' in page
    # The database link the script reads: the database is named after the served file.
    [database] = re.findall(r'<h2 style="[^"]*"><a href="([^"]+)">', page)
    assert database == "/survey"
    status, text = asyncio.run(fetch(f"{database}/verdict_summary.json?_shape=array&_size=max"))
    assert status == 200, text
    rows = {r["claim_id"]: r for r in json.loads(text)}
    assert {cid: (r["verdict"], r["confidence"], r["fragile"], r["device_scope"],
                  r["n_samples"], r["previous_verdict"]) for cid, r in rows.items()} == {
        "perf.speed": ("supported", "high", 0, "gpu", 480, "mixed"),
        "perf.memory": ("contradicted", "low", 1, "gpu", 12, None),
        "community.research": ("unmeasurable", None, None, None, None, None)}
    # The claim link the script builds (claim_ + id with . and - as _) is a page.
    status, text = asyncio.run(fetch(f"{database}/claim_perf_speed"))
    assert status == 200 and "Claim: Trax is faster than JAX" in html.unescape(text)
