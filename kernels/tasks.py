"""The paired reference tasks: where they live, their shared specs, the modes they run in.

Each task is a folder ``kernels/<task>/`` with ``spec.toml`` (one spec shared by every
framework: sizes, optimizer, learning rate, batch, steps, seed, per profile) and one
``<framework>_impl.py`` per framework (``pytorch_impl.py``, ``trax_impl.py``,
``jax_impl.py``), written the way that framework's documentation teaches. An
implementation module provides four functions, one per phase, marked with ``# %%`` cells:

* ``load_data(spec)`` → data (``# %% data``)
* ``build_model(spec)`` → model (``# %% model``)
* ``make_trainer(model, data, spec)`` → a step function returning the loss, or a Trax
  ``training.Loop`` (``# %% training``)
* ``evaluate(model, trainer, data, spec)`` → ``{metric: value}`` (``# %% evaluation``)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KERNELS_DIR = Path(__file__).parent
PROFILES = ("quick", "full")

#: Modes per framework: how the same implementation is run.
MODES = {
    "pytorch": ("torch-eager", "torch-compile"),
    "trax": ("trax",),
    "jax": ("jax-jit",),
}


@dataclass(frozen=True)
class Task:
    """One paired task: its folder, spec and the frameworks that implement it."""

    name: str
    path: Path
    spec: dict[str, Any]
    frameworks: tuple[str, ...] = field(default=())

    @property
    def description(self) -> str:
        return self.spec.get("description", "")

    def profile(self, profile: str) -> dict[str, Any]:
        """The spec for one profile: common keys, then the profile's own."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        common = {k: v for k, v in self.spec.items() if not isinstance(v, dict)}
        return {**common, **self.spec.get(profile, {}), "task": self.name,
                "profile": profile}

    def impl_module(self, framework: str) -> str:
        """The importable module of one implementation."""
        return f"fwsurvey.kernels.{self.name}.{framework}_impl"

    def impl_path(self, framework: str) -> Path:
        return self.path / f"{framework}_impl.py"


def discover(root: Path = KERNELS_DIR) -> dict[str, Task]:
    """Every task folder under ``root`` that has a spec, by name."""
    tasks = {}
    for spec_path in sorted(root.glob("*/spec.toml")):
        folder = spec_path.parent
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
        frameworks = tuple(sorted(p.name[: -len("_impl.py")]
                                  for p in folder.glob("*_impl.py")))
        tasks[folder.name] = Task(folder.name, folder, spec, frameworks)
    return tasks
