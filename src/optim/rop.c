/* rop.c - second-order rules for damped Newton: per op, the forward tangent R{y}
 * (Pearlmutter's R-operator), the vector-Jacobian product and the second-order term of the
 * reverse tangent pass, all in double precision; pointwise ops only bring f' and f'' (their
 * ds_op_def.derivs). newton.c drives them. */
#include "rop.h"

#include <math.h>

/* Pointwise ops bring their derivatives (ds_op_def.derivs); the rules of the others are
 * here. */
static bool is_unary(ds_op op) { return dsi_ops[op]->derivs != NULL; }

bool dsi_rop_supported(ds_op op)
{
    if (is_unary(op))
        return true;
    switch (op) {
    case DS_OP_INPUT: case DS_OP_PARAM:
    case DS_OP_ADD: case DS_OP_SUB: case DS_OP_MUL: case DS_OP_DIV:
    case DS_OP_SUM: case DS_OP_MEAN:
    case DS_OP_MATMUL: case DS_OP_LINEAR:
    case DS_OP_SOFTMAX: case DS_OP_LOG_SOFTMAX:
    case DS_OP_RESHAPE: case DS_OP_CONCAT: case DS_OP_SLICE:
    case DS_OP_LOSS_MSE: case DS_OP_LOSS_MAE: case DS_OP_LOSS_BCE_LOGITS:
    case DS_OP_LOSS_CCE_LOGITS: case DS_OP_LOSS_CCE_INT: case DS_OP_LOSS_GAUSS_NLL:
    case DS_OP_LOSS_MSB:
        return true;
    default:
        return false;
    }
}

static double sigm(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* Loss scale: 1 for sum, 1/count for mean. */
static double loss_scale(const ds_node *y, int64_t count)
{
    return y->attr.loss.reduction == DS_REDUCE_SUM ? 1.0 : 1.0 / (double)count;
}

/* ---- broadcasting: flat index into x of y's element k (NumPy rules) ---- */
typedef struct {
    bool same;
    int nd;
    int64_t shape[DS_MAX_DIMS], stride[DS_MAX_DIMS];
} bmap;

static void bmap_init(bmap *b, const ds_node *y, const ds_node *x)
{
    b->same = x->numel == y->numel;
    b->nd = y->ndim;
    int64_t s = 1;
    for (int d = y->ndim - 1; d >= 0; d--) {
        int xd = d - (y->ndim - x->ndim);
        b->shape[d] = y->shape[d];
        b->stride[d] = (xd >= 0 && x->shape[xd] != 1) ? s : 0;
        if (xd >= 0)
            s *= x->shape[xd];
    }
}

static inline int64_t bmap_at(const bmap *b, int64_t k)
{
    if (b->same)
        return k;
    int64_t idx = 0;
    for (int d = b->nd - 1; d >= 0; d--) {
        idx += (k % b->shape[d]) * b->stride[d];
        k /= b->shape[d];
    }
    return idx;
}

/* ---- reductions: output flat index of input element k ---- */
typedef struct {
    int nd;
    int64_t shape[DS_MAX_DIMS], ostride[DS_MAX_DIMS];
} rmap;

static void rmap_init(rmap *r, const ds_node *y)
{
    const ds_node *x = y->in[0];
    bool red[DS_MAX_DIMS] = {false};
    const dsi_reduce_attr *at = &y->attr.reduce;
    if (at->naxes == 0)
        for (int d = 0; d < x->ndim; d++)
            red[d] = true;
    for (int i = 0; i < at->naxes; i++) {
        int a = dsi_axis(at->axes[i], x->ndim);
        if (a >= 0)
            red[a] = true;
    }
    r->nd = x->ndim;
    int64_t s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        r->shape[d] = x->shape[d];
        r->ostride[d] = red[d] ? 0 : s;
        if (!red[d])
            s *= x->shape[d];
    }
}

static inline int64_t rmap_at(const rmap *r, int64_t k)
{
    int64_t idx = 0;
    for (int d = r->nd - 1; d >= 0; d--) {
        idx += (k % r->shape[d]) * r->ostride[d];
        k /= r->shape[d];
    }
    return idx;
}

/* ---- classes on dimension 1: [N, K, S...] ---- */
static void class_dims(const ds_node *z, int64_t *N, int64_t *K, int64_t *S)
{
    *N = z->shape[0];
    *K = z->ndim > 1 ? z->shape[1] : 1;
    *S = z->numel / (*N * *K);
}

/* ---- softmax and log-softmax along their axis: lines of K values at stride `inner` ---- */
static void around(const ds_node *x, int a, int64_t *outer, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < a; d++)
        *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++)
        *inner *= x->shape[d];
}

static void softmax_dims(const ds_node *y, int64_t *K, int64_t *inner)
{
    int a = dsi_axis(y->attr.softmax.axis, y->ndim);
    int64_t outer;
    *K = y->shape[a];
    around(y, a, &outer, inner);
}

/* Line l's first element; its K values follow at stride s. */
static inline int64_t line_base(int64_t l, int64_t K, int64_t s) { return (l / s) * K * s + l % s; }

/* sum_k p_k v_k over one line */
static double line_dot(const double *p, const double *v, int64_t K, int64_t s)
{
    double acc = 0;
    for (int64_t k = 0; k < K; k++)
        acc += p[k * s] * v[k * s];
    return acc;
}

/* Softmax family. p = softmax(x) (aux). With q = <p, Rx>:
 *   softmax:      Ry = p (Rx - q);  dx = p (dy - <p, dy>);
 *                 second order: Rp (dy - <p, dy>) - p <Rp, dy>, Rp = p (Rx - q)
 *   log_softmax:  Ry = Rx - q;      dx = dy - p sum(dy);  second order: -Rp sum(dy). */
static void softmax_rule(const ds_node *y, const double *p, const double *dy, const double *rx,
                         double *out, int mode)
{
    int64_t K, s;
    softmax_dims(y, &K, &s);
    bool lg = y->op == DS_OP_LOG_SOFTMAX;
    for (int64_t l = 0; l < y->numel / K; l++) {
        int64_t b = line_base(l, K, s);
        const double *pl = p + b;
        double *o = out + b;
        if (mode == 0) {          /* jvp */
            const double *r = rx + b;
            double q = line_dot(pl, r, K, s);
            for (int64_t k = 0; k < K; k++)
                o[k * s] += lg ? r[k * s] - q : pl[k * s] * (r[k * s] - q);
        } else if (mode == 1) {   /* vjp */
            const double *d = dy + b;
            double t = 0;
            for (int64_t k = 0; k < K; k++)
                t += lg ? d[k * s] : d[k * s] * pl[k * s];
            for (int64_t k = 0; k < K; k++)
                o[k * s] += lg ? d[k * s] - pl[k * s] * t : pl[k * s] * (d[k * s] - t);
        } else {                  /* second order */
            const double *r = rx + b, *d = dy + b;
            double q = line_dot(pl, r, K, s), t = 0, rpd = 0;
            for (int64_t k = 0; k < K; k++) {
                double rp = pl[k * s] * (r[k * s] - q);
                t += lg ? d[k * s] : d[k * s] * pl[k * s];
                rpd += rp * d[k * s];
            }
            for (int64_t k = 0; k < K; k++) {
                double rp = pl[k * s] * (r[k * s] - q);
                o[k * s] += lg ? -rp * t : rp * (d[k * s] - t) - pl[k * s] * rpd;
            }
        }
    }
}

/* ---- concat and slice: copies between y and its inputs. to_y: out[y] += in[x] (tangent);
 * else out[x] += in[y] (adjoint). ---- */
static void copy_rule(const ds_node *y, double *const *tab, const double *yv, double *yo,
                      bool to_y)
{
    if (y->op == DS_OP_CONCAT) {
        int a = dsi_axis(y->attr.concat.axis, y->ndim);
        int64_t outer, inner, off = 0;
        around(y, a, &outer, &inner);
        int64_t row = y->shape[a] * inner;
        for (int k = 0; k < y->n_in; k++) {
            int64_t len = y->in[k]->shape[a] * inner;
            double *xv = tab[y->in[k]->id];
            if (xv)
                for (int64_t o = 0; o < outer; o++)
                    for (int64_t i = 0; i < len; i++) {
                        if (to_y)
                            yo[o * row + off + i] += xv[o * len + i];
                        else
                            xv[o * len + i] += yv[o * row + off + i];
                    }
            off += len;
        }
        return;
    }
    /* slice: start normalized as shape.c does */
    const ds_node *x = y->in[0];
    double *xv = tab[x->id];
    if (!xv)
        return;
    const dsi_slice_attr *at = &y->attr.slice;
    int a = dsi_axis(at->axis, x->ndim);
    int64_t outer, inner, s0 = at->start < 0 ? at->start + x->shape[a] : at->start;
    around(x, a, &outer, &inner);
    int64_t xrow = x->shape[a] * inner, yrow = y->shape[a] * inner;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < yrow; i++) {
            if (to_y)
                yo[o * yrow + i] += xv[o * xrow + s0 * inner + i];
            else
                xv[o * xrow + s0 * inner + i] += yv[o * yrow + i];
        }
}

/* ---- mean squared bias: quadratic in d = pred - target, so its gradient G(d) is linear ----
 * gp += s G(v), gt -= s G(v) for v = va - vb (NULL: 0), either output NULL. G is the
 * backward of loss.c: per case and feature, b = mean of v over the K rows of the group,
 * G_k = cb (2 b / K - u (v_k - b)) + 2 cm v_k. */
static void msb_apply(const ds_node *y, const double *va, const double *vb, double *gp,
                      double *gt, double s)
{
    const ds_node *p = y->in[0];
    int64_t n = p->ndim ? p->shape[0] : 0;
    if (n == 0)
        return;
    int k = y->attr.loss.group;
    int64_t f = p->numel / n, groups = n / k;
    double cb = loss_scale(y, groups * f), cm = y->attr.loss.mse * loss_scale(y, n * f);
    double u = y->attr.loss.unbiased && k > 1 ? 2.0 / ((double)k * (k - 1)) : 0.0;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t j = 0; j < f; j++) {
            double b = 0;
            for (int r = 0; r < k; r++) {
                int64_t i = (g * k + r) * f + j;
                b += (va ? va[i] : 0) - (vb ? vb[i] : 0);
            }
            b /= k;
            for (int r = 0; r < k; r++) {
                int64_t i = (g * k + r) * f + j;
                double v = (va ? va[i] : 0) - (vb ? vb[i] : 0);
                double gv = s * (cb * (2.0 * b / k - u * (v - b)) + 2.0 * cm * v);
                if (gp)
                    gp[i] += gv;
                if (gt)
                    gt[i] -= gv;
            }
        }
}

/* ---- per-node prepared data ---- */
int64_t dsi_rop_aux_size(const ds_node *y)
{
    if (is_unary(y->op))
        return 2 * y->numel;               /* f'(x), f''(x) */
    switch (y->op) {
    case DS_OP_LOSS_BCE_LOGITS:
        return y->in[0]->numel;            /* sigmoid(z) */
    case DS_OP_SOFTMAX: case DS_OP_LOG_SOFTMAX:
        return y->numel;                   /* softmax p */
    case DS_OP_LOSS_CCE_LOGITS: case DS_OP_LOSS_CCE_INT:
        return 2 * y->in[0]->numel;        /* softmax p, log p */
    case DS_OP_LOSS_MSB:
        return 2 * y->in[0]->numel;        /* d = pred - target, G(d) */
    default:
        return 0;
    }
}

void dsi_rop_prepare(const ds_node *y, double *aux)
{
    if (is_unary(y->op)) {
        const float *x = y->in[0]->data;
        for (int64_t i = 0; i < y->numel; i++)
            dsi_ops[y->op]->derivs(y, x[i], &aux[i], &aux[y->numel + i]);
        return;
    }
    const ds_node *z = y->n_in ? y->in[0] : NULL;
    if (y->op == DS_OP_SOFTMAX || y->op == DS_OP_LOG_SOFTMAX) {
        int64_t K, s;
        softmax_dims(y, &K, &s);
        for (int64_t l = 0; l < y->numel / K; l++) {
            int64_t b = line_base(l, K, s);
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < K; k++)
                mx = fmax(mx, z->data[b + k * s]);
            for (int64_t k = 0; k < K; k++)
                sum += (aux[b + k * s] = exp(z->data[b + k * s] - mx));
            for (int64_t k = 0; k < K; k++)
                aux[b + k * s] /= sum;
        }
    } else if (y->op == DS_OP_LOSS_BCE_LOGITS) {
        for (int64_t i = 0; i < z->numel; i++)
            aux[i] = sigm(z->data[i]);
    } else if (y->op == DS_OP_LOSS_MSB) {
        for (int64_t i = 0; i < z->numel; i++) {
            aux[i] = (double)z->data[i] - y->in[1]->data[i];
            aux[z->numel + i] = 0;
        }
        msb_apply(y, aux, NULL, aux + z->numel, NULL, 1.0);
    } else if (y->op == DS_OP_LOSS_CCE_LOGITS || y->op == DS_OP_LOSS_CCE_INT) {
        int64_t N, K, S;
        class_dims(z, &N, &K, &S);
        double *p = aux, *lp = aux + z->numel;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                const float *zz = z->data + n * K * S + s;
                double mx = -INFINITY, sum = 0;
                for (int64_t k = 0; k < K; k++)
                    mx = fmax(mx, zz[k * S]);
                for (int64_t k = 0; k < K; k++)
                    sum += exp(zz[k * S] - mx);
                double lse = mx + log(sum);
                for (int64_t k = 0; k < K; k++) {
                    int64_t i = n * K * S + k * S + s;
                    lp[i] = zz[k * S] - lse;
                    p[i] = exp(lp[i]);
                }
            }
    }
}

/* 1, or 0 where a ReLU fused into a linear op cut its output off (y <= 0). */
static inline double fused_gate(const ds_node *y, int64_t i)
{
    return y->attr.linear.act == DSI_FUSE_RELU && !(y->data[i] > 0) ? 0.0 : 1.0;
}

/* ---- forward tangents ---- */
static void jvp_linear(const ds_node *y, double *const *R)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
    const double *rx = R[x->id], *rw = R[w->id], *rb = y->n_in == 3 ? R[y->in[2]->id] : NULL;
    double *ry = R[y->id];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < out; j++) {
            double s = rb ? rb[j] : 0;
            const float *xr = x->data + r * in, *wj = w->data + j * in;
            if (rx)
                for (int64_t k = 0; k < in; k++)
                    s += rx[r * in + k] * wj[k];
            if (rw)
                for (int64_t k = 0; k < in; k++)
                    s += xr[k] * rw[j * in + k];
            ry[r * out + j] += fused_gate(y, r * out + j) * s;
        }
}

static void matmul_dims(const ds_node *y, int64_t *B, int64_t *M, int64_t *K, int64_t *N)
{
    const ds_node *a = y->in[0], *b = y->in[1];
    int nd = a->ndim;
    *B = nd == 3 ? a->shape[0] : 1;
    *M = a->shape[nd - 2];
    *K = a->shape[nd - 1];
    *N = b->shape[nd - 1];
}

/* C[m,n] += sum_k A[m,k] B[k,n] with A or B double (the other float), strided views. */
static void gemm_df(int64_t M, int64_t N, int64_t K, const double *ad, const float *af,
                    int64_t am, int64_t ak, const double *bd, const float *bf, int64_t bk,
                    int64_t bn, double *c)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double av = ad ? ad[m * am + k * ak] : af[m * am + k * ak];
                double bv = bd ? bd[k * bk + n * bn] : bf[k * bk + n * bn];
                s += av * bv;
            }
            c[m * N + n] += s;
        }
}

static void jvp_matmul(const ds_node *y, double *const *R)
{
    int64_t B, M, K, N;
    matmul_dims(y, &B, &M, &K, &N);
    const ds_node *a = y->in[0], *b = y->in[1];
    const double *ra = R[a->id], *rb = R[b->id];
    for (int64_t i = 0; i < B; i++) {
        double *ry = R[y->id] + i * M * N;
        if (ra)   /* Ra b */
            gemm_df(M, N, K, ra + i * M * K, NULL, K, 1, NULL, b->data + i * K * N, N, 1, ry);
        if (rb)   /* a Rb */
            gemm_df(M, N, K, NULL, a->data + i * M * K, K, 1, rb + i * K * N, NULL, N, 1, ry);
    }
}

/* R{L} = sum over inputs of dL/dx . Rx, for the losses. */
static double jvp_loss(const ds_node *y, const double *aux, double *const *R)
{
    const ds_node *p = y->in[0], *t = y->in[1];
    const double *rp = R[p->id], *rt = R[t->id];
    int64_t n = p->numel, N, K, S;
    double acc = 0;
    switch (y->op) {
    case DS_OP_LOSS_MSE: case DS_OP_LOSS_MAE:
        for (int64_t i = 0; i < n; i++) {
            double r = (double)p->data[i] - t->data[i];
            double g = y->op == DS_OP_LOSS_MSE ? 2 * r : (r > 0) - (r < 0);
            acc += g * ((rp ? rp[i] : 0) - (rt ? rt[i] : 0));
        }
        return loss_scale(y, n) * acc;
    case DS_OP_LOSS_BCE_LOGITS:
        for (int64_t i = 0; i < n; i++)
            acc += (rp ? (aux[i] - t->data[i]) * rp[i] : 0) - (rt ? p->data[i] * rt[i] : 0);
        return loss_scale(y, n) * acc;
    case DS_OP_LOSS_MSB:   /* aux + n: the gradient with respect to d */
        for (int64_t i = 0; i < n; i++)
            acc += aux[n + i] * ((rp ? rp[i] : 0) - (rt ? rt[i] : 0));
        return acc;
    case DS_OP_LOSS_CCE_LOGITS: case DS_OP_LOSS_CCE_INT: {
        bool soft = y->op == DS_OP_LOSS_CCE_LOGITS;
        class_dims(p, &N, &K, &S);
        for (int64_t a = 0; a < N; a++)
            for (int64_t b = 0; b < S; b++) {
                int64_t o = a * K * S + b, c = soft ? -1 : (int64_t)t->data[a * S + b];
                double T = soft ? 0 : 1;
                for (int64_t k = 0; soft && k < K; k++)
                    T += t->data[o + k * S];
                for (int64_t k = 0; k < K; k++) {
                    int64_t i = o + k * S;
                    double tk = soft ? t->data[i] : (double)(k == c);
                    if (rp)
                        acc += (aux[i] * T - tk) * rp[i];
                    if (soft && rt)
                        acc -= aux[n + i] * rt[i];
                }
            }
        return loss_scale(y, N * S) * acc;
    }
    case DS_OP_LOSS_GAUSS_NLL: {
        const ds_node *lv = y->in[1], *tt = y->in[2];
        const double *rl = R[lv->id], *rtt = R[tt->id];
        for (int64_t i = 0; i < n; i++) {
            double r = (double)tt->data[i] - p->data[i], w = exp(-(double)lv->data[i]);
            acc += r * w * ((rtt ? rtt[i] : 0) - (rp ? rp[i] : 0));
            if (rl)
                acc += 0.5 * (1 - r * r * w) * rl[i];
        }
        return loss_scale(y, n) * acc;
    }
    default:
        return 0;
    }
}

void dsi_rop_jvp(const ds_node *y, const double *aux, double *const *R)
{
    double *ry = R[y->id];
    int64_t n = y->numel;
    if (is_unary(y->op)) {
        const double *rx = R[y->in[0]->id];
        if (rx)
            for (int64_t i = 0; i < n; i++)
                ry[i] += aux[i] * rx[i];
        return;
    }
    switch (y->op) {
    case DS_OP_ADD: case DS_OP_SUB: case DS_OP_MUL: case DS_OP_DIV: {
        const ds_node *a = y->in[0], *b = y->in[1];
        const double *ra = R[a->id], *rb = R[b->id];
        bmap ma, mb;
        bmap_init(&ma, y, a);
        bmap_init(&mb, y, b);
        for (int64_t i = 0; i < n; i++) {
            int64_t ia = bmap_at(&ma, i), ib = bmap_at(&mb, i);
            double va = a->data[ia], vb = b->data[ib];
            double ta = ra ? ra[ia] : 0, tb = rb ? rb[ib] : 0;
            switch (y->op) {
            case DS_OP_ADD: ry[i] += ta + tb; break;
            case DS_OP_SUB: ry[i] += ta - tb; break;
            case DS_OP_MUL: ry[i] += ta * vb + va * tb; break;
            default: ry[i] += ta / vb - va * tb / (vb * vb); break;
            }
        }
        break;
    }
    case DS_OP_SUM: case DS_OP_MEAN: {
        const ds_node *x = y->in[0];
        const double *rx = R[x->id];
        if (!rx)
            break;
        double sc = y->op == DS_OP_MEAN ? (double)n / (double)x->numel : 1.0;
        rmap rm;
        rmap_init(&rm, y);
        for (int64_t k = 0; k < x->numel; k++)
            ry[rmap_at(&rm, k)] += sc * rx[k];
        break;
    }
    case DS_OP_RESHAPE: {
        const double *rx = R[y->in[0]->id];
        if (rx)
            for (int64_t i = 0; i < n; i++)
                ry[i] += rx[i];
        break;
    }
    case DS_OP_LINEAR: jvp_linear(y, R); break;
    case DS_OP_MATMUL: jvp_matmul(y, R); break;
    case DS_OP_SOFTMAX: case DS_OP_LOG_SOFTMAX:
        if (R[y->in[0]->id])
            softmax_rule(y, aux, NULL, R[y->in[0]->id], ry, 0);
        break;
    case DS_OP_CONCAT: case DS_OP_SLICE: copy_rule(y, R, NULL, ry, true); break;
    default:
        ry[0] += jvp_loss(y, aux, R);
        break;
    }
}

/* ---- vector-Jacobian products ---- */
static void vjp_linear(const ds_node *y, const double *dy, double *const *dx)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
    double *gx = dx[x->id], *gw = dx[w->id], *gb = y->n_in == 3 ? dx[y->in[2]->id] : NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < out; j++) {
            double d = dy[r * out + j] * fused_gate(y, r * out + j);
            if (d == 0)
                continue;
            const float *xr = x->data + r * in, *wj = w->data + j * in;
            if (gx)
                for (int64_t k = 0; k < in; k++)
                    gx[r * in + k] += d * wj[k];
            if (gw)
                for (int64_t k = 0; k < in; k++)
                    gw[j * in + k] += d * xr[k];
            if (gb)
                gb[j] += d;
        }
}

static void vjp_matmul(const ds_node *y, const double *dy, double *const *dx)
{
    int64_t B, M, K, N;
    matmul_dims(y, &B, &M, &K, &N);
    const ds_node *a = y->in[0], *b = y->in[1];
    double *ga = dx[a->id], *gb = dx[b->id];
    for (int64_t i = 0; i < B; i++) {
        const double *d = dy + i * M * N;
        if (ga)   /* da [M,K] += dy [M,N] b^T */
            gemm_df(M, K, N, d, NULL, N, 1, NULL, b->data + i * K * N, 1, N, ga + i * M * K);
        if (gb)   /* db [K,N] += a^T [K,M] dy [M,N] */
            gemm_df(K, N, M, NULL, a->data + i * M * K, 1, K, d, NULL, N, 1, gb + i * K * N);
    }
}

/* Loss gradients per element (seed dL folded in by the caller). */
static void vjp_loss(const ds_node *y, const double *aux, double dl, double *const *dx)
{
    const ds_node *p = y->in[0];
    int64_t n = p->numel;
    switch (y->op) {
    case DS_OP_LOSS_MSB: {
        double *gp = dx[p->id], *gt = dx[y->in[1]->id];
        for (int64_t i = 0; i < n; i++) {
            if (gp)
                gp[i] += dl * aux[n + i];
            if (gt)
                gt[i] -= dl * aux[n + i];
        }
        break;
    }
    case DS_OP_LOSS_MSE: case DS_OP_LOSS_MAE: {
        const ds_node *t = y->in[1];
        double *gp = dx[p->id], *gt = dx[t->id], s = loss_scale(y, n) * dl;
        for (int64_t i = 0; i < n; i++) {
            double r = (double)p->data[i] - t->data[i];
            double g = y->op == DS_OP_LOSS_MSE ? 2 * r : (r > 0) - (r < 0);
            if (gp)
                gp[i] += s * g;
            if (gt)
                gt[i] -= s * g;
        }
        break;
    }
    case DS_OP_LOSS_BCE_LOGITS: {
        const ds_node *t = y->in[1];
        double *gz = dx[p->id], *gt = dx[t->id], s = loss_scale(y, n) * dl;
        for (int64_t i = 0; i < n; i++) {
            if (gz)
                gz[i] += s * (aux[i] - t->data[i]);
            if (gt)
                gt[i] -= s * p->data[i];
        }
        break;
    }
    case DS_OP_LOSS_CCE_LOGITS: {
        /* l = -sum_k t_k log p_k: dz_k = p_k T - t_k (T = sum_k t_k), dt_k = -log p_k */
        const ds_node *t = y->in[1];
        int64_t N, K, S;
        class_dims(p, &N, &K, &S);
        const double *pr = aux, *lp = aux + n;
        double *gz = dx[p->id], *gt = dx[t->id], s = loss_scale(y, N * S) * dl;
        for (int64_t a = 0; a < N; a++)
            for (int64_t b = 0; b < S; b++) {
                int64_t o = a * K * S + b;
                double T = 0;
                for (int64_t k = 0; k < K; k++)
                    T += t->data[o + k * S];
                for (int64_t k = 0; k < K; k++) {
                    int64_t i = o + k * S;
                    if (gz)
                        gz[i] += s * (pr[i] * T - t->data[i]);
                    if (gt)
                        gt[i] -= s * lp[i];
                }
            }
        break;
    }
    case DS_OP_LOSS_CCE_INT: {
        const ds_node *lab = y->in[1];
        int64_t N, K, S;
        class_dims(p, &N, &K, &S);
        double *gz = dx[p->id], s = loss_scale(y, N * S) * dl;
        if (!gz)
            break;
        for (int64_t a = 0; a < N; a++)
            for (int64_t b = 0; b < S; b++) {
                int64_t o = a * K * S + b, c = (int64_t)lab->data[a * S + b];
                for (int64_t k = 0; k < K; k++)
                    gz[o + k * S] += s * (aux[o + k * S] - (k == c));
            }
        break;
    }
    case DS_OP_LOSS_GAUSS_NLL: {
        /* l = 0.5 (lv + r^2 w), r = t - m, w = e^-lv */
        const ds_node *lv = y->in[1], *t = y->in[2];
        double *gm = dx[p->id], *glv = dx[lv->id], *gt = dx[t->id], s = loss_scale(y, n) * dl;
        for (int64_t i = 0; i < n; i++) {
            double r = (double)t->data[i] - p->data[i], w = exp(-(double)lv->data[i]);
            if (gm)
                gm[i] -= s * r * w;
            if (gt)
                gt[i] += s * r * w;
            if (glv)
                glv[i] += s * 0.5 * (1 - r * r * w);
        }
        break;
    }
    default:
        break;
    }
}

void dsi_rop_vjp(const ds_node *y, const double *aux, const double *dy, double *const *dx)
{
    int64_t n = y->numel;
    if (is_unary(y->op)) {
        double *gx = dx[y->in[0]->id];
        if (gx)
            for (int64_t i = 0; i < n; i++)
                gx[i] += aux[i] * dy[i];
        return;
    }
    switch (y->op) {
    case DS_OP_ADD: case DS_OP_SUB: case DS_OP_MUL: case DS_OP_DIV: {
        const ds_node *a = y->in[0], *b = y->in[1];
        double *ga = dx[a->id], *gb = dx[b->id];
        bmap ma, mb;
        bmap_init(&ma, y, a);
        bmap_init(&mb, y, b);
        for (int64_t i = 0; i < n; i++) {
            int64_t ia = bmap_at(&ma, i), ib = bmap_at(&mb, i);
            double va = a->data[ia], vb = b->data[ib], d = dy[i];
            switch (y->op) {
            case DS_OP_ADD:
                if (ga) ga[ia] += d;
                if (gb) gb[ib] += d;
                break;
            case DS_OP_SUB:
                if (ga) ga[ia] += d;
                if (gb) gb[ib] -= d;
                break;
            case DS_OP_MUL:
                if (ga) ga[ia] += d * vb;
                if (gb) gb[ib] += d * va;
                break;
            default:
                if (ga) ga[ia] += d / vb;
                if (gb) gb[ib] -= d * va / (vb * vb);
                break;
            }
        }
        break;
    }
    case DS_OP_SUM: case DS_OP_MEAN: {
        const ds_node *x = y->in[0];
        double *gx = dx[x->id];
        if (!gx)
            break;
        double sc = y->op == DS_OP_MEAN ? (double)n / (double)x->numel : 1.0;
        rmap rm;
        rmap_init(&rm, y);
        for (int64_t k = 0; k < x->numel; k++)
            gx[k] += sc * dy[rmap_at(&rm, k)];
        break;
    }
    case DS_OP_RESHAPE: {
        double *gx = dx[y->in[0]->id];
        if (gx)
            for (int64_t i = 0; i < n; i++)
                gx[i] += dy[i];
        break;
    }
    case DS_OP_LINEAR: vjp_linear(y, dy, dx); break;
    case DS_OP_MATMUL: vjp_matmul(y, dy, dx); break;
    case DS_OP_SOFTMAX: case DS_OP_LOG_SOFTMAX:
        if (dx[y->in[0]->id])
            softmax_rule(y, aux, dy, NULL, dx[y->in[0]->id], 1);
        break;
    case DS_OP_CONCAT: case DS_OP_SLICE: copy_rule(y, dx, dy, NULL, false); break;
    case DS_OP_INPUT: case DS_OP_PARAM: break;
    default: vjp_loss(y, aux, dy[0], dx); break;
    }
}

/* ---- second-order terms ---- */
static void hvp_loss(const ds_node *y, const double *aux, double dl, double *const *R,
                     double *const *Rdx)
{
    const ds_node *p = y->in[0];
    int64_t n = p->numel;
    switch (y->op) {
    case DS_OP_LOSS_MSB: {   /* dp = G(p - t), linear: R{dp} = G(Rp - Rt), R{dt} = -R{dp} */
        const ds_node *t = y->in[1];
        msb_apply(y, R[p->id], R[t->id], Rdx[p->id], Rdx[t->id], dl);
        break;
    }
    case DS_OP_LOSS_MSE: {
        /* dp = 2 s (p - t): R{dp} = 2 s (Rp - Rt), R{dt} = -R{dp} */
        const ds_node *t = y->in[1];
        const double *rp = R[p->id], *rt = R[t->id];
        double *gp = Rdx[p->id], *gt = Rdx[t->id], s = 2 * loss_scale(y, n) * dl;
        for (int64_t i = 0; i < n; i++) {
            double d = s * ((rp ? rp[i] : 0) - (rt ? rt[i] : 0));
            if (gp)
                gp[i] += d;
            if (gt)
                gt[i] -= d;
        }
        break;
    }
    case DS_OP_LOSS_BCE_LOGITS: {
        /* dz = s (sig(z) - t), dt = -s z: R{dz} = s (sig' Rz - Rt), R{dt} = -s Rz */
        const ds_node *t = y->in[1];
        const double *rz = R[p->id], *rt = R[t->id];
        double *gz = Rdx[p->id], *gt = Rdx[t->id], s = loss_scale(y, n) * dl;
        for (int64_t i = 0; i < n; i++) {
            double z = rz ? rz[i] : 0, tt = rt ? rt[i] : 0;
            if (gz)
                gz[i] += s * (aux[i] * (1 - aux[i]) * z - tt);
            if (gt)
                gt[i] -= s * z;
        }
        break;
    }
    case DS_OP_LOSS_CCE_LOGITS: case DS_OP_LOSS_CCE_INT: {
        /* R{p_k} = p_k (Rz_k - sum_j p_j Rz_j). dz_k = s (p_k T - t_k), so
         * R{dz_k} = s (T R{p_k} + p_k RT - Rt_k), R{dt_k} = -s (Rz_k - sum_j p_j Rz_j). */
        bool soft = y->op == DS_OP_LOSS_CCE_LOGITS;
        const ds_node *t = y->in[1];
        int64_t N, K, S;
        class_dims(p, &N, &K, &S);
        const double *pr = aux, *rz = R[p->id], *rt = soft ? R[t->id] : NULL;
        double *gz = Rdx[p->id], *gt = soft ? Rdx[t->id] : NULL;
        double s = loss_scale(y, N * S) * dl;
        for (int64_t a = 0; a < N; a++)
            for (int64_t b = 0; b < S; b++) {
                int64_t o = a * K * S + b;
                double T = 1, RT = 0, pz = 0;
                if (soft) {
                    T = 0;
                    for (int64_t k = 0; k < K; k++)
                        T += t->data[o + k * S];
                }
                if (rt)
                    for (int64_t k = 0; k < K; k++)
                        RT += rt[o + k * S];
                if (rz)
                    for (int64_t k = 0; k < K; k++)
                        pz += pr[o + k * S] * rz[o + k * S];
                for (int64_t k = 0; k < K; k++) {
                    int64_t i = o + k * S;
                    double zk = rz ? rz[i] - pz : 0;
                    if (gz)
                        gz[i] += s * (T * pr[i] * zk + pr[i] * RT - (rt ? rt[i] : 0));
                    if (gt)
                        gt[i] -= s * zk;
                }
            }
        break;
    }
    case DS_OP_LOSS_GAUSS_NLL: {
        /* r = t - m, w = e^-lv. Second derivatives of l = 0.5 (lv + r^2 w):
         *   mm = w, m.lv = r w, m.t = -w, lv.lv = r^2 w / 2, lv.t = -r w, t.t = w. */
        const ds_node *lv = y->in[1], *t = y->in[2];
        const double *rm = R[p->id], *rl = R[lv->id], *rt = R[t->id];
        double *gm = Rdx[p->id], *gl = Rdx[lv->id], *gt = Rdx[t->id];
        double s = loss_scale(y, n) * dl;
        for (int64_t i = 0; i < n; i++) {
            double r = (double)t->data[i] - p->data[i], w = exp(-(double)lv->data[i]);
            double dm = (rm ? rm[i] : 0) - (rt ? rt[i] : 0), dlv = rl ? rl[i] : 0;
            double hm = w * (dm + r * dlv);
            if (gm)
                gm[i] += s * hm;
            if (gt)
                gt[i] -= s * hm;
            if (gl)
                gl[i] += s * (r * w * dm + 0.5 * r * r * w * dlv);
        }
        break;
    }
    default:   /* MAE: piecewise linear, no curvature */
        break;
    }
}

void dsi_rop_hvp(const ds_node *y, const double *aux, const double *dy, double *const *R,
                 double *const *Rdx)
{
    int64_t n = y->numel;
    if (is_unary(y->op)) {
        /* dx = f'(x) dy: R{dx} gets f''(x) Rx dy */
        const double *rx = R[y->in[0]->id];
        double *gx = Rdx[y->in[0]->id];
        if (rx && gx)
            for (int64_t i = 0; i < n; i++)
                gx[i] += aux[n + i] * rx[i] * dy[i];
        return;
    }
    switch (y->op) {
    case DS_OP_MUL: case DS_OP_DIV: {
        /* mul: R{da} += dy Rb, R{db} += dy Ra.
         * div: da = dy / b, db = -dy a / b^2: R{da} += -dy Rb / b^2,
         *      R{db} += -dy Ra / b^2 + 2 dy a Rb / b^3 */
        const ds_node *a = y->in[0], *b = y->in[1];
        const double *ra = R[a->id], *rb = R[b->id];
        double *ga = Rdx[a->id], *gb = Rdx[b->id];
        if (!ra && !rb)
            break;
        bmap ma, mb;
        bmap_init(&ma, y, a);
        bmap_init(&mb, y, b);
        for (int64_t i = 0; i < n; i++) {
            int64_t ia = bmap_at(&ma, i), ib = bmap_at(&mb, i);
            double ta = ra ? ra[ia] : 0, tb = rb ? rb[ib] : 0, d = dy[i];
            if (y->op == DS_OP_MUL) {
                if (ga) ga[ia] += d * tb;
                if (gb) gb[ib] += d * ta;
            } else {
                double vb = b->data[ib], va = a->data[ia], b2 = vb * vb;
                if (ga) ga[ia] -= d * tb / b2;
                if (gb) gb[ib] += -d * ta / b2 + 2 * d * va * tb / (b2 * vb);
            }
        }
        break;
    }
    case DS_OP_LINEAR: {
        /* dx = dy W, dW = dy^T x: R{dx} += dy RW, R{dW} += dy^T Rx (dy gated by a fused
         * ReLU, whose second derivative is 0) */
        const ds_node *x = y->in[0], *w = y->in[1];
        int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
        const double *rx = R[x->id], *rw = R[w->id];
        double *gx = Rdx[x->id], *gw = Rdx[w->id];
        if (!(rw && gx) && !(rx && gw))
            break;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < out; j++) {
                double d = dy[r * out + j] * fused_gate(y, r * out + j);
                if (d == 0)
                    continue;
                if (rw && gx)
                    for (int64_t k = 0; k < in; k++)
                        gx[r * in + k] += d * rw[j * in + k];
                if (rx && gw)
                    for (int64_t k = 0; k < in; k++)
                        gw[j * in + k] += d * rx[r * in + k];
            }
        break;
    }
    case DS_OP_MATMUL: {
        /* da = dy b^T, db = a^T dy: R{da} += dy Rb^T, R{db} += Ra^T dy */
        int64_t B, M, K, N;
        matmul_dims(y, &B, &M, &K, &N);
        const ds_node *a = y->in[0], *b = y->in[1];
        const double *ra = R[a->id], *rb = R[b->id];
        double *ga = Rdx[a->id], *gb = Rdx[b->id];
        for (int64_t i = 0; i < B; i++) {
            const double *d = dy + i * M * N;
            if (ga && rb)
                gemm_df(M, K, N, d, NULL, N, 1, rb + i * K * N, NULL, 1, N, ga + i * M * K);
            if (gb && ra)
                gemm_df(K, N, M, ra + i * M * K, NULL, 1, K, d, NULL, N, 1, gb + i * K * N);
        }
        break;
    }
    case DS_OP_SOFTMAX: case DS_OP_LOG_SOFTMAX:
        if (R[y->in[0]->id] && Rdx[y->in[0]->id])
            softmax_rule(y, aux, dy, R[y->in[0]->id], Rdx[y->in[0]->id], 2);
        break;
    case DS_OP_LOSS_MSE: case DS_OP_LOSS_MAE: case DS_OP_LOSS_BCE_LOGITS:
    case DS_OP_LOSS_CCE_LOGITS: case DS_OP_LOSS_CCE_INT: case DS_OP_LOSS_GAUSS_NLL:
    case DS_OP_LOSS_MSB:
        hvp_loss(y, aux, dy[0], R, Rdx);
        break;
    default:   /* add, sub, sum, mean, reshape, concat, slice: linear */
        break;
    }
}
