/* generative.c - autoencoders and VAEs on a net: the loss lines' terms for the training log,
 * the reconstruction metric, per-sample reconstruction scores, and decoding draws from the
 * prior injected at a sampling layer (ds_net_generate), given latent values (ds_net_decode)
 * and encoding to them (ds_net_encode). */
#include "net.h"

#include <math.h>

/* ---- the loss lines' terms ---- */
void dsi_net_add_term(ds_net *n, ds_node *term, const char *name)
{
    if (n->n_terms == DSI_MAX_TERMS)
        return;
    char nm[DS_NAME_MAX + 16];
    snprintf(nm, sizeof nm, "%.*s", DS_NAME_MAX - 8, name);
    for (int k = 2, again = 1; again && k < 100; k++) {   /* two lines of one kind: mse, mse_2 */
        again = 0;
        for (int i = 0; i < n->n_terms && !again; i++)
            again = !strcmp(n->term_names[i], nm);
        if (again)
            snprintf(nm, sizeof nm, "%.*s_%d", DS_NAME_MAX - 8, name, k);
    }
    ds_node_keep(term, 1);
    n->terms[n->n_terms] = term;
    snprintf(n->term_names[n->n_terms], DS_NAME_MAX, "%.*s", DS_NAME_MAX - 1, nm);
    n->n_terms++;
}

int ds_net_loss_term_count(const ds_net *n) { return n ? n->n_terms : 0; }

const char *ds_net_loss_term_name(const ds_net *n, int i)
{
    return n && i >= 0 && i < n->n_terms ? n->term_names[i] : NULL;
}

double ds_net_loss_term_value(const ds_net *n, int i)
{
    return n && i >= 0 && i < n->n_terms ? (double)n->terms[i]->data[0] : NAN;
}

/* ---- the reconstruction metric: RMSE of the first loss against an input ---- */
bool dsi_recon_metric(const ds_net *n, int64_t b, double *num, double *den)
{
    if (n->n_targets || !n->n_recons)
        return false;
    const dsi_net_recon *r = &n->recons[0];
    const float *p = r->pred->data, *x = n->inputs[r->input].node->data;
    int64_t m = r->pred->numel / r->pred->shape[0] * b;
    for (int64_t i = 0; i < m; i++) {
        double e = (double)p[i] - x[i];
        *num += e * e;
    }
    *den += (double)m;
    return true;
}

static bool is_loss_op(int op)
{
    return (op >= DS_OP_LOSS_MSE && op <= DS_OP_LOSS_MSB) || op == DS_OP_LOSS_DICE;
}

bool dsi_input_loss_only(const ds_net *n, int i)
{
    bool target = false;
    for (int k = 0; k < n->n_recons && !target; k++)
        target = n->recons[k].input == i;
    if (!target)
        return false;
    const ds_node *x = n->inputs[i].node;
    for (int j = x->id + 1; j < n->g->n_nodes; j++) {
        const ds_node *y = n->g->nodes[j];
        for (int k = 0; k < y->n_in; k++)
            if (y->in[k] == x && !is_loss_op(y->op))
                return false;
    }
    return true;
}

/* ---- per-sample scores ---- */
ds_status ds_net_score_reconstruction(ds_net *n, const ds_feed *f, ds_tensor **out)
{
    *out = NULL;
    if (!n->loss)
        return dsi_fail(DS_ERR_STATE, "%s: the model has no loss line to score with", n->path);
    if (n->n_targets)
        return dsi_fail(DS_ERR_ARG, "%s: reconstruction scores need losses that read inputs "
                        "only (target=INPUT, kl_gaussian); loss '%s' reads labels", n->path,
                        n->targets[0].name);
    dsi_bound d;
    ds_status st = ds_net_check_feed(n, f);
    if (st || (st = dsi_feed_bind(n, f, &d)) || (st = dsi_require_labels(n, &d, d.first)))
        return st;
    ds_tensor *s = ds_tensor_create(1, (int64_t[]){d.n});
    if (!s)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld scores", (long long)d.n);
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, DS_MODE_INFER);
    st = dsi_net_use_batch(n->g, 1);
    for (int64_t i = 0; i < d.n && !st; i++) {   /* one sample per pass: its loss alone */
        dsi_bound_gather(n, &d, NULL, i, 1, false);
        if (!(st = ds_graph_forward(n->g)))
            s->data[i] = n->loss->data[0];
    }
    ds_graph_set_mode(n->g, mode);
    if (st) {
        ds_tensor_free(s);
        return st;
    }
    *out = s;
    return DS_OK;
}

/* ---- generation ---- */
/* Whether node `from` is on a path into y (ids below y's are its possible inputs). */
static bool depends_on(const ds_node *y, const ds_node *from, char *seen)
{
    if (y == from)
        return true;
    if (seen[y->id])
        return false;
    seen[y->id] = 1;
    for (int k = 0; k < y->n_in; k++)
        if (depends_on(y->in[k], from, seen))
            return true;
    return false;
}

static const char *layer_type(const ds_node *y)
{
    return y->op == DS_OP_INPUT ? "an input" : y->layer >= 0 ? y->g->layers[y->layer].type
                                                           : "a node without a layer";
}

/* The sampling node of layer `from`, or a failure naming what the layer is. */
static ds_status find_sampler(const ds_net *n, const char *from, ds_node **out)
{
    ds_node *any = NULL;
    *out = NULL;
    for (int i = 0; i < n->g->n_nodes; i++) {
        ds_node *y = n->g->nodes[i];
        if (strcmp(dsi_node_layer(y), from))
            continue;
        if (y->op == DS_OP_SAMPLE_GAUSSIAN) {
            *out = y;
            return DS_OK;
        }
        any = y;
    }
    if (!any)
        return dsi_fail(DS_ERR_ARG, "%s: no layer named '%s' (generation starts at a "
                        "sample_gaussian layer)", n->path, from);
    return dsi_fail(DS_ERR_ARG, "%s: layer '%s' (%s) is not a sampling layer: generation "
                    "starts at a sample_gaussian layer", n->path, from, layer_type(any));
}

/* Decodes rows [i, i + b) of z into rows of out. */
static ds_status decode_batch(ds_net *n, ds_node *smp, const ds_node *y, const float *z,
                              int64_t i, int64_t b, ds_tensor *out)
{
    ds_status st = dsi_net_use_batch(n->g, b);
    if (st)
        return st;
    int64_t zf = smp->numel / smp->shape[0], yf = y->numel / y->shape[0];
    for (int k = 0; k < n->n_inputs; k++)   /* the encoder runs on zeros; nothing reads it */
        memset(n->inputs[k].node->data, 0, (size_t)n->inputs[k].node->numel * sizeof(float));
    dsi_sample_inject(smp, z + i * zf);
    st = ds_graph_forward_to(n->g, (ds_node *)y);
    dsi_sample_inject(smp, NULL);
    if (!st)
        memcpy(out->data + i * yf, y->data, (size_t)(b * yf) * sizeof(float));
    return st;
}

/* The sampling node of `from` and the net's first output, which must depend on it. */
static ds_status decoder_of(const ds_net *n, const char *from, ds_node **smp)
{
    ds_status st = find_sampler(n, from, smp);
    if (st)
        return st;
    const ds_node *y = n->outputs[0].node;
    char *seen = calloc((size_t)n->g->n_nodes, 1);
    if (!seen)
        return dsi_fail(DS_ERR_NOMEM, "out of memory");
    bool dep = depends_on(y, *smp, seen);
    free(seen);
    if (!dep)
        return dsi_fail(DS_ERR_ARG, "%s: the output '%s' does not depend on the sampling "
                        "layer '%s'", n->path, n->outputs[0].name, from);
    return DS_OK;
}

/* Decodes the count rows of z (zf numbers each) at smp into a new [count, ...] tensor. */
static ds_status decode_rows(ds_net *n, ds_node *smp, const float *z, int64_t count,
                             int64_t batch, ds_tensor **out)
{
    const ds_node *y = n->outputs[0].node;
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, y->shape, sizeof shape);
    shape[0] = count;
    ds_tensor *o = ds_tensor_create(y->ndim, shape);
    if (!o)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld decoded samples",
                        (long long)count);
    batch = batch < 1 ? 256 : batch;
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, DS_MODE_INFER);
    ds_status st = DS_OK;
    for (int64_t i = 0; i < count && !st; i += batch)
        st = decode_batch(n, smp, y, z, i, count - i < batch ? count - i : batch, o);
    ds_graph_set_mode(n->g, mode);
    if (st) {
        ds_tensor_free(o);
        return st;
    }
    *out = o;
    return DS_OK;
}

ds_status ds_net_generate(ds_net *n, const char *from, int64_t count, uint64_t seed,
                          int64_t batch, ds_tensor **out)
{
    *out = NULL;
    if (!n || !from || count < 1 || count > ((int64_t)1 << 40))
        return dsi_fail(DS_ERR_ARG, "ds_net_generate: no net, no layer, or a count of %lld "
                        "(1 or more)", (long long)count);
    ds_node *smp;
    ds_status st = decoder_of(n, from, &smp);
    if (st)
        return st;
    int64_t zf = smp->numel / smp->shape[0];
    float *z = malloc((size_t)(count * zf) * sizeof *z);
    if (!z)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld generated samples", (long long)count);
    ds_rng r;
    ds_rng_seed(&r, seed);
    ds_rng_fill_normal(&r, z, count * zf);
    st = decode_rows(n, smp, z, count, batch, out);
    free(z);
    return st;
}

ds_status ds_net_decode(ds_net *n, const char *from, const ds_tensor *z, int64_t batch,
                        ds_tensor **out)
{
    *out = NULL;
    if (!n || !from || !z)
        return dsi_fail(DS_ERR_ARG, "ds_net_decode: no net, no layer or no latent values");
    ds_node *smp;
    ds_status st = decoder_of(n, from, &smp);
    if (st)
        return st;
    int64_t zf = smp->numel / smp->shape[0];
    char want[96], got[96];
    ds_shape_str(smp->ndim - 1, smp->shape + 1, want, sizeof want);
    ds_shape_str(z->ndim, z->shape, got, sizeof got);
    if (z->ndim < 1 || z->shape[0] < 1 || z->numel / z->shape[0] != zf)
        return dsi_fail(DS_ERR_SHAPE, "%s: the latent values %s do not fit layer '%s' of "
                        "%s per sample: give [count, %lld]", n->path, got, from, want,
                        (long long)zf);
    if ((st = ds_tensor_check_finite(z, "the latent values")))
        return st;
    return decode_rows(n, smp, z->data, z->shape[0], batch, out);
}

ds_status ds_net_encode(ds_net *n, const ds_feed *f, const char *from, int64_t batch,
                        ds_tensor **out)
{
    *out = NULL;
    if (!n || !f || !from)
        return dsi_fail(DS_ERR_ARG, "ds_net_encode: no net, no feed or no layer");
    ds_node *smp;
    dsi_bound d;
    ds_status st = find_sampler(n, from, &smp);
    if (st || (st = ds_net_check_feed(n, f)) || (st = dsi_feed_bind(n, f, &d)))
        return st;
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, DS_MODE_INFER);   /* no dropout: the sampler gives its mean */
    st = dsi_net_collect(n, &d, batch, 1, &smp, out);
    ds_graph_set_mode(n->g, mode);
    return st;
}

/* ---- eval's sections ---- */
static ds_status put_value(ds_tensor_set *s, const char *prefix, const char *name, double v)
{
    if (!s)
        return DS_OK;
    char key[DS_NAME_MAX + 48];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    float f = (float)v;
    return ds_tensor_set_add(s, key, 0, NULL, &f);
}

ds_status dsi_iou_report(dsi_buf *rep, const int64_t *conf, int64_t K, const char *prefix,
                         ds_tensor_set *values)
{
    ds_status st = DS_OK;
    double sum = 0;
    int64_t counted = 0;
    dsi_buf_printf(rep, "\nper pixel: class  IoU\n");
    for (int64_t k = 0; k < K && !st; k++) {
        int64_t tp = conf[k * K + k], row = 0, col = 0;
        for (int64_t j = 0; j < K; j++) {
            row += conf[k * K + j];
            col += conf[j * K + k];
        }
        double iou = row + col - tp > 0 ? (double)tp / (double)(row + col - tp) : NAN;
        if (!isnan(iou)) {
            sum += iou;
            counted++;
        }
        dsi_buf_printf(rep, "%16lld  %.4f\n", (long long)k, iou);
        char nm[48];
        snprintf(nm, sizeof nm, "iou_%lld", (long long)k);
        st = put_value(values, prefix, nm, iou);
    }
    double mean = counted ? sum / (double)counted : NAN;
    dsi_buf_printf(rep, "mean IoU: %.4f\n", mean);
    return st ? st : put_value(values, prefix, "mean_iou", mean);
}

ds_status dsi_recon_report(ds_net *n, const dsi_bound *d, int64_t batch, dsi_buf *rep,
                           ds_tensor_set *values)
{
    ds_node *nodes[DS_FEED_MAX];
    ds_tensor *pred[DS_FEED_MAX] = {0};
    for (int k = 0; k < n->n_recons; k++)
        nodes[k] = n->recons[k].pred;
    ds_status st = dsi_net_collect(n, d, batch, n->n_recons, nodes, pred);
    for (int k = 0; k < n->n_recons && !st; k++) {
        const ds_tensor *x = d->x[n->recons[k].input];
        double se = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            double e = (double)pred[k]->data[i] - x->data[i];
            se += e * e;
        }
        double rmse = sqrt(se / (double)x->numel);
        char prefix[DS_NAME_MAX + 1] = "";
        if (n->n_recons > 1)
            snprintf(prefix, sizeof prefix, "%s.", n->recons[k].name);
        dsi_buf_printf(rep, "reconstruction RMSE (%s against input '%s'): %.6g\n",
                       n->recons[k].name, n->inputs[n->recons[k].input].name, rmse);
        st = put_value(values, prefix, "rmse", rmse);
    }
    for (int k = 0; k < n->n_recons; k++)
        ds_tensor_free(pred[k]);
    return st;
}
