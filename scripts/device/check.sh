#!/usr/bin/env bash
# The kernels' GPU check (issue #13, item 7), run ON the device machine from the repository
# root, with .device/ carried (scripts/device/prepare.sh fills it here):
#   bash scripts/device/check.sh [SECONDS]      # default 450: the whole check, setup included
# Everything it prints is streamed into $OUT/console.log as it goes (a kill keeps it); check.py
# writes check.log, results.json, records.json and the Trax probe's files beside it.
# Extra arguments for check.py: CHECK_ARGS="--probe-steps 2 ..."; DEVICE=cpu runs it on a CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
budget="${1:-450}"
out="${OUT:-/tmp/fwsurvey-device}"
mkdir -p "$out"
start=$SECONDS
exec > >(tee -a "$out/console.log") 2>&1
echo "check.sh: budget ${budget} s, output in $out"
if [ -d .device/wheels ]; then
    python3 -m pip install --quiet --no-deps --no-index --no-compile --target .device/site \
        .device/wheels/*.whl || echo "check.sh: installing .device/wheels failed"
else
    echo "check.sh: no .device/wheels (run scripts/device/prepare.sh and carry .device):" \
         "Trax and pydantic may be missing; the preflight says"
fi
# fwsurvey.kernels lives in kernels/ (setuptools package-dir): where fwsurvey is not installed,
# a link in this (throwaway) copy of the tree makes it importable.
if ! python3 -c 'import fwsurvey.kernels' 2>/dev/null && [ ! -e fwsurvey/kernels ]; then
    ln -s ../kernels fwsurvey/kernels
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    || echo "check.sh: no nvidia-smi"
left=$((budget - (SECONDS - start) - 5))
PYTHONPATH="$PWD/.device/site${PYTHONPATH:+:$PYTHONPATH}" timeout -k 5 "$((left + 5))" \
    python3 -u scripts/device/check.py --out "$out" --budget "$left" \
    --device "${DEVICE:-cuda}" ${CHECK_ARGS:-}
rc=$?
echo "check.sh: check.py exited $rc after $((SECONDS - start)) s"
sleep 1  # let tee write the last lines before the folder is collected
exit "$rc"
