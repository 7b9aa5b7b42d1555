#!/bin/sh
# explain_demo.sh - make explain-demo: what the ellipticity CNN looks at. Saliency and
# integrated gradients (of e1 and of e2) of simulated galaxies at SNR 10, 20, 40 and 80, and
# the first-layer filters, as .npy maps and PNG figures in OUT (default out/explain).
# Uses the demo's weights (out/ellipticity/cnn.safetensors, or WEIGHTS=...) when present,
# else trains a quick CNN first (COUNT galaxies, EPOCHS epochs: about a minute on 2 cores).
# Then, when Debian's dataset-fashion-mnist is installed (else it says it skipped), the
# Fashion-MNIST CNN (out/fashion/cnn.safetensors from make fashion, or FASHION_WEIGHTS=...,
# else examples/fashion_cnn.model trained FASHION_EPOCHS epochs first: 6 minutes for 3 on
# one busy core): occlusion and Grad-CAM of the first test item of each class, and a class
# visualization of each class, classified by the net.
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
F=${FASHION:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$F/t10k-images-idx3-ubyte.gz" ]; then
    echo "explain-demo: Fashion-MNIST part skipped: no $F/t10k-images-idx3-ubyte.gz" \
        "(scripts/deps.sh dataset-fashion-mnist installs it)"
else
    FW=${FASHION_WEIGHTS:-out/fashion/cnn.safetensors}
    if [ ! -f "$FW" ]; then
        FW=$OUT/fashion_cnn.safetensors
        echo "explain-demo: no out/fashion/cnn.safetensors: training examples/fashion_cnn.model" \
            "${FASHION_EPOCHS:-3} epochs into $FW"
        "$BIN" train examples/fashion_cnn.model --scale divide:255 \
            --data "$F/train-images-idx3-ubyte.gz" --labels "$F/train-labels-idx1-ubyte.gz" \
            --epochs "${FASHION_EPOCHS:-3}" --batch-size 64 --seed 1 --log none -o "$FW"
    fi
    # the first test item of each class, 0..9
    IDX=$(gzip -dc "$F/t10k-labels-idx1-ubyte.gz" | od -An -tu1 -j8 -v | tr -s ' ' '\n' |
        awk 'NF { if (!($1 in s)) s[$1] = n; n++ }
             END { for (c = 0; c < 10; c++) printf "%s%d", c ? "," : "", s[c] }')
    echo "explain-demo: Fashion-MNIST test items $IDX (classes 0..9)"
    X=$F/t10k-images-idx3-ubyte.gz
    "$BIN" explain examples/fashion_cnn.model --weights "$FW" --data "$X" --index "$IDX" \
        --method occlusion --patch 6 --stride 2 -o "$OUT/fashion_occlusion.npy" \
        --figure "$OUT/fashion_occlusion.png"
    "$BIN" explain examples/fashion_cnn.model --weights "$FW" --data "$X" --index "$IDX" \
        --method grad-cam -o "$OUT/fashion_gradcam.npy" --figure "$OUT/fashion_gradcam.png"
    "$BIN" explain examples/fashion_cnn.model --weights "$FW" --method class-visualization \
        --target 0,1,2,3,4,5,6,7,8,9 --steps 200 --lr 0.02 --l2 0.05 --tv 0.2 --jitter 2 \
        --seed 1 -o "$OUT/fashion_classes.npy" --figure "$OUT/fashion_classes.png"
fi
echo "explain-demo: figures in $OUT"
