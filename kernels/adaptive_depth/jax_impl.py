"""The adaptive-depth network in plain JAX: the engine baseline of Trax.

``jax.lax.while_loop`` could stop when every example is done, but JAX cannot differentiate
it in reverse mode; a trained loop has a fixed trip count. So ``jax.lax.fori_loop`` applies
the learned step ``max_depth`` times and an example keeps its state once its own ``k``
steps are done (the rest is computed and masked out).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers

from fwsurvey.kernels.adaptive_depth import steps

# %% data


def load_data(spec):
    data = steps.dataset(spec)
    x, k, y = data["train"]
    rng = np.random.default_rng(spec["seed"])

    def batches():
        while True:  # one shuffled epoch after another
            order = rng.permutation(len(x))
            for i in range(0, len(order) - spec["batch"] + 1, spec["batch"]):
                idx = order[i:i + spec["batch"]]
                yield x[idx], k[idx], y[idx]

    return {"train": batches(), "test": data["test"]}


# %% model


def build_model(spec):
    keys = jax.random.split(jax.random.PRNGKey(spec["seed"]), 3)
    glorot = jax.nn.initializers.glorot_uniform()

    def dense(key, n_in, n_out):
        return {"w": glorot(key, (n_in, n_out)), "b": jnp.zeros((n_out,))}

    return {"encode": dense(keys[0], spec["dim"], spec["hidden"]),
            "step": dense(keys[1], spec["hidden"], spec["hidden"]),
            "decode": dense(keys[2], spec["hidden"], spec["dim"])}


def forward(params, x, k, max_depth):
    h = jnp.tanh(x @ params["encode"]["w"] + params["encode"]["b"])

    def body(i, h):
        stepped = jnp.tanh(h @ params["step"]["w"] + params["step"]["b"])
        return jnp.where((k > i)[:, None], stepped, h)

    h = jax.lax.fori_loop(0, max_depth, body, h)
    return h @ params["decode"]["w"] + params["decode"]["b"]


# %% training


def loss_fn(params, x, k, y, max_depth):
    return jnp.mean((forward(params, x, k, max_depth) - y) ** 2)


def make_trainer(params, data, spec):
    opt = spec["optimizer"]  # jax.example_libraries' adam has no weight decay: 0 in the spec
    opt_init, opt_update, get_params = optimizers.adam(opt["lr"], b1=opt["b1"], b2=opt["b2"],
                                                       eps=opt["eps"])

    @jax.jit
    def update(step, opt_state, x, k, y):
        loss, grads = jax.value_and_grad(loss_fn)(get_params(opt_state), x, k, y,
                                                  spec["max_depth"])
        return loss, opt_update(step, grads, opt_state)

    state = {"opt": opt_init(params), "step": 0}

    def train_step():
        x, k, y = next(data["train"])
        loss, state["opt"] = update(state["step"], state["opt"], x, k, y)
        state["step"] += 1
        return loss

    train_step.params = lambda: get_params(state["opt"])
    return train_step


# %% evaluation


def evaluate(params, trainer, data, spec):
    x, k, y = data["test"]
    return {"r2": steps.r2(forward(trainer.params(), x, k, spec["max_depth"]), y)}
