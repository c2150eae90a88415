"""Benchmark the ergonomics analyzer against ``radon cc`` alone on installed source trees.

Not a test: it takes minutes. For each tree (default: the installed torch and trax
packages) it times, on the same files:

1. radon cc alone (``cc_visit`` on each file, in this process, one core);
2. the full metric suite, cold (empty cache, ``workers`` processes);
3. the full suite again, warm (every file from the cache).

The suite runs through the real stage's unit (fwsurvey.analyzers.stage.ErgonomicsUnit)
against a fresh database, so it includes reading, hashing, caching and writing every row.

    .venv/bin/python scripts/bench_analyzers.py [TREE ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

from radon.complexity import cc_visit

from fwsurvey.analyzers.ergonomics import LibraryIndex
from fwsurvey.analyzers.stage import ErgonomicsUnit
from fwsurvey.analyzers.targets import user_targets
from fwsurvey.config import load_config
from fwsurvey.stage import StageContext, run_unit
from fwsurvey.store import Store

REPO = Path(__file__).resolve().parents[1]


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds the folder; imports nothing
    assert spec and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


def radon_cc(paths: list[Path], max_bytes: int) -> tuple[float, int]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    trees = args.trees or [package_dir("torch"), package_dir("trax")]
    config = load_config(REPO / "fwsurvey.toml")
    config.analyzers.setdefault("ergonomics", {})["workers"] = args.workers
    max_bytes = config.analyzers["ergonomics"].get("max_file_bytes", 2_000_000)

    print(f"{'tree':<8} {'files':>6} {'what':<18} {'seconds':>8} {'files/s':>8}")
    for tree in trees:
        targets = user_targets([tree])
        files = [t.path for t in targets if t.path.suffix == ".py"]
        seconds, n = radon_cc(files, max_bytes)
        print(f"{tree.name:<8} {n:>6} {'radon cc alone':<18} {seconds:>8.2f} {n / seconds:>8.1f}")
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "bench.db")
            for label in ("suite, cold", "suite, warm"):
                run_id = store.start_run("bench", ["analyze"], {})
                start = time.perf_counter()
                unit = ErgonomicsUnit([tree], index=LibraryIndex())
                outcome = run_unit(StageContext(store, run_id, config), "analyze", unit)
                seconds = time.perf_counter() - start
                total = outcome.items_ok + len(outcome.errors)
                print(f"{tree.name:<8} {total:>6} {label:<18} {seconds:>8.2f} "
                      f"{total / seconds:>8.1f}   ({outcome.items_ok} ok, "
                      f"{len(outcome.errors)} file errors)")
            store.close()


if __name__ == "__main__":
    main()
