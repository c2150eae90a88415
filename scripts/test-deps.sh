#!/usr/bin/env bash
# Installs what the test suite needs beyond .venv/: Debian's `chromium` and `chromium-driver`,
# which tests/test_browser.py drives. Run by `make test` (and so by .ci/run). Idempotent.
# FWSURVEY_SKIP_BROWSER=1 skips the browser test, and this step with it.
set -euo pipefail

if [ "${FWSURVEY_SKIP_BROWSER:-}" = "1" ]; then
    exit 0
fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

cannot() {
    cat >&2 <<EOF
make test: the browser test (tests/test_browser.py) needs Chromium and its driver
(missing: ${missing[*]}), and $1.
  - On Debian or Ubuntu, install them once as root:
        sudo apt-get install chromium chromium-driver
  - Elsewhere, install Chromium and a chromedriver of the same major version and put
    both on PATH as \`chromium\` and \`chromedriver\`.
  - Or run the suite without the browser test:
        FWSURVEY_SKIP_BROWSER=1 make test
EOF
    exit 2
}

command -v apt-get >/dev/null 2>&1 || cannot "this machine has no apt-get"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo)
    else
        cannot "installing them needs root (sudo without a password is not available)"
    fi
fi
echo "make test: installing ${missing[*]} (Debian packages) for the browser test" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
