/* fits.c - FITS files through cfitsio: images of any BITPIX and numeric table columns read
 * as float32 from a file's bytes (gzipped or not); float32 images and binary tables written
 * through a temporary file. */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <fitsio.h>
#include <math.h>
#include <pthread.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Debian's cfitsio is not built reentrant (fits_is_reentrant() == 0): its error stack and
 * buffers are shared, so every use goes through this lock. */
static pthread_mutex_t fits_lock = PTHREAD_MUTEX_INITIALIZER;

/* A message with cfitsio's status text and the oldest entry of its error stack. cfitsio
 * also says "could not allocate memory" for a corrupt gzipped file, so that status is not
 * turned into DS_ERR_NOMEM. */
static ds_status fits_fail(ds_status s, const char *path, int status, const char *what)
{
    char text[FLEN_STATUS] = "", detail[FLEN_ERRMSG] = "";
    fits_get_errstatus(status, text);
    fits_read_errmsg(detail);
    fits_clear_errmsg();
    size_t n = strlen(detail);
    while (n && (detail[n - 1] == ' ' || detail[n - 1] == '\n'))
        detail[--n] = 0;
    return dsi_fail(s, "%s: %s: cfitsio error %d (%s)%s%s", path, what, status, text,
                    n ? ": " : "", detail);
}

/* An open FITS file, read by cfitsio from memory. Gzipped data is decompressed here with
 * zlib: cfitsio's own gunzip sizes its buffer from the gzip trailer, which for a truncated
 * file is garbage (up to 4 GB), and does not notice a stream cut short. */
typedef struct {
    fitsfile *f;
    void *mem;        /* what cfitsio reads (it only reads: the file is READONLY) */
    size_t memsize;
    void *own;        /* the decompressed or zero-padded bytes, or NULL */
    int64_t size;     /* bytes of FITS data (decompressed size for gzipped data) */
} fits_in;

/* Whole 2880-byte records: what cfitsio reads at a time. */
static uint64_t whole_records(uint64_t bytes)
{
    return (bytes + 2879) / 2880 * 2880;
}

/* Inflates gzbuf into in->own (*len bytes, zero-padded to whole records), under the memory
 * limit. */
static ds_status gunzip(const unsigned char *gzbuf, size_t gzlen, const char *path,
                        size_t *len, fits_in *in)
{
    unsigned char *b;
    ds_status st = dsi_gunzip(gzbuf, gzlen, path, 2880, &b, len);
    if (st == DS_OK)
        in->own = b;
    return st;
}

/* A copy of buf zero-padded to whole records, in in->own. */
static ds_status pad(const unsigned char *buf, size_t len, const char *path, fits_in *in)
{
    if (!(in->own = calloc(1, (size_t)whole_records(len))))
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, len);
    memcpy(in->own, buf, len);
    return DS_OK;
}

/* dsi_fits_check on bytes in memory. Data shorter than one header block holds no card for
 * cfitsio to copy; it reports the truncation itself. */
static ds_status check_mem(const void *buf, size_t len, const char *path)
{
    if (len < 2880)
        return DS_OK;
    FILE *mf = fmemopen((void *)buf, len, "rb");   /* read mode: never written */
    if (!mf)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
    ds_status st = dsi_fits_check(mf, path);
    fclose(mf);
    return st;
}

/* Opens a FITS file's bytes buf[0..len), gzipped or not (by the magic); path names it. */
static ds_status open_in(const unsigned char *buf, size_t len, const char *path, fits_in *in)
{
    memset(in, 0, sizeof *in);
    ds_status st = DS_OK;
    /* cfitsio reads whole records: the bytes it sees are padded to one (check_size) */
    if (dsi_is_gzip(buf, len))
        st = gunzip(buf, len, path, &len, in);
    else if (len % 2880)
        st = pad(buf, len, path, in);
    in->mem = in->own ? in->own : (void *)buf;
    in->memsize = len;
    in->size = (int64_t)len;
    if (st == DS_OK)
        st = check_mem(in->mem, len, path);
    int status = 0;
    /* a plain name: cfitsio would parse [..] in path as an HDU or filter spec */
    if (st == DS_OK && fits_open_memfile(&in->f, "memory.fits", READONLY, &in->mem,
                                         &in->memsize, 0, NULL, &status)) {
        in->f = NULL;
        st = fits_fail(DS_ERR_FORMAT, path, status, "cannot open as FITS");
    }
    if (st != DS_OK) {
        free(in->own);
        memset(in, 0, sizeof *in);
    }
    return st;
}

static void close_in(fits_in *in)
{
    int status = 0;
    if (in->f)
        fits_close_file(in->f, &status);
    fits_clear_errmsg();
    free(in->own);
    memset(in, 0, sizeof *in);
}

/* The bytes of data the current HDU's header announces, by the standard's formula:
 * |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn), NAXIS1 left out when it is 0
 * with GROUPS = T (random groups). Read from the raw header, so a tile-compressed image (a
 * table) counts its rows and its heap. */
static ds_status data_bytes(fitsfile *f, const char *path, int hdu, uint64_t *bytes)
{
    int status = 0;
    LONGLONG bitpix = 0, naxis = 0, pcount = 0, gcount = 1, n = 1;
    fits_read_key_lnglng(f, "BITPIX", &bitpix, NULL, &status);
    fits_read_key_lnglng(f, "NAXIS", &naxis, NULL, &status);
    if (status)
        return fits_fail(DS_ERR_FORMAT, path, status, "reading BITPIX and NAXIS");
    if (fits_read_key_lnglng(f, "PCOUNT", &pcount, NULL, &status) == KEY_NO_EXIST)
        status = 0;
    if (fits_read_key_lnglng(f, "GCOUNT", &gcount, NULL, &status) == KEY_NO_EXIST)
        status = 0;
    int groups = 0, gst = 0;
    if (fits_read_key(f, TLOGICAL, "GROUPS", &groups, NULL, &gst))
        groups = 0;   /* absent or not a logical: no random groups */
    fits_clear_errmsg();
    const LONGLONG lim = 1LL << 50;
    bool bad = status || naxis < 0 || naxis > 999 || pcount < 0 || pcount > lim || gcount < 0 ||
               gcount > lim || (bitpix != 8 && bitpix != 16 && bitpix != 32 && bitpix != 64 &&
                                bitpix != -32 && bitpix != -64);
    for (int i = 1; !bad && naxis && i <= naxis; i++) {
        char key[16];
        LONGLONG a = 0;
        snprintf(key, sizeof key, "NAXIS%d", i);
        bad = fits_read_key_lnglng(f, key, &a, NULL, &status) || a < 0 ||
              (a && n > lim / a);
        if (!bad && !(i == 1 && a == 0 && groups))
            n *= a;
    }
    fits_clear_errmsg();
    if (!bad && naxis == 0)
        n = 0, pcount = 0;
    if (bad || n + pcount > lim || (gcount && n + pcount > lim / gcount))
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: BITPIX, NAXIS, NAXISn, PCOUNT or GCOUNT is "
                        "missing or invalid", path, hdu);
    *bytes = (uint64_t)((n + pcount) * gcount) * (uint64_t)(bitpix < 0 ? -bitpix : bitpix) / 8;
    return DS_OK;
}

/* Refuses an HDU that announces more data than the file holds, before allocating: the whole
 * 2880-byte records holding the need bytes read after the data start must be present, as
 * cfitsio's disk driver required. In memory this is also what keeps cfitsio's reads within
 * the bytes: it takes a memory file's last HDU to be as long as its header says. */
static ds_status check_size(fitsfile *f, const char *path, int64_t size, int hdu,
                            uint64_t need)
{
    int status = 0;
    LONGLONG hs, ds, de;
    if (fits_get_hduaddrll(f, &hs, &ds, &de, &status))
        return fits_fail(DS_ERR_FORMAT, path, status, "reading the HDU addresses");
    if (whole_records((uint64_t)ds + need) > (uint64_t)size)
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d is truncated: its data needs %llu bytes "
                        "after offset %lld (in whole 2880-byte records), the file has %lld "
                        "bytes", path, hdu, (unsigned long long)need, (long long)ds,
                        (long long)size);
    return DS_OK;
}

/* Moves to HDU want (1-based), or with want == 0 to the first image with NAXIS > 0 or the
 * first table. *type is IMAGE_HDU, ASCII_TBL or BINARY_TBL. */
static ds_status find_hdu(fitsfile *f, const char *path, int64_t size, int want, int *hdu,
                          int *type)
{
    int status = 0;
    if (want > 0) {
        if (fits_movabs_hdu(f, want, type, &status)) {
            int n = 0, st2 = 0;
            fits_get_num_hdus(f, &n, &st2);
            if (status == END_OF_FILE || status == BAD_HDU_NUM) {
                fits_clear_errmsg();
                return dsi_fail(DS_ERR_ARG, "%s: no HDU %d (the file has %d)", path, want, n);
            }
            return fits_fail(DS_ERR_FORMAT, path, status, "moving to the HDU");
        }
        *hdu = want;
        return DS_OK;
    }
    for (int i = 1;; i++) {
        if (fits_movabs_hdu(f, i, type, &status)) {
            if (status == END_OF_FILE && i > 1) {
                fits_clear_errmsg();
                return dsi_fail(DS_ERR_FORMAT, "%s: no HDU holds an image or a table (%d HDUs "
                                "read)%s", path, i - 1,
                                size % 2880 ? "; the file size is not a multiple of 2880 "
                                "bytes: truncated?" : "");
            }
            return fits_fail(DS_ERR_FORMAT, path, status, "reading the HDUs");
        }
        int naxis = 0;
        if (*type != IMAGE_HDU || (fits_get_img_dim(f, &naxis, &status) == 0 && naxis > 0)) {
            *hdu = i;
            return status ? fits_fail(DS_ERR_FORMAT, path, status, "reading NAXIS") : DS_OK;
        }
        if (status)
            return fits_fail(DS_ERR_FORMAT, path, status, "reading NAXIS");
    }
}

/* The current HDU's EXTNAME, else HDUNAME, into name ("" if neither). */
static void hdu_name(fitsfile *f, char *name)
{
    int status = 0;
    name[0] = 0;
    if (fits_read_key(f, TSTRING, "EXTNAME", name, NULL, &status)) {
        status = 0;
        name[0] = 0;
        if (fits_read_key(f, TSTRING, "HDUNAME", name, NULL, &status))
            name[0] = 0;
    }
    fits_clear_errmsg();
}

/* Moves to the HDU whose EXTNAME or HDUNAME is want (any case; "primary": HDU 1 unless an
 * HDU has that name). The message lists every HDU's name. */
static ds_status find_named(fitsfile *f, const char *path, const char *want, int *hdu,
                            int *type)
{
    char list[400] = "", name[FLEN_VALUE];
    int status = 0, n = 0;
    for (int i = 1; !fits_movabs_hdu(f, i, type, &status); i++) {
        hdu_name(f, name);
        if (!strcasecmp(name, want)) {
            *hdu = i;
            return DS_OK;
        }
        n = i;
        if (strlen(list) < sizeof list - 80)
            dsi_snprintf_cat(list, sizeof list, "%s%d%s%s%s", i > 1 ? ", " : "", i,
                             *name ? " '" : i == 1 ? " (primary)" : " (no name)", name,
                             *name ? "'" : "");
        else if (!strstr(list, "..."))
            dsi_snprintf_cat(list, sizeof list, ", ...");
    }
    fits_clear_errmsg();
    if (status != END_OF_FILE)
        return fits_fail(DS_ERR_FORMAT, path, status, "reading the HDUs");
    status = 0;
    if (!strcasecmp(want, "primary") && !fits_movabs_hdu(f, 1, type, &status)) {
        *hdu = 1;
        return DS_OK;
    }
    fits_clear_errmsg();
    return dsi_fail(DS_ERR_ARG, "%s: no HDU named '%s' (EXTNAME or HDUNAME); its %d HDUs: %s",
                    path, want, n, list);
}

static ds_status read_image(fitsfile *f, const char *path, int64_t size, int hdu,
                            ds_tensor **out)
{
    int status = 0, naxis = 0, bitpix = 0;
    LONGLONG naxes[DS_MAX_DIMS];
    if (fits_get_img_dim(f, &naxis, &status) || fits_get_img_type(f, &bitpix, &status))
        return fits_fail(DS_ERR_FORMAT, path, status, "reading the image header");
    if (naxis < 1)
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d holds no data (NAXIS = 0)", path, hdu);
    if (naxis > DS_MAX_DIMS)
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: image of %d axes (at most %d)", path, hdu,
                        naxis, DS_MAX_DIMS);
    if (fits_get_img_sizell(f, naxis, naxes, &status))
        return fits_fail(DS_ERR_FORMAT, path, status, "reading the image size");
    int64_t shape[DS_MAX_DIMS];
    uint64_t numel;
    for (int i = 0; i < naxis; i++)
        shape[i] = naxes[naxis - 1 - i];
    int64_t count = dsi_numel_limited(naxis, shape, DSI_MAX_FILE_ELEMENTS);
    if (count < 0)
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: bad image size %s (negative, or more than "
                        "2^40 pixels)", path, hdu, dsi_shape_str(naxis, shape));
    numel = (uint64_t)count;
    uint64_t need = 0;   /* all the data announced: a compressed image's heap is read too */
    ds_status st = data_bytes(f, path, hdu, &need);
    if (st == DS_OK)
        st = check_size(f, path, size, hdu, need);
    if (st != DS_OK)
        return st;
    ds_tensor *t = ds_tensor_create(naxis, shape);
    if (!t)
        return DS_ERR_NOMEM;
    LONGLONG first[DS_MAX_DIMS];
    for (int i = 0; i < naxis; i++)
        first[i] = 1;
    float nan = NAN;
    int anynul = 0;
    if (numel && fits_read_pixll(f, TFLOAT, first, (LONGLONG)numel, &nan, t->data, &anynul,
                                 &status)) {
        ds_tensor_free(t);
        return fits_fail(DS_ERR_FORMAT, path, status, "reading the image");
    }
    *out = t;
    return DS_OK;
}

/* What a table column of cfitsio type code tc holds, in words. */
static const char *type_words(int tc)
{
    switch (tc < 0 ? -1 : tc) {
    case -1: return "variable-length arrays";
    case TBIT: return "bits";
    case TBYTE: return "unsigned bytes";
    case TSBYTE: return "signed bytes";
    case TLOGICAL: return "logicals (T/F)";
    case TSTRING: return "text";
    case TUSHORT: case TSHORT: return "16-bit integers";
    case TUINT: case TINT: case TULONG: case TLONG: return "32-bit integers";
    case TULONGLONG: case TLONGLONG: return "64-bit integers";
    case TFLOAT: return "32-bit floats";
    case TDOUBLE: return "64-bit floats";
    case TCOMPLEX: return "complex numbers";
    case TDBLCOMPLEX: return "double-precision complex numbers";
    default: return "values of an unknown type";
    }
}

/* "column 'NAME' holds text (TFORM3 = '10A'), not numbers" into a message. */
static ds_status not_numeric(fitsfile *f, const char *path, int hdu, const char *name, int col,
                             int tc)
{
    char key[FLEN_KEYWORD], form[FLEN_VALUE] = "?";
    int status = 0;
    snprintf(key, sizeof key, "TFORM%d", col + 1);
    if (fits_read_key(f, TSTRING, key, form, NULL, &status))
        snprintf(form, sizeof form, "?");
    fits_clear_errmsg();
    return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: column '%s' holds %s (%s = '%s'), not numbers",
                    path, hdu, name, type_words(tc), key, form);
}

static bool numeric_type(int tc)
{
    switch (tc) {
    case TBYTE: case TSBYTE: case TSHORT: case TUSHORT: case TINT: case TUINT: case TLONG:
    case TULONG: case TLONGLONG: case TULONGLONG: case TFLOAT: case TDOUBLE:
        return true;
    default:
        return false;
    }
}

/* Column names (TTYPEn, or "col<n>" when absent) of the current table HDU. */
static ds_status table_names(fitsfile *f, const char *path, char ***names, int *ncols)
{
    int status = 0, n = 0;
    *names = NULL;
    if (fits_get_num_cols(f, &n, &status))
        return fits_fail(DS_ERR_FORMAT, path, status, "reading TFIELDS");
    char **nm = calloc((size_t)n + 1, sizeof *nm);
    if (!nm)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) {
        char key[FLEN_KEYWORD], val[FLEN_VALUE] = "";
        snprintf(key, sizeof key, "TTYPE%d", i + 1);
        if (fits_read_key(f, TSTRING, key, val, NULL, &status)) {
            if (status != KEY_NO_EXIST) {
                ds_status st = fits_fail(DS_ERR_FORMAT, path, status, key);
                *names = nm;
                *ncols = i;
                return st;
            }
            status = 0;
            fits_clear_errmsg();
            snprintf(val, sizeof val, "col%d", i + 1);
        }
        if (!(nm[i] = dsi_strdup(val))) {
            *names = nm;
            *ncols = i;
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    *names = nm;
    *ncols = n;
    return DS_OK;
}

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

static ds_status read_table(fitsfile *f, const char *path, int64_t size, int hdu,
                            const char *columns, const char *exclude, ds_tensor **out)
{
    int status = 0, ncols = 0, nsel = 0, *sel = NULL;
    bool *excl = NULL;
    char **names = NULL;
    float *buf = NULL;
    ds_tensor *t = NULL;
    LONGLONG nrows = 0, rowlen = 0;
    ds_status st = table_names(f, path, &names, &ncols);
    if (st != DS_OK)
        goto done;
    if (fits_get_num_rowsll(f, &nrows, &status) ||
        fits_read_key_lnglng(f, "NAXIS1", &rowlen, NULL, &status)) {
        st = fits_fail(DS_ERR_FORMAT, path, status, "reading the table size");
        goto done;
    }
    int *tc = calloc((size_t)ncols + 1, sizeof *tc);
    LONGLONG *rep = calloc((size_t)ncols + 1, sizeof *rep);
    if (!tc || !rep) {
        free(tc);
        free(rep);
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < ncols && !status; i++) {
        LONGLONG width;
        fits_get_coltypell(f, i + 1, &tc[i], &rep[i], &width, &status);
    }
    if (status) {
        free(tc);
        free(rep);
        st = fits_fail(DS_ERR_FORMAT, path, status, "reading the column types");
        goto done;
    }
    if (columns) {
        st = dsi_columns_select(path, columns, ncols, names, &sel, &nsel);
        for (int j = 0; st == DS_OK && j < nsel; j++) {
            int c = sel[j];
            if (!numeric_type(tc[c]))
                st = not_numeric(f, path, hdu, names[c], c, tc[c]);
            else if (rep[c] != 1)
                st = dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: column '%s' holds vectors of %lld "
                              "values; only scalar columns can be read", path, hdu, names[c],
                              (long long)rep[c]);
        }
    } else if (exclude && (st = dsi_columns_mask(path, exclude, ncols, names, &excl))) {
        /* the message is set */
    } else if (!(sel = malloc(((size_t)ncols + 1) * sizeof *sel))) {
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
    } else {
        for (int i = 0; i < ncols; i++)
            if (numeric_type(tc[i]) && rep[i] == 1 && !(excl && excl[i]))
                sel[nsel++] = i;
        if (!nsel) {
            char list[400];
            dsi_columns_list(ncols, names, list, sizeof list);
            st = dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: no numeric scalar column%s (columns: %s)",
                          path, hdu, excl ? " besides those left out" : "", list);
        }
    }
    free(tc);
    free(rep);
    if (st != DS_OK)
        goto done;
    if (nrows < 0 || rowlen < 0 || (rowlen && (uint64_t)nrows > (1ULL << 50) / (uint64_t)rowlen)) {
        st = dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: bad table size (%lld rows of %lld bytes)",
                      path, hdu, (long long)nrows, (long long)rowlen);
        goto done;
    }
    if ((st = check_size(f, path, size, hdu, (uint64_t)nrows * (uint64_t)rowlen)) != DS_OK)
        goto done;
    if (!(t = ds_tensor_create(2, (int64_t[]){nrows, nsel}))) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    if (!(buf = malloc(((size_t)nrows + 1) * sizeof *buf))) {
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    float nan = NAN;
    for (int j = 0; j < nsel && nrows > 0; j++) {
        int anynul = 0;
        if (fits_read_col(f, TFLOAT, sel[j] + 1, 1, 1, nrows, &nan, buf, &anynul, &status)) {
            char what[120];
            snprintf(what, sizeof what, "HDU %d: reading column '%s'", hdu, names[sel[j]]);
            st = fits_fail(DS_ERR_FORMAT, path, status, what);
            goto done;
        }
        for (LONGLONG i = 0; i < nrows; i++)
            t->data[i * nsel + j] = buf[i];
    }
    *out = t;
    t = NULL;
    st = DS_OK;
done:
    ds_tensor_free(t);
    free(buf);
    free(sel);
    free(excl);
    free_names(names, ncols);
    return st;
}

static const char *given(const char *s) { return s && *s ? s : NULL; }

/* Moves to the HDU that o names (by name, number, or the first with data). */
static ds_status goto_hdu(const fits_in *in, const char *path, const ds_read_opts *o,
                          int *hdu, int *type)
{
    const char *name = o ? given(o->hdu_name) : NULL;
    if (name)
        return find_named(in->f, path, name, hdu, type);
    return find_hdu(in->f, path, in->size, o ? o->hdu : 0, hdu, type);
}

ds_status dsi_fits_load_mem(const unsigned char *buf, size_t len, const char *path,
                            const ds_read_opts *o, ds_tensor **out)
{
    *out = NULL;
    const char *cols = o ? given(o->columns) : NULL, *excl = o ? given(o->exclude) : NULL;
    fits_in in;
    int hdu = 0, type = 0;
    pthread_mutex_lock(&fits_lock);
    ds_status st = open_in(buf, len, path, &in);
    if (st == DS_OK)
        st = goto_hdu(&in, path, o, &hdu, &type);
    if (st == DS_OK && type == IMAGE_HDU)
        st = cols || excl ? dsi_fail(DS_ERR_ARG, "%s: columns '%s' given, but HDU %d is an "
                                     "image", path, cols ? cols : excl, hdu)
                          : read_image(in.f, path, in.size, hdu, out);
    else if (st == DS_OK)
        st = read_table(in.f, path, in.size, hdu, cols, excl, out);
    close_in(&in);
    pthread_mutex_unlock(&fits_lock);
    if (st == DS_OK && o && o->info) {
        o->info->hdu = hdu;
        o->info->table = type != IMAGE_HDU;
    }
    return st;
}

char *dsi_fits_columns_mem(const unsigned char *buf, size_t len, const char *path,
                           const ds_read_opts *o)
{
    fits_in in;
    int hdu = 0, type = 0, n = 0;
    char **names = NULL, *s = NULL;
    pthread_mutex_lock(&fits_lock);
    if (open_in(buf, len, path, &in) == DS_OK && goto_hdu(&in, path, o, &hdu, &type) == DS_OK) {
        if (type == IMAGE_HDU)
            dsi_fail(DS_ERR_ARG, "%s: HDU %d is an image, not a table", path, hdu);
        else if (table_names(in.f, path, &names, &n) == DS_OK)
            s = dsi_columns_join(n, names);
    }
    free_names(names, n);
    close_in(&in);
    pthread_mutex_unlock(&fits_lock);
    return s;
}

char *dsi_fits_header_mem(const unsigned char *buf, size_t len, const char *path,
                          const ds_read_opts *o)
{
    fits_in in;
    int hdu = 0, type = 0, status = 0, nkeys = 0;
    char *cards = NULL, *s = NULL;
    pthread_mutex_lock(&fits_lock);
    if (open_in(buf, len, path, &in) == DS_OK && goto_hdu(&in, path, o, &hdu, &type) == DS_OK) {
        /* a tile-compressed image's header as that of the image it holds */
        if (fits_convert_hdr2str(in.f, 0, NULL, 0, &cards, &nkeys, &status))
            fits_fail(DS_ERR_FORMAT, path, status, "reading the header");
        else if (!(s = dsi_strdup(cards)))
            dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
        size_t n = s ? strlen(s) : 0;
        if (n >= 80 && !strncmp(s + n - 80, "END     ", 8))
            s[n - 80] = 0;   /* cards only */
        if (cards)
            fits_free_memory(cards, &status);
    }
    close_in(&in);
    pthread_mutex_unlock(&fits_lock);
    if (s && o && o->info)
        o->info->hdu = hdu;
    return s;
}

/* ---- writing: a file created under a temporary name in the same directory, then renamed
 * into place. For a name ending in .gz, cfitsio writes a plain temporary file that zlib
 * then compresses into a second one. ---- */

typedef struct {
    char target[4096];   /* the file replaced (dsi_wfile_target: symbolic links followed) */
    char raw[4096];   /* what cfitsio writes */
    char fin[4096];   /* what is renamed to the final name (== raw unless gzipped) */
    bool gzip;
} tmp_names;

static ds_status create_tmp(const char *out, tmp_names *tn, fitsfile **f)
{
    mode_t mode;
    ds_status st = dsi_wfile_target(out, tn->target, sizeof tn->target, &mode);
    if (st)
        return st;
    const char *path = tn->target;
    const char *base = strrchr(path, '/');
    int dirlen = base ? (int)(base - path + 1) : 0;
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    tn->gzip = n > 3 && strcasecmp(base + n - 3, ".gz") == 0;
    int keep = (int)(tn->gzip ? n - 3 : n);
    if (snprintf(tn->fin, sizeof tn->fin, "%.*s.tmp%ld-%s", dirlen, path, (long)getpid(),
                 base) >= (int)sizeof tn->fin)
        return dsi_fail(DS_ERR_IO, "%s: path too long", out);
    snprintf(tn->raw, sizeof tn->raw, "%.*s.tmp%ld-%.*s", dirlen, path, (long)getpid(), keep,
             base);
    remove(tn->raw);
    int status = 0;
    if (fits_create_diskfile(f, tn->raw, &status)) {
        *f = NULL;
        if (status == FILE_NOT_CREATED) {
            fits_clear_errmsg();
            return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", out, strerror(errno));
        }
        return fits_fail(DS_ERR_IO, out, status, "cannot create");
    }
    return DS_OK;
}

static bool gzip_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    gzFile out = in ? gzopen(dst, "wb6") : NULL;
    bool ok = in && out;
    unsigned char buf[1 << 15];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = gzwrite(out, buf, (unsigned)n) == (int)n;
    ok = ok && !ferror(in);
    if (in)
        fclose(in);
    if (out && gzclose(out) != Z_OK)
        ok = false;
    return ok;
}

/* Closes f; on success (gzips,) syncs and renames into path; on failure removes the
 * temporary files. */
static ds_status finish(fitsfile *f, const char *path, const tmp_names *tn, int status)
{
    int cs = 0;
    fits_close_file(f, &cs);
    if (!status)
        status = cs;
    if (status) {
        remove(tn->raw);
        return fits_fail(DS_ERR_IO, path, status, "cannot write");
    }
    fits_clear_errmsg();
    errno = 0;
    if (tn->gzip) {
        bool ok = gzip_file(tn->raw, tn->fin);
        int err = errno;
        remove(tn->raw);
        if (!ok) {
            remove(tn->fin);
            return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path,
                            err ? strerror(err) : "gzip failed");
        }
    }
    int fd = open(tn->fin, O_RDONLY);
    bool ok = fd >= 0 && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tn->fin, tn->target) != 0) {
        err = ok ? errno : err;
        remove(tn->fin);
        return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(err));
    }
    return DS_OK;
}

enum { CHUNK = 1 << 16 };   /* floats copied per cfitsio write: it may byte-swap in place */

/* Cards a copied header leaves out: the data's layout and scaling (the copy is float32 in
 * a primary HDU), what described the old values (unit, range, checksums), the HDU's name
 * and tile compression. */
static bool structural(const char *card)
{
    static const char *const keys[] = {
        "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS",
        "BSCALE", "BZERO", "BLANK", "BUNIT", "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM",
        "EXTNAME", "EXTVER", "EXTLEVEL", "HDUNAME", "HDUVER", "HDULEVEL", "INHERIT", "END",
        "TFIELDS", "THEAP", "ZIMAGE", "ZSIMPLE", "ZTENSION", "ZBITPIX", "ZNAXIS", "ZEXTEND",
        "ZBLOCKED", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM", "ZCMPTYPE", "ZQUANTIZ",
        "ZDITHER0", "ZBLANK", "ZSCALE", "ZZERO",
    };
    /* indexed keywords: NAXISn, ZNAXISn, ZTILEn, ZNAMEn, ZVALn and table columns */
    static const char *const indexed[] = {"NAXIS", "ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "TTYPE",
                                          "TFORM", "TUNIT", "TSCAL", "TZERO", "TNULL", "TDISP",
                                          "TDIM", "TBCOL"};
    char key[9];
    int n = 0;
    while (n < 8 && card[n] != ' ')
        key[n] = card[n], n++;
    key[n] = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(key, keys[i]))
            return true;
    for (size_t i = 0; i < sizeof indexed / sizeof indexed[0]; i++) {
        size_t k = strlen(indexed[i]);
        if (!strncmp(key, indexed[i], k) && key[k] && strspn(key + k, "0123456789") == n - k)
            return true;
    }
    /* the two lines cfitsio itself writes atop every primary header */
    return !strncmp(card, "COMMENT   FITS (Flexible Image Transport System) format is", 58) ||
           !strncmp(card, "COMMENT   and Astrophysics', volume 376, page 359;", 50);
}

/* Whether header is whole 80-character cards of printable ASCII. */
static ds_status check_cards(const char *header, const char *path)
{
    size_t len = strlen(header);
    if (len % 80)
        return dsi_fail(DS_ERR_ARG, "%s: the header to copy is %zu characters, not whole "
                        "80-character cards", path, len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)header[i] < 0x20 || (unsigned char)header[i] > 0x7e)
            return dsi_fail(DS_ERR_ARG, "%s: the header to copy has a byte 0x%02x (card %zu) "
                            "that is not printable ASCII", path, (unsigned char)header[i],
                            i / 80 + 1);
    return DS_OK;
}

/* Writes header's cards but the structural ones into the current HDU. */
static void copy_cards(fitsfile *f, const char *header, int *status)
{
    for (const char *c = header; *c && !*status; c += 80) {
        if (structural(c))
            continue;
        char card[81];
        memcpy(card, c, 80);
        card[80] = 0;
        fits_write_record(f, card, status);
    }
}

ds_status dsi_fits_save_image(const ds_tensor *t, const char *path, const char *header)
{
    if (t->ndim < 1)
        return dsi_fail(DS_ERR_SHAPE, "%s: a FITS image needs at least one axis (got a scalar)",
                        path);
    if (header && check_cards(header, path) != DS_OK)
        return DS_ERR_ARG;
    LONGLONG naxes[DS_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        naxes[i] = t->shape[t->ndim - 1 - i];
    float *buf = malloc(CHUNK * sizeof *buf);
    if (!buf)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
    tmp_names tn;
    fitsfile *f;
    pthread_mutex_lock(&fits_lock);
    ds_status st = create_tmp(path, &tn, &f);
    if (st == DS_OK) {
        int status = 0;
        fits_create_imgll(f, FLOAT_IMG, t->ndim, naxes, &status);
        if (header)
            copy_cards(f, header, &status);
        for (int64_t i = 0; i < t->numel && !status; i += CHUNK) {
            int64_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
            memcpy(buf, t->data + i, (size_t)n * sizeof *buf);
            fits_write_img(f, TFLOAT, i + 1, n, buf, &status);
        }
        st = finish(f, path, &tn, status);
    }
    pthread_mutex_unlock(&fits_lock);
    free(buf);
    return st;
}

/* The width of a character column: its longest string (at least 1). */
static size_t text_width(const ds_column *c, int64_t nrows)
{
    size_t w = 1;
    for (int64_t i = 0; i < nrows; i++) {
        size_t n = strlen(c->s[i]);
        w = n > w ? n : w;
    }
    return w;
}

/* Column j's values, CHUNK rows at a time from row i. */
static void write_column(fitsfile *f, const ds_column *c, int j, int64_t nrows, float *buf,
                         int *status)
{
    for (int64_t i = 0; i < nrows && !*status; i += CHUNK) {
        int64_t n = nrows - i < CHUNK ? nrows - i : CHUNK;
        if (c->s) {
            fits_write_col_str(f, j + 1, i + 1, 1, n, (char **)c->s + i, status);
            continue;
        }
        memcpy(buf, c->f + i, (size_t)n * sizeof *buf);
        fits_write_col(f, TFLOAT, j + 1, i + 1, 1, n, buf, status);
    }
}

ds_status dsi_fits_save_table(const char *path, int ncols, const ds_column *cols, int64_t nrows)
{
    char **ttype = calloc((size_t)ncols, sizeof *ttype), **tform = calloc((size_t)ncols, sizeof *tform);
    char (*gen)[16] = calloc((size_t)ncols, sizeof *gen);   /* "col<n>" for missing names */
    char (*forms)[24] = calloc((size_t)ncols, sizeof *forms);
    float *buf = malloc(CHUNK * sizeof *buf);
    ds_status st = DS_OK;
    if (!ttype || !tform || !gen || !forms || !buf) {
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int j = 0; j < ncols; j++) {
        snprintf(gen[j], sizeof gen[j], "col%d", j + 1);
        const char *nm = cols[j].name ? cols[j].name : gen[j];
        size_t len = strlen(nm);
        for (size_t k = 0; k < len && st == DS_OK; k++)
            if (nm[k] < 32 || nm[k] > 126 || nm[k] == '\'')
                st = dsi_fail(DS_ERR_ARG, "%s: column name '%s': FITS names are printable "
                              "ASCII without quotes", path, nm);
        if (st == DS_OK && (len == 0 || len > 68))
            st = dsi_fail(DS_ERR_ARG, "%s: column %d: a FITS column name has 1 to 68 "
                          "characters", path, j + 1);
        if (st != DS_OK)
            goto done;
        ttype[j] = (char *)nm;
        if (cols[j].s && nrows > 0)
            snprintf(forms[j], sizeof forms[j], "%zuA", text_width(&cols[j], nrows));
        else
            snprintf(forms[j], sizeof forms[j], "1E");
        tform[j] = forms[j];
    }
    tmp_names tn;
    fitsfile *f;
    pthread_mutex_lock(&fits_lock);
    st = create_tmp(path, &tn, &f);
    if (st == DS_OK) {
        int status = 0;
        /* on an empty file cfitsio first writes an empty primary HDU */
        fits_create_tbl(f, BINARY_TBL, nrows, ncols, ttype, tform, NULL, NULL, &status);
        for (int j = 0; j < ncols && !status; j++)
            write_column(f, &cols[j], j, nrows, buf, &status);
        st = finish(f, path, &tn, status);
    }
    pthread_mutex_unlock(&fits_lock);
done:
    free(ttype);
    free(tform);
    free(gen);
    free(forms);
    free(buf);
    return st;
}
