"""Convolutional digit classifier, the way PyTorch's tutorials write it."""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# %% data


def load_data(spec):
    digits = load_digits()
    images = digits.images.astype("float32")[:, None, :, :] / 16.0  # N, C, H, W
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=spec["eval_fraction"], random_state=spec["seed"])
    generator = torch.Generator().manual_seed(spec["seed"])
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    test = TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test))
    return {
        "train": DataLoader(train, batch_size=spec["batch"], shuffle=True, drop_last=True,
                            generator=generator),
        "test": DataLoader(test, batch_size=256),
    }


# %% model


class ConvNet(nn.Module):
    def __init__(self, channels, n_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(2 * channels, 2 * channels, kernel_size=3, padding=1)
        self.fc = nn.Linear(2 * channels * 2 * 2, n_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x + F.relu(self.conv3(x))
        return self.fc(torch.flatten(x, 1))


def build_model(spec):
    torch.manual_seed(spec["seed"])
    return ConvNet(spec["channels"])


# %% training


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
        images, labels = next(stream)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


# %% evaluation


def evaluate(model, trainer, data, spec):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in data["test"]:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    return {"accuracy": correct / total}
