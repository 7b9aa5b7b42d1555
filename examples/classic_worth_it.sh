#!/bin/sh
# classic_worth_it.sh - "Is deep learning worth it here?" (README): classic baselines on the
# ellipticity demo's galaxies (moments features), tables of test RMSE per SNR bin and fit
# time, and a learning curve of gradient boosting. Usage: examples/classic_worth_it.sh [DIR]
# (default out/worth_it; about 5 minutes on 2 cores). The CNN's figures come from `make demo`.
set -e
B=${DEEPSKY:-build/deepsky}
D=${1:-out/worth_it}
mkdir -p "$D"
# the demo's galaxies: 32x32, Sersic n 0.5-6, hlr 1.5-5 px, |e| <= 0.6, Gaussian PSF FWHM 2,
# 50,000 for training (SNR 8-100), 2,500 per test SNR bin
[ -f "$D/train.fits" ] || $B sim galaxies --count 50000 --snr 8:100 --seed 11 \
    -o "$D/train.fits" --truth "$D/train_t.fits" > /dev/null
for s in 10 20 40 80; do
    [ -f "$D/test$s.fits" ] || $B sim galaxies --count 2500 --snr $s:$s --seed 2$s \
        -o "$D/test$s.fits" --truth "$D/test${s}_t.fits" > /dev/null
done
run() {   # NAME FEATURES OPTIONS...
    name=$1; feat=$2; shift 2
    fit=$($B classic train "$@" --features "$feat" --data "$D/train.fits" \
        --labels "$D/train_t.fits" --label-columns e1,e2 -o "$D/m.safetensors" |
        sed -n 's/.*fitted in \([0-9.e+-]*\) s.*/\1/p')
    row="| $name | $feat | $fit |"
    sum=0
    for s in 10 20 40 80; do
        r=$($B classic eval "$D/m.safetensors" --data "$D/test$s.fits" \
            --labels "$D/test${s}_t.fits" --label-columns e1,e2 | awk '$1 == "all" {print $2}')
        row="$row $(printf '%.4f' "$r") |"
        sum=$(echo "$sum + $r * $r" | bc -l)
    done
    echo "$row $(printf '%.4f' "$(echo "sqrt($sum / 4)" | bc -l)") |"
}
echo "| method | features | fit (s) | RMSE SNR 10 | 20 | 40 | 80 | all |"
echo "|---|---|---|---|---|---|---|---|"
run "ridge" moments --method linear --task regress --scale standardize
run "k-NN, k 20" moments --method knn --k 20 --task regress --scale standardize
run "random forest, 100 trees, leaf 5" moments --method random-forest --min-samples-leaf 5 --task regress
run "gradient boosting, 100 rounds, depth 3" moments --method gradient-boosting --task regress
run "gradient boosting, 300 rounds, depth 6" moments --method gradient-boosting --n-rounds 300 --max-depth 6 --task regress
$B curve --method gradient-boosting --task regress --features moments --data "$D/train.fits" \
    --labels "$D/train_t.fits" --label-columns e1,e2 --folds 3 --fractions 1/128..1 \
    -o "$D/curve.csv" --plot "$D/curve.png"
