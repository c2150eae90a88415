"""The GPU check (scripts/device/check.py), run here on the CPU: preflight, then the Trax probe
with its per-step placement lines, then a harness job whose next phase does not fit in the
budget and so is not started. Everything lands in the output folder as it goes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent
CHECK = REPO / "scripts" / "device" / "check.py"


def test_the_check_probes_first_and_never_starts_a_phase_past_its_budget(tmp_path):
    out = tmp_path / "out"
    # build's limit is far beyond the budget: the job must stop as build is announced.
    done = subprocess.run(
        [sys.executable, str(CHECK), "--out", str(out), "--device", "cpu", "--profile",
         "quick", "--budget", "400", "--probe-variants", "default", "--probe-steps", "1",
         "--probe-limit", "240", "--frameworks", "jax", "--limit", "build=100000"],
        capture_output=True, text=True, timeout=500, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "check.log").read_text()

    # Preflight first, a line per piece; then the probe; then the job.
    assert "preflight: fwsurvey.kernels: ok" in log
    order = [log.index(text) for text in ("preflight: torch: ok", "preflight: trax: ok",
                                          "probe[default]: started",
                                          "job transformer_lm/jax/jax-jit/train/default")]
    assert order == sorted(order)

    # The probe's line after its step: where the weights and the slots are, and the verdict.
    assert re.search(r"probe\[default\] step 1: [\d.]+ s, loss [\d.]+, weights on cpu:0, "
                     r"slots on cpu:0, memory in use n/a MB", log)
    assert "Trax's update step runs on: cpu:0 (slots on cpu:0) [variant default]" in log
    steps = [json.loads(line) for line in (out / "trax_probe.jsonl").read_text().splitlines()
             if '"step"' in line]
    assert [s["step"] for s in steps] == [1]
    # Trax's trainer commits the slots to the host (tl.on_cpu): the probe shows it.
    assert list(steps[0]["slots"]) == ["cpu:0 SingleDeviceSharding committed"]
    assert steps[0]["slots"]["cpu:0 SingleDeviceSharding committed"]["leaves"] > 0

    results = json.loads((out / "results.json").read_text())
    assert results["preflight"]["jax"]["ok"] and results["preflight"]["trax"]["ok"]
    probe = results["probe"][0]
    assert (probe["status"], probe["runs_on"], probe["slots_on"]) == ("ok", "cpu:0", "cpu:0")
    assert len(probe["steps"]) == 1 and probe["steps"][0]["loss"] > 0

    # The job ran its phases up to build, which was not started: skipped for budget.
    assert "transformer_lm/jax/jax-jit/train/default: phase data" in log
    [job] = results["jobs"]
    assert (job["status"], job["skipped_for"], job["phase"]) == ("skipped", "budget", "build")
    assert "needs up to 100000 s" in job["error"]
    # A job cut for budget says nothing about its framework: no row to import.
    records = json.loads((out / "records.json").read_text())
    assert records["format"] == "fwsurvey-records/1" and records["source"] == "device-check"
    assert records["records"] == [] and records["jobs"] == []
    # The run's versions are this machine's, as the preflight imported them.
    assert records["versions"]["jax"] == results["preflight"]["jax"]["detail"]["version"]
    assert records["versions"]["trax"] == results["preflight"]["trax"]["detail"]["version"]
