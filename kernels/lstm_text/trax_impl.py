"""Character-level LSTM language model, the way Trax's documentation writes it."""

import numpy as np
import trax
from trax import layers as tl
from trax.supervised import training

from fwsurvey.kernels.datasets import split, text_corpus

# %% data


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    rng = np.random.default_rng(spec["seed"])
    length = spec["seq_len"]

    def train_stream():
        # RNNLM shifts its input right itself: inputs and targets are the same tokens.
        while True:
            starts = rng.integers(0, len(train_ids) - length, spec["batch"])
            chunk = np.stack([train_ids[s:s + length] for s in starts])
            yield chunk, chunk

    n_eval = spec["eval_windows"]
    eval_chunk = eval_ids[:n_eval * length].reshape(n_eval, length)
    return {"train": train_stream(), "eval": eval_chunk}


# %% model


def build_model(spec):
    return trax.models.RNNLM(spec["vocab"], d_model=spec["d_model"], n_layers=spec["n_layers"],
                             rnn_cell=tl.LSTMCell, dropout=0.0)


# %% training


def make_trainer(model, data, spec):
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.CategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(spec["lr"], clip_grad_norm=1.0),
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    tokens = data["eval"]
    loss = tl.CategoryCrossEntropy()
    value = loss((trainer.eval_model(tokens), tokens))
    return {"eval_loss": float(value)}
