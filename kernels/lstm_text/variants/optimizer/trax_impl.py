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
    # RNNLM shifts its input right itself, so position 0 would be predicted from nothing:
    # weight 0 there, and each window scores the same length - 1 tokens as PyTorch's.
    weights = np.ones(length, np.float32)
    weights[0] = 0.0

    def examples():  # windows of the training text at random offsets
        while True:
            start = rng.integers(len(train_ids) - length + 1)
            window = train_ids[start:start + length]
            yield window, window, weights

    pipeline = trax.data.Serial(trax.data.Batch(spec["batch"]))
    n_eval = spec["eval_windows"]
    held_out = eval_ids[:n_eval * length].reshape(n_eval, length)
    eval_batch = (held_out, held_out, np.broadcast_to(weights, held_out.shape))
    return {"train": pipeline(examples()), "eval": eval_batch,
            "sample": tuple(x[:spec["batch"]] for x in eval_batch)}


# %% model


def build_model(spec):
    return trax.models.RNNLM(spec["vocab"], d_model=spec["d_model"], n_layers=spec["n_layers"],
                             rnn_cell=tl.LSTMCell, dropout=0.0)


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.WeightedCategoryCrossEntropy(),
        optimizer=trax.optimizers.Momentum(opt["lr"], mass=opt["momentum"],
                                           weight_decay_rate=opt["lr"] * opt["weight_decay"],
                                           nesterov=opt["nesterov"]),
        sample_batch=data["sample"],
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    tokens, targets, weights = data["eval"]
    loss = tl.WeightedCategoryCrossEntropy()
    value = loss((trainer.eval_model(tokens), targets, weights))
    return {"eval_loss": float(value)}
