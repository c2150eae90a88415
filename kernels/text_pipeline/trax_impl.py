"""LSTM language model fed by a trax.data pipeline: shuffle, bucket by length, pad, batch,
mask the padding, the way Trax's data-pipeline documentation composes it."""

import numpy as np
import trax
from trax import layers as tl
from trax.supervised import training

from fwsurvey.kernels.datasets import PAD_ID, split, text_lines

# %% data


def load_data(spec):
    lines = text_lines(spec["min_len"], spec["max_len"])
    train_lines, eval_lines = split(np.array(lines, dtype=object), spec["eval_fraction"])
    np.random.seed(spec["seed"])  # trax.data.Shuffle draws from NumPy's global generator

    def examples():
        while True:
            for line in train_lines:
                yield line, line  # RNNLM shifts its input right itself

    boundaries = spec["buckets"]
    pipeline = trax.data.Serial(
        trax.data.Shuffle(spec["shuffle_buffer"]),
        trax.data.BucketByLength(boundaries, [spec["batch"]] * (len(boundaries) + 1),
                                 length_keys=[0]),
        trax.data.AddLossWeights(id_to_mask=PAD_ID),
    )
    held_out = list(eval_lines[:spec["eval_lines"]])
    eval_batch = trax.data.inputs.pad_to_max_dims(held_out, spec["max_len"])
    return {"train": pipeline(examples()), "eval": eval_batch}


# %% model


def build_model(spec):
    return trax.models.RNNLM(spec["vocab"], d_model=spec["d_model"], n_layers=spec["n_layers"],
                             rnn_cell=tl.LSTMCell, dropout=0.0)


# %% training


def make_trainer(model, data, spec):
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.WeightedCategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(spec["lr"], clip_grad_norm=1.0),
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    tokens = data["eval"]
    weights = (tokens != PAD_ID).astype(np.float32)
    loss = tl.WeightedCategoryCrossEntropy()
    value = loss((trainer.eval_model(tokens), tokens, weights))
    return {"eval_loss": float(value)}
