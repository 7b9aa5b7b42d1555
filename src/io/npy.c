/* npy.c - NumPy .npy arrays from a file or a buffer: read (many dtypes, C or Fortran order;
 * a float32 file is mapped, not copied) and write float32. */
#include "data.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* What a .npy header says. */
typedef struct {
    dtype d;
    bool fortran;
    int nd;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    size_t offset;   /* of the data, from the start of the file */
} npy_header;

/* The magic, version and header length of buf[0..avail); *hlen and *hstart on success. */
static ds_status parse_preamble(const unsigned char *buf, size_t avail, const char *path,
                                size_t *hlen, size_t *hstart)
{
    if (avail < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return dsi_fail(DS_ERR_FORMAT, "%s: not a NumPy .npy file (bad magic)", path);
    int major = buf[6];
    if (major == 1) {
        *hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        *hstart = 10;
    } else if (major == 2 || major == 3) {
        if (avail < 12)
            return dsi_fail(DS_ERR_FORMAT, "%s: truncated header", path);
        *hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
                (size_t)buf[11] << 24;
        *hstart = 12;
    } else {
        return dsi_fail(DS_ERR_FORMAT, "%s: .npy format version %d.%d is not supported (1.0 "
                        "to 3.0)", path, major, buf[7]);
    }
    return DS_OK;
}

/* The shape tuple at v ("(2, 3)"), into h. */
static bool parse_shape(const char *v, npy_header *h)
{
    h->nd = 0;
    if (!v || *v != '(')
        return false;
    v++;
    for (;;) {
        while (isspace((unsigned char)*v) || *v == ',')
            v++;
        if (*v == ')')
            return true;
        if (!isdigit((unsigned char)*v) || h->nd == DS_MAX_DIMS)
            return false;
        errno = 0;
        long long x = strtoll(v, (char **)&v, 10);
        if (errno || x < 0 || x > (1LL << 40))
            return false;
        h->shape[h->nd++] = x;
    }
}

/* The header dict, h[0..hlen), NUL-terminated. */
static ds_status parse_dict(const char *dict, const char *path, npy_header *h)
{
    const char *v = dict_value(dict, "descr");
    if (!v || !parse_descr(v, &h->d)) {
        char shown[40] = "?";
        if (v)
            snprintf(shown, sizeof shown, "%.*s", (int)strcspn(v, ",}"), v);
        return dsi_fail(DS_ERR_FORMAT, "%s: dtype %s is not supported (float32/64, int8-64, "
                        "uint8-64, bool)", path, shown);
    }
    v = dict_value(dict, "fortran_order");
    h->fortran = v && !strncmp(v, "True", 4);
    if (!v || (!h->fortran && strncmp(v, "False", 5)))
        return dsi_fail(DS_ERR_FORMAT, "%s: bad or missing fortran_order in the header", path);
    if (!parse_shape(dict_value(dict, "shape"), h))
        return dsi_fail(DS_ERR_FORMAT, "%s: bad shape in the header (at most %d dimensions, "
                        "each an integer from 0 to 2^40)", path, DS_MAX_DIMS);
    return DS_OK;
}

/* Parses the header at the start of buf[0..avail) of a file of size bytes (avail <= size;
 * the header must lie within avail) and checks that the data fit in the file. */
static ds_status parse_header(const unsigned char *buf, size_t avail, size_t size,
                              const char *path, npy_header *h)
{
    size_t hlen, hstart;
    ds_status st = parse_preamble(buf, avail, path, &hlen, &hstart);
    if (st)
        return st;
    if (hlen > avail - hstart)
        return dsi_fail(DS_ERR_FORMAT, "%s: truncated .npy header (%zu bytes announced, %zu "
                        "present)", path, hlen, size - hstart);
    char *dict = malloc(hlen + 1);
    if (!dict)
        return dsi_fail(DS_ERR_NOMEM, "out of memory reading '%s'", path);
    memcpy(dict, buf + hstart, hlen);
    dict[hlen] = 0;
    st = parse_dict(dict, path, h);
    free(dict);
    if (st)
        return st;
    h->numel = dsi_numel_limited(h->nd, h->shape, DSI_MAX_FILE_ELEMENTS);
    if (h->numel < 0)
        return dsi_fail(DS_ERR_FORMAT, "%s: shape %s in the header has more than 2^40 elements",
                        path, dsi_shape_str(h->nd, h->shape));
    h->offset = hstart + hlen;
    size_t need = (size_t)h->numel * (size_t)h->d.size, have = size - h->offset;
    if (h->numel > (int64_t)(size / (size_t)h->d.size) + 1 || need > have)
        return dsi_fail(DS_ERR_FORMAT, "%s: truncated data: shape %s needs %zu bytes, the file "
                        "holds %zu", path, dsi_shape_str(h->nd, h->shape), need, have);
    return DS_OK;
}

/* Whether the data can be used as they lie: float32, little-endian (this host's order), C
 * order, 4-byte aligned. */
static bool plain(const npy_header *h)
{
    return h->d.kind == 'f' && h->d.size == 4 && !h->d.big && (!h->fortran || h->nd <= 1) &&
           h->offset % sizeof(float) == 0;
}

/* The data after the header h of buf, converted to a new float32 tensor. */
static ds_status convert_data(const unsigned char *buf, const npy_header *h, const char *path,
                              ds_tensor **out)
{
    ds_tensor *t = ds_tensor_create(h->nd, h->shape);
    if (!t)
        return DS_ERR_NOMEM;
    const unsigned char *p = buf + h->offset;
    for (int64_t i = 0; i < h->numel; i++) {
        /* Fortran order: element i of the file is at the transposed index. */
        int64_t dst = i;
        if (h->fortran && h->nd > 1) {
            int64_t rem = i, idx[DS_MAX_DIMS];
            for (int k = 0; k < h->nd; k++) {
                idx[k] = rem % h->shape[k];
                rem /= h->shape[k];
            }
            dst = 0;
            for (int k = 0; k < h->nd; k++)
                dst = dst * h->shape[k] + idx[k];
        }
        if (!convert(p + (size_t)i * (size_t)h->d.size, h->d, &t->data[dst])) {
            ds_tensor_free(t);
            return dsi_fail(DS_ERR_FORMAT, "%s: integer value at element %lld does not fit "
                            "float32 exactly (|x| > 2^24)", path, (long long)i);
        }
    }
    *out = t;
    return DS_OK;
}

/* Reads a whole .npy file's bytes, buf[0..size); path names it in messages. */
static ds_status parse(const unsigned char *buf, size_t size, const char *path, ds_tensor **out)
{
    npy_header h;
    ds_status st = parse_header(buf, size, size, path, &h);
    return st ? st : convert_data(buf, &h, path, out);
}

/* The file mapped whole (private: writes to the tensor never reach the file); false (no
 * message) when it cannot be mapped: empty, not a regular file, or mmap refused. */
static bool map_file(const char *path, void **map, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    bool ok = fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
              (uint64_t)sb.st_size <= SIZE_MAX;
    if (ok) {
        *size = (size_t)sb.st_size;
        *map = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        ok = *map != MAP_FAILED;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

ds_status ds_npy_load(const char *path, ds_tensor **out)
{
    *out = NULL;
    void *map;
    size_t size;
    if (map_file(path, &map, &size)) {
        npy_header h;
        ds_status st = parse_header(map, size, size, path, &h);
        if (!st && plain(&h)) {
            *out = dsi_tensor_mapped(h.nd, h.shape, map, size, h.offset);
            if (*out)
                return DS_OK;
            st = DS_ERR_NOMEM;
        } else if (!st) {
            st = convert_data(map, &h, path, out);
        }
        munmap(map, size);
        return st;
    }
    unsigned char *buf;
    ds_status st = dsi_read_file(path, &buf, &size);   /* a FIFO, a device: read whole */
    if (st != DS_OK)
        return st;
    st = parse(buf, size, path, out);
    free(buf);
    return st;
}

ds_status dsi_npy_probe(const char *path, dsi_npy_info *info)
{
    memset(info, 0, sizeof *info);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dsi_fail(DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    unsigned char pre[12];
    size_t got = fstat(fileno(fp), &sb) == 0 ? fread(pre, 1, sizeof pre, fp) : 0;
    size_t size = sb.st_size > 0 ? (size_t)sb.st_size : 0, hlen = 0, hstart = 0;
    unsigned char *buf = NULL;
    ds_status st = parse_preamble(pre, got, path, &hlen, &hstart);
    if (!st && hlen > size - hstart)   /* as parse_header words it */
        st = parse_header(pre, got, size, path, &(npy_header){0});
    if (!st && !(buf = malloc(hstart + hlen)))
        st = dsi_fail(DS_ERR_NOMEM, "out of memory reading '%s'", path);
    if (!st && (fseek(fp, 0, SEEK_SET) || fread(buf, 1, hstart + hlen, fp) != hstart + hlen))
        st = dsi_fail(DS_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    npy_header h;
    if (!st && !(st = parse_header(buf, hstart + hlen, size, path, &h))) {
        info->ndim = h.nd;
        memcpy(info->shape, h.shape, sizeof h.shape);
        info->plain = plain(&h);
        info->offset = h.offset;
        info->file_size = size;
    }
    free(buf);
    fclose(fp);
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
