#!/usr/bin/env bash
# Installs what the web deployment path (kernels/deploy/web.py) needs: ONNX Runtime Web from
# the npm registry, pinned by kernels/deploy/web/package.json + package-lock.json, into the
# git-ignored kernels/deploy/web/node_modules/; Node.js and npm (Debian packages) when absent;
# Chromium and its driver through scripts/test-deps.sh (the same install the browser test uses).
#
# Idempotent: npm runs only when the lock changed since the last install (a stamp in
# node_modules/). Offline-tolerant on purpose: a failed install is not a failed setup. It
# exits 0 and writes why to node_modules/.setup-failed, and the web path then records
# "unavailable: <why>" as its evidence instead of a result.
set -uo pipefail
cd "$(dirname "$0")/.."

WEB=kernels/deploy/web
MODULES="$WEB/node_modules"
STAMP="$MODULES/.fwsurvey-stamp"
FAILED="$MODULES/.setup-failed"

unavailable() {
    mkdir -p "$MODULES"
    echo "$1" > "$FAILED"
    echo "setup_web: web deployment unavailable: $1 (the web path records it as evidence)" >&2
    exit 0
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        return 1
    fi
}

# Chromium + chromium-driver (apt as root; says what to do otherwise). Not fatal here.
if ! bash scripts/test-deps.sh; then
    echo "setup_web: Chromium or its driver could not be installed; the web path will record" \
         "that as unavailable" >&2
fi

if ! command -v npm >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || unavailable "npm is not installed and there is no apt-get"
    echo "setup_web: installing nodejs and npm (Debian packages)" >&2
    { as_root apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } \
        || unavailable "npm is not installed and apt-get could not install it (root and a reachable package mirror are needed)"
fi

want="$(cat "$WEB/package.json" "$WEB/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] \
        && [ -f "$MODULES/onnxruntime-web/dist/ort.wasm.min.js" ]; then
    exit 0
fi

# `npm ci`: exactly the lock, nothing resolved anew. The folder's .npmrc keeps install scripts
# off and the lock free of "resolved" URLs.
rm -f "$FAILED" "$STAMP"
if ! log="$(cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts 2>&1)"; then
    printf '%s\n' "$log" | tail -n 5 >&2
    unavailable "npm ci failed in $WEB: $(printf '%s\n' "$log" | grep -m1 -i 'err' || echo 'see above')"
fi
[ -f "$MODULES/onnxruntime-web/dist/ort.wasm.min.js" ] \
    || unavailable "npm ci ran but onnxruntime-web/dist/ort.wasm.min.js is missing"
echo "$want" > "$STAMP"
echo "setup_web: onnxruntime-web $(cd "$WEB" && node -p 'require("./node_modules/onnxruntime-web/package.json").version' 2>/dev/null) installed in $MODULES" >&2
