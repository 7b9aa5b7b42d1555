/* test_bayes.c - Bayesian layers (Bayes by backprop): the KL term against its closed form,
 * gradients against finite differences, the forward pass with fixed noise against PyTorch
 * (tests/fixtures/gen_bayes.py), sampling per mode, a toy regression whose spread grows
 * outside the training range, the errors, and the command line's kl column. */
#include "test.h"
#include "spawn.h"

#include "../src/internal.h"

#include <unistd.h>

/* ---- helpers ---- */

/* The trainable parameters of g's graph as nodes, in creation order, into p (cap entries). */
static int param_nodes(ds_graph *g, ds_node **p, int cap)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes && n < cap; i++)
        if (g->nodes[i]->op == DS_OP_PARAM && g->nodes[i]->param->trainable)
            p[n++] = g->nodes[i];
    return n;
}

/* The sampling node of parameter "<layer>.<what>_mu". */
static ds_node *sample_of(ds_graph *g, const char *what)
{
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        const char *dot = y->op == DS_OP_BAYES_SAMPLE ? strchr(y->in[0]->param->name, '.') : NULL;
        if (dot && !strncmp(dot + 1, what, strlen(what)) && dot[1 + strlen(what)] == '_')
            return y;
    }
    return NULL;
}

/* Copies fixture tensor key into parameter name of m. */
static int set_param(const ds_tensor_set *fx, const char *key, ds_model *m, const char *name,
                     char *msg, size_t cap)
{
    int64_t n;
    const float *v = fixture_data(fx, key, &n, msg, cap);
    ds_param *p = ds_model_find(m, name);
    if (!v || !p || ds_param_numel(p) != n) {
        if (v)
            snprintf(msg, cap, "%s: no parameter '%s' of %lld values", key, name, (long long)n);
        return 1;
    }
    memcpy(ds_param_data(p), v, (size_t)n * sizeof *v);
    return 0;
}

/* ---- PyTorch with fixed noise ---- */

typedef struct {
    const char *name;
    bool conv, bias;
    int stride, pad;
} layer_case;

/* The layer of case lc on input x ("b" names it), with the shapes of the fixture. */
static ds_node *build_case(ds_graph *g, ds_node *x, const layer_case *lc,
                           const ds_tensor *w_mu)
{
    const int64_t *ws = ds_tensor_shape(w_mu);
    if (!lc->conv)
        return ds_dense_bayes(g, x, &(ds_dense_opts){.name = "b", .units = ws[0],
                                                     .no_bias = !lc->bias}, NULL);
    ds_conv_opts o = {.name = "b", .filters = ws[0], .kernel = {(int)ws[2]},
                      .stride = {lc->stride}, .padding = DS_PAD_EXPLICIT,
                      .pad = {lc->pad, lc->pad},
                      .no_bias = !lc->bias};
    return ds_conv_bayes(g, x, 2, &o, NULL);
}

/* Forward (sampling, noise from the fixture) and backward seeded with r, compared with
 * PyTorch: y to 1e-5 absolute (largest difference into *maxabs), gradients as the other
 * fixtures (largest relative difference into *maxrel). */
static int run_layer_case(const ds_tensor_set *fx, const layer_case *lc, double *maxabs,
                          double *maxrel, char *msg, size_t cap)
{
    char key[96];
    const char *c = lc->name;
    snprintf(key, sizeof key, "%s.x", c);
    const ds_tensor *tx = ds_tensor_set_get(fx, key);
    snprintf(key, sizeof key, "%s.w_mu", c);
    const ds_tensor *tw = ds_tensor_set_get(fx, key);
    if (!tx || !tw) {
        snprintf(msg, cap, "fixture lacks %s.x or %s.w_mu", c, c);
        return 1;
    }
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = grad_input(g, "x", ds_tensor_ndim(tx), ds_tensor_shape(tx));
    ds_node *y = build_case(g, x, lc, tw);
    int rc = 1;
    if (!y) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        goto done;
    }
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    const char *parts[] = {"w_mu", "w_rho", "b_mu", "b_rho"};
    const char *params[] = {"b.weight_mu", "b.weight_rho", "b.bias_mu", "b.bias_rho"};
    int np = lc->bias ? 4 : 2;
    for (int i = 0; i < np; i++) {
        snprintf(key, sizeof key, "%s.%s", c, parts[i]);
        if (set_param(fx, key, m, params[i], msg, cap))
            goto done;
    }
    snprintf(key, sizeof key, "%s.w_eps", c);
    const float *weps = fixture_data(fx, key, NULL, msg, cap), *beps = NULL;
    snprintf(key, sizeof key, "%s.b_eps", c);
    if (!weps || (lc->bias && !(beps = fixture_data(fx, key, NULL, msg, cap))))
        goto done;
    dsi_bayes_fix_noise(sample_of(g, "weight"), weps);
    if (lc->bias)
        dsi_bayes_fix_noise(sample_of(g, "bias"), beps);
    snprintf(key, sizeof key, "%s.r", c);
    const float *r = fixture_data(fx, key, NULL, msg, cap);
    if (!r || ds_graph_plan(g) != DS_OK)
        goto done;
    memcpy(ds_node_data(x), ds_tensor_data((ds_tensor *)tx), (size_t)x->numel * sizeof(float));
    ds_model_zero_grad(m);
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward_seed(g, y, r) != DS_OK) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        goto done;
    }
    snprintf(key, sizeof key, "%s.y", c);
    const float *want = fixture_data(fx, key, NULL, msg, cap);
    if (!want || fixture_compare(fx, key, y->data, y->numel, 0, 1e-5, msg, cap))
        goto done;
    for (int64_t i = 0; i < y->numel; i++)
        *maxabs = fmax(*maxabs, fabs((double)y->data[i] - want[i]));
    if (fixture_compare_case(fx, c, "dx", x->grad, x->numel, maxrel, msg, cap))
        goto done;
    for (int i = 0; i < np; i++) {
        char what[16];
        snprintf(what, sizeof what, "d%s", parts[i]);
        ds_param *p = ds_model_find(m, params[i]);
        if (fixture_compare_case(fx, c, what, ds_param_grad(p), ds_param_numel(p), maxrel, msg,
                                 cap))
            goto done;
    }
    coverage_mark_all(y, COVER_TORCH);
    rc = 0;
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

/* The KL node of case c (pairs mu<i>, rho<i> as inputs) against PyTorch's kl_divergence. */
static int run_kl_case(const ds_tensor_set *fx, const char *c, double *maxrel, char *msg,
                       size_t cap)
{
    char key[96];
    snprintf(key, sizeof key, "%s.opts", c);
    const float *opts = fixture_data(fx, key, NULL, msg, cap);
    if (!opts)
        return 1;
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *in[8];
    int n = 0;
    for (; n < 8; n += 2) {
        snprintf(key, sizeof key, "%s.mu%d", c, n / 2);
        const ds_tensor *t = ds_tensor_set_get(fx, key);
        if (!t)
            break;
        char mname[16], rname[16];
        snprintf(mname, sizeof mname, "mu%d", n / 2);
        snprintf(rname, sizeof rname, "rho%d", n / 2);
        in[n] = grad_input(g, mname, ds_tensor_ndim(t), ds_tensor_shape(t));
        in[n + 1] = grad_input(g, rname, ds_tensor_ndim(t), ds_tensor_shape(t));
    }
    ds_node *kl = ds_bayes_kl(g, n, in, opts[0], opts[1]);
    int rc = 1;
    if (!kl || ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        goto done;
    }
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s.%s%d", c, i % 2 ? "rho" : "mu", i / 2);
        const float *v = fixture_data(fx, key, NULL, msg, cap);
        if (!v)
            goto done;
        memcpy(ds_node_data(in[i]), v, (size_t)in[i]->numel * sizeof *v);
    }
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward(g, kl) != DS_OK) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        goto done;
    }
    if (fixture_compare_case(fx, c, "kl", kl->data, 1, maxrel, msg, cap))
        goto done;
    for (int i = 0; i < n; i++) {
        char what[16];
        snprintf(what, sizeof what, "d%s%d", i % 2 ? "rho" : "mu", i / 2);
        if (fixture_compare_case(fx, c, what, in[i]->grad, in[i]->numel, maxrel, msg, cap))
            goto done;
    }
    coverage_mark_all(kl, COVER_TORCH);
    rc = 0;
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(bayes_layers_match_pytorch_with_fixed_noise)
{
    ds_tensor_set *fx = fixture_load("bayes", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    static const layer_case cases[] = {
        {"dense", false, true, 1, 0}, {"dense_nobias", false, false, 1, 0},
        {"conv_same", true, true, 1, 1}, {"conv_s2", true, false, 2, 0},
    };
    double maxabs = 0, maxrel = 0;
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++)
        rc = run_layer_case(fx, &cases[i], &maxabs, &maxrel, msg_, cap_);
    if (!rc)
        rc = run_kl_case(fx, "kl", &maxrel, msg_, cap_);
    if (!rc)
        rc = run_kl_case(fx, "kl_unit", &maxrel, msg_, cap_);
    ds_tensor_set_free(fx);
    if (rc)
        return TEST_FAIL;
    snprintf(msg_, cap_, "4 layer cases: y max abs diff %.2g (tol 1e-5); gradients and 2 KL "
             "cases max rel diff %.2g", maxabs, maxrel);
    return TEST_PASS;
}

/* ---- the KL term against its closed form ---- */

/* sum log(s / sigma) + (sigma^2 + mu^2) / (2 s^2) - 1/2 in long double, sigma from rho. */
static double kl_closed(const float *mu, const float *rho, int64_t n, double s)
{
    long double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        long double r = rho[i];
        long double sg = r > 40 ? r : log1pl(expl(r)), lsg = r < -40 ? r : logl(sg);
        sum += logl(s) - lsg + (sg * sg + (long double)mu[i] * mu[i]) / (2 * s * s) - 0.5L;
    }
    return (double)sum;
}

TEST(bayes_kl_matches_its_closed_form)
{
    enum { N = 300 };
    ds_rng r;
    ds_rng_seed(&r, 21);
    float mu[N], rho[N], lv[N];
    fill_uniform(mu, N, -2, 2, &r);
    fill_uniform(rho, N, -10, 5, &r);
    rho[0] = -60;   /* sigma ~ 1e-26: log sigma from rho itself, no underflow */
    rho[1] = 35;    /* softplus = rho */
    mu[2] = 0;
    rho[2] = (float)log(expm1(1.0));   /* the prior itself: KL 0 for s = 1 */
    double worst = 0;
    const double priors[] = {1.0, 0.3, 2.5};
    for (int k = 0; k < 3; k++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *in[2] = {ds_input(g, "mu", 1, (int64_t[]){N}), ds_input(g, "rho", 1, (int64_t[]){N})};
        ds_node *kl = ds_bayes_kl(g, 2, in, (float)priors[k], 0.25f);
        /* for s = 1, the VAE's KL op on log-variances 2 log sigma is the same sum */
        ds_node *lvn = ds_input(g, "logvar", 1, (int64_t[]){N});
        ds_node *vae = ds_loss_kl_gaussian(g, in[0], lvn, NULL, NULL, DS_REDUCE_SUM);
        CHECK(kl && vae);
        ds_node_keep(vae, 1);
        CHECK(ds_graph_plan(g) == DS_OK);
        memcpy(ds_node_data(in[0]), mu, sizeof mu);
        memcpy(ds_node_data(in[1]), rho, sizeof rho);
        for (int i = 0; i < N; i++)
            lv[i] = (float)(2 * (rho[i] < -40 ? rho[i] : log(log1p(exp((double)rho[i])))));
        memcpy(ds_node_data(lvn), lv, sizeof lv);
        CHECK(ds_graph_forward(g) == DS_OK);
        double want = 0.25 * kl_closed(mu, rho, N, priors[k]);
        double got = ds_node_data(kl)[0], rel = fabs(got - want) / fabs(want);
        if (!(rel < 1e-6))
            FAIL("prior %g: KL %.9g, closed form %.9g (rel %.2g)", priors[k], got, want, rel);
        worst = fmax(worst, rel);
        if (k == 0)
            CHECK_NEAR(got, 0.25 * ds_node_data(vae)[0], 1e-6 * fabs(got));
        /* a single element at the prior: exactly the closed form's 0 */
        double one = kl_closed(mu + 2, rho + 2, 1, 1.0);
        CHECK(fabs(one) < 1e-7);
        ds_graph_free(g);
        ds_model_free(m);
    }
    snprintf(msg_, cap_, "3 priors, %d elements (rho -60 to 35): max rel err %.1e vs long "
             "double; equals the VAE KL op for prior 1", N, worst);
    return TEST_PASS;
}

/* ---- finite differences ---- */

/* dense_bayes or conv2d_bayes in training mode (sampling), d/dx and d/d every parameter of
 * the output; then the KL node's d/d every parameter. */
static int fd_layer(bool conv, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 5);
    ds_node *x = conv ? grad_input(g, "x", 4, (int64_t[]){1, 2, 4, 4})
                      : grad_input(g, "x", 2, (int64_t[]){3, 4});
    ds_bayes_opts bo = {.prior_sigma = 0.7f, .posterior_init = 0.3f, .kl_weight = 0.2f};
    ds_node *y = conv ? ds_conv_bayes(g, x, 2, &(ds_conv_opts){.name = "c", .filters = 3,
                                      .kernel = {3}, .padding = DS_PAD_SAME}, &bo)
                      : ds_dense_bayes(g, x, &(ds_dense_opts){.name = "d", .units = 3}, &bo);
    ds_node *kl = ds_graph_kl_loss(g);
    int rc = 1;
    if (!y || !kl) {
        snprintf(msg, cap, "build: %s", ds_last_error());
        goto done;
    }
    ds_node_keep(kl, 1);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    ds_rng r;
    ds_rng_seed(&r, 8);
    ds_node *wrt[5] = {x};
    int np = param_nodes(g, wrt + 1, 4);
    for (int i = 1; i <= np; i++)   /* rho spread over the soft and the linear part */
        if (strstr(wrt[i]->param->name, "_rho"))
            fill_uniform(ds_param_data(wrt[i]->param), wrt[i]->numel, -3, 1, &r);
    if (ds_graph_plan(g) != DS_OK)
        goto done;
    fill_uniform(ds_node_data(x), x->numel, -1, 1, &r);
    if ((rc = gradcheck(g, y, np + 1, wrt, 1e-2, 1e-4, 5e-4, msg, cap)))
        goto done;
    rc = gradcheck(g, kl, np, wrt + 1, 1e-2, 5e-5, 1e-3, msg, cap);
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(bayes_gradients_pass_finite_differences)
{
    CHECK_OK(fd_layer(false, msg_, cap_));
    CHECK_OK(fd_layer(true, msg_, cap_));
    return TEST_PASS;
}

/* ---- sampling per mode ---- */

/* A dense_bayes layer [4, 64] -> 80 with sigma = 1 everywhere and mu = 0.5: returns the
 * output of one forward in mode (w kept in *w when asked). */
static ds_graph *wide_layer(ds_model **m, uint64_t seed, ds_node **x, ds_node **y, ds_node **w)
{
    *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(*m, seed);
    *x = ds_input(g, "x", 2, (int64_t[]){4, 64});
    *y = ds_dense_bayes(g, *x, &(ds_dense_opts){.name = "d", .units = 80},
                        &(ds_bayes_opts){.posterior_init = 1.0f, .kl_weight = 1});
    *w = sample_of(g, "weight");
    if (*y && *w) {
        ds_node_keep(*w, 1);
        ds_node_keep(*y, 1);
        float *mu = ds_param_data(ds_model_find(*m, "d.weight_mu"));
        for (int i = 0; i < 80 * 64; i++)
            mu[i] = 0.5f;
    }
    return g;
}

TEST(bayes_samples_in_training_and_mc_modes_only)
{
    ds_model *m, *m2;
    ds_node *x, *y, *w, *x2, *y2, *w2;
    ds_graph *g = wide_layer(&m, 7, &x, &y, &w);
    CHECK(y && w);
    CHECK(dsi_ops[DS_OP_BAYES_SAMPLE]->stochastic && !dsi_ops[DS_OP_BAYES_KL]->stochastic);
    CHECK(ds_graph_plan(g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 2);
    fill_uniform(ds_node_data(x), 4 * 64, -1, 1, &r);
    enum { NW = 80 * 64, NY = 4 * 80 };
    /* eval: w is the mean, every time */
    CHECK(ds_graph_forward(g) == DS_OK);
    for (int i = 0; i < NW; i++)
        CHECK(w->data[i] == 0.5f);
    /* training: w - mu = sigma eps with sigma = 1: standard normal draws */
    static float a[NW], b[NW], ya[NY];
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    CHECK(ds_graph_forward(g) == DS_OK);
    memcpy(a, w->data, sizeof a);
    memcpy(ya, y->data, sizeof ya);
    double s1 = 0, s2 = 0, in1 = 0;
    for (int i = 0; i < NW; i++) {
        double e = a[i] - 0.5;
        s1 += e;
        s2 += e * e;
        in1 += fabs(e) < 1;
    }
    double mean = s1 / NW, sd = sqrt(s2 / NW - mean * mean), frac = in1 / NW;
    if (!(fabs(mean) < 0.05 && fabs(sd - 1) < 0.03 && fabs(frac - 0.6827) < 0.02))
        FAIL("noise of %d draws: mean %.4f, sd %.4f, |eps| < 1 in %.4f (N(0,1): 0, 1, 0.6827)",
             NW, mean, sd, frac);
    /* a new draw at every forward */
    CHECK(ds_graph_forward(g) == DS_OK);
    memcpy(b, w->data, sizeof b);
    int same = 0;
    for (int i = 0; i < NW; i++)
        same += a[i] == b[i];
    CHECK(same < NW / 100);
    /* MC inference (an inference plan, no saved noise) samples too */
    ds_graph_set_mode(g, DS_MODE_MC_DROPOUT | DS_INFER);
    CHECK(ds_graph_forward(g) == DS_OK);
    same = 0;
    for (int i = 0; i < NW; i++)
        same += w->data[i] == b[i] || w->data[i] == 0.5f;
    CHECK(same < NW / 100);
    /* the same seed gives the same draws, on 1 thread and on 2 */
    ds_graph_free(g);
    ds_model_free(m);
    int threads = ds_get_num_threads();
    for (int th = 1; th <= 2; th++) {
        ds_set_num_threads(th);
        ds_graph *g2 = wide_layer(&m2, 7, &x2, &y2, &w2);
        CHECK(g2 && w2);
        ds_graph_set_mode(g2, DS_MODE_TRAIN);
        CHECK(ds_graph_plan(g2) == DS_OK);
        ds_rng_seed(&r, 2);
        fill_uniform(ds_node_data(x2), 4 * 64, -1, 1, &r);
        CHECK(ds_graph_forward(g2) == DS_OK);   /* step 0 in eval before: same step count */
        CHECK(ds_graph_forward(g2) == DS_OK);
        bool eq = !memcmp(w2->data, a, sizeof a);
        for (int i = 0; i < NY; i++)   /* y through sgemm, whose rounding may vary */
            eq = eq && fabsf(y2->data[i] - ya[i]) <= 1e-5f * (1 + fabsf(ya[i]));
        ds_graph_free(g2);
        ds_model_free(m2);
        if (!eq) {
            ds_set_num_threads(threads);
            FAIL("seed 7 on %d thread(s): other draws than the first run's", th);
        }
    }
    ds_set_num_threads(threads);
    snprintf(msg_, cap_, "eval uses mu; %d draws: mean %.4f, sd %.4f, P(|eps|<1) %.4f; same "
             "draws for a seed on 1 and 2 threads", NW, mean, sd, frac);
    return TEST_PASS;
}

/* ---- a toy regression end to end ---- */

/* y = sin(3x) + noise 0.05 for x uniform in [-1, 1]. */
static void toy(ds_tensor *x, ds_tensor *y, ds_rng *r)
{
    float *xd = ds_tensor_data(x), *yd = ds_tensor_data(y);
    for (int64_t i = 0; i < ds_tensor_numel(x); i++) {
        xd[i] = (float)(2 * ds_rng_uniform(r) - 1);
        yd[i] = (float)(sin(3.0 * xd[i]) + 0.05 * ds_rng_normal(r));
    }
}

/* Standard deviation over K MC predictions at each of the points xs, averaged. */
static int mc_spread(ds_net *n, const float *xs, int np, int k, double *spread, double *mean_err,
                     char *msg, size_t cap)
{
    ds_tensor *xt = ds_tensor_create(2, (int64_t[]){np, 1});
    double s1[16] = {0}, s2[16] = {0};
    memcpy(ds_tensor_data(xt), xs, (size_t)np * sizeof *xs);
    ds_graph_set_mode(ds_net_graph(n), DS_MODE_MC_DROPOUT);
    for (int j = 0; j < k; j++) {
        ds_tensor *p = NULL;
        if (ds_net_predict(n, xt, 16, &p) != DS_OK) {
            snprintf(msg, cap, "predict: %s", ds_last_error());
            ds_tensor_free(xt);
            return 1;
        }
        for (int i = 0; i < np; i++) {
            s1[i] += ds_tensor_data(p)[i];
            s2[i] += (double)ds_tensor_data(p)[i] * ds_tensor_data(p)[i];
        }
        ds_tensor_free(p);
    }
    ds_graph_set_mode(ds_net_graph(n), DS_MODE_EVAL);
    *spread = *mean_err = 0;
    for (int i = 0; i < np; i++) {
        double m = s1[i] / k;
        *spread += sqrt(fmax(s2[i] / k - m * m, 0)) / np;
        *mean_err += fabs(m - sin(3.0 * xs[i])) / np;
    }
    ds_tensor_free(xt);
    return 0;
}

static const char toy_model[] =
    "input shape=1\n"
    "dense_bayes name=h units=32 activation=relu\n"
    "dense_bayes name=out units=1 prior_sigma=1 posterior_init=0.05\n"
    "loss mse\n"
    "optimizer adam lr=0.02\n";

TEST(bayes_toy_regression_spread_grows_outside_the_training_range)
{
    enum { N = 1000 };
    char dir[] = "/tmp/deepsky_bayes_XXXXXX", wpath[64], log[64];
    CHECK(mkdtemp(dir));
    snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
    snprintf(log, sizeof log, "%s/log.csv", dir);
    ds_net *n = NULL;
    CHECK(ds_net_parse(toy_model, "toy.model", &(ds_net_opts){.seed = 3}, &n) == DS_OK);
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){N, 1}), *y = ds_tensor_create(2, (int64_t[]){N, 1});
    ds_rng r;
    ds_rng_seed(&r, 4);
    toy(x, y, &r);
    ds_fit_opts fo = {.epochs = 60, .batch_size = 50, .seed = 5, .out_path = wpath,
                      .log_csv = log, .checkpoint_every = 1e9};
    ds_fit_result res;
    ds_status st = ds_net_fit(n, x, y, NULL, NULL, &fo, &res);
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK(st == DS_OK);
    CHECK_NEAR(ds_graph_kl_weight(ds_net_graph(n)), 1.0 / N, 1e-9);
    /* the mean's fit inside, and the spread inside against outside */
    const float in[] = {-0.8f, -0.5f, -0.2f, 0.1f, 0.4f, 0.7f}, out[] = {-3, -2.5f, 2.5f, 3};
    double sin_, sout, ein, eout;
    int rc = mc_spread(n, in, 6, 40, &sin_, &ein, msg_, cap_);
    if (!rc)
        rc = mc_spread(n, out, 4, 40, &sout, &eout, msg_, cap_);
    if (rc || !(ein < 0.15) || !(sout > 3 * sin_)) {
        ds_net_free(n);
        if (rc)
            return TEST_FAIL;
        FAIL("MC mean off sin(3x) by %.3f inside the training range (at most 0.15); MC spread "
             "%.4f outside, %.4f inside (at least 3x expected)", ein, sout, sin_);
    }
    /* the log's kl column: the KL term, a part of the loss, shrinking as sigma fits */
    FILE *f = fopen(log, "r");
    CHECK(f);
    char line[512];
    CHECK(fgets(line, sizeof line, f) && strstr(line, "seconds,kl\n"));
    double kl1 = NAN, kln = NAN, lossn = NAN;
    for (int e = 0; fgets(line, sizeof line, f); e++) {
        const char *c = strrchr(line, ',');
        double loss = strtod(strchr(line, ',') + 1, NULL), kl = strtod(c + 1, NULL);
        CHECK(kl > 0 && kl < loss);
        kl1 = e == 0 ? kl : kl1;
        kln = kl;
        lossn = loss;
    }
    fclose(f);
    CHECK(kln < kl1);
    /* the weights record the KL weight; a new net reading them uses it */
    ds_tensor_set *ws = NULL;
    CHECK(ds_safetensors_load(wpath, &ws) == DS_OK);
    const char *kw = ds_tensor_set_meta_get(ws, "deepsky.kl_weight");
    CHECK(kw && fabs(strtod(kw, NULL) - 1.0 / N) < 1e-9);
    ds_tensor_set_free(ws);
    ds_net *n2 = NULL;
    CHECK(ds_net_parse(toy_model, "toy.model", NULL, &n2) == DS_OK);
    CHECK(isnan(ds_graph_kl_weight(ds_net_graph(n2))));
    CHECK(ds_net_load_weights(n2, wpath) == DS_OK);
    CHECK_NEAR(ds_graph_kl_weight(ds_net_graph(n2)), 1.0 / N, 1e-9);
    ds_net_free(n2);
    ds_net_free(n);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    snprintf(msg_, cap_, "N=%d, 60 epochs: MC mean error %.3f inside; MC std %.3f inside, "
             "%.3f outside (x%.1f); kl %.3f -> %.3f of loss %.3f", N, ein, sin_, sout,
             sout / sin_, kl1, kln, lossn);
    return TEST_PASS;
}

/* deepsky summary lists the layers with their parameters, mean and rho both counted. */
TEST(bayes_summary_counts_mean_and_rho)
{
    ds_net *n = NULL;
    CHECK(ds_net_parse("input shape=1x8x8\n"
                       "conv2d_bayes name=c filters=4 kernel=3 padding=same activation=relu\n"
                       "conv2d_bayes name=c2 filters=2 kernel=3 bias=false\n"
                       "flatten\n"
                       "dense_bayes name=d units=3 posterior_init=1e-3 kl_weight=0.01\n"
                       "loss mse\n", "s.model", NULL, &n) == DS_OK);
    char *s = ds_net_summary(n);
    CHECK(s);
    /* c: 2 x (4x1x3x3 + 4) = 80; c2: 2 x 2x4x3x3 = 144; d: 2 x (3x72 + 3) = 438 */
    bool ok = strstr(s, "c (Conv2DBayes)") && strstr(s, " 80 ") && strstr(s, "c2 (Conv2DBayes)") &&
              strstr(s, " 144 ") && strstr(s, "d (DenseBayes)") && strstr(s, " 438 ") &&
              strstr(s, "kl_divergence_1 (KLDivergence)") && strstr(s, "Total params: 662");
    if (!ok) {
        snprintf(msg_, cap_, "summary:\n%s", s);
        free(s);
        ds_net_free(n);
        return TEST_FAIL;
    }
    free(s);
    /* posterior_init is sigma: rho = log(e^sigma - 1); kl_weight= is fixed, not automatic */
    float rho = ds_param_data(ds_model_find(ds_net_model(n), "d.weight_rho"))[5];
    CHECK_NEAR(rho, log(expm1(1e-3)), 1e-5);
    CHECK_NEAR(ds_param_data(ds_model_find(ds_net_model(n), "c.bias_rho"))[0], log(expm1(0.05)), 1e-5);
    CHECK(isnan(ds_graph_kl_weight(ds_net_graph(n))));   /* c and c2 are automatic, unset */
    CHECK(ds_graph_set_kl_weight(ds_net_graph(n), 0.5f) == 2);
    ds_net_free(n);
    return TEST_PASS;
}

/* ---- errors ---- */
static int model_error(const char *text, const char *want1, const char *want2, char *msg,
                       size_t cap)
{
    ds_net *n = NULL;
    ds_status st = ds_net_parse(text, "e.model", NULL, &n);
    ds_net_free(n);
    const char *e = ds_last_error();
    if (st == DS_OK || !strstr(e, want1) || !strstr(e, want2)) {
        snprintf(msg, cap, "status %s, message '%s', expected '%s' and '%s'", ds_status_name(st),
                 e, want1, want2);
        return 1;
    }
    return 0;
}

TEST(bayes_bad_options_and_refusals)
{
    CHECK_OK(model_error("input shape=2\ndense_bayes units=3 prior_sigma=0\n", "e.model:2",
                         "prior_sigma", msg_, cap_));
    CHECK_OK(model_error("input shape=2\ndense_bayes units=3 posterior_init=-1\n", "e.model:2",
                         "posterior_init", msg_, cap_));
    CHECK_OK(model_error("input shape=1x4x4\nconv2d_bayes filters=2 kernel=3 kl_weight=-1\n",
                         "e.model:2", "kl_weight", msg_, cap_));
    CHECK_OK(model_error("input shape=2\ndense_bayes units=3 prior=1\n", "unknown option 'prior'",
                         "prior_sigma", msg_, cap_));
    CHECK_OK(model_error("input shape=2\nconv2d_bayes filters=2 kernel=3\n", "e.model:2",
                         "expected [batch, channels", msg_, cap_));
    /* the C API names the layer */
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(!ds_dense_bayes(g, x, &(ds_dense_opts){.name = "bd", .units = 2},
                          &(ds_bayes_opts){.prior_sigma = -1}));
    CHECK(ds_graph_status(g) == DS_ERR_ARG && strstr(ds_last_error(), "dense_bayes 'bd'") &&
          strstr(ds_last_error(), "prior_sigma -1"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 1, (int64_t[]){3}), *b = ds_input(g, "b", 1, (int64_t[]){4});
    CHECK(!ds_bayes_sample(g, a, b) && ds_graph_status(g) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "[3]") && strstr(ds_last_error(), "[4]"));
    ds_graph_free(g);
    g = ds_graph_create(m, 1);
    a = ds_input(g, "a", 1, (int64_t[]){3});
    ds_node *three[3] = {a, a, a};
    CHECK(!ds_bayes_kl(g, 3, three, 1, 0) && ds_graph_status(g) == DS_ERR_ARG);
    ds_graph_free(g);
    ds_model_free(m);
    /* a trainer needs the KL weight set (fit sets it); Newton's method has no rules here */
    ds_net *n = NULL;
    CHECK(ds_net_parse("input shape=2\ndense_bayes name=bb units=1\nloss mse\n", "t.model", NULL,
                       &n) == DS_OK);
    ds_trainer *t = NULL;
    CHECK(ds_trainer_create(n, NULL, &t) == DS_ERR_STATE);
    CHECK(strstr(ds_last_error(), "'bb'") && strstr(ds_last_error(), "ds_graph_set_kl_weight"));
    CHECK(ds_graph_set_kl_weight(ds_net_graph(n), 0.01f) == 1);
    CHECK(ds_trainer_create(n, NULL, &t) == DS_OK);
    ds_trainer_free(t);
    CHECK(ds_graph_plan(ds_net_graph(n)) == DS_OK);
    double lam = 1e-3, l;
    CHECK(ds_newton_step(ds_net_graph(n), ds_net_loss(n), &lam, &l) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "bayes_") && strstr(ds_last_error(), "second-order") &&
          strstr(ds_last_error(), "bb"));
    ds_net_free(n);
    CHECK(ds_graph_set_kl_weight(NULL, 1) == -1);
    return TEST_PASS;
}

/* ---- the command line ---- */

/* deepsky train shows the KL term beside the loss and logs it; eval reads the KL weight the
 * weights file recorded. */
TEST(bayes_cli_train_shows_and_logs_the_kl_term)
{
    char dir[] = "/tmp/deepsky_bayes_cli_XXXXXX", p[128];
    CHECK(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/b.model", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs("input shape=2\ndense_bayes name=h units=8 activation=relu\ndense_bayes name=out "
          "units=1\nloss mse\n", f);
    fclose(f);
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){64, 2}), *y = ds_tensor_create(2, (int64_t[]){64, 1});
    ds_rng r;
    ds_rng_seed(&r, 1);
    fill_uniform(ds_tensor_data(x), 128, -1, 1, &r);
    for (int i = 0; i < 64; i++)
        ds_tensor_data(y)[i] = ds_tensor_data(x)[2 * i] - ds_tensor_data(x)[2 * i + 1];
    snprintf(p, sizeof p, "%s/x.npy", dir);
    CHECK(ds_array_save(x, p, NULL) == DS_OK);
    snprintf(p, sizeof p, "%s/y.npy", dir);
    CHECK(ds_array_save(y, p, NULL) == DS_OK);
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK_RUN(0, "train %s/b.model --data %s/x.npy --labels %s/y.npy -o %s/w.safetensors "
              "--epochs 3 --curve none", dir, dir, dir, dir);
    CHECK(strstr(cli_out, "epoch 3/3  loss ") && strstr(cli_out, "(kl "));
    snprintf(p, sizeof p, "%s/w.log.csv", dir);
    f = fopen(p, "r");
    char line[256] = "";
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strcmp(line, "epoch,loss,rmse,val_loss,val_rmse,lr,seconds,kl\n"));
    CHECK_RUN(0, "eval %s/b.model --weights %s/w.safetensors --data %s/x.npy --labels %s/y.npy",
              dir, dir, dir, dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return TEST_PASS;
}
