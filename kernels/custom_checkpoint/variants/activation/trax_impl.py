"""A custom layer, trained by a Trax Loop that saves checkpoints and resumes from them.

Trax's own answer to "save and resume" is the Loop: it writes checkpoints into its
output_dir at ``checkpoint_at`` steps, and a new Loop on the same folder restores the
weights, optimizer slots and step.
"""

import jax
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


class ResidualDense(tl.Layer):
    """x + relu(x W + b): a layer with its own weights and initialisation."""

    def __init__(self, width):
        super().__init__(name="ResidualDense")
        self._width = width

    def forward(self, x):
        w, b = self.weights
        return x + jax.nn.gelu(jnp.dot(x, w) + b, approximate=False)

    def init_weights_and_state(self, input_signature):
        init = tl.initializers.GlorotUniformInitializer()
        w = init((input_signature.shape[-1], self._width), fastmath.random.split(self.rng)[0])
        self.weights = (w, jnp.zeros(self._width))


def build_model(spec):
    width = spec["width"]
    return tl.Serial(tl.Dense(width), ResidualDense(width), ResidualDense(width), tl.Dense(10))


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.CategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(opt["lr"], b1=opt["b1"], b2=opt["b2"], eps=opt["eps"],
                                       weight_decay_rate=opt["lr"] * opt["weight_decay"]),
        n_steps_per_checkpoint=spec["checkpoint_every"],
        sample_batch=data["sample"],
    )
    return training.Loop(model, [train_task], output_dir=spec["workdir"],
                         random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    x_test, y_test = data["test"]
    logits = trainer.eval_model(x_test)
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == y_test))}
