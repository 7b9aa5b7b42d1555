/* conv.c - convolution layers: Conv1D/2D/3D and Conv2DTranspose (conv op + bias + optional
 * activation), with Keras-style 'valid'/'same' or explicit padding.
 *
 * Conv2DTranspose padding: DS_PAD_EXPLICIT is PyTorch's (pad[] cropped from both sides,
 * output_padding rows added at the end); DS_PAD_VALID is pad 0 with output_padding;
 * DS_PAD_SAME is Keras's: output = input * stride, the transpose of a 'same' convolution
 * (crop total = max(d (k - 1) + 1 - stride, 0), the odd one at the end); it refuses a
 * nonzero output_padding. */
#include "../ops/conv_impl.h"

static const char *const conv_types[3] = {"Conv1D", "Conv2D", "Conv3D"};
static const char *const conv_autos[3] = {"conv1d", "conv2d", "conv3d"};

/* Per-axis option: entries of 0 after the first copy the first; a first entry of 0 takes
 * def. False if a value ends up < 1. */
static bool resolve(const int *v, int nd, int def, int *out)
{
    for (int i = 0; i < nd; i++) {
        out[i] = v[i];
        if (i == 0 && v[0] == 0)
            out[0] = def;
        else if (i > 0 && v[i] == 0)
            out[i] = out[0];
        if (out[i] < 1)
            return false;
    }
    return true;
}

static const char *ints_str(int nd, const int *v, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < nd; i++)
        dsi_snprintf_cat(buf, cap, "%s%d", i ? ", " : "{", v[i]);
    dsi_snprintf_cat(buf, cap, "}");
    return buf;
}

static ds_node *fail(ds_graph *g, ds_status s, const char *type, const char *name,
                     const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static ds_node *fail(ds_graph *g, ds_status s, const char *type, const char *name,
                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dsi_fail(s, "%s '%s': %s", type, name, msg);
    return dsi_build_fail(g, s);
}

/* Kernel, stride and dilation from the options; false (graph failed) if invalid. */
static bool conv_axes(ds_graph *g, const ds_conv_opts *o, int nd, const char *type,
                      const char *name, int *k, int *s, int *d)
{
    char b1[48], b2[48], b3[48];
    if (!resolve(o->kernel, nd, 0, k) || !resolve(o->stride, nd, 1, s) ||
        !resolve(o->dilation, nd, 1, d)) {
        fail(g, DS_ERR_ARG, type, name, "kernel %s, stride %s, dilation %s must be >= 1 "
             "(the kernel must be given)", ints_str(nd, o->kernel, b1, sizeof b1),
             ints_str(nd, o->stride, b2, sizeof b2), ints_str(nd, o->dilation, b3, sizeof b3));
        return false;
    }
    return true;
}

/* Weight (and bias) parameters; the weight's channel dimension is checked first so a
 * shared weight used on the wrong input gets a message about channels. */
static bool conv_params(ds_graph *g, const ds_conv_opts *o, const char *type, const char *name,
                        const ds_node *x, int ndim, const int64_t *wshape, int cdim,
                        int64_t nbias, ds_node **wn, ds_node **bn)
{
    char wname[DS_NAME_MAX + 8];
    snprintf(wname, sizeof wname, "%s.weight", name);
    ds_param *p = ds_model_find(g->m, wname);
    if (p && p->ndim == ndim && p->shape[cdim] != wshape[cdim]) {
        fail(g, DS_ERR_SHAPE, type, name, "input %s has %lld channels but the shared weight "
             "'%s' %s expects %lld", dsi_shape_str(x->ndim, x->shape), (long long)wshape[cdim],
             wname, dsi_shape_str(p->ndim, p->shape), (long long)p->shape[cdim]);
        return false;
    }
    ds_init wi = o->weight_init;
    if (wi.kind == DS_INIT_DEFAULT)
        wi.kind = DS_INIT_GLOROT_UNIFORM;
    ds_param *w = dsi_model_get_param(g->m, name, "weight", ndim, wshape, 1, wi);
    ds_param *b = (!w || o->no_bias) ? NULL
                                     : dsi_model_get_param(g->m, name, "bias", 1,
                                                           (int64_t[]){nbias}, 1, o->bias_init);
    if (!w || (!o->no_bias && !b)) {
        dsi_build_fail(g, dsi_last_status());
        return false;
    }
    *wn = ds_param_node(g, w);
    *bn = b ? ds_param_node(g, b) : NULL;
    return *wn && (!b || *bn);
}

/* make NULL: the layer's own parameters (conv_params); else weights from make (a Bayesian
 * layer's samples, layers/bayes.c). */
ds_node *dsi_conv_layer(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o,
                        const char *name, dsi_conv_weights_fn make, void *ctx)
{
    const char *type = conv_types[nd - 1];
    int k[3], s[3], d[3], lo[3] = {0}, hi[3] = {0};
    if (o->filters < 1)
        return fail(g, DS_ERR_ARG, type, name, "filters = %lld must be at least 1",
                    (long long)o->filters);
    if (!conv_axes(g, o, nd, type, name, k, s, d))
        return NULL;
    if (x->ndim != nd + 2)
        return fail(g, DS_ERR_SHAPE, type, name, "input '%s' has shape %s, expected [batch, "
                    "channels, %s]", dsi_node_layer(x), dsi_shape_str(x->ndim, x->shape),
                    nd == 1 ? "length" : nd == 2 ? "height, width" : "depth, height, width");
    for (int i = 0; i < nd; i++) {
        int64_t in = x->shape[2 + i];
        switch (o->padding) {
        case DS_PAD_EXPLICIT:
            if (o->pad[i] < 0)
                return fail(g, DS_ERR_ARG, type, name, "pad[%d] = %d is negative", i, o->pad[i]);
            lo[i] = hi[i] = o->pad[i];
            break;
        case DS_PAD_VALID:
            break;
        case DS_PAD_SAME: {
            int64_t out = (in + s[i] - 1) / s[i];
            int64_t total = (out - 1) * s[i] + (int64_t)(k[i] - 1) * d[i] + 1 - in;
            if (total < 0)
                total = 0;
            lo[i] = (int)(total / 2);
            hi[i] = (int)(total - total / 2);
            break;
        }
        default:
            return fail(g, DS_ERR_ARG, type, name, "unknown padding mode %d", (int)o->padding);
        }
    }
    int64_t ws[5] = {o->filters, x->shape[1]};
    for (int i = 0; i < nd; i++)
        ws[2 + i] = k[i];
    ds_node *wn, *bn = NULL;
    if (make ? !make(ctx, g, name, nd + 2, ws, o->no_bias ? 0 : o->filters, &wn, &bn)
             : !conv_params(g, o, type, name, x, nd + 2, ws, 1, o->filters, &wn, &bn))
        return NULL;
    /* ReLU, the common case, runs inside the convolution */
    bool fuse = o->activation == DS_ACT_RELU;
    ds_node *y = dsi_conv_fused(g, x, wn, bn, nd, s, lo, hi, d, fuse ? DSI_FUSE_RELU : DSI_FUSE_NONE);
    if (y && !fuse && o->activation != DS_ACT_NONE)
        y = ds_activate(g, y, o->activation, name);
    return y;
}

ds_node *ds_conv(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (nd < 1 || nd > 3 || !o) {
        dsi_fail(DS_ERR_ARG, "conv%s%s: %s", o && o->name ? " " : "", o && o->name ? o->name : "",
                 o ? "nd must be 1, 2 or 3" : "options are NULL");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, conv_types[nd - 1], conv_autos[nd - 1], o->name, name))
        return NULL;
    return dsi_layer_end(g, dsi_conv_layer(g, x, nd, o, name, NULL, NULL));
}

static ds_node *convt_layer(ds_graph *g, ds_node *x, const ds_conv_opts *o, const char *name)
{
    const char *type = "Conv2DTranspose";
    int k[2], s[2], d[2], lo[2] = {0}, hi[2] = {0}, op[2] = {0};
    if (o->filters < 1)
        return fail(g, DS_ERR_ARG, type, name, "filters = %lld must be at least 1",
                    (long long)o->filters);
    if (!conv_axes(g, o, 2, type, name, k, s, d))
        return NULL;
    if (x->ndim != 4)
        return fail(g, DS_ERR_SHAPE, type, name, "input '%s' has shape %s, expected [batch, "
                    "channels, height, width]", dsi_node_layer(x), dsi_shape_str(x->ndim, x->shape));
    for (int i = 0; i < 2; i++) {
        op[i] = o->output_padding[i];
        switch (o->padding) {
        case DS_PAD_EXPLICIT:
            if (o->pad[i] < 0)
                return fail(g, DS_ERR_ARG, type, name, "pad[%d] = %d is negative", i, o->pad[i]);
            lo[i] = hi[i] = o->pad[i];
            break;
        case DS_PAD_VALID:
            break;
        case DS_PAD_SAME: {
            if (op[i] != 0)
                return fail(g, DS_ERR_ARG, type, name, "output_padding %d with 'same' padding "
                            "(the output is input * stride); use explicit or valid padding",
                            op[i]);
            int64_t keff = (int64_t)d[i] * (k[i] - 1) + 1, in = x->shape[2 + i];
            int64_t total = keff - s[i] > 0 ? keff - s[i] : 0;
            lo[i] = (int)(total / 2);
            hi[i] = (int)((in - 1) * s[i] + keff - lo[i] - in * s[i]);
            break;
        }
        default:
            return fail(g, DS_ERR_ARG, type, name, "unknown padding mode %d", (int)o->padding);
        }
    }
    int64_t ws[4] = {x->shape[1], o->filters, k[0], k[1]};
    ds_node *wn, *bn;
    if (!conv_params(g, o, type, name, x, 4, ws, 0, o->filters, &wn, &bn))
        return NULL;
    ds_node *y = dsi_conv_transpose2d_pads(g, x, wn, bn, s, lo, hi, op, d);
    if (y && o->activation != DS_ACT_NONE)
        y = ds_activate(g, y, o->activation, name);
    return y;
}

ds_node *ds_conv_transpose2d(ds_graph *g, ds_node *x, const ds_conv_opts *o)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (!o) {
        dsi_fail(DS_ERR_ARG, "conv_transpose2d: options are NULL");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "Conv2DTranspose", "conv2d_transpose", o->name, name))
        return NULL;
    return dsi_layer_end(g, convt_layer(g, x, o, name));
}
