/* bayes.c - Bayesian dense and convolution layers (Bayes by backprop, Blundell et al. 2015):
 * each weight and bias is a Gaussian N(mu, softplus(rho)^2), sampled by bayes_sample and
 * fed to the ordinary linear or conv op; a bayes_kl node per layer holds the KL divergence
 * of the posterior to the N(0, prior_sigma^2) prior (ds_graph_kl_loss sums them). */
#include "../internal.h"

#include <math.h>

#define DEFAULT_POSTERIOR_SIGMA 0.05f   /* rho ~ -2.97, near TFP's and Blundell's rho = -3 */

/* The options with defaults filled in; false (graph failed) if out of range. */
static bool resolve(ds_graph *g, const char *type, const char *name, const ds_bayes_opts *b,
                    ds_bayes_opts *r)
{
    *r = b ? *b : (ds_bayes_opts){0};
    if (r->prior_sigma == 0)
        r->prior_sigma = 1;
    if (r->posterior_init == 0)
        r->posterior_init = DEFAULT_POSTERIOR_SIGMA;
    if (r->prior_sigma > 0 && isfinite(r->prior_sigma) && r->posterior_init > 0 &&
        isfinite(r->posterior_init) && r->kl_weight >= 0 && isfinite(r->kl_weight))
        return true;
    dsi_fail(DS_ERR_ARG, "%s '%s': prior_sigma %g and posterior_init %g must be > 0 and "
             "kl_weight %g >= 0 (0: 1/samples, set by training)", type, name,
             (double)r->prior_sigma, (double)r->posterior_init, (double)r->kl_weight);
    dsi_build_fail(g, DS_ERR_ARG);
    return false;
}

typedef struct {
    const ds_bayes_opts *b;     /* resolved */
    ds_init weight_init, bias_init;
} maker;

/* "<layer>.<what>_mu" and "<layer>.<what>_rho" as nodes; rho starts at the inverse softplus
 * of the posterior's initial sigma. */
static bool mean_rho(ds_graph *g, const maker *mk, const char *layer, const char *what,
                     int ndim, const int64_t *shape, ds_init mu_init, ds_node **mu,
                     ds_node **rho)
{
    char key[32];
    double s0 = mk->b->posterior_init;
    ds_init ri = {DS_INIT_CONSTANT, (float)(s0 > 20 ? s0 : log(expm1(s0))), 0};
    snprintf(key, sizeof key, "%s_mu", what);
    ds_param *pm = dsi_model_get_param(g->m, layer, key, ndim, shape, 1, mu_init);
    snprintf(key, sizeof key, "%s_rho", what);
    ds_param *pr = pm ? dsi_model_get_param(g->m, layer, key, ndim, shape, 1, ri) : NULL;
    if (!pr) {
        dsi_build_fail(g, dsi_last_status());
        return false;
    }
    *mu = ds_param_node(g, pm);
    *rho = ds_param_node(g, pr);
    return *mu && *rho;
}

/* The layer's KL node and its sampled weight (and bias when nbias > 0). */
static bool make_weights(void *ctx, ds_graph *g, const char *name, int ndim,
                         const int64_t *wshape, int64_t nbias, ds_node **wn, ds_node **bn)
{
    const maker *mk = ctx;
    ds_node *p[4];
    ds_init wi = mk->weight_init;
    if (wi.kind == DS_INIT_DEFAULT)
        wi.kind = DS_INIT_GLOROT_UNIFORM;
    if (!mean_rho(g, mk, name, "weight", ndim, wshape, wi, &p[0], &p[1]) ||
        (nbias > 0 && !mean_rho(g, mk, name, "bias", 1, &nbias, mk->bias_init, &p[2], &p[3])))
        return false;
    int n = nbias > 0 ? 4 : 2;
    if (!ds_bayes_kl(g, n, p, mk->b->prior_sigma, mk->b->kl_weight))
        return false;
    *wn = ds_bayes_sample(g, p[0], p[1]);
    *bn = nbias > 0 ? ds_bayes_sample(g, p[2], p[3]) : NULL;
    return *wn && (nbias == 0 || *bn);
}

ds_node *ds_dense_bayes(ds_graph *g, ds_node *x, const ds_dense_opts *o, const ds_bayes_opts *b)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    const char *given = o && o->name ? o->name : "dense_bayes";
    if (!o || o->units < 1) {
        dsi_fail(DS_ERR_ARG, "dense_bayes '%s': units must be at least 1", given);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    if (x->ndim < 2) {
        dsi_fail(DS_ERR_SHAPE, "dense_bayes '%s': input '%s' has shape %s, expected [batch, "
                 "features]", given, dsi_node_layer(x), dsi_shape_str(x->ndim, x->shape));
        return dsi_build_fail(g, DS_ERR_SHAPE);
    }
    char name[DS_NAME_MAX];
    ds_bayes_opts r;
    if (!dsi_layer_begin(g, "DenseBayes", "dense_bayes", o->name, name))
        return NULL;
    ds_node *y = NULL, *w, *bias = NULL;
    maker mk = {&r, o->weight_init, o->bias_init};
    int64_t ws[2] = {o->units, x->shape[x->ndim - 1]};
    if (resolve(g, "dense_bayes", name, b, &r) &&
        make_weights(&mk, g, name, 2, ws, o->no_bias ? 0 : o->units, &w, &bias)) {
        bool fuse = o->activation == DS_ACT_RELU;   /* inside the linear op, as dense */
        y = dsi_linear_fused(g, x, w, bias, fuse ? DSI_FUSE_RELU : DSI_FUSE_NONE);
        if (!fuse && o->activation != DS_ACT_NONE)
            y = ds_activate(g, y, o->activation, name);
    }
    return dsi_layer_end(g, y);
}

ds_node *ds_conv_bayes(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o,
                       const ds_bayes_opts *b)
{
    static const char *const types[3] = {"Conv1DBayes", "Conv2DBayes", "Conv3DBayes"};
    static const char *const autos[3] = {"conv1d_bayes", "conv2d_bayes", "conv3d_bayes"};
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (nd < 1 || nd > 3 || !o) {
        dsi_fail(DS_ERR_ARG, "conv_bayes%s%s: %s", o && o->name ? " " : "",
                 o && o->name ? o->name : "", o ? "nd must be 1, 2 or 3" : "options are NULL");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    char name[DS_NAME_MAX];
    ds_bayes_opts r;
    if (!dsi_layer_begin(g, types[nd - 1], autos[nd - 1], o->name, name))
        return NULL;
    maker mk = {&r, o->weight_init, o->bias_init};
    ds_node *y = resolve(g, autos[nd - 1], name, b, &r)
                     ? dsi_conv_layer(g, x, nd, o, name, make_weights, &mk)
                     : NULL;
    return dsi_layer_end(g, y);
}
