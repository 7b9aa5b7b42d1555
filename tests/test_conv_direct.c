/* test_conv_direct.c - the direct convolution (src/ops/conv_direct.c) against im2col + sgemm:
 * outputs, dx, dW and db to float rounding, with and without a fused ReLU, for 1-D and 2-D,
 * padding and dilation, odd sizes, batch 1 and more samples than chunks; central differences;
 * bit-identical results for 1 and 2 threads; and the dispatcher really picks it for the
 * LeNet and spectra bench models (and not under DS_CONV_IM2COL). */
#include "test.h"
#include "../src/internal.h"
#include "../src/ops/conv_impl.h"

#include <stdbool.h>

typedef struct {
    int nd;
    int64_t n, c, f, h, w, kh, kw;   /* 1-D: h and kh unused */
    int lo[2], hi[2], dil[2];
    bool bias, relu;
} dcase;

/* The conv node of a case on graph g with input x (NULL on failure). */
static ds_node *build(ds_graph *g, ds_model *m, const dcase *k, ds_node **xo)
{
    int nd = k->nd;
    int64_t xs[4] = {k->n, k->c, nd == 1 ? k->w : k->h, k->w};
    int64_t ws[4] = {k->f, k->c, nd == 1 ? k->kw : k->kh, k->kw};
    ds_node *x = ds_input(g, "x", nd + 2, xs);
    ds_param *w = ds_model_add_param(m, "k.weight", nd + 2, ws, 1,
                                     (ds_init){DS_INIT_UNIFORM, -0.5f, 0.5f});
    ds_param *b = k->bias ? ds_model_add_param(m, "k.bias", 1, (int64_t[]){k->f}, 1,
                                               (ds_init){DS_INIT_UNIFORM, -0.5f, 0.5f})
                          : NULL;
    /* 1-D: the width's padding and dilation */
    const int *lo = nd == 1 ? k->lo + 1 : k->lo, *hi = nd == 1 ? k->hi + 1 : k->hi;
    const int *dil = nd == 1 ? k->dil + 1 : k->dil;
    *xo = x;
    return dsi_conv_fused(g, x, ds_param_node(g, w), b ? ds_param_node(g, b) : NULL, nd, NULL,
                          lo, hi, dil, k->relu ? DSI_FUSE_RELU : DSI_FUSE_NONE);
}

/* Forward and backward with random data under algorithm a: y, dx, dW, db one after the
 * other (n values); *used says which algorithm ran. */
static float *run(const dcase *k, ds_conv_algo a, int64_t *n, int *used)
{
    ds_set_conv_algo(a);
    ds_model *m = ds_model_create(7);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = NULL, *y = build(g, m, k, &x);
    float *out = forward_backward(g, x, y, 3, n);
    *used = out ? dsi_conv_algo_used(y) : -1;
    ds_graph_free(g);
    ds_model_free(m);
    ds_set_conv_algo(DS_CONV_AUTO);
    return out;
}

static const dcase cases[] = {
    /* nd  n  c  f   h   w  kh kw   lo      hi     dil   bias  relu */
    {2, 3, 1, 6, 28, 28, 5, 5, {2, 2}, {2, 2}, {1, 1}, true, true},      /* LeNet conv1 */
    {2, 9, 6, 16, 14, 14, 5, 5, {0, 0}, {0, 0}, {1, 1}, true, true},     /* LeNet conv2, 9 > 8 */
    {2, 1, 3, 7, 11, 13, 3, 5, {1, 0}, {2, 3}, {1, 1}, true, false},     /* batch 1, odd, uneven */
    {2, 2, 2, 5, 9, 17, 3, 3, {0, 2}, {1, 2}, {2, 3}, false, true},      /* dilation, no bias */
    {2, 4, 5, 13, 7, 40, 2, 4, {0, 1}, {0, 0}, {1, 1}, true, true},      /* 13 filters: 6+6+1 */
    {2, 2, 4, 3, 6, 9, 1, 3, {0, 1}, {0, 1}, {1, 1}, true, false},       /* 1 x 3 kernel */
    {2, 2, 3, 5, 1, 20, 1, 3, {0, 1}, {0, 1}, {1, 1}, true, true},       /* one row in 2-D */
    {2, 2, 2, 4, 1, 15, 3, 3, {1, 1}, {1, 1}, {1, 1}, true, false},      /* one row, padded */
    {1, 3, 1, 16, 0, 300, 0, 7, {0, 0}, {0, 0}, {1, 1}, true, true},     /* spectra conv1 */
    {1, 20, 16, 32, 0, 101, 0, 7, {0, 0}, {0, 0}, {1, 1}, true, true},   /* spectra conv2, groups */
    {1, 2, 32, 64, 0, 70, 0, 7, {0, 0}, {0, 0}, {1, 1}, true, false},    /* spectra conv3 */
    {1, 1, 3, 11, 0, 37, 0, 4, {0, 3}, {0, 2}, {1, 2}, false, true},     /* pads, dilation */
    {1, 5, 2, 9, 0, 8, 0, 2, {0, 0}, {0, 1}, {1, 1}, true, true},        /* short rows */
};
enum { NCASES = sizeof cases / sizeof cases[0] };

TEST(conv_direct_matches_im2col)
{
    double worst = 0;
    for (int i = 0; i < NCASES; i++) {
        int64_t na, nb;
        int ua, ub;
        float *a = run(&cases[i], DS_CONV_AUTO, &na, &ua);
        float *b = run(&cases[i], DS_CONV_IM2COL, &nb, &ub);
        if (!a || !b || na != nb || ua != DSI_CONV_DIRECT || ub != DSI_CONV_IM2COL) {
            free(a);
            free(b);
            FAIL("case %d: run failed (%s) or algorithms %d/%d", i, ds_last_error(), ua, ub);
        }
        /* y, dx, dW and db each against its own largest value */
        const dcase *k = &cases[i];
        int64_t sp = k->nd == 1 ? k->w : k->h * k->w, kk = k->nd == 1 ? k->kw : k->kh * k->kw;
        int64_t seg[4] = {na - k->n * k->c * sp - k->f * k->c * kk - (k->bias ? k->f : 0),
                          k->n * k->c * sp, k->f * k->c * kk, k->bias ? k->f : 0};
        static const char *const what[4] = {"y", "dx", "dW", "db"};
        int64_t at = 0;
        for (int s = 0; s < 4; s++) {
            double scale = 1e-6;
            for (int64_t j = at; j < at + seg[s]; j++)
                scale = fmax(scale, fabs(b[j]));
            for (int64_t j = at; j < at + seg[s]; j++) {
                double d = fabs((double)a[j] - b[j]) / scale;
                worst = fmax(worst, d);
                if (d > 2e-6) {
                    float av = a[j], bv = b[j];
                    free(a);
                    free(b);
                    FAIL("case %d: %s[%lld]: direct %.9g, im2col %.9g", i, what[s],
                         (long long)(j - at), av, bv);
                }
            }
            at += seg[s];
        }
        free(a);
        free(b);
    }
    snprintf(msg_, cap_, "%d cases, max difference %.2g of the largest value", NCASES, worst);
    return TEST_PASS;
}

/* Central differences through the direct path, 1-D and 2-D (without a ReLU: the output is
 * then linear in each value, and a step of 1e-2 has no truncation error; the fused ReLU's
 * mask is compared with the im2col path above). */
TEST(conv_direct_gradcheck)
{
    static const dcase k[2] = {
        {2, 2, 2, 3, 6, 7, 3, 3, {1, 0}, {0, 2}, {1, 2}, true, false},
        {1, 3, 2, 4, 0, 19, 0, 5, {0, 2}, {0, 1}, {1, 1}, true, false},
    };
    for (int i = 0; i < 2; i++) {
        ds_model *m = ds_model_create(11);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = NULL, *y = build(g, m, &k[i], &x);
        CHECK(y);
        ds_node_requires_grad(x, 1);
        CHECK(ds_graph_plan(g) == DS_OK);
        CHECK(dsi_conv_algo_used(y) == DSI_CONV_DIRECT);
        ds_rng r;
        ds_rng_seed(&r, 5);
        fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
        ds_node *wrt[3] = {x, y->in[1], y->in[2]};
        int rc = gradcheck(g, y, 3, wrt, 1e-2, 1e-4, 2e-3, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return TEST_FAIL;
    }
    return TEST_PASS;
}

TEST(conv_direct_threads_bit_identical)
{
    for (int i = 0; i < NCASES; i++) {
        int keep = ds_get_num_threads(), u1, u2;
        int64_t n1, n2;
        ds_set_num_threads(1);
        float *a = run(&cases[i], DS_CONV_AUTO, &n1, &u1);
        ds_set_num_threads(2);
        float *b = run(&cases[i], DS_CONV_AUTO, &n2, &u2);
        ds_set_num_threads(keep);
        int ok = a && b && n1 == n2 && u1 == DSI_CONV_DIRECT && u2 == DSI_CONV_DIRECT &&
                 !memcmp(a, b, (size_t)n1 * sizeof *a);
        free(a);
        free(b);
        if (!ok)
            FAIL("case %d: 1 and 2 threads differ (or a run failed: %s)", i, ds_last_error());
    }
    return TEST_PASS;
}

/* Every convolution of the LeNet and spectra bench models runs the direct kernels, and none
 * does under DS_CONV_IM2COL. */
TEST(conv_direct_picked_for_lenet_and_spectra)
{
    static const char *const models[] = {"bench/models/lenet.model", "bench/models/spectra.model"};
    static const int want[] = {2, 3};
    for (int i = 0; i < 2; i++)
        for (int a = 0; a < 2; a++) {
            ds_net *net;
            ds_net_opts o = {.batch = 64, .seed = 1};
            CHECK(ds_net_load(models[i], &o, &net) == DS_OK);
            ds_graph *g = ds_net_graph(net);
            ds_graph_set_mode(g, DS_MODE_TRAIN);
            CHECK(ds_graph_plan(g) == DS_OK);
            ds_set_conv_algo(a ? DS_CONV_IM2COL : DS_CONV_AUTO);
            int convs = 0, direct = 0;
            for (int j = 0; j < g->n_nodes; j++)
                if (g->nodes[j]->op == DS_OP_CONV) {
                    convs++;
                    direct += dsi_conv_algo_used(g->nodes[j]) == DSI_CONV_DIRECT;
                }
            ds_set_conv_algo(DS_CONV_AUTO);
            ds_net_free(net);
            if (convs != want[i] || direct != (a ? 0 : want[i]))
                FAIL("%s (%s): %d convolutions, %d direct", models[i], a ? "im2col" : "auto",
                     convs, direct);
        }
    return TEST_PASS;
}
