"""Helpers of the kernels' tests: run the train stage on its own, without the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fwsurvey.config import SurveyConfig
from fwsurvey.stage import Stage, StageContext
from fwsurvey.store import SourceOutcome, Store


@pytest.fixture
def run_stage() -> Callable[[SurveyConfig, Path, Stage], list[SourceOutcome]]:
    """Check and run one stage as one finished run of a store at ``db_path``."""

    def run(config: SurveyConfig, db_path: Path, stage: Stage) -> list[SourceOutcome]:
        stage.check(config)
        store = Store(db_path)
        try:
            run_id = store.start_run(stage.name, [stage.name], {}, config.sha256)
            outcomes = stage.run(StageContext(store, run_id, config))
            store.finish_run(run_id, "ok")
            return outcomes
        finally:
            store.close()

    return run
