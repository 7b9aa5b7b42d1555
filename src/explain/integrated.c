/* integrated.c - integrated gradients: the path integral from the baseline to each sample by
 * a quadrature rule (piecewise: node weights placed at f's kinks), every node of every
 * sample a row of batched backward passes. */
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t i;               /* the sample */
    double a, w;             /* the node on the path (0: baseline, 1: sample) and its weight */
} ig_node;

typedef struct {
    const float *x, *base;   /* N x D samples and baselines */
    const float *fx, *fb;    /* f at each sample and baseline (the explained values) */
    const int64_t *tgt;
    int64_t D;
    const ig_node *nodes;    /* the pass's rows */
    float *acc;              /* N x D: sum of w d f / d x */
    int64_t S;               /* nodes per sample */
    /* piecewise: each node's gradient, f and slope for the sample in flight */
    float *hold;             /* S x D gradients */
    double *fv, *slope;      /* S: f and d f / d alpha at each node */
} ig_ctx;

static void fill_ig(void *ctx, int64_t r, float *dst)
{
    ig_ctx *c = ctx;
    const ig_node *nd = &c->nodes[r];
    const float *x = c->x + nd->i * c->D, *b = c->base + nd->i * c->D;
    float a = (float)nd->a;
    for (int64_t j = 0; j < c->D; j++)
        dst[j] = b[j] + a * (x[j] - b[j]);
}

static int64_t seed_ig(void *ctx, int64_t r)
{
    ig_ctx *c = ctx;
    return c->tgt[c->nodes[r].i];
}

static int64_t sample_ig(void *ctx, int64_t r)
{
    ig_ctx *c = ctx;
    return c->nodes[r].i;
}

static void take_ig(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    (void)j;
    (void)out;
    ig_ctx *c = ctx;
    const ig_node *nd = &c->nodes[r];
    float *a = c->acc + nd->i * c->D;
    for (int64_t k = 0; k < c->D; k++)
        a[k] += (float)(nd->w * grad[k]);
}

/* The S nodes of rule on [0, 1] and their weights, summing to 1. Gauss-Legendre: the roots
 * of the Legendre polynomial P_S by Newton's method from Tricomi's first guesses. */
static void rule_nodes(ds_explain_ig_rule rule, int64_t S, double *alpha, double *wt)
{
    for (int64_t k = 0; k < S; k++) {
        if (rule == DS_IG_GAUSS_LEGENDRE) {
            double z = cos(M_PI * ((double)k + 0.75) / ((double)S + 0.5)), dp = 1;
            for (int it = 0; it < 100; it++) {
                double p0 = 1, p1 = z;   /* P_0, P_1, then up to P_S by the recurrence */
                for (int64_t j = 2; j <= S; j++) {
                    double p2 = ((double)(2 * j - 1) * z * p1 - (double)(j - 1) * p0) / (double)j;
                    p0 = p1;
                    p1 = p2;
                }
                dp = (double)S * (z * p1 - p0) / (z * z - 1);
                double dz = p1 / dp;
                z -= dz;
                if (fabs(dz) < 1e-15)
                    break;
            }
            alpha[S - 1 - k] = (1 + z) / 2;                 /* increasing alpha */
            wt[S - 1 - k] = 1 / ((1 - z * z) * dp * dp);    /* 2 / ((1 - z^2) P'^2), halved */
        } else if (rule == DS_IG_TRAPEZOID && S > 1) {
            alpha[k] = (double)k / (double)(S - 1);
            wt[k] = (k == 0 || k == S - 1 ? 0.5 : 1.0) / (double)(S - 1);
        } else {   /* midpoint (and the trapezoid with one node), left sum */
            alpha[k] = ((double)k + (rule == DS_IG_LEFT ? 0.0 : 0.5)) / (double)S;
            wt[k] = 1 / (double)S;
        }
    }
}

/* ---- piecewise: midpoint nodes, each node's share of the path ending where f's lines
 * through it and its neighbour meet ---- */
/* The boundary between nodes k and k + 1 (at m0 < m1, f values f0 f1, slopes s0 s1): where
 * f0 + s0 (t - m0) = f1 - s1 (m1 - t), the kink of a piecewise-linear f with one kink
 * between them, so that s0 (t - m0) + s1 (m1 - t) = f1 - f0 exactly; clamped to [m0, m1]
 * when the lines meet outside (several kinks: the nearest to exact), halfway when they are
 * parallel (no kink). */
static double boundary(double m0, double m1, double f0, double f1, double s0, double s1)
{
    if (s0 == s1)
        return (m0 + m1) / 2;
    double t = (f1 - f0 - s1 * m1 + s0 * m0) / (s0 - s1);
    return t < m0 ? m0 : t > m1 ? m1 : t;
}

/* Sample i's nodes are in: each one's gradient into acc with its share of the path. */
static void weigh(ig_ctx *c, int64_t i)
{
    float *a = c->acc + i * c->D;
    double lo = 0;
    for (int64_t k = 0; k < c->S; k++) {
        const ig_node *n0 = &c->nodes[i * c->S + k], *n1 = n0 + 1;
        double hi = k + 1 < c->S ? boundary(n0->a, n1->a, c->fv[k], c->fv[k + 1],
                                            c->slope[k], c->slope[k + 1]) : 1;
        for (int64_t j = 0; j < c->D; j++)
            a[j] += (float)((hi - lo) * c->hold[k * c->D + j]);
        lo = hi;
    }
}

static void take_piecewise(void *ctx, int64_t r, int64_t j, const float *out,
                           const float *grad)
{
    (void)j;
    ig_ctx *c = ctx;
    const ig_node *nd = &c->nodes[r];
    int64_t k = r % c->S;
    const float *x = c->x + nd->i * c->D, *b = c->base + nd->i * c->D;
    double s = 0;
    for (int64_t q = 0; q < c->D; q++)
        s += (double)grad[q] * ((double)x[q] - b[q]);
    memcpy(c->hold + k * c->D, grad, (size_t)c->D * sizeof(float));
    c->fv[k] = out[c->tgt[nd->i]];
    c->slope[k] = s;
    if (k == c->S - 1)   /* rows come in order: the sample's nodes are complete */
        weigh(c, nd->i);
}

/* The baselines of every sample and f at them (at each sample's target) into fb. */
static ds_status baselines(dsx_run *r, const ds_explain_opts *o, const float *x, int64_t N,
                           const int64_t *tgt, float *base, float *fb)
{
    float *fk = malloc((size_t)(N * r->K) * sizeof(float));
    if (!fk)
        return dsi_fail(DS_ERR_NOMEM, "integrated gradients: out of memory for %lld baselines",
                        (long long)N);
    dsx_layout L = dsx_sample_layout(r->in);
    for (int64_t i = 0; i < N; i++)
        dsx_baseline(o, L, x + i * r->D, base + i * r->D);
    ds_status st = dsx_forward(r, base, N, fk);
    for (int64_t i = 0; !st && i < N; i++)
        fb[i] = fk[i * r->K + tgt[i]];
    free(fk);
    return st;
}

/* The passes of rule over S nodes (piecewise: the midpoint nodes, weighed at the end). */
static ds_status integrate(dsx_run *r, ig_ctx *c, ds_explain_ig_rule rule, int64_t N, int64_t S)
{
    bool pw = rule == DS_IG_PIECEWISE;
    ig_node *nodes = malloc((size_t)(N * S) * sizeof *nodes);
    double *alpha = malloc((size_t)(2 * S) * sizeof(double));
    c->S = S;
    if (pw) {
        c->hold = malloc((size_t)(S * c->D) * sizeof(float));
        c->fv = malloc((size_t)(2 * S) * sizeof(double));
        c->slope = c->fv ? c->fv + S : NULL;
    }
    ds_status st = DS_OK;
    if (!nodes || !alpha || (pw && (!c->hold || !c->fv)))
        st = dsi_fail(DS_ERR_NOMEM, "integrated gradients: out of memory for %lld x %lld "
                      "steps", (long long)N, (long long)S);
    if (!st) {
        rule_nodes(pw ? DS_IG_MIDPOINT : rule, S, alpha, alpha + S);
        for (int64_t i = 0; i < N; i++)
            for (int64_t k = 0; k < S; k++)
                nodes[i * S + k] = (ig_node){i, alpha[k], alpha[S + k]};
        c->nodes = nodes;
        dsx_pass p = {.fill = fill_ig, .seed = seed_ig, .sample = sample_ig,
                      .take = pw ? take_piecewise : take_ig, .ctx = c};
        st = dsx_rows(r, N * S, &p);
    }
    free(nodes);
    free(alpha);
    free(c->hold);
    free(c->fv);
    return st;
}

/* The map becomes (x - b) acc; delta sum(map) - (f(x) - f(b)). */
static void finish(const ig_ctx *c, int64_t N, ds_explain_result *res)
{
    float *m = ds_tensor_data(res->map), *dl = ds_tensor_data(res->delta);
    for (int64_t i = 0; i < N; i++) {
        double sum = 0;
        for (int64_t k = 0; k < c->D; k++) {
            int64_t q = i * c->D + k;
            m[q] = (float)((double)(c->x[q] - c->base[q]) * (double)c->acc[q]);
            sum += m[q];
        }
        dl[i] = (float)(sum - ((double)c->fx[i] - (double)c->fb[i]));
    }
}

ds_status ds_explain_integrated_gradients(ds_net *n, const ds_tensor *x,
                                          const ds_explain_opts *o, ds_explain_result *res)
{
    ds_explain_opts d;
    dsx_run r;
    int64_t N;
    ds_status st = dsx_begin_result(n, x, o, &d, &r, res, &N);
    if (st)
        return st;
    ig_ctx c = {.x = ds_tensor_data((ds_tensor *)x), .D = r.D};
    float *base = malloc((size_t)(N * r.D) * sizeof(float));
    float *fb = malloc((size_t)N * sizeof(float));
    res->map = dsx_map(N, r.in->ndim - 1, r.in->shape + 1, "integrated gradients");
    res->delta = ds_tensor_create(1, (int64_t[]){N});
    if (!base || !fb || !res->map || !res->delta) {
        st = dsi_fail(DS_ERR_NOMEM, "integrated gradients: out of memory for %lld samples",
                      (long long)N);
        goto done;
    }
    c.acc = ds_tensor_data(res->map);
    c.tgt = res->target;
    c.fx = ds_tensor_data(res->score);
    c.base = base;
    c.fb = fb;
    if ((st = dsx_targets(&r, x, &d, res->target, ds_tensor_data(res->score))) ||
        (st = baselines(&r, &d, c.x, N, res->target, base, fb)) ||
        (st = integrate(&r, &c, d.ig_rule, N, d.steps ? d.steps : 64)))
        goto done;
    finish(&c, N, res);
done:
    dsx_end(&r);
    free(base);
    free(fb);
    if (st)
        ds_explain_result_free(res);
    return st;
}
