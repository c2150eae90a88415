"""Collectors: one module per source, each behind :class:`fwsurvey.sources.Collector`."""

from __future__ import annotations

from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.sources import Collector

#: Every source, by the name used in ``--source`` and ``[sources.NAME]``, in run order.
SOURCES: dict[str, type[Collector]] = {
    PyPICollector.name: PyPICollector,
}
