"""Judging the claims: each metric's SQL run over the store, its rows paired into evidence,
and the rule that turns evidence into a verdict.

Each pair of values is one evidence row: it favours ``a`` or ``b``, is ``even`` (closer than
the margin), or is unusable (``missing`` or ``stale``: older than the metric's maximum age).
Unusable rows never count. Per metric, the share of usable rows that favour the framework
the claim favours; the claim's share is the mean over metrics with usable rows. A verdict
needs enough metrics with usable rows (``min_metric_coverage``): otherwise ``insufficient
evidence``, with what is missing and why. Then ``supported`` at or above ``support_share``,
``contradicted`` at or below ``contradict_share`` (no measurable difference contradicts a
claim that one framework is ahead), ``mixed`` in between.

Metric SQL runs under one guard, in judging and in ``fwsurvey claims --check`` alike:
read-only (``PRAGMA query_only``), an authorizer that refuses ATTACH, DETACH (so VACUUM and
VACUUM INTO, which attach their target), transaction control and every pragma but the
read-only ones, a time limit and a row limit. In judging, ``survey_frameworks`` of the
evaluating run is in place (rolled back afterwards: the stage writes those rows with the
verdicts).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from fwsurvey.claims.registry import Claim, Metric, Registry, Rule
from fwsurvey.config import SurveyConfig
from fwsurvey.schema import migrations
from fwsurvey.sources import Record
from fwsurvey.store import Store, utcnow

#: Every verdict, in the order the report tallies them.
VERDICTS = ("supported", "contradicted", "mixed", "insufficient evidence")
#: The ``source`` the claims stage writes its rows under.
SOURCE = "claims"
#: Seconds one metric's SQL may run before it is stopped (recorded as missing in judging, a
#: problem of the metric in the check).
SQL_TIME_LIMIT_S = 10.0
#: Rows one metric's SQL may return (one per framework and item; a runaway query is stopped).
SQL_MAX_ROWS = 100_000
#: Pragmas metric SQL may run: reading the schema and the database's settings. SQLite runs
#: some itself (``pragma_table_info('t')`` is ``table_info``). Any other, and any assignment
#: (``PRAGMA query_only = OFF``), is refused.
READ_ONLY_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "database_list", "collation_list",
    "function_list", "module_list", "pragma_list", "compile_options", "integrity_check",
    "quick_check", "user_version", "application_id", "schema_version", "data_version",
    "page_count", "page_size", "freelist_count", "encoding", "query_only"})
#: Pragmas whose argument names what to read rather than a value to set.
_PRAGMAS_WITH_NAMES = frozenset({
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"})

# -- checking -----------------------------------------------------------------------------------

#: Columns a metric's SQL must return, and those it may.
REQUIRED_COLUMNS = ("framework", "value")
OPTIONAL_COLUMNS = ("item", "run_id", "source", "fetched_at", "note")


def check_sql(registry: Registry) -> list[str]:
    """Problems with the metrics' SQL, found by running it on an empty migrated database
    under the guard judging uses (read-only, refused statements, time limit)."""
    db = Database(memory=True)
    migrations.apply(db)
    db.conn.isolation_level = None  # no implicit BEGIN: a writing metric meets query_only
    problems = []
    with _guarded(db.conn):
        for metric in registry.metrics.values():
            try:
                columns, _ = _execute(db.conn, metric.sql, {"run_id": 1, "a": "a", "b": "b"},
                                      keep=False)
            except MetricSQLError as exc:
                problems.append(f"metrics.{metric.id}: {exc}")
                continue
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            extra = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if missing:
                problems.append(f"metrics.{metric.id}: SQL must return {', '.join(missing)}")
            if extra:
                problems.append(f"metrics.{metric.id}: SQL returns unknown columns {extra}"
                                f" (allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})")
    db.conn.close()
    unused = set(registry.metrics) - {m for c in registry.claims for m in c.metrics}
    problems += [f"metrics.{m}: not used by any claim" for m in sorted(unused)]
    return problems


# -- the guard around metric SQL ----------------------------------------------------------------

class MetricSQLError(Exception):
    """A metric's SQL failed, was refused or was stopped; the message says which and why."""


class _Authorizer:
    """SQLite's authorizer callback: refuses what a metric has no business doing, and keeps
    the first refusal's reason (SQLite itself only says "not authorized")."""

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, _db: str | None,
                 _trigger: str | None) -> int:
        reason = None
        if action == sqlite3.SQLITE_ATTACH:
            reason = (f"ATTACH or VACUUM ({arg1!r}) is refused: metric SQL reads the store,"
                      " it never opens, writes or copies database files")
        elif action == sqlite3.SQLITE_DETACH:
            reason = "DETACH is refused: metric SQL reads the store as it is"
        elif action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            reason = f"{arg1} is refused: metric SQL runs inside the judge's transaction"
        elif action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name not in READ_ONLY_PRAGMAS or (arg2 is not None
                                                  and name not in _PRAGMAS_WITH_NAMES):
                reason = (f"PRAGMA {arg1}{'' if arg2 is None else f' = {arg2}'} is refused:"
                          " metric SQL may only read pragmas such as table_info")
        if reason is None:
            return sqlite3.SQLITE_OK
        self.refused = self.refused or reason
        return sqlite3.SQLITE_DENY


@contextmanager
def _guarded(conn: sqlite3.Connection) -> Iterator[None]:
    """Read-only for the metric SQL run inside; ``_execute`` adds the authorizer and limits."""
    conn.execute("PRAGMA query_only = ON")
    try:
        yield
    finally:
        conn.execute("PRAGMA query_only = OFF")


def _execute(conn: sqlite3.Connection, sql: str, params: dict[str, Any], *,
             keep: bool = True) -> tuple[list[str], list[tuple]]:
    """Run one metric's SQL under the authorizer, the time limit and the row limit.

    Returns its columns and rows (``keep=False``: rows are read, to run the query to its
    end, but not kept). Raises MetricSQLError saying why it failed, was refused or stopped.
    """
    authorizer = _Authorizer()
    deadline = time.monotonic() + SQL_TIME_LIMIT_S
    conn.set_authorizer(authorizer)
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    rows: list[tuple] = []
    try:
        cursor = conn.execute(sql, params)
        columns = [d[0] for d in cursor.description or ()]
        for n, row in enumerate(cursor, 1):
            if n > SQL_MAX_ROWS:
                raise MetricSQLError(f"the metric's SQL returned over {SQL_MAX_ROWS:,} rows"
                                     " and was stopped")
            if keep:
                rows.append(row)
        return columns, rows
    except sqlite3.Error as exc:
        if authorizer.refused:
            raise MetricSQLError(f"the metric's SQL was refused: {authorizer.refused}") from None
        if "interrupted" in str(exc):
            raise MetricSQLError(f"the metric's SQL ran past {SQL_TIME_LIMIT_S:g} s and was"
                                 " stopped") from None
        raise MetricSQLError(f"the metric's SQL failed: {exc}") from None
    finally:
        conn.set_progress_handler(None, 0)
        conn.set_authorizer(None)


# -- evaluation -------------------------------------------------------------------------------

@dataclass
class Evidence:
    """One pair of values of a metric (per item), and which framework it favours."""

    metric: Metric
    item: str
    value_a: float | None
    value_b: float | None
    favours: str  # a | b | even | missing | stale
    note: str | None
    data_a: dict[str, Any]
    data_b: dict[str, Any]

    @property
    def relative_difference(self) -> float | None:
        """(better - worse) / max(|a|, |b|), signed towards ``a``; None without both values."""
        if self.value_a is None or self.value_b is None:
            return None
        scale = max(abs(self.value_a), abs(self.value_b))
        if scale == 0:
            return 0.0
        diff = (self.value_a - self.value_b) / scale
        return round(diff if self.metric.better == "higher" else -diff, 4)


@dataclass
class Verdict:
    """A claim's verdict, why, its headline numbers and the evidence behind it."""

    claim: Claim
    verdict: str
    reason: str
    key_numbers: str | None
    evidence: list[Evidence]
    counts: dict[str, int]


def framework_rows(config: SurveyConfig) -> list[dict[str, Any]]:
    """``survey_frameworks`` rows: each configured framework and its role in the comparison."""
    a, b = config.compare
    rows = []
    for key, fw in config.frameworks.items():
        role = "a" if key == a else "b" if key == b else "engine" if fw.engine_for else "other"
        rows.append({"framework": key, "name": fw.name, "role": role,
                     "engine_for": fw.engine_for, "pypi": fw.pypi[0] if fw.pypi else None,
                     "github": fw.github})
    return rows


def claim_text(claim: Claim, config: SurveyConfig) -> str:
    """The claim in words, with the compared frameworks' names filled in."""
    names = {key: fw.name for key, fw in config.frameworks.items()}
    a, b = config.compare
    engine = next((fw.name for fw in config.frameworks.values() if fw.engine_for == b), None)
    return claim.text.format(a=names[a], b=names[b], b_engine=f", on {engine}," if engine else "")


def sql_parameters(config: SurveyConfig, run_id: int) -> dict[str, Any]:
    """The parameters every metric's SQL runs with: ``:run_id``, ``:a`` and ``:b``."""
    return {"run_id": run_id, "a": config.compare[0], "b": config.compare[1]}


def sql_listing(metrics: list[Metric], config: SurveyConfig, run_id: int | None) -> str:
    """The SQL each metric runs, headed by the parameters to run it with in Datasette.

    ``run_id``: the run to judge as of (one that judged the claims has the
    ``survey_frameworks`` rows the SQL may join); None says so in words.
    """
    params = sql_parameters(config, run_id or 0)
    run = (f"{run_id}" if run_id is not None
           else "the id of a run that judged the claims (claims.run_id)")
    return "\n\n".join(f"-- metric {m.id}: {m.label}\n"
                        f"-- parameters: run_id = {run}, a = {params['a']}, b = {params['b']}\n"
                        f"{m.sql}" for m in metrics)


def evaluate(store: Store, run_id: int, config: SurveyConfig, registry: Registry,
             now: str | None = None) -> tuple[list[Verdict], list[Record]]:
    """Every claim's verdict as of ``run_id``, and the rows that record them."""
    now = now or utcnow()
    run = store.query("SELECT started_at FROM runs WHERE id = ?", [run_id])
    if not run:
        raise LookupError(f"no run {run_id} in {store.path}")
    as_of = _parse_time(run[0]["started_at"])
    frameworks = framework_rows(config)
    values = _metric_values(store, run_id, config, registry, frameworks)
    names = tuple(config.frameworks[k].name for k in config.compare)
    verdicts = [_judge(claim, registry, values, as_of, store, run_id, config.compare, names)
                for claim in registry.claims]
    records = [Record("survey_frameworks", {**row, "fetched_at": now}) for row in frameworks]
    for v in verdicts:
        records.append(Record("claims", _claim_row(v, config, registry, now)))
        records += [Record("claim_evidence", _evidence_row(v.claim, e, now)) for e in v.evidence]
    return verdicts, records


def _metric_values(store: Store, run_id: int, config: SurveyConfig, registry: Registry,
                   frameworks: list[dict[str, Any]]) -> dict[str, list[dict] | str]:
    """Run each used metric's SQL (guarded: ``_execute``) with survey_frameworks in place.

    Returns the rows per metric id, or the error text when the SQL failed.
    """
    conn = store.db.conn
    used = {m for c in registry.claims for m in c.metrics}
    params = sql_parameters(config, run_id)
    out: dict[str, list[dict] | str] = {}
    conn.execute("SAVEPOINT claims_evaluation")
    try:
        conn.executemany(
            "INSERT OR REPLACE INTO survey_frameworks (run_id, source, fetched_at, framework,"
            " name, role, engine_for, pypi, github) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, SOURCE, utcnow(), r["framework"], r["name"], r["role"], r["engine_for"],
              r["pypi"], r["github"]] for r in frameworks])
        with _guarded(conn):
            for mid in sorted(used):
                out[mid] = _run_sql(conn, registry.metrics[mid].sql, params)
    finally:
        conn.execute("ROLLBACK TO claims_evaluation")
        conn.execute("RELEASE claims_evaluation")
    return out


def _run_sql(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> list[dict] | str:
    try:
        columns, rows = _execute(conn, sql, params)
    except MetricSQLError as exc:
        return str(exc)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _why_missing(store: Store, run_id: int, metric: Metric) -> str:
    """Why a metric has no value: how its sources last ended, as of ``run_id``."""
    if not metric.sources:
        return "no data in the store"
    parts = []
    for source in metric.sources:
        rows = store.query(
            "SELECT run_id, status, reason FROM run_sources WHERE source = ? AND run_id <= ?"
            " ORDER BY run_id DESC LIMIT 1", [source, run_id])
        if not rows:
            parts.append(f"{source}: no run has collected it yet")
        elif rows[0]["status"] in ("ok", "partial"):
            parts.append(f"{source}: {rows[0]['status']} in run {rows[0]['run_id']}"
                         " but without this value")
        else:
            reason = f" ({rows[0]['reason']})" if rows[0]["reason"] else ""
            parts.append(f"{source}: {rows[0]['status']} in run {rows[0]['run_id']}{reason}")
    return "; ".join(parts)


def _judge(claim: Claim, registry: Registry, values: dict[str, list[dict] | str],
           as_of: datetime | None, store: Store, run_id: int, keys: tuple[str, str],
           names: tuple[str, str]) -> Verdict:
    evidence: list[Evidence] = []
    for mid in claim.metrics:
        evidence += _evidence(registry.metrics[mid], values[mid], claim.rule, as_of, store,
                              run_id, keys)
    counts = {"for": 0, "against": 0, "even": 0, "unusable": 0}
    for e in evidence:
        counts[_counts(claim, e)] += 1
    if claim.unsettleable:
        return Verdict(claim, "insufficient evidence",
                       f"no data can settle it: {claim.unsettleable}", None, evidence, counts)
    shares = {}
    for mid in claim.metrics:
        rows = [e for e in evidence if e.metric.id == mid and _counts(claim, e) != "unusable"]
        if rows:
            shares[mid] = sum(_counts(claim, e) == "for" for e in rows) / len(rows)
    coverage = len(shares) / len(claim.metrics)
    key_numbers = _key_numbers(claim, evidence, names)
    if not shares or coverage < claim.rule.min_metric_coverage:
        missing = [registry.metrics[m] for m in claim.metrics if m not in shares]
        why = "; ".join(f"{m.label}: {_unusable_note(evidence, m)}" for m in missing[:3])
        return Verdict(claim, "insufficient evidence",
                       f"{len(shares)} of {len(claim.metrics)} metrics have usable data"
                       f" (at least {claim.rule.min_metric_coverage:.0%} needed). {why}",
                       key_numbers, evidence, counts)
    share = sum(shares.values()) / len(shares)
    if share >= claim.rule.support_share:
        verdict = "supported"
    elif share <= claim.rule.contradict_share:
        verdict = "contradicted"
    else:
        verdict = "mixed"
    reason = (f"{share:.0%} of the evidence favours the claim (mean over {len(shares)} of"
              f" {len(claim.metrics)} metrics; {counts['for']} rows for, {counts['against']}"
              f" against, {counts['even']} even")
    reason += f", {counts['unusable']} unusable)" if counts["unusable"] else ")"
    return Verdict(claim, verdict, reason, key_numbers, evidence, counts)


def _unusable_note(evidence: list[Evidence], metric: Metric) -> str:
    notes = [e.note for e in evidence if e.metric.id == metric.id and e.note]
    return notes[0] if notes else "no data"


def _counts(claim: Claim, e: Evidence) -> str:
    if e.favours in ("missing", "stale"):
        return "unusable"
    if e.favours == "even":
        return "even"
    return "for" if e.favours == claim.favours else "against"


def _evidence(metric: Metric, rows: list[dict] | str, rule: Rule, as_of: datetime | None,
              store: Store, run_id: int, keys: tuple[str, str]) -> list[Evidence]:
    if isinstance(rows, str):
        return [Evidence(metric, "all", None, None, "missing", rows, {}, {})]
    by_item: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_item.setdefault(str(row.get("item") or "all"), {})[row.get("framework")] = row
    if not by_item:
        why = f"no value: {_why_missing(store, run_id, metric)}"
        if metric.note:
            why += f" ({metric.note})"
        return [Evidence(metric, "all", None, None, "missing", why, {}, {})]
    max_age = metric.max_age_days or rule.max_age_days
    out = []
    for item, sides in sorted(by_item.items()):
        a, b = sides.get(keys[0]), sides.get(keys[1])
        out.append(_pair(metric, item, a, b, rule, max_age, as_of, store, run_id))
    return out


def _pair(metric: Metric, item: str, a: dict | None, b: dict | None, rule: Rule,
          max_age: float, as_of: datetime | None, store: Store, run_id: int) -> Evidence:
    va = _number(a)
    vb = _number(b)
    data_a, data_b = _data(a), _data(b)
    notes = [r.get("note") for r in (a, b) if r and r.get("note")]
    if va is None or vb is None:
        side = " and ".join(s for s, v in (("a", va), ("b", vb)) if v is None)
        notes.append(f"no value for {side}: {_why_missing(store, run_id, metric)}")
        if metric.note:
            notes.append(metric.note)
        return Evidence(metric, item, va, vb, "missing", "; ".join(notes), data_a, data_b)
    if as_of is not None:
        for data in (data_a, data_b):
            fetched = _parse_time(data.get("fetched_at"))
            if fetched is not None and (as_of - fetched).total_seconds() > max_age * 86400:
                notes.append(f"measured {data['fetched_at'][:10]}, older than {max_age:g} days")
                return Evidence(metric, item, va, vb, "stale", "; ".join(notes), data_a, data_b)
    e = Evidence(metric, item, va, vb, "even", "; ".join(notes) or None, data_a, data_b)
    diff = e.relative_difference
    if diff is not None and abs(diff) > rule.margin:
        e.favours = "a" if diff > 0 else "b"
    return e


def _number(row: dict | None) -> float | None:
    if row is None or row.get("value") is None:
        return None
    try:
        return float(row["value"])
    except (TypeError, ValueError):
        return None


def _data(row: dict | None) -> dict[str, Any]:
    if row is None:
        return {}
    return {k: row.get(k) for k in ("run_id", "source", "fetched_at")}


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _key_numbers(claim: Claim, evidence: list[Evidence], names: tuple[str, str]) -> str | None:
    """The claim's headline numbers: up to three metrics, values side by side or a tally."""
    a, b = names
    parts = []
    for mid in claim.metrics:
        rows = [e for e in evidence if e.metric.id == mid]
        usable = [e for e in rows if e.favours not in ("missing", "stale")]
        if not usable:
            continue
        metric = rows[0].metric
        unit = f" {metric.unit}" if metric.unit else ""
        if len(rows) == 1 and rows[0].item == "all":
            e = rows[0]
            parts.append(f"{metric.label}: {a} {_fmt(e.value_a)} vs {b} {_fmt(e.value_b)}{unit}")
        else:
            tally = {side: sum(e.favours == side for e in usable) for side in ("a", "b", "even")}
            parts.append(f"{metric.label}: {a} ahead in {tally['a']}, {b} in {tally['b']}"
                         + (f", even in {tally['even']}" if tally["even"] else "")
                         + f" of {len(usable)}")
        if len(parts) == 3:
            break
    return "; ".join(parts) or None


def _claim_row(v: Verdict, config: SurveyConfig, registry: Registry, now: str) -> dict[str, Any]:
    return {
        "fetched_at": now, "claim_id": v.claim.id, "section": v.claim.section,
        "text": claim_text(v.claim, config), "sentence": v.claim.sentence,
        "framework_a": config.compare[0], "framework_b": config.compare[1],
        "favours": config.compare[0] if v.claim.favours == "a" else config.compare[1],
        "verdict": v.verdict, "reason": v.reason, "key_numbers": v.key_numbers,
        "evidence_for": v.counts["for"], "evidence_against": v.counts["against"],
        "evidence_even": v.counts["even"], "evidence_unusable": v.counts["unusable"],
        "settleable": int(v.claim.unsettleable is None),
        "rule": json.dumps(v.claim.rule.model_dump(), sort_keys=True),
        "registry_sha256": registry.sha256,
    }


def _evidence_row(claim: Claim, e: Evidence, now: str) -> dict[str, Any]:
    return {
        "fetched_at": now, "claim_id": claim.id, "metric": e.metric.id, "item": e.item,
        "label": e.metric.label, "unit": e.metric.unit, "better": e.metric.better,
        "value_a": e.value_a, "value_b": e.value_b,
        "relative_difference": e.relative_difference, "favours": e.favours,
        "counts": _counts(claim, e), "note": e.note,
        "data_run_id_a": e.data_a.get("run_id"), "data_run_id_b": e.data_b.get("run_id"),
        "data_source_a": e.data_a.get("source"), "data_source_b": e.data_b.get("source"),
        "data_fetched_at_a": e.data_a.get("fetched_at"),
        "data_fetched_at_b": e.data_b.get("fetched_at"),
        "metric_sql": e.metric.sql,
    }
