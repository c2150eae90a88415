"""Versions of everything that can change a survey's numbers, recorded with every run."""

from __future__ import annotations

import platform
import sqlite3
from importlib.metadata import PackageNotFoundError, version

#: Distributions whose versions are recorded in ``runs.versions``.
TRACKED_DISTRIBUTIONS = (
    "fwsurvey", "pypi-simple", "requests", "sqlite-utils", "datasette", "PyGithub",
    "libcst", "radon", "torch", "jax", "jaxlib", "trax", "tensorflow", "numpy",
    "huggingface_hub",
)


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def run_versions() -> dict[str, str | None]:
    """Python, SQLite and tracked distributions, by name."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    versions.update({name: installed_version(name) for name in TRACKED_DISTRIBUTIONS})
    return versions
