"""The task's data: vectors and how many times each must go through a fixed map.

Shared by every implementation (framework-free), so the pair trains on the same examples.
Each example is ``x`` (``dim`` numbers) and a step count ``k`` between 1 and ``max_depth``
(geometric: most examples need few steps, a few need many); its target is ``A^k x``, ``A``
a fixed random rotation drawn from the seed. A model must apply its own learned step ``k``
times: its depth depends on the input. Not a scored file.
"""

from __future__ import annotations

import numpy as np


def dataset(spec: dict) -> dict:
    """``{"train": (x, k, y), "test": (x, k, y)}`` as float32 / int32 NumPy arrays."""
    rng = np.random.default_rng(spec["seed"])
    dim, n = spec["dim"], spec["n_train"] + spec["n_test"]
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    x = rng.normal(size=(n, dim))
    k = np.minimum(rng.geometric(spec["halt_p"], size=n), spec["max_depth"])
    powers = [np.linalg.matrix_power(rotation, i) for i in range(spec["max_depth"] + 1)]
    y = np.stack([powers[ki] @ xi for xi, ki in zip(x, k, strict=True)])
    x, k, y = x.astype(np.float32), k.astype(np.int32), y.astype(np.float32)
    cut = spec["n_train"]
    return {"train": (x[:cut], k[:cut], y[:cut]), "test": (x[cut:], k[cut:], y[cut:])}


def r2(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination over every output: 1 - SSE / total sum of squares."""
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    sse = float(((predictions - targets) ** 2).sum())
    sst = float(((targets - targets.mean(axis=0)) ** 2).sum())
    return 1.0 - sse / sst
