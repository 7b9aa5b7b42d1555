/* gradients.c - gradient attributions: saliency, gradient x input, integrated gradients and
 * SmoothGrad, each a batched backward pass over rows (samples, steps, noisy copies). */
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_SALIENCY, KIND_GXI, KIND_IG, KIND_SMOOTH } grad_kind;

/* Row r is copy r % per of sample r / per. */
typedef struct {
    grad_kind kind;
    const float *x;          /* N x D samples */
    const float *base;       /* IG: N x D baselines */
    const int64_t *tgt;
    int64_t D, per;
    float *acc;              /* N x D: the sum over a sample's rows */
    const float *sigma;      /* SmoothGrad: per sample */
    uint64_t seed;
} grad_ctx;

static void fill_row(void *ctx, int64_t r, float *dst)
{
    grad_ctx *c = ctx;
    int64_t i = r / c->per, k = r % c->per, D = c->D;
    const float *x = c->x + i * D;
    if (c->kind == KIND_IG) {   /* midpoint of step k on the straight path from the baseline */
        const float *b = c->base + i * D;
        float a = (float)(((double)k + 0.5) / (double)c->per);
        for (int64_t j = 0; j < D; j++)
            dst[j] = b[j] + a * (x[j] - b[j]);
    } else if (c->kind == KIND_SMOOTH) {   /* noise from (seed, sample, copy) alone */
        ds_rng g;
        ds_rng_seed(&g, dsi_mix64(dsi_mix64(c->seed) ^ dsi_mix64((uint64_t)i * 65537u + (uint64_t)k)));
        ds_rng_fill_normal(&g, dst, D);
        for (int64_t j = 0; j < D; j++)
            dst[j] = x[j] + c->sigma[i] * dst[j];
    } else {
        memcpy(dst, x, (size_t)D * sizeof(float));
    }
}

static int64_t seed_row(void *ctx, int64_t r)
{
    grad_ctx *c = ctx;
    return c->tgt[r / c->per];
}

static void take_row(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    (void)j;
    (void)out;
    grad_ctx *c = ctx;
    int64_t i = r / c->per, D = c->D;
    float *a = c->acc + i * D;
    const float *x = c->x + i * D;
    switch (c->kind) {
    case KIND_SALIENCY:
    case KIND_SMOOTH:
        for (int64_t k = 0; k < D; k++)
            a[k] += fabsf(grad[k]);
        break;
    case KIND_GXI:
        for (int64_t k = 0; k < D; k++)
            a[k] += x[k] * grad[k];
        break;
    case KIND_IG:
        for (int64_t k = 0; k < D; k++)
            a[k] += grad[k];
        break;
    }
}

/* SmoothGrad's sigma of each sample: noise x (max - min). */
static void noise_sigmas(const float *x, int64_t N, int64_t D, double noise, float *sigma)
{
    for (int64_t i = 0; i < N; i++) {
        float lo = x[i * D], hi = lo;
        for (int64_t k = 1; k < D; k++) {
            lo = fminf(lo, x[i * D + k]);
            hi = fmaxf(hi, x[i * D + k]);
        }
        sigma[i] = (float)(noise * (double)(hi - lo));
    }
}

/* IG's baselines, f(baseline) and completeness errors; the map (acc) becomes (x - b) acc/S. */
static ds_status ig_finish(dsx_run *r, grad_ctx *c, int64_t N, const float *fb,
                           ds_explain_result *res)
{
    if (!(res->delta = ds_tensor_create(1, (int64_t[]){N})))
        return dsi_fail(DS_ERR_NOMEM, "integrated gradients: out of memory");
    float *m = ds_tensor_data(res->map), *dl = ds_tensor_data(res->delta);
    const float *fx = ds_tensor_data(res->score);
    for (int64_t i = 0; i < N; i++) {
        double sum = 0;
        for (int64_t k = 0; k < r->D; k++) {
            int64_t q = i * r->D + k;
            m[q] = (float)((double)(c->x[q] - c->base[q]) * (double)c->acc[q] / (double)c->per);
            sum += m[q];
        }
        dl[i] = (float)(sum - ((double)fx[i] - (double)fb[i * r->K + res->target[i]]));
    }
    return DS_OK;
}

/* The baselines of every sample and their explained values (N x K) into fb. */
static ds_status ig_baselines(dsx_run *r, const ds_explain_opts *o, const float *x, int64_t N,
                              float **base, float **fb)
{
    dsx_layout L = dsx_sample_layout(r->in);
    *base = malloc((size_t)(N * r->D) * sizeof(float));
    *fb = malloc((size_t)(N * r->K) * sizeof(float));
    if (!*base || !*fb)
        return dsi_fail(DS_ERR_NOMEM, "integrated gradients: out of memory for %lld baselines",
                        (long long)N);
    for (int64_t i = 0; i < N; i++)
        dsx_baseline(o, L, x + i * r->D, *base + i * r->D);
    return dsx_forward(r, *base, N, *fb);
}

static ds_status attribute(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                           grad_kind kind, ds_explain_result *res)
{
    ds_explain_opts d = dsx_opts(o);
    dsx_run r;
    memset(res, 0, sizeof *res);
    ds_status st = dsx_begin(n, x, &d, &r);
    if (st)
        return st;
    int64_t N = ds_tensor_shape(x)[0];
    float *base = NULL, *fb = NULL, *sigma = NULL;
    grad_ctx c = {kind, ds_tensor_data((ds_tensor *)x), NULL, NULL, r.D, 1, NULL, NULL, d.seed};
    if ((st = dsx_result_init(res, N)))
        goto done;
    if (!(res->map = dsx_map(N, r.in->ndim - 1, r.in->shape + 1, "explain"))) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    c.acc = ds_tensor_data(res->map);
    c.tgt = res->target;
    if ((st = dsx_targets(&r, x, &d, res->target, ds_tensor_data(res->score))))
        goto done;
    if (kind == KIND_IG) {
        c.per = d.steps ? d.steps : 64;
        if ((st = ig_baselines(&r, &d, c.x, N, &base, &fb)))
            goto done;
        c.base = base;
    } else if (kind == KIND_SMOOTH) {
        c.per = d.samples ? d.samples : 25;
        if (!(sigma = malloc((size_t)N * sizeof(float)))) {
            st = dsi_fail(DS_ERR_NOMEM, "smoothgrad: out of memory");
            goto done;
        }
        noise_sigmas(c.x, N, r.D, d.noise > 0 ? d.noise : 0.15, sigma);
        c.sigma = sigma;
    }
    dsx_pass p = {.fill = fill_row, .seed = seed_row, .take = take_row, .ctx = &c};
    if ((st = dsx_rows(&r, N * c.per, &p)))
        goto done;
    if (kind == KIND_IG)
        st = ig_finish(&r, &c, N, fb, res);
    else if (kind == KIND_SMOOTH)
        for (int64_t q = 0; q < N * r.D; q++)
            c.acc[q] /= (float)c.per;
done:
    dsx_end(&r);
    free(base);
    free(fb);
    free(sigma);
    if (st)
        ds_explain_result_free(res);
    return st;
}

ds_status ds_explain_saliency(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                              ds_explain_result *res)
{
    return attribute(n, x, o, KIND_SALIENCY, res);
}

ds_status ds_explain_gradient_x_input(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                      ds_explain_result *res)
{
    return attribute(n, x, o, KIND_GXI, res);
}

ds_status ds_explain_integrated_gradients(ds_net *n, const ds_tensor *x,
                                          const ds_explain_opts *o, ds_explain_result *res)
{
    return attribute(n, x, o, KIND_IG, res);
}

ds_status ds_explain_smoothgrad(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                ds_explain_result *res)
{
    return attribute(n, x, o, KIND_SMOOTH, res);
}
