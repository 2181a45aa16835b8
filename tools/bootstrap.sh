#!/usr/bin/env bash
# Installs everything regiond needs into .venv. Safe to run twice: each step is
# skipped when what it makes is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

need_lib() { ! ldconfig -p | grep -q "$1"; }
apt_pkgs=()
need_lib 'libusb-1.0.so.0' && apt_pkgs+=(libusb-1.0-0)   # open3d links it
need_lib 'libGL.so.1' && apt_pkgs+=(libgl1)               # opencv-python links it
need_lib 'libgomp.so.1' && apt_pkgs+=(libgomp1)           # open3d, faiss
need_lib 'libglib-2.0.so.0' && apt_pkgs+=(libglib2.0-0)   # opencv-python
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: installing system libraries: ${apt_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_pkgs[@]}"
fi

# Debian's chromium: the tests open the pages the clients write in it (headless). Optional:
# where apt cannot install it, those tests skip and say why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: installing chromium (headless browser tests of the report pages)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
    || echo "bootstrap: chromium could not be installed; the browser tests will be skipped"
fi

[ -x "$PY" ] || python3 -m venv "$VENV"
# This machine's pip config lists local indexes that may be absent; drop its noise, keep errors.
pip() {
  "$PY" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
  return "${PIPESTATUS[0]}"
}

# torch first, pinned: segment-anything imports torchvision, and an unpinned
# resolve would pull a different build.
"$PY" -c 'import torch, torchvision' 2>/dev/null || pip install torch==2.14.1 torchvision==0.29.1
# fast-slic has no wheels: it builds from source against the venv's numpy and cython.
if ! "$PY" -c 'import fast_slic' 2>/dev/null; then
  pip install cython numpy setuptools wheel
  pip install --no-build-isolation fast-slic==0.4.0
fi
pip install -e '.[dev]' --config-settings editable_mode=strict
rm -f "$VENV/.tree"; bash tools/relink.sh   # records the installed tree (tools/relink.sh)
echo "bootstrap: ready ($VENV)"
