#!/bin/sh
# deps.sh - installs the Debian packages deepsky builds with, if any is missing.
# Usage: scripts/deps.sh [extra packages...]   (as root, or with sudo available)
set -e
pkgs="gcc make pkg-config libopenblas-openmp-dev libcfitsio-dev libcairo2-dev zlib1g-dev python3-numpy python3-pytest python3-astropy python3-venv $*"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
