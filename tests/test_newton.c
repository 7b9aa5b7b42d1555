/* test_newton.c - damped Newton: the exact Hessian (R-operator passes) against central
 * differences of the graph's gradient for every supported op and two small networks, the
 * closed form for linear regression, error paths, and the iteration count against plain
 * gradient descent on a small regression. */
#include "test.h"

#include "../src/optim/rop.h"

/* ---- helpers ---- */
static ds_param *add_param(ds_model *m, const char *name, int ndim, const int64_t *shape,
                           float lo, float hi)
{
    return ds_model_add_param(m, name, ndim, shape, 1, (ds_init){DS_INIT_UNIFORM, lo, hi});
}

/* Gradient of loss w.r.t. the parameters ps (flattened, in order) from the graph's own
 * float backward, into out (double). */
static int graph_grad(ds_graph *g, ds_node *loss, ds_param **ps, int np, double *out)
{
    ds_model_zero_grad(ds_graph_model(g));
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward(g, loss) != DS_OK)
        return 1;
    int64_t o = 0;
    for (int k = 0; k < np; k++) {
        const float *gp = ds_param_grad(ps[k]);
        for (int64_t i = 0; i < ds_param_numel(ps[k]); i++)
            out[o++] = gp[i];
    }
    return 0;
}

static double worst_asym;   /* largest asymmetry seen, for the messages */

/* Compares the exact Hessian with central differences of the graph's gradient (step h on
 * each parameter in turn): err = |num - exact| / max(|exact|, 1e-3 max|H|) <= tol. Also
 * checks the double gradient against the graph's. *err_out gets the largest error. */
static int hessian_fd_check(ds_graph *g, ds_node *loss, double h, double tol,
                            const char *what, double *err_out, char *msg, size_t cap)
{
    int64_t n;
    double *grad, *H;
    ds_param **ps;
    int np;
    double asym = 0;
    if (dsi_newton_hessian(g, loss, &n, &grad, &H, &ps, &np, &asym) != DS_OK) {
        snprintf(msg, cap, "%s: hessian: %s", what, ds_last_error());
        return 1;
    }
    double *gp = malloc((size_t)n * sizeof *gp), *gm = malloc((size_t)n * sizeof *gm);
    double *fd = malloc(2 * (size_t)n * sizeof *fd);
    int rc = 0;
    worst_asym = fmax(worst_asym, asym);
    if (!(asym <= 1e-12)) {
        snprintf(msg, cap, "%s: forward and reverse tangents disagree: asymmetry %.3g", what,
                 asym);
        rc = 1;
    }
    double hmax = 0, worst = 0;
    for (int64_t i = 0; i < n * n; i++)
        hmax = fmax(hmax, fabs(H[i]));
    if (!(hmax > 1e-4)) {
        snprintf(msg, cap, "%s: the Hessian vanishes (max %.3g): the check would prove nothing",
                 what, hmax);
        rc = 1;
    }
    if (graph_grad(g, loss, ps, np, gp)) {
        snprintf(msg, cap, "%s: graph gradient: %s", what, ds_last_error());
        rc = 1;
    }
    /* float32 against double: rtol 2e-5, and atol 2e-7 of the largest |gradient| for the
     * values that cancel down to rounding (the worst case uses a quarter of that) */
    double gmax = 0;
    for (int64_t i = 0; i < n; i++)
        gmax = fmax(gmax, fabs(grad[i]));
    for (int64_t i = 0; i < n && !rc; i++) {
        double gtol = 2e-7 * gmax + 2e-5 * fabs(grad[i]);
        if (!(fabs(gp[i] - grad[i]) <= gtol)) {
            snprintf(msg, cap, "%s: gradient[%lld]: double %.8g, graph %.8g (tol %.2g)", what,
                     (long long)i, grad[i], gp[i], gtol);
            rc = 1;
        }
    }
    int64_t j = 0;
    for (int k = 0; k < np && !rc; k++) {
        float *p = ds_param_data(ps[k]);
        for (int64_t e = 0; e < ds_param_numel(ps[k]) && !rc; e++, j++) {
            /* Richardson: (4 D(h/2) - D(h)) / 3 cancels the h^2 term of the differences */
            float keep = p[e];
            for (int pass = 0; pass < 2 && !rc; pass++) {
                float up = keep + (float)(pass ? h / 2 : h), dn = keep - (float)(pass ? h / 2 : h);
                p[e] = up;
                rc |= graph_grad(g, loss, ps, np, gp);
                p[e] = dn;
                rc |= graph_grad(g, loss, ps, np, gm);
                for (int64_t i = 0; i < n; i++)
                    fd[pass * n + i] = (gp[i] - gm[i]) / ((double)up - dn);
            }
            p[e] = keep;
            if (rc) {
                snprintf(msg, cap, "%s: graph gradient: %s", what, ds_last_error());
                break;
            }
            for (int64_t i = 0; i < n; i++) {
                double num = (4 * fd[n + i] - fd[i]) / 3, ex = H[i * n + j];
                double err = fabs(num - ex) / fmax(fabs(ex), 1e-3 * hmax + 1e-12);
                worst = fmax(worst, err);
                if (!(err <= tol)) {
                    snprintf(msg, cap, "%s: H[%lld][%lld] ('%s'): exact %.8g, numeric %.8g "
                             "(err %.2g > %.2g)", what, (long long)i, (long long)j,
                             ds_param_name(ps[k]), ex, num, err, tol);
                    rc = 1;
                    break;
                }
            }
        }
    }
    /* symmetric */
    for (int64_t a = 0; a < n && !rc; a++)
        for (int64_t b = 0; b < a; b++)
            if (H[a * n + b] != H[b * n + a]) {
                snprintf(msg, cap, "%s: H not symmetric at %lld,%lld", what, (long long)a,
                         (long long)b);
                rc = 1;
                break;
            }
    if (err_out)
        *err_out = fmax(*err_out, worst);
    free(gp);
    free(gm);
    free(fd);
    free(grad);
    free(H);
    free(ps);
    return rc;
}

static void fill_input(ds_graph *g, ds_node *x, float lo, float hi, float gap, ds_rng *r)
{
    ds_graph_plan(g);
    if (gap > 0)
        fill_away(ds_node_data(x), ds_node_numel(x), lo, hi, gap, r);
    else
        fill_uniform(ds_node_data(x), ds_node_numel(x), lo, hi, r);
}

/* ---- linear regression: H = 2/N [X 1]^T [X 1], one Newton step reaches the minimum ---- */
static int linreg_case(int N, int D, double *herr, double *l0, double *l1, char *msg_,
                       size_t cap_)
{
    int rc = TEST_FAIL, n1 = D + 1;
    ds_model *m = ds_model_create(11);
    ds_graph *g = ds_graph_create(m, 1);
    double *A = calloc((size_t)n1 * n1, sizeof *A), *rhs = calloc((size_t)n1, sizeof *rhs);
    double *sol = calloc((size_t)n1, sizeof *sol), *grad = NULL, *H = NULL;
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){N, D});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){N, 1});
    ds_param *w = add_param(m, "fc.weight", 2, (int64_t[]){1, D}, -1, 1);
    ds_param *b = add_param(m, "fc.bias", 1, (int64_t[]){1}, -1, 1);
    ds_node *loss = ds_loss_mse(g, ds_linear(g, x, ds_param_node(g, w), ds_param_node(g, b)),
                                t, DS_REDUCE_MEAN);
    int64_t n;
    double lam = 0, l2;
    ds_rng r;
    ds_rng_seed(&r, 5);
    if (!loss) {
        snprintf(msg_, cap_, "build: %s", ds_last_error());
        goto done;
    }
    fill_input(g, x, -2, 2, 0, &r);
    float *xd = ds_node_data(x), *td = ds_node_data(t);
    for (int i = 0; i < N; i++) {
        double s = 0.7;
        for (int a = 0; a < D; a++)
            s += xd[i * D + a] * (0.5 - (double)(a % 5) / 4);
        td[i] = (float)(s + 0.1 * ds_rng_normal(&r));
    }
    if (dsi_newton_hessian(g, loss, &n, &grad, &H, NULL, NULL, NULL) != DS_OK || n != n1) {
        snprintf(msg_, cap_, "hessian: %s", ds_last_error());
        goto done;
    }
    /* closed form, then the normal equations A beta = rhs by Gaussian elimination */
    for (int i = 0; i < N; i++)
        for (int a = 0; a < n1; a++) {
            double ra = a < D ? xd[i * D + a] : 1.0;
            rhs[a] += 2.0 / N * ra * td[i];
            for (int c = 0; c < n1; c++)
                A[a * n1 + c] += 2.0 / N * ra * (c < D ? xd[i * D + c] : 1.0);
        }
    *herr = 0;
    for (int a = 0; a < n1 * n1; a++)
        *herr = fmax(*herr, fabs(H[a] - A[a]) / fmax(fabs(A[a]), 1e-3));
    if (*herr > 1e-12) {
        snprintf(msg_, cap_, "D=%d: H differs from 2/N X^T X by %.3g (relative)", D, *herr);
        goto done;
    }
    for (int p = 0; p < n1; p++)
        for (int q = p + 1; q < n1; q++) {
            double f = A[q * n1 + p] / A[p * n1 + p];
            for (int c = p; c < n1; c++)
                A[q * n1 + c] -= f * A[p * n1 + c];
            rhs[q] -= f * rhs[p];
        }
    for (int p = n1 - 1; p >= 0; p--) {
        double s = rhs[p];
        for (int c = p + 1; c < n1; c++)
            s -= A[p * n1 + c] * sol[c];
        sol[p] = s / A[p * n1 + p];
    }
    if (ds_newton_step(g, loss, &lam, l0) != DS_OK || lam > 1e-12) {
        snprintf(msg_, cap_, "D=%d: step: %s (lambda %g)", D, ds_last_error(), lam);
        goto done;
    }
    for (int a = 0; a < n1; a++) {
        double got = a < D ? ds_param_data(w)[a] : ds_param_data(b)[0];
        if (!(fabs(got - sol[a]) <= 1e-5 + 1e-5 * fabs(sol[a]))) {
            snprintf(msg_, cap_, "D=%d: parameter %d after one step %.8g, least squares %.8g", D,
                     a, got, sol[a]);
            goto done;
        }
    }
    if (ds_newton_step(g, loss, &lam, l1) != DS_OK || !(*l1 < *l0) ||
        ds_newton_step(g, loss, &lam, &l2) != DS_OK || !(fabs(l2 - *l1) <= 1e-6 * *l1)) {
        snprintf(msg_, cap_, "D=%d: losses %g, %g, %g: not at the minimum after one step", D,
                 *l0, *l1, l2);
        goto done;
    }
    rc = TEST_PASS;
done:
    free(A);
    free(rhs);
    free(sol);
    free(grad);
    free(H);
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(newton_linear_regression_exact)
{
    double e3, e100, a0, a1, b0, b1;
    CHECK_OK(linreg_case(23, 3, &e3, &a0, &a1, msg_, cap_));
    /* 101 parameters: the blocked Cholesky path (blocks of 64) */
    CHECK_OK(linreg_case(300, 100, &e100, &b0, &b1, msg_, cap_));
    snprintf(msg_, cap_, "one step to the least-squares solution: loss %.3g -> %.4g (4 params), "
             "%.3g -> %.4g (101); max rel err of H %.0e", a0, a1, b0, b1, fmax(e3, e100));
    return TEST_PASS;
}

/* ---- small networks ---- */
TEST(newton_hessian_tanh_mse_network)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){5, 2});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){5, 1});
    ds_param *w1 = add_param(m, "h.weight", 2, (int64_t[]){3, 2}, -1, 1);
    ds_param *b1 = add_param(m, "h.bias", 1, (int64_t[]){3}, -0.5f, 0.5f);
    ds_param *w2 = add_param(m, "o.weight", 2, (int64_t[]){1, 3}, -1, 1);
    ds_param *b2 = add_param(m, "o.bias", 1, (int64_t[]){1}, -0.5f, 0.5f);
    ds_node *h = ds_tanh(g, ds_linear(g, x, ds_param_node(g, w1), ds_param_node(g, b1)));
    ds_node *y = ds_linear(g, h, ds_param_node(g, w2), ds_param_node(g, b2));
    ds_node *loss = ds_loss_mse(g, y, t, DS_REDUCE_MEAN);
    CHECK(loss);
    ds_rng r;
    ds_rng_seed(&r, 8);
    fill_input(g, x, -1.5f, 1.5f, 0, &r);
    fill_input(g, t, -1, 1, 0, &r);
    double err = 0;
    CHECK_OK(hessian_fd_check(g, loss, 5e-2, 1e-2, "2-3-1 tanh mse", &err, msg_, cap_));
    snprintf(msg_, cap_, "13 parameters, max rel err %.1e", err);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(newton_hessian_sigmoid_cross_entropy_network)
{
    double err = 0;
    for (int soft = 0; soft < 2; soft++) {
        ds_model *m = ds_model_create(4);
        ds_graph *g = ds_graph_create(m, 1);
        ds_node *x = ds_input(g, "x", 2, (int64_t[]){6, 2});
        ds_node *t = soft ? ds_input(g, "t", 2, (int64_t[]){6, 2})
                          : ds_input(g, "t", 1, (int64_t[]){6});
        ds_param *w1 = add_param(m, "h.weight", 2, (int64_t[]){2, 2}, -2, 2);
        ds_param *b1 = add_param(m, "h.bias", 1, (int64_t[]){2}, -0.5f, 0.5f);
        ds_param *w2 = add_param(m, "o.weight", 2, (int64_t[]){2, 2}, -2, 2);
        ds_param *b2 = add_param(m, "o.bias", 1, (int64_t[]){2}, -0.5f, 0.5f);
        ds_node *h = ds_sigmoid(g, ds_linear(g, x, ds_param_node(g, w1), ds_param_node(g, b1)));
        ds_node *y = ds_linear(g, h, ds_param_node(g, w2), ds_param_node(g, b2));
        ds_node *loss = soft ? ds_loss_cce_logits(g, y, t, DS_REDUCE_MEAN)
                             : ds_loss_cce_logits_int(g, y, t, DS_REDUCE_MEAN);
        CHECK(loss);
        ds_rng r;
        ds_rng_seed(&r, 9);
        fill_input(g, x, -2, 2, 0, &r);
        float *td = ds_node_data(t);
        for (int i = 0; i < 6; i++) {
            if (soft) {
                td[2 * i] = (float)ds_rng_uniform(&r);
                td[2 * i + 1] = 1 - td[2 * i];
            } else {
                td[i] = (float)(i % 2);
            }
        }
        int rc = hessian_fd_check(g, loss, 5e-2, 1e-2, soft ? "2-2-2 sigmoid cce soft"
                                  : "2-2-2 sigmoid cce int", &err, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return TEST_FAIL;
    }
    snprintf(msg_, cap_, "12 parameters, int and soft targets, max rel err %.1e", err);
    return TEST_PASS;
}

/* ---- against PyTorch: torch.autograd.functional.hessian in float64 (gen_newton.py) ---- */
static ds_node *torch_net(ds_graph *g, const char *c, ds_node *x, ds_node *t, ds_node *const *p)
{
    ds_node *h = ds_linear(g, x, p[0], p[1]);
    if (!strcmp(c, "tanh_mse"))
        return ds_loss_mse(g, ds_linear(g, ds_tanh(g, h), p[2], p[3]), t, DS_REDUCE_MEAN);
    if (!strcmp(c, "sigmoid_cce"))
        return ds_loss_cce_logits_int(g, ds_linear(g, ds_sigmoid(g, h), p[2], p[3]), t,
                                      DS_REDUCE_MEAN);
    if (!strcmp(c, "softplus_bce"))
        return ds_loss_bce_logits(g, ds_linear(g, ds_softplus(g, h), p[2], p[3]), t,
                                  DS_REDUCE_MEAN);
    ds_node *y = ds_linear(g, ds_elu(g, h, 1.0f), p[2], p[3]);
    return ds_loss_gaussian_nll(g, ds_slice(g, y, 1, 0, 1), ds_slice(g, y, 1, 1, 2), t,
                                DS_REDUCE_MEAN);
}

TEST(newton_hessian_matches_pytorch)
{
    static const char *const names[] = {"tanh_mse", "sigmoid_cce", "softplus_bce", "elu_gnll"};
    static const char *const pn[] = {"h.weight", "h.bias", "o.weight", "o.bias"};
    ds_tensor_set *fx = fixture_load("newton", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    double worst = 0;
    int rc = 0;
    for (int c = 0; c < 4 && !rc; c++) {
        char key[64];
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        ds_tensor *tx, *tt;
        snprintf(key, sizeof key, "%s.x", names[c]);
        tx = ds_tensor_set_get(fx, key);
        snprintf(key, sizeof key, "%s.t", names[c]);
        tt = ds_tensor_set_get(fx, key);
        ds_node *p[4] = {NULL};
        for (int k = 0; k < 4 && tx && tt; k++) {
            snprintf(key, sizeof key, "%s.%s", names[c], pn[k]);
            ds_tensor *v = ds_tensor_set_get(fx, key);
            ds_param *q = v ? ds_model_add_param(m, pn[k], ds_tensor_ndim(v), ds_tensor_shape(v),
                                                 1, (ds_init){DS_INIT_ZEROS, 0, 0}) : NULL;
            if (q)
                memcpy(ds_param_data(q), ds_tensor_data(v),
                       (size_t)ds_tensor_numel(v) * sizeof(float));
            p[k] = ds_param_node(g, q);
        }
        ds_node *x = tx ? ds_input(g, "x", ds_tensor_ndim(tx), ds_tensor_shape(tx)) : NULL;
        ds_node *t = tt ? ds_input(g, "t", ds_tensor_ndim(tt), ds_tensor_shape(tt)) : NULL;
        ds_node *loss = x && t ? torch_net(g, names[c], x, t, p) : NULL;
        int64_t n = 0;
        double *grad = NULL, *H = NULL;
        if (!loss || ds_graph_set_input(g, x, ds_tensor_data(tx), ds_tensor_numel(tx)) ||
            ds_graph_set_input(g, t, ds_tensor_data(tt), ds_tensor_numel(tt)) ||
            dsi_newton_hessian(g, loss, &n, &grad, &H, NULL, NULL, NULL)) {
            snprintf(msg_, cap_, "%s: %s", names[c], ds_last_error());
            rc = 1;
        } else {
            float *hf = malloc((size_t)(n * n) * sizeof *hf), *gf = malloc((size_t)n * sizeof *gf);
            double hmax = 0;
            for (int64_t i = 0; i < n * n; i++) {
                hf[i] = (float)H[i];
                hmax = fmax(hmax, fabs(H[i]));
            }
            for (int64_t i = 0; i < n; i++)
                gf[i] = (float)grad[i];
            const float *want = fixture_data(fx, (snprintf(key, sizeof key, "%s.hessian",
                                                           names[c]), key), NULL, msg_, cap_);
            for (int64_t i = 0; want && i < n * n; i++)
                worst = fmax(worst, fabs(H[i] - want[i]) / fmax(fabs(want[i]), 1e-3 * hmax));
            rc = !want || fixture_compare(fx, key, hf, n * n, 1e-4, 1e-6 * hmax, msg_, cap_);
            snprintf(key, sizeof key, "%s.grad", names[c]);
            rc = rc || fixture_compare(fx, key, gf, n, 1e-4, 1e-7, msg_, cap_);
            free(hf);
            free(gf);
        }
        free(grad);
        free(H);
        ds_graph_free(g);
        ds_model_free(m);
    }
    ds_tensor_set_free(fx);
    if (rc)
        return TEST_FAIL;
    snprintf(msg_, cap_, "4 networks (tanh/MSE, sigmoid/CE, softplus/BCE, ELU/Gaussian NLL), "
             "max rel err %.1e", worst);
    return TEST_PASS;
}

/* ---- every op with second-order rules: a small graph through it, checked against
 * differences of the graph's gradient ---- */
typedef struct {
    ds_graph *g;
    ds_model *m;
    ds_node *x;      /* input [4, 3] */
    ds_node *z;      /* tanh-free pre-activation linear(x) [4, 3] (weights "a") */
    ds_node *z2;     /* a second one [4, 3] (weights "b") */
    ds_rng r;
    /* inputs to fill once the graph is complete (planning again moves their memory) */
    struct { ds_node *n; float lo, hi; } fills[8];
    int n_fills;
} rig;

static void want_fill(rig *k, ds_node *n, float lo, float hi)
{
    if (n && k->n_fills < 8) {
        k->fills[k->n_fills].n = n;
        k->fills[k->n_fills].lo = lo;
        k->fills[k->n_fills++].hi = hi;
    }
}

static ds_node *lin(rig *k, const char *name, ds_node *in, int64_t out)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    int64_t fin = ds_node_shape(in)[ds_node_ndim(in) - 1];
    ds_param *w = add_param(k->m, wn, 2, (int64_t[]){out, fin}, -0.8f, 0.8f);
    ds_param *b = add_param(k->m, bn, 1, (int64_t[]){out}, -0.5f, 0.5f);
    return ds_linear(k->g, in, ds_param_node(k->g, w), ds_param_node(k->g, b));
}

/* sum(y * r) for a fixed random input r shaped like y: a scalar with y's curvature. */
static ds_node *probe(rig *k, ds_node *y)
{
    if (!y)
        return NULL;
    static int count;
    char name[32];
    snprintf(name, sizeof name, "r%d", count++);
    ds_node *r = ds_input(k->g, name, ds_node_ndim(y), ds_node_shape(y));
    want_fill(k, r, -1, 1);
    return ds_sum(k->g, ds_mul(k->g, y, r), 0, NULL, 0);
}

typedef struct {
    const char *name;
    ds_node *(*build)(rig *k);
} hcase;

#define U(nm, expr)                                   \
    static ds_node *b_##nm(rig *k)                    \
    {                                                 \
        ds_graph *g = k->g;                           \
        ds_node *z = k->z, *z2 = k->z2;               \
        (void)z2;                                     \
        return expr;                                  \
    }
U(add_scalar, probe(k, ds_square(g, ds_add_scalar(g, z, 0.3f))))
U(mul_scalar, probe(k, ds_tanh(g, ds_mul_scalar(g, z, -1.7f))))
U(pow_scalar, probe(k, ds_pow_scalar(g, ds_add_scalar(g, ds_square(g, z), 0.5f), 1.5f)))
U(neg, probe(k, ds_exp(g, ds_neg(g, z))))
U(exp, probe(k, ds_exp(g, z)))
U(log, probe(k, ds_log(g, ds_add_scalar(g, ds_square(g, z), 0.5f))))
U(sqrt, probe(k, ds_sqrt(g, ds_add_scalar(g, ds_square(g, z), 0.5f))))
U(square, probe(k, ds_square(g, z)))
U(abs, probe(k, ds_square(g, ds_abs(g, z))))
U(sigmoid, probe(k, ds_sigmoid(g, z)))
U(tanh, probe(k, ds_tanh(g, z)))
U(relu, probe(k, ds_square(g, ds_relu(g, z))))
U(leaky_relu, probe(k, ds_square(g, ds_leaky_relu(g, z, 0.1f))))
U(softplus, probe(k, ds_softplus(g, ds_mul_scalar(g, z, 3.0f))))
U(elu, probe(k, ds_elu(g, ds_mul_scalar(g, z, 2.0f), 0.7f)))
U(gelu, probe(k, ds_gelu(g, ds_mul_scalar(g, z, 2.0f), 0)))
U(gelu_tanh, probe(k, ds_gelu(g, ds_mul_scalar(g, z, 2.0f), 1)))
U(silu, probe(k, ds_silu(g, ds_mul_scalar(g, z, 2.0f))))
U(add, probe(k, ds_square(g, ds_add(g, z, z2))))
U(sub, probe(k, ds_tanh(g, ds_sub(g, z, z2))))
U(mul, probe(k, ds_mul(g, z, z2)))
U(div, probe(k, ds_div(g, z, ds_add_scalar(g, ds_square(g, z2), 1.0f))))
U(mul_broadcast, probe(k, ds_mul(g, ds_tanh(g, z), ds_param_node(g, add_param(k->m, "s.weight", 2,
                                                        (int64_t[]){1, 3}, 0.5f, 1.5f)))))
U(add_broadcast, probe(k, ds_tanh(g, ds_add(g, z, ds_param_node(g, add_param(k->m, "c.bias", 1,
                                                       (int64_t[]){3}, -1, 1))))))
U(sum_axis, probe(k, ds_square(g, ds_sum(g, ds_tanh(g, z), 1, (int[]){1}, 0))))
U(mean_keepdim, probe(k, ds_square(g, ds_mean(g, ds_tanh(g, z), 1, (int[]){0}, 1))))
U(mean_all, ds_square(g, ds_mean(g, ds_tanh(g, z), 0, NULL, 0)))
U(reshape, probe(k, ds_tanh(g, ds_reshape(g, ds_mul(g, z, z2), 2, (int64_t[]){-1, 6}))))
U(matmul, probe(k, ds_tanh(g, ds_matmul(g, ds_tanh(g, z), ds_param_node(g, add_param(k->m,
                                        "mm.weight", 2, (int64_t[]){3, 2}, -1, 1))))))
U(matmul_batched, probe(k, ds_matmul(g, ds_reshape(g, ds_tanh(g, z), 3, (int64_t[]){2, 2, 3}),
                                      ds_reshape(g, ds_tanh(g, z2), 3, (int64_t[]){2, 3, 2}))))
U(softmax, probe(k, ds_softmax(g, ds_mul_scalar(g, z, 2.0f), 1)))
U(softmax_axis0, probe(k, ds_square(g, ds_softmax(g, ds_mul(g, z, z2), 0))))
U(log_softmax, probe(k, ds_log_softmax(g, ds_mul(g, z, z2), -1)))
U(concat, probe(k, ds_tanh(g, ds_concat(g, 2, (ds_node *[]){ds_mul(g, z, z2), ds_square(g, z)},
                                         1))))
U(slice, probe(k, ds_square(g, ds_slice(g, ds_mul(g, z, z2), 1, 1, -1))))
U(linear_deep, probe(k, ds_tanh(g, lin(k, "deep", ds_tanh(g, z), 2))))

static ds_node *target(rig *k, const char *name, int ndim, const int64_t *shape, float lo,
                       float hi)
{
    ds_node *t = ds_input(k->g, name, ndim, shape);
    want_fill(k, t, lo, hi);
    return t;
}

static ds_node *b_loss_mse(rig *k)
{
    return ds_loss_mse(k->g, ds_tanh(k->g, k->z), target(k, "t", 2, (int64_t[]){4, 3}, -1, 1),
                       DS_REDUCE_MEAN);
}
static ds_node *b_loss_mse_sum(rig *k)
{
    return ds_loss_mse(k->g, k->z, ds_tanh(k->g, k->z2), DS_REDUCE_SUM);   /* target depends too */
}
static ds_node *b_loss_mae(rig *k)
{
    return ds_loss_mae(k->g, ds_tanh(k->g, k->z), target(k, "t", 2, (int64_t[]){4, 3}, -3, 3),
                       DS_REDUCE_MEAN);
}
static ds_node *b_loss_bce_logits(rig *k)
{
    return ds_loss_bce_logits(k->g, k->z, ds_sigmoid(k->g, k->z2), DS_REDUCE_MEAN);
}
static ds_node *b_loss_cce_logits(rig *k)
{
    ds_node *t = ds_mul_scalar(k->g, ds_sigmoid(k->g, k->z2), 0.5f);   /* soft, not normalized */
    return ds_loss_cce_logits(k->g, ds_mul_scalar(k->g, k->z, 2.0f), t, DS_REDUCE_SUM);
}
static ds_node *b_loss_cce_spatial(rig *k)
{
    ds_node *z = ds_reshape(k->g, k->z, 3, (int64_t[]){2, 2, 3});   /* [N=2, K=2, 3 positions] */
    ds_node *t = target(k, "lab", 2, (int64_t[]){2, 3}, -1, -1);   /* labels: see below */
    return ds_loss_cce_logits_int(k->g, ds_mul_scalar(k->g, z, 2.0f), t, DS_REDUCE_MEAN);
}
static ds_node *b_loss_gaussian_nll(rig *k)
{
    return ds_loss_gaussian_nll(k->g, k->z, ds_tanh(k->g, k->z2),
                                target(k, "t", 2, (int64_t[]){4, 3}, -1, 1), DS_REDUCE_MEAN);
}

static ds_node *b_loss_msb(rig *k)   /* z is [4, 3]: two groups of two rows */
{
    ds_msb_opts o = {.group = 2, .mse = 0.3, .unbiased = 1};
    return ds_loss_msb(k->g, ds_tanh(k->g, k->z), ds_mul(k->g, k->z2, k->z2), &o, DS_REDUCE_MEAN);
}

static const hcase cases[] = {
    {"add_scalar", b_add_scalar}, {"mul_scalar", b_mul_scalar}, {"pow_scalar", b_pow_scalar},
    {"neg", b_neg}, {"exp", b_exp}, {"log", b_log}, {"sqrt", b_sqrt}, {"square", b_square},
    {"abs", b_abs}, {"sigmoid", b_sigmoid}, {"tanh", b_tanh}, {"relu", b_relu},
    {"leaky_relu", b_leaky_relu}, {"softplus", b_softplus}, {"elu", b_elu}, {"gelu", b_gelu},
    {"gelu_tanh", b_gelu_tanh}, {"silu", b_silu}, {"add", b_add},
    {"sub", b_sub}, {"mul", b_mul}, {"div", b_div}, {"mul_broadcast", b_mul_broadcast},
    {"add_broadcast", b_add_broadcast}, {"sum_axis", b_sum_axis},
    {"mean_keepdim", b_mean_keepdim}, {"mean_all", b_mean_all}, {"reshape", b_reshape},
    {"matmul", b_matmul}, {"matmul_batched", b_matmul_batched},
    {"softmax", b_softmax}, {"softmax_axis0", b_softmax_axis0}, {"log_softmax", b_log_softmax},
    {"concat", b_concat}, {"slice", b_slice}, {"linear_deep", b_linear_deep},
    {"loss_mse", b_loss_mse}, {"loss_mse_sum", b_loss_mse_sum},
    {"loss_mae", b_loss_mae}, {"loss_msb", b_loss_msb}, {"loss_bce_logits", b_loss_bce_logits},
    {"loss_cce_logits", b_loss_cce_logits}, {"loss_cce_int_spatial", b_loss_cce_spatial},
    {"loss_gaussian_nll", b_loss_gaussian_nll},
};

TEST(newton_hessian_every_op)
{
    double err = 0;
    bool covered[DS_OP_COUNT] = {false};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rig k;
        k.m = ds_model_create(100 + c);
        k.g = ds_graph_create(k.m, 1);
        ds_rng_seed(&k.r, 200 + c);
        k.x = ds_input(k.g, "x", 2, (int64_t[]){4, 3});
        k.z = lin(&k, "a", k.x, 3);
        k.z2 = lin(&k, "b", k.x, 3);
        k.n_fills = 0;
        ds_node *loss = cases[c].build(&k);
        if (!loss || ds_graph_plan(k.g) != DS_OK) {
            ds_graph_free(k.g);
            ds_model_free(k.m);
            FAIL("%s: build: %s", cases[c].name, ds_last_error());
        }
        fill_away(ds_node_data(k.x), ds_node_numel(k.x), -1, 1, 0.05f, &k.r);
        for (int f = 0; f < k.n_fills; f++) {
            float *d = ds_node_data(k.fills[f].n);
            int64_t nf = ds_node_numel(k.fills[f].n);
            if (k.fills[f].lo == -1 && k.fills[f].hi == -1)   /* class labels 0, 1, 0, ... */
                for (int64_t i = 0; i < nf; i++)
                    d[i] = (float)(i % 2);
            else
                fill_uniform(d, nf, k.fills[f].lo, k.fills[f].hi, &k.r);
        }
        for (int i = 0; i < ds_graph_node_count(k.g); i++)
            for (int o = 0; o < DS_OP_COUNT; o++)
                if (!strcmp(ds_node_op_name(ds_graph_node(k.g, i)), dsi_op_names[o]))
                    covered[o] = true;
        /* ops with kinks (relu, abs, mae; ELU with alpha != 1) take a smaller step, not to
         * cross one */
        static const char *const kinked[] = {"abs", "relu", "leaky_relu", "elu", "loss_mae"};
        double h = 5e-2;
        for (size_t q = 0; q < sizeof kinked / sizeof kinked[0]; q++)
            if (!strcmp(cases[c].name, kinked[q]))
                h = 1e-2;
        int rc = hessian_fd_check(k.g, loss, h, 1e-2, cases[c].name, &err, msg_, cap_);
        ds_graph_free(k.g);
        ds_model_free(k.m);
        if (rc)
            return TEST_FAIL;
    }
    for (int o = 0; o < DS_OP_COUNT; o++)
        if (dsi_rop_supported((ds_op)o) && !covered[o])
            FAIL("op '%s' has second-order rules but no Hessian check", dsi_op_names[o]);
    snprintf(msg_, cap_, "%d cases, max rel err %.1e vs differences, asymmetry %.0e",
             (int)(sizeof cases / sizeof cases[0]), err, worst_asym);
    return TEST_PASS;
}

/* ---- errors ---- */
TEST(newton_refuses_ops_without_rules_and_bad_arguments)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){4, 3});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){4, 2});
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.name = "fc1", .units = 5});
    h = ds_dropout(g, h, 0.5f);
    ds_node *y = ds_dense(g, h, &(ds_dense_opts){.name = "fc2", .units = 2});
    ds_node *loss = ds_loss_mse(g, y, t, DS_REDUCE_MEAN);
    CHECK(loss);
    CHECK(ds_graph_plan(g) == DS_OK);
    double lam = 1e-3, l;
    CHECK(ds_newton_step(g, loss, &lam, &l) == DS_ERR_ARG);
    const char *e = ds_last_error();
    if (!strstr(e, "dropout") || !strstr(e, "second-order"))
        FAIL("message does not name the op: %s", e);
    /* non-scalar loss, negative lambda, a node of another graph */
    CHECK(ds_newton_step(g, y, &lam, &l) == DS_ERR_SHAPE);
    lam = -1;
    CHECK(ds_newton_step(g, loss, &lam, &l) == DS_ERR_ARG);
    lam = NAN;
    CHECK(ds_newton_step(g, loss, &lam, &l) == DS_ERR_ARG);
    ds_graph *g2 = ds_graph_create(m, 1);
    lam = 1e-3;
    CHECK(ds_newton_step(g2, loss, &lam, &l) == DS_ERR_ARG);
    ds_graph_free(g2);
    ds_graph_free(g);
    /* an unsupported op upstream of the targets only (no parameter behind it) is fine */
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){4, 3});
    t = ds_dropout(g, ds_input(g, "t", 2, (int64_t[]){4, 2}), 0.5f);
    y = ds_dense(g, x, &(ds_dense_opts){.name = "fc3", .units = 2});
    loss = ds_loss_mse(g, y, t, DS_REDUCE_MEAN);
    CHECK(loss);
    ds_rng r;
    ds_rng_seed(&r, 3);
    fill_input(g, x, -1, 1, 0, &r);
    CHECK(ds_newton_step(g, loss, &lam, &l) == DS_OK);
    ds_graph_free(g);
    /* too many parameters */
    g = ds_graph_create(m, 1);
    x = ds_input(g, "x", 2, (int64_t[]){2, 100});
    y = ds_dense(g, x, &(ds_dense_opts){.name = "big", .units = 60});
    loss = ds_sum(g, y, 0, NULL, 0);
    CHECK(loss);
    CHECK(ds_newton_step(g, loss, &lam, &l) == DS_ERR_ARG);
    if (!strstr(ds_last_error(), "6060") || !strstr(ds_last_error(), "5000"))
        FAIL("message does not give the counts: %s", ds_last_error());
    ds_graph_free(g);
    /* no trainable parameter */
    ds_model *m2 = ds_model_create(1);
    g = ds_graph_create(m2, 1);
    x = ds_input(g, "x", 2, (int64_t[]){2, 3});
    loss = ds_sum(g, ds_square(g, x), 0, NULL, 0);
    CHECK(ds_newton_step(g, loss, &lam, &l) == DS_ERR_ARG);
    ds_graph_free(g);
    ds_model_free(m2);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(newton_hessian_does_not_depend_on_thread_count)
{
    ds_model *m = ds_model_create(21);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){16, 4});
    ds_node *t = ds_input(g, "t", 2, (int64_t[]){16, 2});
    ds_param *w1 = add_param(m, "h.weight", 2, (int64_t[]){12, 4}, -1, 1);
    ds_param *w2 = add_param(m, "o.weight", 2, (int64_t[]){2, 12}, -1, 1);
    ds_node *h = ds_tanh(g, ds_linear(g, x, ds_param_node(g, w1), NULL));
    ds_node *loss = ds_loss_mse(g, ds_linear(g, h, ds_param_node(g, w2), NULL), t,
                                DS_REDUCE_MEAN);
    CHECK(loss);
    ds_rng r;
    ds_rng_seed(&r, 1);
    fill_input(g, x, -1, 1, 0, &r);
    fill_input(g, t, -1, 1, 0, &r);
    int keep = ds_get_num_threads();
    int64_t n1, n4;
    double *g1, *h1, *g4, *h4;
    ds_set_num_threads(1);
    ds_status s1 = dsi_newton_hessian(g, loss, &n1, &g1, &h1, NULL, NULL, NULL);
    ds_set_num_threads(4);
    ds_status s4 = dsi_newton_hessian(g, loss, &n4, &g4, &h4, NULL, NULL, NULL);
    ds_set_num_threads(keep);
    CHECK(s1 == DS_OK && s4 == DS_OK && n1 == 72 && n4 == 72);
    int same = !memcmp(h1, h4, (size_t)(n1 * n1) * sizeof *h1) &&
               !memcmp(g1, g4, (size_t)n1 * sizeof *g1);
    free(g1);
    free(h1);
    free(g4);
    free(h4);
    CHECK(same);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* ---- the point of it: y = sin(x) on 64 points with a 1-8-1 tanh network ---- */
typedef struct {
    ds_model *m;
    ds_graph *g;
    ds_node *loss;
} sinfit;

static int sin_setup(sinfit *s)
{
    s->m = ds_model_create(2024);
    s->g = ds_graph_create(s->m, 1);
    ds_node *x = ds_input(s->g, "x", 2, (int64_t[]){64, 1});
    ds_node *t = ds_input(s->g, "t", 2, (int64_t[]){64, 1});
    ds_param *w1 = ds_model_add_param(s->m, "h.weight", 2, (int64_t[]){8, 1}, 1,
                                      (ds_init){DS_INIT_NORMAL, 0, 1});
    ds_param *b1 = ds_model_add_param(s->m, "h.bias", 1, (int64_t[]){8}, 1,
                                      (ds_init){DS_INIT_NORMAL, 0, 1});
    ds_param *w2 = ds_model_add_param(s->m, "o.weight", 2, (int64_t[]){1, 8}, 1,
                                      (ds_init){DS_INIT_NORMAL, 0, 0.3f});
    ds_param *b2 = ds_model_add_param(s->m, "o.bias", 1, (int64_t[]){1}, 1,
                                      (ds_init){DS_INIT_ZEROS, 0, 0});
    ds_node *h = ds_tanh(s->g, ds_linear(s->g, x, ds_param_node(s->g, w1),
                                         ds_param_node(s->g, b1)));
    ds_node *y = ds_linear(s->g, h, ds_param_node(s->g, w2), ds_param_node(s->g, b2));
    s->loss = ds_loss_mse(s->g, y, t, DS_REDUCE_MEAN);
    if (!s->loss || ds_graph_plan(s->g) != DS_OK)
        return 1;
    float *xd = ds_node_data(x), *td = ds_node_data(t);
    for (int i = 0; i < 64; i++) {
        xd[i] = (float)(-M_PI + 2 * M_PI * i / 63.0);
        td[i] = sinf(xd[i]);
    }
    return 0;
}

static void sin_free(sinfit *s)
{
    ds_graph_free(s->g);
    ds_model_free(s->m);
}

TEST(newton_needs_far_fewer_iterations_than_gradient_descent)
{
    const double target_loss = 1e-4;
    const int newton_cap = 200, gd_cap = 20000;
    sinfit s;
    CHECK_OK(sin_setup(&s) ? (snprintf(msg_, cap_, "setup: %s", ds_last_error()), 1) : 0);
    double lam = 1e-3, l = 0, prev = INFINITY;
    int newton_it = -1;
    for (int it = 0; it <= newton_cap; it++) {
        CHECK(ds_newton_step(s.g, s.loss, &lam, &l) == DS_OK);
        CHECK(l <= prev);   /* only steps that lower the loss are kept */
        prev = l;
        if (l < target_loss) {
            newton_it = it;   /* l is the loss before step it: it steps were taken */
            break;
        }
    }
    sin_free(&s);
    if (newton_it < 0)
        FAIL("Newton did not reach loss %g in %d steps (at %g, lambda %g)", target_loss,
             newton_cap, l, lam);
    /* full-batch gradient descent, best of several learning rates */
    static const float lrs[] = {1.0f, 0.3f, 0.1f, 0.03f, 0.01f};   /* runs stop at the best */
    int gd_best = gd_cap + 1;
    float lr_best = 0;
    for (size_t k = 0; k < sizeof lrs / sizeof lrs[0]; k++) {
        CHECK_OK(sin_setup(&s));
        int64_t np = ds_model_param_count(s.m);
        for (int it = 0; it <= gd_cap && it < gd_best; it++) {
            ds_model_zero_grad(s.m);
            CHECK(ds_graph_forward(s.g) == DS_OK);
            double lv = ds_node_data(s.loss)[0];
            if (!(lv < 1e6))
                break;   /* diverged */
            if (lv < target_loss) {
                gd_best = it;
                lr_best = lrs[k];
                break;
            }
            CHECK(ds_graph_backward(s.g, s.loss) == DS_OK);
            for (int64_t q = 0; q < np; q++) {
                ds_param *pp = ds_model_param(s.m, (int)q);
                float *d = ds_param_data(pp), *gr = ds_param_grad(pp);
                for (int64_t i = 0; i < ds_param_numel(pp); i++)
                    d[i] -= lrs[k] * gr[i];
            }
        }
        sin_free(&s);
    }
    if (gd_best <= gd_cap)
        snprintf(msg_, cap_, "loss < %g: Newton %d steps, gradient descent %d (lr %g)",
                 target_loss, newton_it, gd_best, lr_best);
    else
        snprintf(msg_, cap_, "loss < %g: Newton %d steps, gradient descent > %d at every lr",
                 target_loss, newton_it, gd_cap);
    if (newton_it * 10 > gd_best)
        FAIL("Newton took %d steps, gradient descent %d: not 10x fewer", newton_it, gd_best);
    return TEST_PASS;
}
