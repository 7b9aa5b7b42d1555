/* batchnorm.c - batch normalization op and its "BatchNormalization" layer (PyTorch's
 * BatchNorm1d/2d/3d): shape rule, forward with batch or running statistics, backward. */
#include "reduce.h"

#include <math.h>

/* in: x [N, C, ...], running_mean [C], running_var [C], and unless no_affine gamma [C],
 * beta [C]. Attributes: momentum, eps, and act: a fused ReLU (DSI_FUSE_RELU, set by the
 * planner when a ReLU alone reads the output): y = relu(a x + b) per channel, and backward
 * recomputes the mask a x + b > 0 from x (with fmaf both times, so bit for bit the
 * forward's), which frees y after its last forward reader. state.batchnorm.batch_stats is
 * set by forward: whether it normalized with batch statistics, so backward differentiates
 * the same function. saved: mean [C]
 * and rstd [C] = 1 / sqrt(var + eps) as used by that forward; with the ReLU also a [C] and
 * b [C] of the affine map.
 *
 * Batch statistics (M = N * spatial values per channel):
 *   y = gamma xh + beta, xh = (x - mean) rstd, var biased;
 *   dx = gamma rstd / M (M dy - sum dy - xh sum(dy xh)), dgamma = sum(dy xh), dbeta = sum dy.
 * Running statistics: a per-channel affine map, dx = gamma rstd dy.
 * With DS_BN_UPDATE the running statistics move by momentum towards the batch mean and the
 * UNBIASED batch variance (var M / (M - 1)), as PyTorch does. */
static ds_status bn_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    if (x->ndim < 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s is not [N, C] or [N, C, spatial...]",
                             dsi_shape_str(x->ndim, x->shape));
    for (int i = 1; i < y->n_in; i++)
        if (y->in[i]->ndim != 1 || y->in[i]->shape[0] != x->shape[1])
            return dsi_fail_node(y, DS_ERR_SHAPE, "input %s has %lld channels, '%s' has shape %s",
                                 dsi_shape_str(x->ndim, x->shape), (long long)x->shape[1],
                                 dsi_node_layer(y->in[i]),
                                 dsi_shape_str(y->in[i]->ndim, y->in[i]->shape));
    dsi_set_shape(y, x->ndim, x->shape);
    return DS_OK;
}

static size_t bn_saved(const ds_node *y)
{
    return (y->attr.batchnorm.act ? 4 : 2) * (size_t)y->in[0]->shape[1] * sizeof(float);
}

/* The output of the affine map a x + b (one rounding, fmaf, in every build), through the
 * fused ReLU when act is set. */
static inline float bn_out(float a, float x, float b, int act)
{
    float v = fmaf(a, x, b);
    return !act || v > 0 ? v : 0.0f;
}

/* dy where the fused ReLU let a x + b through (all of dy without one). */
static inline float bn_gate(float dy, float a, float x, float b, int act)
{
    float v = fmaf(a, x, b);   /* computed either way: a select, not a branch, per value */
    return act && !(v > 0) ? 0.0f : dy;
}

/* ---- kernels ----
 * Statistics are sums in double, over lanes of independent sums (vectorized, no chain of
 * dependent adds) folded in a fixed order, so they depend on the shape alone. A channel,
 * or for short runs a block of whole channels, is one thread's work: the results do not
 * depend on the thread count. */
#define LANES 32
#define SHORT_RUN 64   /* shorter runs (values per sample and channel) go by column blocks */
#define COLS 256       /* columns (C * S layout) of a block in the short-run path */

/* Sum of (x[i] - mu)^2 over x[0..n), in double. */
DS_HOT
static double sqdev_run(const float *x, int64_t n, double mu)
{
    double acc[LANES] = { 0 };
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            double d = x[i + l] - mu;
            acc[l] += d * d;
        }
    }
    for (int l = 0; i < n; i++, l++) {
        double d = x[i] - mu;
        acc[l] += d * d;
    }
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* Adds to *sdy the sum of dy[0..n) and to *sdyxh that of dy xh, xh = (x - mu) r, in double. */
DS_HOT
static void dy_sums_plain(const float *dy, const float *x, int64_t n, float mu, float r,
                          double *sdy, double *sdyxh)
{
    enum { L = LANES / 2 };
    double a[L] = { 0 }, b[L] = { 0 };
    int64_t i = 0;
    for (; i + L <= n; i += L) {
#pragma omp simd
        for (int l = 0; l < L; l++) {
            a[l] += dy[i + l];
            b[l] += (double)dy[i + l] * ((x[i + l] - mu) * r);
        }
    }
    for (int l = 0; i < n; i++, l++) {
        a[l] += dy[i];
        b[l] += (double)dy[i] * ((x[i] - mu) * r);
    }
    for (int w = L / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) {
            a[l] += a[l + w];
            b[l] += b[l + w];
        }
    *sdy += a[0];
    *sdyxh += b[0];
}

/* dy_sums_plain with dy gated by the fused ReLU of the affine map sc x + sh when act is set:
 * the gated values go through a small buffer, so both loops stay plain vector loops. */
DS_HOT
static void dy_sums_run(const float *dy, const float *x, int64_t n, float mu, float r,
                        float sc, float sh, int act, double *sdy, double *sdyxh)
{
    enum { B = 256 };
    if (!act) {
        dy_sums_plain(dy, x, n, mu, r, sdy, sdyxh);
        return;
    }
    float g[B];
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        int64_t m = n - i0 < B ? n - i0 : B;
        for (int64_t j = 0; j < m; j++)
            g[j] = fmaf(sc, x[i0 + j], sh) > 0 ? dy[i0 + j] : 0.0f;
        dy_sums_plain(g, x + i0, m, mu, r, sdy, sdyxh);
    }
}

/* Channel c is normalized with mean mu and biased variance var: saves mean and rstd, moves
 * the running statistics if update (var made unbiased over the M values), and gives the
 * affine map y = a x + b. */
DS_HOT
static void channel_affine(ds_node *y, int64_t c, double mu, double var, bool update,
                           int64_t M, float *a, float *b)
{
    float *rm = y->in[1]->data, *rv = y->in[2]->data;
    const float *gamma = y->n_in > 3 ? y->in[3]->data : NULL;
    const float *beta = y->n_in > 3 ? y->in[4]->data : NULL;
    float *mean = y->saved, *rstd = mean ? mean + y->in[0]->shape[1] : NULL;
    double mom = y->attr.batchnorm.momentum, eps = y->attr.batchnorm.eps;
    if (update) {
        rm[c] = (float)((1 - mom) * rm[c] + mom * mu);
        rv[c] = (float)((1 - mom) * rv[c] + mom * var * (double)M / (double)(M - 1));
    }
    double r = 1.0 / sqrt(var + eps);
    *a = (float)(r * (gamma ? gamma[c] : 1.0f));
    *b = (float)((beta ? beta[c] : 0.0f) - mu * r * (gamma ? gamma[c] : 1.0f));
    if (!mean)
        return;   /* an inference plan: nothing saved */
    mean[c] = (float)mu;
    rstd[c] = (float)r;
    if (y->attr.batchnorm.act) {
        int64_t C = y->in[0]->shape[1];
        mean[2 * C + c] = *a;
        mean[3 * C + c] = *b;
    }
}

/* Forward for runs shorter than SHORT_RUN ([N, C] and small spatial sizes): x seen as N rows
 * of C * S columns, summed down the columns (vectorized along the row) for a block of whole
 * channels at a time, then each channel's columns in order. */
DS_HOT
static void bn_forward_short(ds_node *y, bool batch, bool update)
{
    const ds_node *x = y->in[0];
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C), M = N * S, CS = C * S;
    const float *xd = x->data, *rm = y->in[1]->data, *rv = y->in[2]->data;
    float *yd = y->data;
    int64_t cb = COLS / S, nb = (C + cb - 1) / cb;
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t c0 = blk * cb, c1 = c0 + cb < C ? c0 + cb : C, j0 = c0 * S, nj = (c1 - c0) * S;
        double acc[COLS], mu[COLS];
        float a[COLS], b[COLS];
        if (!batch) {
            for (int64_t c = c0; c < c1; c++) {
                float ac, bc;
                channel_affine(y, c, rm[c], rv[c], false, M, &ac, &bc);
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++)
                    a[i] = ac, b[i] = bc;
            }
        } else {
            for (int64_t j = 0; j < nj; j++)
                acc[j] = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xr = xd + n * CS + j0;
                for (int64_t j = 0; j < nj; j++)
                    acc[j] += xr[j];
            }
            for (int64_t c = c0; c < c1; c++) {
                double s = 0;
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++)
                    s += acc[i];
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++)
                    mu[i] = s / (double)M;
            }
            for (int64_t j = 0; j < nj; j++)
                acc[j] = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xr = xd + n * CS + j0;
                for (int64_t j = 0; j < nj; j++) {
                    double d = xr[j] - mu[j];
                    acc[j] += d * d;
                }
            }
            for (int64_t c = c0; c < c1; c++) {
                double ss = 0;
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++)
                    ss += acc[i];
                float ac, bc;
                channel_affine(y, c, mu[(c - c0) * S], ss / (double)M, update, M, &ac, &bc);
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++)
                    a[i] = ac, b[i] = bc;
            }
        }
        const int act = y->attr.batchnorm.act;
        for (int64_t n = 0; n < N; n++) {
            const float *xr = xd + n * CS + j0;
            float *yr = yd + n * CS + j0;
            for (int64_t j = 0; j < nj; j++)
                yr[j] = bn_out(a[j], xr[j], b[j], act);
        }
    }
}

/* ---- SyncBN: batch statistics over the ranks of g->sync (data-parallel training) ----
 * The mean is the group's (sums of x and counts over the ranks), then the variance about
 * it (sums of squared deviations); backward sums dy and dy xh over the ranks for dx, while
 * dgamma and dbeta stay this rank's (the trainer sums parameter gradients itself). Every
 * rank runs the same collectives in the same order; a failed one fails the pass. */

/* Per channel c, out[c] = sum over this rank's values of f(x - shift[c]) (f: identity or
 * square), in double, one channel per thread. */
static void channel_sums(const ds_node *x, const double *shift, bool square, double *out)
{
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    const float *xd = x->data;
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++)
            s += square ? sqdev_run(xd + (n * C + c) * S, S, shift[c])
                        : dsi_sum_f64(xd + (n * C + c) * S, S);
        out[c] = s;
    }
}

/* x[0..n) summed over the group; false (the pass failed, with a message) on failure. */
static bool group_sum(ds_node *y, double *x, int64_t n)
{
    const ds_dist *d = y->g->sync;
    ds_status st = d->sum_double(d->ctx, x, n);
    if (st)
        dsi_run_fail(y->g, st, "batchnorm '%s' (--sync-bn, rank %d of %d): %s",
                     dsi_node_layer(y), d->rank, d->size,
                     d->message ? d->message(d->ctx) : "a collective failed");
    return !st;
}

static void bn_forward_sync(ds_node *y, bool update)
{
    const ds_node *x = y->in[0];
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    double *v = malloc((size_t)(2 * C + 1) * sizeof *v), *mu = v + C + 1;
    if (!v) {
        dsi_run_fail(y->g, DS_ERR_NOMEM, "batchnorm '%s': out of memory for %lld channels",
                     dsi_node_layer(y), (long long)C);
        return;
    }
    channel_sums(x, NULL, false, v);
    v[C] = (double)(N * S);
    bool ok = group_sum(y, v, C + 1);
    double M = v[C];
    if (ok && M < 2) {
        dsi_run_fail(y->g, DS_ERR_VALUE, "batchnorm '%s': expected more than 1 value per "
                     "channel over the ranks (--sync-bn), got %.0f", dsi_node_layer(y), M);
        ok = false;
    }
    for (int64_t c = 0; ok && c < C; c++)
        mu[c] = v[c] / M;
    if (ok)
        channel_sums(x, mu, true, v);
    ok = ok && group_sum(y, v, C);
    const int act = y->attr.batchnorm.act;
    for (int64_t c = 0; ok && c < C; c++) {
        float a, b;
        channel_affine(y, c, mu[c], v[c] / M, update, (int64_t)M, &a, &b);
        for (int64_t n = 0; n < N; n++) {
            const float *xp = (const float *)x->data + (n * C + c) * S;
            float *yp = y->data + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++)
                yp[i] = bn_out(a, xp[i], b, act);
        }
    }
    y->state.batchnorm.group_count = M;
    free(v);
}

static void bn_backward_sync(ds_node *y)
{
    const ds_node *x = y->in[0];
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    float *dgamma = y->n_in > 3 ? y->in[3]->grad : NULL;
    float *dbeta = y->n_in > 3 ? y->in[4]->grad : NULL;
    const float *gamma = y->n_in > 3 ? y->in[3]->data : NULL;
    const float *mean = y->saved, *rstd = mean + C;
    const int act = y->attr.batchnorm.act;
    double *v = malloc((size_t)(2 * C) * sizeof *v);
    if (!v) {
        dsi_run_fail(y->g, DS_ERR_NOMEM, "batchnorm '%s': out of memory for %lld channels",
                     dsi_node_layer(y), (long long)C);
        return;
    }
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyxh = 0;
        float sc = act ? mean[2 * C + c] : 0.0f, sh = act ? mean[3 * C + c] : 0.0f;
        for (int64_t n = 0; n < N; n++)
            dy_sums_run(y->grad + (n * C + c) * S, (const float *)x->data + (n * C + c) * S, S,
                        mean[c], rstd[c], sc, sh, act, &sdy, &sdyxh);
        v[c] = sdy;
        v[C + c] = sdyxh;
        if (dgamma)
            dgamma[c] += (float)sdyxh;   /* this rank's share: the trainer sums them */
        if (dbeta)
            dbeta[c] += (float)sdy;
    }
    double M = y->state.batchnorm.group_count;
    bool ok = group_sum(y, v, 2 * C);
    for (int64_t c = 0; ok && x->grad && c < C; c++) {
        float mu = mean[c], r = rstd[c], k = (gamma ? gamma[c] : 1.0f) * r;
        float sc = act ? mean[2 * C + c] : 0.0f, sh = act ? mean[3 * C + c] : 0.0f;
        float mdy = (float)(v[c] / M), mdyxh = (float)(v[C + c] / M);
        for (int64_t n = 0; n < N; n++) {
            const float *xp = (const float *)x->data + (n * C + c) * S;
            const float *gp = y->grad + (n * C + c) * S;
            float *dp = x->grad + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++)
                dp[i] += k * (bn_gate(gp[i], sc, xp[i], sh, act) - mdy -
                              (xp[i] - mu) * r * mdyxh);
        }
    }
    free(v);
}

/* Normalizes with the batch's statistics (two passes over each channel: the mean, then the
 * squared deviations from it) or the running ones, then y = a x + b per channel. */
DS_HOT
static void bn_forward(ds_node *y)
{
    const ds_node *x = y->in[0];
    ds_graph *g = y->g;
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C), M = N * S;
    const float *rm = y->in[1]->data, *rv = y->in[2]->data;
    float *mean = y->saved, *rstd = mean ? mean + C : NULL;
    const float *xd = x->data;
    float *yd = y->data;
    bool batch = (g->mode & DS_BN_BATCH) != 0;
    bool update = batch && (g->mode & DS_BN_UPDATE);
    y->state.batchnorm.batch_stats = batch;
    if (update)
        dsi_model_touch_stats(g->m);   /* the running statistics move (before any thread runs) */
    if (batch && g->sync) {
        bn_forward_sync(y, update);
        return;
    }
    if (batch && M < 2) {
        /* PyTorch: "Expected more than 1 value per channel when training" */
        dsi_run_fail(g, DS_ERR_VALUE, "batchnorm '%s': expected more than 1 value per channel "
                     "to normalize with batch statistics, got input %s (use eval mode or a "
                     "larger batch)", dsi_node_layer(y), dsi_shape_str(x->ndim, x->shape));
        memset(yd, 0, (size_t)y->numel * sizeof *yd);
        for (int64_t c = 0; mean && c < C; c++)
            mean[c] = 0, rstd[c] = 0;
        return;
    }
    if (S < SHORT_RUN) {
        bn_forward_short(y, batch, update);
        return;
    }
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double mu = rm[c], var = rv[c];
        if (batch) {
            double s = 0, ss = 0;
            for (int64_t n = 0; n < N; n++)
                s += dsi_sum_f64(xd + (n * C + c) * S, S);
            mu = s / (double)M;
            for (int64_t n = 0; n < N; n++)
                ss += sqdev_run(xd + (n * C + c) * S, S, mu);
            var = ss / (double)M;
        }
        float a, b;
        const int act = y->attr.batchnorm.act;
        channel_affine(y, c, mu, var, update, M, &a, &b);
        for (int64_t n = 0; n < N; n++) {
            const float *xp = xd + (n * C + c) * S;
            float *yp = yd + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++)
                yp[i] = bn_out(a, xp[i], b, act);
        }
    }
}

/* Backward for runs shorter than SHORT_RUN, by column blocks as bn_forward_short. */
DS_HOT
static void bn_backward_short(ds_node *y, bool batch)
{
    const ds_node *x = y->in[0];
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C), M = N * S, CS = C * S;
    const float *gamma = y->n_in > 3 ? y->in[3]->data : NULL;
    float *dgamma = y->n_in > 3 ? y->in[3]->grad : NULL;
    float *dbeta = y->n_in > 3 ? y->in[4]->grad : NULL;
    const float *mean = y->saved, *rstd = mean + C;
    const float *xd = x->data, *dy = y->grad;
    float *dx = x->grad;
    bool sums = batch || dgamma || dbeta;
    const int act = y->attr.batchnorm.act;
    int64_t cb = COLS / S, nb = (C + cb - 1) / cb;
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t c0 = blk * cb, c1 = c0 + cb < C ? c0 + cb : C, j0 = c0 * S, nj = (c1 - c0) * S;
        double s1[COLS], s2[COLS];
        float mu[COLS], r[COLS], k[COLS], mdy[COLS], mdyxh[COLS], sc[COLS], sh[COLS];
        for (int64_t c = c0; c < c1; c++)
            for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++) {
                mu[i] = mean[c];
                r[i] = rstd[c];
                k[i] = (gamma ? gamma[c] : 1.0f) * rstd[c];
                sc[i] = act ? mean[2 * C + c] : 0.0f;
                sh[i] = act ? mean[3 * C + c] : 0.0f;
            }
        if (sums) {
            for (int64_t j = 0; j < nj; j++)
                s1[j] = s2[j] = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xr = xd + n * CS + j0, *gr = dy + n * CS + j0;
                for (int64_t j = 0; j < nj; j++) {
                    float gj = bn_gate(gr[j], sc[j], xr[j], sh[j], act);
                    s1[j] += gj;
                    s2[j] += (double)gj * ((xr[j] - mu[j]) * r[j]);
                }
            }
            for (int64_t c = c0; c < c1; c++) {
                double sdy = 0, sdyxh = 0;
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++) {
                    sdy += s1[i];
                    sdyxh += s2[i];
                }
                if (dgamma)
                    dgamma[c] += (float)sdyxh;
                if (dbeta)
                    dbeta[c] += (float)sdy;
                for (int64_t i = (c - c0) * S; i < (c - c0 + 1) * S; i++) {
                    mdy[i] = (float)(sdy / (double)M);
                    mdyxh[i] = (float)(sdyxh / (double)M);
                }
            }
        }
        for (int64_t n = 0; dx && n < N; n++) {
            const float *xr = xd + n * CS + j0, *gr = dy + n * CS + j0;
            float *dr = dx + n * CS + j0;
            if (batch)
                for (int64_t j = 0; j < nj; j++)
                    dr[j] += k[j] * (bn_gate(gr[j], sc[j], xr[j], sh[j], act) - mdy[j] -
                                     (xr[j] - mu[j]) * r[j] * mdyxh[j]);
            else
                for (int64_t j = 0; j < nj; j++)
                    dr[j] += k[j] * bn_gate(gr[j], sc[j], xr[j], sh[j], act);
        }
    }
}

/* dgamma, dbeta and dx as in the formulas above: the two sums per channel, then dx. */
DS_HOT
static void bn_backward(ds_node *y)
{
    const ds_node *x = y->in[0];
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C), M = N * S;
    const float *gamma = y->n_in > 3 ? y->in[3]->data : NULL;
    float *dgamma = y->n_in > 3 ? y->in[3]->grad : NULL;
    float *dbeta = y->n_in > 3 ? y->in[4]->grad : NULL;
    const float *mean = y->saved, *rstd = mean + C;
    const float *xd = x->data, *dy = y->grad;
    float *dx = x->grad;
    bool batch = y->state.batchnorm.batch_stats;
    const int act = y->attr.batchnorm.act;
    if (batch && y->g->sync) {
        bn_backward_sync(y);
        return;
    }
    if (S < SHORT_RUN) {
        bn_backward_short(y, batch);
        return;
    }
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyxh = 0;
        float mu = mean[c], r = rstd[c], gm = gamma ? gamma[c] : 1.0f;
        float sc = act ? mean[2 * C + c] : 0.0f, sh = act ? mean[3 * C + c] : 0.0f;
        for (int64_t n = 0; (batch || dgamma || dbeta) && n < N; n++)
            dy_sums_run(dy + (n * C + c) * S, xd + (n * C + c) * S, S, mu, r, sc, sh, act, &sdy,
                        &sdyxh);
        if (dgamma)
            dgamma[c] += (float)sdyxh;
        if (dbeta)
            dbeta[c] += (float)sdy;
        if (!dx)
            continue;
        float k = gm * r;
        if (batch) {
            float mdy = (float)(sdy / (double)M), mdyxh = (float)(sdyxh / (double)M);
            for (int64_t n = 0; n < N; n++) {
                const float *xp = xd + (n * C + c) * S, *gp = dy + (n * C + c) * S;
                float *dp = dx + (n * C + c) * S;
                for (int64_t i = 0; i < S; i++)
                    dp[i] += k * (bn_gate(gp[i], sc, xp[i], sh, act) - mdy -
                                  (xp[i] - mu) * r * mdyxh);
            }
        } else {
            for (int64_t n = 0; n < N; n++) {
                const float *xp = xd + (n * C + c) * S, *gp = dy + (n * C + c) * S;
                float *dp = dx + (n * C + c) * S;
                for (int64_t i = 0; i < S; i++)
                    dp[i] += k * bn_gate(gp[i], sc, xp[i], sh, act);
            }
        }
    }
}

/* x and gamma (in[3], when affine); mean and rstd are saved. */
static uint32_t bn_reads(const ds_node *y)
{
    return DSI_READS_IN(0) | (y->n_in > 3 ? DSI_READS_IN(3) : 0);
}

const ds_op_def dsi_op_batchnorm = {
    .shape = bn_shape, .cpu = {bn_forward, bn_backward},
    .saved_bytes = bn_saved, .bwd_reads = bn_reads, .saved_optional = true,
};

ds_node *ds_batchnorm(ds_graph *g, ds_node *x, const ds_batchnorm_opts *o)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    ds_batchnorm_opts d = { 0 };
    if (o)
        d = *o;
    float mom = d.momentum == 0 ? 0.1f : d.momentum, eps = d.eps == 0 ? 1e-5f : d.eps;
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "BatchNormalization", "batch_normalization", d.name, name))
        return NULL;
    ds_node *y = NULL;
    if (!(mom > 0 && mom <= 1) || !(eps > 0)) {
        dsi_fail(DS_ERR_ARG, "batchnorm '%s': momentum %g must be in (0, 1] and eps %g > 0",
                 name, (double)mom, (double)eps);
        dsi_build_fail(g, DS_ERR_ARG);
    } else if (x->ndim < 2) {
        dsi_fail(DS_ERR_SHAPE, "batchnorm '%s': input '%s' has shape %s, expected [N, C] or "
                 "[N, C, spatial...]", name, dsi_node_layer(x), dsi_shape_str(x->ndim, x->shape));
        dsi_build_fail(g, DS_ERR_SHAPE);
    } else {
        int64_t C = x->shape[1];
        ds_init ones = { DS_INIT_ONES, 0, 0 }, zeros = { DS_INIT_ZEROS, 0, 0 };
        ds_param *w = NULL, *b = NULL, *rm = NULL, *rv = NULL;
        bool ok = true;
        if (!d.no_affine) {
            ok = (w = dsi_model_get_param(g->m, name, "weight", 1, &C, 1, ones)) &&
                 (b = dsi_model_get_param(g->m, name, "bias", 1, &C, 1, zeros));
        }
        ok = ok && (rm = dsi_model_get_param(g->m, name, "running_mean", 1, &C, 0, zeros)) &&
             (rv = dsi_model_get_param(g->m, name, "running_var", 1, &C, 0, ones));
        if (!ok) {
            dsi_build_fail(g, dsi_last_status());
        } else {
            ds_node *in[5] = { x, ds_param_node(g, rm), ds_param_node(g, rv),
                               w ? ds_param_node(g, w) : NULL, b ? ds_param_node(g, b) : NULL };
            dsi_batchnorm_attr at = { .momentum = mom, .eps = eps };
            y = dsi_node(g, DS_OP_BATCHNORM, w ? 5 : 3, in, &at);
        }
    }
    return dsi_layer_end(g, y);
}
