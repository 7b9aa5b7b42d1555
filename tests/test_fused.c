/* test_fused.c - a ReLU fused into a convolution or a dense layer gives what the separate
 * ops give: the same outputs and input and weight gradients bit for bit, the same bias
 * gradient to rounding (it is summed in another order). */
#include "test.h"

#include <stdbool.h>

typedef ds_node *(*layer_fn)(ds_graph *g, ds_node *x, bool fused);

/* Runs forward and backward (seeded with fixed random values) of the layer built fused or
 * as layer + separate ReLU on one model; returns output, input gradient, parameter
 * gradients, one after the other, in out (n values). */
static float *run(layer_fn build, ds_model *m, int ndim, const int64_t *xs, bool fused,
                  int64_t *n)
{
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", ndim, xs);
    ds_node *y = build(g, x, fused);
    float *out = forward_backward(g, x, y, 99, n);
    ds_graph_free(g);
    return out;
}

/* Fused against separate: values before bias_from bit for bit; from there (the bias
 * gradient is last in the model's gradient block) to 1e-6 relative. */
static int compare(layer_fn build, int ndim, const int64_t *xs, int64_t n_bias, char *msg,
                   size_t cap)
{
    ds_model *m = ds_model_create(5);
    int64_t na, nb;
    float *a = run(build, m, ndim, xs, true, &na), *b = run(build, m, ndim, xs, false, &nb);
    int rc = 0;
    if (!a || !b || na != nb) {
        snprintf(msg, cap, "run failed: %s", ds_last_error());
        rc = 1;
    }
    int64_t exact = 0;
    for (int64_t i = 0; !rc && i < na; i++) {
        bool same = a[i] == b[i];
        if (i < na - n_bias && !same) {
            snprintf(msg, cap, "value %lld of %lld differs: fused %.9g, separate %.9g",
                     (long long)i, (long long)na, a[i], b[i]);
            rc = 1;
        } else if (!same && !(fabs((double)a[i] - b[i]) <= 1e-6 * fmax(1.0, fabs(b[i])))) {
            snprintf(msg, cap, "bias gradient %lld: fused %.9g, separate %.9g",
                     (long long)(i - (na - n_bias)), a[i], b[i]);
            rc = 1;
        }
        exact += same;
    }
    if (!rc)
        snprintf(msg, cap, "%lld of %lld values identical", (long long)exact, (long long)na);
    free(a);
    free(b);
    ds_model_free(m);
    return rc;
}

static ds_node *conv_3x3(ds_graph *g, ds_node *x, bool fused)
{
    ds_conv_opts o = {.name = "c", .filters = 5, .kernel = {3}, .padding = DS_PAD_SAME,
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = fused ? DS_ACT_RELU : DS_ACT_NONE};
    ds_node *y = ds_conv(g, x, 2, &o);
    return fused ? y : ds_relu(g, y);
}

static ds_node *conv_3x3_wide(ds_graph *g, ds_node *x, bool fused)
{
    ds_conv_opts o = {.name = "cw", .filters = 8, .kernel = {3}, .padding = DS_PAD_SAME,
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = fused ? DS_ACT_RELU : DS_ACT_NONE};
    ds_node *y = ds_conv(g, x, 2, &o);
    return fused ? y : ds_relu(g, y);
}

static ds_node *conv_1x1(ds_graph *g, ds_node *x, bool fused)
{
    ds_conv_opts o = {.name = "p", .filters = 4, .kernel = {1},
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = fused ? DS_ACT_RELU : DS_ACT_NONE};
    ds_node *y = ds_conv(g, x, 2, &o);
    return fused ? y : ds_relu(g, y);
}

static ds_node *conv1d_strided(ds_graph *g, ds_node *x, bool fused)
{
    ds_conv_opts o = {.name = "s", .filters = 6, .kernel = {5}, .stride = {2},
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = fused ? DS_ACT_RELU : DS_ACT_NONE};
    ds_node *y = ds_conv(g, x, 1, &o);
    return fused ? y : ds_relu(g, y);
}

static ds_node *dense(ds_graph *g, ds_node *x, bool fused)
{
    ds_dense_opts o = {.name = "d", .units = 37, .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                       .activation = fused ? DS_ACT_RELU : DS_ACT_NONE};
    ds_node *y = ds_dense(g, x, &o);
    return fused ? y : ds_relu(g, y);
}

TEST(fused_relu_conv_matches_separate_ops)
{
    /* batch 1 (tiled path), batch 6 with one sample per product, batch 9 with small
     * outputs grouped several samples per product, the pointwise path, 1-D strided */
    CHECK_OK(compare(conv_3x3, 4, (int64_t[]){1, 3, 9, 7}, 5, msg_, cap_));
    CHECK_OK(compare(conv_3x3, 4, (int64_t[]){6, 3, 40, 33}, 5, msg_, cap_));
    CHECK_OK(compare(conv_3x3, 4, (int64_t[]){9, 2, 5, 6}, 5, msg_, cap_));
    CHECK_OK(compare(conv_1x1, 4, (int64_t[]){3, 3, 4, 5}, 4, msg_, cap_));
    CHECK_OK(compare(conv_1x1, 4, (int64_t[]){1, 3, 4, 5}, 4, msg_, cap_));
    CHECK_OK(compare(conv1d_strided, 3, (int64_t[]){10, 2, 31}, 6, msg_, cap_));
    /* 8 channels and filters: Winograd */
    CHECK_OK(compare(conv_3x3_wide, 4, (int64_t[]){3, 8, 11, 10}, 8, msg_, cap_));
    CHECK_OK(compare(conv_3x3_wide, 4, (int64_t[]){1, 8, 6, 7}, 8, msg_, cap_));
    return TEST_PASS;
}

TEST(fused_relu_dense_matches_separate_ops)
{
    CHECK_OK(compare(dense, 2, (int64_t[]){1, 20}, 37, msg_, cap_));
    CHECK_OK(compare(dense, 2, (int64_t[]){64, 50}, 37, msg_, cap_));
    return TEST_PASS;
}

/* ---- ReLUs fused at planning ----
 * A ReLU layer after a convolution, a dense layer or a batch norm whose value nothing else
 * reads runs inside that op; keep_all (which never fuses) gives the reference. */
static ds_node *cnn_bn(ds_graph *g, ds_node *x)
{
    ds_node *h = ds_conv(g, x, 2, &(ds_conv_opts){.filters = 8, .kernel = {3},
                                                  .padding = DS_PAD_SAME});
    h = ds_relu(g, ds_batchnorm(g, h, NULL));
    h = ds_pool(g, h, 2, DS_POOL_MAX, &(ds_pool_opts){.size = {2}});
    h = ds_relu(g, ds_conv(g, h, 2, &(ds_conv_opts){.filters = 8, .kernel = {3},
                                                    .padding = DS_PAD_SAME}));
    h = ds_relu(g, ds_batchnorm(g, h, NULL));   /* conv -> relu -> bn -> relu */
    h = ds_flatten(g, h);
    h = ds_relu(g, ds_dense(g, h, &(ds_dense_opts){.units = 16}));
    return ds_dense(g, h, &(ds_dense_opts){.units = 3});
}

/* Runs 2 training steps (forward, backward, SGD at lr; 0 keeps the parameters) and returns
 * the final output, input gradient and parameters; *bytes gets the planned memory. */
static float *train_cnn(bool keep_all, float lr, int64_t *n, size_t *bytes)
{
    ds_model *m = ds_model_create(21);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){6, 3, 12, 10});
    ds_node *y = cnn_bn(g, x);
    float *out = NULL;
    *n = 0;
    ds_optim *o = ds_optim_create(m, &(ds_optim_opts){.kind = DS_OPT_SGD, .lr = lr});
    if (y && o) {
        ds_graph_keep_all(g, keep_all);
        ds_node_requires_grad(x, 1);
        ds_graph_set_mode(g, DS_MODE_TRAIN);
        if (ds_graph_plan(g) == DS_OK) {
            *bytes = ds_graph_bytes(g);
            ds_rng r;
            ds_rng_seed(&r, 4);
            fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
            float seed[18];
            fill_uniform(seed, 18, -1, 1, &r);
            bool ok = true;
            for (int step = 0; ok && step < 2; step++) {
                ds_model_zero_grad(m);
                ok = ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, seed) == DS_OK &&
                     ds_optim_step(o) == DS_OK;
            }
            int64_t ny = ds_node_numel(y), nx = ds_node_numel(x), np = ds_model_numel(m, 0);
            if (ok && (out = malloc((size_t)(ny + nx + np) * sizeof *out))) {
                ds_graph_forward(g);
                memcpy(out, ds_node_data(y), (size_t)ny * sizeof *out);
                memcpy(out + ny, ds_node_grad(x), (size_t)nx * sizeof *out);
                memcpy(out + ny + nx, ds_model_data(m), (size_t)np * sizeof *out);
                *n = ny + nx + np;
            }
        }
    }
    ds_optim_free(o);
    ds_graph_free(g);
    ds_model_free(m);
    return out;
}

/* The first of n values whose difference, relative to max(1, |b|), exceeds tol (bad = -1
 * if none; tol 0: any difference), with the values there, the largest difference and how
 * many values are identical. */
typedef struct {
    int64_t bad, same;
    float av, bv;
    double worst;
} diff;

static void compare_values(const float *a, const float *b, int64_t n, double tol, diff *r)
{
    *r = (diff){.bad = -1};
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs(b[i]));
        r->same += a[i] == b[i];
        r->worst = fmax(r->worst, d);
        if (!(d <= tol) && r->bad < 0) {
            r->bad = i;
            r->av = a[i];
            r->bv = b[i];
        }
    }
}

TEST(fused_relu_at_planning_matches_separate_ops)
{
    int64_t na, nb;
    size_t bytes_fused = 0, bytes_all = 0;
    /* parameters held: output and input gradient bit for bit */
    float *a = train_cnn(false, 0.0f, &na, &bytes_fused), *b = train_cnn(true, 0.0f, &nb, &bytes_all);
    diff d0;
    int ok = a && b && na == nb && (compare_values(a, b, na, 0, &d0), 1);
    free(a);
    free(b);
    CHECK(ok);
    if (d0.bad >= 0)
        FAIL("parameters held: value %lld of %lld differs: fused %.9g, separate %.9g",
             (long long)d0.bad, (long long)na, d0.av, d0.bv);
    a = train_cnn(false, 0.1f, &na, &bytes_fused);
    b = train_cnn(true, 0.1f, &nb, &bytes_all);
    /* the bias gradients sum in another order, so two steps drift apart by rounding */
    diff d1;
    ok = a && b && na == nb && (compare_values(a, b, na, 2e-5, &d1), 1);
    free(a);
    free(b);
    CHECK(ok);
    if (d1.bad >= 0)
        FAIL("value %lld of %lld: fused %.9g, separate %.9g", (long long)d1.bad, (long long)na,
             d1.av, d1.bv);
    int64_t same = d1.same;
    double worst = d1.worst;
    CHECK(bytes_fused < bytes_all);
    snprintf(msg_, cap_, "%lld of %lld values identical, max rel diff %.1g; %zu bytes planned, "
             "%zu kept all", (long long)same, (long long)na, worst, bytes_fused, bytes_all);
    return TEST_PASS;
}

/* A ReLU whose input has another reader, or is kept, is not fused: that reader sees the
 * values before the ReLU. */
TEST(fused_relu_not_when_the_input_is_read_elsewhere)
{
    ds_model *m = ds_model_create(2);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){4, 5});
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.units = 6});
    ds_node *r = ds_relu(g, h);
    ds_node *s = ds_add(g, r, h);   /* h read twice */
    CHECK(s);
    ds_rng rg;
    ds_rng_seed(&rg, 1);
    CHECK(ds_graph_plan(g) == DS_OK);
    fill_uniform(ds_node_data(x), 20, -1, 1, &rg);
    ds_node_keep(h, 1);
    CHECK(ds_graph_forward(g) == DS_OK);
    const float *hv = ds_node_data(h), *rv = ds_node_data(r), *sv = ds_node_data(s);
    int neg = 0;
    for (int i = 0; i < 24; i++) {
        CHECK(rv[i] == (hv[i] > 0 ? hv[i] : 0.0f));
        CHECK(sv[i] == rv[i] + hv[i]);
        neg += hv[i] < 0;
    }
    CHECK(neg > 0);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}
