#!/usr/bin/env bash
# Creates .venv-jax-legacy/: the pinned older JAX of constraints-jax-legacy.txt, under which
# Trax's multi-device training still works (see README, "Scaling"). Only jax and jaxlib are
# installed there; a .pth file adds .venv/'s site-packages after its own, so Trax, TensorFlow,
# numpy and fwsurvey itself come from .venv/. Idempotent: rebuilt only when either constraints
# file or .venv/'s location changes. Run by scripts/setup.sh after .venv/ exists.
set -euo pipefail
cd "$(dirname "$0")/.."

main_python=.venv/bin/python
legacy=.venv-jax-legacy
main_site="$("$main_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
stamp="$legacy/.fwsurvey-install-stamp"
# .venv/'s pins (constraints.txt) are part of the stamp: numpy & co. come from there.
want="$( (cat constraints-jax-legacy.txt constraints.txt; echo "$main_site") | sha256sum \
    | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi

rm -rf "$legacy"
"$main_python" -m venv --without-pip "$legacy"
# .venv/'s pip installs into the legacy interpreter; --no-deps: the rest comes from .venv/.
"$main_python" -m pip --python "$legacy/bin/python" install --quiet --no-deps \
    -r constraints-jax-legacy.txt
legacy_site="$("$legacy/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# addsitedir (not a bare path line) so .venv/'s own .pth files, fwsurvey's editable install
# among them, are processed too; the legacy site-packages stays first on sys.path.
echo "import site; site.addsitedir('$main_site')" > "$legacy_site/fwsurvey-main-venv.pth"

want_jax="$(sed -n 's/^jax==//p' constraints-jax-legacy.txt)"
"$legacy/bin/python" - "$want_jax" <<'PY'
import sys

import jax
import numpy
import fwsurvey.kernels.harness  # noqa: F401 - fwsurvey resolves through .venv/

if jax.__version__ != sys.argv[1]:
    sys.exit(f".venv-jax-legacy: expected jax {sys.argv[1]}, imported {jax.__version__}"
             f" from {jax.__file__}")
PY
echo "$want" > "$stamp"
