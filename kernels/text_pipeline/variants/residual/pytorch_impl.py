"""LSTM language model fed by a torch.utils.data pipeline: a Dataset of lines, a sampler that
shuffles and buckets them by length, a collate function that pads, the way PyTorch's
data-loading tutorials build one."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from fwsurvey.kernels.datasets import PAD_ID, split, text_lines

# %% data


class Lines(Dataset):
    def __init__(self, lines):
        self.lines = [torch.from_numpy(line).long() for line in lines]

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, index):
        return self.lines[index]


class BucketBatchSampler(Sampler):
    """Shuffles every epoch, then batches lines of similar length together."""

    def __init__(self, lengths, boundaries, batch_size, generator):
        self.buckets = [[] for _ in range(len(boundaries) + 1)]
        for index, length in enumerate(lengths):
            self.buckets[sum(length > b for b in boundaries)].append(index)
        self.batch_size = batch_size
        self.generator = generator

    def __iter__(self):
        batches = []
        for bucket in self.buckets:
            order = torch.randperm(len(bucket), generator=self.generator).tolist()
            shuffled = [bucket[i] for i in order]
            batches += [shuffled[i:i + self.batch_size]
                        for i in range(0, len(shuffled) - self.batch_size + 1, self.batch_size)]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]

    def __len__(self):
        return sum(len(b) // self.batch_size for b in self.buckets)


def pad_batch(lines):
    return pad_sequence(lines, batch_first=True, padding_value=PAD_ID)


def load_data(spec):
    lines = text_lines(spec["min_len"], spec["max_len"])
    train_lines, eval_lines = split(np.array(lines, dtype=object), spec["eval_fraction"])
    dataset = Lines(train_lines)
    sampler = BucketBatchSampler([len(line) for line in train_lines], spec["buckets"],
                                 spec["batch"], torch.Generator().manual_seed(spec["seed"]))
    held_out = Lines(eval_lines[:spec["eval_lines"]])
    return {"train": DataLoader(dataset, batch_sampler=sampler, collate_fn=pad_batch),
            "eval": pad_batch(list(held_out))}


# %% model


class LineLSTM(nn.Module):
    def __init__(self, vocab_size, d_model, n_layers):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens):
        embedded = self.embed(tokens)
        hidden, _ = self.lstm(embedded)
        hidden = hidden + embedded
        return self.head(hidden)


def build_model(spec):
    torch.manual_seed(spec["seed"])
    return LineLSTM(spec["vocab"], spec["d_model"], spec["n_layers"])


# %% training


def masked_loss(logits, tokens):
    """Each position predicts the next token; padding is never a target."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                           tokens[:, 1:].reshape(-1), ignore_index=PAD_ID)


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], betas=(opt["b1"], opt["b2"]),
                                 eps=opt["eps"], weight_decay=opt["weight_decay"])

    def batches():
        while True:  # one epoch after another
            yield from data["train"]

    stream = batches()

    def train_step():
        model.train()
        tokens = next(stream)
        optimizer.zero_grad()
        loss = masked_loss(model(tokens), tokens)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), opt["clip_grad_norm"])
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    tokens = data["eval"]
    with torch.no_grad():
        loss = masked_loss(model(tokens), tokens)
    return {"eval_loss": loss.item()}
