/* occlusion.c - occlusion maps: the drop of the explained value when a patch of the input
 * is set to a baseline, every patch of every sample a row of batched forward passes. */
#include "explain.h"

#include <stdlib.h>
#include <string.h>

/* Patch corners along one side of n pixels: 0, s, 2s, ... and the last flush with the end. */
static int64_t corners(int64_t n, int64_t p, int64_t s, int64_t *at)
{
    int64_t k = 0, c = 0;
    for (; c + p < n; c += s)
        at[k++] = c;
    at[k++] = n - p;
    return k;
}

typedef struct {
    const float *x, *base, *fx;
    const int64_t *tgt;
    dsx_layout L;
    int64_t D, K, ph, pw, ny, nx;
    const int64_t *ay, *ax;
    float *sum, *cnt;        /* N x H x W */
} occ_ctx;

/* Row r: sample r / (ny nx), patch r % (ny nx). */
static void patch_of(const occ_ctx *c, int64_t r, int64_t *i, int64_t *y0, int64_t *x0)
{
    int64_t np = c->ny * c->nx, q = r % np;
    *i = r / np;
    *y0 = c->ay[q / c->nx];
    *x0 = c->ax[q % c->nx];
}

static int64_t sample_occ(void *ctx, int64_t r)
{
    occ_ctx *c = ctx;
    return r / (c->ny * c->nx);
}

static void fill_occ(void *ctx, int64_t r, float *dst)
{
    occ_ctx *c = ctx;
    int64_t i, y0, x0, hw = c->L.h * c->L.w;
    patch_of(c, r, &i, &y0, &x0);
    memcpy(dst, c->x + i * c->D, (size_t)c->D * sizeof(float));
    const float *b = c->base + i * c->D;
    for (int64_t p = 0; p < c->L.planes; p++)
        for (int64_t y = y0; y < y0 + c->ph; y++)
            for (int64_t xx = x0; xx < x0 + c->pw; xx++)
                dst[p * hw + y * c->L.w + xx] = b[p * hw + y * c->L.w + xx];
}

static void take_occ(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    (void)j;
    (void)grad;
    occ_ctx *c = ctx;
    int64_t i, y0, x0, hw = c->L.h * c->L.w;
    patch_of(c, r, &i, &y0, &x0);
    float drop = c->fx[i] - out[c->tgt[i]];
    for (int64_t y = y0; y < y0 + c->ph; y++)
        for (int64_t xx = x0; xx < x0 + c->pw; xx++) {
            c->sum[i * hw + y * c->L.w + xx] += drop;
            c->cnt[i * hw + y * c->L.w + xx] += 1;
        }
}

/* Patch side and stride from the options. */
static ds_status patch_size(const ds_explain_opts *d, dsx_layout L, occ_ctx *c, int64_t *stride)
{
    int64_t side = L.h > L.w ? L.h : L.w;
    int64_t p = d->patch ? d->patch : (side / 4 < 8 ? (side / 4 > 0 ? side / 4 : 1) : 8);
    *stride = d->stride ? d->stride : (p / 2 > 0 ? p / 2 : 1);
    if (p > side)
        return dsi_fail(DS_ERR_ARG, "occlusion: patch %lld is larger than the input (%lld x "
                        "%lld)", (long long)p, (long long)L.h, (long long)L.w);
    c->ph = p < L.h ? p : L.h;
    c->pw = p < L.w ? p : L.w;
    return DS_OK;
}

static ds_status occlude(dsx_run *r, const ds_explain_opts *d, occ_ctx *c, int64_t N,
                         int64_t stride, ds_explain_result *res)
{
    int64_t hw = c->L.h * c->L.w;
    int64_t *ay = malloc((size_t)(c->L.h + 1) * sizeof *ay);
    int64_t *ax = malloc((size_t)(c->L.w + 1) * sizeof *ax);
    float *base = malloc((size_t)(N * c->D) * sizeof(float));
    float *cnt = calloc((size_t)(N * hw), sizeof(float));
    ds_status st = DS_OK;
    if (!ay || !ax || !base || !cnt) {
        st = dsi_fail(DS_ERR_NOMEM, "occlusion: out of memory for %lld samples", (long long)N);
        goto done;
    }
    c->ny = corners(c->L.h, c->ph, stride, ay);
    c->nx = corners(c->L.w, c->pw, stride, ax);
    c->ay = ay;
    c->ax = ax;
    for (int64_t i = 0; i < N; i++)
        dsx_baseline(d, c->L, c->x + i * c->D, base + i * c->D);
    c->base = base;
    c->cnt = cnt;
    c->sum = ds_tensor_data(res->map);
    dsx_pass p = {.fill = fill_occ, .sample = sample_occ, .take = take_occ, .ctx = c};
    if ((st = dsx_rows(r, N * c->ny * c->nx, &p)))
        goto done;
    for (int64_t q = 0; q < N * hw; q++)
        c->sum[q] /= cnt[q];   /* every pixel lies under a patch */
done:
    free(ay);
    free(ax);
    free(base);
    free(cnt);
    return st;
}

ds_status ds_explain_occlusion(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                               ds_explain_result *res)
{
    ds_explain_opts d;
    dsx_run r;
    int64_t N;
    ds_status st = dsx_begin_result(n, x, o, &d, &r, res, &N);
    if (st)
        return st;
    int64_t stride;
    occ_ctx c = {.x = ds_tensor_data((ds_tensor *)x), .L = dsx_sample_layout(r.in), .D = r.D,
                 .K = r.K};
    int64_t shape[2] = {c.L.h, c.L.w};
    bool one_axis = r.in->ndim == 2;
    if ((st = patch_size(&d, c.L, &c, &stride)))
        goto done;
    if (!(res->map = dsx_map(N, one_axis ? 1 : 2, one_axis ? shape + 1 : shape, "occlusion"))) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    c.tgt = res->target;
    c.fx = ds_tensor_data(res->score);
    if (!(st = dsx_targets(&r, x, &d, res->target, ds_tensor_data(res->score))))
        st = occlude(&r, &d, &c, N, stride, res);
done:
    dsx_end(&r);
    if (st)
        ds_explain_result_free(res);
    return st;
}
