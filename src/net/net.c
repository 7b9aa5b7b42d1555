/* net.c - a network's data side: checks, preprocessing, weights with preprocessing,
 * batched prediction, loss over a data set, and the one-batch gradient dump. */
#include "net.h"

#include <math.h>

/* ---- data checks ---- */
static int64_t per_sample(const ds_tensor *t)
{
    return t->ndim && t->shape[0] ? t->numel / t->shape[0] : 0;
}

ds_status ds_net_check_data(const ds_net *n, const ds_tensor *x, const char *xname,
                            const ds_tensor *y, const char *yname)
{
    const ds_node *in = n->input;
    bool ok = x->ndim == in->ndim && x->ndim >= 1;
    for (int i = 1; ok && i < in->ndim; i++)
        ok = x->shape[i] == in->shape[i];
    if (!ok) {
        int64_t want[DS_MAX_DIMS];
        memcpy(want, in->shape, sizeof want);
        return dsi_fail(DS_ERR_SHAPE, "%s: data of shape %s does not fit the model's input '%s', "
                        "which takes samples of shape %s, i.e. [N, %s]",
                        xname, dsi_shape_str(x->ndim, x->shape), ds_node_layer_name(in),
                        dsi_shape_str(in->ndim - 1, want + 1),
                        dsi_shape_str(in->ndim - 1, want + 1) + 1);
    }
    if (x->shape[0] < 1)
        return dsi_fail(DS_ERR_SHAPE, "%s: no samples", xname);
    ds_status st = ds_tensor_check_finite(x, xname);
    if (st)
        return st;
    if (!y)
        return DS_OK;
    if (!n->target)
        return dsi_fail(DS_ERR_ARG, "%s: the model has no loss that reads labels", yname);
    if (y->ndim < 1 || y->shape[0] != x->shape[0])
        return dsi_fail(DS_ERR_SHAPE, "%s: %lld labels for %lld samples in %s", yname,
                        y->ndim ? (long long)y->shape[0] : 0LL, (long long)x->shape[0], xname);
    const ds_node *t = n->target;
    int64_t want = t->numel / t->shape[0];
    if (per_sample(y) != want) {
        const char *hint = "";
        if (n->target_loss == DSI_LOSS_CCE && n->labels == DS_LABELS_INDEX && per_sample(y) == n->classes)
            hint = " (these look one-hot: the model expects class indices)";
        else if (n->target_loss == DSI_LOSS_CCE && n->labels == DS_LABELS_DENSE && per_sample(y) == 1)
            hint = " (these look like class indices: the model expects one-hot rows)";
        return dsi_fail(DS_ERR_SHAPE, "%s: labels of shape %s do not fit the model's output, "
                        "which needs %lld value%s per sample (target shape %s)%s", yname,
                        dsi_shape_str(y->ndim, y->shape), (long long)want, want == 1 ? "" : "s",
                        dsi_shape_str(t->ndim, t->shape), hint);
    }
    if ((st = ds_tensor_check_finite(y, yname)))
        return st;
    if (n->target_loss == DSI_LOSS_CCE && n->labels == DS_LABELS_INDEX) {
        for (int64_t i = 0; i < y->numel; i++) {
            float v = y->data[i];
            if (v < 0 || v >= (float)n->classes || v != floorf(v))
                return dsi_fail(DS_ERR_VALUE, "%s: label %g of sample %lld is not a class index "
                                "in [0, %lld)", yname, v, (long long)(i / want),
                                (long long)n->classes);
        }
    }
    if (n->target_loss == DSI_LOSS_BCE || n->target_loss == DSI_LOSS_CCE)
        for (int64_t i = 0; i < y->numel; i++)
            if (y->data[i] < 0 || y->data[i] > 1) {
                if (n->target_loss == DSI_LOSS_CCE && n->labels == DS_LABELS_INDEX)
                    break;
                return dsi_fail(DS_ERR_VALUE, "%s: label %g of sample %lld is outside [0, 1]",
                                yname, y->data[i], (long long)(i / want));
            }
    return DS_OK;
}

/* ---- preprocessing ---- */
static const char *const scale_names[] = {"none", "standardize", "per_image", "asinh", "divide"};

ds_scale_kind ds_net_scaling(const ds_net *n) { return n->scale; }

ds_status ds_net_set_scaling(ds_net *n, ds_scale_kind kind, float a, const ds_tensor *x)
{
    ds_tensor_free(n->mean);
    ds_tensor_free(n->std);
    n->mean = n->std = NULL;
    n->scale = DS_SCALE_NONE;
    if ((kind == DS_SCALE_ASINH || kind == DS_SCALE_DIVIDE) && !(a > 0 && isfinite(a)))
        return dsi_fail(DS_ERR_ARG, "scaling %s needs a positive scale, got %g", scale_names[kind], a);
    if (kind == DS_SCALE_STANDARDIZE) {
        if (!x || x->ndim < 1 || x->shape[0] < 1)
            return dsi_fail(DS_ERR_ARG, "standardize: no training data to take statistics from");
        int64_t f = per_sample(x), N = x->shape[0];
        n->mean = ds_tensor_create(1, &f);
        n->std = ds_tensor_create(1, &f);
        if (!n->mean || !n->std)
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
            n->mean->data[j] = (float)mu;
            n->std->data[j] = (float)(sd > 1e-12 ? sd : 1.0);   /* constant features stay 0 */
        }
    }
    n->scale = kind;
    n->scale_a = a;
    return DS_OK;
}

ds_status ds_net_preprocess(const ds_net *n, ds_tensor *x)
{
    if (x->ndim < 1 || x->shape[0] < 1)
        return DS_OK;
    int64_t f = per_sample(x), N = x->shape[0];
    float *d = x->data;
    switch (n->scale) {
    case DS_SCALE_NONE:
        return DS_OK;
    case DS_SCALE_STANDARDIZE:
        if (n->mean->numel != f)
            return dsi_fail(DS_ERR_SHAPE, "standardize: statistics of %lld features, data has %lld",
                            (long long)n->mean->numel, (long long)f);
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < f; j++)
                d[i * f + j] = (d[i * f + j] - n->mean->data[j]) / n->std->data[j];
        return DS_OK;
    case DS_SCALE_PER_IMAGE:
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
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
        return DS_OK;
    case DS_SCALE_ASINH:
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < x->numel; i++)
            d[i] = asinhf(d[i] / n->scale_a);
        return DS_OK;
    case DS_SCALE_DIVIDE:
#pragma omp parallel for schedule(static) if (x->numel > DS_PAR_MIN)
        for (int64_t i = 0; i < x->numel; i++)
            d[i] /= n->scale_a;
        return DS_OK;
    }
    return DS_OK;
}

/* ---- weights with preprocessing ---- */
ds_status dsi_net_to_set(const ds_net *n, ds_tensor_set *s)
{
    ds_status st = ds_model_to_set(n->m, s);
    if (st)
        return st;
    char a[32];
    snprintf(a, sizeof a, "%.9g", n->scale_a);
    if ((st = ds_tensor_set_meta_set(s, "deepsky.format", "weights 1")) ||
        (st = ds_tensor_set_meta_set(s, "deepsky.scale", scale_names[n->scale])) ||
        (st = ds_tensor_set_meta_set(s, "deepsky.scale_a", a)))
        return st;
    if (n->scale == DS_SCALE_STANDARDIZE) {
        if ((st = ds_tensor_set_add(s, "preprocess.mean", 1, n->mean->shape, n->mean->data)) ||
            (st = ds_tensor_set_add(s, "preprocess.std", 1, n->std->shape, n->std->data)))
            return st;
    }
    return DS_OK;
}

ds_status ds_net_save(const ds_net *n, const char *path)
{
    ds_tensor_set *s = ds_tensor_set_create();
    if (!s)
        return DS_ERR_NOMEM;
    ds_status st = dsi_net_to_set(n, s);
    if (!st)
        st = ds_safetensors_save(s, path);
    ds_tensor_set_free(s);
    return st;
}

/* Loads parameters (and preprocessing, if present) from a set holding other entries too:
 * names starting with one of the skipped prefixes are ignored. */
ds_status dsi_net_from_set(ds_net *n, const ds_tensor_set *s, const char *what)
{
    ds_tensor_set *params = ds_tensor_set_create();
    if (!params)
        return DS_ERR_NOMEM;
    ds_status st = DS_OK;
    for (int i = 0; i < ds_tensor_set_count(s) && !st; i++) {
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
    if (st)
        return st;
    const char *sc = ds_tensor_set_meta_get(s, "deepsky.scale");
    const char *sa = ds_tensor_set_meta_get(s, "deepsky.scale_a");
    if (!sc)
        return DS_OK;   /* a plain weights file (e.g. from PyTorch): no preprocessing */
    int kind = -1;
    for (int k = 0; k < 5; k++)
        if (!strcmp(sc, scale_names[k]))
            kind = k;
    if (kind < 0)
        return dsi_fail(DS_ERR_FORMAT, "%s: unknown preprocessing '%s'", what, sc);
    ds_tensor_free(n->mean);
    ds_tensor_free(n->std);
    n->mean = n->std = NULL;
    n->scale = (ds_scale_kind)kind;
    n->scale_a = sa ? strtof(sa, NULL) : 0;
    if (kind == DS_SCALE_STANDARDIZE) {
        ds_tensor *mu = ds_tensor_set_get(s, "preprocess.mean");
        ds_tensor *sd = ds_tensor_set_get(s, "preprocess.std");
        if (!mu || !sd || mu->numel != sd->numel || mu->numel != n->input->numel / n->input->shape[0])
            return dsi_fail(DS_ERR_FORMAT, "%s: standardization statistics missing or not of the "
                            "input's size (%lld features)", what,
                            (long long)(n->input->numel / n->input->shape[0]));
        n->mean = ds_tensor_from(1, mu->shape, mu->data);
        n->std = ds_tensor_from(1, sd->shape, sd->data);
        if (!n->mean || !n->std)
            return DS_ERR_NOMEM;
    }
    return DS_OK;
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
/* Copies rows [i0, i0+b) of t (or rows idx[i0..]) into dst. */
void dsi_gather(const ds_tensor *t, const int64_t *idx, int64_t i0, int64_t b, float *dst)
{
    int64_t f = per_sample(t);
    for (int64_t k = 0; k < b; k++) {
        int64_t r = idx ? idx[i0 + k] : i0 + k;
        memcpy(dst + k * f, t->data + r * f, (size_t)f * sizeof(float));
    }
}

ds_status ds_net_predict(ds_net *n, const ds_tensor *x, int64_t batch, ds_tensor **out)
{
    *out = NULL;
    ds_status st = ds_net_check_data(n, x, "data", NULL, NULL);
    if (st)
        return st;
    int64_t N = x->shape[0];
    if (batch < 1)
        batch = 256;
    if (batch > N)
        batch = N;
    if ((st = ds_graph_set_batch(n->g, batch)) || (st = ds_graph_plan(n->g)))
        return st;
    ds_node *o = n->output;
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, o->shape, sizeof shape);
    shape[0] = N;
    ds_tensor *y = ds_tensor_create(o->ndim, shape);
    if (!y)
        return DS_ERR_NOMEM;
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, mode & DS_DROPOUT_ON ? DS_MODE_MC_DROPOUT : DS_MODE_EVAL);
    int64_t fo = o->numel / o->shape[0];
    for (int64_t i = 0; i < N && !st; i += batch) {
        int64_t b = N - i < batch ? N - i : batch;
        if (b != ds_graph_batch(n->g) && ((st = ds_graph_set_batch(n->g, b)) || (st = ds_graph_plan(n->g))))
            break;
        dsi_gather(x, NULL, i, b, n->input->data);
        if (n->target)   /* the loss may come before the output (gaussian_nll's concat) */
            memset(n->target->data, 0, (size_t)n->target->numel * sizeof(float));
        if ((st = ds_graph_forward_to(n->g, n->output)))
            break;
        memcpy(y->data + i * fo, o->data, (size_t)(b * fo) * sizeof(float));
    }
    ds_graph_set_mode(n->g, mode);
    if (st) {
        ds_tensor_free(y);
        return st;
    }
    *out = y;
    return DS_OK;
}

/* Running metric of a batch: correct predictions (classifiers) or squared error sum. */
void dsi_net_batch_metric(const ds_net *n, int64_t b, double *num, double *den)
{
    const ds_node *o = n->output, *t = n->target;
    if (!t)
        return;
    const float *p = o->data, *y = t->data;
    if (n->target_loss == DSI_LOSS_CCE) {
        int64_t K = o->shape[1], inner = o->numel / (o->shape[0] * K);
        for (int64_t i = 0; i < b; i++)
            for (int64_t s = 0; s < inner; s++) {
                int64_t best = 0, lab = 0;
                for (int64_t k = 1; k < K; k++)
                    if (p[(i * K + k) * inner + s] > p[(i * K + best) * inner + s])
                        best = k;
                if (n->labels == DS_LABELS_INDEX) {
                    lab = (int64_t)y[i * inner + s];
                } else {
                    for (int64_t k = 1; k < K; k++)
                        if (y[(i * K + k) * inner + s] > y[(i * K + lab) * inner + s])
                            lab = k;
                }
                *num += best == lab;
                *den += 1;
            }
    } else if (n->target_loss == DSI_LOSS_BCE) {
        for (int64_t i = 0; i < o->numel / o->shape[0] * b; i++) {
            *num += (p[i] > (n->output_logits ? 0.0f : 0.5f)) == (y[i] > 0.5f);
            *den += 1;
        }
    } else if (n->target_loss == DSI_LOSS_MSE || n->target_loss == DSI_LOSS_MAE) {
        for (int64_t i = 0; i < o->numel / o->shape[0] * b; i++) {
            double d = (double)p[i] - y[i];
            *num += d * d;
            *den += 1;
        }
    }
}

double dsi_net_metric_value(const ds_net *n, double num, double den)
{
    if (den <= 0)
        return NAN;
    if (n->target_loss == DSI_LOSS_MSE || n->target_loss == DSI_LOSS_MAE)
        return sqrt(num / den);
    return num / den;
}

const char *dsi_net_metric_name(const ds_net *n)
{
    if (n->target_loss == DSI_LOSS_CCE || n->target_loss == DSI_LOSS_BCE)
        return "acc";
    if (n->target_loss == DSI_LOSS_MSE || n->target_loss == DSI_LOSS_MAE)
        return "rmse";
    return NULL;
}

/* Loss and metric over a data set in inference mode (the graph's mode is restored). */
ds_status dsi_net_evaluate_set(ds_net *n, const ds_tensor *x, const ds_tensor *y, int64_t batch,
                              double *loss, double *metric)
{
    int64_t N = x->shape[0];
    ds_status st = DS_OK;
    double sum = 0, num = 0, den = 0;
    int mode = ds_graph_mode(n->g);
    ds_graph_set_mode(n->g, DS_MODE_EVAL);
    for (int64_t i = 0; i < N && !st; i += batch) {
        int64_t b = N - i < batch ? N - i : batch;
        if ((st = ds_graph_set_batch(n->g, b)) || (st = ds_graph_plan(n->g)))
            break;
        dsi_gather(x, NULL, i, b, n->input->data);
        dsi_gather(y, NULL, i, b, n->target->data);
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

ds_status ds_net_loss_value(ds_net *n, const ds_tensor *x, const ds_tensor *y, int64_t batch,
                            double *loss)
{
    if (!n->loss)
        return dsi_fail(DS_ERR_STATE, "%s: the model has no loss line", n->path);
    ds_status st = ds_net_check_data(n, x, "data", y, "labels");
    if (st)
        return st;
    if (batch < 1)
        batch = 256;
    return dsi_net_evaluate_set(n, x, y, batch, loss, NULL);
}

/* ---- gradients of one batch ---- */
ds_status ds_net_grad(ds_net *n, const ds_tensor *x, const ds_tensor *y, int eval_bn,
                      ds_tensor_set *s)
{
    if (!n->loss)
        return dsi_fail(DS_ERR_STATE, "%s: the model has no loss line", n->path);
    if (n->target && !y)
        return dsi_fail(DS_ERR_ARG, "%s: the loss needs labels", n->path);
    ds_status st = ds_net_check_data(n, x, "data", n->target ? y : NULL, "labels");
    if (st)
        return st;
    ds_graph *g = n->g;
    if ((st = ds_node_requires_grad(n->input, 1)) || (st = ds_graph_set_batch(g, x->shape[0])) ||
        (st = ds_graph_plan(g)))
        return st;
    ds_graph_set_mode(g, eval_bn ? DS_MODE_EVAL : DS_BN_BATCH);
    memcpy(n->input->data, x->data, (size_t)x->numel * sizeof(float));
    if (n->target)
        memcpy(n->target->data, y->data, (size_t)y->numel * sizeof(float));
    ds_model_zero_grad(n->m);
    if ((st = ds_graph_forward(g)) || (st = ds_graph_backward(g, n->loss)))
        goto done;
    ds_node *o = n->output, *in = n->input;
    if ((st = ds_tensor_set_add(s, "loss", 0, NULL, n->loss->data)) ||
        (st = ds_tensor_set_add(s, "output", o->ndim, o->shape, o->data)) ||
        (st = ds_tensor_set_add(s, "input", in->ndim, in->shape, in->grad)))
        goto done;
    for (int i = 0; i < ds_model_param_count(n->m) && !st; i++) {
        ds_param *p = ds_model_param(n->m, i);
        if (ds_param_trainable(p))
            st = ds_tensor_set_add(s, ds_param_name(p), ds_param_ndim(p), ds_param_shape(p),
                                   ds_param_grad(p));
    }
done:
    ds_node_requires_grad(n->input, 0);
    ds_graph_set_mode(g, DS_MODE_EVAL);
    return st;
}
