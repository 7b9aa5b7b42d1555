/* idx.c - IDX arrays (the MNIST format, http://yann.lecun.com/exdb/mnist/), plain or
 * gzipped, read from a file's bytes into float32 tensors of the stored shape; a large
 * gzipped file is inflated on the calling thread while another converts its values. */
#include "data.h"

#include <math.h>
#include <pthread.h>

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

/* n elements of src into dst; the index of the first int32 beyond 2^24, or -1. Bytes,
 * the usual case, take a loop of their own that vectorizes. */
static int64_t convert_block(const unsigned char *src, int type, int64_t n, float *dst)
{
    if (type == 0x08) {
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)src[i];
        return -1;
    }
    if (type == 0x09) {
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)(int8_t)src[i];
        return -1;
    }
    int es = type_size(type);
    for (int64_t i = 0; i < n; i++)
        if (!convert(src + i * es, type, &dst[i]))
            return i;
    return -1;
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

enum { CHUNK = 1 << 18, SLOTS = 4 };   /* CHUNK: a multiple of every element size */

/* The values of an IDX file: where they go, and the first that does not fit. */
typedef struct {
    reader *rd;
    int type, es, nd;
    const int64_t *shape;
    float *dst;
    uint64_t need;   /* data bytes */
    int64_t bad;     /* the first int32 beyond 2^24, or -1 */
} values;

static ds_status truncated(const values *v, uint64_t have, bool cut)
{
    return dsi_fail(DS_ERR_FORMAT, "%s: truncated IDX data: shape %s needs %llu bytes, found "
                    "%llu%s", v->rd->path, dsi_shape_str(v->nd, v->shape),
                    (unsigned long long)v->need, (unsigned long long)have,
                    cut ? " (the gzip stream is cut short)" : "");
}

/* Reads want bytes at offset done of the values into buf; a short read fails. */
static ds_status read_chunk(const values *v, uint64_t done, unsigned char *buf, size_t want)
{
    bool cut = false;
    long long r = read_all(v->rd, buf, want, &cut);
    if (r < 0)
        return v->rd->gz.status;
    return (size_t)r < want ? truncated(v, done + (uint64_t)r, cut) : DS_OK;
}

static size_t chunk_at(const values *v, uint64_t done)
{
    return v->need - done > CHUNK ? CHUNK : (size_t)(v->need - done);
}

/* Read and convert in turn, chunk by chunk, on the calling thread. */
static ds_status read_serial(values *v)
{
    unsigned char *chunk = malloc(CHUNK);
    ds_status st = chunk ? DS_OK : dsi_fail(DS_ERR_NOMEM, "%s: out of memory", v->rd->path);
    for (uint64_t done = 0; !st && done < v->need; done += CHUNK) {
        size_t want = chunk_at(v, done);
        if ((st = read_chunk(v, done, chunk, want)))
            break;
        int64_t b = convert_block(chunk, v->type, (int64_t)want / v->es,
                                  v->dst + done / (uint64_t)v->es);
        if (b >= 0) {
            v->bad = (int64_t)(done / (uint64_t)v->es) + b;
            st = DS_ERR_FORMAT;   /* the caller says which value */
        }
    }
    free(chunk);
    return st;
}

/* The calling thread inflates chunks into a ring of SLOTS while a converter thread turns
 * them into floats in order; each value is still written once, straight into the tensor. */
typedef struct {
    values *v;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *ring;      /* SLOTS chunks */
    uint64_t at[SLOTS];       /* offset of each slot's bytes in the values */
    size_t len[SLOTS];
    int64_t made, used;       /* chunks inflated, chunks converted */
    bool end, stop;           /* no more chunks; a bad value: stop reading */
} pipeline;

static void *converter(void *arg)
{
    pipeline *p = arg;
    values *v = p->v;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->used == p->made && !p->end)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->used == p->made)
            break;
        int k = (int)(p->used % SLOTS);
        pthread_mutex_unlock(&p->mu);
        int64_t b = convert_block(p->ring + (size_t)k * CHUNK, v->type,
                                  (int64_t)p->len[k] / v->es, v->dst + p->at[k] / (uint64_t)v->es);
        pthread_mutex_lock(&p->mu);
        p->used++;
        if (b >= 0) {
            v->bad = (int64_t)(p->at[k] / (uint64_t)v->es) + b;
            p->stop = true;
        }
        pthread_cond_broadcast(&p->cv);
        if (p->stop)
            break;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The inflating side. A bad value precedes any later read error, as when serial. */
static ds_status produce(pipeline *p)
{
    values *v = p->v;
    ds_status st = DS_OK;
    for (uint64_t done = 0; !st && done < v->need; done += CHUNK) {
        pthread_mutex_lock(&p->mu);
        while (p->made - p->used == SLOTS && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        int k = (int)(p->made % SLOTS);
        size_t want = chunk_at(v, done);
        if ((st = read_chunk(v, done, p->ring + (size_t)k * CHUNK, want)))
            break;
        pthread_mutex_lock(&p->mu);
        p->at[k] = done;
        p->len[k] = want;
        p->made++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    p->end = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return st;
}

static ds_status read_pipelined(values *v)
{
    pipeline p = {.v = v, .ring = malloc((size_t)SLOTS * CHUNK)};
    pthread_t th;
    if (!p.ring)
        return read_serial(v);   /* less memory, one thread */
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    ds_status st;
    if (pthread_create(&th, NULL, converter, &p) != 0) {
        st = read_serial(v);
    } else {
        st = produce(&p);
        pthread_join(th, NULL);
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    free(p.ring);
    return v->bad >= 0 ? DS_ERR_FORMAT : st;
}

ds_status dsi_idx_load_mem_mode(const unsigned char *buf, size_t size, const char *path,
                                int pipelined, ds_tensor **out)
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
    if (!(t = dsi_tensor_uninit(nd, shape))) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    values v = {&rd, type, es, nd, shape, t->data, need, -1};
    if (pipelined < 0)   /* worth a thread: a large gzipped file, and threads allowed */
        pipelined = rd.gzipped && need >= 8 * CHUNK && ds_get_num_threads() > 1;
    st = pipelined && rd.gzipped ? read_pipelined(&v) : read_serial(&v);
    if (v.bad >= 0)
        st = dsi_fail(DS_ERR_FORMAT, "%s: int32 value at element %lld does not fit float32 "
                      "exactly (|x| > 2^24)", path, (long long)v.bad);
    if (st)
        goto done;
    st = DS_ERR_FORMAT;
    if (type < 0x0D)
        dsi_tensor_set_finite(t, true);   /* integers: finite, nothing to check */
    /* Nothing may follow the data. */
    if ((r = read_all(&rd, head, 1, &cut)) < 0) {
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
    ds_tensor_free(t);
    if (rd.gzipped)
        dsi_gz_close(&rd.gz);
    return st;
}

ds_status dsi_idx_load_mem(const unsigned char *buf, size_t size, const char *path,
                           ds_tensor **out)
{
    return dsi_idx_load_mem_mode(buf, size, path, -1, out);
}
