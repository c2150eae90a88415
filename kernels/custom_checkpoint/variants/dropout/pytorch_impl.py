"""A custom layer and a hand-written training loop that saves and resumes checkpoints."""

import os

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# %% data


def load_data(spec):
    digits = load_digits()
    x = digits.data.astype("float32") / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=spec["eval_fraction"], random_state=spec["seed"])
    generator = torch.Generator().manual_seed(spec["seed"])
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    return {
        "train": DataLoader(train, batch_size=spec["batch"], shuffle=True, drop_last=True,
                            generator=generator),
        "test": (torch.from_numpy(x_test), torch.from_numpy(y_test)),
    }


# %% model


class ResidualDense(nn.Module):
    """x + relu(x W + b): a layer with its own parameters and initialisation."""

    def __init__(self, width):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width, width))
        self.bias = nn.Parameter(torch.zeros(width))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x):
        return x + F.relu(x @ self.weight + self.bias)


def build_model(spec):
    torch.manual_seed(spec["seed"])
    width = spec["width"]
    return nn.Sequential(nn.Linear(64, width), ResidualDense(width), ResidualDense(width),
                         nn.Dropout(spec["dropout"]), nn.Linear(width, 10))


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], betas=(opt["b1"], opt["b2"]),
                                 eps=opt["eps"], weight_decay=opt["weight_decay"])
    path = os.path.join(spec["workdir"], "checkpoint.pt")
    state = {"step": 0}
    if os.path.exists(path):  # resume where the last run stopped
        checkpoint = torch.load(path)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state["step"] = checkpoint["step"]

    def batches():
        while True:  # one epoch after another
            yield from data["train"]

    stream = batches()

    def train_step():
        model.train()
        x, y = next(stream)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        if state["step"] % spec["checkpoint_every"] == 0:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "step": state["step"]}, path)
        return loss

    train_step.state = state
    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    x, y = data["test"]
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    return {"accuracy": accuracy}
