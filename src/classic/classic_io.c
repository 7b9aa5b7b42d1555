/* classic_io.c - classic model files: safetensors holding the fitted arrays, with the
 * model's description as JSON in the metadata key "deepsky.classic" (format in
 * include/deepsky.h and README). Loading checks everything predict will read. */
#include "classic.h"

#include "../io/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define META_KEY "deepsky.classic"
static const char *const scale_words[] = {"none", "standardize", "per_image", "asinh", "divide"};

/* ---- writing ---- */

/* The stats as a JSON object of texts. */
static void put_stats(dsi_buf *b, const ds_tensor_set *s)
{
    dsi_buf_puts(b, "{");
    for (int i = 0; i < ds_tensor_set_count(s); i++)
        dsi_buf_printf(b, "%s\"%s\": \"%.9g\"", i ? ", " : "", ds_tensor_set_name(s, i),
                       (double)ds_tensor_data(ds_tensor_set_at(s, i))[0]);
    dsi_buf_puts(b, "}");
}

/* The description of m as JSON; its texts (names, validated values) need no escapes. */
static void describe(const ds_classic *m, dsi_buf *b)
{
    const dsi_classic_method *me = m->method;
    dsi_buf_printf(b, "{\"format\": %d, \"method\": \"%s\", \"task\": \"%s\", \"params\": {",
                   DSI_CLASSIC_FORMAT, me->name, ds_classic_task_name(m->task));
    for (int i = 0; i < me->n_params; i++)
        dsi_buf_printf(b, "%s\"%s\": \"%s\"", i ? ", " : "", me->params[i].name, m->values[i]);
    dsi_buf_printf(b, "}, \"features\": \"%s\", \"input\": [", m->features);
    for (int i = 0; i < m->in_ndim; i++)
        dsi_buf_printf(b, "%s%lld", i ? ", " : "", (long long)m->in_shape[i]);
    dsi_buf_printf(b, "], \"features_out\": %lld, \"scale\": \"%s\", \"scale_a\": \"%.9g\", "
                   "\"transform\": \"", (long long)m->features_out, scale_words[m->scale],
                   (double)m->scale_a);
    if (m->transform)
        dsi_buf_printf(b, "pca:%s", ds_classic_get(m->transform, "components"));
    dsi_buf_printf(b, "\", \"features_in\": %lld, \"classes\": %lld, \"outputs\": %lld, "
                   "\"stats\": ", (long long)m->features_in, (long long)m->classes,
                   (long long)m->outputs);
    put_stats(b, m->stats);
    dsi_buf_puts(b, "}");
}

static ds_status add_all(ds_tensor_set *out, const char *prefix, const ds_tensor_set *s)
{
    ds_status st = DS_OK;
    for (int i = 0; i < ds_tensor_set_count(s) && !st; i++) {
        char name[128];
        const ds_tensor *t = ds_tensor_set_at(s, i);
        snprintf(name, sizeof name, "%s%s", prefix, ds_tensor_set_name(s, i));
        st = ds_tensor_set_add(out, name, t->ndim, t->shape, t->data);
    }
    return st;
}

/* The file's tensors and metadata. */
static ds_status to_set(const ds_classic *m, ds_tensor_set **out)
{
    ds_tensor_set *s = ds_tensor_set_create();
    dsi_buf b = {0};
    ds_status st = s ? add_all(s, "model.", m->arrays) : DS_ERR_NOMEM;
    if (!st && m->mean)
        st = ds_tensor_set_add(s, "scale.mean", 1, m->mean->shape, m->mean->data);
    if (!st && m->std)
        st = ds_tensor_set_add(s, "scale.std", 1, m->std->shape, m->std->data);
    if (!st && m->transform)
        st = add_all(s, "transform.", m->transform->arrays);
    describe(m, &b);
    if (!st && b.oom)
        st = DS_ERR_NOMEM;
    if (!st)
        st = ds_tensor_set_meta_set(s, META_KEY, b.p);
    free(b.p);
    if (st) {
        ds_tensor_set_free(s);
        return st == DS_ERR_NOMEM ? dsi_fail(st, "out of memory for a classic model file") : st;
    }
    *out = s;
    return DS_OK;
}

ds_status ds_classic_save(const ds_classic *m, const char *path)
{
    if (!m->fitted)
        return dsi_fail(DS_ERR_STATE, "%s: classic %s: the model is not fitted", path,
                        m->method->name);
    ds_tensor_set *s = NULL;
    ds_status st = to_set(m, &s);
    if (!st)
        st = ds_safetensors_save(s, path);
    ds_tensor_set_free(s);
    return st;
}

/* ---- reading ---- */

static ds_status bad(const char *file, const char *what)
{
    return dsi_fail(DS_ERR_FORMAT, "%s: classic model header (metadata '%s'): %s", file,
                    META_KEY, what);
}

static const char *jstr(const dsi_json *o, const char *key)
{
    const dsi_json *v = dsi_json_get(o, key);
    return v && v->type == DSI_JSON_STR ? v->s : NULL;
}

static bool jint(const dsi_json *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const dsi_json *v = dsi_json_get(o, key);
    if (!v || v->type != DSI_JSON_INT || v->i < lo || v->i > hi)
        return false;
    *out = v->i;
    return true;
}

static ds_status read_params(ds_classic *m, const dsi_json *p, const char *file)
{
    if (!p || p->type != DSI_JSON_OBJ)
        return bad(file, "no \"params\" object");
    for (int i = 0; i < p->n; i++) {
        if (p->items[i].type != DSI_JSON_STR)
            return bad(file, "a parameter's value is not a string");
        if (ds_classic_set(m, p->keys[i], p->items[i].s))
            return dsi_fail(DS_ERR_FORMAT, "%s: %s", file, ds_last_error());
    }
    return DS_OK;
}

static ds_status read_stats(ds_classic *m, const dsi_json *s, const char *file)
{
    if (!s || s->type != DSI_JSON_OBJ)
        return bad(file, "no \"stats\" object");
    for (int i = 0; i < s->n; i++) {
        char *end;
        double v = s->items[i].type == DSI_JSON_STR ? strtod(s->items[i].s, &end) : 0;
        if (s->items[i].type != DSI_JSON_STR || end == s->items[i].s || *end ||
            strlen(s->keys[i]) >= DS_NAME_MAX || !*s->keys[i])
            return bad(file, "a statistic is not a number in a string");
        if (dsi_classic_stat(m, s->keys[i], v))
            return dsi_last_status();
    }
    return DS_OK;
}

/* The task, the sample shape, features and scaling of the header. */
static ds_status read_shape(ds_classic *m, const dsi_json *h, const char *file)
{
    const char *task = jstr(h, "task"), *feat = jstr(h, "features"), *scale = jstr(h, "scale");
    const char *sa = jstr(h, "scale_a");
    const dsi_json *in = dsi_json_get(h, "input");
    int t = 1;
    while (task && t <= DS_CLASSIC_TRANSFORM && strcmp(task, ds_classic_task_name(t)))
        t++;
    if (!task || t > DS_CLASSIC_TRANSFORM || !(m->method->tasks & DSI_TASK(t)))
        return bad(file, "\"task\" is not one the method does");
    m->task = (ds_classic_task)t;
    if (!feat || ds_classic_set_features(m, feat))
        return bad(file, "\"features\" are not pixels, moments, hog:O:C:B or \"\"");
    if (!in || in->type != DSI_JSON_ARR || in->n > DS_MAX_DIMS - 1)
        return bad(file, "\"input\" is not the sample shape");
    int64_t per = 1;
    for (int i = 0; i < in->n; i++) {
        if (in->items[i].type != DSI_JSON_INT || in->items[i].i < 1 ||
            in->items[i].i > (1 << 24) || (per *= in->items[i].i) > (1 << 26))
            return bad(file, "\"input\" is not the sample shape (sizes 1 and more, 2^26 "
                       "values at most)");
        m->in_shape[i] = in->items[i].i;
    }
    m->in_ndim = in->n;
    int k = 0;
    while (scale && k < 5 && strcmp(scale, scale_words[k]))
        k++;
    char *end = NULL;
    double a = sa ? strtod(sa, &end) : 0;
    if (!scale || k == 5 || !sa || end == sa || *end ||
        ds_classic_set_scaling(m, (ds_scale_kind)k, (float)a))
        return bad(file, "\"scale\" or \"scale_a\" is not a scaling");
    return DS_OK;
}

/* The arrays of the set under prefix into m->arrays; every value must be finite. */
static ds_status take_arrays(ds_classic *m, const ds_tensor_set *s, const char *prefix,
                             const char *file)
{
    size_t len = strlen(prefix);
    for (int i = 0; i < ds_tensor_set_count(s); i++) {
        const char *name = ds_tensor_set_name(s, i);
        const ds_tensor *t = ds_tensor_set_at(s, i);
        if (strncmp(name, prefix, len))
            continue;
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k]))
                return dsi_fail(DS_ERR_FORMAT, "%s: classic model: array '%s' holds %g at %lld",
                                file, name, t->data[k], (long long)k);
        ds_status st = dsi_classic_put(m, name + len, t->ndim, t->shape, t->data);
        if (st)
            return st;
    }
    return DS_OK;
}

/* Scaling statistics: [features_out] each, finite, std > 0. */
static ds_status read_scaling(ds_classic *m, const ds_tensor_set *s, const char *file)
{
    if (m->scale != DS_SCALE_STANDARDIZE)
        return DS_OK;
    const ds_tensor *mu = ds_tensor_set_get(s, "scale.mean"), *sd = ds_tensor_set_get(s,
                                                                                 "scale.std");
    if (!mu || !sd || mu->ndim != 1 || sd->ndim != 1 || mu->shape[0] != m->features_out ||
        sd->shape[0] != m->features_out)
        return dsi_fail(DS_ERR_FORMAT, "%s: classic model: standardize needs scale.mean and "
                        "scale.std of %lld values each", file, (long long)m->features_out);
    for (int64_t j = 0; j < m->features_out; j++)
        if (!isfinite(mu->data[j]) || !(sd->data[j] > 0) || !isfinite(sd->data[j]))
            return dsi_fail(DS_ERR_FORMAT, "%s: classic model: scale.std[%lld] is not a "
                            "positive number (or scale.mean not finite)", file, (long long)j);
    m->mean = ds_tensor_from(1, mu->shape, mu->data);
    m->std = ds_tensor_from(1, sd->shape, sd->data);
    return m->mean && m->std ? DS_OK : dsi_last_status();
}

/* The PCA transform ("pca:K" with arrays "transform.*"), fitted on features_out values. */
static ds_status read_transform(ds_classic *m, const char *tr, const ds_tensor_set *s,
                                const char *file)
{
    if (!tr)
        return bad(file, "no \"transform\"");
    if (!*tr)
        return DS_OK;
    if (!strcmp(m->method->name, "pca") || ds_classic_set_transform(m, tr))
        return bad(file, "\"transform\" is not pca:K (for a method other than pca)");
    ds_classic *t = m->transform;
    t->task = DS_CLASSIC_TRANSFORM;
    t->in_ndim = 1;
    t->in_shape[0] = t->features_out = t->features_in = m->features_out;
    ds_status st = take_arrays(t, s, "transform.", file);
    if (!st)
        st = t->method->check(t, file);
    t->fitted = !st;
    return st;
}

/* Everything predict reads, from the header h and the set s. */
static ds_status from_header(const dsi_json *h, const ds_tensor_set *s, const char *file,
                             const char *want, ds_classic **out)
{
    int64_t format;
    const char *method = jstr(h, "method");
    if (!jint(h, "format", 0, INT32_MAX, &format) || !method)
        return bad(file, "no \"format\" or \"method\"");
    if (format > DSI_CLASSIC_FORMAT)
        return dsi_fail(DS_ERR_FORMAT, "%s: classic model format %lld is newer than supported "
                        "%d", file, (long long)format, DSI_CLASSIC_FORMAT);
    if (want && strcmp(want, method))
        return dsi_fail(DS_ERR_ARG, "%s: a model of method '%s', not '%s'", file, method, want);
    ds_classic *m;
    ds_status st = ds_classic_create(method, &m);
    if (st)
        return dsi_fail(DS_ERR_FORMAT, "%s: %s", file, ds_last_error());
    if (!(st = read_params(m, dsi_json_get(h, "params"), file)) &&
        !(st = read_stats(m, dsi_json_get(h, "stats"), file)) &&
        !(st = read_shape(m, h, file))) {
        int64_t want_out = 0;
        if (!jint(h, "features_out", 1, 1 << 26, &m->features_out) ||
            !jint(h, "features_in", 1, 1 << 26, &m->features_in) ||
            !jint(h, "classes", 0, 1 << 16, &m->classes) ||
            !jint(h, "outputs", 0, 1 << 16, &m->outputs))
            st = bad(file, "\"features_out\", \"features_in\", \"classes\" or \"outputs\" "
                     "missing or out of range");
        else if (!(want_out = dsi_classic_features_size(m)) || want_out != m->features_out)
            st = bad(file, "\"features_out\" does not match the features of \"input\"");
        else if ((m->task == DS_CLASSIC_CLASSIFY) != (m->classes > 0) ||
                 (m->task == DS_CLASSIC_REGRESS) != (m->outputs > 0))
            st = bad(file, "\"classes\" or \"outputs\" do not fit the task");
    }
    if (!st)
        st = read_scaling(m, s, file);
    if (!st)
        st = read_transform(m, jstr(h, "transform"), s, file);
    if (!st && (m->transform ? m->transform->method->width(m->transform)
                             : m->features_out) != m->features_in)
        st = bad(file, "\"features_in\" is not what the scaling and transform give");
    if (!st)
        st = take_arrays(m, s, "model.", file);
    if (!st)
        st = m->method->check(m, file);
    m->fitted = !st;
    if (st) {
        ds_classic_free(m);
        return st;
    }
    *out = m;
    return DS_OK;
}

static ds_status from_set(const ds_tensor_set *s, const char *file, const char *want,
                          ds_classic **out)
{
    const char *text = ds_tensor_set_meta_get(s, META_KEY);
    if (!text)
        return dsi_fail(DS_ERR_FORMAT, "%s: not a classic model file: its safetensors metadata "
                        "have no '%s' (a network's weights go to eval and predict)", file,
                        META_KEY);
    char err[160];
    dsi_json *h = dsi_json_parse(text, strlen(text), err, sizeof err);
    if (!h)
        return !strncmp(err, DSI_JSON_OOM, strlen(DSI_JSON_OOM))
                   ? dsi_fail(DS_ERR_NOMEM, "%s: %s", file, err)
                   : dsi_fail(DS_ERR_FORMAT, "%s: classic model header: %s", file, err);
    ds_status st = h->type == DSI_JSON_OBJ ? from_header(h, s, file, want, out)
                                           : bad(file, "not a JSON object");
    dsi_json_free(h);
    return st;
}

ds_status ds_classic_load(const char *path, const char *method, ds_classic **out)
{
    *out = NULL;
    ds_tensor_set *s;
    ds_status st = ds_safetensors_load(path, &s);
    if (st)
        return st;
    st = from_set(s, path, method, out);
    ds_tensor_set_free(s);
    return st;
}

ds_status ds_classic_load_mem(const void *buf, size_t len, const char *name, const char *method,
                              ds_classic **out)
{
    *out = NULL;
    ds_tensor_set *s;
    if (!name)
        name = "<memory>";
    ds_status st = ds_safetensors_load_mem(buf, len, name, &s);
    if (st)
        return st;
    st = from_set(s, name, method, out);
    ds_tensor_set_free(s);
    return st;
}
