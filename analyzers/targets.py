"""Which files the ergonomics analyzer measures: the paired implementations, or any code given.

The paired implementations are ``kernels/<task>/<framework>_impl.py``; a user's files,
folders and notebooks are walked (hidden folders, virtual environments and caches skipped).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fwsurvey.analyzers.code_input import is_analyzable
from fwsurvey.config import SurveyConfig

log = logging.getLogger(__name__)

IMPL_SUFFIX = "_impl.py"
#: Folders never walked into when a user points at a tree.
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", ".git", ".venv", "venv"}


@dataclass(frozen=True)
class Target:
    """One file to measure: where it is, how it is shown, and what it belongs to."""

    path: Path
    display: str
    origin: str  # kernels | user
    task: str | None = None
    framework: str | None = None


def kernel_targets(config: SurveyConfig, kernels: Path) -> list[Target]:
    """Every ``kernels/<task>/<framework>_impl.py`` whose framework is configured."""
    targets = []
    for path in sorted(kernels.glob(f"*/*{IMPL_SUFFIX}")):
        framework = path.name[: -len(IMPL_SUFFIX)]
        if framework in config.frameworks:
            targets.append(Target(path, _display(path, config.path.parent), "kernels",
                                  task=path.parent.name, framework=framework))
        else:
            log.warning("%s: %r is not a configured framework; not analyzed", path, framework)
    return targets


def user_targets(paths: list[Path]) -> list[Target]:
    """Python files and notebooks under ``paths`` (files taken as given, folders walked)."""
    targets: list[Target] = []
    for root in paths:
        if not root.exists():
            raise ValueError(f"no such file or folder: {root}")
        if root.is_file():
            targets.append(Target(root, _display(root, Path.cwd()), "user"))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                # A broken link is kept, to be reported as unreadable rather than lost;
                # anything else that is not a plain file (a pipe would block) is not.
                if is_analyzable(path) and (path.is_file() or _broken_link(path)):
                    targets.append(Target(path, _display(path, Path.cwd()), "user"))
    return targets


def _broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _display(path: Path, base: Path) -> str:
    path = path.absolute()
    try:
        return path.relative_to(base.absolute()).as_posix()
    except ValueError:
        return path.as_posix()
