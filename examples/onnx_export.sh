#!/bin/sh
# onnx_export.sh - the galaxy demo's CNN (examples/ellipticity.model) exported to ONNX and run
# in onnxruntime: its ellipticities for simulated galaxies, against deepsky's own.
#   examples/onnx_export.sh [WEIGHTS.safetensors] [OUTDIR]
# WEIGHTS: the demo's trained weights (make demo writes out/ellipticity/cnn.safetensors); by
# default those if present, else a short training run here (about a minute). OUTDIR: where the
# files go (default out/onnx). Needs a Python with onnxruntime: $PYTHON, else bench/.venv or
# .venv-onnx (scripts/deps.sh makes it).
set -e
DS=${DEEPSKY:-build/deepsky}
W=${1:-out/ellipticity/cnn.safetensors}
OUT=${2:-out/onnx}
PY=${PYTHON:-}
for p in bench/.venv/bin/python .venv-onnx/bin/python; do
    [ -z "$PY" ] && [ -x "$p" ] && PY=$p
done
[ -n "$PY" ] || { echo "onnx_export.sh: no Python with onnxruntime (run scripts/deps.sh)" >&2; exit 1; }
mkdir -p "$OUT"
# 64 test galaxies (stamps [64, 32, 32] as .npy and their truth table), seeded
$DS sim galaxies --count 64 --seed 7 -o "$OUT/test.npy" --truth "$OUT/test_truth.csv" >/dev/null
if [ ! -f "$W" ]; then
    echo "no weights at $W: training the CNN briefly on 2,000 simulated galaxies"
    W=$OUT/cnn.safetensors
    $DS sim galaxies --count 2000 --seed 1 -o "$OUT/train.npy" --truth "$OUT/train_truth.csv" >/dev/null
    $DS train examples/ellipticity.model --data "$OUT/train.npy" --labels "$OUT/train_truth.csv" \
        --label-columns e1,e2 --scale per_image --epochs 2 --batch-size 64 --seed 1 -o "$W"
fi
# the net, its weights and their preprocessing as one ONNX file
$DS export examples/ellipticity.model --weights "$W" -o "$OUT/ellipticity.onnx"
# deepsky's predictions, then onnxruntime's for the same raw stamps
$DS predict examples/ellipticity.model --weights "$W" --data "$OUT/test.npy" -o "$OUT/e_deepsky.npy"
"$PY" - "$OUT" <<'PYEOF'
import sys
import numpy as np
import onnxruntime as ort
out = sys.argv[1]
sess = ort.InferenceSession(f"{out}/ellipticity.onnx", providers=["CPUExecutionProvider"])
meta = sess.get_modelmeta().custom_metadata_map
x = np.load(f"{out}/test.npy").astype(np.float32)[:, None]      # [N, 1, 32, 32], raw counts
e = sess.run(None, {sess.get_inputs()[0].name: x})[0]
ref = np.load(f"{out}/e_deepsky.npy")
truth = np.genfromtxt(f"{out}/test_truth.csv", delimiter=",", names=True)
print("preprocessing in the graph:", meta.get("deepsky.input.image.scale"))
print("galaxy   e1 true  e1 onnxruntime  e1 deepsky")
for i in range(5):
    print(f"{i:6d} {truth['e1'][i]:9.4f} {e[i, 0]:15.4f} {ref[i, 0]:11.4f}")
d = np.max(np.abs(e - ref)) / np.max(np.abs(ref))
print(f"max |onnxruntime - deepsky| / max |deepsky| over {len(e)} galaxies: {d:.2e}")
sys.exit(0 if d < 1e-4 else 1)
PYEOF
