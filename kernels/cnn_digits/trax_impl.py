"""Convolutional digit classifier, the way Trax's documentation writes it."""

import numpy as np
import trax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from trax import layers as tl
from trax.supervised import training

# %% data


def load_data(spec):
    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None] / 16.0  # N, H, W, C
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=spec["eval_fraction"], random_state=spec["seed"])
    rng = np.random.default_rng(spec["seed"])

    def train_stream():
        while True:
            order = rng.permutation(len(x_train))
            for start in range(0, len(order) - spec["batch"] + 1, spec["batch"]):
                idx = order[start:start + spec["batch"]]
                yield x_train[idx], y_train[idx].astype(np.int32)

    return {"train": train_stream(), "test": (x_test, y_test.astype(np.int32))}


# %% model


def build_model(spec):
    channels = spec["channels"]
    return tl.Serial(
        tl.Conv(channels, (3, 3), padding="SAME"),
        tl.Relu(),
        tl.MaxPool(pool_size=(2, 2), strides=(2, 2)),
        tl.Conv(2 * channels, (3, 3), padding="SAME"),
        tl.Relu(),
        tl.MaxPool(pool_size=(2, 2), strides=(2, 2)),
        tl.Flatten(),
        tl.Dense(10),
    )


# %% training


def make_trainer(model, data, spec):
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.CategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(spec["lr"]),
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    x_test, y_test = data["test"]
    logits = trainer.eval_model(x_test)
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == y_test))}
