"""Character-level LSTM language model, the way PyTorch's tutorials write it."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fwsurvey.kernels.datasets import split, text_corpus

# %% data


class Windows(Dataset):
    """Every window of ``length`` tokens of a text: item ``i`` starts at token ``i``."""

    def __init__(self, ids, length):
        self.ids = torch.from_numpy(ids).long()
        self.length = length

    def __len__(self):
        return len(self.ids) - self.length + 1

    def __getitem__(self, index):
        return self.ids[index:index + self.length]


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    generator = torch.Generator().manual_seed(spec["seed"])
    train = DataLoader(Windows(train_ids, spec["seq_len"]), batch_size=spec["batch"],
                       shuffle=True, drop_last=True, generator=generator)
    n_eval, length = spec["eval_windows"], spec["seq_len"]
    held_out = torch.from_numpy(eval_ids[:n_eval * length].reshape(n_eval, length)).long()
    return {"train": train, "eval": held_out}


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
    return CharLSTM(spec["vocab"], spec["d_model"], spec["n_layers"])


# %% training


def next_token_loss(logits, tokens):
    """Each position predicts the next token: the last position has no target."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                           tokens[:, 1:].reshape(-1))


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.SGD(model.parameters(), lr=opt["lr"], momentum=opt["momentum"],
                                nesterov=opt["nesterov"], weight_decay=opt["weight_decay"])

    def batches():
        while True:  # one epoch after another
            yield from data["train"]

    stream = batches()

    def train_step():
        model.train()
        tokens = next(stream)
        optimizer.zero_grad()
        loss = next_token_loss(model(tokens), tokens)
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
        loss = next_token_loss(model(tokens), tokens)
    return {"eval_loss": loss.item()}
