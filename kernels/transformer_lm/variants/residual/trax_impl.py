"""Decoder-only Transformer language model with trax.models.TransformerLM."""

import numpy as np
import trax
from trax import layers as tl
from trax.supervised import training

from fwsurvey.kernels.datasets import PAD_ID, split, text_corpus

# %% data


def with_context(length):
    """Loss weights of a window: TransformerLM shifts its input right itself, so position 0
    would be predicted from nothing; it gets weight 0, and each window scores the same
    length - 1 tokens as the other implementations."""
    weights = np.ones(length, np.float32)
    weights[0] = 0.0
    return weights


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    rng = np.random.default_rng(spec["seed"])
    lengths = spec.get("seq_lens", [spec["seq_len"]])

    def examples():  # windows of the training text at random offsets (and lengths)
        while True:
            length = int(rng.choice(lengths))
            start = rng.integers(len(train_ids) - length + 1)
            window = train_ids[start:start + length]
            yield window, window, with_context(length)

    if len(lengths) == 1:
        batches = trax.data.Batch(spec["batch"])
    else:  # one length per batch; bucketed: padded up to the bucket's length
        boundaries = spec["buckets"] if spec.get("bucketed") else sorted(lengths)
        batches = trax.data.BucketByLength(boundaries, [spec["batch"]] * (len(boundaries) + 1),
                                           length_keys=[0])
    pipeline = trax.data.Serial(batches, trax.data.AddLossWeights(id_to_mask=PAD_ID))

    n_eval, length = spec["eval_windows"], spec["seq_len"]
    held_out = eval_ids[:n_eval * length].reshape(n_eval, length)
    eval_batch = (held_out, held_out, np.broadcast_to(with_context(length), held_out.shape))
    return {"train": pipeline(examples()), "eval": eval_batch,
            "sample": tuple(x[:spec["batch"]] for x in eval_batch)}


# %% model


def build_model(spec):
    return trax.models.TransformerLM(
        spec["vocab"], d_model=spec["d_model"], d_ff=spec["d_ff"],
        n_layers=spec["n_layers"] + 1, n_heads=spec["n_heads"], max_len=spec["max_len"],
        dropout=spec["dropout"], mode="train")


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.WeightedCategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(opt["lr"], b1=opt["b1"], b2=opt["b2"], eps=opt["eps"],
                                       weight_decay_rate=opt["lr"] * opt["weight_decay"]),
        sample_batch=data["sample"],
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    tokens, targets, weights = data["eval"]
    value = tl.WeightedCategoryCrossEntropy()((trainer.eval_model(tokens), targets, weights))
    return {"eval_loss": float(value)}
