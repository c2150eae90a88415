"""Decoder-only Transformer language model built from torch.nn parts, GPT-style.

Written as a strong PyTorch baseline would be: attention through
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where available), the
loss computed inside ``forward`` (so the model the harness optimises includes it), a fused
AdamW, and a vocabulary padded to a multiple of 64 in the full profile (spec.toml).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from fwsurvey.kernels.datasets import PAD_ID, split, text_corpus

# %% data


class Windows(Dataset):
    """Windows of a text: item ``(start, length)`` is ``length`` tokens from ``start``."""

    def __init__(self, ids):
        self.ids = torch.from_numpy(ids).long()

    def __getitem__(self, item):
        start, length = item
        return self.ids[start:start + length]


class RandomWindows(Sampler):
    """Endless batches of windows at random offsets, one length per batch."""

    def __init__(self, n_tokens, lengths, batch_size, generator):
        self.n_tokens, self.lengths = n_tokens, lengths
        self.batch_size, self.generator = batch_size, generator

    def __iter__(self):
        while True:
            pick = torch.randint(len(self.lengths), (), generator=self.generator)
            length = self.lengths[pick]
            starts = torch.randint(self.n_tokens - length + 1, (self.batch_size,),
                                   generator=self.generator)
            yield [(start, length) for start in starts.tolist()]


def pad_to_bucket(buckets):
    """A collate function padding each batch up to the smallest bucket that holds it."""

    def collate(windows):
        tokens = torch.stack(windows)
        length = min(b for b in buckets if b >= tokens.size(1))
        return F.pad(tokens, (0, length - tokens.size(1)), value=PAD_ID)

    return collate


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    sampler = RandomWindows(len(train_ids), spec.get("seq_lens", [spec["seq_len"]]),
                            spec["batch"], torch.Generator().manual_seed(spec["seed"]))
    collate = pad_to_bucket(spec["buckets"]) if spec.get("bucketed") else None
    n_eval, length = spec["eval_windows"], spec["seq_len"]
    held_out = torch.from_numpy(eval_ids[:n_eval * length].reshape(n_eval, length)).long()
    train = DataLoader(Windows(train_ids), batch_sampler=sampler, collate_fn=collate)
    return {"train": train, "eval": held_out}


# %% model


class Block(nn.Module):
    """Pre-norm decoder block: causal self-attention, then a ReLU feed-forward."""

    def __init__(self, d_model, d_ff, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x):
        batch, length, d_model = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, length, 3, self.n_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, length, d_head)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(batch, length, d_model))
        return x + self.ff(self.norm2(x))


class TransformerLM(nn.Module):
    def __init__(self, vocab, d_model, d_ff, n_layers, n_heads, max_len):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(max_len, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, d_ff, n_heads) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model, eps=1e-6)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        """The mean loss of predicting each token from the ones before it (padding skipped)."""
        x = self.tokens(tokens) + self.positions.weight[:tokens.size(1)]
        logits = self.head(self.norm(self.blocks(x)))
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(),
                               ignore_index=PAD_ID)


def init_weights(model):
    """The initialisation every implementation of this task shares (spec.toml): Glorot-uniform
    kernels (q, k and v each as its own matrix), zero biases, token embeddings uniform with
    variance 1/d_model, positions starting from sinusoids."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            fan_out, fan_in = module.weight.shape
            if fan_out == 3 * fan_in:  # the fused q, k, v projection
                fan_out = fan_in
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)
    max_len, d_model = model.positions.weight.shape
    bound = math.sqrt(3.0 / d_model)
    nn.init.uniform_(model.tokens.weight, -bound, bound)
    position = torch.arange(max_len).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    with torch.no_grad():
        model.positions.weight[:, 0::2] = torch.sin(position * freq)
        model.positions.weight[:, 1::2] = torch.cos(position * freq)


def build_model(spec):
    torch.manual_seed(spec["seed"])
    model = TransformerLM(spec["vocab"], spec["d_model"], spec["d_ff"], spec["n_layers"],
                          spec["n_heads"], spec["max_len"])
    init_weights(model)
    return model


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt["lr"], betas=(opt["b1"], opt["b2"]),
                                  eps=opt["eps"], weight_decay=opt["weight_decay"], fused=True)

    def batches():
        while True:
            yield from data["train"]

    stream = batches()

    def train_step():
        model.train()
        tokens = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss = model(tokens)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    with torch.no_grad():
        loss = model(data["eval"])
    return {"eval_loss": loss.item()}
