/* test_loss_msb.c - the mean-squared-bias loss (ds_loss_msb, "loss msb"): PyTorch references
 * (fixtures/loss_msb.safetensors), finite differences, exact values, shape and option
 * errors, the model-file line. */
#include "test.h"

#include "../src/internal.h"

#define CHECK_STR_HAS(s, sub)                                                          \
    do {                                                                               \
        const char *s_ = (s);                                                          \
        if (!s_ || !strstr(s_, sub))                                                   \
            FAIL("%s:%d: '%s' does not contain '%s'", __FILE__, __LINE__, s_ ? s_ : "(null)", \
                 sub);                                                                 \
    } while (0)

static const char *const fx_names[] = {"k4_unbiased", "k3_plain", "k1_mse", "k2_nchw"};

/* One fixture case: the loss and both gradients against PyTorch's autograd in float64. */
static int run_case(const ds_tensor_set *fx, const char *c, double *max_rel, char *msg,
                    size_t cap)
{
    char key[96];
    snprintf(key, sizeof key, "%s.opts", c);
    int64_t no;
    const float *o = fixture_data(fx, key, &no, msg, cap);
    snprintf(key, sizeof key, "%s.pred", c);
    const ds_tensor *p = ds_tensor_set_get(fx, key);
    snprintf(key, sizeof key, "%s.target", c);
    const ds_tensor *t = ds_tensor_set_get(fx, key);
    if (!o || no != 3 || !p || !t) {
        snprintf(msg, cap, "fixture case %s is incomplete", c);
        return 1;
    }
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x[2] = {grad_input(g, "pred", ds_tensor_ndim(p), ds_tensor_shape(p)),
                     grad_input(g, "target", ds_tensor_ndim(t), ds_tensor_shape(t))};
    ds_reduction red = strstr(c, "_sum") ? DS_REDUCE_SUM : DS_REDUCE_MEAN;
    ds_msb_opts mo = {.group = (int)o[0], .mse = o[1], .unbiased = o[2] != 0};
    ds_node *y = ds_loss_msb(g, x[0], x[1], &mo, red);
    int rc = 1;
    if (!y || ds_graph_set_input(g, x[0], ds_tensor_data((ds_tensor *)p), ds_tensor_numel(p)) ||
        ds_graph_set_input(g, x[1], ds_tensor_data((ds_tensor *)t), ds_tensor_numel(t)) ||
        ds_graph_forward(g) || ds_graph_backward(g, y)) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        goto done;
    }
    if (fixture_compare_case(fx, c, "loss", ds_node_data(y), 1, max_rel, msg, cap) ||
        fixture_compare_case(fx, c, "dpred", ds_node_grad(x[0]), ds_node_numel(x[0]), max_rel,
                             msg, cap) ||
        fixture_compare_case(fx, c, "dtarget", ds_node_grad(x[1]), ds_node_numel(x[1]),
                             max_rel, msg, cap))
        goto done;
    coverage_mark_all(y, COVER_TORCH);
    rc = 0;
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(loss_msb_matches_pytorch)
{
    ds_tensor_set *fx = fixture_load("loss_msb", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    double max_rel = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof fx_names / sizeof fx_names[0]; i++)
        for (int r = 0; r < 2; r++, n++) {
            char c[64];
            snprintf(c, sizeof c, "%s_%s", fx_names[i], r ? "sum" : "mean");
            if (run_case(fx, c, &max_rel, msg_, cap_)) {
                ds_tensor_set_free(fx);
                return TEST_FAIL;
            }
        }
    ds_tensor_set_free(fx);
    snprintf(msg_, cap_, "%d cases, max rel err %.2g", n, max_rel);
    return TEST_PASS;
}

TEST(loss_msb_gradcheck)
{
    static const struct { int ndim; int64_t shape[4]; int group; double mse; int unbiased; } c[] = {
        {2, {8, 2}, 4, 0.1, 1}, {2, {6, 3}, 3, 0.0, 0}, {2, {5, 1}, 1, 0.3, 0},
        {3, {4, 2, 3}, 2, 0.05, 1},
    };
    ds_rng r;
    ds_rng_seed(&r, 11);
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        for (int red = 0; red < 2; red++) {
            ds_model *m = ds_model_create(1);
            ds_graph *g = ds_graph_create(m, 1);
            ds_node *x[2] = {grad_input(g, "p", c[i].ndim, c[i].shape),
                             grad_input(g, "t", c[i].ndim, c[i].shape)};
            ds_msb_opts o = {c[i].group, c[i].mse, c[i].unbiased};
            ds_node *y = ds_loss_msb(g, x[0], x[1], &o, (ds_reduction)red);
            CHECK(y && ds_graph_plan(g) == DS_OK);
            for (int k = 0; k < 2; k++)
                fill_uniform(ds_node_data(x[k]), ds_node_numel(x[k]), -1.5f, 1.5f, &r);
            int rc = gradcheck(g, y, 2, x, 1e-3, 1e-4, 3e-3, msg_, cap_);
            ds_graph_free(g);
            ds_model_free(m);
            if (rc)
                return TEST_FAIL;
        }
    return TEST_PASS;
}

/* Exact values: a constant error c in every realization gives c^2 (the spread is 0); errors
 * that average to 0 in each group give only the unbiased estimate's -s2 / K; with mse=w
 * the MSE term adds w mean(d^2). */
TEST(loss_msb_exact_values)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *p = ds_input(g, "p", 2, (int64_t[]){4, 1});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){4, 1});
    ds_node *a = ds_loss_msb(g, p, t, &(ds_msb_opts){.group = 2, .unbiased = 1}, DS_REDUCE_MEAN);
    ds_node *b = ds_loss_msb(g, p, t, &(ds_msb_opts){.group = 2, .mse = 0.5}, DS_REDUCE_SUM);
    CHECK(a && b);
    float pv[4] = {1.3f, 1.3f, 0.5f, 0.5f}, tv[4] = {1, 1, 0.2f, 0.2f};
    CHECK(ds_graph_set_input(g, p, pv, 4) == DS_OK && ds_graph_set_input(g, t, tv, 4) == DS_OK);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK_NEAR(ds_node_data(a)[0], 0.09, 1e-6);            /* both groups off by 0.3 */
    CHECK_NEAR(ds_node_data(b)[0], 2 * 0.09 + 0.5 * 4 * 0.09, 1e-6);
    float qv[4] = {1.5f, 0.5f, 0.0f, 0.4f};               /* errors +-0.5, +-0.2 */
    CHECK(ds_graph_set_input(g, p, qv, 4) == DS_OK);
    CHECK(ds_graph_forward(g) == DS_OK);
    /* s2 = 0.5 and 0.08 (K - 1 = 1): mean over 2 cases of -s2 / 2 */
    CHECK_NEAR(ds_node_data(a)[0], -(0.5 + 0.08) / 4, 1e-6);
    CHECK_NEAR(ds_node_data(b)[0], 0.5 * (0.25 + 0.25 + 0.04 + 0.04), 1e-6);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(loss_msb_errors)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *p = ds_input(g, "p", 2, (int64_t[]){6, 2});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){6, 2});
    CHECK(!ds_loss_msb(g, p, t, &(ds_msb_opts){.group = 4}, DS_REDUCE_MEAN));
    CHECK(ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK_STR_HAS(ds_last_error(), "6 rows are not whole groups of group=4");
    CHECK_STR_HAS(ds_last_error(), "[6, 2]");
    ds_graph_free(g);
    static const ds_msb_opts bad[] = {{0, 0, 0}, {1, 0, 1}, {2, -1, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = ds_graph_create(m, 1);
        p = ds_input(g, "p", 2, (int64_t[]){6, 2});
        CHECK(!ds_loss_msb(g, p, p, &bad[i], DS_REDUCE_MEAN));
        CHECK(ds_graph_status(g) == DS_ERR_ARG);
        CHECK_STR_HAS(ds_last_error(), "loss_msb: group");
        ds_graph_free(g);
    }
    ds_model_free(m);
    return TEST_PASS;
}

/* The model-file line, and a batch that splits a group when the batch size changes. */
TEST(loss_msb_model_file)
{
    static const char *const good = "input shape=3\ndense units=2\nloss msb group=4 mse=0.1\n";
    ds_net *n;
    CHECK(ds_net_parse(good, "msb.model", &(ds_net_opts){.batch = 8}, &n) == DS_OK);
    ds_node *l = ds_net_loss(n);
    CHECK(l && l->op == DS_OP_LOSS_MSB);
    CHECK(ds_graph_set_batch(ds_net_graph(n), 6) == DS_ERR_SHAPE);
    CHECK_STR_HAS(ds_last_error(), "not whole groups of group=4");
    ds_net_free(n);
    static const struct { const char *text, *want; } bad[] = {
        {"input shape=3\ndense units=2\nloss msb\n", "option 'group' is required"},
        {"input shape=3\ndense units=2\nloss msb group=1 unbiased=true\n", "needs group >= 2"},
        {"input shape=3\ndense units=2\nloss msb group=2 mse=-1\n", "'mse': '-1'"},
        {"input shape=3\ndense units=2\nloss msb group=2 spread=1\n", "unknown option 'spread'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(ds_net_parse(bad[i].text, "msb.model", &(ds_net_opts){.batch = 8}, &n) != DS_OK);
        CHECK_STR_HAS(ds_last_error(), bad[i].want);
        CHECK_STR_HAS(ds_last_error(), "msb.model:3");
    }
    return TEST_PASS;
}
