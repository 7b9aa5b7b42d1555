/* pool.c - pooling ops (max, average, sum, L2 over 1-3 spatial axes) and global pooling:
 * shape rules, forward, backward, and the Keras-named layer builders. */
#include "reduce.h"

#include <math.h>

/* ---- pool: x [N, C, s1..snd] -> y [N, C, o1..ond] ----
 * Attributes (dsi_pool_attr): nd, kind, padding mode, exclude_pad, and per spatial axis (in
 * order, nd of them) size, stride and explicit pad. The shape rule works out the padding
 * before and after each axis from the mode into state.pool.lo and hi.
 * Every window holds at least one real pixel (explicit pad <= size/2, SAME pads less than
 * a window), so max never returns -inf. */

/* Geometry normalized to 3 spatial axes: missing leading axes have extent 1, window 1. */
typedef struct {
    int64_t planes;          /* N * C */
    int64_t in[3], out[3], k[3], s[3], lo[3], hi[3];
    int64_t in_n, out_n;     /* spatial sizes of one plane */
} pool_geom;

static void pool_geometry(const ds_node *y, pool_geom *p)
{
    const ds_node *x = y->in[0];
    const dsi_pool_attr *at = &y->attr.pool;
    int nd = at->nd;
    p->planes = x->shape[0] * x->shape[1];
    p->in_n = p->out_n = 1;
    for (int a = 0; a < 3; a++) {
        int j = a - (3 - nd);   /* index among the nd real axes, < 0 for padding axes */
        if (j < 0) {
            p->in[a] = p->out[a] = p->k[a] = p->s[a] = 1;
            p->lo[a] = p->hi[a] = 0;
        } else {
            p->in[a] = x->shape[2 + j];
            p->out[a] = y->shape[2 + j];
            p->k[a] = at->size[j];
            p->s[a] = at->stride[j];
            p->lo[a] = y->state.pool.lo[j];
            p->hi[a] = y->state.pool.hi[j];
        }
        p->in_n *= p->in[a];
        p->out_n *= p->out[a];
    }
}

static const char *pool_kind_word(int kind)
{
    static const char *const w[] = { "max", "average", "sum", "l2" };
    return kind >= 0 && kind < 4 ? w[kind] : "?";
}

static ds_status pool_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    const dsi_pool_attr *at = &y->attr.pool;
    int nd = at->nd;
    if (x->ndim != nd + 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "%dD pooling needs input [N, C, %s], got %s", nd,
                             nd == 1 ? "L" : nd == 2 ? "H, W" : "D, H, W",
                             dsi_shape_str(x->ndim, x->shape));
    int64_t s[DS_MAX_DIMS] = { x->shape[0], x->shape[1] };
    for (int j = 0; j < nd; j++) {
        int64_t in = x->shape[2 + j], k = at->size[j], st = at->stride[j], lo, hi, out;
        switch (at->padding) {
        case DS_PAD_SAME: {
            out = (in + st - 1) / st;
            int64_t total = (out - 1) * st + k - in;
            if (total < 0)
                total = 0;
            lo = total / 2;
            hi = total - lo;
            break;
        }
        case DS_PAD_VALID:
            lo = hi = 0;
            out = in >= k ? (in - k) / st + 1 : 0;
            break;
        default:
            lo = hi = at->pad[j];
            out = in + 2 * lo >= k ? (in + 2 * lo - k) / st + 1 : 0;
            break;
        }
        if (out < 1) {
            char win[48] = "";
            for (int i = 0; i < nd; i++)
                dsi_snprintf_cat(win, sizeof win, "%s%lld", i ? "x" : "", (long long)at->size[i]);
            return dsi_fail_node(y, DS_ERR_SHAPE,
                                 "%s pooling window %s (padding %lld) is larger than the input %s",
                                 pool_kind_word((int)at->kind), win, (long long)lo,
                                 dsi_shape_str(x->ndim, x->shape));
        }
        y->state.pool.lo[j] = lo;
        y->state.pool.hi[j] = hi;
        s[2 + j] = out;
    }
    dsi_set_shape(y, nd + 2, s);
    return DS_OK;
}

static size_t pool_saved(const ds_node *y)
{
    return y->attr.pool.kind == DS_POOL_MAX ? (size_t)y->numel * sizeof(int32_t) : 0;
}

/* Window of output position o along axis a: [b, e) clipped to the input; *span is the
 * extent PyTorch's average counts with padding (clipped to the padded input). */
static inline void window(const pool_geom *p, int a, int64_t o, int64_t *b, int64_t *e,
                          int64_t *span)
{
    int64_t start = o * p->s[a] - p->lo[a], end = start + p->k[a];
    int64_t padded_end = p->in[a] + p->hi[a];
    *span = (end < padded_end ? end : padded_end) - start;
    *b = start < 0 ? 0 : start;
    *e = end > p->in[a] ? p->in[a] : end;
}

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#else
#define ALWAYS_INLINE inline
#define NOINLINE
#endif

/* ---- pooling without padding: every window lies inside the input ----
 * An output row (plane, od, oh) is computed window row by window row: each of the kd * kh
 * input rows its windows cover is one pass over that row, vectorized over the outputs o
 * (window o starts at r[o * sw]). The pass kernels are inlined with constant kw and sw for
 * the common windows (2, 3, 4; stride equal, or 3 with stride 2), which lets the compiler
 * unroll the window and vectorize; other windows run the same code with variables. Short
 * rows of max pooling go by blocks of rows where the windows tile the input (max_tiled),
 * else one window at a time (max_row). Each output is computed by one thread in a fixed
 * order, whatever the thread count, and every path gives the general path's results. */

#define ROW_CHUNK 512   /* outputs of a row whose double sums are held at once */

/* Max over the first window row: y[o] and arg[o] (plane index; i0 is r[0]'s). In scan
 * order the first maximum wins and the first NaN sticks: a value is taken when it is not
 * <= the running best, unless the best is already NaN. This is the general path's rule. */
static ALWAYS_INLINE void max_first(const float *restrict r, int kw, int sw, int n, int32_t i0,
                                    float *restrict y, int32_t *restrict arg)
{
    for (int o = 0; o < n; o++) {
        float best = r[o * sw];
        int32_t off = 0;
        for (int w = 1; w < kw; w++) {
            float v = r[o * sw + w];
            if (!(v <= best) && best == best) {
                best = v;
                off = w;
            }
        }
        y[o] = best;
        arg[o] = i0 + o * sw + off;
    }
}

/* Folds a later window row into y and arg: the row's own first maximum (or first NaN)
 * replaces the running one by the same rule, which row by row in scan order gives the same
 * result as element by element. */
static ALWAYS_INLINE void max_next(const float *restrict r, int kw, int sw, int n, int32_t i0,
                                   float *restrict y, int32_t *restrict arg)
{
    for (int o = 0; o < n; o++) {
        float rb = r[o * sw];
        int32_t off = 0;
        for (int w = 1; w < kw; w++) {
            float v = r[o * sw + w];
            if (!(v <= rb) && rb == rb) {
                rb = v;
                off = w;
            }
        }
        float best = y[o];
        if (!(rb <= best) && best == best) {
            y[o] = rb;
            arg[o] = i0 + o * sw + off;
        }
    }
}

/* One max pass, dispatched to a kernel with constant window width and stride (not inlined:
 * the caller's frame would crowd the kernels' registers). */
DS_HOT
static NOINLINE void max_kernel(const float *restrict r, bool first, int kw, int sw, int n,
                                int32_t i0, float *restrict y, int32_t *restrict arg)
{
#define MAX_KERNEL(KW, SW)                                \
    if (kw == KW && sw == SW) {                           \
        if (first)                                        \
            max_first(r, KW, SW, n, i0, y, arg);          \
        else                                              \
            max_next(r, KW, SW, n, i0, y, arg);           \
        return;                                           \
    }
    MAX_KERNEL(2, 2)
    MAX_KERNEL(4, 4)
    MAX_KERNEL(3, 3)
    MAX_KERNEL(3, 2)
#undef MAX_KERNEL
    if (first)
        max_first(r, kw, sw, n, i0, y, arg);
    else
        max_next(r, kw, sw, n, i0, y, arg);
}

enum { VB = 16 };   /* outputs in one vector of the max kernels (64 bytes of floats) */

/* One max pass over n outputs without a scalar remainder, whose branches would cost more
 * than the vectors: whole vectors first, then the last vector's worth again (both kernels
 * are idempotent: a second pass over the same row changes nothing). Rows of 8 to 15 outputs
 * do the same with half vectors; shorter ones go straight to the kernel. */
DS_HOT
static void max_pass(const float *r, bool first, int kw, int sw, int n, int32_t i0, float *y,
                     int32_t *arg)
{
    if (n < VB / 2) {
        max_kernel(r, first, kw, sw, n, i0, y, arg);
        return;
    }
    int v = n >= VB ? VB : VB / 2;
    int full = n - n % v;
    max_kernel(r, first, kw, sw, full, i0, y, arg);
    if (full < n) {
        int o = n - v;
        max_kernel(r + o * sw, first, kw, sw, v, i0 + o * sw, y + o, arg + o);
    }
}

/* acc[o] += the window sums (of squares: sq) of one window row, in double and in scan
 * order as the general path adds, so the results agree bit for bit. */
static ALWAYS_INLINE void sum_next(const float *restrict r, bool sq, int kw, int sw, int n,
                                   double *restrict acc)
{
    for (int o = 0; o < n; o++) {
        double a = acc[o];
        for (int w = 0; w < kw; w++) {
            double v = r[o * sw + w];
            a += sq ? v * v : v;
        }
        acc[o] = a;
    }
}

/* One sum pass, dispatched like max_pass. */
DS_HOT
static void sum_pass(const float *restrict r, bool sq, int kw, int sw, int n,
                     double *restrict acc)
{
#define SUM_PASS(KW, SW)                                                    \
    if (kw == KW && sw == SW) {                                             \
        if (sq)                                                             \
            sum_next(r, true, KW, SW, n, acc);                              \
        else                                                                \
            sum_next(r, false, KW, SW, n, acc);                             \
        return;                                                             \
    }
    SUM_PASS(2, 2)
    SUM_PASS(4, 4)
    SUM_PASS(3, 3)
    SUM_PASS(3, 2)
#undef SUM_PASS
    sum_next(r, sq, kw, sw, n, acc);
}

enum { WIN_MAX = 64 };   /* window elements listed for the scalar rows */

/* One output row of max pooling without padding: yr and ar from the windows whose first
 * input row starts at plane index top of xp. Rows of fewer than 8 outputs are too short for
 * vectors: each window at once (its elements at offsets off[0..nwin), in scan order), with
 * no branch on the data (a coin flip on real data) but the rescan for a NaN, which gives the
 * same result as the passes. */
DS_HOT
static void max_row(const pool_geom *p, const float *xp, int64_t top, const int32_t *off,
                    int nwin, float *yr, int32_t *ar)
{
    const int64_t OW = p->out[2], H = p->in[1], W = p->in[2];
    const int kd = (int)p->k[0], kh = (int)p->k[1], kw = (int)p->k[2], sw = (int)p->s[2];
    if (OW >= VB / 2 || nwin > WIN_MAX) {
        for (int d = 0; d < kd; d++)
            for (int h = 0; h < kh; h++) {
                int64_t i0 = top + (d * H + h) * W;
                max_pass(xp + i0, d == 0 && h == 0, kw, sw, (int)OW, (int32_t)i0, yr, ar);
            }
        return;
    }
    for (int64_t o = 0; o < OW; o++) {
        const float *xo = xp + top + o * sw;
        float best = xo[0];
        int32_t bo = 0;
        bool nan = false;
        for (int k = 0; k < nwin; k++) {
            float v = xo[off[k]];
            bool gt = v > best;
            best = gt ? v : best;
            bo = gt ? off[k] : bo;
            nan |= v != v;
        }
        for (int k = 0; nan && k < nwin; k++)
            if (xo[off[k]] != xo[off[k]]) {
                best = xo[off[k]];
                bo = off[k];
                nan = false;
            }
        yr[o] = best;
        ar[o] = (int32_t)(top + o * sw) + bo;
    }
}

/* One output row of average, sum or L2 pooling without padding, as max_row. Every window is
 * full, so the average divides by the window size with or without excluded padding. */
DS_HOT
static void sum_row(const pool_geom *p, int kind, const float *xp, int64_t top, float *yr)
{
    const int64_t OW = p->out[2], H = p->in[1], W = p->in[2];
    const int kd = (int)p->k[0], kh = (int)p->k[1], kw = (int)p->k[2], sw = (int)p->s[2];
    const double cnt = (double)(kd * kh * kw);
    double acc[ROW_CHUNK];
    for (int64_t c0 = 0; c0 < OW; c0 += ROW_CHUNK) {
        int n = (int)(OW - c0 < ROW_CHUNK ? OW - c0 : ROW_CHUNK);
        for (int o = 0; o < n; o++)
            acc[o] = 0;
        for (int d = 0; d < kd; d++)
            for (int h = 0; h < kh; h++)
                sum_pass(xp + top + (d * H + h) * W + c0 * sw, kind == DS_POOL_L2, kw, sw, n, acc);
        float *yc = yr + c0;
        if (kind == DS_POOL_AVG)
            for (int o = 0; o < n; o++)
                yc[o] = (float)(acc[o] / cnt);
        else if (kind == DS_POOL_L2)
            for (int o = 0; o < n; o++)
                yc[o] = (float)sqrt(acc[o]);
        else
            for (int o = 0; o < n; o++)
                yc[o] = (float)acc[o];
    }
}

enum { SPAN = 512 };   /* windows of one block of max_tiled */

/* Whether max_tiled applies: windows of 2 to 4 that tile the rows exactly (width = stride,
 * row width = outputs x width), window rows that follow each other (height = stride), no
 * depth window, and output rows shorter than 4 vectors, where the per-row cost of the
 * passes shows (measured: longer rows are faster by passes). */
static bool max_tiled_ok(const pool_geom *p)
{
    int64_t kh = p->k[1], kw = p->k[2];
    return p->k[0] == 1 && kw == p->s[2] && kw >= 2 && kw <= 4 && kh == p->s[1] &&
           p->in[2] == p->out[2] * kw && p->out[2] < 4 * VB && kh * p->out[2] <= SPAN;
}

/* Folds r, ra into y, arg element by element by the running rule of max_next: r[j] is
 * taken when it is not <= y[j], unless y[j] is NaN. Idempotent. */
DS_HOT
static NOINLINE void fold_kernel(const float *restrict r, const int32_t *restrict ra, int n,
                                 float *restrict y, int32_t *restrict arg)
{
    for (int j = 0; j < n; j++) {
        float best = y[j];
        if (!(r[j] <= best) && best == best) {
            y[j] = r[j];
            arg[j] = ra[j];
        }
    }
}

/* fold_kernel without a scalar remainder, as max_pass. */
static void fold_pass(const float *r, const int32_t *ra, int n, float *y, int32_t *arg)
{
    int v = n >= VB ? VB : n >= VB / 2 ? VB / 2 : 0;
    int full = v ? n - n % v : n;
    fold_kernel(r, ra, full, y, arg);
    if (full < n)
        fold_kernel(r + n - v, ra + n - v, v, y + n - v, arg + n - v);
}

/* Max pooling of short rows whose windows tile the input (max_tiled_ok): the kh input rows
 * of consecutive output rows are contiguous, so one vectorized pass over a block of them
 * gives every input row's window maxima hv (first maximum or first NaN, as max_first).
 * Position j of hv then folds in the rows below it, j + h * OW, by the same rule: over the
 * whole block at once, so in vectors too, though only the positions of each output row's
 * first input row are kept. */
DS_HOT
static void max_tiled(const pool_geom *p, const float *xd, float *yd, int32_t *arg)
{
    const int64_t OD = p->out[0], OH = p->out[1], OW = p->out[2], H = p->in[1], W = p->in[2];
    const int kh = (int)p->k[1], kw = (int)p->k[2];
    const int64_t R = SPAN / (kh * OW), nb = (OH + R - 1) / R;
    const int64_t work DS_OMP_ONLY = p->planes * p->out_n * kh * kw;
#pragma omp parallel for collapse(3) schedule(static) if (work > DS_PAR_MIN)
    for (int64_t pl = 0; pl < p->planes; pl++)
        for (int64_t od = 0; od < OD; od++)
            for (int64_t b = 0; b < nb; b++) {
                int64_t oh0 = b * R, rows = OH - oh0 < R ? OH - oh0 : R;
                int64_t top = (od * p->s[0] * H + oh0 * kh) * W;
                int64_t o0 = ((pl * OD + od) * OH + oh0) * OW;
                int n = (int)(rows * kh * OW), m = n - (kh - 1) * (int)OW;
                float hv[SPAN], fv[SPAN];
                int32_t harg[SPAN], farg[SPAN];
                max_pass(xd + pl * p->in_n + top, true, kw, kw, n, (int32_t)top, hv, harg);
                memcpy(fv, hv, (size_t)m * sizeof *fv);
                memcpy(farg, harg, (size_t)m * sizeof *farg);
                for (int h = 1; h < kh; h++)
                    fold_pass(hv + h * OW, harg + h * OW, m, fv, farg);
                for (int64_t rr = 0; rr < rows; rr++) {
                    memcpy(yd + o0 + rr * OW, fv + rr * kh * OW, (size_t)OW * sizeof *fv);
                    memcpy(arg + o0 + rr * OW, farg + rr * kh * OW, (size_t)OW * sizeof *farg);
                }
            }
}

/* ---- max pooling without the argmax (an inference plan keeps none: saved NULL) ----
 * Window elements fold into y one by one in scan order by max_next's rule (taken when not
 * <= the running best unless that is NaN), which gives the values of the passes above. */
static ALWAYS_INLINE void maxv_run(const float *restrict r, bool first, int kw, int sw, int n,
                                   float *restrict y)
{
    for (int o = 0; o < n; o++) {
        float best = first ? r[o * sw] : y[o];
        for (int w = first ? 1 : 0; w < kw; w++) {
            float v = r[o * sw + w];
            best = !(v <= best) && best == best ? v : best;
        }
        y[o] = best;
    }
}

/* One value-only pass, dispatched like max_kernel. */
DS_HOT
static NOINLINE void maxv_kernel(const float *restrict r, bool first, int kw, int sw, int n,
                                 float *restrict y)
{
#define MAXV_KERNEL(KW, SW)                               \
    if (kw == KW && sw == SW) {                           \
        if (first)                                        \
            maxv_run(r, true, KW, SW, n, y);              \
        else                                              \
            maxv_run(r, false, KW, SW, n, y);             \
        return;                                           \
    }
    MAXV_KERNEL(2, 2)
    MAXV_KERNEL(4, 4)
    MAXV_KERNEL(3, 3)
    MAXV_KERNEL(3, 2)
#undef MAXV_KERNEL
    maxv_run(r, first, kw, sw, n, y);
}

/* One value-only pass over n outputs without a scalar remainder, as max_pass (the kernel
 * is idempotent too). */
DS_HOT
static void maxv_pass(const float *r, bool first, int kw, int sw, int n, float *y)
{
    if (n < VB / 2) {
        maxv_kernel(r, first, kw, sw, n, y);
        return;
    }
    int v = n >= VB ? VB : VB / 2;
    int full = n - n % v;
    maxv_kernel(r, first, kw, sw, full, y);
    if (full < n)
        maxv_kernel(r + (n - v) * sw, first, kw, sw, v, y + n - v);
}

/* Max pooling values without padding, split over output rows as pool_unpadded. */
DS_HOT
static void maxv_unpadded(const pool_geom *p, const float *xd, float *yd)
{
    const int64_t OD = p->out[0], OH = p->out[1], OW = p->out[2], H = p->in[1], W = p->in[2];
    const int kd = (int)p->k[0], kh = (int)p->k[1], kw = (int)p->k[2], sw = (int)p->s[2];
    const int64_t work DS_OMP_ONLY = p->planes * p->out_n * kd * kh * kw;
#pragma omp parallel for collapse(3) schedule(static) if (work > DS_PAR_MIN)
    for (int64_t pl = 0; pl < p->planes; pl++)
        for (int64_t od = 0; od < OD; od++)
            for (int64_t oh = 0; oh < OH; oh++) {
                const float *xp = xd + pl * p->in_n + (od * p->s[0] * H + oh * p->s[1]) * W;
                float *yr = yd + ((pl * OD + od) * OH + oh) * OW;
                for (int d = 0; d < kd; d++)
                    for (int h = 0; h < kh; h++)
                        maxv_pass(xp + (d * H + h) * W, d == 0 && h == 0, kw, sw, (int)OW, yr);
            }
}

/* Forward of any pooling kind without padding, split over output rows. */
DS_HOT
static void pool_unpadded(const pool_geom *p, int kind, const float *xd, float *yd,
                          int32_t *arg)
{
    const int64_t OD = p->out[0], OH = p->out[1], OW = p->out[2], H = p->in[1], W = p->in[2];
    const int64_t work DS_OMP_ONLY = p->planes * p->out_n * p->k[0] * p->k[1] * p->k[2];
    if (kind == DS_POOL_MAX && !arg) {
        maxv_unpadded(p, xd, yd);
        return;
    }
    if (kind == DS_POOL_MAX && max_tiled_ok(p)) {
        max_tiled(p, xd, yd, arg);
        return;
    }
    int32_t off[WIN_MAX];
    int nwin = (int)(p->k[0] * p->k[1] * p->k[2]);
    for (int k = 0; nwin <= WIN_MAX && k < nwin; k++) {
        int64_t w = k % p->k[2], h = k / p->k[2] % p->k[1], d = k / (p->k[2] * p->k[1]);
        off[k] = (int32_t)((d * H + h) * W + w);
    }
#pragma omp parallel for collapse(3) schedule(static) if (work > DS_PAR_MIN)
    for (int64_t pl = 0; pl < p->planes; pl++)
        for (int64_t od = 0; od < OD; od++)
            for (int64_t oh = 0; oh < OH; oh++) {
                int64_t row = (pl * OD + od) * OH + oh;
                int64_t top = (od * p->s[0] * H + oh * p->s[1]) * W;
                if (kind == DS_POOL_MAX)
                    max_row(p, xd + pl * p->in_n, top, off, nwin, yd + row * OW,
                            arg + row * OW);
                else
                    sum_row(p, kind, xd + pl * p->in_n, top, yd + row * OW);
            }
}

/* gx[o * sw + w] += g[o] (times xr[...] for L2) over one window row of non-overlapping
 * windows: each input element gets one term, as in the general path. */
static ALWAYS_INLINE void spread_next(float *restrict gx, const float *restrict xr,
                                      const float *restrict g, bool l2, int kw, int sw, int n)
{
    for (int o = 0; o < n; o++)
        for (int w = 0; w < kw; w++)
            gx[o * sw + w] += l2 ? g[o] * xr[o * sw + w] : g[o];
}

/* One spread pass, dispatched like max_pass. */
DS_HOT
static void spread_pass(float *restrict gx, const float *restrict xr, const float *restrict g,
                        bool l2, int kw, int sw, int n)
{
#define SPREAD_PASS(KW, SW)                                  \
    if (kw == KW && sw == SW) {                              \
        if (l2)                                              \
            spread_next(gx, xr, g, true, KW, SW, n);         \
        else                                                 \
            spread_next(gx, xr, g, false, KW, SW, n);        \
        return;                                              \
    }
    SPREAD_PASS(2, 2)
    SPREAD_PASS(4, 4)
    SPREAD_PASS(3, 3)
#undef SPREAD_PASS
    spread_next(gx, xr, g, l2, kw, sw, n);
}

/* dx of one output row of average, sum or L2 pooling without padding and with windows that
 * do not overlap; top: index in x of the windows' first input row. The per-output factor
 * is the general path's. */
DS_HOT
static void spread_row(const pool_geom *p, int kind, const float *xd, const float *yr,
                       const float *dyr, int64_t top, float *dx)
{
    const int64_t OW = p->out[2], H = p->in[1], W = p->in[2];
    const int kd = (int)p->k[0], kh = (int)p->k[1], kw = (int)p->k[2], sw = (int)p->s[2];
    const float cnt = (float)(kd * kh * kw);
    bool l2 = kind == DS_POOL_L2;
    float g[ROW_CHUNK];
    for (int64_t c0 = 0; c0 < OW; c0 += ROW_CHUNK) {
        int n = (int)(OW - c0 < ROW_CHUNK ? OW - c0 : ROW_CHUNK);
        const float *dyc = dyr + c0;
        if (kind == DS_POOL_AVG) {
            for (int o = 0; o < n; o++)
                g[o] = dyc[o] / cnt;
        } else if (l2) {
            for (int o = 0; o < n; o++)
                g[o] = yr[c0 + o] > 0 ? dyc[o] / yr[c0 + o] : 0.0f;
        } else {
            for (int o = 0; o < n; o++)
                g[o] = dyc[o];
        }
        for (int d = 0; d < kd; d++)
            for (int h = 0; h < kh; h++) {
                int64_t i = top + (d * H + h) * W + c0 * sw;
                spread_pass(dx + i, xd + i, g, l2, kw, sw, n);
            }
    }
}

/* Backward of average, sum and L2 pooling without padding when windows do not overlap
 * (window <= stride on every axis): output rows own disjoint input rows, so rows split
 * over threads. */
DS_HOT
static void spread_unpadded(const pool_geom *p, int kind, const float *xd, const float *yd,
                            const float *dy, float *dx)
{
    const int64_t OD = p->out[0], OH = p->out[1], OW = p->out[2], H = p->in[1], W = p->in[2];
#pragma omp parallel for collapse(3) schedule(static) if (p->planes * p->in_n > DS_PAR_MIN)
    for (int64_t pl = 0; pl < p->planes; pl++)
        for (int64_t od = 0; od < OD; od++)
            for (int64_t oh = 0; oh < OH; oh++) {
                int64_t row = (pl * OD + od) * OH + oh;
                spread_row(p, kind, xd, yd + row * OW, dy + row * OW,
                           pl * p->in_n + (od * p->s[0] * H + oh * p->s[1]) * W, dx);
            }
}

DS_HOT
static void pool_forward(ds_node *y)
{
    pool_geom p;
    pool_geometry(y, &p);
    int kind = (int)y->attr.pool.kind;
    if (!p.lo[0] && !p.hi[0] && !p.lo[1] && !p.hi[1] && !p.lo[2] && !p.hi[2]) {
        pool_unpadded(&p, kind, y->in[0]->data, y->data, y->saved);
        return;
    }
    /* Keras divides SAME-padded averages by the real pixels only */
    bool excl = y->attr.pool.exclude_pad || y->attr.pool.padding == DS_PAD_SAME;
    const float *xd = y->in[0]->data;
    float *yd = y->data;
    int32_t *arg = y->saved;
    int64_t work DS_OMP_ONLY = p.planes * p.out_n * p.k[0] * p.k[1] * p.k[2];
#pragma omp parallel for schedule(static) if (work > DS_PAR_MIN)
    for (int64_t pl = 0; pl < p.planes; pl++) {
        const float *xp = xd + pl * p.in_n;
        int64_t oi = pl * p.out_n;
        for (int64_t od = 0; od < p.out[0]; od++) {
            int64_t d0, d1, sd;
            window(&p, 0, od, &d0, &d1, &sd);
            for (int64_t oh = 0; oh < p.out[1]; oh++) {
                int64_t h0, h1, sh;
                window(&p, 1, oh, &h0, &h1, &sh);
                for (int64_t ow = 0; ow < p.out[2]; ow++, oi++) {
                    int64_t w0, w1, sw;
                    window(&p, 2, ow, &w0, &w1, &sw);
                    if (kind == DS_POOL_MAX) {
                        float best = -INFINITY;
                        int64_t bi = -1;
                        for (int64_t d = d0; d < d1; d++)
                            for (int64_t h = h0; h < h1; h++) {
                                int64_t row = (d * p.in[1] + h) * p.in[2];
                                for (int64_t w = w0; w < w1; w++) {
                                    float v = xp[row + w];
                                    /* first maximum wins; NaN propagates (as PyTorch) */
                                    if (v > best || isnan(v) || bi < 0) {
                                        best = v;
                                        bi = row + w;
                                        if (isnan(v))
                                            goto found;
                                    }
                                }
                            }
                    found:
                        yd[oi] = best;
                        if (arg)   /* NULL in an inference plan */
                            arg[oi] = (int32_t)bi;
                    } else {
                        double acc = 0;
                        for (int64_t d = d0; d < d1; d++)
                            for (int64_t h = h0; h < h1; h++) {
                                const float *r = xp + (d * p.in[1] + h) * p.in[2];
                                if (kind == DS_POOL_L2)
                                    for (int64_t w = w0; w < w1; w++)
                                        acc += (double)r[w] * r[w];
                                else
                                    for (int64_t w = w0; w < w1; w++)
                                        acc += r[w];
                            }
                        if (kind == DS_POOL_AVG)
                            acc /= excl ? (double)((d1 - d0) * (h1 - h0) * (w1 - w0))
                                        : (double)(sd * sh * sw);
                        else if (kind == DS_POOL_L2)
                            acc = sqrt(acc);
                        yd[oi] = (float)acc;
                    }
                }
            }
        }
    }
}

/* max: dx[argmax] += dy. avg: dx += dy / count. sum: dx += dy. L2: dx += dy x / y (0 where
 * y = 0: the window is all zeros and the subgradient 0 is taken). Each thread owns whole
 * planes of dx, so the accumulation order is fixed. */
DS_HOT
static void pool_backward(ds_node *y)
{
    float *dx = y->in[0]->grad;
    if (!dx)
        return;
    pool_geom p;
    pool_geometry(y, &p);
    int kind = (int)y->attr.pool.kind;
    bool excl = y->attr.pool.exclude_pad || y->attr.pool.padding == DS_PAD_SAME;
    const float *xd = y->in[0]->data, *yd = y->data, *dy = y->grad;
    const int32_t *arg = y->saved;
    bool unpadded = !p.lo[0] && !p.hi[0] && !p.lo[1] && !p.hi[1] && !p.lo[2] && !p.hi[2];
    if (kind != DS_POOL_MAX && unpadded && p.k[0] <= p.s[0] && p.k[1] <= p.s[1] &&
        p.k[2] <= p.s[2]) {
        spread_unpadded(&p, kind, xd, yd, dy, dx);
        return;
    }
    int64_t work DS_OMP_ONLY = p.planes * p.out_n * p.k[0] * p.k[1] * p.k[2];
#pragma omp parallel for schedule(static) if (work > DS_PAR_MIN)
    for (int64_t pl = 0; pl < p.planes; pl++) {
        float *gp = dx + pl * p.in_n;
        const float *xp = xd + pl * p.in_n;
        int64_t oi = pl * p.out_n;
        if (kind == DS_POOL_MAX) {
            for (int64_t o = 0; o < p.out_n; o++)
                gp[arg[oi + o]] += dy[oi + o];
            continue;
        }
        for (int64_t od = 0; od < p.out[0]; od++) {
            int64_t d0, d1, sd;
            window(&p, 0, od, &d0, &d1, &sd);
            for (int64_t oh = 0; oh < p.out[1]; oh++) {
                int64_t h0, h1, sh;
                window(&p, 1, oh, &h0, &h1, &sh);
                for (int64_t ow = 0; ow < p.out[2]; ow++, oi++) {
                    int64_t w0, w1, sw;
                    window(&p, 2, ow, &w0, &w1, &sw);
                    float g = dy[oi];
                    if (kind == DS_POOL_AVG)
                        g /= excl ? (float)((d1 - d0) * (h1 - h0) * (w1 - w0))
                                  : (float)(sd * sh * sw);
                    else if (kind == DS_POOL_L2)
                        g = yd[oi] > 0 ? g / yd[oi] : 0.0f;
                    for (int64_t d = d0; d < d1; d++)
                        for (int64_t h = h0; h < h1; h++) {
                            int64_t row = (d * p.in[1] + h) * p.in[2];
                            if (kind == DS_POOL_L2)
                                for (int64_t w = w0; w < w1; w++)
                                    gp[row + w] += g * xp[row + w];
                            else
                                for (int64_t w = w0; w < w1; w++)
                                    gp[row + w] += g;
                        }
                }
            }
        }
    }
}

/* L2 reads x and y; max its saved argmax; average and sum nothing. */
static uint32_t pool_reads(const ds_node *y)
{
    return y->attr.pool.kind == DS_POOL_L2 ? DSI_READS_IN(0) | DSI_READS_OUT : 0;
}

const ds_op_def dsi_op_pool = {
    .shape = pool_shape, .cpu = {pool_forward, pool_backward},
    .saved_bytes = pool_saved, .bwd_reads = pool_reads, .saved_optional = true,
};

/* ---- global pool: x [N, C, spatial...] -> [N, C] by attr.global_pool.kind: average or max ---- */
static ds_status global_pool_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    if (x->ndim < 3 || x->ndim > 5)
        return dsi_fail_node(y, DS_ERR_SHAPE, "global pooling needs input [N, C, spatial...] "
                             "with 1 to 3 spatial axes, got %s", dsi_shape_str(x->ndim, x->shape));
    dsi_set_shape(y, 2, x->shape);
    return DS_OK;
}

static size_t global_pool_saved(const ds_node *y)
{
    return y->attr.global_pool.kind == DS_POOL_MAX ? (size_t)y->numel * sizeof(int32_t) : 0;
}

/* Index of the first NaN of x[0..n), else of its first maximum (n >= 1): the maximum and
 * whether there is a NaN by a vectorized reduction (max is exact in any order), then the
 * first element equal to it (-0 and +0 compare equal, as in the scan) or the first NaN. */
DS_HOT
static int64_t first_argmax(const float *x, int64_t n)
{
    float m = x[0];
    int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int64_t i = 0; i < n; i++) {
        m = x[i] > m ? x[i] : m;
        nan |= x[i] != x[i];
    }
    int64_t i = 0;
    if (nan)
        while (i < n - 1 && x[i] == x[i])
            i++;
    else
        while (i < n - 1 && x[i] != m)
            i++;
    return i;
}

DS_HOT
static void global_pool_forward(ds_node *y)
{
    const ds_node *x = y->in[0];
    int64_t planes = y->numel, n = x->numel / planes;
    const float *xd = x->data;
    float *yd = y->data;
    int32_t *arg = y->saved;
    bool max = y->attr.global_pool.kind == DS_POOL_MAX;
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = xd + pl * n;
        if (max) {
            int64_t bi = first_argmax(xp, n);
            yd[pl] = xp[bi];
            if (arg)   /* NULL in an inference plan */
                arg[pl] = (int32_t)bi;
        } else {
            yd[pl] = (float)(dsi_sum_f64(xp, n) / (double)n);
        }
    }
}

DS_HOT
static void global_pool_backward(ds_node *y)
{
    ds_node *x = y->in[0];
    if (!x->grad)
        return;
    int64_t planes = y->numel, n = x->numel / planes;
    const float *dy = y->grad;
    const int32_t *arg = y->saved;
    bool max = y->attr.global_pool.kind == DS_POOL_MAX;
    float inv = 1.0f / (float)n;
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *gp = x->grad + pl * n;
        if (max) {
            gp[arg[pl]] += dy[pl];
        } else {
            float g = dy[pl] * inv;
            for (int64_t i = 0; i < n; i++)
                gp[i] += g;
        }
    }
}

const ds_op_def dsi_op_global_pool = {
    .shape = global_pool_shape, .cpu = {global_pool_forward, global_pool_backward},
    .saved_bytes = global_pool_saved, .saved_optional = true,
    .bwd_reads = dsi_reads_none,   /* max: the saved argmax */
};

/* ---- layer builders ---- */
static const char *const keras_pool[] = { "MaxPooling", "AveragePooling", "SumPooling",
                                          "L2Pooling" };
static const char *const auto_pool[] = { "max_pooling", "average_pooling", "sum_pooling",
                                         "l2_pooling" };

ds_node *ds_pool(ds_graph *g, ds_node *x, int nd, ds_pool_kind kind, const ds_pool_opts *o)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (nd < 1 || nd > 3 || (int)kind < 0 || kind > DS_POOL_L2) {
        dsi_fail(DS_ERR_ARG, "pooling: %d spatial dimensions and kind %d (expected 1 to 3 and "
                 "a ds_pool_kind)", nd, (int)kind);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    char type[24], autot[24], name[DS_NAME_MAX];
    snprintf(type, sizeof type, "%s%dD", keras_pool[kind], nd);
    snprintf(autot, sizeof autot, "%s%dd", auto_pool[kind], nd);
    if (!dsi_layer_begin(g, type, autot, NULL, name))
        return NULL;
    dsi_pool_attr at = { .nd = nd, .kind = kind };
    const char *bad = NULL;
    int bad_axis = 0, bad_val = 0, bad_k = 0;
    if (!o || o->size[0] < 1) {
        bad = "size must be at least 1";
        bad_val = o ? o->size[0] : 0;
    } else if (o->padding < DS_PAD_EXPLICIT || o->padding > DS_PAD_SAME) {
        bad = "unknown padding mode";
        bad_val = (int)o->padding;
    } else {
        at.padding = o->padding;
        at.exclude_pad = o->exclude_pad != 0;
        for (int j = 0; j < nd && !bad; j++) {
            int k = j && o->size[j] == 0 ? o->size[0] : o->size[j];
            int s = o->stride[0] == 0 ? k : (j && o->stride[j] == 0 ? o->stride[0] : o->stride[j]);
            int pd = o->padding == DS_PAD_EXPLICIT ? o->pad[j] : 0;
            bad_axis = j;
            if (k < 1)
                bad = "size must be at least 1", bad_val = k;
            else if (s < 1)
                bad = "stride must be at least 1", bad_val = s;
            else if (pd < 0)
                bad = "padding must not be negative", bad_val = pd;
            else if (pd > k / 2)   /* PyTorch: "pad should be at most half of kernel size" */
                bad = "padding must be at most half the window size", bad_val = pd, bad_k = k;
            at.size[j] = k;
            at.stride[j] = s;
            at.pad[j] = pd;
        }
    }
    ds_node *y = NULL;
    if (bad) {
        if (bad_k)
            dsi_fail(DS_ERR_ARG, "pool '%s': %s (axis %d: padding %d, window %d)", name, bad,
                     bad_axis, bad_val, bad_k);
        else
            dsi_fail(DS_ERR_ARG, "pool '%s': %s (axis %d: %d)", name, bad, bad_axis, bad_val);
        dsi_build_fail(g, DS_ERR_ARG);
    } else {
        y = dsi_node(g, DS_OP_POOL, 1, &x, &at);
    }
    return dsi_layer_end(g, y);
}

ds_node *ds_global_pool(ds_graph *g, ds_node *x, ds_pool_kind kind)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (kind != DS_POOL_AVG && kind != DS_POOL_MAX) {
        dsi_fail(DS_ERR_ARG, "global pooling: kind %d is not supported (average or max)",
                 (int)kind);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    /* the dimension in the name comes from the input; a bad rank fails in the shape rule */
    static const char *const dims[] = { "", "1", "2", "3" };
    const char *nd = dims[x->ndim >= 3 && x->ndim <= 5 ? x->ndim - 2 : 0];
    char type[32], autot[32], name[DS_NAME_MAX];
    bool max = kind == DS_POOL_MAX;
    snprintf(type, sizeof type, "Global%sPooling%s%s", max ? "Max" : "Average", nd, *nd ? "D" : "");
    snprintf(autot, sizeof autot, "global_%s_pooling%s%s", max ? "max" : "average", nd,
             *nd ? "d" : "");
    if (!dsi_layer_begin(g, type, autot, NULL, name))
        return NULL;
    dsi_global_pool_attr at = { .kind = kind };
    return dsi_layer_end(g, dsi_node(g, DS_OP_GLOBAL_POOL, 1, &x, &at));
}
