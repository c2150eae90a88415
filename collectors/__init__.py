"""Collectors: one module per source, each behind :class:`fwsurvey.sources.Collector`."""

from __future__ import annotations

from fwsurvey.collectors.docs import DocsCollector
from fwsurvey.collectors.downloads import DownloadsCollector
from fwsurvey.collectors.git_history import GitHistoryCollector
from fwsurvey.collectors.github import GitHubCollector
from fwsurvey.collectors.hub import HubCollector
from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.sources import Collector

#: Every source, by the name used in ``--source`` and ``[sources.NAME]``, in run order.
SOURCES: dict[str, type[Collector]] = {
    PyPICollector.name: PyPICollector,
    GitHubCollector.name: GitHubCollector,
    GitHistoryCollector.name: GitHistoryCollector,
    DownloadsCollector.name: DownloadsCollector,
    DocsCollector.name: DocsCollector,
    HubCollector.name: HubCollector,
}
