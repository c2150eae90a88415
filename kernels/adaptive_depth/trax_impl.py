"""The adaptive-depth network, the way Trax's documentation allows it.

``training.Loop`` jits the whole step and differentiates it: a loop whose trip count comes
from the data (``fastmath`` has no reverse-differentiable while loop) must run a fixed
number of steps. So the learned step runs ``max_depth`` times for every example
(``fastmath.fori_loop`` in a custom layer with its own weights), and an example keeps its
previous state once its own ``k`` steps are done: the rest is computed and masked out.
"""

import numpy as np
import trax
from trax import fastmath
from trax import layers as tl
from trax.fastmath import numpy as jnp
from trax.supervised import training

from fwsurvey.kernels.adaptive_depth import steps

# %% data


def load_data(spec):
    data = steps.dataset(spec)
    x_train, k_train, y_train = data["train"]
    np.random.seed(spec["seed"])  # trax.data.Shuffle draws from NumPy's global generator

    weights = np.ones_like(y_train)  # every output counts in the loss

    def examples():
        while True:  # one epoch after another
            yield from zip(x_train, k_train, y_train, weights, strict=True)

    pipeline = trax.data.Serial(trax.data.Shuffle(), trax.data.Batch(spec["batch"]))
    x_test, k_test, y_test = data["test"]
    b = spec["batch"]
    return {"train": pipeline(examples()), "test": data["test"],
            "sample": (x_test[:b], k_test[:b], y_test[:b], np.ones_like(y_test[:b]))}


# %% model


class MaskedSteps(tl.Layer):
    """Applies the learned step ``max_depth`` times; row i keeps its state after k[i] steps."""

    def __init__(self, hidden, max_depth):
        super().__init__(n_in=2, n_out=1)
        self._hidden, self._max_depth = hidden, max_depth

    def init_weights_and_state(self, input_signature):
        self.weights = tl.Dense(self._hidden).init(input_signature[0], rng=self.rng)[0]

    def forward(self, inputs):
        h, k = inputs
        w, b = self.weights

        def body(i, h):
            return jnp.where((k > i)[:, None], jnp.tanh(h @ w + b), h)

        return fastmath.fori_loop(0, self._max_depth, body, h)


def build_model(spec):
    return tl.Serial(
        tl.Dense(spec["hidden"]),
        tl.Tanh(),
        MaskedSteps(spec["hidden"], spec["max_depth"]),
        tl.Dense(spec["dim"]),
    )


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.L2Loss(),
        optimizer=trax.optimizers.Adam(opt["lr"], b1=opt["b1"], b2=opt["b2"], eps=opt["eps"],
                                       weight_decay_rate=opt["lr"] * opt["weight_decay"]),
        sample_batch=data["sample"],
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    x, k, y = data["test"]
    return {"r2": steps.r2(trainer.eval_model((x, k)), y)}
