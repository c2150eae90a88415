"""Small paired snippets whose metrics the tests work out by hand."""

TORCH = '''\
import torch
import torch.nn as nn
from torch import optim


# %% model
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2, bias=True)

    def forward(self, x):
        return self.fc(x)

    def helper(self):
        return 1


# %% training
def train(model, data):
    opt = optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        if data:
            return loss.item()
'''

TRAX = '''\
from trax import layers as tl
from trax.layers.core import Dense
from trax.supervised import training

# %% model
model = tl.Serial(tl.Dense(10), Dense(2, use_bias=False), tl.Relu())

# %% training
task = training.TrainTask(labeled_data=None, loss_layer=tl.CategoryCrossEntropy())
loop = training.Loop(model, [task])
loop.run(10)
'''

JAX = '''\
import jax
import jax.numpy as jnp


def loss(w, x):
    return jnp.sum(w * x)


grad = jax.jit(jax.grad(loss))
'''

IMPORTS = {"pytorch": ("torch",), "trax": ("trax",), "jax": ("jax",)}
CEREMONY = {
    "pytorch": ("zero_grad", "backward", "step", "to", "train", "eval", "no_grad", "item"),
    "trax": ("TrainTask", "EvalTask", "Loop", "run"),
    "jax": ("jit", "grad"),
}
