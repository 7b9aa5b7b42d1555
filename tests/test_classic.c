/* test_classic.c - the classic models' framework: model files (round trip, truncation at
 * every byte, a damaged header, another method's model, a network's weights), bad input with
 * its messages, the same results at any thread count, the k-d tree against brute force, and
 * the image features. */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>

/* Samples [n, f] in 3 blobs (class = blob), seeded. */
static void blobs(int64_t n, int64_t f, uint64_t seed, ds_tensor **x, ds_tensor **y)
{
    int64_t sx[2] = {n, f};
    *x = ds_tensor_create(2, sx);
    *y = ds_tensor_create(1, &n);
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int64_t i = 0; *x && *y && i < n; i++) {
        int64_t c = i % 3;
        ds_tensor_data(*y)[i] = (float)c;
        for (int64_t j = 0; j < f; j++)
            ds_tensor_data(*x)[i * f + j] = (float)(ds_rng_normal(&r) + (j % 3 == c ? 2.5 : 0));
    }
}

/* A fitted model of method with options kv (pairs, NULL-ended); NULL on failure. */
static ds_classic *fitted(const char *method, const char *const *kv, const char *features,
                          const char *transform, const ds_tensor *x, const ds_tensor *y)
{
    ds_classic *m = NULL;
    bool ok = !ds_classic_create(method, &m) && !ds_classic_set_features(m, features) &&
              !ds_classic_set_transform(m, transform) &&
              !ds_classic_set_scaling(m, DS_SCALE_STANDARDIZE, 1);
    for (int i = 0; ok && kv && kv[i]; i += 2)
        ok = !ds_classic_set(m, kv[i], kv[i + 1]);
    if (!ok || ds_classic_fit(m, x, y, 7)) {
        ds_classic_free(m);
        return NULL;
    }
    return m;
}

static bool same_bits(const ds_tensor *a, const ds_tensor *b)
{
    return a && b && ds_tensor_numel(a) == ds_tensor_numel(b) &&
           !memcmp(ds_tensor_data((ds_tensor *)a), ds_tensor_data((ds_tensor *)b),
                   (size_t)ds_tensor_numel(a) * sizeof(float));
}

/* The bytes of a saved model (in folder dir) into *buf. */
static int saved_bytes(const ds_classic *m, const char *dir, void **buf, size_t *len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    if (ds_classic_save(m, path))
        return 1;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 1;
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    *buf = malloc(*len);
    size_t got = *buf ? fread(*buf, 1, *len, fp) : 0;
    fclose(fp);
    return got != *len;
}

typedef struct {
    const char *method, *kv[9], *features, *transform;
    bool labels, images;
} model_case;

static const model_case cases[] = {
    {"logistic", {"C", "0.5", NULL}, NULL, NULL, true, false},
    {"logistic", {"solver", "newton", NULL}, NULL, "pca:3", true, false},
    {"linear", {"alpha", "2", NULL}, NULL, NULL, true, false},
    {"linear", {"task", "regress", NULL}, NULL, NULL, true, false},
    {"knn", {"k", "4", "weights", "distance", "algorithm", "kd-tree", NULL}, NULL, NULL, true,
     false},
    {"knn", {"k", "3", "task", "regress", NULL}, NULL, NULL, true, false},
    {"kmeans", {"k", "3", "n-init", "2", NULL}, NULL, NULL, false, false},
    {"pca", {"components", "2", NULL}, NULL, NULL, false, false},
    {"logistic", {NULL}, "hog:6:4:2", "pca:4", true, true},
    {"knn", {"k", "2", NULL}, "moments", NULL, true, true},
    {"random-forest", {"n-trees", "8", "max-depth", "6", NULL}, NULL, NULL, true, false},
    {"random-forest", {"n-trees", "5", "min-samples-leaf", "3", "task", "regress", NULL}, NULL,
     NULL, true, false},
    {"gradient-boosting", {"n-rounds", "10", "subsample", "0.7", NULL}, NULL, NULL, true, false},
    {"gradient-boosting", {"n-rounds", "30", "early-stop", "3", "task", "regress", NULL}, NULL,
     NULL, true, false},
    {"svm", {"C", "2", NULL}, NULL, NULL, true, false},
    {"svm", {"kernel", "linear", NULL}, NULL, "pca:3", true, false},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* Images [n, 12, 12]: a Gaussian blob whose width depends on the class. */
static void stamps(int64_t n, ds_tensor **x, ds_tensor **y)
{
    int64_t sx[3] = {n, 12, 12};
    *x = ds_tensor_create(3, sx);
    *y = ds_tensor_create(1, &n);
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int64_t i = 0; *x && *y && i < n; i++) {
        double s = 1.2 + 0.6 * (double)(i % 3), cx = 5.5 + 0.3 * ds_rng_normal(&r);
        ds_tensor_data(*y)[i] = (float)(i % 3);
        for (int p = 0; p < 144; p++) {
            double dx = p % 12 - cx, dy = p / 12 - 5.5;
            ds_tensor_data(*x)[i * 144 + p] = (float)(exp(-(dx * dx + dy * dy) / (2 * s * s)) +
                                                      0.01 * ds_rng_normal(&r));
        }
    }
}

static ds_classic *case_model(const model_case *mc, ds_tensor **x, ds_tensor **y)
{
    if (mc->images)
        stamps(60, x, y);
    else
        blobs(90, 5, 11, x, y);
    bool values = false;   /* task=regress: values, not classes */
    for (int i = 0; mc->kv[i]; i += 2)
        values |= !strcmp(mc->kv[i], "task");
    if (values)
        for (int64_t i = 0; i < ds_tensor_numel(*y); i++)
            ds_tensor_data(*y)[i] = ds_tensor_data(*x)[i * ds_tensor_shape(*x)[1]] * 0.5f + 0.25f;
    return fitted(mc->method, mc->kv, mc->features, mc->transform, *x, mc->labels ? *y : NULL);
}

TEST(classic_model_file_round_trip)
{
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "classic"));
    int rc = TEST_PASS;
    for (int c = 0; c < N_CASES && rc == TEST_PASS; c++) {
        ds_tensor *x = NULL, *y = NULL, *p = NULL, *q = NULL;
        ds_classic *m = case_model(&cases[c], &x, &y), *l = NULL, *o = NULL;
        char path[600];
        snprintf(path, sizeof path, "%s/m%d.safetensors", dir, c);
        if (!m || ds_classic_save(m, path) || ds_classic_load(path, cases[c].method, &l) ||
            ds_classic_predict(m, x, &p) || ds_classic_predict(l, x, &q)) {
            snprintf(msg_, cap_, "case %d (%s): %s", c, cases[c].method, ds_last_error());
            rc = TEST_FAIL;
        } else if (!same_bits(p, q) || ds_classic_task_of(m) != ds_classic_task_of(l)) {
            snprintf(msg_, cap_, "case %d (%s): the loaded model predicts otherwise", c,
                     cases[c].method);
            rc = TEST_FAIL;
        } else if (ds_classic_load(path, strcmp(cases[c].method, "knn") ? "knn" : "pca", &o) !=
                       DS_ERR_ARG || o || !strstr(ds_last_error(), "a model of method")) {
            snprintf(msg_, cap_, "case %d: another method's model: %s", c, ds_last_error());
            rc = TEST_FAIL;
        }
        ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(p), ds_tensor_free(q);
        ds_classic_free(m);
        ds_classic_free(l);
        ds_classic_free(o);
    }
    test_rm_rf(dir);
    return rc;
}

TEST(classic_model_file_truncated_and_damaged)
{
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "classic"));
    ds_tensor *x, *y;
    ds_classic *m = case_model(&cases[8], &x, &y), *l = NULL;   /* hog, pca, standardize */
    void *buf = NULL;
    size_t len = 0;
    int bad = m ? saved_bytes(m, dir, &buf, &len) : 1;
    test_rm_rf(dir);
    ds_classic_free(m);
    ds_tensor_free(x), ds_tensor_free(y);
    CHECK(!bad);
    for (size_t cut = 0; cut < len; cut++) {
        ds_status st = ds_classic_load_mem(buf, cut, "cut", NULL, &l);
        if (st != DS_ERR_FORMAT || l) {
            free(buf);
            FAIL("truncated at %zu of %zu bytes: status %d (%s)", cut, len, (int)st,
                 ds_last_error());
        }
    }
    CHECK(ds_classic_load_mem(buf, len, "whole", NULL, &l) == DS_OK);
    ds_classic_free(l);
    /* damage the header: another method's name, a wrong feature count */
    char *text = buf;
    /* (the JSON header is a string inside safetensors' JSON: its quotes are escaped) */
    const char *edits[][2] = {{"features_out\\\": 96", "features_out\\\": 97"},
                              {"method\\\": \\\"logistic", "method\\\": \\\"logistix"},
                              {"format\\\": 1", "format\\\": 9"}};
    const char *want[] = {"does not match the features", "unknown classic method 'logistix'",
                          "newer than supported"};
    for (int e = 0; e < 3; e++) {
        char *at = memmem(text, len, edits[e][0], strlen(edits[e][0]));
        if (!at) {
            free(buf);
            FAIL("the header lacks %s", edits[e][0]);
        }
        memcpy(at, edits[e][1], strlen(edits[e][1]));
        ds_status st = ds_classic_load_mem(buf, len, "damaged", NULL, &l);
        memcpy(at, edits[e][0], strlen(edits[e][0]));
        if (st != DS_ERR_FORMAT || !strstr(ds_last_error(), want[e])) {
            free(buf);
            FAIL("edit %d: status %d, message '%s', expected '%s'", e, (int)st, ds_last_error(),
                 want[e]);
        }
    }
    free(buf);
    /* a safetensors file without the header: a network's weights */
    ds_tensor_set *s = ds_tensor_set_create();
    float w[2] = {1, 2};
    int64_t two = 2;
    void *wb = NULL;
    CHECK(s && !ds_tensor_set_add(s, "dense.w", 1, &two, w) && !ds_safetensors_save_mem(s, &wb, &len));
    ds_tensor_set_free(s);
    ds_status st = ds_classic_load_mem(wb, len, "net.safetensors", NULL, &l);
    free(wb);
    CHECK(st == DS_ERR_FORMAT && strstr(ds_last_error(), "net.safetensors: not a classic model"));
    return TEST_PASS;
}

/* status st with a message holding text. */
static int expect(ds_status st, ds_status want, const char *text, char *msg_, size_t cap_)
{
    if (st != want || !strstr(ds_last_error(), text))
        FAIL("status %d (expected %d), message '%s' lacks '%s'", (int)st, (int)want,
             ds_last_error(), text);
    return 0;
}

TEST(classic_bad_input)
{
    ds_classic *m = NULL;
    CHECK_OK(expect(ds_classic_create("forest", &m), DS_ERR_ARG,
                    "unknown classic method 'forest' (methods: logistic, linear, knn, "
                    "random-forest, gradient-boosting, svm, kmeans, pca)",
                    msg_, cap_));
    CHECK(!ds_classic_create("logistic", &m));
    int rc = expect(ds_classic_set(m, "k", "3"), DS_ERR_ARG, "classic method 'logistic' has no "
                    "option 'k' (its options: C, solver, max-iter, tol)", msg_, cap_);
    if (!rc)
        rc = expect(ds_classic_set(m, "solver", "sgd"), DS_ERR_ARG, "solver 'sgd' is not one "
                    "of lbfgs|newton", msg_, cap_);
    if (!rc)
        rc = expect(ds_classic_set(m, "C", "-1"), DS_ERR_ARG, "C '-1' is not a number", msg_,
                    cap_);
    if (!rc)
        rc = expect(ds_classic_set_features(m, "hog:0"), DS_ERR_ARG, "features 'hog:0' are not",
                    msg_, cap_);
    ds_tensor *x, *y;
    blobs(30, 4, 1, &x, &y);
    ds_tensor_data(x)[13] = NAN;
    if (!rc)
        rc = expect(ds_classic_fit(m, x, y, 0), DS_ERR_VALUE, "data", msg_, cap_);
    ds_tensor_data(x)[13] = 0;
    ds_tensor_data(y)[3] = 1.5f;
    if (!rc)
        rc = expect(ds_classic_fit(m, x, y, 0), DS_ERR_VALUE, "class labels must be integers",
                    msg_, cap_);
    ds_tensor_data(y)[3] = 0;
    ds_classic_free(m);
    m = NULL;
    if (!rc && !(rc = ds_classic_create("knn", &m)) && !(rc = ds_classic_set(m, "k", "31")))
        rc = expect(ds_classic_fit(m, x, y, 0), DS_ERR_ARG, "knn: k = 31 is more than the 30 "
                    "training samples", msg_, cap_);
    ds_classic_free(m);
    m = NULL;
    if (!rc && !(rc = ds_classic_create("pca", &m)) && !(rc = ds_classic_set(m, "components", "5")))
        rc = expect(ds_classic_fit(m, x, NULL, 0), DS_ERR_ARG, "pca: components = 5 but the data "
                    "have 4 features", msg_, cap_);
    ds_classic_free(m);
    m = NULL;
    if (!rc && !(rc = ds_classic_create("logistic", &m)) && !(rc = ds_classic_fit(m, x, y, 0))) {
        int64_t s2[2] = {2, 5};
        ds_tensor *z = ds_tensor_create(2, s2), *p = NULL;
        rc = expect(ds_classic_predict(m, z, &p), DS_ERR_SHAPE, "samples of shape [5], the model "
                    "was fitted on samples of shape [4]", msg_, cap_);
        ds_tensor_free(z);
    }
    ds_classic_free(m);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* Every case's predictions at 1 and at 3 threads: the same bits. */
TEST(classic_same_results_at_any_thread_count)
{
    int keep = ds_get_num_threads(), rc = TEST_PASS;
    for (int c = 0; c < N_CASES && rc == TEST_PASS; c++) {
        ds_tensor *p[2] = {0}, *x = NULL, *y = NULL;
        for (int t = 0; t < 2; t++) {
            ds_set_num_threads(t ? 3 : 1);
            ds_classic *m = case_model(&cases[c], &x, &y);
            if (m)
                ds_classic_predict(m, x, &p[t]);
            ds_classic_free(m);
            ds_tensor_free(x), ds_tensor_free(y);
        }
        if (!same_bits(p[0], p[1])) {
            snprintf(msg_, cap_, "case %d (%s): 1 and 3 threads disagree", c, cases[c].method);
            rc = TEST_FAIL;
        }
        ds_tensor_free(p[0]), ds_tensor_free(p[1]);
    }
    ds_set_num_threads(keep);
    return rc;
}

TEST(classic_kd_tree_matches_brute_force)
{
    ds_tensor *x, *y, *q, *qy, *p[2] = {0};
    blobs(3000, 4, 5, &x, &y);
    blobs(400, 4, 6, &q, &qy);
    const char *algo[] = {"brute", "kd-tree"};
    for (int w = 0; w < 2; w++) {
        for (int a = 0; a < 2; a++) {
            const char *kv[] = {"k", "7", "algorithm", algo[a], "weights",
                                w ? "distance" : "uniform", NULL};
            ds_classic *m = fitted("knn", kv, NULL, NULL, x, y);
            CHECK(m && !ds_classic_predict(m, q, &p[a]));
            ds_classic_free(m);
        }
        bool same = same_bits(p[0], p[1]);
        ds_tensor_free(p[0]), ds_tensor_free(p[1]);
        if (!same)
            FAIL("weights %s: the k-d tree's neighbours differ from brute force's",
                 w ? "distance" : "uniform");
    }
    ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(q), ds_tensor_free(qy);
    return TEST_PASS;
}

TEST(classic_features)
{
    ds_tensor *x, *y, *f = NULL;
    stamps(3, &x, &y);
    CHECK(!ds_classic_features("moments", x, &f));
    CHECK(ds_tensor_shape(f)[0] == 3 && ds_tensor_shape(f)[1] == 8);
    for (int i = 0; i < 3; i++) {   /* sigma grows with the class; round: e ~ 0; measured */
        const float *r = ds_tensor_data(f) + 8 * i;
        CHECK_NEAR(r[1], 1.2 + 0.6 * i, 0.1);
        CHECK(fabsf(r[2]) < 0.05f && r[7] == 1);
    }
    ds_tensor_free(f);
    CHECK(!ds_classic_features("pixels", x, &f));
    CHECK(ds_tensor_shape(f)[1] == 144 && !memcmp(ds_tensor_data(f), ds_tensor_data(x),
                                                  144 * 3 * sizeof(float)));
    ds_tensor_free(f);
    CHECK(!ds_classic_features("hog:9:4:3", x, &f));   /* 3x3 cells, one block */
    CHECK(ds_tensor_shape(f)[1] == 81);
    ds_tensor_free(f);
    ds_status st = ds_classic_features("hog:9:8:3", x, &f);
    ds_tensor_free(x), ds_tensor_free(y);
    CHECK(st == DS_ERR_SHAPE && strstr(ds_last_error(), "hold no block of 3 x 3 cells of 8"));
    return TEST_PASS;
}
