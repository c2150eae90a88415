"""The analyzers' shared fixture: a survey folder with one paired task."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analyzers.snippets import JAX, TORCH, TRAX

CONFIG = """
[survey]
compare = ["pytorch", "trax"]
database = "out/test.db"
report_dir = "out/report"
datasette = "{datasette}"

[frameworks.pytorch]
name = "PyTorch"
imports = ["torch"]

[frameworks.trax]
name = "Trax"
imports = ["trax"]

[frameworks.jax]
name = "JAX"
imports = ["jax"]

[analyzers.ergonomics]
kernels = "kernels"
workers = {workers}

[analyzers.ergonomics.ceremony]
pytorch = ["zero_grad", "backward", "step", "to", "train", "eval", "no_grad", "item"]
trax = ["TrainTask", "EvalTask", "Loop", "run"]

[analyzers.ergonomics.weights]
concepts = 1.0
ceremony_calls = 1.0
"""


@pytest.fixture
def project(tmp_path: Path):
    """A survey folder with one paired task (plus JAX) and files that are not pairs."""

    def make(workers: int = 1) -> Path:
        config = tmp_path / "fwsurvey.toml"
        config.write_text(CONFIG.format(workers=workers,
                                        datasette=Path(__file__).parents[2] / "datasette.yml"))
        task = tmp_path / "kernels" / "toy"
        task.mkdir(parents=True, exist_ok=True)
        (task / "pytorch_impl.py").write_text(TORCH)
        (task / "trax_impl.py").write_text(TRAX)
        (task / "jax_impl.py").write_text(JAX)
        (task / "harness.py").write_text("raise SystemExit('never imported')\n")
        (tmp_path / "kernels" / "runner.py").write_text("x = 1\n")
        return config

    return make
