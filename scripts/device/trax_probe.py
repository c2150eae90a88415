"""Why does Trax's TransformerLM stall on a GPU after its first step? Times each step alone,
with JAX's compile log and cache-miss explanations captured per step, and Python stack dumps
every 30 s while a step hangs (faulthandler). One JSON line per step, flushed as it ends.

The question it answers: recompiling every step (compile messages in each step), or a slow
path that is not compilation (no messages, stacks inside dispatch or host code).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import time
from pathlib import Path

import jax
import numpy as np


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "TRACING CACHE MISS" in text:  # the explanation: why JAX traced again
            self.messages.append(text[:4000])
        elif text.startswith("Compiling "):  # shapes, then how arguments are placed
            at = text.find("Argument mapping")
            self.messages.append(text[:160] + (" … " + text[at:at + 400] if at > 0 else ""))
        elif "to compile" in text:
            self.messages.append(text[:300])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "trax_probe.jsonl"
    stacks = (args.out / "trax_stacks.txt").open("w")
    faulthandler.dump_traceback_later(30, repeat=True, file=stacks)

    jax.config.update("jax_log_compiles", True)
    jax.config.update("jax_explain_cache_misses", True)
    collect = Collect()
    jax_log = logging.getLogger("jax")
    jax_log.addHandler(collect)
    jax_log.setLevel(logging.DEBUG)
    jax_log.propagate = False  # captured per step, not printed

    from fwsurvey.kernels.adapters import ADAPTERS
    from fwsurvey.kernels.tasks import discover
    from fwsurvey.kernels.transformer_lm import trax_impl

    spec = {**discover()["transformer_lm"].profile(args.profile), "device": args.device,
            "precision": "fp32", "workdir": str(args.out)}

    def line(**payload) -> None:
        with log_path.open("a") as f:
            f.write(json.dumps(payload) + "\n")
        print(json.dumps(payload)[:400], flush=True)

    line(event="start", jax=jax.__version__, devices=[str(d) for d in jax.devices()])
    t0 = time.perf_counter()
    data = trax_impl.load_data(spec)
    model = trax_impl.build_model(spec)
    loop = trax_impl.make_trainer(model, data, spec)
    line(event="built", seconds=round(time.perf_counter() - t0, 2),
         compile_messages=len(collect.messages))
    step = ADAPTERS["trax"].stepper(loop)
    for i in range(1, args.steps + 1):
        collect.messages.clear()
        t0 = time.perf_counter()
        loss = step()
        seconds = time.perf_counter() - t0
        line(event="step", step=i, seconds=round(seconds, 3), loss=round(loss, 4),
             compile_messages=len(collect.messages), messages=collect.messages[:12])
    # Where a steady step spends its time, host side.
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    step()
    profile.disable()
    stats = pstats.Stats(profile)
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)[:15]
    line(event="profile", top_cumulative=[
        {"fn": f"{k[0].rsplit('/', 2)[-1]}:{k[1]}:{k[2]}", "cum_s": round(v[3], 3),
         "calls": v[1]} for k, v in top])
    line(event="done", weights_dtype=str(np.asarray(
        jax.tree_util.tree_leaves(loop.model.weights)[0]).dtype))


if __name__ == "__main__":
    main()
