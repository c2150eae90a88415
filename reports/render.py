"""Renders the Markdown report (and its charts) from the store, and from nothing else.

The report has one section per section of the article: its claims with their verdicts and
evidence (judged by fwsurvey.claims and stored), then the measurements behind them. A
section says plainly "not measured yet" where the store holds nothing: no verdict is invented.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from fwsurvey.claims import SECTIONS, VERDICTS
from fwsurvey.config import SurveyConfig
from fwsurvey.reports.experiments import experiment_tables
from fwsurvey.reports.sections import SectionInput, builders
from fwsurvey.reports.verdicts import (
    bottom_line,
    decision_label,
    evidence_counts,
    normalise_claim,
    tally,
)
from fwsurvey.store import Store

REPORT_NAME = "report.md"


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("fwsurvey.reports", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters["num"] = _num
    env.filters["val"] = _val
    env.filters["day"] = lambda v: v[:10] if v else "—"
    env.filters["cell"] = lambda v: "—" if v in (None, "") else str(v).replace("|", "\\|")
    return env


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, float) else f"{value:,}"


def _val(value: Any) -> str:
    """A measured value as people read it: whole numbers plain, others to 3 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{int(value):,}"


def report_context(store: Store, config: SurveyConfig, out_dir: Path,
                   run_id: int | None = None) -> dict[str, Any]:
    """Everything the template shows, read from the store (section charts go to out_dir)."""
    if run_id is None:
        latest = store.latest_run(finished_only=True) or store.latest_run(finished_only=False)
        if latest is None:
            raise LookupError(f"{store.path} holds no run yet: run `fwsurvey run` first")
        run_id = latest["id"]
    run = store.query("SELECT * FROM runs WHERE id = ?", [run_id])
    if not run:
        raise LookupError(f"no run {run_id} in {store.path}")
    run = run[0]
    names = {key: fw.name for key, fw in config.frameworks.items()}
    a, b = (names[k] for k in config.compare)

    run_sources = store.query(
        "SELECT * FROM run_sources WHERE run_id = ? ORDER BY stage, source", [run_id])
    inp = SectionInput(store, config, run, run_sources, out_dir)
    verdicts = claims_context(store, run_id, (a, b))
    changes = changes_context(store, verdicts.get("run_id"))
    _previous_verdicts(verdicts["claims"], changes)
    section_builders = builders()
    sections = []
    for s in SECTIONS:
        data = section_builders[s.slug](inp) if s.slug in section_builders else {}
        data = {**data, "experiments": experiment_tables(inp, s.slug)}
        data["measured"] = bool(data.get("measured") or data["experiments"])
        claims = [c for c in verdicts["claims"] if c["section"] == s.slug]
        sections.append({
            "slug": s.slug, "title": s.title, "measured_by": s.measured_by,
            "claims": claims,
            "bottom_line": bottom_line(claims, s.measured_by),
            "template": f"sections/{s.slug}.md.j2" if s.slug in section_builders else None,
            "measured": bool(data.get("measured")),
            **data,
        })
    titles = {s.slug: s.title for s in SECTIONS}
    for c in verdicts["claims"]:
        c["section_title"] = titles.get(c["section"], c["section"])
    return {
        "evidence_chart": evidence_chart(verdicts["claims"], pair=(a, b), out_dir=out_dir),
        "title": config.title,
        "article": config.article,
        "pair": (a, b),
        "run": run,
        "versions_text": ", ".join(f"`{name}` {version}" for name, version
                                   in sorted(json.loads(run["versions"]).items()) if version),
        "run_sources": run_sources,
        "item_errors": store.query(
            "SELECT * FROM item_errors WHERE run_id = ? ORDER BY source, item", [run_id]),
        "sections": sections,
        "verdicts": verdicts,
        "changes": changes,
        "unjudged": {
            "unmeasurable": [c for c in verdicts["claims"] if c["unmeasurable"]],
            "not_collected": [c for c in verdicts["claims"] if c["not_collected"]],
        },
    }


EVIDENCE_CHART = "evidence-intervals.png"


def evidence_chart(claims: list[dict[str, Any]], pair: tuple[str, str],
                   out_dir: Path) -> str | None:
    """Every evidence row with an interval (timings), as its b/a ratio and 95% interval
    against its equivalence band, on a log axis centred on 1; None when no row has one."""
    from fwsurvey.reports.charts import interval_chart

    rows = [(f"{c['claim_id']}: {e['label']} ({e['item']})", e["ratio"], e["ci_low"],
             e["ci_high"], e["delta"])
            for c in claims for e in c["evidence"]
            if e["ratio"] is not None and e["ci_low"] is not None and e["ci_high"] is not None]
    if not rows:
        return None
    interval_chart(rows, out_dir / EVIDENCE_CHART,
                   title="Timing evidence: ratio with its 95% interval and equivalence band",
                   xlabel=f"{pair[1]} / {pair[0]}")
    return EVIDENCE_CHART


def _previous_verdicts(claims: list[dict[str, Any]], changes: dict[str, Any]) -> None:
    """Each claim's previous verdict and why it changed: as the claims stage stored them
    (contract D), else the verdict of the previous run that judged the claims (the reason
    then is unknown: the changed evidence values are listed under "What changed")."""
    before = {v["claim_id"]: v["before"] for v in changes.get("verdicts", [])}
    for c in claims:
        previous = c["previous_verdict"]
        if previous is None and c["claim_id"] in before:
            previous = before[c["claim_id"]] or None
        c["previous_shown"] = previous
        c["changed"] = previous is not None and previous != c["verdict"]
        c["why_changed"] = c["change_reason"] if c["changed"] else None


def claims_context(store: Store, run_id: int,
                   pair: tuple[str, str] = ("a", "b")) -> dict[str, Any]:
    """The verdicts shown: those of the newest run up to ``run_id`` that judged the claims,
    normalised (:func:`fwsurvey.reports.verdicts.normalise_claim`: a database from before
    contract D renders what it has). ``pair`` names frameworks a and b in decision labels."""
    judged = store.query("SELECT MAX(run_id) AS run_id FROM claims WHERE run_id <= ?", [run_id])
    verdict_run = judged[0]["run_id"] if judged else None
    if verdict_run is None:
        return {"run_id": None, "claims": [], "tally": [], "newer_data_runs": []}
    claims = store.query("SELECT * FROM claims WHERE run_id = ? ORDER BY rowid", [verdict_run])
    evidence = store.query("SELECT * FROM claim_evidence WHERE run_id = ? ORDER BY rowid",
                           [verdict_run])
    for c in claims:
        c["evidence"] = [e for e in evidence if e["claim_id"] == c["claim_id"]]
        c["rule"] = _rule(c["rule"])
        normalise_claim(c)
        c["counted"] = evidence_counts(c["evidence"])
        c["has_stats"] = any(e["ci_low"] is not None or e["n_a"] is not None
                             or e["delta"] is not None for e in c["evidence"])
        for e in c["evidence"]:
            e["decision_shown"] = decision_label(e, pair)
    # Runs after the verdicts that wrote data (collect, analyze or train) but judged nothing.
    newer = [r["run_id"] for r in store.query(
        "SELECT DISTINCT run_id FROM run_sources WHERE run_id > ? AND run_id <= ?"
        " AND stage IN ('collect', 'analyze', 'train') AND status IN ('ok', 'partial')"
        " ORDER BY run_id", [verdict_run, run_id])]
    rule = claims[0]["rule"] if claims else {}
    return {"run_id": verdict_run, "claims": claims, "tally": tally(claims, VERDICTS),
            "newer_data_runs": newer, "registry_sha256": claims[0]["registry_sha256"]
            if claims else None, "rule": rule,
            # The rule described in words only when it has the keys the words name: the
            # claims stage may store another shape of rule, and the report never guesses.
            "rule_known": all(isinstance(rule.get(k), int | float) for k in RULE_KEYS)}


#: The keys of the stored rule the report's description of it uses.
RULE_KEYS = ("margin", "max_age_days", "support_share", "contradict_share",
             "min_metric_coverage")


def _rule(text: str | None) -> dict[str, Any]:
    try:
        rule = json.loads(text) if text else {}
    except ValueError:
        return {}
    return rule if isinstance(rule, dict) else {}


def changes_context(store: Store, verdict_run: int | None) -> dict[str, Any]:
    """What changed between the verdicts shown and the previous run that judged the claims."""
    if verdict_run is None:
        return {"previous": None}
    prev = store.query("SELECT MAX(run_id) AS run_id FROM claims WHERE run_id < ?",
                       [verdict_run])[0]["run_id"]
    if prev is None:
        return {"previous": None}
    before = {r["claim_id"]: r for r in store.query(
        "SELECT claim_id, text, verdict, key_numbers FROM claims WHERE run_id = ?", [prev])}
    after = {r["claim_id"]: r for r in store.query(
        "SELECT claim_id, text, verdict, key_numbers FROM claims WHERE run_id = ?"
        " ORDER BY rowid", [verdict_run])}
    verdicts = [{"claim_id": cid, "text": row["text"],
                 "before": before[cid]["verdict"] if cid in before else None,
                 "after": row["verdict"]}
                for cid, row in after.items()
                if cid not in before or before[cid]["verdict"] != row["verdict"]]
    removed = [row for cid, row in before.items() if cid not in after]
    # Each (metric, item) once: metrics are shared between claims.
    values = store.query(
        "SELECT n.metric, n.item, n.label, n.unit, o.value_a AS a_before, n.value_a AS a_after,"
        " o.value_b AS b_before, n.value_b AS b_after"
        " FROM claim_evidence n JOIN claim_evidence o"
        "   ON o.run_id = ? AND o.claim_id = n.claim_id AND o.metric = n.metric"
        "   AND o.item = n.item"
        " WHERE n.run_id = ? AND (o.value_a IS NOT n.value_a OR o.value_b IS NOT n.value_b)"
        " GROUP BY n.metric, n.item ORDER BY n.metric, n.item", [prev, verdict_run])
    unchanged = store.query(
        "SELECT COUNT(DISTINCT n.metric || '|' || n.item) AS n FROM claim_evidence n"
        " JOIN claim_evidence o ON o.run_id = ? AND o.claim_id = n.claim_id"
        "   AND o.metric = n.metric AND o.item = n.item"
        " WHERE n.run_id = ? AND o.value_a IS n.value_a AND o.value_b IS n.value_b",
        [prev, verdict_run])[0]["n"]
    reasons = {}
    if "change_reason" in store.db["claims"].columns_dict:
        reasons = {r["claim_id"]: r["change_reason"] for r in store.query(
            "SELECT claim_id, change_reason FROM claims WHERE run_id = ?", [verdict_run])}
    for v in verdicts:
        v["why"] = reasons.get(v["claim_id"])
    return {"previous": prev, "verdicts": verdicts, "removed": removed, "values": values,
            "unchanged": unchanged}


def render_report(store: Store, config: SurveyConfig, out_dir: Path,
                  run_id: int | None = None) -> Path:
    """Write ``report.md`` and its charts into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    context = report_context(store, config, out_dir, run_id)
    text = _env().get_template("report.md.j2").render(**context)
    path = out_dir / REPORT_NAME
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers never see half a report
    return path
