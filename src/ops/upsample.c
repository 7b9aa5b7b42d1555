/* upsample.c - 2D upsampling op by an integer factor (PyTorch's nn.Upsample(scale_factor=s)
 * with mode 'nearest' or 'bilinear', align_corners=False): shape rule, forward, backward.
 * Attributes: scale, mode (ds_upsample_mode). Each (sample, channel) plane is handled by one
 * thread in forward and backward, so results do not depend on the thread count. */
#include "../internal.h"

static ds_status upsample_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    if (x->ndim != 4)
        return dsi_fail_node(y, DS_ERR_SHAPE, "input %s is not [batch, channels, height, width]",
                             dsi_shape_str(x->ndim, x->shape));
    int64_t s = y->attr.upsample.scale;
    dsi_set_shape(y, 4, (int64_t[]){x->shape[0], x->shape[1], x->shape[2] * s, x->shape[3] * s});
    return DS_OK;
}

/* Bilinear source of output index o (align_corners=False): the two taps and weights. */
static inline void tap(int64_t o, int64_t s, int64_t in, int64_t *i0, int64_t *i1, float *l0,
                       float *l1)
{
    double src = ((double)o + 0.5) / (double)s - 0.5;
    if (src < 0)
        src = 0;
    int64_t i = (int64_t)src;
    *i0 = i;
    *i1 = i + (i < in - 1);
    *l1 = (float)(src - (double)i);
    *l0 = 1.0f - *l1;
}

DS_HOT
static void upsample_forward(ds_node *y)
{
    const ds_node *x = y->in[0];
    int64_t s = y->attr.upsample.scale, planes = x->shape[0] * x->shape[1];
    int64_t H = x->shape[2], W = x->shape[3], OH = H * s, OW = W * s;
    const float *xd = x->data;
    float *yd = y->data;
    bool bilinear = y->attr.upsample.mode == DS_UPSAMPLE_BILINEAR;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = xd + p * H * W;
        float *yp = yd + p * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            float *yr = yp + oh * OW;
            if (!bilinear) {
                const float *xr = xp + (oh / s) * W;
                for (int64_t ow = 0; ow < OW; ow++)
                    yr[ow] = xr[ow / s];
                continue;
            }
            int64_t h0, h1;
            float a0, a1;
            tap(oh, s, H, &h0, &h1, &a0, &a1);
            const float *r0 = xp + h0 * W, *r1 = xp + h1 * W;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                float b0, b1;
                tap(ow, s, W, &w0, &w1, &b0, &b1);
                yr[ow] = a0 * (b0 * r0[w0] + b1 * r0[w1]) + a1 * (b0 * r1[w0] + b1 * r1[w1]);
            }
        }
    }
}

DS_HOT
static void upsample_backward(ds_node *y)
{
    ds_node *x = y->in[0];
    if (!x->grad)
        return;
    int64_t s = y->attr.upsample.scale, planes = x->shape[0] * x->shape[1];
    int64_t H = x->shape[2], W = x->shape[3], OH = H * s, OW = W * s;
    const float *dy = y->grad;
    float *dx = x->grad;
    bool bilinear = y->attr.upsample.mode == DS_UPSAMPLE_BILINEAR;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float *xp = dx + p * H * W;
        const float *yp = dy + p * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *yr = yp + oh * OW;
            if (!bilinear) {
                float *xr = xp + (oh / s) * W;
                for (int64_t ow = 0; ow < OW; ow++)
                    xr[ow / s] += yr[ow];
                continue;
            }
            int64_t h0, h1;
            float a0, a1;
            tap(oh, s, H, &h0, &h1, &a0, &a1);
            float *r0 = xp + h0 * W, *r1 = xp + h1 * W;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                float b0, b1;
                tap(ow, s, W, &w0, &w1, &b0, &b1);
                float g = yr[ow];
                r0[w0] += a0 * b0 * g;
                r0[w1] += a0 * b1 * g;
                r1[w0] += a1 * b0 * g;
                r1[w1] += a1 * b1 * g;
            }
        }
    }
}

const ds_op_def dsi_op_upsample2d = {
    .shape = upsample_shape, .cpu = {upsample_forward, upsample_backward},
    .bwd_reads = dsi_reads_none,
};

/* A parameterless layer of its own, as Keras's UpSampling2D. */
ds_node *ds_upsample2d(ds_graph *g, ds_node *x, int scale, ds_upsample_mode mode)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (scale < 1 || (mode != DS_UPSAMPLE_NEAREST && mode != DS_UPSAMPLE_BILINEAR)) {
        dsi_fail(DS_ERR_ARG, "upsample2d on '%s' (shape %s): scale %d must be >= 1 and mode %d "
                 "nearest (0) or bilinear (1)", dsi_node_layer(x), dsi_shape_str(x->ndim, x->shape),
                 scale, (int)mode);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "UpSampling2D", "up_sampling2d", NULL, name))
        return NULL;
    dsi_upsample_attr at = { .scale = scale, .mode = mode };
    ds_node *y = dsi_node(g, DS_OP_UPSAMPLE2D, 1, &x, &at);
    return dsi_layer_end(g, y);
}
