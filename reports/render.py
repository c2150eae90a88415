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
from fwsurvey.reports.sections import SectionInput, builders
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
    verdicts = claims_context(store, run_id)
    section_builders = builders()
    sections = []
    for s in SECTIONS:
        data = section_builders[s.slug](inp) if s.slug in section_builders else {}
        sections.append({
            "slug": s.slug, "title": s.title, "measured_by": s.measured_by,
            "claims": [c for c in verdicts["claims"] if c["section"] == s.slug],
            "template": f"sections/{s.slug}.md.j2" if s.slug in section_builders else None,
            "measured": bool(data.get("measured")),
            **data,
        })
    titles = {s.slug: s.title for s in SECTIONS}
    for c in verdicts["claims"]:
        c["section_title"] = titles.get(c["section"], c["section"])
    return {
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
        "changes": changes_context(store, verdicts.get("run_id")),
    }


def claims_context(store: Store, run_id: int) -> dict[str, Any]:
    """The verdicts shown: those of the newest run up to ``run_id`` that judged the claims."""
    judged = store.query("SELECT MAX(run_id) AS run_id FROM claims WHERE run_id <= ?", [run_id])
    verdict_run = judged[0]["run_id"] if judged else None
    if verdict_run is None:
        return {"run_id": None, "claims": [], "tally": [], "newer_data_runs": []}
    claims = store.query("SELECT * FROM claims WHERE run_id = ? ORDER BY rowid", [verdict_run])
    evidence = store.query("SELECT * FROM claim_evidence WHERE run_id = ? ORDER BY rowid",
                           [verdict_run])
    for c in claims:
        c["evidence"] = [e for e in evidence if e["claim_id"] == c["claim_id"]]
        c["rule"] = json.loads(c["rule"])
    tally = [(v, sum(c["verdict"] == v for c in claims)) for v in VERDICTS]
    # Runs after the verdicts that wrote data (collect, analyze or train) but judged nothing.
    newer = [r["run_id"] for r in store.query(
        "SELECT DISTINCT run_id FROM run_sources WHERE run_id > ? AND run_id <= ?"
        " AND stage IN ('collect', 'analyze', 'train') AND status IN ('ok', 'partial')"
        " ORDER BY run_id", [verdict_run, run_id])]
    return {"run_id": verdict_run, "claims": claims, "tally": [t for t in tally if t[1]],
            "newer_data_runs": newer, "registry_sha256": claims[0]["registry_sha256"]
            if claims else None, "rule": claims[0]["rule"] if claims else None}


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
