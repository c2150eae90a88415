"""What each section of the report shows, as context builders keyed by section slug.

A builder reads the store (and only the store), may write charts into the report folder,
and returns the variables its template ``templates/sections/<slug>.md.j2`` uses, with
``measured`` saying whether the section holds any measurement yet. A section without a
builder says "not measured yet".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwsurvey.config import SurveyConfig
from fwsurvey.store import Store


@dataclass(frozen=True)
class SectionInput:
    """What a section builder gets: the store, the config, the run shown, the output folder."""

    store: Store
    config: SurveyConfig
    run: dict[str, Any]
    run_sources: list[dict[str, Any]]
    out_dir: Path

    @property
    def run_id(self) -> int:
        return self.run["id"]

    def names(self) -> dict[str, str]:
        """Display name of each configured framework, by key."""
        return {key: fw.name for key, fw in self.config.frameworks.items()}

    def source_outcome(self, source: str, stage: str = "collect") -> dict[str, Any] | None:
        """How ``source`` ended in the run shown, or None if it did not run."""
        return next((s for s in self.run_sources
                     if s["stage"] == stage and s["source"] == source), None)

    def latest_as_of_run(self, table: str, key: str) -> list[dict[str, Any]]:
        """The newest row per ``key`` of a history table, as of the run shown."""
        return self.store.query(
            f'SELECT t.* FROM "{table}" t JOIN (SELECT "{key}", MAX(run_id) AS run_id'
            f' FROM "{table}" WHERE run_id <= ? GROUP BY "{key}") latest'
            f' USING ("{key}", run_id)', [self.run_id])


SectionBuilder = Callable[[SectionInput], dict[str, Any]]


def builders() -> dict[str, SectionBuilder]:
    """Every section builder, by section slug."""
    from fwsurvey.reports.community import community_section
    from fwsurvey.reports.ergonomics import (
        ease_of_use_section,
        model_architecture_section,
        training_deployment_section,
    )
    from fwsurvey.reports.kernels import graph_building_section, performance_section

    return {
        "community-ecosystem": community_section,
        "ease-of-use": ease_of_use_section,
        "model-architecture": model_architecture_section,
        "training-deployment": training_deployment_section,
        "graph-building": graph_building_section,
        "performance-scalability": performance_section,
    }
