"""The claims registry and the verdicts: each claim of the article, the metrics that bear on
it (SQL over the store) and the rule that turns them into a verdict.

* :mod:`fwsurvey.claims.registry` reads and validates ``claims.toml`` (and expands the
  ``[metrics.ID.from]`` shorthand into SQL);
* :mod:`fwsurvey.claims.judge` runs the metrics and judges each claim;
* :mod:`fwsurvey.claims.stats` holds the statistics of timings (bootstrap interval of the
  ratio of medians, run-to-run variation, equivalence band, geometric mean across tasks);
* :mod:`fwsurvey.claims.stage` is the ``claims`` stage that stores the verdicts.
"""

from fwsurvey.claims.judge import (
    DECISIONS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SOURCE,
    SQL_TIME_LIMIT_S,
    VERDICTS,
    Evidence,
    Verdict,
    check_sql,
    claim_pair,
    claim_text,
    direction_problems,
    evaluate,
    framework_rows,
    sql_listing,
    sql_parameters,
)
from fwsurvey.claims.registry import (
    SECTION_SLUGS,
    SECTIONS,
    Claim,
    From,
    Metric,
    Registry,
    RegistryError,
    Rule,
    Section,
    default_registry_path,
    expand_from,
    load_registry,
    metrics_for,
)
from fwsurvey.claims.stage import ClaimsStage, ClaimsUnit, run_claims

__all__ = [
    "DECISIONS", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "SECTIONS", "SECTION_SLUGS", "SOURCE",
    "SQL_TIME_LIMIT_S", "VERDICTS", "Claim", "ClaimsStage", "ClaimsUnit", "Evidence", "From",
    "Metric", "Registry", "RegistryError", "Rule", "Section", "Verdict", "check_sql",
    "claim_pair", "claim_text", "default_registry_path", "direction_problems", "evaluate",
    "expand_from", "framework_rows",
    "load_registry", "metrics_for", "run_claims", "sql_listing", "sql_parameters",
]
