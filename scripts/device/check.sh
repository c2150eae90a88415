#!/usr/bin/env bash
# The kernels' GPU check (issue #3), run ON the device machine from the repository root:
#   bash scripts/device/check.sh [SECONDS]
# It makes fwsurvey importable without installing it (no network there), unpacks Trax's
# wheels from .device/ (scripts/device/prepare.sh), then runs scripts/device/check.py within
# SECONDS (default 480), writing results.json and the Trax probe's log under $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
budget="${1:-480}"
out="${OUT:-/tmp/fwsurvey-device}"
mkdir -p "$out"
[ -d .device/wheels ] || { echo "no .device/wheels: run scripts/device/prepare.sh and carry .device" >&2; exit 2; }
# fwsurvey.kernels lives in kernels/ (setuptools package-dir): a link makes the tree importable.
[ -e fwsurvey/kernels ] || ln -s ../kernels fwsurvey/kernels
python3 -m pip install --quiet --no-deps --no-index --target .device/site .device/wheels/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch, jax; print("torch", torch.__version__, "jax", jax.__version__, jax.devices())' \
    | tee "$out/versions.txt"
PYTHONPATH="$PWD" timeout "$budget" python3 scripts/device/check.py --out "$out" \
    --budget "$((budget - 15))" 2>&1 | tail -n 200
