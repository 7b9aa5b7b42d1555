#!/bin/sh
# explain_demo.sh - make explain-demo: what the ellipticity CNN looks at. Saliency and
# integrated gradients (of e1 and of e2) of simulated galaxies at SNR 10, 20, 40 and 80, and
# the first-layer filters, as .npy maps and PNG figures in OUT (default out/explain).
# Uses the demo's weights (out/ellipticity/cnn.safetensors, or WEIGHTS=...) when present,
# else trains a quick CNN first (COUNT galaxies, EPOCHS epochs: about a minute on 2 cores).
set -e
BIN=${BIN:-build/deepsky}
OUT=${1:-out/explain}
MODEL=examples/ellipticity.model
W=${WEIGHTS:-out/ellipticity/cnn.safetensors}
COUNT=${COUNT:-2000}
EPOCHS=${EPOCHS:-3}
mkdir -p "$OUT"
if [ ! -f "$W" ]; then
    echo "explain-demo: no $W: training a quick CNN on $COUNT galaxies, $EPOCHS epochs"
    "$BIN" sim galaxies --count "$COUNT" --size 32 --seed 1 -o "$OUT/train.fits" \
        --truth "$OUT/train_truth.fits"
    "$BIN" train "$MODEL" --data "$OUT/train.fits" --labels "$OUT/train_truth.fits" \
        --label-columns e1,e2 --epochs "$EPOCHS" --batch-size 64 --seed 1 \
        --log none -o "$OUT/cnn.safetensors"
    W=$OUT/cnn.safetensors
fi
for snr in 10 20 40 80; do
    "$BIN" sim galaxies --count 4 --size 32 --seed "$snr" --snr "$snr:$snr" \
        -o "$OUT/galaxies_snr$snr.fits" --truth "$OUT/truth_snr$snr.fits"
    for m in saliency integrated-gradients; do
        for t in 0 1; do
            "$BIN" explain "$MODEL" --weights "$W" --data "$OUT/galaxies_snr$snr.fits" \
                --method "$m" --target "$t" -o "$OUT/${m}_e$((t + 1))_snr$snr.npy" \
                --figure "$OUT/${m}_e$((t + 1))_snr$snr.png"
        done
    done
done
"$BIN" explain "$MODEL" --weights "$W" --method filters -o "$OUT/filters.npy" \
    --figure "$OUT/filters.png"
echo "explain-demo: figures in $OUT"
