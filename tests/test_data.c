/* test_data.c - data files: round trips (.npy, FITS images and tables, CSV, IDX plain and
 * gzipped), FITS written directly with cfitsio, truncated files, CSV errors, NaN checks and
 * the Fashion-MNIST files of Debian's dataset-fashion-mnist. */
#include "test.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fitsio.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ---- */

/* A fresh directory under /tmp, removed (with its files) by rm_dir. */
static int make_dir(char *dir, size_t cap) { return test_tmpdir(dir, cap, "data") ? 0 : 1; }

static void rm_dir(const char *dir) { test_rm_rf(dir); }

static const char *in_dir(const char *dir, const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static ds_tensor *random_tensor(int ndim, const int64_t *shape, uint64_t seed)
{
    ds_rng r;
    ds_rng_seed(&r, seed);
    ds_tensor *t = ds_tensor_create(ndim, shape);
    if (t)
        fill_uniform(ds_tensor_data(t), ds_tensor_numel(t), -3, 3, &r);
    return t;
}

/* Same shape and the same values (bitwise for finite values, NaN matching NaN). */
static int same_tensor(ds_tensor *a, ds_tensor *b, char *msg, size_t cap)
{
    if (!a || !b) {
        snprintf(msg, cap, "missing tensor (last error: %s)", ds_last_error());
        return 1;
    }
    char sa[96], sb[96];
    ds_shape_str(ds_tensor_ndim(a), ds_tensor_shape(a), sa, sizeof sa);
    ds_shape_str(ds_tensor_ndim(b), ds_tensor_shape(b), sb, sizeof sb);
    if (strcmp(sa, sb)) {
        snprintf(msg, cap, "shape %s, expected %s", sa, sb);
        return 1;
    }
    const float *x = ds_tensor_data(a), *y = ds_tensor_data(b);
    for (int64_t i = 0; i < ds_tensor_numel(a); i++)
        if (!(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])))) {
            snprintf(msg, cap, "element %lld: %.9g, expected %.9g", (long long)i, x[i], y[i]);
            return 1;
        }
    return 0;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    remove(path);   /* much faster here than truncating a file that has data */
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 1;
    size_t w = fwrite(data, 1, n, fp);
    return (fclose(fp) != 0 || w != n);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    unsigned char *b = malloc((size_t)len + 1);
    *n = b ? fread(b, 1, (size_t)len, fp) : 0;
    fclose(fp);
    return b;
}

static int write_text(const char *path, const char *s) { return write_bytes(path, s, strlen(s)); }

/* Loads path with o and expects status want; the message must contain each of the
 * NULL-terminated substrings. */
static int expect_error(const char *path, const ds_read_opts *o, ds_status want, char *msg,
                        size_t cap, ...)
{
    ds_tensor *t = (ds_tensor *)1;
    ds_status st = ds_array_load(path, o, &t);
    if (st != want || t != NULL) {
        snprintf(msg, cap, "%s: status %s, expected %s (%s)", path, ds_status_name(st),
                 ds_status_name(want), ds_last_error());
        ds_tensor_free(st == DS_OK ? t : NULL);
        return 1;
    }
    va_list ap;
    va_start(ap, cap);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(ds_last_error(), s)) {
            snprintf(msg, cap, "%s: message '%s' lacks '%s'", path, ds_last_error(), s);
            va_end(ap);
            return 1;
        }
    va_end(ap);
    return 0;
}

/* Copies the first len bytes of src to dst and loads dst: it must fail with FORMAT or IO,
 * or (allowed when ok_if_valid) succeed with a tensor equal to want or a row prefix of it. */
static int check_truncated(const unsigned char *src, size_t len, const char *dst,
                           const ds_read_opts *o, ds_tensor *want, bool ok_if_valid, char *msg,
                           size_t cap)
{
    if (write_bytes(dst, src, len)) {
        snprintf(msg, cap, "cannot write %s", dst);
        return 1;
    }
    ds_tensor *t = NULL;
    ds_status st = ds_array_load(dst, o, &t);
    if (st == DS_ERR_FORMAT || st == DS_ERR_IO) {
        if (t || !*ds_last_error()) {
            snprintf(msg, cap, "%s cut at %zu: failed without a message or left a tensor", dst,
                     len);
            return 1;
        }
        return 0;
    }
    if (st != DS_OK || !ok_if_valid) {
        snprintf(msg, cap, "%s cut at %zu bytes: status %s (%s), expected a format error", dst,
                 len, ds_status_name(st), ds_last_error());
        ds_tensor_free(t);
        return 1;
    }
    /* A valid result (a CSV file cut at a line end, or inside the last number): no more
     * rows, values equal on the rows before the last. Fewer columns when cut inside the
     * header, or when a lone row ends in "-" (not a number, so not chosen by default). */
    int bad = ds_tensor_ndim(t) != 2 || ds_tensor_shape(t)[0] > ds_tensor_shape(want)[0] ||
              ds_tensor_shape(t)[1] > ds_tensor_shape(want)[1] ||
              (ds_tensor_shape(t)[1] < ds_tensor_shape(want)[1] && ds_tensor_shape(t)[0] > 1);
    int64_t row = ds_tensor_numel(want) / (ds_tensor_shape(want)[0] ? ds_tensor_shape(want)[0] : 1);
    /* the last row may hold a shortened number: compare the full rows before it */
    for (int64_t i = 0; !bad && i + row < ds_tensor_numel(t); i++)
        bad = ds_tensor_data(t)[i] != ds_tensor_data(want)[i];
    ds_tensor_free(t);
    if (bad) {
        snprintf(msg, cap, "%s cut at %zu bytes: loaded, but not a prefix of the data", dst, len);
        return 1;
    }
    return 0;
}

/* ---- .npy ---- */

TEST(data_npy_round_trip)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    ds_tensor *a = random_tensor(3, (int64_t[]){3, 4, 5}, 1), *b = NULL;
    int rc = 0;
    const char *p = in_dir(dir, "a.NPY");   /* extensions are case-insensitive */
    if (ds_array_save(a, p, NULL) != DS_OK || ds_array_load(p, NULL, &b) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    else
        rc = same_tensor(b, a, msg_, cap_);
    ds_tensor_free(a);
    ds_tensor_free(b);
    rm_dir(dir);
    return rc;
}

/* ---- FITS ---- */

/* Reads the header of the first HDU with cfitsio: NAXIS and NAXISi. */
static int fits_axes(const char *path, int *naxis, long *naxes)
{
    fitsfile *f;
    int status = 0;
    fits_open_diskfile(&f, path, READONLY, &status);
    fits_get_img_dim(f, naxis, &status);
    fits_get_img_size(f, 6, naxes, &status);
    fits_close_file(f, &status);
    return status;
}

TEST(data_fits_image_round_trip)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    static const struct { int nd; int64_t shape[4]; const char *name; } cases[] = {
        {3, {2, 3, 5}, "cube.fits"},
        {4, {2, 3, 4, 7}, "cube4.FIT"},
        {1, {11}, "line.fts"},
        {2, {6, 9}, "img.fits.gz"},
    };
    int rc = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && !rc; c++) {
        const char *p = in_dir(dir, cases[c].name);
        ds_tensor *a = random_tensor(cases[c].nd, cases[c].shape, 10 + c), *b = NULL;
        ds_tensor_data(a)[1] = NAN;
        if (ds_array_save(a, p, NULL) != DS_OK || ds_array_load(p, NULL, &b) != DS_OK) {
            snprintf(msg_, cap_, "%s: %s", cases[c].name, ds_last_error());
            rc = 1;
        } else {
            rc = same_tensor(b, a, msg_, cap_);
        }
        /* file order: NAXIS1 is the last (fastest) dimension */
        int naxis = 0;
        long naxes[6] = {0};
        if (!rc && (fits_axes(p, &naxis, naxes) || naxis != cases[c].nd ||
                    naxes[0] != cases[c].shape[cases[c].nd - 1] || naxes[naxis - 1] != cases[c].shape[0]))
            rc = snprintf(msg_, cap_, "%s: NAXIS %d, NAXIS1 %ld", cases[c].name, naxis,
                          naxes[0]) * 0 + 1;
        ds_tensor_free(a);
        ds_tensor_free(b);
    }
    /* the .gz file is really gzipped; no temporary file is left behind */
    size_t n = 0;
    unsigned char *gz = rc ? NULL : read_bytes(in_dir(dir, "img.fits.gz"), &n);
    if (!rc && (!gz || n < 2 || gz[0] != 0x1f || gz[1] != 0x8b))
        rc = snprintf(msg_, cap_, "img.fits.gz is not gzipped") * 0 + 1;
    free(gz);
    DIR *d = opendir(dir);
    for (struct dirent *e; !rc && d && (e = readdir(d));)
        if (strstr(e->d_name, "tmp"))
            rc = snprintf(msg_, cap_, "temporary file %s left behind", e->d_name) * 0 + 1;
    if (d)
        closedir(d);
    rm_dir(dir);
    return rc;
}

/* A BITPIX 16 cube written with cfitsio itself after an empty primary HDU, with BSCALE,
 * BZERO and BLANK: read back scaled, blanks as NaN, from HDU 2 (found by hdu 0). */
TEST(data_fits_scaled_int16_cube)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *p = in_dir(dir, "scaled.fits");
    fitsfile *f;
    int status = 0;
    long naxes[3] = {5, 4, 3};   /* NAXIS1 = 5 columns, 4 rows, 3 planes */
    short raw[60];
    for (int i = 0; i < 60; i++)
        raw[i] = (short)(i * 37 - 1000);
    raw[17] = -32768;
    double bscale = 0.5, bzero = 100.0;
    long blank = -32768;
    fits_create_diskfile(&f, p, &status);
    fits_create_img(f, SHORT_IMG, 0, NULL, &status);
    fits_create_img(f, SHORT_IMG, 3, naxes, &status);
    fits_write_key(f, TDOUBLE, "BSCALE", &bscale, NULL, &status);
    fits_write_key(f, TDOUBLE, "BZERO", &bzero, NULL, &status);
    fits_write_key(f, TLONG, "BLANK", &blank, NULL, &status);
    fits_set_bscale(f, 1.0, 0.0, &status);   /* write the raw integers */
    fits_write_img(f, TSHORT, 1, 60, raw, &status);
    fits_close_file(f, &status);
    if (status) {
        char t[FLEN_STATUS];
        fits_get_errstatus(status, t);
        rm_dir(dir);
        FAIL("cfitsio: %s", t);
    }
    ds_tensor *t = NULL;
    int rc = 0;
    if (ds_array_load(p, NULL, &t) != DS_OK) {
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    } else if (ds_tensor_ndim(t) != 3 || ds_tensor_shape(t)[0] != 3 ||
               ds_tensor_shape(t)[1] != 4 || ds_tensor_shape(t)[2] != 5) {
        rc = snprintf(msg_, cap_, "shape %lld x %lld x %lld", (long long)ds_tensor_shape(t)[0],
                      (long long)ds_tensor_shape(t)[1], (long long)ds_tensor_shape(t)[2]) * 0 + 1;
    } else {
        for (int i = 0; i < 60 && !rc; i++) {
            float v = ds_tensor_data(t)[i], want = (float)(raw[i] * bscale + bzero);
            if (i == 17 ? !isnan(v) : v != want)
                rc = snprintf(msg_, cap_, "pixel %d: %g, expected %g", i, v,
                              i == 17 ? NAN : want) * 0 + 1;
        }
    }
    ds_tensor_free(t);
    /* the empty primary is not an image with data */
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.hdu = 1}, DS_ERR_FORMAT, msg_, cap_, "HDU 1",
                          "no data", NULL);
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.hdu = 3}, DS_ERR_ARG, msg_, cap_, "no HDU 3", NULL);
    if (!rc && (ds_array_load(p, &(ds_read_opts){.hdu = 2}, &t) != DS_OK ||
                ds_tensor_numel(t) != 60))
        rc = snprintf(msg_, cap_, "hdu 2: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    rm_dir(dir);
    return rc;
}

TEST(data_fits_table)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *p = in_dir(dir, "cat.fits");
    float flux[7], mag[7], z[7];
    for (int i = 0; i < 7; i++) {
        flux[i] = 1.5f * (float)i + 0.25f;
        mag[i] = 20.0f - (float)i / 3.0f;
        z[i] = 0.01f * (float)(i * i);
    }
    mag[3] = NAN;
    int rc = 0;
    ds_tensor *t = NULL;
    char *cols = NULL;
    if (ds_table_save(p, 3, (const char *[]){"flux", "mag", "z"}, 7,
                      (const float *[]){flux, mag, z}) != DS_OK) {
        rc = snprintf(msg_, cap_, "save: %s", ds_last_error()) * 0 + 1;
        goto done;
    }
    cols = ds_table_columns(p, NULL);
    if (!cols || strcmp(cols, "flux,mag,z")) {
        rc = snprintf(msg_, cap_, "columns '%s' (%s)", cols ? cols : "(null)", ds_last_error()) * 0 + 1;
        goto done;
    }
    /* all, by name (any case, any order) and by number */
    static const char *const specs[] = {NULL, "z, FLUX", "3,1", "Mag"};
    static const int nsel[] = {3, 2, 2, 1}, sel[][3] = {{0, 1, 2}, {2, 0}, {2, 0}, {1}};
    const float *src[3] = {flux, mag, z};
    for (int s = 0; s < 4 && !rc; s++) {
        if (ds_array_load(p, &(ds_read_opts){.columns = specs[s]}, &t) != DS_OK) {
            rc = snprintf(msg_, cap_, "'%s': %s", specs[s] ? specs[s] : "", ds_last_error()) * 0 + 1;
            break;
        }
        if (ds_tensor_ndim(t) != 2 || ds_tensor_shape(t)[0] != 7 || ds_tensor_shape(t)[1] != nsel[s])
            rc = snprintf(msg_, cap_, "'%s': wrong shape", specs[s] ? specs[s] : "") * 0 + 1;
        for (int i = 0; i < 7 && !rc; i++)
            for (int j = 0; j < nsel[s] && !rc; j++) {
                float v = ds_tensor_data(t)[i * nsel[s] + j], w = src[sel[s][j]][i];
                if (!(v == w || (isnan(v) && isnan(w))))
                    rc = snprintf(msg_, cap_, "'%s' row %d col %d: %g, expected %g", specs[s],
                                  i, j, v, w) * 0 + 1;
            }
        ds_tensor_free(t);
        t = NULL;
    }
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.columns = "flux,dec"}, DS_ERR_ARG, msg_, cap_,
                          "'dec'", "flux, mag, z", NULL);
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.columns = "4"}, DS_ERR_ARG, msg_, cap_, "4", NULL);
    /* the table is HDU 2, after an empty primary */
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.hdu = 1}, DS_ERR_FORMAT, msg_, cap_, "no data",
                          NULL);
    if (!rc && (ds_array_load(p, &(ds_read_opts){.hdu = 2, .columns = "z"}, &t) != DS_OK ||
                ds_tensor_numel(t) != 7 || ds_tensor_data(t)[6] != z[6]))
        rc = snprintf(msg_, cap_, "hdu 2: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    t = NULL;
    /* gzipped */
    const char *pg = in_dir(dir, "cat.fits.gz");
    if (!rc && (ds_table_save(pg, 3, NULL, 7, (const float *[]){flux, mag, z}) != DS_OK ||
                ds_array_load(pg, &(ds_read_opts){.columns = "col2"}, &t) != DS_OK ||
                ds_tensor_numel(t) != 7 || ds_tensor_data(t)[0] != mag[0]))
        rc = snprintf(msg_, cap_, "gzipped table: %s", ds_last_error()) * 0 + 1;
done:
    free(cols);
    ds_tensor_free(t);
    rm_dir(dir);
    return rc;
}

/* ASCII table and binary table with text, vector and null values, written by cfitsio. */
TEST(data_fits_ascii_and_vector_columns)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *pa = in_dir(dir, "ascii.fits"), *pb = in_dir(dir, "vec.fits");
    fitsfile *f;
    int status = 0;
    char *ttype[] = {"name", "x", "n"}, *tform_a[] = {"A8", "F10.3", "I6"};
    char *names[] = {"alpha", "beta", "gamma"};
    double x[3] = {1.25, -2.5, 1000.125};
    int n[3] = {7, -3, 12};
    fits_create_diskfile(&f, pa, &status);
    fits_create_tbl(f, ASCII_TBL, 3, 3, ttype, tform_a, NULL, "T", &status);
    fits_write_key(f, TSTRING, "TNULL2", "*", NULL, &status);
    fits_write_col(f, TSTRING, 1, 1, 1, 3, names, &status);
    fits_write_col(f, TDOUBLE, 2, 1, 1, 3, x, &status);
    fits_write_col(f, TINT, 3, 1, 1, 3, n, &status);
    fits_write_col_null(f, 2, 2, 1, 1, &status);
    fits_close_file(f, &status);
    char *tform_b[] = {"1J", "3E", "1D"};
    float vec[9] = {0};
    fits_create_diskfile(&f, pb, &status);
    fits_create_tbl(f, BINARY_TBL, 3, 3, ttype, tform_b, NULL, "V", &status);
    fits_write_col(f, TINT, 1, 1, 1, 3, n, &status);
    fits_write_col(f, TFLOAT, 2, 1, 1, 9, vec, &status);
    fits_write_col(f, TDOUBLE, 3, 1, 1, 3, x, &status);
    fits_close_file(f, &status);
    if (status) {
        char t[FLEN_STATUS];
        fits_get_errstatus(status, t);
        rm_dir(dir);
        FAIL("cfitsio: %s", t);
    }
    int rc = 0;
    ds_tensor *t = NULL;
    /* ASCII: the text column is skipped; the null becomes NaN */
    if (ds_array_load(pa, NULL, &t) != DS_OK) {
        rc = snprintf(msg_, cap_, "ascii: %s", ds_last_error()) * 0 + 1;
    } else {
        const float *v = ds_tensor_data(t);
        if (ds_tensor_shape(t)[0] != 3 || ds_tensor_shape(t)[1] != 2 || v[0] != 1.25f ||
            v[1] != 7 || !isnan(v[2]) || v[3] != -3 || v[4] != 1000.125f || v[5] != 12)
            rc = snprintf(msg_, cap_, "ascii table read wrong: %g %g %g %g %g %g", v[0], v[1],
                          v[2], v[3], v[4], v[5]) * 0 + 1;
    }
    ds_tensor_free(t);
    t = NULL;
    if (!rc)
        rc = expect_error(pa, &(ds_read_opts){.columns = "name"}, DS_ERR_FORMAT, msg_, cap_,
                          "'name'", "holds text (TFORM1 = 'A8'), not numbers", NULL);
    /* binary: the vector column is skipped by default and refused when asked for */
    if (!rc && (ds_array_load(pb, NULL, &t) != DS_OK || ds_tensor_shape(t)[1] != 2 ||
                ds_tensor_data(t)[0] != 7 || ds_tensor_data(t)[1] != 1.25f))
        rc = snprintf(msg_, cap_, "vector table: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    if (!rc)
        rc = expect_error(pb, &(ds_read_opts){.columns = "x"}, DS_ERR_FORMAT, msg_, cap_,
                          "'x'", "vectors of 3", NULL);
    char *cols = rc ? NULL : ds_table_columns(pb, NULL);
    if (!rc && (!cols || strcmp(cols, "name,x,n")))
        rc = snprintf(msg_, cap_, "columns '%s'", cols ? cols : ds_last_error()) * 0 + 1;
    free(cols);
    rm_dir(dir);
    return rc;
}

TEST(data_fits_errors)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = 0;
    const char *p = in_dir(dir, "bad.fits");
    write_text(p, "this is not a FITS file at all, just text\n");
    rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, p, "cfitsio", NULL);
    /* columns asked of an image; columns of an image */
    ds_tensor *a = random_tensor(2, (int64_t[]){3, 4}, 5);
    const char *q = in_dir(dir, "img.fits");
    if (!rc && ds_array_save(a, q, NULL) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    if (!rc)
        rc = expect_error(q, &(ds_read_opts){.columns = "a"}, DS_ERR_ARG, msg_, cap_, "image",
                          NULL);
    char *cols = rc ? NULL : ds_table_columns(q, NULL);
    if (!rc && (cols || !strstr(ds_last_error(), "not a table")))
        rc = snprintf(msg_, cap_, "columns of an image: %s", ds_last_error()) * 0 + 1;
    free(cols);
    /* a scalar cannot be an image; a bad column name cannot be written */
    ds_tensor *s = ds_tensor_create(0, NULL);
    if (!rc && ds_array_save(s, q, NULL) != DS_ERR_SHAPE)
        rc = snprintf(msg_, cap_, "scalar saved as FITS") * 0 + 1;
    float col[2] = {1, 2};
    if (!rc && ds_table_save(in_dir(dir, "t.fits"), 1, (const char *[]){"bad'name"}, 2,
                             (const float *[]){col}) != DS_ERR_ARG)
        rc = snprintf(msg_, cap_, "quote in a FITS column name accepted") * 0 + 1;
    /* hand-made headers announcing far more data than the file holds */
    static const char *const heads[][2] = {
        {"8589934592", "8589934592"},   /* 2^66 pixels: overflows 64 bits */
        {"100000", "100000"},           /* 10^10 pixels in a 2880-byte file */
    };
    for (int h = 0; h < 2 && !rc; h++) {
        char hdr[2881];
        memset(hdr, ' ', 2880);
        hdr[2880] = 0;
        const char *cards[] = {"SIMPLE  =                    T", "BITPIX  =                    8",
                               "NAXIS   =                    2", NULL, NULL, "END"};
        char c1[81], c2[81];
        snprintf(c1, sizeof c1, "NAXIS1  = %20s", heads[h][0]);
        snprintf(c2, sizeof c2, "NAXIS2  = %20s", heads[h][1]);
        cards[3] = c1, cards[4] = c2;
        for (int k = 0; k < 6; k++)
            memcpy(hdr + 80 * k, cards[k], strlen(cards[k]));
        const char *ph = in_dir(dir, "huge.fits");
        write_bytes(ph, hdr, 2880);
        rc = expect_error(ph, NULL, DS_ERR_FORMAT, msg_, cap_, "huge.fits", NULL);
    }
    ds_tensor_free(s);
    ds_tensor_free(a);
    rm_dir(dir);
    return rc;
}

/* A primary HDU without data, then a binary table of one E column "a" with two rows (1.5,
 * -2), with extra cards inserted after TFIELDS; written to path. */
static void write_table_fits(const char *path, const char *const *extra, int nextra)
{
    static char buf[3 * 2880];
    memset(buf, ' ', sizeof buf);
    const char *prim[] = {"SIMPLE  =                    T", "BITPIX  =                    8",
                          "NAXIS   =                    0", "EXTEND  =                    T", "END"};
    for (int k = 0; k < 5; k++)
        memcpy(buf + 80 * k, prim[k], strlen(prim[k]));
    const char *ext[] = {"XTENSION= 'BINTABLE'", "BITPIX  =                    8",
                         "NAXIS   =                    2", "NAXIS1  =                    4",
                         "NAXIS2  =                    2", "PCOUNT  =                    0",
                         "GCOUNT  =                    1", "TFIELDS =                    1",
                         "TTYPE1  = 'a       '", "TFORM1  = 'E       '"};
    int k = 0;
    char *h = buf + 2880;
    for (int i = 0; i < 10; i++, k++)
        memcpy(h + 80 * k, ext[i], strlen(ext[i]));
    for (int i = 0; i < nextra; i++, k++)
        memcpy(h + 80 * k, extra[i], strlen(extra[i]) > 80 ? 80 : strlen(extra[i]));
    memcpy(h + 80 * k, "END", 3);
    unsigned char *d = (unsigned char *)buf + 2 * 2880;
    memset(d, 0, 2880);
    const unsigned char rows[8] = {0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0};   /* 1.5, -2 big-endian */
    memcpy(d, rows, 8);
    write_bytes(path, buf, sizeof buf);
}

/* Every header card is checked before cfitsio reads it: a card cfitsio 4.2 would copy past
 * a buffer (a 70-character unquoted TTYPEn, text or digits, found by fuzzing) or a
 * non-ASCII byte is refused naming the HDU and the card; the standard's other value forms
 * load. */
TEST(data_fits_header_syntax)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *p = in_dir(dir, "h.fits");
    int rc = 0;
    const char *good[] = {
        "HIERARCH ESO DET CHIP NAME = 'CCD-44' / a HIERARCH card",
        "COMMENT   anything at all, even = signs and 'quotes",
        "HISTORY   written by hand",
        "LONGSTR = 'a long string &'",
        "CONTINUE  'continued'",
        "DEXP    =              1.5D-03 / a D exponent",
        "CPLX    =           (1.5, -2.0)",
        "FLAG    =                    F",
        "QUOTE   = 'it''s'",
        "UNDEF   =",
        "        blank keyword: commentary",
    };
    write_table_fits(p, good, (int)(sizeof good / sizeof good[0]));
    ds_tensor *t = NULL;
    if (ds_array_load(p, NULL, &t) != DS_OK)
        rc = snprintf(msg_, cap_, "a valid header was refused: %s", ds_last_error()) * 0 + 1;
    else if (ds_tensor_numel(t) != 2 || ds_tensor_data(t)[0] != 1.5f || ds_tensor_data(t)[1] != -2)
        rc = snprintf(msg_, cap_, "wrong table values") * 0 + 1;
    ds_tensor_free(t);
    char longval[81], longnum[81];
    snprintf(longval, sizeof longval, "TTYPE2  = %070d", 7);
    memset(longval + 10, 'A', 70);
    snprintf(longnum, sizeof longnum, "TTYPE2  = %070d", 1);   /* a valid number, 70 digits */
    const char *bad[][2] = {
        {longval, "HDU 2, header card 11 ('TTYPE2  '): the value 'AAAA"},
        {longnum, "HDU 2, header card 11 ('TTYPE2  '): the value '0000"},
        {"OBJECT  = M31 galaxy", "HDU 2, header card 11 ('OBJECT  '): the value 'M31 galaxy"},
        {"NAME    = 'unterminated", "is not a FITS value"},
        {"NUMBER  =                 12.5 trailing", "is not a FITS value"},
        {"TEXT    = 'caf\xc3\xa9'", "HDU 2, header card 11: byte 0xc3 at column 15 is not printable ASCII"},
    };
    for (size_t i = 0; !rc && i < sizeof bad / sizeof bad[0]; i++) {
        write_table_fits(p, &bad[i][0], 1);
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "h.fits", bad[i][1], NULL);
    }
    rm_dir(dir);
    return rc;
}

/* ---- CSV ---- */

TEST(data_csv_round_trip)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = 0;
    ds_tensor *a = random_tensor(2, (int64_t[]){5, 3}, 3), *b = NULL;
    float *x = ds_tensor_data(a);
    x[0] = 1e-38f, x[1] = -0.0f, x[2] = 3.4e38f, x[4] = NAN, x[5] = INFINITY, x[7] = -INFINITY;
    x[8] = 16777217.0f, x[9] = 1.0f / 3.0f;
    const char *p = in_dir(dir, "t.csv");
    const char *names[] = {"a", "b, \"quoted\"", "c"};
    if (ds_array_save(a, p, names) != DS_OK || ds_array_load(p, NULL, &b) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    if (!rc)
        rc = same_tensor(b, a, msg_, cap_);
    if (!rc && signbit(ds_tensor_data(b)[1]) == 0)
        rc = snprintf(msg_, cap_, "-0 lost its sign") * 0 + 1;
    ds_tensor_free(b);
    b = NULL;
    char *cols = rc ? NULL : ds_table_columns(p, NULL);
    if (!rc && (!cols || strcmp(cols, "a,b, \"quoted\",c")))
        rc = snprintf(msg_, cap_, "columns '%s'", cols ? cols : ds_last_error()) * 0 + 1;
    free(cols);
    /* selection by name and number */
    if (!rc && (ds_array_load(p, &(ds_read_opts){.columns = "C,1"}, &b) != DS_OK ||
                ds_tensor_shape(b)[1] != 2 || ds_tensor_data(b)[0] != x[2] ||
                ds_tensor_data(b)[1] != x[0] || ds_tensor_data(b)[2] != x[5]))
        rc = snprintf(msg_, cap_, "selection: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(b);
    b = NULL;
    /* a 1-D array is one column headed col1 */
    ds_tensor *v = random_tensor(1, (int64_t[]){4}, 4);
    const char *pv = in_dir(dir, "v.csv");
    if (!rc && (ds_array_save(v, pv, NULL) != DS_OK || ds_array_load(pv, NULL, &b) != DS_OK ||
                ds_tensor_shape(b)[0] != 4 || ds_tensor_shape(b)[1] != 1 ||
                memcmp(ds_tensor_data(b), ds_tensor_data(v), 16)))
        rc = snprintf(msg_, cap_, "1-D: %s", ds_last_error()) * 0 + 1;
    cols = rc ? NULL : ds_table_columns(pv, NULL);
    if (!rc && (!cols || strcmp(cols, "col1")))
        rc = snprintf(msg_, cap_, "1-D columns '%s'", cols ? cols : "") * 0 + 1;
    free(cols);
    ds_tensor_free(b);
    b = NULL;
    /* ds_table_save */
    float c1[3] = {1, 2, 3}, c2[3] = {0.5f, 0.25f, 0.125f};
    const char *pt = in_dir(dir, "tab.csv");
    if (!rc && (ds_table_save(pt, 2, (const char *[]){"x", "y"}, 3, (const float *[]){c1, c2}) != DS_OK ||
                ds_array_load(pt, &(ds_read_opts){.columns = "y"}, &b) != DS_OK ||
                memcmp(ds_tensor_data(b), c2, sizeof c2)))
        rc = snprintf(msg_, cap_, "table: %s", ds_last_error()) * 0 + 1;
    /* 3-D arrays are not tables */
    ds_tensor *cube = ds_tensor_create(3, (int64_t[]){2, 2, 2});
    if (!rc && ds_array_save(cube, in_dir(dir, "s.csv"), NULL) != DS_ERR_SHAPE)
        rc = snprintf(msg_, cap_, "3-D array saved as CSV") * 0 + 1;
    ds_tensor_free(cube);
    ds_tensor_free(b);
    ds_tensor_free(v);
    ds_tensor_free(a);
    rm_dir(dir);
    return rc;
}

TEST(data_csv_parsing)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = 0;
    ds_tensor *t = NULL;
    /* comments, blank lines, quotes, CRLF, a text column skipped, nan/inf and empty cells */
    const char *p1 = in_dir(dir, "a.csv");
    write_text(p1, "# made by hand\r\n\r\nid, \"na,me\" ,\"x\"\"y\",z\r\n"
                   "1,\"foo, bar\",2.5,-1e3\r\n# a comment\n   \n"
                   "2,\"multi\nline\",nan,\r\n3 ,baz, inf ,0x10\n");
    if (ds_array_load(p1, NULL, &t) != DS_OK) {
        rc = snprintf(msg_, cap_, "a.csv: %s", ds_last_error()) * 0 + 1;
    } else {
        const float *v = ds_tensor_data(t);
        if (ds_tensor_shape(t)[0] != 3 || ds_tensor_shape(t)[1] != 3 || v[0] != 1 ||
            v[1] != 2.5f || v[2] != -1000 || v[3] != 2 || !isnan(v[4]) || !isnan(v[5]) ||
            v[6] != 3 || !isinf(v[7]) || v[8] != 16)
            rc = snprintf(msg_, cap_, "a.csv read wrong") * 0 + 1;
    }
    ds_tensor_free(t);
    t = NULL;
    char *cols = rc ? NULL : ds_table_columns(p1, NULL);
    if (!rc && (!cols || strcmp(cols, "id,na,me,x\"y,z")))
        rc = snprintf(msg_, cap_, "a.csv columns '%s'", cols ? cols : "") * 0 + 1;
    free(cols);
    /* semicolons and tabs, detected from the header */
    const char *p2 = in_dir(dir, "semi.csv"), *p3 = in_dir(dir, "tabs.csv");
    write_text(p2, "a;b;c\n1,5;2;3\n");   /* the comma is inside a field: 1,5 is not a number */
    if (!rc)
        rc = expect_error(p2, &(ds_read_opts){.columns = "a"}, DS_ERR_FORMAT, msg_, cap_,
                          "semi.csv:2: column 'a': '1,5' is not a number", NULL);
    /* without a list, the columns whose first value is a number */
    if (!rc && (ds_array_load(p2, NULL, &t) != DS_OK || ds_tensor_shape(t)[1] != 2))
        rc = snprintf(msg_, cap_, "semi.csv: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    t = NULL;
    if (!rc && (ds_array_load(p2, &(ds_read_opts){.columns = "c;b"}, &t) == DS_OK))
        rc = snprintf(msg_, cap_, "a ';' in a column list is not a separator there") * 0 + 1;
    ds_tensor_free(t);
    t = NULL;
    if (!rc && (ds_array_load(p2, &(ds_read_opts){.columns = "c,b"}, &t) != DS_OK ||
                ds_tensor_data(t)[0] != 3 || ds_tensor_data(t)[1] != 2))
        rc = snprintf(msg_, cap_, "semi.csv: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    t = NULL;
    write_text(p3, "a b\tc\n 1\t-2.5\n");
    if (!rc && (ds_array_load(p3, NULL, &t) != DS_OK || ds_tensor_shape(t)[1] != 2 ||
                ds_tensor_data(t)[0] != 1 || ds_tensor_data(t)[1] != -2.5f))
        rc = snprintf(msg_, cap_, "tabs.csv: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    t = NULL;
    /* header only: no rows */
    const char *p4 = in_dir(dir, "empty_rows.csv");
    write_text(p4, "u,v\n");
    if (!rc && (ds_array_load(p4, NULL, &t) != DS_OK || ds_tensor_shape(t)[0] != 0 ||
                ds_tensor_shape(t)[1] != 2))
        rc = snprintf(msg_, cap_, "header only: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    rm_dir(dir);
    return rc;
}

TEST(data_csv_errors)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *p = in_dir(dir, "bad.csv");
    int rc = 0;
    char want[600];
    write_text(p, "a,b,c\n# comment\n1,2,3\n\n4,abc,6\n");
    snprintf(want, sizeof want, "%s:5: column 'b': 'abc' is not a number", p);
    rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, want, NULL);
    /* a column not selected may hold anything */
    ds_tensor *t = NULL;
    if (!rc && (ds_array_load(p, &(ds_read_opts){.columns = "c,a"}, &t) != DS_OK ||
                ds_tensor_shape(t)[0] != 2 || ds_tensor_data(t)[2] != 6))
        rc = snprintf(msg_, cap_, "c,a: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.columns = "a,flux"}, DS_ERR_ARG, msg_, cap_,
                          "no column 'flux'", "(columns: a, b, c)", NULL);
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.columns = "0"}, DS_ERR_ARG, msg_, cap_,
                          "out of range", NULL);
    write_text(p, "a,b,c\n1,2,3\n4,5\n");
    snprintf(want, sizeof want, "%s:3: 2 fields, but the header names 3 columns", p);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, want, NULL);
    /* a first line of numbers is data (tests/test_tables.c has the rules); another row
     * length is then measured against it */
    write_text(p, "1,2,3\n4,5\n");
    snprintf(want, sizeof want, "%s:2: 2 fields, but the first row (line 1) has 3", p);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, want, NULL);
    write_text(p, "# only a comment\n\n");
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "no header", NULL);
    write_text(p, "a,b\n1,\"2\n");
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "bad.csv:2: quoted field is not "
                          "closed", NULL);
    write_text(p, "name,kind\nx,y\n");
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "no column holds numbers", NULL);
    write_bytes(p, "a,b\n1,\0", 7);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "binary", NULL);
    rm_dir(dir);
    return rc;
}

/* ---- IDX ---- */

/* Writes an IDX file of type code type (data already big-endian), gzipped if gz. */
static int write_idx(const char *path, int type, int nd, const int32_t *dims, const void *data,
                     size_t nbytes, bool gz, size_t extra)
{
    unsigned char head[4 + 4 * 6] = {0, 0, (unsigned char)type, (unsigned char)nd};
    for (int i = 0; i < nd; i++) {
        uint32_t d = (uint32_t)dims[i];
        unsigned char *p = head + 4 + 4 * i;
        p[0] = (unsigned char)(d >> 24), p[1] = (unsigned char)(d >> 16);
        p[2] = (unsigned char)(d >> 8), p[3] = (unsigned char)d;
    }
    static const unsigned char zeros[8];
    if (!gz) {
        FILE *fp = fopen(path, "wb");
        if (!fp)
            return 1;
        fwrite(head, 1, 4 + 4 * (size_t)nd, fp);
        fwrite(data, 1, nbytes, fp);
        fwrite(zeros, 1, extra, fp);
        return fclose(fp) != 0;
    }
    gzFile g = gzopen(path, "wb");
    if (!g)
        return 1;
    gzwrite(g, head, 4 + 4 * (unsigned)nd);
    if (nbytes)
        gzwrite(g, data, (unsigned)nbytes);
    if (extra)
        gzwrite(g, zeros, (unsigned)extra);
    return gzclose(g) != Z_OK;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

TEST(data_idx_round_trip)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = 0;
    /* every type, plain and gzipped; gzip found by its magic, not by the name */
    static const struct { int type, size; const char *plain, *gz; } cases[] = {
        {0x08, 1, "u-idx3-ubyte", "u-idx3-ubyte.gz"},
        {0x09, 1, "s.idx", "s.IDX.GZ"},
        {0x0B, 2, "short-idx3", "gz_without_suffix-idx3"},
        {0x0C, 4, "int.idx", "int-idx.gz"},
        {0x0D, 4, "float.idx", "float.idx.gz"},
        {0x0E, 8, "double.idx", "double.idx.gz"},
    };
    const int32_t dims[3] = {4, 3, 2};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && !rc; c++) {
        unsigned char data[24 * 8];
        float want[24];
        for (int i = 0; i < 24; i++) {
            switch (cases[c].type) {
            case 0x08: want[i] = (float)(i * 11); put_be(data + i, (uint64_t)(i * 11), 1); break;
            case 0x09: want[i] = (float)(i * 5 - 60); put_be(data + i, (uint8_t)(int8_t)(i * 5 - 60), 1); break;
            case 0x0B: want[i] = (float)(i * 1000 - 12000); put_be(data + 2 * i, (uint16_t)(int16_t)(i * 1000 - 12000), 2); break;
            case 0x0C: want[i] = (float)(i * 300000 - 3000000); put_be(data + 4 * i, (uint32_t)(i * 300000 - 3000000), 4); break;
            case 0x0D: {
                float f = (float)i / 7.0f - 1.0f;
                uint32_t u;
                memcpy(&u, &f, 4);
                want[i] = f;
                put_be(data + 4 * i, u, 4);
                break;
            }
            default: {
                double d = (double)i / 3.0 - 2.0;
                uint64_t u;
                memcpy(&u, &d, 8);
                want[i] = (float)d;
                put_be(data + 8 * i, u, 8);
                break;
            }
            }
        }
        ds_tensor *w = ds_tensor_from(3, (int64_t[]){4, 3, 2}, want);
        for (int g = 0; g < 2 && !rc; g++) {
            const char *p = in_dir(dir, g ? cases[c].gz : cases[c].plain);
            ds_tensor *t = NULL;
            if (write_idx(p, cases[c].type, 3, dims, data, 24 * (size_t)cases[c].size, g, 0) ||
                ds_array_load(p, NULL, &t) != DS_OK)
                rc = snprintf(msg_, cap_, "%s: %s", p, ds_last_error()) * 0 + 1;
            else
                rc = same_tensor(t, w, msg_, cap_);
            ds_tensor_free(t);
        }
        ds_tensor_free(w);
    }
    /* a plain file named .gz reads as plain */
    unsigned char lab[5] = {0, 1, 2, 9, 255};
    const char *p = in_dir(dir, "plain-labels-idx1-ubyte.gz");
    ds_tensor *t = NULL;
    if (!rc && (write_idx(p, 0x08, 1, (int32_t[]){5}, lab, 5, false, 0) ||
                ds_array_load(p, NULL, &t) != DS_OK || ds_tensor_numel(t) != 5 ||
                ds_tensor_data(t)[4] != 255))
        rc = snprintf(msg_, cap_, "plain .gz: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    rm_dir(dir);
    return rc;
}

TEST(data_idx_errors)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = 0;
    unsigned char data[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const char *p = in_dir(dir, "x-idx2-ubyte"), *pg = in_dir(dir, "x-idx2-ubyte.gz");
    /* trailing bytes, plain and gzipped */
    write_idx(p, 0x08, 2, (int32_t[]){3, 4}, data, 12, false, 1);
    rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, p, "needs 12 data bytes", NULL);
    write_idx(pg, 0x08, 2, (int32_t[]){3, 4}, data, 12, true, 3);
    if (!rc)
        rc = expect_error(pg, NULL, DS_ERR_FORMAT, msg_, cap_, pg, "holds more", NULL);
    /* short data, gzipped: named with expected and found byte counts */
    write_idx(pg, 0x08, 2, (int32_t[]){3, 4}, data, 10, true, 0);
    if (!rc)
        rc = expect_error(pg, NULL, DS_ERR_FORMAT, msg_, cap_, pg, "needs 12 bytes, found 10",
                          NULL);
    /* bad magic and type, too many dims, int32 beyond 2^24 */
    write_idx(p, 0x0A, 2, (int32_t[]){3, 4}, data, 12, false, 0);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "not an IDX file", NULL);
    write_bytes(p, "\x01\x00\x08\x01\x00\x00\x00\x01\x05", 9);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "not an IDX file", NULL);
    unsigned char big[4];
    put_be(big, 20000000, 4);
    write_idx(p, 0x0C, 1, (int32_t[]){1}, big, 4, false, 0);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "2^24", NULL);
    /* huge dims in a small file are refused before allocating */
    write_idx(p, 0x0E, 3, (int32_t[]){1 << 30, 1 << 30, 16}, data, 12, false, 0);
    if (!rc)
        rc = expect_error(p, NULL, DS_ERR_FORMAT, msg_, cap_, "2^40", NULL);
    write_idx(pg, 0x0E, 2, (int32_t[]){1 << 20, 1 << 10}, data, 12, true, 0);
    if (!rc)
        rc = expect_error(pg, NULL, DS_ERR_FORMAT, msg_, cap_, "more than a gzip file", NULL);
    rm_dir(dir);
    return rc;
}

/* ---- truncated files of every format ---- */

TEST(data_truncated_files)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = 0;
    ds_tensor *img = random_tensor(3, (int64_t[]){2, 3, 50}, 21);     /* 1200 data bytes */
    ds_tensor *tab = random_tensor(2, (int64_t[]){6, 3}, 22);
    float c[3][40];
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 40; i++)
            c[j][i] = (float)(i * 3 + j) * 0.5f;
    struct { const char *name; int kind; } files[] = {
        {"a.npy", 0}, {"a.fits", 0}, {"a.fits.gz", 0}, {"t.fits", 1}, {"a.csv", 2},
        {"a-idx3-ubyte", 3}, {"a-idx3-ubyte.gz", 3},
    };
    unsigned char idx[300];
    for (int i = 0; i < 300; i++)
        idx[i] = (unsigned char)i;
    for (size_t f = 0; f < sizeof files / sizeof files[0] && !rc; f++) {
        const char *p = in_dir(dir, files[f].name);
        ds_status st = DS_OK;
        ds_tensor *want = NULL;
        switch (files[f].kind) {
        case 0: st = ds_array_save(img, p, NULL); want = img; break;
        case 1: st = ds_table_save(p, 3, (const char *[]){"a", "b", "c"}, 40,
                                   (const float *[]){c[0], c[1], c[2]});
                break;
        case 2: st = ds_array_save(tab, p, NULL); want = tab; break;
        default:
            st = write_idx(p, 0x08, 3, (int32_t[]){3, 10, 10}, idx, 300,
                           strstr(p, ".gz") != NULL, 0) ? DS_ERR_IO : DS_OK;
        }
        if (st != DS_OK) {
            rc = snprintf(msg_, cap_, "%s: %s", files[f].name, ds_last_error()) * 0 + 1;
            break;
        }
        size_t n = 0;
        unsigned char *bytes = read_bytes(p, &n);
        bool is_fits = strstr(files[f].name, ".fits") && !strstr(files[f].name, ".gz");
        /* FITS: every 13th byte up to the end of the data (the padding after it is not
         * needed to read the values); the others: every byte */
        size_t stop = n;
        if (is_fits)
            stop = files[f].kind == 1 ? 2 * 2880 + 40 * 12 : 2880 + 1200;
        char cut[600];   /* same ending, so the same reader */
        snprintf(cut, sizeof cut, "%s/cut_%s", dir, files[f].name);
        for (size_t len = 0; len < stop && !rc; len += is_fits ? 13 : 1)
            rc = check_truncated(bytes, len, cut, NULL, want, files[f].kind == 2, msg_, cap_);
        free(bytes);
    }
    ds_tensor_free(img);
    ds_tensor_free(tab);
    rm_dir(dir);
    return rc;
}

/* ---- dispatch, NaN checks ---- */

TEST(data_dispatch_errors)
{
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    int rc = expect_error("model.h5", NULL, DS_ERR_ARG, msg_, cap_, "model.h5", ".npy", ".fits",
                          ".csv", "IDX", NULL);
    if (!rc)
        rc = expect_error(in_dir(dir, "missing.fits"), NULL, DS_ERR_IO, msg_, cap_, "missing.fits",
                          "No such file", NULL);
    if (!rc)
        rc = expect_error(in_dir(dir, "missing-idx1-ubyte.gz"), NULL, DS_ERR_IO, msg_, cap_,
                          "No such file", NULL);
    ds_tensor *a = random_tensor(1, (int64_t[]){3}, 1);
    const char *p = in_dir(dir, "a.npy");
    if (!rc && ds_array_save(a, p, NULL) != DS_OK)
        rc = snprintf(msg_, cap_, "%s", ds_last_error()) * 0 + 1;
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.columns = "x"}, DS_ERR_ARG, msg_, cap_, "columns",
                          NULL);
    if (!rc)
        rc = expect_error(p, &(ds_read_opts){.hdu = 2}, DS_ERR_ARG, msg_, cap_, "HDU", NULL);
    if (!rc && (ds_array_save(a, in_dir(dir, "a-idx1-ubyte"), NULL) != DS_ERR_ARG ||
                ds_array_save(a, in_dir(dir, "a.txt"), NULL) != DS_ERR_ARG ||
                ds_array_save(a, in_dir(dir, "no_such_dir/a.npy"), NULL) != DS_ERR_IO))
        rc = snprintf(msg_, cap_, "bad save accepted: %s", ds_last_error()) * 0 + 1;
    float col[1] = {1};
    if (!rc && ds_table_save(in_dir(dir, "t.npy"), 1, NULL, 1, (const float *[]){col}) != DS_ERR_ARG)
        rc = snprintf(msg_, cap_, "table saved as .npy") * 0 + 1;
    char *cols = rc ? NULL : ds_table_columns(p, NULL);
    if (!rc && (cols || !strstr(ds_last_error(), "only tables")))
        rc = snprintf(msg_, cap_, "columns of a .npy: %s", ds_last_error()) * 0 + 1;
    free(cols);
    ds_tensor_free(a);
    rm_dir(dir);
    return rc;
}

TEST(data_check_finite)
{
    ds_tensor *t = ds_tensor_create(3, (int64_t[]){4, 3, 2});
    float *x = ds_tensor_data(t);
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    CHECK(ds_tensor_check_finite(t, "x") == DS_OK);
    x[20] = INFINITY;
    x[13] = NAN;   /* the first one is named: sample 13 / 6 = 2 */
    CHECK(ds_tensor_check_finite(t, "training images") == DS_ERR_VALUE);
    CHECK(strcmp(ds_last_error(), "training images: element 13 (sample 2) is NaN") == 0);
    x[13] = 0;
    CHECK(ds_tensor_check_finite(t, "y") == DS_ERR_VALUE);
    CHECK(strcmp(ds_last_error(), "y: element 20 (sample 3) is +Inf") == 0);
    ds_tensor_free(t);
    /* NaN read from a CSV file is named too */
    char dir[64];
    CHECK(make_dir(dir, sizeof dir) == 0);
    const char *p = in_dir(dir, "n.csv");
    write_text(p, "a,b\n1,2\n3,nan\n");
    CHECK(ds_array_load(p, NULL, &t) == DS_OK);
    ds_status st = ds_tensor_check_finite(t, p);
    ds_tensor_free(t);
    rm_dir(dir);
    CHECK(st == DS_ERR_VALUE && strstr(ds_last_error(), "element 3 (sample 1) is NaN"));
    return TEST_PASS;
}

/* ---- real data ---- */

TEST(data_fashion_mnist)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char pl[256], pi[256];
    snprintf(pl, sizeof pl, "%s/t10k-labels-idx1-ubyte.gz", dir);
    snprintf(pi, sizeof pi, "%s/t10k-images-idx3-ubyte.gz", dir);
    if (access(pl, R_OK) != 0 || access(pi, R_OK) != 0)
        SKIP("%s not found: install Debian's dataset-fashion-mnist", dir);
    ds_tensor *lab = NULL, *img = NULL;
    CHECK(ds_array_load(pl, NULL, &lab) == DS_OK);
    int count[10] = {0}, bad = 0;
    CHECK(ds_tensor_ndim(lab) == 1 && ds_tensor_shape(lab)[0] == 10000);
    for (int i = 0; i < 10000; i++) {
        float v = ds_tensor_data(lab)[i];
        if (v < 0 || v > 9 || v != floorf(v))
            bad++;
        else
            count[(int)v]++;
    }
    ds_tensor_free(lab);
    CHECK(bad == 0);
    for (int k = 0; k < 10; k++)
        CHECK(count[k] == 1000);   /* the test set is balanced */
    CHECK(ds_array_load(pi, NULL, &img) == DS_OK);
    const int64_t *s = ds_tensor_shape(img);
    int shape_ok = ds_tensor_ndim(img) == 3 && s[0] == 10000 && s[1] == 28 && s[2] == 28;
    float lo = 1e9f, hi = -1e9f;
    double sum = 0;
    for (int64_t i = 0; shape_ok && i < ds_tensor_numel(img); i++) {
        float v = ds_tensor_data(img)[i];
        lo = fminf(lo, v), hi = fmaxf(hi, v), sum += v;
        bad += v != floorf(v);
    }
    double mean = sum / (double)ds_tensor_numel(img);
    ds_tensor_free(img);
    CHECK(shape_ok);
    CHECK(bad == 0 && lo == 0 && hi == 255);
    CHECK(mean > 60 && mean < 85);   /* about 73 for Fashion-MNIST */
    snprintf(msg_, cap_, "pixel mean %.3f", mean);
    return TEST_PASS;
}
