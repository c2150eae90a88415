"""Decoder-only Transformer language model with trax.models.TransformerLM."""

import numpy as np
import trax
from trax import layers as tl
from trax.supervised import training

from fwsurvey.kernels.datasets import PAD_ID, split, text_corpus

# %% data


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    rng = np.random.default_rng(spec["seed"])
    lengths = spec.get("seq_lens", [spec["seq_len"]])
    buckets = spec.get("buckets") if spec.get("bucketed") else None

    def train_stream():
        # TransformerLM shifts its input right itself: inputs and targets are the same.
        while True:
            length = int(rng.choice(lengths))
            starts = rng.integers(0, len(train_ids) - length, spec["batch"])
            chunk = np.stack([train_ids[s:s + length] for s in starts])
            if buckets:  # pad up to the bucket's length: one compiled shape per bucket
                padded = min(b for b in buckets if b >= length)
                chunk = np.pad(chunk, ((0, 0), (0, padded - length)), constant_values=PAD_ID)
            yield chunk, chunk, (chunk != PAD_ID).astype(np.float32)

    n_eval, length = spec["eval_windows"], spec["seq_len"]
    eval_chunk = eval_ids[:n_eval * length].reshape(n_eval, length)
    return {"train": train_stream(), "eval": eval_chunk}


# %% model


def build_model(spec):
    return trax.models.TransformerLM(
        spec["vocab"], d_model=spec["d_model"], d_ff=spec["d_ff"],
        n_layers=spec["n_layers"], n_heads=spec["n_heads"], max_len=spec["max_len"],
        dropout=spec["dropout"], mode="train")


# %% training


def make_trainer(model, data, spec):
    train_task = training.TrainTask(
        labeled_data=data["train"],
        loss_layer=tl.WeightedCategoryCrossEntropy(),
        optimizer=trax.optimizers.Adam(spec["lr"]),
    )
    return training.Loop(model, [train_task], random_seed=spec["seed"])


# %% evaluation


def evaluate(model, trainer, data, spec):
    tokens = data["eval"]
    value = tl.CategoryCrossEntropy()((trainer.eval_model(tokens), tokens))
    return {"eval_loss": float(value)}
