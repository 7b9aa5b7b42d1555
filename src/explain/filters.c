/* filters.c - what a network's layers hold and compute: convolution kernels (the first
 * layer's as they are, deeper ones averaged over their input channels) and feature maps. */
#include "explain.h"

#include <stdlib.h>
#include <string.h>

/* The weight parameter of a convolution layer's convolution op, or NULL. */
static ds_node *conv_weight(const ds_graph *g, const dsi_layer *l)
{
    for (int i = l->first; i <= l->out && i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if ((y->op == DS_OP_CONV || y->op == DS_OP_CONV_TRANSPOSE2D) && y->n_in > 1 &&
            y->in[1]->op == DS_OP_PARAM)
            return y->in[1];
    }
    return NULL;
}

ds_status ds_explain_filters(ds_net *n, const char *layer, ds_tensor **out)
{
    *out = NULL;
    if (!n)
        return dsi_fail(DS_ERR_ARG, "filters: the net is NULL");
    const dsi_layer *first = dsx_conv_layer(n, false, "filters");
    const dsi_layer *l = layer ? dsx_find_layer(n, layer, "filters --layer") : first;
    if (!l || !first)
        return DS_ERR_ARG;
    ds_node *w = dsx_is_conv_layer(l) ? conv_weight(n->g, l) : NULL;
    if (!w) {
        char *list = ds_explain_layers(n, 1);
        dsi_fail(DS_ERR_ARG, "%s: filters: layer '%s' (%s) has no convolution kernels (the "
                 "model's convolution layers: %s)", n->path, l->name, l->type,
                 list ? list : "?");
        free(list);
        return DS_ERR_ARG;
    }
    const float *v = ds_param_data(w->param);
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, w->shape, sizeof shape);
    int64_t O = shape[0], I = shape[1], k = w->numel / (O * I);
    bool avg = l != first && I > 1;
    if (avg)
        shape[1] = 1;
    if (!(*out = ds_tensor_create(w->ndim, shape)))
        return dsi_fail(DS_ERR_NOMEM, "filters: out of memory");
    float *d = ds_tensor_data(*out);
    if (!avg) {
        memcpy(d, v, (size_t)w->numel * sizeof(float));
        return DS_OK;
    }
    for (int64_t o = 0; o < O; o++)
        for (int64_t q = 0; q < k; q++) {
            double s = 0;
            for (int64_t i = 0; i < I; i++)
                s += v[(o * I + i) * k + q];
            d[o * k + q] = (float)(s / (double)I);
        }
    return DS_OK;
}

/* ---- feature maps ---- */
typedef struct {
    const float *x;
    int64_t D, F;
    ds_node *node;
    float *dst;
} fm_ctx;

static void fill_fm(void *ctx, int64_t r, float *dst)
{
    fm_ctx *c = ctx;
    memcpy(dst, c->x + r * c->D, (size_t)c->D * sizeof(float));
}

static void take_fm(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    (void)out;
    (void)grad;
    fm_ctx *c = ctx;
    memcpy(c->dst + r * c->F, ds_node_data(c->node) + j * c->F, (size_t)c->F * sizeof(float));
}

ds_status ds_explain_feature_maps(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                  ds_tensor **out)
{
    ds_explain_opts d = dsx_opts(o);
    dsx_run r;
    *out = NULL;
    if (n && !d.layer)
        return dsi_fail(DS_ERR_ARG, "%s: feature maps: name the layer", n->path);
    ds_status st = dsx_begin(n, x, &d, &r);
    if (st)
        return st;
    const dsi_layer *l = dsx_find_layer(n, d.layer, "feature-maps --layer");
    if (!l) {
        dsx_end(&r);
        return DS_ERR_ARG;
    }
    fm_ctx c = {ds_tensor_data((ds_tensor *)x), r.D, 0, n->g->nodes[l->out], NULL};
    c.F = c.node->numel / c.node->shape[0];
    int64_t N = ds_tensor_shape(x)[0];
    if (!(*out = dsx_map(N, c.node->ndim - 1, c.node->shape + 1, "feature maps"))) {
        dsx_end(&r);
        return DS_ERR_NOMEM;
    }
    c.dst = ds_tensor_data(*out);
    dsx_keep(&r, c.node);
    dsx_pass p = {.fill = fill_fm, .take = take_fm, .ctx = &c};
    if ((st = dsx_rows(&r, N, &p))) {
        ds_tensor_free(*out);
        *out = NULL;
    }
    dsx_end(&r);
    return st;
}
