/* net.c - a network's data side: preprocessing per input, weights with preprocessing,
 * batched prediction of every output, loss over a data set, and the one-batch gradient
 * dump. */
#include "net.h"
#include "../io/stream.h"

#include <float.h>
#include <math.h>

static int64_t per_sample(const ds_tensor *t)
{
    return t->ndim && t->shape[0] ? t->numel / t->shape[0] : 0;
}

/* ---- preprocessing ---- */
static const char *const scale_names[] = {"none", "standardize", "per_image", "asinh", "divide"};

ds_scale_kind ds_net_scaling(const ds_net *n) { return n->inputs[0].scale; }

ds_scale_kind ds_net_input_scaling(const ds_net *n, int i)
{
    return i >= 0 && i < n->n_inputs ? n->inputs[i].scale : DS_SCALE_NONE;
}

/* Per-feature mean and standard deviation of x into in->mean, in->std. */
static ds_status standardize_stats(dsi_net_input *in, const ds_tensor *x)
{
    int64_t f = per_sample(x), N = x->shape[0];
    in->mean = ds_tensor_create(1, &f);
    in->std = ds_tensor_create(1, &f);
    if (!in->mean || !in->std)
        return DS_ERR_NOMEM;
    for (int64_t j = 0; j < f; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < N; i++)
            s += x->data[i * f + j];
        double mu = s / N;
        for (int64_t i = 0; i < N; i++) {
            double d = x->data[i * f + j] - mu;
            s2 += d * d;
        }
        double sd = sqrt(s2 / N);
        in->mean->data[j] = (float)mu;
        in->std->data[j] = (float)(sd > 1e-12 ? sd : 1.0);   /* constant features stay 0 */
    }
    return DS_OK;
}

/* The index of the input named name (NULL: the only input), or a failure. */
static ds_status input_index(const ds_net *n, const char *name, const char *what, int *i)
{
    *i = name ? dsi_net_find_input(n, name) : n->n_inputs == 1 ? 0 : -1;
    if (*i >= 0)
        return DS_OK;
    if (!name)
        return dsi_fail(DS_ERR_ARG, "%s: the model has %d inputs: name one", what, n->n_inputs);
    return dsi_fail(DS_ERR_ARG, "%s: the model has no input named '%s'", what, name);
}

ds_status ds_net_set_input_scaling(ds_net *n, const char *input, ds_scale_kind kind, float a,
                                   const ds_tensor *x)
{
    int i;
    ds_status st = input_index(n, input, "scaling", &i);
    if (st)
        return st;
    dsi_net_input *in = &n->inputs[i];
    ds_tensor_free(in->mean);
    ds_tensor_free(in->std);
    in->mean = in->std = NULL;
    in->scale = DS_SCALE_NONE;
    char where[DS_NAME_MAX + 16] = "";
    if (n->n_inputs > 1)
        snprintf(where, sizeof where, "input '%s': ", in->name);
    if ((kind == DS_SCALE_ASINH || kind == DS_SCALE_DIVIDE) && !(a > 0 && isfinite(a)))
        return dsi_fail(DS_ERR_ARG, "%sscaling %s needs a positive scale, got %g", where,
                        scale_names[kind], a);
    if (kind == DS_SCALE_STANDARDIZE) {
        if (!x || x->ndim < 1 || x->shape[0] < 1)
            return dsi_fail(DS_ERR_ARG, "%sstandardize: no training data to take statistics "
                            "from", where);
        if ((st = standardize_stats(in, x)))
            return st;
    }
    in->scale = kind;
    in->scale_a = a;
    return DS_OK;
}

ds_status ds_net_copy_scaling(ds_net *to, const ds_net *from)
{
    for (int i = 0; i < to->n_inputs; i++) {
        dsi_net_input *t = &to->inputs[i];
        int k;
        ds_status st = input_index(from, t->name, "copying the scaling", &k);
        if (st)
            return st;
        const dsi_net_input *f = &from->inputs[k];
        ds_tensor_free(t->mean);
        ds_tensor_free(t->std);
        t->mean = t->std = NULL;
        t->scale = DS_SCALE_NONE;
        if (f->mean) {
            if (f->mean->numel != dsi_numel(t->node->ndim - 1, t->node->shape + 1))
                return dsi_fail(DS_ERR_ARG, "copying the scaling of input '%s': %lld "
                                "statistics for another shape", t->name,
                                (long long)f->mean->numel);
            int64_t nf = f->mean->numel;
            t->mean = ds_tensor_create(1, &nf);
            t->std = ds_tensor_create(1, &nf);
            if (!t->mean || !t->std)
                return dsi_fail(DS_ERR_NOMEM, "out of memory for the statistics of input '%s'",
                                t->name);
            memcpy(t->mean->data, f->mean->data, (size_t)nf * sizeof *t->mean->data);
            memcpy(t->std->data, f->std->data, (size_t)nf * sizeof *t->std->data);
        }
        t->scale = f->scale;
        t->scale_a = f->scale_a;
    }
    return DS_OK;
}

/* Two passes over a stream's input, as standardize_stats makes them over one tensor: each
 * feature's sum runs over the samples in the same order, so the values are the same. */
typedef struct {
    double *acc, *mu;
    int64_t n;
} stream_stats;

static ds_status sum_pass(void *ctx, const float *x, int64_t count, int64_t per)
{
    stream_stats *c = ctx;
    for (int64_t i = 0; i < count; i++)
        for (int64_t j = 0; j < per; j++)
            c->acc[j] += c->mu ? (x[i * per + j] - c->mu[j]) * (x[i * per + j] - c->mu[j])
                               : x[i * per + j];
    c->n += count;
    return DS_OK;
}

static ds_status stream_standardize(dsi_net_input *in, ds_stream *s, int k)
{
    int nd;
    int64_t shape[DS_MAX_DIMS];
    ds_status st = ds_stream_sample_shape(s, 0, k, &nd, shape);
    int64_t f = dsi_numel(nd, shape), N = ds_stream_samples(s);
    double *acc = calloc((size_t)f + 1, sizeof *acc), *mu = malloc(((size_t)f + 1) * sizeof *mu);
    stream_stats c = {acc, NULL, 0};
    in->mean = ds_tensor_create(1, &f);
    in->std = ds_tensor_create(1, &f);
    if (!st && (!acc || !mu || !in->mean || !in->std))
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for the statistics of %lld features",
                      (long long)f);
    if (!st && !(st = dsi_stream_scan(s, 0, k, sum_pass, &c))) {
        for (int64_t j = 0; j < f; j++) {
            mu[j] = acc[j] / N;
            acc[j] = 0;
        }
        c.mu = mu;
        st = dsi_stream_scan(s, 0, k, sum_pass, &c);
    }
    for (int64_t j = 0; !st && j < f; j++) {
        double sd = sqrt(acc[j] / N);
        in->mean->data[j] = (float)mu[j];
        in->std->data[j] = (float)(sd > 1e-12 ? sd : 1.0);   /* constant features stay 0 */
    }
    free(acc);
    free(mu);
    return st;
}

ds_status ds_net_set_input_scaling_stream(ds_net *n, const char *input, ds_scale_kind kind,
                                          float a, ds_stream *s)
{
    if (kind != DS_SCALE_STANDARDIZE || !s)
        return ds_net_set_input_scaling(n, input, kind, a, NULL);
    int i;
    ds_status st = input_index(n, input, "scaling", &i);
    if (st || (st = ds_net_set_input_scaling(n, input, DS_SCALE_NONE, 1, NULL)))
        return st;
    dsi_net_input *in = &n->inputs[i];
    int k = dsi_stream_find_input(s, in->name);
    if (k < 0)
        return dsi_fail(DS_ERR_ARG, "standardize '%s': the stream has no data for this input "
                        "to take statistics from", in->name);
    if ((st = stream_standardize(in, s, k))) {
        ds_tensor_free(in->mean);
        ds_tensor_free(in->std);
        in->mean = in->std = NULL;
        return st;
    }
    in->scale = kind;
    in->scale_a = a;
    return DS_OK;
}

ds_status ds_net_set_scaling(ds_net *n, ds_scale_kind kind, float a, const ds_tensor *x)
{
    return ds_net_set_input_scaling(n, NULL, kind, a, x);
}

static void per_image(float *d, int64_t N, int64_t f, int64_t numel)
{
    (void)numel;   /* read only by OpenMP's if clause */
#pragma omp parallel for schedule(static) if (numel > DS_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        double s = 0, s2 = 0;
        float *r = d + i * f;
        for (int64_t j = 0; j < f; j++)
            s += r[j];
        double mu = s / f;
        for (int64_t j = 0; j < f; j++)
            s2 += (r[j] - mu) * (r[j] - mu);
        double sd = sqrt(s2 / f);
        if (!(sd > 1e-12))
            sd = 1;
        for (int64_t j = 0; j < f; j++)
            r[j] = (float)((r[j] - mu) / sd);
    }
}

/* Scales x in place. The loops also learn whether the results are finite, so data known
 * finite stay known so (or not) without another pass. */
static ds_status preprocess_one(const dsi_net_input *in, ds_tensor *x)
{
    if (x->ndim < 1 || x->shape[0] < 1)
        return DS_OK;
    int64_t f = per_sample(x), N = x->shape[0];
    float *d = x->data;
    int bad = 0;
    switch (in->scale) {
    case DS_SCALE_NONE:
        return DS_OK;
    case DS_SCALE_STANDARDIZE:
        if (in->mean->numel != f)
            return dsi_fail(DS_ERR_SHAPE, "standardize: statistics of %lld features, data has %lld",
                            (long long)in->mean->numel, (long long)f);
#pragma omp parallel for schedule(static) reduction(| : bad) if (x->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < f; j++) {
                float v = (d[i * f + j] - in->mean->data[j]) / in->std->data[j];
                d[i * f + j] = v;
                bad |= !(fabsf(v) <= FLT_MAX);
            }
        break;
    case DS_SCALE_PER_IMAGE:
        per_image(d, N, f, x->numel);
        dsi_tensor_set_finite(x, false);
        return DS_OK;
    case DS_SCALE_ASINH:
#pragma omp parallel for schedule(static) reduction(| : bad) if (x->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < x->numel; i++) {
            float v = asinhf(d[i] / in->scale_a);
            d[i] = v;
            bad |= !(fabsf(v) <= FLT_MAX);
        }
        break;
    case DS_SCALE_DIVIDE:
#pragma omp parallel for simd schedule(static) reduction(| : bad) if (parallel: x->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < x->numel; i++) {
            float v = d[i] / in->scale_a;
            d[i] = v;
            bad |= !(fabsf(v) <= FLT_MAX);
        }
        break;
    }
    dsi_tensor_set_finite(x, dsi_tensor_known_finite(x) && !bad);
    return DS_OK;
}

ds_status ds_net_preprocess_feed(const ds_net *n, ds_feed *f)
{
    dsi_bound d;
    ds_status st = dsi_feed_bind(n, f, &d);
    /* the bound tensors are the feed's own, which the caller lets us change */
    for (int i = 0; !st && i < n->n_inputs; i++)
        if (d.x[i])   /* NULL: an input only a loss reads, not fed */
            st = preprocess_one(&n->inputs[i], (ds_tensor *)d.x[i]);
    return st;
}

ds_status ds_net_preprocess(const ds_net *n, ds_tensor *x)
{
    if (n->n_inputs != 1)
        return dsi_fail(DS_ERR_ARG, "preprocess: the model has %d inputs: use "
                        "ds_net_preprocess_feed", n->n_inputs);
    return preprocess_one(&n->inputs[0], x);
}

/* ---- weights with preprocessing ---- */
/* With one input the keys are "deepsky.scale", "deepsky.scale_a", "preprocess.mean" and
 * "preprocess.std"; with several, each input's carry ".<name>" ("preprocess.<name>.mean"). */
static void scale_key(const ds_net *n, const dsi_net_input *in, const char *key, char *buf,
                      size_t cap)
{
    if (n->n_inputs == 1)
        snprintf(buf, cap, "%s", key);
    else if (!strncmp(key, "preprocess.", 11))
        snprintf(buf, cap, "preprocess.%s.%s", in->name, key + 11);
    else
        snprintf(buf, cap, "%s.%s", key, in->name);
}

static ds_status scale_to_set(const ds_net *n, const dsi_net_input *in, ds_tensor_set *s)
{
    char a[32], k1[DS_NAME_MAX + 32], k2[DS_NAME_MAX + 32];
    snprintf(a, sizeof a, "%.9g", in->scale_a);
    scale_key(n, in, "deepsky.scale", k1, sizeof k1);
    scale_key(n, in, "deepsky.scale_a", k2, sizeof k2);
    ds_status st;
    if ((st = ds_tensor_set_meta_set(s, k1, scale_names[in->scale])) ||
        (st = ds_tensor_set_meta_set(s, k2, a)))
        return st;
    if (in->scale != DS_SCALE_STANDARDIZE)
        return DS_OK;
    scale_key(n, in, "preprocess.mean", k1, sizeof k1);
    scale_key(n, in, "preprocess.std", k2, sizeof k2);
    if ((st = ds_tensor_set_add(s, k1, 1, in->mean->shape, in->mean->data)))
        return st;
    return ds_tensor_set_add(s, k2, 1, in->std->shape, in->std->data);
}

ds_status dsi_net_to_set(const ds_net *n, ds_tensor_set *s)
{
    ds_status st = ds_model_to_set(n->m, s);
    if (!st)
        st = ds_tensor_set_meta_set(s, "deepsky.format", "weights 1");
    for (int i = 0; !st && i < n->n_inputs; i++)
        st = scale_to_set(n, &n->inputs[i], s);
    float klw = ds_graph_kl_weight(n->g);   /* Bayesian layers' automatic KL weight */
    if (!st && !isnan(klw)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.9g", (double)klw);
        st = ds_tensor_set_meta_set(s, "deepsky.kl_weight", buf);
    }
    return st;
}

/* What a weights file holds: the parameters, the preprocessing and the temperatures. */
static ds_status weights_set(const ds_net *n, ds_tensor_set **out)
{
    *out = NULL;
    ds_tensor_set *s = ds_tensor_set_create();
    if (!s)
        return DS_ERR_NOMEM;
    ds_status st = dsi_net_to_set(n, s);
    if (!st)
        st = dsi_calib_to_set(n, s, false);   /* the classifiers' temperatures */
    if (st)
        ds_tensor_set_free(s);
    *out = st ? NULL : s;
    return st;
}

ds_status ds_net_save_weights(const ds_net *n, const char *path)
{
    ds_tensor_set *s = NULL;
    ds_status st = weights_set(n, &s);
    if (!st)
        st = ds_safetensors_save(s, path);
    ds_tensor_set_free(s);
    return st;
}

ds_status ds_net_save_weights_mem(const ds_net *n, void **buf, size_t *len)
{
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    if (!n || !buf || !len)
        return dsi_fail(DS_ERR_ARG, "ds_net_save_weights_mem: %s is NULL",
                        !n ? "the net" : !buf ? "buf" : "len");
    ds_tensor_set *s = NULL;
    ds_status st = weights_set(n, &s);
    if (!st)
        st = ds_safetensors_save_mem(s, buf, len);
    ds_tensor_set_free(s);
    return st;
}

/* One input's preprocessing as a weights set records it, into *to with tensors of its own
 * (to->node NULL: none recorded, as in a plain weights file from PyTorch, and the input's
 * stays). The input itself is left as it is. */
static ds_status scale_from_set(const ds_net *n, const dsi_net_input *in,
                                const ds_tensor_set *s, const char *what, dsi_net_input *to)
{
    char k1[DS_NAME_MAX + 32], k2[DS_NAME_MAX + 32];
    *to = (dsi_net_input){0};
    scale_key(n, in, "deepsky.scale", k1, sizeof k1);
    scale_key(n, in, "deepsky.scale_a", k2, sizeof k2);
    const char *sc = ds_tensor_set_meta_get(s, k1), *sa = ds_tensor_set_meta_get(s, k2);
    if (!sc)
        return DS_OK;
    int kind = -1;
    for (int k = 0; k < 5; k++)
        if (!strcmp(sc, scale_names[k]))
            kind = k;
    if (kind < 0)
        return dsi_fail(DS_ERR_FORMAT, "%s: unknown preprocessing '%s'", what, sc);
    *to = *in;
    to->mean = to->std = NULL;
    to->scale = (ds_scale_kind)kind;
    to->scale_a = sa ? strtof(sa, NULL) : 0;
    if (kind != DS_SCALE_STANDARDIZE)
        return DS_OK;
    scale_key(n, in, "preprocess.mean", k1, sizeof k1);
    scale_key(n, in, "preprocess.std", k2, sizeof k2);
    ds_tensor *mu = ds_tensor_set_get(s, k1), *sd = ds_tensor_set_get(s, k2);
    int64_t f = in->node->numel / in->node->shape[0];
    if (!mu || !sd || mu->numel != sd->numel || mu->numel != f)
        return dsi_fail(DS_ERR_FORMAT, "%s: standardization statistics of input '%s' missing or "
                        "not of the input's size (%lld features)", what, in->name, (long long)f);
    to->mean = ds_tensor_from(1, mu->shape, mu->data);
    to->std = to->mean ? ds_tensor_from(1, sd->shape, sd->data) : NULL;
    return to->std ? DS_OK : DS_ERR_NOMEM;   /* with ds_tensor_create's message */
}

/* Loads parameters (and preprocessing, if present) from a set holding other entries too:
 * names starting with one of the skipped prefixes are ignored. On failure the net is left
 * as it was: the preprocessing is read first and set once the parameters are in. */
/* The automatic KL weight of Bayesian layers the set records into *w (left alone if none). */
static ds_status kl_weight_from_set(const ds_tensor_set *s, const char *what, double *w)
{
    const char *v = ds_tensor_set_meta_get(s, "deepsky.kl_weight");
    if (!v)
        return DS_OK;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= 0 && x <= FLT_MAX))
        return dsi_fail(DS_ERR_FORMAT, "%s: deepsky.kl_weight '%s' is not a number >= 0", what, v);
    *w = x;
    return DS_OK;
}

ds_status dsi_net_from_set(ds_net *n, const ds_tensor_set *s, const char *what)
{
    dsi_net_input next[DS_FEED_MAX];
    double temps[DS_FEED_MAX];
    ds_status st = dsi_calib_from_set(n, s, what, temps);
    int read = 0;
    for (; read < n->n_inputs && !st; read++)
        st = scale_from_set(n, &n->inputs[read], s, what, &next[read]);
    ds_tensor_set *params = st ? NULL : ds_tensor_set_create(), *meta = NULL;
    if (!st && !params)
        st = DS_ERR_NOMEM;   /* with its message */
    if (!st)
        st = dsi_weights_meta_copy(s, &meta);
    double klw = -1;
    if (!st)
        st = kl_weight_from_set(s, what, &klw);
    for (int i = 0; !st && i < ds_tensor_set_count(s); i++) {
        const char *name = ds_tensor_set_name(s, i);
        if (!strncmp(name, "preprocess.", 11) || !strncmp(name, "optim.", 6) ||
            !strncmp(name, "fit.", 4))
            continue;
        ds_tensor *t = ds_tensor_set_at(s, i);
        st = ds_tensor_set_add(params, name, t->ndim, t->shape, t->data);
    }
    if (!st)
        st = ds_model_from_set(n->m, params, what);
    ds_tensor_set_free(params);
    if (!st && klw >= 0)
        ds_graph_set_kl_weight(n->g, (float)klw);
    if (!st) {
        ds_tensor_set_free(n->wmeta);
        n->wmeta = meta;
        meta = NULL;
        for (int i = 0; i < n->n_targets; i++)
            n->targets[i].temperature = temps[i];
    }
    ds_tensor_set_free(meta);
    for (int i = 0; i < read; i++) {
        dsi_net_input *in = &n->inputs[i];
        if (st || !next[i].node) {
            ds_tensor_free(next[i].mean);
            ds_tensor_free(next[i].std);
            continue;
        }
        ds_tensor_free(in->mean);
        ds_tensor_free(in->std);
        *in = next[i];
    }
    return st;
}

ds_status ds_net_load_weights(ds_net *n, const char *path)
{
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load(path, &s);
    if (!st)
        st = dsi_net_from_set(n, s, path);
    ds_tensor_set_free(s);
    return st;
}

ds_status ds_net_load_weights_mem(ds_net *n, const void *buf, size_t len, const char *name)
{
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load_mem(buf, len, name, &s);
    if (!st)
        st = dsi_net_from_set(n, s, name ? name : "<memory>");
    ds_tensor_set_free(s);
    return st;
}

/* ---- running over a data set ---- */
ds_status dsi_net_use_batch(ds_graph *g, int64_t b)
{
    ds_status st = DS_OK;
    if (b != ds_graph_batch(g))
        st = ds_graph_set_batch(g, b);
    return st ? st : ds_graph_plan(g);
}

/* One batch of the collection: forward up to the last of the nodes, then their values
 * into rows [i, i+b) of out. */
static ds_status collect_batch(ds_net *n, const dsi_bound *d, int64_t i, int64_t b, int count,
                               ds_node *const *nodes, ds_tensor **out)
{
    ds_status st = dsi_net_use_batch(n->g, b);
    if (st)
        return st;
    dsi_bound_gather(n, d, NULL, i, b, false);
    /* a loss may come before an output (gaussian_nll's concat): its labels read zeros */
    for (int t = 0; t < n->n_targets; t++)
        memset(n->targets[t].target->data, 0, (size_t)n->targets[t].target->numel * sizeof(float));
    ds_node *last = nodes[0];
    for (int k = 1; k < count; k++)
        if (nodes[k]->id > last->id)
            last = nodes[k];
    if ((st = ds_graph_forward_to(n->g, last)))
        return st;
    for (int k = 0; k < count; k++) {
        int64_t f = nodes[k]->numel / nodes[k]->shape[0];
        memcpy(out[k]->data + i * f, nodes[k]->data, (size_t)(b * f) * sizeof(float));
    }
    return DS_OK;
}

ds_status dsi_net_collect(ds_net *n, const dsi_bound *d, int64_t batch, int count,
                          ds_node *const *nodes, ds_tensor **out)
{
    int64_t N = d->n;
    for (int k = 0; k < count; k++)
        out[k] = NULL;
    if (batch < 1)
        batch = 256;
    if (batch > N)
        batch = N;
    ds_status st = DS_OK;
    for (int k = 0; k < count && !st; k++) {
        int64_t shape[DS_MAX_DIMS];
        memcpy(shape, nodes[k]->shape, sizeof shape);
        shape[0] = N;
        if (!(out[k] = ds_tensor_create(nodes[k]->ndim, shape)))
            st = DS_ERR_NOMEM;
    }
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, DS_INFER | (mode & DS_DROPOUT_ON ? DS_MODE_MC_DROPOUT : DS_MODE_EVAL));
    for (int64_t i = 0; i < N && !st; i += batch)
        st = collect_batch(n, d, i, N - i < batch ? N - i : batch, count, nodes, out);
    ds_graph_set_mode(n->g, mode);
    for (int k = 0; k < count && st; k++) {
        ds_tensor_free(out[k]);
        out[k] = NULL;
    }
    return st;
}

ds_status ds_net_predict_feed(ds_net *n, const ds_feed *f, int64_t batch, ds_tensor **out)
{
    for (int k = 0; k < n->n_outputs; k++)
        out[k] = NULL;
    dsi_bound d;
    ds_status st = ds_net_check_feed(n, f);
    if (st || (st = dsi_feed_bind(n, f, &d)))
        return st;
    ds_node *nodes[DS_FEED_MAX];
    for (int k = 0; k < n->n_outputs; k++)
        nodes[k] = n->outputs[k].node;
    if ((st = dsi_net_collect(n, &d, batch, n->n_outputs, nodes, out)))
        return st;
    dsi_calib_apply(n, out);   /* the classifiers' temperatures */
    return DS_OK;
}

ds_status ds_net_predict(ds_net *n, const ds_tensor *x, int64_t batch, ds_tensor **out)
{
    ds_tensor *all[DS_FEED_MAX];
    ds_feed f;
    *out = NULL;
    dsi_feed_single(&f, x, "data", NULL, NULL);
    ds_status st = ds_net_predict_feed(n, &f, batch, all);
    if (st)
        return st;
    for (int k = 1; k < n->n_outputs; k++)
        ds_tensor_free(all[k]);
    *out = all[0];
    return DS_OK;
}

/* Running metric of a batch: correct predictions (classifiers) or squared error sum. */
void dsi_net_batch_metric(const ds_net *n, int64_t b, double *num, double *den)
{
    if (!n->n_targets) {
        dsi_recon_metric(n, b, num, den);   /* an autoencoder's RMSE, if it is one */
        return;
    }
    const dsi_net_target *t = &n->targets[0];
    const ds_node *o = t->pred;
    const float *p = o->data, *y = t->target->data;
    if (t->kind == DSI_LOSS_CCE) {
        int64_t K = o->shape[1], inner = o->numel / (o->shape[0] * K);
        for (int64_t i = 0; i < b; i++)
            for (int64_t s = 0; s < inner; s++) {
                int64_t best = 0, lab = 0;
                for (int64_t k = 1; k < K; k++)
                    if (p[(i * K + k) * inner + s] > p[(i * K + best) * inner + s])
                        best = k;
                if (t->labels == DS_LABELS_INDEX) {
                    lab = (int64_t)y[i * inner + s];
                } else {
                    for (int64_t k = 1; k < K; k++)
                        if (y[(i * K + k) * inner + s] > y[(i * K + lab) * inner + s])
                            lab = k;
                }
                *num += best == lab;
                *den += 1;
            }
    } else if (t->kind == DSI_LOSS_BCE) {
        for (int64_t i = 0; i < o->numel / o->shape[0] * b; i++) {
            *num += (p[i] > (t->output_logits ? 0.0f : 0.5f)) == (y[i] > 0.5f);
            *den += 1;
        }
    } else if (t->kind == DSI_LOSS_MSE || t->kind == DSI_LOSS_MAE ||
               t->kind == DSI_LOSS_MSB) {
        for (int64_t i = 0; i < o->numel / o->shape[0] * b; i++) {
            double e = (double)p[i] - y[i];
            *num += e * e;
            *den += 1;
        }
    }
}

double dsi_net_metric_value(const ds_net *n, double num, double den)
{
    if (den <= 0 || (!n->n_targets && !n->n_recons))
        return NAN;
    dsi_loss_kind k = n->n_targets ? n->targets[0].kind : DSI_LOSS_MSE;   /* recons: RMSE */
    if (k == DSI_LOSS_MSE || k == DSI_LOSS_MAE || k == DSI_LOSS_MSB)
        return sqrt(num / den);
    return num / den;
}

const char *dsi_net_metric_name(const ds_net *n)
{
    dsi_loss_kind k = n->n_targets ? n->targets[0].kind : n->n_recons ? DSI_LOSS_MSE
                                                                        : DSI_LOSS_NONE;
    if (k == DSI_LOSS_CCE || k == DSI_LOSS_BCE)
        return "acc";
    if (k == DSI_LOSS_MSE || k == DSI_LOSS_MAE || k == DSI_LOSS_MSB)
        return "rmse";
    return NULL;
}

/* Loss and metric over a bound data set with labels for every target, in inference mode
 * (DS_MODE_INFER: an inference plan; the graph's mode is restored). */
ds_status dsi_net_evaluate_set(ds_net *n, const dsi_bound *d, int64_t batch, double *loss,
                               double *metric)
{
    int64_t N = d->n;
    ds_status st = DS_OK;
    double sum = 0, num = 0, den = 0;
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, DS_MODE_INFER);
    for (int64_t i = 0; i < N && !st; i += batch) {
        int64_t b = N - i < batch ? N - i : batch;
        if ((st = ds_graph_set_batch(n->g, b)) || (st = ds_graph_plan(n->g)))
            break;
        dsi_bound_gather(n, d, NULL, i, b, true);
        if ((st = ds_graph_forward(n->g)))
            break;
        sum += (double)n->loss->data[0] * (double)b;
        dsi_net_batch_metric(n, b, &num, &den);
    }
    ds_graph_set_mode(n->g, mode);
    *loss = sum / (double)N;
    if (metric)
        *metric = dsi_net_metric_value(n, num, den);
    return st;
}

ds_status ds_net_loss_value_feed(ds_net *n, const ds_feed *f, int64_t batch, double *loss)
{
    if (!n->loss)
        return dsi_fail(DS_ERR_STATE, "%s: the model has no loss line", n->path);
    dsi_bound d;
    ds_status st = ds_net_check_feed(n, f);
    if (st || (st = dsi_feed_bind(n, f, &d)) || (st = dsi_require_labels(n, &d, d.first)))
        return st;
    return dsi_net_evaluate_set(n, &d, batch < 1 ? 256 : batch, loss, NULL);
}

ds_status ds_net_loss_value(ds_net *n, const ds_tensor *x, const ds_tensor *y, int64_t batch,
                            double *loss)
{
    ds_feed f;
    dsi_feed_single(&f, x, "data", y, "labels");
    return ds_net_loss_value_feed(n, &f, batch, loss);
}

/* ---- gradients of one batch ---- */
/* "what" for one node of its kind, else "what.<name>". */
static ds_status add_named(ds_tensor_set *s, const char *what, int count, const char *name,
                           const ds_node *node, const float *v)
{
    char key[DS_NAME_MAX + 16];
    snprintf(key, sizeof key, count == 1 ? "%s" : "%s.%s", what, name);
    return ds_tensor_set_add(s, key, node->ndim, node->shape, v);
}

static ds_status grad_to_set(const ds_net *n, ds_tensor_set *s)
{
    ds_status st = ds_tensor_set_add(s, "loss", 0, NULL, n->loss->data);
    for (int i = 0; !st && i < n->n_outputs; i++)
        st = add_named(s, "output", n->n_outputs, n->outputs[i].name, n->outputs[i].node,
                       n->outputs[i].node->data);
    for (int i = 0; !st && i < n->n_inputs; i++)
        st = add_named(s, "input", n->n_inputs, n->inputs[i].name, n->inputs[i].node,
                       n->inputs[i].node->grad);
    for (int i = 0; i < ds_model_param_count(n->m) && !st; i++) {
        ds_param *p = ds_model_param(n->m, i);
        if (ds_param_trainable(p))
            st = ds_tensor_set_add(s, ds_param_name(p), ds_param_ndim(p), ds_param_shape(p),
                                   ds_param_grad(p));
    }
    return st;
}

ds_status ds_net_grad_feed(ds_net *n, const ds_feed *f, int eval_bn, ds_tensor_set *s)
{
    if (!n->loss)
        return dsi_fail(DS_ERR_STATE, "%s: the model has no loss line", n->path);
    dsi_bound d;
    ds_status st = ds_net_check_feed(n, f);
    if (st || (st = dsi_feed_bind(n, f, &d)))
        return st;
    if (d.n_labels < n->n_targets)
        return dsi_require_labels(n, &d, n->path);
    ds_graph *g = n->g;
    for (int i = 0; i < n->n_inputs && !st; i++)
        st = ds_node_requires_grad(n->inputs[i].node, 1);
    if (st || (st = ds_graph_set_batch(g, d.n)) || (st = ds_graph_plan(g)))
        goto done;
    ds_graph_set_mode(g, eval_bn ? DS_MODE_EVAL : DS_BN_BATCH);
    dsi_bound_gather(n, &d, NULL, 0, d.n, true);
    ds_model_zero_grad(n->m);
    if (!(st = ds_graph_forward(g)) && !(st = ds_graph_backward(g, n->loss)))
        st = grad_to_set(n, s);
done:
    for (int i = 0; i < n->n_inputs; i++)
        ds_node_requires_grad(n->inputs[i].node, 0);
    ds_graph_set_mode(g, DS_MODE_EVAL);
    return st;
}

ds_status ds_net_grad(ds_net *n, const ds_tensor *x, const ds_tensor *y, int eval_bn,
                      ds_tensor_set *s)
{
    ds_feed f;
    /* labels for a model whose losses read none are ignored */
    dsi_feed_single(&f, x, "data", n->n_targets ? y : NULL, "labels");
    return ds_net_grad_feed(n, &f, eval_bn, s);
}

/* The classic models' scaling (src/classic/) through the same code as a network input's. */
ds_status dsi_scaling_fit(dsi_net_input *in, const ds_tensor *x)
{
    return in->scale == DS_SCALE_STANDARDIZE ? standardize_stats(in, x) : DS_OK;
}

ds_status dsi_scaling_apply(const dsi_net_input *in, ds_tensor *x)
{
    return preprocess_one(in, x);
}
