"""Digits MLP with SciPy inside the forward pass, the way Trax and JAX's docs teach it: Trax's
Loop traces the step, so a host function enters it through ``jax.pure_callback`` and gets its
gradient from a ``jax.custom_vjp`` ("External callbacks" in JAX's docs), wrapped as a layer by
``tl.Fn``; the inputs come from a scikit-learn pipeline."""

import jax
import numpy as np
import trax
from scipy.special import ndtr
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from trax import layers as tl
from trax.supervised import training

# %% data


def load_data(spec):
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target.astype(np.int32), test_size=spec["eval_fraction"],
        random_state=spec["seed"])
    scaling = make_pipeline(StandardScaler(), PCA(spec["width"], random_state=spec["seed"]))
    x_train = scaling.fit_transform(x_train).astype(np.float32)  # fitted on the training set
    x_test = scaling.transform(x_test).astype(np.float32)
    np.random.seed(spec["seed"])  # trax.data.Shuffle draws from NumPy's global generator

    def examples():
        while True:  # one epoch after another
            yield from zip(x_train, y_train, strict=True)

    pipeline = trax.data.Serial(trax.data.Shuffle(), trax.data.Batch(spec["batch"]))
    return {"train": pipeline(examples()), "test": (x_test, y_test),
            "sample": (x_test[:spec["batch"]], y_test[:spec["batch"]])}


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


def build_model(spec):
    return tl.Serial(
        tl.Dense(spec["hidden"]),
        tl.Fn("ScipyGelu", lambda x: scipy_gelu(x)),  # Fn reads the signature
        tl.Dense(spec["hidden"]),
        tl.Fn("ScipyGelu", lambda x: scipy_gelu(x)),  # Fn reads the signature
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
