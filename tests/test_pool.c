/* test_pool.c - pooling (max, average, sum, L2 in 1D/2D/3D) and global pooling: gradient
 * checks, PyTorch fixtures, layer names and error paths. */
#include "test.h"

#include "../src/internal.h"

/* Distinct values 0.01 apart in random order (no ties inside a max window; a finite
 * difference step below 0.005 never moves the argmax). */
static void fill_tie_free(float *x, int64_t n, ds_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(i - n / 2) * 0.01f;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ds_rng_below(r, (uint64_t)i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

/* fixture_compare, plus the largest relative error |got - want| / max(|want|, 0.01). */
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

typedef struct {
    int nd;
    ds_pool_kind kind;
    ds_padding padding;
    int exclude, size[3], stride[3], pad[3];
    int64_t shape[5];
} pool_case;

static int pool_gradcheck_case(const pool_case *c, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", c->nd + 2, c->shape);
    ds_pool_opts o = { .padding = c->padding, .exclude_pad = c->exclude };
    memcpy(o.size, c->size, sizeof o.size);
    memcpy(o.stride, c->stride, sizeof o.stride);
    memcpy(o.pad, c->pad, sizeof o.pad);
    ds_node *y = ds_pool(g, x, c->nd, c->kind, &o);
    int rc = 1;
    if (!y) {
        snprintf(msg, cap, "ds_pool %dD kind %d: %s", c->nd, c->kind, ds_last_error());
        goto done;
    }
    ds_node_requires_grad(x, 1);
    ds_graph_plan(g);
    ds_rng r;
    ds_rng_seed(&r, 11 + (uint64_t)c->kind);
    if (c->kind == DS_POOL_MAX)
        fill_tie_free(ds_node_data(x), ds_node_numel(x), &r);
    else
        fill_away(ds_node_data(x), ds_node_numel(x), -1, 1, 0.2f, &r);
    double h = c->kind == DS_POOL_MAX ? 2e-3 : 1e-2;
    rc = gradcheck(g, y, 1, &x, h, 1e-5, 1e-3, msg, cap);
    if (rc) {
        size_t l = strlen(msg);
        snprintf(msg + l, cap - l, " [%dD kind %d padding %d]", c->nd, c->kind, c->padding);
    }
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(pool_gradcheck_all_kinds_and_dims)
{
    int count = 0;
    for (int kind = DS_POOL_MAX; kind <= DS_POOL_L2; kind++) {
        pool_case cases[] = {
            { 1, kind, DS_PAD_EXPLICIT, 0, { 4 }, { 3 }, { 2 }, { 1, 2, 13 } },
            { 1, kind, DS_PAD_SAME, 0, { 3 }, { 2 }, { 0 }, { 3, 1, 8 } },
            { 2, kind, DS_PAD_EXPLICIT, 0, { 3, 2 }, { 2, 3 }, { 1, 1 }, { 1, 2, 7, 8 } },
            { 2, kind, DS_PAD_SAME, 0, { 3 }, { 2 }, { 0 }, { 2, 1, 5, 7 } },
            { 2, kind, DS_PAD_VALID, 0, { 3 }, { 0 }, { 0 }, { 1, 2, 7, 7 } },
            { 3, kind, DS_PAD_EXPLICIT, 0, { 3, 2, 3 }, { 2, 1, 2 }, { 1, 1, 0 }, { 1, 1, 5, 6, 5 } },
            { 3, kind, DS_PAD_SAME, 0, { 2 }, { 2, 1, 3 }, { 0 }, { 2, 1, 3, 4, 5 } },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, count++)
            CHECK_OK(pool_gradcheck_case(&cases[i], msg_, cap_));
    }
    pool_case excl[] = {
        { 1, DS_POOL_AVG, DS_PAD_EXPLICIT, 1, { 5 }, { 2 }, { 2 }, { 1, 2, 9 } },
        { 2, DS_POOL_AVG, DS_PAD_EXPLICIT, 1, { 3 }, { 2 }, { 1, 1 }, { 1, 3, 5, 6 } },
        { 3, DS_POOL_AVG, DS_PAD_EXPLICIT, 1, { 3, 3, 2 }, { 1, 2, 2 }, { 1, 1, 1 }, { 1, 1, 3, 5, 4 } },
    };
    for (size_t i = 0; i < sizeof excl / sizeof excl[0]; i++, count++)
        CHECK_OK(pool_gradcheck_case(&excl[i], msg_, cap_));
    snprintf(msg_, cap_, "%d cases", count);
    return TEST_PASS;
}

TEST(global_pool_gradcheck)
{
    const int64_t shapes[3][5] = { { 2, 3, 7 }, { 1, 2, 3, 5 }, { 2, 2, 2, 3, 3 } };
    for (int s = 0; s < 3; s++)
        for (int kind = DS_POOL_MAX; kind <= DS_POOL_AVG; kind++) {
            ds_model *m = ds_model_create(1);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x = ds_input(g, "x", 3 + s, shapes[s]);
            ds_node *y = ds_global_pool(g, x, kind);
            CHECK(y && ds_node_ndim(y) == 2 && ds_node_shape(y)[0] == shapes[s][0] &&
                  ds_node_shape(y)[1] == shapes[s][1]);
            ds_node_requires_grad(x, 1);
            ds_graph_plan(g);
            ds_rng r;
            ds_rng_seed(&r, 5);
            fill_tie_free(ds_node_data(x), ds_node_numel(x), &r);
            int rc = gradcheck(g, y, 1, &x, 2e-3, 1e-5, 1e-3, msg_, cap_);
            ds_graph_free(g);
            ds_model_free(m);
            if (rc)
                return TEST_FAIL;
        }
    return TEST_PASS;
}

TEST(pool_matches_pytorch)
{
    ds_tensor_set *fx = fixture_load("pool_norm", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    int ncase = 0, rc = 0;
    double max_rel = 0;
    char key[64];
    for (;; ncase++) {
        snprintf(key, sizeof key, "pool%d.cfg", ncase);
        ds_tensor *cfg = ds_tensor_set_get(fx, key);
        if (!cfg)
            break;
        const float *c = ds_tensor_data(cfg);
        int nd = (int)c[0];
        ds_pool_opts o = { .padding = (ds_padding)c[2], .exclude_pad = (int)c[3] };
        for (int j = 0; j < 3; j++) {
            o.size[j] = (int)c[4 + j];
            o.stride[j] = (int)c[7 + j];
            o.pad[j] = (int)c[10 + j];
        }
        snprintf(key, sizeof key, "pool%d.x", ncase);
        ds_tensor *xt = ds_tensor_set_get(fx, key);
        CHECK(xt);
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", ds_tensor_ndim(xt), ds_tensor_shape(xt));
        ds_node *y = ds_pool(g, x, nd, (ds_pool_kind)c[1], &o);
        ds_node_requires_grad(x, 1);
        if (!y || ds_graph_set_input(g, x, ds_tensor_data(xt), ds_tensor_numel(xt)) ||
            ds_graph_forward(g)) {
            snprintf(msg_, cap_, "pool%d: %s", ncase, ds_last_error());
            rc = 1;
        }
        snprintf(key, sizeof key, "pool%d.y", ncase);
        if (!rc)
            rc = compare_rel(fx, key, ds_node_data(y), ds_node_numel(y), &max_rel, msg_, cap_);
        snprintf(key, sizeof key, "pool%d.r", ncase);
        const float *seed = rc ? NULL : fixture_data(fx, key, NULL, msg_, cap_);
        if (!rc && (!seed || ds_graph_backward_seed(g, y, seed))) {
            snprintf(msg_, cap_, "pool%d backward: %s", ncase, ds_last_error());
            rc = 1;
        }
        snprintf(key, sizeof key, "pool%d.dx", ncase);
        if (!rc)
            rc = compare_rel(fx, key, ds_node_grad(x), ds_node_numel(x), &max_rel, msg_, cap_);
        if (!rc)
            coverage_mark(y, 1, &x, COVER_TORCH);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            break;
    }
    for (int i = 0; !rc; i++) {
        snprintf(key, sizeof key, "gpool%d.cfg", i);
        ds_tensor *cfg = ds_tensor_set_get(fx, key);
        if (!cfg)
            break;
        snprintf(key, sizeof key, "gpool%d.x", i);
        ds_tensor *xt = ds_tensor_set_get(fx, key);
        CHECK(xt);
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", ds_tensor_ndim(xt), ds_tensor_shape(xt));
        ds_node *y = ds_global_pool(g, x, (ds_pool_kind)ds_tensor_data(cfg)[0]);
        ds_node_requires_grad(x, 1);
        snprintf(key, sizeof key, "gpool%d.r", i);
        const float *seed = fixture_data(fx, key, NULL, msg_, cap_);
        if (!y || !seed || ds_graph_set_input(g, x, ds_tensor_data(xt), ds_tensor_numel(xt)) ||
            ds_graph_forward(g) || ds_graph_backward_seed(g, y, seed)) {
            snprintf(msg_, cap_, "gpool%d: %s", i, ds_last_error());
            rc = 1;
        }
        snprintf(key, sizeof key, "gpool%d.y", i);
        if (!rc)
            rc = compare_rel(fx, key, ds_node_data(y), ds_node_numel(y), &max_rel, msg_, cap_);
        snprintf(key, sizeof key, "gpool%d.dx", i);
        if (!rc)
            rc = compare_rel(fx, key, ds_node_grad(x), ds_node_numel(x), &max_rel, msg_, cap_);
        if (!rc)
            coverage_mark(y, 1, &x, COVER_TORCH);
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_tensor_set_free(fx);
    if (rc)
        return TEST_FAIL;
    if (ncase < 28)
        FAIL("only %d pool cases in the fixture (expected 28)", ncase);
    snprintf(msg_, cap_, "%d pool cases, max rel err %.2g", ncase, max_rel);
    return TEST_PASS;
}

TEST(pool_l2_zero_window_has_zero_gradient)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){ 1, 1, 4, 4 });
    ds_node *y = ds_pool(g, x, 2, DS_POOL_L2, &(ds_pool_opts){ .size = { 2 } });
    CHECK(y);
    ds_node_requires_grad(x, 1);
    ds_graph_plan(g);
    float *xd = ds_node_data(x);
    for (int i = 0; i < 16; i++)
        xd[i] = i < 8 ? 0.0f : (float)i;   /* the top two windows are all zeros */
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK(ds_graph_backward_seed(g, y, (float[]){ 1, 1, 1, 1 }) == DS_OK);
    const float *dx = ds_node_grad(x), *yd = ds_node_data(y);
    CHECK(yd[0] == 0 && yd[1] == 0);
    CHECK_NEAR(yd[2], sqrtf(8 * 8 + 9 * 9 + 12 * 12 + 13 * 13), 1e-4);
    for (int i = 0; i < 16; i++)
        if (!isfinite(dx[i]) || (i < 8 && dx[i] != 0))
            FAIL("dx[%d] = %g", i, dx[i]);
    CHECK_NEAR(dx[8], 8 / yd[2], 1e-6);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(pool_layer_types_and_names)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x1 = ds_input(g, "x1", 3, (int64_t[]){ 2, 3, 8 });
    ds_node *x2 = ds_input(g, "x2", 4, (int64_t[]){ 2, 3, 8, 8 });
    ds_node *x3 = ds_input(g, "x3", 5, (int64_t[]){ 2, 3, 4, 4, 4 });
    ds_pool_opts o = { .size = { 2 } };
    struct { ds_node *n; const char *type, *name; } want[] = {
        { ds_pool(g, x2, 2, DS_POOL_MAX, &o), "MaxPooling2D", "max_pooling2d_1" },
        { ds_pool(g, x2, 2, DS_POOL_MAX, &o), "MaxPooling2D", "max_pooling2d_2" },
        { ds_pool(g, x1, 1, DS_POOL_AVG, &o), "AveragePooling1D", "average_pooling1d_1" },
        { ds_pool(g, x3, 3, DS_POOL_AVG, &o), "AveragePooling3D", "average_pooling3d_1" },
        { ds_pool(g, x2, 2, DS_POOL_SUM, &o), "SumPooling2D", "sum_pooling2d_1" },
        { ds_pool(g, x2, 2, DS_POOL_L2, &o), "L2Pooling2D", "l2_pooling2d_1" },
        { ds_pool(g, x3, 3, DS_POOL_MAX, &o), "MaxPooling3D", "max_pooling3d_1" },
        { ds_global_pool(g, x2, DS_POOL_AVG), "GlobalAveragePooling2D", "global_average_pooling2d_1" },
        { ds_global_pool(g, x2, DS_POOL_AVG), "GlobalAveragePooling2D", "global_average_pooling2d_2" },
        { ds_global_pool(g, x1, DS_POOL_MAX), "GlobalMaxPooling1D", "global_max_pooling1d_1" },
        { ds_global_pool(g, x3, DS_POOL_MAX), "GlobalMaxPooling3D", "global_max_pooling3d_1" },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(want[i].n);
        const char *type = g->layers[want[i].n->layer].type;
        if (strcmp(type, want[i].type) || strcmp(ds_node_layer_name(want[i].n), want[i].name))
            FAIL("layer %zu: %s '%s', expected %s '%s'", i, type, ds_node_layer_name(want[i].n),
                 want[i].type, want[i].name);
    }
    /* shapes: floor mode, stride = size by default */
    CHECK(ds_node_shape(want[0].n)[2] == 4 && ds_node_shape(want[0].n)[3] == 4);
    CHECK(ds_node_shape(want[2].n)[2] == 4);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(pool_batch_change_reinfers_shapes)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){ 3, 2, 7, 9 });
    ds_node *y = ds_pool(g, x, 2, DS_POOL_MAX,
                         &(ds_pool_opts){ .size = { 3 }, .stride = { 2 }, .padding = DS_PAD_SAME });
    ds_node *z = ds_global_pool(g, y, DS_POOL_AVG);
    CHECK(y && z);
    CHECK(ds_node_shape(y)[2] == 4 && ds_node_shape(y)[3] == 5);
    CHECK(ds_graph_set_batch(g, 1) == DS_OK);
    CHECK(ds_node_shape(y)[0] == 1 && ds_node_shape(y)[2] == 4 && ds_node_shape(z)[0] == 1);
    ds_node_requires_grad(x, 1);
    ds_graph_plan(g);
    ds_rng r;
    ds_rng_seed(&r, 3);
    fill_tie_free(ds_node_data(x), ds_node_numel(x), &r);
    CHECK_OK(gradcheck(g, z, 1, &x, 2e-3, 1e-5, 1e-3, msg_, cap_));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(pool_errors_name_layer_and_shape)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){ 2, 3, 4, 5 });
    /* window larger than the input */
    CHECK(!ds_pool(g, x, 2, DS_POOL_MAX, &(ds_pool_opts){ .size = { 6 } }));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    const char *e = ds_last_error();
    if (!strstr(e, "max_pooling2d_1") || !strstr(e, "[2, 3, 4, 5]") || !strstr(e, "6x6"))
        FAIL("message does not name layer, window and shape: %s", e);
    ds_graph_free(g);

    /* padding above half the window (PyTorch's rule) */
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 4, (int64_t[]){ 2, 3, 8, 8 });
    CHECK(!ds_pool(g, x, 2, DS_POOL_AVG, &(ds_pool_opts){ .size = { 3 }, .pad = { 2, 1 } }));
    CHECK(ds_graph_status(g) == DS_ERR_ARG);
    if (!strstr(ds_last_error(), "average_pooling2d") || !strstr(ds_last_error(), "half"))
        FAIL("padding message: %s", ds_last_error());
    ds_graph_free(g);

    /* wrong rank, missing options, bad kind, bad global kind */
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 4, (int64_t[]){ 2, 3, 8, 8 });
    CHECK(!ds_pool(g, x, 3, DS_POOL_MAX, &(ds_pool_opts){ .size = { 2 } }));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    if (!strstr(ds_last_error(), "max_pooling3d") || !strstr(ds_last_error(), "[2, 3, 8, 8]"))
        FAIL("rank message: %s", ds_last_error());
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 4, (int64_t[]){ 2, 3, 8, 8 });
    CHECK(!ds_pool(g, x, 2, DS_POOL_MAX, NULL) && ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 4, (int64_t[]){ 2, 3, 8, 8 });
    CHECK(!ds_global_pool(g, x, DS_POOL_L2) && ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){ 2, 3 });
    CHECK(!ds_global_pool(g, x, DS_POOL_MAX) && ds_graph_status(g) == DS_ERR_SHAPE);
    if (!strstr(ds_last_error(), "[2, 3]"))
        FAIL("global message: %s", ds_last_error());
    /* NULL input: NULL without a new message */
    CHECK(!ds_pool(g, NULL, 2, DS_POOL_MAX, &(ds_pool_opts){ .size = { 2 } }));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(pool_results_do_not_depend_on_thread_count)
{
    int keep = ds_get_num_threads();
    float *out[2];
    for (int t = 0; t < 2; t++) {
        ds_set_num_threads(t ? 4 : 1);
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 4, (int64_t[]){ 8, 16, 40, 40 });
        ds_node *y = ds_pool(g, x, 2, DS_POOL_AVG, &(ds_pool_opts){ .size = { 3 }, .stride = { 2 },
                                                                    .pad = { 1, 1 } });
        ds_node_requires_grad(x, 1);
        ds_graph_plan(g);
        ds_rng r;
        ds_rng_seed(&r, 3);
        fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
        float *seed = malloc((size_t)ds_node_numel(y) * sizeof *seed);
        fill_uniform(seed, ds_node_numel(y), -1, 1, &r);
        CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, seed) == DS_OK);
        out[t] = malloc((size_t)ds_node_numel(x) * sizeof(float));
        memcpy(out[t], ds_node_grad(x), (size_t)ds_node_numel(x) * sizeof(float));
        int64_t n = ds_node_numel(x);
        free(seed);
        ds_graph_free(g);
        ds_model_free(m);
        if (t == 1) {
            int same = !memcmp(out[0], out[1], (size_t)n * sizeof(float));
            free(out[0]);
            free(out[1]);
            ds_set_num_threads(keep);
            CHECK(same);
        }
    }
    return TEST_PASS;
}

/* ---- fast paths against a reference ----
 * Pooling without padding has its own kernels (window rows as vectorized passes, constant
 * window widths, overlapped tails, scalar short rows); they must give the general rule's
 * results bit for bit: windows scanned depth, row, column; max keeps the first maximum or
 * else the first NaN; sums in double in that order. */

/* Reference pooling of x [N, C, s...] without padding (nd axes as in pool.c: missing leading
 * axes have extent 1). y and arg (max only) have the output's size; dx += the backward of
 * seed r, in output order. */
static void ref_pool(int nd, ds_pool_kind kind, const int64_t *shape, const int *k, const int *s,
                     const float *x, const float *r, float *y, int32_t *arg, float *dx)
{
    int64_t in[3] = { 1, 1, 1 }, out[3] = { 1, 1, 1 }, kk[3] = { 1, 1, 1 }, ss[3] = { 1, 1, 1 };
    for (int j = 0; j < nd; j++) {
        int a = 3 - nd + j;
        in[a] = shape[2 + j];
        kk[a] = k[j];
        ss[a] = s[j];
        out[a] = (in[a] - kk[a]) / ss[a] + 1;
    }
    int64_t planes = shape[0] * shape[1], in_n = in[0] * in[1] * in[2], oi = 0;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * in_n;
        float *gp = dx + pl * in_n;
        for (int64_t od = 0; od < out[0]; od++)
            for (int64_t oh = 0; oh < out[1]; oh++)
                for (int64_t ow = 0; ow < out[2]; ow++, oi++) {
                    float best = 0;
                    int64_t bi = -1;
                    double acc = 0;
                    for (int64_t d = od * ss[0]; d < od * ss[0] + kk[0]; d++)
                        for (int64_t h = oh * ss[1]; h < oh * ss[1] + kk[1]; h++)
                            for (int64_t w = ow * ss[2]; w < ow * ss[2] + kk[2]; w++) {
                                int64_t i = (d * in[1] + h) * in[2] + w;
                                float v = xp[i];
                                if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                                    best = v;
                                    bi = i;
                                }
                                acc += kind == DS_POOL_L2 ? (double)v * v : v;
                            }
                    double cnt = (double)(kk[0] * kk[1] * kk[2]);
                    y[oi] = kind == DS_POOL_MAX ? best
                            : kind == DS_POOL_AVG ? (float)(acc / cnt)
                            : kind == DS_POOL_L2  ? (float)sqrt(acc)
                                                  : (float)acc;
                    if (kind == DS_POOL_MAX) {
                        arg[oi] = (int32_t)bi;
                        gp[bi] += r[oi];
                        continue;
                    }
                    float g = kind == DS_POOL_AVG ? r[oi] / (float)cnt
                              : kind == DS_POOL_L2 ? (y[oi] > 0 ? r[oi] / y[oi] : 0.0f)
                                                   : r[oi];
                    for (int64_t d = od * ss[0]; d < od * ss[0] + kk[0]; d++)
                        for (int64_t h = oh * ss[1]; h < oh * ss[1] + kk[1]; h++)
                            for (int64_t w = ow * ss[2]; w < ow * ss[2] + kk[2]; w++) {
                                int64_t i = (d * in[1] + h) * in[2] + w;
                                gp[i] += kind == DS_POOL_L2 ? g * xp[i] : g;
                            }
                }
    }
}

/* Equal bit for bit, or both NaN. */
static int64_t first_difference(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) && !(isnan(a[i]) && isnan(b[i])))
            return i;
    return -1;
}

/* Values from {-2, -1, -0, +0, 1, 2} (ties everywhere, zeros of both signs) and NaN with
 * probability nan_pct percent. */
static void fill_ties(float *x, int64_t n, int nan_pct, ds_rng *r)
{
    static const float v[] = { -2, -1, -0.0f, 0, 1, 2 };
    for (int64_t i = 0; i < n; i++)
        x[i] = (int)ds_rng_below(r, 100) < nan_pct ? NAN : v[ds_rng_below(r, 6)];
}

typedef struct {
    int nd, size[3], stride[3];
    int64_t shape[5];
} fast_case;

/* Pools c (NaN in nan_pct percent of a max pooling's inputs) and compares the output, the
 * argmax and the input gradient with ref_pool, bit for bit. */
static int fast_pool_case(const fast_case *c, ds_pool_kind kind, int nan_pct, char *msg,
                          size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", c->nd + 2, c->shape);
    ds_pool_opts o = { .padding = DS_PAD_VALID };
    memcpy(o.size, c->size, sizeof o.size);
    memcpy(o.stride, c->stride, sizeof o.stride);
    ds_node *y = ds_pool(g, x, c->nd, kind, &o);
    int rc = 1;
    float *ry = NULL, *rdx = NULL, *seed = NULL;
    int32_t *rarg = NULL;
    if (!y || ds_node_requires_grad(x, 1) || ds_graph_plan(g)) {
        snprintf(msg, cap, "build: %s", ds_last_error());
        goto done;
    }
    int64_t nx = ds_node_numel(x), ny = ds_node_numel(y);
    ds_rng r;
    ds_rng_seed(&r, 7 + (uint64_t)kind);
    if (kind == DS_POOL_MAX)
        fill_ties(ds_node_data(x), nx, nan_pct, &r);
    else
        fill_uniform(ds_node_data(x), nx, -1, 1, &r);
    seed = malloc((size_t)ny * sizeof *seed);
    ry = malloc((size_t)ny * sizeof *ry);
    rarg = malloc((size_t)ny * sizeof *rarg);
    rdx = calloc((size_t)nx, sizeof *rdx);
    fill_uniform(seed, ny, -1, 1, &r);
    int s[3];
    for (int j = 0; j < c->nd; j++)
        s[j] = c->stride[0] ? (c->stride[j] ? c->stride[j] : c->stride[0])
                            : (c->size[j] ? c->size[j] : c->size[0]);
    int k[3];
    for (int j = 0; j < c->nd; j++)
        k[j] = c->size[j] ? c->size[j] : c->size[0];
    ref_pool(c->nd, kind, c->shape, k, s, ds_node_data(x), seed, ry, rarg, rdx);
    if (ds_graph_forward(g)) {
        snprintf(msg, cap, "forward: %s", ds_last_error());
        goto done;
    }
    int64_t i = first_difference(ds_node_data(y), ry, ny);
    if (i < 0 && kind == DS_POOL_MAX)
        for (int64_t j = 0; j < ny && i < 0; j++)
            if (((int32_t *)y->saved)[j] != rarg[j])
                i = j;
    if (i >= 0) {
        snprintf(msg, cap, "output %lld: %g (argmax %d), reference %g (argmax %d)", (long long)i,
                 ds_node_data(y)[i], kind == DS_POOL_MAX ? ((int32_t *)y->saved)[i] : -1, ry[i],
                 kind == DS_POOL_MAX ? rarg[i] : -1);
        goto done;
    }
    if (ds_graph_backward_seed(g, y, seed)) {
        snprintf(msg, cap, "backward: %s", ds_last_error());
        goto done;
    }
    i = first_difference(ds_node_grad(x), rdx, nx);
    if (i >= 0) {
        snprintf(msg, cap, "dx[%lld]: %g, reference %g", (long long)i, ds_node_grad(x)[i], rdx[i]);
        goto done;
    }
    rc = 0;
done:
    if (rc)
        dsi_snprintf_cat(msg, cap, " [%dD kind %d, window %dx%dx%d, stride %dx%dx%d, input %s]",
                         c->nd, kind, c->size[0], c->size[1], c->size[2], c->stride[0],
                         c->stride[1], c->stride[2], dsi_shape_str(c->nd + 2, c->shape));
    free(seed);
    free(ry);
    free(rarg);
    free(rdx);
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(pool_fast_paths_match_reference)
{
    /* output widths below 8 (scalar rows), 8 to 15 (half vectors), 16 and above with and
     * without a remainder; constant and other window widths; overlapping windows; odd sizes
     * (unused last rows and columns); batch 1 */
    static const fast_case cases[] = {
        { 1, { 2 }, { 0 }, { 1, 3, 7 } },
        { 1, { 2 }, { 0 }, { 2, 2, 41 } },
        { 1, { 4 }, { 0 }, { 2, 3, 70 } },
        { 1, { 4 }, { 0 }, { 1, 2, 37 } },
        { 1, { 3 }, { 0 }, { 2, 1, 50 } },
        { 1, { 3 }, { 2 }, { 1, 2, 33 } },
        { 1, { 5 }, { 0 }, { 1, 2, 96 } },
        { 1, { 2 }, { 1 }, { 1, 2, 20 } },
        { 2, { 2 }, { 0 }, { 2, 3, 7, 7 } },
        { 2, { 2 }, { 0 }, { 1, 2, 16, 16 } },
        { 2, { 2 }, { 0 }, { 2, 2, 15, 31 } },
        { 2, { 2 }, { 0 }, { 1, 2, 9, 67 } },
        { 2, { 2 }, { 0 }, { 1, 1, 64, 64 } },
        { 2, { 3 }, { 0 }, { 1, 2, 10, 50 } },
        { 2, { 3 }, { 2 }, { 2, 1, 9, 40 } },
        { 2, { 4 }, { 0 }, { 1, 2, 8, 70 } },
        { 2, { 2, 3 }, { 2, 3 }, { 1, 2, 6, 20 } },
        { 2, { 3, 1 }, { 1, 1 }, { 1, 1, 5, 19 } },
        { 2, { 5 }, { 0 }, { 1, 2, 10, 45 } },
        /* windows that tile short rows exactly (one pass over blocks of rows) */
        { 1, { 2 }, { 0 }, { 3, 2, 12 } },
        { 1, { 4 }, { 0 }, { 2, 2, 36 } },
        { 2, { 2 }, { 0 }, { 2, 3, 14, 14 } },
        { 2, { 2 }, { 0 }, { 1, 2, 9, 30 } },
        { 2, { 2 }, { 0 }, { 1, 1, 81, 16 } },
        { 2, { 3 }, { 0 }, { 1, 2, 9, 27 } },
        { 2, { 4 }, { 0 }, { 1, 1, 8, 60 } },
        { 2, { 2 }, { 0 }, { 1, 1, 2, 4 } },
        { 2, { 2 }, { 0 }, { 1, 1, 40, 64 } },
        { 2, { 4 }, { 0 }, { 1, 1, 16, 80 } },
        { 1, { 4 }, { 0 }, { 2, 1, 160 } },
        /* windows of more than 64 elements: the passes even for short rows */
        { 2, { 9 }, { 0 }, { 1, 1, 9, 40 } },
        { 3, { 5 }, { 0 }, { 1, 1, 5, 5, 12 } },
        { 3, { 4 }, { 0 }, { 1, 1, 4, 8, 12 } },
        { 3, { 2 }, { 0 }, { 1, 2, 4, 6, 36 } },
        { 3, { 1, 2, 2 }, { 1, 2, 2 }, { 2, 1, 3, 4, 16 } },
        { 3, { 2, 3, 2 }, { 2, 1, 2 }, { 1, 1, 4, 5, 21 } },
    };
    int count = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int kind = DS_POOL_MAX; kind <= DS_POOL_L2; kind++)
            for (int nan_pct = 0; nan_pct <= (kind == DS_POOL_MAX ? 10 : 0); nan_pct += 5) {
                CHECK_OK(fast_pool_case(&cases[i], (ds_pool_kind)kind, nan_pct, msg_, cap_));
                count++;
            }
    snprintf(msg_, cap_, "%d cases", count);
    return TEST_PASS;
}

/* Global max: the first maximum (ties, signed zeros) or the first NaN, at any length. */
TEST(global_max_pool_first_maximum_and_nan)
{
    const int64_t lens[] = { 1, 2, 5, 31, 32, 33, 100, 257 };
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int nan_pct = 0; nan_pct <= 4; nan_pct += 2) {
            int64_t L = lens[li], shape[3] = { 2, 3, L };
            ds_model *m = ds_model_create(1);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x = ds_input(g, "x", 3, shape);
            ds_node *y = ds_global_pool(g, x, DS_POOL_MAX);
            CHECK(y && ds_graph_plan(g) == DS_OK);
            ds_rng r;
            ds_rng_seed(&r, (uint64_t)(L * 10 + nan_pct));
            float *xd = ds_node_data(x);
            fill_ties(xd, 6 * L, nan_pct, &r);
            CHECK(ds_graph_forward(g) == DS_OK);
            for (int pl = 0; pl < 6; pl++) {
                const float *xp = xd + pl * L;
                int64_t bi = 0;
                for (int64_t i = 1; i < L; i++)
                    if (xp[i] > xp[bi] || (isnan(xp[i]) && !isnan(xp[bi])))
                        bi = i;
                int32_t got = ((int32_t *)y->saved)[pl];
                if (got != bi || first_difference(&ds_node_data(y)[pl], &xp[bi], 1) >= 0)
                    FAIL("length %lld, NaN %d%%, plane %d: index %d value %g, expected %lld %g",
                         (long long)L, nan_pct, pl, got, ds_node_data(y)[pl], (long long)bi,
                         xp[bi]);
            }
            ds_graph_free(g);
            ds_model_free(m);
        }
    return TEST_PASS;
}

/* Max pooling's fast path and global pooling split planes or rows over threads. */
TEST(max_and_global_pool_do_not_depend_on_thread_count)
{
    int keep = ds_get_num_threads();
    float *out[2] = { NULL, NULL };
    int64_t n = 0;
    for (int t = 0; t < 2; t++) {
        ds_set_num_threads(t ? 3 : 1);
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 4, (int64_t[]){ 4, 8, 30, 46 });
        ds_node *p = ds_pool(g, x, 2, DS_POOL_MAX, &(ds_pool_opts){ .size = { 2 } });
        ds_node *a = ds_pool(g, x, 2, DS_POOL_AVG, &(ds_pool_opts){ .size = { 3 } });
        ds_node *gm = ds_global_pool(g, x, DS_POOL_MAX), *ga = ds_global_pool(g, x, DS_POOL_AVG);
        ds_node *loss = ds_add(g, ds_add(g, ds_sum(g, ds_square(g, p), 0, NULL, 0),
                                         ds_sum(g, ds_square(g, a), 0, NULL, 0)),
                               ds_add(g, ds_sum(g, ds_square(g, gm), 0, NULL, 0),
                                      ds_sum(g, ds_square(g, ga), 0, NULL, 0)));
        CHECK(loss && ds_node_requires_grad(x, 1) == DS_OK && ds_graph_plan(g) == DS_OK);
        ds_rng r;
        ds_rng_seed(&r, 5);
        fill_ties(ds_node_data(x), ds_node_numel(x), 1, &r);
        for (int64_t i = 0; i < ds_node_numel(x); i++)   /* finite values for the sums */
            if (isnan(ds_node_data(x)[i]))
                ds_node_data(x)[i] = (float)ds_rng_uniform(&r);
        CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, loss) == DS_OK);
        n = ds_node_numel(x) + 1;
        out[t] = malloc((size_t)n * sizeof(float));
        memcpy(out[t], ds_node_grad(x), (size_t)(n - 1) * sizeof(float));
        out[t][n - 1] = ds_node_data(loss)[0];
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_set_num_threads(keep);
    int same = !memcmp(out[0], out[1], (size_t)n * sizeof(float));
    free(out[0]);
    free(out[1]);
    CHECK(same);
    return TEST_PASS;
}
