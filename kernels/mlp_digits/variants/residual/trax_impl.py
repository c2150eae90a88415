"""MLP classifier on the digits dataset, the way Trax's documentation writes it."""

import numpy as np
import trax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from trax import layers as tl
from trax.supervised import training

# %% data


def load_data(spec):
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target.astype(np.int32), test_size=spec["eval_fraction"],
        random_state=spec["seed"])
    np.random.seed(spec["seed"])  # trax.data.Shuffle draws from NumPy's global generator

    def examples():
        while True:  # one epoch after another
            yield from zip(x_train, y_train, strict=True)

    pipeline = trax.data.Serial(trax.data.Shuffle(), trax.data.Batch(spec["batch"]))
    return {"train": pipeline(examples()), "test": (x_test, y_test),
            "sample": (x_test[:spec["batch"]], y_test[:spec["batch"]])}


# %% model


def build_model(spec):
    return tl.Serial(
        tl.Dense(spec["hidden"]),
        tl.Relu(),
        tl.Dense(spec["hidden"]),
        tl.Relu(),
        tl.Residual(tl.Dense(spec["hidden"]), tl.Relu()),
        tl.Dense(10),
    )


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.CategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(opt["lr"], b1=opt["b1"], b2=opt["b2"], eps=opt["eps"],
                                       weight_decay_rate=opt["lr"] * opt["weight_decay"]),
        sample_batch=data["sample"],
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    x_test, y_test = data["test"]
    logits = trainer.eval_model(x_test)
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == y_test))}
