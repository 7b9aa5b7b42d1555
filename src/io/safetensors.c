/* safetensors.c - reads and writes the safetensors format, from and to files or memory: an
 * 8-byte little-endian header length N, N bytes of JSON describing each tensor, then the
 * tensors' bytes. */
#include "io.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>

/* The Rust reference rejects headers above 100 MB; we do the same. */
#define MAX_HEADER ((uint64_t)100000000)

typedef enum {
    DT_F32, DT_F64, DT_F16, DT_BF16, DT_I64, DT_I32, DT_I16, DT_I8,
    DT_U64, DT_U32, DT_U16, DT_U8, DT_BOOL
} dtype;

static const struct { const char *name; dtype t; size_t size; } dtypes[] = {
    { "F32", DT_F32, 4 }, { "F64", DT_F64, 8 }, { "F16", DT_F16, 2 }, { "BF16", DT_BF16, 2 },
    { "I64", DT_I64, 8 }, { "I32", DT_I32, 4 }, { "I16", DT_I16, 2 }, { "I8", DT_I8, 1 },
    { "U64", DT_U64, 8 }, { "U32", DT_U32, 4 }, { "U16", DT_U16, 2 }, { "U8", DT_U8, 1 },
    { "BOOL", DT_BOOL, 1 },
};

static uint64_t rd_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float f16_to_f32(uint16_t h)
{
    unsigned sign = (h >> 15) & 1, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);                          /* zero or subnormal */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 0x400), (int)e - 25);
    return sign ? -v : v;
}

/* Converts n elements of type t from little-endian bytes to float32. */
static void convert(dtype t, const unsigned char *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t u;
        switch (t) {
        case DT_F32: {
            uint32_t b = (uint32_t)rd_le(src + 4 * i, 4);
            memcpy(&dst[i], &b, 4);
            break;
        }
        case DT_F64: {
            u = rd_le(src + 8 * i, 8);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
            break;
        }
        case DT_F16: dst[i] = f16_to_f32((uint16_t)rd_le(src + 2 * i, 2)); break;
        case DT_BF16: {
            uint32_t b = (uint32_t)rd_le(src + 2 * i, 2) << 16;
            memcpy(&dst[i], &b, 4);
            break;
        }
        case DT_I64: dst[i] = (float)(int64_t)rd_le(src + 8 * i, 8); break;
        case DT_I32: dst[i] = (float)(int32_t)(uint32_t)rd_le(src + 4 * i, 4); break;
        case DT_I16: dst[i] = (float)(int16_t)(uint16_t)rd_le(src + 2 * i, 2); break;
        case DT_I8: dst[i] = (float)(int8_t)src[i]; break;
        case DT_U64: dst[i] = (float)rd_le(src + 8 * i, 8); break;
        case DT_U32: dst[i] = (float)rd_le(src + 4 * i, 4); break;
        case DT_U16: dst[i] = (float)rd_le(src + 2 * i, 2); break;
        case DT_U8: dst[i] = (float)src[i]; break;
        case DT_BOOL: dst[i] = src[i] ? 1.0f : 0.0f; break;
        }
    }
}

/* ---- loading ---- */
typedef struct {
    const char *name;
    dtype t;
    size_t esize;
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;
} entry;

static int by_offset(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Checks one tensor's description (value v under name) against the buffer size. */
static ds_status read_entry(const char *path, const char *name, const dsi_json *v,
                            uint64_t buf_size, entry *e)
{
    e->name = name;
    if (v->type != DSI_JSON_OBJ)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': description is not an object", path, name);
    for (int k = 0; k < v->n; k++) {
        const char *key = v->keys[k];
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': unknown field '%s'", path, name, key);
        for (int j = 0; j < k; j++)
            if (!strcmp(v->keys[j], key))
                return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': field '%s' appears twice",
                                path, name, key);
    }
    const dsi_json *dt = dsi_json_get(v, "dtype"), *sh = dsi_json_get(v, "shape"),
                   *off = dsi_json_get(v, "data_offsets");
    if (!dt || dt->type != DSI_JSON_STR)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    size_t d;
    for (d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        if (!strcmp(dtypes[d].name, dt->s))
            break;
    if (d == sizeof dtypes / sizeof dtypes[0])
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': unsupported dtype '%.32s'", path, name,
                        dt->s);
    e->t = dtypes[d].t;
    e->esize = dtypes[d].size;
    if (!sh || sh->type != DSI_JSON_ARR)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (sh->n > DS_MAX_DIMS)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, at most %d supported",
                        path, name, sh->n, DS_MAX_DIMS);
    e->ndim = sh->n;
    /* The running product must not overflow in any order dsi_numel may use. */
    int64_t numel = 1;
    bool overflow = false;
    for (int k = 0; k < sh->n; k++) {
        if (sh->items[k].type != DSI_JSON_INT || sh->items[k].i < 0)
            return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a "
                            "non-negative integer", path, name, k);
        int64_t s = sh->items[k].i;
        e->shape[k] = s;
        if (s && numel > INT64_MAX / s)
            overflow = true;
        else
            numel *= s;
    }
    if (overflow || (uint64_t)numel > UINT64_MAX / e->esize)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': shape %s is too large", path, name,
                        dsi_shape_str(e->ndim, e->shape));
    e->numel = numel;
    if (!off || off->type != DSI_JSON_ARR || off->n != 2 || off->items[0].type != DSI_JSON_INT ||
        off->items[1].type != DSI_JSON_INT || off->items[0].i < 0 || off->items[1].i < 0)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be two "
                        "non-negative integers [begin, end]", path, name);
    e->begin = (uint64_t)off->items[0].i;
    e->end = (uint64_t)off->items[1].i;
    if (e->end < e->begin || e->end > buf_size)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] outside the "
                        "%llu-byte data buffer", path, name, (unsigned long long)e->begin,
                        (unsigned long long)e->end, (unsigned long long)buf_size);
    if (e->end - e->begin != (uint64_t)numel * e->esize)
        return dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s': %s %s needs %llu bytes, data_offsets "
                        "[%llu, %llu] hold %llu", path, name, dtypes[d].name,
                        dsi_shape_str(e->ndim, e->shape),
                        (unsigned long long)numel * e->esize, (unsigned long long)e->begin,
                        (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    return DS_OK;
}

static ds_status read_meta(const char *path, const dsi_json *v, ds_tensor_set *s)
{
    if (v->type != DSI_JSON_OBJ)
        return dsi_fail(DS_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
    for (int i = 0; i < v->n; i++) {
        if (v->items[i].type != DSI_JSON_STR)
            return dsi_fail(DS_ERR_FORMAT, "%s: metadata '%s' is not a string", path, v->keys[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(v->keys[j], v->keys[i]))
                return dsi_fail(DS_ERR_FORMAT, "%s: metadata key '%s' appears twice", path,
                                v->keys[i]);
        ds_status st = ds_tensor_set_meta_set(s, v->keys[i], v->items[i].s);
        if (st != DS_OK)
            return st;
    }
    return DS_OK;
}

/* Where the bytes come from: a caller's buffer, or a file read piece by piece where needed
 * (so a file's tensors are never held twice). */
typedef struct {
    const unsigned char *mem;   /* the whole file, or NULL to read fp */
    FILE *fp;
    uint64_t size;
    const char *path;           /* the name in messages */
} source;

/* The n bytes at off (within size): a pointer into the buffer, or into tmp after reading
 * them from the file. what names them in messages. */
static ds_status src_get(const source *src, uint64_t off, size_t n, unsigned char *tmp,
                         const unsigned char **out, const char *what)
{
    if (src->mem) {
        *out = src->mem + off;
        return DS_OK;
    }
    *out = tmp;
    if (!n)
        return DS_OK;
    if (fseeko(src->fp, (off_t)off, SEEK_SET) != 0)
        return dsi_fail(DS_ERR_IO, "%s: cannot seek to %s: %s", src->path, what,
                        strerror(errno));
    if (fread(tmp, 1, n, src->fp) != n) {
        if (ferror(src->fp))
            return dsi_fail(DS_ERR_IO, "%s: cannot read %s: %s", src->path, what,
                            strerror(errno));
        return dsi_fail(DS_ERR_FORMAT, "%s: file ends inside the %s", src->path, what);
    }
    return DS_OK;
}

static const char *json_key(const void *obj, int i)
{
    return ((const dsi_json *)obj)->keys[i];
}

static ds_status load(const source *src, ds_tensor_set *s)
{
    const char *path = src->path;
    uint64_t fsize = src->size;
    unsigned char b8buf[8];
    const unsigned char *b8;
    ds_status st;
    if (fsize < 8)
        return dsi_fail(DS_ERR_FORMAT, "%s: %llu bytes, too short for a safetensors file", path,
                        (unsigned long long)fsize);
    if ((st = src_get(src, 0, 8, b8buf, &b8, "header length")) != DS_OK)
        return st;
    uint64_t hlen = rd_le(b8, 8);
    if (hlen > fsize - 8)
        return dsi_fail(DS_ERR_FORMAT, "%s: header length %llu exceeds the file's remaining "
                        "%llu bytes (truncated or not a safetensors file)", path,
                        (unsigned long long)hlen, (unsigned long long)(fsize - 8));
    if (hlen > MAX_HEADER)
        return dsi_fail(DS_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes",
                        path, (unsigned long long)hlen, (unsigned long long)MAX_HEADER);
    if (hlen < 2)
        return dsi_fail(DS_ERR_FORMAT, "%s: header of %llu bytes is too short", path,
                        (unsigned long long)hlen);
    uint64_t buf_size = fsize - 8 - hlen;
    unsigned char *textbuf = src->mem ? NULL : malloc((size_t)hlen);
    if (!src->mem && !textbuf)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                        (unsigned long long)hlen);
    const unsigned char *text;
    dsi_json *root = NULL;
    entry *es = NULL, **order = NULL;
    unsigned char *tmp = NULL;
    dsi_name_index seen = {0};   /* the header's keys so far */
    if ((st = src_get(src, 8, (size_t)hlen, textbuf, &text, "header")) != DS_OK)
        goto done;
    if (text[0] != '{') {
        st = dsi_fail(DS_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file)",
                      path);
        goto done;
    }
    char err[128];
    if (!(root = dsi_json_parse((const char *)text, (size_t)hlen, err, sizeof err))) {
        if (!strncmp(err, DSI_JSON_OOM, strlen(DSI_JSON_OOM)))
            st = dsi_fail(DS_ERR_NOMEM, "%s: %s reading the JSON header", path, err);
        else
            st = dsi_fail(DS_ERR_FORMAT, "%s: bad JSON header: %s", path, err);
        goto done;
    }
    int n = 0;
    if (root->n && !(es = calloc((size_t)root->n, sizeof *es)))
        goto nomem;
    if (root->n && !(order = calloc((size_t)root->n, sizeof *order)))
        goto nomem;
    for (int i = 0; i < root->n; i++) {
        const char *key = root->keys[i];
        if (dsi_index_find(&seen, key, json_key, root) >= 0) {
            st = dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, key);
            goto done;
        }
        if (!dsi_index_add(&seen, i, json_key, root))
            goto nomem;
        if (!strcmp(key, "__metadata__"))
            continue;
        if ((st = read_entry(path, key, &root->items[i], buf_size, &es[n])) != DS_OK)
            goto done;
        order[n] = &es[n];
        n++;
    }
    /* Tensors must tile the buffer exactly: sorted by offset, each starts where the previous
     * ends and the last ends at the end of the file (as the reference implementation checks). */
    if (n > 1)
        qsort(order, (size_t)n, sizeof *order, by_offset);
    uint64_t at = 0;
    size_t maxb = 0;
    for (int i = 0; i < n; i++) {
        if (order[i]->begin != at) {
            if (order[i]->begin < at)
                st = dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] overlap "
                              "tensor '%s'", path, order[i]->name,
                              (unsigned long long)order[i]->begin,
                              (unsigned long long)order[i]->end, order[i - 1]->name);
            else
                st = dsi_fail(DS_ERR_FORMAT, "%s: tensor '%s' starts at byte %llu of the data "
                              "buffer, leaving a gap after byte %llu", path, order[i]->name,
                              (unsigned long long)order[i]->begin, (unsigned long long)at);
            goto done;
        }
        at = order[i]->end;
        if (order[i]->end - order[i]->begin > maxb)
            maxb = (size_t)(order[i]->end - order[i]->begin);
    }
    if (at != buf_size) {
        st = dsi_fail(DS_ERR_FORMAT, "%s: tensors cover %llu bytes but the data buffer holds "
                      "%llu (truncated or trailing bytes)", path, (unsigned long long)at,
                      (unsigned long long)buf_size);
        goto done;
    }
    for (int i = 0; i < root->n; i++)
        if (!strcmp(root->keys[i], "__metadata__") &&
            (st = read_meta(path, &root->items[i], s)) != DS_OK)
            goto done;
    if (!src->mem && maxb && !(tmp = malloc(maxb)))
        goto nomem;
    /* Header order (for our files, insertion order); the data is read where it lies. */
    for (int i = 0; i < n; i++) {
        entry *e = &es[i];
        if ((st = ds_tensor_set_add(s, e->name, e->ndim, e->shape, NULL)) != DS_OK)
            goto done;
        size_t nb = (size_t)(e->end - e->begin);
        if (!nb)
            continue;
        char what[DS_NAME_MAX + 32];
        snprintf(what, sizeof what, "data of tensor '%s'", e->name);
        const unsigned char *data;
        if ((st = src_get(src, 8 + hlen + e->begin, nb, tmp, &data, what)) != DS_OK)
            goto done;
        convert(e->t, data, ds_tensor_set_get(s, e->name)->data, e->numel);
    }
    st = DS_OK;
    goto done;
nomem:
    st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory reading the header", path);
done:
    dsi_index_free(&seen);
    free(tmp);
    free(order);
    free(es);
    dsi_json_free(root);
    free(textbuf);
    return st;
}

/* A new set with src's tensors, or NULL and the failure. */
static ds_status load_set(const source *src, ds_tensor_set **out)
{
    ds_tensor_set *s = ds_tensor_set_create();
    ds_status st = s ? load(src, s) : dsi_fail(DS_ERR_NOMEM, "%s: out of memory", src->path);
    if (st != DS_OK) {
        ds_tensor_set_free(s);
        return st;
    }
    *out = s;
    return DS_OK;
}

ds_status ds_safetensors_load(const char *path, ds_tensor_set **out)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dsi_fail(DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        int e = errno;
        fclose(fp);
        return dsi_fail(DS_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(fp);
        return dsi_fail(DS_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    source src = {.fp = fp, .size = (uint64_t)sb.st_size, .path = path};
    ds_status st = load_set(&src, out);
    fclose(fp);
    return st;
}

ds_status ds_safetensors_load_mem(const void *buf, size_t len, const char *name,
                                  ds_tensor_set **out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_safetensors_load_mem: out is NULL");
    *out = NULL;
    if (!buf && len)
        return dsi_fail(DS_ERR_ARG, "ds_safetensors_load_mem: buf is NULL");
    source src = {.mem = buf ? buf : (const void *)"", .size = len,
                  .path = name ? name : DSI_MEM_NAME};
    return load_set(&src, out);
}

/* ---- saving ---- */



static void put_str(dsi_buf *b, const char *s)
{
    dsi_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            dsi_buf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            dsi_buf_put(b, esc, 6);
        } else {
            dsi_buf_put(b, (const char *)&c, 1);
        }
    }
    dsi_buf_put(b, "\"", 1);
}

static ds_status make_header(const ds_tensor_set *s, dsi_buf *h)
{
    char num[64];
    uint64_t off = 0;
    dsi_buf_puts(h, "{");
    int nm = dsi_tensor_set_meta_count(s);
    if (nm) {
        dsi_buf_puts(h, "\"__metadata__\":{");
        for (int i = 0; i < nm; i++) {
            const char *k = dsi_tensor_set_meta_key(s, i);
            if (!dsi_json_utf8_ok(k) || !dsi_json_utf8_ok(ds_tensor_set_meta_get(s, k)))
                return dsi_fail(DS_ERR_ARG, "metadata '%s' is not valid UTF-8", k);
            if (i)
                dsi_buf_puts(h, ",");
            put_str(h, k);
            dsi_buf_puts(h, ":");
            put_str(h, ds_tensor_set_meta_get(s, k));
        }
        dsi_buf_puts(h, "}");
    }
    for (int i = 0; i < ds_tensor_set_count(s); i++) {
        const char *name = ds_tensor_set_name(s, i);
        const ds_tensor *t = ds_tensor_set_at(s, i);
        if (!strcmp(name, "__metadata__"))
            return dsi_fail(DS_ERR_ARG, "a tensor cannot be named '__metadata__'");
        if (!dsi_json_utf8_ok(name))
            return dsi_fail(DS_ERR_ARG, "tensor name '%s' is not valid UTF-8", name);
        if (nm || i)
            dsi_buf_puts(h, ",");
        put_str(h, name);
        dsi_buf_puts(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            dsi_buf_puts(h, num);
        }
        uint64_t nb = (uint64_t)t->numel * 4;
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + nb));
        dsi_buf_puts(h, num);
        off += nb;
    }
    dsi_buf_puts(h, "}");
    while (!h->oom && h->n % 8)
        dsi_buf_puts(h, " ");
    return h->oom ? dsi_fail(DS_ERR_NOMEM, "out of memory for a safetensors header") : DS_OK;
}

static bool write_floats(FILE *fp, const float *x, int64_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return fwrite(x, sizeof(float), (size_t)n, fp) == (size_t)n;
#else
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        unsigned char b[4];
        memcpy(&u, &x[i], 4);
        for (int k = 0; k < 4; k++)
            b[k] = (unsigned char)(u >> (8 * k));
        if (fwrite(b, 1, 4, fp) != 4)
            return false;
    }
    return true;
#endif
}

ds_status ds_safetensors_save(const ds_tensor_set *s, const char *path)
{
    dsi_buf h = { 0 };
    ds_status st = make_header(s, &h);
    if (st != DS_OK) {
        free(h.p);
        return st;
    }
    dsi_wfile w;
    if ((st = dsi_wfile_open(&w, path)) != DS_OK) {
        free(h.p);
        return st;
    }
    unsigned char b8[8];
    for (int k = 0; k < 8; k++)
        b8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    bool ok = fwrite(b8, 1, 8, w.fp) == 8 && fwrite(h.p, 1, h.n, w.fp) == h.n;
    for (int i = 0; ok && i < ds_tensor_set_count(s); i++) {
        const ds_tensor *t = ds_tensor_set_at(s, i);
        ok = write_floats(w.fp, t->data, t->numel);
    }
    if (ok) {
        st = dsi_wfile_commit(&w);
    } else {
        st = dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        dsi_wfile_abort(&w);
    }
    free(h.p);
    return st;
}

/* n floats as little-endian bytes at p. */
static void put_floats(unsigned char *p, const float *x, int64_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n)
        memcpy(p, x, (size_t)n * 4);
#else
    for (int64_t i = 0; i < n; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int k = 0; k < 4; k++)
            p[k] = (unsigned char)(u >> (8 * k));
    }
#endif
}

ds_status ds_safetensors_save_mem(const ds_tensor_set *s, void **buf, size_t *len)
{
    if (!buf || !len)
        return dsi_fail(DS_ERR_ARG, "ds_safetensors_save_mem: %s is NULL", buf ? "len" : "buf");
    *buf = NULL;
    *len = 0;
    if (!s)
        return dsi_fail(DS_ERR_ARG, "ds_safetensors_save_mem: the tensor set is NULL");
    dsi_buf h = { 0 };
    ds_status st = make_header(s, &h);
    size_t total = 8 + h.n;
    for (int i = 0; i < ds_tensor_set_count(s); i++)
        total += (size_t)ds_tensor_set_at(s, i)->numel * 4;
    unsigned char *b = NULL;
    if (st == DS_OK && !(b = total <= ds_get_memory_limit() ? malloc(total) : NULL))
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for a %zu-byte safetensors file%s", total,
                      dsi_mem_note(total));
    if (st == DS_OK) {
        for (int k = 0; k < 8; k++)
            b[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
        memcpy(b + 8, h.p, h.n);
        unsigned char *p = b + 8 + h.n;
        for (int i = 0; i < ds_tensor_set_count(s); i++) {
            const ds_tensor *t = ds_tensor_set_at(s, i);
            put_floats(p, t->data, t->numel);
            p += (size_t)t->numel * 4;
        }
        *buf = b;
        *len = total;
    }
    free(h.p);
    return st;
}
