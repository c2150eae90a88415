"""Checks the layer contract (``[tool.importlinter]`` in pyproject.toml) with import-linter.

fwsurvey installs folders at the repository root (``collectors/``, ``analyzers/``, ...) under
the ``fwsurvey`` namespace (setuptools ``package-dir``). import-linter's graph builder (grimp)
walks one directory per top-level package and cannot follow that mapping, so this script lays
the installed layout out in a temporary folder (a copy of the ``.py`` files, small) and runs
``lint-imports`` there, with the editable install's import hook out of the way.

Usage: ``python scripts/lint_layers.py [REPO]``; exit 0 when every contract is kept.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Runs lint-imports on the folder first on sys.path, not on the editable install.
_RUNNER = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if "editable" not in (getattr(f, "__module__", "") or "")
                    and "editable" not in getattr(f, "__name__", "")]
sys.path.insert(0, sys.argv[1])
sys.argv = ["lint-imports", sys.argv[2], "--no-cache"]
from importlinter.cli import lint_imports_command
lint_imports_command()
"""


def installed_layout(repo: Path, dest: Path) -> Path:
    """Copy the packages' ``.py`` files under ``dest`` as they are installed; return dest."""
    setuptools = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    for package in setuptools["packages"]:
        # A package's folder: its own mapping, else its parent's folder plus its last name.
        parts = package.split(".")
        for i in range(len(parts), 0, -1):
            prefix = ".".join(parts[:i])
            if prefix in mapping:
                source = repo / mapping[prefix] / Path(*parts[i:])
                break
        else:
            source = repo / Path(*parts)
        target = dest / Path(*parts)
        target.mkdir(parents=True, exist_ok=True)
        for file in source.glob("*.py"):
            shutil.copy2(file, target / file.name)
    return dest


def lint_layers(repo: Path = REPO, layout: Path | None = None) -> subprocess.CompletedProcess:
    """Run lint-imports on ``repo``'s installed layout (or on a ``layout`` already made)."""
    with tempfile.TemporaryDirectory(prefix="fwsurvey-layers-") as tmp:
        root = layout or installed_layout(repo, Path(tmp))
        return subprocess.run([sys.executable, "-c", _RUNNER, str(root),
                               str(repo / "pyproject.toml")],
                              capture_output=True, text=True, cwd=tmp, timeout=300)


def main() -> None:
    repo = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO
    done = lint_layers(repo)
    # lint-imports prints a banner first; its report starts at the contracts heading.
    out = done.stdout
    start = out.find("Contracts")
    sys.stdout.write(out[start:] if start >= 0 else out)
    sys.stderr.write(done.stderr)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
