/* model.c - the parameter store: named parameters in one value block and one gradient block. */
#include "internal.h"

#include <math.h>

ds_model *ds_model_create(uint64_t seed)
{
    ds_model *m = calloc(1, sizeof *m);
    if (!m) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for a model");
        return NULL;
    }
    ds_rng_seed(&m->rng, seed);
    return m;
}

void ds_model_free(ds_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free(m->params[i]);
    free(m->params);
    dsi_index_free(&m->by_name);
    free(m->data);
    free(m->grad);
    free(m->names);
    free(m);
}

int ds_model_param_count(const ds_model *m) { return m->n; }
ds_param *ds_model_param(const ds_model *m, int i) { return (i >= 0 && i < m->n) ? m->params[i] : NULL; }

static const char *param_name(const void *m, int i)
{
    return ((const ds_model *)m)->params[i]->name;
}

ds_param *ds_model_find(const ds_model *m, const char *name)
{
    int i = dsi_index_find(&m->by_name, name, param_name, m);
    return i < 0 ? NULL : m->params[i];
}

int64_t ds_model_numel(const ds_model *m, int trainable_only)
{
    int64_t n = 0;
    for (int i = 0; i < m->n; i++)
        if (!trainable_only || m->params[i]->trainable)
            n += m->params[i]->numel;
    return n;
}

/* A writable pointer: the values may change from here on. */
float *ds_model_data(ds_model *m)
{
    dsi_model_touch(m);
    return m->data;
}
float *ds_model_grad(ds_model *m) { return m->grad; }
int64_t ds_model_block_len(const ds_model *m, int grad)
{
    return (int64_t)(grad ? m->grad_n : m->data_n);
}

void ds_model_zero_grad(ds_model *m)
{
    if (m->grad_n)
        memset(m->grad, 0, m->grad_n * sizeof(float));
}

/* Grows a float block to hold need floats, keeping its content; new space zeroed. */
static bool grow(float **block, size_t *cap, size_t used, size_t need)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    float *nb = dsi_aligned_alloc(ncap * sizeof(float));
    if (!nb)
        return false;
    if (used)
        memcpy(nb, *block, used * sizeof(float));
    free(*block);
    *block = nb;
    *cap = ncap;
    return true;
}

/* Each parameter starts on a 16-float (64-byte) boundary so kernels see aligned rows. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

ds_param *ds_model_add_param(ds_model *m, const char *name, int ndim, const int64_t *shape,
                             int trainable, ds_init init)
{
    if (!name || !*name || strlen(name) >= DS_NAME_MAX) {
        dsi_fail(DS_ERR_ARG, "parameter name '%s' is empty or longer than %d characters",
                 name ? name : "", DS_NAME_MAX - 1);
        return NULL;
    }
    if (ds_model_find(m, name)) {
        dsi_fail(DS_ERR_ARG, "parameter '%s' already exists", name);
        return NULL;
    }
    if (ndim < 0 || ndim > DS_MAX_DIMS) {
        dsi_fail(DS_ERR_SHAPE, "parameter '%s': %d dimensions (at most %d)", name, ndim,
                 DS_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            dsi_fail(DS_ERR_SHAPE, "parameter '%s': shape %s has an empty dimension", name,
                     dsi_shape_str(ndim, shape));
            return NULL;
        }
    ds_param *p = calloc(1, sizeof *p);
    if (!p) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for parameter '%s'", name);
        return NULL;
    }
    strcpy(p->name, name);
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->numel = dsi_numel_limited(ndim, shape, (int64_t)1 << 40);
    if (p->numel < 0 || (size_t)p->numel > ds_get_memory_limit() / sizeof(float)) {
        dsi_fail(DS_ERR_NOMEM, "parameter '%s' of shape %s needs %.4g bytes%s", name,
                 dsi_shape_str(ndim, shape), p->numel < 0 ? 1e300 : 4.0 * (double)p->numel,
                 dsi_mem_note(p->numel < 0 ? SIZE_MAX : (size_t)p->numel * sizeof(float)));
        free(p);
        return NULL;
    }
    p->trainable = trainable;
    p->m = m;
    size_t len = round16((size_t)p->numel);
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        ds_param **np = realloc(m->params, (size_t)cap * sizeof *np);
        if (!np)
            goto nomem;
        m->params = np;
        m->cap = cap;
    }
    if (!grow(&m->data, &m->data_cap, m->data_n, m->data_n + len))
        goto nomem;
    if (trainable && !grow(&m->grad, &m->grad_cap, m->grad_n, m->grad_n + len))
        goto nomem;
    p->offset = m->data_n;
    if (trainable)
        p->goffset = m->grad_n;
    dsi_model_touch(m);
    ds_status st = ds_init_fill(m->data + p->offset, ndim, shape, init, &m->rng);
    if (st != DS_OK) {
        free(p);
        return NULL;
    }
    m->params[m->n] = p;   /* in place for the index; counted once it is in */
    if (!dsi_index_add(&m->by_name, m->n, param_name, m))
        goto nomem;
    m->data_n += len;
    if (trainable)
        m->grad_n += len;
    p->index = m->n++;
    return p;
nomem:
    free(p);
    dsi_fail(DS_ERR_NOMEM, "out of memory for parameter '%s' (the model's parameters take "
             "%.4g bytes with it%s)", name, 4.0 * (double)(m->data_n + len),
             dsi_mem_note((m->data_n + len) * sizeof(float)));
    return NULL;
}

ds_param *dsi_model_get_param(ds_model *m, const char *layer, const char *suffix, int ndim,
                              const int64_t *shape, int trainable, ds_init init)
{
    char name[DS_NAME_MAX * 2];
    snprintf(name, sizeof name, "%s.%s", layer, suffix);
    ds_param *p = ds_model_find(m, name);
    if (!p)
        return ds_model_add_param(m, name, ndim, shape, trainable, init);
    bool same = p->ndim == ndim && p->trainable == trainable;
    for (int i = 0; same && i < ndim; i++)
        same = p->shape[i] == shape[i];
    if (!same) {
        dsi_fail(DS_ERR_SHAPE, "layer '%s': shared parameter '%s' has shape %s, this use needs %s",
                 layer, name, dsi_shape_str(p->ndim, p->shape), dsi_shape_str(ndim, shape));
        return NULL;
    }
    return p;
}

ds_status dsi_model_auto_name(ds_model *m, const char *type, char *buf, size_t cap)
{
    int i;
    for (i = 0; i < m->n_names; i++)
        if (!strcmp(m->names[i].type, type))
            break;
    if (i == m->n_names) {
        if (m->n_names == m->cap_names) {
            int ncap = m->cap_names ? 2 * m->cap_names : 16;
            void *nn = realloc(m->names, (size_t)ncap * sizeof *m->names);
            if (!nn)
                return dsi_fail(DS_ERR_NOMEM, "out of memory naming a %s layer", type);
            m->names = nn;
            m->cap_names = ncap;
        }
        snprintf(m->names[i].type, sizeof m->names[i].type, "%s", type);
        m->names[i].count = 0;
        m->n_names++;
    }
    snprintf(buf, cap, "%s_%d", type, ++m->names[i].count);
    return DS_OK;
}

const char *ds_param_name(const ds_param *p) { return p->name; }
int ds_param_ndim(const ds_param *p) { return p->ndim; }
const int64_t *ds_param_shape(const ds_param *p) { return p->shape; }
int64_t ds_param_numel(const ds_param *p) { return p->numel; }
int ds_param_trainable(const ds_param *p) { return p->trainable; }
float *ds_param_data(ds_param *p)
{
    dsi_model_touch(p->m);
    return p->m->data + p->offset;
}
float *ds_param_grad(ds_param *p) { return p->trainable ? p->m->grad + p->goffset : NULL; }

double ds_model_grad_norm(const ds_model *m)
{
    double s = 0;
    for (size_t i = 0; i < m->grad_n; i++)
        s += (double)m->grad[i] * m->grad[i];
    return sqrt(s);
}

/* ---- weights as tensor sets / safetensors ---- */
ds_status ds_model_to_set(const ds_model *m, ds_tensor_set *s)
{
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        ds_status st = ds_tensor_set_add(s, p->name, p->ndim, p->shape, m->data + p->offset);
        if (st != DS_OK)
            return st;
    }
    return DS_OK;
}

ds_status ds_model_from_set(ds_model *m, const ds_tensor_set *s, const char *what)
{
    char msg[2048] = "";
    int bad = 0;
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        ds_tensor *t = ds_tensor_set_get(s, p->name);
        if (!t) {
            dsi_snprintf_cat(msg, sizeof msg, "%s'%s' %s is missing", bad++ ? "; " : "",
                             p->name, dsi_shape_str(p->ndim, p->shape));
            continue;
        }
        bool same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++)
            same = t->shape[d] == p->shape[d];
        if (!same)
            dsi_snprintf_cat(msg, sizeof msg, "%s'%s' has shape %s, the model expects %s",
                             bad++ ? "; " : "", p->name, dsi_shape_str(t->ndim, t->shape),
                             dsi_shape_str(p->ndim, p->shape));
    }
    for (int i = 0; i < ds_tensor_set_count(s); i++) {
        const char *name = ds_tensor_set_name(s, i);
        if (!ds_model_find(m, name))
            dsi_snprintf_cat(msg, sizeof msg, "%s'%s' is not a parameter of the model",
                             bad++ ? "; " : "", name);
    }
    if (bad)
        return dsi_fail(DS_ERR_FORMAT, "%s: %d mismatch%s with the model: %s", what, bad,
                        bad > 1 ? "es" : "", msg);
    dsi_model_touch(m);
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        memcpy(m->data + p->offset, ds_tensor_set_get(s, p->name)->data,
               (size_t)p->numel * sizeof(float));
    }
    return DS_OK;
}

ds_status ds_model_save_weights(const ds_model *m, const char *path)
{
    ds_tensor_set *s = ds_tensor_set_create();
    if (!s)
        return DS_ERR_NOMEM;
    ds_status st = ds_model_to_set(m, s);
    if (st == DS_OK)
        st = ds_safetensors_save(s, path);
    ds_tensor_set_free(s);
    return st;
}

ds_status ds_model_load_weights(ds_model *m, const char *path)
{
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load(path, &s);
    if (st == DS_OK)
        st = ds_model_from_set(m, s, path);
    ds_tensor_set_free(s);
    return st;
}

ds_status ds_model_load_weights_mem(ds_model *m, const void *buf, size_t len, const char *name)
{
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load_mem(buf, len, name, &s);
    if (st == DS_OK)
        st = ds_model_from_set(m, s, name ? name : "<memory>");
    ds_tensor_set_free(s);
    return st;
}
