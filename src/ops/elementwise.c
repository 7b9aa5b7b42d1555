/* elementwise.c - add, sub, mul, div with NumPy/PyTorch broadcasting, and the unary maps
 * (scalar add/mul/pow, neg, exp, log, sqrt, square, abs): shape rules, forward, backward. */
#include "reduce.h"

#include <math.h>

/* ---- broadcasting ----
 * Shapes are aligned at their last dimension; each pair of sizes must be equal or one of
 * them 1. A binary node is run over "groups": y's dimensions with size-1 ones dropped and
 * neighbours merged where both operands stay contiguous, so [N, C] + [C] becomes one row
 * loop and [N, C, H, W] + [1, C, 1, 1] becomes [N, C, H*W] with b's strides (0, 1, 0). */
typedef struct {
    int nd;
    int64_t n[DS_MAX_DIMS], sa[DS_MAX_DIMS], sb[DS_MAX_DIMS];
} bplan;

/* Size of x along y's dimension d (x aligned at the end; 1 where x has no dimension). */
static int64_t dim_at(const ds_node *x, int d, int ynd)
{
    int k = d - (ynd - x->ndim);
    return k < 0 ? 1 : x->shape[k];
}

static ds_status broadcast_shape(ds_node *y)
{
    const ds_node *a = y->in[0], *b = y->in[1];
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t s[DS_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        int64_t da = dim_at(a, d, nd), db = dim_at(b, d, nd);
        if (da != db && da != 1 && db != 1)
            return dsi_fail_node(y, DS_ERR_SHAPE,
                                 "shapes %s and %s cannot be broadcast together (dimension %d: "
                                 "%lld vs %lld)", dsi_shape_str(a->ndim, a->shape),
                                 dsi_shape_str(b->ndim, b->shape), d, (long long)da,
                                 (long long)db);
        s[d] = da == 1 ? db : da;
    }
    dsi_set_shape(y, nd, s);
    return DS_OK;
}

/* Row-major strides of x along y's dimensions, 0 where x is broadcast. */
static void bcast_strides(const ds_node *x, int ynd, int64_t *st)
{
    int64_t s = 1;
    for (int d = ynd - 1; d >= 0; d--) {
        int64_t n = dim_at(x, d, ynd);
        st[d] = n == 1 ? 0 : s;
        s *= n;
    }
}

static void make_plan(const ds_node *y, bplan *p)
{
    int64_t sa[DS_MAX_DIMS], sb[DS_MAX_DIMS];
    bcast_strides(y->in[0], y->ndim, sa);
    bcast_strides(y->in[1], y->ndim, sb);
    p->nd = 0;
    for (int d = 0; d < y->ndim; d++) {
        int64_t n = y->shape[d];
        if (n == 1)
            continue;
        int k = p->nd - 1;
        if (k >= 0 && p->sa[k] == sa[d] * n && p->sb[k] == sb[d] * n) {
            p->n[k] *= n;
            p->sa[k] = sa[d];
            p->sb[k] = sb[d];
        } else {
            p->n[++k] = n;
            p->sa[k] = sa[d];
            p->sb[k] = sb[d];
            p->nd++;
        }
    }
}

/* Offsets of a and b at the start of row r (rows = all groups but the last). */
static void row_offsets(const bplan *p, int64_t r, int64_t *ao, int64_t *bo)
{
    *ao = *bo = 0;
    for (int d = p->nd - 2; d >= 0; d--) {
        int64_t i = r % p->n[d];
        r /= p->n[d];
        *ao += i * p->sa[d];
        *bo += i * p->sb[d];
    }
}

static inline float bin(ds_op op, float a, float b)
{
    switch (op) {
    case DS_OP_ADD: return a + b;
    case DS_OP_SUB: return a - b;
    case DS_OP_MUL: return a * b;
    default:        return a / b;
    }
}

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* y[0..n) = a op b with unit or zero strides, for a constant op (inlined by bin_run). y may
 * be a (in place): each element is read before it is written. */
static ALWAYS_INLINE void bin_run_op(ds_op op, float *y, const float *a, int64_t sa,
                                     const float *b, int64_t sb, int64_t n)
{
    if (sa && sb) {
        for (int64_t i = 0; i < n; i++)
            y[i] = bin(op, a[i], b[i]);
    } else if (sa) {
        float bv = b[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = bin(op, a[i], bv);
    } else if (sb) {
        float av = a[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = bin(op, av, b[i]);
    } else {
        float v = bin(op, a[0], b[0]);
        for (int64_t i = 0; i < n; i++)
            y[i] = v;
    }
}

/* bin_run_op with the op switched outside the loops, which then vectorize. */
DS_HOT
static void bin_run(ds_op op, float *y, const float *a, int64_t sa, const float *b, int64_t sb,
                    int64_t n)
{
    switch (op) {
    case DS_OP_ADD: bin_run_op(DS_OP_ADD, y, a, sa, b, sb, n); break;
    case DS_OP_SUB: bin_run_op(DS_OP_SUB, y, a, sa, b, sb, n); break;
    case DS_OP_MUL: bin_run_op(DS_OP_MUL, y, a, sa, b, sb, n); break;
    default:        bin_run_op(DS_OP_DIV, y, a, sa, b, sb, n); break;
    }
}

DS_HOT
static void binary_forward(ds_node *y)
{
    const float *a = y->in[0]->data, *b = y->in[1]->data;
    if (y->in[0]->numel == y->numel && y->in[1]->numel == y->numel) {   /* same shape */
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < y->numel; i += 4096)
            bin_run(y->op, y->data + i, a + i, 1, b + i, 1,
                    y->numel - i < 4096 ? y->numel - i : 4096);
        return;
    }
    bplan p;
    make_plan(y, &p);
    if (p.nd == 0) {
        y->data[0] = bin(y->op, a[0], b[0]);
        return;
    }
    int64_t W = p.n[p.nd - 1], rows = y->numel / W;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t ao, bo;
        row_offsets(&p, r, &ao, &bo);
        bin_run(y->op, y->data + r * W, a + ao, p.sa[p.nd - 1], b + bo, p.sb[p.nd - 1], W);
    }
}

/* Gradient of y = a op b with respect to input `which`, times dy (PyTorch's formulas:
 * d/db of a / b is -dy * ((a / b) / b)). */
static inline float bin_grad(ds_op op, int which, float dy, float a, float b)
{
    switch (op) {
    case DS_OP_ADD: return dy;
    case DS_OP_SUB: return which ? -dy : dy;
    case DS_OP_MUL: return which ? dy * a : dy * b;
    default:        return which ? -dy * ((a / b) / b) : dy / b;
    }
}

/* t[0..n) = (or += when add) the gradient terms towards input `which` along a row where a and
 * b have unit or zero strides, for constant op, which and add (inlined by grad_row). Add and
 * sub never read a or b. */
static ALWAYS_INLINE void grad_row_op(ds_op op, int which, bool add, float *t, const float *dy,
                                      const float *a, int64_t sa, const float *b, int64_t sb,
                                      int64_t n)
{
    if (op == DS_OP_ADD || op == DS_OP_SUB) {
        for (int64_t i = 0; i < n; i++) {
            float v = bin_grad(op, which, dy[i], 0.0f, 0.0f);
            t[i] = add ? t[i] + v : v;
        }
    } else if (sa && sb) {
        for (int64_t i = 0; i < n; i++) {
            float v = bin_grad(op, which, dy[i], a[i], b[i]);
            t[i] = add ? t[i] + v : v;
        }
    } else if (sa) {
        float bv = b[0];
        for (int64_t i = 0; i < n; i++) {
            float v = bin_grad(op, which, dy[i], a[i], bv);
            t[i] = add ? t[i] + v : v;
        }
    } else if (sb) {
        float av = a[0];
        for (int64_t i = 0; i < n; i++) {
            float v = bin_grad(op, which, dy[i], av, b[i]);
            t[i] = add ? t[i] + v : v;
        }
    } else {
        float av = a[0], bv = b[0];
        for (int64_t i = 0; i < n; i++) {
            float v = bin_grad(op, which, dy[i], av, bv);
            t[i] = add ? t[i] + v : v;
        }
    }
}

/* grad_row_op with op, which and add switched outside the loops. */
DS_HOT
static void grad_row(ds_op op, int which, bool add, float *t, const float *dy, const float *a,
                     int64_t sa, const float *b, int64_t sb, int64_t n)
{
#define GRAD_ROW(OP, W)                                                  \
    if (op == OP && which == W) {                                        \
        if (add)                                                         \
            grad_row_op(OP, W, true, t, dy, a, sa, b, sb, n);            \
        else                                                             \
            grad_row_op(OP, W, false, t, dy, a, sa, b, sb, n);           \
        return;                                                          \
    }
    GRAD_ROW(DS_OP_ADD, 0)
    GRAD_ROW(DS_OP_ADD, 1)
    GRAD_ROW(DS_OP_SUB, 0)
    GRAD_ROW(DS_OP_SUB, 1)
    GRAD_ROW(DS_OP_MUL, 0)
    GRAD_ROW(DS_OP_MUL, 1)
    GRAD_ROW(DS_OP_DIV, 0)
    GRAD_ROW(DS_OP_DIV, 1)
#undef GRAD_ROW
}

/* t[i] (+)= gradient contribution of y's element i towards input `which`, over y's layout. */
DS_HOT
static void grad_terms(const ds_node *y, const bplan *p, int which, bool add, float *t)
{
    const float *a = y->in[0]->data, *b = y->in[1]->data, *dy = y->grad;
    ds_op op = y->op;
    int64_t W = p->nd ? p->n[p->nd - 1] : 1, rows = y->numel / W;
    int64_t sa = p->nd ? p->sa[p->nd - 1] : 0, sb = p->nd ? p->sb[p->nd - 1] : 0;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t ao, bo;
        row_offsets(p, r, &ao, &bo);
        grad_row(op, which, add, t + r * W, dy + r * W, a + ao, sa, b + bo, sb, W);
    }
}

DS_HOT
static void binary_backward(ds_node *y)
{
    ds_node *in[2] = {y->in[0], y->in[1]};
    const float *a = in[0]->data, *b = in[1]->data, *dy = y->grad;
    if (in[0]->numel == y->numel && in[1]->numel == y->numel) {   /* same shape */
        for (int w = 0; w < 2; w++) {
            float *dx = in[w]->grad;
            if (!dx)
                continue;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
            for (int64_t i = 0; i < y->numel; i += 4096)
                grad_row(y->op, w, true, dx + i, dy + i, a + i, 1, b + i, 1,
                         y->numel - i < 4096 ? y->numel - i : 4096);
        }
        return;
    }
    bplan p;
    make_plan(y, &p);
    for (int w = 0; w < 2; w++) {
        ds_node *x = in[w];
        if (!x->grad)
            continue;
        if (x->numel == y->numel) {   /* not broadcast: same layout as y */
            grad_terms(y, &p, w, true, x->grad);
            continue;
        }
        /* broadcast: sum the terms over the axes where x has size 1 */
        bool keep[DS_MAX_DIMS];
        for (int d = 0; d < y->ndim; d++)
            keep[d] = dim_at(x, d, y->ndim) != 1;
        if (y->op == DS_OP_ADD || y->op == DS_OP_SUB) {
            dsi_reduce_sum(dy, y->ndim, y->shape, keep, (y->op == DS_OP_SUB && w) ? -1.0 : 1.0,
                           true, x->grad);
        } else {
            grad_terms(y, &p, w, false, y->g->scratch);
            dsi_reduce_sum(y->g->scratch, y->ndim, y->shape, keep, 1.0, true, x->grad);
        }
    }
}

/* mul and div need a y-sized buffer for the terms of a broadcast input's gradient. */
static size_t binary_scratch(const ds_node *y)
{
    bool bcast = y->in[0]->numel != y->numel || y->in[1]->numel != y->numel;
    bool terms = y->op == DS_OP_MUL || y->op == DS_OP_DIV;
    return bcast && terms ? (size_t)y->numel * sizeof(float) : 0;
}

/* Forward runs element by element over a when a has y's shape, so y may overwrite a. The
 * backward of add and sub reads no value (bin_grad ignores a and b). */
const ds_op_def dsi_op_add = {
    .shape = broadcast_shape, .cpu = {binary_forward, binary_backward},
    .scratch_bytes = binary_scratch, .bwd_reads = dsi_reads_none, .inplace = true,
};
const ds_op_def dsi_op_sub = {
    .shape = broadcast_shape, .cpu = {binary_forward, binary_backward},
    .scratch_bytes = binary_scratch, .bwd_reads = dsi_reads_none, .inplace = true,
};
const ds_op_def dsi_op_mul = {
    .shape = broadcast_shape, .cpu = {binary_forward, binary_backward},
    .scratch_bytes = binary_scratch, .bwd_reads = dsi_reads_in01, .inplace = true,
};
const ds_op_def dsi_op_div = {
    .shape = broadcast_shape, .cpu = {binary_forward, binary_backward},
    .scratch_bytes = binary_scratch, .bwd_reads = dsi_reads_in01, .inplace = true,
};

ds_node *ds_add(ds_graph *g, ds_node *a, ds_node *b)
{
    return dsi_node(g, DS_OP_ADD, 2, (ds_node *[]){a, b}, NULL);
}
ds_node *ds_sub(ds_graph *g, ds_node *a, ds_node *b)
{
    return dsi_node(g, DS_OP_SUB, 2, (ds_node *[]){a, b}, NULL);
}
ds_node *ds_mul(ds_graph *g, ds_node *a, ds_node *b)
{
    return dsi_node(g, DS_OP_MUL, 2, (ds_node *[]){a, b}, NULL);
}
ds_node *ds_div(ds_graph *g, ds_node *a, ds_node *b)
{
    return dsi_node(g, DS_OP_DIV, 2, (ds_node *[]){a, b}, NULL);
}

/* ---- unary maps: y = f(x), same shape; attr.scalar.c is the constant of the scalar ops ---- */
static ds_status same_shape(ds_node *y)
{
    dsi_set_shape(y, y->in[0]->ndim, y->in[0]->shape);
    return DS_OK;
}

/* x^p with PyTorch's exact special cases (x*x for 2, sqrt for 0.5, ...). */
static inline float pow_p(float x, float p)
{
    if (p == 2.0f)
        return x * x;
    if (p == 1.0f)
        return x;
    if (p == 0.0f)
        return 1.0f;
    if (p == 3.0f)
        return x * x * x;
    if (p == 0.5f)
        return sqrtf(x);
    if (p == -1.0f)
        return 1.0f / x;
    return powf(x, p);
}

DS_HOT
static void unary_forward(ds_node *y)
{
    const float *x = y->in[0]->data;
    float *o = y->data, c = y->attr.scalar.c;
    int64_t n = y->numel;
    switch (y->op) {
    case DS_OP_ADD_SCALAR:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] + c;
        break;
    case DS_OP_MUL_SCALAR:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] * c;
        break;
    case DS_OP_POW_SCALAR:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = pow_p(x[i], c);
        break;
    case DS_OP_NEG:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = -x[i];
        break;
    case DS_OP_EXP:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = expf(x[i]);
        break;
    case DS_OP_LOG:   /* log(0) = -inf, log(<0) = NaN, as PyTorch: no clamping */
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = logf(x[i]);
        break;
    case DS_OP_SQRT:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = sqrtf(x[i]);
        break;
    case DS_OP_SQUARE:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i];
        break;
    default:   /* DS_OP_ABS */
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = fabsf(x[i]);
        break;
    }
}

/* dx += dy f'(x), in PyTorch's forms: exp uses y, sqrt dy / (2 y), pow p x^(p-1) (0 for
 * p = 0), abs sign(x) with sign(0) = 0. */
DS_HOT
static void unary_backward(ds_node *y)
{
    const float *x = y->in[0]->data, *o = y->data, *dy = y->grad;
    float *dx = y->in[0]->grad, c = y->attr.scalar.c;
    int64_t n = y->numel;
    switch (y->op) {
    case DS_OP_ADD_SCALAR:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
        break;
    case DS_OP_MUL_SCALAR:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * c;
        break;
    case DS_OP_POW_SCALAR:
        if (c == 0.0f)
            break;
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (c * pow_p(x[i], c - 1.0f));
        break;
    case DS_OP_NEG:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] -= dy[i];
        break;
    case DS_OP_EXP:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * o[i];
        break;
    case DS_OP_LOG:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / x[i];
        break;
    case DS_OP_SQRT:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / (2.0f * o[i]);
        break;
    case DS_OP_SQUARE:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (2.0f * x[i]);
        break;
    default: /* DS_OP_ABS */
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            dx[i] += x[i] > 0 ? dy[i] : x[i] < 0 ? -dy[i] : 0.0f;
        break;
    }
}

/* f'(x) and f''(x) in double, for the Newton rules. */
static void unary_derivs(const ds_node *y, double x, double *d1, double *d2)
{
    double c, e, s;
    switch (y->op) {
    case DS_OP_ADD_SCALAR: *d1 = 1; *d2 = 0; break;
    case DS_OP_MUL_SCALAR: *d1 = y->attr.scalar.c; *d2 = 0; break;
    case DS_OP_NEG: *d1 = -1; *d2 = 0; break;
    case DS_OP_POW_SCALAR:   /* exact zeros for p = 0 and 1, even at x = 0 */
        c = y->attr.scalar.c;
        *d1 = c == 0 ? 0 : c == 1 ? 1 : c * pow(x, c - 1);
        *d2 = (c == 0 || c == 1) ? 0 : c == 2 ? 2 : c * (c - 1) * pow(x, c - 2);
        break;
    case DS_OP_EXP: e = exp(x); *d1 = e; *d2 = e; break;
    case DS_OP_LOG: *d1 = 1 / x; *d2 = -1 / (x * x); break;
    case DS_OP_SQRT: s = sqrt(x); *d1 = 0.5 / s; *d2 = -0.25 / (s * x); break;
    case DS_OP_SQUARE: *d1 = 2 * x; *d2 = 2; break;
    default: *d1 = x > 0 ? 1 : x < 0 ? -1 : 0; *d2 = 0; break;   /* DS_OP_ABS */
    }
}

/* Element by element, so forward may run in place; reads: what each backward above uses. */
#define UNARY_DEF(id, reads)                                                             \
    const ds_op_def dsi_op_##id = { .shape = same_shape,                                 \
                                    .cpu = {unary_forward, unary_backward},              \
                                    .bwd_reads = reads, .inplace = true,                 \
                                    .derivs = unary_derivs }
UNARY_DEF(add_scalar, dsi_reads_none);
UNARY_DEF(mul_scalar, dsi_reads_none);
UNARY_DEF(pow_scalar, dsi_reads_in0);
UNARY_DEF(neg, dsi_reads_none);
UNARY_DEF(exp, dsi_reads_out);
UNARY_DEF(log, dsi_reads_in0);
UNARY_DEF(sqrt, dsi_reads_out);
UNARY_DEF(square, dsi_reads_in0);
UNARY_DEF(abs, dsi_reads_in0);

static ds_node *scalar_op(ds_graph *g, ds_op op, ds_node *x, float c)
{
    return dsi_node(g, op, 1, &x, &(dsi_scalar_attr){ .c = c });
}

ds_node *ds_add_scalar(ds_graph *g, ds_node *x, float c)
{
    return scalar_op(g, DS_OP_ADD_SCALAR, x, c);
}
ds_node *ds_mul_scalar(ds_graph *g, ds_node *x, float c)
{
    return scalar_op(g, DS_OP_MUL_SCALAR, x, c);
}
ds_node *ds_pow_scalar(ds_graph *g, ds_node *x, float p)
{
    return scalar_op(g, DS_OP_POW_SCALAR, x, p);
}
ds_node *ds_neg(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_NEG, 1, &x, NULL); }
ds_node *ds_exp(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_EXP, 1, &x, NULL); }
ds_node *ds_log(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_LOG, 1, &x, NULL); }
ds_node *ds_sqrt(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_SQRT, 1, &x, NULL); }
ds_node *ds_square(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_SQUARE, 1, &x, NULL); }
ds_node *ds_abs(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_ABS, 1, &x, NULL); }
