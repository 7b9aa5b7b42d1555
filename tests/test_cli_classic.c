/* test_cli_classic.c - deepsky classic train|eval|predict (and search and curve): a logistic
 * model trained, saved,
 * evaluated and used to predict on the iris fixture; validation splits; features and a PCA
 * transform; and the bad-input messages (unknown method or option, another method's model,
 * a network's weights, NaN features as train words them, k above the sample count). The tool
 * runs with the sanitizers (tests/spawn.h). */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>

#define IRIS "tests/fixtures/classic/iris_"

/* Runs and fails unless the status is want and the output holds each of the texts. */
#define EXPECT(want, texts, ...)                                                             \
    do {                                                                                     \
        int rc_ = cli_run(__VA_ARGS__);                                                      \
        const char *const *t_ = (texts);                                                     \
        if (rc_ != (want))                                                                   \
            FAIL("%s:%d: exit status %d, expected %d; output:\n%s", __FILE__, __LINE__, rc_,  \
                 (want), cli_out);                                                            \
        for (int k_ = 0; t_ && t_[k_]; k_++)                                                 \
            if (!strstr(cli_out, t_[k_]))                                                    \
                FAIL("%s:%d: output lacks \"%s\":\n%s", __FILE__, __LINE__, t_[k_], cli_out); \
    } while (0)
#define TEXTS(...) ((const char *const[]){__VA_ARGS__, NULL})

TEST(cli_classic_train_eval_predict)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_classic"));
    EXPECT(0, TEXTS("classic logistic: classify, 105 samples of shape [4], 3 classes",
                    "training set (105 samples):", "accuracy: 0.9", "confusion matrix"),
           "classic train --method logistic --C 1 --solver newton --data " IRIS "train.csv "
           "--label-columns label --scale standardize -o %s/m.safetensors", d);
    EXPECT(0, TEXTS("accuracy: 0.9778 (44 of 45)", "class  precision  recall  support"),
           "classic eval %s/m.safetensors --data " IRIS "test.csv --label-columns label", d);
    EXPECT(0, TEXTS("predictions of 45 samples"), "classic predict %s/m.safetensors --data "
           IRIS "test.csv --label-columns label -o %s/p.csv", d, d);
    char path[512];
    snprintf(path, sizeof path, "%s/p.csv", d);
    FILE *fp = fopen(path, "r");
    char line[256] = "";
    if (fp) {
        if (!fgets(line, sizeof line, fp))
            line[0] = 0;
        fclose(fp);
    }
    if (strcmp(line, "class,p0,p1,p2\n"))
        FAIL("predictions header '%s'", line);
    /* a model of another method, and a network's weights */
    EXPECT(1, TEXTS("m.safetensors: a model of method 'logistic', not 'knn'"),
           "classic eval %s/m.safetensors --method knn --data " IRIS "test.csv --label-columns "
           "label", d);
    EXPECT(1, TEXTS("not a classic model file"), "classic eval "
           "tests/fixtures/net_mlp.weights.safetensors --data " IRIS "test.csv --label-columns "
           "label");
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_classic_validation_transform_clusters)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_classic"));
    EXPECT(0, TEXTS("validation split: 21 of 105 samples (fraction 0.2), shuffled with seed 3, "
                    "by class (3 classes)", "validation set (21 samples):"),
           "classic train --method knn --k 5 --weights distance --data " IRIS "train.csv "
           "--label-columns label --val-split 0.2 --seed 3 --scale standardize "
           "--transform pca:2 -o %s/k.safetensors", d);
    EXPECT(0, TEXTS("validation set (45 samples):"), "classic train --method linear --alpha 2 "
           "--data " IRIS "train.csv --label-columns label --val " IRIS "test.csv --val-labels "
           IRIS "test.csv -o %s/r.safetensors", d);
    EXPECT(0, TEXTS("classic kmeans: cluster", "inertia:", "silhouette:"),
           "classic train --method kmeans --k 3 --data " IRIS "train.csv --label-columns label "
           "--scale standardize -o %s/c.safetensors", d);
    EXPECT(0, TEXTS("clusters: 3", "inertia:"), "classic eval %s/c.safetensors --data " IRIS
           "test.csv --label-columns label", d);
    EXPECT(0, TEXTS("explained variance ratio:", "reconstruction RMSE:"),
           "classic train --method pca --components 2 --data " IRIS "train.csv --label-columns "
           "label -o %s/p.safetensors", d);
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_classic_bad_input)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_classic"));
    EXPECT(2, TEXTS("unknown classic method 'forest' (methods: logistic, linear, knn, "
                    "random-forest, gradient-boosting, svm, kmeans, pca)"), "classic train --method forest --data " IRIS "train.csv -o "
           "%s/m.safetensors", d);
    EXPECT(2, TEXTS("option '--k' is not an option of method 'logistic' (its options: --C, "
                    "--solver, --max-iter, --tol)"), "classic train --method logistic --k 3 "
           "--data " IRIS "train.csv -o %s/m.safetensors", d);
    EXPECT(2, TEXTS("option '--solver': logistic: solver 'sgd' is not one of lbfgs|newton"),
           "classic train --method logistic --solver sgd --data " IRIS "train.csv -o "
           "%s/m.safetensors", d);
    EXPECT(2, TEXTS("unknown option '--depth'"), "classic train --method logistic --depth 3 "
           "--data " IRIS "train.csv -o %s/m.safetensors", d);
    EXPECT(1, TEXTS("knn: k = 200 is more than the 105 training samples"), "classic train "
           "--method knn --k 200 --data " IRIS "train.csv --label-columns label -o "
           "%s/m.safetensors", d);
    EXPECT(2, TEXTS("unknown subcommand 'fit'"), "classic fit");
    /* NaN features: the message of train */
    char path[512];
    snprintf(path, sizeof path, "%s/nan.csv", d);
    CHECK(!test_write_text(path, "a,b,label\n1,2,0\n3,nan,1\n0,1,0\n2,2,1\n"));
    snprintf(path, sizeof path, "%s/t.model", d);
    CHECK(!test_write_text(path, "input name=x shape=2\ndense units=2 activation=softmax\n"
                           "loss categorical_crossentropy\n"));
    EXPECT(1, TEXTS("nan.csv: element 3 (sample 1) is NaN; --nan fill:VALUE, --nan mean or "
                    "--nan drop-samples handles missing values"),
           "train %s/t.model --data %s/nan.csv --label-columns label -o %s/w.safetensors", d, d,
           d);
    char want[512];
    const char *at = strstr(cli_out, "deepsky: error:");
    snprintf(want, sizeof want, "%s", at ? at : "(none)");
    EXPECT(1, TEXTS(want), "classic train --method logistic --data %s/nan.csv --label-columns "
           "label -o %s/m.safetensors", d, d);
    EXPECT(0, TEXTS("classic logistic: classify, 3 samples"), "classic train --method logistic "
           "--data %s/nan.csv --label-columns label --nan drop-samples -o %s/m.safetensors", d, d);
    test_rm_rf(d);
    return TEST_PASS;
}

/* deepsky search (grid, the CSV sorted, the best refitted and saved) and curve (CSV, PNG). */
TEST(cli_search_and_curve)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_classic"));
    EXPECT(0, TEXTS("trial 6/6:", "best: k=", "results: ", "best model (refitted on all 105 "
                    "samples)"),
           "search --method knn --param k=1,7,25 --param weights=uniform,distance --folds 3 "
           "--data " IRIS "train.csv --label-columns label --scale standardize -o %s/s.csv "
           "--best %s/best.safetensors", d, d);
    char path[512], line[256] = "";
    snprintf(path, sizeof path, "%s/s.csv", d);
    FILE *fp = fopen(path, "r");
    if (fp) {
        if (!fgets(line, sizeof line, fp))
            line[0] = 0;
        fclose(fp);
    }
    if (strcmp(line, "rank,trial,score,spread,k,weights\n"))
        FAIL("search results header '%s'", line);
    EXPECT(0, TEXTS("accuracy: "), "classic eval %s/best.safetensors --method knn --data " IRIS
           "test.csv --label-columns label", d);
    EXPECT(0, TEXTS("trial 4/4:"), "search --method svm --param C=0.1:10:log --strategy random "
           "--trials 4 --folds 3 --data " IRIS "train.csv --label-columns label -o %s/r.csv", d);
    EXPECT(2, TEXTS("option '--max-depth' is not an option of method 'knn'"), "search --method knn "
           "--max-depth 3 --param k=1,2 --data " IRIS "train.csv --label-columns label -o %s/x.csv", d);
    EXPECT(1, TEXTS("classic method 'knn' has no option 'depth' (its options: k, weights, "
                    "algorithm, task)"), "search --method knn --param depth=1,2 --data " IRIS
           "train.csv --label-columns label -o %s/x.csv", d);
    EXPECT(2, TEXTS("--k is given and searched"), "search --method knn --k 3 --param k=1,2 "
           "--data " IRIS "train.csv --label-columns label -o %s/x.csv", d);
    EXPECT(2, TEXTS("--trials counts random draws"), "search --method knn --trials 3 --param "
           "k=1,2 --data " IRIS "train.csv --label-columns label -o %s/x.csv", d);
    bool plot = ds_has_feature("plot");
    EXPECT(0, TEXTS("learning curve of logistic, 3-fold:", "curve: "), "curve --method logistic "
           "--fractions 1/4..1 --folds 3 --data " IRIS "train.csv --label-columns label "
           "--scale standardize -o %s/c.csv%s%s%s", d, plot ? " --plot " : "", plot ? d : "",
           plot ? "/c.png" : "");
    snprintf(path, sizeof path, "%s/c.csv", d);
    int64_t lines = 0;
    fp = fopen(path, "r");
    while (fp && fgets(line, sizeof line, fp))
        lines++;
    if (fp)
        fclose(fp);
    CHECK(lines == 4);   /* a header, 1/4, 1/2, 1 */
    if (plot) {
        snprintf(path, sizeof path, "%s/c.png", d);
        fp = fopen(path, "rb");
        CHECK(fp);
        fclose(fp);
    }
    EXPECT(2, TEXTS("option '--fractions': '1/0..1' is not 1/N..1"), "curve --method knn "
           "--fractions 1/0..1 --data " IRIS "train.csv --label-columns label -o %s/x.csv", d);
    EXPECT(1, TEXTS("cross-validation scores classifiers and regressors"), "curve --method pca "
           "--data " IRIS "train.csv --label-columns label -o %s/x.csv", d);
    test_rm_rf(d);
    return TEST_PASS;
}
