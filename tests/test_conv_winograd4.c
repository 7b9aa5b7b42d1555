/* test_conv_winograd4.c - Winograd F(4x4, 3x3) against im2col + sgemm (forward, dx, dW, db
 * with and without a fused ReLU, odd and even sizes, cut tiles, batch 1 and more samples than
 * chunks, 1, 2 and 3 threads bit for bit); its fp32 error against a direct convolution in
 * double on galaxy-sized layers; and the galaxy CNNs' convolutions taking it. */
#include "test.h"

#include "../src/ops/conv_impl.h"

typedef struct {
    int64_t n, c, f, h, w;
    int lo[2], hi[2];
    bool bias, relu;
} wcase;

enum { IM2COL, WINO2, WINO4 };

/* A graph with one convolution of case k; *x_out, *y_out: its input and output nodes. */
static ds_graph *conv_graph(const wcase *k, ds_model *m, ds_node **x_out, ds_node **y_out)
{
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){k->n, k->c, k->h, k->w});
    ds_param *w = ds_model_add_param(m, "k.weight", 4, (int64_t[]){k->f, k->c, 3, 3}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -0.5f, 0.5f});
    ds_param *b = k->bias ? ds_model_add_param(m, "k.bias", 1, (int64_t[]){k->f}, 1,
                                               (ds_init){DS_INIT_UNIFORM, -0.5f, 0.5f})
                          : NULL;
    *x_out = x;
    *y_out = dsi_conv_fused(g, x, ds_param_node(g, w), b ? ds_param_node(g, b) : NULL, 2, NULL,
                            k->lo, k->hi, NULL, k->relu ? DSI_FUSE_RELU : DSI_FUSE_NONE);
    return g;
}

/* Forward and backward of case k with an algorithm: y, dx, dW, db one after the other (n
 * values); *tile: the Winograd tile its forward pass took (0: im2col). */
static float *run(const wcase *k, int algo, int64_t *n, int *tile)
{
    ds_set_conv_algo(algo == IM2COL ? DS_CONV_IM2COL : DS_CONV_AUTO);
    dsi_wino_set_max_tile(algo == WINO2 ? 2 : 4);
    ds_model *m = ds_model_create(7);
    ds_node *x, *y;
    ds_graph *g = conv_graph(k, m, &x, &y);
    float *out = forward_backward(g, x, y, 3, n);
    *tile = y ? dsi_conv_wino_tile(y) : -1;
    ds_graph_free(g);
    ds_model_free(m);
    ds_set_conv_algo(DS_CONV_AUTO);
    dsi_wino_set_max_tile(4);
    return out;
}

/* The largest difference between a and b relative to b's largest magnitude; fails (returns
 * a negative value and says where in msg) above tol. */
static double compare(const float *a, const float *b, int64_t n, double tol, char *msg,
                      size_t cap)
{
    double scale = 0, worst = 0;
    for (int64_t j = 0; j < n; j++)
        scale = fmax(scale, fabs(b[j]));
    for (int64_t j = 0; j < n; j++) {
        double d = fabs((double)a[j] - b[j]) / fmax(scale, 1e-6);
        worst = fmax(worst, d);
        if (d > tol) {
            snprintf(msg, cap, "value %lld of %lld: %.9g against %.9g (%.2g of the largest)",
                     (long long)j, (long long)n, a[j], b[j], d);
            return -1;
        }
    }
    return worst;
}

TEST(winograd4_matches_im2col)
{
    static const wcase cases[] = {
        {2, 8, 8, 9, 7, {1, 1}, {1, 1}, true, false},       /* 'same', odd sizes, cut tiles */
        {1, 16, 8, 12, 16, {1, 1}, {1, 1}, true, true},     /* batch 1, whole tiles, ReLU */
        {9, 8, 12, 10, 13, {2, 0}, {0, 2}, false, true},    /* more samples than chunks */
        {3, 12, 9, 8, 8, {0, 0}, {0, 0}, true, false},      /* 'valid': 6x6, 4 cut tiles */
        {2, 8, 8, 33, 70, {1, 1}, {1, 1}, true, true},      /* blocks spanning rows, 16-tile steps */
        {3, 9, 16, 16, 16, {1, 1}, {1, 1}, false, false},   /* 4 tiles a row: a sample a step */
        {2, 8, 8, 32, 29, {1, 1}, {1, 1}, true, true},      /* 8 tiles a row: 2 rows a step */
        {17, 8, 8, 20, 15, {1, 1}, {1, 1}, false, true},    /* 5 rows of 4: blocks cut samples */
    };
    double worst = 0;
    char m[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t na, nb;
        int ta, tb;
        float *a = run(&cases[i], WINO4, &na, &ta), *b = run(&cases[i], IM2COL, &nb, &tb);
        double d = a && b && na == nb ? compare(a, b, na, 3e-6, m, sizeof m) : -2;
        free(a);
        free(b);
        if (d == -2)
            FAIL("case %zu: run failed: %s", i, ds_last_error());
        if (d < 0)
            FAIL("case %zu: %s", i, m);
        if (ta != 4 || tb != 0)
            FAIL("case %zu: tiles %d and %d, not 4 (Winograd) and 0 (im2col)", i, ta, tb);
        worst = fmax(worst, d);
    }
    snprintf(msg_, cap_, "max difference %.2g of the largest value", worst);   /* measured: 9.7e-7 */
    return TEST_PASS;
}

/* F(2x2, 3x3) still runs where asked or where the output is too small for 4x4 tiles. */
TEST(winograd4_small_outputs_keep_2x2_tiles)
{
    static const wcase small = {3, 8, 8, 7, 9, {0, 0}, {0, 0}, true, true};   /* 5x7 out */
    static const wcase big = {2, 8, 8, 9, 9, {1, 1}, {1, 1}, true, true};
    int64_t na, nb;
    int ta, tb;
    char m[256];
    float *a = run(&small, WINO4, &na, &ta), *b = run(&small, IM2COL, &nb, &tb);
    double d = a && b && na == nb ? compare(a, b, na, 1e-6, m, sizeof m) : -2;
    free(a);
    free(b);
    CHECK(d != -2);
    if (d < 0)
        FAIL("5x7 outputs: %s", m);
    CHECK(ta == 2);
    a = run(&big, WINO2, &na, &ta);
    b = run(&big, IM2COL, &nb, &tb);
    d = a && b && na == nb ? compare(a, b, na, 1e-6, m, sizeof m) : -2;
    free(a);
    free(b);
    CHECK(d != -2);
    if (d < 0)
        FAIL("F(2x2, 3x3) asked for: %s", m);
    CHECK(ta == 2);
    return TEST_PASS;
}

TEST(winograd4_gradcheck)
{
    ds_model *m = ds_model_create(11);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 8, 7, 10});
    ds_param *w = ds_model_add_param(m, "k.weight", 4, (int64_t[]){8, 8, 3, 3}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_param *b = ds_model_add_param(m, "k.bias", 1, (int64_t[]){8}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_node *wn = ds_param_node(g, w), *bn = ds_param_node(g, b);
    ds_node *y = ds_conv_op(g, x, wn, bn, 2, NULL, (int[]){1, 1}, (int[]){1, 1}, NULL);
    CHECK(y);
    ds_node_requires_grad(x, 1);
    CHECK(ds_graph_plan(g) == DS_OK);
    CHECK(dsi_conv_wino_tile(y) == 4);
    ds_rng r;
    ds_rng_seed(&r, 5);
    fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
    ds_node *wrt[3] = {x, wn, bn};
    /* linear in each value: a long step has no truncation error and divides the rounding of
     * the transforms, larger with 6x6 tiles than with 4x4 (see winograd_gradcheck) */
    int rc = gradcheck(g, y, 3, wrt, 0.5, 5e-5, 1e-3, msg_, cap_);
    ds_graph_free(g);
    ds_model_free(m);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(winograd4_threads_bit_identical)
{
    static const wcase k = {11, 16, 24, 20, 16, {1, 1}, {1, 1}, true, true};
    int keep = ds_get_num_threads();
    int64_t n1, n2, n3;
    int t1, t2, t3;
    ds_set_num_threads(1);
    float *a = run(&k, WINO4, &n1, &t1);
    ds_set_num_threads(2);   /* 2 blocks: the threads compute each together */
    float *b = run(&k, WINO4, &n2, &t2);
    ds_set_num_threads(3);
    float *c = run(&k, WINO4, &n3, &t3);
    ds_set_num_threads(keep);
    int ok = a && b && c && n1 == n2 && n1 == n3 && !memcmp(a, b, (size_t)n1 * sizeof *a) &&
             !memcmp(a, c, (size_t)n1 * sizeof *a) && t1 == 4 && t2 == 4 && t3 == 4;
    free(a);
    free(b);
    free(c);
    CHECK(ok);
    return TEST_PASS;
}

/* ---- precision against a direct convolution in double ---- */

typedef struct {
    int64_t N, C, F, H;   /* 'same' padding, H x H */
} pcase;

/* y = conv(x, w) + b, dx = conv^T(dy), dW = dy * x, in double ('same', stride 1). */
static void direct(const pcase *k, const float *x, const float *w, const float *b,
                   const float *dy, double *y, double *dx, double *dw)
{
    const int64_t N = k->N, C = k->C, F = k->F, H = k->H, HW = H * H;
    memset(dx, 0, (size_t)(N * C * HW) * sizeof *dx);
    memset(dw, 0, (size_t)(F * C * 9) * sizeof *dw);
    for (int64_t n = 0; n < N; n++)
        for (int64_t f = 0; f < F; f++) {
            double *yp = y + (n * F + f) * HW;
            const float *dyp = dy + (n * F + f) * HW;
            for (int64_t i = 0; i < HW; i++)
                yp[i] = b[f];
            for (int64_t c = 0; c < C; c++) {
                const float *xp = x + (n * C + c) * HW, *wp = w + (f * C + c) * 9;
                double *dxp = dx + (n * C + c) * HW, *dwp = dw + (f * C + c) * 9;
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        double wv = wp[kh * 3 + kw], s = 0;
                        for (int64_t oh = 0; oh < H; oh++) {
                            int64_t ih = oh - 1 + kh;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int64_t ow = 0; ow < H; ow++) {
                                int64_t iw = ow - 1 + kw;
                                if (iw < 0 || iw >= H)
                                    continue;
                                yp[oh * H + ow] += wv * xp[ih * H + iw];
                                dxp[ih * H + iw] += wv * dyp[oh * H + ow];
                                s += (double)dyp[oh * H + ow] * xp[ih * H + iw];
                            }
                        }
                        dwp[kh * 3 + kw] += s;
                    }
            }
        }
}

/* max |a - ref| / max |ref| */
static double rel_err(const float *a, const double *ref, int64_t n)
{
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - ref[i]));
    return worst / scale;
}

/* Errors of y, dx, dW (err[0..3)) for case k with an algorithm, on the data of a trained CNN's
 * inner layer: inputs after a ReLU (uniform in [0, 1)), He-scaled weights, gradients in
 * [-1, 1]. Returns the tile the passes took, or -1 on failure. */
static int pass_errors(const pcase *k, int algo, double err[3])
{
    ds_set_conv_algo(algo == IM2COL ? DS_CONV_IM2COL : DS_CONV_AUTO);
    dsi_wino_set_max_tile(algo == WINO2 ? 2 : 4);
    const int64_t N = k->N, C = k->C, F = k->F, H = k->H;
    const float lim = sqrtf(6.0f / (9.0f * (float)C));
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){N, C, H, H});
    ds_param *w = ds_model_add_param(m, "k.weight", 4, (int64_t[]){F, C, 3, 3}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -lim, lim});
    ds_param *b = ds_model_add_param(m, "k.bias", 1, (int64_t[]){F}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -0.1f, 0.1f});
    ds_node *y = ds_conv_op(g, x, ds_param_node(g, w), ds_param_node(g, b), 2, NULL,
                            (int[]){1, 1}, (int[]){1, 1}, NULL);
    int tile = -1;
    float *dy = malloc((size_t)(N * F * H * H) * sizeof *dy);
    double *ry = malloc((size_t)(N * F * H * H) * sizeof *ry);
    double *rdx = malloc((size_t)(N * C * H * H) * sizeof *rdx);
    double *rdw = malloc((size_t)(F * C * 9) * sizeof *rdw);
    if (y && dy && ry && rdx && rdw && ds_node_requires_grad(x, 1) == DS_OK &&
        ds_graph_plan(g) == DS_OK) {
        ds_rng r;
        ds_rng_seed(&r, 17);
        fill_uniform(ds_node_data(x), ds_node_numel(x), 0, 1, &r);
        fill_uniform(dy, ds_node_numel(y), -1, 1, &r);
        ds_model_zero_grad(m);
        tile = dsi_conv_wino_tile(y);
        if (ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, dy) == DS_OK) {
            direct(k, ds_node_data(x), ds_param_data(w), ds_param_data(b), dy, ry, rdx, rdw);
            err[0] = rel_err(ds_node_data(y), ry, N * F * H * H);
            err[1] = rel_err(ds_node_grad(x), rdx, N * C * H * H);
            err[2] = rel_err(ds_param_grad(w), rdw, F * C * 9);
        } else {
            tile = -1;
        }
    }
    free(dy);
    free(ry);
    free(rdx);
    free(rdw);
    ds_graph_free(g);
    ds_model_free(m);
    ds_set_conv_algo(DS_CONV_AUTO);
    dsi_wino_set_max_tile(4);
    return tile;
}

/* The bound: each pass within 1e-5 of the largest value of the direct product. */
TEST(winograd4_precision_within_1e5_of_direct)
{
    static const pcase cases[] = {
        {2, 64, 128, 16},   /* galaxy's third convolution */
        {1, 128, 64, 10},
    };
    const char *names[3] = {"im2col", "F(2x2,3x3)", "F(4x4,3x3)"};
    char note[512] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int algo = IM2COL; algo <= WINO4; algo++) {
            double e[3];
            int tile = pass_errors(&cases[i], algo, e);
            if (tile != (algo == IM2COL ? 0 : algo == WINO2 ? 2 : 4))
                FAIL("case %zu, %s: tile %d: %s", i, names[algo], tile, ds_last_error());
            for (int p = 0; p < 3; p++)
                if (e[p] > 1e-5)
                    FAIL("case %zu (C %lld, F %lld), %s: %s error %.2g of the largest value",
                         i, (long long)cases[i].C, (long long)cases[i].F, names[algo],
                         p == 0 ? "forward" : p == 1 ? "dx" : "dW", e[p]);
            if (i == 0)
                dsi_snprintf_cat(note, sizeof note, "%s%s y/dx/dW %.1e/%.1e/%.1e",
                                 algo ? "; " : "", names[algo], e[0], e[1], e[2]);
        }
    }
    snprintf(msg_, cap_, "%s", note);
    return TEST_PASS;
}

/* The bench's galaxy CNNs: the first convolution (1 channel) runs im2col, the other two
 * F(4x4, 3x3). */
TEST(winograd4_galaxy_convolutions_take_4x4_tiles)
{
    const char *models[2] = {"bench/models/galaxy.model", "bench/models/galaxy_bn.model"};
    for (int i = 0; i < 2; i++) {
        ds_net *n;
        ds_net_opts o = {.batch = 32, .seed = 1};
        CHECK(ds_net_load(models[i], &o, &n) == DS_OK);
        ds_graph *g = ds_net_graph(n);
        CHECK(ds_graph_plan(g) == DS_OK);
        int tiles[8], nc = 0;
        for (int j = 0; j < g->n_nodes && nc < 8; j++)
            if (g->nodes[j]->op == DS_OP_CONV)
                tiles[nc++] = dsi_conv_wino_tile(g->nodes[j]);
        ds_net_free(n);
        if (nc != 3 || tiles[0] != 0 || tiles[1] != 4 || tiles[2] != 4)
            FAIL("%s: %d convolutions, tiles %d %d %d (want 3: 0 4 4)", models[i], nc,
                 nc > 0 ? tiles[0] : -1, nc > 1 ? tiles[1] : -1, nc > 2 ? tiles[2] : -1);
    }
    return TEST_PASS;
}
