/* gzmem.c - gzip data held in memory, inflated in pieces the way zlib's gzread reads a file,
 * so that a file and the same bytes in a buffer read alike. */
#include "io.h"

#include <limits.h>

bool dsi_is_gzip(const unsigned char *buf, size_t len)
{
    return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

#ifdef DS_NO_ZLIB
/* Without zlib (the WebAssembly build): gzipped data is refused by name. */
ds_status dsi_gz_open(dsi_gz *g, const unsigned char *buf, size_t len, const char *name)
{
    (void)buf;
    (void)len;
    memset(g, 0, sizeof *g);
    g->done = true;
    return dsi_fail(DS_ERR_FORMAT, "%s: gzip data, and deepsky was built without zlib "
                    "(decompress the file first)", name);
}

long long dsi_gz_read(dsi_gz *g, unsigned char *dst, size_t n)
{
    (void)dst;
    (void)n;
    g->status = DS_ERR_FORMAT;
    g->msg = "built without zlib";
    return -1;
}

void dsi_gz_close(dsi_gz *g)
{
    (void)g;
}
#else
ds_status dsi_gz_open(dsi_gz *g, const unsigned char *buf, size_t len, const char *name)
{
    memset(g, 0, sizeof *g);
    /* 16 + MAX_WBITS: gzip wrapping only, as gzread */
    if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory starting zlib", name);
    g->z.next_in = (unsigned char *)buf;   /* zlib only reads it */
    g->rest = len;
    g->member = true;
    return DS_OK;
}

/* Hands zlib the next slice of input once it has used the last one. */
static void feed(dsi_gz *g)
{
    if (g->z.avail_in == 0 && g->rest) {
        uInt k = g->rest > UINT_MAX ? UINT_MAX : (uInt)g->rest;
        g->z.avail_in = k;
        g->rest -= k;
    }
}

static long long fail(dsi_gz *g, ds_status s, const char *msg)
{
    g->status = s;
    g->msg = msg;
    g->done = true;
    return -1;
}

long long dsi_gz_read(dsi_gz *g, unsigned char *dst, size_t n)
{
    size_t got = 0;
    while (got < n && !g->done) {
        if (!g->member) {
            /* after a member: another one, or trailing bytes that gzread ignores */
            if (!dsi_is_gzip(g->z.next_in, (size_t)g->z.avail_in + g->rest)) {
                g->done = true;
                break;
            }
            inflateReset(&g->z);
            g->member = true;
        }
        feed(g);
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        g->z.next_out = dst + got;
        g->z.avail_out = (uInt)want;
        int r = inflate(&g->z, Z_NO_FLUSH);
        got += want - g->z.avail_out;
        switch (r) {
        case Z_OK: break;
        case Z_STREAM_END: g->member = false; break;
        case Z_BUF_ERROR:   /* no progress: the input ran out inside a member */
            g->cut = true;
            g->done = true;
            break;
        case Z_MEM_ERROR: return fail(g, DS_ERR_NOMEM, "out of memory");
        case Z_DATA_ERROR:
            return fail(g, DS_ERR_FORMAT, g->z.msg ? g->z.msg : "compressed data error");
        default: return fail(g, DS_ERR_FORMAT, "internal error: inflate stream corrupt");
        }
    }
    return (long long)got;
}

void dsi_gz_close(dsi_gz *g)
{
    inflateEnd(&g->z);
}
#endif

ds_status dsi_gunzip(const unsigned char *gzbuf, size_t gzlen, const char *path, size_t pad,
                     unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    dsi_gz gz;
    ds_status st = dsi_gz_open(&gz, gzbuf, gzlen, path);
    if (st != DS_OK)
        return st;
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory decompressing (%zu bytes)", path, n);
            break;
        }
        if (n == cap) {
            /* a gzip bomb stops at the memory limit instead of taking all memory */
            if (2 * cap > ds_get_memory_limit()) {
                st = dsi_fail(DS_ERR_NOMEM, "%s: decompresses to more than %zu bytes%s", path,
                              n, dsi_mem_note(2 * cap));
                break;
            }
            unsigned char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, 2 * cap) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        long long r = dsi_gz_read(&gz, buf + n, cap - n);
        if (r < 0 || gz.cut) {
            st = dsi_fail(r < 0 ? gz.status : DS_ERR_FORMAT, "%s: truncated or corrupt gzip "
                          "data: %s", path, r < 0 ? gz.msg : "unexpected end of file");
            break;
        }
        n += (size_t)r;
        if (n < cap)
            break;   /* the end of the data */
    }
    dsi_gz_close(&gz);
    size_t padded = pad > 1 ? (n + pad - 1) / pad * pad : n;
    unsigned char *nb = st == DS_OK && padded > cap ? realloc(buf, padded) : buf;
    if (!nb)
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory decompressing (%zu bytes)", path, n);
    if (st != DS_OK) {
        free(nb ? nb : buf);
        return st;
    }
    memset(nb + n, 0, padded - n);
    *out = nb;
    *len = n;
    return DS_OK;
}
