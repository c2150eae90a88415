"""A stand-in implementation whose behaviour a test picks through the spec."""

import os
import time


def load_data(spec):
    return None


def build_model(spec):
    if spec.get("behaviour") == "crash_in_build":
        raise RuntimeError("model does not fit the spec")
    return {"w": [1.0, 2.0]}  # a pytree, as a JAX model would be


def make_trainer(model, data, spec):
    state = {"step": 0}

    def step():
        state["step"] += 1
        if spec.get("behaviour") == "hang_in_steady" and state["step"] > 1 + spec["warmup_steps"]:
            time.sleep(3600)
        if spec.get("behaviour") == "die_in_warmup" and state["step"] == 2:
            os._exit(9)
        return 1.0 / state["step"]

    return step


def evaluate(model, trainer, data, spec):
    return {"accuracy": 1.0}
