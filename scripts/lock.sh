#!/usr/bin/env bash
# Regenerates constraints.txt from what .venv/ has installed (run scripts/setup.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
{
    echo "# Exact versions of everything fwsurvey installs (pip constraints file)."
    echo "# A survey's results depend on them: regenerate with scripts/lock.sh after changing pyproject.toml."
    # The local-version suffix (+cpu) names a build, not a release: keep the release pin.
    .venv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$//'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
