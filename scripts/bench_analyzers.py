"""Benchmark the ergonomics analyzer against ``radon cc`` alone on installed source trees.

Not a test: it takes minutes. For each tree (``--tree trax``, ``--tree torch`` or paths;
default: the installed trax package) it times, in one run and on the same files:

1. radon cc alone (``cc_visit`` on each file, in this process, one core);
2. the full metric suite, cold (empty cache, ``--workers`` processes), and the peak memory
   (resident set) of the largest worker (``ru_maxrss`` of the finished workers);
3. the full suite again, warm (every file from the cache);

and prints each throughput in files per second and the cold suite's as a ratio of radon cc's
(the goal of issue 16: at least 0.25 with 2 workers). Both come from the same run, so the
machine's load weighs on both.

The suite runs through the real stage's unit (fwsurvey.analyzers.stage.ErgonomicsUnit)
against a fresh database, so it includes reading, hashing, caching and writing every row.
``--profile N`` instead profiles (cProfile) the measuring of the tree's first N files in this
process and prints where the time goes.

    .venv/bin/python scripts/bench_analyzers.py [--tree trax|torch|PATH ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import pstats
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from radon.complexity import cc_visit

from fwsurvey.analyzers.ergonomics import LibraryIndex
from fwsurvey.analyzers.measure import measure
from fwsurvey.analyzers.settings import ergonomics_settings
from fwsurvey.analyzers.stage import ErgonomicsUnit
from fwsurvey.analyzers.targets import user_targets
from fwsurvey.config import load_config
from fwsurvey.stage import StageContext, run_unit
from fwsurvey.store import Store

REPO = Path(__file__).resolve().parents[1]


def package_dir(name: str) -> Path:
    """The installed package's folder (found, not imported: importing torch takes seconds)."""
    spec = importlib.util.find_spec(name)
    assert spec and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


def tree_path(name: str) -> Path:
    """``trax`` / ``torch``: the installed package; anything else: a path."""
    return package_dir(name) if name in ("trax", "torch") else Path(name)


def cpu_seconds() -> float:
    """User and system CPU time of this process and of its finished children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def radon_cc(paths: list[Path], max_bytes: int) -> tuple[float, int]:
    """Seconds radon's cc takes on the files the suite measures too, and how many it read."""
    start = time.perf_counter()
    done = 0
    for path in paths:
        if path.stat().st_size > max_bytes:
            continue  # the suite skips these too
        try:
            cc_visit(path.read_text(encoding="utf-8"))
            done += 1
        except (SyntaxError, UnicodeDecodeError):
            pass
    return time.perf_counter() - start, done


def peak_child_mb() -> float:
    """The largest peak resident set of this process's finished children, in MB (Linux: KB)."""
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / (1 << 20)


def profile(tree: Path, config, count: int) -> None:
    """cProfile of measuring the tree's first ``count`` files in this process."""
    settings = ergonomics_settings(config)
    files = [t.path for t in user_targets([tree]) if t.path.suffix == ".py"][:count]
    data = [(str(p), p.read_bytes()) for p in files]
    prof = cProfile.Profile()
    prof.enable()
    for name, blob in data:
        measure(name, blob, None, settings, LibraryIndex())
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def bench(tree: Path, config, max_bytes: int, workers: int) -> None:
    targets = user_targets([tree])
    files = [t.path for t in targets if t.path.suffix == ".py"]
    cpu = cpu_seconds()
    seconds, n = radon_cc(files, max_bytes)
    radon_cpu = cpu_seconds() - cpu
    radon_rate = n / seconds
    print(f"{tree.name:<8} {n:>6} {'radon cc alone':<18} {seconds:>8.2f} {radon_rate:>8.1f} "
          f"{radon_cpu:>8.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        for label in ("suite, cold", "suite, warm"):
            run_id = store.start_run("bench", ["analyze"], {})
            start, cpu = time.perf_counter(), cpu_seconds()
            unit = ErgonomicsUnit([tree], index=LibraryIndex())
            outcome = run_unit(StageContext(store, run_id, config), "analyze", unit)
            seconds, used = time.perf_counter() - start, cpu_seconds() - cpu
            total = outcome.items_ok + len(outcome.errors)
            rate = total / seconds
            # On a shared machine the wall-clock ratio moves with the others' load; the CPU
            # ratio says what the same work would give on `workers` free cores.
            extra = (f"  {rate / radon_rate:.3f}x radon cc (by CPU time, on {workers} free"
                     f" cores: {workers * (total / used) / (n / radon_cpu):.3f}x);"
                     f" peak worker {peak_child_mb():.0f} MB" if label.endswith("cold") else "")
            kinds = Counter(e.kind for e in outcome.errors)
            errors = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no"
            print(f"{tree.name:<8} {total:>6} {label:<18} {seconds:>8.2f} {rate:>8.1f} "
                  f"{used:>8.2f}   "
                  f"({outcome.items_ok} ok; file errors: {errors}){extra}", flush=True)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[],
                        help="trax, torch or a folder (repeatable; default: trax)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="profile measuring the first N files instead of benchmarking")
    args = parser.parse_args()
    trees = [tree_path(t) for t in args.tree or ["trax"]]
    config = load_config(REPO / "fwsurvey.toml")
    config.analyzers.setdefault("ergonomics", {})["workers"] = args.workers
    max_bytes = config.analyzers["ergonomics"].get("max_file_bytes", 2_000_000)
    if args.profile:
        for tree in trees:
            profile(tree, config, args.profile)
        return
    print(f"{'tree':<8} {'files':>6} {'what':<18} {'seconds':>8} {'files/s':>8} {'cpu s':>8}")
    for tree in trees:
        bench(tree, config, max_bytes, args.workers)


if __name__ == "__main__":
    main()
