/* test_elementwise.c - add/sub/mul/div with broadcasting and the unary maps: gradient checks,
 * PyTorch fixtures (tests/fixtures/elementwise.safetensors), errors, NaN/inf semantics and
 * thread-count independence. */
#include "test.h"

#include "../src/internal.h"

typedef ds_node *(*binary_fn)(ds_graph *, ds_node *, ds_node *);
typedef ds_node *(*scalar_fn)(ds_graph *, ds_node *, float);
typedef ds_node *(*unary_fn)(ds_graph *, ds_node *);

static const struct { const char *name; binary_fn fn; } binops[] = {
    {"add", ds_add}, {"sub", ds_sub}, {"mul", ds_mul}, {"div", ds_div},
};

/* An operand needing a gradient: a graph input, or a parameter for 0 dimensions (inputs
 * carry the batch, so they have at least one). */
static ds_node *operand(ds_graph *g, const char *name, int ndim, const int64_t *shape)
{
    if (ndim == 0) {
        ds_param *p = ds_model_add_param(ds_graph_model(g), name, 0, shape, 1,
                                         (ds_init){DS_INIT_UNIFORM, 0.5f, 1.5f});
        return ds_param_node(g, p);
    }
    ds_node *x = ds_input(g, name, ndim, shape);
    if (x)
        ds_node_requires_grad(x, 1);
    return x;
}

/* ---- PyTorch fixtures ---- */

/* Largest |got - want| / |want| over elements with |want| > 1e-3, across all comparisons. */
static double max_rel;


/* Builds case c (inputs c.x0 .. c.x{nin-1}), runs forward and backward seeded with c.r, and
 * compares y and every input gradient with PyTorch. */
static int run_case(const ds_tensor_set *fx, const char *c, int nin, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x[2] = {NULL, NULL};
    char key[128];
    for (int i = 0; i < nin; i++) {
        snprintf(key, sizeof key, "%s.x%d", c, i);
        ds_tensor *t = ds_tensor_set_get(fx, key);
        if (!t) {
            snprintf(msg, cap, "fixture has no '%s'", key);
            goto fail;
        }
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        x[i] = operand(g, nm, ds_tensor_ndim(t), ds_tensor_shape(t));
    }
    snprintf(key, sizeof key, "%s.attr", c);
    const float *a = fixture_data(fx, key, NULL, msg, cap);
    if (!a)
        goto fail;
    ds_node *y = NULL;
    for (size_t k = 0; k < sizeof binops / sizeof binops[0]; k++) {
        size_t len = strlen(binops[k].name);
        if (nin == 2 && !strncmp(c, binops[k].name, len) && c[len] == '_')
            y = binops[k].fn(g, x[0], x[1]);
    }
    if (nin == 1) {
        if (!strcmp(c, "add_scalar"))
            y = ds_add_scalar(g, x[0], a[0]);
        else if (!strcmp(c, "mul_scalar"))
            y = ds_mul_scalar(g, x[0], a[0]);
        else if (!strncmp(c, "pow_scalar", 10))
            y = ds_pow_scalar(g, x[0], a[0]);
        else if (!strcmp(c, "neg"))
            y = ds_neg(g, x[0]);
        else if (!strcmp(c, "exp"))
            y = ds_exp(g, x[0]);
        else if (!strcmp(c, "log"))
            y = ds_log(g, x[0]);
        else if (!strcmp(c, "sqrt"))
            y = ds_sqrt(g, x[0]);
        else if (!strcmp(c, "square"))
            y = ds_square(g, x[0]);
        else if (!strcmp(c, "abs"))
            y = ds_abs(g, x[0]);
    }
    if (!y) {
        snprintf(msg, cap, "%s: build failed: %s", c, ds_last_error());
        goto fail;
    }
    if (fixture_run_case(fx, c, g, y, x, nin, msg, cap) ||
        fixture_compare_grads(fx, c, y, x, nin, &max_rel, msg, cap))
        goto fail;
    ds_graph_free(g);
    ds_model_free(m);
    return 0;
fail:
    ds_graph_free(g);
    ds_model_free(m);
    return 1;
}

TEST(elementwise_matches_pytorch)
{
    char err[512] = "";
    ds_tensor_set *fx = fixture_load("elementwise", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    static const char *const pairs[] = {"same", "b234_31", "b4_234", "nchw", "sc1", "both",
                                        "bias"};
    static const char *const unary[] = {
        "add_scalar", "mul_scalar", "pow_scalar_0", "pow_scalar_1", "pow_scalar_2",
        "pow_scalar_3", "pow_scalar_4", "pow_scalar_5", "neg", "exp", "log", "sqrt", "square",
        "abs",
    };
    max_rel = 0;
    int rc = 0, ncases = 0;
    for (size_t k = 0; !rc && k < sizeof binops / sizeof binops[0]; k++)
        for (size_t p = 0; !rc && p < sizeof pairs / sizeof pairs[0]; p++) {
            char c[64];
            snprintf(c, sizeof c, "%s_%s", binops[k].name, pairs[p]);
            rc = run_case(fx, c, 2, err, sizeof err);
            ncases++;
        }
    for (size_t k = 0; !rc && k < sizeof unary / sizeof unary[0]; k++) {
        rc = run_case(fx, unary[k], 1, err, sizeof err);
        ncases++;
    }
    ds_tensor_set_free(fx);
    if (rc)
        FAIL("%s", err);
    snprintf(msg_, cap_, "%d cases, max rel err %.2g", ncases, max_rel);
    return TEST_PASS;
}

/* ---- gradient checks ---- */

static const struct { int na; int64_t a[DS_MAX_DIMS]; int nb; int64_t b[DS_MAX_DIMS]; } shapes[] = {
    {2, {3, 5}, 2, {3, 5}},                    /* same shape */
    {3, {2, 3, 4}, 2, {3, 1}},                 /* middle and last axes broadcast */
    {1, {4}, 3, {2, 3, 4}},                    /* the first operand broadcast */
    {2, {5, 3}, 1, {3}},                       /* bias-like */
    {4, {2, 3, 2, 3}, 4, {1, 3, 1, 1}},        /* per-channel */
    {3, {2, 1, 4}, 2, {3, 1}},                 /* both broadcast */
    {2, {2, 3}, 1, {1}},                       /* scalar-like [1] */
    {2, {2, 3}, 0, {0}},                       /* 0-dim scalar */
    {0, {0}, 3, {3, 1, 2}},                    /* 0-dim scalar first */
    {2, {1, 5}, 1, {5}},                       /* batch 1 */
    {6, {2, 1, 3, 1, 2, 1}, 5, {3, 1, 2, 1, 3}},   /* six dimensions */
    {3, {1, 1, 1}, 1, {1}},                    /* everything size 1 */
};

TEST(binary_ops_gradcheck_with_broadcasting)
{
    ds_rng r;
    ds_rng_seed(&r, 11);
    int checks = 0;
    for (size_t k = 0; k < sizeof binops / sizeof binops[0]; k++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            ds_model *m = ds_model_create(3);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *a = operand(g, "a", shapes[s].na, shapes[s].a);
            ds_node *b = operand(g, "b", shapes[s].nb, shapes[s].b);
            ds_node *y = binops[k].fn(g, a, b);
            if (!y)
                FAIL("%s case %zu: %s", binops[k].name, s, ds_last_error());
            CHECK(ds_graph_plan(g) == DS_OK);
            fill_uniform(ds_node_data(a), ds_node_numel(a), -1, 1, &r);
            fill_away(ds_node_data(b), ds_node_numel(b), -2, 2, 0.5f, &r);
            int rc = gradcheck(g, y, 2, (ds_node *[]){a, b}, 1e-2, 1e-5, 1e-3, msg_, cap_);
            ds_graph_free(g);
            ds_model_free(m);
            if (rc) {
                char keep[1024];
                snprintf(keep, sizeof keep, "%s", msg_);
                FAIL("case %zu: %s", s, keep);
            }
            checks++;
        }
    snprintf(msg_, cap_, "%d checks", checks);
    return TEST_PASS;
}

TEST(unary_ops_gradcheck)
{
    static const struct { const char *name; scalar_fn sf; unary_fn uf; float c, lo, hi; } ops[] = {
        {"add_scalar", ds_add_scalar, NULL, 0.7f, -2, 2},
        {"mul_scalar", ds_mul_scalar, NULL, -1.3f, -2, 2},
        {"pow 2", ds_pow_scalar, NULL, 2.0f, -2, 2},
        {"pow 3", ds_pow_scalar, NULL, 3.0f, -2, 2},
        {"pow 0.5", ds_pow_scalar, NULL, 0.5f, 0.3f, 2},
        {"pow -1", ds_pow_scalar, NULL, -1.0f, 0.5f, 2},
        {"pow -1.5", ds_pow_scalar, NULL, -1.5f, 0.5f, 2},
        {"pow 1.7", ds_pow_scalar, NULL, 1.7f, 0.3f, 2},
        {"pow 0", ds_pow_scalar, NULL, 0.0f, -2, 2},
        {"neg", NULL, ds_neg, 0, -2, 2},
        {"exp", NULL, ds_exp, 0, -2, 2},
        {"log", NULL, ds_log, 0, 0.3f, 3},
        {"sqrt", NULL, ds_sqrt, 0, 0.3f, 3},
        {"square", NULL, ds_square, 0, -2, 2},
        {"abs", NULL, ds_abs, 0, -2, 2},
    };
    ds_rng r;
    ds_rng_seed(&r, 12);
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (int batch = 1; batch <= 3; batch += 2) {
            ds_model *m = ds_model_create(3);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x = operand(g, "x", 3, (int64_t[]){batch, 5, 3});
            ds_node *y = ops[k].sf ? ops[k].sf(g, x, ops[k].c) : ops[k].uf(g, x);
            CHECK(y && ds_node_ndim(y) == 3 && ds_node_numel(y) == batch * 15);
            CHECK(ds_graph_plan(g) == DS_OK);
            if (ops[k].lo < 0)
                fill_away(ds_node_data(x), ds_node_numel(x), ops[k].lo, ops[k].hi, 0.1f, &r);
            else
                fill_uniform(ds_node_data(x), ds_node_numel(x), ops[k].lo, ops[k].hi, &r);
            int rc = gradcheck(g, y, 1, &x, 1e-3, 1e-5, 1e-3, msg_, cap_);
            ds_graph_free(g);
            ds_model_free(m);
            if (rc) {
                char keep[1024];
                snprintf(keep, sizeof keep, "%s", msg_);
                FAIL("%s: %s", ops[k].name, keep);
            }
        }
    return TEST_PASS;
}

/* ---- values, errors and semantics ---- */

TEST(broadcast_forward_values)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 3, (int64_t[]){2, 3, 4});
    ds_node *b = ds_input(g, "b", 2, (int64_t[]){3, 1});
    ds_node *c = ds_input(g, "c", 1, (int64_t[]){4});
    ds_node *y[4], *z[4];
    for (int k = 0; k < 4; k++) {
        y[k] = binops[k].fn(g, a, b);
        z[k] = binops[k].fn(g, c, a);
        CHECK(y[k] && ds_node_ndim(y[k]) == 3 && ds_node_shape(y[k])[2] == 4);
        CHECK(z[k] && ds_node_numel(z[k]) == 24);
    }
    CHECK(ds_graph_plan(g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 5);
    float *ad = ds_node_data(a), *bd = ds_node_data(b), *cd = ds_node_data(c);
    fill_uniform(ad, 24, -1, 1, &r);
    fill_away(bd, 3, -2, 2, 0.5f, &r);
    fill_away(cd, 4, -2, 2, 0.5f, &r);
    CHECK(ds_graph_forward(g) == DS_OK);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) {
                float av = ad[(i * 3 + j) * 4 + k], bv = bd[j], cv = cd[k];
                int at = (i * 3 + j) * 4 + k;
                float want[4] = {av + bv, av - bv, av * bv, av / bv};
                float want2[4] = {cv + av, cv - av, cv * av, cv / av};
                for (int o = 0; o < 4; o++) {
                    CHECK(ds_node_data(y[o])[at] == want[o]);
                    CHECK(ds_node_data(z[o])[at] == want2[o]);
                }
            }
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(broadcast_error_names_both_shapes)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 3, (int64_t[]){2, 3, 4});
    ds_node *b = ds_input(g, "b", 2, (int64_t[]){2, 4});
    CHECK(!ds_mul(g, a, b));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    const char *e = ds_last_error();
    if (!strstr(e, "mul") || !strstr(e, "[2, 3, 4]") || !strstr(e, "[2, 4]"))
        FAIL("message does not name the op and both shapes: %s", e);
    /* a failed graph stays failed; later builders return NULL quietly */
    CHECK(!ds_add(g, a, a));
    CHECK(!ds_exp(g, NULL));
    ds_graph_free(g);
    /* the batch change re-checks broadcasting */
    g = ds_graph_create(m, 1);
    a = ds_input(g, "a", 2, (int64_t[]){4, 3});
    b = ds_param_node(g, ds_model_add_param(m, "p", 2, (int64_t[]){4, 3}, 1,
                                            (ds_init){DS_INIT_ZEROS, 0, 0}));
    CHECK(ds_add(g, a, b));
    CHECK(ds_graph_set_batch(g, 1) == DS_OK);   /* [1, 3] + [4, 3] still broadcasts */
    CHECK(ds_graph_set_batch(g, 2) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "[2, 3]") && strstr(ds_last_error(), "[4, 3]"));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(log_and_sqrt_of_nonpositive_follow_pytorch)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = operand(g, "x", 1, (int64_t[]){3});
    ds_node *l = ds_log(g, x), *s = ds_sqrt(g, x), *d = ds_div(g, x, x);
    ds_node *loss = ds_sum(g, l, 0, NULL, 0);
    CHECK(loss && s && d);
    ds_node_keep(l, 1);   /* read after forward */
    CHECK(ds_graph_plan(g) == DS_OK);
    float *xd = ds_node_data(x);
    xd[0] = 0;
    xd[1] = -1;
    xd[2] = 4;
    CHECK(ds_graph_forward(g) == DS_OK);
    const float *ld = ds_node_data(l), *sd = ds_node_data(s), *dd = ds_node_data(d);
    CHECK(isinf(ld[0]) && ld[0] < 0);
    CHECK(isnan(ld[1]));
    CHECK_NEAR(ld[2], logf(4), 0);
    CHECK(sd[0] == 0 && isnan(sd[1]) && sd[2] == 2);
    CHECK(isnan(dd[0]) && dd[1] == 1);           /* 0 / 0 */
    CHECK(ds_graph_backward(g, loss) == DS_OK);
    const float *gx = ds_node_grad(x);
    CHECK(isinf(gx[0]) && gx[0] > 0);            /* d log x = 1 / x = +inf at 0 */
    CHECK_NEAR(gx[1], -1, 0);
    CHECK_NEAR(gx[2], 0.25, 0);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* Broadcast gradients are sums; they must not depend on how many threads run them. */
TEST(broadcast_results_do_not_depend_on_threads)
{
    int keep_threads = ds_get_num_threads();
    float *res[2] = {NULL, NULL};
    int64_t total = 0;
    for (int run = 0; run < 2; run++) {
        ds_set_num_threads(run == 0 ? 1 : 4);
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *a = operand(g, "a", 3, (int64_t[]){64, 3, 200});
        ds_node *b = operand(g, "b", 3, (int64_t[]){1, 3, 1});
        ds_node *c = operand(g, "c", 1, (int64_t[]){200});
        ds_node *y = ds_div(g, ds_mul(g, a, b), c);
        ds_node *l = ds_sum(g, ds_square(g, y), 0, NULL, 0);
        CHECK(l && ds_graph_plan(g) == DS_OK);
        ds_rng r;
        ds_rng_seed(&r, 3);
        fill_uniform(ds_node_data(a), ds_node_numel(a), -1, 1, &r);
        fill_uniform(ds_node_data(b), 3, -1, 1, &r);
        fill_away(ds_node_data(c), 200, -2, 2, 0.5f, &r);
        CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, l) == DS_OK);
        total = ds_node_numel(a) + 3 + 200 + 1;
        res[run] = malloc((size_t)total * sizeof(float));
        memcpy(res[run], ds_node_grad(a), (size_t)ds_node_numel(a) * sizeof(float));
        memcpy(res[run] + ds_node_numel(a), ds_node_grad(b), 3 * sizeof(float));
        memcpy(res[run] + ds_node_numel(a) + 3, ds_node_grad(c), 200 * sizeof(float));
        res[run][total - 1] = ds_node_data(l)[0];
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_set_num_threads(keep_threads);
    int same = !memcmp(res[0], res[1], (size_t)total * sizeof(float));
    free(res[0]);
    free(res[1]);
    CHECK(same);
    return TEST_PASS;
}
