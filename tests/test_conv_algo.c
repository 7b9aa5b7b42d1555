/* test_conv_algo.c - the fast convolution algorithm against im2col + sgemm: Winograd
 * F(2x2, 3x3) gives the same outputs and gradients to float rounding, on odd sizes, every
 * padding, batch 1 and more samples than chunks; central differences; bit-identical results
 * for 1 and 2 threads. (F(4x4, 3x3): test_conv_winograd4.c.) */
#include "test.h"

#include "../src/ops/conv_impl.h"

#include <stdbool.h>

typedef struct {
    int64_t n, c, f, h, w;
    int lo[2], hi[2];
    bool bias;
} wcase;

/* Forward and backward of one convolution with random data: y, dx, dW, db one after the
 * other (n values). */
static float *run(const wcase *k, bool winograd, int64_t *n)
{
    ds_set_conv_algo(winograd ? DS_CONV_AUTO : DS_CONV_IM2COL);
    dsi_wino_set_max_tile(2);
    ds_model *m = ds_model_create(7);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){k->n, k->c, k->h, k->w});
    ds_param *w = ds_model_add_param(m, "k.weight", 4, (int64_t[]){k->f, k->c, 3, 3}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -0.5f, 0.5f});
    ds_param *b = k->bias ? ds_model_add_param(m, "k.bias", 1, (int64_t[]){k->f}, 1,
                                               (ds_init){DS_INIT_UNIFORM, -0.5f, 0.5f})
                          : NULL;
    ds_node *y = ds_conv_op(g, x, ds_param_node(g, w), b ? ds_param_node(g, b) : NULL, 2, NULL,
                            k->lo, k->hi, NULL);
    float *out = forward_backward(g, x, y, 3, n);
    ds_graph_free(g);
    ds_model_free(m);
    ds_set_conv_algo(DS_CONV_AUTO);
    dsi_wino_set_max_tile(4);
    return out;
}

TEST(winograd_matches_im2col)
{
    static const wcase cases[] = {
        {2, 8, 8, 9, 7, {1, 1}, {1, 1}, true},      /* 'same', odd sizes */
        {1, 16, 8, 6, 6, {0, 0}, {0, 0}, true},     /* 'valid', batch 1 */
        {9, 8, 12, 5, 8, {2, 0}, {0, 2}, false},    /* more samples than chunks, uneven pads */
        {3, 12, 9, 17, 2, {1, 1}, {1, 1}, true},    /* two columns, 9 tile rows */
        {2, 8, 8, 33, 40, {1, 1}, {1, 1}, true},    /* blocks spanning rows and samples */
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t na, nb;
        float *a = run(&cases[i], true, &na), *b = run(&cases[i], false, &nb);
        if (!a || !b || na != nb) {
            free(a);
            free(b);
            FAIL("case %zu: run failed: %s", i, ds_last_error());
        }
        double scale = 0;
        for (int64_t j = 0; j < na; j++)
            scale = fmax(scale, fabs(b[j]));
        for (int64_t j = 0; j < na; j++) {
            double d = fabs((double)a[j] - b[j]) / fmax(scale, 1e-6);
            if (d > worst)
                worst = d;
            if (d > 1e-6) {   /* measured: 3.2e-7 */
                float av = a[j], bv = b[j];
                free(a);
                free(b);
                FAIL("case %zu: value %lld of %lld: winograd %.9g, im2col %.9g", i,
                     (long long)j, (long long)na, av, bv);
            }
        }
        free(a);
        free(b);
    }
    snprintf(msg_, cap_, "max difference %.2g of the largest value", worst);
    return TEST_PASS;
}

TEST(winograd_gradcheck)
{
    ds_model *m = ds_model_create(11);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){2, 8, 5, 6});
    ds_param *w = ds_model_add_param(m, "k.weight", 4, (int64_t[]){8, 8, 3, 3}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_param *b = ds_model_add_param(m, "k.bias", 1, (int64_t[]){8}, 1,
                                     (ds_init){DS_INIT_UNIFORM, -1, 1});
    ds_node *wn = ds_param_node(g, w), *bn = ds_param_node(g, b);
    ds_node *y = ds_conv_op(g, x, wn, bn, 2, NULL, (int[]){1, 0}, (int[]){1, 2}, NULL);
    CHECK(y);
    ds_node_requires_grad(x, 1);
    CHECK(ds_graph_plan(g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 5);
    fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
    ds_node *wrt[3] = {x, wn, bn};
    /* The output is linear in each value, so a long step has no truncation error and
     * divides the rounding of Winograd's transforms (1e-4 of error at a step of 1e-2) */
    int rc = gradcheck(g, y, 3, wrt, 5e-2, 5e-5, 1e-3, msg_, cap_);
    ds_graph_free(g);
    ds_model_free(m);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(winograd_threads_bit_identical)
{
    static const wcase k = {11, 16, 24, 20, 18, {1, 1}, {1, 1}, true};
    int keep = ds_get_num_threads();
    int64_t n1, n2;
    ds_set_num_threads(1);
    float *a = run(&k, true, &n1);
    ds_set_num_threads(2);
    float *b = run(&k, true, &n2);
    ds_set_num_threads(keep);
    int ok = a && b && n1 == n2 && !memcmp(a, b, (size_t)n1 * sizeof *a);
    free(a);
    free(b);
    CHECK(ok);
    return TEST_PASS;
}

