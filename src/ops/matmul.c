/* matmul.c - matrix product and linear (x W^T + b) ops: shape rules, forward, backward. */
#include "../internal.h"

#include <math.h>

/* ---- matmul: a [M,K] b [K,N] -> [M,N], or batched [B,M,K] [B,K,N] -> [B,M,N] ---- */
static ds_status matmul_shape(ds_node *y)
{
    const ds_node *a = y->in[0], *b = y->in[1];
    bool batched = a->ndim == 3 && b->ndim == 3 && a->shape[0] == b->shape[0];
    bool plain = a->ndim == 2 && b->ndim == 2;
    if ((!plain && !batched) || a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return dsi_fail_node(y, DS_ERR_SHAPE, "cannot multiply %s by %s",
                             dsi_shape_str(a->ndim, a->shape), dsi_shape_str(b->ndim, b->shape));
    int64_t s[3];
    int nd = a->ndim;
    if (batched)
        s[0] = a->shape[0];
    s[nd - 2] = a->shape[nd - 2];
    s[nd - 1] = b->shape[nd - 1];
    dsi_set_shape(y, nd, s);
    return DS_OK;
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

DS_HOT
static void matmul_forward(ds_node *y)
{
    int64_t B, M, K, N;
    matmul_dims(y, &B, &M, &K, &N);
    for (int64_t i = 0; i < B; i++)
        dsi_sgemm(false, false, M, N, K, 1.0f, y->in[0]->data + i * M * K, K,
                  y->in[1]->data + i * K * N, N, 0.0f, y->data + i * M * N, N);
}

/* da += dy b^T, db += a^T dy */
DS_HOT
static void matmul_backward(ds_node *y)
{
    int64_t B, M, K, N;
    matmul_dims(y, &B, &M, &K, &N);
    ds_node *a = y->in[0], *b = y->in[1];
    for (int64_t i = 0; i < B; i++) {
        const float *dy = y->grad + i * M * N;
        if (a->grad)
            dsi_sgemm(false, true, M, K, N, 1.0f, dy, N, b->data + i * K * N, N, 1.0f,
                      a->grad + i * M * K, K);
        if (b->grad)
            dsi_sgemm(true, false, K, N, M, 1.0f, a->data + i * M * K, K, dy, N, 1.0f,
                      b->grad + i * K * N, N);
    }
}

const ds_op_def dsi_op_matmul = {
    .shape = matmul_shape, .cpu = {matmul_forward, matmul_backward}, .bwd_reads = dsi_reads_in01,
};

/* ---- linear: x [..., in], w [out, in], optional b [out] -> [..., out]; attr.linear.act a
 * fused activation (DSI_FUSE_RELU: y = relu(x W^T + b), backward masks dy by y > 0) ---- */
static ds_status linear_shape(ds_node *y)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s does not fit weight %s (expects [..., %lld])",
                             dsi_shape_str(x->ndim, x->shape), dsi_shape_str(w->ndim, w->shape),
                             w->ndim == 2 ? (long long)w->shape[1] : -1LL);
    if (y->n_in == 3 && (y->in[2]->ndim != 1 || y->in[2]->shape[0] != w->shape[0]))
        return dsi_fail_node(y, DS_ERR_SHAPE, "bias %s does not fit weight %s",
                             dsi_shape_str(y->in[2]->ndim, y->in[2]->shape),
                             dsi_shape_str(w->ndim, w->shape));
    int64_t s[DS_MAX_DIMS];
    memcpy(s, x->shape, sizeof s);
    s[x->ndim - 1] = w->shape[0];
    dsi_set_shape(y, x->ndim, s);
    return DS_OK;
}

/* One row (batch 1): y[j] = x . W[j], each output by one thread. sgemm would copy all of W
 * into its packed layout first (the dense layer of the galaxy CNN: 4 MB, a third of its
 * batch-1 latency); here W is read once, and threads share the reads. Four outputs at a
 * time, each over 16 lanes of partial sums (independent chains, vectorized) folded in a
 * fixed order: the result depends on the shapes alone. */
enum { ROW_LANES = 16, ROW_OUTS = 4 };
/* Weights from which one row goes through linear_row: below (W in a core's L2 cache) sgemm's
 * small-matrix kernels are faster (measured: the 784x256 layer of the MLP 1.6x). */
#define LINEAR_ROW_MIN ((int64_t)1 << 18)

DS_HOT
static void linear_row(const float *x, const float *w, int64_t in, int64_t out, float *y)
{
    int64_t nb = (out + ROW_OUTS - 1) / ROW_OUTS, full = in - in % ROW_LANES;
#pragma omp parallel for schedule(static) if (in * out > DS_PAR_MIN)
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t j0 = blk * ROW_OUTS, nj = out - j0 < ROW_OUTS ? out - j0 : ROW_OUTS;
        float acc[ROW_OUTS][ROW_LANES] = {{0}};
        const float *wr[ROW_OUTS];
        for (int r = 0; r < ROW_OUTS; r++)
            wr[r] = w + (j0 + (r < nj ? r : 0)) * in;   /* rows past the end: a copy, unused */
        for (int64_t i = 0; i < full; i += ROW_LANES)
            for (int r = 0; r < ROW_OUTS; r++) {
#pragma omp simd
                for (int l = 0; l < ROW_LANES; l++)
                    acc[r][l] = fmaf(x[i + l], wr[r][i + l], acc[r][l]);
            }
        for (int r = 0; r < nj; r++) {
            for (int64_t i = full; i < in; i++)
                acc[r][i - full] = fmaf(x[i], wr[r][i], acc[r][i - full]);
            for (int h = ROW_LANES / 2; h > 0; h /= 2)
                for (int l = 0; l < h; l++)
                    acc[r][l] += acc[r][l + h];
            y[j0 + r] = acc[r][0];
        }
    }
}

DS_HOT
static void linear_forward(ds_node *y)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
    if (rows == 1 && in * out >= LINEAR_ROW_MIN)
        linear_row(x->data, w->data, in, out, y->data);
    else
        dsi_sgemm(false, true, rows, out, in, 1.0f, x->data, in, w->data, in, 0.0f, y->data,
                  out);
    const float *b = y->n_in == 3 ? y->in[2]->data : NULL;
    float *yd = y->data;
    if (y->attr.linear.act == DSI_FUSE_RELU) {
#pragma omp parallel for schedule(static) if (rows * out > DS_PAR_MIN)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < out; j++) {
                float v = yd[r * out + j] + (b ? b[j] : 0.0f);
                yd[r * out + j] = v > 0 ? v : 0.0f;
            }
    } else if (b) {
#pragma omp parallel for schedule(static) if (rows * out > DS_PAR_MIN)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < out; j++)
                yd[r * out + j] += b[j];
    }
}

/* Scratch: the masked dy of a fused ReLU. */
static size_t linear_scratch(const ds_node *y)
{
    return y->attr.linear.act == DSI_FUSE_RELU ? (size_t)y->numel * sizeof(float) : 0;
}

/* dx += dy W,  dW += dy^T x,  db += sum over rows of dy (dy masked by y > 0 first for a
 * fused ReLU) */
DS_HOT
static void linear_backward(ds_node *y)
{
    ds_node *x = y->in[0], *w = y->in[1];
    int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
    const float *dy = y->grad;
    if (y->attr.linear.act == DSI_FUSE_RELU) {
        const float *yd = y->data, *g = y->grad;
        float *m = y->g->scratch;
#pragma omp parallel for schedule(static) if (rows * out > DS_PAR_MIN)
        for (int64_t i = 0; i < rows * out; i++)
            m[i] = yd[i] > 0 ? g[i] : 0.0f;
        dy = m;
    }
    if (x->grad)
        dsi_sgemm(false, false, rows, in, out, 1.0f, dy, out, w->data, in, 1.0f, x->grad, in);
    if (w->grad)
        dsi_sgemm(true, false, out, in, rows, 1.0f, dy, out, x->data, in, 1.0f, w->grad, in);
    if (y->n_in == 3 && y->in[2]->grad) {
        /* column sums, each in row order; blocks of 16 columns split over threads */
        float *db = y->in[2]->grad;
        int64_t nb = (out + 15) / 16;
#pragma omp parallel for schedule(static) if (rows * out > DS_PAR_MIN)
        for (int64_t k = 0; k < nb; k++) {
            int64_t j0 = k * 16, j1 = j0 + 16 < out ? j0 + 16 : out;
            float s[16] = {0};
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = j0; j < j1; j++)
                    s[j - j0] += dy[r * out + j];
            for (int64_t j = j0; j < j1; j++)
                db[j] += s[j - j0];
        }
    }
}

/* x and w, and y itself for the mask of a fused activation. */
static uint32_t linear_reads(const ds_node *y)
{
    bool act = y->attr.linear.act != DSI_FUSE_NONE;
    return DSI_READS_IN(0) | DSI_READS_IN(1) | (act ? DSI_READS_OUT : 0);
}

const ds_op_def dsi_op_linear = {
    .shape = linear_shape, .cpu = {linear_forward, linear_backward},
    .scratch_bytes = linear_scratch, .bwd_reads = linear_reads,
};

ds_node *ds_matmul(ds_graph *g, ds_node *a, ds_node *b)
{
    return dsi_node(g, DS_OP_MATMUL, 2, (ds_node *[]){a, b}, NULL);
}

ds_node *ds_linear(ds_graph *g, ds_node *x, ds_node *w, ds_node *b)
{
    return dsi_linear_fused(g, x, w, b, DSI_FUSE_NONE);
}

ds_node *dsi_linear_fused(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int act)
{
    return dsi_node(g, DS_OP_LINEAR, b ? 3 : 2, (ds_node *[]){x, w, b},
                    &(dsi_linear_attr){ .act = act });
}
