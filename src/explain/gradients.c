/* gradients.c - gradient attributions: saliency, gradient x input and SmoothGrad, each a
 * batched backward pass over rows (samples, noisy copies); integrated.c has IG. */
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_SALIENCY, KIND_GXI, KIND_SMOOTH } grad_kind;

/* Row r is copy r % per of sample r / per. */
typedef struct {
    grad_kind kind;
    const float *x;          /* N x D samples */
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
    if (c->kind == KIND_SMOOTH) {   /* noise from (seed, sample, copy) alone */
        ds_rng g;
        ds_rng_seed(&g, dsi_mix64(dsi_mix64(c->seed) ^ dsi_mix64((uint64_t)i * 65537u + (uint64_t)k)));
        ds_rng_fill_normal(&g, dst, D);
        for (int64_t j = 0; j < D; j++)
            dst[j] = x[j] + c->sigma[i] * dst[j];
    } else {
        memcpy(dst, x, (size_t)D * sizeof(float));
    }
}

static int64_t sample_row(void *ctx, int64_t r)
{
    grad_ctx *c = ctx;
    return r / c->per;
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

static ds_status attribute(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                           grad_kind kind, ds_explain_result *res)
{
    ds_explain_opts d;
    dsx_run r;
    int64_t N;
    ds_status st = dsx_begin_result(n, x, o, &d, &r, res, &N);
    if (st)
        return st;
    float *sigma = NULL;
    grad_ctx c = {kind, ds_tensor_data((ds_tensor *)x), NULL, r.D, 1, NULL, NULL, d.seed};
    if (!(res->map = dsx_map(N, r.in->ndim - 1, r.in->shape + 1, "explain"))) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    c.acc = ds_tensor_data(res->map);
    c.tgt = res->target;
    if ((st = dsx_targets(&r, x, &d, res->target, ds_tensor_data(res->score))))
        goto done;
    if (kind == KIND_SMOOTH) {
        c.per = d.samples ? d.samples : 25;
        if (!(sigma = malloc((size_t)N * sizeof(float)))) {
            st = dsi_fail(DS_ERR_NOMEM, "smoothgrad: out of memory");
            goto done;
        }
        noise_sigmas(c.x, N, r.D, d.noise > 0 ? d.noise : 0.15, sigma);
        c.sigma = sigma;
    }
    dsx_pass p = {.fill = fill_row, .seed = seed_row, .sample = sample_row, .take = take_row,
                  .ctx = &c};
    if ((st = dsx_rows(&r, N * c.per, &p)))
        goto done;
    if (kind == KIND_SMOOTH)
        for (int64_t q = 0; q < N * r.D; q++)
            c.acc[q] /= (float)c.per;
done:
    dsx_end(&r);
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

ds_status ds_explain_smoothgrad(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                ds_explain_result *res)
{
    return attribute(n, x, o, KIND_SMOOTH, res);
}
