/* reduce.c - sum and mean over axes (keepdim or not): shape rules, forward, backward, and the
 * strided sum kernel that broadcast gradients in elementwise.c reuse. */
#include "reduce.h"

/* ---- the kernel ---- */

/* x's dimensions with size-1 dimensions dropped and neighbours of the same kind (kept or
 * reduced) merged: at most DS_MAX_DIMS alternating groups. */
typedef struct {
    int nd;
    int64_t n[DS_MAX_DIMS], stride[DS_MAX_DIMS];
    bool keep[DS_MAX_DIMS];
} groups;

static void make_groups(int nd, const int64_t *shape, const bool *keep, groups *p)
{
    p->nd = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1)
            continue;
        if (p->nd && p->keep[p->nd - 1] == keep[d]) {
            p->n[p->nd - 1] *= shape[d];
        } else {
            p->n[p->nd] = shape[d];
            p->keep[p->nd] = keep[d];
            p->nd++;
        }
    }
    int64_t s = 1;
    for (int d = p->nd - 1; d >= 0; d--) {
        p->stride[d] = s;
        s *= p->n[d];
    }
}

/* Offset in x of the lin-th combination (row-major) of the groups listed in dims[0..k). */
static int64_t sub_offset(int64_t lin, int k, const int *dims, const groups *p)
{
    int64_t off = 0;
    for (int i = k - 1; i >= 0; i--) {
        int64_t n = p->n[dims[i]];
        off += (lin % n) * p->stride[dims[i]];
        lin /= n;
    }
    return off;
}

#define SUM_LANES 32

/* Sum of x[0..n) in double: 32 lanes (four vectors of independent sums, which hide the
 * latency of the adds) folded in a fixed tree, so the result depends on n alone. */
DS_HOT
double dsi_sum_f64(const float *x, int64_t n)
{
    double acc[SUM_LANES] = {0};
    int64_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES) {
#pragma omp simd
        for (int l = 0; l < SUM_LANES; l++)
            acc[l] += x[i + l];
    }
    for (int l = 0; i < n; i++, l++)
        acc[l] += x[i];
    for (int w = SUM_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

static inline void put(float *o, double v, bool accumulate)
{
    if (accumulate)
        *o += (float)v;
    else
        *o = (float)v;
}

#define COLS 64   /* columns summed together when the innermost group is kept */

DS_HOT
void dsi_reduce_sum(const float *x, int nd, const int64_t *shape, const bool *keep,
                    double alpha, bool accumulate, float *out)
{
    groups p;
    make_groups(nd, shape, keep, &p);
    int64_t total = dsi_numel(nd, shape);
    int kd[DS_MAX_DIMS], rd[DS_MAX_DIMS], nk = 0, nr = 0;
    int64_t nkept = 1, nred = 1;
    for (int d = 0; d < p.nd; d++) {
        if (p.keep[d]) {
            kd[nk++] = d;
            nkept *= p.n[d];
        } else {
            rd[nr++] = d;
            nred *= p.n[d];
        }
    }
    if (nr == 0) {              /* nothing reduced: a scaled copy */
#pragma omp parallel for schedule(static) if (total > DS_PAR_MIN)
        for (int64_t i = 0; i < total; i++)
            put(&out[i], alpha * x[i], accumulate);
        return;
    }
    if (nk == 0) {              /* everything reduced: in chunks of a size set by total */
        enum { MAX_CHUNKS = 1024 };
        int64_t len = total / MAX_CHUNKS + 1 > 65536 ? total / MAX_CHUNKS + 1 : 65536;
        int64_t nc = (total + len - 1) / len;
        double part[MAX_CHUNKS], s = 0;
#pragma omp parallel for schedule(static) if (nc > 1)
        for (int64_t c = 0; c < nc; c++)
            part[c] = dsi_sum_f64(x + c * len, c == nc - 1 ? total - c * len : len);
        for (int64_t c = 0; c < nc; c++)
            s += part[c];
        put(&out[0], alpha * s, accumulate);
        return;
    }
    if (p.keep[p.nd - 1]) {
        /* [..., reduced, ..., kept W]: add whole rows into blocks of COLS accumulators. */
        int64_t W = p.n[p.nd - 1], nko = nkept / W, nb = (W + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if (total > DS_PAR_MIN)
        for (int64_t t = 0; t < nko * nb; t++) {
            int64_t ko = t / nb, c0 = (t % nb) * COLS, cw = W - c0 < COLS ? W - c0 : COLS;
            double acc[COLS] = {0};
            int64_t base = sub_offset(ko, nk - 1, kd, &p) + c0;
            for (int64_t r = 0; r < nred; r++) {
                const float *row = x + base + sub_offset(r, nr, rd, &p);
                for (int64_t c = 0; c < cw; c++)
                    acc[c] += row[c];
            }
            for (int64_t c = 0; c < cw; c++)
                put(&out[ko * W + c0 + c], alpha * acc[c], accumulate);
        }
    } else {
        /* [..., kept, ..., reduced L]: each output sums contiguous runs of L. */
        int64_t L = p.n[p.nd - 1], nro = nred / L;
#pragma omp parallel for schedule(static) if (total > DS_PAR_MIN)
        for (int64_t j = 0; j < nkept; j++) {
            int64_t base = sub_offset(j, nk, kd, &p);
            double acc = 0;
            for (int64_t r = 0; r < nro; r++)
                acc += dsi_sum_f64(x + base + sub_offset(r, nr - 1, rd, &p), L);
            put(&out[j], alpha * acc, accumulate);
        }
    }
}

/* ---- sum and mean over attr.reduce.axes (naxes 0: all), keepdim ---- */

/* Which of x's axes are reduced; fails (with a message) on a bad or repeated axis. */
static ds_status reduced_axes(const ds_node *y, bool *red)
{
    const ds_node *x = y->in[0];
    const dsi_reduce_attr *at = &y->attr.reduce;
    for (int d = 0; d < x->ndim; d++)
        red[d] = at->naxes == 0;
    for (int k = 0; k < at->naxes; k++) {
        int a = dsi_axis(at->axes[k], x->ndim);
        if (a < 0)
            return dsi_fail_node(y, DS_ERR_SHAPE, "axis %d is out of range for input of shape %s",
                                 at->axes[k], dsi_shape_str(x->ndim, x->shape));
        if (red[a])
            return dsi_fail_node(y, DS_ERR_ARG, "axis %d appears more than once", at->axes[k]);
        red[a] = true;
    }
    return DS_OK;
}

static ds_status reduce_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    bool red[DS_MAX_DIMS];
    ds_status st = reduced_axes(y, red);
    if (st != DS_OK)
        return st;
    int64_t s[DS_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!red[d])
            s[nd++] = x->shape[d];
        else if (y->attr.reduce.keepdim)
            s[nd++] = 1;
    }
    dsi_set_shape(y, nd, s);
    return DS_OK;
}

/* Elements summed into each output: 1 for sum (so dividing by it is exact). */
static double reduce_count(const ds_node *y)
{
    return y->op == DS_OP_MEAN ? (double)(y->in[0]->numel / y->numel) : 1.0;
}

DS_HOT
static void reduce_forward(ds_node *y)
{
    const ds_node *x = y->in[0];
    bool red[DS_MAX_DIMS], keep[DS_MAX_DIMS];
    reduced_axes(y, red);
    for (int d = 0; d < x->ndim; d++)
        keep[d] = !red[d];
    dsi_reduce_sum(x->data, x->ndim, x->shape, keep, 1.0 / reduce_count(y), false, y->data);
}

/* dx[i] += dy[j(i)] / count, j(i) the output element x[i] was summed into. */
DS_HOT
static void reduce_backward(ds_node *y)
{
    ds_node *x = y->in[0];
    float *dx = x->grad;
    const float *dy = y->grad;
    float cnt = (float)reduce_count(y);
    bool red[DS_MAX_DIMS], keep[DS_MAX_DIMS];
    reduced_axes(y, red);
    for (int d = 0; d < x->ndim; d++)
        keep[d] = !red[d];
    groups p;
    make_groups(x->ndim, x->shape, keep, &p);
    if (p.nd == 0) {
        dx[0] += dy[0] / cnt;
        return;
    }
    /* stride of each group in dy (0 for reduced groups) */
    int64_t os[DS_MAX_DIMS], s = 1;
    for (int d = p.nd - 1; d >= 0; d--) {
        os[d] = p.keep[d] ? s : 0;
        if (p.keep[d])
            s *= p.n[d];
    }
    int64_t W = p.n[p.nd - 1], rows = x->numel / W, step = os[p.nd - 1];
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t j = 0, rem = r;
        for (int d = p.nd - 2; d >= 0; d--) {
            j += (rem % p.n[d]) * os[d];
            rem /= p.n[d];
        }
        float *o = dx + r * W;
        if (step)
            for (int64_t c = 0; c < W; c++)
                o[c] += dy[j + c] / cnt;
        else {
            float v = dy[j] / cnt;
            for (int64_t c = 0; c < W; c++)
                o[c] += v;
        }
    }
}

const ds_op_def dsi_op_sum = {
    .shape = reduce_shape, .cpu = {reduce_forward, reduce_backward},
    .bwd_reads = dsi_reads_none,
};
const ds_op_def dsi_op_mean = {
    .shape = reduce_shape, .cpu = {reduce_forward, reduce_backward},
    .bwd_reads = dsi_reads_none,
};

static ds_node *reduce(ds_graph *g, ds_op op, ds_node *x, int naxes, const int *axes,
                       int keepdim)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (naxes < 0 || naxes > DS_MAX_DIMS || (naxes > 0 && !axes)) {
        dsi_fail(DS_ERR_ARG, "%s: %d axes (0 to %d, 0 meaning all)", dsi_op_names[op], naxes,
                 DS_MAX_DIMS);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    dsi_reduce_attr at = { .naxes = naxes, .keepdim = keepdim != 0 };
    for (int k = 0; k < naxes; k++)
        at.axes[k] = axes[k];
    return dsi_node(g, op, 1, &x, &at);
}

ds_node *ds_sum(ds_graph *g, ds_node *x, int naxes, const int *axes, int keepdim)
{
    return reduce(g, DS_OP_SUM, x, naxes, axes, keepdim);
}

ds_node *ds_mean(ds_graph *g, ds_node *x, int naxes, const int *axes, int keepdim)
{
    return reduce(g, DS_OP_MEAN, x, naxes, axes, keepdim);
}
