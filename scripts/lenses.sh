#!/bin/sh
# lenses.sh - make lenses / make lenses-quick: the strong-lens finder of issue 19 end to end.
# For each survey (space-like: one band; ground-like: u, g, r, i), simulates a training and a
# test set with `deepsky sim lenses` (half lenses; the non-lenses a third each galaxy alone,
# with an unlensed neighbour, with a ring), trains examples/lensfinder.model (4 input
# channels for ground) and scores the test set as the lens-finding challenge did: AUROC,
# TPR0, TPR10, and the ROC curve. Writes into OUT (default out/lenses): the data, weights,
# eval_<survey>.txt, roc_<survey>.png and results.csv (survey,auroc,tpr0,tpr10,train,test,
# epochs,seconds).
#   scripts/lenses.sh [--quick] [OUT]     BIN=path/to/deepsky (default build/deepsky)
set -e
BIN=${BIN:-build/deepsky}
MODEL=${MODEL:-examples/lensfinder.model}
QUICK=0
if [ "$1" = "--quick" ]; then QUICK=1; shift; fi
OUT=${1:-out/lenses}
if [ $QUICK = 1 ]; then
    TRAIN=${TRAIN:-1000}; TEST=${TEST:-400}; EPOCHS=${EPOCHS:-4}
else
    TRAIN=${TRAIN:-12000}; TEST=${TEST:-4000}; EPOCHS=${EPOCHS:-12}
fi
mkdir -p "$OUT"
ROC=1   # empty: a tool built without plotting (NO_PLOT=1) draws no ROC figure
case "$("$BIN" --version 2>/dev/null)" in *+plot*) ;; *) ROC= ;; esac
echo "survey,auroc,tpr0,tpr10,train,test,epochs,seconds" > "$OUT/results.csv.tmp"
for survey in space ground; do
    t0=$(date +%s)
    m=$MODEL
    if [ $survey = ground ]; then
        m=$OUT/lensfinder_ground.model
        sed 's/shape=1x32x32/shape=4x32x32/' "$MODEL" > "$m"
    fi
    "$BIN" sim lenses --survey $survey --count "$TRAIN" --seed 1 -o "$OUT/train_$survey.npy" \
        --truth "$OUT/train_$survey.csv"
    "$BIN" sim lenses --survey $survey --count "$TEST" --seed 2 -o "$OUT/test_$survey.npy" \
        --truth "$OUT/test_$survey.csv"
    "$BIN" train "$m" --data "$OUT/train_$survey.npy" --labels "$OUT/train_$survey.csv" \
        --label-columns is_lens --scale asinh:3 --augment flips,rot90 --epochs "$EPOCHS" \
        --batch-size 64 --seed 1 --curve none -o "$OUT/lensfinder_$survey.safetensors"
    "$BIN" eval "$m" --weights "$OUT/lensfinder_$survey.safetensors" \
        --data "$OUT/test_$survey.npy" --labels "$OUT/test_$survey.csv" --label-columns is_lens \
        --metrics auroc,tpr0,tpr10 ${ROC:+--roc "$OUT/roc_$survey.png"} > "$OUT/eval_$survey.txt"
    cat "$OUT/eval_$survey.txt"
    awk -v s=$survey -v tr="$TRAIN" -v te="$TEST" -v ep="$EPOCHS" -v sec=$(( $(date +%s) - t0 )) \
        '$1 == "auroc" { a = $2 } $1 == "tpr0" { t0 = $2 } $1 == "tpr10" { t10 = $2 }
         END { if (a == "") exit 1; printf "%s,%s,%s,%s,%s,%s,%s,%s\n", s, a, t0, t10, tr, te, ep, sec }' \
        "$OUT/eval_$survey.txt" >> "$OUT/results.csv.tmp"
done
mv "$OUT/results.csv.tmp" "$OUT/results.csv"
echo "lenses: $OUT/results.csv"
column -t -s, "$OUT/results.csv" 2>/dev/null || cat "$OUT/results.csv"
