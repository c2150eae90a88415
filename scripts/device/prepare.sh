#!/usr/bin/env bash
# Prepares the folder a device check carries to the GPU machine (git-ignored: .device/):
# the wheels that machine lacks, at the versions constraints.txt pins, for its Python 3.12 on
# x86-64 (it has PyTorch, JAX with CUDA, numpy, scipy, absl-py, matplotlib; no network):
#   Trax and its pure-Python needs (gin-config, funcsigs); pydantic (fwsurvey's task specs)
#   with pydantic-core, annotated-types, typing-inspection, typing_extensions; psutil (Trax's
#   Loop imports it: carried so the check does not depend on the image having it);
# and the TensorFlow stand-in from ../shared/device/tf_shim.py (device checks only: the
# product never imports it). Run it here, then call the device tool's `run` with carry
# [".device"] and the command `bash scripts/device/check.sh` (README: GPU check).
set -euo pipefail
cd "$(dirname "$0")/../.."
shim="${TF_SHIM:-../shared/device/tf_shim.py}"
[ -f "$shim" ] || { echo "no tf_shim.py at $shim (set TF_SHIM)" >&2; exit 2; }
pin() { grep -i "^$1==" constraints.txt || { echo "no pin for $1 in constraints.txt" >&2; exit 2; }; }
rm -rf .device && mkdir -p .device/wheels
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: -d .device/wheels \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any \
    "$(pin trax)" "$(pin gin-config)" "$(pin funcsigs)" "$(pin pydantic)" \
    "$(pin pydantic_core)" "$(pin annotated-types)" "$(pin typing-inspection)" \
    "$(pin typing_extensions)" "$(pin psutil)"
cp "$shim" .device/tf_shim.py
# Imported at interpreter start where PYTHONPATH holds .device/ (Trax's processes only).
printf 'import tf_shim  # noqa: F401 - device checks only\n' > .device/sitecustomize.py
ls .device/wheels
du -sh .device
