/* test_conv.c - convolution (1D/2D/3D), transposed convolution and upsampling: PyTorch
 * fixtures (forward, dx, dW, db), gradient checks, layer options, error paths, batch
 * grouping and thread-count independence. */
#include "test.h"

#include "../src/internal.h"

/* ---- helpers ---- */

static const int64_t *fx_shape(const ds_tensor_set *fx, const char *cs, const char *t, int *nd)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", cs, t);
    ds_tensor *x = ds_tensor_set_get(fx, key);
    if (!x)
        return NULL;
    *nd = ds_tensor_ndim(x);
    return ds_tensor_shape(x);
}

static int copy_in(const ds_tensor_set *fx, const char *cs, const char *t, float *dst,
                   int64_t n, char *msg, size_t cap)
{
    char key[128];
    int64_t m;
    snprintf(key, sizeof key, "%s.%s", cs, t);
    const float *src = fixture_data(fx, key, &m, msg, cap);
    if (!src)
        return 1;
    if (m != n) {
        snprintf(msg, cap, "%s: %lld values, the graph has %lld", key, (long long)m, (long long)n);
        return 1;
    }
    memcpy(dst, src, (size_t)n * sizeof *dst);
    return 0;
}

/* Largest |got - want| / max(|want|, 1e-2) and |got - want| seen by the comparisons. */
static double worst_rel, worst_abs;

static int compare(const ds_tensor_set *fx, const char *cs, const char *t, const float *got,
                   int64_t n, char *msg, size_t cap)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", cs, t);
    if (fixture_compare(fx, key, got, n, 1e-4, 1e-5, msg, cap))
        return 1;
    const float *want = fixture_data(fx, key, NULL, msg, cap);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        worst_rel = fmax(worst_rel, d / fmax(fabs(want[i]), 1e-2));
        worst_abs = fmax(worst_abs, d);
    }
    return 0;
}

/* Loads x (and w, b) of case cs into the graph, runs forward and backward seeded with
 * cs.r, and compares y, dx, dw, db with PyTorch. */
static int run_case(const ds_tensor_set *fx, const char *cs, ds_graph *g, ds_node *x,
                    ds_node *y, ds_param *w, ds_param *b, char *msg, size_t cap)
{
    if (!y) {
        snprintf(msg, cap, "%s: build failed: %s", cs, ds_last_error());
        return 1;
    }
    if (ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "%s: plan: %s", cs, ds_last_error());
        return 1;
    }
    if (copy_in(fx, cs, "x", ds_node_data(x), ds_node_numel(x), msg, cap) ||
        (w && copy_in(fx, cs, "w", ds_param_data(w), ds_param_numel(w), msg, cap)) ||
        (b && copy_in(fx, cs, "b", ds_param_data(b), ds_param_numel(b), msg, cap)))
        return 1;
    int64_t n;
    char key[128];
    snprintf(key, sizeof key, "%s.r", cs);
    const float *r = fixture_data(fx, key, &n, msg, cap);
    if (!r)
        return 1;
    if (n != ds_node_numel(y)) {
        snprintf(msg, cap, "%s: output has %lld values, PyTorch %lld (shape %s)", cs,
                 (long long)ds_node_numel(y), (long long)n,
                 dsi_shape_str(ds_node_ndim(y), ds_node_shape(y)));
        return 1;
    }
    ds_model_zero_grad(ds_graph_model(g));
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward_seed(g, y, r) != DS_OK) {
        snprintf(msg, cap, "%s: run: %s", cs, ds_last_error());
        return 1;
    }
    if (compare(fx, cs, "y", ds_node_data(y), ds_node_numel(y), msg, cap) ||
        compare(fx, cs, "dx", ds_node_grad(x), ds_node_numel(x), msg, cap) ||
        (w && compare(fx, cs, "dw", ds_param_grad(w), ds_param_numel(w), msg, cap)) ||
        (b && compare(fx, cs, "db", ds_param_grad(b), ds_param_numel(b), msg, cap)))
        return 1;
    coverage_mark_all(y, COVER_TORCH);   /* x and every parameter of the graph compared */
    return 0;
}

/* Graph input for case cs shaped as its fixture x, with a gradient. */
static ds_node *fx_input(ds_graph *g, const ds_tensor_set *fx, const char *cs)
{
    int nd;
    const int64_t *s = fx_shape(fx, cs, "x", &nd);
    ds_node *x = s ? ds_input(g, "x", nd, s) : NULL;
    if (x)
        ds_node_requires_grad(x, 1);
    return x;
}

static ds_param *fx_param(ds_model *m, const ds_tensor_set *fx, const char *cs, const char *t)
{
    int nd;
    const int64_t *s = fx_shape(fx, cs, t, &nd);
    if (!s)
        return NULL;
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cs, !strcmp(t, "w") ? "weight" : "bias");
    return ds_model_add_param(m, name, nd, s, 1, (ds_init){DS_INIT_ZEROS, 0, 0});
}

/* Parameter nodes of a graph, for gradient checks of layers. */
static int param_nodes(ds_graph *g, ds_node **out, int cap)
{
    int n = 0;
    for (int i = 0; i < ds_graph_node_count(g) && n < cap; i++) {
        ds_node *v = ds_graph_node(g, i);
        if (v->op == DS_OP_PARAM)
            out[n++] = v;
    }
    return n;
}

/* ---- PyTorch fixtures ---- */

typedef struct {
    const char *name;
    int nd, stride[3], lo[3], hi[3], dil[3];
} conv_case;

TEST(conv_matches_pytorch)
{
    static const conv_case cases[] = {
        {"c1d", 1, {2}, {1}, {1}, {2}},
        {"c1d_b1", 1, {1}, {0}, {0}, {1}},
        {"c2d", 2, {2, 1}, {1, 0}, {1, 0}, {1, 2}},
        {"c2d_pw", 2, {1, 1}, {0, 0}, {0, 0}, {1, 1}},
        {"c2d_batch", 2, {1, 1}, {1, 1}, {1, 1}, {1, 1}},
        {"c3d", 3, {1, 2, 2}, {1, 0, 1}, {1, 0, 1}, {1, 1, 2}},
        {"c3d_b1", 3, {2, 1, 1}, {0, 1, 0}, {0, 1, 0}, {1, 2, 1}},
    };
    ds_tensor_set *fx = fixture_load("conv", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++) {
        const conv_case *c = &cases[i];
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = fx_input(g, fx, c->name);
        ds_param *w = fx_param(m, fx, c->name, "w"), *b = fx_param(m, fx, c->name, "b");
        ds_node *y = ds_conv_op(g, x, ds_param_node(g, w), b ? ds_param_node(g, b) : NULL,
                                c->nd, c->stride, c->lo, c->hi, c->dil);
        rc = run_case(fx, c->name, g, x, y, w, b, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_tensor_set_free(fx);
    if (!rc)
        snprintf(msg_, cap_, "so far: max rel err %.2g, abs %.2g", worst_rel, worst_abs);
    return rc;
}

/* The layer's 'same' padding, built by PyTorch with F.pad (extra pixel at the end). */
TEST(conv_layer_same_matches_pytorch)
{
    static const struct { const char *name; int nd, k[3], s[3], d[3]; } cases[] = {
        {"same_even", 2, {4, 4}, {1, 1}, {1, 1}},
        {"same_stride", 2, {4, 2}, {2, 2}, {1, 1}},
        {"same_1d", 1, {4}, {3}, {2}},
    };
    ds_tensor_set *fx = fixture_load("conv", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = fx_input(g, fx, cases[i].name);
        int nd;
        const int64_t *ws = fx_shape(fx, cases[i].name, "w", &nd);
        ds_conv_opts o = {.name = cases[i].name, .filters = ws ? ws[0] : 0,
                          .padding = DS_PAD_SAME};
        memcpy(o.kernel, cases[i].k, sizeof o.kernel);
        memcpy(o.stride, cases[i].s, sizeof o.stride);
        memcpy(o.dilation, cases[i].d, sizeof o.dilation);
        ds_node *y = ds_conv(g, x, cases[i].nd, &o);
        char wn[80], bn[80];
        snprintf(wn, sizeof wn, "%s.weight", cases[i].name);
        snprintf(bn, sizeof bn, "%s.bias", cases[i].name);
        rc = run_case(fx, cases[i].name, g, x, y, ds_model_find(m, wn), ds_model_find(m, bn),
                      msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_tensor_set_free(fx);
    if (!rc)
        snprintf(msg_, cap_, "so far: max rel err %.2g, abs %.2g", worst_rel, worst_abs);
    return rc;
}

TEST(conv_transpose_matches_pytorch)
{
    static const struct { const char *name; int s[2], p[2], op[2], d[2]; } cases[] = {
        {"t2d", {2, 2}, {1, 1}, {1, 1}, {1, 1}},
        {"t2d_dil", {2, 3}, {0, 1}, {1, 2}, {2, 1}},
        {"t2d_b1", {1, 2}, {2, 0}, {0, 0}, {1, 1}},
    };
    ds_tensor_set *fx = fixture_load("conv", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        const char *cs = cases[i].name;
        ds_node *x = fx_input(g, fx, cs);
        ds_param *w = fx_param(m, fx, cs, "w"), *b = fx_param(m, fx, cs, "b");
        ds_node *y = ds_conv_transpose2d_op(g, x, ds_param_node(g, w),
                                            b ? ds_param_node(g, b) : NULL, cases[i].s,
                                            cases[i].p, cases[i].op, cases[i].d);
        rc = run_case(fx, cs, g, x, y, w, b, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
    }
    /* Keras 'same' through the layer: output = input * stride */
    static const struct { const char *name; int k[2], s[2]; } same[] = {
        {"tsame", {4, 3}, {2, 2}},
        {"tsame_small_k", {1, 3}, {2, 1}},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0] && !rc; i++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        const char *cs = same[i].name;
        ds_node *x = fx_input(g, fx, cs);
        int nd;
        const int64_t *ws = fx_shape(fx, cs, "w", &nd);
        ds_conv_opts o = {.name = cs, .filters = ws ? ws[1] : 0, .padding = DS_PAD_SAME,
                          .kernel = {same[i].k[0], same[i].k[1]},
                          .stride = {same[i].s[0], same[i].s[1]}};
        ds_node *y = ds_conv_transpose2d(g, x, &o);
        char wn[80], bn[80];
        snprintf(wn, sizeof wn, "%s.weight", cs);
        snprintf(bn, sizeof bn, "%s.bias", cs);
        rc = run_case(fx, cs, g, x, y, ds_model_find(m, wn), ds_model_find(m, bn), msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_tensor_set_free(fx);
    if (!rc)
        snprintf(msg_, cap_, "so far: max rel err %.2g, abs %.2g", worst_rel, worst_abs);
    return rc;
}

TEST(upsample_matches_pytorch)
{
    static const struct { const char *name; int s; ds_upsample_mode mode; } cases[] = {
        {"up_nearest2", 2, DS_UPSAMPLE_NEAREST},   {"up_nearest3", 3, DS_UPSAMPLE_NEAREST},
        {"up_bilinear2", 2, DS_UPSAMPLE_BILINEAR}, {"up_bilinear3", 3, DS_UPSAMPLE_BILINEAR},
        {"up_bilinear1", 1, DS_UPSAMPLE_BILINEAR},
    };
    ds_tensor_set *fx = fixture_load("conv", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = fx_input(g, fx, cases[i].name);
        ds_node *y = ds_upsample2d(g, x, cases[i].s, cases[i].mode);
        rc = run_case(fx, cases[i].name, g, x, y, NULL, NULL, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_tensor_set_free(fx);
    if (!rc)
        snprintf(msg_, cap_, "so far: max rel err %.2g, abs %.2g", worst_rel, worst_abs);
    return rc;
}

/* ---- gradient checks ---- */

/* Builds x [xs] and a conv op with random weight [ws] (and bias), checks dx, dW, db. */
static int conv_gradcheck(int nd, const int64_t *xs, const int64_t *ws, bool bias,
                          const int *stride, const int *lo, const int *hi, const int *dil,
                          uint64_t seed, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(seed);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", nd + 2, xs);
    ds_param *w = ds_model_add_param(m, "k.weight", nd + 2, ws, 1,
                                     (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_param *b = bias ? ds_model_add_param(m, "k.bias", 1, ws, 1,
                                            (ds_init){DS_INIT_UNIFORM, -1, 1})
                       : NULL;
    ds_node *wn = ds_param_node(g, w), *bn = b ? ds_param_node(g, b) : NULL;
    ds_node *y = ds_conv_op(g, x, wn, bn, nd, stride, lo, hi, dil);
    int rc = 1;
    if (!y) {
        snprintf(msg, cap, "build: %s", ds_last_error());
    } else {
        ds_node_requires_grad(x, 1);
        ds_graph_plan(g);
        ds_rng r;
        ds_rng_seed(&r, seed);
        fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
        ds_node *wrt[3] = {x, wn, bn};
        rc = gradcheck(g, y, bias ? 3 : 2, wrt, 1e-2, 2e-5, 1e-3, msg, cap);
    }
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(conv1d_gradcheck)
{
    /* stride 2, asymmetric padding, dilation 2, odd length */
    CHECK_OK(conv_gradcheck(1, (int64_t[]){2, 3, 9}, (int64_t[]){4, 3, 3}, true, (int[]){2},
                            (int[]){2}, (int[]){1}, (int[]){2}, 11, msg_, cap_));
    /* batch 1, no bias, even kernel */
    CHECK_OK(conv_gradcheck(1, (int64_t[]){1, 2, 7}, (int64_t[]){3, 2, 4}, false, (int[]){1},
                            (int[]){0}, (int[]){0}, (int[]){1}, 12, msg_, cap_));
    return TEST_PASS;
}

TEST(conv2d_gradcheck)
{
    CHECK_OK(conv_gradcheck(2, (int64_t[]){2, 3, 7, 5}, (int64_t[]){4, 3, 3, 3}, true,
                            (int[]){2, 2}, (int[]){1, 1}, (int[]){1, 1}, (int[]){1, 1}, 21,
                            msg_, cap_));
    /* batch 1, no bias, different strides and dilations per axis, asymmetric pads */
    CHECK_OK(conv_gradcheck(2, (int64_t[]){1, 2, 7, 5}, (int64_t[]){3, 2, 3, 2}, false,
                            (int[]){2, 3}, (int[]){1, 0}, (int[]){0, 2}, (int[]){1, 2}, 22,
                            msg_, cap_));
    /* 1x1 kernel (the pointwise path), batch 1 and batch 3 */
    CHECK_OK(conv_gradcheck(2, (int64_t[]){1, 3, 3, 5}, (int64_t[]){2, 3, 1, 1}, true,
                            (int[]){1, 1}, (int[]){0, 0}, (int[]){0, 0}, (int[]){1, 1}, 23,
                            msg_, cap_));
    CHECK_OK(conv_gradcheck(2, (int64_t[]){3, 3, 3, 5}, (int64_t[]){2, 3, 1, 1}, true,
                            (int[]){1, 1}, (int[]){0, 0}, (int[]){0, 0}, (int[]){1, 1}, 24,
                            msg_, cap_));
    return TEST_PASS;
}

TEST(conv3d_gradcheck)
{
    CHECK_OK(conv_gradcheck(3, (int64_t[]){2, 2, 4, 5, 3}, (int64_t[]){2, 2, 2, 3, 2}, true,
                            (int[]){1, 2, 1}, (int[]){1, 1, 0}, (int[]){0, 1, 1},
                            (int[]){2, 1, 1}, 31, msg_, cap_));
    CHECK_OK(conv_gradcheck(3, (int64_t[]){1, 1, 3, 3, 5}, (int64_t[]){2, 1, 1, 2, 3}, false,
                            (int[]){2, 1, 2}, (int[]){0, 0, 1}, (int[]){0, 0, 1},
                            (int[]){1, 1, 1}, 32, msg_, cap_));
    return TEST_PASS;
}

/* Keras 'same' with an even kernel pads (1, 2): checked through the layer. */
TEST(conv_layer_same_gradcheck)
{
    for (int stride = 1; stride <= 2; stride++) {
        ds_model *m = ds_model_create(5);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 2, 6, 5});
        ds_node *y = ds_conv(g, x, 2, &(ds_conv_opts){.filters = 3, .kernel = {4, 2},
                                                      .stride = {stride}, .padding = DS_PAD_SAME,
                                                      .bias_init = {DS_INIT_UNIFORM, -1, 1}});
        CHECK(y);
        CHECK(ds_node_shape(y)[2] == (6 + stride - 1) / stride);
        CHECK(ds_node_shape(y)[3] == (5 + stride - 1) / stride);
        ds_node_requires_grad(x, 1);
        CHECK(ds_graph_plan(g) == DS_OK);
        ds_rng r;
        ds_rng_seed(&r, 40 + stride);
        fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
        ds_node *wrt[3] = {x};
        int n = 1 + param_nodes(g, wrt + 1, 2);
        CHECK(n == 3);
        int rc = gradcheck(g, y, n, wrt, 1e-2, 2e-5, 1e-3, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return rc;
    }
    return TEST_PASS;
}

static int convt_gradcheck(const int64_t *xs, const int64_t *ws, bool bias, const int *s,
                           const int *p, const int *op, const int *d, uint64_t seed, char *msg,
                           size_t cap)
{
    ds_model *m = ds_model_create(seed);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, xs);
    ds_param *w = ds_model_add_param(m, "t.weight", 4, ws, 1, (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_param *b = bias ? ds_model_add_param(m, "t.bias", 1, ws + 1, 1,
                                            (ds_init){DS_INIT_UNIFORM, -1, 1})
                       : NULL;
    ds_node *wn = ds_param_node(g, w), *bn = b ? ds_param_node(g, b) : NULL;
    ds_node *y = ds_conv_transpose2d_op(g, x, wn, bn, s, p, op, d);
    int rc = 1;
    if (!y) {
        snprintf(msg, cap, "build: %s", ds_last_error());
    } else {
        ds_node_requires_grad(x, 1);
        ds_graph_plan(g);
        ds_rng r;
        ds_rng_seed(&r, seed);
        fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
        ds_node *wrt[3] = {x, wn, bn};
        rc = gradcheck(g, y, bias ? 3 : 2, wrt, 1e-2, 2e-5, 1e-3, msg, cap);
    }
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(conv_transpose_gradcheck)
{
    /* stride 2, padding 1, output_padding 1 */
    CHECK_OK(convt_gradcheck((int64_t[]){2, 3, 3, 4}, (int64_t[]){3, 2, 3, 3}, true,
                             (int[]){2, 2}, (int[]){1, 1}, (int[]){1, 1}, (int[]){1, 1}, 51,
                             msg_, cap_));
    /* batch 1, no bias, dilation, output_padding < dilation only */
    CHECK_OK(convt_gradcheck((int64_t[]){1, 2, 3, 3}, (int64_t[]){2, 3, 2, 3}, false,
                             (int[]){1, 2}, (int[]){0, 1}, (int[]){1, 0}, (int[]){2, 1}, 52,
                             msg_, cap_));
    return TEST_PASS;
}

TEST(upsample_gradcheck)
{
    for (int mode = 0; mode < 2; mode++)
        for (int s = 1; s <= 3; s++) {
            ds_model *m = ds_model_create(1);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 2, 3, 5});
            ds_node *y = ds_upsample2d(g, x, s, (ds_upsample_mode)mode);
            CHECK(y && ds_node_shape(y)[2] == 3 * s && ds_node_shape(y)[3] == 5 * s);
            ds_node_requires_grad(x, 1);
            CHECK(ds_graph_plan(g) == DS_OK);
            ds_rng r;
            ds_rng_seed(&r, 60 + 3 * mode + s);
            fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
            int rc = gradcheck(g, y, 1, &x, 1e-2, 2e-5, 1e-3, msg_, cap_);
            ds_graph_free(g);
            ds_model_free(m);
            if (rc)
                return rc;
        }
    return TEST_PASS;
}

/* ---- layers: names, options, parameters ---- */

TEST(conv_layer_names_shapes_and_options)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 3, 9, 8});
    /* kernel {3} means 3x3; stride {2} means 2x2; explicit pad 1 on both sides */
    ds_node *a = ds_conv(g, x, 2, &(ds_conv_opts){.filters = 4, .kernel = {3}, .stride = {2},
                                                  .pad = {1, 1}});
    CHECK(a);
    CHECK(ds_node_shape(a)[1] == 4 && ds_node_shape(a)[2] == 5 && ds_node_shape(a)[3] == 4);
    CHECK(!strcmp(ds_node_layer_name(a), "conv2d_1"));
    CHECK(!strcmp(g->layers[a->layer].type, "Conv2D"));
    ds_param *w = ds_model_find(m, "conv2d_1.weight");
    CHECK(w && ds_param_ndim(w) == 4 && ds_param_shape(w)[0] == 4 && ds_param_shape(w)[1] == 3 &&
          ds_param_shape(w)[2] == 3 && ds_param_shape(w)[3] == 3);
    const float *bd = ds_param_data(ds_model_find(m, "conv2d_1.bias"));
    CHECK(bd && bd[0] == 0 && bd[3] == 0);
    /* Glorot uniform: |w| <= sqrt(6 / (27 + 36)) */
    double lim = sqrt(6.0 / (27 + 36)), mx = 0;
    for (int64_t i = 0; i < ds_param_numel(w); i++)
        mx = fmax(mx, fabs(ds_param_data(w)[i]));
    CHECK(mx <= lim && mx > 0.5 * lim);
    /* valid, dilation {2, 1} given explicitly, no bias */
    ds_node *v = ds_conv(g, x, 2, &(ds_conv_opts){.name = "v", .filters = 2, .kernel = {3, 2},
                                                  .dilation = {2, 1}, .padding = DS_PAD_VALID,
                                                  .no_bias = 1});
    CHECK(v && ds_node_shape(v)[2] == 5 && ds_node_shape(v)[3] == 7);
    CHECK(ds_model_find(m, "v.weight") && !ds_model_find(m, "v.bias"));
    /* 1D and 3D layers */
    ds_node *x1 = ds_input(g, "x1", 3, (int64_t[]){2, 3, 10});
    ds_node *c1 = ds_conv(g, x1, 1, &(ds_conv_opts){.filters = 2, .kernel = {3},
                                                    .padding = DS_PAD_SAME});
    CHECK(c1 && !strcmp(ds_node_layer_name(c1), "conv1d_1") && ds_node_shape(c1)[2] == 10);
    CHECK(!strcmp(g->layers[c1->layer].type, "Conv1D"));
    ds_node *x3 = ds_input(g, "x3", 5, (int64_t[]){1, 2, 5, 6, 7});
    ds_node *c3 = ds_conv(g, x3, 3, &(ds_conv_opts){.filters = 2, .kernel = {3, 2},
                                                    .stride = {2}, .padding = DS_PAD_SAME});
    CHECK(c3 && !strcmp(ds_node_layer_name(c3), "conv3d_1"));
    CHECK(!strcmp(g->layers[c3->layer].type, "Conv3D"));
    CHECK(ds_node_shape(c3)[2] == 3 && ds_node_shape(c3)[3] == 3 && ds_node_shape(c3)[4] == 4);
    ds_param *w3 = ds_model_find(m, "conv3d_1.weight");   /* kernel {3, 2} is 3x2x3 */
    CHECK(w3 && ds_param_shape(w3)[2] == 3 && ds_param_shape(w3)[3] == 2 &&
          ds_param_shape(w3)[4] == 3);
    /* transposed: Keras type and name, weight [in, filters, kh, kw], 'same' doubles */
    ds_node *t = ds_conv_transpose2d(g, a, &(ds_conv_opts){.filters = 6, .kernel = {3},
                                                           .stride = {2},
                                                           .padding = DS_PAD_SAME});
    CHECK(t && !strcmp(ds_node_layer_name(t), "conv2d_transpose_1"));
    CHECK(!strcmp(g->layers[t->layer].type, "Conv2DTranspose"));
    CHECK(ds_node_shape(t)[1] == 6 && ds_node_shape(t)[2] == 10 && ds_node_shape(t)[3] == 8);
    ds_param *tw = ds_model_find(m, "conv2d_transpose_1.weight");
    CHECK(tw && ds_param_shape(tw)[0] == 4 && ds_param_shape(tw)[1] == 6);
    /* upsample is a layer of its own */
    ds_node *u = ds_upsample2d(g, a, 2, DS_UPSAMPLE_NEAREST);
    CHECK(u && !strcmp(g->layers[u->layer].type, "UpSampling2D"));
    CHECK(ds_graph_forward(g) == DS_OK);
    /* a batch change re-infers every shape */
    CHECK(ds_graph_set_batch(g, 1) == DS_OK);
    CHECK(ds_node_shape(t)[0] == 1 && ds_node_shape(c3)[0] == 1);
    CHECK(ds_graph_forward(g) == DS_OK);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(conv_layer_activation_and_sharing)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 3, 6, 6});
    ds_node *a = ds_conv(g, x, 2, &(ds_conv_opts){.name = "enc", .filters = 4, .kernel = {3},
                                                  .padding = DS_PAD_SAME,
                                                  .activation = DS_ACT_RELU});
    CHECK(a);
    CHECK(!strcmp(ds_node_layer_name(a), "enc"));
    CHECK(ds_graph_forward(g) == DS_OK);
    for (int64_t i = 0; i < ds_node_numel(a); i++)
        CHECK(ds_node_data(a)[i] >= 0);
    /* the same name applied again shares the parameters */
    int np = ds_model_param_count(m);
    ds_node *b = ds_conv(g, x, 2, &(ds_conv_opts){.name = "enc", .filters = 4, .kernel = {3},
                                                  .padding = DS_PAD_SAME,
                                                  .activation = DS_ACT_RELU});
    CHECK(b && ds_model_param_count(m) == np);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* ---- error paths ---- */

#define EXPECT_ERR(expr, status, ...)                                                     \
    do {                                                                                  \
        ds_model *m_ = ds_model_create(1);                                                \
        ds_graph *g = ds_graph_create(m_, 1);                                             \
        ds_node *y_ = (expr);                                                             \
        ds_status st_ = ds_graph_status(g);                                               \
        const char *e_ = ds_last_error();                                                 \
        const char *want_[] = {__VA_ARGS__};                                              \
        int ok_ = !y_ && st_ == (status);                                                 \
        for (size_t i_ = 0; ok_ && i_ < sizeof want_ / sizeof want_[0]; i_++)             \
            ok_ = strstr(e_, want_[i_]) != NULL;                                          \
        ds_graph_free(g);                                                                 \
        ds_model_free(m_);                                                                \
        if (!ok_)                                                                         \
            FAIL("%s:%d: %s: got %s, message '%s'", __FILE__, __LINE__, #expr,            \
                 ds_status_name(st_), e_);                                                \
    } while (0)

static ds_node *in4(ds_graph *g, int64_t c, int64_t h, int64_t w)
{
    return ds_input(g, "x", 4, (int64_t[]){2, c, h, w});
}

static ds_node *shared_twice(ds_graph *g)
{
    ds_node *a = ds_conv(g, in4(g, 3, 8, 8), 2,
                         &(ds_conv_opts){.name = "shared", .filters = 4, .kernel = {3}});
    ds_node *b = ds_input(g, "z", 4, (int64_t[]){2, 5, 8, 8});
    return a ? ds_conv(g, b, 2, &(ds_conv_opts){.name = "shared", .filters = 4, .kernel = {3}})
             : NULL;
}

static ds_node *op_channel_mismatch(ds_graph *g)
{
    ds_param *w = ds_model_add_param(g->m, "k.weight", 4, (int64_t[]){4, 2, 3, 3}, 1,
                                     (ds_init){DS_INIT_ZEROS, 0, 0});
    return ds_conv_op(g, in4(g, 3, 8, 8), ds_param_node(g, w), NULL, 2, NULL, NULL, NULL, NULL);
}

TEST(conv_errors_name_layer_and_shapes)
{
    /* kernel larger than the padded input */
    EXPECT_ERR(ds_conv(g, in4(g, 1, 3, 4), 2, &(ds_conv_opts){.name = "big", .filters = 2,
                                                             .kernel = {5}, .pad = {0, 1}}),
               DS_ERR_SHAPE, "big", "5x5", "3x6", "[2, 1, 3, 4]");
    EXPECT_ERR(ds_conv(g, in4(g, 1, 5, 5), 2, &(ds_conv_opts){.filters = 2, .kernel = {3},
                                                             .dilation = {3},
                                                             .padding = DS_PAD_VALID}),
               DS_ERR_SHAPE, "conv2d_1", "7x7", "[2, 1, 5, 5]");
    /* channel mismatch with a shared weight, and with a weight node */
    EXPECT_ERR(shared_twice(g), DS_ERR_SHAPE, "shared", "[2, 5, 8, 8]", "[4, 3, 3, 3]",
               "channels");
    EXPECT_ERR(op_channel_mismatch(g), DS_ERR_SHAPE, "conv", "[2, 3, 8, 8]", "[4, 2, 3, 3]");
    /* output_padding must be smaller than the stride or the dilation */
    EXPECT_ERR(ds_conv_transpose2d(g, in4(g, 3, 4, 4),
                                   &(ds_conv_opts){.name = "up", .filters = 2, .kernel = {3},
                                                   .stride = {2}, .output_padding = {2, 0}}),
               DS_ERR_ARG, "up", "output_padding 2", "[2, 3, 4, 4]");
    EXPECT_ERR(ds_conv_transpose2d(g, in4(g, 3, 4, 4),
                                   &(ds_conv_opts){.name = "up", .filters = 2, .kernel = {3},
                                                   .stride = {2}, .output_padding = {1, 1},
                                                   .padding = DS_PAD_SAME}),
               DS_ERR_ARG, "up", "same");
    /* wrong rank, bad options */
    EXPECT_ERR(ds_conv(g, ds_input(g, "x", 3, (int64_t[]){2, 3, 8}), 2,
                       &(ds_conv_opts){.name = "r", .filters = 2, .kernel = {3}}),
               DS_ERR_SHAPE, "r", "[2, 3, 8]");
    EXPECT_ERR(ds_conv(g, in4(g, 3, 8, 8), 2, &(ds_conv_opts){.name = "k", .filters = 2}),
               DS_ERR_ARG, "k", "kernel");
    EXPECT_ERR(ds_conv(g, in4(g, 3, 8, 8), 2, &(ds_conv_opts){.name = "f", .kernel = {3}}),
               DS_ERR_ARG, "f", "filters");
    EXPECT_ERR(ds_conv(g, in4(g, 3, 8, 8), 2,
                       &(ds_conv_opts){.name = "s", .filters = 1, .kernel = {3},
                                       .stride = {-1}}),
               DS_ERR_ARG, "s", "stride");
    EXPECT_ERR(ds_conv(g, in4(g, 3, 8, 8), 4, &(ds_conv_opts){.filters = 1, .kernel = {3}}),
               DS_ERR_ARG, "nd");
    EXPECT_ERR(ds_upsample2d(g, in4(g, 3, 8, 8), 0, DS_UPSAMPLE_NEAREST), DS_ERR_ARG, "scale");
    EXPECT_ERR(ds_upsample2d(g, ds_input(g, "x", 3, (int64_t[]){2, 3, 8}), 2,
                             DS_UPSAMPLE_BILINEAR),
               DS_ERR_SHAPE, "[2, 3, 8]");
    return TEST_PASS;
}

/* ---- batching and threads ---- */

/* Batches split into chunks and multi-sample sgemms (the last ones partial) give the same
 * results as running the samples one at a time: a few large images (the transposed conv
 * then groups them), many small ones (19 samples: 8 chunks of 2-3, sgemms over 2-3). */
static int batch_vs_single(int64_t N, int64_t H, int64_t W, char *msg_, size_t cap_)
{
    ds_model *m = ds_model_create(9);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){N, 2, H, W});
    ds_node *y = ds_conv(g, x, 2, &(ds_conv_opts){.name = "c", .filters = 3, .kernel = {3},
                                                  .padding = DS_PAD_SAME,
                                                  .bias_init = {DS_INIT_UNIFORM, -1, 1}});
    ds_node *t = ds_conv_transpose2d(g, y, &(ds_conv_opts){.name = "t", .filters = 2,
                                                           .kernel = {3}, .stride = {2},
                                                           .pad = {1, 1},
                                                           .output_padding = {1, 1}});
    CHECK(t);
    ds_node_requires_grad(x, 1);
    CHECK(ds_graph_plan(g) == DS_OK);
    int64_t xs = ds_node_numel(x) / N, ts = ds_node_numel(t) / N;
    float *xin = malloc((size_t)ds_node_numel(x) * sizeof *xin);
    float *seed = malloc((size_t)ds_node_numel(t) * sizeof *seed);
    ds_rng r;
    ds_rng_seed(&r, 5);
    fill_uniform(xin, ds_node_numel(x), -1, 1, &r);
    fill_uniform(seed, ds_node_numel(t), -1, 1, &r);
    int64_t pn = ds_model_block_len(m, 1);
    float *gall = malloc((size_t)pn * sizeof *gall), *gsum = calloc((size_t)pn, sizeof *gsum);
    float *tall = malloc((size_t)ds_node_numel(t) * sizeof *tall);
    float *dxall = malloc((size_t)ds_node_numel(x) * sizeof *dxall);
    CHECK(ds_graph_set_input(g, x, xin, ds_node_numel(x)) == DS_OK);
    ds_model_zero_grad(m);
    CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, t, seed) == DS_OK);
    memcpy(tall, ds_node_data(t), (size_t)ds_node_numel(t) * sizeof *tall);
    memcpy(dxall, ds_node_grad(x), (size_t)ds_node_numel(x) * sizeof *dxall);
    memcpy(gall, ds_model_grad(m), (size_t)pn * sizeof *gall);
    CHECK(ds_graph_set_batch(g, 1) == DS_OK);
    int bad = 0;
    double worst = 0;
    for (int64_t n = 0; n < N; n++) {
        CHECK(ds_graph_set_input(g, x, xin + n * xs, xs) == DS_OK);
        ds_model_zero_grad(m);
        CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, t, seed + n * ts) == DS_OK);
        for (int64_t i = 0; i < ts; i++)
            worst = fmax(worst, fabs(ds_node_data(t)[i] - tall[n * ts + i]));
        for (int64_t i = 0; i < xs; i++)
            worst = fmax(worst, fabs(ds_node_grad(x)[i] - dxall[n * xs + i]));
        for (int64_t i = 0; i < pn; i++)
            gsum[i] += ds_model_grad(m)[i];
    }
    for (int64_t i = 0; i < pn; i++)
        bad |= !(fabs(gsum[i] - gall[i]) <= 1e-4 * (1 + fabs(gall[i])));
    free(xin);
    free(seed);
    free(gall);
    free(gsum);
    free(tall);
    free(dxall);
    ds_graph_free(g);
    ds_model_free(m);
    CHECK(worst <= 1e-5);
    CHECK(!bad);
    return TEST_PASS;
}

TEST(conv_batch_groups_match_single_samples)
{
    CHECK_OK(batch_vs_single(7, 40, 41, msg_, cap_));
    CHECK_OK(batch_vs_single(19, 7, 6, msg_, cap_));
    CHECK_OK(batch_vs_single(11, 3, 2, msg_, cap_));
    return TEST_PASS;
}

/* Forward and all gradients with 1 and 2 threads agree to 1e-5 relative. */
static int run_threads(int nth, float *out, int64_t *n_out)
{
    ds_set_num_threads(nth);
    ds_model *m = ds_model_create(17);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){11, 8, 24, 20});
    ds_node *a = ds_conv(g, x, 2, &(ds_conv_opts){.filters = 16, .kernel = {3}, .stride = {1, 2},
                                                  .padding = DS_PAD_SAME,
                                                  .bias_init = {DS_INIT_UNIFORM, -1, 1}});
    ds_node *u = ds_upsample2d(g, a, 2, DS_UPSAMPLE_BILINEAR);
    ds_node *t = ds_conv_transpose2d(g, u, &(ds_conv_opts){.filters = 4, .kernel = {4},
                                                           .stride = {2}, .pad = {1},
                                                           .bias_init = {DS_INIT_UNIFORM, -1, 1}});
    ds_node *x1 = ds_input(g, "x1", 3, (int64_t[]){11, 5, 300});
    ds_node *c1 = ds_conv(g, x1, 1, &(ds_conv_opts){.filters = 7, .kernel = {5}, .dilation = {2}});
    ds_node *x3 = ds_input(g, "x3", 5, (int64_t[]){11, 3, 10, 12, 11});
    ds_node *c3 = ds_conv(g, x3, 3, &(ds_conv_opts){.filters = 4, .kernel = {3}, .pad = {1}});
    int64_t n = 0;
    if (t && c1 && c3) {
        ds_node *ins[3] = {x, x1, x3}, *outs[3] = {t, c1, c3};
        ds_rng r;
        ds_rng_seed(&r, 3);
        for (int i = 0; i < 3; i++)
            ds_node_requires_grad(ins[i], 1);
        ds_graph_plan(g);
        for (int i = 0; i < 3; i++)
            fill_uniform(ds_node_data(ins[i]), ds_node_numel(ins[i]), -1, 1, &r);
        ds_model_zero_grad(m);
        for (int i = 0; i < 3; i++) {
            float *seed = malloc((size_t)ds_node_numel(outs[i]) * sizeof *seed);
            fill_uniform(seed, ds_node_numel(outs[i]), -1, 1, &r);
            ds_graph_forward(g);   /* a backward pass may reuse what the next one reads */
            ds_graph_backward_seed(g, outs[i], seed);
            free(seed);
            memcpy(out + n, ds_node_data(outs[i]), (size_t)ds_node_numel(outs[i]) * sizeof *out);
            n += ds_node_numel(outs[i]);
            memcpy(out + n, ds_node_grad(ins[i]), (size_t)ds_node_numel(ins[i]) * sizeof *out);
            n += ds_node_numel(ins[i]);
        }
        memcpy(out + n, ds_model_grad(m), (size_t)ds_model_block_len(m, 1) * sizeof *out);
        n += ds_model_block_len(m, 1);
    }
    ds_graph_free(g);
    ds_model_free(m);
    *n_out = n;
    return n > 0;
}

TEST(conv_threads_agree)
{
    int keep = ds_get_num_threads();
    int64_t cap = 1 << 23, n1, n2;
    float *a = malloc((size_t)cap * sizeof *a), *b = malloc((size_t)cap * sizeof *b);
    int ok = run_threads(1, a, &n1) && run_threads(2, b, &n2);
    ds_set_num_threads(keep);
    double worst = 0;
    for (int64_t i = 0; ok && i < n1; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(fmax(fabs(a[i]), fabs(b[i])), 1e-3);
        worst = fmax(worst, d);
    }
    free(a);
    free(b);
    CHECK(ok && n1 == n2);
    if (!(worst <= 1e-5))
        FAIL("1 and 2 threads differ by %.3g relative", worst);
    snprintf(msg_, cap_, "max rel diff %.2g over %lld values", worst, (long long)n1);
    return TEST_PASS;
}
