#!/usr/bin/env bash
# Prepares the folder a device check carries to the GPU machine (git-ignored: .device/):
# Trax's pure-Python wheels (that machine has PyTorch and JAX but no Trax and no network),
# and the TensorFlow stand-in from ../shared/device/tf_shim.py (device checks only: the product
# never imports it). Run it here, then call the device tool's `run` with carry [".device"] and
# the command `bash scripts/device/check.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
shim="${TF_SHIM:-../shared/device/tf_shim.py}"
[ -f "$shim" ] || { echo "no tf_shim.py at $shim (set TF_SHIM)" >&2; exit 2; }
rm -rf .device && mkdir -p .device/wheels
pin() { grep -i "^$1==" constraints.txt; }
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: -d .device/wheels \
    "$(pin trax)" "$(pin gin-config)" "$(pin funcsigs)"
cp "$shim" .device/tf_shim.py
# Imported at interpreter start where PYTHONPATH holds .device/ (Trax jobs only).
printf 'import tf_shim  # noqa: F401 - device checks only\n' > .device/sitecustomize.py
du -sh .device
