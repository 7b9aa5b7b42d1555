/* readers.c - fuzz targets for the data and weight readers: .npy, safetensors, IDX, CSV and
 * FITS, each through the public loaders a user calls, from a file (ds_array_load,
 * ds_safetensors_load, ds_table_columns) and from the same bytes in memory (their _mem
 * twins). Inputs are file bytes; for IDX, CSV and FITS the first byte picks reader options
 * (gzip or not, a column list, an HDU) so those paths are fuzzed too. The file and the
 * memory loader must agree exactly: status, message and every tensor bit. Whatever loads is
 * checked for consistency (the shape matches the element count) and goes once through the
 * memory writer and back, which must give the same bits. */
#include "fuzz.h"

#include "deepsky.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stops the run on a disagreement, saying what disagreed (libFuzzer keeps the input). */
static void mismatch(const char *what, const char *path)
{
    fprintf(stderr, "fuzz: %s: %s\n", path, what);
    abort();
}

static void check_tensor(ds_tensor *t)
{
    if (!t)
        return;
    int64_t n = 1;
    for (int i = 0; i < ds_tensor_ndim(t); i++)
        n *= ds_tensor_shape(t)[i];
    if (n != ds_tensor_numel(t))
        abort();
    /* read every element: ASan catches a buffer shorter than the shape says */
    volatile float s = 0;
    const float *d = ds_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        s += d[i];
    (void)s;
}

/* Same shape and the same bits (NaN payloads included), or both NULL. */
static int same_tensor(ds_tensor *a, ds_tensor *b)
{
    if (!a || !b)
        return !a && !b;
    int nd = ds_tensor_ndim(a);
    return nd == ds_tensor_ndim(b) &&
           !memcmp(ds_tensor_shape(a), ds_tensor_shape(b), (size_t)nd * sizeof(int64_t)) &&
           !memcmp(ds_tensor_data(a), ds_tensor_data(b),
                   (size_t)ds_tensor_numel(a) * sizeof(float));
}

/* The failure of the first loader, kept while the second runs. */
typedef struct {
    ds_status st;
    char msg[1100];   /* more than the library's longest message (1023 characters) */
} outcome;

static void keep(outcome *o, ds_status st)
{
    o->st = st;
    snprintf(o->msg, sizeof o->msg, "%s", st == DS_OK ? "" : ds_last_error());
}

/* Whether a second loader's status (and message, on failure) equals the kept one. */
static int same_outcome(const outcome *o, ds_status st)
{
    return st == o->st && (st == DS_OK || !strcmp(o->msg, ds_last_error()));
}

/* A loaded array through ds_npy_save_mem and ds_npy_load_mem: the same bits. */
static void npy_round_trip(ds_tensor *t, const char *path)
{
    void *buf = NULL;
    size_t len = 0;
    ds_tensor *r = NULL;
    ds_status st = ds_npy_save_mem(t, &buf, &len);
    if (st == DS_OK && (ds_npy_load_mem(buf, len, path, &r) != DS_OK || !same_tensor(t, r)))
        mismatch("ds_npy_save_mem then ds_npy_load_mem changed the array", path);
    if (st != DS_OK && st != DS_ERR_NOMEM)
        mismatch("ds_npy_save_mem failed", path);
    ds_tensor_free(r);
    free(buf);
}

/* path holds data[0..size); format is what ds_array_load_mem is told; o the reader options
 * (info is filled here, and must agree too). */
static void load_opts(const uint8_t *data, size_t size, const char *path, const char *format,
                      ds_read_opts o)
{
    if (!path)
        return;
    ds_read_info fi, mi;
    ds_tensor *t = NULL, *m = NULL;
    outcome file;
    o.info = &fi;
    keep(&file, ds_array_load(path, &o, &t));
    o.info = &mi;
    if (!same_outcome(&file, ds_array_load_mem(data, size, path, format, &o, &m)) ||
        !same_tensor(t, m) || (file.st == DS_OK && memcmp(&fi, &mi, sizeof fi)))
        mismatch("ds_array_load and ds_array_load_mem disagree", path);
    if (file.st == DS_OK) {
        check_tensor(t);
        ds_tensor_check_finite(t, path);
        npy_round_trip(t, path);
    }
    ds_tensor_free(t);
    ds_tensor_free(m);
}

static void load_array(const uint8_t *data, size_t size, const char *path, const char *format,
                       const char *columns, int hdu)
{
    load_opts(data, size, path, format, (ds_read_opts){.columns = columns, .hdu = hdu});
}

/* ds_table_columns on the file and on its bytes in memory. */
static void table_columns(const uint8_t *data, size_t size, const char *path, const char *format,
                          ds_read_opts o)
{
    char *a = ds_table_columns(path, &o);
    outcome file;
    keep(&file, a ? DS_OK : DS_ERR_FORMAT);
    char *b = ds_table_columns_mem(data, size, path, format, &o);
    if (!same_outcome(&file, b ? DS_OK : DS_ERR_FORMAT) || (a && strcmp(a, b)))
        mismatch("ds_table_columns and ds_table_columns_mem disagree", path);
    free(a);
    free(b);
}

int fuzz_npy(const uint8_t *data, size_t size)
{
    fuzz_setup();
    load_array(data, size, fuzz_file(data, size, ".npy"), "npy", NULL, 0);
    return 0;
}

/* Same names, shapes, bits and "format" metadata, in the same order. */
static int same_set(const ds_tensor_set *a, const ds_tensor_set *b)
{
    if (!a || !b)
        return !a && !b;
    if (ds_tensor_set_count(a) != ds_tensor_set_count(b))
        return 0;
    for (int i = 0; i < ds_tensor_set_count(a); i++)
        if (!ds_tensor_set_name(a, i) ||
            strcmp(ds_tensor_set_name(a, i), ds_tensor_set_name(b, i)) ||
            !same_tensor(ds_tensor_set_at(a, i), ds_tensor_set_at(b, i)))
            return 0;
    const char *fa = ds_tensor_set_meta_get(a, "format"), *fb = ds_tensor_set_meta_get(b, "format");
    return fa ? fb && !strcmp(fa, fb) : !fb;
}

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    fuzz_setup();
    const char *path = fuzz_file(data, size, ".safetensors");
    if (!path)
        return 0;
    ds_tensor_set *s = NULL, *m = NULL, *r = NULL;
    outcome file;
    keep(&file, ds_safetensors_load(path, &s));
    if (!same_outcome(&file, ds_safetensors_load_mem(data, size, path, &m)) || !same_set(s, m))
        mismatch("ds_safetensors_load and ds_safetensors_load_mem disagree", path);
    if (file.st == DS_OK) {
        for (int i = 0; i < ds_tensor_set_count(s); i++)
            check_tensor(ds_tensor_set_at(s, i));
        /* what loads can be written (names and metadata are valid UTF-8) and read back */
        void *buf = NULL;
        size_t len = 0;
        ds_status st = ds_safetensors_save_mem(s, &buf, &len);
        if (st == DS_OK &&
            (ds_safetensors_load_mem(buf, len, path, &r) != DS_OK || !same_set(s, r)))
            mismatch("ds_safetensors_save_mem then ds_safetensors_load_mem changed the set", path);
        if (st != DS_OK && st != DS_ERR_NOMEM)
            mismatch("ds_safetensors_save_mem failed", path);
        free(buf);
    }
    ds_tensor_set_free(s);
    ds_tensor_set_free(m);
    ds_tensor_set_free(r);
    return 0;
}

int fuzz_idx(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    /* bit 0: a gzip name (zlib reads plain bytes through it too) */
    bool gz = data[0] & 1;
    const char *path = fuzz_file(data + 1, size - 1, gz ? "-idx3-ubyte.gz" : "-idx3-ubyte");
    load_array(data + 1, size - 1, path, gz ? "idx.gz" : "idx", NULL, 0);
    return 0;
}

static const char *const column_lists[] = {NULL, "1", "2,1", "a,b", "x", "3,3", "0", "b,A,1"};
/* ranges and numbers from the end; with bit 6 of the option byte, an even index is the
 * column list, an odd one the columns left out */
static const char *const range_lists[] = {"-1", "1-2", "-2--1", "a-b", "2-1", "1--1", "x-y-z",
                                          " 1 - 2 ,-1"};

/* The options of a table reader from the option byte b: bits 0-2 a list, bit 6 a range list
 * instead (as columns or as exclude). */
static ds_read_opts table_opts(uint8_t b)
{
    ds_read_opts o = {.columns = column_lists[b & 7]};
    if (b & 64) {
        o.columns = b & 1 ? NULL : range_lists[b & 7];
        o.exclude = b & 1 ? range_lists[b & 7] : NULL;
    }
    return o;
}

int fuzz_csv(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    /* bits 0-2 and 6: columns (table_opts); bit 3: list the columns; bits 4-5: the header
     * mode (3: automatic); bit 7: a .tsv name (tabs separate) */
    bool tsv = data[0] & 128;
    const char *path = fuzz_file(data + 1, size - 1, tsv ? ".tsv" : ".csv");
    ds_read_opts o = table_opts(data[0]);
    o.header = (ds_header_mode)(((data[0] >> 4) & 3) % 3);
    load_opts(data + 1, size - 1, path, tsv ? "tsv" : "csv", o);
    if (path && data[0] & 8)
        table_columns(data + 1, size - 1, path, tsv ? "x.TSV" : "CSV",
                      (ds_read_opts){.header = o.header});
    return 0;
}

int fuzz_fits(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    /* bits 0-2: a column list; bits 3-4: HDU 0 (first with data) to 3; bit 5: gzip name;
     * bit 6: list the columns; bit 7: the HDU named TEST instead, and the last column left
     * out when no list is given */
    int hdu = (data[0] >> 3) & 3;
    bool gz = data[0] & 32, named = data[0] & 128;
    const char *path = fuzz_file(data + 1, size - 1, gz ? ".fits.gz" : ".fits");
    ds_read_opts o = {.columns = column_lists[data[0] & 7], .hdu = hdu,
                      .hdu_name = named ? "TEST" : NULL};
    o.exclude = named && !o.columns ? "-1" : NULL;
    load_opts(data + 1, size - 1, path, gz ? ".fits.gz" : "fits", o);
    if (path && data[0] & 64)
        table_columns(data + 1, size - 1, path, gz ? "x.FIT.gz" : "fts",
                      (ds_read_opts){.hdu = hdu, .hdu_name = o.hdu_name});
    if (path && named) {   /* the header of the same HDU, from the file and from memory */
        char *a = ds_fits_header(path, &o), *b;
        outcome file;
        keep(&file, a ? DS_OK : DS_ERR_FORMAT);
        b = ds_fits_header_mem(data + 1, size - 1, path, &o);
        if (!same_outcome(&file, b ? DS_OK : DS_ERR_FORMAT) || (a && strcmp(a, b)))
            mismatch("ds_fits_header and ds_fits_header_mem disagree", path);
        free(a);
        free(b);
    }
    return 0;
}
