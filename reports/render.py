"""Renders the Markdown report (and its charts) from the store, and from nothing else.

The report has one section per claim of the article. A section shows what the store holds
for it and says plainly "not measured yet" where nothing does: no verdict is invented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from fwsurvey.config import SurveyConfig
from fwsurvey.reports.sections import SectionInput, builders
from fwsurvey.store import Store

REPORT_NAME = "report.md"


@dataclass(frozen=True)
class Section:
    """One section of the article, the claims it makes and what will measure them."""

    slug: str
    title: str
    claims: tuple[str, ...]
    measured_by: str


#: The article's six sections. ``{a}`` and ``{b}`` are the compared frameworks' names;
#: ``{b_engine}`` names the engine under ``{b}`` (", on JAX,") when the config has one.
SECTIONS = (
    Section("ease-of-use", "Ease of use",
            ("{a} is more user-friendly and intuitive than {b}",
             "{b} is more concise and functional"),
            "API ergonomics of paired implementations (analyzers)"),
    Section("graph-building", "Graph building",
            ("{a}'s dynamic graph is more flexible",
             "{b}'s static graph makes it more efficient"),
            "compile counts and throughput under varying shapes (kernels)"),
    Section("model-architecture", "Model architecture",
            ("{a} offers a wider range of pre-built modules",),
            "library surface inventory (analyzers)"),
    Section("training-deployment", "Training & deployment",
            ("{a} has a more extensive set of training and deployment tools",
             "{a} has better multi-GPU and distributed training support"),
            "library surface inventory and scaling runs (analyzers, kernels)"),
    Section("community-ecosystem", "Community & ecosystem",
            ("{a} has a larger and more active community and ecosystem",
             "{b} is relatively newer, with a smaller community"),
            "PyPI release history; GitHub activity, git history and downloads (collectors)"),
    Section("performance-scalability", "Performance & scalability",
            ("{b}{b_engine} may not match the performance and scalability of {a}",),
            "paired reference trainings and scaling runs (kernels)"),
)


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
    env.filters["day"] = lambda v: v[:10] if v else "—"
    env.filters["cell"] = lambda v: "—" if v in (None, "") else str(v).replace("|", "\\|")
    return env


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, float) else f"{value:,}"


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
    engine = next((fw.name for fw in config.frameworks.values()
                   if fw.engine_for == config.compare[1]), None)
    b_engine = f", on {engine}," if engine else ""

    run_sources = store.query(
        "SELECT * FROM run_sources WHERE run_id = ? ORDER BY stage, source", [run_id])
    inp = SectionInput(store, config, run, run_sources, out_dir)
    section_builders = builders()
    sections = []
    for s in SECTIONS:
        data = section_builders[s.slug](inp) if s.slug in section_builders else {}
        sections.append({
            "slug": s.slug, "title": s.title, "measured_by": s.measured_by,
            "claims": [c.format(a=a, b=b, b_engine=b_engine) for c in s.claims],
            "template": f"sections/{s.slug}.md.j2" if s.slug in section_builders else None,
            "measured": bool(data.get("measured")),
            **data,
        })
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
    }


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
