/* conv_transpose.c - 2D transposed convolution op (PyTorch's ConvTranspose2d): shape rule,
 * forward, backward.
 *
 * x [N, C, H, W], w [C, F, kh, kw], optional b [F] -> y [N, F, OH, OW] with, per axis,
 *   O = (I - 1) s + d (k - 1) + 1 - pad_lo - pad_hi
 * (PyTorch: pad_lo = padding, pad_hi = padding - output_padding). It is the adjoint of a
 * convolution from y to x, so forward is that convolution's input gradient: per group of
 * samples col [F*kh*kw, G*H*W] = W^T x, then col2im into y (+ b). Backward: dx = W
 * im2col(dy), dW += x im2col(dy)^T, db = sum of dy over N, OH, OW.
 *
 * Attributes (dsi_conv_transpose_attr), per axis: stride, pad_lo, pad_hi (negative: extra
 * rows at the end, as output_padding), dilation, output_padding (for checks). */
#include "conv_impl.h"

/* The convolution seen from y's side: image = y, column grid = x's spatial grid. */
static void convt_geom(const ds_node *y, dsi_conv_geom *q)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    q->in[0] = q->out[0] = q->k[0] = q->s[0] = q->d[0] = 1;
    q->p[0] = 0;
    for (int i = 0; i < 2; i++) {
        q->in[1 + i] = y->shape[2 + i];
        q->out[1 + i] = x->shape[2 + i];
        q->k[1 + i] = w->shape[2 + i];
        q->s[1 + i] = y->attr.conv_transpose.stride[i];
        q->p[1 + i] = y->attr.conv_transpose.pad_lo[i];
        q->d[1 + i] = y->attr.conv_transpose.dilation[i];
    }
    q->in_n = q->in[1] * q->in[2];
    q->out_n = q->out[1] * q->out[2];
    q->k_n = q->k[1] * q->k[2];
}

static ds_status convt_shape(ds_node *y)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    if (x->ndim != 4)
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s is not [batch, channels, height, width]",
                             dsi_shape_str(x->ndim, x->shape));
    if (w->ndim != 4)
        return dsi_fail_node(y, DS_ERR_SHAPE, "weight %s is not [in_channels, filters, kh, kw]",
                             dsi_shape_str(w->ndim, w->shape));
    if (w->shape[0] != x->shape[1])
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s has %lld channels, weight %s expects %lld",
                             dsi_shape_str(x->ndim, x->shape), (long long)x->shape[1],
                             dsi_shape_str(w->ndim, w->shape), (long long)w->shape[0]);
    if (y->n_in == 3 && (y->in[2]->ndim != 1 || y->in[2]->shape[0] != w->shape[1]))
        return dsi_fail_node(y, DS_ERR_SHAPE, "bias %s does not fit weight %s",
                             dsi_shape_str(y->in[2]->ndim, y->in[2]->shape),
                             dsi_shape_str(w->ndim, w->shape));
    const dsi_conv_transpose_attr *at = &y->attr.conv_transpose;
    int64_t s[4] = {x->shape[0], w->shape[1]};
    for (int i = 0; i < 2; i++) {
        int64_t st = at->stride[i], lo = at->pad_lo[i], hi = at->pad_hi[i], d = at->dilation[i];
        int64_t op = at->output_padding[i];
        if (st < 1 || d < 1 || lo < 0)
            return dsi_fail_node(y, DS_ERR_ARG, "axis %d: stride %lld, dilation %lld, padding "
                                 "%lld (stride and dilation >= 1, padding >= 0)", i,
                                 (long long)st, (long long)d, (long long)lo);
        if (op < 0 || (op >= st && op >= d))
            return dsi_fail_node(y, DS_ERR_ARG, "axis %d: output_padding %lld must be smaller "
                                 "than the stride (%lld) or the dilation (%lld); input %s, "
                                 "weight %s", i, (long long)op, (long long)st, (long long)d,
                                 dsi_shape_str(x->ndim, x->shape), dsi_shape_str(w->ndim, w->shape));
        s[2 + i] = (x->shape[2 + i] - 1) * st + d * (w->shape[2 + i] - 1) + 1 - lo - hi;
        if (s[2 + i] < 1)
            return dsi_fail_node(y, DS_ERR_SHAPE, "padding %lld leaves no output along axis %d "
                                 "(input %s, weight %s, stride %lld)", (long long)lo, i,
                                 dsi_shape_str(x->ndim, x->shape), dsi_shape_str(w->ndim, w->shape),
                                 (long long)st);
    }
    dsi_set_shape(y, 4, s);
    return DS_OK;
}

static int64_t convt_group(const ds_node *y, const dsi_conv_geom *q)
{
    int64_t fk = y->in[1]->shape[1] * q->k_n, c = y->in[1]->shape[0];
    return dsi_conv_group(y->in[0]->shape[0], q->out_n, fk + c);
}

/* col [F*k_n, G*H*W] and x or dx [C, G*H*W] */
static size_t convt_scratch(const ds_node *y)
{
    dsi_conv_geom q;
    convt_geom(y, &q);
    int64_t fk = y->in[1]->shape[1] * q.k_n, c = y->in[1]->shape[0];
    return (size_t)((fk + c) * convt_group(y, &q) * q.out_n) * sizeof(float);
}

/* xT [C, gn*HW] from samples n0.. of x [N, C, HW] */
DS_HOT
static void gather(const float *x, int64_t C, int64_t HW, int64_t n0, int64_t gn, float *xT)
{
    int64_t ld = gn * HW;
#pragma omp parallel for schedule(static) if (gn * C * HW > DS_PAR_MIN)
    for (int64_t jc = 0; jc < gn * C; jc++) {
        int64_t j = jc / C, c = jc % C;
        memcpy(xT + c * ld + j * HW, x + ((n0 + j) * C + c) * HW, (size_t)HW * sizeof *xT);
    }
}

DS_HOT
static void convt_forward(ds_node *y)
{
    dsi_conv_geom q;
    convt_geom(y, &q);
    const ds_node *x = y->in[0], *w = y->in[1];
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    int64_t N = x->shape[0], C = x->shape[1], F = w->shape[1], fk = F * q.k_n, HW = q.out_n;
    int64_t G = convt_group(y, &q);
    for (int64_t n0 = 0; n0 < N; n0 += G) {
        int64_t gn = N - n0 < G ? N - n0 : G, ld = gn * HW;
        float *col = y->g->scratch, *xT = col + fk * ld;
        const float *xg = x->data + n0 * C * HW;
        if (gn > 1) {
            gather(x->data, C, HW, n0, gn, xT);
            xg = xT;
        }
        dsi_sgemm_tiled(true, false, fk, ld, C, 1.0f, w->data, fk, xg, ld, 0.0f, col, ld);
        float *yd = y->data;
#pragma omp parallel for schedule(static) if (gn * fk * HW > DS_PAR_MIN)
        for (int64_t jf = 0; jf < gn * F; jf++) {
            int64_t j = jf / F, f = jf % F;
            float *plane = yd + ((n0 + j) * F + f) * q.in_n, b = bias ? bias[f] : 0.0f;
            for (int64_t i = 0; i < q.in_n; i++)
                plane[i] = b;
            dsi_col2im(&q, col + f * q.k_n * ld + j * HW, ld, plane);
        }
    }
}

DS_HOT
static void convt_backward(ds_node *y)
{
    dsi_conv_geom q;
    convt_geom(y, &q);
    ds_node *x = y->in[0], *w = y->in[1];
    int64_t N = x->shape[0], C = x->shape[1], F = w->shape[1], fk = F * q.k_n, HW = q.out_n;
    int64_t G = convt_group(y, &q);
    const float *dy = y->grad;
    for (int64_t n0 = 0; n0 < N && (x->grad || w->grad); n0 += G) {
        int64_t gn = N - n0 < G ? N - n0 : G, ld = gn * HW;
        float *col = y->g->scratch, *xT = col + fk * ld;
#pragma omp parallel for schedule(static) if (gn * fk * HW > DS_PAR_MIN)
        for (int64_t jf = 0; jf < gn * F; jf++) {
            int64_t j = jf / F, f = jf % F;
            dsi_im2col(&q, dy + ((n0 + j) * F + f) * q.in_n, col + f * q.k_n * ld + j * HW, ld);
        }
        if (w->grad) {
            const float *xg = x->data + n0 * C * HW;
            if (gn > 1) {
                gather(x->data, C, HW, n0, gn, xT);
                xg = xT;
            }
            dsi_sgemm_tiled(false, true, C, fk, ld, 1.0f, xg, ld, col, ld, 1.0f, w->grad, fk);
        }
        if (!x->grad)
            continue;
        if (gn == 1) {
            dsi_sgemm_tiled(false, false, C, HW, fk, 1.0f, w->data, fk, col, ld, 1.0f,
                      x->grad + n0 * C * HW, HW);
            continue;
        }
        dsi_sgemm_tiled(false, false, C, ld, fk, 1.0f, w->data, fk, col, ld, 0.0f, xT, ld);
        float *dx = x->grad;
#pragma omp parallel for schedule(static) if (gn * C * HW > DS_PAR_MIN)
        for (int64_t jc = 0; jc < gn * C; jc++) {
            int64_t j = jc / C, c = jc % C;
            const float *src = xT + c * ld + j * HW;
            float *dst = dx + ((n0 + j) * C + c) * HW;
            for (int64_t i = 0; i < HW; i++)
                dst[i] += src[i];
        }
    }
    if (y->n_in == 3 && y->in[2]->grad)
        dsi_channel_sum_add(dy, N, F, q.in_n, y->in[2]->grad);
}

const ds_op_def dsi_op_conv_transpose2d = {
    .shape = convt_shape, .cpu = {convt_forward, convt_backward},
    .scratch_bytes = convt_scratch, .bwd_reads = dsi_reads_in01,
};

ds_node *dsi_conv_transpose2d_pads(ds_graph *g, ds_node *x, ds_node *w, ds_node *b,
                                   const int *stride, const int *pad_lo, const int *pad_hi,
                                   const int *output_padding, const int *dilation)
{
    dsi_conv_transpose_attr at;
    for (int i = 0; i < 2; i++) {
        at.stride[i] = stride ? stride[i] : 1;
        at.pad_lo[i] = pad_lo ? pad_lo[i] : 0;
        at.output_padding[i] = output_padding ? output_padding[i] : 0;
        at.pad_hi[i] = (pad_hi ? pad_hi[i] : 0) - at.output_padding[i];
        at.dilation[i] = dilation ? dilation[i] : 1;
    }
    return dsi_node(g, DS_OP_CONV_TRANSPOSE2D, b ? 3 : 2, (ds_node *[]){x, w, b}, &at);
}

ds_node *ds_conv_transpose2d_op(ds_graph *g, ds_node *x, ds_node *w, ds_node *b,
                                const int *stride, const int *pad, const int *output_padding,
                                const int *dilation)
{
    return dsi_conv_transpose2d_pads(g, x, w, b, stride, pad, pad, output_padding, dilation);
}
