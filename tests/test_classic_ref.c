/* test_classic_ref.c - the classic methods against scikit-learn 1.2.1 and scikit-image 0.19.3
 * on iris, wine, breast cancer and digits (tests/fixtures/classic/, written by
 * tests/fixtures/gen_classic.py): test accuracy within 2 points, logistic and ridge
 * coefficients to 1e-3, PCA components up to sign to 1e-4, k-means inertia within 1%, HOG
 * features to 1e-4. DS_CLASSIC_FIGURES=1 prints the figures measured. */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>

#define FIX "tests/fixtures/classic/"
static const char *const sets[] = {"iris", "wine", "cancer", "digits"};
#define N_SETS 4

/* The values of reference line key ("KEY COUNT V1 ..."), malloc'd, count in *n; NULL if
 * absent. */
static double *ref(const char *key, int64_t *n)
{
    FILE *fp = fopen(FIX "reference.txt", "r");
    static char line[1 << 16];
    double *v = NULL;
    size_t klen = strlen(key);
    while (fp && !v && fgets(line, sizeof line, fp)) {
        if (strncmp(line, key, klen) || line[klen] != ' ')
            continue;
        char *p = line + klen, *end;
        *n = strtoll(p, &end, 10);
        v = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *v);
        for (int64_t i = 0; v && i < *n; i++) {
            p = end;
            v[i] = strtod(p, &end);
        }
    }
    if (fp)
        fclose(fp);
    return v;
}

static double ref1(const char *key)
{
    int64_t n;
    double *v = ref(key, &n), r = v && n == 1 ? v[0] : NAN;
    free(v);
    return r;
}

static bool figures(void) { return getenv("DS_CLASSIC_FIGURES") != NULL; }

/* x (features) and y (the "label" column) of a set's split. */
static int load(const char *set, const char *split, ds_tensor **x, ds_tensor **y)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s_%s.csv", set, split);
    ds_read_opts xo = {.exclude = "label", .header = DS_HEADER_NAMES};
    ds_read_opts yo = {.columns = "label", .header = DS_HEADER_NAMES};
    *x = *y = NULL;
    if (ds_array_load(path, &xo, x) || ds_array_load(path, &yo, y))
        return 1;
    int64_t n = ds_tensor_shape(*y)[0];
    return ds_tensor_reshape(*y, 1, &n) != DS_OK;
}

/* A model of method with options (pairs key, value, NULL-ended), standardized, fitted on the
 * set's training split; its test accuracy into *acc (classifiers). */
static ds_classic *fit_seeded(const char *set, const char *method, const char *const *kv,
                              uint64_t seed, double *acc)
{
    ds_tensor *x, *y, *tx = NULL, *ty = NULL, *p = NULL, *d = NULL;
    ds_classic *m = NULL;
    bool ok = !load(set, "train", &x, &y) && !load(set, "test", &tx, &ty) &&
              !ds_classic_create(method, &m) &&
              !ds_classic_set_scaling(m, DS_SCALE_STANDARDIZE, 1);
    for (int i = 0; ok && kv && kv[i]; i += 2)
        ok = !ds_classic_set(m, kv[i], kv[i + 1]);
    bool labels = strcmp(method, "kmeans") && strcmp(method, "pca");
    ok = ok && !ds_classic_fit(m, x, labels ? y : NULL, seed);
    if (ok && acc && !ds_classic_predict(m, tx, &p) && (d = ds_classic_decide(m, p))) {
        int64_t n = ds_tensor_shape(ty)[0], right = 0;
        for (int64_t i = 0; i < n; i++)
            right += ds_tensor_data(d)[i] == ds_tensor_data(ty)[i];
        *acc = (double)right / (double)n;
    } else if (ok && acc && p) {   /* values: the test RMSE */
        int64_t n = ds_tensor_shape(ty)[0];
        double se = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = ds_tensor_data(p)[i] - ds_tensor_data(ty)[i];
            se += e * e;
        }
        *acc = sqrt(se / (double)n);
    }
    if (!ok) {
        ds_classic_free(m);
        m = NULL;
    }
    ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(tx), ds_tensor_free(ty);
    ds_tensor_free(p), ds_tensor_free(d);
    return m;
}

static ds_classic *fit(const char *set, const char *method, const char *const *kv, double *acc)
{
    return fit_seeded(set, method, kv, 0, acc);
}

/* Largest |a - ref| over an array (sign: compare each row up to its sign, rows of width w). */
static double max_diff(const ds_tensor *a, const char *key, bool sign, int64_t w, char *msg,
                       size_t cap)
{
    int64_t n;
    double *r = ref(key, &n), worst = 0;
    if (!a || !r || n != ds_tensor_numel(a)) {
        snprintf(msg, cap, "%s: %lld values, the model has %lld", key, (long long)(r ? n : -1),
                 (long long)(a ? ds_tensor_numel(a) : -1));
        free(r);
        return INFINITY;
    }
    const float *v = ds_tensor_data((ds_tensor *)a);
    for (int64_t row = 0; row < n / w; row++) {
        double dp = 0, dm = 0;
        for (int64_t j = 0; j < w; j++) {
            dp = fmax(dp, fabs(v[row * w + j] - r[row * w + j]));
            dm = fmax(dm, fabs(v[row * w + j] + r[row * w + j]));
        }
        worst = fmax(worst, sign ? fmin(dp, dm) : dp);
    }
    free(r);
    return worst;
}

static int check_acc(const char *set, const char *tag, double acc, char *msg_, size_t cap_)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s.acc", set, tag);
    double r = ref1(key);
    if (figures())
        fprintf(stderr, "classic %-8s %-18s accuracy %.4f  scikit-learn %.4f  (%+.1f points)\n",
                set, tag, acc, r, 100 * (acc - r));
    if (!(fabs(acc - r) <= 0.02 + 1e-9))
        FAIL("%s: test accuracy %.4f, scikit-learn's %.4f: more than 2 points apart", key, acc, r);
    return 0;
}

static int check_coef(const ds_classic *m, const char *set, const char *tag, char *msg_,
                      size_t cap_)
{
    char key[96];
    const char *arr[] = {"coef", "intercept"};
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s.%s.%s", set, tag, arr[i]);
        const ds_tensor *t = ds_classic_array(m, arr[i]);
        double d = max_diff(t, key, false, t ? ds_tensor_numel(t) : 1, msg_, cap_);
        if (figures())
            fprintf(stderr, "classic %-8s %-18s %-9s max |difference| %.2g\n", set, tag, arr[i],
                    d);
        if (!(d <= 1e-3))
            FAIL("%s: largest difference from scikit-learn %g (> 1e-3)%s%s", key, d,
                 isinf(d) ? ": " : "", isinf(d) ? msg_ : "");
    }
    return 0;
}

TEST(classic_logistic_matches_sklearn)
{
    const char *solvers[] = {"lbfgs", "newton"};
    for (int s = 0; s < N_SETS; s++)
        for (int k = 0; k < 2; k++) {
            const char *kv[] = {"solver", solvers[k], "tol", "1e-9", NULL};
            double acc = -1;
            ds_classic *m = fit(sets[s], "logistic", kv, &acc);
            CHECK(m);
            char tag[32];
            snprintf(tag, sizeof tag, "logistic(%s)", solvers[k]);
            int rc = check_acc(sets[s], "logistic", acc, msg_, cap_);
            if (!rc)
                rc = check_coef(m, sets[s], "logistic", msg_, cap_);
            if (figures())
                fprintf(stderr, "  (%s: %g iterations)\n", tag, ds_classic_stat(m, "iterations"));
            ds_classic_free(m);
            if (rc)
                return rc;
        }
    return TEST_PASS;
}

TEST(classic_ridge_matches_sklearn)
{
    for (int s = 0; s < N_SETS; s++) {
        const char *kv[] = {"alpha", "1", "task", "classify", NULL};
        double acc = -1;
        ds_classic *m = fit(sets[s], "linear", kv, &acc);
        CHECK(m);
        int rc = check_acc(sets[s], "ridge", acc, msg_, cap_);
        if (!rc)
            rc = check_coef(m, sets[s], "ridge", msg_, cap_);
        ds_classic_free(m);
        if (rc)
            return rc;
    }
    return TEST_PASS;
}

TEST(classic_knn_matches_sklearn)
{
    const char *algos[] = {"brute", "kd-tree"};
    for (int s = 0; s < N_SETS; s++)
        for (int w = 0; w < 2; w++)
            for (int a = 0; a < 2; a++) {
                const char *kv[] = {"k", "5", "weights", w ? "distance" : "uniform", "algorithm",
                                    algos[a], NULL};
                double acc = -1;
                ds_classic *m = fit(sets[s], "knn", kv, &acc);
                CHECK(m);
                ds_classic_free(m);
                CHECK_OK(check_acc(sets[s], w ? "knn5d" : "knn5", acc, msg_, cap_));
            }
    return TEST_PASS;
}

TEST(classic_kmeans_matches_sklearn)
{
    for (int s = 0; s < N_SETS; s++) {
        char key[64], k[16];
        snprintf(key, sizeof key, "%s.kmeans.inertia", sets[s]);
        int64_t nc = sets[s][0] == 'd' ? 10 : sets[s][0] == 'c' ? 2 : 3;
        snprintf(k, sizeof k, "%lld", (long long)nc);
        const char *kv[] = {"k", k, "n-init", "10", NULL};
        ds_classic *m = fit(sets[s], "kmeans", kv, NULL);
        CHECK(m);
        double in = ds_classic_stat(m, "inertia"), r = ref1(key);
        snprintf(key, sizeof key, "%s.kmeans.silhouette", sets[s]);
        double sil = ds_classic_stat(m, "silhouette"), rs = ref1(key);
        ds_classic_free(m);
        if (figures())
            fprintf(stderr, "classic %-8s kmeans inertia %.6g  scikit-learn %.6g (%+.3f%%); "
                    "silhouette %.4f / %.4f\n", sets[s], in, r, 100 * (in / r - 1), sil, rs);
        if (!(fabs(in / r - 1) <= 0.01))
            FAIL("%s: inertia %g, scikit-learn's %g: more than 1%% apart", sets[s], in, r);
        if (!(fabs(sil - rs) <= 0.02))
            FAIL("%s: silhouette %g, scikit-learn's %g", sets[s], sil, rs);
    }
    return TEST_PASS;
}

TEST(classic_pca_matches_sklearn)
{
    for (int s = 0; s < N_SETS; s++) {
        const char *kv[] = {"components", sets[s][0] == 'i' ? "4" : "5", NULL};
        ds_classic *m = fit(sets[s], "pca", kv, NULL);
        CHECK(m);
        const ds_tensor *w = ds_classic_array(m, "components");
        char key[64];
        snprintf(key, sizeof key, "%s.pca.components", sets[s]);
        double dc = max_diff(w, key, true, ds_tensor_shape(w)[1], msg_, cap_);
        snprintf(key, sizeof key, "%s.pca.ratio", sets[s]);
        double dr = max_diff(ds_classic_array(m, "ratio"), key, false, 1, msg_, cap_);
        snprintf(key, sizeof key, "%s.pca.variance", sets[s]);
        double dv = max_diff(ds_classic_array(m, "variance"), key, false, 1, msg_, cap_);
        ds_classic_free(m);
        if (figures())
            fprintf(stderr, "classic %-8s pca components max |difference| (up to sign) %.2g, "
                    "variance %.2g, ratio %.2g\n", sets[s], dc, dv, dr);
        if (!(dc <= 1e-4) || !(dr <= 1e-4) || !(dv <= 1e-4 * 20))
            FAIL("%s: PCA differs from scikit-learn's: components %g, ratio %g, variance %g",
                 sets[s], dc, dr, dv);
    }
    return TEST_PASS;
}

TEST(classic_hog_matches_skimage)
{
    const char *cases[] = {"digit0", "digit7", "blob32", "noise24x20"};
    for (int c = 0; c < 4; c++) {
        char key[64];
        int64_t np, ni, nf;
        snprintf(key, sizeof key, "hog.%s.params", cases[c]);
        double *par = ref(key, &np);
        snprintf(key, sizeof key, "hog.%s.image", cases[c]);
        double *im = ref(key, &ni);
        snprintf(key, sizeof key, "hog.%s.features", cases[c]);
        double *ft = ref(key, &nf);
        CHECK(par && im && ft && np == 3);
        int rows = (int)im[0], cols = (int)im[1];
        ds_hog_opts o = {(int)par[0], (int)par[1], (int)par[2]};
        float *img = malloc((size_t)(rows * cols) * sizeof *img);
        float *out = malloc((size_t)(nf + 1) * sizeof *out);
        CHECK(img && out && ni == 2 + rows * cols);
        for (int i = 0; i < rows * cols; i++)
            img[i] = (float)im[2 + i];
        int64_t size = ds_hog_size(rows, cols, &o);
        ds_status st = ds_hog(img, rows, cols, &o, out);
        double worst = 0;
        for (int64_t i = 0; !st && size == nf && i < nf; i++)
            worst = fmax(worst, fabs(out[i] - ft[i]));
        free(par), free(im), free(ft), free(img), free(out);
        if (figures())
            fprintf(stderr, "classic hog %-10s %lld features, max |difference| %.2g\n", cases[c],
                    (long long)nf, worst);
        CHECK(st == DS_OK);
        if (size != nf || !(worst <= 1e-4))
            FAIL("hog %s: %lld features (scikit-image %lld), largest difference %g", cases[c],
                 (long long)size, (long long)nf, worst);
    }
    return TEST_PASS;
}

/* Random forests: the test accuracy averaged over seeds 0..2 (digits: 0), within 2 points of scikit-learn's
 * (averaged over its seeds 0..4); the forest of 1 and 2 threads is the same. */
TEST(classic_forest_matches_sklearn)
{
    for (int s = 0; s < N_SETS; s++) {
        const char *kv[] = {"n-trees", "100", NULL};
        double mean = 0, seeds = s == 3 ? 1 : 3;   /* digits: 1 (time) */
        for (uint64_t seed = 0; seed < seeds; seed++) {
            double acc = -1;
            ds_classic *m = fit_seeded(sets[s], "random-forest", kv, seed, &acc);
            CHECK(m);
            if (figures() && seed == 0)
                fprintf(stderr, "classic %-8s forest out-of-bag score %.4f, %g nodes\n", sets[s],
                        ds_classic_stat(m, "oob_score"), ds_classic_stat(m, "nodes"));
            CHECK(!isnan(ds_classic_stat(m, "oob_score")));
            ds_classic_free(m);
            mean += acc / seeds;
        }
        CHECK_OK(check_acc(sets[s], "forest", mean, msg_, cap_));
    }
    return TEST_PASS;
}

/* Gradient boosting (100 rounds, rate 0.1, depth 3): within 2 points of scikit-learn's
 * HistGradientBoostingClassifier with the same settings (GradientBoostingClassifier's
 * figures printed beside). Digits (1000 trees, 8 s in the sanitizer build) only with
 * DS_CLASSIC_FIGURES set. */
TEST(classic_boost_matches_sklearn)
{
    for (int s = 0; s < (figures() ? N_SETS : 3); s++) {
        double acc = -1;
        ds_classic *m = fit(sets[s], "gradient-boosting", NULL, &acc);
        CHECK(m);
        CHECK(ds_classic_stat(m, "rounds") == 100);
        ds_classic_free(m);
        char key[64];
        snprintf(key, sizeof key, "%s.gbc.acc", sets[s]);
        if (figures())
            fprintf(stderr, "classic %-8s (GradientBoostingClassifier %.4f)\n", sets[s], ref1(key));
        CHECK_OK(check_acc(sets[s], "hgb", acc, msg_, cap_));
    }
    return TEST_PASS;
}

/* Regression on diabetes: test RMSE within 5% of scikit-learn's forest and boosting. */
TEST(classic_trees_regress_like_sklearn)
{
    const char *methods[] = {"random-forest", "gradient-boosting"};
    const char *keys[] = {"diabetes.forest.rmse", "diabetes.hgb.rmse"};
    for (int k = 0; k < 2; k++) {
        const char *kv[] = {"task", "regress", NULL};
        double rmse = -1;
        ds_classic *m = fit("diabetes", methods[k], kv, &rmse);
        CHECK(m);
        ds_classic_free(m);
        double r = ref1(keys[k]);
        if (figures())
            fprintf(stderr, "classic diabetes %-18s test RMSE %.3f  scikit-learn %.3f (%+.1f%%)\n",
                    methods[k], rmse, r, 100 * (rmse / r - 1));
        if (!(fabs(rmse / r - 1) <= 0.05))
            FAIL("%s: test RMSE %g, scikit-learn's %g: more than 5%% apart", methods[k], rmse, r);
    }
    return TEST_PASS;
}

/* SVC: accuracy within 2 points, the support-vector count within 5%, and (RBF) the test
 * decision function within 0.02 of scikit-learn's SVC with C 1 and gamma 'scale'. */
TEST(classic_svm_matches_sklearn)
{
    for (int s = 0; s < N_SETS; s++)
        for (int lin = 0; lin < 2; lin++) {
            const char *kv[] = {"kernel", lin ? "linear" : "rbf", NULL};
            const char *tag = lin ? "svcl" : "svc";
            double acc = -1;
            ds_classic *m = fit(sets[s], "svm", kv, &acc);
            CHECK(m);
            char key[64];
            snprintf(key, sizeof key, "%s.%s.nsv", sets[s], tag);
            double nsv = ds_classic_stat(m, "support_vectors"), rn = ref1(key), worst = 0;
            if (!lin) {
                ds_tensor *x, *y, *p = NULL;
                CHECK_OK(load(sets[s], "test", &x, &y));
                CHECK(ds_classic_predict(m, x, &p) == DS_OK);
                snprintf(key, sizeof key, "%s.svc.decision", sets[s]);
                int64_t n, K = ds_tensor_shape(p)[1];
                double *r = ref(key, &n);
                const float *pv = ds_tensor_data(p);
                CHECK(r && (n == ds_tensor_shape(p)[0] * (K == 2 ? 1 : K)));
                for (int64_t i = 0; i < n; i++)
                    worst = fmax(worst, fabs((K == 2 ? pv[2 * i + 1] : pv[i]) - r[i]));
                free(r), ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(p);
            }
            ds_classic_free(m);
            if (figures())
                fprintf(stderr, "classic %-8s %-5s support vectors %g  scikit-learn %g; "
                        "decision max |difference| %.2g%s\n", sets[s], tag, nsv, rn, worst,
                        lin ? " (not compared)" : "");
            CHECK_OK(check_acc(sets[s], tag, acc, msg_, cap_));
            if (!(fabs(nsv / rn - 1) <= 0.05) || !(worst <= 0.02))
                FAIL("%s %s: %g support vectors (scikit-learn %g), decision differs by %g",
                     sets[s], tag, nsv, rn, worst);
        }
    return TEST_PASS;
}
