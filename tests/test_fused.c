/* test_fused.c - a ReLU fused into a convolution, a dense layer or a batch norm gives what
 * the separate ops give: the same outputs and input and weight gradients bit for bit, the
 * same bias (and batch-norm scale) gradients to rounding (they are summed in another order).
 * The reference runs the ReLU as its own node: under ds_graph_keep_all, which never fuses,
 * and every comparison asserts from the graph that the reference really ran unfused and the
 * other side really fused. */
#include "test.h"
#include "../src/internal.h"

#include <stdbool.h>

/* How the ReLU runs: inside the layer (activation=relu: no ReLU node), as a ReLU node the
 * planner fuses into the op before it, or as a separate ReLU node (keep_all: no fusion). */
typedef enum { VIA_LAYER, VIA_PLANNER, SEPARATE } relu_path;
static const char *const path_name[] = {"layer activation", "planner fusion", "separate"};

/* Builds the layer; with relu == false it carries no activation of its own. */
typedef ds_node *(*layer_fn)(ds_graph *g, ds_node *x, bool relu);

/* ReLU nodes of g, and how many of them the plan fused into their input's op. */
static void count_relus(const ds_graph *g, int *nodes, int *fused)
{
    *nodes = *fused = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == DS_OP_RELU) {
            (*nodes)++;
            *fused += g->nodes[i]->fused;
        }
}

/* The plan matches the path: no ReLU node inside a layer; every ReLU fused by the planner;
 * none fused for the separate reference. */
static int check_path(const ds_graph *g, relu_path p, int want, char *msg, size_t cap)
{
    int nodes, fused;
    count_relus(g, &nodes, &fused);
    bool ok = p == VIA_LAYER ? nodes == 0
            : p == VIA_PLANNER ? nodes == want && fused == want
            : nodes == want && fused == 0;
    if (!ok)
        snprintf(msg, cap, "%s: the graph has %d ReLU nodes, %d fused (expected %d)",
                 path_name[p], nodes, fused, p == VIA_LAYER ? 0 : want);
    return !ok;
}

/* Forward and backward (seeded with fixed random values) of the layer on one model: output,
 * input gradient, parameter gradients one after the other in the result (n values). */
static float *run(layer_fn build, ds_model *m, int ndim, const int64_t *xs, relu_path p,
                  int64_t *n, char *msg, size_t cap)
{
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", ndim, xs);
    ds_node *y = build(g, x, p == VIA_LAYER);
    if (p != VIA_LAYER)
        y = ds_relu(g, y);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    ds_graph_keep_all(g, p == SEPARATE);
    float *out = forward_backward(g, x, y, 99, n);
    if (!out)
        snprintf(msg, cap, "%s: run failed: %s", path_name[p], ds_last_error());
    else if (check_path(g, p, 1, msg, cap)) {
        free(out);
        out = NULL;
    }
    ds_graph_free(g);
    return out;
}

/* a against the reference b (n values): before n - n_sum bit for bit, the last n_sum
 * (gradients summed over the batch and positions: the bias, or batch norm's scale and
 * shift, last among the parameters) to 1e-6 relative plus 1e-7 of the largest of them (a
 * sum that cancels near 0). */
static int compare_to_reference(const float *a, const float *b, int64_t n, int64_t n_sum,
                                relu_path p, int64_t *exact, char *msg, size_t cap)
{
    double scale = 0;
    for (int64_t i = n - n_sum; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        bool same = a[i] == b[i];
        *exact += same;
        if (i < n - n_sum && !same) {
            snprintf(msg, cap, "%s: value %lld of %lld differs: fused %.9g, separate %.9g",
                     path_name[p], (long long)i, (long long)n, a[i], b[i]);
            return 1;
        }
        if (!same && !(fabs((double)a[i] - b[i]) <= 1e-6 * fabs(b[i]) + 1e-7 * scale)) {
            snprintf(msg, cap, "%s: summed gradient %lld: fused %.9g, separate %.9g",
                     path_name[p], (long long)(i - (n - n_sum)), a[i], b[i]);
            return 1;
        }
    }
    return 0;
}

/* The layer with its ReLU fused (through the layer's activation when layer_act, and always
 * through the planner) against the separate ReLU. n_sum: see compare_to_reference. */
static int compare(layer_fn build, bool layer_act, int ndim, const int64_t *xs, int64_t n_sum,
                   char *msg, size_t cap)
{
    ds_model *m = ds_model_create(5);
    int64_t nr, total = 0, exact = 0;
    float *ref = run(build, m, ndim, xs, SEPARATE, &nr, msg, cap);
    int rc = !ref;
    for (relu_path p = layer_act ? VIA_LAYER : VIA_PLANNER; !rc && p < SEPARATE; p++) {
        int64_t na;
        float *a = run(build, m, ndim, xs, p, &na, msg, cap);
        rc = !a;
        if (!rc && na != nr) {
            snprintf(msg, cap, "%s: %lld values, separate %lld", path_name[p], (long long)na,
                     (long long)nr);
            rc = 1;
        }
        if (!rc)
            rc = compare_to_reference(a, ref, na, n_sum, p, &exact, msg, cap);
        total += na;
        free(a);
    }
    if (!rc)
        snprintf(msg, cap, "%lld of %lld values identical", (long long)exact, (long long)total);
    free(ref);
    ds_model_free(m);
    return rc;
}

static ds_node *conv_3x3(ds_graph *g, ds_node *x, bool relu)
{
    ds_conv_opts o = {.name = "c", .filters = 5, .kernel = {3}, .padding = DS_PAD_SAME,
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = relu ? DS_ACT_RELU : DS_ACT_NONE};
    return ds_conv(g, x, 2, &o);
}

static ds_node *conv_3x3_wide(ds_graph *g, ds_node *x, bool relu)
{
    ds_conv_opts o = {.name = "cw", .filters = 8, .kernel = {3}, .padding = DS_PAD_SAME,
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = relu ? DS_ACT_RELU : DS_ACT_NONE};
    return ds_conv(g, x, 2, &o);
}

static ds_node *conv_1x1(ds_graph *g, ds_node *x, bool relu)
{
    ds_conv_opts o = {.name = "p", .filters = 4, .kernel = {1},
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = relu ? DS_ACT_RELU : DS_ACT_NONE};
    return ds_conv(g, x, 2, &o);
}

static ds_node *conv1d_strided(ds_graph *g, ds_node *x, bool relu)
{
    ds_conv_opts o = {.name = "s", .filters = 6, .kernel = {5}, .stride = {2},
                      .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                      .activation = relu ? DS_ACT_RELU : DS_ACT_NONE};
    return ds_conv(g, x, 1, &o);
}

static ds_node *dense(ds_graph *g, ds_node *x, bool relu)
{
    ds_dense_opts o = {.name = "d", .units = 37, .bias_init = {DS_INIT_UNIFORM, -0.5f, 0.5f},
                       .activation = relu ? DS_ACT_RELU : DS_ACT_NONE};
    return ds_dense(g, x, &o);
}

TEST(fused_relu_conv_matches_separate_ops)
{
    /* batch 1 (tiled path), batch 6 with one sample per product, batch 9 with small
     * outputs grouped several samples per product, the pointwise path, 1-D strided */
    CHECK_OK(compare(conv_3x3, true, 4, (int64_t[]){1, 3, 9, 7}, 5, msg_, cap_));
    CHECK_OK(compare(conv_3x3, true, 4, (int64_t[]){6, 3, 40, 33}, 5, msg_, cap_));
    CHECK_OK(compare(conv_3x3, true, 4, (int64_t[]){9, 2, 5, 6}, 5, msg_, cap_));
    CHECK_OK(compare(conv_1x1, true, 4, (int64_t[]){3, 3, 4, 5}, 4, msg_, cap_));
    CHECK_OK(compare(conv_1x1, true, 4, (int64_t[]){1, 3, 4, 5}, 4, msg_, cap_));
    CHECK_OK(compare(conv1d_strided, true, 3, (int64_t[]){10, 2, 31}, 6, msg_, cap_));
    /* 8 channels and filters: Winograd */
    CHECK_OK(compare(conv_3x3_wide, true, 4, (int64_t[]){3, 8, 11, 10}, 8, msg_, cap_));
    CHECK_OK(compare(conv_3x3_wide, true, 4, (int64_t[]){1, 8, 6, 7}, 8, msg_, cap_));
    return TEST_PASS;
}

TEST(fused_relu_dense_matches_separate_ops)
{
    CHECK_OK(compare(dense, true, 2, (int64_t[]){1, 20}, 37, msg_, cap_));
    CHECK_OK(compare(dense, true, 2, (int64_t[]){64, 50}, 37, msg_, cap_));
    return TEST_PASS;
}

/* Batch norm has no activation option: its ReLU is fused by the planner only. */
static ds_node *batchnorm(ds_graph *g, ds_node *x, bool relu)
{
    (void)relu;
    return ds_batchnorm(g, x, &(ds_batchnorm_opts){.name = "bn"});
}

TEST(fused_relu_batchnorm_matches_separate_ops)
{
    /* [N, C] and [N, C, H, W]; the scale and shift gradients are sums (2 C values) */
    CHECK_OK(compare(batchnorm, false, 2, (int64_t[]){16, 7}, 14, msg_, cap_));
    CHECK_OK(compare(batchnorm, false, 4, (int64_t[]){4, 5, 6, 7}, 10, msg_, cap_));
    CHECK_OK(compare(batchnorm, false, 4, (int64_t[]){2, 3, 1, 1}, 6, msg_, cap_));
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
static float *train_cnn(bool keep_all, float lr, int64_t *n, size_t *bytes, int *fused)
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
            int nodes;
            count_relus(g, &nodes, fused);
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
                float *dst = out + ny + nx;   /* parameter by parameter: the block has padding */
                for (int i = 0; i < ds_model_param_count(m); i++) {
                    ds_param *p = ds_model_param(m, i);
                    memcpy(dst, ds_param_data(p), (size_t)ds_param_numel(p) * sizeof *dst);
                    dst += ds_param_numel(p);
                }
                *n = ny + nx + np;
            }
        }
    }
    ds_optim_free(o);
    ds_graph_free(g);
    ds_model_free(m);
    return out;
}

/* The first of n values whose difference, relative to max(0.01, |b|), exceeds tol (bad = -1
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
        double d = fabs((double)a[i] - b[i]) / fmax(0.01, fabs(b[i]));
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
    int fused_a = -1, fused_b = -1;
    /* parameters held: output and input gradient bit for bit */
    float *a = train_cnn(false, 0.0f, &na, &bytes_fused, &fused_a),
          *b = train_cnn(true, 0.0f, &nb, &bytes_all, &fused_b);
    diff d0;
    int ok = a && b && na == nb && (compare_values(a, b, na, 0, &d0), 1);
    free(a);
    free(b);
    CHECK(ok);
    if (d0.bad >= 0)
        FAIL("parameters held: value %lld of %lld differs: fused %.9g, separate %.9g",
             (long long)d0.bad, (long long)na, d0.av, d0.bv);
    /* all four ReLUs (after batch norm, conv, batch norm, dense) fused; none in the
     * reference */
    if (fused_a != 4 || fused_b != 0)
        FAIL("%d ReLUs fused by the planner (expected 4), %d under keep_all (expected 0)",
             fused_a, fused_b);
    a = train_cnn(false, 0.1f, &na, &bytes_fused, &fused_a);
    b = train_cnn(true, 0.1f, &nb, &bytes_all, &fused_b);
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
