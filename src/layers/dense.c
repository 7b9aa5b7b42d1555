/* dense.c - the dense (fully connected) layer: linear op + bias + optional activation. */
#include "../internal.h"

ds_node *ds_dense(ds_graph *g, ds_node *x, const ds_dense_opts *o)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    char name[DS_NAME_MAX];
    if (!o || o->units < 1) {
        dsi_fail(DS_ERR_ARG, "dense%s%s: units must be at least 1", o && o->name ? " " : "",
                 o && o->name ? o->name : "");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    if (x->ndim < 2) {
        dsi_fail(DS_ERR_SHAPE, "dense '%s': input '%s' has shape %s, expected [batch, features]",
                 o->name ? o->name : "dense", dsi_node_layer(x), dsi_shape_str(x->ndim, x->shape));
        return dsi_build_fail(g, DS_ERR_SHAPE);
    }
    if (!dsi_layer_begin(g, "Dense", "dense", o->name, name))
        return NULL;
    int64_t in = x->shape[x->ndim - 1];
    ds_init wi = o->weight_init, bi = o->bias_init;
    if (wi.kind == DS_INIT_DEFAULT)
        wi.kind = DS_INIT_GLOROT_UNIFORM;
    ds_param *w = dsi_model_get_param(g->m, name, "weight", 2, (int64_t[]){o->units, in}, 1, wi);
    ds_param *b = (!w || o->no_bias)
                      ? NULL
                      : dsi_model_get_param(g->m, name, "bias", 1, (int64_t[]){o->units}, 1, bi);
    ds_node *y = NULL;
    if (!w || (!o->no_bias && !b)) {
        dsi_build_fail(g, dsi_last_status());
    } else {
        /* ReLU, the common case, runs inside the linear op */
        bool fuse = o->activation == DS_ACT_RELU;
        y = dsi_linear_fused(g, x, ds_param_node(g, w), b ? ds_param_node(g, b) : NULL,
                             fuse ? DSI_FUSE_RELU : DSI_FUSE_NONE);
        if (!fuse && o->activation != DS_ACT_NONE)
            y = ds_activate(g, y, o->activation, name);
    }
    return dsi_layer_end(g, y);
}
