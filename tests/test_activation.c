/* test_activation.c - activations, GELU/SiLU, PReLU and softmax/log-softmax: gradient
 * checks, PyTorch fixtures (tests/fixtures/activation.safetensors), stability at +-100,
 * GELU/SiLU accuracy over their whole range, ds_activate and the PReLU layer's naming, and
 * errors. */
#include "test.h"

#include "../src/internal.h"

#include <unistd.h>


/* ---- PyTorch fixtures ---- */

static double max_rel;   /* largest |got - want| / |want| over |want| > 1e-3 */


/* Case c: input c.x0, attributes c.attr, for PReLU the weight c.w; compares y, dx0 (and dw). */
static int run_case(const ds_tensor_set *fx, const char *c, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    char key[128];
    snprintf(key, sizeof key, "%s.x0", c);
    ds_tensor *t = ds_tensor_set_get(fx, key);
    snprintf(key, sizeof key, "%s.attr", c);
    const float *a = fixture_data(fx, key, NULL, msg, cap);
    if (!t || !a) {
        snprintf(msg, cap, "fixture lacks case '%s'", c);
        goto fail;
    }
    ds_node *x = grad_input(g, "x", ds_tensor_ndim(t), ds_tensor_shape(t));
    ds_node *y = NULL;
    bool prelu = !strncmp(c, "prelu", 5);
    if (prelu)
        y = ds_prelu(g, x, "p", !strcmp(c, "prelu_shared"));
    else if (!strcmp(c, "sigmoid"))
        y = ds_sigmoid(g, x);
    else if (!strcmp(c, "tanh"))
        y = ds_tanh(g, x);
    else if (!strcmp(c, "relu"))
        y = ds_relu(g, x);
    else if (!strcmp(c, "softplus"))
        y = ds_softplus(g, x);
    else if (!strncmp(c, "leaky_relu", 10))
        y = ds_leaky_relu(g, x, a[0]);
    else if (!strncmp(c, "elu", 3))
        y = ds_elu(g, x, a[0]);
    else if (!strncmp(c, "gelu", 4))
        y = ds_gelu(g, x, a[0] != 0);   /* attr 1: approximate='tanh' */
    else if (!strncmp(c, "silu", 4))
        y = ds_silu(g, x);
    else if (!strncmp(c, "softmax", 7))
        y = ds_softmax(g, x, (int)a[0]);
    else if (!strncmp(c, "log_softmax", 11))
        y = ds_log_softmax(g, x, (int)a[0]);
    if (!y || ds_graph_plan(g) != DS_OK)
        goto fail_err;
    memcpy(ds_node_data(x), ds_tensor_data(t), (size_t)ds_tensor_numel(t) * sizeof(float));
    ds_param *w = ds_model_find(m, "p.weight");
    if (prelu) {
        snprintf(key, sizeof key, "%s.w", c);
        int64_t n;
        const float *wd = fixture_data(fx, key, &n, msg, cap);
        if (!wd || !w || n != ds_param_numel(w)) {
            snprintf(msg, cap, "%s: weight missing or mis-sized", c);
            goto fail;
        }
        memcpy(ds_param_data(w), wd, (size_t)n * sizeof *wd);
    }
    snprintf(key, sizeof key, "%s.r", c);
    const float *r = fixture_data(fx, key, NULL, msg, cap);
    ds_model_zero_grad(m);
    if (!r || ds_graph_forward(g) != DS_OK || ds_graph_backward_seed(g, y, r) != DS_OK)
        goto fail_err;
    if (fixture_compare_case(fx, c, "y", ds_node_data(y), ds_node_numel(y), &max_rel, msg, cap) ||
        fixture_compare_case(fx, c, "dx0", ds_node_grad(x), ds_node_numel(x), &max_rel, msg, cap) ||
        (prelu && fixture_compare_case(fx, c, "dw", ds_param_grad(w), ds_param_numel(w), &max_rel, msg, cap)))
        goto fail;
    coverage_mark_all(y, COVER_TORCH);
    ds_graph_free(g);
    ds_model_free(m);
    return 0;
fail_err:
    snprintf(msg, cap, "%s: %s", c, ds_last_error());
fail:
    ds_graph_free(g);
    ds_model_free(m);
    return 1;
}

TEST(activations_match_pytorch)
{
    static const char *const cases[] = {
        "sigmoid", "tanh", "relu", "softplus", "leaky_relu", "leaky_relu_02", "elu", "elu_05",
        "prelu_nchw", "prelu_nc", "prelu_shared",
        "softmax_x1", "softmax_x0", "softmax_3d_m1", "softmax_4d_1", "softmax_4d_2",
        "log_softmax_x1", "log_softmax_x0", "log_softmax_3d_m1", "log_softmax_4d_1",
        "log_softmax_4d_2", "gelu", "gelu_wide", "gelu_tanh", "gelu_tanh_wide", "silu",
        "silu_wide",
    };
    char err[512] = "";
    ds_tensor_set *fx = fixture_load("activation", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    max_rel = 0;
    int rc = 0;
    for (size_t k = 0; !rc && k < sizeof cases / sizeof cases[0]; k++)
        rc = run_case(fx, cases[k], err, sizeof err);
    ds_tensor_set_free(fx);
    if (rc)
        FAIL("%s", err);
    snprintf(msg_, cap_, "%zu cases, max rel err %.2g", sizeof cases / sizeof cases[0], max_rel);
    return TEST_PASS;
}

/* ---- gradient checks ---- */

static int check_one(ds_node *(*build)(ds_graph *, ds_node *, int), int arg, int ndim,
                     const int64_t *shape, float lo, float hi, uint64_t seed, char *msg,
                     size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = grad_input(g, "x", ndim, shape);
    ds_node *y = build(g, x, arg);
    int rc = 1;
    if (!y || ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "build: %s", ds_last_error());
    } else {
        ds_rng r;
        ds_rng_seed(&r, seed);
        fill_away(ds_node_data(x), ds_node_numel(x), lo, hi, 0.05f, &r);
        /* step 1e-2 (inputs are 0.05 away from kinks): rounding of the outputs over
         * 2h stays below 2e-6 against gradients of mean |value| 5e-2 or more */
        rc = gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg, cap);
    }
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

static ds_node *b_sigmoid(ds_graph *g, ds_node *x, int a) { (void)a; return ds_sigmoid(g, x); }
static ds_node *b_tanh(ds_graph *g, ds_node *x, int a) { (void)a; return ds_tanh(g, x); }
static ds_node *b_relu(ds_graph *g, ds_node *x, int a) { (void)a; return ds_relu(g, x); }
static ds_node *b_softplus(ds_graph *g, ds_node *x, int a) { (void)a; return ds_softplus(g, x); }
static ds_node *b_leaky(ds_graph *g, ds_node *x, int a) { (void)a; return ds_leaky_relu(g, x, 0.1f); }
static ds_node *b_elu(ds_graph *g, ds_node *x, int a) { (void)a; return ds_elu(g, x, 0.7f); }
static ds_node *b_gelu(ds_graph *g, ds_node *x, int a) { (void)a; return ds_gelu(g, x, 0); }
static ds_node *b_gelu_tanh(ds_graph *g, ds_node *x, int a) { (void)a; return ds_gelu(g, x, 1); }
static ds_node *b_silu(ds_graph *g, ds_node *x, int a) { (void)a; return ds_silu(g, x); }
static ds_node *b_softmax(ds_graph *g, ds_node *x, int a) { return ds_softmax(g, x, a); }
static ds_node *b_log_softmax(ds_graph *g, ds_node *x, int a) { return ds_log_softmax(g, x, a); }

TEST(pointwise_activations_gradcheck)
{
    static const struct { const char *name; ds_node *(*fn)(ds_graph *, ds_node *, int); } ops[] = {
        {"sigmoid", b_sigmoid}, {"tanh", b_tanh}, {"relu", b_relu}, {"softplus", b_softplus},
        {"leaky_relu", b_leaky}, {"elu", b_elu}, {"gelu", b_gelu}, {"gelu_tanh", b_gelu_tanh},
        {"silu", b_silu},
    };
    static const struct { int nd; int64_t s[4]; } shapes[] = {
        {2, {3, 7}}, {1, {5}}, {4, {1, 2, 3, 2}}, {2, {1, 1}},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            if (check_one(ops[k].fn, 0, shapes[s].nd, shapes[s].s, -4, 4, 20 + s, msg_, cap_)) {
                char keep[1024];
                snprintf(keep, sizeof keep, "%s", msg_);
                FAIL("%s shape %zu: %s", ops[k].name, s, keep);
            }
    /* softplus near and beyond its threshold of 20 */
    CHECK_OK(check_one(b_softplus, 0, 2, (int64_t[]){2, 4}, 15, 25, 3, msg_, cap_));
    return TEST_PASS;
}

TEST(softmax_and_log_softmax_gradcheck_every_axis)
{
    static const struct { int nd; int64_t s[4]; } shapes[] = {
        {2, {3, 5}}, {3, {2, 3, 4}}, {4, {2, 3, 2, 3}}, {2, {1, 6}}, {1, {7}},
    };
    ds_node *(*fns[2])(ds_graph *, ds_node *, int) = {b_softmax, b_log_softmax};
    for (int f = 0; f < 2; f++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int a = -shapes[s].nd; a < shapes[s].nd; a++)
                if (check_one(fns[f], a, shapes[s].nd, shapes[s].s, -3, 3, 40 + s, msg_, cap_)) {
                    char keep[1024];
                    snprintf(keep, sizeof keep, "%s", msg_);
                    FAIL("%s shape %zu axis %d: %s", f ? "log_softmax" : "softmax", s, a, keep);
                }
    return TEST_PASS;
}

TEST(prelu_gradcheck_input_and_weight)
{
    static const struct { int nd; int64_t s[4]; int shared; } cases[] = {
        {4, {2, 3, 2, 2}, 0}, {2, {1, 3}, 0}, {3, {2, 4, 3}, 0}, {2, {2, 5}, 1}, {1, {5}, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = grad_input(g, "x", cases[k].nd, cases[k].s);
        ds_node *y = ds_prelu(g, x, "act", cases[k].shared);
        CHECK(y && y->op == DS_OP_PRELU);
        ds_node *w = y->in[1];
        CHECK(ds_node_numel(w) == (cases[k].shared ? 1 : cases[k].s[1]));
        CHECK(ds_graph_plan(g) == DS_OK);
        ds_rng r;
        ds_rng_seed(&r, 60 + k);
        fill_away(ds_node_data(x), ds_node_numel(x), -2, 2, 0.05f, &r);
        fill_uniform(ds_node_data(w), ds_node_numel(w), 0, 0.5f, &r);
        int rc = gradcheck(g, y, 2, (ds_node *[]){x, w}, 1e-2, 1e-5, 1e-3, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return TEST_FAIL;
    }
    return TEST_PASS;
}

/* ---- stability ---- */

TEST(activations_are_finite_at_plus_minus_100)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = grad_input(g, "x", 2, (int64_t[]){2, 4});
    ds_node *ys[] = {
        ds_sigmoid(g, x), ds_softplus(g, x), ds_tanh(g, x), ds_elu(g, x, 1.0f),
        ds_softmax(g, x, 1), ds_log_softmax(g, x, 1), ds_softmax(g, x, 0),
        ds_log_softmax(g, x, 0), ds_gelu(g, x, 0), ds_gelu(g, x, 1), ds_silu(g, x),
    };
    int ny = (int)(sizeof ys / sizeof ys[0]);
    ds_node *parts[sizeof ys / sizeof ys[0]];
    for (int k = 0; k < ny; k++)
        parts[k] = ds_sum(g, ys[k], 0, NULL, 1);
    ds_node *l = ds_sum(g, ds_concat(g, ny, parts, 0), 0, NULL, 0);
    for (int k = 0; k < ny; k++)
        ds_node_keep(ys[k], 1);   /* read after backward */
    CHECK(l && ds_graph_plan(g) == DS_OK);
    const float v[8] = {100, -100, 0.5f, -90, -100, 100, 99, -99};
    memcpy(ds_node_data(x), v, sizeof v);
    CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, l) == DS_OK);
    for (int k = 0; k < ny; k++)
        for (int i = 0; i < 8; i++)
            if (!isfinite(ds_node_data(ys[k])[i]))
                FAIL("%s(%g) = %g", ds_node_op_name(ys[k]), v[i], ds_node_data(ys[k])[i]);
    for (int i = 0; i < 8; i++)
        CHECK(isfinite(ds_node_grad(x)[i]));
    const float *sg = ds_node_data(ys[0]), *sp = ds_node_data(ys[1]);
    CHECK(sg[0] == 1.0f && sg[1] >= 0 && sg[1] < 1e-40f);
    CHECK(sp[0] == 100.0f && sp[1] >= 0 && sp[1] < 1e-40f);
    for (int k = 8; k < 11; k++)   /* gelu, gelu (tanh), silu: x at +100, -0 at -100 */
        CHECK(ds_node_data(ys[k])[0] == 100.0f && fabsf(ds_node_data(ys[k])[1]) < 1e-30f);
    const float *ls = ds_node_data(ys[5]);   /* log_softmax over [100, -100, 0.5, -90] */
    CHECK_NEAR(ls[0], 0, 1e-6);
    CHECK_NEAR(ls[1], -200, 1e-4);
    CHECK_NEAR(ls[3], -190, 1e-4);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* ---- GELU and SiLU against double references over their whole range ---- */

/* y and dy/dx in double: gelu (kind 0), gelu with approximate='tanh' (1), silu (2). The
 * tanh form as x sigmoid(2u): 1 + tanh(u) cancels in double too, in the left tail. */
static void gate_ref(int kind, double x, double *y, double *d)
{
    if (kind == 0) {
        double cdf = 0.5 * erfc(-x / sqrt(2.0)), pdf = exp(-0.5 * x * x) / sqrt(2 * M_PI);
        *y = x * cdf;
        *d = cdf + x * pdf;
        return;
    }
    double k = kind == 1 ? 2 * sqrt(2 / M_PI) : 1, c = kind == 1 ? 0.044715 : 0;
    double s = 1 / (1 + exp(-k * (x + c * x * x * x)));
    *y = x * s;
    *d = s + x * s * (1 - s) * k * (1 + 3 * c * x * x);
}

/* The kernels use their own vectorizable e^x and erfc: relative error of y within 5e-6 of
 * max(|y|, 1e-6 |x|) (relative where the gate is above 1e-6, absolute in the far left tail),
 * of dy/dx within 5e-6 of max(|dy/dx|, 1), on x in [-20, 20] and at +-100; and the same
 * bits for any thread count. */
TEST(gelu_and_silu_are_accurate_over_their_range)
{
    enum { N = 40003 };
    float *xs = malloc(N * sizeof *xs), *one = malloc(N * sizeof *one);
    CHECK(xs && one);
    for (int i = 0; i < N - 2; i++)
        xs[i] = (float)(-20.0 + 40.0 * i / (N - 3));
    xs[N - 2] = 100.0f;
    xs[N - 1] = -100.0f;
    for (int i = 0; i < N; i++)
        one[i] = 1.0f;
    double worst_y = 0, worst_d = 0;
    for (int kind = 0; kind < 3; kind++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = grad_input(g, "x", 1, (int64_t[]){N});
        ds_node *y = kind == 2 ? ds_silu(g, x) : ds_gelu(g, x, kind);
        CHECK(y && ds_graph_set_input(g, x, xs, N) == DS_OK);
        CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, one) == DS_OK);
        const float *yd = ds_node_data(y), *dx = ds_node_grad(x);
        /* the same bits with 3 threads, whose chunks start at odd places */
        float *keep = malloc(2 * N * sizeof *keep);
        CHECK(keep);
        memcpy(keep, yd, N * sizeof *keep);
        memcpy(keep + N, dx, N * sizeof *keep);
        int nth = ds_get_num_threads();
        ds_set_num_threads(3);
        ds_status st = ds_graph_forward(g);
        st = st ? st : ds_graph_backward_seed(g, y, one);
        ds_set_num_threads(nth);
        bool same = !memcmp(keep, yd, N * sizeof *keep) && !memcmp(keep + N, dx, N * sizeof *dx);
        free(keep);
        CHECK(st == DS_OK && same);
        for (int i = 0; i < N; i++) {
            double ry, rd;
            gate_ref(kind, xs[i], &ry, &rd);
            double ey = fabs(yd[i] - ry) / fmax(fabs(ry), 1e-6 * fabs(xs[i]) + 1e-300);
            double ed = fabs(dx[i] - rd) / fmax(fabs(rd), 1.0);
            if (!(ey <= 5e-6) || !(ed <= 5e-6))
                FAIL("%s(%.9g): y %.9g (want %.9g), dy/dx %.9g (want %.9g)",
                     ds_node_op_name(y), (double)xs[i], (double)yd[i], ry, (double)dx[i], rd);
            worst_y = fmax(worst_y, ey);
            worst_d = fmax(worst_d, ed);
        }
        ds_graph_free(g);
        ds_model_free(m);
    }
    free(xs);
    free(one);
    snprintf(msg_, cap_, "max rel err: y %.2g, dy/dx %.2g", worst_y, worst_d);
    return TEST_PASS;
}

/* The model-file keywords: gelu and silu layers, activation= and "activation silu". */
TEST(gelu_and_silu_model_file_keywords)
{
    char dir[] = "/tmp/deepsky_act_XXXXXX", path[64];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/g.model", dir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs("input shape=6\n"
          "dense name=d1 units=5 activation=gelu\n"
          "gelu name=g\n"
          "silu\n"
          "activation silu\n"
          "dense name=d2 units=3 activation=silu\n"
          "loss mse\n", f);
    CHECK(fclose(f) == 0);
    ds_net *net = NULL;
    ds_net_opts o = {.batch = 2, .seed = 1};
    ds_status st = ds_net_load(path, &o, &net);
    remove(path);
    rmdir(dir);
    if (st != DS_OK)
        FAIL("%s", ds_last_error());
    ds_graph *g = ds_net_graph(net);
    int gelu = 0, silu = 0;
    for (int i = 0; i < ds_graph_node_count(g); i++) {
        const char *op = ds_node_op_name(ds_graph_node(g, i));
        gelu += !strcmp(op, "gelu");
        silu += !strcmp(op, "silu");
    }
    ds_node *gn = ds_graph_find(g, "g");
    CHECK(gelu == 2 && silu == 3);
    CHECK(gn && !strcmp(ds_node_op_name(gn), "gelu"));
    CHECK(!strcmp(ds_node_op_name(ds_net_output(net)), "silu"));
    ds_net_free(net);
    return TEST_PASS;
}

/* ---- ds_activate, names, the PReLU layer ---- */

TEST(activate_maps_kinds_and_names)
{
    static const char *const names[DS_ACT_COUNT] = {
        "linear", "relu", "sigmoid", "tanh", "softplus", "leaky_relu", "elu", "softmax",
        "log_softmax", "prelu", "gelu", "silu",
    };
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){3, 4});
    for (int a = 0; a < DS_ACT_COUNT; a++) {
        CHECK(!strcmp(ds_activation_name((ds_activation)a), names[a]));
        ds_node *y = ds_activate(g, x, (ds_activation)a, "blk");
        CHECK(y);
        if (a == DS_ACT_NONE)
            CHECK(y == x);
        else
            CHECK(!strcmp(ds_node_op_name(y), names[a]));
        if (a == DS_ACT_SOFTMAX || a == DS_ACT_LOG_SOFTMAX)
            CHECK(y->attr.softmax.axis == 1);
        if (a == DS_ACT_LEAKY_RELU)
            CHECK(y->attr.leaky_relu.slope == 0.01f);
        if (a == DS_ACT_ELU)
            CHECK(y->attr.elu.alpha == 1.0f);
    }
    ds_param *p = ds_model_find(m, "blk.prelu.weight");
    CHECK(p && ds_param_ndim(p) == 1 && ds_param_shape(p)[0] == 4 && ds_param_data(p)[0] == 0.25f);
    CHECK(!strcmp(ds_activation_name((ds_activation)99), "unknown"));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(prelu_layer_names_and_dense_activation)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 3, 4, 4});
    ds_node *y = ds_prelu(g, x, NULL, 0);
    CHECK(y && !strcmp(ds_node_layer_name(y), "prelu_1"));
    CHECK(!strcmp(g->layers[y->layer].type, "PReLU"));
    ds_param *p = ds_model_find(m, "prelu_1.weight");
    CHECK(p && ds_param_numel(p) == 3 && ds_param_data(p)[2] == 0.25f);
    ds_node *y2 = ds_prelu(g, y, NULL, 1);
    CHECK(y2 && ds_param_numel(ds_model_find(m, "prelu_2.weight")) == 1);
    /* dense(activation = PReLU): "<layer>.prelu.weight", one slope per unit, in the layer */
    ds_node *z = ds_input(g, "z", 2, (int64_t[]){2, 5});
    ds_node *d = ds_dense(g, z, &(ds_dense_opts){.name = "fc", .units = 6,
                                                 .activation = DS_ACT_PRELU});
    CHECK(d && d->op == DS_OP_PRELU && !strcmp(ds_node_layer_name(d), "fc"));
    CHECK(ds_graph_find(g, "fc") == d);
    p = ds_model_find(m, "fc.prelu.weight");
    CHECK(p && ds_param_numel(p) == 6);
    CHECK(ds_model_param_count(m) == 5);
    /* a second graph on the same model shares the slopes */
    ds_graph *g2 = ds_graph_create(m, 2);
    ds_node *z2 = ds_input(g2, "z", 2, (int64_t[]){7, 5});
    CHECK(ds_dense(g2, z2, &(ds_dense_opts){.name = "fc", .units = 6,
                                             .activation = DS_ACT_PRELU}));
    CHECK(ds_model_param_count(m) == 5);
    ds_graph_free(g2);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(activation_errors)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){3, 4});
    CHECK(!ds_softmax(g, x, 2));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "softmax") && strstr(ds_last_error(), "[3, 4]"));
    ds_graph_free(g);

    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){3, 4});
    CHECK(!ds_log_softmax(g, x, -3));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE && strstr(ds_last_error(), "log_softmax"));
    ds_graph_free(g);

    /* per-channel PReLU needs a channel dimension */
    g = ds_graph_create(m, 1);
    ds_node *v = ds_input(g, "v", 1, (int64_t[]){5});
    CHECK(!ds_prelu(g, v, "pr", 0));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE && strstr(ds_last_error(), "pr"));
    ds_graph_free(g);

    /* reusing a PReLU name on a different channel count names the parameter and shapes */
    g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 2, (int64_t[]){2, 3});
    ds_node *b = ds_input(g, "b", 2, (int64_t[]){2, 5});
    CHECK(ds_prelu(g, a, "same", 0));
    CHECK(!ds_prelu(g, b, "same", 0));
    CHECK(strstr(ds_last_error(), "same.weight") && strstr(ds_last_error(), "[3]"));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}
