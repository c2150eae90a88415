"""The ``report`` stage: renders the Markdown report of the run from the store."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fwsurvey.reports.render import REPORT_NAME, render_report
from fwsurvey.stage import Stage, StageContext, Tally, Unit


class ReportUnit(Unit):
    """``report.md`` and its charts, written to ``out_dir`` (source ``markdown``)."""

    source = "markdown"
    noun, verb = "reports", "rendered"

    def __init__(self, out_dir: Path | None = None):
        self.out_dir = out_dir

    def run(self, ctx: StageContext, tally: Tally) -> None:
        tally.start(1)
        path = render_report(ctx.store, ctx.config, self.out_dir or ctx.config.report_dir,
                             run_id=ctx.run_id)
        ctx.artifacts["report"] = path
        tally.done(REPORT_NAME)


class ReportStage(Stage):
    """Render the report of the current run (``ctx.artifacts["report"]`` is its path)."""

    name = "report"
    needs = ("claims",)

    def __init__(self, out_dir: Path | None = None):
        self.out_dir = out_dir

    def units(self, ctx: StageContext) -> Iterable[Unit]:
        return [ReportUnit(self.out_dir)]
