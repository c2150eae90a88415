"""Decoder-only Transformer language model built from torch.nn parts."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fwsurvey.kernels.datasets import PAD_ID, split, text_corpus

# %% data


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    rng = np.random.default_rng(spec["seed"])
    lengths = spec.get("seq_lens", [spec["seq_len"]])

    def batches():
        while True:
            length = int(rng.choice(lengths))  # one length per batch
            starts = rng.integers(0, len(train_ids) - length - 1, spec["batch"])
            chunk = torch.from_numpy(np.stack([train_ids[s:s + length + 1] for s in starts]))
            yield chunk[:, :-1].long(), chunk[:, 1:].long()

    window = spec["seq_len"] + 1
    n_eval = spec["eval_windows"]
    eval_chunk = torch.from_numpy(eval_ids[:n_eval * window].reshape(n_eval, window)).long()
    return {"train": batches(), "eval": (eval_chunk[:, :-1], eval_chunk[:, 1:])}


# %% model


class TransformerLM(nn.Module):
    def __init__(self, vocab, d_model, d_ff, n_layers, n_heads, max_len, dropout):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(max_len, d_model)
        block = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        length = tokens.size(1)
        positions = torch.arange(length, device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        x = self.blocks(x, mask=mask, is_causal=True)
        return self.head(self.norm(x))


def build_model(spec):
    torch.manual_seed(spec["seed"])
    model = TransformerLM(spec["vocab"], spec["d_model"], spec["d_ff"], spec["n_layers"],
                          spec["n_heads"], spec["max_len"], spec["dropout"])
    model = model.to(spec["device"])
    if spec.get("compile"):
        model = torch.compile(model, dynamic=spec.get("dynamic"))
    return model


# %% training


def make_trainer(model, data, spec):
    device = spec["device"]
    optimizer = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    use_bf16 = spec.get("precision") == "bf16"

    def train_step():
        model.train()
        inputs, targets = (t.to(device) for t in next(data["train"]))
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=inputs.device.type, dtype=torch.bfloat16,
                            enabled=use_bf16):
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                   targets.reshape(-1), ignore_index=PAD_ID)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    inputs, targets = (t.to(spec["device"]) for t in data["eval"])
    with torch.no_grad():
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    return {"eval_loss": loss.item()}
