"""An adaptive-depth network, the way PyTorch's dynamic graphs let one write it: a Python
``while`` loop whose trip count comes from the data, each step applied only to the examples
that still need it (boolean indexing), so no example computes a step it does not need."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fwsurvey.kernels.adaptive_depth import steps

# %% data


def load_data(spec):
    data = steps.dataset(spec)
    train = TensorDataset(*(torch.from_numpy(a) for a in data["train"]))
    generator = torch.Generator().manual_seed(spec["seed"])
    return {"train": DataLoader(train, batch_size=spec["batch"], shuffle=True, drop_last=True,
                                generator=generator),
            "test": tuple(torch.from_numpy(a) for a in data["test"])}


# %% model


class Iterated(nn.Module):
    """Encode, apply the learned step ``k`` times per example, decode."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.encode = nn.Linear(dim, hidden)
        self.step = nn.Linear(hidden, hidden)
        self.decode = nn.Linear(hidden, dim)

    def forward(self, x, k):
        h = torch.tanh(self.encode(x))
        done = 0
        while (k > done).any():
            active = k > done
            h = h.clone()
            h[active] = torch.tanh(self.step(h[active]))
            done += 1
        return self.decode(h)


def build_model(spec):
    torch.manual_seed(spec["seed"])
    return Iterated(spec["dim"], spec["hidden"])


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], betas=(opt["b1"], opt["b2"]),
                                 eps=opt["eps"], weight_decay=opt["weight_decay"])
    loss_fn = nn.MSELoss()

    def batches():
        while True:  # one epoch after another
            yield from data["train"]

    stream = batches()

    def train_step():
        model.train()
        x, k, y = next(stream)
        optimizer.zero_grad()
        loss = loss_fn(model(x, k), y)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    x, k, y = data["test"]
    with torch.no_grad():
        return {"r2": steps.r2(model(x, k).numpy(), y.numpy())}
