/* array.c - data files and buffers: picks the reader or writer (.npy, FITS, CSV, IDX) from
 * the file name (or a given format), reads a file whole (a .npy file is mapped) and hands
 * its bytes to the one reader of its format, resolves table column lists, and checks
 * tensors for NaN/Inf. */
#include "data.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <strings.h>
#include <sys/stat.h>

typedef enum { FMT_NONE, FMT_NPY, FMT_FITS, FMT_CSV, FMT_TSV, FMT_IDX } fmt;

#define SUPPORTED ".npy, .fits/.fit/.fts, .csv, .tsv (these optionally .gz), and IDX files " \
                  "(*.idx, *-ubyte or names containing 'idx', optionally .gz)"

static bool is_table(fmt f) { return f == FMT_FITS || f == FMT_CSV || f == FMT_TSV; }

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Case-insensitive, on the last path component only. */
static fmt detect(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 255) {          /* the extension is at the end: keep the tail */
        base += n - 255;
        n = 255;
    }
    char low[256];
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)base[i]);
    low[n] = 0;
    bool gz = ends_with(low, n, ".gz");
    size_t m = gz ? n - 3 : n;
    if (ends_with(low, m, ".fits") || ends_with(low, m, ".fit") || ends_with(low, m, ".fts"))
        return FMT_FITS;
    if (!gz && ends_with(low, m, ".npy"))
        return FMT_NPY;
    if (ends_with(low, m, ".csv"))
        return FMT_CSV;
    if (ends_with(low, m, ".tsv"))
        return FMT_TSV;
    low[m] = 0;
    if (ends_with(low, m, ".idx") || ends_with(low, m, "-ubyte") || strstr(low, "idx"))
        return FMT_IDX;
    return FMT_NONE;
}

bool dsi_is_data_file(const char *path) { return detect(path) != FMT_NONE; }

/* An existing regular file (or DS_ERR_IO with strerror). */
static ds_status check_readable(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dsi_fail(DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return dsi_fail(DS_ERR_IO, "cannot read '%s': it is a directory", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dsi_fail(DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    fclose(fp);
    return DS_OK;
}

/* The format of a buffer: from format (a format name such as "fits", an extension such as
 * ".fits.gz", or a file name) if given, else from name. */
static fmt mem_format(const char *name, const char *format)
{
    if (!format || !*format)
        return detect(name);
    size_t n = strlen(format);
    if (n > 250)            /* the extension is at the end: keep the tail */
        format += n - 250;
    char as_name[256];
    snprintf(as_name, sizeof as_name, "%s%s", format[0] == '.' ? "" : ".", format);
    return detect(as_name);
}

static const char *given(const char *s) { return s && *s ? s : NULL; }

/* The options' checks that need no data, for a file (or buffer) of format f named path. */
static ds_status check_opts(const char *path, fmt f, const ds_read_opts *o)
{
    const char *cols = o ? given(o->columns) : NULL, *excl = o ? given(o->exclude) : NULL;
    const char *hname = o ? given(o->hdu_name) : NULL;
    int hdu = o ? o->hdu : 0;
    if (hdu < 0)
        return dsi_fail(DS_ERR_ARG, "'%s': HDU number %d is negative (1 = primary, 0 = first "
                        "with data)", path, hdu);
    if ((cols || excl) && !is_table(f))
        return dsi_fail(DS_ERR_ARG, "'%s': columns '%s' given, but only tables (FITS, CSV) "
                        "have columns", path, cols ? cols : excl);
    if ((hdu || hname) && f != FMT_FITS) {
        if (hname)
            return dsi_fail(DS_ERR_ARG, "'%s': HDU '%s' given, but only FITS files have HDUs",
                            path, hname);
        return dsi_fail(DS_ERR_ARG, "'%s': HDU %d given, but only FITS files have HDUs", path,
                        hdu);
    }
    if (o && (o->header < DS_HEADER_AUTO || o->header > DS_HEADER_NONE))
        return dsi_fail(DS_ERR_ARG, "'%s': header mode %d is not one of ds_header_mode", path,
                        (int)o->header);
    return DS_OK;
}

ds_status dsi_read_opts_check(const char *path, const ds_read_opts *o)
{
    return check_opts(path, detect(path), o);
}

/* The one reader of each format, on a whole file's bytes. */
static ds_status load_bytes(fmt f, const unsigned char *buf, size_t len, const char *path,
                            const ds_read_opts *o, ds_tensor **out)
{
    if (o && o->info)
        memset(o->info, 0, sizeof *o->info);
    switch (f) {
    case FMT_NPY: return ds_npy_load_mem(buf, len, path, out);
    case FMT_FITS: return dsi_fits_load_mem(buf, len, path, o, out);
    case FMT_CSV: return dsi_csv_load_mem(buf, len, path, 0, o, out);
    case FMT_TSV: return dsi_csv_load_mem(buf, len, path, '\t', o, out);
    case FMT_IDX: return dsi_idx_load_mem(buf, len, path, out);
    default: break;
    }
    return dsi_fail(DS_ERR_ARG, "'%s': unknown data file type", path);
}

ds_status ds_array_load(const char *path, const ds_read_opts *o, ds_tensor **out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_array_load: out is NULL");
    *out = NULL;
    if (!path)
        return dsi_fail(DS_ERR_ARG, "ds_array_load: path is NULL");
    fmt f = detect(path);
    if (f == FMT_NONE)
        return dsi_fail(DS_ERR_ARG, "'%s': unknown data file type; supported: " SUPPORTED, path);
    ds_status st = check_opts(path, f, o);
    if (st == DS_OK)
        st = check_readable(path);
    if (st == DS_OK && f == FMT_NPY) {   /* mapped where it can be: no copy */
        if (o && o->info)
            memset(o->info, 0, sizeof *o->info);
        return ds_npy_load(path, out);
    }
    unsigned char *buf = NULL;
    size_t len = 0;
    if (st == DS_OK)
        st = dsi_read_file(path, &buf, &len);
    if (st == DS_OK)
        st = load_bytes(f, buf, len, path, o, out);
    free(buf);
    return st;
}

static const unsigned char no_bytes[1];

ds_status ds_array_load_mem(const void *buf, size_t len, const char *name, const char *format,
                            const ds_read_opts *o, ds_tensor **out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_array_load_mem: out is NULL");
    *out = NULL;
    if (!buf && len)
        return dsi_fail(DS_ERR_ARG, "ds_array_load_mem: buf is NULL");
    if (!name)
        name = DSI_MEM_NAME;
    fmt f = mem_format(name, format);
    if (f == FMT_NONE)
        return dsi_fail(DS_ERR_ARG, "'%s': unknown data format '%s'; give the format (npy, "
                        "fits, csv, idx) or a name ending as a file's: " SUPPORTED, name,
                        format && *format ? format : name);
    ds_status st = check_opts(name, f, o);
    return st != DS_OK ? st : load_bytes(f, buf ? buf : no_bytes, len, name, o, out);
}

/* Text tables are written plain: a .csv.gz or .tsv.gz name is refused (DS_ERR_ARG). */
static ds_status text_name_ok(const char *path)
{
    size_t n = strlen(path);
    if (n > 3 && !strcasecmp(path + n - 3, ".gz"))
        return dsi_fail(DS_ERR_ARG, "'%s': CSV and TSV files are written uncompressed (drop "
                        "the .gz)", path);
    return DS_OK;
}

ds_status ds_array_save(const ds_tensor *t, const char *path, const char *const *colnames)
{
    if (!t || !path)
        return dsi_fail(DS_ERR_ARG, "ds_array_save: %s is NULL", t ? "path" : "tensor");
    fmt f = detect(path);
    if ((f == FMT_CSV || f == FMT_TSV) && text_name_ok(path) != DS_OK)
        return DS_ERR_ARG;
    switch (f) {
    case FMT_NPY: return ds_npy_save(t, path);
    case FMT_FITS: return dsi_fits_save_image(t, path, NULL);
    case FMT_CSV: return dsi_csv_save(t, path, ',', colnames);
    case FMT_TSV: return dsi_csv_save(t, path, '\t', colnames);
    case FMT_IDX:
        return dsi_fail(DS_ERR_ARG, "'%s': writing IDX files is not supported (write .npy, "
                        ".fits or .csv)", path);
    default: break;
    }
    return dsi_fail(DS_ERR_ARG, "'%s': unknown data file type for writing; supported: .npy, "
                    ".fits/.fit/.fts (optionally .gz), .csv, .tsv", path);
}

/* A string column's values: present and printable ASCII (a FITS character column, a CSV
 * field). */
static ds_status check_text(const char *path, int j, const ds_column *c, int64_t nrows)
{
    for (int64_t i = 0; i < nrows; i++) {
        if (!c->s[i])
            return dsi_fail(DS_ERR_ARG, "ds_table_save '%s': column %d, row %lld is NULL", path,
                            j + 1, (long long)i);
        for (const char *p = c->s[i]; *p; p++)
            if (*p < 32 || *p > 126)
                return dsi_fail(DS_ERR_ARG, "ds_table_save '%s': column %d, row %lld holds a "
                                "character that is not printable ASCII (0x%02x)", path, j + 1,
                                (long long)i, (unsigned)(unsigned char)*p);
    }
    return DS_OK;
}

ds_status ds_table_save_columns(const char *path, int ncols, const ds_column *cols, int64_t nrows)
{
    if (!path || ncols < 1 || nrows < 0 || !cols)
        return dsi_fail(DS_ERR_ARG, "ds_table_save '%s': needs a path, ncols >= 1 (got %d), "
                        "nrows >= 0 (got %lld) and the columns", path ? path : "(null)", ncols,
                        (long long)nrows);
    for (int j = 0; nrows > 0 && j < ncols; j++) {
        if (!cols[j].f == !cols[j].s)
            return dsi_fail(DS_ERR_ARG, "ds_table_save '%s': column %d needs either numbers or "
                            "strings", path, j + 1);
        ds_status st = cols[j].s ? check_text(path, j, &cols[j], nrows) : DS_OK;
        if (st)
            return st;
    }
    fmt f = detect(path);
    if ((f == FMT_CSV || f == FMT_TSV) && text_name_ok(path) != DS_OK)
        return DS_ERR_ARG;
    switch (f) {
    case FMT_FITS: return dsi_fits_save_table(path, ncols, cols, nrows);
    case FMT_CSV: return dsi_csv_save_table(path, ',', ncols, cols, nrows);
    case FMT_TSV: return dsi_csv_save_table(path, '\t', ncols, cols, nrows);
    default: break;
    }
    return dsi_fail(DS_ERR_ARG, "'%s': tables are written as .fits (binary table), .csv or "
                    ".tsv", path);
}

ds_status ds_table_save(const char *path, int ncols, const char *const *names, int64_t nrows,
                        const float *const *cols)
{
    if (ncols < 1 || (nrows > 0 && !cols))
        return ds_table_save_columns(path, ncols, NULL, nrows);   /* says what is missing */
    ds_column *c = calloc((size_t)ncols, sizeof *c);
    if (!c)
        return dsi_fail(DS_ERR_NOMEM, "ds_table_save '%s': out of memory", path ? path : "");
    for (int j = 0; j < ncols; j++) {
        c[j].name = names ? names[j] : NULL;
        c[j].f = cols ? cols[j] : NULL;
        if (nrows > 0 && !c[j].f) {
            free(c);
            return dsi_fail(DS_ERR_ARG, "ds_table_save '%s': column %d is NULL",
                            path ? path : "(null)", j + 1);
        }
    }
    ds_status st = ds_table_save_columns(path, ncols, c, nrows);
    free(c);
    return st;
}

/* Whether a file (or buffer) of format f named path has columns and o is valid for it;
 * false with the message. */
static bool columns_ok(fmt f, const char *path, const ds_read_opts *o)
{
    if (!is_table(f)) {
        dsi_fail(DS_ERR_ARG, "'%s': only tables (FITS, CSV) have columns", path);
        return false;
    }
    if (o && o->hdu < 0) {
        dsi_fail(DS_ERR_ARG, "'%s': HDU number %d is negative", path, o->hdu);
        return false;
    }
    return true;
}

/* Column names of a table file's bytes, or NULL with a message. */
static char *columns_bytes(fmt f, const unsigned char *buf, size_t len, const char *path,
                           const ds_read_opts *o)
{
    if (o && o->info)
        memset(o->info, 0, sizeof *o->info);
    if (f == FMT_FITS)
        return dsi_fits_columns_mem(buf, len, path, o);
    return dsi_csv_columns_mem(buf, len, path, f == FMT_TSV ? '\t' : 0, o);
}

char *ds_table_columns(const char *path, const ds_read_opts *o)
{
    if (!path) {
        dsi_fail(DS_ERR_ARG, "ds_table_columns: path is NULL");
        return NULL;
    }
    fmt f = detect(path);
    unsigned char *buf;
    size_t len;
    if (!columns_ok(f, path, o) || check_readable(path) != DS_OK ||
        dsi_read_file(path, &buf, &len) != DS_OK)
        return NULL;
    char *s = columns_bytes(f, buf, len, path, o);
    free(buf);
    return s;
}

char *ds_table_columns_mem(const void *buf, size_t len, const char *name, const char *format,
                           const ds_read_opts *o)
{
    if (!buf && len) {
        dsi_fail(DS_ERR_ARG, "ds_table_columns_mem: buf is NULL");
        return NULL;
    }
    if (!name)
        name = DSI_MEM_NAME;
    fmt f = mem_format(name, format);
    return columns_ok(f, name, o) ? columns_bytes(f, buf ? buf : no_bytes, len, name, o) : NULL;
}

/* The header of a FITS file's bytes, or NULL with a message. */
static char *header_bytes(fmt f, const unsigned char *buf, size_t len, const char *path,
                          const ds_read_opts *o)
{
    if (f != FMT_FITS) {
        dsi_fail(DS_ERR_ARG, "'%s': only FITS files have a header of cards", path);
        return NULL;
    }
    if (o && o->hdu < 0) {
        dsi_fail(DS_ERR_ARG, "'%s': HDU number %d is negative", path, o->hdu);
        return NULL;
    }
    if (o && o->info)
        memset(o->info, 0, sizeof *o->info);
    return dsi_fits_header_mem(buf, len, path, o);
}

char *ds_fits_header(const char *path, const ds_read_opts *o)
{
    if (!path) {
        dsi_fail(DS_ERR_ARG, "ds_fits_header: path is NULL");
        return NULL;
    }
    fmt f = detect(path);
    unsigned char *buf = NULL;
    size_t len;
    char *s = NULL;
    if (f != FMT_FITS)
        return header_bytes(f, NULL, 0, path, o);
    if (check_readable(path) == DS_OK && dsi_read_file(path, &buf, &len) == DS_OK)
        s = header_bytes(f, buf, len, path, o);
    free(buf);
    return s;
}

char *ds_fits_header_mem(const void *buf, size_t len, const char *name, const ds_read_opts *o)
{
    if (!buf && len) {
        dsi_fail(DS_ERR_ARG, "ds_fits_header_mem: buf is NULL");
        return NULL;
    }
    if (!name)
        name = DSI_MEM_NAME;
    return header_bytes(FMT_FITS, buf ? buf : no_bytes, len, name, o);
}

ds_status ds_fits_save_image(const ds_tensor *t, const char *path, const char *header)
{
    if (!t || !path)
        return dsi_fail(DS_ERR_ARG, "ds_fits_save_image: %s is NULL", t ? "path" : "tensor");
    if (detect(path) != FMT_FITS)
        return dsi_fail(DS_ERR_ARG, "'%s': a FITS image is written to a .fits, .fit or .fts "
                        "file (optionally .gz)", path);
    return dsi_fits_save_image(t, path, header);
}

bool dsi_values_finite(const float *x, int64_t n)
{
    int bad = 0;
    /* |x| <= FLT_MAX is false for NaN and both infinities; no early exit, so it vectorizes */
#pragma omp parallel for simd reduction(| : bad) schedule(static) if (parallel: n > 4 * DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        bad |= !(fabsf(x[i]) <= FLT_MAX);
    return !bad;
}

ds_status ds_tensor_check_finite(const ds_tensor *t, const char *what)
{
    if (!what)
        what = "tensor";
    if (!t)
        return dsi_fail(DS_ERR_ARG, "%s: tensor is NULL", what);
    const float *x = t->data;
    if (dsi_tensor_known_finite(t) || dsi_values_finite(x, t->numel))
        return DS_OK;
    for (int64_t i = 0; i < t->numel; i++) {   /* the first bad one, to name it */
        if (isfinite(x[i]))
            continue;
        const char *v = isnan(x[i]) ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf";
        if (t->ndim >= 1 && t->shape[0] > 0)
            return dsi_fail(DS_ERR_VALUE, "%s: element %lld (sample %lld) is %s", what,
                            (long long)i, (long long)(i / (t->numel / t->shape[0])), v);
        return dsi_fail(DS_ERR_VALUE, "%s: element %lld is %s", what, (long long)i, v);
    }
    return DS_OK;
}

/* ---- column lists shared by the table readers ---- */

void dsi_columns_list(int n, char *const *names, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(buf);
        if (len + strlen(names[i]) + 8 >= cap) {
            dsi_snprintf_cat(buf, cap, "...");
            return;
        }
        dsi_snprintf_cat(buf, cap, "%s%s", i ? ", " : "", names[i]);
    }
}

char *dsi_columns_join(int n, char *const *names)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for column names");
        return NULL;
    }
    *p = 0;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        if (i)
            *p++ = ',';
        memcpy(p, names[i], k + 1);
        p += k;
    }
    return s;
}

/* Whether a[0..w) is an integer: an optional '-' then 1 to 9 digits. */
static bool is_int(const char *a, size_t w)
{
    size_t d = w && a[0] == '-';
    if (w <= d || w - d > 9)
        return false;
    for (size_t i = d; i < w; i++)
        if (!isdigit((unsigned char)a[i]))
            return false;
    return true;
}

enum { REF_NONE, REF_OK, REF_RANGE_ERR };

/* One column reference a[0..w): a name (case-insensitive, first), else a number from 1 or
 * from the end (-1 is the last). REF_OK with *idx 0-based; REF_RANGE_ERR for a number out
 * of range (*num); REF_NONE if neither. */
static int column_ref(const char *a, size_t w, int n, char *const *names, int *idx, long *num)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == w && strncasecmp(names[i], a, w) == 0) {
            *idx = i;
            return REF_OK;
        }
    if (!is_int(a, w))
        return REF_NONE;
    *num = strtol(a, NULL, 10);
    if (*num == 0 || *num > n || *num < -(long)n)
        return REF_RANGE_ERR;
    *idx = *num > 0 ? (int)*num - 1 : n + (int)*num;
    return REF_OK;
}

static ds_status range_fail(const char *path, long num, int n)
{
    if (num == 0)
        return dsi_fail(DS_ERR_ARG, "%s: column numbers start at 1 (-1 is the last); 0 is out "
                        "of range: the table has %d columns", path, n);
    return dsi_fail(DS_ERR_ARG, "%s: column number %ld is out of range: the table has %d "
                    "columns (1 to %d, or -1 to -%d from the end)", path, num, n, n, n);
}

/* One item of a column list, a[0..w) trimmed: a reference or a range "FROM-TO" of two;
 * [*lo, *hi] (0-based, lo <= hi) on success. */
static ds_status column_item(const char *path, const char *a, size_t w, int n,
                             char *const *names, int *lo, int *hi)
{
    long num = 0;
    int r = column_ref(a, w, n, names, lo, &num);
    if (r == REF_OK) {
        *hi = *lo;
        return DS_OK;
    }
    if (r == REF_RANGE_ERR)
        return range_fail(path, num, n);
    for (size_t k = 1; k + 1 < w; k++) {   /* FROM-TO: the first '-' with a column each side */
        if (a[k] != '-')
            continue;
        long na = 0, nb = 0;
        size_t la = k, sb = k + 1;   /* the two sides, trimmed */
        while (la > 0 && isspace((unsigned char)a[la - 1]))
            la--;
        while (sb < w && isspace((unsigned char)a[sb]))
            sb++;
        int ra = column_ref(a, la, n, names, lo, &na);
        int rb = column_ref(a + sb, w - sb, n, names, hi, &nb);
        if (ra == REF_NONE || rb == REF_NONE)
            continue;
        if (ra == REF_RANGE_ERR || rb == REF_RANGE_ERR) {
            char why[300];
            range_fail(path, ra == REF_RANGE_ERR ? na : nb, n);
            snprintf(why, sizeof why, "%s", ds_last_error());   /* not formatted into itself */
            return dsi_fail(DS_ERR_ARG, "%s (in the range '%.*s')", why, (int)w, a);
        }
        if (*lo > *hi)
            return dsi_fail(DS_ERR_ARG, "%s: column range '%.*s' runs backwards (from column "
                            "%d to column %d)", path, (int)w, a, *lo + 1, *hi + 1);
        return DS_OK;
    }
    char list[400];
    dsi_columns_list(n, names, list, sizeof list);
    return dsi_fail(DS_ERR_ARG, "%s: no column '%.*s' (columns: %s)", path, (int)w, a, list);
}

ds_status dsi_columns_select(const char *path, const char *spec, int n, char *const *names,
                             int **idx, int *nsel)
{
    *idx = NULL;
    *nsel = 0;
    int k = 0, cap = 16;
    int *sel = malloc((size_t)cap * sizeof *sel);
    if (!sel)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a column list");
    for (const char *p = spec;; p++) {
        size_t len = strcspn(p, ",");
        const char *a = p, *b = p + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        int lo, hi;
        ds_status st = column_item(path, a, (size_t)(b - a), n, names, &lo, &hi);
        if (st == DS_OK && k + (hi - lo + 1) > cap) {
            while (k + (hi - lo + 1) > cap)
                cap *= 2;
            int *ns = realloc(sel, (size_t)cap * sizeof *ns);
            if (ns)
                sel = ns;
            else
                st = dsi_fail(DS_ERR_NOMEM, "out of memory for a column list");
        }
        if (st != DS_OK) {
            free(sel);
            return st;
        }
        for (int i = lo; i <= hi; i++)
            sel[k++] = i;
        p += len;
        if (!*p)
            break;
    }
    *idx = sel;
    *nsel = k;
    return DS_OK;
}

ds_status dsi_columns_mask(const char *path, const char *spec, int n, char *const *names,
                           bool **mask)
{
    int *sel, nsel;
    *mask = NULL;
    ds_status st = dsi_columns_select(path, spec, n, names, &sel, &nsel);
    if (st != DS_OK)
        return st;
    bool *m = calloc((size_t)n + 1, sizeof *m);
    if (!m) {
        free(sel);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a column list");
    }
    for (int i = 0; i < nsel; i++)
        m[sel[i]] = true;
    free(sel);
    *mask = m;
    return DS_OK;
}
