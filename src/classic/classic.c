/* classic.c - classic models: the method table, hyperparameters, the input's preparation
 * (features, scaling, a PCA transform), labels and tasks, fit, predict and evaluate. */
#include "classic.h"

#include "../net/net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The methods, in the order --help lists them. */
static const dsi_classic_method *const methods[] = {
    &dsi_classic_logistic, &dsi_classic_linear, &dsi_classic_knn, &dsi_classic_forest,
    &dsi_classic_boost, &dsi_classic_svm, &dsi_classic_kmeans, &dsi_classic_pca,
};
#define N_METHODS (int)(sizeof methods / sizeof methods[0])

static const char *const task_names[] = {"auto", "classify", "regress", "cluster", "transform"};

const char *ds_classic_task_name(ds_classic_task t)
{
    return (unsigned)t < sizeof task_names / sizeof *task_names ? task_names[t] : "?";
}

const char *ds_classic_method_name(int i)
{
    return i >= 0 && i < N_METHODS ? methods[i]->name : NULL;
}

const char *ds_classic_method_about(int i)
{
    return i >= 0 && i < N_METHODS ? methods[i]->about : NULL;
}

static const dsi_classic_method *find_method(const char *name)
{
    for (int i = 0; name && i < N_METHODS; i++)
        if (!strcmp(methods[i]->name, name))
            return methods[i];
    return NULL;
}

static const dsi_classic_param *param_at(const char *method, int i)
{
    const dsi_classic_method *me = find_method(method);
    return me && i >= 0 && i < me->n_params ? &me->params[i] : NULL;
}

const char *ds_classic_param_name(const char *method, int i)
{
    const dsi_classic_param *p = param_at(method, i);
    return p ? p->name : NULL;
}

const char *ds_classic_param_default(const char *method, int i)
{
    const dsi_classic_param *p = param_at(method, i);
    return p ? p->dflt : NULL;
}

const char *ds_classic_param_help(const char *method, int i)
{
    const dsi_classic_param *p = param_at(method, i);
    return p ? p->help : NULL;
}

static void method_list(char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < N_METHODS; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "", methods[i]->name);
}

static int param_index(const dsi_classic_method *me, const char *key)
{
    for (int i = 0; key && i < me->n_params; i++)
        if (!strcmp(me->params[i].name, key))
            return i;
    return -1;
}

/* value as the parameter's number (or word index) into *v. */
static ds_status parse_param(const dsi_classic_method *me, const dsi_classic_param *p,
                             const char *value, double *v)
{
    if (p->words) {
        const char *w = p->words;
        for (int k = 0; *w; k++) {
            size_t len = strcspn(w, "|");
            if (strlen(value) == len && !strncmp(w, value, len)) {
                *v = k;
                return DS_OK;
            }
            w += len + (w[len] == '|');
        }
        return dsi_fail(DS_ERR_ARG, "%s: %s '%s' is not one of %s", me->name, p->name, value,
                        p->words);
    }
    char *end;
    double x = strtod(value, &end);
    if (end == value || *end || !isfinite(x) || x < p->lo || x > p->hi ||
        (p->integer && x != floor(x)))
        return dsi_fail(DS_ERR_ARG, "%s: %s '%s' is not %s in [%g, %g]", me->name, p->name,
                        value, p->integer ? "an integer" : "a number", p->lo, p->hi);
    *v = x;
    return DS_OK;
}

ds_status ds_classic_create(const char *method, ds_classic **out)
{
    *out = NULL;
    const dsi_classic_method *me = find_method(method);
    if (!me) {
        char list[256];
        method_list(list, sizeof list);
        return dsi_fail(DS_ERR_ARG, "unknown classic method '%s' (methods: %s)",
                        method ? method : "(none)", list);
    }
    ds_classic *m = calloc(1, sizeof *m);
    if (!m || !(m->arrays = ds_tensor_set_create()) || !(m->stats = ds_tensor_set_create())) {
        ds_classic_free(m);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a classic model");
    }
    m->method = me;
    DS_ASSERT(me->n_params <= DSI_CLASSIC_PARAMS);
    for (int i = 0; i < me->n_params; i++) {
        snprintf(m->values[i], DSI_CLASSIC_TEXT, "%s", me->params[i].dflt);
        ds_status st = parse_param(me, &me->params[i], me->params[i].dflt, &m->num[i]);
        DS_ASSERT(st == DS_OK);
        (void)st;
    }
    m->scale_a = 1;
    *out = m;
    return DS_OK;
}

void ds_classic_free(ds_classic *m)
{
    if (!m)
        return;
    if (m->aux && m->method->free_aux)
        m->method->free_aux(m->aux);
    ds_tensor_set_free(m->arrays);
    ds_tensor_set_free(m->stats);
    ds_tensor_free(m->mean);
    ds_tensor_free(m->std);
    ds_classic_free(m->transform);
    free(m);
}

ds_status ds_classic_set(ds_classic *m, const char *key, const char *value)
{
    const dsi_classic_method *me = m->method;
    int i = param_index(me, key);
    if (i < 0) {
        char list[512] = "";
        for (int k = 0; k < me->n_params; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                     me->params[k].name);
        return dsi_fail(DS_ERR_ARG, "classic method '%s' has no option '%s' (its options: %s)",
                        me->name, key ? key : "(none)", me->n_params ? list : "none");
    }
    if (!value || strlen(value) >= DSI_CLASSIC_TEXT)
        return dsi_fail(DS_ERR_ARG, "%s: %s: no value, or a value longer than %d characters",
                        me->name, key, DSI_CLASSIC_TEXT - 1);
    double v;
    ds_status st = parse_param(me, &me->params[i], value, &v);
    if (st)
        return st;
    snprintf(m->values[i], DSI_CLASSIC_TEXT, "%s", value);
    m->num[i] = v;
    return DS_OK;
}

const char *ds_classic_get(const ds_classic *m, const char *key)
{
    int i = param_index(m->method, key);
    return i < 0 ? NULL : m->values[i];
}

double dsi_classic_num(const ds_classic *m, const char *name)
{
    int i = param_index(m->method, name);
    DS_ASSERT(i >= 0);
    return i < 0 ? NAN : m->num[i];
}

/* ---- features ---- */

/* The options of "hog[:O[:C[:B]]]" into o; false if spec is not one. */
static bool parse_hog(const char *spec, ds_hog_opts *o)
{
    *o = (ds_hog_opts){9, 8, 3};
    if (strncmp(spec, "hog", 3) || (spec[3] && spec[3] != ':'))
        return false;
    int *field[] = {&o->orientations, &o->cell, &o->block};
    const char *s = spec + 3;
    for (int k = 0; k < 3 && *s == ':'; k++) {
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (end == s + 1 || v < 1 || v > (k ? 64 : 180))
            return false;
        *field[k] = (int)v;
        s = end;
    }
    return *s == 0;
}

ds_status ds_classic_set_features(ds_classic *m, const char *features)
{
    ds_hog_opts o;
    if (!features)
        features = "";
    if (*features && strcmp(features, "pixels") && strcmp(features, "moments") &&
        strcmp(features, "cas") && !parse_hog(features, &o))
        return dsi_fail(DS_ERR_ARG, "features '%s' are not pixels, moments, cas or "
                        "hog[:ORIENTATIONS[:CELL[:BLOCK]]] (orientations 1..180, cells and "
                        "blocks 1..64)", features);
    if (strlen(features) >= DSI_CLASSIC_TEXT)
        return dsi_fail(DS_ERR_ARG, "features '%.40s...': too long", features);
    snprintf(m->features, sizeof m->features, "%s", features);
    return DS_OK;
}

ds_status ds_classic_set_scaling(ds_classic *m, ds_scale_kind kind, float a)
{
    if ((unsigned)kind > DS_SCALE_DIVIDE)
        return dsi_fail(DS_ERR_ARG, "classic: unknown scaling %d", (int)kind);
    if ((kind == DS_SCALE_ASINH || kind == DS_SCALE_DIVIDE) && !(a > 0 && isfinite(a)))
        return dsi_fail(DS_ERR_ARG, "classic: scaling needs a positive scale, got %g", a);
    m->scale = kind;
    m->scale_a = kind == DS_SCALE_ASINH || kind == DS_SCALE_DIVIDE ? a : 1;
    return DS_OK;
}

ds_status ds_classic_set_transform(ds_classic *m, const char *transform)
{
    ds_classic_free(m->transform);
    m->transform = NULL;
    if (!transform || !*transform)
        return DS_OK;
    if (strncmp(transform, "pca:", 4))
        return dsi_fail(DS_ERR_ARG, "transform '%s' is not pca:K (K components)", transform);
    ds_status st = ds_classic_create("pca", &m->transform);
    if (!st && (st = ds_classic_set(m->transform, "components", transform + 4))) {
        ds_classic_free(m->transform);
        m->transform = NULL;
        return dsi_fail(st, "transform '%s': %s", transform, ds_last_error());
    }
    return st;
}

/* Moments features of one stamp: flux, sigma, e1, e2, x0 and y0 from the centre, rho4, ok
 * (zeros and ok 0 when the measurement failed). */
#define MOMENT_FEATURES 8
static void moment_features(const float *img, int size, float *out)
{
    ds_moments mo;
    memset(out, 0, MOMENT_FEATURES * sizeof *out);
    if (ds_adaptive_moments(img, size, 0, &mo) || mo.flag)
        return;
    double c = 0.5 * (size - 1);
    double v[MOMENT_FEATURES] = {mo.flux, mo.sigma, mo.e1, mo.e2, mo.x0 - c, mo.y0 - c,
                                 mo.rho4, 1};
    for (int k = 0; k < MOMENT_FEATURES; k++)
        out[k] = isfinite(v[k]) ? (float)v[k] : 0;
}

/* CAS features of each channel of a stamp (ds_cas_measure, the sky estimated): C, A, S,
 * r_petro, ok (zeros and ok 0 when the measurement failed). */
#define CAS_FEATURES 5
static void cas_features(const float *img, int channels, int size, float *out)
{
    for (int ch = 0; ch < channels; ch++) {
        ds_cas m;
        float *o = out + ch * CAS_FEATURES;
        memset(o, 0, CAS_FEATURES * sizeof *o);
        if (ds_cas_measure(img + (size_t)ch * size * size, size, 0, &m) || !m.ok)
            continue;
        double v[CAS_FEATURES] = {m.c, m.a, m.s, m.r_petro, 1};
        for (int k = 0; k < CAS_FEATURES; k++)
            o[k] = isfinite(v[k]) ? (float)v[k] : 0;
    }
}

/* The image size of samples of shape [H, W] or [1, H, W]; false for another shape. */
static bool image_shape(int nd, const int64_t *s, int64_t *h, int64_t *w)
{
    if (nd == 3 && s[0] == 1)
        s++, nd--;
    if (nd != 2 || s[0] < 1 || s[1] < 1 || s[0] > 1 << 16 || s[1] > 1 << 16)
        return false;
    *h = s[0];
    *w = s[1];
    return true;
}

/* Values per sample of the features of samples of shape s (nd axes); 0 with a message. */
static int64_t features_size(const char *features, int nd, const int64_t *s)
{
    int64_t h, w, per = 1;
    for (int i = 0; i < nd; i++)
        per *= s[i];
    if (!*features || !strcmp(features, "pixels"))
        return per;
    char shape[96];
    ds_shape_str(nd, s, shape, sizeof shape);
    if (!strcmp(features, "cas")) {   /* [H, W] or [C, H, W], square, 8 pixels or more */
        bool ok = (nd == 2 || nd == 3) && s[nd - 1] == s[nd - 2] && s[nd - 1] >= 8 &&
                  s[nd - 1] <= 8192 && s[0] >= 1 && s[0] <= 64;
        if (!ok)
            dsi_fail(DS_ERR_SHAPE, "features cas: samples of shape %s are not square stamps "
                     "[H, W] or [C, H, W] (C <= 64 channels, 8 to 8192 pixels a side)", shape);
        return ok ? CAS_FEATURES * (nd == 3 ? s[0] : 1) : 0;
    }
    if (!image_shape(nd, s, &h, &w)) {
        dsi_fail(DS_ERR_SHAPE, "features %s: samples of shape %s are not images [H, W] or "
                 "[1, H, W]", features, shape);
        return 0;
    }
    if (!strcmp(features, "moments")) {
        if (h != w)
            dsi_fail(DS_ERR_SHAPE, "features moments: stamps of %s are not square", shape);
        return h == w ? MOMENT_FEATURES : 0;
    }
    ds_hog_opts o;
    parse_hog(features, &o);
    int64_t n = ds_hog_size((int)h, (int)w, &o);
    if (!n)
        dsi_fail(DS_ERR_SHAPE, "features %s: images of %s hold no block of %d x %d cells of "
                 "%d pixels", features, shape, o.block, o.block, o.cell);
    return n;
}

int64_t dsi_classic_features_size(const ds_classic *m)
{
    return features_size(m->features, m->in_ndim, m->in_shape);
}

ds_status ds_classic_features(const char *features, const ds_tensor *x, ds_tensor **out)
{
    *out = NULL;
    if (!features)
        features = "";
    ds_hog_opts o;
    if (*features && strcmp(features, "pixels") && strcmp(features, "moments") &&
        strcmp(features, "cas") && !parse_hog(features, &o))
        return dsi_fail(DS_ERR_ARG, "features '%s' are not pixels, moments, cas or "
                        "hog[:O[:C[:B]]]", features);
    if (x->ndim < 1)
        return dsi_fail(DS_ERR_SHAPE, "features: data have no sample axis");
    int64_t N = x->shape[0], F = features_size(features, x->ndim - 1, x->shape + 1);
    if (!F)
        return dsi_last_status();
    int64_t shape[2] = {N, F}, h = 0, w = 0, per = N ? x->numel / N : 0;
    ds_tensor *t = ds_tensor_create(2, shape);
    if (!t)
        return dsi_last_status();
    bool pix = !*features || !strcmp(features, "pixels"), mom = !strcmp(features, "moments");
    bool cas = !strcmp(features, "cas");
    if (pix)
        memcpy(t->data, x->data, (size_t)x->numel * sizeof *t->data);
    else if (cas)
        h = x->shape[x->ndim - 1];
    else
        image_shape(x->ndim - 1, x->shape + 1, &h, &w);
#pragma omp parallel for schedule(dynamic, 16) if (!pix && N > 16)
    for (int64_t i = 0; i < N; i++) {
        if (pix)
            continue;
        if (cas)
            cas_features(x->data + i * per, (int)(per / (h * h)), (int)h, t->data + i * F);
        else if (mom)
            moment_features(x->data + i * per, (int)h, t->data + i * F);
        else
            ds_hog(x->data + i * per, (int)h, (int)w, &o, t->data + i * F);
    }
    *out = t;
    return DS_OK;
}

/* ---- preparation: features, scaling, transform ---- */

static dsi_net_input scaling_of(const ds_classic *m)
{
    dsi_net_input in = {.scale = m->scale, .scale_a = m->scale_a, .mean = m->mean,
                        .std = m->std};
    return in;
}

/* x as the method reads it: [N, features_in], a new tensor in *out. fit: the scaling
 * statistics and the transform are fitted on the way. */
static ds_status prepare(ds_classic *m, const ds_tensor *x, bool fit, uint64_t seed,
                         ds_tensor **out)
{
    *out = NULL;
    ds_status st = ds_tensor_check_finite(x, "data");
    if (st)
        return st;
    if (x->ndim < 1 || x->shape[0] < 1)
        return dsi_fail(DS_ERR_SHAPE, "classic %s: no samples in the data", m->method->name);
    if (!fit) {
        int nd = x->ndim - 1;
        int64_t per = x->numel / x->shape[0];
        bool same = nd == m->in_ndim && !memcmp(x->shape + 1, m->in_shape,
                                                (size_t)nd * sizeof *m->in_shape);
        bool table = !m->features[0] || !strcmp(m->features, "pixels");
        if (!same && !(table && per == m->features_out)) {
            char a[96], b[96];
            return dsi_fail(DS_ERR_SHAPE, "classic %s: samples of shape %s, the model was "
                            "fitted on samples of shape %s", m->method->name,
                            ds_shape_str(nd, x->shape + 1, a, sizeof a),
                            ds_shape_str(m->in_ndim, m->in_shape, b, sizeof b));
        }
    }
    ds_tensor *t;
    if ((st = ds_classic_features(m->features, x, &t)))
        return st;
    if (fit) {
        m->in_ndim = x->ndim - 1;
        memcpy(m->in_shape, x->shape + 1, (size_t)m->in_ndim * sizeof *m->in_shape);
        m->features_out = t->shape[1];
        dsi_net_input in = scaling_of(m);
        ds_tensor_free(m->mean);
        ds_tensor_free(m->std);
        in.mean = in.std = NULL;
        st = dsi_scaling_fit(&in, t);
        m->mean = in.mean;
        m->std = in.std;
        if (st) {
            ds_tensor_free(t);
            return st == DS_ERR_NOMEM ? dsi_fail(st, "out of memory for statistics") : st;
        }
    }
    dsi_net_input in = scaling_of(m);
    if (!st)
        st = dsi_scaling_apply(&in, t);
    if (!st)
        st = ds_tensor_check_finite(t, "the scaled data");
    if (!st && m->transform && fit)
        st = ds_classic_fit(m->transform, t, NULL, seed ^ 0x7a5f0ULL);
    if (!st && m->transform) {
        ds_tensor *z;
        if (!(st = ds_classic_predict(m->transform, t, &z))) {
            ds_tensor_free(t);
            t = z;
        }
    }
    if (st) {
        ds_tensor_free(t);
        return st;
    }
    *out = t;
    return DS_OK;
}

/* ---- labels ---- */

static bool integral_labels(const ds_tensor *y)
{
    for (int64_t i = 0; i < y->numel; i++)
        if (!(y->data[i] >= 0 && y->data[i] < 65536 && y->data[i] == floorf(y->data[i])))
            return false;
    return true;
}

/* The task for the labels y (NULL: none). */
static ds_status resolve_task(ds_classic *m, const ds_tensor *y, ds_classic_task *task)
{
    const dsi_classic_method *me = m->method;
    int ti = param_index(me, "task");
    ds_classic_task want = ti >= 0 ? (ds_classic_task)m->num[ti] : DS_CLASSIC_AUTO;
    unsigned can = me->tasks;
    if (can & (DSI_TASK(DS_CLASSIC_CLUSTER) | DSI_TASK(DS_CLASSIC_TRANSFORM))) {
        *task = can & DSI_TASK(DS_CLASSIC_CLUSTER) ? DS_CLASSIC_CLUSTER : DS_CLASSIC_TRANSFORM;
        return DS_OK;
    }
    if (!y)
        return dsi_fail(DS_ERR_ARG, "classic %s: needs labels", me->name);
    int64_t per = y->ndim ? y->numel / y->shape[0] : 1;
    if (want == DS_CLASSIC_AUTO)
        want = !(can & DSI_TASK(DS_CLASSIC_REGRESS)) ||
               ((can & DSI_TASK(DS_CLASSIC_CLASSIFY)) && per == 1 && integral_labels(y))
                   ? DS_CLASSIC_CLASSIFY : DS_CLASSIC_REGRESS;
    if (!(can & DSI_TASK(want)))
        return dsi_fail(DS_ERR_ARG, "classic %s cannot %s", me->name, ds_classic_task_name(want));
    if (want == DS_CLASSIC_CLASSIFY && per != 1)
        return dsi_fail(DS_ERR_SHAPE, "classic %s: classification reads one class index per "
                        "sample, the labels have %lld values per sample", me->name,
                        (long long)per);
    if (want == DS_CLASSIC_CLASSIFY && !integral_labels(y))
        return dsi_fail(DS_ERR_VALUE, "classic %s: class labels must be integers from 0 "
                        "(below 65536); give task=regress for values", me->name);
    *task = want;
    return DS_OK;
}

/* Class indices of y into *cls (malloc'd) and their count K. */
static ds_status class_labels(const ds_tensor *y, int64_t **cls, int64_t *K)
{
    int64_t n = y->shape[0];
    *cls = malloc((size_t)(n ? n : 1) * sizeof **cls);
    if (!*cls)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld labels", (long long)n);
    *K = 0;
    for (int64_t i = 0; i < n; i++) {
        (*cls)[i] = (int64_t)y->data[i];
        if ((*cls)[i] + 1 > *K)
            *K = (*cls)[i] + 1;
    }
    return DS_OK;
}

ds_status ds_classic_fit(ds_classic *m, const ds_tensor *x, const ds_tensor *y, uint64_t seed)
{
    const dsi_classic_method *me = m->method;
    if (m->fitted)
        return dsi_fail(DS_ERR_STATE, "classic %s: the model is fitted already", me->name);
    if (y && (y->ndim < 1 || x->ndim < 1 || y->shape[0] != x->shape[0]))
        return dsi_fail(DS_ERR_SHAPE, "classic %s: %lld samples but %lld labels", me->name,
                        (long long)(x->ndim ? x->shape[0] : 1),
                        (long long)(y->ndim ? y->shape[0] : 1));
    ds_classic_task task = DS_CLASSIC_AUTO;
    ds_status st = y ? ds_tensor_check_finite(y, "labels") : DS_OK;
    if (st || (st = resolve_task(m, y, &task)))
        return st;
    ds_tensor *t;
    if ((st = prepare(m, x, true, seed, &t)))
        return st;
    dsi_classic_data d = {.x = t->data, .n = t->shape[0], .f = t->shape[1]};
    int64_t *cls = NULL;
    m->task = task;
    m->features_in = d.f;
    if (task == DS_CLASSIC_CLASSIFY && !(st = class_labels(y, &cls, &m->classes)))
        d.cls = cls;
    if (task == DS_CLASSIC_REGRESS) {
        d.y = y->data;
        d.t = m->outputs = y->numel / y->shape[0];
    }
    if (!st)
        st = me->fit(m, &d, seed);
    m->fitted = !st;
    free(cls);
    ds_tensor_free(t);
    return st;
}

ds_status ds_classic_predict(const ds_classic *m, const ds_tensor *x, ds_tensor **out)
{
    *out = NULL;
    if (!m->fitted)
        return dsi_fail(DS_ERR_STATE, "classic %s: the model is not fitted", m->method->name);
    ds_tensor *t;
    ds_status st = prepare((ds_classic *)m, x, false, 0, &t);
    if (st)
        return st;
    int64_t shape[2] = {t->shape[0], m->method->width(m)};
    ds_tensor *p = ds_tensor_create(2, shape);
    if (p)
        m->method->predict(m, t->data, t->shape[0], p->data);
    ds_tensor_free(t);
    if (!p)
        return dsi_last_status();
    *out = p;
    return DS_OK;
}

ds_tensor *ds_classic_decide(const ds_classic *m, const ds_tensor *p)
{
    if (m->task != DS_CLASSIC_CLASSIFY && m->task != DS_CLASSIC_CLUSTER)
        return NULL;
    int64_t n = p->shape[0], w = p->numel / (n ? n : 1);
    ds_tensor *d = ds_tensor_create(1, &n);
    for (int64_t i = 0; d && i < n; i++) {
        const float *r = p->data + i * w;
        int64_t best = 0;
        for (int64_t k = 1; k < w; k++)
            if (m->task == DS_CLASSIC_CLASSIFY ? r[k] > r[best] : r[k] < r[best])
                best = k;
        d->data[i] = (float)best;
    }
    return d;
}

ds_status ds_classic_split(const ds_tensor *y, int64_t n, double fraction, int last,
                           uint64_t seed, unsigned char *is_val, ds_split_info *info)
{
    int64_t K = 0, *cls = NULL;
    if (y && y->numel == n && integral_labels(y) && class_labels(y, &cls, &K))
        return dsi_last_status();
    ds_status st = dsi_split_samples(n, cls, cls ? K : 0, fraction, last, seed, is_val, info);
    free(cls);
    return st;
}

const char *ds_classic_method(const ds_classic *m) { return m->method->name; }
ds_classic_task ds_classic_task_of(const ds_classic *m) { return m->task; }
int64_t ds_classic_classes(const ds_classic *m) { return m->classes; }

int ds_classic_input_shape(const ds_classic *m, int64_t *shape)
{
    memcpy(shape, m->in_shape, (size_t)m->in_ndim * sizeof *shape);
    return m->in_ndim;
}

const ds_tensor *ds_classic_array(const ds_classic *m, const char *name)
{
    return ds_tensor_set_get(m->arrays, name);
}

double ds_classic_stat(const ds_classic *m, const char *name)
{
    const ds_tensor *t = ds_tensor_set_get(m->stats, name);
    return t && t->numel == 1 ? t->data[0] : NAN;
}

ds_status dsi_classic_put(ds_classic *m, const char *name, int ndim, const int64_t *shape,
                          const float *data)
{
    return ds_tensor_set_add(m->arrays, name, ndim, shape, data);
}

ds_status dsi_classic_stat(ds_classic *m, const char *name, double v)
{
    float f = (float)v;
    return ds_tensor_set_add(m->stats, name, 0, NULL, &f);
}

const float *dsi_classic_arr(const ds_classic *m, const char *name, int64_t d0, int64_t d1)
{
    const ds_tensor *t = ds_tensor_set_get(m->arrays, name);
    if (!t || t->ndim != (d1 < 0 ? 1 : 2) || t->shape[0] != d0 || (d1 >= 0 && t->shape[1] != d1))
        return NULL;
    return t->data;
}

ds_status dsi_classic_need(const ds_classic *m, const char *file, const char *name, int64_t d0,
                           int64_t d1)
{
    if (dsi_classic_arr(m, name, d0, d1))
        return DS_OK;
    char want[64];
    if (d1 < 0)
        snprintf(want, sizeof want, "[%lld]", (long long)d0);
    else
        snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
    const ds_tensor *t = ds_tensor_set_get(m->arrays, name);
    char have[96] = "absent";
    if (t)
        ds_shape_str(t->ndim, t->shape, have, sizeof have);
    return dsi_fail(DS_ERR_FORMAT, "%s: classic model '%s': array 'model.%s' should be %s, "
                    "it is %s", file, m->method->name, name, want, have);
}

/* ---- evaluate ---- */

static ds_status cluster_report(const ds_classic *m, const ds_tensor *x, const ds_tensor *p,
                                dsi_buf *rep, ds_tensor_set *values)
{
    int64_t n = p->shape[0], k = p->shape[1];
    int64_t *lab = malloc((size_t)n * sizeof *lab);
    ds_tensor *t = NULL;
    ds_status st = lab ? prepare((ds_classic *)m, x, false, 0, &t)
                       : dsi_fail(DS_ERR_NOMEM, "out of memory");
    double inertia = 0;
    for (int64_t i = 0; !st && i < n; i++) {
        const float *r = p->data + i * k;
        lab[i] = 0;
        for (int64_t c = 1; c < k; c++)
            if (r[c] < r[lab[i]])
                lab[i] = c;
        inertia += r[lab[i]];
    }
    if (!st) {
        double sil = dsi_silhouette(t->data, n, t->shape[1], lab, k);
        dsi_buf_printf(rep, "clusters: %lld\ninertia: %.6g (%lld samples)\nsilhouette: %.4f\n",
                       (long long)k, inertia, (long long)n, sil);
        float v[2] = {(float)inertia, (float)sil};
        if (values && !(st = ds_tensor_set_add(values, "inertia", 0, NULL, &v[0])))
            st = ds_tensor_set_add(values, "silhouette", 0, NULL, &v[1]);
    }
    free(lab);
    ds_tensor_free(t);
    return st;
}

/* Explained variance of the fit, and the reconstruction error of x. */
static ds_status transform_report(const ds_classic *m, const ds_tensor *x, const ds_tensor *p,
                                  dsi_buf *rep, ds_tensor_set *values)
{
    ds_tensor *t = NULL;
    ds_status st = prepare((ds_classic *)m, x, false, 0, &t);   /* scaled, before the PCA */
    if (st)
        return st;
    int64_t n = p->shape[0], c = p->shape[1], f = m->features_in;
    const float *W = dsi_classic_arr(m, "components", c, f);
    const float *mu = dsi_classic_arr(m, "mean", f, -1);
    const float *ratio = dsi_classic_arr(m, "ratio", c, -1);
    double se = 0, total = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < f; j++) {
            double r = mu[j];
            for (int64_t q = 0; q < c; q++)
                r += (double)p->data[i * c + q] * W[q * f + j];
            double d = t->data[i * f + j] - r;
            se += d * d;
        }
    for (int64_t q = 0; q < c; q++)
        total += ratio[q];
    double rmse = sqrt(se / (double)(n * f));
    dsi_buf_printf(rep, "components: %lld of %lld\nexplained variance ratio: %.4f (fit)\n",
                   (long long)c, (long long)f, total);
    for (int64_t q = 0; q < c && q < 32; q++)
        dsi_buf_printf(rep, "  component %lld: %.4f\n", (long long)q + 1, ratio[q]);
    dsi_buf_printf(rep, "reconstruction RMSE: %.6g (%lld samples)\n", rmse, (long long)n);
    float v[2] = {(float)total, (float)rmse};
    if (values && !(st = ds_tensor_set_add(values, "explained_variance_ratio", 0, NULL, &v[0])))
        st = ds_tensor_set_add(values, "reconstruction_rmse", 0, NULL, &v[1]);
    ds_tensor_free(t);
    return st;
}

static ds_status labelled_report(const ds_classic *m, const ds_tensor *p, const ds_tensor *y,
                                 dsi_buf *rep, ds_tensor_set *values)
{
    int64_t n = p->shape[0];
    if (!y || y->ndim < 1 || y->shape[0] != n)
        return dsi_fail(DS_ERR_SHAPE, "classic %s: %lld samples but %lld labels",
                        m->method->name, (long long)n, (long long)(y && y->ndim ? y->shape[0] : 0));
    ds_status st = ds_tensor_check_finite(y, "labels");
    if (st)
        return st;
    if (m->task == DS_CLASSIC_CLASSIFY) {
        if (y->numel != n || !integral_labels(y))
            return dsi_fail(DS_ERR_VALUE, "classic %s: the labels are not one class index (an "
                            "integer from 0) per sample", m->method->name);
        for (int64_t i = 0; i < n; i++)
            if (y->data[i] >= (float)m->classes)
                return dsi_fail(DS_ERR_VALUE, "classic %s: label %g of sample %lld is not a "
                                "class of the model (0..%lld)", m->method->name, y->data[i],
                                (long long)i, (long long)m->classes - 1);
        return dsi_metrics_report(p, y, m->classes, rep, values);
    }
    if (y->numel != p->numel)
        return dsi_fail(DS_ERR_SHAPE, "classic %s: %lld values per sample predicted, the labels "
                        "have %lld", m->method->name, (long long)(p->numel / n),
                        (long long)(y->numel / n));
    return dsi_metrics_report(p, y, 0, rep, values);
}

ds_status ds_classic_evaluate(const ds_classic *m, const ds_tensor *x, const ds_tensor *y,
                              char **report, ds_tensor_set *values)
{
    *report = NULL;
    ds_tensor *p;
    ds_status st = ds_classic_predict(m, x, &p);
    if (st)
        return st;
    dsi_buf rep = {0};
    if (m->task == DS_CLASSIC_CLUSTER)
        st = cluster_report(m, x, p, &rep, values);
    else if (m->task == DS_CLASSIC_TRANSFORM)
        st = transform_report(m, x, p, &rep, values);
    else
        st = labelled_report(m, p, y, &rep, values);
    ds_tensor_free(p);
    if (!st && rep.oom)
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for the report");
    if (st) {
        free(rep.p);
        return st;
    }
    *report = rep.p;
    return DS_OK;
}
