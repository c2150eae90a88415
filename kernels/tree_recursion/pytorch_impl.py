"""A recursive neural network over expression trees, the way PyTorch's docs write dynamic
models: the forward pass is plain Python recursion over one tree, so every tree builds its
own graph (as in the tutorial's dynamic-graph examples); a batch is a loop over its trees."""

import random

import torch
from torch import nn

from fwsurvey.kernels.tree_recursion import trees

# %% data


def load_data(spec):
    data = trees.dataset(spec)
    rng = random.Random(spec["seed"])

    def batches():
        examples = list(zip(*data["train"], strict=True))
        while True:  # one shuffled epoch after another
            rng.shuffle(examples)
            for i in range(0, len(examples) - spec["batch"] + 1, spec["batch"]):
                batch_trees, targets = zip(*examples[i:i + spec["batch"]], strict=True)
                yield list(batch_trees), torch.tensor(targets)

    return {"train": batches(), "test": data["test"]}


# %% model


class TreeNet(nn.Module):
    """A leaf is an embedded digit; an operator node combines its children's vectors with
    that operator's own layer; a linear read-out maps the root's vector to the value."""

    def __init__(self, hidden):
        super().__init__()
        self.leaf = nn.Embedding(trees.HIGH - trees.LOW + 1, hidden)
        self.combine = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in trees.OPS)
        self.out = nn.Linear(hidden, 1)

    def encode(self, tree):
        if isinstance(tree, int):
            return self.leaf.weight[tree - trees.LOW]
        op, left, right = tree
        children = torch.cat([self.encode(left), self.encode(right)])
        return torch.tanh(self.combine[trees.OPS.index(op)](children))

    def forward(self, tree):
        return self.out(self.encode(tree)).squeeze(-1)


def build_model(spec):
    torch.manual_seed(spec["seed"])
    return TreeNet(spec["hidden"])


# %% training


def make_trainer(model, data, spec):
    opt = spec["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], betas=(opt["b1"], opt["b2"]),
                                 eps=opt["eps"], weight_decay=opt["weight_decay"])
    loss_fn = nn.MSELoss()

    def train_step():
        model.train()
        batch_trees, targets = next(data["train"])
        optimizer.zero_grad()
        predictions = torch.stack([model(tree) for tree in batch_trees])
        loss = loss_fn(predictions, targets)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    test_trees, targets = data["test"]
    with torch.no_grad():
        predictions = [model(tree).item() for tree in test_trees]
    return {"r2": trees.r2(predictions, targets)}
