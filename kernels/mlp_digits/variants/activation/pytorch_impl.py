"""MLP classifier on the digits dataset, the way PyTorch's tutorials write it."""

import torch
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
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    test = TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test))
    generator = torch.Generator().manual_seed(spec["seed"])
    return {
        "train": DataLoader(train, batch_size=spec["batch"], shuffle=True, drop_last=True,
                            generator=generator),
        "test": DataLoader(test, batch_size=256),
    }


# %% model


def build_model(spec):
    torch.manual_seed(spec["seed"])
    return nn.Sequential(
        nn.Linear(64, spec["hidden"]),
        nn.GELU(),
        nn.Linear(spec["hidden"], spec["hidden"]),
        nn.GELU(),
        nn.Linear(spec["hidden"], 10),
    )


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], betas=(opt["b1"], opt["b2"]),
                                 eps=opt["eps"], weight_decay=opt["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()

    def batches():
        while True:  # one epoch after another
            yield from data["train"]

    stream = batches()

    def train_step():
        model.train()
        x, y = next(stream)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in data["test"]:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    return {"accuracy": correct / total}
