/* test_norm.c - dropout (masks, statistics, modes, reproducibility) and batch normalization
 * (gradients in train and eval mode, running statistics, PyTorch fixtures, errors). */
#include "test.h"

#include "../src/internal.h"

/* ---------------------------------------------------------------- dropout */

/* Builds x [shape] -> dropout(rate) on a new graph with the given seed and mode. */
static ds_graph *dropout_graph(ds_model *m, uint64_t seed, int mode, int ndim,
                               const int64_t *shape, float rate, ds_node **x, ds_node **y)
{
    ds_graph *g = ds_graph_create(m, seed);
    *x = ds_input(g, "x", ndim, shape);
    *y = ds_dropout(g, *x, rate);
    ds_graph_set_mode(g, mode);
    ds_graph_plan(g);
    return g;
}

TEST(dropout_gradcheck_with_fixed_mask)
{
    ds_model *m = ds_model_create(1);
    ds_node *x, *y;
    ds_graph *g = dropout_graph(m, 7, DS_MODE_TRAIN, 3, (int64_t[]){ 3, 7, 5 }, 0.4f, &x, &y);
    CHECK(y);
    ds_node_requires_grad(x, 1);
    ds_graph_plan(g);
    ds_rng r;
    ds_rng_seed(&r, 2);
    fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
    CHECK_OK(gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_));
    /* some were dropped and some kept in that pass */
    int zeros = 0;
    for (int64_t i = 0; i < ds_node_numel(y); i++)
        zeros += ds_node_data(y)[i] == 0;
    CHECK(zeros > 10 && zeros < 95);
    ds_graph_set_mode(g, DS_MODE_EVAL);
    CHECK_OK(gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_));
    ds_graph_set_batch(g, 1);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    ds_graph_plan(g);
    fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
    CHECK_OK(gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(dropout_statistics)
{
    const float rates[] = { 0.1f, 0.5f, 0.8f };
    char note[128] = "";
    for (int k = 0; k < 3; k++) {
        ds_model *m = ds_model_create(1);
        ds_node *x, *y;
        ds_graph *g = dropout_graph(m, 42, DS_MODE_TRAIN, 2, (int64_t[]){ 1000, 100 }, rates[k],
                                    &x, &y);
        CHECK(y);
        float *xd = ds_node_data(x);
        for (int i = 0; i < 100000; i++)
            xd[i] = 1.0f + (float)(i % 7);
        float scale = (float)(1.0 / (1.0 - rates[k]));
        for (int pass = 0; pass < 2; pass++) {
            CHECK(ds_graph_forward(g) == DS_OK);
            const float *yd = ds_node_data(y);
            int64_t dropped = 0;
            for (int i = 0; i < 100000; i++) {
                if (yd[i] == 0)
                    dropped++;
                else if (yd[i] != xd[i] * scale)
                    FAIL("rate %g: y[%d] = %g, expected %g * %g", rates[k], i, yd[i], xd[i], scale);
            }
            double frac = dropped / 1e5;
            /* 5 standard deviations of a binomial proportion: < 0.0065 */
            if (fabs(frac - rates[k]) > 0.0065)
                FAIL("rate %g: dropped fraction %.4f", rates[k], frac);
            if (pass == 0)
                dsi_snprintf_cat(note, sizeof note, "%s%.3f", k ? ", " : "dropped ", frac);
        }
        ds_graph_free(g);
        ds_model_free(m);
    }
    snprintf(msg_, cap_, "%s", note);
    return TEST_PASS;
}

TEST(dropout_modes)
{
    ds_model *m = ds_model_create(1);
    ds_node *x, *y;
    int64_t shape[2] = { 20, 50 };
    ds_graph *g = dropout_graph(m, 3, DS_MODE_EVAL, 2, shape, 0.5f, &x, &y);
    CHECK(y);
    ds_node_requires_grad(x, 1);
    ds_graph_plan(g);
    ds_rng r;
    ds_rng_seed(&r, 4);
    fill_away(ds_node_data(x), 1000, -1, 1, 0.01f, &r);
    float seed[1000];
    fill_uniform(seed, 1000, -1, 1, &r);
    /* eval: identity forward and backward */
    CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, seed) == DS_OK);
    CHECK(!memcmp(ds_node_data(y), ds_node_data(x), sizeof seed));
    CHECK(!memcmp(ds_node_grad(x), seed, sizeof seed));
    /* MC dropout and train drop; batch-norm-only flags do not */
    int modes[] = { DS_MODE_MC_DROPOUT, DS_MODE_TRAIN, DS_BN_BATCH | DS_BN_UPDATE };
    for (int k = 0; k < 3; k++) {
        ds_graph_set_mode(g, modes[k]);
        CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, seed) == DS_OK);
        int zeros = 0;
        for (int i = 0; i < 1000; i++) {
            zeros += ds_node_data(y)[i] == 0;
            if ((ds_node_data(y)[i] == 0) != (ds_node_grad(x)[i] == 0))
                FAIL("mode %d: mask of y and dx differ at %d", modes[k], i);
        }
        if (k < 2 && (zeros < 400 || zeros > 600))
            FAIL("mode %d: %d of 1000 dropped", modes[k], zeros);
        if (k == 2 && zeros)
            FAIL("mode %d (no DS_DROPOUT_ON) dropped %d", modes[k], zeros);
    }
    ds_graph_free(g);

    /* rate 0 is the identity even in training */
    g = dropout_graph(m, 3, DS_MODE_TRAIN, 2, shape, 0.0f, &x, &y);
    CHECK(y);
    fill_away(ds_node_data(x), 1000, -1, 1, 0.01f, &r);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK(!memcmp(ds_node_data(y), ds_node_data(x), sizeof seed));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* Keep-pattern of one forward as bits in a byte array (y != 0 with x != 0). */
static void mask_of(ds_node *y, uint8_t *mask, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        mask[i] = ds_node_data(y)[i] != 0;
}

TEST(dropout_masks_reproducible_and_fresh)
{
    enum { N = 40000 };
    static uint8_t a0[N], a1[N], b0[N], c0[N], d0[N], t1[N];
    int64_t shape[2] = { 200, 200 };
    ds_model *m = ds_model_create(1);
    ds_node *x, *y;
    int keep = ds_get_num_threads();
    /* graph A: seed 5, two forwards */
    ds_graph *g = dropout_graph(m, 5, DS_MODE_TRAIN, 2, shape, 0.3f, &x, &y);
    for (int i = 0; i < N; i++)
        ds_node_data(x)[i] = 1;
    CHECK(ds_graph_forward(g) == DS_OK);
    mask_of(y, a0, N);
    CHECK(ds_graph_forward(g) == DS_OK);
    mask_of(y, a1, N);
    ds_graph_free(g);
    /* graph B: same seed, one thread */
    ds_set_num_threads(1);
    g = dropout_graph(m, 5, DS_MODE_TRAIN, 2, shape, 0.3f, &x, &y);
    for (int i = 0; i < N; i++)
        ds_node_data(x)[i] = 1;
    CHECK(ds_graph_forward(g) == DS_OK);
    mask_of(y, b0, N);
    CHECK(ds_graph_forward(g) == DS_OK);
    mask_of(y, t1, N);
    ds_graph_free(g);
    ds_set_num_threads(keep);
    /* graph C: another seed */
    g = dropout_graph(m, 6, DS_MODE_TRAIN, 2, shape, 0.3f, &x, &y);
    for (int i = 0; i < N; i++)
        ds_node_data(x)[i] = 1;
    CHECK(ds_graph_forward(g) == DS_OK);
    mask_of(y, c0, N);
    ds_graph_free(g);
    /* graph D: two dropout layers of the same shape in one graph draw different masks */
    ds_model_free(m);
    m = ds_model_create(1);
    g = ds_graph_create(m, 5);
    x = ds_input(g, "x", 2, shape);
    ds_node *y1 = ds_dropout(g, x, 0.3f), *y2 = ds_dropout(g, x, 0.3f);
    CHECK(y1 && y2);
    CHECK(!strcmp(ds_node_layer_name(y1), "dropout_1") && !strcmp(ds_node_layer_name(y2), "dropout_2"));
    CHECK(!strcmp(g->layers[y1->layer].type, "Dropout"));
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    ds_graph_plan(g);
    for (int i = 0; i < N; i++)
        ds_node_data(x)[i] = 1;
    CHECK(ds_graph_forward(g) == DS_OK);
    mask_of(y2, d0, N);
    int same_d = 0;
    for (int i = 0; i < N; i++)
        same_d += (ds_node_data(y1)[i] != 0) == d0[i];
    ds_graph_free(g);
    ds_model_free(m);

    CHECK(!memcmp(a0, b0, N));   /* same seed, any thread count */
    CHECK(!memcmp(a1, t1, N));
    int same_step = 0, same_seed = 0;
    for (int i = 0; i < N; i++) {
        same_step += a0[i] == a1[i];
        same_seed += a0[i] == c0[i];
    }
    /* independent masks agree on about 0.7^2 + 0.3^2 = 58% of the elements */
    if (same_step > N * 0.62 || same_seed > N * 0.62 || same_d > N * 0.62)
        FAIL("masks too similar: %d (next step), %d (other seed), %d (other layer) of %d",
             same_step, same_seed, same_d, N);
    return TEST_PASS;
}

TEST(dropout_rate_errors)
{
    ds_model *m = ds_model_create(1);
    const float bad[] = { 1.0f, 1.5f, -0.1f, NAN };
    for (int k = 0; k < 4; k++) {
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 2, (int64_t[]){ 2, 3 });
        CHECK(!ds_dropout(g, x, bad[k]));
        CHECK(ds_graph_status(g) == DS_ERR_ARG);
        if (!strstr(ds_last_error(), "dropout_") || !strstr(ds_last_error(), "rate"))
            FAIL("message: %s", ds_last_error());
        ds_graph_free(g);
    }
    ds_model_free(m);
    return TEST_PASS;
}

/* ---------------------------------------------------------------- batch norm */

static ds_node *bn_param(ds_node *y, const char *suffix)
{
    for (int i = 1; i < y->n_in; i++) {
        const char *n = y->in[i]->param->name, *dot = strrchr(n, '.');
        if (dot && !strcmp(dot + 1, suffix))
            return y->in[i];
    }
    return NULL;
}

/* eps 0: the default. */
static int bn_gradcheck_case(int ndim, const int64_t *shape, int mode, float eps, char *msg,
                             size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", ndim, shape);
    ds_node *y = ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "bn", .eps = eps });
    int rc = 1;
    if (!y) {
        snprintf(msg, cap, "batchnorm: %s", ds_last_error());
        goto done;
    }
    ds_node_requires_grad(x, 1);
    ds_graph_set_mode(g, mode);
    ds_graph_plan(g);
    ds_rng r;
    ds_rng_seed(&r, 17);
    fill_uniform(ds_node_data(x), ds_node_numel(x), -2, 2, &r);
    int64_t C = shape[1];
    fill_uniform(ds_param_data(ds_model_find(m, "bn.weight")), C, 0.5f, 1.5f, &r);
    fill_uniform(ds_param_data(ds_model_find(m, "bn.bias")), C, -0.5f, 0.5f, &r);
    fill_uniform(ds_param_data(ds_model_find(m, "bn.running_mean")), C, -0.5f, 0.5f, &r);
    fill_uniform(ds_param_data(ds_model_find(m, "bn.running_var")), C, 0.5f, 2.0f, &r);
    ds_node *wrt[3] = { x, bn_param(y, "weight"), bn_param(y, "bias") };
    rc = gradcheck(g, y, 3, wrt, 1e-2, 2e-5, 1e-3, msg, cap);
    if (rc) {
        size_t l = strlen(msg);
        snprintf(msg + l, cap - l, " [%s, mode %d]", dsi_shape_str(ndim, shape), mode);
    }
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(batchnorm_gradcheck_train_and_eval)
{
    const int64_t s2[] = { 5, 3 }, s4[] = { 2, 3, 3, 4 }, s5[] = { 2, 2, 2, 3, 3 },
                  s3[] = { 3, 2, 5 }, s4b1[] = { 1, 2, 3, 3 }, s2b2[] = { 2, 4 };
    const int modes[] = { DS_MODE_TRAIN, DS_BN_BATCH, DS_MODE_EVAL };
    for (int k = 0; k < 3; k++) {
        CHECK_OK(bn_gradcheck_case(2, s2, modes[k], 0, msg_, cap_));
        CHECK_OK(bn_gradcheck_case(3, s3, modes[k], 0, msg_, cap_));
        CHECK_OK(bn_gradcheck_case(4, s4, modes[k], 0, msg_, cap_));
        CHECK_OK(bn_gradcheck_case(5, s5, modes[k], 0, msg_, cap_));
        CHECK_OK(bn_gradcheck_case(4, s4b1, modes[k], 0, msg_, cap_));
        /* Two values per channel normalize to +-1 up to eps, so with the default eps their
         * gradient is a rounding-sized remainder that differences cannot measure (errors
         * of 100% on it); a large eps makes the batch-of-two path measurable. */
        CHECK_OK(bn_gradcheck_case(2, s2b2, modes[k], 0.5f, msg_, cap_));
    }
    return TEST_PASS;
}

/* Largest |got - want| / max(|want|, 0.01) after fixture_compare passed. */
static int compare_rel(const ds_tensor_set *fx, const char *key, const float *got, int64_t n,
                       double *max_rel, char *msg, size_t cap)
{
    if (fixture_compare(fx, key, got, n, 1e-4, 1e-5, msg, cap))
        return 1;
    const float *want = fixture_data(fx, key, NULL, msg, cap);
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), 0.01);
        if (e > *max_rel)
            *max_rel = e;
    }
    return 0;
}

static int bn_fixture_case(const ds_tensor_set *fx, int i, double *max_rel, char *msg, size_t cap)
{
    char key[64];
#define KEY(s) (snprintf(key, sizeof key, "bn%d.%s", i, s), key)
    ds_tensor *x0 = ds_tensor_set_get(fx, KEY("x0"));
    const float *cfg = fixture_data(fx, KEY("cfg"), NULL, msg, cap);
    if (!x0 || !cfg) {
        snprintf(msg, cap, "bn%d: fixture incomplete", i);
        return 1;
    }
    int no_affine = cfg[0] != 0, rc = 1;
    int nd = ds_tensor_ndim(x0);
    int64_t C = ds_tensor_shape(x0)[1], n = ds_tensor_numel(x0);
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", nd, ds_tensor_shape(x0));
    ds_node *y = ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "bn", .no_affine = no_affine });
    ds_param *w = ds_model_find(m, "bn.weight"), *b = ds_model_find(m, "bn.bias");
    ds_param *rm = ds_model_find(m, "bn.running_mean"), *rv = ds_model_find(m, "bn.running_var");
    const float *seed = fixture_data(fx, KEY("r"), NULL, msg, cap);
    if (!y || !rm || !rv || !seed || (!no_affine && (!w || !b)) || (no_affine && (w || b))) {
        snprintf(msg, cap, "bn%d: build: %s", i, ds_last_error());
        goto done;
    }
    ds_node_requires_grad(x, 1);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    if (ds_graph_plan(g))
        goto done;
    if (!no_affine) {
        const float *gm = fixture_data(fx, KEY("gamma"), NULL, msg, cap);
        const float *bt = fixture_data(fx, KEY("beta"), NULL, msg, cap);
        if (!gm || !bt)
            goto done;
        memcpy(ds_param_data(w), gm, (size_t)C * sizeof(float));
        memcpy(ds_param_data(b), bt, (size_t)C * sizeof(float));
    }
    ds_model_zero_grad(m);
    if (ds_graph_set_input(g, x, ds_tensor_data(x0), n) || ds_graph_forward(g) ||
        ds_graph_backward_seed(g, y, seed)) {
        snprintf(msg, cap, "bn%d: train pass: %s", i, ds_last_error());
        goto done;
    }
    if (compare_rel(fx, KEY("y"), ds_node_data(y), n, max_rel, msg, cap) ||
        compare_rel(fx, KEY("dx"), ds_node_grad(x), n, max_rel, msg, cap))
        goto done;
    if (!no_affine && (compare_rel(fx, KEY("dgamma"), ds_param_grad(w), C, max_rel, msg, cap) ||
                       compare_rel(fx, KEY("dbeta"), ds_param_grad(b), C, max_rel, msg, cap)))
        goto done;
    coverage_mark_all(y, COVER_TORCH);
    for (int k = 1; k < 3; k++) {
        const float *xk = fixture_data(fx, KEY(k == 1 ? "x1" : "x2"), NULL, msg, cap);
        if (!xk || ds_graph_set_input(g, x, xk, n) || ds_graph_forward(g))
            goto done;
    }
    if (compare_rel(fx, KEY("running_mean"), ds_param_data(rm), C, max_rel, msg, cap) ||
        compare_rel(fx, KEY("running_var"), ds_param_data(rv), C, max_rel, msg, cap))
        goto done;
    /* eval mode with those running statistics */
    ds_graph_set_mode(g, DS_MODE_EVAL);
    const float *xe = fixture_data(fx, KEY("xe"), NULL, msg, cap);
    const float *re = fixture_data(fx, KEY("re"), NULL, msg, cap);
    if (!xe || !re || ds_graph_set_input(g, x, xe, n) || ds_graph_forward(g) ||
        ds_graph_backward_seed(g, y, re)) {
        snprintf(msg, cap, "bn%d: eval pass: %s", i, ds_last_error());
        goto done;
    }
    if (compare_rel(fx, KEY("ye"), ds_node_data(y), n, max_rel, msg, cap) ||
        compare_rel(fx, KEY("dxe"), ds_node_grad(x), n, max_rel, msg, cap))
        goto done;
    /* eval does not move the running statistics */
    rc = compare_rel(fx, KEY("running_mean"), ds_param_data(rm), C, max_rel, msg, cap);
#undef KEY
done:
    if (rc && !strstr(msg, "bn"))
        dsi_snprintf_cat(msg, cap, " (case bn%d)", i);
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(batchnorm_matches_pytorch)
{
    ds_tensor_set *fx = fixture_load("pool_norm", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    double max_rel = 0;
    int n = 0, rc = 0;
    for (; !rc; n++) {
        char key[32];
        snprintf(key, sizeof key, "bn%d.cfg", n);
        if (!ds_tensor_set_get(fx, key))
            break;
        rc = bn_fixture_case(fx, n, &max_rel, msg_, cap_);
    }
    ds_tensor_set_free(fx);
    if (rc)
        return TEST_FAIL;
    if (n < 6)
        FAIL("only %d batchnorm cases in the fixture", n);
    snprintf(msg_, cap_, "%d cases, max rel err %.2g", n, max_rel);
    return TEST_PASS;
}

TEST(batchnorm_parameters_and_modes)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){ 4, 3, 2, 2 });
    ds_node *y = ds_batchnorm(g, x, NULL);
    ds_node *y2 = ds_batchnorm(g, y, &(ds_batchnorm_opts){ .no_affine = 1 });
    CHECK(y && y2);
    ds_node_keep(y, 1);   /* read after forward */
    CHECK(!strcmp(ds_node_layer_name(y), "batch_normalization_1"));
    CHECK(!strcmp(ds_node_layer_name(y2), "batch_normalization_2"));
    CHECK(!strcmp(g->layers[y->layer].type, "BatchNormalization"));
    CHECK(ds_model_param_count(m) == 6);
    CHECK(ds_model_numel(m, 1) == 6);   /* only weight and bias of the first are trainable */
    const char *names[] = { "batch_normalization_1.weight", "batch_normalization_1.bias",
                            "batch_normalization_1.running_mean",
                            "batch_normalization_1.running_var",
                            "batch_normalization_2.running_mean",
                            "batch_normalization_2.running_var" };
    const float init[] = { 1, 0, 0, 1, 0, 1 };
    for (int i = 0; i < 6; i++) {
        ds_param *p = ds_model_find(m, names[i]);
        CHECK(p && ds_param_numel(p) == 3);
        CHECK(ds_param_trainable(p) == (i < 2));
        CHECK(ds_param_data(p)[0] == init[i] && ds_param_data(p)[2] == init[i]);
    }
    float *rm = ds_param_data(ds_model_find(m, names[2]));
    ds_graph_plan(g);
    float *xd = ds_node_data(x);
    for (int i = 0; i < 48; i++)
        xd[i] = (float)(i % 5) + 1.0f;
    /* eval: running stats (0, 1) -> y = x / sqrt(1 + eps), nothing updated */
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK_NEAR(ds_node_data(y)[7], xd[7] / sqrtf(1 + 1e-5f), 1e-6);
    CHECK(rm[0] == 0);
    /* batch statistics without DS_BN_UPDATE: normalized, running untouched */
    ds_graph_set_mode(g, DS_BN_BATCH);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK(rm[0] == 0);
    double s = 0;
    for (int n = 0; n < 4; n++)
        for (int i = 0; i < 4; i++)
            s += ds_node_data(y)[n * 12 + i];
    CHECK_NEAR(s / 16, 0, 1e-5);
    /* train: running mean moves by momentum 0.1 */
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    CHECK(ds_graph_forward(g) == DS_OK);
    double mean0 = 0;
    for (int n = 0; n < 4; n++)
        for (int i = 0; i < 4; i++)
            mean0 += xd[n * 12 + i] / 16.0;
    CHECK_NEAR(rm[0], 0.1 * mean0, 1e-6);
    ds_graph_free(g);

    /* a second graph with the same layer name shares the running statistics */
    g = ds_graph_create(m, 2);
    x = ds_input(g, "x", 4, (int64_t[]){ 4, 3, 2, 2 });
    CHECK(ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "batch_normalization_1" }));
    CHECK(ds_model_param_count(m) == 6);
    /* a different channel count under that name is refused */
    ds_node *x5 = ds_input(g, "x5", 2, (int64_t[]){ 4, 5 });
    CHECK(!ds_batchnorm(g, x5, &(ds_batchnorm_opts){ .name = "batch_normalization_1" }));
    CHECK(strstr(ds_last_error(), "batch_normalization_1"));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(batchnorm_batch_of_one_is_a_value_error)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){ 1, 4 });
    ds_node *y = ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "bn1" });
    CHECK(y);
    ds_graph_plan(g);
    for (int i = 0; i < 4; i++)
        ds_node_data(x)[i] = (float)i;
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    CHECK(ds_graph_forward(g) == DS_ERR_VALUE);
    const char *e = ds_last_error();
    if (!strstr(e, "bn1") || !strstr(e, "more than 1 value per channel") || !strstr(e, "[1, 4]"))
        FAIL("message: %s", e);
    for (int i = 0; i < 4; i++)
        CHECK(!isnan(ds_node_data(y)[i]));
    CHECK(ds_param_data(ds_model_find(m, "bn1.running_mean"))[1] == 0);
    /* eval mode works with a batch of one */
    ds_graph_set_mode(g, DS_MODE_EVAL);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK_NEAR(ds_node_data(y)[3], 3 / sqrtf(1 + 1e-5f), 1e-6);
    /* a batch of one is fine with spatial positions */
    ds_graph *g2 = ds_graph_create(m, 1);
    ds_node *x2 = ds_input(g2, "x", 3, (int64_t[]){ 1, 4, 2 });
    CHECK(ds_batchnorm(g2, x2, NULL));
    ds_graph_set_mode(g2, DS_MODE_TRAIN);
    CHECK(ds_graph_forward(g2) == DS_OK);
    ds_graph_free(g2);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(batchnorm_errors)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 1, (int64_t[]){ 4 });
    CHECK(!ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "bnx" }));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    if (!strstr(ds_last_error(), "bnx") || !strstr(ds_last_error(), "[4]"))
        FAIL("message: %s", ds_last_error());
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){ 4, 2 });
    CHECK(!ds_batchnorm(g, x, &(ds_batchnorm_opts){ .momentum = 1.5f }));
    CHECK(ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){ 4, 2 });
    CHECK(!ds_batchnorm(g, x, &(ds_batchnorm_opts){ .eps = -1 }));
    CHECK(ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* ---- batch norm against a reference in double ----
 * Runs of at least 64 values per sample and channel take the per-channel kernels, shorter
 * ones the column blocks ([N, C] among them); both must match. */

/* Train (batch statistics, running statistics updated once) or eval mode of affine batch
 * norm on x [N, C, S], seed r: y, dx, dgamma, dbeta and the running statistics rm, rv.
 * scale[c] = gamma rstd max |x|: float rounding of y = a x + b (and of x - mean in dx) is
 * relative to it, large where a channel's variance is small. */
static void ref_bn(bool train, int64_t N, int64_t C, int64_t S, const float *x,
                   const float *gamma, const float *beta, const float *r, float *y, float *dx,
                   float *dg, float *db, float *rm, float *rv, float *scale)
{
    const double eps = 1e-5, mom = 0.1;
    int64_t M = N * S;
    for (int64_t c = 0; c < C; c++) {
        double mu = rm[c], var = rv[c];
        if (train) {
            double s = 0, ss = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++)
                    s += x[(n * C + c) * S + i];
            mu = s / (double)M;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++) {
                    double d = x[(n * C + c) * S + i] - mu;
                    ss += d * d;
                }
            var = ss / (double)M;
            rm[c] = (float)((1 - mom) * rm[c] + mom * mu);
            rv[c] = (float)((1 - mom) * rv[c] + mom * var * (double)M / (double)(M - 1));
        }
        double rs = 1 / sqrt(var + eps), sdy = 0, sdyxh = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t j = (n * C + c) * S + i;
                double xh = (x[j] - mu) * rs;
                y[j] = (float)(gamma[c] * xh + beta[c]);
                sdy += r[j];
                sdyxh += r[j] * xh;
            }
        double xmax = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++)
                xmax = fmax(xmax, fabs(x[(n * C + c) * S + i]));
        scale[c] = (float)(fabs(gamma[c]) * rs * xmax);
        dg[c] = (float)sdyxh;
        db[c] = (float)sdy;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t j = (n * C + c) * S + i;
                double xh = (x[j] - mu) * rs;
                dx[j] = (float)(train ? gamma[c] * rs / (double)M *
                                            ((double)M * r[j] - sdy - xh * sdyxh)
                                      : gamma[c] * rs * r[j]);
            }
    }
}

/* Largest |got - want| over (1e-5 + 1e-4 |want| + 1e-6 scale), above 1 on a failure; *at:
 * where. Element i has scale[i / per] (NULL: 0). */
static double worst(const float *got, const float *want, int64_t n, const float *scale,
                    int64_t per, int64_t *at)
{
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        double sc = scale ? scale[i / per] : 0;
        double e = fabs((double)got[i] - want[i]) / (1e-5 + 1e-4 * fabs(want[i]) + 1e-6 * sc);
        if (!(e <= w)) {
            w = e;
            *at = i;
        }
    }
    return w;
}

/* One train or eval pass of affine batch norm on shape against ref_bn. */
static int bn_reference_case(int ndim, const int64_t *shape, bool train, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", ndim, shape);
    ds_node *y = ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "bn" });
    int64_t N = shape[0], C = shape[1], n = dsi_numel(ndim, shape), S = n / (N * C);
    float *buf = malloc((size_t)(4 * n + 7 * C) * sizeof *buf);
    float *r = buf, *ry = r + n, *rdx = ry + n, *gy = rdx + n, *gamma = gy + n, *beta = gamma + C;
    float *rdg = beta + C, *rdb = rdg + C, *rrm = rdb + C, *rrv = rrm + C, *sc = rrv + C;
    int rc = 1;
    ds_param *w = ds_model_find(m, "bn.weight"), *b = ds_model_find(m, "bn.bias");
    ds_param *rm = ds_model_find(m, "bn.running_mean"), *rv = ds_model_find(m, "bn.running_var");
    if (!y || ds_node_requires_grad(x, 1) || (ds_graph_set_mode(g, train ? DS_MODE_TRAIN
                                                                         : DS_MODE_EVAL),
                                              ds_graph_plan(g))) {
        snprintf(msg, cap, "build: %s", ds_last_error());
        goto done;
    }
    ds_rng rng;
    ds_rng_seed(&rng, (uint64_t)(n + train));
    /* an offset mean, as after a convolution */
    fill_uniform(ds_node_data(x), n, 2.0f, 4.0f, &rng);
    fill_uniform(r, n, -1, 1, &rng);
    fill_uniform(gamma, C, 0.5f, 1.5f, &rng);
    fill_uniform(beta, C, -0.5f, 0.5f, &rng);
    fill_uniform(rrm, C, 2.5f, 3.5f, &rng);
    fill_uniform(rrv, C, 0.2f, 0.5f, &rng);
    memcpy(ds_param_data(w), gamma, (size_t)C * sizeof *gamma);
    memcpy(ds_param_data(b), beta, (size_t)C * sizeof *beta);
    memcpy(ds_param_data(rm), rrm, (size_t)C * sizeof *rrm);
    memcpy(ds_param_data(rv), rrv, (size_t)C * sizeof *rrv);
    ref_bn(train, N, C, S, ds_node_data(x), gamma, beta, r, ry, rdx, rdg, rdb, rrm, rrv, sc);
    ds_model_zero_grad(m);
    if (ds_graph_forward(g)) {
        snprintf(msg, cap, "forward: %s", ds_last_error());
        goto done;
    }
    memcpy(gy, ds_node_data(y), (size_t)n * sizeof *gy);
    if (ds_graph_backward_seed(g, y, r)) {
        snprintf(msg, cap, "backward: %s", ds_last_error());
        goto done;
    }
    struct { const char *what; const float *got, *want; int64_t n; } cmp[] = {
        { "y", gy, ry, n }, { "dx", ds_node_grad(x), rdx, n },
        { "dgamma", ds_param_grad(w), rdg, C }, { "dbeta", ds_param_grad(b), rdb, C },
        { "running_mean", ds_param_data(rm), rrm, C }, { "running_var", ds_param_data(rv), rrv, C },
    };
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
        int64_t at = 0;
        /* y and dx per sample and channel: scale of channel (i / S) % C */
        bool per_value = k < 2;
        float *scs = per_value ? malloc((size_t)(N * C) * sizeof *scs) : NULL;
        for (int64_t j = 0; per_value && j < N * C; j++)
            scs[j] = sc[j % C];
        double e = worst(cmp[k].got, cmp[k].want, cmp[k].n, scs, S, &at);
        free(scs);
        if (e > 1) {
            snprintf(msg, cap, "%s[%lld] = %.8g, reference %.8g", cmp[k].what, (long long)at,
                     cmp[k].got[at], cmp[k].want[at]);
            goto done;
        }
    }
    rc = 0;
done:
    if (rc)
        dsi_snprintf_cat(msg, cap, " [%s, %s]", dsi_shape_str(ndim, shape),
                         train ? "train" : "eval");
    free(buf);
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(batchnorm_long_and_short_runs_match_reference)
{
    static const struct { int ndim; int64_t shape[5]; } cases[] = {
        { 4, { 3, 4, 9, 11 } },  { 3, { 1, 2, 130 } }, { 3, { 2, 3, 64 } },
        { 5, { 2, 2, 2, 5, 7 } }, { 3, { 5, 3, 7 } },  { 2, { 4, 6 } },
        { 2, { 6, 300 } },        { 3, { 3, 70, 3 } }, { 3, { 2, 5, 63 } },
        { 2, { 64, 257 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int train = 0; train < 2; train++)
            CHECK_OK(bn_reference_case(cases[i].ndim, cases[i].shape, train, msg_, cap_));
    return TEST_PASS;
}

/* Channels (or blocks of channels) are split over threads; each is summed in a fixed order. */
TEST(batchnorm_does_not_depend_on_thread_count)
{
    static const int64_t shapes[2][4] = { { 8, 16, 20, 20 }, { 512, 96 } };
    int keep = ds_get_num_threads();
    for (int s = 0; s < 2; s++) {
        int ndim = s ? 2 : 4;
        float *out[2] = { NULL, NULL };
        int64_t n = dsi_numel(ndim, shapes[s]), C = shapes[s][1], total = 2 * n + 4 * C;
        for (int t = 0; t < 2; t++) {
            ds_set_num_threads(t ? 3 : 1);
            ds_model *m = ds_model_create(1);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x = ds_input(g, "x", ndim, shapes[s]);
            ds_node *y = ds_batchnorm(g, x, &(ds_batchnorm_opts){ .name = "bn" });
            CHECK(y && ds_node_requires_grad(x, 1) == DS_OK);
            ds_graph_set_mode(g, DS_MODE_TRAIN);
            CHECK(ds_graph_plan(g) == DS_OK);
            ds_rng r;
            ds_rng_seed(&r, 9);
            fill_uniform(ds_node_data(x), n, -1, 3, &r);
            float *seed = malloc((size_t)n * sizeof *seed);
            fill_uniform(seed, n, -1, 1, &r);
            ds_model_zero_grad(m);
            CHECK(ds_graph_forward(g) == DS_OK);
            out[t] = malloc((size_t)total * sizeof(float));
            memcpy(out[t], ds_node_data(y), (size_t)n * sizeof(float));
            CHECK(ds_graph_backward_seed(g, y, seed) == DS_OK);
            memcpy(out[t] + n, ds_node_grad(x), (size_t)n * sizeof(float));
            const char *names[4] = { "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var" };
            for (int k = 0; k < 4; k++) {
                ds_param *p = ds_model_find(m, names[k]);
                memcpy(out[t] + 2 * n + k * C, k < 2 ? ds_param_grad(p) : ds_param_data(p),
                       (size_t)C * sizeof(float));
            }
            free(seed);
            ds_graph_free(g);
            ds_model_free(m);
        }
        ds_set_num_threads(keep);
        int same = !memcmp(out[0], out[1], (size_t)total * sizeof(float));
        free(out[0]);
        free(out[1]);
        if (!same)
            FAIL("%s: results differ between 1 and 3 threads", dsi_shape_str(ndim, shapes[s]));
    }
    return TEST_PASS;
}
