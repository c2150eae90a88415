"""Judging the claims: each metric's SQL run over the store, its rows paired into evidence,
each row decided by the metric's decision spec, and the claim's type turning decisions into a
verdict.

**Rows.** Each pair of values (per item) is one evidence row with a ``decision``: ``a`` or
``b`` (ahead by more than the minimum meaningful difference: the relative margin *and* the
absolute ``min_abs``; for timings, the bootstrap interval of the ratio wholly beyond the band
``delta = max(margin, 2 x run-to-run variation)``, see :mod:`fwsurvey.claims.stats`),
``even``, ``inconclusive`` (shown, never counted), ``failed_a``/``failed_b`` (a failed run or
a missing capability: evidence against that framework when the metric's ``failure_counts``)
or ``missing`` (absent, stale, a failed SQL, or measured on a device outside the metric's
``device_scope``). Timing metrics with several items also get one row with the geometric
mean of the ratios and its interval; that row counts, the items are ``shown``.

**Verdicts** (VERDICTS). ``unmeasurable`` claims say why. No verdict without a usable primary
metric (``insufficient evidence``, "needs a GPU run" when a GPU-scoped metric met only CPU
rows; ``inconclusive`` when its intervals straddle the band). *Comparative* and *possession*
claims (possession rows judge the favoured side against the metric's ``bar``) weigh each
metric by its tier (TIER_WEIGHTS) and take the weighted shares of rows for and against:
``supported`` at or above ``support_share`` for, ``contradicted`` at or above
``1 - contradict_share`` against, ``inconclusive`` when every counted row is even (an even
or inconclusive row never makes a claim supported or contradicted), else ``mixed``.
*Hedged* claims ("B may not match A") are supported when A is clearly ahead in one scenario.

**Stability.** The sensitivity pass re-judges each claim at margins of 5/10/20% and with
alternative tier weights; a claim whose verdict moves is ``fragile``. The previous verdict
(the newest earlier run's) is stored with why it changed. Confidence follows
:func:`_confidence`. Judging is deterministic (fixed bootstrap seed, sorted inputs).

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from fwsurvey.claims.registry import TIER_WEIGHTS, Claim, Metric, Registry, Rule
from fwsurvey.claims.stats import RatioInterval, decide_ratio, geometric_mean, ratio_interval
from fwsurvey.config import SurveyConfig
from fwsurvey.schema import migrations
from fwsurvey.sources import Record
from fwsurvey.store import Store, utcnow

#: Every verdict, in the order the report tallies them.
VERDICTS = ("supported", "contradicted", "mixed", "inconclusive", "insufficient evidence",
            "unmeasurable")
#: Evidence decisions (claim_evidence.decision).
DECISIONS = ("a", "b", "even", "inconclusive", "failed_a", "failed_b", "missing")
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
OPTIONAL_COLUMNS = ("item", "run_id", "source", "fetched_at", "note", "device", "outcome",
                    "job")


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


def direction_problems(registry: Registry) -> list[str]:
    """Metrics that would count one row in both directions: claims comparing the same pair
    on the same metric must favour the same side (possession claims judge a bar, not a
    direction). Kept apart from check_sql so that a user's registry may still pit two
    claims against each other; the shipped registry is held to it (tests/test_verdicts.py).
    """
    problems: list[str] = []
    sides: dict[tuple[str, str], dict[str, str]] = {}
    for claim in registry.claims:
        if claim.type in ("comparative", "hedged"):
            for mid in claim.metrics:
                sides.setdefault((mid, claim.against), {}).setdefault(claim.favours, claim.id)
    problems += [f"metrics.{mid}: counts in both directions ({by['a']} favours a,"
                 f" {by['b']} favours b)" for (mid, _), by in sorted(sides.items())
                 if len(by) == 2]
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

#: Relative margins the sensitivity pass re-judges every claim with.
SENSITIVITY_MARGINS = (0.05, 0.10, 0.20)
#: Alternative tier weights of the sensitivity pass (the main weights are TIER_WEIGHTS).
ALTERNATIVE_WEIGHTS = {
    "equal weights": {"works": 1.0, "behaviour": 1.0, "count": 1.0},
    "steep weights": {"works": 9.0, "behaviour": 3.0, "count": 1.0},
}
#: Timing evidence is "well sampled" (high confidence possible) with at least this many
#: samples and windows per side.
WELL_SAMPLED = (30, 3)
#: Kernel outcomes that are not failures (anything else: crashed, oom, timeout, ...), and
#: those that are neither (a mode the framework does not offer: no evidence either way).
OK_OUTCOMES = frozenset({"ok"})
NEUTRAL_OUTCOMES = frozenset({"unsupported"})
#: What an evidence row's ``decision`` means for the claim's favoured side, by row.
_NOT_COUNTED = ("missing", "inconclusive")


@dataclass
class Evidence:
    """One pair of values of a metric (per item), and what it decides.

    ``decision``: ``a`` or ``b`` (that side is ahead by more than the minimum meaningful
    difference, or meets a possession bar), ``even``, ``inconclusive`` (a timing interval
    straddling the band: shown, never counted), ``failed_a``/``failed_b`` (that framework's
    run failed, or its capability is missing: evidence against it), ``missing`` (no usable
    value: absent, stale, a failed SQL, the wrong device). ``favours`` keeps the older
    column's words (a, b, even, inconclusive, missing, stale).
    """

    metric: Metric
    item: str
    value_a: float | None
    value_b: float | None
    favours: str
    note: str | None
    data_a: dict[str, Any]
    data_b: dict[str, Any]
    decision: str = "missing"
    ci_low: float | None = None
    ci_high: float | None = None
    delta: float | None = None
    n_a: int | None = None
    n_b: int | None = None
    primary: bool = True
    counts: str = "unusable"
    device: str | None = None
    outcome_a: str | None = None
    outcome_b: str | None = None
    interval: RatioInterval | None = None
    aggregate: list[Evidence] | None = None  # the rows a geometric-mean row combines

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
    """A claim's verdict, why, its headline numbers, the evidence and its stability."""

    claim: Claim
    verdict: str
    reason: str
    key_numbers: str | None
    evidence: list[Evidence]
    counts: dict[str, int]
    confidence: str | None = None
    fragile: bool = False
    sensitivity: dict[str, str] = field(default_factory=dict)
    previous_verdict: str | None = None
    change_reason: str | None = None
    device_scope: str = "any"
    n_samples: int = 0
    pair: tuple[str, str] = ("", "")


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


def _engine(config: SurveyConfig) -> str | None:
    """The key of the framework that is ``b``'s engine (e.g. jax for trax), if any."""
    b = config.compare[1]
    return next((k for k, fw in config.frameworks.items() if fw.engine_for == b), None)


def claim_pair(claim: Claim, config: SurveyConfig) -> tuple[str, str] | None:
    """The two frameworks a claim compares (``a``, ``b``); None: no engine configured."""
    a, b = config.compare
    if claim.against == "engine":
        engine = _engine(config)
        return (engine, b) if engine else None
    return a, b


def claim_text(claim: Claim, config: SurveyConfig) -> str:
    """The claim in words, with the compared frameworks' names filled in."""
    names = {key: fw.name for key, fw in config.frameworks.items()}
    a, b = config.compare
    engine_key = _engine(config)
    engine = names[engine_key] if engine_key else None
    return claim.text.format(a=names[a], b=names[b], b_engine=f", on {engine}," if engine else "",
                             engine=engine or "its engine")


def sql_parameters(config: SurveyConfig, run_id: int) -> dict[str, Any]:
    """The parameters every metric's SQL runs with: ``:run_id``, ``:a`` and ``:b``."""
    return {"run_id": run_id, "a": config.compare[0], "b": config.compare[1]}


def sql_listing(metrics: list[Metric], config: SurveyConfig, run_id: int | None,
                pair: tuple[str, str] | None = None) -> str:
    """The SQL each metric runs, headed by the parameters to run it with in Datasette.

    ``run_id``: the run to judge as of (one that judged the claims has the
    ``survey_frameworks`` rows the SQL may join); None says so in words. ``pair``: the
    frameworks a claim compares when they are not ``survey.compare`` (a claim against
    ``b``'s engine; :func:`claim_pair`).
    """
    params = sql_parameters(config, run_id or 0)
    if pair is not None:
        params["a"], params["b"] = pair
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
    pairs = {claim_pair(c, config) for c in registry.claims} - {None}
    values = _metric_values(store, run_id, config, registry, frameworks, pairs)
    names = {key: fw.name for key, fw in config.frameworks.items()}
    samples = _SampleCache(store, run_id)
    verdicts = []
    for claim in registry.claims:
        pair = claim_pair(claim, config)
        verdict = _judge(claim, registry, values, as_of, store, run_id, pair, names, samples)
        _stability(store, run_id, verdict, registry)
        verdicts.append(verdict)
    records = [Record("survey_frameworks", {**row, "fetched_at": now}) for row in frameworks]
    for v in verdicts:
        records.append(Record("claims", _claim_row(v, config, registry, now)))
        records += [Record("claim_evidence", _evidence_row(v.claim, e, now)) for e in v.evidence]
    return verdicts, records


def _metric_values(store: Store, run_id: int, config: SurveyConfig, registry: Registry,
                   frameworks: list[dict[str, Any]], pairs: set[tuple[str, str]],
                   ) -> dict[tuple[str, tuple[str, str]], list[dict] | str]:
    """Run each used metric's SQL (guarded: ``_execute``) with survey_frameworks in place,
    once per pair of frameworks the claims compare (``:a`` and ``:b``).

    Returns the rows per (metric id, pair), or the error text when the SQL failed.
    """
    conn = store.db.conn
    used = {m for c in registry.claims for m in c.metrics}
    out: dict[tuple[str, tuple[str, str]], list[dict] | str] = {}
    conn.execute("SAVEPOINT claims_evaluation")
    try:
        conn.executemany(
            "INSERT OR REPLACE INTO survey_frameworks (run_id, source, fetched_at, framework,"
            " name, role, engine_for, pypi, github) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, SOURCE, utcnow(), r["framework"], r["name"], r["role"], r["engine_for"],
              r["pypi"], r["github"]] for r in frameworks])
        with _guarded(conn):
            for pair in sorted(pairs):
                params = {"run_id": run_id, "a": pair[0], "b": pair[1]}
                for mid in sorted(used):
                    out[mid, pair] = _run_sql(conn, registry.metrics[mid].sql, params)
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


# -- timing samples -----------------------------------------------------------------------------

class _SampleCache:
    """Per-step samples of kernel jobs (contract C: ``kernel_samples``), read once per job.

    A job's samples are all rows with its fingerprint up to the judged run (comparable
    samples accumulate across runs); without a fingerprint, the job's own run.
    """

    def __init__(self, store: Store, run_id: int):
        self.store = store
        self.run_id = run_id
        names = set(store.db.table_names())
        self.has_samples = "kernel_samples" in names
        runs = store.db["kernel_runs"].columns_dict if "kernel_runs" in names else {}
        self.run_columns = [c for c in ("fingerprint", "outcome", "device") if c in runs]
        self.cache: dict[tuple[Any, str], tuple[dict[str, Any], list[list[float]]]] = {}

    def job(self, data_run: Any, job: str) -> tuple[dict[str, Any], list[list[float]]]:
        """The job's kernel_runs facts (fingerprint, outcome, device) and sample windows."""
        key = (data_run, job)
        if key not in self.cache:
            facts: dict[str, Any] = {}
            if self.run_columns:
                rows = self.store.query(
                    f"SELECT {', '.join(self.run_columns)} FROM kernel_runs"
                    " WHERE run_id = ? AND job = ?", [data_run, job])
                facts = rows[0] if rows else {}
            windows: list[list[float]] = []
            if self.has_samples:
                if facts.get("fingerprint"):
                    where, params = "fingerprint = ? AND run_id <= ?", [facts["fingerprint"],
                                                                         self.run_id]
                else:
                    where, params = "run_id = ? AND job = ?", [data_run, job]
                grouped: dict[tuple, list[float]] = {}
                for row in self.store.query(
                        f"SELECT run_id, job, window, step_ms FROM kernel_samples WHERE {where}"
                        " AND step_ms IS NOT NULL ORDER BY run_id, job, window, step", params):
                    grouped.setdefault((row["run_id"], row["job"], row["window"]), []).append(
                        float(row["step_ms"]))
                windows = list(grouped.values())
            self.cache[key] = (facts, windows)
        return self.cache[key]


# -- judging ------------------------------------------------------------------------------------

def _judge(claim: Claim, registry: Registry,
           values: dict[tuple[str, tuple[str, str]], list[dict] | str], as_of: datetime | None,
           store: Store, run_id: int, pair: tuple[str, str] | None, names: dict[str, str],
           samples: _SampleCache) -> Verdict:
    scope = claim.device_scope or _claim_scope(claim, registry)
    if claim.type == "unmeasurable":
        return Verdict(claim, "unmeasurable", f"not measured: {claim.unmeasurable}", None, [],
                       {"for": 0, "against": 0, "even": 0, "unusable": 0}, device_scope=scope)
    if pair is None:
        return Verdict(claim, "insufficient evidence",
                       "no engine of b is configured to compare it with", None, [],
                       {"for": 0, "against": 0, "even": 0, "unusable": 0}, device_scope=scope)
    evidence: list[Evidence] = []
    for mid in claim.metrics:
        metric = registry.metrics[mid]
        rows = _evidence(metric, values[mid, pair], claim.rule, as_of, store, run_id, pair,
                         samples)
        for e in rows:
            e.primary = mid in claim.primary
        evidence += rows
    outcome = _decide_claim(claim, evidence, claim.rule.margin, TIER_WEIGHTS, final=True)
    verdict = Verdict(claim, outcome[0], outcome[1], None, evidence, outcome[2],
                      device_scope=scope, pair=pair)
    verdict.key_numbers = _key_numbers(claim, evidence, (names[pair[0]], names[pair[1]]))
    variants = {f"margin {m:.0%}": (m, TIER_WEIGHTS) for m in SENSITIVITY_MARGINS}
    variants.update({k: (claim.rule.margin, w) for k, w in ALTERNATIVE_WEIGHTS.items()})
    verdict.sensitivity = {k: _decide_claim(claim, evidence, m, w)[0]
                           for k, (m, w) in variants.items()}
    verdict.fragile = any(v != verdict.verdict for v in verdict.sensitivity.values())
    verdict.n_samples = sum((e.n_a or 0) + (e.n_b or 0) for e in evidence
                            if e.counts in ("for", "against", "even"))
    verdict.confidence = _confidence(verdict)
    return verdict


def _claim_scope(claim: Claim, registry: Registry) -> str:
    """gpu (or cpu) when every primary metric is scoped so, else any: a claim that a metric
    valid on any device can decide (e.g. a crash on 2 devices) is not GPU-only."""
    scopes = {registry.metrics[m].device_scope for m in claim.primary}
    return scopes.pop() if len(scopes) == 1 else "any"


def _evidence(metric: Metric, rows: list[dict] | str, rule: Rule, as_of: datetime | None,
              store: Store, run_id: int, keys: tuple[str, str],
              samples: _SampleCache) -> list[Evidence]:
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
        out.append(_pair(metric, item, a, b, max_age, as_of, store, run_id, samples))
    return out


def _pair(metric: Metric, item: str, a: dict | None, b: dict | None, max_age: float,
          as_of: datetime | None, store: Store, run_id: int,
          samples: _SampleCache) -> Evidence:
    """One evidence row with what does not depend on the margin: values, usability,
    failures and, for timings, the bootstrap interval."""
    va, vb = _number(a), _number(b)
    data_a, data_b = _data(a), _data(b)
    notes = [r.get("note") for r in (a, b) if r and r.get("note")]
    e = Evidence(metric, item, va, vb, "missing", None, data_a, data_b)
    windows: list[list[list[float]]] = [[], []]
    for i, row in enumerate((a, b)):
        if row is None:
            continue
        facts: dict[str, Any] = {}
        if metric.timing and row.get("job") and row.get("run_id") is not None:
            facts, windows[i] = samples.job(row["run_id"], str(row["job"]))
        outcome = facts.get("outcome") or row.get("outcome")
        if metric.tier == "works" and outcome is None and _number(row) is not None:
            outcome = "ok" if _number(row) >= 1 else "failed"
        setattr(e, f"outcome_{'ab'[i]}", outcome)
        e.device = e.device or facts.get("device") or row.get("device")
    failed = [s for s, o in (("a", e.outcome_a), ("b", e.outcome_b))
              if o is not None and o not in OK_OUTCOMES]
    if any(o in NEUTRAL_OUTCOMES for o in (e.outcome_a, e.outcome_b)):
        notes.append("unsupported: the framework does not offer this mode")
        e.outcome_a = e.outcome_b = None
        va = vb = e.value_a = e.value_b = None
        failed = []
    if e.device and not _in_scope(metric.device_scope, e.device):
        notes.append(f"measured on {e.device}: this metric needs a"
                     f" {metric.device_scope.upper()} run")
        e.note = "; ".join(notes)
        return e
    if failed:
        notes.append("failed: " + ", ".join(f"{s} ({getattr(e, 'outcome_' + s)})"
                                            for s in failed))
        if not metric.failure_counts:
            notes.append("a failure does not count for this metric")
        e.note = "; ".join(notes)
        return e
    if va is None or vb is None:
        side = " and ".join(s for s, v in (("a", va), ("b", vb)) if v is None)
        notes.append(f"no value for {side}: {_why_missing(store, run_id, metric)}")
        if metric.note:
            notes.append(metric.note)
        e.note = "; ".join(notes)
        return e
    if as_of is not None:
        for data in (data_a, data_b):
            fetched = _parse_time(data.get("fetched_at"))
            if fetched is not None and (as_of - fetched).total_seconds() > max_age * 86400:
                notes.append(f"measured {data['fetched_at'][:10]}, older than {max_age:g} days")
                e.favours, e.note = "stale", "; ".join(notes)
                return e
    if metric.timing:
        if not windows[0] or not windows[1]:
            notes.append("no per-step samples (kernel_samples) for "
                         + " and ".join(s for s, w in zip("ab", windows, strict=True) if not w)
                         + ": timings are judged from samples only")
            e.note = "; ".join(notes)
            return e
        e.interval = ratio_interval(f"{metric.id}/{item}", windows[0], windows[1])
        e.n_a, e.n_b = e.interval.n_a, e.interval.n_b
        e.ci_low, e.ci_high = e.interval.low, e.interval.high
    else:
        e.n_a, e.n_b = 1, 1
    e.note = "; ".join(notes) or None
    e.favours = "even"  # usable; decided per margin by _decide_row
    return e


def _in_scope(scope: str, device: str) -> bool:
    """Whether a measurement on ``device`` (cpu, cuda, cuda:0, gpu, ...) has ``scope``."""
    on_cpu = device.lower().startswith("cpu")
    return scope == "any" or (scope == "cpu") == on_cpu


def _margin(metric: Metric, rule: Rule, margin: float) -> float:
    """The metric's relative margin under a judgement with rule margin ``margin``: the
    rule's, or the metric's own scaled by the same factor (0 stays 0)."""
    if metric.margin is None:
        return margin
    return metric.margin * margin / rule.margin if rule.margin else metric.margin


def _usable(e: Evidence) -> bool:
    return e.favours not in ("missing", "stale")


def _decide_row(claim: Claim, e: Evidence, margin: float) -> tuple[str, float | None]:
    """The row's decision and band under a margin (see Evidence.decision)."""
    failed = [s for s, o in (("a", e.outcome_a), ("b", e.outcome_b))
              if o is not None and o not in OK_OUTCOMES]
    if failed:
        if not e.metric.failure_counts:
            return "missing", None
        if len(failed) == 2:
            return ("even" if e.metric.tier == "works" else "missing"), None
        return f"failed_{failed[0]}", None
    if not _usable(e):
        return "missing", None
    m = _margin(e.metric, claim.rule, margin)
    if claim.type == "possession":
        side = claim.favours
        value = e.value_a if side == "a" else e.value_b
        bar = e.metric.bar if e.metric.bar is not None else 0.0
        meets = value >= bar if e.metric.better == "higher" else value <= bar
        return (side if meets else f"failed_{side}"), None
    if e.interval is not None:
        delta = e.interval.band(m)
        return decide_ratio(e.interval.low, e.interval.high, delta, e.metric.better), delta
    diff = e.value_b - e.value_a
    scale = max(abs(e.value_a), abs(e.value_b))
    relative = abs(diff) / scale if scale else 0.0
    if abs(diff) <= e.metric.min_abs or relative <= m:
        return "even", m
    b_ahead = diff > 0 if e.metric.better == "higher" else diff < 0
    return ("b" if b_ahead else "a"), m


def _counts(claim: Claim, decision: str) -> str:
    """What a row's decision is for the claim: for, against, even or unusable."""
    if decision in _NOT_COUNTED:
        return "unusable"
    if decision == "even":
        return "even"
    side = decision[-1]
    ahead = side if not decision.startswith("failed_") else "ab"[side == "a"]
    return "for" if ahead == claim.favours else "against"


def _geometric_row(claim: Claim, metric: Metric, rows: list[Evidence], margin: float,
                   ) -> Evidence:
    """Across items of a timing metric: one row with the geometric mean of the ratios."""
    ratio, low, high, var = geometric_mean([r.interval for r in rows])
    m = _margin(metric, claim.rule, margin)
    delta = max(m, 2 * var)
    row = Evidence(metric, f"geometric mean of {len(rows)} items", None, None, "even",
                   f"ratio b/a {ratio:.3g}; the items' intervals combined (bootstrap"
                   f" replicates), band from the noisiest item", {}, {},
                   ci_low=low, ci_high=high, delta=round(delta, 6),
                   n_a=sum(r.n_a or 0 for r in rows), n_b=sum(r.n_b or 0 for r in rows),
                   primary=rows[0].primary, aggregate=rows)
    row.decision = decide_ratio(low, high, delta, metric.better)
    return row


def _decide_claim(claim: Claim, evidence: list[Evidence], margin: float,
                  weights: dict[str, float], final: bool = False,
                  ) -> tuple[str, str, dict[str, int]]:
    """The claim's verdict under ``margin`` and tier ``weights``: (verdict, reason, counts).

    ``final``: store each row's decision, band and count on the evidence (the main
    judgement); the sensitivity pass only reads.
    """
    decided: list[tuple[Evidence, str, str, float | None]] = []
    for mid in claim.metrics:
        rows = [e for e in evidence if e.metric.id == mid and e.aggregate is None]
        for e in rows:
            decision, delta = _decide_row(claim, e, margin)
            decided.append((e, decision, _counts(claim, decision), delta))
        timed = [e for e in rows if e.interval is not None and _usable(e)]
        if len(timed) >= 2 and claim.type == "comparative":
            geo = _geometric_row(claim, registry_metric(rows), timed, margin)
            ids = {id(e) for e in timed}
            for i, (e, decision, _count, delta) in enumerate(decided):
                if id(e) in ids:  # shown, counted through the geometric mean
                    decided[i] = (e, decision, "shown", delta)
            decided.append((geo, geo.decision, _counts(claim, geo.decision), geo.delta))
    if final:
        aggregates = [e for e, *_ in decided if e.aggregate is not None]
        evidence[:] = [e for e in evidence if e.aggregate is None] + aggregates
        for e, decision, count, delta in decided:
            e.decision, e.counts = decision, count
            e.delta = round(delta, 6) if delta is not None else None
            if decision == "inconclusive":
                e.favours = "inconclusive"
            elif decision in ("a", "b", "even") and e.favours not in ("missing", "stale"):
                e.favours = decision
            elif decision.startswith("failed_") and e.aggregate is None:
                e.favours = "ab"[decision[-1] == "a"]
    counts = {"for": 0, "against": 0, "even": 0, "unusable": 0}
    for _e, _decision, count, _delta in decided:
        if count in counts:
            counts[count] += 1
    return (*_verdict(claim, decided, weights, counts), counts)


def registry_metric(rows: list[Evidence]) -> Metric:
    """The metric of a non-empty list of its evidence rows."""
    return rows[0].metric


def _verdict(claim: Claim, decided: list[tuple[Evidence, str, str, float | None]],
             weights: dict[str, float], counts: dict[str, int]) -> tuple[str, str]:
    by_metric: dict[str, list[str]] = {}
    inconclusive: set[str] = set()
    for e, decision, count, _ in decided:
        if count in ("for", "against", "even"):
            by_metric.setdefault(e.metric.id, []).append(count)
        elif decision == "inconclusive":
            inconclusive.add(e.metric.id)
    usable_primary = [m for m in claim.primary if m in by_metric]
    tally = (f"{counts['for']} rows for, {counts['against']} against, {counts['even']} even"
             + (f", {counts['unusable']} unusable" if counts["unusable"] else ""))
    if not usable_primary:
        if any(m in inconclusive for m in claim.primary):
            return "inconclusive", ("the primary metrics' intervals straddle the equivalence"
                                    f" band: shown, not counted ({tally})")
        return "insufficient evidence", _why_insufficient(claim, decided)
    coverage = len(by_metric) / len(claim.metrics)
    if coverage < claim.rule.min_metric_coverage:
        return "insufficient evidence", (
            f"{len(by_metric)} of {len(claim.metrics)} metrics have usable data (at least"
            f" {claim.rule.min_metric_coverage:.0%} needed). {_why_insufficient(claim, decided)}")
    if claim.type == "hedged":
        return _hedged(claim, decided, tally)
    total = for_w = against_w = 0.0
    for mid, rows in by_metric.items():
        w = weights[next(e.metric.tier for e, *_ in decided if e.metric.id == mid)]
        total += w
        for_w += w * rows.count("for") / len(rows)
        against_w += w * rows.count("against") / len(rows)
    share_for, share_against = for_w / total, against_w / total
    shares = (f"{share_for:.0%} of the weighted evidence favours the claim, {share_against:.0%}"
              f" is against it ({len(by_metric)} of {len(claim.metrics)} metrics; {tally})")
    if share_for >= claim.rule.support_share:
        return "supported", shares
    if share_against >= 1 - claim.rule.contradict_share:
        return "contradicted", shares
    if share_for == 0 and share_against == 0:
        return "inconclusive", ("no meaningful difference on any metric (all even): the claim"
                                f" that one side is ahead is not shown ({tally})")
    return "mixed", shares


def _hedged(claim: Claim, decided: list[tuple[Evidence, str, str, float | None]],
            tally: str) -> tuple[str, str]:
    """"The other may not match it": supported when the favoured side is clearly ahead in
    at least one scenario of a primary metric; contradicted when it is nowhere clearly
    ahead, every scenario is decided and the other side is clearly ahead in one."""
    rows = [(e, c) for e, d, c, _ in decided if e.metric.id in claim.primary]
    ahead = [e.item for e, c in rows if c == "for"]
    if ahead:
        return "supported", (f"clearly ahead in {len(ahead)} scenario(s): "
                             + ", ".join(ahead[:3]) + f" ({tally})")
    undecided = [e for e, c in rows if c == "unusable"]
    behind = [e.item for e, c in rows if c == "against"]
    if behind and not undecided:
        return "contradicted", (f"nowhere clearly ahead, and behind in {len(behind)}"
                                f" scenario(s): {', '.join(behind[:3])} ({tally})")
    if undecided:
        return "inconclusive", ("nowhere clearly ahead, but some scenarios are undecided"
                                f" ({tally})")
    return "inconclusive", f"no meaningful difference in any scenario (all even; {tally})"


def _why_insufficient(claim: Claim, decided: list[tuple[Evidence, str, str, float | None]],
                      ) -> str:
    """Why no primary metric is usable; "needs a GPU run" leads when the device is why."""
    notes = []
    for mid in claim.primary:
        rows = [e for e, *_ in decided if e.metric.id == mid]
        note = next((e.note for e in rows if e.note), "no data")
        notes.append(f"{rows[0].metric.label if rows else mid}: {note}")
    text = "no usable primary metric. " + "; ".join(notes[:3])
    if any("needs a GPU run" in n for n in notes):
        text = "needs a GPU run: " + text
    return text


#: Units of a wall-clock measurement (a row in them without samples has unmeasured noise).
TIME_UNITS = frozenset({"s", "ms", "seconds"})


def _confidence(v: Verdict) -> str | None:
    """high, medium or low by a fixed rule (None without a verdict).

    * none: insufficient evidence, unmeasurable;
    * low: fragile (the sensitivity pass moves it), or not a verdict for or against (mixed,
      inconclusive), or only static counts decided it;
    * high: every primary metric usable, a works-or-not or measured-behaviour metric among
      the deciding ones, and every timing row well sampled (WELL_SAMPLED per side) — a
      wall time measured once (a row in seconds without samples behind it, e.g. the
      varying-shape total) has no measured noise, so it never gives high;
    * medium: the rest.
    """
    if v.verdict in ("insufficient evidence", "unmeasurable"):
        return None
    counted = [e for e in v.evidence if e.counts in ("for", "against", "even")]
    if v.fragile or v.verdict in ("mixed", "inconclusive") or \
            all(e.metric.tier == "count" for e in counted):
        return "low"
    primary_ok = all(any(e.metric.id == m for e in counted) for m in v.claim.primary)
    timed = [e.interval for e in v.evidence if e.interval is not None]
    sampled = all(min(i.n_a, i.n_b) >= WELL_SAMPLED[0]
                  and min(i.windows_a, i.windows_b) >= WELL_SAMPLED[1] for i in timed)
    sampled = sampled and not any(e.interval is None and (e.metric.unit or "") in TIME_UNITS
                                  for e in counted)
    strong = any(e.metric.tier in ("works", "behaviour") for e in counted)
    return "high" if primary_ok and strong and sampled else "medium"


def _stability(store: Store, run_id: int, v: Verdict, registry: Registry) -> None:
    """The previous verdict of the claim (the newest earlier run that judged it), and why
    the verdict changed: which rows decided differently, or that the registry changed."""
    prev = store.query("SELECT run_id, verdict, registry_sha256, rule FROM claims"
                       " WHERE claim_id = ? AND run_id < ? ORDER BY run_id DESC LIMIT 1",
                       [v.claim.id, run_id])
    if not prev:
        return
    v.previous_verdict = prev[0]["verdict"]
    if v.previous_verdict == v.verdict:
        return
    columns = store.db["claim_evidence"].columns_dict
    decision = "decision" if "decision" in columns else "favours"
    old = {(r["metric"], r["item"]): r["d"] for r in store.query(
        f"SELECT metric, item, {decision} AS d FROM claim_evidence"
        " WHERE claim_id = ? AND run_id = ?", [v.claim.id, prev[0]["run_id"]])}
    changes = []
    for e in v.evidence:
        before = old.get((e.metric.id, e.item))
        if before != e.decision and not (before == "stale" and e.decision == "missing"):
            changes.append(f"{e.metric.id} {e.item}: {before or 'absent'} -> {e.decision}")
    reasons = []
    if changes:
        reasons.append(f"{len(changes)} evidence rows decide differently: "
                       + "; ".join(changes[:3]))
    if prev[0]["registry_sha256"] != registry.sha256:
        reasons.append(f"the registry changed since run {prev[0]['run_id']}")
    if prev[0]["rule"] != json.dumps(v.claim.rule.model_dump(), sort_keys=True):
        reasons.append("the claim's rule changed")
    v.change_reason = ". ".join(reasons) or "the rule that turns evidence into verdicts changed"


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
    """The claim's headline numbers: up to three metrics, values side by side, a ratio with
    its interval, or a tally."""
    a, b = names
    parts = []
    for mid in claim.metrics:
        rows = [e for e in evidence if e.metric.id == mid]
        usable = [e for e in rows if e.counts in ("for", "against", "even")]
        if not usable:
            continue
        metric = rows[0].metric
        unit = f" {metric.unit}" if metric.unit else ""
        geo = next((e for e in usable if e.aggregate is not None), None)
        if geo is not None:
            parts.append(f"{metric.label}: {b}/{a} ratio {geo.note.split(';')[0][10:]}"
                         f" [{geo.ci_low:.3g}, {geo.ci_high:.3g}] over"
                         f" {len(geo.aggregate or [])} items")
        elif len(rows) == 1 and rows[0].item == "all":
            e = rows[0]
            parts.append(f"{metric.label}: {a} {_fmt(e.value_a)} vs {b} {_fmt(e.value_b)}{unit}")
        else:
            tally = {side: sum(e.counts == c for e in usable)
                     for side, c in (("for", "for"), ("against", "against"), ("even", "even"))}
            parts.append(f"{metric.label}: for the claim in {tally['for']}, against in"
                         f" {tally['against']}"
                         + (f", even in {tally['even']}" if tally["even"] else "")
                         + f" of {len(usable)}")
        if len(parts) == 3:
            break
    return "; ".join(parts) or None


def _claim_row(v: Verdict, config: SurveyConfig, registry: Registry, now: str) -> dict[str, Any]:
    a, b = v.pair if v.pair != ("", "") else config.compare
    return {
        "fetched_at": now, "claim_id": v.claim.id, "section": v.claim.section,
        "text": claim_text(v.claim, config), "sentence": v.claim.sentence,
        "framework_a": a, "framework_b": b,
        "favours": a if v.claim.favours == "a" else b,
        "verdict": v.verdict, "reason": v.reason, "key_numbers": v.key_numbers,
        "evidence_for": v.counts["for"], "evidence_against": v.counts["against"],
        "evidence_even": v.counts["even"], "evidence_unusable": v.counts["unusable"],
        "settleable": int(v.claim.type != "unmeasurable"),
        "rule": json.dumps(v.claim.rule.model_dump(), sort_keys=True),
        "registry_sha256": registry.sha256,
        "claim_type": v.claim.type, "confidence": v.confidence, "fragile": int(v.fragile),
        "sensitivity": json.dumps(v.sensitivity, sort_keys=True) if v.sensitivity else None,
        "previous_verdict": v.previous_verdict, "change_reason": v.change_reason,
        "device_scope": v.device_scope, "unmeasurable_reason": v.claim.unmeasurable,
        "primary_metrics": json.dumps(list(v.claim.primary)), "n_samples": v.n_samples,
    }


def _evidence_row(claim: Claim, e: Evidence, now: str) -> dict[str, Any]:
    return {
        "fetched_at": now, "claim_id": claim.id, "metric": e.metric.id, "item": e.item,
        "label": e.metric.label, "unit": e.metric.unit, "better": e.metric.better,
        "value_a": e.value_a, "value_b": e.value_b,
        "relative_difference": e.relative_difference, "favours": e.favours,
        "counts": e.counts, "note": e.note,
        "data_run_id_a": e.data_a.get("run_id"), "data_run_id_b": e.data_b.get("run_id"),
        "data_source_a": e.data_a.get("source"), "data_source_b": e.data_b.get("source"),
        "data_fetched_at_a": e.data_a.get("fetched_at"),
        "data_fetched_at_b": e.data_b.get("fetched_at"),
        "metric_sql": e.metric.sql,
        "decision": e.decision, "ci_low": e.ci_low, "ci_high": e.ci_high, "delta": e.delta,
        "n_a": e.n_a, "n_b": e.n_b, "tier": e.metric.tier,
        "device_scope": e.metric.device_scope, "primary_metric": int(e.primary),
    }
