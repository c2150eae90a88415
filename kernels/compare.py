"""What two stores' trainings have in common, field by field: the check that where a job ran
(the local executor or a Ray cluster, this machine or another of the same kind) does not
change what it measured.

Timings, and the columns that say where and when a job ran, differ by design; everything else
a job stores (its outcome, phase reached, losses step by step, evaluation, compile counts,
checks, the fingerprint of its samples) must be equal. Used by the executor tests on a small
matrix and by ``scripts/compare_executors.py`` on a whole run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fwsurvey.store import Store

#: Columns that differ from run to run, or by design between executors.
VARYING = frozenset({
    "run_id", "fetched_at", "wall_s", "import_s", "data_s", "build_s", "first_step_s",
    "step_median_ms", "step_iqr_ms", "step_mean_ms", "throughput", "peak_mem_mb",
    "time_to_target_s", "data_ms_median", "compute_ms_median", "eval_s", "compile_s_total",
    "compile_s_timed", "executor", "node", "mfu"})

#: The tables compared, with the order that pairs their rows.
TABLES = {"kernel_runs": "job", "kernel_curves": "job, step",
          "kernel_checks": "job, check_name", "kernel_scaling": "job"}


def _rows(store: Store, table: str, order: str, run_id: int | None) -> list[dict[str, Any]]:
    if not store.db[table].exists():
        return []
    run = run_id if run_id is not None else store.query(
        f"SELECT MAX(run_id) AS r FROM {table}")[0]["r"]
    return store.query(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {order}", [run])


def comparable(db: Path, run_id: int | None = None, varying: frozenset[str] = VARYING,
               exclude: frozenset[str] = frozenset()) -> dict[str, list[Any]]:
    """Every stored field of one run's trainings (the store's latest by default) but those
    in ``varying``: rows by table, and each job's samples as (job, window, step,
    fingerprint) — their times vary, their number and place must not. Jobs of the
    experiments in ``exclude`` are left out (``fwsurvey run`` adds ``scaling`` jobs that a
    plain ``fwsurvey train`` does not run)."""
    store = Store(db, readonly=True)

    def kept(row: dict[str, Any]) -> bool:
        parts = str(row.get("job", "")).split("/")
        return len(parts) < 4 or parts[3] not in exclude

    try:
        found: dict[str, list[Any]] = {
            table: [{k: v for k, v in r.items() if k not in varying}
                    for r in _rows(store, table, order, run_id) if kept(r)]
            for table, order in TABLES.items()}
        found["samples"] = [(r["job"], r["window"], r["step"], r["fingerprint"])
                            for r in _rows(store, "kernel_samples", "job, window, step",
                                           run_id) if kept(r)]
        return found
    finally:
        store.close()


def differences(a: dict[str, list[Any]], b: dict[str, list[Any]],
                limit: int = 50) -> list[str]:
    """Each difference between two ``comparable()`` results, one line each (at most
    ``limit``): a row only one side has, or a field whose values differ."""
    lines: list[str] = []
    for table in sorted(set(a) | set(b)):
        rows_a, rows_b = a.get(table, []), b.get(table, [])
        if table == "samples":
            only_a, only_b = set(rows_a) - set(rows_b), set(rows_b) - set(rows_a)
            lines += [f"samples: only in A: {row}" for row in sorted(only_a)[:limit]]
            lines += [f"samples: only in B: {row}" for row in sorted(only_b)[:limit]]
            continue
        keyed_a = {_key(r): r for r in rows_a}
        keyed_b = {_key(r): r for r in rows_b}
        for key in sorted(set(keyed_a) | set(keyed_b), key=str):
            ra, rb = keyed_a.get(key), keyed_b.get(key)
            if ra is None or rb is None:
                lines.append(f"{table} {key}: only in {'B' if ra is None else 'A'}")
                continue
            for column in sorted(set(ra) | set(rb)):
                if ra.get(column) != rb.get(column):
                    lines.append(f"{table} {key}.{column}: {_short(ra.get(column))} != "
                                 f"{_short(rb.get(column))}")
    return lines[:limit]


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(c) for c in ("job", "step", "check_name") if c in row)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
