"""The recursive network over expression trees, the way Trax's documentation allows it.

Trax layers are pure functions of arrays, traced and jitted by ``training.Loop``: a layer
cannot recurse over a Python tree. So each tree is linearised (post-order, operands before
their operator) and padded to a fixed length, and a custom layer (``tl.Layer`` with its own
weights, as Trax's "custom layers" guide shows) runs that program on a stack of vectors with
``fastmath.scan``: a leaf pushes its embedding, an operator pops two vectors and pushes
their combination, padding does nothing.
"""

import numpy as np
import trax
from trax import fastmath
from trax import layers as tl
from trax.fastmath import numpy as jnp
from trax.supervised import training

from fwsurvey.kernels.tree_recursion import trees

# %% data

PAD = 0  # token 0 is padding, 1..3 the operators, then the leaves' digits
FIRST_LEAF = 1 + len(trees.OPS)


def postorder(tree):
    if isinstance(tree, int):
        return [FIRST_LEAF + tree - trees.LOW]
    op, left, right = tree
    return postorder(left) + postorder(right) + [1 + trees.OPS.index(op)]


def encode(batch_trees, length):
    programs = np.full((len(batch_trees), length), PAD, dtype=np.int32)
    for i, tree in enumerate(batch_trees):
        program = postorder(tree)
        programs[i, :len(program)] = program
    return programs


def load_data(spec):
    data = trees.dataset(spec)
    length = 2 * spec["max_leaves"] - 1  # the largest tree's nodes
    x_train = encode(data["train"][0], length)
    y_train = np.array(data["train"][1], dtype=np.float32)[:, None]
    x_test = encode(data["test"][0], length)
    y_test = np.array(data["test"][1], dtype=np.float32)[:, None]
    np.random.seed(spec["seed"])  # trax.data.Shuffle draws from NumPy's global generator

    def examples():
        while True:  # one epoch after another
            yield from zip(x_train, y_train, strict=True)

    pipeline = trax.data.Serial(trax.data.Shuffle(), trax.data.Batch(spec["batch"]),
                                trax.data.AddLossWeights())
    return {"train": pipeline(examples()), "test": (x_test, y_test),
            "sample": (x_test[:spec["batch"]], y_test[:spec["batch"]],
                       np.ones_like(y_test[:spec["batch"]]))}


# %% model


class TreeEncoder(tl.Layer):
    """Runs each padded post-order program on a stack of vectors; returns the root's."""

    def __init__(self, hidden, stack_size):
        super().__init__(n_in=1, n_out=1)
        self._hidden, self._stack_size = hidden, stack_size

    def init_weights_and_state(self, input_signature):
        leaf_rng, w_rng = fastmath.random.split(self.rng)
        n_leaves, h = trees.HIGH - trees.LOW + 1, self._hidden
        leaf = tl.RandomNormalInitializer(1.0)((n_leaves, h), leaf_rng)
        w = tl.GlorotUniformInitializer()((len(trees.OPS), 2 * h, h), w_rng)
        self.weights = (leaf, w, jnp.zeros((len(trees.OPS), h), dtype=jnp.float32))

    def forward(self, programs):
        leaf, w, b = self.weights

        def step(carry, token):
            stack, top = carry
            op = jnp.clip(token - 1, 0, len(trees.OPS) - 1)
            children = jnp.concatenate([stack[top - 2], stack[top - 1]])
            combined = jnp.tanh(children @ w[op] + b[op])
            is_leaf = token >= FIRST_LEAF
            pushed = jnp.where(is_leaf, leaf[jnp.maximum(token - FIRST_LEAF, 0)], combined)
            at = jnp.where(is_leaf, top, top - 2)
            stack = jnp.where(token == PAD, stack, stack.at[at].set(pushed))
            top = top + jnp.where(is_leaf, 1, jnp.where(token == PAD, 0, -1))
            return (stack, top), None

        def run(program):
            empty = jnp.zeros((self._stack_size, self._hidden), dtype=jnp.float32)
            (stack, _), _ = fastmath.scan(step, (empty, 0), program)
            return stack[0]

        return fastmath.vmap(run)(programs)


def build_model(spec):
    return tl.Serial(TreeEncoder(spec["hidden"], spec["max_leaves"]), tl.Dense(1))


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
    x_test, y_test = data["test"]
    predictions = trainer.eval_model(x_test)
    return {"r2": trees.r2(np.asarray(predictions)[:, 0].tolist(), y_test[:, 0].tolist())}
