"""The task's data: random arithmetic-expression trees and their values, from the seed.

Shared by every implementation (framework-free, as the digits come from scikit-learn for
all sides), so the pair trains on the same trees. How a framework then feeds a tree to its
model (recursing over it, or linearising and padding it to a static shape) is that
framework's own code, in its ``*_impl.py``. Not a scored file.

A tree is a leaf (an ``int``) or ``(op, left, right)`` with ``op`` one of ``+ - *``. Shapes
vary: each tree has 2 to ``max_leaves`` leaves, split at a random point at every node.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import TypeAlias

#: A leaf, or an operator with its two operands.
Tree: TypeAlias = "int | tuple[str, Tree, Tree]"

OPS = ("+", "-", "*")
#: The leaves' integers (inclusive).
LOW, HIGH = 0, 4


def random_tree(rng: random.Random, n_leaves: int) -> Tree:
    """A tree with ``n_leaves`` leaves, its shape and its contents drawn from ``rng``."""
    if n_leaves == 1:
        return rng.randint(LOW, HIGH)
    left = rng.randint(1, n_leaves - 1)
    return (rng.choice(OPS), random_tree(rng, left), random_tree(rng, n_leaves - left))


def value(tree: Tree) -> int:
    """The expression's value, computed over the tree."""
    if isinstance(tree, int):
        return tree
    op, left, right = tree
    a, b = value(left), value(right)
    return a + b if op == "+" else a - b if op == "-" else a * b


def expression(tree: Tree) -> str:
    """The tree as a fully parenthesised Python expression (what the tests evaluate)."""
    if isinstance(tree, int):
        return str(tree)
    op, left, right = tree
    return f"({expression(left)} {op} {expression(right)})"


def n_nodes(tree: Tree) -> int:
    """Leaves and operators."""
    return 1 if isinstance(tree, int) else 1 + n_nodes(tree[1]) + n_nodes(tree[2])


def depth(tree: Tree) -> int:
    return 0 if isinstance(tree, int) else 1 + max(depth(tree[1]), depth(tree[2]))


def squash(v: float) -> float:
    """``sign(v) * log(1 + |v|)``: products make the values heavy-tailed (a few hundreds
    among single digits); on this scale every tree weighs in the fit, not the largest few."""
    return math.copysign(math.log1p(abs(v)), v)


def dataset(spec: dict) -> dict:
    """Training and test trees with their normalised values: :func:`squash` of the value,
    over ``scale``, the training set's standard deviation of it (a model predicting the
    mean scores an R² of 0)."""
    rng = random.Random(spec["seed"])
    n_train, n_test = spec["n_train"], spec["n_test"]
    trees = [random_tree(rng, rng.randint(2, spec["max_leaves"]))
             for _ in range(n_train + n_test)]
    squashed = [squash(value(t)) for t in trees]
    scale = statistics.pstdev(squashed[:n_train]) or 1.0
    targets = [v / scale for v in squashed]
    return {"train": (trees[:n_train], targets[:n_train]),
            "test": (trees[n_train:], targets[n_train:]), "scale": scale}


def r2(predictions: list[float], targets: list[float]) -> float:
    """Coefficient of determination: 1 - SSE / total sum of squares."""
    mean = statistics.fmean(targets)
    sse = sum((p - t) ** 2 for p, t in zip(predictions, targets, strict=True))
    sst = sum((t - mean) ** 2 for t in targets)
    return 1.0 - sse / sst
