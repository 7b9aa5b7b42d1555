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
    rc = gradcheck(g, y, 1, &x, h, 3e-3, msg, cap);
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
            int rc = gradcheck(g, y, 1, &x, 2e-3, 3e-3, msg_, cap_);
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
    CHECK_OK(gradcheck(g, z, 1, &x, 2e-3, 3e-3, msg_, cap_));
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
