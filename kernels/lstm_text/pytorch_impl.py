"""Character-level LSTM language model, the way PyTorch's tutorials write it."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fwsurvey.kernels.datasets import split, text_corpus

# %% data


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    rng = np.random.default_rng(spec["seed"])
    window = spec["seq_len"] + 1

    def batches():
        while True:
            starts = rng.integers(0, len(train_ids) - window, spec["batch"])
            chunk = torch.from_numpy(np.stack([train_ids[s:s + window] for s in starts]))
            yield chunk[:, :-1].long(), chunk[:, 1:].long()

    n_eval = spec["eval_windows"]
    eval_chunk = torch.from_numpy(eval_ids[:n_eval * window].reshape(n_eval, window)).long()
    return {"train": batches(), "eval": (eval_chunk[:, :-1], eval_chunk[:, 1:])}


# %% model


class CharLSTM(nn.Module):
    def __init__(self, vocab_size, d_model, n_layers):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens):
        hidden, _ = self.lstm(self.embed(tokens))
        return self.head(hidden)


def build_model(spec):
    torch.manual_seed(spec["seed"])
    model = CharLSTM(spec["vocab"], spec["d_model"], spec["n_layers"]).to(spec["device"])
    if spec.get("compile"):
        model = torch.compile(model, dynamic=spec.get("dynamic"))
    return model


# %% training


def make_trainer(model, data, spec):
    device = spec["device"]
    optimizer = torch.optim.Adam(model.parameters(), lr=spec["lr"])

    def train_step():
        model.train()
        inputs, targets = (t.to(device) for t in next(data["train"]))
        optimizer.zero_grad()
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
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
