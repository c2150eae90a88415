"""The ``claims`` stage: compute the community metrics from the store, then judge every claim
of the registry as of the run and store the verdicts with their evidence (tables
community_metrics, community_org_shares, survey_frameworks, claims, claim_evidence).

The metrics come first (:class:`fwsurvey.collectors.metrics.CommunityMetricsUnit`) because
claims read them; they are computed from stored items only, so ``fwsurvey claims`` after a
change of a metric's definition or of ``[community]`` needs no network.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fwsurvey.claims.judge import SOURCE, Verdict, evaluate
from fwsurvey.claims.registry import default_registry_path, load_registry
from fwsurvey.collectors.metrics import CommunityMetricsUnit
from fwsurvey.config import SurveyConfig
from fwsurvey.stage import Stage, StageContext, Tally, Unit, UnitFailed, run_unit
from fwsurvey.store import SourceOutcome, Store


class ClaimsUnit(Unit):
    """Every claim of one registry, judged and written in one transaction.

    An invalid registry (a ConfigError) or a run missing from the store ends the unit as
    ``error`` with that message; ``verdicts`` holds the verdicts of a unit that ran.
    """

    source = SOURCE
    noun, verb = "claims", "judged"

    def __init__(self, registry: Path | None = None):
        self.registry = registry
        self.verdicts: list[Verdict] = []

    def run(self, ctx: StageContext, tally: Tally) -> None:
        registry = load_registry(self.registry or default_registry_path(ctx.config))
        try:
            verdicts, records = evaluate(ctx.store, ctx.run_id, ctx.config, registry)
        except LookupError as exc:
            raise UnitFailed(str(exc)) from None
        tally.start(len(verdicts))
        tally.add(records)
        for verdict in verdicts:
            tally.done(verdict.claim.id)
        self.verdicts = verdicts


class ClaimsStage(Stage):
    """Compute the community metrics, then judge the claims registry (``registry``, else the
    config's) against the store."""

    name = "claims"
    needs = ("collect", "analyze", "train")

    def __init__(self, registry: Path | None = None):
        self.registry = registry

    def units(self, ctx: StageContext) -> Iterable[Unit]:
        return [CommunityMetricsUnit(), ClaimsUnit(self.registry)]


def run_claims(store: Store, run_id: int, config: SurveyConfig,
               registry_path: Path | None = None) -> tuple[SourceOutcome, list[Verdict]]:
    """Run the claims stage's units on their own (tests, scripts): the community metrics,
    then the claims; the claims unit's outcome and its verdicts."""
    ctx = StageContext(store, run_id, config)
    run_unit(ctx, ClaimsStage.name, CommunityMetricsUnit())
    unit = ClaimsUnit(registry_path)
    outcome = run_unit(ctx, ClaimsStage.name, unit)
    return outcome, unit.verdicts
