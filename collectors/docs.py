"""Documentation: the size of each framework's documentation site and of its examples.

Two kinds of item per framework. ``FRAMEWORK:clone`` (offline, when ``git_clone`` is set):
example scripts (``.py`` under a folder named like ``examples``/``tutorials``), notebooks,
when they last changed, and the README's length. ``FRAMEWORK:site`` (when ``docs`` is set):
the pages under the documentation URL, from its sitemap when that lists them, otherwise a
bounded, polite breadth-first crawl with ``requests`` (robots.txt respected, a pause between
requests), and how many of them are tutorials or examples (by their path). Clone items run
first, so an unreachable site does not skip them.

Every request after a site's first waits the crawl delay (sitemaps too), and every response
counts against ``max_pages``, whatever its status or type, so a site of redirects, PDFs or
errors cannot make the crawl unbounded. A page that answers an error (a 403, a 5xx after the
retries) is skipped and counted in ``pages_failed``: the pages already read are kept, and the
item is recorded as incomplete (its page count is then a lower bound).
"""

from __future__ import annotations

import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import requests

from fwsurvey.collectors.git_history import GitError, git
from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.http import USER_AGENT, call_with_retries, describe, make_session, probe
from fwsurvey.sources import (
    Collector,
    Item,
    ItemNotFound,
    PartialItem,
    Reachability,
    Record,
    SourceOptions,
    SourceUnreachable,
)

log = logging.getLogger(__name__)

EXAMPLE_DIRS = {"example", "examples", "tutorial", "tutorials", "notebooks", "colab", "demos"}
README_NAMES = ("README.md", "README.rst", "README.txt", "README")
TUTORIAL_RE = re.compile(r"tutorial|beginner|intermediate|advanced|recipe|getting[-_]?started"
                         r"|quickstart|walkthrough", re.I)
EXAMPLE_RE = re.compile(r"example|notebook|colab|gallery|demo", re.I)
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def classify(url: str) -> str | None:
    """``tutorial``, ``example`` or None, from a page's path (not its host)."""
    path = urlsplit(url).path
    if TUTORIAL_RE.search(path):
        return "tutorial"
    if EXAMPLE_RE.search(path):
        return "example"
    return None


def sitemap_urls(xml_text: str) -> tuple[list[str], list[str]]:
    """(page URLs, child sitemap URLs) of a sitemap or sitemap index."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return [], []
    locs = [e.text.strip() for e in root.iter(f"{_SITEMAP_NS}loc") if e.text]
    if root.tag == f"{_SITEMAP_NS}sitemapindex":
        return [], locs
    return locs, []


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def _page_key(url: str) -> str:
    url = urldefrag(url)[0]
    return url[: -len("index.html")] if url.endswith("/index.html") else url


def clone_docs(clone: Path) -> dict[str, Any]:
    """Example scripts, notebooks, their last change and the README length of a clone."""
    try:
        files = git(clone, "ls-files", "-z").split("\0")
        tracked = True
    except GitError:
        files = [str(p.relative_to(clone)) for p in clone.rglob("*") if p.is_file()
                 and ".git" not in p.parts]
        tracked = False
    files = [f for f in files if f]
    scripts = [f for f in files if f.endswith(".py")
               and EXAMPLE_DIRS & {p.lower() for p in PurePosixPath(f).parts[:-1]}]
    notebooks = [f for f in files if f.endswith(".ipynb")]
    last = None
    if scripts or notebooks:
        if tracked:
            out = git(clone, "log", "-1", "--format=%cI", "--", *scripts, *notebooks).strip()
            last = datetime.fromisoformat(out).astimezone(UTC) if out else None
        else:
            last = datetime.fromtimestamp(max(os.path.getmtime(clone / f)
                                              for f in scripts + notebooks), UTC)
    readme = next((clone / n for n in README_NAMES if (clone / n).is_file()), None)
    return {
        "example_scripts": len(scripts),
        "notebooks": len(notebooks),
        "examples_last_modified": last.isoformat(timespec="seconds") if last else None,
        "readme_chars": len(readme.read_text(encoding="utf-8", errors="replace"))
        if readme else None,
    }


@dataclass
class SiteVisit:
    """The requests of one site item: how many answered, which failed, the pause between."""

    delay: float = 0.0
    responses: int = 0
    failed: int = 0
    first_failure: str | None = None

    def failure(self, url: str, reason: str) -> None:
        self.failed += 1
        if self.first_failure is None:
            self.first_failure = f"{url}: {reason}"


class DocsOptions(SourceOptions):
    """``[sources.docs]``'s own keys."""

    #: Crawl bound when the site has no usable sitemap: responses read (any status or type).
    max_pages: int = 150
    #: Seconds between crawled pages (robots.txt may ask more).
    crawl_delay: float = 0.5


class DocsCollector(Collector):
    """Table ``docs_metrics`` (history: one row per framework and origin per run)."""

    name = "docs"
    title = "Documentation sites and examples"
    Options = DocsOptions
    options: DocsOptions

    def __init__(self, config: SurveyConfig, settings: SourceSettings | None = None,
                 now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] | None = None):
        super().__init__(config, settings)
        self.now = now or (lambda: datetime.now(UTC))
        self.sleep = sleep or time.sleep
        self.max_pages = self.options.max_pages
        self.crawl_delay = self.options.crawl_delay
        self.session = make_session()

    def items(self) -> list[Item]:
        fws = list(self.config.frameworks.values())
        return ([Item(f"{fw.key}:clone", fw.key) for fw in fws if fw.git_clone]
                + [Item(f"{fw.key}:site", fw.key) for fw in fws if fw.docs])

    def fetch(self, item: Item) -> list[Record]:
        fw = self.config.frameworks[item.framework]
        row: dict[str, Any]
        if item.key.endswith(":clone"):
            assert fw.git_clone is not None
            if not fw.git_clone.is_dir():
                raise ItemNotFound(f"no directory {fw.git_clone}")
            row = {"origin": "clone", "location": str(fw.git_clone), "method": "files",
                   **clone_docs(fw.git_clone)}
        else:
            assert fw.docs is not None
            visit = SiteVisit()
            row = {"origin": "site", "location": fw.docs}
            try:
                row.update(self.site_pages(fw.docs, visit))
            except _CrawlCut as cut:
                row.update(cut.counts)
            row.update(responses=visit.responses, pages_failed=visit.failed)
        row.update(framework=item.framework, fetched_at=self.now().isoformat(timespec="seconds"))
        records = [Record("docs_metrics", row)]
        if row.get("pages_failed"):
            raise PartialItem(f"{row['pages_failed']} of {row['responses'] + row['pages_failed']}"
                              f" requests failed and were skipped (first: {visit.first_failure});"
                              " the pages read are kept", records)
        return records

    # -- the site ---------------------------------------------------------------------

    def _get(self, url: str) -> requests.Response:
        def get() -> requests.Response:
            response = self.session.get(url, timeout=self.settings.timeout)
            if response.status_code < 400 or response.status_code == 404:
                return response
            response.raise_for_status()
            return response

        return call_with_retries(self.settings, get)

    def _visit(self, url: str, visit: SiteVisit, *, page: bool = True) -> requests.Response | None:
        """GET one URL of the site, paced and counted; None when it failed.

        A 4xx other than 404 (a 403, ...) or a server that stays down for this URL fails the
        URL only (counted, when ``page``). A site that stops answering at all (no connection)
        after its first request raises :class:`_SiteGone`.
        """
        if visit.responses or visit.failed:
            self.sleep(visit.delay)
        try:
            answer = self._get(url)
        except requests.HTTPError as exc:
            visit.responses += 1
            if page:
                visit.failure(url, describe(exc))
            return None
        except SourceUnreachable as exc:
            if not visit.responses:
                raise  # the site's first request: the site is unreachable
            visit.failure(url, str(exc))
            if isinstance(exc.__cause__, requests.ConnectionError):
                raise _SiteGone(str(exc)) from exc
            return None
        visit.responses += 1
        return answer

    def site_pages(self, base: str, visit: SiteVisit) -> dict[str, Any]:
        """Page counts of a documentation site: sitemap first, else a bounded crawl."""
        parts = urlsplit(base)
        root = f"{parts.scheme}://{parts.netloc}/"
        robots = RobotFileParser()
        # A robots.txt answering 4xx (404, 403, ...) sets no rules (RFC 9309, 2.3.1.3).
        answer = self._visit(root + "robots.txt", visit, page=False)
        robots.parse(answer.text.splitlines() if answer and answer.status_code == 200 else [])
        visit.delay = max(self.crawl_delay, float(robots.crawl_delay(USER_AGENT) or 0))

        pages: set[str] = set()
        queue = deque(robots.site_maps() or [])
        queue.extend([urljoin(base, "sitemap.xml"), root + "sitemap.xml"])
        seen_maps: set[str] = set()
        while queue and len(seen_maps) < 10:
            url = queue.popleft()
            if url in seen_maps:
                continue
            seen_maps.add(url)
            try:
                # A sitemap answering 4xx (403 for a missing file on some hosts) is no sitemap.
                answer = self._visit(url, visit, page=False)
            except _SiteGone:
                raise _CrawlCut(_counts("sitemap (cut)", pages)) from None
            if answer is None or answer.status_code != 200:
                continue
            found, children = sitemap_urls(answer.text)
            pages |= {_page_key(u) for u in found if u.startswith(base)}
            queue.extend(children)
        if len(pages) > 1:
            return _counts("sitemap", pages)
        crawled: set[str] = set()
        try:
            capped = self.crawl(base, robots, visit, crawled)
        except _SiteGone:
            raise _CrawlCut(_counts("crawl (cut: the site stopped answering)", crawled)) from None
        return _counts(f"crawl (stopped after {self.max_pages} responses)" if capped else "crawl",
                       crawled)

    def crawl(self, base: str, robots: RobotFileParser, visit: SiteVisit,
              pages: set[str]) -> bool:
        """Breadth-first over HTML pages under ``base`` into ``pages``; whether max_pages
        stopped it. Every response counts against the bound, HTML or not, error or not."""
        queue, seen = deque([base]), {base}
        start = visit.responses + visit.failed
        while queue:
            if visit.responses + visit.failed - start >= self.max_pages:
                return True
            url = queue.popleft()
            if not robots.can_fetch(USER_AGENT, url):
                continue
            answer = self._visit(url, visit)
            if (answer is None or answer.status_code != 200
                    or "html" not in answer.headers.get("Content-Type", "")):
                continue
            pages.add(_page_key(answer.url or url))
            parser = _Links()
            parser.feed(answer.text)
            for href in parser.links:
                link = _page_key(urljoin(url, href))
                if link.startswith(base) and link not in seen and not re.search(
                        r"\.(png|jpe?g|gif|svg|pdf|zip|txt|ipynb|py|js|css)$", link, re.I):
                    seen.add(link)
                    queue.append(link)
        return False

    def check(self) -> Reachability:
        sites = [fw.docs for fw in self.config.frameworks.values() if fw.docs]
        if not sites:
            return Reachability(True, "no documentation site configured")
        return probe(self.session, sites[0], self.settings)

    def close(self) -> None:
        self.session.close()


class _SiteGone(Exception):
    """The site stopped answering mid-measurement (connection refused after retries)."""


class _CrawlCut(Exception):
    """A measurement cut short: ``counts`` holds what was read before the cut."""

    def __init__(self, counts: dict[str, Any]):
        super().__init__(counts["method"])
        self.counts = counts


def _counts(method: str, pages: set[str]) -> dict[str, Any]:
    kinds = [classify(p) for p in pages]
    return {"method": method, "page_count": len(pages),
            "tutorial_pages": kinds.count("tutorial"), "example_pages": kinds.count("example")}
