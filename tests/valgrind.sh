#!/bin/sh
# valgrind.sh - trains the example CNN (examples/ellipticity.model) on simulated galaxies
# under valgrind memcheck and fails on any error or any byte definitely lost.
#   tests/valgrind.sh            (3.4 minutes on a 2-core machine, 128 galaxies, 2 epochs)
# valgrind 3.19 (Debian 12) does not know AVX-512: the tool is built for x86-64-v3 (AVX2)
# into build-vg/, and OpenBLAS is told to use its Haswell kernels.
set -e
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || scripts/deps.sh valgrind
make -s BUILD=build-vg CFLAGS_REL="-std=c11 -Wall -Wextra -fopenmp -fno-math-errno -Iinclude \
    -D_GNU_SOURCE -O2 -march=x86-64-v3 -g $(pkg-config --cflags cairo)" build-vg/deepsky
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
build-vg/deepsky sim galaxies --count 128 --seed 3 -o "$d/x.fits" --truth "$d/t.fits" >/dev/null
start=$(date +%s)
OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=2 valgrind --error-exitcode=3 --leak-check=full \
    --errors-for-leak-kinds=definite --suppressions=tests/valgrind.supp \
    build-vg/deepsky train examples/ellipticity.model --data "$d/x.fits" \
    --labels "$d/t.fits" --label-columns e1,e2 --epochs 2 --batch-size 32 --seed 1 -q \
    -o "$d/w.safetensors" > "$d/log" 2>&1 || { tail -40 "$d/log"; echo "valgrind: FAILED"; exit 1; }
grep -E 'ERROR SUMMARY|definitely lost' "$d/log" | sed 's/^==[0-9]*== //'
echo "valgrind: 0 errors, 0 bytes definitely lost ($(($(date +%s) - start)) s)"
