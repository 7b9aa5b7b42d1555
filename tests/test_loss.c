/* test_loss.c - loss ops: gradient checks, PyTorch references (fixtures/loss.safetensors),
 * stability at extreme logits, shape and label errors. */
#include "test.h"

#include "../src/internal.h"

/* ---- builders by name, so cases can be listed in tables ---- */
typedef enum { L_MSE, L_MAE, L_BCE, L_BCEL, L_CCE, L_CCE_INT, L_GNLL, L_KL4, L_KL2 } loss_kind;

static ds_node *build(ds_graph *g, loss_kind k, ds_node **in, ds_reduction r)
{
    switch (k) {
    case L_MSE: return ds_loss_mse(g, in[0], in[1], r);
    case L_MAE: return ds_loss_mae(g, in[0], in[1], r);
    case L_BCE: return ds_loss_bce(g, in[0], in[1], r);
    case L_BCEL: return ds_loss_bce_logits(g, in[0], in[1], r);
    case L_CCE: return ds_loss_cce_logits(g, in[0], in[1], r);
    case L_CCE_INT: return ds_loss_cce_logits_int(g, in[0], in[1], r);
    case L_GNLL: return ds_loss_gaussian_nll(g, in[0], in[1], in[2], r);
    case L_KL4: return ds_loss_kl_gaussian(g, in[0], in[1], in[2], in[3], r);
    case L_KL2: return ds_loss_kl_gaussian(g, in[0], in[1], NULL, NULL, r);
    }
    return NULL;
}

/* ---- PyTorch fixtures ---- */
typedef struct {
    const char *cas;          /* fixture prefix without _mean / _sum */
    loss_kind kind;
    int n;
    const char *in[4];
} fx_case;

static const fx_case fx_cases[] = {
    { "mse", L_MSE, 2, { "pred", "target" } },
    { "mae", L_MAE, 2, { "pred", "target" } },
    { "bce", L_BCE, 2, { "prob", "target" } },
    { "bce_logits", L_BCEL, 2, { "logits", "target" } },
    { "cce_onehot", L_CCE, 2, { "logits", "target" } },
    { "cce_soft", L_CCE, 2, { "logits", "target" } },
    { "cce3_onehot", L_CCE, 2, { "logits", "target" } },
    { "cce_int", L_CCE_INT, 2, { "logits", "labels" } },
    { "cce3_int", L_CCE_INT, 2, { "logits", "labels" } },
    { "gnll", L_GNLL, 3, { "mean", "logvar", "target" } },
    { "kl4", L_KL4, 4, { "mu1", "logvar1", "mu2", "logvar2" } },
    { "kl2", L_KL2, 2, { "mu1", "logvar1" } },
};

static double max_rel;   /* worst |got - want| / max(|want|, 1e-3) seen, for the report */

static int compare(const ds_tensor_set *fx, const char *key, const float *got, int64_t n,
                   char *msg, size_t cap)
{
    int64_t m;
    const float *want = fixture_data(fx, key, &m, msg, cap);
    if (!want)
        return 1;
    for (int64_t i = 0; i < n && i < m; i++) {
        if (!isfinite(got[i])) {
            snprintf(msg, cap, "%s[%lld] = %g is not finite", key, (long long)i, got[i]);
            return 1;
        }
        double r = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), 1e-3);
        if (r > max_rel)
            max_rel = r;
    }
    return fixture_compare(fx, key, got, n, 1e-4, 1e-6, msg, cap);
}

static int run_fixture_case(const ds_tensor_set *fx, const fx_case *c, ds_reduction r,
                            char *msg, size_t cap)
{
    char pre[64], key[128];
    snprintf(pre, sizeof pre, "%s_%s", c->cas, r == DS_REDUCE_MEAN ? "mean" : "sum");
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *in[4] = { NULL };
    ds_tensor *t[4];
    int rc = 1;
    for (int i = 0; i < c->n; i++) {
        snprintf(key, sizeof key, "%s.%s", pre, c->in[i]);
        t[i] = ds_tensor_set_get(fx, key);
        if (!t[i]) {
            snprintf(msg, cap, "fixture has no '%s'", key);
            goto done;
        }
        in[i] = ds_input(g, c->in[i], ds_tensor_ndim(t[i]), ds_tensor_shape(t[i]));
        snprintf(key, sizeof key, "%s.d%s", pre, c->in[i]);
        if (ds_tensor_set_get(fx, key))
            ds_node_requires_grad(in[i], 1);
    }
    ds_node *y = build(g, c->kind, in, r);
    if (!y || ds_node_ndim(y) != 0 || ds_node_numel(y) != 1) {
        snprintf(msg, cap, "%s: build failed: %s", pre, ds_last_error());
        goto done;
    }
    for (int i = 0; i < c->n; i++)
        if (ds_graph_set_input(g, in[i], ds_tensor_data(t[i]), ds_tensor_numel(t[i])) != DS_OK) {
            snprintf(msg, cap, "%s: %s", pre, ds_last_error());
            goto done;
        }
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward(g, y) != DS_OK) {
        snprintf(msg, cap, "%s: %s", pre, ds_last_error());
        goto done;
    }
    snprintf(key, sizeof key, "%s.loss", pre);
    if (compare(fx, key, ds_node_data(y), 1, msg, cap))
        goto done;
    for (int i = 0; i < c->n; i++) {
        snprintf(key, sizeof key, "%s.d%s", pre, c->in[i]);
        if (!ds_tensor_set_get(fx, key))
            continue;
        if (compare(fx, key, ds_node_grad(in[i]), ds_node_numel(in[i]), msg, cap))
            goto done;
    }
    coverage_mark_all(y, COVER_TORCH);   /* the inputs that want a gradient are those compared */
    rc = 0;
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(loss_matches_pytorch)
{
    ds_tensor_set *fx = fixture_load("loss", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    max_rel = 0;
    int rc = 0, ncase = 0;
    for (size_t i = 0; i < sizeof fx_cases / sizeof fx_cases[0] && !rc; i++)
        for (int r = DS_REDUCE_MEAN; r <= DS_REDUCE_SUM && !rc; r++, ncase++)
            rc = run_fixture_case(fx, &fx_cases[i], (ds_reduction)r, msg_, cap_);
    ds_tensor_set_free(fx);
    if (rc)
        return TEST_FAIL;
    snprintf(msg_, cap_, "%d cases, max rel err %.2g", ncase, max_rel);
    return TEST_PASS;
}

/* ---- gradient checks on random inputs ---- */
typedef struct {
    loss_kind kind;
    int n;
    int grad_mask;           /* which inputs are differentiated */
} gc_case;

/* Fills the inputs of kind k (shapes already set) with values away from kinks and
 * singularities. */
static void fill_inputs(loss_kind k, ds_node **in, int n, ds_rng *r)
{
    float *a = ds_node_data(in[0]);
    int64_t na = ds_node_numel(in[0]);
    switch (k) {
    case L_MAE: {
        float *b = ds_node_data(in[1]);
        fill_uniform(a, na, -2, 2, r);
        fill_away(b, na, -1, 1, 0.1f, r);
        for (int64_t i = 0; i < na; i++)
            b[i] += a[i];
        return;
    }
    case L_BCE:
        fill_uniform(a, na, 0.1f, 0.9f, r);
        fill_uniform(ds_node_data(in[1]), na, 0, 1, r);
        return;
    case L_BCEL:
        fill_uniform(a, na, -4, 4, r);
        fill_uniform(ds_node_data(in[1]), na, 0, 1, r);
        return;
    case L_CCE:
        fill_uniform(a, na, -3, 3, r);
        fill_uniform(ds_node_data(in[1]), na, 0, 1, r);   /* soft, not normalized */
        return;
    case L_CCE_INT: {
        fill_uniform(a, na, -3, 3, r);
        int64_t K = ds_node_shape(in[0])[1];
        float *l = ds_node_data(in[1]);
        for (int64_t i = 0; i < ds_node_numel(in[1]); i++)
            l[i] = (float)ds_rng_below(r, (uint64_t)K);
        return;
    }
    default:
        for (int i = 0; i < n; i++)
            fill_uniform(ds_node_data(in[i]), ds_node_numel(in[i]), -1.5f, 1.5f, r);
        return;
    }
}

static int gradcheck_case(loss_kind k, int n, int mask, int ndim, const int64_t *shape,
                          ds_reduction red, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *in[4] = { NULL }, *wrt[4];
    int nw = 0;
    for (int i = 0; i < n; i++) {
        char name[8] = { 'x', (char)('0' + i), 0 };
        if (k == L_CCE_INT && i == 1) {   /* labels: the logits' shape without dim 1 */
            int64_t ls[DS_MAX_DIMS];
            ls[0] = shape[0];
            for (int d = 2; d < ndim; d++)
                ls[d - 1] = shape[d];
            in[i] = ds_input(g, name, ndim - 1, ls);
        } else {
            in[i] = ds_input(g, name, ndim, shape);
        }
        if (mask & (1 << i)) {
            ds_node_requires_grad(in[i], 1);
            wrt[nw++] = in[i];
        }
    }
    ds_node *y = build(g, k, in, red);
    int rc = 1;
    if (!y || ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "build: %s", ds_last_error());
    } else {
        ds_rng r;
        ds_rng_seed(&r, 100 + (uint64_t)k * 7 + (uint64_t)ndim);
        fill_inputs(k, in, n, &r);
        /* BCE's probabilities reach 0.1, where 1/p^3 makes the truncation error of a step of
         * 1e-2 too large; the others take 1e-2, so that the rounding of the loss (a float32
         * scalar) divided by the step stays small */
        double h = k == L_BCE ? 2e-3 : 1e-2;
        /* atol: the loss is a float32 scalar, whose rounding divided by 2h reaches 3e-5
         * (mean, losses up to ~4) and 2.4e-4 (sum, larger losses) here, against gradients
         * whose mean |value| is at least 1e-2 (mean) and 0.17 (sum) */
        double atol = red == DS_REDUCE_MEAN ? 5e-5 : 5e-4;
        rc = gradcheck(g, y, nw, wrt, h, atol, 3e-3, msg, cap);
        if (rc)
            dsi_snprintf_cat(msg, cap, " (shape %s, %s)", dsi_shape_str(ndim, shape),
                             red == DS_REDUCE_MEAN ? "mean" : "sum");
    }
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(loss_gradcheck)
{
    static const gc_case cases[] = {
        { L_MSE, 2, 3 }, { L_MAE, 2, 3 }, { L_BCE, 2, 3 }, { L_BCEL, 2, 3 }, { L_CCE, 2, 3 },
        { L_CCE_INT, 2, 1 }, { L_GNLL, 3, 7 }, { L_KL4, 4, 15 }, { L_KL2, 2, 3 },
    };
    static const struct { int ndim; int64_t shape[4]; } shapes[] = {
        { 2, { 1, 3 } }, { 2, { 5, 7 } }, { 3, { 2, 3, 5 } }, { 4, { 3, 2, 1, 3 } },
    };
    int n = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int r = DS_REDUCE_MEAN; r <= DS_REDUCE_SUM; r++, n++)
                CHECK_OK(gradcheck_case(cases[c].kind, cases[c].n, cases[c].grad_mask,
                                        shapes[s].ndim, shapes[s].shape, (ds_reduction)r,
                                        msg_, cap_));
    snprintf(msg_, cap_, "%d checks", n);
    return TEST_PASS;
}

/* Only the gradients that are needed are computed: a target without requires_grad gets
 * none, and the prediction's gradient is still right. */
TEST(loss_target_gradient_only_when_needed)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *p = ds_input(g, "p", 2, (int64_t[]){2, 3});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){2, 3});
    ds_node_requires_grad(p, 1);
    ds_node *y = ds_loss_mse(g, p, t, DS_REDUCE_SUM);
    CHECK(y);
    float pv[6] = { 1, 2, 3, 4, 5, 6 }, tv[6] = { 0, 0, 0, 0, 0, 1 };
    CHECK(ds_graph_set_input(g, p, pv, 6) == DS_OK);
    CHECK(ds_graph_set_input(g, t, tv, 6) == DS_OK);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK_NEAR(ds_node_data(y)[0], 1 + 4 + 9 + 16 + 25 + 25, 1e-4);
    CHECK(ds_graph_backward(g, y) == DS_OK);
    CHECK(ds_node_grad(t) == NULL);
    CHECK_NEAR(ds_node_grad(p)[5], 10, 1e-5);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* No inf or NaN in values or gradients at logits far beyond +-100. */
TEST(loss_stable_at_extreme_logits)
{
    static const float zv[8] = { 1e4f, -1e4f, 100, -100, 1e4f, -1e4f, 88, -104 };
    static const float tv[8] = { 0, 1, 0, 1, 1, 0, 0.5f, 0.5f };
    for (int k = 0; k < 3; k++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *z = ds_input(g, "z", 2, (int64_t[]){2, 4});
        ds_node *t = ds_input(g, "t", k == 2 ? 1 : 2, (int64_t[]){2, 4});
        ds_node_requires_grad(z, 1);
        if (k < 2)
            ds_node_requires_grad(t, 1);
        ds_node *y = k == 0 ? ds_loss_bce_logits(g, z, t, DS_REDUCE_MEAN)
                   : k == 1 ? ds_loss_cce_logits(g, z, t, DS_REDUCE_MEAN)
                            : ds_loss_cce_logits_int(g, z, t, DS_REDUCE_MEAN);
        CHECK(y);
        CHECK(ds_graph_set_input(g, z, zv, 8) == DS_OK);
        float lab[2] = { 1, 3 };
        CHECK(ds_graph_set_input(g, t, k == 2 ? lab : tv, k == 2 ? 2 : 8) == DS_OK);
        CHECK(ds_graph_forward(g) == DS_OK);
        CHECK(ds_graph_backward(g, y) == DS_OK);
        CHECK(isfinite(ds_node_data(y)[0]) && ds_node_data(y)[0] > 1000);
        for (int i = 0; i < 8; i++) {
            CHECK(isfinite(ds_node_grad(z)[i]));
            if (k < 2)
                CHECK(isfinite(ds_node_grad(t)[i]));
        }
        ds_graph_free(g);
        ds_model_free(m);
    }
    return TEST_PASS;
}

/* The mean of cross-entropy divides by the number of positions (N * L), and a batch change
 * re-runs the shape rules. */
TEST(loss_cce_int_batch_change)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *z = ds_input(g, "z", 3, (int64_t[]){4, 3, 2});
    ds_node *l = ds_input(g, "l", 2, (int64_t[]){4, 2});
    ds_node *y = ds_loss_cce_logits_int(g, z, l, DS_REDUCE_MEAN);
    CHECK(y);
    CHECK(ds_graph_set_batch(g, 1) == DS_OK);
    float zv[6] = { 0, 0, 0, 0, 0, 0 }, lv[2] = { 2, 0 };
    CHECK(ds_graph_set_input(g, z, zv, 6) == DS_OK);
    CHECK(ds_graph_set_input(g, l, lv, 2) == DS_OK);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK_NEAR(ds_node_data(y)[0], log(3.0), 1e-6);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* ---- errors ---- */
TEST(loss_shape_errors_name_layer_and_shapes)
{
    static const struct { loss_kind k; int n; int64_t a[3], b[3]; int na, nb; const char *want; } c[] = {
        { L_MSE, 2, { 4, 5 }, { 4, 1 }, 2, 2, "loss_mse" },
        { L_MAE, 2, { 4, 5 }, { 5, 4 }, 2, 2, "loss_mae" },
        { L_BCE, 2, { 4, 1 }, { 4 }, 2, 1, "loss_bce" },
        { L_BCEL, 2, { 4, 5 }, { 1, 5 }, 2, 2, "loss_bce_logits" },
        { L_CCE, 2, { 4, 5 }, { 4, 4 }, 2, 2, "loss_cce_logits" },
        { L_CCE_INT, 2, { 4, 5 }, { 4, 5 }, 2, 2, "loss_cce_int" },
        { L_CCE_INT, 2, { 4, 5, 3 }, { 4, 5 }, 3, 2, "loss_cce_int" },
        { L_GNLL, 3, { 4, 5 }, { 4, 6 }, 2, 2, "loss_gaussian_nll" },
        { L_KL2, 2, { 4, 5 }, { 4, 6 }, 2, 2, "loss_kl_gaussian" },
        { L_KL4, 4, { 4, 5 }, { 3, 5 }, 2, 2, "loss_kl_gaussian" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *in[4];
        in[0] = ds_input(g, "a", c[i].na, c[i].a);
        for (int k = 1; k < c[i].n; k++) {
            char name[4] = { 'b', (char)('0' + k), 0 };
            in[k] = ds_input(g, name, c[i].nb, c[i].b);
        }
        ds_node *y = build(g, c[i].k, in, DS_REDUCE_MEAN);
        char sa[64], sb[64];
        dsi_snprintf_cat((sa[0] = 0, sa), sizeof sa, "%s", dsi_shape_str(c[i].na, c[i].a));
        dsi_snprintf_cat((sb[0] = 0, sb), sizeof sb, "%s", dsi_shape_str(c[i].nb, c[i].b));
        const char *e = ds_last_error();
        if (y || ds_graph_status(g) != DS_ERR_SHAPE || !strstr(e, c[i].want) ||
            !strstr(e, "_1'") || !strstr(e, sa) || !strstr(e, sb))
            FAIL("case %zu: status %s, message '%s'", i, ds_status_name(ds_graph_status(g)), e);
        ds_graph_free(g);
        ds_model_free(m);
    }
    /* a bad reduction, NULL inputs, and a half-given second Gaussian */
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 2, (int64_t[]){2, 2});
    CHECK(ds_loss_mse(g, a, NULL, DS_REDUCE_MEAN) == NULL && ds_graph_status(g) == DS_OK);
    CHECK(ds_loss_mse(g, a, a, (ds_reduction)7) == NULL && ds_graph_status(g) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "reduction"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    a = ds_input(g, "a", 2, (int64_t[]){2, 2});
    CHECK(ds_loss_kl_gaussian(g, a, a, a, NULL, DS_REDUCE_SUM) == NULL);
    CHECK(ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(loss_label_out_of_range)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *z = ds_input(g, "z", 2, (int64_t[]){4, 3});
    ds_node *l = ds_input(g, "l", 1, (int64_t[]){4});
    ds_node_requires_grad(z, 1);
    ds_node *y = ds_loss_cce_logits_int(g, z, l, DS_REDUCE_MEAN);
    CHECK(y);
    float zv[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    CHECK(ds_graph_set_input(g, z, zv, 12) == DS_OK);
    static const struct { float v; const char *want; } bad[] = {
        { 3, "label 3 at sample 2 is outside [0, 3)" },
        { -1, "label -1 at sample 2 is outside [0, 3)" },
        { 1.5f, "label 1.5 at sample 2 is not an integer in [0, 3)" },
        { NAN, "at sample 2 is outside [0, 3)" },
        { 1e9f, "at sample 2 is outside [0, 3)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float lv[4] = { 0, 1, bad[i].v, 2 };
        CHECK(ds_graph_set_input(g, l, lv, 4) == DS_OK);
        ds_status st = ds_graph_forward(g);
        if (st != DS_ERR_VALUE || !strstr(ds_last_error(), bad[i].want) ||
            !strstr(ds_last_error(), "loss_cce_int"))
            FAIL("label %g: status %s, message '%s'", bad[i].v, ds_status_name(st),
                 ds_last_error());
        CHECK(!isnan(ds_node_data(y)[0]));
        CHECK(ds_graph_backward(g, y) == DS_ERR_STATE);   /* no backward after a failure */
    }
    /* [N, K, L]: the sample and the position */
    ds_graph *g2 = ds_graph_create(m, 1);
    ds_node *z3 = ds_input(g2, "z", 3, (int64_t[]){2, 3, 2});
    ds_node *l3 = ds_input(g2, "l", 2, (int64_t[]){2, 2});
    ds_node *y3 = ds_loss_cce_logits_int(g2, z3, l3, DS_REDUCE_SUM);
    CHECK(y3);
    float l3v[4] = { 0, 1, 2, 5 };
    CHECK(ds_graph_set_input(g2, l3, l3v, 4) == DS_OK);
    CHECK(ds_graph_forward(g2) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "label 5 at sample 1 (position 1) is outside [0, 3)"));
    ds_graph_free(g2);
    /* valid labels again: forward and backward work */
    float ok[4] = { 0, 1, 2, 2 };
    CHECK(ds_graph_set_input(g, l, ok, 4) == DS_OK);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK(ds_graph_backward(g, y) == DS_OK);
    CHECK(isfinite(ds_node_data(y)[0]));
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}
