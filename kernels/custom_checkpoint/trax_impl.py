"""A custom layer, trained by a Trax Loop that saves checkpoints and resumes from them.

Trax's own answer to "save and resume" is the Loop: it writes checkpoints into its
output_dir at ``checkpoint_at`` steps, and a new Loop on the same folder restores the
weights, optimizer slots and step.
"""

import numpy as np
import trax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from trax import fastmath
from trax import layers as tl
from trax.fastmath import numpy as jnp
from trax.supervised import training

# %% data


def load_data(spec):
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=spec["eval_fraction"], random_state=spec["seed"])
    rng = np.random.default_rng(spec["seed"])

    def train_stream():
        while True:
            order = rng.permutation(len(x_train))
            for start in range(0, len(order) - spec["batch"] + 1, spec["batch"]):
                idx = order[start:start + spec["batch"]]
                yield x_train[idx], y_train[idx].astype(np.int32)

    return {"train": train_stream(), "test": (x_test, y_test.astype(np.int32))}


# %% model


class ResidualDense(tl.Layer):
    """x + relu(x W + b): a layer with its own weights and initialisation."""

    def __init__(self, width):
        super().__init__(name="ResidualDense")
        self._width = width

    def forward(self, x):
        w, b = self.weights
        return x + jnp.maximum(jnp.dot(x, w) + b, 0.0)

    def init_weights_and_state(self, input_signature):
        init = tl.initializers.GlorotUniformInitializer()
        w = init((input_signature.shape[-1], self._width), fastmath.random.split(self.rng)[0])
        self.weights = (w, jnp.zeros(self._width))


def build_model(spec):
    width = spec["width"]
    return tl.Serial(tl.Dense(width), ResidualDense(width), ResidualDense(width), tl.Dense(10))


# %% training


def make_trainer(model, data, spec):
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.CategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(spec["lr"]),
        n_steps_per_checkpoint=spec["checkpoint_every"],
    )
    return training.Loop(model, [train_task], output_dir=spec["workdir"],
                         random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    x_test, y_test = data["test"]
    logits = trainer.eval_model(x_test)
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == y_test))}
