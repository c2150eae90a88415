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

    def with_context(line):
        # RNNLM shifts its input right itself, so a line's first token would be predicted
        # from nothing: weight 0 there, as PyTorch scores tokens 1..n-1 of each line.
        weights = np.ones(len(line), np.float32)
        weights[0] = 0.0
        return weights

    def examples():
        while True:  # one epoch after another
            for line in train_lines:
                yield line, line, with_context(line)

    boundaries = spec["buckets"]
    pipeline = trax.data.Serial(
        trax.data.Shuffle(spec["shuffle_buffer"]),
        trax.data.BucketByLength(boundaries, [spec["batch"]] * (len(boundaries) + 1),
                                 length_keys=[0]),
        trax.data.AddLossWeights(id_to_mask=PAD_ID),  # padding weighs 0 too
    )
    held_out = list(eval_lines[:spec["eval_lines"]])
    tokens = trax.data.inputs.pad_to_max_dims(held_out, spec["max_len"])
    weights = trax.data.inputs.pad_to_max_dims([with_context(line) for line in held_out],
                                               spec["max_len"])
    eval_batch = (tokens, tokens, weights)
    return {"train": pipeline(examples()), "eval": eval_batch,
            "sample": tuple(x[:spec["batch"]] for x in eval_batch)}


# %% model


def build_model(spec):
    return tl.Serial(
        tl.ShiftRight(mode="train"),
        tl.Embedding(spec["vocab"], spec["d_model"]),
        tl.Residual([tl.LSTM(spec["d_model"]) for _ in range(spec["n_layers"])]),
        tl.Dense(spec["vocab"]),
    )


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.WeightedCategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(opt["lr"], b1=opt["b1"], b2=opt["b2"], eps=opt["eps"],
                                       weight_decay_rate=opt["lr"] * opt["weight_decay"],
                                       clip_grad_norm=opt["clip_grad_norm"]),
        sample_batch=data["sample"],
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    tokens, targets, weights = data["eval"]
    loss = tl.WeightedCategoryCrossEntropy()
    value = loss((trainer.eval_model(tokens), targets, weights))
    return {"eval_loss": float(value)}
