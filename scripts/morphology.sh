#!/bin/sh
# morphology.sh - make morphology (and morphology-quick, QUICK=1): galaxy morphology end to
# end. Simulates bulge + disk galaxies of four classes in g, r, i (deepsky sim morphology),
# trains the CNN of examples/morphology.model, evaluates it on a test set (accuracy per
# class, confusion matrix figure, accuracy per SNR bin) and the classical baseline: logistic
# regression on CAS features. Everything goes to OUT (default out/morphology).
set -e
BIN=${BIN:-build/deepsky}
OUT=${1:-out/morphology}
MODEL=examples/morphology.model
if [ "${QUICK:-0}" = 1 ]; then
    NTRAIN=800 NVAL=200 NTEST=400 EPOCHS=4 BATCH=32
else
    NTRAIN=14000 NVAL=2000 NTEST=4000 EPOCHS=10 BATCH=64
fi
SNR=20:150
NAMES=elliptical,lenticular,spiral,irregular/merger
mkdir -p "$OUT"
start=$(date +%s)
sim() {   # sim NAME COUNT SEED
    "$BIN" sim morphology --multi-band --size 48 --snr "$SNR" --count "$2" --seed "$3" \
        -o "$OUT/$1.npy" --labels "$OUT/$1_y.npy" --truth "$OUT/$1_truth.csv"
}
sim train "$NTRAIN" 1
sim val "$NVAL" 2
sim test "$NTEST" 3
"$BIN" train "$MODEL" --data "$OUT/train.npy" --labels "$OUT/train_y.npy" \
    --val "$OUT/val.npy" --val-labels "$OUT/val_y.npy" --scale asinh:3 \
    --augment flips,rot90 --epochs "$EPOCHS" --batch-size "$BATCH" --seed 1 \
    -o "$OUT/cnn.safetensors"
"$BIN" eval "$MODEL" --weights "$OUT/cnn.best.safetensors" --data "$OUT/test.npy" \
    --labels "$OUT/test_y.npy" --confusion "$OUT/confusion.png" --class-names "$NAMES" \
    | tee "$OUT/cnn_eval.txt"
"$BIN" predict "$MODEL" --weights "$OUT/cnn.best.safetensors" --data "$OUT/test.npy" \
    --classes -o "$OUT/test_pred.csv"
# The classical baseline on CAS features of each band. (The random forest and gradient
# boosting of the classic issue go here when they land: the same two lines with their
# --method.)
"$BIN" classic train --method logistic --features cas --scale standardize \
    --data "$OUT/train.npy" --labels "$OUT/train_y.npy" -o "$OUT/cas_logistic.safetensors"
"$BIN" classic eval "$OUT/cas_logistic.safetensors" --data "$OUT/test.npy" \
    --labels "$OUT/test_y.npy" | tee "$OUT/cas_logistic_eval.txt"
# Accuracy of the CNN per SNR bin: the truth's class (column 1) and snr (column 4) beside
# the predicted class (the last column of the predictions).
paste -d, "$OUT/test_truth.csv" "$OUT/test_pred.csv" | awk -F, '
    NR > 1 { b = $4 < 40 ? "20-40" : $4 < 70 ? "40-70" : $4 < 100 ? "70-100" : "100-150";
             n[b]++; if ($1 == $NF) ok[b]++ }
    END { print "CNN accuracy per r-band SNR bin:";
          split("20-40 40-70 70-100 100-150", o, " ");
          for (i = 1; i <= 4; i++) if (n[o[i]])
              printf "  SNR %-8s %.4f (%d of %d)\n", o[i], ok[o[i]] / n[o[i]], ok[o[i]], n[o[i]] }' \
    | tee "$OUT/cnn_snr.txt"
echo "morphology: done in $(( $(date +%s) - start )) s; CNN $(grep '^accuracy' "$OUT/cnn_eval.txt"), CAS + logistic $(grep '^accuracy' "$OUT/cas_logistic_eval.txt"); figures in $OUT/"
