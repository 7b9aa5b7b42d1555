/* npy.c - NumPy .npy arrays from a file or a buffer: read (many dtypes, C or Fortran order)
 * and write float32. */
#include "io.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

/* Finds 'key': in the header dict and returns a pointer just after the colon. */
static const char *dict_value(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\"", key);
        p = strstr(h, pat);
    }
    if (!p)
        return NULL;
    p += strlen(pat);
    while (isspace((unsigned char)*p))
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

typedef struct {
    char kind;       /* f, i, u, b */
    int size;        /* bytes */
    bool big;        /* big-endian */
} dtype;

static bool parse_descr(const char *v, dtype *d)
{
    char q = *v;
    if (q != '\'' && q != '"')
        return false;
    v++;
    char order = *v;
    if (order == '<' || order == '>' || order == '|' || order == '=')
        v++;
    else
        order = '|';
    d->big = order == '>';
    d->kind = *v;
    if (!d->kind)
        return false;
    v++;
    if (!isdigit((unsigned char)*v))
        return false;
    d->size = (int)strtol(v, (char **)&v, 10);
    if (*v != q)
        return false;
    switch (d->kind) {
    case 'f': return d->size == 4 || d->size == 8;
    case 'i': return d->size == 1 || d->size == 2 || d->size == 4 || d->size == 8;
    case 'u': return d->size == 1 || d->size == 2 || d->size == 4 || d->size == 8;
    case 'b': return d->size == 1;
    default: return false;
    }
}

static void load_bytes(unsigned char dst[8], const unsigned char *src, int n, bool big)
{
    bool host_big = false;   /* x86/ARM Linux: little-endian */
    for (int i = 0; i < n && i < 8; i++)
        dst[i] = src[(big != host_big) ? n - 1 - i : i];
}

/* Converts one element; false if an integer cannot be represented exactly in float32. */
static bool convert(const unsigned char *p, dtype d, float *out)
{
    unsigned char b[8];
    load_bytes(b, p, d.size, d.big);
    double v;
    if (d.kind == 'f') {
        if (d.size == 4) {
            float f;
            memcpy(&f, b, 4);
            *out = f;
            return true;
        }
        double x;
        memcpy(&x, b, 8);
        *out = (float)x;
        return true;
    }
    if (d.kind == 'b') {
        *out = b[0] ? 1.0f : 0.0f;
        return true;
    }
    if (d.kind == 'u') {
        uint64_t u = 0;
        memcpy(&u, b, (size_t)d.size);   /* little-endian host */
        v = (double)u;
        if (u > (1ULL << 24))
            return false;
    } else {
        int64_t s;
        switch (d.size) {
        case 1: { int8_t t; memcpy(&t, b, 1); s = t; break; }
        case 2: { int16_t t; memcpy(&t, b, 2); s = t; break; }
        case 4: { int32_t t; memcpy(&t, b, 4); s = t; break; }
        default: memcpy(&s, b, 8); break;
        }
        if (s > (1LL << 24) || s < -(1LL << 24))
            return false;
        v = (double)s;
    }
    *out = (float)v;
    return true;
}

/* Reads a whole .npy file's bytes, buf[0..size); path names it in messages. */
static ds_status parse(const unsigned char *buf, size_t size, const char *path, ds_tensor **out)
{
    ds_tensor *t = NULL;
    ds_status st = DS_ERR_FORMAT;
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        dsi_fail(DS_ERR_FORMAT, "%s: not a NumPy .npy file (bad magic)", path);
        goto done;
    }
    int major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) {
            dsi_fail(DS_ERR_FORMAT, "%s: truncated header", path);
            goto done;
        }
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        dsi_fail(DS_ERR_FORMAT, "%s: .npy format version %d.%d is not supported (1.0 to 3.0)",
                 path, major, buf[7]);
        goto done;
    }
    if (hlen > size - hstart) {
        dsi_fail(DS_ERR_FORMAT, "%s: truncated .npy header (%zu bytes announced, %zu present)",
                 path, hlen, size - hstart);
        goto done;
    }
    char *h = malloc(hlen + 1);
    if (!h) {
        st = dsi_fail(DS_ERR_NOMEM, "out of memory reading '%s'", path);
        goto done;
    }
    memcpy(h, buf + hstart, hlen);
    h[hlen] = 0;
    dtype d;
    const char *v = dict_value(h, "descr");
    if (!v || !parse_descr(v, &d)) {
        char shown[40] = "?";
        if (v)
            snprintf(shown, sizeof shown, "%.*s", (int)strcspn(v, ",}"), v);
        dsi_fail(DS_ERR_FORMAT, "%s: dtype %s is not supported (float32/64, int8-64, uint8-64, "
                 "bool)", path, shown);
        free(h);
        goto done;
    }
    v = dict_value(h, "fortran_order");
    bool fortran = v && !strncmp(v, "True", 4);
    if (!v || (!fortran && strncmp(v, "False", 5))) {
        dsi_fail(DS_ERR_FORMAT, "%s: bad or missing fortran_order in the header", path);
        free(h);
        goto done;
    }
    v = dict_value(h, "shape");
    int64_t shape[DS_MAX_DIMS];
    int nd = 0;
    bool ok = v && *v == '(';
    if (ok) {
        v++;
        for (;;) {
            while (isspace((unsigned char)*v) || *v == ',')
                v++;
            if (*v == ')')
                break;
            if (!isdigit((unsigned char)*v) || nd == DS_MAX_DIMS) {
                ok = false;
                break;
            }
            errno = 0;
            long long x = strtoll(v, (char **)&v, 10);
            if (errno || x < 0 || x > (1LL << 40)) {
                ok = false;
                break;
            }
            shape[nd++] = x;
        }
    }
    free(h);
    if (!ok) {
        dsi_fail(DS_ERR_FORMAT, "%s: bad shape in the header (at most %d dimensions, each an "
                 "integer from 0 to 2^40)", path, DS_MAX_DIMS);
        goto done;
    }
    int64_t numel = dsi_numel_limited(nd, shape, DSI_MAX_FILE_ELEMENTS);
    if (numel < 0) {
        dsi_fail(DS_ERR_FORMAT, "%s: shape %s in the header has more than 2^40 elements", path,
                 dsi_shape_str(nd, shape));
        goto done;
    }
    size_t need = (size_t)numel * (size_t)d.size, have = size - hstart - hlen;
    if (numel > (int64_t)(size / (size_t)d.size) + 1 || need > have) {
        dsi_fail(DS_ERR_FORMAT, "%s: truncated data: shape %s needs %zu bytes, the file holds %zu",
                 path, dsi_shape_str(nd, shape), need, have);
        goto done;
    }
    t = ds_tensor_create(nd, shape);
    if (!t) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    const unsigned char *p = buf + hstart + hlen;
    for (int64_t i = 0; i < numel; i++) {
        /* Fortran order: element i of the file is at the transposed index. */
        int64_t dst = i;
        if (fortran && nd > 1) {
            int64_t rem = i, idx[DS_MAX_DIMS];
            for (int k = 0; k < nd; k++) {
                idx[k] = rem % shape[k];
                rem /= shape[k];
            }
            dst = 0;
            for (int k = 0; k < nd; k++)
                dst = dst * shape[k] + idx[k];
        }
        if (!convert(p + (size_t)i * (size_t)d.size, d, &t->data[dst])) {
            dsi_fail(DS_ERR_FORMAT, "%s: integer value at element %lld does not fit float32 "
                     "exactly (|x| > 2^24)", path, (long long)i);
            goto done;
        }
    }
    *out = t;
    t = NULL;
    st = DS_OK;
done:
    ds_tensor_free(t);
    return st;
}

ds_status ds_npy_load(const char *path, ds_tensor **out)
{
    *out = NULL;
    unsigned char *buf;
    size_t size;
    ds_status st = dsi_read_file(path, &buf, &size);
    if (st != DS_OK)
        return st;
    st = parse(buf, size, path, out);
    free(buf);
    return st;
}

ds_status ds_npy_load_mem(const void *buf, size_t len, const char *name, ds_tensor **out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_npy_load_mem: out is NULL");
    *out = NULL;
    if (!buf && len)
        return dsi_fail(DS_ERR_ARG, "ds_npy_load_mem: buf is NULL");
    return parse(buf ? buf : "", len, name ? name : DSI_MEM_NAME, out);
}

/* Magic, version 1.0, header length and the header dict padded with spaces to a multiple of
 * 64 bytes ending in '\n', as NumPy writes it; returns its length. */
static size_t make_header(const ds_tensor *t, char h[600])
{
    char shape[256] = "(";
    for (int i = 0; i < t->ndim; i++)
        dsi_snprintf_cat(shape, sizeof shape, "%lld%s", (long long)t->shape[i],
                         (t->ndim == 1 || i < t->ndim - 1) ? ", " : "");
    dsi_snprintf_cat(shape, sizeof shape, ")");
    char *d = h + 10;
    int n = snprintf(d, 512, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    memset(d + n, ' ', (size_t)pad);
    d[n + pad] = '\n';
    int hlen = n + pad + 1;
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                   (unsigned char)(hlen & 255), (unsigned char)(hlen >> 8)};
    memcpy(h, pre, 10);
    return 10 + (size_t)hlen;
}

ds_status ds_npy_save(const ds_tensor *t, const char *path)
{
    char h[600];
    size_t hn = make_header(t, h);
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, path);
    if (st != DS_OK)
        return st;
    fwrite(h, 1, hn, w.fp);
    if (t->numel)
        fwrite(t->data, sizeof(float), (size_t)t->numel, w.fp);
    return dsi_wfile_commit(&w);
}

ds_status ds_npy_save_mem(const ds_tensor *t, void **buf, size_t *len)
{
    if (!buf || !len)
        return dsi_fail(DS_ERR_ARG, "ds_npy_save_mem: %s is NULL", buf ? "len" : "buf");
    *buf = NULL;
    *len = 0;
    if (!t)
        return dsi_fail(DS_ERR_ARG, "ds_npy_save_mem: tensor is NULL");
    char h[600];
    size_t hn = make_header(t, h), nb = (size_t)t->numel * sizeof(float);
    unsigned char *b = hn + nb <= ds_get_memory_limit() ? malloc(hn + nb) : NULL;
    if (!b)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a %zu-byte .npy file%s", hn + nb,
                        dsi_mem_note(hn + nb));
    memcpy(b, h, hn);
    if (nb)
        memcpy(b + hn, t->data, nb);
    *buf = b;
    *len = hn + nb;
    return DS_OK;
}
