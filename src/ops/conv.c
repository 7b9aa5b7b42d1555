/* conv.c - N-d convolution op (1D, 2D, 3D; PyTorch's conv1d/2d/3d with explicit low/high
 * padding per axis): shape rule, forward, backward; and the im2col helpers it shares with
 * the transposed convolution.
 *
 * x [N, C, S...], w [F, C, K...], optional b [F] -> y [N, F, O...] with, per axis,
 *   O = floor((S + lo + hi - d (K - 1) - 1) / s) + 1.
 * Per sample (or sub-group of samples, columns side by side): col [C*prod(K), prod(O)] =
 * im2col(x), y = W col (+ b). Backward: dW += dy col^T, dcol = W^T dy then col2im into dx,
 * db += sum of dy over N and O. How the batch is split is described at conv_plan; every
 * output element is computed the same way for any thread count, bit for bit.
 *
 * Attributes (dsi_conv_attr): nd; per spatial axis i < nd stride, pad_lo, pad_hi, dilation;
 * act, a fused activation (DSI_FUSE_NONE or DSI_FUSE_RELU: y = relu(conv + b), its backward
 * masks dy by y > 0 while it regroups dy, in the same pass as the bias gradient). */
#include "conv_impl.h"

/* ---- im2col / col2im ---- */

/* dst[0..n) = src[0..n): rows of columns are often short (tens of floats), where a call to
 * memcpy costs more than the copy; blocks of 8 compile to vector moves. */
static inline void copy_row(float *restrict dst, const float *restrict src, int64_t n)
{
    if (n >= 256) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            dst[i + j] = src[i + j];
    for (; i < n; i++)
        dst[i] = src[i];
}

/* Columns o in [lo, hi) along one axis read image positions o * s + off inside [0, n_in). */
static void valid_range(int64_t n_out, int64_t n_in, int64_t s, int64_t off, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t r = n_in - 1 - off;
    int64_t b = r < 0 ? 0 : r / s + 1;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

DS_HOT
void dsi_im2col(const dsi_conv_geom *q, const float *img, float *col, int64_t ld)
{
    const int64_t O0 = q->out[0], O1 = q->out[1], O2 = q->out[2];
    const int64_t I0 = q->in[0], I1 = q->in[1], I2 = q->in[2], s2 = q->s[2];
    float *row = col;
    for (int64_t k0 = 0; k0 < q->k[0]; k0++)
        for (int64_t k1 = 0; k1 < q->k[1]; k1++)
            for (int64_t k2 = 0; k2 < q->k[2]; k2++, row += ld) {
                int64_t off = k2 * q->d[2] - q->p[2], lo, hi;
                valid_range(O2, I2, s2, off, &lo, &hi);
                float *dst = row;
                for (int64_t o0 = 0; o0 < O0; o0++) {
                    int64_t i0 = o0 * q->s[0] - q->p[0] + k0 * q->d[0];
                    for (int64_t o1 = 0; o1 < O1; o1++, dst += O2) {
                        int64_t i1 = o1 * q->s[1] - q->p[1] + k1 * q->d[1];
                        if (i0 < 0 || i0 >= I0 || i1 < 0 || i1 >= I1) {
                            memset(dst, 0, (size_t)O2 * sizeof *dst);
                            continue;
                        }
                        const float *src = img + (i0 * I1 + i1) * I2;
                        for (int64_t o = 0; o < lo; o++)
                            dst[o] = 0;
                        if (s2 == 1)
                            copy_row(dst + lo, src + lo + off, hi - lo);
                        else
                            for (int64_t o = lo; o < hi; o++)
                                dst[o] = src[o * s2 + off];
                        for (int64_t o = hi; o < O2; o++)
                            dst[o] = 0;
                    }
                }
            }
}

DS_HOT
void dsi_col2im(const dsi_conv_geom *q, const float *col, int64_t ld, float *img)
{
    const int64_t O0 = q->out[0], O1 = q->out[1], O2 = q->out[2];
    const int64_t I0 = q->in[0], I1 = q->in[1], I2 = q->in[2], s2 = q->s[2];
    const float *row = col;
    for (int64_t k0 = 0; k0 < q->k[0]; k0++)
        for (int64_t k1 = 0; k1 < q->k[1]; k1++)
            for (int64_t k2 = 0; k2 < q->k[2]; k2++, row += ld) {
                int64_t off = k2 * q->d[2] - q->p[2], lo, hi;
                valid_range(O2, I2, s2, off, &lo, &hi);
                const float *src = row;
                for (int64_t o0 = 0; o0 < O0; o0++) {
                    int64_t i0 = o0 * q->s[0] - q->p[0] + k0 * q->d[0];
                    for (int64_t o1 = 0; o1 < O1; o1++, src += O2) {
                        int64_t i1 = o1 * q->s[1] - q->p[1] + k1 * q->d[1];
                        if (i0 < 0 || i0 >= I0 || i1 < 0 || i1 >= I1)
                            continue;
                        float *dst = img + (i0 * I1 + i1) * I2;
                        if (s2 == 1) {
                            float *d = dst + off;
                            for (int64_t o = lo; o < hi; o++)
                                d[o] += src[o];
                        } else {
                            for (int64_t o = lo; o < hi; o++)
                                dst[o * s2 + off] += src[o];
                        }
                    }
                }
            }
}

bool dsi_conv_pointwise(const dsi_conv_geom *q)
{
    for (int i = 0; i < 3; i++)
        if (q->k[i] != 1 || q->s[i] != 1 || q->p[i] != 0 || q->in[i] != q->out[i])
            return false;
    return true;
}

void dsi_sgemm_tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                     float *c, int64_t ldc)
{
    /* Small products run serially (OpenBLAS keeps those below 2^18 multiply-adds on one
     * thread too, so they do not depend on the thread count either). */
    if (m * n * k <= ((int64_t)1 << 18)) {
        dsi_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Tiles of at most 256 x 256, halved down to 64 until there are 8 of them: a function
     * of the shape only. */
    int64_t tm = m < 256 ? m : 256, tn = n < 256 ? n : 256;
    while (((m + tm - 1) / tm) * ((n + tn - 1) / tn) < 8 && (tm > 64 || tn > 64)) {
        if (tn >= tm)
            tn = (tn + 1) / 2;
        else
            tm = (tm + 1) / 2;
    }
    int64_t mt = (m + tm - 1) / tm, nt = (n + tn - 1) / tn;
    /* No if() clause: inside an inactive region OpenBLAS would thread each tile itself. */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < mt * nt; t++) {
        int64_t i = t / nt * tm, j = t % nt * tn;
        int64_t mi = m - i < tm ? m - i : tm, nj = n - j < tn ? n - j : tn;
        dsi_sgemm(ta, tb, mi, nj, k, alpha, ta ? a + i : a + i * lda, lda,
                  tb ? b + j * ldb : b + j, ldb, beta, c + i * ldc + j, ldc);
    }
}

/* Enough columns per sgemm to keep it efficient (about 8K), at most ~64 MB of scratch. */
int64_t dsi_conv_group(int64_t batch, int64_t out_n, int64_t floats_per_col)
{
    const int64_t want_cols = 8192, max_floats = (int64_t)16 << 20;
    int64_t g = (want_cols + out_n - 1) / out_n;
    int64_t cap = max_floats / (floats_per_col * out_n);
    if (g > cap)
        g = cap;
    if (g > batch)
        g = batch;
    return g < 1 ? 1 : g;
}

/* ---- the op ---- */

/* Geometry from the input and weight shapes and the attributes (no checks). */
static void conv_geom(const ds_node *y, dsi_conv_geom *q)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    const dsi_conv_attr *at = &y->attr.conv;
    int nd = at->nd;
    q->in_n = q->out_n = q->k_n = 1;
    for (int a = 0; a < 3; a++) {
        int i = a - (3 - nd);   /* axis among the nd spatial ones, < 0: a dummy axis */
        if (i < 0) {
            q->in[a] = q->out[a] = q->k[a] = q->s[a] = q->d[a] = 1;
            q->p[a] = 0;
        } else {
            q->in[a] = x->shape[2 + i];
            q->k[a] = w->shape[2 + i];
            q->s[a] = at->stride[i];
            q->p[a] = at->pad_lo[i];
            q->d[a] = at->dilation[i];
            int64_t span = q->in[a] + q->p[a] + at->pad_hi[i] - q->d[a] * (q->k[a] - 1) - 1;
            q->out[a] = span < 0 ? 0 : span / q->s[a] + 1;
        }
        q->in_n *= q->in[a];
        q->out_n *= q->out[a];
        q->k_n *= q->k[a];
    }
}

/* "3x3" from nd values */
static const char *dims_str(int nd, const int64_t *v, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < nd; i++)
        dsi_snprintf_cat(buf, cap, "%s%lld", i ? "x" : "", (long long)v[i]);
    return buf;
}

static ds_status conv_shape(ds_node *y)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    const dsi_conv_attr *at = &y->attr.conv;
    int nd = at->nd;
    char b1[64], b2[64], b3[64];
    if (x->ndim != nd + 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s is not [batch, channels, %s] for a %dD "
                             "convolution", dsi_shape_str(x->ndim, x->shape),
                             nd == 1 ? "length" : nd == 2 ? "height, width"
                                                          : "depth, height, width", nd);
    if (w->ndim != nd + 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "weight %s is not [filters, channels, %s]",
                             dsi_shape_str(w->ndim, w->shape), nd == 1 ? "k" : nd == 2 ? "kh, kw"
                                                                                       : "kd, kh, kw");
    if (w->shape[1] != x->shape[1])
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s has %lld channels, weight %s expects %lld",
                             dsi_shape_str(x->ndim, x->shape), (long long)x->shape[1],
                             dsi_shape_str(w->ndim, w->shape), (long long)w->shape[1]);
    if (y->n_in == 3 && (y->in[2]->ndim != 1 || y->in[2]->shape[0] != w->shape[0]))
        return dsi_fail_node(y, DS_ERR_SHAPE, "bias %s does not fit weight %s",
                             dsi_shape_str(y->in[2]->ndim, y->in[2]->shape),
                             dsi_shape_str(w->ndim, w->shape));
    for (int i = 0; i < nd; i++)
        if (at->stride[i] < 1 || at->dilation[i] < 1 || at->pad_lo[i] < 0 || at->pad_hi[i] < 0)
            return dsi_fail_node(y, DS_ERR_ARG, "axis %d: stride %lld, dilation %lld and "
                                 "padding %lld/%lld (stride and dilation >= 1, padding >= 0)",
                                 i, (long long)at->stride[i], (long long)at->dilation[i],
                                 (long long)at->pad_lo[i], (long long)at->pad_hi[i]);
    int64_t s[DS_MAX_DIMS] = {x->shape[0], w->shape[0]};
    int64_t padded[3], span[3];
    bool fits = true;
    for (int i = 0; i < nd; i++) {
        padded[i] = x->shape[2 + i] + at->pad_lo[i] + at->pad_hi[i];
        span[i] = at->dilation[i] * (w->shape[2 + i] - 1) + 1;
        fits &= padded[i] >= span[i];
        if (fits)
            s[2 + i] = (padded[i] - span[i]) / at->stride[i] + 1;
    }
    if (!fits)
        return dsi_fail_node(y, DS_ERR_SHAPE, "kernel %s (dilated: %s) is larger than the padded "
                             "input %s (input %s, weight %s)", dims_str(nd, w->shape + 2, b1, sizeof b1),
                             dims_str(nd, span, b2, sizeof b2), dims_str(nd, padded, b3, sizeof b3),
                             dsi_shape_str(x->ndim, x->shape), dsi_shape_str(w->ndim, w->shape));
    dsi_set_shape(y, nd + 2, s);
    return DS_OK;
}

/* Work split. Batch 1: one sample, sgemms split into fixed tiles (dsi_sgemm_tiled).
 * Batch >= 2: nch = min(N, 8) fixed chunks of whole samples, each run by one thread with
 * single-threaded sgemms on sub-groups of gs samples (their columns side by side), in one
 * parallel region; dW is summed per chunk, then over chunks in order. Chunks and sub-groups
 * are functions of the shapes only: the thread count only decides who runs which chunk. */
typedef struct {
    int64_t N, C, F, ck, O;
    int64_t nch, gs;        /* chunks, samples per sgemm */
    int64_t per_thread;     /* floats: col [ck, gs*O] + Y [F, gs*O] */
    int64_t bias;           /* floats: nch partial db [F] in double, at the start */
    int64_t partials;       /* floats: the bias partials, then nch partial dW [F, ck] */
} conv_plan;

static void conv_plan_of(const ds_node *y, const dsi_conv_geom *q, conv_plan *p)
{
    p->N = y->in[0]->shape[0];
    p->C = y->in[0]->shape[1];
    p->F = y->in[1]->shape[0];
    p->ck = p->C * q->k_n;
    p->O = q->out_n;
    p->nch = p->N < 8 ? p->N : 8;
    int64_t chunk = (p->N + p->nch - 1) / p->nch;
    int64_t gs = (1024 + p->O - 1) / p->O, cap = ((int64_t)4 << 20) / ((p->ck + p->F) * p->O);
    if (gs > cap)
        gs = cap;
    if (gs > chunk)
        gs = chunk;
    p->gs = gs < 1 ? 1 : gs;
    p->per_thread = (p->ck + p->F) * p->gs * p->O;
    p->bias = y->n_in == 3 ? (2 * p->nch * p->F + 15) / 16 * 16 : 0;   /* keeps 64-byte alignment */
    p->partials = p->bias + (p->N > 1 ? p->nch * p->F * p->ck : 0);
}

/* ---- algorithm ---- */
static _Atomic int conv_algo = DS_CONV_AUTO;
void ds_set_conv_algo(ds_conv_algo a) { conv_algo = a == DS_CONV_IM2COL ? DS_CONV_IM2COL : DS_CONV_AUTO; }
ds_conv_algo ds_get_conv_algo(void) { return (ds_conv_algo)conv_algo; }

/* Winograd when it is on, applies to the geometry, and the planned scratch holds it for one
 * thread at least (it always does unless the batch grew since planning): decided per pass. */
static bool use_winograd(const ds_node *y, const dsi_conv_geom *q)
{
    int64_t N = y->in[0]->shape[0], C = y->in[0]->shape[1], F = y->in[1]->shape[0];
    return conv_algo == DS_CONV_AUTO && dsi_wino_applies(q, C, F) &&
           y->g->scratch_bytes >= dsi_wino_scratch(q, N, C, F, 1);
}

/* The direct kernels (conv_direct.c) where im2col + sgemm loses: 1-D and 2-D, stride 1, a
 * kernel larger than 1x1 with few taps per filter (C x K <= 256: im2col would copy each input
 * value once per tap for little arithmetic per copy), at most 64 filters, and an output
 * row long enough that the flat grid's dropped columns ((KW-1) dw of each Wp) stay below
 * half. Winograd, where it applies, is tried first. */
static bool direct_rule(const dsi_conv_geom *q, int64_t C, int64_t F)
{
    for (int a = 0; a < 3; a++)
        if (q->s[a] != 1)
            return false;
    int64_t drop = (q->k[2] - 1) * q->d[2];
    return q->in[0] == 1 && q->k[0] == 1 && q->k_n > 1 && C * q->k_n <= 256 && F <= 64 &&
           q->out[2] >= drop;
}

static bool use_direct(const ds_node *y, const dsi_conv_geom *q)
{
    int64_t N = y->in[0]->shape[0], C = y->in[0]->shape[1], F = y->in[1]->shape[0];
    return conv_algo == DS_CONV_AUTO && direct_rule(q, C, F) &&
           y->g->scratch_bytes >= dsi_direct_scratch(q, N, C, F, 1);
}

int dsi_conv_algo_used(const ds_node *y)
{
    dsi_conv_geom q;
    conv_geom(y, &q);
    return use_winograd(y, &q) ? DSI_CONV_WINOGRAD : use_direct(y, &q) ? DSI_CONV_DIRECT
                                                                        : DSI_CONV_IM2COL;
}

int dsi_conv_wino_tile(const ds_node *y)
{
    dsi_conv_geom q;
    conv_geom(y, &q);
    return use_winograd(y, &q) ? dsi_wino_tile(&q, y->in[0]->shape[1], y->in[1]->shape[0])
                               : 0;
}

size_t dsi_conv_cache_floats(const ds_node *y)
{
    if (y->op != DS_OP_CONV || y->in[1]->op != DS_OP_PARAM)
        return 0;
    dsi_conv_geom q;
    conv_geom(y, &q);
    return dsi_wino_cache_floats(&q, y->in[0]->shape[1], y->in[1]->shape[0]);
}

void dsi_conv_prepare(ds_node *y)
{
    dsi_conv_geom q;
    conv_geom(y, &q);
    if (y->wino_u && use_winograd(y, &q))
        dsi_wino_prepare(y, &q);
}

/* Scratch for any algorithm, so that ds_set_conv_algo may change between passes. */
static size_t conv_scratch(const ds_node *y)
{
    dsi_conv_geom q;
    conv_plan p;
    conv_geom(y, &q);
    conv_plan_of(y, &q, &p);
    int64_t nth = p.N > 1 ? dsi_threads() : 1;
    size_t im2col = (size_t)(p.partials + nth * p.per_thread) * sizeof(float);
    if (direct_rule(&q, p.C, p.F)) {
        size_t direct = dsi_direct_scratch(&q, p.N, p.C, p.F, dsi_threads());
        im2col = direct > im2col ? direct : im2col;
    }
    if (!dsi_wino_applies(&q, p.C, p.F))
        return im2col;
    size_t wino = dsi_wino_scratch(&q, p.N, p.C, p.F, dsi_threads());
    return wino > im2col ? wino : im2col;
}

/* Threads for the chunk loop: no more than the scratch planned for (the count may have
 * been raised since planning). */
DS_OMP_ONLY static int conv_threads(const ds_node *y, const conv_plan *p)
{
    int64_t avail = ((int64_t)(y->g->scratch_bytes / sizeof(float)) - p->partials) / p->per_thread;
    int64_t nth = omp_get_max_threads();
    if (nth > avail)
        nth = avail;
    if (nth > p->nch)
        nth = p->nch;
    return nth < 1 ? 1 : (int)nth;
}

/* Columns of samples n0 .. n0+gn-1 side by side: col [C*k_n, gn*out_n]. */
static void group_im2col(const dsi_conv_geom *q, const float *x, int64_t C, int64_t n0,
                         int64_t gn, float *col)
{
    int64_t ld = gn * q->out_n;
    for (int64_t j = 0; j < gn; j++)
        for (int64_t c = 0; c < C; c++)
            dsi_im2col(q, x + ((n0 + j) * C + c) * q->in_n, col + c * q->k_n * ld + j * q->out_n,
                       ld);
}

/* dst[o] = act(src[o] + b) along one row of O outputs (dst may be src). */
static void row_out(float *dst, const float *src, int64_t O, float b, int act)
{
    if (act == DSI_FUSE_RELU) {
        for (int64_t o = 0; o < O; o++) {
            float v = src[o] + b;
            dst[o] = v > 0 ? v : 0.0f;
        }
    } else {
        for (int64_t o = 0; o < O; o++)
            dst[o] = src[o] + b;
    }
}

/* The gradient at the convolution's output for samples n0 .. n0+gn-1 as an [F, gn*O] matrix:
 * dy itself for one sample without an activation, else regrouped into buf (masked by y > 0
 * for a fused ReLU). Adds each filter's sum over the group into db[f] when db is set. */
DS_HOT
static const float *group_dy(const float *dy, const float *y, int act, int64_t n0, int64_t gn,
                             int64_t F, int64_t O, float *buf, double *db)
{
    int64_t ld = gn * O;
    if (gn == 1 && act == DSI_FUSE_NONE) {
        const float *g = dy + n0 * F * O;
        if (db)
            for (int64_t f = 0; f < F; f++) {
                const float *r = g + f * O;
                float t = 0;
#pragma omp simd reduction(+ : t)
                for (int64_t o = 0; o < O; o++)
                    t += r[o];
                db[f] += t;
            }
        return g;
    }
    for (int64_t j = 0; j < gn; j++)
        for (int64_t f = 0; f < F; f++) {
            const int64_t at = ((n0 + j) * F + f) * O;
            float t = dsi_conv_dy_row(buf + f * ld + j * O, dy + at, y + at, O, act);
            if (db)
                db[f] += t;
        }
    return buf;
}

/* Batch 1: tiled sgemm straight into y. */
DS_HOT
static void conv_forward_one(ds_node *y, const dsi_conv_geom *q, const conv_plan *p)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    const float *cn = x->data;
    if (!dsi_conv_pointwise(q)) {
        float *col = y->g->scratch;
#pragma omp parallel for schedule(static) if (p->ck * p->O > DS_PAR_MIN)
        for (int64_t c = 0; c < p->C; c++)
            dsi_im2col(q, x->data + c * q->in_n, col + c * q->k_n * p->O, p->O);
        cn = col;
    }
    dsi_sgemm_tiled(false, false, p->F, p->O, p->ck, 1.0f, w->data, p->ck, cn, p->O, 0.0f,
                    y->data, p->O);
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    int act = y->attr.conv.act;
    if (bias || act) {
        float *yd = y->data;
#pragma omp parallel for schedule(static) if (p->F * p->O > DS_PAR_MIN)
        for (int64_t f = 0; f < p->F; f++)
            row_out(yd + f * p->O, yd + f * p->O, p->O, bias ? bias[f] : 0.0f, act);
    }
}

DS_HOT
static void conv_forward(ds_node *y)
{
    dsi_conv_geom q;
    conv_plan p;
    conv_geom(y, &q);
    if (use_winograd(y, &q)) {
        dsi_wino_forward(y, &q);
        return;
    }
    if (use_direct(y, &q)) {
        dsi_direct_forward(y, &q);
        return;
    }
    conv_plan_of(y, &q, &p);
    if (p.N == 1) {
        conv_forward_one(y, &q, &p);
        return;
    }
    const ds_node *x = y->in[0], *w = y->in[1];
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    const int64_t C = p.C, F = p.F, ck = p.ck, O = p.O, N = p.N, nch = p.nch, gs = p.gs;
    const bool pw = dsi_conv_pointwise(&q);
    const int act = y->attr.conv.act;
    float *base = y->g->scratch + p.partials, *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(conv_threads(y, &p))
    for (int64_t c = 0; c < nch; c++) {
        float *col = base + omp_get_thread_num() * p.per_thread, *Y = col + ck * gs * O;
        int64_t hi = (c + 1) * N / nch;
        for (int64_t n0 = c * N / nch; n0 < hi; n0 += gs) {
            int64_t gn = hi - n0 < gs ? hi - n0 : gs, ld = gn * O;
            if (gn == 1) {
                float *yn = yd + n0 * F * O;
                const float *cn = x->data + n0 * C * q.in_n;
                if (!pw) {
                    group_im2col(&q, x->data, C, n0, 1, col);
                    cn = col;
                }
                dsi_sgemm(false, false, F, O, ck, 1.0f, w->data, ck, cn, O, 0.0f, yn, O);
                if (bias || act)
                    for (int64_t f = 0; f < F; f++)
                        row_out(yn + f * O, yn + f * O, O, bias ? bias[f] : 0.0f, act);
                continue;
            }
            group_im2col(&q, x->data, C, n0, gn, col);
            dsi_sgemm(false, false, F, ld, ck, 1.0f, w->data, ck, col, ld, 0.0f, Y, ld);
            for (int64_t j = 0; j < gn; j++)
                for (int64_t f = 0; f < F; f++)
                    row_out(yd + ((n0 + j) * F + f) * O, Y + f * ld + j * O, O,
                            bias ? bias[f] : 0.0f, act);
        }
    }
}

/* Batch 1: dW += dy col^T, dx = col2im(W^T dy) with tiled sgemms; db into *dbs. */
DS_HOT
static void conv_backward_one(ds_node *y, const dsi_conv_geom *q, const conv_plan *p, double *dbs)
{
    ds_node *x = y->in[0], *w = y->in[1];
    const int64_t C = p->C, F = p->F, ck = p->ck, O = p->O;
    const bool pw = dsi_conv_pointwise(q);
    float *col = y->g->scratch + p->partials;
    const float *dy = group_dy(y->grad, y->data, y->attr.conv.act, 0, 1, F, O, col + ck * O, dbs);
    if (w->grad) {
        const float *cg = x->data;
        if (!pw) {
#pragma omp parallel for schedule(static) if (ck * O > DS_PAR_MIN)
            for (int64_t c = 0; c < C; c++)
                dsi_im2col(q, x->data + c * q->in_n, col + c * q->k_n * O, O);
            cg = col;
        }
        dsi_sgemm_tiled(false, true, F, ck, O, 1.0f, dy, O, cg, O, 1.0f, w->grad, ck);
    }
    if (!x->grad)
        return;
    if (pw) {
        dsi_sgemm_tiled(true, false, C, O, F, 1.0f, w->data, C, dy, O, 1.0f, x->grad, O);
        return;
    }
    dsi_sgemm_tiled(true, false, ck, O, F, 1.0f, w->data, ck, dy, O, 0.0f, col, O);
#pragma omp parallel for schedule(static) if (ck * O > DS_PAR_MIN)
    for (int64_t c = 0; c < C; c++)
        dsi_col2im(q, col + c * q->k_n * O, O, x->grad + c * q->in_n);
}

DS_HOT
static void conv_backward(ds_node *y)
{
    dsi_conv_geom q;
    conv_plan p;
    conv_geom(y, &q);
    if (use_winograd(y, &q)) {
        dsi_wino_backward(y, &q);
        return;
    }
    if (use_direct(y, &q)) {
        dsi_direct_backward(y, &q);
        return;
    }
    conv_plan_of(y, &q, &p);
    ds_node *x = y->in[0], *w = y->in[1];
    const int64_t C = p.C, F = p.F, ck = p.ck, O = p.O, N = p.N, nch = p.nch, gs = p.gs;
    const int act = y->attr.conv.act;
    float *db = y->n_in == 3 ? y->in[2]->grad : NULL;
    double *dbs = (double *)y->g->scratch;   /* nch partial bias gradients */
    if (!x->grad && !w->grad && !db)
        return;
    if (db)
        memset(dbs, 0, (size_t)(nch * F) * sizeof *dbs);
    if (N == 1) {
        conv_backward_one(y, &q, &p, db ? dbs : NULL);
    } else {
        const bool pw = dsi_conv_pointwise(&q);
        float *part = y->g->scratch + p.bias, *base = y->g->scratch + p.partials;
        float *dx = x->grad, *dw = w->grad;
#pragma omp parallel for schedule(static) num_threads(conv_threads(y, &p))
        for (int64_t c = 0; c < nch; c++) {
            float *col = base + omp_get_thread_num() * p.per_thread, *dY = col + ck * gs * O;
            float *pc = part + c * F * ck;
            if (dw)
                memset(pc, 0, (size_t)(F * ck) * sizeof *pc);
            int64_t hi = (c + 1) * N / nch;
            for (int64_t n0 = c * N / nch; n0 < hi; n0 += gs) {
                int64_t gn = hi - n0 < gs ? hi - n0 : gs, ld = gn * O;
                const float *dyg = group_dy(y->grad, y->data, act, n0, gn, F, O, dY,
                                            db ? dbs + c * F : NULL);
                if (dw) {
                    const float *cg = col;
                    if (pw && gn == 1)
                        cg = x->data + n0 * C * q.in_n;
                    else
                        group_im2col(&q, x->data, C, n0, gn, col);
                    dsi_sgemm(false, true, F, ck, ld, 1.0f, dyg, ld, cg, ld, 1.0f, pc, ck);
                }
                if (!dx)
                    continue;
                if (pw && gn == 1) {
                    dsi_sgemm(true, false, C, O, F, 1.0f, w->data, C, dyg, O, 1.0f,
                              dx + n0 * C * O, O);
                    continue;
                }
                dsi_sgemm(true, false, ck, ld, F, 1.0f, w->data, ck, dyg, ld, 0.0f, col, ld);
                for (int64_t j = 0; j < gn; j++)
                    for (int64_t ci = 0; ci < C; ci++)
                        dsi_col2im(&q, col + ci * q.k_n * ld + j * O, ld,
                                   dx + ((n0 + j) * C + ci) * q.in_n);
            }
        }
        if (dw)
            dsi_fold_partials(part, nch, F * ck, dw, true);
    }
    if (db)
        dsi_fold_bias(dbs, nch, F, db);
}

DS_HOT
void dsi_fold_partials(float *part, int64_t nch, int64_t n, float *out, bool add)
{
#pragma omp parallel for schedule(static) if (nch * n > DS_PAR_MIN)
    for (int64_t e = 0; e < n; e++) {
        float s = part[e];
        for (int64_t c = 1; c < nch; c++)
            s += part[c * n + e];
        out[e] = add ? out[e] + s : s;
    }
}

DS_HOT
void dsi_fold_bias(const double *dbs, int64_t nch, int64_t F, float *db)
{
    for (int64_t f = 0; f < F; f++) {
        double s = 0;
        for (int64_t c = 0; c < nch; c++)
            s += dbs[c * F + f];
        db[f] += (float)s;
    }
}

/* db[f] += sum over n and the O positions of dy[n, f, :]: the bias gradient. Per-sample sums
 * in float, their total in double; each f by one thread. */
DS_HOT
void dsi_channel_sum_add(const float *dy, int64_t N, int64_t F, int64_t O, float *db)
{
#pragma omp parallel for schedule(static) if (N * F * O > DS_PAR_MIN)
    for (int64_t f = 0; f < F; f++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) {
            const float *r = dy + (n * F + f) * O;
            float t = 0;
#pragma omp simd reduction(+ : t)
            for (int64_t o = 0; o < O; o++)
                t += r[o];
            s += t;
        }
        db[f] += (float)s;
    }
}

/* x and w, and y itself for the mask of a fused activation. */
static uint32_t conv_reads(const ds_node *y)
{
    bool act = y->attr.conv.act != DSI_FUSE_NONE;
    return DSI_READS_IN(0) | DSI_READS_IN(1) | (act ? DSI_READS_OUT : 0);
}

const ds_op_def dsi_op_conv = {
    .shape = conv_shape, .cpu = {conv_forward, conv_backward},
    .scratch_bytes = conv_scratch, .bwd_reads = conv_reads,
};

ds_node *ds_conv_op(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int nd, const int *stride,
                    const int *pad_lo, const int *pad_hi, const int *dilation)
{
    return dsi_conv_fused(g, x, w, b, nd, stride, pad_lo, pad_hi, dilation, DSI_FUSE_NONE);
}

ds_node *dsi_conv_fused(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int nd,
                        const int *stride, const int *pad_lo, const int *pad_hi,
                        const int *dilation, int act)
{
    if (!g || !x || !w || g->status != DS_OK)
        return NULL;
    if (nd < 1 || nd > 3) {
        dsi_fail(DS_ERR_ARG, "conv: %d spatial dimensions (1, 2 or 3)", nd);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    dsi_conv_attr at = { .nd = nd, .act = act };
    for (int i = 0; i < nd; i++) {
        at.stride[i] = stride ? stride[i] : 1;
        at.pad_lo[i] = pad_lo ? pad_lo[i] : 0;
        at.pad_hi[i] = pad_hi ? pad_hi[i] : 0;
        at.dilation[i] = dilation ? dilation[i] : 1;
    }
    return dsi_node(g, DS_OP_CONV, b ? 3 : 2, (ds_node *[]){x, w, b}, &at);
}
