#!/usr/bin/env bash
# Creates .venv/ at the repository root and installs fwsurvey with its pinned dependencies.
# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "fwsurvey needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

stamp=.venv/.fwsurvey-install-stamp
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # torch first, exactly this release: a range admitting a newer one pulls a multi-GB CUDA build.
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    # ray: the tests start a local Ray cluster (fwsurvey train --executor ray); deploy: the
    # deployment experiment's toolchains (ONNX, ExecuTorch, tf2onnx, LiteRT).
    .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[ml,dev,ray,deploy]'
    echo "$want" > "$stamp"
fi

# The older JAX under Trax's multi-device runs (`fwsurvey train --scaling`), beside .venv/.
bash scripts/setup-jax-legacy.sh

# ONNX Runtime Web (npm) and Chromium for the web deployment path (kernels/deploy/web.py).
# Never fails the setup: what cannot be installed is recorded by the run as unavailable.
bash scripts/setup_web.sh
