"""The kernels' GPU check (issue #3): the GPT-2-small LM (full profile) in every mode through
the harness, then a probe of Trax's steady state. Run by check.sh on the device machine;
also runs here on CPU with ``--device cpu --profile quick`` (to check the script itself).

Writes ``results.json`` (one summary per job: status, phase reached, step times, MFU, compile
counts) and ``trax_probe.jsonl`` / ``trax_stacks.txt`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fwsurvey.kernels.matrix import train_jobs
from fwsurvey.kernels.runner import run_job
from fwsurvey.kernels.tasks import discover

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DIR = ROOT / ".device"
#: Per-phase limits, seconds: short enough that a stalled job leaves time for the rest.
TIMEOUTS = {"import": 120, "data": 60, "build": 120, "first_step": 180, "warmup": 120,
            "steady": 90, "eval": 60}
KEEP = ("status", "phase", "error", "device_name", "n_params", "first_step_s",
        "step_median_ms", "step_iqr_ms", "step_mean_ms", "throughput", "throughput_unit",
        "mfu", "flops_per_step", "compiles_total", "compiles_timed", "compile_s_total",
        "peak_mem_mb", "mem_kind", "metrics", "versions", "wall_s")


def trax_env() -> dict[str, str]:
    """PYTHONPATH for Trax: its unpacked wheels and the TensorFlow stand-in, if carried."""
    parts = [str(DEVICE_DIR), str(DEVICE_DIR / "site"), str(ROOT)]
    return {"PYTHONPATH": os.pathsep.join(p for p in parts if Path(p).exists())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=460, help="seconds for everything")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--frameworks", default="pytorch,jax,trax")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    task = discover()["transformer_lm"]
    frameworks = args.frameworks.split(",")
    # torch.compile first: its MFU is the headline target.
    order = {"torch-compile": 0, "jax-jit": 1, "torch-eager": 2, "trax": 3}
    jobs = sorted(train_jobs([task], frameworks, args.profile, args.device),
                  key=lambda j: order.get(j.mode, 9))
    results = []
    for job in jobs:
        left = deadline - time.monotonic()
        if left < 60:
            results.append({"job": job.key, "status": "skipped", "error": "device budget spent"})
            continue
        job.timeouts = dict(TIMEOUTS)
        if job.framework == "trax":
            job.env.update(trax_env())
            job.timeouts["steady"] = 60  # the stall seen before: record it as a timeout
        started = time.monotonic()
        result = run_job(job)
        summary = {"job": job.key, "precision": job.precision,
                   **{k: result.get(k) for k in KEEP},
                   "first_step_times_ms": (result.get("step_times_ms") or [])[:5]}
        results.append(summary)
        print(json.dumps({k: summary.get(k) for k in ("job", "status", "phase", "step_median_ms",
                                                       "mfu", "first_step_s", "compiles_timed")}),
              f"{time.monotonic() - started:.0f}s", flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if "trax" in frameworks:
        left = deadline - time.monotonic()
        if left > 45:
            probe = [sys.executable, str(Path(__file__).with_name("trax_probe.py")),
                     "--out", str(args.out), "--device", args.device, "--profile", args.profile]
            try:
                subprocess.run(probe, env={**os.environ, **trax_env()}, timeout=left - 10,
                               check=False)
            except subprocess.TimeoutExpired:
                print("trax probe: stopped at the budget; see trax_probe.jsonl", flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
