/* test_reduce_shape.c - sum/mean over axes, concat, reshape, flatten and slice: gradient
 * checks, PyTorch fixtures (tests/fixtures/reduce_shape.safetensors), batch changes and
 * errors. */
#include "test.h"

#include "../src/internal.h"


/* ---- PyTorch fixtures ---- */

static double max_rel;   /* largest |got - want| / |want| over |want| > 1e-3 */


/* Case c with inputs c.x0 .. (as many as the fixture holds) and attributes c.attr:
 * sum/mean [keepdim, axes...], concat [axis], reshape [target...], slice [axis, start, end]. */
static int run_case(const ds_tensor_set *fx, const char *c, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x[4];
    int nin = 0;
    char key[128];
    for (; nin < 4; nin++) {
        snprintf(key, sizeof key, "%s.x%d", c, nin);
        ds_tensor *t = ds_tensor_set_get(fx, key);
        if (!t)
            break;
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", nin);
        x[nin] = grad_input(g, nm, ds_tensor_ndim(t), ds_tensor_shape(t));
    }
    int64_t na = 0;
    snprintf(key, sizeof key, "%s.attr", c);
    const float *a = fixture_data(fx, key, &na, msg, cap);
    if (!nin || !a) {
        snprintf(msg, cap, "fixture lacks case '%s'", c);
        goto fail;
    }
    ds_node *y = NULL;
    if (!strncmp(c, "sum", 3) || !strncmp(c, "mean", 4)) {
        int axes[DS_MAX_DIMS], n = (int)na - 1;
        for (int i = 0; i < n; i++)
            axes[i] = (int)a[1 + i];
        y = (c[0] == 's' ? ds_sum : ds_mean)(g, x[0], n, axes, (int)a[0]);
    } else if (!strncmp(c, "concat", 6)) {
        y = ds_concat(g, nin, x, (int)a[0]);
    } else if (!strncmp(c, "reshape", 7)) {
        int64_t s[DS_MAX_DIMS];
        for (int i = 0; i < na; i++)
            s[i] = (int64_t)a[i];
        y = ds_reshape(g, x[0], (int)na, s);
    } else if (!strcmp(c, "flatten")) {
        y = ds_flatten(g, x[0]);
    } else if (!strncmp(c, "slice", 5)) {
        y = ds_slice(g, x[0], (int)a[0], (int64_t)a[1], (int64_t)a[2]);
    }
    if (!y)
        goto fail_err;
    if (fixture_run_case(fx, c, g, y, x, nin, msg, cap))
        goto fail;
    /* the output shape too (st.py stores a 0-dim tensor as [1]: numpy's ascontiguousarray
     * returns at least one dimension) */
    snprintf(key, sizeof key, "%s.y", c);
    ds_tensor *ty = ds_tensor_set_get(fx, key);
    bool scalar = ty && ds_node_ndim(y) == 0 && ds_tensor_numel(ty) == 1 && ds_tensor_ndim(ty) <= 1;
    bool same = scalar || (ty && ds_tensor_ndim(ty) == ds_node_ndim(y));
    for (int d = 0; same && !scalar && d < ds_node_ndim(y); d++)
        same = ds_tensor_shape(ty)[d] == ds_node_shape(y)[d];
    if (!same) {
        snprintf(msg, cap, "%s: output shape %s differs from PyTorch's", c,
                 dsi_shape_str(ds_node_ndim(y), ds_node_shape(y)));
        goto fail;
    }
    if (fixture_compare_grads(fx, c, y, x, nin, &max_rel, msg, cap))
        goto fail;
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

TEST(reduce_and_shape_ops_match_pytorch)
{
    static const char *const red[] = {"all", "all_keep", "1", "1_keep", "0_2", "m1_keep", "0",
                                      "4d_1_3", "4d_2_0"};
    static const char *const other[] = {"concat_1", "concat_0", "concat_m1", "reshape",
                                        "reshape_3d", "flatten", "slice_1", "slice_0_neg",
                                        "slice_mid", "slice_last"};
    char err[512] = "";
    ds_tensor_set *fx = fixture_load("reduce_shape", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    max_rel = 0;
    int rc = 0, n = 0;
    for (int f = 0; f < 2; f++)
        for (size_t k = 0; !rc && k < sizeof red / sizeof red[0]; k++, n++) {
            char c[64];
            snprintf(c, sizeof c, "%s_%s", f ? "mean" : "sum", red[k]);
            rc = run_case(fx, c, err, sizeof err);
        }
    for (size_t k = 0; !rc && k < sizeof other / sizeof other[0]; k++, n++)
        rc = run_case(fx, other[k], err, sizeof err);
    ds_tensor_set_free(fx);
    if (rc)
        FAIL("%s", err);
    snprintf(msg_, cap_, "%d cases, max rel err %.2g", n, max_rel);
    return TEST_PASS;
}

/* ---- reductions ---- */

TEST(sum_and_mean_gradcheck)
{
    static const struct { int nd; int64_t s[5]; int naxes; int axes[4]; int keep; } cases[] = {
        {3, {2, 3, 4}, 0, {0}, 0},          {3, {2, 3, 4}, 0, {0}, 1},
        {3, {2, 3, 4}, 1, {1}, 0},          {3, {2, 3, 4}, 1, {-1}, 1},
        {3, {2, 3, 4}, 2, {2, 0}, 0},       {3, {2, 3, 4}, 2, {0, 1}, 1},
        {4, {2, 3, 5, 3}, 2, {1, 3}, 0},    {4, {2, 3, 5, 3}, 3, {0, 2, 3}, 1},
        {2, {1, 7}, 1, {0}, 0},             {2, {1, 7}, 1, {1}, 0},
        {5, {2, 1, 3, 1, 2}, 2, {1, 2}, 0}, {1, {70}, 1, {0}, 0},
        {2, {70, 3}, 1, {0}, 0},
    };
    ds_rng r;
    ds_rng_seed(&r, 21);
    for (int op = 0; op < 2; op++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            ds_model *m = ds_model_create(1);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x = grad_input(g, "x", cases[k].nd, cases[k].s);
            ds_node *y = (op ? ds_mean : ds_sum)(g, x, cases[k].naxes, cases[k].axes,
                                                 cases[k].keep);
            CHECK(y && ds_graph_plan(g) == DS_OK);
            int64_t cnt = ds_node_numel(x) / ds_node_numel(y);
            fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
            /* value check in double against a direct sum of everything when all reduce */
            int rc = gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_);
            if (!rc && cases[k].naxes == 0) {
                double s = 0;
                for (int64_t i = 0; i < ds_node_numel(x); i++)
                    s += ds_node_data(x)[i];
                if (op)
                    s /= (double)cnt;
                CHECK(ds_graph_forward(g) == DS_OK);
                CHECK_NEAR(ds_node_data(y)[0], s, 1e-5);
            }
            ds_graph_free(g);
            ds_model_free(m);
            if (rc)
                return TEST_FAIL;
        }
    return TEST_PASS;
}

TEST(sum_all_gives_a_0dim_scalar)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = grad_input(g, "x", 2, (int64_t[]){3, 4});
    ds_node *s = ds_sum(g, x, 0, NULL, 0), *k = ds_mean(g, x, 0, NULL, 1);
    CHECK(s && ds_node_ndim(s) == 0 && ds_node_numel(s) == 1);
    CHECK(k && ds_node_ndim(k) == 2 && ds_node_shape(k)[0] == 1 && ds_node_shape(k)[1] == 1);
    /* a scalar broadcasts against tensors, and the reduced axes shrink under set_batch */
    ds_node *y = ds_sum(g, ds_mul(g, x, s), 1, (int[]){0}, 0);
    CHECK(y && ds_node_ndim(y) == 1 && ds_node_shape(y)[0] == 4);
    ds_node_keep(s, 1);   /* read after backward */
    CHECK(ds_graph_set_batch(g, 1) == DS_OK && ds_node_shape(y)[0] == 4);
    CHECK(ds_graph_plan(g) == DS_OK);
    for (int i = 0; i < 4; i++)
        ds_node_data(x)[i] = (float)(i + 1);
    CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, s) == DS_OK);
    CHECK_NEAR(ds_node_data(s)[0], 10, 0);
    CHECK_NEAR(ds_node_grad(x)[3], 1, 0);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(reduce_errors)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 3, (int64_t[]){2, 3, 4});
    CHECK(!ds_sum(g, x, 1, (int[]){3}, 0));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "sum") && strstr(ds_last_error(), "[2, 3, 4]") &&
          strstr(ds_last_error(), "axis 3"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 3, (int64_t[]){2, 3, 4});
    CHECK(!ds_mean(g, x, 2, (int[]){1, -2}, 0));
    CHECK(ds_graph_status(g) == DS_ERR_ARG && strstr(ds_last_error(), "more than once"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 3, (int64_t[]){2, 3, 4});
    CHECK(!ds_mean(g, x, 7, (int[]){0, 1, 2, 0, 1, 2, 0}, 0));
    CHECK(ds_graph_status(g) == DS_ERR_ARG);
    CHECK(!ds_sum(g, NULL, 0, NULL, 0));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* ---- concat, reshape, flatten, slice ---- */

TEST(concat_gradcheck_and_errors)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = grad_input(g, "a", 3, (int64_t[]){2, 3, 4});
    ds_node *b = grad_input(g, "b", 3, (int64_t[]){2, 1, 4});
    ds_node *c = grad_input(g, "c", 3, (int64_t[]){2, 2, 4});
    ds_node *y1 = ds_concat(g, 3, (ds_node *[]){a, b, c}, 1);
    ds_node *y0 = ds_concat(g, 2, (ds_node *[]){a, a}, 0);
    ds_node *y2 = ds_concat(g, 2, (ds_node *[]){b, a}, -2);
    ds_node *y3 = ds_concat(g, 1, &c, -1);
    CHECK(y1 && ds_node_shape(y1)[1] == 6 && y0 && ds_node_shape(y0)[0] == 4);
    CHECK(y2 && y3 && ds_node_numel(y3) == 16);
    CHECK(ds_graph_plan(g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 31);
    fill_uniform(ds_node_data(a), 24, -1, 1, &r);
    fill_uniform(ds_node_data(b), 8, -1, 1, &r);
    fill_uniform(ds_node_data(c), 16, -1, 1, &r);
    ds_node *ys[] = {y1, y0, y2, y3};
    for (int k = 0; k < 4; k++)
        CHECK_OK(gradcheck(g, ys[k], 3, (ds_node *[]){a, b, c}, 1e-2, 1e-5, 1e-3, msg_, cap_));
    /* shapes disagreeing off the axis */
    CHECK(!ds_concat(g, 2, (ds_node *[]){a, b}, 2));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "concat") && strstr(ds_last_error(), "[2, 1, 4]") &&
          strstr(ds_last_error(), "[2, 3, 4]"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    a = ds_input(g, "a", 2, (int64_t[]){2, 3});
    CHECK(!ds_concat(g, 1, &a, 2) && ds_graph_status(g) == DS_ERR_SHAPE);
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    CHECK(!ds_concat(g, 0, NULL, 0) && ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(reshape_aliases_infers_and_checks)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = grad_input(g, "x", 3, (int64_t[]){2, 3, 4});
    ds_node *y = ds_reshape(g, x, 2, (int64_t[]){-1, 6});
    CHECK(y && ds_node_shape(y)[0] == 4 && ds_node_shape(y)[1] == 6);
    ds_node *z = ds_reshape(g, y, 0, NULL);   /* not 1 value: fails below on its own graph */
    CHECK(!z && ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "[4, 6]") && strstr(ds_last_error(), "[]"));
    ds_graph_free(g);

    g = ds_graph_create(m, 1);
    x = grad_input(g, "x", 3, (int64_t[]){2, 3, 4});
    y = ds_reshape(g, x, 3, (int64_t[]){4, 3, -1});
    ds_node *w = ds_mul(g, ds_reshape(g, y, 1, (int64_t[]){24}), ds_reshape(g, x, 1, (int64_t[]){-1}));
    CHECK(y && ds_node_shape(y)[2] == 2 && w);
    CHECK(ds_graph_plan(g) == DS_OK);
    CHECK(ds_node_data(y) == ds_node_data(x));
    CHECK(ds_node_grad(y) == ds_node_grad(x));
    ds_rng r;
    ds_rng_seed(&r, 41);
    fill_uniform(ds_node_data(x), 24, -1, 1, &r);
    CHECK_OK(gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_));
    CHECK_OK(gradcheck(g, w, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_));   /* x * x through two aliases */
    ds_graph_free(g);

    /* count mismatch, two -1, zero sizes */
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(!ds_reshape(g, x, 2, (int64_t[]){4, 2}) && ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "reshape") && strstr(ds_last_error(), "[2, 3]") &&
          strstr(ds_last_error(), "[4, 2]"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(!ds_reshape(g, x, 2, (int64_t[]){4, -1}) && ds_graph_status(g) == DS_ERR_SHAPE);
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(!ds_reshape(g, x, 2, (int64_t[]){-1, -1}) && ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(!ds_reshape(g, x, 2, (int64_t[]){0, 6}) && ds_graph_status(g) == DS_ERR_ARG);
    CHECK(!ds_reshape(g, x, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 6}));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(flatten_and_reshape_follow_batch_changes)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){4, 3, 2, 2});
    ds_node *f = ds_flatten(g, x);
    ds_node *r = ds_reshape(g, x, 3, (int64_t[]){-1, 3, 4});
    ds_node *d = ds_dense(g, f, &(ds_dense_opts){.name = "fc", .units = 2});
    ds_node *s = ds_sum(g, ds_mul(g, ds_reshape(g, r, 2, (int64_t[]){-1, 12}), f), 0, NULL, 0);
    CHECK(f && r && d && s);
    CHECK(!strcmp(ds_node_layer_name(f), "flatten_1"));
    CHECK(!strcmp(g->layers[f->layer].type, "Flatten"));
    CHECK(ds_graph_find(g, "flatten_1") == f);
    CHECK(ds_node_ndim(f) == 2 && ds_node_shape(f)[0] == 4 && ds_node_shape(f)[1] == 12);
    for (int b = 1; b <= 5; b += 2) {
        CHECK(ds_graph_set_batch(g, b) == DS_OK);
        CHECK(ds_node_shape(f)[0] == b && ds_node_shape(f)[1] == 12);
        CHECK(ds_node_shape(r)[0] == b && ds_node_shape(r)[1] == 3 && ds_node_shape(r)[2] == 4);
        CHECK(ds_node_shape(d)[0] == b && ds_node_shape(d)[1] == 2);
        CHECK(ds_graph_plan(g) == DS_OK);
        double want = 0;
        for (int i = 0; i < b * 12; i++) {
            ds_node_data(x)[i] = 0.1f * (float)i;
            want += (0.1f * (float)i) * (0.1f * (float)i);
        }
        CHECK(ds_graph_forward(g) == DS_OK);
        CHECK(ds_node_data(f) == ds_node_data(x));
        CHECK_NEAR(ds_node_data(s)[0], want, 1e-3 * want);
    }
    /* a fixed first dimension cannot follow the batch */
    ds_node *fixed = ds_reshape(g, x, 2, (int64_t[]){5, 12});
    CHECK(fixed);
    CHECK(ds_graph_set_batch(g, 2) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "[2, 3, 2, 2]") && strstr(ds_last_error(), "[5, 12]"));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(slice_gradcheck_and_errors)
{
    static const struct { int64_t s[3]; int axis; int64_t start, end, len; } cases[] = {
        {{3, 5, 2}, 1, 1, 4, 3},   {{3, 5, 2}, 1, -3, -1, 2}, {{3, 5, 2}, -1, 1, 2, 1},
        {{3, 5, 2}, 0, -2, 3, 2},  {{3, 5, 2}, 0, 0, 3, 3},   {{1, 5, 2}, 1, 4, 5, 1},
    };
    ds_rng r;
    ds_rng_seed(&r, 51);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = grad_input(g, "x", 3, cases[k].s);
        ds_node *y = ds_slice(g, x, cases[k].axis, cases[k].start, cases[k].end);
        CHECK(y);
        int a = cases[k].axis < 0 ? cases[k].axis + 3 : cases[k].axis;
        CHECK(ds_node_shape(y)[a] == cases[k].len);
        CHECK(ds_graph_plan(g) == DS_OK);
        fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
        int rc = gradcheck(g, y, 1, &x, 1e-2, 1e-5, 1e-3, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return TEST_FAIL;
    }
    static const struct { int axis; int64_t start, end; } bad[] = {
        {1, 2, 2}, {1, 3, 1}, {1, 0, 6}, {1, -6, 2}, {3, 0, 1}, {-4, 0, 1}, {1, 5, 6},
    };
    ds_model *m = ds_model_create(1);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 3, (int64_t[]){3, 5, 2});
        CHECK(!ds_slice(g, x, bad[k].axis, bad[k].start, bad[k].end));
        CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
        CHECK(strstr(ds_last_error(), "slice") && strstr(ds_last_error(), "[3, 5, 2]"));
        ds_graph_free(g);
    }
    ds_model_free(m);
    return TEST_PASS;
}

/* A sum over everything goes in chunks over threads: exact to double rounding, and the same
 * for any thread count. */
TEST(sum_all_of_a_large_tensor_is_exact_and_thread_independent)
{
    int keep = ds_get_num_threads();
    const int64_t n = 3 * 65536 + 123;
    float res[2];
    double want = 0;
    for (int t = 0; t < 2; t++) {
        ds_set_num_threads(t ? 3 : 1);
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 1, &n);
        ds_node *s = ds_sum(g, x, 0, NULL, 0);
        CHECK(s && ds_graph_plan(g) == DS_OK);
        ds_rng r;
        ds_rng_seed(&r, 21);
        float *xd = ds_node_data(x);
        fill_uniform(xd, n, -1, 1, &r);
        xd[0] = 3e4f;   /* a large term: a float sum would lose the small ones */
        if (!t)
            for (int64_t i = 0; i < n; i++)
                want += xd[i];
        CHECK(ds_graph_forward(g) == DS_OK);
        res[t] = ds_node_data(s)[0];
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_set_num_threads(keep);
    CHECK(!memcmp(&res[0], &res[1], sizeof res[0]));
    CHECK_NEAR(res[0], (float)want, 0);
    return TEST_PASS;
}
