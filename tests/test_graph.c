/* test_graph.c - graph building, planning, batch changes, errors, sharing, and the matmul
 * and linear ops: gradients and PyTorch references (fixtures/matmul.safetensors). */
#include "test.h"

#include "../src/internal.h"

TEST(every_op_has_a_definition)
{
    for (int i = 0; i < DS_OP_COUNT; i++)
        if (!dsi_ops[i] || !dsi_ops[i]->cpu.forward || !dsi_ops[i]->cpu.backward)
            FAIL("op %d (%s) has no definition", i, dsi_op_names[i]);
    return TEST_PASS;
}

TEST(matmul_gradcheck)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 2, (int64_t[]){3, 5});
    ds_node *b = ds_input(g, "b", 2, (int64_t[]){5, 4});
    ds_node *y = ds_matmul(g, a, b);
    CHECK(y && ds_node_shape(y)[0] == 3 && ds_node_shape(y)[1] == 4);
    ds_node_requires_grad(a, 1);
    ds_node_requires_grad(b, 1);
    CHECK(ds_graph_plan(g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 7);
    fill_uniform(ds_node_data(a), 15, -1, 1, &r);
    fill_uniform(ds_node_data(b), 20, -1, 1, &r);
    int rc = gradcheck(g, y, 2, (ds_node *[]){a, b}, 1e-2, 1e-5, 1e-3, msg_, cap_);
    /* batched */
    ds_graph *g2 = ds_graph_create(m, 1);
    ds_node *a3 = ds_input(g2, "a", 3, (int64_t[]){2, 3, 5});
    ds_node *b3 = ds_input(g2, "b", 3, (int64_t[]){2, 5, 1});
    ds_node *y3 = ds_matmul(g2, a3, b3);
    ds_node_requires_grad(a3, 1);
    ds_node_requires_grad(b3, 1);
    ds_graph_plan(g2);
    fill_uniform(ds_node_data(a3), 30, -1, 1, &r);
    fill_uniform(ds_node_data(b3), 10, -1, 1, &r);
    if (!rc)
        rc = gradcheck(g2, y3, 2, (ds_node *[]){a3, b3}, 1e-2, 1e-5, 1e-3, msg_, cap_);
    ds_graph_free(g);
    ds_graph_free(g2);
    ds_model_free(m);
    return rc;
}

TEST(linear_gradcheck_and_batch_change)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){4, 6});
    ds_param *w = ds_model_add_param(m, "fc.weight", 2, (int64_t[]){3, 6}, 1,
                                     (ds_init){DS_INIT_GLOROT_UNIFORM, 0, 0});
    ds_param *b = ds_model_add_param(m, "fc.bias", 1, (int64_t[]){3}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_node *wn = ds_param_node(g, w), *bn = ds_param_node(g, b);
    ds_node *y = ds_linear(g, x, wn, bn);
    CHECK(y);
    ds_node_requires_grad(x, 1);
    CHECK(ds_graph_plan(g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 9);
    fill_uniform(ds_node_data(x), 24, -1, 1, &r);
    CHECK_OK(gradcheck(g, y, 3, (ds_node *[]){x, wn, bn}, 1e-2, 1e-5, 1e-3, msg_, cap_));
    /* batch 1 */
    CHECK(ds_graph_set_batch(g, 1) == DS_OK);
    CHECK(ds_node_shape(y)[0] == 1 && ds_node_shape(y)[1] == 3);
    CHECK(ds_graph_plan(g) == DS_OK);
    fill_uniform(ds_node_data(x), 6, -1, 1, &r);
    CHECK_OK(gradcheck(g, y, 3, (ds_node *[]){x, wn, bn}, 1e-2, 1e-5, 1e-3, msg_, cap_));
    ds_graph_free(g);
    /* x [N, ..., in] without a bias */
    g = ds_graph_create(m, 1);
    x = grad_input(g, "x", 3, (int64_t[]){2, 3, 6});
    wn = ds_param_node(g, w);
    y = ds_linear(g, x, wn, NULL);
    CHECK(y && ds_node_ndim(y) == 3 && ds_node_shape(y)[2] == 3);
    CHECK(ds_graph_plan(g) == DS_OK);
    fill_uniform(ds_node_data(x), 36, -1, 1, &r);
    CHECK_OK(gradcheck(g, y, 2, (ds_node *[]){x, wn}, 1e-2, 1e-5, 1e-3, msg_, cap_));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* Fixture case c of matmul.safetensors: matmul of inputs x0, x1, or linear of input x0 with
 * the weight x1 and bias x2 as parameters, as a dense layer holds them. Compares the output
 * (shape included) and every gradient with PyTorch's. */
static int matmul_case(const ds_tensor_set *fx, const char *c, double *max_rel, char *msg,
                       size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *in[3] = {NULL, NULL, NULL}, *y = NULL;
    ds_tensor *t[3] = {NULL, NULL, NULL};
    bool linear = !strncmp(c, "lin", 3);
    int n = 0, rc = 1;
    char key[128];
    for (; n < 3; n++) {
        snprintf(key, sizeof key, "%s.x%d", c, n);
        if (!(t[n] = ds_tensor_set_get(fx, key)))
            break;
        if (linear && n > 0) {
            ds_param *p = ds_model_add_param(m, n == 1 ? "fc.weight" : "fc.bias",
                                             ds_tensor_ndim(t[n]), ds_tensor_shape(t[n]), 1,
                                             (ds_init){DS_INIT_ZEROS, 0, 0});
            in[n] = p ? ds_param_node(g, p) : NULL;
        } else {
            in[n] = grad_input(g, n ? "b" : "x", ds_tensor_ndim(t[n]), ds_tensor_shape(t[n]));
        }
    }
    if (linear && (n == 2 || n == 3))
        y = ds_linear(g, in[0], in[1], in[2]);
    else if (!linear && n == 2)
        y = ds_matmul(g, in[0], in[1]);
    snprintf(key, sizeof key, "%s.y", c);
    ds_tensor *ty = ds_tensor_set_get(fx, key);
    if (!y || !ty) {
        snprintf(msg, cap, "%s: %d inputs in the fixture, build: %s", c, n, ds_last_error());
        goto done;
    }
    bool same = ds_tensor_ndim(ty) == ds_node_ndim(y);
    for (int d = 0; same && d < ds_node_ndim(y); d++)
        same = ds_tensor_shape(ty)[d] == ds_node_shape(y)[d];
    if (!same) {
        snprintf(msg, cap, "%s: output shape %s, PyTorch's %s", c,
                 dsi_shape_str(ds_node_ndim(y), ds_node_shape(y)),
                 dsi_shape_str(ds_tensor_ndim(ty), ds_tensor_shape(ty)));
        goto done;
    }
    rc = fixture_run_case(fx, c, g, y, in, n, msg, cap) ||
         fixture_compare_grads(fx, c, y, in, n, max_rel, msg, cap);
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(matmul_and_linear_match_pytorch)
{
    static const char *const cases[] = {
        "mm", "mm_col", "mm_row", "mm_k1", "mm_big", "bmm", "bmm_b1", "bmm_k1", "bmm_col",
        "lin", "lin_nobias", "lin_b1", "lin_b1_nobias", "lin_3d", "lin_3d_nobias", "lin_4d",
        "lin_4d_nobias", "lin_1d", "lin_1d_nobias", "lin_wide", "lin_wide_nobias",
    };
    ds_tensor_set *fx = fixture_load("matmul", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    double max_rel = 0;
    int rc = 0;
    for (size_t k = 0; !rc && k < sizeof cases / sizeof cases[0]; k++)
        rc = matmul_case(fx, cases[k], &max_rel, msg_, cap_);
    ds_tensor_set_free(fx);
    if (rc)
        return TEST_FAIL;
    snprintf(msg_, cap_, "%zu cases, max rel err %.2g", sizeof cases / sizeof cases[0], max_rel);
    return TEST_PASS;
}

/* ds_matmul does not broadcast a batch dimension: both operands 2-D, or both 3-D with one
 * batch size. */
TEST(matmul_refuses_broadcasting)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a3 = ds_input(g, "a", 3, (int64_t[]){2, 3, 5});
    ds_node *b1 = ds_input(g, "b1", 3, (int64_t[]){1, 5, 4});
    CHECK(!ds_matmul(g, a3, b1) && ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "[2, 3, 5]") && strstr(ds_last_error(), "[1, 5, 4]"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    a3 = ds_input(g, "a", 3, (int64_t[]){2, 3, 5});
    ds_node *b2 = ds_input(g, "b2", 2, (int64_t[]){5, 4});
    CHECK(!ds_matmul(g, a3, b2) && ds_graph_status(g) == DS_ERR_SHAPE);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(shape_error_names_layers_and_shapes)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){4, 6});
    ds_node *y = ds_dense(g, x, &(ds_dense_opts){.name = "fc1", .units = 5});
    CHECK(y);
    ds_param *w2 = ds_model_add_param(m, "odd.weight", 2, (int64_t[]){3, 7}, 1,
                                      (ds_init){DS_INIT_ZEROS, 0, 0});
    ds_node *z = ds_linear(g, y, ds_param_node(g, w2), NULL);
    CHECK(!z);
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    const char *e = ds_last_error();
    if (!strstr(e, "[4, 5]") || !strstr(e, "[3, 7]") || !strstr(e, "linear"))
        FAIL("message does not name op and shapes: %s", e);
    /* later builders return NULL without a new message */
    CHECK(!ds_relu(g, z));
    CHECK(ds_graph_forward(g) != DS_OK);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(graphs_share_parameters_by_layer_name)
{
    ds_model *m = ds_model_create(5);
    ds_graph *g1 = ds_graph_create(m, 1), *g2 = ds_graph_create(m, 2);
    ds_node *x1 = ds_input(g1, "x", 2, (int64_t[]){2, 3});
    ds_node *x2 = ds_input(g2, "z", 2, (int64_t[]){5, 3});
    ds_node *y1 = ds_dense(g1, x1, &(ds_dense_opts){.name = "shared", .units = 4});
    ds_node *y2 = ds_dense(g2, x2, &(ds_dense_opts){.name = "shared", .units = 4});
    CHECK(y1 && y2);
    CHECK(ds_model_param_count(m) == 2);
    CHECK(ds_model_numel(m, 1) == 16);
    /* a different width under the same name is refused with both shapes */
    ds_node *bad = ds_dense(g2, x2, &(ds_dense_opts){.name = "shared", .units = 6});
    CHECK(!bad && strstr(ds_last_error(), "shared.weight"));
    ds_graph_free(g1);
    ds_graph_free(g2);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(param_gradients_accumulate_until_zeroed)
{
    ds_model *m = ds_model_create(5);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    ds_node *y = ds_dense(g, x, &(ds_dense_opts){.units = 1});
    ds_node *l = ds_sum(g, y, 0, NULL, 0);
    CHECK(l);
    CHECK(ds_graph_plan(g) == DS_OK);
    float *xd = ds_node_data(x);
    for (int i = 0; i < 6; i++)
        xd[i] = (float)i;
    ds_model_zero_grad(m);
    CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, l) == DS_OK);
    CHECK(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, l) == DS_OK);
    const float *gw = ds_param_grad(ds_model_find(m, "dense_1.weight"));
    CHECK(gw);
    CHECK_NEAR(gw[0], 2 * (0 + 3), 1e-5);   /* d sum / dw0 = sum over batch of x0, twice */
    ds_model_zero_grad(m);
    CHECK_NEAR(gw[0], 0, 0);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(backward_before_forward_is_a_state_error)
{
    ds_model *m = ds_model_create(5);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    ds_node *l = ds_sum(g, ds_dense(g, x, &(ds_dense_opts){.units = 2}), 0, NULL, 0);
    CHECK(l);
    CHECK(ds_graph_backward(g, l) == DS_ERR_STATE);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(forward_to_stops_at_a_node)
{
    ds_model *m = ds_model_create(5);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.units = 2});
    ds_node *l = ds_sum(g, h, 0, NULL, 0);
    ds_node_keep(h, 1);   /* read after the full forward */
    CHECK(l && ds_graph_plan(g) == DS_OK);
    for (int i = 0; i < 6; i++)
        ds_node_data(x)[i] = (float)i - 2;
    CHECK(ds_graph_forward(g) == DS_OK);
    float full[2] = {ds_node_data(h)[0], ds_node_data(h)[1]};
    ds_node_data(l)[0] = 123;
    ds_node_data(h)[0] = ds_node_data(h)[1] = 0;
    CHECK(ds_graph_forward_to(g, h) == DS_OK);
    CHECK_NEAR(ds_node_data(h)[0], full[0], 0);
    CHECK_NEAR(ds_node_data(h)[1], full[1], 0);
    CHECK_NEAR(ds_node_data(l)[0], 123, 0);           /* the loss was not computed */
    CHECK(ds_graph_backward(g, l) == DS_ERR_STATE);   /* a partial pass cannot be reversed */
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* The bulk normal generator: N(0, 1) moments over 200,000 values, the same values for the
 * same seed, and an odd count filled to the end. */
TEST(rng_fill_normal_moments_and_seed)
{
    enum { N = 200001 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    CHECK(a && b);
    ds_rng r1, r2;
    ds_rng_seed(&r1, 9);
    ds_rng_seed(&r2, 9);
    b[N - 1] = NAN;
    ds_rng_fill_normal(&r1, a, N);
    ds_rng_fill_normal(&r2, b, N);
    int same = !memcmp(a, b, N * sizeof *a);
    double s = 0, ss = 0, s4 = 0;
    for (int i = 0; i < N; i++) {
        s += a[i];
        ss += (double)a[i] * a[i];
        s4 += (double)a[i] * a[i] * a[i] * a[i];
    }
    double mean = s / N, var = ss / N - mean * mean, kurt = s4 / N;
    int finite = isfinite(b[N - 1]);
    free(a);
    free(b);
    CHECK(same && finite);
    CHECK_NEAR(mean, 0.0, 0.01);   /* 4.5 standard errors */
    CHECK_NEAR(var, 1.0, 0.015);
    CHECK_NEAR(kurt, 3.0, 0.1);
    snprintf(msg_, cap_, "mean %.4f, variance %.4f, fourth moment %.3f", mean, var, kurt);
    return TEST_PASS;
}
