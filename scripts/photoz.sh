#!/bin/sh
# photoz.sh - make photoz (and photoz-quick): photometric redshifts end to end. Simulates a
# training and a test catalogue (`deepsky sim photometry`: ugrizy to i < 24, 0 < z <= 3),
# trains the MLP of examples/photoz.model (gaussian_nll: z and sigma_z) and the classic
# k-NN and random-forest baselines, scores them on the test catalogue (`eval --photoz`,
# `classic eval --photoz`: sigma_NMAD, outliers, bias, beside predicting the mean z) with
# their z_phot against z_spec figures, and the MLP's sigma_z coverage (`eval
# --uncertainty`). Writes into OUT
# (default out/photoz): the catalogues, weights, figures, the reports (*.txt) and
# results.csv. Fails when the MLP does not beat predicting the mean z (sigma_NMAD and
# outlier fraction both lower). Your own catalogue: `deepsky sim photometry --from cat.fits
# -o cat_colours.fits` (columns mag_u .. mag_y), then eval or predict on it as below.
#   scripts/photoz.sh [--quick] [OUT]     BIN=deepsky binary, FIGURES=0: no PNGs
set -e
BIN=${BIN:-build/deepsky}
QUICK=0
if [ "$1" = "--quick" ]; then QUICK=1; shift; fi
OUT=${1:-out/photoz}
FIGURES=${FIGURES:-1}
MODEL=${MODEL:-examples/photoz.model}
if [ $QUICK = 1 ]; then
    NTRAIN=3000 NTEST=1000 EPOCHS=30 EXT=csv NTREES=20
else
    NTRAIN=100000 NTEST=20000 EPOCHS=60 EXT=fits NTREES=50
fi
FEATURES=mag_u-mag_y,u_g-z_y     # the MLP's: magnitudes and colours
KNN_FEATURES=u_g-z_y,mag_i       # k-NN's: colours and the i magnitude (its best of the two)
mkdir -p "$OUT"
start=$(date +%s)
"$BIN" sim photometry --count $NTRAIN --seed 1 -o "$OUT/train.$EXT"
"$BIN" sim photometry --count $NTEST --seed 2 -o "$OUT/test.$EXT"

fig() {   # fig OPTION FILE: the figure option, unless FIGURES=0
    if [ "$FIGURES" = 1 ]; then echo "$1 $2"; fi
}

# The MLP: 10% of the training catalogue for validation, the best epoch's weights kept.
"$BIN" train $MODEL --data "$OUT/train.$EXT" --columns $FEATURES --label-columns redshift \
    --scale standardize --val-split 0.1 --epochs $EPOCHS --batch-size 128 --seed 1 \
    --log "$OUT/mlp.log.csv" --curve none -q -o "$OUT/mlp.safetensors"
"$BIN" eval $MODEL --weights "$OUT/mlp.best.safetensors" --data "$OUT/test.$EXT" \
    --columns $FEATURES --label-columns redshift --photoz --uncertainty \
    $(fig --photoz-figure "$OUT/mlp_zz.png") $(fig --coverage "$OUT/mlp_coverage.png") \
    > "$OUT/mlp.txt"
# k-NN (scikit-learn's KNeighborsRegressor(5, weights="distance") on standardized features).
"$BIN" classic train --method knn --k 5 --weights distance --data "$OUT/train.$EXT" \
    --columns $KNN_FEATURES --label-columns redshift --scale standardize \
    -o "$OUT/knn.safetensors" > /dev/null
"$BIN" classic eval "$OUT/knn.safetensors" --data "$OUT/test.$EXT" --columns $KNN_FEATURES \
    --label-columns redshift --photoz $(fig --photoz-figure "$OUT/knn_zz.png") > "$OUT/knn.txt"
# A random forest on the same features (scikit-learn's RandomForestRegressor with
# n_estimators=NTREES, min_samples_leaf=5, all features at each split).
"$BIN" classic train --method random-forest --n-trees $NTREES --min-samples-leaf 5 --seed 1 \
    --data "$OUT/train.$EXT" --columns $KNN_FEATURES --label-columns redshift \
    -o "$OUT/forest.safetensors" > /dev/null
"$BIN" classic eval "$OUT/forest.safetensors" --data "$OUT/test.$EXT" --columns $KNN_FEATURES \
    --label-columns redshift --photoz $(fig --photoz-figure "$OUT/forest_zz.png") \
    > "$OUT/forest.txt"

# results.csv: a row per predictor from the reports' tables (the "model" and "mean z" rows)
row() {   # row NAME REPORT [mean]
    awk -v name="$1" -v want="${3:-model}" '
        /^photo-z \[/ { on = 1 }
        on && want == "model" && $1 == "model" { r = $0 }
        on && want == "mean" && $1 == "mean" { r = $0; sub(/^mean z \([^)]*\)/, "x", r) }
        END { split(r, f, " "); sub(/%/, "", f[3]);
              printf "%s,%s,%.4f,%s,%s\n", name, f[2], f[3] / 100, f[5], f[6] }' "$2"
}
{
    echo "method,sigma_nmad,outlier_fraction,bias,rms"
    row mlp "$OUT/mlp.txt"
    row knn "$OUT/knn.txt"
    row forest "$OUT/forest.txt"
    row mean_z "$OUT/mlp.txt" mean
} > "$OUT/results.csv"
cov=$(awk '$1 == "all" && NF == 7 { print $2 ", " $3; exit }' "$OUT/mlp.txt")
end=$(date +%s)
echo "photo-z on $NTEST test galaxies ($NTRAIN trained), $((end - start)) s:"
column -s, -t "$OUT/results.csv" 2>/dev/null || cat "$OUT/results.csv"
echo "MLP sigma_z: 68% and 95% intervals cover $cov"
# The check that can fail: the MLP beats predicting the mean z.
awk -F, 'NR > 1 { s[$1] = $2; o[$1] = $3 }
    END { if (!(s["mlp"] < s["mean_z"] && o["mlp"] < o["mean_z"])) {
              printf "photoz: FAILED: the MLP (sigma_NMAD %s, outliers %s) does not beat " \
                     "the mean z (%s, %s)\n", s["mlp"], o["mlp"], s["mean_z"], o["mean_z"];
              exit 1 }
          printf "goal sigma_NMAD <= 0.04 and outliers <= 5%%: MLP %s, k-NN %s, forest %s\n",
                 s["mlp"] <= 0.04 && o["mlp"] <= 0.05 ? "met" : "missed",
                 s["knn"] <= 0.04 && o["knn"] <= 0.05 ? "met" : "missed",
                 s["forest"] <= 0.04 && o["forest"] <= 0.05 ? "met" : "missed" }' "$OUT/results.csv"
echo "photoz: reports, figures and results.csv in $OUT"
