"""Runs a survey: the registered stages, in order, as one row of ``runs``.

config -> collect -> analyze -> train -> claims -> report. Each stage lives in its domain
package (``fwsurvey.<package>.stage``) and implements :class:`fwsurvey.stage.Stage`; this
module only registers them and loops over them under the database's lock. Every unit of a
stage (a source) is written in its own transaction with its outcome (``run_sources``), so
one failing source never loses another's data, and the run's status sums them up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fwsurvey.analyzers.stage import AnalyzeStage
from fwsurvey.claims.stage import ClaimsStage
from fwsurvey.collectors.stage import CollectStage
from fwsurvey.config import SurveyConfig, load_config
from fwsurvey.kernels.stage import TrainStage
from fwsurvey.lock import RunLock
from fwsurvey.provenance import run_versions
from fwsurvey.reports.stage import ReportStage
from fwsurvey.stage import Progress, SilentProgress, Stage, StageContext
from fwsurvey.store import SourceOutcome, Store

log = logging.getLogger(__name__)

#: Every stage, by name, in run order. A new stage is one ``stage.py`` plus one line here.
STAGE_CLASSES: dict[str, type[Stage]] = {
    cls.name: cls for cls in (CollectStage, AnalyzeStage, TrainStage, ClaimsStage, ReportStage)
}
STAGES = tuple(STAGE_CLASSES)


@dataclass
class RunResult:
    """What a run did: its id, final status, each unit's outcome and the report path."""

    run_id: int
    status: str
    outcomes: list[SourceOutcome] = field(default_factory=list)
    report: Path | None = None


def load_survey(path: Path | str) -> SurveyConfig:
    """Read the configuration and have every stage validate its own tables.

    Raises ConfigError naming the file and the dotted key (``sources.githb``, ``kernels.x``).
    """
    config = load_config(path)
    for cls in STAGE_CLASSES.values():
        cls().check(config)
    return config


def make_stages(stages: Sequence[Stage | str]) -> list[Stage]:
    """Stage objects for names (default options) or as given, in the order given."""
    out = []
    for stage in stages:
        if isinstance(stage, str):
            if stage not in STAGE_CLASSES:
                raise ValueError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}")
            stage = STAGE_CLASSES[stage]()
        out.append(stage)
    return out


def run_status(outcomes: list[SourceOutcome]) -> str:
    """``ok`` when every unit is ok or skipped, ``failed`` on any error, else ``degraded``."""
    statuses = {o.status for o in outcomes}
    if "error" in statuses:
        return "failed"
    if statuses - {"ok", "skipped"}:
        return "degraded"
    return "ok"


def run_survey(config: SurveyConfig, db_path: Path, *, stages: Sequence[Stage | str] = STAGES,
               command: str = "run", progress: Progress | None = None) -> RunResult:
    """Run ``stages`` under the database's lock, as one row of ``runs``.

    Each stage's configuration is checked before anything is written (ValueError or
    ConfigError). Raises LockHeld when another run holds the lock.
    """
    chosen = make_stages(stages)
    for stage in chosen:
        stage.check(config)
    with RunLock(db_path):
        store = Store(db_path)
        try:
            interrupted = store.mark_interrupted_runs()
            if interrupted:
                log.warning("runs %s were interrupted; marked as such", interrupted)
            run_id = store.start_run(command, [s.name for s in chosen], run_versions(),
                                     config.sha256)
            ctx = StageContext(store, run_id, config, progress or SilentProgress())
            result = RunResult(run_id, "running")
            try:
                for stage in chosen:
                    result.outcomes.extend(stage.run(ctx))
                result.report = ctx.artifacts.get("report")
                result.status = run_status(result.outcomes)
                store.finish_run(run_id, result.status)
            except KeyboardInterrupt:
                store.finish_run(run_id, "interrupted")
                raise
            except BaseException:
                store.finish_run(run_id, "failed")
                raise
            return result
        finally:
            store.close()
