"""Benchmark: what importing each framework costs, with and without the harness's frame shortcut.

    .venv/bin/python scripts/bench_import.py [ROUNDS] [FRAMEWORK ...]

Every import runs in a fresh interpreter (as every kernel job does), alternating "plain" and
"shortcut" (``fwsurvey.frames.install()`` first) round by round so machine noise hits
both alike. The plain time is what a user of the framework pays at each start; the shortcut
time is what the harness pays per job (``kernel_runs.import_s`` also includes loading the
task's module). The first package of each adapter's ``packages`` is imported.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from fwsurvey.kernels.adapters import ADAPTERS

PROBE = """
import json, sys, time
if {shortcut}:
    from fwsurvey import frames
    frames.install()
t0 = time.perf_counter()
import {package}
print(json.dumps({{"seconds": time.perf_counter() - t0, "modules": len(sys.modules)}}))
"""


def import_once(package: str, shortcut: bool) -> dict:
    code = PROBE.format(package=package, shortcut=shortcut)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    names = sys.argv[2:] or list(ADAPTERS)
    print(f"{'framework':<10} {'package':<10} {'plain s (median)':>17} "
          f"{'shortcut s (median)':>20} {'ratio':>6}  modules")
    for name in names:
        package = ADAPTERS[name].packages[0]
        plain, fast, modules = [], [], 0
        for _ in range(rounds):
            plain.append(import_once(package, False)["seconds"])
            probe = import_once(package, True)
            fast.append(probe["seconds"])
            modules = probe["modules"]
        p, f = statistics.median(plain), statistics.median(fast)
        print(f"{name:<10} {package:<10} {p:>17.2f} {f:>20.2f} {p / f:>6.2f}  {modules}",
              flush=True)


if __name__ == "__main__":
    main()
