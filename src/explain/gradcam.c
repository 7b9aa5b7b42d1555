/* gradcam.c - Grad-CAM: a convolution layer's channels weighted by their mean gradient,
 * rectified and upsampled to the input, from one batched backward pass. */
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ds_node *A;              /* the layer's output [B, C, h, w] */
    const int64_t *tgt;
    int64_t C, h, w;         /* the layer's channels and spatial size (1-D: h = 1) */
    int64_t H, W;            /* the input's spatial size */
    const float *x;
    int64_t D;
    float *map;              /* N x H x W */
    float *cam;              /* h x w scratch */
} cam_ctx;

static void fill_cam(void *ctx, int64_t r, float *dst)
{
    cam_ctx *c = ctx;
    memcpy(dst, c->x + r * c->D, (size_t)c->D * sizeof(float));
}

static int64_t seed_cam(void *ctx, int64_t r)
{
    cam_ctx *c = ctx;
    return c->tgt[r];
}

/* Source index and weight along one axis for output index o of n_out from n_in (half-pixel
 * centres, clamped at 0, as PyTorch's linear interpolation with align_corners=False). */
static void src_index(int64_t o, int64_t n_out, int64_t n_in, int64_t *i0, int64_t *i1,
                      double *t)
{
    double s = ((double)o + 0.5) * (double)n_in / (double)n_out - 0.5;
    if (s < 0)
        s = 0;
    *i0 = (int64_t)s;
    if (*i0 > n_in - 1)
        *i0 = n_in - 1;
    *i1 = *i0 + 1 < n_in ? *i0 + 1 : n_in - 1;
    *t = s - (double)*i0;
}

/* Bilinear upsampling of cam (h x w) into dst (H x W). */
static void upsample(const float *cam, int64_t h, int64_t w, float *dst, int64_t H, int64_t W)
{
    for (int64_t y = 0; y < H; y++) {
        int64_t y0, y1, x0, x1;
        double ty, tx;
        src_index(y, H, h, &y0, &y1, &ty);
        for (int64_t x = 0; x < W; x++) {
            src_index(x, W, w, &x0, &x1, &tx);
            double top = (1 - tx) * cam[y0 * w + x0] + tx * cam[y0 * w + x1];
            double bot = (1 - tx) * cam[y1 * w + x0] + tx * cam[y1 * w + x1];
            dst[y * W + x] = (float)((1 - ty) * top + ty * bot);
        }
    }
}

static void take_cam(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    (void)out;
    (void)grad;
    cam_ctx *c = ctx;
    int64_t hw = c->h * c->w;
    const float *a = ds_node_data(c->A) + j * c->C * hw;
    const float *g = ds_node_grad(c->A) + j * c->C * hw;
    for (int64_t q = 0; q < hw; q++)
        c->cam[q] = 0;
    for (int64_t ch = 0; ch < c->C; ch++) {
        double alpha = 0;
        for (int64_t q = 0; q < hw; q++)
            alpha += g[ch * hw + q];
        alpha /= (double)hw;
        for (int64_t q = 0; q < hw; q++)
            c->cam[q] += (float)(alpha * a[ch * hw + q]);
    }
    for (int64_t q = 0; q < hw; q++)
        c->cam[q] = c->cam[q] > 0 ? c->cam[q] : 0;
    upsample(c->cam, c->h, c->w, c->map + r * c->H * c->W, c->H, c->W);
}

/* The layer's output node, checked to have 1 or 2 spatial axes. */
static ds_status cam_layer(dsx_run *r, const char *name, ds_node **A)
{
    const ds_net *n = r->net;
    const dsi_layer *l = name ? dsx_find_layer(n, name, "grad-cam --layer")
                              : dsx_conv_layer(n, true, "grad-cam");
    if (!l)
        return DS_ERR_ARG;
    *A = n->g->nodes[l->out];
    int nd = (*A)->ndim;
    if (nd != 3 && nd != 4) {
        char *list = ds_explain_layers(n, 1);
        dsi_fail(DS_ERR_ARG, "%s: grad-cam: layer '%s' gives %s per sample; Grad-CAM needs "
                 "channels and 1 or 2 spatial axes ([C, H, W] or [C, L]), as a convolution "
                 "layer gives (the model's: %s)", n->path, l->name,
                 dsi_shape_str(nd - 1, (*A)->shape + 1), list && *list ? list : "none");
        free(list);
        return DS_ERR_ARG;
    }
    if (r->in->ndim < nd - 1)
        return dsi_fail(DS_ERR_ARG, "%s: grad-cam: layer '%s' has %d spatial axes, the input "
                        "%s fewer", n->path, l->name, nd - 2,
                        dsi_shape_str(r->in->ndim, r->in->shape));
    return DS_OK;
}

ds_status ds_explain_grad_cam(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                              ds_explain_result *res)
{
    ds_explain_opts d;
    dsx_run r;
    int64_t N;
    ds_status st = dsx_begin_result(n, x, o, &d, &r, res, &N);
    if (st)
        return st;
    cam_ctx c = {.x = ds_tensor_data((ds_tensor *)x), .D = r.D};
    if ((st = cam_layer(&r, d.layer, &c.A)))
        goto done;
    int nd = c.A->ndim, ni = r.in->ndim;
    c.C = c.A->shape[1];
    c.h = nd == 4 ? c.A->shape[2] : 1;
    c.w = c.A->shape[nd - 1];
    c.H = nd == 4 ? r.in->shape[ni - 2] : 1;
    c.W = r.in->shape[ni - 1];
    int64_t shape[2] = {c.H, c.W};
    if (!(res->map = dsx_map(N, nd - 2, nd == 4 ? shape : shape + 1, "grad-cam")) ||
        !(c.cam = malloc((size_t)(c.h * c.w) * sizeof(float)))) {
        st = dsi_fail(DS_ERR_NOMEM, "grad-cam: out of memory");
        goto done;
    }
    c.map = ds_tensor_data(res->map);
    c.tgt = res->target;
    dsx_keep(&r, c.A);
    if ((st = dsx_targets(&r, x, &d, res->target, ds_tensor_data(res->score))))
        goto done;
    dsx_pass p = {.fill = fill_cam, .seed = seed_cam, .take = take_cam, .ctx = &c};
    st = dsx_rows(&r, N, &p);
done:
    free(c.cam);
    dsx_end(&r);
    if (st)
        ds_explain_result_free(res);
    return st;
}
