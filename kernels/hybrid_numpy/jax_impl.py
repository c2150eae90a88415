"""Digits MLP with SciPy inside the jitted step, in plain JAX (the engine Trax runs on): a host
function enters a traced step through ``jax.pure_callback`` and gets its gradient from a
``jax.custom_vjp`` ("External callbacks" in JAX's docs); the inputs come from scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers
from scipy.special import ndtr
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# %% data


def load_data(spec):
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target.astype(np.int32), test_size=spec["eval_fraction"],
        random_state=spec["seed"])
    scaling = make_pipeline(StandardScaler(), PCA(spec["width"], random_state=spec["seed"]))
    x_train = scaling.fit_transform(x_train).astype(np.float32)  # fitted on the training set
    x_test = scaling.transform(x_test).astype(np.float32)
    rng = np.random.default_rng(spec["seed"])

    def batches():
        while True:  # one shuffled epoch after another, the last partial batch dropped
            order = rng.permutation(len(x_train))
            for start in range(0, len(order) - spec["batch"] + 1, spec["batch"]):
                rows = order[start:start + spec["batch"]]
                yield x_train[rows], y_train[rows]

    return {"train": batches(), "test": (x_test, y_test)}


# %% model


def host_gelu(x):
    return x * ndtr(x)


def host_gelu_slope(x):
    return ndtr(x) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


@jax.custom_vjp
def scipy_gelu(x):
    """GELU, x * Phi(x), with SciPy's normal CDF, called from the traced step."""
    return jax.pure_callback(host_gelu, jax.ShapeDtypeStruct(x.shape, x.dtype), x)


def scipy_gelu_fwd(x):
    return scipy_gelu(x), x


def scipy_gelu_bwd(x, grad):
    slope = jax.pure_callback(host_gelu_slope, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return (grad * slope,)


scipy_gelu.defvjp(scipy_gelu_fwd, scipy_gelu_bwd)


def init_params(key, sizes):
    """Glorot-uniform kernels and zero biases, one dense layer per pair of sizes."""
    params = []
    for layer_key, n_in, n_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:],
                                      strict=True):
        bound = np.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(layer_key, (n_in, n_out), minval=-bound, maxval=bound)
        params.append({"w": w, "b": jnp.zeros(n_out)})
    return params


def forward(params, x):
    for layer in params[:-1]:
        x = scipy_gelu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def build_model(spec):
    return init_params(jax.random.PRNGKey(spec["seed"]),
                       [spec["width"], spec["hidden"], spec["hidden"], 10])


# %% training


def loss_fn(params, x, y):
    logp = jax.nn.log_softmax(forward(params, x))
    return -jnp.take_along_axis(logp, y[:, None], axis=-1).mean()


def make_trainer(params, data, spec):
    opt = spec["optimizer"]  # jax.example_libraries' adam has no weight decay: 0 in the spec
    opt_init, opt_update, get_params = optimizers.adam(opt["lr"], b1=opt["b1"], b2=opt["b2"],
                                                       eps=opt["eps"])

    @jax.jit
    def update(step, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(get_params(opt_state), x, y)
        return loss, opt_update(step, grads, opt_state)

    state = {"opt": opt_init(params), "step": 0}

    def train_step():
        x, y = next(data["train"])
        loss, state["opt"] = update(state["step"], state["opt"], x, y)
        state["step"] += 1
        return loss

    train_step.params = lambda: get_params(state["opt"])
    return train_step


# %% evaluation


def evaluate(params, trainer, data, spec):
    x_test, y_test = data["test"]
    logits = forward(trainer.params(), x_test)
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == y_test))}
