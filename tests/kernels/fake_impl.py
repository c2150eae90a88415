"""A stand-in implementation whose behaviour a test picks through the spec.

``data_sleep``: seconds each training batch takes to produce (the data time a step waits
for); ``behaviour`` picks a failure: a crash in the build, a hang in the steady steps or in
the final evaluation (after every steady window), a process that dies, a quality below
any target, a quality that grows with the steps.
"""

import os
import time


def load_data(spec):
    if "data_sleep" not in spec:
        return None

    def batches():
        n = 0
        while True:
            time.sleep(spec["data_sleep"])
            n += 1
            yield n

    return {"train": batches(), "test": [0]}


def build_model(spec):
    if spec.get("behaviour") == "crash_in_build":
        raise RuntimeError("model does not fit the spec")
    return {"w": [1.0, 2.0]}  # a pytree, as a JAX model would be


def make_trainer(model, data, spec):
    state = {"step": 0}

    def step():
        state["step"] += 1
        if data is not None:
            next(data["train"])  # a trainer consumes the stream by iterating it
            time.sleep(spec.get("compute_sleep", 0.0))
        if spec.get("behaviour") == "hang_in_steady" and state["step"] > 1 + spec["warmup_steps"]:
            time.sleep(3600)
        if spec.get("behaviour") == "die_in_warmup" and state["step"] == 2:
            os._exit(9)
        return 1.0 / state["step"]

    step.state = state
    return step


def evaluate(model, trainer, data, spec):
    time.sleep(spec.get("eval_sleep", 0.0))
    if spec.get("behaviour") == "hang_in_final_eval" and trainer.state["step"] >= spec["steps"]:
        time.sleep(3600)
    if spec.get("behaviour") == "low_accuracy":
        return {"accuracy": 0.1}
    if spec.get("behaviour") == "learns":  # the tests' target 0.5 is met from step 8 on
        return {"accuracy": min(1.0, trainer.state["step"] / 16)}
    return {"accuracy": 1.0}
