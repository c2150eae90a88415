"""Compare two runs of the training matrix field by field, timings and place aside (issue #16).

The check behind "the matrix on Ray stores what the local executor stores", at full size: run
the same matrix twice, once per executor, into two databases, then

    .venv/bin/fwsurvey train --db out/local.db                 # or a `fwsurvey run`'s database
    .venv/bin/fwsurvey train --executor ray --db out/ray.db
    .venv/bin/python scripts/compare_executors.py out/local.db out/ray.db

Each database's latest run of each table is compared (``--run-a``/``--run-b`` pick others).
Prints the jobs compared and every difference (``fwsurvey.kernels.compare.VARYING`` lists
the columns left out: timings, when and where a job ran); exits 1 if any, 0 if none.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fwsurvey.kernels.compare import comparable, differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the first database (e.g. the local executor's)")
    parser.add_argument("b", type=Path, help="the second database (e.g. Ray's)")
    parser.add_argument("--run-a", type=int, help="the run of A (default: its latest)")
    parser.add_argument("--run-b", type=int, help="the run of B (default: its latest)")
    parser.add_argument("--ignore", action="append", default=[], metavar="COLUMN",
                        help="also leave this column out (repeatable)")
    parser.add_argument("--exclude-experiment", action="append", default=[], metavar="NAME",
                        help="leave this experiment's jobs out (repeatable), e.g. scaling "
                             "when A is a `fwsurvey run` and B a `fwsurvey train`")
    args = parser.parse_args(argv)
    for db in (args.a, args.b):
        if not db.exists():
            parser.error(f"{db}: no such database")
    from fwsurvey.kernels.compare import VARYING
    varying = VARYING | set(args.ignore)
    exclude = frozenset(args.exclude_experiment)
    a = comparable(args.a, args.run_a, varying, exclude)
    b = comparable(args.b, args.run_b, varying, exclude)
    jobs_a = {r["job"]: r for r in a["kernel_runs"]}
    jobs_b = {r["job"]: r for r in b["kernel_runs"]}
    print(f"A {args.a}: {len(jobs_a)} training jobs, {len(a['samples'])} samples, "
          f"{len(a['kernel_checks'])} checks, {len(a['kernel_scaling'])} scaling jobs")
    print(f"B {args.b}: {len(jobs_b)} training jobs, {len(b['samples'])} samples, "
          f"{len(b['kernel_checks'])} checks, {len(b['kernel_scaling'])} scaling jobs")
    outcomes: dict[str, int] = {}
    for row in jobs_a.values():
        outcomes[row.get("outcome") or row["status"]] = (
            outcomes.get(row.get("outcome") or row["status"], 0) + 1)
    print("outcomes in A: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    found = differences(a, b, limit=200)
    for line in found:
        print(line)
    print(f"{len(found)} difference(s)" + (" (first 200)" if len(found) == 200 else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
