/* test_memio.c - loaders from memory: every format read from a buffer gives the same bits,
 * status and message as the same bytes read from a file (fixtures and files written here),
 * truncation at every byte from memory, messages that name the buffer, the memory writers,
 * gzip (members, trailing bytes, bombs) and hostile headers from memory. Buffers are
 * allocated to their exact size so that ASan sees any read past their end. */
#include "test.h"

#include "../src/internal.h"

#include <dirent.h>
#include <fitsio.h>
#include <stdarg.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ---- */

static int make_dir(char *dir, size_t cap) { return test_tmpdir(dir, cap, "memio") ? 0 : 1; }

static void rm_dir(const char *dir) { test_rm_rf(dir); }

static const char *in_dir(const char *dir, const char *name)
{
    static char bufs[4][600];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* A copy of n bytes in a block of exactly n bytes (1 for n == 0). */
static unsigned char *exact_copy(const void *src, size_t n)
{
    unsigned char *b = malloc(n ? n : 1);
    if (b && n)
        memcpy(b, src, n);
    return b;
}

/* A file's bytes in a block of exactly their size (NULL if unreadable). */
static unsigned char *read_bytes(const char *path, size_t *n)
{
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && len > 0 && fread(b, 1, (size_t)len, fp) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *n = b ? (size_t)len : 0;
    return b;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    remove(path);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 1;
    size_t w = n ? fwrite(data, 1, n, fp) : 0;
    return fclose(fp) != 0 || w != n;
}

static int write_text(const char *path, const char *s) { return write_bytes(path, s, strlen(s)); }

static ds_tensor *random_tensor(int ndim, const int64_t *shape, uint64_t seed)
{
    ds_rng r;
    ds_rng_seed(&r, seed);
    ds_tensor *t = ds_tensor_create(ndim, shape);
    if (t)
        fill_uniform(ds_tensor_data(t), ds_tensor_numel(t), -3, 3, &r);
    return t;
}

/* Same shape and the same bits (NaN payloads included). */
static bool same_bits(const ds_tensor *a, const ds_tensor *b)
{
    return a && b && a->ndim == b->ndim &&
           !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(int64_t)) &&
           !memcmp(a->data, b->data, (size_t)a->numel * sizeof(float));
}

/* Same tensors (names, order, shapes, bits) and the same metadata. */
static bool same_sets(const ds_tensor_set *a, const ds_tensor_set *b)
{
    if (!a || !b || ds_tensor_set_count(a) != ds_tensor_set_count(b) ||
        dsi_tensor_set_meta_count(a) != dsi_tensor_set_meta_count(b))
        return false;
    for (int i = 0; i < ds_tensor_set_count(a); i++)
        if (strcmp(ds_tensor_set_name(a, i), ds_tensor_set_name(b, i)) ||
            !same_bits(ds_tensor_set_at(a, i), ds_tensor_set_at(b, i)))
            return false;
    for (int i = 0; i < dsi_tensor_set_meta_count(a); i++) {
        const char *k = dsi_tensor_set_meta_key(a, i), *v = ds_tensor_set_meta_get(b, k);
        if (!v || strcmp(v, ds_tensor_set_meta_get(a, k)))
            return false;
    }
    return true;
}

/* What a load returned: the status and, on failure, the message. */
typedef struct {
    ds_status st;
    char msg[600];
} outcome;

static outcome result(ds_status st)
{
    outcome o = {.st = st};
    snprintf(o.msg, sizeof o.msg, "%s", st == DS_OK ? "" : ds_last_error());
    return o;
}

static bool same_outcome(const outcome *a, const outcome *b)
{
    return a->st == b->st && !strcmp(a->msg, b->msg);
}

/* ---- every format from a file and from memory ---- */

/* Loads path with o from the file and from its bytes three ways (named path with no format;
 * named "upload" with format; unnamed with the file's base name as format): the same status,
 * message (the first way, named alike) and bits, and the buffer left as it was. */
static int array_matches(const char *path, const char *format, const ds_read_opts *o,
                         char *msg, size_t cap)
{
    size_t n;
    unsigned char *bytes = read_bytes(path, &n), *keep = bytes ? exact_copy(bytes, n) : NULL;
    if (!keep) {
        free(bytes);
        return snprintf(msg, cap, "cannot read %s", path) * 0 + 1;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    ds_tensor *f = NULL, *m[3] = {NULL, NULL, NULL};
    outcome of = result(ds_array_load(path, o, &f)), om[3];
    om[0] = result(ds_array_load_mem(bytes, n, path, NULL, o, &m[0]));
    om[1] = result(ds_array_load_mem(bytes, n, "upload", format, o, &m[1]));
    om[2] = result(ds_array_load_mem(bytes, n, NULL, base, o, &m[2]));
    int rc = 0;
    if (!same_outcome(&of, &om[0]))
        rc = snprintf(msg, cap, "%s: file %s '%s', memory %s '%s'", path, ds_status_name(of.st),
                      of.msg, ds_status_name(om[0].st), om[0].msg) * 0 + 1;
    for (int k = 0; k < 3 && !rc; k++) {
        if (om[k].st != of.st || (of.st == DS_OK && !same_bits(f, m[k])))
            rc = snprintf(msg, cap, "%s, way %d (format %s): %s '%s', the file gave %s", path, k,
                          k == 1 ? format : k == 2 ? base : "none", ds_status_name(om[k].st),
                          om[k].msg, ds_status_name(of.st)) * 0 + 1;
    }
    if (!rc && memcmp(bytes, keep, n))
        rc = snprintf(msg, cap, "%s: loading from memory changed the buffer", path) * 0 + 1;
    ds_tensor_free(f);
    for (int k = 0; k < 3; k++)
        ds_tensor_free(m[k]);
    free(bytes);
    free(keep);
    return rc;
}

/* ds_table_columns from the file and from memory: the same names or the same failure. */
static int columns_match(const char *path, const char *format, const ds_read_opts *o,
                         char *msg, size_t cap)
{
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    char *a = ds_table_columns(path, o);
    outcome oa = result(a ? DS_OK : DS_ERR_FORMAT);
    char *b = ds_table_columns_mem(bytes, n, path, format, o);
    outcome ob = result(b ? DS_OK : DS_ERR_FORMAT);
    int rc = 0;
    if (!same_outcome(&oa, &ob) || (a && strcmp(a, b)))
        rc = snprintf(msg, cap, "%s columns: file '%s' (%s), memory '%s' (%s)", path,
                      a ? a : "-", oa.msg, b ? b : "-", ob.msg) * 0 + 1;
    free(a);
    free(b);
    free(bytes);
    return rc;
}

TEST(memio_fixtures_match_files)
{
    DIR *d = opendir("tests/fixtures");
    if (!d)
        FAIL("tests/fixtures not found (run from the repository root)");
    int files = 0, rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        bool st = len > 12 && !strcmp(e->d_name + len - 12, ".safetensors");
        bool npy = len > 4 && !strcmp(e->d_name + len - 4, ".npy");
        if (!st && !npy)
            continue;
        char path[600];
        snprintf(path, sizeof path, "tests/fixtures/%s", e->d_name);
        files++;
        if (npy) {
            rc = array_matches(path, "npy", NULL, msg_, cap_);
            continue;
        }
        size_t n;
        unsigned char *bytes = read_bytes(path, &n);
        ds_tensor_set *a = NULL, *b = NULL;
        if (ds_safetensors_load(path, &a) != DS_OK ||
            ds_safetensors_load_mem(bytes, n, path, &b) != DS_OK || !same_sets(a, b))
            rc = snprintf(msg_, cap_, "%s: from memory differs (%s)", path,
                          ds_last_error()) * 0 + 1;
        ds_tensor_set_free(a);
        ds_tensor_set_free(b);
        free(bytes);
    }
    closedir(d);
    if (!rc && files < 20)
        FAIL("only %d fixture files found", files);
    if (!rc)
        snprintf(msg_, cap_, "%d fixture files", files);
    return rc;
}

/* An .npy file by hand: big-endian int16 in Fortran order, shape (2, 3). */
static int write_npy_be_fortran(const char *path)
{
    char h[128];
    int n = snprintf(h, sizeof h, "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }");
    int pad = (64 - (10 + n + 1) % 64) % 64;
    memset(h + n, ' ', (size_t)pad);
    h[n + pad] = '\n';
    unsigned char b[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n + pad + 1), 0};
    memcpy(b + 10, h, (size_t)(n + pad + 1));
    size_t at = 10 + (size_t)(n + pad + 1);
    for (int i = 0; i < 6; i++, at += 2) {
        int v = (i - 3) * 1000;
        b[at] = (unsigned char)((unsigned)v >> 8), b[at + 1] = (unsigned char)v;
    }
    return write_bytes(path, b, at);
}

TEST(memio_npy_and_csv_match_files)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    ds_tensor *a = random_tensor(3, (int64_t[]){3, 4, 5}, 1);
    ds_tensor *t = random_tensor(2, (int64_t[]){6, 3}, 2);
    ds_tensor_data(a)[7] = NAN;
    ds_tensor_data(t)[4] = -INFINITY;
    int rc = ds_array_save(a, in_dir(dir, "a.npy"), NULL) != DS_OK ||
             ds_array_save(t, in_dir(dir, "t.csv"),
                           (const char *[]){"x", "y, \"z\"", "w"}) != DS_OK ||
             write_npy_be_fortran(in_dir(dir, "be.NPY")) ||
             write_text(in_dir(dir, "hand.csv"), "# notes\r\nid;\"na;me\";v\r\n1;\"a\nb\";2,5\r\n"
                        "\r\n2;c;-1e3\n3;;nan\n");
    if (rc)
        snprintf(msg_, cap_, "writing: %s", ds_last_error());
    static const char *const specs[] = {NULL, "y, \"z\"", "3,1", "W,x", "nope", "0"};
    for (size_t i = 0; !rc && i < sizeof specs / sizeof specs[0]; i++)
        rc = array_matches(in_dir(dir, "t.csv"), "csv", &(ds_read_opts){.columns = specs[i]},
                           msg_, cap_);
    if (!rc)
        rc = array_matches(in_dir(dir, "a.npy"), "npy", NULL, msg_, cap_) ||
             array_matches(in_dir(dir, "be.NPY"), "NPY", NULL, msg_, cap_) ||
             array_matches(in_dir(dir, "hand.csv"), "csv", NULL, msg_, cap_) ||
             array_matches(in_dir(dir, "hand.csv"), "csv", &(ds_read_opts){.columns = "v"}, msg_,
                           cap_) ||
             array_matches(in_dir(dir, "a.npy"), "npy", &(ds_read_opts){.columns = "x"}, msg_,
                           cap_) ||
             array_matches(in_dir(dir, "t.csv"), "csv", &(ds_read_opts){.hdu = 2}, msg_, cap_) ||
             columns_match(in_dir(dir, "t.csv"), "csv", NULL, msg_, cap_) ||
             columns_match(in_dir(dir, "hand.csv"), ".CSV", NULL, msg_, cap_) ||
             columns_match(in_dir(dir, "a.npy"), "npy", NULL, msg_, cap_);
    /* the hand-made .npy converts as NumPy would: [[-3000, -1000, 1000], [-2000, 0, 2000]] */
    ds_tensor *be = NULL;
    size_t n;
    unsigned char *bytes = rc ? NULL : read_bytes(in_dir(dir, "be.NPY"), &n);
    if (!rc && (ds_npy_load_mem(bytes, n, "be", &be) != DS_OK || ds_tensor_data(be)[1] != -1000 ||
                ds_tensor_data(be)[3] != -2000 || ds_tensor_data(be)[5] != 2000))
        rc = snprintf(msg_, cap_, "be.npy read wrong (%s)", ds_last_error()) * 0 + 1;
    ds_tensor_free(be);
    free(bytes);
    ds_tensor_free(a);
    ds_tensor_free(t);
    rm_dir(dir);
    return rc;
}

/* Writes an IDX file of type code type from big-endian data; gzipped as members members
 * (the header, then the data, then nothing) if gz, with extra trailing bytes after it. */
static int write_idx(const char *path, int type, int nd, const int32_t *dims, const void *data,
                     size_t nbytes, bool gz, int members, const char *trailing)
{
    unsigned char head[4 + 4 * 6] = {0, 0, (unsigned char)type, (unsigned char)nd};
    for (int i = 0; i < nd; i++)
        for (int k = 0; k < 4; k++)
            head[4 + 4 * i + k] = (unsigned char)((uint32_t)dims[i] >> (24 - 8 * k));
    if (!gz) {
        FILE *fp = fopen(path, "wb");
        if (!fp)
            return 1;
        fwrite(head, 1, 4 + 4 * (size_t)nd, fp);
        fwrite(data, 1, nbytes, fp);
        return fclose(fp) != 0;
    }
    remove(path);
    gzFile g = gzopen(path, "wb");
    if (!g)
        return 1;
    gzwrite(g, head, 4 + 4 * (unsigned)nd);
    if (members > 1) {   /* a new gzip member for the data */
        gzclose(g);
        g = gzopen(path, "ab");
    }
    if (nbytes)
        gzwrite(g, data, (unsigned)nbytes);
    if (gzclose(g) != Z_OK)
        return 1;
    FILE *fp = trailing ? fopen(path, "ab") : NULL;
    if (fp) {
        fputs(trailing, fp);
        fclose(fp);
    }
    return 0;
}

TEST(memio_idx_matches_files)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    unsigned char data[24 * 8];
    for (int i = 0; i < (int)sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    static const struct { int type, size; } types[] = {
        {0x08, 1}, {0x09, 1}, {0x0B, 2}, {0x0C, 4}, {0x0D, 4}, {0x0E, 8}};
    int rc = 0, loaded = 0;
    for (size_t c = 0; c < 6 && !rc; c++) {
        /* int32 values must stay below 2^24: the first byte of each is zero */
        if (types[c].type == 0x0C)
            for (int i = 0; i < 24; i++)
                data[4 * i] = 0;
        for (int g = 0; g < 2 && !rc; g++) {
            const char *p = in_dir(dir, g ? "x-idx3-ubyte.gz" : "x-idx3-ubyte");
            if (write_idx(p, types[c].type, 3, (int32_t[]){4, 3, 2}, data,
                          24 * (size_t)types[c].size, g, 1, NULL))
                rc = snprintf(msg_, cap_, "cannot write %s", p) * 0 + 1;
            else
                rc = array_matches(p, g ? "idx.gz" : "idx", NULL, msg_, cap_);
            loaded++;
        }
    }
    /* gzip read as zlib's gzread reads files: two members; trailing bytes that do not start
     * a member are ignored; a member cut short, or trailing bytes that start one, fail */
    static const struct { int members; const char *trailing; ds_status want; } gz[] = {
        {2, NULL, DS_OK}, {1, "garbage", DS_OK}, {1, "\x1f", DS_OK}, {2, "\x1f\x8b", DS_ERR_FORMAT},
        {1, "\x1f\x8b\x08\x00", DS_ERR_FORMAT},
    };
    const char *p = in_dir(dir, "m-idx1-ubyte.gz");
    for (size_t i = 0; !rc && i < sizeof gz / sizeof gz[0]; i++) {
        ds_tensor *t = NULL;
        if (write_idx(p, 0x08, 1, (int32_t[]){24}, data, 24, true, gz[i].members, gz[i].trailing))
            rc = snprintf(msg_, cap_, "cannot write %s", p) * 0 + 1;
        else if (!(rc = array_matches(p, "idx", NULL, msg_, cap_)) &&
                 ds_array_load(p, NULL, &t) != gz[i].want)
            rc = snprintf(msg_, cap_, "gzip case %zu: %s, expected %s", i, ds_last_error(),
                          ds_status_name(gz[i].want)) * 0 + 1;
        if (!rc && t && (ds_tensor_numel(t) != 24 || ds_tensor_data(t)[23] != data[23]))
            rc = snprintf(msg_, cap_, "gzip case %zu read wrong", i) * 0 + 1;
        ds_tensor_free(t);
    }
    rm_dir(dir);
    if (!rc)
        snprintf(msg_, cap_, "%d IDX files and 5 gzip layouts", loaded);
    return rc;
}

/* A tile-compressed (Rice) int16 image 50 x 40 in HDU 2, written by cfitsio. */
static int write_compressed_fits(const char *path)
{
    fitsfile *f;
    int status = 0;
    long axes[2] = {50, 40};
    short v[2000];
    for (int i = 0; i < 2000; i++)
        v[i] = (short)(i % 300 - 100);
    remove(path);
    fits_create_diskfile(&f, path, &status);
    fits_set_compression_type(f, RICE_1, &status);
    fits_create_img(f, SHORT_IMG, 2, axes, &status);
    fits_write_img(f, TSHORT, 1, 2000, v, &status);
    fits_close_file(f, &status);
    return status;
}

/* An int16 cube with BSCALE, BZERO and BLANK after an empty primary, written by cfitsio. */
static int write_scaled_fits(const char *path)
{
    fitsfile *f;
    int status = 0;
    long axes[3] = {5, 4, 3};
    short raw[60];
    for (int i = 0; i < 60; i++)
        raw[i] = (short)(i * 37 - 1000);
    raw[17] = -32768;
    double bscale = 0.5, bzero = 100.0;
    long blank = -32768;
    remove(path);
    fits_create_diskfile(&f, path, &status);
    fits_create_img(f, SHORT_IMG, 0, NULL, &status);
    fits_create_img(f, SHORT_IMG, 3, axes, &status);
    fits_write_key(f, TDOUBLE, "BSCALE", &bscale, NULL, &status);
    fits_write_key(f, TDOUBLE, "BZERO", &bzero, NULL, &status);
    fits_write_key(f, TLONG, "BLANK", &blank, NULL, &status);
    fits_set_bscale(f, 1.0, 0.0, &status);
    fits_write_img(f, TSHORT, 1, 60, raw, &status);
    fits_close_file(f, &status);
    return status;
}

TEST(memio_fits_matches_files)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    ds_tensor *img = random_tensor(3, (int64_t[]){2, 3, 7}, 3);
    ds_tensor_data(img)[2] = NAN;
    float c[3][9];
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 9; i++)
            c[j][i] = (float)(i * 3 + j) * 0.25f;
    const float *cols[] = {c[0], c[1], c[2]};
    const char *names[] = {"flux", "mag", "z"};
    int rc = ds_array_save(img, in_dir(dir, "img.fits"), NULL) != DS_OK ||
             ds_array_save(img, in_dir(dir, "img.fits.gz"), NULL) != DS_OK ||
             ds_table_save(in_dir(dir, "cat.fits"), 3, names, 9, cols) != DS_OK ||
             ds_table_save(in_dir(dir, "cat.fts.gz"), 3, names, 9, cols) != DS_OK ||
             write_compressed_fits(in_dir(dir, "rice.fits")) ||
             write_scaled_fits(in_dir(dir, "scaled.fit")) ||
             write_bytes(in_dir(dir, "text.fits"), "not FITS at all\n", 16);
    if (rc)
        snprintf(msg_, cap_, "writing: %s", ds_last_error());
    static const struct { const char *file, *format, *columns; int hdu; } cases[] = {
        {"img.fits", "fits", NULL, 0}, {"img.fits", "FITS", NULL, 1}, {"img.fits", "fits", "a", 0},
        {"img.fits", "fits", NULL, 2}, {"img.fits.gz", ".fits.gz", NULL, 0},
        {"img.fits.gz", "fits", NULL, 1}, {"cat.fits", "fits", NULL, 0},
        {"cat.fits", "fits", "z, FLUX", 2}, {"cat.fits", "fits", "3,1", 0},
        {"cat.fits", "fits", "dec", 0}, {"cat.fits", "fits", NULL, 1},
        {"cat.fts.gz", "fts", "mag", 0}, {"rice.fits", "fits", NULL, 0},
        {"rice.fits", "fits", NULL, 2}, {"scaled.fit", "fit", NULL, 0},
        {"scaled.fit", "fit", NULL, 3}, {"text.fits", "fits", NULL, 0},
    };
    for (size_t i = 0; !rc && i < sizeof cases / sizeof cases[0]; i++)
        rc = array_matches(in_dir(dir, cases[i].file), cases[i].format,
                           &(ds_read_opts){.columns = cases[i].columns, .hdu = cases[i].hdu},
                           msg_, cap_);
    if (!rc)
        rc = columns_match(in_dir(dir, "cat.fits"), "fits", NULL, msg_, cap_) ||
             columns_match(in_dir(dir, "cat.fts.gz"), "x.fts.gz", NULL, msg_, cap_) ||
             columns_match(in_dir(dir, "img.fits"), "fits", NULL, msg_, cap_) ||
             columns_match(in_dir(dir, "cat.fits"), "fits", &(ds_read_opts){.hdu = 5}, msg_, cap_);
    /* the compressed image decompresses to what cfitsio wrote */
    size_t n;
    unsigned char *bytes = rc ? NULL : read_bytes(in_dir(dir, "rice.fits"), &n);
    ds_tensor *t = NULL;
    if (!rc && (ds_array_load_mem(bytes, n, "rice", "fits", NULL, &t) != DS_OK ||
                ds_tensor_numel(t) != 2000 || ds_tensor_data(t)[1999] != 1999 % 300 - 100))
        rc = snprintf(msg_, cap_, "rice.fits read wrong (%s)", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    free(bytes);
    ds_tensor_free(img);
    rm_dir(dir);
    return rc;
}

/* ---- truncation ---- */

/* Loads every prefix of bytes from an exact-size buffer named name: below stop it must fail
 * with DS_ERR_FORMAT, a message naming name and no tensor; from stop on (CSV cut after a row)
 * it may load, as the data present says. Every step-th prefix is also written to the file
 * path and loaded from there: the same outcome. */
static int cut_everywhere(const unsigned char *bytes, size_t n, size_t stop, const char *name,
                          const char *path, size_t step, char *msg, size_t cap)
{
    for (size_t len = 0; len < n; len++) {
        unsigned char *b = exact_copy(bytes, len);
        ds_tensor *t = NULL, *f = NULL;
        outcome om = result(ds_array_load_mem(b, len, name, NULL, NULL, &t));
        int rc = 0;
        if (len < stop && (om.st != DS_ERR_FORMAT || t || !strstr(om.msg, name)))
            rc = snprintf(msg, cap, "%s cut at %zu of %zu bytes: %s '%s'", name, len, n,
                          ds_status_name(om.st), om.msg) * 0 + 1;
        if (!rc && len >= stop && om.st != DS_OK && om.st != DS_ERR_FORMAT)
            rc = snprintf(msg, cap, "%s cut at %zu: %s '%s'", name, len, ds_status_name(om.st),
                          om.msg) * 0 + 1;
        if (!rc && len % step == 0) {
            outcome of = result(write_bytes(path, b, len) ? DS_ERR_IO
                                                          : ds_array_load(path, NULL, &f));
            if (of.st != om.st || (of.st == DS_OK && !same_bits(f, t)))
                rc = snprintf(msg, cap, "%s cut at %zu: file %s '%s', memory %s '%s'", name, len,
                              ds_status_name(of.st), of.msg, ds_status_name(om.st), om.msg) * 0 + 1;
        }
        ds_tensor_free(t);
        ds_tensor_free(f);
        free(b);
        if (rc)
            return 1;
    }
    return 0;
}

TEST(memio_truncated_every_byte)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    ds_tensor *img = random_tensor(3, (int64_t[]){2, 3, 50}, 21);   /* 1200 data bytes */
    ds_tensor *tab = random_tensor(2, (int64_t[]){6, 3}, 22);
    float c[3][40];
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 40; i++)
            c[j][i] = (float)(i * 3 + j) * 0.5f;
    unsigned char idx[300];
    for (int i = 0; i < 300; i++)
        idx[i] = (unsigned char)i;
    /* name, kind, and the cut from which a load may succeed (CSV: any cut after a row; FITS
     * cut in the padding of its last record fails, as cfitsio's disk driver had it) */
    static const struct { const char *name; int kind; size_t stop; } files[] = {
        {"a.npy", 0, SIZE_MAX}, {"a.fits", 0, SIZE_MAX}, {"a.fits.gz", 0, SIZE_MAX},
        {"t.fits", 1, SIZE_MAX}, {"t.fits.gz", 1, SIZE_MAX}, {"a.csv", 2, 0},
        {"a-idx3-ubyte", 3, SIZE_MAX}, {"a-idx3-ubyte.gz", 3, SIZE_MAX},
    };
    int rc = 0;
    size_t total = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0] && !rc; k++) {
        if (strstr(files[k].name, ".fits") && !ds_has_feature("fits"))
            continue;   /* a NO_FITS build: checked in memio_errors_name_the_buffer */
        const char *p = in_dir(dir, files[k].name);
        ds_status st;
        switch (files[k].kind) {
        case 0: st = ds_array_save(img, p, NULL); break;
        case 1: st = ds_table_save(p, 3, (const char *[]){"a", "b", "c"}, 40,
                                   (const float *[]){c[0], c[1], c[2]});
                break;
        case 2: st = ds_array_save(tab, p, NULL); break;
        default:
            st = write_idx(p, 0x08, 3, (int32_t[]){3, 10, 10}, idx, 300, strstr(p, ".gz"), 1,
                           NULL) ? DS_ERR_IO : DS_OK;
        }
        size_t n = 0;
        unsigned char *bytes = st == DS_OK ? read_bytes(p, &n) : NULL;
        char cut[600];
        snprintf(cut, sizeof cut, "%s/cut_%s", dir, files[k].name);
        if (!bytes)
            rc = snprintf(msg_, cap_, "%s: %s", files[k].name, ds_last_error()) * 0 + 1;
        else
            rc = cut_everywhere(bytes, n, files[k].stop, files[k].name, cut, 23, msg_, cap_);
        total += n;
        free(bytes);
    }
    /* safetensors, from memory only (ds_safetensors_load_mem) */
    ds_tensor_set *s = ds_tensor_set_create();
    ds_tensor_set_add(s, "w", 2, (int64_t[]){3, 4}, ds_tensor_data(tab));
    ds_tensor_set_add(s, "b", 1, (int64_t[]){2}, ds_tensor_data(tab));
    ds_tensor_set_meta_set(s, "format", "pt");
    void *buf = NULL;
    size_t len = 0;
    if (!rc && ds_safetensors_save_mem(s, &buf, &len) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    for (size_t cutlen = 0; !rc && cutlen < len; cutlen++) {
        unsigned char *b = exact_copy(buf, cutlen);
        ds_tensor_set *r = (ds_tensor_set *)1;
        ds_status st = ds_safetensors_load_mem(b, cutlen, "w.st", &r);
        if (st != DS_ERR_FORMAT || r || strncmp(ds_last_error(), "w.st: ", 6))
            rc = snprintf(msg_, cap_, "safetensors cut at %zu: %s '%s'", cutlen,
                          ds_status_name(st), ds_last_error()) * 0 + 1;
        free(b);
    }
    total += len;
    free(buf);
    ds_tensor_set_free(s);
    ds_tensor_free(img);
    ds_tensor_free(tab);
    rm_dir(dir);
    if (!rc)
        snprintf(msg_, cap_, "%zu prefixes of 9 files", total);
    return rc;
}

/* ---- messages ---- */

/* The call's status is want and its message contains each of the NULL-terminated strings. */
static int says(ds_status got, ds_status want, char *msg, size_t cap, ...)
{
    if (got != want)
        return snprintf(msg, cap, "%s, expected %s: '%s'", ds_status_name(got),
                        ds_status_name(want), ds_last_error()) * 0 + 1;
    va_list ap;
    va_start(ap, cap);
    int rc = 0;
    for (const char *s; !rc && (s = va_arg(ap, const char *));)
        if (!strstr(ds_last_error(), s))
            rc = snprintf(msg, cap, "message '%s' lacks '%s'", ds_last_error(), s) * 0 + 1;
    va_end(ap);
    return rc;
}

TEST(memio_errors_name_the_buffer)
{
    ds_tensor *t = NULL;
    ds_tensor_set *s = NULL;
    const char *text = "not a file of any kind\n";
    size_t n = strlen(text);
    CHECK_OK(says(ds_npy_load_mem(text, n, "upload.npy", &t), DS_ERR_FORMAT, msg_, cap_,
                  "upload.npy: not a NumPy .npy file", NULL));
    CHECK_OK(says(ds_npy_load_mem(text, n, NULL, &t), DS_ERR_FORMAT, msg_, cap_,
                  "<memory>: not a NumPy", NULL));
    CHECK_OK(says(ds_safetensors_load_mem(text, n, "w.safetensors", &s), DS_ERR_FORMAT, msg_,
                  cap_, "w.safetensors: header length", NULL));
    CHECK_OK(says(ds_safetensors_load_mem(NULL, 0, NULL, &s), DS_ERR_FORMAT, msg_, cap_,
                  "<memory>: 0 bytes, too short", NULL));
    CHECK(!t && !s);
    /* the format: from name, from format, or neither */
    CHECK_OK(says(ds_array_load_mem(text, n, "data.bin", NULL, NULL, &t), DS_ERR_ARG, msg_, cap_,
                  "'data.bin': unknown data format 'data.bin'", "npy, fits, csv, idx", NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, "x.npy", "hdf5", NULL, &t), DS_ERR_ARG, msg_, cap_,
                  "'x.npy'", "'hdf5'", NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, NULL, NULL, NULL, &t), DS_ERR_ARG, msg_, cap_,
                  "'<memory>'", NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, "x.csv", "npy", NULL, &t), DS_ERR_FORMAT, msg_, cap_,
                  "x.csv: not a NumPy", NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, "in.npy", NULL, &(ds_read_opts){.columns = "a"}, &t),
                  DS_ERR_ARG, msg_, cap_, "'in.npy': columns 'a' given", NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, "in.csv", NULL, &(ds_read_opts){.hdu = 2}, &t),
                  DS_ERR_ARG, msg_, cap_, "'in.csv': HDU 2 given", NULL));
    CHECK_OK(says(ds_array_load_mem(NULL, 5, "in.csv", NULL, NULL, &t), DS_ERR_ARG, msg_, cap_,
                  "buf is NULL", NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, "in.csv", NULL, NULL, NULL), DS_ERR_ARG, msg_, cap_,
                  "out is NULL", NULL));
    CHECK(!t);
    /* each reader names the buffer, with the line, HDU or byte count */
    const char *csv = "a,b,c\n1,2,3\n4,5\n";
    CHECK_OK(says(ds_array_load_mem(csv, strlen(csv), "table.csv", NULL, NULL, &t), DS_ERR_FORMAT,
                  msg_, cap_, "table.csv:3: 2 fields, but the header names 3 columns", NULL));
    if (ds_has_feature("fits"))
        CHECK_OK(says(ds_array_load_mem(text, n, "sky.fits", NULL, NULL, &t), DS_ERR_FORMAT,
                      msg_, cap_, "sky.fits: ", "cfitsio", NULL));
    else
        CHECK_OK(says(ds_array_load_mem(text, n, "sky.fits", NULL, NULL, &t), DS_ERR_ARG, msg_,
                      cap_, "sky.fits: deepsky was built without FITS support (NO_FITS=1)",
                      NULL));
    CHECK_OK(says(ds_array_load_mem(text, n, "lab-idx1-ubyte", NULL, NULL, &t), DS_ERR_FORMAT,
                  msg_, cap_, "lab-idx1-ubyte: not an IDX file", NULL));
    static const unsigned char idx_short[] = {0, 0, 0x08, 1, 0, 0, 0, 9, 1, 2, 3};
    CHECK_OK(says(ds_array_load_mem(idx_short, sizeof idx_short, "y", "idx", NULL, &t),
                  DS_ERR_FORMAT, msg_, cap_, "y: IDX shape [9] of 1-byte values needs 9 data "
                  "bytes, the file holds 3", NULL));
    char *cols = ds_table_columns_mem(text, n, "x.npy", NULL, NULL);
    CHECK(!cols && strstr(ds_last_error(), "'x.npy': only tables"));
    cols = ds_table_columns_mem("u;v\n1;2\n", 8, NULL, "csv", NULL);
    CHECK(cols && !strcmp(cols, "u,v"));
    free(cols);
    CHECK(!t);
    return TEST_PASS;
}

/* ds_model_load_weights_mem and ds_net_load_weights_mem: what the path versions give, and mismatch
 * messages naming the buffer. */
TEST(memio_model_and_net_weights)
{
    const char *wpath = "tests/fixtures/net_mlp.weights.safetensors";
    size_t n;
    unsigned char *w = read_bytes(wpath, &n);
    CHECK(w);
    ds_net *a = NULL, *b = NULL;
    int rc = 0;
    if (ds_net_load("tests/fixtures/net_mlp.model", NULL, &a) != DS_OK ||
        ds_net_load("tests/fixtures/net_mlp.model", NULL, &b) != DS_OK ||
        ds_net_load_weights(a, wpath) != DS_OK || ds_net_load_weights_mem(b, w, n, NULL) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    ds_model *ma = a ? ds_net_model(a) : NULL, *mb = b ? ds_net_model(b) : NULL;
    if (!rc && (ds_model_numel(ma, 0) != ds_model_numel(mb, 0) ||
                memcmp(ds_model_data(ma), ds_model_data(mb),
                       (size_t)ds_model_numel(ma, 0) * sizeof(float))))
        rc = snprintf(msg_, cap_, "weights from memory differ from the file's") * 0 + 1;
    /* a model that does not match: each mismatch listed under the buffer's name */
    ds_model *m = ds_model_create(1);
    ds_model_add_param(m, "other.weight", 1, (int64_t[]){3}, 1,
                       (ds_init){DS_INIT_ZEROS, 0, 0});
    if (!rc)
        rc = says(ds_model_load_weights_mem(m, w, n, "upload.safetensors"), DS_ERR_FORMAT, msg_,
                  cap_, "upload.safetensors: ", "'other.weight' [3] is missing", NULL);
    if (!rc)
        rc = says(ds_net_load_weights_mem(b, w, n / 2, "half"), DS_ERR_FORMAT, msg_, cap_,
                  "half: ", NULL);
    if (!rc)
        rc = says(ds_model_load_weights_mem(m, w, 3, NULL), DS_ERR_FORMAT, msg_, cap_,
                  "<memory>: 3 bytes, too short", NULL);
    ds_model_free(m);
    ds_net_free(a);
    ds_net_free(b);
    free(w);
    return rc;
}

/* ---- writers ---- */

TEST(memio_writers_match_files)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *pn = in_dir(dir, "a.npy"), *ps = in_dir(dir, "s.safetensors");
    static const struct { int nd; int64_t shape[6]; } shapes[] = {
        {0, {0}}, {1, {7}}, {2, {0, 3}}, {3, {2, 3, 4}}, {6, {1, 2, 1, 3, 1, 2}}};
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof shapes / sizeof shapes[0]; i++) {
        ds_tensor *t = random_tensor(shapes[i].nd, shapes[i].shape, 30 + i), *r = NULL;
        void *buf = NULL;
        size_t len = 0, flen = 0;
        unsigned char *file = ds_npy_save(t, pn) == DS_OK ? read_bytes(pn, &flen) : NULL;
        if (!file || ds_npy_save_mem(t, &buf, &len) != DS_OK || len != flen ||
            memcmp(buf, file, len) || ds_npy_load_mem(buf, len, "a", &r) != DS_OK ||
            !same_bits(t, r))
            rc = snprintf(msg_, cap_, "npy shape %zu: memory bytes differ from the file's (%s)",
                          i, ds_last_error()) * 0 + 1;
        free(file);
        free(buf);
        ds_tensor_free(t);
        ds_tensor_free(r);
    }
    ds_tensor_set *s = ds_tensor_set_create(), *r = NULL;
    ds_tensor_set_add(s, "layer.weight", 2, (int64_t[]){2, 3}, (float[]){1, -2, 3.5f, 0, NAN, 7});
    ds_tensor_set_add(s, "empty", 3, (int64_t[]){4, 0, 2}, NULL);
    ds_tensor_set_add(s, "scalar", 0, NULL, (float[]){0.25f});
    ds_tensor_set_meta_set(s, "format", "pt");
    ds_tensor_set_meta_set(s, "note", "caf\xc3\xa9 \"quoted\"");
    void *buf = NULL;
    size_t len = 0, flen = 0;
    unsigned char *file = rc || ds_safetensors_save(s, ps) != DS_OK ? NULL : read_bytes(ps, &flen);
    if (!rc && (!file || ds_safetensors_save_mem(s, &buf, &len) != DS_OK || len != flen ||
                memcmp(buf, file, len) || ds_safetensors_load_mem(buf, len, NULL, &r) != DS_OK ||
                !same_sets(s, r)))
        rc = snprintf(msg_, cap_, "safetensors: memory bytes differ from the file's (%s)",
                      ds_last_error()) * 0 + 1;
    free(file);
    free(buf);
    ds_tensor_set_free(r);
    /* refusals: no buffer above the memory limit, and bad arguments */
    size_t old = ds_get_memory_limit();
    ds_tensor *big = ds_tensor_create(1, (int64_t[]){1 << 16});
    ds_set_memory_limit(100000);
    buf = (void *)1;
    ds_status st = ds_npy_save_mem(big, &buf, &len);
    ds_set_memory_limit(old);
    if (!rc && (st != DS_ERR_NOMEM || buf || len || !strstr(ds_last_error(), "memory limit")))
        rc = snprintf(msg_, cap_, "npy above the memory limit: %s", ds_last_error()) * 0 + 1;
    if (!rc)
        rc = says(ds_safetensors_save_mem(s, NULL, &len), DS_ERR_ARG, msg_, cap_, "buf is NULL",
                  NULL) ||
             says(ds_npy_save_mem(NULL, &buf, &len), DS_ERR_ARG, msg_, cap_, "tensor is NULL",
                  NULL);
    ds_tensor_set_add(s, "__metadata__", 1, (int64_t[]){1}, (float[]){1});
    if (!rc)
        rc = says(ds_safetensors_save_mem(s, &buf, &len), DS_ERR_ARG, msg_, cap_, "__metadata__",
                  NULL);
    ds_tensor_free(big);
    ds_tensor_set_free(s);
    rm_dir(dir);
    return rc;
}

/* ds_net_save_weights_mem: the bytes of ds_net_save_weights' file (preprocessing included),
 * which ds_net_load_weights_mem reads back into another net; NULL arguments refused. */
TEST(memio_net_save_weights_mem)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *path = in_dir(dir, "w.safetensors");
    const char *text = "input shape=2\ndense units=3 activation=tanh\ndense units=1\nloss mse\n";
    ds_net *a = NULL, *b = NULL;
    ds_net_opts oa = {.seed = 3}, ob = {.seed = 4};
    ds_tensor *x = random_tensor(2, (int64_t[]){5, 2}, 7);
    void *buf = NULL;
    size_t len = 0, flen = 0;
    unsigned char *file = NULL;
    int rc = 0;
    if (ds_net_parse(text, "m", &oa, &a) != DS_OK || ds_net_parse(text, "m", &ob, &b) != DS_OK ||
        ds_net_set_scaling(a, DS_SCALE_STANDARDIZE, 0, x) != DS_OK ||
        ds_net_save_weights(a, path) != DS_OK || !(file = read_bytes(path, &flen)) ||
        ds_net_save_weights_mem(a, &buf, &len) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    if (!rc && (len != flen || memcmp(buf, file, len)))
        rc = snprintf(msg_, cap_, "memory bytes (%zu) differ from the file's (%zu)", len,
                      flen) * 0 + 1;
    if (!rc && (ds_net_load_weights_mem(b, buf, len, "w") != DS_OK ||
                ds_net_scaling(b) != DS_SCALE_STANDARDIZE ||
                memcmp(ds_model_data(ds_net_model(a)), ds_model_data(ds_net_model(b)),
                       (size_t)ds_model_block_len(ds_net_model(a), 0) * sizeof(float))))
        rc = snprintf(msg_, cap_, "weights read back differ (%s)", ds_last_error()) * 0 + 1;
    void *nb = (void *)1;
    if (!rc)
        rc = says(ds_net_save_weights_mem(NULL, &nb, &len), DS_ERR_ARG, msg_, cap_,
                  "the net is NULL", NULL) ||
             says(ds_net_save_weights_mem(a, NULL, &len), DS_ERR_ARG, msg_, cap_, "buf is NULL",
                  NULL);
    if (!rc && (nb || len))
        rc = snprintf(msg_, cap_, "a refusal left *buf or *len set") * 0 + 1;
    free(buf);
    free(file);
    ds_tensor_free(x);
    ds_net_free(a);
    ds_net_free(b);
    rm_dir(dir);
    return rc;
}

/* ---- hostile input from memory ---- */

/* A 48 MB gzip bomb (48 KB compressed) from memory stops at a 16 MB memory limit; IDX's
 * size check (at most 1100 bytes per compressed byte) refuses a huge shape in a small
 * gzip stream before allocating. */
TEST(memio_gzip_bombs)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *p = in_dir(dir, "bomb.fits.gz");
    gzFile gz = gzopen(p, "wb9");
    static unsigned char zeros[1 << 16];
    for (int i = 0; gz && i < 768; i++)
        gzwrite(gz, zeros, sizeof zeros);
    CHECK(gz && gzclose(gz) == Z_OK);
    size_t n;
    unsigned char *bomb = read_bytes(p, &n);
    rm_dir(dir);
    CHECK(bomb && n < 100000);
    size_t old = ds_get_memory_limit();
    ds_set_memory_limit((size_t)16 << 20);
    ds_tensor *t = NULL;
    ds_status st = ds_array_load_mem(bomb, n, "bomb.fits.gz", NULL, NULL, &t);
    ds_set_memory_limit(old);
    free(bomb);
    if (ds_has_feature("fits"))
        CHECK_OK(says(st, DS_ERR_NOMEM, msg_, cap_, "bomb.fits.gz: decompresses to more than",
                      "memory limit", NULL));
    else
        CHECK_OK(says(st, DS_ERR_ARG, msg_, cap_, "bomb.fits.gz: deepsky was built without FITS",
                      NULL));
    /* IDX: a gzip stream of 40 bytes cannot hold 2^30 doubles */
    unsigned char head[12] = {0, 0, 0x0E, 2, 0, 0, 0x80, 0, 0, 0, 0x80, 0};
    unsigned char gzb[256];
    z_stream z = {0};
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = head, z.avail_in = sizeof head, z.next_out = gzb, z.avail_out = sizeof gzb;
    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    size_t glen = sizeof gzb - z.avail_out;
    deflateEnd(&z);
    unsigned char *g = exact_copy(gzb, glen);
    st = ds_array_load_mem(g, glen, "big-idx2", NULL, NULL, &t);
    free(g);
    CHECK_OK(says(st, DS_ERR_FORMAT, msg_, cap_, "big-idx2: IDX shape [32768, 32768]",
                  "more than a gzip file", NULL));
    CHECK(!t);
    return TEST_PASS;
}

/* Headers that ask for more than any buffer could hold are refused before allocating, and
 * FITS header cards are checked before cfitsio reads them (fits_check.c), from memory too. */
TEST(memio_hostile_headers)
{
    char h[128];
    int len = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(2147483648, 2147483648, 2147483648), }");
    unsigned char npy[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)len, 0};
    memcpy(npy + 10, h, (size_t)len);
    unsigned char *b = exact_copy(npy, 10 + (size_t)len + 16);
    ds_tensor *t = NULL;
    ds_status st = ds_npy_load_mem(b, 10 + (size_t)len + 16, "h.npy", &t);
    free(b);
    CHECK_OK(says(st, DS_ERR_FORMAT, msg_, cap_, "h.npy: shape", "more than 2^40", NULL));
    static const unsigned char idx_big[] = {0, 0, 0x0d, 4, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff,
                                            0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
    b = exact_copy(idx_big, sizeof idx_big);
    st = ds_array_load_mem(b, sizeof idx_big, "h", "idx", NULL, &t);
    free(b);
    CHECK_OK(says(st, DS_ERR_FORMAT, msg_, cap_, "h: IDX dims give more than 2^40", NULL));
    if (!ds_has_feature("fits"))
        return TEST_PASS;   /* the FITS cards below: checked in the build with FITS */
    /* a 70-character unquoted TTYPE2 (cfitsio 4.2 overflows on it) and a huge image */
    static char fits[2 * 2880];
    memset(fits, ' ', sizeof fits);
    const char *cards[] = {"SIMPLE  =                    T", "BITPIX  =                    8",
                           "NAXIS   =                    0", "EXTEND  =                    T",
                           "END"};
    for (int k = 0; k < 5; k++)
        memcpy(fits + 80 * k, cards[k], strlen(cards[k]));
    const char *ext[] = {"XTENSION= 'BINTABLE'", "BITPIX  =                    8",
                         "NAXIS   =                    2", "NAXIS1  =                    4",
                         "NAXIS2  =                    0", "PCOUNT  =                    0",
                         "GCOUNT  =                    1", "TFIELDS =                    2",
                         "TTYPE1  = 'a       '", "TFORM1  = 'E       '", NULL, "END"};
    char longval[81];
    memset(longval, 'A', 80);
    memcpy(longval, "TTYPE2  = ", 10);
    ext[10] = longval;
    for (int k = 0; k < 12; k++)
        memcpy(fits + 2880 + 80 * k, ext[k], k == 10 ? 80 : strlen(ext[k]));
    b = exact_copy(fits, sizeof fits);
    st = ds_array_load_mem(b, sizeof fits, "cat.fits", NULL, NULL, &t);
    free(b);
    CHECK_OK(says(st, DS_ERR_FORMAT, msg_, cap_, "cat.fits: HDU 2, header card 11 ('TTYPE2  ')",
                  NULL));
    memcpy(fits + 160, "NAXIS   =                    2", 30);
    memcpy(fits + 240, "NAXIS1  =               100000", 30);
    memcpy(fits + 320, "NAXIS2  =               100000", 30);
    memcpy(fits + 400, "END     ", 8);
    b = exact_copy(fits, 2880);
    st = ds_array_load_mem(b, 2880, "huge.fits", NULL, NULL, &t);
    free(b);
    CHECK_OK(says(st, DS_ERR_FORMAT, msg_, cap_, "huge.fits: HDU 1 is truncated", NULL));
    CHECK(!t);
    return TEST_PASS;
}
