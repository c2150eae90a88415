"""The documentation collector: a sitemap, a polite crawl, a local clone, and offline."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import requests
import responses

from fwsurvey.collectors.docs import DocsCollector, classify
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.sources import Item
from fwsurvey.store import Store
from tests.collectors.test_git_history import commit, run_git
from tests.conftest import FIXED_NOW, FIXTURES

SITE = "https://docs.invalid/"
DOCS = SITE + "en/latest/"


def recorded(name: str) -> str:
    return (FIXTURES / "docs" / name).read_text(encoding="utf-8")


def configured(write_config, docs: str | None = DOCS, clone: Path | None = None):
    path = write_config()
    extra = (f'docs = "{docs}"\n' if docs else "") + (f'git_clone = "{clone}"\n' if clone else "")
    path.write_text(path.read_text().replace('github = "google/trax"\n',
                                             f'github = "google/trax"\n{extra}', 1))
    return load_config(path)


def html(*links: str) -> str:
    return "<html><body>" + "".join(f'<a href="{href}">x</a>' for href in links) + "</body></html>"


def test_classify_by_path():
    assert classify(DOCS + "tutorials/intro.html") == "tutorial"
    assert classify(DOCS + "notebooks/colab_intro.html") == "example"
    assert classify(DOCS + "api/layers.html") is None


def test_pages_from_the_sitemap(write_config):
    config = configured(write_config)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, SITE + "robots.txt", body=recorded("robots.txt"))
        rsps.add(responses.GET, SITE + "sitemap.xml", body=recorded("sitemap.xml"),
                 content_type="application/xml")
        rsps.add(responses.GET, DOCS + "sitemap.xml", status=404)
        [record] = DocsCollector(config, now=lambda: FIXED_NOW).fetch(Item("trax:site", "trax"))
    row = record.row
    # 8 <loc>s: index.html is the folder's page, /en/stable/ is another version.
    assert (row["method"], row["page_count"]) == ("sitemap", 6)
    assert (row["tutorial_pages"], row["example_pages"]) == (2, 2)
    assert (row["origin"], row["location"]) == ("site", DOCS)


def test_bounded_polite_crawl_respects_robots(write_config):
    config = configured(write_config)
    sleeps: list[float] = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, SITE + "robots.txt",
                 body="User-agent: *\nDisallow: /en/latest/_private/\nCrawl-delay: 2\n")
        rsps.add(responses.GET, SITE + "sitemap.xml", status=404)
        rsps.add(responses.GET, DOCS + "sitemap.xml", status=404)
        pages = {
            DOCS: html("tutorials/a.html", "examples/b.html#part", "_private/x.html",
                       "https://elsewhere.invalid/", "../stable/", "api.html", "logo.png"),
            DOCS + "tutorials/a.html": html("../api.html", "../index.html"),
            DOCS + "examples/b.html": html("c.html"),
            DOCS + "examples/c.html": html(),
            DOCS + "api.html": html(),
        }
        for url, text in pages.items():
            rsps.add(responses.GET, url, body=text, content_type="text/html; charset=utf-8")
        [record] = DocsCollector(config, now=lambda: FIXED_NOW,
                                 sleep=sleeps.append).fetch(Item("trax:site", "trax"))
        fetched = [c.request.url for c in rsps.calls]
    row = record.row
    assert (row["method"], row["page_count"]) == ("crawl", 5)
    assert (row["tutorial_pages"], row["example_pages"]) == (1, 2)
    assert not any("_private" in u or "elsewhere" in u or "stable" in u or "png" in u
                   for u in fetched)
    # robots.txt's Crawl-delay before every request after robots.txt: 2 sitemaps, 5 pages.
    assert sleeps == [2.0] * 7
    assert (row["responses"], row["pages_failed"]) == (8, 0)


def serve_site(rsps, pages: dict[str, object], robots: str = "User-agent: *\n") -> None:
    """robots.txt, no sitemaps, and each page: HTML text, or (status, content type, body), or
    an exception to raise."""
    rsps.add(responses.GET, SITE + "robots.txt", body=robots)
    rsps.add(responses.GET, SITE + "sitemap.xml", status=404)
    rsps.add(responses.GET, DOCS + "sitemap.xml", status=404)
    for url, page in pages.items():
        if isinstance(page, str):
            rsps.add(responses.GET, url, body=page, content_type="text/html")
        elif isinstance(page, Exception):
            rsps.add(responses.GET, url, body=page)
        else:
            status, content_type, body = page
            rsps.add(responses.GET, url, status=status, content_type=content_type, body=body)


def collect_site(config, tmp_path, pages, **kwargs):
    store = Store(tmp_path / "s.db")
    sleeps: list[float] = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve_site(rsps, pages, **kwargs)
        outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                                 DocsCollector(config, now=lambda: FIXED_NOW,
                                               sleep=sleeps.append))
        fetched = [c.request.url for c in rsps.calls]
    rows = store.query("SELECT origin, method, page_count, tutorial_pages, example_pages,"
                       " responses, pages_failed FROM docs_metrics")
    store.close()
    return outcome, rows, fetched


def test_a_page_answering_403_is_skipped_and_the_pages_read_are_kept(write_config, tmp_path):
    pages = {DOCS: html("tutorials/a.html", "secret.html", "examples/b.html"),
             DOCS + "tutorials/a.html": html(),
             DOCS + "secret.html": (403, "text/html", "<h1>Forbidden</h1>"),
             DOCS + "examples/b.html": html()}
    outcome, rows, _ = collect_site(configured(write_config), tmp_path, pages)
    assert rows == [{"origin": "site", "method": "crawl", "page_count": 3, "tutorial_pages": 1,
                     "example_pages": 1, "responses": 7, "pages_failed": 1}]
    [error] = outcome.errors
    assert (outcome.status, error.item, error.kind) == ("partial", "trax:site", "incomplete")
    assert error.message == (
        "1 of 8 requests failed and were skipped (first: https://docs.invalid/en/latest/"
        "secret.html: HTTP 403 Forbidden from https://docs.invalid/en/latest/secret.html);"
        " the pages read are kept")


def test_a_page_failing_with_5xx_after_retries_is_skipped(write_config, tmp_path):
    pages = {DOCS: html("a.html", "b.html"), DOCS + "a.html": (503, "text/plain", "busy"),
             DOCS + "b.html": html()}
    outcome, rows, fetched = collect_site(configured(write_config), tmp_path, pages)
    assert fetched.count(DOCS + "a.html") == 2  # retries = 2 in the test config
    assert [(r["page_count"], r["responses"], r["pages_failed"]) for r in rows] == [(2, 5, 1)]
    assert "HTTP 503" in outcome.errors[0].message


def test_a_site_that_stops_answering_mid_crawl_keeps_the_pages_read(write_config, tmp_path):
    refused = requests.ConnectionError("connection refused")
    pages = {DOCS: html("tutorials/a.html", "b.html"), DOCS + "tutorials/a.html": html(),
             DOCS + "b.html": refused}
    outcome, rows, fetched = collect_site(configured(write_config), tmp_path, pages)
    assert rows == [{"origin": "site", "method": "crawl (cut: the site stopped answering)",
                     "page_count": 2, "tutorial_pages": 1, "example_pages": 0,
                     "responses": 5, "pages_failed": 1}]
    assert [(e.item, e.kind) for e in outcome.errors] == [("trax:site", "incomplete")]


def test_every_response_counts_against_the_crawl_bound(write_config, tmp_path):
    # 30 links to files that are no HTML pages: before, none counted and all were fetched.
    links = [f"files/f{i}.html" for i in range(30)]
    pages: dict[str, object] = {DOCS: html(*links)}
    pages.update({DOCS + link: (200, "application/octet-stream", "x") for link in links})
    outcome, rows, fetched = collect_site(configured(write_config), tmp_path, pages)
    assert outcome.status == "ok"
    assert rows == [{"origin": "site", "method": "crawl (stopped after 20 responses)",
                     "page_count": 1, "tutorial_pages": 0, "example_pages": 0,
                     "responses": 23, "pages_failed": 0}]  # robots, 2 sitemaps, 20 crawled
    assert len(fetched) == 23


def test_robots_and_sitemaps_answering_403_are_no_rules_and_no_sitemap(write_config, tmp_path):
    config = configured(write_config)
    sleeps: list[float] = []
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, SITE + "robots.txt", status=403)
        rsps.add(responses.GET, DOCS + "sitemap.xml", status=403)
        rsps.add(responses.GET, SITE + "sitemap.xml", status=403)
        rsps.add(responses.GET, DOCS, body=html(), content_type="text/html")
        [record] = DocsCollector(config, now=lambda: FIXED_NOW,
                                 sleep=sleeps.append).fetch(Item("trax:site", "trax"))
    assert (record.row["method"], record.row["page_count"]) == ("crawl", 1)
    assert (record.row["responses"], record.row["pages_failed"]) == (4, 0)
    assert sleeps == [0.0] * 3  # crawl_delay = 0 in the test config; one pause per request


def test_examples_notebooks_and_readme_of_a_clone(write_config, tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "examples").mkdir()
    (clone / "trax").mkdir()
    run_git(clone, "init", "-q", "-b", "main")
    commit(clone, {"README.md": "# Trax\n\nDeep learning.\n", "trax/layers.py": "x = 1\n",
                   "examples/mnist.py": "print(1)\n"}, "2024-01-15T10:00:00+00:00",
           "Alice <alice@example.com>")
    notebook = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    commit(clone, {"examples/intro.ipynb": notebook, "trax/util.py": "y = 1\n"},
           "2024-03-01T10:00:00+00:00", "Bob <bob@example.com>")
    commit(clone, {"trax/util.py": "y = 2\n"}, "2024-05-01T10:00:00+00:00",
           "Bob <bob@example.com>")
    config = configured(write_config, docs=None, clone=clone)
    c = DocsCollector(config, now=lambda: FIXED_NOW)
    assert [i.key for i in c.items()] == ["trax:clone"]
    [record] = c.fetch(Item("trax:clone", "trax"))
    row = record.row
    assert (row["example_scripts"], row["notebooks"]) == (1, 1)
    assert row["examples_last_modified"] == "2024-03-01T10:00:00+00:00"  # not the util change
    assert row["readme_chars"] == len("# Trax\n\nDeep learning.\n")
    assert (row["origin"], row["method"]) == ("clone", "files")


def test_offline_site_is_unreachable_and_the_clone_still_counts(write_config, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "README.md").write_text("hello\n")
    config = configured(write_config, docs=f"http://127.0.0.1:{port}/en/latest/", clone=clone)
    store = Store(tmp_path / "s.db")
    outcome = collect_source(store, store.start_run("collect", ["collect"], {}),
                             DocsCollector(config, now=lambda: FIXED_NOW))
    assert outcome.status == "partial" and outcome.items_ok == 1
    [error] = outcome.errors
    assert (error.item, error.kind) == ("trax:site", "unreachable")
    assert "connection failed" in error.message
    rows = store.query("SELECT origin, readme_chars, page_count FROM docs_metrics")
    assert rows == [{"origin": "clone", "readme_chars": 6, "page_count": None}]


def test_check_probes_the_first_documentation_site(write_config):
    config = configured(write_config)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.HEAD, DOCS, status=200)
        probe = DocsCollector(config).check()
    assert probe.reachable and probe.detail == f"HTTP 200 from {DOCS}"
    assert DocsCollector(configured(write_config, docs=None)).check().detail == (
        "no documentation site configured")
