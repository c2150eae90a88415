"""PyPI: every release of each configured package, and the package's current metadata.

Release history comes from the Simple API (PEP 691 JSON form) through ``pypi-simple``, the
API pip itself uses: it lists every file with its upload time, size, yanked flag and
``requires_python``. Current metadata (summary, license, ``Requires-Dist``, project URLs)
comes from the index's JSON API, whose base is derived from the Simple API endpoint.
No registry address is written here: the endpoint is ``pypi-simple``'s default unless the
configuration's ``[sources.pypi] index_url`` names another index.

Package names are normalised (PEP 503, ``packaging.utils.canonicalize_name``), so ``Trax``
and ``trax`` are one item and one key in the store. A failure of the metadata request (an
unexpected status, a spent rate limit, a server that stays down) keeps the releases already
read: the item is stored without metadata and recorded as incomplete.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from pypi_simple import (
    ACCEPT_JSON_PREFERRED,
    PYPI_SIMPLE_ENDPOINT,
    DistributionPackage,
    NoSuchProjectError,
    PyPISimple,
)

from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.http import (
    RateLimitExceeded,
    RateLimits,
    call_with_retries,
    describe,
    get_with_limits,
    make_session,
    probe,
    redact_url,
)
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

#: Longest license text kept; some packages paste their whole license into the field.
MAX_LICENSE_CHARS = 300


def json_api_base(simple_endpoint: str) -> str | None:
    """The JSON API base (``.../pypi/``) of an index whose Simple API lives at ``.../simple/``.

    Returns None for an index laid out otherwise (then metadata is not collected).
    """
    parts = urlsplit(simple_endpoint)
    path = parts.path.rstrip("/")
    if not path.endswith("/simple") and path != "/simple":
        return None
    base_path = path[: -len("simple")] + "pypi/"
    return urlunsplit((parts.scheme, parts.netloc, base_path, "", ""))


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat(timespec="seconds") if ts else None


def _version_kind(version: str) -> bool | None:
    """True for pre-/dev-releases, False for final releases, None for a non-PEP 440 version."""
    try:
        v = Version(version)
    except InvalidVersion:
        return None
    return v.is_prerelease or v.is_devrelease


def release_rows(packages: Sequence[DistributionPackage]) -> list[dict[str, Any]]:
    """Group a project's files by version into one row per release."""
    by_version: dict[str, list[DistributionPackage]] = defaultdict(list)
    for pkg in packages:
        if pkg.version:  # files whose name yields no version cannot be attributed
            by_version[pkg.version].append(pkg)
    rows = []
    for version, files in by_version.items():
        times = [f.upload_time for f in files if f.upload_time is not None]
        kinds = Counter(f.package_type or "other" for f in files)
        py_tags: set[str] = set()
        abi_tags: set[str] = set()
        platforms: set[str] = set()
        for f in files:
            if f.package_type != "wheel":
                continue
            try:
                *_, tags = parse_wheel_filename(f.filename)
            except InvalidWheelFilename:
                continue
            for tag in tags:
                py_tags.add(tag.interpreter)
                abi_tags.add(tag.abi)
                platforms.add(tag.platform)
        sizes = [f.size for f in files]
        rp = Counter(f.requires_python for f in files if f.requires_python)
        rows.append({
            "version": version,
            "is_prerelease": _version_kind(version),
            "uploaded_at": _iso(min(times)) if times else None,
            "last_upload_at": _iso(max(times)) if times else None,
            "yanked": all(f.is_yanked for f in files),
            "yanked_reason": next((f.yanked_reason for f in files if f.yanked_reason), None),
            "file_count": len(files),
            "wheel_count": kinds.get("wheel", 0),
            "sdist_count": kinds.get("sdist", 0),
            "other_count": len(files) - kinds.get("wheel", 0) - kinds.get("sdist", 0),
            "total_bytes": sum(sizes) if all(s is not None for s in sizes) else None,
            "python_tags": sorted(py_tags),
            "abi_tags": sorted(abi_tags),
            "platforms": sorted(platforms),
            "requires_python": rp.most_common(1)[0][0] if rp else None,
        })
    rows.sort(key=lambda r: (r["uploaded_at"] or "", r["version"]))
    return rows


def release_cadence(releases: Iterable[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Derived cadence metrics over final (non-pre-release), non-yanked releases.

    ``release_count`` counts every final release; the time-derived values need every final
    release's upload time and are None (unknown) when the index gives none for some of them
    (an index without PEP 700 upload times): a missing time is no evidence of no release.
    """
    releases = list(releases)
    final_rows = [r for r in releases if r["is_prerelease"] is False and not r["yanked"]]
    timed = all(r["uploaded_at"] for r in final_rows)
    finals = sorted(datetime.fromisoformat(r["uploaded_at"]) for r in final_rows) if timed else []
    gaps = [(b - a).total_seconds() / 86400 for a, b in zip(finals, finals[1:], strict=False)]
    return {
        "release_count": len(final_rows),
        "prerelease_count": sum(1 for r in releases if r["is_prerelease"]),
        "yanked_release_count": sum(1 for r in releases if r["yanked"]),
        "releases_last_12_months": sum(1 for t in finals if t > now - timedelta(days=365))
        if timed else None,
        "median_days_between_releases": round(statistics.median(gaps), 2) if gaps else None,
        "days_since_last_release": round((now - finals[-1]).total_seconds() / 86400, 2)
        if finals else None,
        "first_release_at": _iso(finals[0]) if finals else None,
        "latest_release_at": _iso(finals[-1]) if finals else None,
    }


def latest_final_version(releases: Iterable[dict[str, Any]]) -> str | None:
    """The highest PEP 440 final, non-yanked version."""
    finals = [r["version"] for r in releases if r["is_prerelease"] is False and not r["yanked"]]
    return max(finals, key=Version) if finals else None


class PyPIOptions(SourceOptions):
    """``[sources.pypi]``'s own keys."""

    #: A Simple API endpoint; default: pypi-simple's (the public index).
    index_url: str = PYPI_SIMPLE_ENDPOINT
    #: The JSON API base; default: derived from index_url (".../simple/" -> ".../pypi/").
    json_api_url: str | None = None
    #: Longest wait for a rate limit of the JSON API (Retry-After); longer ones give up.
    max_rate_limit_wait: float = 60.0


class PyPICollector(Collector):
    """Releases (``pypi_releases``) and package snapshots (``pypi_packages``)."""

    name = "pypi"
    title = "PyPI releases and package metadata"
    Options = PyPIOptions
    options: PyPIOptions

    def __init__(
        self,
        config: SurveyConfig,
        settings: SourceSettings | None = None,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        super().__init__(config, settings)
        self.index_url = self.options.index_url
        if not self.index_url.endswith("/"):
            self.index_url += "/"
        self.json_api_url = self.options.json_api_url or json_api_base(self.index_url)
        self.now = now or (lambda: datetime.now(UTC))
        self.session = make_session()
        wait = self.options.max_rate_limit_wait
        self.limits = RateLimits(max_wait=wait, secondary_wait=min(max(self.settings.backoff, 1.0),
                                                                    wait),
                                 tries=max(self.settings.retries, 2), sleep=sleep or time.sleep)
        self.client = PyPISimple(
            endpoint=self.index_url, session=self.session, accept=ACCEPT_JSON_PREFERRED
        )

    def items(self) -> list[Item]:
        return package_items(self.config)

    def _retry_note(self, what: str) -> Callable[[int, BaseException], None]:
        def note(attempt: int, exc: BaseException) -> None:
            log.warning("pypi: %s: attempt %d failed (%s); retrying", what, attempt, describe(exc))
        return note

    def fetch(self, item: Item) -> list[Record]:
        timeout = self.settings.timeout

        def get_page():
            return self.client.get_project_page(item.key, timeout=timeout)

        try:
            page = call_with_retries(self.settings, get_page, self._retry_note(item.key))
        except NoSuchProjectError:
            raise ItemNotFound(f"no project named {item.key!r} on the package index") from None
        fetched_at = self.now()
        releases = release_rows(page.packages)
        info, fault = None, None
        if self.json_api_url:
            try:
                info = self._fetch_info(item.key)
            except (ItemNotFound, RateLimitExceeded, SourceUnreachable,
                    requests.RequestException) as exc:
                fault = f"metadata not collected: {_reason(exc)}"

        records = [
            Record("pypi_releases", {"package": item.key, "framework": item.framework,
                                     **release, "fetched_at": _iso(fetched_at)})
            for release in releases
        ]
        records.append(Record("pypi_packages", {
            "package": item.key,
            "framework": item.framework,
            "fetched_at": _iso(fetched_at),
            "latest_version": latest_final_version(releases),
            "file_count": len(page.packages),
            **release_cadence(releases, fetched_at),
            **_metadata_columns(info),
        }))
        if fault is not None:
            # The releases are whole (one page lists them all): keep them, say what is missing.
            raise PartialItem(fault, records)
        return records

    def _fetch_info(self, package: str) -> dict[str, Any]:
        url = f"{self.json_api_url}{package}/json"
        response = get_with_limits(self.session, url, self.settings, self.limits,
                                   headers={"Accept": "application/json"},
                                   what=f"{package} metadata")
        if response.status_code == 404:
            raise ItemNotFound(f"no project named {package!r} in the index's JSON API")
        response.raise_for_status()
        try:
            return response.json()["info"]
        except (ValueError, KeyError, TypeError):
            raise ItemNotFound(
                f"unexpected answer from {redact_url(url)}: not a project JSON document"
            ) from None

    def check(self) -> Reachability:
        items = self.items()
        if not items:
            return Reachability(True, "no packages configured")
        return probe(self.session, f"{self.index_url}{items[0].key}/", self.settings)

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def package_items(config: SurveyConfig) -> list[Item]:
    """One item per configured package, by its normalised name (PEP 503), first one kept."""
    items: dict[str, Item] = {}
    for fw in config.frameworks.values():
        for pkg in fw.pypi:
            name = canonicalize_name(pkg)
            items.setdefault(name, Item(name, fw.key))
    return list(items.values())


def _reason(exc: BaseException) -> str:
    return describe(exc) if isinstance(exc, requests.RequestException) else str(exc)


def _metadata_columns(info: dict[str, Any] | None) -> dict[str, Any]:
    if info is None:
        return {"metadata_source": None}
    license_text = (info.get("license") or "").strip() or None
    if license_text and len(license_text) > MAX_LICENSE_CHARS:
        license_text = license_text[:MAX_LICENSE_CHARS] + "…"
    return {
        "metadata_source": "json-api",
        "metadata_version": info.get("version"),
        "summary": info.get("summary"),
        "license": license_text,
        "license_expression": info.get("license_expression"),
        "requires_python": info.get("requires_python") or None,
        "requires_dist_count": len(info.get("requires_dist") or []),
        "project_urls": info.get("project_urls") or {},
        "home_page": info.get("home_page") or None,
    }
