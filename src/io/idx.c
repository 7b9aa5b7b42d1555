/* idx.c - IDX arrays (the MNIST format, http://yann.lecun.com/exdb/mnist/), plain or
 * gzipped, read from a file's bytes into float32 tensors of the stored shape. */
#include "data.h"

#include <math.h>

/* Magic: 0x00 0x00 <type> <ndim>, then ndim big-endian int32 dims, then the values in
 * big-endian row-major order. */
static int type_size(int type)
{
    switch (type) {
    case 0x08: case 0x09: return 1;   /* unsigned byte, signed byte */
    case 0x0B: return 2;              /* short */
    case 0x0C: case 0x0D: return 4;   /* int, float */
    case 0x0E: return 8;              /* double */
    default: return 0;
    }
}

/* One big-endian element to float; false for an int beyond 2^24 (not exact in float32). */
static bool convert(const unsigned char *p, int type, float *out)
{
    uint64_t u = 0;
    for (int i = 0; i < type_size(type); i++)
        u = u << 8 | p[i];
    switch (type) {
    case 0x08: *out = (float)p[0]; return true;
    case 0x09: *out = (float)(int8_t)p[0]; return true;
    case 0x0B: *out = (float)(int16_t)(uint16_t)u; return true;
    case 0x0C: {
        int32_t v = (int32_t)(uint32_t)u;
        *out = (float)v;
        return v <= (1 << 24) && v >= -(1 << 24);
    }
    case 0x0D: {
        uint32_t b = (uint32_t)u;
        memcpy(out, &b, 4);
        return true;
    }
    default: {
        double d;
        memcpy(&d, &u, 8);
        *out = (float)d;
        return true;
    }
    }
}

/* The file's bytes, read in order: as they are, or inflated when they are gzipped. */
typedef struct {
    const char *path;
    const unsigned char *p;   /* plain: the next byte */
    size_t left;              /* plain: bytes from p on */
    bool gzipped;
    dsi_gz gz;
} reader;

/* Reads up to n bytes; returns the count, or -1 with the message set. A gzip stream cut
 * short (also when only its CRC trailer is missing) sets *cut. */
static long long read_all(reader *r, unsigned char *dst, size_t n, bool *cut)
{
    if (!r->gzipped) {
        size_t k = n < r->left ? n : r->left;
        if (k)
            memcpy(dst, r->p, k);
        r->p += k;
        r->left -= k;
        *cut = false;
        return (long long)k;
    }
    long long got = dsi_gz_read(&r->gz, dst, n);
    if (got < 0)
        dsi_fail(r->gz.status, "%s: %s", r->path, r->gz.msg);
    *cut = r->gz.cut;
    return got;
}

ds_status dsi_idx_load_mem(const unsigned char *buf, size_t size, const char *path,
                           ds_tensor **out)
{
    *out = NULL;
    unsigned char head[4 + 4 * DS_MAX_DIMS + 4];
    reader rd = {.path = path, .p = buf, .left = size, .gzipped = dsi_is_gzip(buf, size)};
    if (rd.gzipped) {
        ds_status gst = dsi_gz_open(&rd.gz, buf, size, path);
        if (gst != DS_OK)
            return gst;
    }
    ds_tensor *t = NULL;
    unsigned char *chunk = NULL;
    ds_status st = DS_ERR_FORMAT;
    bool cut = false;
    long long r = read_all(&rd, head, 4, &cut);
    if (r < 0) {
        st = rd.gz.status;
        goto done;
    }
    if (r < 4 && cut) {
        dsi_fail(DS_ERR_FORMAT, "%s: truncated gzip stream: %lld of 4 magic bytes", path, r);
        goto done;
    }
    if (r < 4 || head[0] || head[1] || !type_size(head[2]) || head[3] < 1) {
        dsi_fail(DS_ERR_FORMAT, "%s: not an IDX file (magic %02x %02x %02x %02x; expected 00 00 "
                 "<type 08/09/0B/0C/0D/0E> <ndim>)", path, r > 0 ? head[0] : 0,
                 r > 1 ? head[1] : 0, r > 2 ? head[2] : 0, r > 3 ? head[3] : 0);
        goto done;
    }
    int type = head[2], nd = head[3], es = type_size(type);
    if (nd > DS_MAX_DIMS) {
        dsi_fail(DS_ERR_FORMAT, "%s: IDX array of %d dimensions (at most %d)", path, nd,
                 DS_MAX_DIMS);
        goto done;
    }
    if ((r = read_all(&rd, head + 4, 4 * (size_t)nd, &cut)) < 0) {
        st = rd.gz.status;
        goto done;
    }
    if (r < 4 * nd) {
        dsi_fail(DS_ERR_FORMAT, "%s: truncated IDX header: expected %d bytes, found %lld", path,
                 4 + 4 * nd, 4 + r);
        goto done;
    }
    int64_t shape[DS_MAX_DIMS];
    uint64_t numel;
    for (int i = 0; i < nd; i++) {
        const unsigned char *p = head + 4 + 4 * i;
        int32_t d = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                              (uint32_t)p[2] << 8 | p[3]);
        if (d < 0) {
            dsi_fail(DS_ERR_FORMAT, "%s: dimension %d is negative (%d)", path, i, (int)d);
            goto done;
        }
        shape[i] = d;
    }
    int64_t count = dsi_numel_limited(nd, shape, DSI_MAX_FILE_ELEMENTS);
    if (count < 0) {
        dsi_fail(DS_ERR_FORMAT, "%s: IDX dims give more than 2^40 elements", path);
        goto done;
    }
    numel = (uint64_t)count;
    /* Check the size before allocating: exact for plain files; gzip (deflate) cannot
     * expand more than about 1032:1. */
    uint64_t need = numel * (uint64_t)es, hsize = 4 + 4 * (uint64_t)nd;
    uint64_t fsize = (uint64_t)size;
    if (!rd.gzipped && need != fsize - hsize) {
        dsi_fail(DS_ERR_FORMAT, "%s: IDX shape %s of %d-byte values needs %llu data bytes, the "
                 "file holds %llu", path, dsi_shape_str(nd, shape), es,
                 (unsigned long long)need, (unsigned long long)(fsize - hsize));
        goto done;
    }
    if (rd.gzipped && need / 1100 > fsize) {
        dsi_fail(DS_ERR_FORMAT, "%s: IDX shape %s needs %llu data bytes, more than a gzip file "
                 "of %llu bytes can hold", path, dsi_shape_str(nd, shape),
                 (unsigned long long)need, (unsigned long long)fsize);
        goto done;
    }
    if (!(t = ds_tensor_create(nd, shape))) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    enum { CHUNK = 1 << 16 };   /* a multiple of every element size */
    if (!(chunk = malloc(CHUNK))) {
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    uint64_t done_bytes = 0;
    int64_t k = 0;
    while (done_bytes < need) {
        size_t want = need - done_bytes > CHUNK ? CHUNK : (size_t)(need - done_bytes);
        if ((r = read_all(&rd, chunk, want, &cut)) < 0) {
            st = rd.gz.status;
            goto done;
        }
        if ((size_t)r < want) {
            dsi_fail(DS_ERR_FORMAT, "%s: truncated IDX data: shape %s needs %llu bytes, found "
                     "%llu%s", path, dsi_shape_str(nd, shape), (unsigned long long)need,
                     (unsigned long long)(done_bytes + (uint64_t)r),
                     cut ? " (the gzip stream is cut short)" : "");
            goto done;
        }
        for (size_t i = 0; i < want; i += (size_t)es, k++)
            if (!convert(chunk + i, type, &t->data[k])) {
                dsi_fail(DS_ERR_FORMAT, "%s: int32 value at element %lld does not fit float32 "
                         "exactly (|x| > 2^24)", path, (long long)k);
                goto done;
            }
        done_bytes += want;
    }
    /* Nothing may follow the data. */
    if ((r = read_all(&rd, chunk ? chunk : head, 1, &cut)) < 0) {
        st = rd.gz.status;
        goto done;
    }
    if (cut) {
        dsi_fail(DS_ERR_FORMAT, "%s: truncated gzip stream: the %llu data bytes are present, "
                 "but its end (CRC and size) is missing", path, (unsigned long long)need);
        goto done;
    }
    if (r > 0) {
        dsi_fail(DS_ERR_FORMAT, "%s: IDX shape %s needs %llu data bytes, but the file holds "
                 "more", path, dsi_shape_str(nd, shape), (unsigned long long)need);
        goto done;
    }
    *out = t;
    t = NULL;
    st = DS_OK;
done:
    free(chunk);
    ds_tensor_free(t);
    if (rd.gzipped)
        dsi_gz_close(&rd.gz);
    return st;
}
