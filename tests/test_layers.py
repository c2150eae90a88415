"""The layer contract (application -> domain -> infrastructure) is checked, and it bites."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent


def _lint_layers():
    spec = importlib.util.spec_from_file_location("lint_layers", REPO / "scripts/lint_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lint = _lint_layers()


def test_the_repository_keeps_its_layers():
    done = lint.lint_layers(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("module, wrong_import, message", [
    # infrastructure reaching up into the application
    ("fwsurvey/store.py", "from fwsurvey.pipeline import run_survey",
     "- fwsurvey.store -> fwsurvey.pipeline"),
    # a domain package reaching up into the application
    ("fwsurvey/collectors/pypi.py", "import fwsurvey.cli",
     "- fwsurvey.collectors.pypi -> fwsurvey.cli"),
    # one independent domain package importing its sibling
    ("fwsurvey/kernels/stage.py", "from fwsurvey.analyzers import settings",
     "- fwsurvey.kernels.stage -> fwsurvey.analyzers.settings"),
])
def test_a_wrong_way_import_breaks_the_contract(tmp_path, module, wrong_import, message):
    layout = lint.installed_layout(REPO, tmp_path / "layout")
    path = layout / module
    assert path.exists(), f"{module} is not in the installed layout"
    path.write_text(path.read_text() + f"\n{wrong_import}  # the wrong way\n")
    done = lint.lint_layers(REPO, layout=layout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 kept, 1 broken" in done.stdout
    assert "is not allowed to import" in done.stdout
    assert message in done.stdout
