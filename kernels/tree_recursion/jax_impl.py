"""The recursive network over expression trees in plain JAX: the engine baseline of Trax.

``jax.jit`` traces a function of arrays once per shape, so a tree cannot steer the
computation as Python objects: each tree is linearised (post-order) and padded to a fixed
length, and ``jax.lax.scan`` runs that program on a stack of vectors (a leaf pushes its
embedding, an operator pops two vectors and pushes their combination, padding does
nothing), ``jax.vmap`` over the batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers

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
    y_train = np.array(data["train"][1], dtype=np.float32)
    rng = np.random.default_rng(spec["seed"])

    def batches():
        while True:  # one shuffled epoch after another
            order = rng.permutation(len(x_train))
            for i in range(0, len(order) - spec["batch"] + 1, spec["batch"]):
                idx = order[i:i + spec["batch"]]
                yield x_train[idx], y_train[idx]

    return {"train": batches(), "test": (encode(data["test"][0], length),
                                         np.array(data["test"][1], dtype=np.float32))}


# %% model


def build_model(spec):
    h, n_ops = spec["hidden"], len(trees.OPS)
    k_leaf, k_w, k_out = jax.random.split(jax.random.PRNGKey(spec["seed"]), 3)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"leaf": jax.random.normal(k_leaf, (trees.HIGH - trees.LOW + 1, h)),
            "w": glorot(k_w, (n_ops, 2 * h, h)), "b": jnp.zeros((n_ops, h)),
            "out_w": glorot(k_out, (h, 1)), "out_b": jnp.zeros((1,))}


def encode_tree(params, program):
    def step(carry, token):
        stack, top = carry
        op = jnp.clip(token - 1, 0, len(trees.OPS) - 1)
        children = jnp.concatenate([stack[top - 2], stack[top - 1]])
        combined = jnp.tanh(children @ params["w"][op] + params["b"][op])
        is_leaf = token >= FIRST_LEAF
        pushed = jnp.where(is_leaf, params["leaf"][jnp.maximum(token - FIRST_LEAF, 0)],
                           combined)
        at = jnp.where(is_leaf, top, top - 2)
        stack = jnp.where(token == PAD, stack, stack.at[at].set(pushed))
        top = top + jnp.where(is_leaf, 1, jnp.where(token == PAD, 0, -1))
        return (stack, top), None

    # A program of 2n - 1 tokens has at most n leaves: the stack never holds more.
    empty = jnp.zeros((program.shape[0] // 2 + 1, params["leaf"].shape[1]))
    (stack, _), _ = jax.lax.scan(step, (empty, 0), program)
    return stack[0]


def predict(params, programs):
    roots = jax.vmap(encode_tree, in_axes=(None, 0))(params, programs)
    return (roots @ params["out_w"] + params["out_b"])[:, 0]


# %% training


def loss_fn(params, programs, targets):
    return jnp.mean((predict(params, programs) - targets) ** 2)


def make_trainer(params, data, spec):
    opt = spec["optimizer"]  # jax.example_libraries' adam has no weight decay: 0 in the spec
    opt_init, opt_update, get_params = optimizers.adam(opt["lr"], b1=opt["b1"], b2=opt["b2"],
                                                       eps=opt["eps"])

    @jax.jit
    def update(step, opt_state, programs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(get_params(opt_state), programs, targets)
        return loss, opt_update(step, grads, opt_state)

    state = {"opt": opt_init(params), "step": 0}

    def train_step():
        programs, targets = next(data["train"])
        loss, state["opt"] = update(state["step"], state["opt"], programs, targets)
        state["step"] += 1
        return loss

    train_step.params = lambda: get_params(state["opt"])
    return train_step


# %% evaluation


def evaluate(params, trainer, data, spec):
    programs, targets = data["test"]
    predictions = jax.jit(predict)(trainer.params(), programs)
    return {"r2": trees.r2(np.asarray(predictions).tolist(), targets.tolist())}
