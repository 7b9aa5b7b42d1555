/* gzmem.c - gzip data held in memory, inflated in pieces the way zlib's gzread reads a file,
 * so that a file and the same bytes in a buffer read alike. */
#include "io.h"

#include <limits.h>

bool dsi_is_gzip(const unsigned char *buf, size_t len)
{
    return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

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
