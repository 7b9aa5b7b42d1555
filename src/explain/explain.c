/* explain.c - what the attribution methods share: checks, targets, baselines and the
 * batched passes over rows (a sample, a step, a noisy copy, a patch) through the net. */
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ds_explain_opts dsx_opts(const ds_explain_opts *o)
{
    return o ? *o : (ds_explain_opts){.target = DS_EXPLAIN_PREDICTED};
}

void ds_explain_result_free(ds_explain_result *r)
{
    if (!r)
        return;
    ds_tensor_free(r->map);
    ds_tensor_free(r->score);
    ds_tensor_free(r->delta);
    free(r->target);
    memset(r, 0, sizeof *r);
}

ds_status dsx_result_init(ds_explain_result *res, int64_t N)
{
    memset(res, 0, sizeof *res);
    res->score = ds_tensor_create(1, (int64_t[]){N});
    res->target = calloc((size_t)(N > 0 ? N : 1), sizeof *res->target);
    if (!res->score || !res->target) {
        ds_explain_result_free(res);
        return dsi_fail(DS_ERR_NOMEM, "explain: out of memory for %lld samples", (long long)N);
    }
    return DS_OK;
}

ds_tensor *dsx_map(int64_t N, int ndim, const int64_t *shape, const char *what)
{
    int64_t s[DS_MAX_DIMS] = {N};
    for (int i = 0; i < ndim && i + 1 < DS_MAX_DIMS; i++)
        s[i + 1] = shape[i];
    ds_tensor *t = ds_tensor_create(ndim + 1, s);
    if (!t)
        dsi_fail(DS_ERR_NOMEM, "%s: out of memory for a map of %s", what,
                 dsi_shape_str(ndim + 1, s));
    return t;
}

dsx_layout dsx_sample_layout(const ds_node *in)
{
    dsx_layout L = {1, 1, in->shape[in->ndim - 1]};
    if (in->ndim >= 3) {
        L.h = in->shape[in->ndim - 2];
        for (int i = 1; i < in->ndim - 2; i++)
            L.planes *= in->shape[i];
    }
    return L;
}

/* ---- checks ---- */
static ds_status check_data(const dsx_run *r, const ds_tensor *x)
{
    const ds_node *in = r->in;
    int nd = ds_tensor_ndim(x);
    const int64_t *s = ds_tensor_shape(x);
    bool ok = nd == in->ndim && s[0] >= 1;
    for (int i = 1; ok && i < nd; i++)
        ok = s[i] == in->shape[i];
    if (!ok) {
        char want[96];
        snprintf(want, sizeof want, "%s", dsi_shape_str(in->ndim, in->shape));
        return dsi_fail(DS_ERR_SHAPE, "explain: data of shape %s for input '%s' of shape %s "
                        "(N samples first)", dsi_shape_str(nd, s), r->in_name,
                        want);
    }
    return ds_tensor_check_finite(x, "explain: the data");
}

static ds_status check_opts(const ds_explain_opts *o)
{
    if (o->batch < 0 || o->steps < 0 || o->samples < 0 || o->patch < 0 || o->stride < 0 ||
        o->jitter < 0)
        return dsi_fail(DS_ERR_ARG, "explain: negative option (batch %lld, steps %d, samples "
                        "%d, patch %d, stride %d, jitter %d)", (long long)o->batch, o->steps,
                        o->samples, o->patch, o->stride, o->jitter);
    if (!(o->noise >= 0) || !(o->blur >= 0) || !(o->lr >= 0) || !(o->l2 >= 0) ||
        !(o->tv >= 0) || !isfinite(o->noise + o->blur + o->lr + o->l2 + o->tv))
        return dsi_fail(DS_ERR_ARG, "explain: noise %g, blur %g, lr %g, l2 %g and tv %g must be "
                        "finite and >= 0", o->noise, o->blur, o->lr, o->l2, o->tv);
    if ((unsigned)o->baseline > DS_BASELINE_BLUR)
        return dsi_fail(DS_ERR_ARG, "explain: unknown baseline %d", (int)o->baseline);
    if ((unsigned)o->ig_rule > DS_IG_LEFT)
        return dsi_fail(DS_ERR_ARG, "explain: unknown integrated-gradients rule %d",
                        (int)o->ig_rule);
    return DS_OK;
}

/* The names of the net's data inputs, ", "-separated, into buf. */
static const char *input_names(const ds_net *n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n->n_inputs && len + 1 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", n->inputs[i].name);
    return buf;
}

/* The input explained (o->input, else the first) and the others' data from o->others. */
static ds_status pick_inputs(dsx_run *r, const ds_explain_opts *o)
{
    const ds_net *n = r->net;
    char names[256];
    int k = 0;
    while (o->input && k < n->n_inputs && strcmp(n->inputs[k].name, o->input))
        k++;
    if (k == n->n_inputs)
        return dsi_fail(DS_ERR_ARG, "%s: no input '%s' to explain (its inputs: %s)", n->path,
                        o->input, input_names(n, names, sizeof names));
    r->in = n->inputs[k].node;
    r->in_name = n->inputs[k].name;
    for (int i = 0; i < n->n_inputs; i++) {
        if (i == k)
            continue;
        dsx_other *t = &r->oth[r->n_oth++];
        *t = (dsx_other){.node = n->inputs[i].node, .name = n->inputs[i].name};
        t->D = t->node->numel / t->node->shape[0];
        for (int f = 0; o->others && f < DS_FEED_MAX && o->others->inputs[f].data; f++) {
            const ds_feed_item *it = &o->others->inputs[f];
            if (!it->name || strcmp(it->name, t->name))
                continue;
            const ds_tensor *d = it->data;
            const int64_t *s = ds_tensor_shape(d);
            bool ok = ds_tensor_ndim(d) == t->node->ndim && s[0] >= 1;
            for (int a = 1; ok && a < t->node->ndim; a++)
                ok = s[a] == t->node->shape[a];
            if (!ok) {
                char want[96];
                snprintf(want, sizeof want, "%s", dsi_shape_str(t->node->ndim, t->node->shape));
                return dsi_fail(DS_ERR_SHAPE, "explain: data of shape %s for input '%s' of "
                                "shape %s (N samples first)", dsi_shape_str(ds_tensor_ndim(d), s),
                                t->name, want);
            }
            ds_status st = ds_tensor_check_finite(d, it->source ? it->source : t->name);
            if (st)
                return st;
            t->data = ds_tensor_data((ds_tensor *)d);
            t->rows = s[0];
            t->source = it->source ? it->source : t->name;
        }
    }
    return DS_OK;
}

ds_status dsx_check_others(const dsx_run *r, int64_t N)
{
    char names[256];
    for (int i = 0; i < r->n_oth; i++) {
        const dsx_other *t = &r->oth[i];
        if (!t->data)
            return dsi_fail(DS_ERR_ARG, "%s: input '%s' needs its data to explain input '%s' "
                            "(the model's inputs: %s)", r->net->path, t->name, r->in_name,
                            input_names(r->net, names, sizeof names));
        if (t->rows != N && t->rows != 1)
            return dsi_fail(DS_ERR_SHAPE, "explain: %s holds %lld samples for input '%s'; the "
                            "explained input '%s' has %lld (give as many, or 1 for all)",
                            t->source, (long long)t->rows, t->name, r->in_name, (long long)N);
    }
    return DS_OK;
}

ds_status dsx_begin(ds_net *n, const ds_tensor *x, const ds_explain_opts *o, dsx_run *r)
{
    memset(r, 0, sizeof *r);
    ds_explain_opts d = dsx_opts(o);
    ds_status st;
    if (!n)
        return dsi_fail(DS_ERR_ARG, "explain: the net is NULL");
    if (d.output < 0 || d.output >= n->n_outputs)
        return dsi_fail(DS_ERR_ARG, "%s: output %d: the model has %d (0..%d)", n->path,
                        d.output, n->n_outputs, n->n_outputs - 1);
    if ((st = check_opts(&d)))
        return st;
    r->net = n;
    if ((st = pick_inputs(r, &d))) {
        r->net = NULL;
        return st;
    }
    r->output = d.output;
    r->out = n->outputs[d.output].node;
    if (r->out->op == DS_OP_SOFTMAX)   /* explained before the softmax: its logits */
        r->out = r->out->in[0];
    r->seed_node = r->out;
    r->D = r->in->numel / r->in->shape[0];
    r->K = r->out->numel / r->out->shape[0];
    if (x && ((st = check_data(r, x)) || (st = dsx_check_others(r, ds_tensor_shape(x)[0]))))
        return st;
    r->g = n->g;
    r->old_mode = ds_graph_mode(r->g);
    r->old_batch = ds_graph_batch(r->g);
    r->batch = d.batch ? d.batch : r->old_batch;
    ds_graph_set_mode(r->g, DS_MODE_EVAL);
    ds_node_keep(r->out, 1);
    if ((st = ds_node_requires_grad(r->in, 1))) {
        dsx_end(r);
        return st;
    }
    r->grads = true;
    return DS_OK;
}

ds_status dsx_begin_result(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                           ds_explain_opts *d, dsx_run *r, ds_explain_result *res, int64_t *N)
{
    *d = dsx_opts(o);
    memset(res, 0, sizeof *res);
    ds_status st = dsx_begin(n, x, d, r);
    if (st)
        return st;
    *N = ds_tensor_shape(x)[0];
    if ((st = dsx_result_init(res, *N)))
        dsx_end(r);
    return st;
}

/* Keeps node k for the run (its value and gradient readable after a pass); a ReLU's
 * input too, so the ReLU is not fused into the op before it. */
void dsx_keep(dsx_run *r, ds_node *k)
{
    for (int i = 0; i < 4; i++)
        if (!r->kept[i]) {
            r->kept[i] = k;
            ds_node_keep(k, 1);
            if (k->op == DS_OP_RELU && k->n_in && i + 1 < 4) {
                r->kept[i + 1] = k->in[0];
                ds_node_keep(k->in[0], 1);
            }
            return;
        }
}

void dsx_end(dsx_run *r)
{
    if (!r->g)
        return;
    for (int i = 0; i < 4; i++)
        if (r->kept[i] && r->kept[i] != r->out)
            ds_node_keep(r->kept[i], 0);
    ds_node_keep(r->out, 0);
    if (r->grads) {
        ds_node_requires_grad(r->in, 0);
        ds_model_zero_grad(r->net->m);   /* the passes' parameter gradients are no result */
    }
    ds_graph_set_mode(r->g, r->old_mode);
    ds_graph_set_batch(r->g, r->old_batch);
    r->g = NULL;
}

/* ---- batched passes ---- */
/* Zeroes every graph input but the data inputs (the labels, read by the losses only). */
static void zero_other_inputs(dsx_run *r)
{
    for (int i = 0; i < ds_graph_input_count(r->g); i++) {
        ds_node *k = ds_graph_input(r->g, i);
        bool data = k == r->in;
        for (int o = 0; o < r->n_oth && !data; o++)
            data = k == r->oth[o].node;
        if (!data)
            memset(ds_node_data(k), 0, (size_t)ds_node_numel(k) * sizeof(float));
    }
}

/* The other inputs of rows [i0, i0 + b): their sample's values (or their only sample's). */
static void fill_others(dsx_run *r, int64_t i0, int64_t b, const dsx_pass *p)
{
    for (int o = 0; o < r->n_oth; o++) {
        const dsx_other *t = &r->oth[o];
        float *dst = ds_node_data(t->node);
        for (int64_t j = 0; j < b; j++) {
            int64_t s = t->rows == 1 ? 0 : p->sample ? p->sample(p->ctx, i0 + j) : i0 + j;
            memcpy(dst + j * t->D, t->data + s * t->D, (size_t)t->D * sizeof(float));
        }
    }
}

/* One chunk: rows [i0, i0 + b). */
static ds_status chunk(dsx_run *r, int64_t i0, int64_t b, const dsx_pass *p, float *seedbuf)
{
    ds_status st;
    if ((st = ds_graph_set_batch(r->g, b)) || (st = ds_graph_plan(r->g)))
        return st;
    float *xin = ds_node_data(r->in);
    for (int64_t j = 0; j < b; j++)
        p->fill(p->ctx, i0 + j, xin + j * r->D);
    zero_other_inputs(r);
    fill_others(r, i0, b, p);
    if ((st = ds_graph_forward(r->g)))
        return st;
    const float *grad = NULL;
    if (p->seed || p->seedv) {
        int64_t Ks = r->seed_node->numel / b;
        memset(seedbuf, 0, (size_t)(b * Ks) * sizeof(float));
        for (int64_t j = 0; j < b; j++) {
            if (p->seedv)
                p->seedv(p->ctx, i0 + j, seedbuf + j * Ks);
            else
                seedbuf[j * Ks + p->seed(p->ctx, i0 + j)] = 1;
        }
        if ((st = ds_graph_backward_seed(r->g, r->seed_node, seedbuf)))
            return st;
        grad = ds_node_grad(r->in);
    }
    const float *out = ds_node_data(r->out);
    for (int64_t j = 0; j < b; j++)
        p->take(p->ctx, i0 + j, j, out + j * r->K, grad ? grad + j * r->D : NULL);
    return DS_OK;
}

ds_status dsx_rows(dsx_run *r, int64_t rows, const dsx_pass *p)
{
    int64_t Ks = r->seed_node->numel / r->seed_node->shape[0];
    float *seedbuf = NULL;
    if ((p->seed || p->seedv) && !(seedbuf = malloc((size_t)(r->batch * Ks) * sizeof(float))))
        return dsi_fail(DS_ERR_NOMEM, "explain: out of memory for a batch of %lld",
                        (long long)r->batch);
    ds_status st = DS_OK;
    for (int64_t i0 = 0; i0 < rows && !st; i0 += r->batch)
        st = chunk(r, i0, rows - i0 < r->batch ? rows - i0 : r->batch, p, seedbuf);
    free(seedbuf);
    return st;
}

/* ---- targets ---- */
typedef struct {
    const float *x;
    int64_t D, K;
    float *vals;      /* N x K explained values */
} fwd_ctx;

static void fill_x(void *ctx, int64_t r, float *dst)
{
    fwd_ctx *c = ctx;
    memcpy(dst, c->x + r * c->D, (size_t)c->D * sizeof(float));
}

static void take_vals(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    (void)j;
    (void)grad;
    fwd_ctx *c = ctx;
    memcpy(c->vals + r * c->K, out, (size_t)c->K * sizeof(float));
}

ds_status dsx_forward(dsx_run *r, const float *x, int64_t N, float *vals)
{
    fwd_ctx c = {x, r->D, r->K, vals};
    dsx_pass p = {.fill = fill_x, .take = take_vals, .ctx = &c};
    return dsx_rows(r, N, &p);
}

/* Whether the explained output is what a categorical or binary cross-entropy reads. */
static bool is_classifier_output(const dsx_run *r)
{
    const ds_net *n = r->net;
    for (int t = 0; t < n->n_targets; t++)
        if ((n->targets[t].kind == DSI_LOSS_CCE || n->targets[t].kind == DSI_LOSS_BCE) &&
            n->targets[t].pred == n->outputs[r->output].node)
            return true;
    return false;
}

static ds_status target_range(const dsx_run *r, int64_t t)
{
    if (t >= 0 && t < r->K)
        return DS_OK;
    return dsi_fail(DS_ERR_ARG, "%s: target %lld is past output '%s', which has %lld "
                    "%s per sample (0..%lld)", r->net->path, (long long)t,
                    r->net->outputs[r->output].name, (long long)r->K,
                    r->K == 1 ? "value" : "values", (long long)r->K - 1);
}

ds_status dsx_targets(dsx_run *r, const ds_tensor *x, const ds_explain_opts *o, int64_t *tgt,
                      float *score)
{
    ds_explain_opts d = dsx_opts(o);
    int64_t N = ds_tensor_shape(x)[0];
    bool cls = is_classifier_output(r);
    ds_status st;
    if (!d.targets && d.target < 0 && !cls && r->K > 1)
        return dsi_fail(DS_ERR_ARG, "%s: output '%s' has %lld values per sample and is no "
                        "classifier's: choose one with a target (0..%lld)", r->net->path,
                        r->net->outputs[r->output].name, (long long)r->K,
                        (long long)r->K - 1);
    for (int64_t i = 0; i < N; i++) {
        tgt[i] = d.targets ? d.targets[i] : d.target;
        if ((tgt[i] >= 0 || d.targets) && (st = target_range(r, tgt[i])))
            return st;
    }
    float *vals = malloc((size_t)(N * r->K) * sizeof(float));
    if (!vals)
        return dsi_fail(DS_ERR_NOMEM, "explain: out of memory for %lld outputs", (long long)N);
    if ((st = dsx_forward(r, ds_tensor_data((ds_tensor *)x), N, vals))) {
        free(vals);
        return st;
    }
    for (int64_t i = 0; i < N; i++) {
        const float *v = vals + i * r->K;
        if (tgt[i] < 0) {   /* the predicted class, or the only value */
            tgt[i] = 0;
            for (int64_t k = 1; k < r->K; k++)
                if (v[k] > v[tgt[i]])
                    tgt[i] = k;
        }
        if (score)
            score[i] = v[tgt[i]];
    }
    free(vals);
    return DS_OK;
}

/* ---- baselines ---- */
/* One plane of h x w blurred by a Gaussian of sigma s (weights renormalized at the edges). */
static void blur_plane(const float *src, float *dst, int64_t h, int64_t w, double s, float *tmp)
{
    int rad = (int)ceil(3 * s);
    for (int pass = 0; pass < 2; pass++) {   /* rows into tmp, then columns into dst */
        const float *a = pass ? tmp : src;
        float *b = pass ? dst : tmp;
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                double sum = 0, wsum = 0;
                for (int k = -rad; k <= rad; k++) {
                    int64_t ii = pass ? i + k : i, jj = pass ? j : j + k;
                    if (ii < 0 || ii >= h || jj < 0 || jj >= w)
                        continue;
                    double wt = exp(-0.5 * k * k / (s * s));
                    sum += wt * a[ii * w + jj];
                    wsum += wt;
                }
                b[i * w + j] = (float)(sum / wsum);
            }
    }
}

void dsx_baseline(const ds_explain_opts *o, dsx_layout L, const float *x, float *dst)
{
    int64_t hw = L.h * L.w;
    for (int64_t p = 0; p < L.planes; p++) {
        const float *a = x + p * hw;
        float *b = dst + p * hw;
        if (o->baseline == DS_BASELINE_MEAN) {
            double m = 0;
            for (int64_t i = 0; i < hw; i++)
                m += a[i];
            for (int64_t i = 0; i < hw; i++)
                b[i] = (float)(m / (double)hw);
        } else if (o->baseline == DS_BASELINE_BLUR) {
            double s = o->blur > 0 ? o->blur : (double)(L.h > L.w ? L.h : L.w) / 8;
            float *tmp = malloc((size_t)hw * sizeof(float));
            if (tmp)
                blur_plane(a, b, L.h, L.w, s, tmp);
            else   /* cannot happen for sane sizes; a mean baseline beats garbage */
                memset(b, 0, (size_t)hw * sizeof(float));
            free(tmp);
        } else {
            memset(b, 0, (size_t)hw * sizeof(float));
        }
    }
}

/* ---- layers ---- */
static bool is_conv_type(const char *type)
{
    return !strncmp(type, "Conv", 4);
}

char *ds_explain_layers(const ds_net *n, int conv_only)
{
    const ds_graph *g = n->g;
    size_t cap = 16, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = 0;
    for (int i = 0; i < g->n_layers; i++) {
        const dsi_layer *l = &g->layers[i];
        if (conv_only && !is_conv_type(l->type))
            continue;
        size_t k = strlen(l->name) + 2;
        if (len + k + 1 > cap) {
            cap = 2 * (len + k + 1);
            char *t = realloc(s, cap);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        len += (size_t)sprintf(s + len, "%s%s", len ? ", " : "", l->name);
    }
    return s;
}

/* The layer called name, or NULL after a message listing the layers. */
const dsi_layer *dsx_find_layer(const ds_net *n, const char *name, const char *what)
{
    for (int i = 0; i < n->g->n_layers; i++)
        if (!strcmp(n->g->layers[i].name, name))
            return &n->g->layers[i];
    char *list = ds_explain_layers(n, 0);
    dsi_fail(DS_ERR_ARG, "%s: %s: no layer '%s' (its layers: %s)", n->path, what, name,
             list ? list : "?");
    free(list);
    return NULL;
}

/* The last (last = true) or first convolution layer, or NULL after a message. */
const dsi_layer *dsx_conv_layer(const ds_net *n, bool last, const char *what)
{
    const dsi_layer *found = NULL;
    for (int i = 0; i < n->g->n_layers; i++)
        if (is_conv_type(n->g->layers[i].type) && (last || !found))
            found = &n->g->layers[i];
    if (!found) {
        char *list = ds_explain_layers(n, 0);
        dsi_fail(DS_ERR_ARG, "%s: %s needs a convolution layer and the model has none (its "
                 "layers: %s)", n->path, what, list ? list : "?");
        free(list);
    }
    return found;
}

bool dsx_is_conv_layer(const dsi_layer *l)
{
    return is_conv_type(l->type);
}
