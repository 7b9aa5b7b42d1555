#!/bin/sh
# deps.sh - installs the Debian packages deepsky builds with, if any is missing.
# Usage: scripts/deps.sh [--playground] [extra packages...]   (as root, or with sudo available)
set -e
# --playground: the browser playground's group too (make playground, make test-playground):
# emscripten (the WebAssembly build), chromium (its headless test), nodejs and npm (the
# test's puppeteer-core, pinned in playground/package-lock.json). Not part of the core build.
playground=""
if [ "$1" = "--playground" ]; then
    shift
    playground="emscripten chromium"
    command -v node >/dev/null 2>&1 || playground="$playground nodejs"
    command -v npm >/dev/null 2>&1 || playground="$playground npm"
fi
# libopenmpi-dev, openmpi-bin: MPI (make test builds an MPI tool when mpicc exists).
# libprotobuf-c-dev, protobuf-c-compiler: ONNX export and import (optional: the build leaves
# them out when missing); python3-venv, python3-numpy, python3-opencv: the ONNX checks;
# python3-pytest, python3-astropy: the Python package's tests.
pkgs="gcc make pkg-config libopenblas-openmp-dev libcfitsio-dev libcairo2-dev zlib1g-dev \
libopenmpi-dev openmpi-bin libprotobuf-c-dev protobuf-c-compiler python3-venv python3-numpy \
python3-opencv python3-pytest python3-astropy $playground $*"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The ONNX checks of make test (tests/onnx_check.py) run onnx's checker and onnxruntime from
# PyPI, in the venv .venv-onnx made here once (pinned versions). Not when bench/.venv (the
# peers' venv) has them already, nor with DEEPSKY_NO_PIP=1; a failed attempt (no network) is
# recorded in .venv-onnx.failed and not retried: the tests then skip, saying why.
ONNX_PINS="numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0"
onnx_venv() {
    [ -n "$DEEPSKY_NO_PIP" ] && return 0
    [ -e .venv-onnx.failed ] && return 0
    for py in bench/.venv/bin/python .venv-onnx/bin/python; do
        [ -x "$py" ] && "$py" -c "import onnx, onnxruntime" 2>/dev/null && return 0
    done
    command -v python3 >/dev/null 2>&1 || return 0
    echo "deps: making .venv-onnx with $ONNX_PINS (pip)"
    if /usr/bin/python3 -m venv .venv-onnx &&
       timeout 900 .venv-onnx/bin/pip install -q $ONNX_PINS; then
        return 0
    fi
    echo "deps: could not install $ONNX_PINS into .venv-onnx; the ONNX runtime checks will skip" >&2
    rm -rf .venv-onnx
    date > .venv-onnx.failed
}
onnx_venv || true
