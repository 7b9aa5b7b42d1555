/* tensor.c - standalone tensors, shape formatting, and named tensor sets. */
#include "internal.h"

#include <sys/mman.h>

int64_t dsi_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int64_t dsi_numel_limited(int ndim, const int64_t *shape, int64_t limit)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > limit / shape[i]))
            return -1;
        n *= shape[i];
    }
    return n;
}

char *ds_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = 0;
    dsi_snprintf_cat(buf, cap, "[");
    for (int i = 0; i < ndim; i++)
        dsi_snprintf_cat(buf, cap, "%s%lld", i ? ", " : "", (long long)shape[i]);
    dsi_snprintf_cat(buf, cap, "]");
    return buf;
}

const char *dsi_shape_str(int ndim, const int64_t *shape)
{
    static _Thread_local char bufs[4][96];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return ds_shape_str(ndim, shape, b, sizeof bufs[0]);
}

static bool shape_ok(int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > DS_MAX_DIMS)
        return false;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return false;
    return true;
}

static ds_tensor *tensor_new(int ndim, const int64_t *shape, bool zero)
{
    if (!shape_ok(ndim, shape)) {
        dsi_fail(DS_ERR_SHAPE, "tensor shape %s is not valid (at most %d dims, none negative)",
                 (ndim >= 0 && ndim <= DS_MAX_DIMS) ? dsi_shape_str(ndim, shape) : "?",
                 DS_MAX_DIMS);
        return NULL;
    }
    ds_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for a tensor of shape %s",
                 dsi_shape_str(ndim, shape));
        return NULL;
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    int64_t numel = dsi_numel_limited(ndim, shape, (int64_t)(SIZE_MAX / 2 / sizeof(float)));
    size_t bytes = numel < 0 ? SIZE_MAX : (size_t)numel * sizeof(float);
    t->numel = numel;
    t->data = numel < 0 ? NULL : zero ? dsi_aligned_alloc(bytes) : dsi_aligned_alloc_raw(bytes);
    if (!t->data) {
        free(t);
        dsi_fail(DS_ERR_NOMEM, "out of memory for a tensor of shape %s (%.4g bytes%s)",
                 dsi_shape_str(ndim, shape), numel < 0 ? 1e300 : (double)bytes,
                 dsi_mem_note(bytes));
        return NULL;
    }
    return t;
}

ds_tensor *ds_tensor_create(int ndim, const int64_t *shape)
{
    return tensor_new(ndim, shape, true);
}

ds_tensor *dsi_tensor_uninit(int ndim, const int64_t *shape)
{
    return tensor_new(ndim, shape, false);
}

bool dsi_tensor_known_finite(const ds_tensor *t)
{
    return atomic_load_explicit(&t->finite, memory_order_relaxed);
}

/* The flag is a cache beside the values, not part of them: a const tensor's may change. */
void dsi_tensor_set_finite(const ds_tensor *t, bool finite)
{
    ds_tensor *w = (ds_tensor *)t;
    if (dsi_tensor_known_finite(t) != finite)
        atomic_store_explicit(&w->finite, finite, memory_order_relaxed);
}

ds_tensor *ds_tensor_from(int ndim, const int64_t *shape, const float *data)
{
    ds_tensor *t = ds_tensor_create(ndim, shape);
    if (t && t->numel)
        memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    return t;
}

/* The Python package's way in: NumPy's memory used in place (see deepsky.h). */
ds_tensor *ds_tensor_borrow(int ndim, const int64_t *shape, float *data)
{
    if (!shape || !shape_ok(ndim, shape)) {
        dsi_fail(DS_ERR_SHAPE, "tensor shape %s is not valid (at most %d dims, none negative)",
                 shape && ndim >= 0 && ndim <= DS_MAX_DIMS ? dsi_shape_str(ndim, shape) : "?",
                 DS_MAX_DIMS);
        return NULL;
    }
    int64_t numel = dsi_numel_limited(ndim, shape, (int64_t)(SIZE_MAX / 2 / sizeof(float)));
    if (numel < 0 || (numel > 0 && !data)) {
        dsi_fail(DS_ERR_ARG, "cannot borrow %s for a tensor of shape %s",
                 numel < 0 ? "so many floats" : "NULL data", dsi_shape_str(ndim, shape));
        return NULL;
    }
    ds_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for a tensor of shape %s",
                 dsi_shape_str(ndim, shape));
        return NULL;
    }
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    t->data = data;
    t->borrowed = true;
    return t;
}

ds_tensor *dsi_tensor_mapped(int ndim, const int64_t *shape, void *map, size_t map_len,
                             size_t offset)
{
    ds_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for a tensor of shape %s",
                 dsi_shape_str(ndim, shape));
        return NULL;
    }
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = dsi_numel(ndim, shape);
    t->data = (float *)(void *)((char *)map + offset);
    t->map = map;
    t->map_len = map_len;
    return t;
}

void ds_tensor_free(ds_tensor *t)
{
    if (!t)
        return;
    if (t->map)
        munmap(t->map, t->map_len);
    else if (!t->borrowed)
        free(t->data);
    free(t);
}

int ds_tensor_ndim(const ds_tensor *t) { return t->ndim; }
const int64_t *ds_tensor_shape(const ds_tensor *t) { return t->shape; }
int64_t ds_tensor_numel(const ds_tensor *t) { return t->numel; }
/* Write access, which the caller may use at any time: the values are no longer known
 * finite. */
float *ds_tensor_data(ds_tensor *t)
{
    dsi_tensor_set_finite(t, false);
    return t->data;
}

ds_status ds_tensor_reshape(ds_tensor *t, int ndim, const int64_t *shape)
{
    if (!shape_ok(ndim, shape) || dsi_numel(ndim, shape) != t->numel)
        return dsi_fail(DS_ERR_SHAPE, "cannot reshape %s (%lld values) to %s",
                        dsi_shape_str(t->ndim, t->shape), (long long)t->numel,
                        (ndim >= 0 && ndim <= DS_MAX_DIMS) ? dsi_shape_str(ndim, shape) : "?");
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    return DS_OK;
}

/* ---- named sets ---- */
struct ds_tensor_set {
    char **names;
    ds_tensor **ts;
    int n, cap;
    dsi_name_index by_name;
    char **mkeys, **mvals;
    int nm, capm;
};

ds_tensor_set *ds_tensor_set_create(void)
{
    ds_tensor_set *s = calloc(1, sizeof *s);
    if (!s)
        dsi_fail(DS_ERR_NOMEM, "out of memory for a tensor set");
    return s;
}

void ds_tensor_set_free(ds_tensor_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        free(s->names[i]);
        ds_tensor_free(s->ts[i]);
    }
    for (int i = 0; i < s->nm; i++) {
        free(s->mkeys[i]);
        free(s->mvals[i]);
    }
    free(s->names);
    free(s->ts);
    dsi_index_free(&s->by_name);
    free(s->mkeys);
    free(s->mvals);
    free(s);
}

static const char *set_name(const void *s, int i)
{
    return ((const ds_tensor_set *)s)->names[i];
}

static int find_name(const ds_tensor_set *s, const char *name)
{
    return dsi_index_find(&s->by_name, name, set_name, s);
}

ds_status ds_tensor_set_add(ds_tensor_set *s, const char *name, int ndim, const int64_t *shape,
                            const float *data)
{
    ds_tensor *t = data ? ds_tensor_from(ndim, shape, data) : ds_tensor_create(ndim, shape);
    if (!t)
        return DS_ERR_NOMEM;
    int i = find_name(s, name);
    if (i >= 0) {
        ds_tensor_free(s->ts[i]);
        s->ts[i] = t;
        return DS_OK;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **nn = realloc(s->names, (size_t)cap * sizeof *nn);
        if (nn)
            s->names = nn;
        ds_tensor **nt = nn ? realloc(s->ts, (size_t)cap * sizeof *nt) : NULL;
        if (!nn || !nt) {
            ds_tensor_free(t);
            return dsi_fail(DS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        }
        s->ts = nt;
        s->cap = cap;
    }
    char *nm = dsi_strdup(name);
    s->names[s->n] = nm;
    if (!nm || !dsi_index_add(&s->by_name, s->n, set_name, s)) {
        free(nm);
        ds_tensor_free(t);
        return dsi_fail(DS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    }
    s->ts[s->n] = t;
    s->n++;
    return DS_OK;
}

int ds_tensor_set_count(const ds_tensor_set *s) { return s->n; }
const char *ds_tensor_set_name(const ds_tensor_set *s, int i) { return s->names[i]; }
ds_tensor *ds_tensor_set_at(const ds_tensor_set *s, int i) { return s->ts[i]; }

ds_tensor *ds_tensor_set_get(const ds_tensor_set *s, const char *name)
{
    int i = find_name(s, name);
    return i < 0 ? NULL : s->ts[i];
}

ds_status ds_tensor_set_meta_set(ds_tensor_set *s, const char *key, const char *value)
{
    for (int i = 0; i < s->nm; i++)
        if (!strcmp(s->mkeys[i], key)) {
            char *v = dsi_strdup(value);
            if (!v)
                return dsi_fail(DS_ERR_NOMEM, "out of memory for metadata '%s'", key);
            free(s->mvals[i]);
            s->mvals[i] = v;
            return DS_OK;
        }
    if (s->nm == s->capm) {
        int cap = s->capm ? 2 * s->capm : 8;
        char **k = realloc(s->mkeys, (size_t)cap * sizeof *k);
        if (k)
            s->mkeys = k;
        char **v = k ? realloc(s->mvals, (size_t)cap * sizeof *v) : NULL;
        if (!k || !v)
            return dsi_fail(DS_ERR_NOMEM, "out of memory for metadata '%s'", key);
        s->mvals = v;
        s->capm = cap;
    }
    char *k = dsi_strdup(key), *v = dsi_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for metadata '%s'", key);
    }
    s->mkeys[s->nm] = k;
    s->mvals[s->nm] = v;
    s->nm++;
    return DS_OK;
}

const char *ds_tensor_set_meta_get(const ds_tensor_set *s, const char *key)
{
    for (int i = 0; i < s->nm; i++)
        if (!strcmp(s->mkeys[i], key))
            return s->mvals[i];
    return NULL;
}

int dsi_tensor_set_meta_count(const ds_tensor_set *s) { return s->nm; }
const char *dsi_tensor_set_meta_key(const ds_tensor_set *s, int i) { return s->mkeys[i]; }
