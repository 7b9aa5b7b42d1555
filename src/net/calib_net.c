/* calib_net.c - calibration on nets: what a target predicts as calibration arrays, and the
 * classifiers' temperatures (set, stored with the weights, applied by predict). */
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T_MIN 0.01
#define T_MAX 100.0
#define KEY "calib.temperature."

static bool is_classifier(const dsi_net_target *t)
{
    return t->kind == DSI_LOSS_BCE || t->kind == DSI_LOSS_CCE;
}

/* ---- temperatures ---- */
double ds_net_temperature(const ds_net *n, int target)
{
    if (!n || target < 0 || target >= n->n_targets || !(n->targets[target].temperature > 0))
        return 1;
    return n->targets[target].temperature;
}

ds_status ds_net_set_temperature(ds_net *n, int target, double temperature)
{
    if (!n || target < 0 || target >= n->n_targets)
        return dsi_fail(DS_ERR_ARG, "ds_net_set_temperature: no target %d (the net has %d)",
                        target, n ? n->n_targets : 0);
    dsi_net_target *t = &n->targets[target];
    if (!is_classifier(t))
        return dsi_fail(DS_ERR_ARG, "target '%s' is not a classifier's (categorical or binary "
                        "cross-entropy): a temperature calibrates class probabilities", t->name);
    if (!(temperature >= T_MIN && temperature <= T_MAX))
        return dsi_fail(DS_ERR_ARG, "target '%s': temperature %g is outside [%g, %g]", t->name,
                        temperature, T_MIN, T_MAX);
    t->temperature = temperature;
    return DS_OK;
}

ds_status dsi_calib_from_set(const ds_net *n, const ds_tensor_set *s, const char *what,
                             double *temps)
{
    for (int i = 0; i < n->n_targets; i++) {
        char key[DS_NAME_MAX + 32];
        snprintf(key, sizeof key, KEY "%s", n->targets[i].name);
        const char *v = ds_tensor_set_meta_get(s, key);
        temps[i] = 0;
        if (!v || !is_classifier(&n->targets[i]))
            continue;
        char *end;
        double x = strtod(v, &end);
        if (end == v || *end || !(x >= T_MIN && x <= T_MAX))
            return dsi_fail(DS_ERR_FORMAT, "%s: metadata %s is '%s': not a temperature in "
                            "[%g, %g]", what, key, v, T_MIN, T_MAX);
        temps[i] = x == 1 ? 0 : x;
    }
    return DS_OK;
}

ds_status dsi_calib_to_set(const ds_net *n, ds_tensor_set *s, bool all)
{
    ds_status st = DS_OK;
    for (int i = 0; i < n->n_targets && !st; i++) {
        double T = ds_net_temperature(n, i);
        if (!is_classifier(&n->targets[i]) || (T == 1 && !all))
            continue;
        char key[DS_NAME_MAX + 32], val[40];
        snprintf(key, sizeof key, KEY "%s", n->targets[i].name);
        snprintf(val, sizeof val, "%.9g", T);
        st = ds_tensor_set_meta_set(s, key, val);
    }
    return st;
}

ds_status ds_net_save_temperatures(const ds_net *n, const char *from, const char *to)
{
    if (!n || !from || !to)
        return dsi_fail(DS_ERR_ARG, "ds_net_save_temperatures: a NULL argument");
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load(from, &s);
    if (!st)
        st = dsi_calib_to_set(n, s, true);
    if (!st)
        st = ds_safetensors_save(s, to);
    ds_tensor_set_free(s);
    return st;
}

/* p [N, K, inner...] calibrated in place: logits / T, or probabilities p^(1/T) renormalized
 * over axis 1 (binary, K = 1: against 1 - p). */
static void apply_temperature(ds_tensor *p, bool logits, bool binary, double T)
{
    if (logits) {
        for (int64_t i = 0; i < p->numel; i++)
            p->data[i] = (float)(p->data[i] / T);
        return;
    }
    if (binary) {
        for (int64_t i = 0; i < p->numel; i++) {
            double a = pow(p->data[i], 1 / T), b = pow(1.0 - p->data[i], 1 / T);
            p->data[i] = (float)(a / (a + b));
        }
        return;
    }
    int64_t N = p->shape[0], K = p->shape[1], inner = p->numel / (N * K);
    for (int64_t i = 0; i < N; i++)
        for (int64_t s = 0; s < inner; s++) {
            float *row = p->data + i * K * inner + s;
            double sum = 0;
            for (int64_t k = 0; k < K; k++)
                sum += pow(row[k * inner], 1 / T);
            for (int64_t k = 0; k < K; k++)
                row[k * inner] = (float)(pow(row[k * inner], 1 / T) / sum);
        }
}

void dsi_calib_apply(const ds_net *n, ds_tensor **out)
{
    for (int k = 0; k < n->n_outputs; k++)
        for (int i = 0; i < n->n_targets; i++) {
            const dsi_net_target *t = &n->targets[i];
            double T = ds_net_temperature(n, i);
            if (out[k] && is_classifier(t) && t->pred == n->outputs[k].node && T != 1)
                apply_temperature(out[k], t->output_logits, t->kind == DSI_LOSS_BCE, T);
        }
}

/* Logits (from_logits=true) of each classifier output into probabilities, in place. */
void dsi_calib_to_probs(const ds_net *n, ds_tensor **out)
{
    for (int k = 0; k < n->n_outputs; k++) {
        const dsi_net_target *t = dsi_output_classifier(n, k);
        ds_tensor *p = out[k];
        if (!p || !t || !t->output_logits)
            continue;
        if (t->kind == DSI_LOSS_BCE) {
            for (int64_t i = 0; i < p->numel; i++)
                p->data[i] = (float)(1 / (1 + exp(-(double)p->data[i])));
            continue;
        }
        int64_t N = p->shape[0], K = p->ndim > 1 ? p->shape[1] : 1, inner = p->numel / (N * K);
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < inner; s++) {
                float *row = p->data + i * K * inner + s;
                double top = row[0], sum = 0;
                for (int64_t c = 1; c < K; c++)
                    top = fmax(top, row[c * inner]);
                for (int64_t c = 0; c < K; c++)
                    sum += exp(row[c * inner] - top);
                for (int64_t c = 0; c < K; c++)
                    row[c * inner] = (float)(exp(row[c * inner] - top) / sum);
            }
    }
}

/* ---- a target's predictions as calibration arrays ---- */
void ds_target_values_free(ds_target_values *v)
{
    if (!v)
        return;
    ds_tensor_free(v->pred);
    ds_tensor_free(v->std);
    ds_tensor_free(v->truth);
    ds_tensor_free(v->std_aleatoric);
    memset(v, 0, sizeof *v);
}

static ds_tensor *matrix(int64_t rows, int64_t width)
{
    return width ? ds_tensor_create(2, (int64_t[]){rows, width}) : ds_tensor_create(1, &rows);
}

/* Categorical: p [N, K, inner] -> rows [N inner, K], labels (indices or one-hot rows). */
static ds_status classifier_values(const dsi_net_target *t, const ds_tensor *p,
                                   const ds_tensor *y, ds_target_values *v)
{
    bool binary = t->kind == DSI_LOSS_BCE;
    int64_t N = p->shape[0], K = binary ? 1 : p->shape[1], inner = p->numel / (N * K);
    v->kind = DS_TARGET_CLASSIFIER;
    v->rows = N * inner;
    v->width = K;
    v->score_kind = t->output_logits ? DS_SCORES_LOGITS : DS_SCORES_PROBS;
    v->pred = matrix(v->rows, K);
    v->truth = matrix(v->rows, 0);
    if (!v->pred || !v->truth)
        return DS_ERR_NOMEM;   /* with ds_tensor_create's message */
    bool index = binary || y->numel == N * inner;   /* class indices, else one-hot rows */
    for (int64_t i = 0; i < N; i++)
        for (int64_t s = 0; s < inner; s++) {
            int64_t r = i * inner + s, best = 0;
            for (int64_t k = 0; k < K; k++)
                v->pred->data[r * K + k] = p->data[(i * K + k) * inner + s];
            for (int64_t k = 1; !index && k < K; k++)
                if (y->data[(i * K + k) * inner + s] > y->data[(i * K + best) * inner + s])
                    best = k;
            float yv = y->data[r];
            v->truth->data[r] = binary ? (float)(yv > 0.5f) : index ? yv : (float)best;
        }
    return DS_OK;
}

/* gaussian_nll: p = [mean, std] concatenated on axis 1 ([N, 2C, inner]), as the model file's
 * builder makes the target's prediction. */
static ds_status gaussian_values(const dsi_net_target *t, const ds_tensor *p,
                                 const ds_tensor *y, ds_target_values *v)
{
    int64_t N = p->shape[0];
    if (p->ndim < 2 || p->shape[1] % 2 || p->numel != 2 * y->numel)
        return dsi_fail(DS_ERR_SHAPE, "target '%s': prediction %s is not the mean and "
                        "standard deviation of labels %s side by side", t->name,
                        dsi_shape_str(p->ndim, p->shape), dsi_shape_str(y->ndim, y->shape));
    int64_t C = p->shape[1] / 2, inner = p->numel / (N * 2 * C), F = C * inner;
    v->kind = DS_TARGET_GAUSSIAN;
    v->rows = N;
    v->width = F;
    v->pred = matrix(N, F);
    v->std = matrix(N, F);
    v->truth = matrix(N, F);
    if (!v->pred || !v->std || !v->truth)
        return DS_ERR_NOMEM;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < F; j++) {
            int64_t c = j / inner, s = j % inner;
            v->pred->data[i * F + j] = p->data[(i * 2 * C + c) * inner + s];
            v->std->data[i * F + j] = p->data[(i * 2 * C + C + c) * inner + s];
        }
    memcpy(v->truth->data, y->data, (size_t)y->numel * sizeof(float));
    return DS_OK;
}

static ds_status point_values(const dsi_net_target *t, const ds_tensor *p, const ds_tensor *y,
                              ds_target_values *v)
{
    int64_t N = p->shape[0], F = p->numel / N;
    if (y->numel != p->numel)
        return dsi_fail(DS_ERR_SHAPE, "target '%s': prediction %s and labels %s differ in size",
                        t->name, dsi_shape_str(p->ndim, p->shape),
                        dsi_shape_str(y->ndim, y->shape));
    v->kind = DS_TARGET_POINT;
    v->rows = N;
    v->width = F;
    v->pred = ds_tensor_from(2, (int64_t[]){N, F}, p->data);
    v->truth = ds_tensor_from(2, (int64_t[]){N, F}, y->data);
    return v->pred && v->truth ? DS_OK : DS_ERR_NOMEM;
}

ds_status ds_net_target_values(ds_net *n, const ds_feed *f, int64_t batch, int target,
                               ds_target_values *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_net_target_values: out is NULL");
    memset(out, 0, sizeof *out);
    if (!n || !f || target < 0 || target >= n->n_targets)
        return dsi_fail(DS_ERR_ARG, "ds_net_target_values: no target %d (the net has %d)",
                        target, n ? n->n_targets : 0);
    const dsi_net_target *t = &n->targets[target];
    dsi_bound d;
    ds_status st = ds_net_check_feed(n, f);
    if (st || (st = dsi_feed_bind(n, f, &d)))
        return st;
    if (!d.y[target])
        return dsi_fail(DS_ERR_ARG, "target '%s': the feed has no labels for it", t->name);
    ds_tensor *p = NULL;
    ds_node *node = t->pred;
    if ((st = dsi_net_collect(n, &d, batch, 1, &node, &p)))
        return st;
    if (is_classifier(t))
        st = classifier_values(t, p, d.y[target], out);
    else if (t->kind == DSI_LOSS_GAUSS_NLL)
        st = gaussian_values(t, p, d.y[target], out);
    else
        st = point_values(t, p, d.y[target], out);
    out->temperature = ds_net_temperature(n, target);
    ds_tensor_free(p);
    if (st)
        ds_target_values_free(out);
    return st;
}

/* A pooled tensor [N, ...] as a [N, F] matrix (a copy). */
static ds_tensor *as_matrix(const ds_tensor *t)
{
    int64_t N = t->shape[0];
    return ds_tensor_from(2, (int64_t[]){N, N ? t->numel / N : 0}, t->data);
}

ds_status ds_net_target_values_pooled(ds_net *n, const ds_feed *f, int target,
                                      const ds_uq_output *pooled, ds_target_values *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_net_target_values_pooled: out is NULL");
    memset(out, 0, sizeof *out);
    if (!n || !f || !pooled || target < 0 || target >= n->n_targets)
        return dsi_fail(DS_ERR_ARG, "ds_net_target_values_pooled: no net, feed or pooled "
                        "outputs, or no target %d (the net has %d)", target, n ? n->n_targets : 0);
    const dsi_net_target *t = &n->targets[target];
    int k = 0;
    while (k < n->n_outputs && n->outputs[k].node != t->pred)
        k++;
    if (k == n->n_outputs)
        return dsi_fail(DS_ERR_ARG, "target '%s': its prediction is not one of the model's "
                        "outputs, so no draws of it were pooled (name it in an output line, or "
                        "drop the output lines)", t->name);
    const ds_uq_output *u = &pooled[k];
    dsi_bound d;
    ds_status st = ds_net_check_feed(n, f);
    if (st || (st = dsi_feed_bind(n, f, &d)))
        return st;
    const ds_tensor *y = d.y[target];
    if (!y)
        return dsi_fail(DS_ERR_ARG, "target '%s': the feed has no labels for it", t->name);
    if (!u->mean || !u->std)
        return dsi_fail(DS_ERR_ARG, "target '%s': output '%s' was not pooled", t->name,
                        n->outputs[k].name);
    if (is_classifier(t)) {
        if (t->output_logits && !u->classes)
            return dsi_fail(DS_ERR_ARG, "target '%s': its output holds logits: pool the draws "
                            "as probabilities (ds_uq_opts.probs)", t->name);
        st = classifier_values(t, u->mean, y, out);
        out->score_kind = DS_SCORES_PROBS;
    } else if (u->mean->numel != y->numel) {
        st = dsi_fail(DS_ERR_SHAPE, "target '%s': pooled mean %s and labels %s differ in size",
                      t->name, dsi_shape_str(u->mean->ndim, u->mean->shape),
                      dsi_shape_str(y->ndim, y->shape));
    } else {
        out->kind = DS_TARGET_GAUSSIAN;
        out->rows = u->mean->shape[0];
        out->width = out->rows ? u->mean->numel / out->rows : 0;
        out->pred = as_matrix(u->mean);
        out->std = as_matrix(u->std);
        out->truth = ds_tensor_from(2, (int64_t[]){out->rows, out->width}, y->data);
        if (u->std_aleatoric)
            out->std_aleatoric = as_matrix(u->std_aleatoric);
        if (!out->pred || !out->std || !out->truth || (u->std_aleatoric && !out->std_aleatoric))
            st = DS_ERR_NOMEM;
    }
    out->temperature = 1;   /* a stored temperature calibrated every draw */
    if (st)
        ds_target_values_free(out);
    return st;
}
