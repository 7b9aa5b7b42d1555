/* loss.c - loss ops (MSE, MAE, BCE, BCE on logits, cross-entropy on logits with soft or
 * integer targets, Gaussian NLL, Gaussian KL, mean squared bias over groups of noise
 * realizations): scalar nodes; shape rules, forward, backward.
 *
 * Every loss is a 0-dim node; attr.loss.reduction is DS_REDUCE_MEAN or DS_REDUCE_SUM.
 * Sums are accumulated in double in a fixed order, so the value does not depend on the
 * thread count. Backward scales by dy (and 1/count for the mean) and ADDS into the inputs'
 * gradients; gradients of targets are computed only when a target needs one. */
#include "../internal.h"

#include <math.h>

/* ---- shared pieces ---- */
static bool same_shape(const ds_node *a, const ds_node *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* All inputs must have in[0]'s shape exactly: no silent broadcasting. */
static ds_status same_shapes_rule(ds_node *y, const char *const *what)
{
    for (int k = 1; k < y->n_in; k++)
        if (!same_shape(y->in[0], y->in[k]))
            return dsi_fail_node(y, DS_ERR_SHAPE, "%s %s and %s %s must have the same shape",
                                 what[0], dsi_shape_str(y->in[0]->ndim, y->in[0]->shape),
                                 what[k], dsi_shape_str(y->in[k]->ndim, y->in[k]->shape));
    dsi_set_shape(y, 0, NULL);
    return DS_OK;
}

/* Mean or sum: the factor that turns a sum over `count` terms into the loss. */
static double reduce_scale(const ds_node *y, int64_t count)
{
    return (y->attr.loss.reduction == DS_REDUCE_MEAN && count > 0) ? 1.0 / (double)count : 1.0;
}

static ds_node *loss_node(ds_graph *g, ds_op op, int n, ds_node *const *in, ds_reduction r)
{
    if (!g || g->status != DS_OK)
        return NULL;
    for (int i = 0; i < n; i++)
        if (!in[i])
            return NULL;
    if (r != DS_REDUCE_MEAN && r != DS_REDUCE_SUM) {
        dsi_fail(DS_ERR_ARG, "%s: reduction %d is neither DS_REDUCE_MEAN nor DS_REDUCE_SUM",
                 dsi_op_names[op], (int)r);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    return dsi_node(g, op, n, in, &(dsi_loss_attr){ .reduction = r });
}

/* Numerically stable log(1 + e^-|z|) and sigmoid. */
static double log1p_exp_neg_abs(double z) { return log1p(exp(-fabs(z))); }
static double sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

static const char *const pred_target[] = { "prediction", "target" };

/* ---- MSE: sum (p - t)^2.  dp = 2 (p - t),  dt = -dp ---- */
static ds_status mse_shape(ds_node *y) { return same_shapes_rule(y, pred_target); }

DS_HOT
static void mse_forward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    int64_t n = y->in[0]->numel;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)p[i] - t[i];
        s += d * d;
    }
    y->data[0] = (float)(s * reduce_scale(y, n));
}

DS_HOT
static void mse_backward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    float *dp = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t n = y->in[0]->numel;
    float c = (float)(2.0 * y->grad[0] * reduce_scale(y, n));
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float d = c * (p[i] - t[i]);
        if (dp)
            dp[i] += d;
        if (dt)
            dt[i] -= d;
    }
}

const ds_op_def dsi_op_loss_mse = {
    .shape = mse_shape, .cpu = {mse_forward, mse_backward},
    .bwd_reads = dsi_reads_in01,
};

/* ---- MAE: sum |p - t|.  dp = sign(p - t) (0 at equality, as torch.sign),  dt = -dp ---- */
DS_HOT
static void mae_forward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    int64_t n = y->in[0]->numel;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)p[i] - t[i]);
    y->data[0] = (float)(s * reduce_scale(y, n));
}

DS_HOT
static void mae_backward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    float *dp = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t n = y->in[0]->numel;
    float c = (float)(y->grad[0] * reduce_scale(y, n));
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float d = p[i] > t[i] ? c : p[i] < t[i] ? -c : 0.0f;
        if (dp)
            dp[i] += d;
        if (dt)
            dt[i] -= d;
    }
}

const ds_op_def dsi_op_loss_mae = {
    .shape = mse_shape, .cpu = {mae_forward, mae_backward},
    .bwd_reads = dsi_reads_in01,
};

/* ---- BCE on probabilities: -(t max(log p, -100) + (1 - t) max(log(1 - p), -100)).
 * dp = (p - t) / max(p (1 - p), 1e-12) as PyTorch's kernel; dt = max(log(1-p), -100) -
 * max(log p, -100), the exact derivative of the clamped forward (finite at p = 0 or 1). */
static double clamped_log(double x) { return fmax(log(x), -100.0); }

DS_HOT
static void bce_forward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    int64_t n = y->in[0]->numel;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s -= t[i] * clamped_log(p[i]) + (1.0 - t[i]) * clamped_log(1.0 - p[i]);
    y->data[0] = (float)(s * reduce_scale(y, n));
}

DS_HOT
static void bce_backward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    float *dp = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t n = y->in[0]->numel;
    double c = y->grad[0] * reduce_scale(y, n);
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double pi = p[i];
        if (dp)
            dp[i] += (float)(c * (pi - t[i]) / fmax(pi * (1.0 - pi), 1e-12));
        if (dt)
            dt[i] += (float)(c * (clamped_log(1.0 - pi) - clamped_log(pi)));
    }
}

const ds_op_def dsi_op_loss_bce = {
    .shape = mse_shape, .cpu = {bce_forward, bce_backward},
    .bwd_reads = dsi_reads_in01,
};

/* ---- BCE on logits: max(z, 0) - z t + log(1 + e^-|z|).  dz = sigmoid(z) - t,  dt = -z ---- */
DS_HOT
static void bcel_forward(ds_node *y)
{
    const float *z = y->in[0]->data, *t = y->in[1]->data;
    int64_t n = y->in[0]->numel;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double zi = z[i];
        s += fmax(zi, 0.0) - zi * t[i] + log1p_exp_neg_abs(zi);
    }
    y->data[0] = (float)(s * reduce_scale(y, n));
}

DS_HOT
static void bcel_backward(ds_node *y)
{
    const float *z = y->in[0]->data, *t = y->in[1]->data;
    float *dz = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t n = y->in[0]->numel;
    double c = y->grad[0] * reduce_scale(y, n);
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (dz)
            dz[i] += (float)(c * (sigmoid(z[i]) - t[i]));
        if (dt)
            dt[i] -= (float)(c * z[i]);
    }
}

const ds_op_def dsi_op_loss_bce_logits = {
    .shape = mse_shape, .cpu = {bcel_forward, bcel_backward}, .bwd_reads = dsi_reads_in01,
};

/* ---- cross-entropy on logits, classes on dimension 1 ----
 * logits [N, K, inner...]: position (n, s) has its K logits at stride `inner`. Forward keeps
 * the log-softmax in y->saved ([N, K, inner], like the logits) for backward. The mean divides
 * by N * inner (the number of positions), as PyTorch's CrossEntropyLoss does. */
static void ce_dims(const ds_node *z, int64_t *N, int64_t *K, int64_t *inner)
{
    *N = z->shape[0];
    *K = z->shape[1];
    *inner = z->numel / (*N * *K);
}

static size_t ce_saved(const ds_node *y) { return (size_t)y->in[0]->numel * sizeof(float); }

/* log-softmax of every position into ls. */
DS_HOT
static void log_softmax_dim1(const float *z, float *ls, int64_t N, int64_t K, int64_t inner)
{
    int64_t rows = N * inner;
#pragma omp parallel for schedule(static) if (rows * K > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / inner, s = r % inner;
        const float *zr = z + n * K * inner + s;
        float *lr = ls + n * K * inner + s;
        float mx = zr[0];
        for (int64_t k = 1; k < K; k++)
            mx = fmaxf(mx, zr[k * inner]);
        double se = 0;
        for (int64_t k = 0; k < K; k++)
            se += exp((double)zr[k * inner] - mx);
        double lse = mx + log(se);
        for (int64_t k = 0; k < K; k++)
            lr[k * inner] = (float)((double)zr[k * inner] - lse);
    }
}

static ds_status cce_shape(ds_node *y)
{
    const ds_node *z = y->in[0];
    if (z->ndim < 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "logits %s need at least 2 dimensions "
                             "[batch, classes, ...]", dsi_shape_str(z->ndim, z->shape));
    static const char *const what[] = { "logits", "target" };
    return same_shapes_rule(y, what);
}

/* loss = -sum t log_softmax(z).  dz = p sum_k t_k - t (p - t for one-hot or soft targets
 * that sum to 1: the fused gradient, finite when p underflows), dt = -log_softmax(z). */
DS_HOT
static void cce_forward(ds_node *y)
{
    const ds_node *z = y->in[0];
    const float *t = y->in[1]->data;
    float *ls = y->saved;
    int64_t N, K, inner;
    ce_dims(z, &N, &K, &inner);
    log_softmax_dim1(z->data, ls, N, K, inner);
    double s = 0;
    for (int64_t i = 0; i < z->numel; i++)
        if (t[i] != 0.0f)   /* 0 * log(0) counts as 0 */
            s -= (double)t[i] * ls[i];
    y->data[0] = (float)(s * reduce_scale(y, N * inner));
}

DS_HOT
static void cce_backward(ds_node *y)
{
    const ds_node *z = y->in[0];
    const float *t = y->in[1]->data, *ls = y->saved;
    float *dz = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t N, K, inner;
    ce_dims(z, &N, &K, &inner);
    double c = y->grad[0] * reduce_scale(y, N * inner);
    int64_t rows = N * inner;
    if (dz) {
#pragma omp parallel for schedule(static) if (rows * K > DS_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            int64_t base = (r / inner) * K * inner + r % inner;
            double ts = 0;
            for (int64_t k = 0; k < K; k++)
                ts += t[base + k * inner];
            for (int64_t k = 0; k < K; k++) {
                int64_t i = base + k * inner;
                dz[i] += (float)(c * (exp((double)ls[i]) * ts - t[i]));
            }
        }
    }
    if (dt) {
#pragma omp parallel for schedule(static) if (z->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < z->numel; i++)
            dt[i] -= (float)(c * ls[i]);
    }
}

const ds_op_def dsi_op_loss_cce_logits = {
    .shape = cce_shape, .cpu = {cce_forward, cce_backward}, .saved_bytes = ce_saved,
    .bwd_reads = dsi_reads_in1,   /* the targets; the log-softmax is saved */
};

/* ---- cross-entropy with integer labels: logits [N, K, d...], labels [N, d...] ----
 * loss = -sum log_softmax(z)[label].  dz = p - onehot(label). Labels are floats holding
 * integers in [0, K); anything else fails the forward with DS_ERR_VALUE (those positions
 * add nothing, so the value stays finite). */
static ds_status cce_int_shape(ds_node *y)
{
    const ds_node *z = y->in[0], *l = y->in[1];
    if (z->ndim < 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "logits %s need at least 2 dimensions "
                             "[batch, classes, ...]", dsi_shape_str(z->ndim, z->shape));
    bool ok = l->ndim == z->ndim - 1 && l->shape[0] == z->shape[0];
    for (int d = 2; ok && d < z->ndim; d++)
        ok = l->shape[d - 1] == z->shape[d];
    if (!ok) {
        int64_t want[DS_MAX_DIMS];
        want[0] = z->shape[0];
        for (int d = 2; d < z->ndim; d++)
            want[d - 1] = z->shape[d];
        return dsi_fail_node(y, DS_ERR_SHAPE, "labels %s do not fit logits %s (expected "
                             "labels %s: the logits' shape without the class dimension 1)",
                             dsi_shape_str(l->ndim, l->shape), dsi_shape_str(z->ndim, z->shape),
                             dsi_shape_str(z->ndim - 1, want));
    }
    dsi_set_shape(y, 0, NULL);
    return DS_OK;
}

/* The class of label i, or -1 if it is not an integer in [0, K). */
static int64_t label_class(float v, int64_t K)
{
    if (!(v >= 0.0f && v < (float)K) || v != floorf(v))
        return -1;
    return (int64_t)v;
}

DS_HOT
static void cce_int_forward(ds_node *y)
{
    const ds_node *z = y->in[0];
    const float *lab = y->in[1]->data;
    float *ls = y->saved;
    int64_t N, K, inner;
    ce_dims(z, &N, &K, &inner);
    double s = 0;
    bool bad = false;
    for (int64_t r = 0; r < N * inner; r++) {
        int64_t c = label_class(lab[r], K);
        if (c >= 0)
            continue;
        bad = true;
        char where[64] = "";
        if (inner > 1)
            snprintf(where, sizeof where, " (position %lld)", (long long)(r % inner));
        dsi_run_fail(y->g, DS_ERR_VALUE, "%s '%s': label %g at sample %lld%s is %s [0, %lld)",
                     dsi_op_names[y->op], dsi_node_layer(y), (double)lab[r],
                     (long long)(r / inner), where,
                     (lab[r] >= 0.0f && lab[r] < (float)K) ? "not an integer in" : "outside",
                     (long long)K);
        break;
    }
    log_softmax_dim1(z->data, ls, N, K, inner);
    for (int64_t r = 0; r < N * inner && !bad; r++) {
        int64_t c = label_class(lab[r], K);
        s -= ls[(r / inner) * K * inner + c * inner + r % inner];
    }
    y->data[0] = bad ? 0.0f : (float)(s * reduce_scale(y, N * inner));
}

DS_HOT
static void cce_int_backward(ds_node *y)
{
    const ds_node *z = y->in[0];
    const float *lab = y->in[1]->data, *ls = y->saved;
    float *dz = y->in[0]->grad;
    if (!dz)
        return;
    int64_t N, K, inner;
    ce_dims(z, &N, &K, &inner);
    double c = y->grad[0] * reduce_scale(y, N * inner);
    int64_t rows = N * inner;
#pragma omp parallel for schedule(static) if (rows * K > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / inner) * K * inner + r % inner;
        int64_t cls = label_class(lab[r], K);
        for (int64_t k = 0; k < K; k++) {
            int64_t i = base + k * inner;
            dz[i] += (float)(c * (exp((double)ls[i]) - (k == cls ? 1.0 : 0.0)));
        }
    }
}

const ds_op_def dsi_op_loss_cce_int = {
    .shape = cce_int_shape, .cpu = {cce_int_forward, cce_int_backward}, .saved_bytes = ce_saved,
    .bwd_reads = dsi_reads_in1,   /* the labels; the log-softmax is saved */
};

/* ---- Gaussian NLL: 0.5 (lv + (t - m)^2 e^-lv), inputs mean, logvar, target ----
 * dm = -(t - m) e^-lv,  dlv = 0.5 (1 - (t - m)^2 e^-lv),  dt = (t - m) e^-lv. */
static ds_status gnll_shape(ds_node *y)
{
    static const char *const what[] = { "mean", "logvar", "target" };
    return same_shapes_rule(y, what);
}

DS_HOT
static void gnll_forward(ds_node *y)
{
    const float *m = y->in[0]->data, *lv = y->in[1]->data, *t = y->in[2]->data;
    int64_t n = y->in[0]->numel;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)t[i] - m[i];
        s += 0.5 * (lv[i] + d * d * exp(-(double)lv[i]));
    }
    y->data[0] = (float)(s * reduce_scale(y, n));
}

DS_HOT
static void gnll_backward(ds_node *y)
{
    const float *m = y->in[0]->data, *lv = y->in[1]->data, *t = y->in[2]->data;
    float *dm = y->in[0]->grad, *dlv = y->in[1]->grad, *dt = y->in[2]->grad;
    int64_t n = y->in[0]->numel;
    double c = y->grad[0] * reduce_scale(y, n);
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double iv = exp(-(double)lv[i]), d = (double)t[i] - m[i];
        if (dm)
            dm[i] -= (float)(c * d * iv);
        if (dlv)
            dlv[i] += (float)(c * 0.5 * (1.0 - d * d * iv));
        if (dt)
            dt[i] += (float)(c * d * iv);
    }
}

const ds_op_def dsi_op_loss_gaussian_nll = {
    .shape = gnll_shape, .cpu = {gnll_forward, gnll_backward}, .bwd_reads = dsi_reads_inputs,
};

/* ---- KL(N(m1, e^lv1) || N(m2, e^lv2)) = 0.5 (lv2 - lv1 + (e^lv1 + (m1 - m2)^2) e^-lv2 - 1)
 * inputs m1, lv1 [, m2, lv2] (2 inputs: m2 = 0, lv2 = 0, the standard normal).
 * dm1 = (m1 - m2) e^-lv2 = -dm2,  dlv1 = 0.5 (e^(lv1 - lv2) - 1),
 * dlv2 = 0.5 (1 - (e^lv1 + (m1 - m2)^2) e^-lv2). */
static ds_status kl_shape(ds_node *y)
{
    static const char *const what[] = { "mu1", "logvar1", "mu2", "logvar2" };
    return same_shapes_rule(y, what);
}

DS_HOT
static void kl_forward(ds_node *y)
{
    const float *m1 = y->in[0]->data, *lv1 = y->in[1]->data;
    const float *m2 = y->n_in == 4 ? y->in[2]->data : NULL;
    const float *lv2 = y->n_in == 4 ? y->in[3]->data : NULL;
    int64_t n = y->in[0]->numel;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)m1[i] - (m2 ? m2[i] : 0.0f), l2 = lv2 ? lv2[i] : 0.0f;
        s += 0.5 * (l2 - lv1[i] + (exp((double)lv1[i]) + d * d) * exp(-l2) - 1.0);
    }
    y->data[0] = (float)(s * reduce_scale(y, n));
}

DS_HOT
static void kl_backward(ds_node *y)
{
    bool four = y->n_in == 4;
    const float *m1 = y->in[0]->data, *lv1 = y->in[1]->data;
    const float *m2 = four ? y->in[2]->data : NULL, *lv2 = four ? y->in[3]->data : NULL;
    float *dm1 = y->in[0]->grad, *dlv1 = y->in[1]->grad;
    float *dm2 = four ? y->in[2]->grad : NULL, *dlv2 = four ? y->in[3]->grad : NULL;
    int64_t n = y->in[0]->numel;
    double c = y->grad[0] * reduce_scale(y, n);
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)m1[i] - (m2 ? m2[i] : 0.0f), l2 = lv2 ? lv2[i] : 0.0f;
        double iv2 = exp(-l2), e1 = exp((double)lv1[i]);
        if (dm1)
            dm1[i] += (float)(c * d * iv2);
        if (dm2)
            dm2[i] -= (float)(c * d * iv2);
        if (dlv1)
            dlv1[i] += (float)(c * 0.5 * (e1 * iv2 - 1.0));
        if (dlv2)
            dlv2[i] += (float)(c * 0.5 * (1.0 - (e1 + d * d) * iv2));
    }
}

const ds_op_def dsi_op_loss_kl_gaussian = {
    .shape = kl_shape, .cpu = {kl_forward, kl_backward}, .bwd_reads = dsi_reads_inputs,
};

/* ---- Mean squared bias over groups (Tewes et al. 2019, A&A 621, A36) ----
 * Rows g K .. g K + K - 1 of [N, ...] are K realizations (e.g. noise draws) of one case;
 * d = pred - target. Per case and feature, b = mean_k d_k and s2 = sum_k (d_k - b)^2 / (K - 1);
 * the loss is sum over cases and features of (b^2 - u s2 / K) (u = 1: the unbiased estimate
 * of the squared bias, without the noise's share; u = 0: plain b^2), scaled by 1 / (G F)
 * for the mean (G cases, F features), plus w sum d^2 (scaled by 1 / (N F)): the MSE term.
 * dd_k = c_b (2 b / K - u 2 (d_k - b) / (K (K - 1))) + c_m 2 w d_k,  dt = -dd. */
static ds_status msb_shape(ds_node *y)
{
    ds_status st = same_shapes_rule(y, pred_target);
    if (st)
        return st;
    const ds_node *p = y->in[0];
    int k = y->attr.loss.group;
    if (p->ndim < 1 || p->shape[0] % k)
        return dsi_fail_node(y, DS_ERR_SHAPE, "prediction %s: %lld rows are not whole groups "
                             "of group=%d realizations (each case's realizations are "
                             "consecutive rows)", dsi_shape_str(p->ndim, p->shape),
                             (long long)(p->ndim ? p->shape[0] : 0), k);
    return DS_OK;
}

/* Scales of the bias and MSE sums (reduction applied) for an input of n rows of f. */
static void msb_scales(const ds_node *y, double *cb, double *cm)
{
    int64_t n = y->in[0]->shape[0], f = y->in[0]->numel / (n > 0 ? n : 1);
    int64_t groups = n / y->attr.loss.group;
    *cb = reduce_scale(y, groups * f);
    *cm = y->attr.loss.mse * reduce_scale(y, n * f);
}

/* b and s2 of case g, feature j. */
static void msb_stats(const ds_node *y, int64_t g, int64_t j, double *b, double *s2)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    int k = y->attr.loss.group;
    int64_t f = y->in[0]->numel / y->in[0]->shape[0], base = g * k * f + j;
    double s = 0, q = 0;
    for (int r = 0; r < k; r++)
        s += (double)p[base + r * f] - t[base + r * f];
    *b = s / k;
    for (int r = 0; k > 1 && r < k; r++) {
        double e = (double)p[base + r * f] - t[base + r * f] - *b;
        q += e * e;
    }
    *s2 = k > 1 ? q / (k - 1) : 0.0;
}

DS_HOT
static void msb_forward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    int64_t n = y->in[0]->shape[0], numel = y->in[0]->numel;
    if (n == 0) {
        y->data[0] = 0.0f;
        return;
    }
    int64_t f = numel / n, groups = n / y->attr.loss.group;
    double u = y->attr.loss.unbiased ? 1.0 / y->attr.loss.group : 0.0, sb = 0, sm = 0, cb, cm;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t j = 0; j < f; j++) {
            double b, s2;
            msb_stats(y, g, j, &b, &s2);
            sb += b * b - u * s2;
        }
    for (int64_t i = 0; i < numel; i++) {
        double d = (double)p[i] - t[i];
        sm += d * d;
    }
    msb_scales(y, &cb, &cm);
    y->data[0] = (float)(cb * sb + cm * sm);
}

DS_HOT
static void msb_backward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    float *dp = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t n = y->in[0]->shape[0];
    if (n == 0)
        return;
    int k = y->attr.loss.group;
    int64_t f = y->in[0]->numel / n, groups = n / k;
    double cb, cm, u = y->attr.loss.unbiased && k > 1 ? 2.0 / ((double)k * (k - 1)) : 0.0;
    msb_scales(y, &cb, &cm);
    cb *= y->grad[0];
    cm *= 2.0 * y->grad[0];
#pragma omp parallel for schedule(static) if (groups * f * k > DS_PAR_MIN)
    for (int64_t g = 0; g < groups; g++)
        for (int64_t j = 0; j < f; j++) {
            double b, s2;
            msb_stats(y, g, j, &b, &s2);
            for (int r = 0; r < k; r++) {
                int64_t i = (g * k + r) * f + j;
                double d = (double)p[i] - t[i];
                float v = (float)(cb * (2.0 * b / k - u * (d - b)) + cm * d);
                if (dp)
                    dp[i] += v;
                if (dt)
                    dt[i] -= v;
            }
        }
}

const ds_op_def dsi_op_loss_msb = {
    .shape = msb_shape, .cpu = {msb_forward, msb_backward}, .bwd_reads = dsi_reads_in01,
};

/* ---- builders ---- */
ds_node *ds_loss_mse(ds_graph *g, ds_node *pred, ds_node *target, ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_MSE, 2, (ds_node *[]){pred, target}, r);
}

ds_node *ds_loss_mae(ds_graph *g, ds_node *pred, ds_node *target, ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_MAE, 2, (ds_node *[]){pred, target}, r);
}

ds_node *ds_loss_bce(ds_graph *g, ds_node *prob, ds_node *target, ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_BCE, 2, (ds_node *[]){prob, target}, r);
}

ds_node *ds_loss_bce_logits(ds_graph *g, ds_node *logits, ds_node *target, ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_BCE_LOGITS, 2, (ds_node *[]){logits, target}, r);
}

ds_node *ds_loss_cce_logits(ds_graph *g, ds_node *logits, ds_node *target, ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_CCE_LOGITS, 2, (ds_node *[]){logits, target}, r);
}

ds_node *ds_loss_cce_logits_int(ds_graph *g, ds_node *logits, ds_node *labels, ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_CCE_INT, 2, (ds_node *[]){logits, labels}, r);
}

ds_node *ds_loss_gaussian_nll(ds_graph *g, ds_node *mean, ds_node *logvar, ds_node *target,
                              ds_reduction r)
{
    return loss_node(g, DS_OP_LOSS_GAUSS_NLL, 3, (ds_node *[]){mean, logvar, target}, r);
}

ds_node *ds_loss_kl_gaussian(ds_graph *g, ds_node *mu1, ds_node *logvar1, ds_node *mu2,
                             ds_node *logvar2, ds_reduction r)
{
    if (!g || g->status != DS_OK || !mu1 || !logvar1)
        return NULL;
    if ((mu2 == NULL) != (logvar2 == NULL)) {
        dsi_fail(DS_ERR_ARG, "loss_kl_gaussian: give both mu2 and logvar2, or neither (the "
                 "standard normal)");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    return loss_node(g, DS_OP_LOSS_KL_GAUSS, mu2 ? 4 : 2,
                     (ds_node *[]){mu1, logvar1, mu2, logvar2}, r);
}

ds_node *ds_loss_msb(ds_graph *g, ds_node *pred, ds_node *target, const ds_msb_opts *o,
                     ds_reduction r)
{
    if (!g || g->status != DS_OK || !pred || !target)
        return NULL;
    ds_msb_opts d = o ? *o : (ds_msb_opts){0};
    if (d.group < 1 || d.group > 1 << 20 || !(d.mse >= 0 && d.mse < 1e30) ||
        (d.unbiased && d.group < 2)) {
        dsi_fail(DS_ERR_ARG, "loss_msb: group %d must be in [1, 2^20] (at least 2 when "
                 "unbiased: the spread needs two realizations), mse weight %g >= 0", d.group,
                 d.mse);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    if (r != DS_REDUCE_MEAN && r != DS_REDUCE_SUM) {
        dsi_fail(DS_ERR_ARG, "loss_msb: reduction %d is neither DS_REDUCE_MEAN nor "
                 "DS_REDUCE_SUM", (int)r);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    dsi_loss_attr a = {.reduction = r, .group = d.group, .mse = (float)d.mse,
                       .unbiased = d.unbiased != 0};
    return dsi_node(g, DS_OP_LOSS_MSB, 2, (ds_node *[]){pred, target}, &a);
}
