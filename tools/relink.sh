#!/usr/bin/env bash
# The editable install is a link tree (setuptools' strict mode): build/__editable__*/regiond
# mirrors the installed package, one link a file, so import-linter and every tool see the one
# regiond namespace. A file added or removed in the package folders needs a new tree; this
# makes it when the list of files changed, in a few seconds, and otherwise does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
list=$(find daemon core scenes clients protos/regions -type f -not -path '*/__pycache__/*' -not -name '*.pyc' | sort)
if [ "$list" != "$(cat "$VENV/.tree" 2>/dev/null)" ]; then
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-deps -e . --config-settings editable_mode=strict \
    2>&1 | { grep -v '^WARNING: Location' || true; }
  echo "$list" > "$VENV/.tree"
fi
