/* test_tables.c - tables as people have them, read by the library: CSV with no header, or
 * with a first line that is not column names (told, or guessed with a note), gzipped CSV,
 * TSV and whitespace-separated columns, column ranges and negative numbers, columns left out
 * (labels), FITS tables by EXTNAME and their type names in messages, FITS keywords that
 * must be numbers, and FITS headers read and copied. Every load also runs from memory and
 * must agree with the file: status, message, bits and what the reader reports. */
#include "test.h"

#include <dirent.h>
#include <fitsio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ---- */

static char dir[64];

static int make_dir(void) { return test_tmpdir(dir, sizeof dir, "tables") ? 0 : 1; }

static void rm_dir(void) { test_rm_rf(dir); }

static const char *at(const char *name)
{
    static char bufs[4][600];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 1;
    size_t w = n ? fwrite(data, 1, n, fp) : 0;
    return fclose(fp) != 0 || w != n;
}

static int write_text(const char *path, const char *s) { return write_bytes(path, s, strlen(s)); }

static int write_gz(const char *path, const char *s)
{
    gzFile g = gzopen(path, "wb");
    if (!g)
        return 1;
    int w = gzwrite(g, s, (unsigned)strlen(s));
    return (gzclose(g) != Z_OK) | (w != (int)strlen(s));
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b && len > 0 ? fread(b, 1, (size_t)len, fp) : 0;
    fclose(fp);
    return b;
}

static bool same_tensor(const ds_tensor *a, const ds_tensor *b)
{
    if (!a || !b)
        return !a && !b;
    int nd = ds_tensor_ndim(a);
    return nd == ds_tensor_ndim(b) &&
           !memcmp(ds_tensor_shape(a), ds_tensor_shape(b), (size_t)nd * sizeof(int64_t)) &&
           !memcmp(ds_tensor_data((ds_tensor *)a), ds_tensor_data((ds_tensor *)b),
                   (size_t)ds_tensor_numel(a) * sizeof(float));
}

static char last[600];   /* the message of the last load_both that failed */
static ds_read_info info;   /* what the last load_both reported */

/* Loads path with o (its info pointed at the global info) from the file and from the same
 * bytes in memory under the same name: the status, message, tensor and info must agree.
 * Returns the status; *out gets the file's tensor (the caller frees it), or NULL. */
static ds_status load_both(const char *path, const ds_read_opts *o, ds_tensor **out, char *msg,
                           size_t cap, int *bad)
{
    ds_read_opts ro = o ? *o : (ds_read_opts){0};
    ds_read_info mi;
    ro.info = &info;
    *out = NULL;
    ds_tensor *m = NULL;
    ds_status sf = ds_array_load(path, &ro, out);
    snprintf(last, sizeof last, "%s", sf ? ds_last_error() : "");
    size_t n = 0;
    unsigned char *bytes = read_bytes(path, &n);
    ro.info = &mi;
    ds_status sm = ds_array_load_mem(bytes, n, path, NULL, &ro, &m);
    *bad = sf != sm || (sf && strcmp(last, ds_last_error())) || !same_tensor(*out, m) ||
           (!sf && memcmp(&info, &mi, sizeof info));
    if (*bad)
        snprintf(msg, cap, "%s: the file (%s: %s) and memory (%s: %s) disagree", path,
                 ds_status_name(sf), last, ds_status_name(sm), sm ? ds_last_error() : "");
    ds_tensor_free(m);
    free(bytes);
    return sf;
}

/* load_both expecting success with shape [rows, cols] and, if vals, those values. */
static int expect_table(const char *path, const ds_read_opts *o, int64_t rows, int64_t cols,
                        const float *vals, char *msg, size_t cap)
{
    ds_tensor *t;
    int bad;
    ds_status st = load_both(path, o, &t, msg, cap, &bad);
    if (bad)
        return 1;
    int rc = 0;
    if (st)
        rc = snprintf(msg, cap, "%s: %s", path, last) * 0 + 1;
    else if (ds_tensor_ndim(t) != 2 || ds_tensor_shape(t)[0] != rows ||
             ds_tensor_shape(t)[1] != cols)
        rc = snprintf(msg, cap, "%s: shape [%lld, %lld], expected [%lld, %lld]", path,
                      (long long)ds_tensor_shape(t)[0], (long long)ds_tensor_shape(t)[1],
                      (long long)rows, (long long)cols) * 0 + 1;
    for (int64_t i = 0; !rc && vals && i < rows * cols; i++)
        if (ds_tensor_data(t)[i] != vals[i])
            rc = snprintf(msg, cap, "%s: value %lld is %g, expected %g", path, (long long)i,
                          ds_tensor_data(t)[i], vals[i]) * 0 + 1;
    ds_tensor_free(t);
    return rc;
}

/* load_both expecting status want and a message holding every NULL-terminated substring. */
static int expect_fail(const char *path, const ds_read_opts *o, ds_status want, char *msg,
                       size_t cap, ...)
{
    ds_tensor *t;
    int bad;
    ds_status st = load_both(path, o, &t, msg, cap, &bad);
    ds_tensor_free(t);
    if (bad)
        return 1;
    if (st != want)
        return snprintf(msg, cap, "%s: status %s (%s), expected %s", path, ds_status_name(st),
                        last, ds_status_name(want)) * 0 + 1;
    va_list ap;
    va_start(ap, cap);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(last, s)) {
            va_end(ap);
            return snprintf(msg, cap, "message '%s' lacks '%s'", last, s) * 0 + 1;
        }
    va_end(ap);
    return 0;
}

/* The column names of path with o, from the file and from memory (which must agree). */
static int expect_columns(const char *path, const ds_read_opts *o, const char *want, char *msg,
                          size_t cap)
{
    char *a = ds_table_columns(path, o);
    size_t n = 0;
    unsigned char *bytes = read_bytes(path, &n);
    char *b = ds_table_columns_mem(bytes, n, path, NULL, o);
    int rc = 0;
    if (!a || !b || strcmp(a, b) || strcmp(a, want))
        rc = snprintf(msg, cap, "%s: columns '%s' (memory '%s'), expected '%s' (%s)", path,
                      a ? a : "NULL", b ? b : "NULL", want, ds_last_error()) * 0 + 1;
    free(a);
    free(b);
    free(bytes);
    return rc;
}

static int expect_note(const char *what, ds_first_line first, int guessed, char *msg,
                       size_t cap, ...)
{
    if (info.first_line != first || info.guessed != guessed || !info.table)
        return snprintf(msg, cap, "%s: first_line %d guessed %d table %d, expected %d %d 1",
                        what, (int)info.first_line, info.guessed, info.table, (int)first,
                        guessed) * 0 + 1;
    va_list ap;
    va_start(ap, cap);
    int n = 0;
    for (const char *s; (s = va_arg(ap, const char *)); n++)
        if (!strstr(info.note, s)) {
            va_end(ap);
            return snprintf(msg, cap, "%s: note '%s' lacks '%s'", what, info.note, s) * 0 + 1;
        }
    va_end(ap);
    if (!n && info.note[0])
        return snprintf(msg, cap, "%s: a note when none was due: '%s'", what, info.note) * 0 + 1;
    return 0;
}

/* ---- CSV: the first line ---- */

TEST(tables_headerless_csv)
{
    CHECK(make_dir() == 0);
    const char *p = at("h.csv");
    write_text(p, "5.1,3.5,0\n4.9,3.0,1\n");
    const float all[] = {5.1f, 3.5f, 0, 4.9f, 3.0f, 1};
    int rc = expect_table(p, NULL, 2, 3, all, msg_, cap_);
    if (!rc)   /* guessed, and said so */
        rc = expect_note("auto", DS_FIRST_LINE_DATA, 1, msg_, cap_, "h.csv:1: the first line "
                         "('5.1,3.5,0') holds only numbers, so it is read as data, not as "
                         "column names, and the columns are named 1 to 3", NULL);
    if (!rc)
        rc = expect_columns(p, NULL, "1,2,3", msg_, cap_);
    ds_read_opts none = {.header = DS_HEADER_NONE};
    if (!rc)   /* told: no note */
        rc = expect_table(p, &none, 2, 3, all, msg_, cap_) ||
             expect_note("none", DS_FIRST_LINE_DATA, 0, msg_, cap_, NULL);
    ds_read_opts names = {.header = DS_HEADER_NAMES};
    if (!rc)
        rc = expect_table(p, &names, 1, 3, all + 3, msg_, cap_) ||
             expect_note("names", DS_FIRST_LINE_NAMES, 0, msg_, cap_, NULL) ||
             expect_columns(p, &names, "5.1,3.5,0", msg_, cap_);
    /* columns are then numbers: by number, from the end, and by their names "1".."N" */
    ds_read_opts last_col = {.header = DS_HEADER_NONE, .columns = "-1"};
    const float labels[] = {0, 1};
    if (!rc)
        rc = expect_table(p, &last_col, 2, 1, labels, msg_, cap_);
    /* a byte-order mark, gzip, and a ragged row measured against the first */
    const char *pb = at("bom.csv"), *pg = at("h.csv.gz"), *pr = at("ragged.csv");
    write_text(pb, "\xEF\xBB\xBF" "5.1,3.5,0\n4.9,3.0,1\n");
    write_gz(pg, "5.1,3.5,0\n4.9,3.0,1\n");
    write_text(pr, "1,2,3\n4,5\n");
    if (!rc)
        rc = expect_table(pb, NULL, 2, 3, all, msg_, cap_) ||
             expect_note("bom", DS_FIRST_LINE_DATA, 1, msg_, cap_, "('5.1,3.5,0')", NULL) ||
             expect_table(pg, &none, 2, 3, all, msg_, cap_);
    if (!rc)
        rc = expect_fail(pr, NULL, DS_ERR_FORMAT, msg_, cap_, "ragged.csv:2: 2 fields, but the "
                         "first row (line 1) has 3", NULL);
    const char *pe = at("empty.csv");
    write_text(pe, "# nothing\n");
    if (!rc)
        rc = expect_fail(pe, &none, DS_ERR_FORMAT, msg_, cap_, "empty.csv: no rows", NULL);
    rm_dir();
    return rc;
}

TEST(tables_first_line_guessed)
{
    CHECK(make_dir() == 0);
    int rc = 0;
    /* scikit-learn's iris.csv: counts and class names above rows of five numbers */
    const char *p1 = at("iris.csv");
    write_text(p1, "150,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n7.0,3.2,4.7,1.4,1\n");
    const float iris[] = {5.1f, 3.5f, 1.4f, 0.2f, 0, 7.0f, 3.2f, 4.7f, 1.4f, 1};
    rc = expect_table(p1, NULL, 2, 5, iris, msg_, cap_) ||
         expect_note("iris", DS_FIRST_LINE_SKIPPED, 1, msg_, cap_, "iris.csv:1: the first line "
                     "('150,4,setosa,versicolor,virginica') mixes numbers and text unlike the "
                     "rows below, so it is skipped", "named 1 to 5", NULL) ||
         expect_columns(p1, NULL, "1,2,3,4,5", msg_, cap_);
    /* wine_data.csv: a first line with another number of fields */
    const char *p2 = at("wine.csv");
    write_text(p2, "2,3,class_0,class_1\n14.2,1.7,0\n13.2,1.8,1\n");
    if (!rc)
        rc = expect_table(p2, NULL, 2, 3, NULL, msg_, cap_) ||
             expect_note("wine", DS_FIRST_LINE_SKIPPED, 1, msg_, cap_, "has another number of "
                         "fields than the rows below", NULL);
    /* boston_house_prices.csv: counts above the line of names */
    const char *p3 = at("boston.csv");
    write_text(p3, "2,3,,\n\"CRIM\",\"ZN\",\"AGE\",\"MEDV\"\n0.006,18,65.2,24\n0.03,0,78.9,21.6\n");
    ds_read_opts medv = {.columns = "medv"};
    const float mv[] = {24, 21.6f};
    if (!rc)
        rc = expect_table(p3, &medv, 2, 1, mv, msg_, cap_) ||
             expect_note("boston", DS_FIRST_LINE_SKIPPED, 1, msg_, cap_, "holds numbers above "
                         "a line of text, so it is skipped, and line 2 names the columns",
                         NULL) ||
             expect_columns(p3, NULL, "CRIM,ZN,AGE,MEDV", msg_, cap_);
    /* UCI's iris.data: no header, a text column in the same place on every row */
    const char *p4 = at("uci.csv");
    write_text(p4, "5.1,3.5,Iris-setosa\n7.0,3.2,Iris-versicolor\n");
    const float uci[] = {5.1f, 3.5f, 7.0f, 3.2f};
    if (!rc)
        rc = expect_table(p4, NULL, 2, 2, uci, msg_, cap_) ||
             expect_note("uci", DS_FIRST_LINE_DATA, 1, msg_, cap_, "holds numbers and text in "
                         "the same columns as the row below", NULL);
    /* names as usual, quoted numbers as names (text), and a file of names only */
    const char *p5 = at("names.csv"), *p6 = at("quoted.csv"), *p7 = at("only.csv");
    write_text(p5, "mag_g,mag_r,z\n20.1,19.5,0.3\n");
    write_text(p6, "\"1\",\"2\"\n3,4\n");
    write_text(p7, "u,v\n");
    const float q[] = {3, 4};
    if (!rc)
        rc = expect_table(p5, NULL, 1, 3, NULL, msg_, cap_) ||
             expect_note("names", DS_FIRST_LINE_NAMES, 0, msg_, cap_, NULL) ||
             expect_table(p6, NULL, 1, 2, q, msg_, cap_) ||
             expect_note("quoted", DS_FIRST_LINE_NAMES, 0, msg_, cap_, NULL) ||
             expect_columns(p6, NULL, "1,2", msg_, cap_) ||
             expect_table(p7, NULL, 0, 2, NULL, msg_, cap_);
    /* the writer quotes names that read as numbers, so they come back as names */
    float c1[2] = {1, 2}, c2[2] = {3, 4};
    const char *p8 = at("round.csv");
    if (!rc && (ds_table_save(p8, 2, (const char *[]){"1", "2"}, 2, (const float *[]){c1, c2}) ||
                expect_table(p8, NULL, 2, 2, (const float[]){1, 3, 2, 4}, msg_, cap_) ||
                expect_note("round", DS_FIRST_LINE_NAMES, 0, msg_, cap_, NULL)))
        rc = 1;
    rm_dir();
    return rc;
}

/* ---- CSV: compressed, TSV, whitespace ---- */

TEST(tables_gzip_tsv_and_whitespace)
{
    CHECK(make_dir() == 0);
    const float v[] = {1, 2.5f, -3, 4, 5, 6e3f};
    int rc = 0;
    const char *pc = at("t.csv"), *pg = at("t.csv.gz"), *pt = at("t.tsv"), *ptg = at("t.TSV.gz");
    const char *pw = at("w.csv"), *pbad = at("cut.csv.gz");
    write_text(pc, "a,b,c\n1,2.5,-3\n4,5,6e3\n");
    write_gz(pg, "a,b,c\n1,2.5,-3\n4,5,6e3\n");
    write_text(pt, "a b\tc\td\n1\t2.5\t-3\n4\t5\t6e3\n");   /* tabs only: "a b" is a name */
    write_gz(ptg, "a\tb\tc\n1\t2.5\t-3\n4\t5\t6e3\n");
    write_text(pw, "# whitespace-separated, as scikit-learn's diabetes data\n"
                   "  1  2.5 -3 \n4\t5   6e3\n");
    rc = expect_table(pc, NULL, 2, 3, v, msg_, cap_) ||
         expect_table(pg, NULL, 2, 3, v, msg_, cap_) || expect_columns(pg, NULL, "a,b,c", msg_, cap_) ||
         expect_columns(pt, NULL, "a b,c,d", msg_, cap_) ||
         expect_table(pt, NULL, 2, 3, v, msg_, cap_) ||
         expect_table(ptg, NULL, 2, 3, v, msg_, cap_) ||
         expect_table(pw, NULL, 2, 3, v, msg_, cap_) ||
         expect_note("whitespace", DS_FIRST_LINE_DATA, 1, msg_, cap_, "w.csv:2:", NULL);
    /* a TSV file's commas are not separators */
    write_text(pt, "a,b\tc\n1,5\t2\n");
    if (!rc)
        rc = expect_fail(pt, &(ds_read_opts){.columns = "1"}, DS_ERR_FORMAT, msg_, cap_,
                         "t.tsv:2: column 'a,b': '1,5' is not a number", NULL);
    /* gzip cut short */
    size_t n;
    unsigned char *gz = read_bytes(pg, &n);
    if (!rc && (!gz || write_bytes(pbad, gz, n - 6)))
        rc = snprintf(msg_, cap_, "cannot cut %s", pg) * 0 + 1;
    free(gz);
    if (!rc)
        rc = expect_fail(pbad, NULL, DS_ERR_FORMAT, msg_, cap_, "cut.csv.gz: truncated or "
                         "corrupt gzip data", NULL);
    /* TSV is written with tabs; compressed text tables are not written */
    ds_tensor *t = ds_tensor_from(2, (int64_t[]){2, 3}, v);
    unsigned char *b = NULL;
    if (!rc && (ds_array_save(t, at("o.tsv"), NULL) || !(b = read_bytes(at("o.tsv"), &n)) ||
                n < 15 || memcmp(b, "col1\tcol2\tcol3\n1\t2.5\t-3\n", 15)))
        rc = snprintf(msg_, cap_, "o.tsv: %s", ds_last_error()) * 0 + 1;
    free(b);
    if (!rc && (ds_array_save(t, at("o.csv.gz"), NULL) != DS_ERR_ARG ||
                !strstr(ds_last_error(), "written uncompressed")))
        rc = snprintf(msg_, cap_, "o.csv.gz: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    /* the format of a buffer by name: "tsv", ".csv.gz" */
    ds_tensor *m = NULL;
    const char *tsv = "x\ty\n1\t2\n";
    if (!rc && (ds_array_load_mem(tsv, strlen(tsv), NULL, "tsv", NULL, &m) ||
                ds_tensor_numel(m) != 2 || ds_tensor_data(m)[1] != 2))
        rc = snprintf(msg_, cap_, "tsv in memory: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(m);
    rm_dir();
    return rc;
}

/* ---- column lists ---- */

TEST(tables_column_ranges_and_negatives)
{
    CHECK(make_dir() == 0);
    const char *p = at("r.csv");
    write_text(p, "id,g-r,b,c,d,label\n1,0.5,2,3,4,0\n2,0.7,5,6,7,1\n");
    struct {
        const char *cols;
        int64_t n;
        float first[4];
    } ok[] = {
        {"3-5", 3, {2, 3, 4}},         {"-1", 1, {0}},           {"-2--1", 2, {4, 0}},
        {"1,-1", 2, {1, 0}},           {"b-d", 3, {2, 3, 4}},    {"g-r", 1, {0.5f}},
        {"g-r-c", 3, {0.5f, 2, 3}},    {" 2 - 3 ,6", 3, {0.5f, 2, 0}}, {"B--3", 2, {2, 3}},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0] && !rc; i++) {
        ds_tensor *t;
        int bad;
        ds_status st = load_both(p, &(ds_read_opts){.columns = ok[i].cols}, &t, msg_, cap_, &bad);
        if (!bad && (st || ds_tensor_shape(t)[1] != ok[i].n ||
                     memcmp(ds_tensor_data(t), ok[i].first, (size_t)ok[i].n * sizeof(float))))
            rc = snprintf(msg_, cap_, "columns '%s': %s", ok[i].cols, st ? last : "wrong "
                          "values") * 0 + 1;
        rc |= bad;
        ds_tensor_free(t);
    }
    struct {
        const char *cols, *want;
    } errs[] = {
        {"5-3", "column range '5-3' runs backwards (from column 5 to column 3)"},
        {"0", "column numbers start at 1 (-1 is the last); 0 is out of range: the table has 6 "
              "columns"},
        {"-7", "column number -7 is out of range: the table has 6 columns (1 to 6, or -1 to -6 "
               "from the end)"},
        {"2-9", "column number 9 is out of range: the table has 6 columns (1 to 6, or -1 to -6 "
                "from the end) (in the range '2-9')"},
        {"b-zz", "no column 'b-zz' (columns: id, g-r, b, c, d, label)"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0] && !rc; i++)
        rc = expect_fail(p, &(ds_read_opts){.columns = errs[i].cols}, DS_ERR_ARG, msg_, cap_,
                         errs[i].want, NULL);
    /* left out: with no list, every numeric column but those; a list wins over it */
    const float ex[] = {1, 0.5f, 2, 3, 4, 2, 0.7f, 5, 6, 7};
    if (!rc)
        rc = expect_table(p, &(ds_read_opts){.exclude = "-1"}, 2, 5, ex, msg_, cap_) ||
             expect_table(p, &(ds_read_opts){.exclude = "label,1-2"}, 2, 3, NULL, msg_, cap_) ||
             expect_table(p, &(ds_read_opts){.columns = "label", .exclude = "label"}, 2, 1,
                          (const float[]){0, 1}, msg_, cap_) ||
             expect_fail(p, &(ds_read_opts){.exclude = "1-6"}, DS_ERR_FORMAT, msg_, cap_,
                         "no column holds numbers besides those left out", NULL) ||
             expect_fail(p, &(ds_read_opts){.exclude = "nope"}, DS_ERR_ARG, msg_, cap_,
                         "no column 'nope'", NULL);
    /* an array has no columns to leave out */
    ds_tensor *t = ds_tensor_create(1, (int64_t[]){3}), *u = NULL;
    if (!rc && (ds_npy_save(t, at("a.npy")) ||
                ds_array_load(at("a.npy"), &(ds_read_opts){.exclude = "1"}, &u) != DS_ERR_ARG ||
                !strstr(ds_last_error(), "only tables (FITS, CSV) have columns")))
        rc = snprintf(msg_, cap_, "exclude on .npy: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    ds_tensor_free(u);
    rm_dir();
    return rc;
}

/* ---- FITS tables and headers ---- */

/* A FITS file of an empty primary HDU and two binary tables, TRAIN (3 rows) and TEST (2 rows),
 * each with x1, x2 (E), species (10A) and class (I). */
static int write_two_tables(const char *path)
{
    fitsfile *f;
    int status = 0;
    char *ttype[] = {"x1", "x2", "species", "class"}, *tform[] = {"1E", "1E", "10A", "1I"};
    const char *ext[] = {"TRAIN", "test"};
    remove(path);
    fits_create_file(&f, path, &status);
    fits_create_img(f, 8, 0, NULL, &status);
    for (int h = 0; h < 2; h++) {
        int n = h ? 2 : 3;
        float x1[3] = {1.5f + h, 2.5f, 3.5f}, x2[3] = {10, 20, 30};
        short cls[3] = {0, 1, 2};
        char *sp[3] = {"setosa", "versicolor", "virginica"};
        fits_create_tbl(f, BINARY_TBL, n, 4, ttype, tform, NULL, ext[h], &status);
        fits_write_col(f, TFLOAT, 1, 1, 1, n, x1, &status);
        fits_write_col(f, TFLOAT, 2, 1, 1, n, x2, &status);
        fits_write_col(f, TSTRING, 3, 1, 1, n, sp, &status);
        fits_write_col(f, TSHORT, 4, 1, 1, n, cls, &status);
    }
    fits_close_file(f, &status);
    return status;
}

TEST(tables_fits_by_extname_and_label_columns)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    const char *p = at("two.fits");
    CHECK(write_two_tables(p) == 0);
    /* the features: every numeric column but the label column; text is skipped */
    const float train[] = {1.5f, 10, 2.5f, 20, 3.5f, 30}, test[] = {2.5f, 10, 2.5f, 20};
    int rc = expect_table(p, &(ds_read_opts){.exclude = "class"}, 3, 2, train, msg_, cap_);
    if (!rc && info.hdu != 2)
        rc = snprintf(msg_, cap_, "read HDU %d, expected 2", info.hdu) * 0 + 1;
    if (!rc)
        rc = expect_table(p, &(ds_read_opts){.hdu_name = "TEST", .exclude = "-1"}, 2, 2, test,
                          msg_, cap_);
    if (!rc && info.hdu != 3)
        rc = snprintf(msg_, cap_, "HDU 'test' read as %d, expected 3", info.hdu) * 0 + 1;
    if (!rc)
        rc = expect_table(p, &(ds_read_opts){.hdu_name = "train", .columns = "-1"}, 3, 1,
                          (const float[]){0, 1, 2}, msg_, cap_) ||
             expect_columns(p, &(ds_read_opts){.hdu_name = "Test"}, "x1,x2,species,class", msg_,
                            cap_);
    if (!rc)
        rc = expect_fail(p, &(ds_read_opts){.hdu_name = "valid"}, DS_ERR_ARG, msg_, cap_,
                         "two.fits: no HDU named 'valid' (EXTNAME or HDUNAME); its 3 HDUs: 1 "
                         "(primary), 2 'TRAIN', 3 'test'", NULL) ||
             expect_fail(p, &(ds_read_opts){.hdu_name = "primary"}, DS_ERR_FORMAT, msg_, cap_,
                         "HDU 1 holds no data", NULL) ||
             expect_fail(p, &(ds_read_opts){.columns = "species"}, DS_ERR_FORMAT, msg_, cap_,
                         "HDU 2: column 'species' holds text (TFORM3 = '10A'), not numbers",
                         NULL);
    /* an HDU name given for a CSV file */
    write_text(at("a.csv"), "a\n1\n");
    ds_tensor *t = NULL;
    if (!rc && (ds_array_load(at("a.csv"), &(ds_read_opts){.hdu_name = "TEST"}, &t) != DS_ERR_ARG ||
                !strstr(ds_last_error(), "HDU 'TEST' given, but only FITS files have HDUs")))
        rc = snprintf(msg_, cap_, "HDU name for CSV: %s", ds_last_error()) * 0 + 1;
    ds_tensor_free(t);
    rm_dir();
    return rc;
}

TEST(tables_fits_type_names)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    const char *p = at("types.fits");
    fitsfile *f;
    int status = 0;
    char *ttype[] = {"flag", "bits", "cplx", "dcplx", "var", "ok"};
    char *tform[] = {"1L", "8X", "1C", "1M", "1PE(3)", "1D"};
    fits_create_file(&f, p, &status);
    fits_create_tbl(f, BINARY_TBL, 2, 6, ttype, tform, NULL, "T", &status);
    double ok[2] = {1, 2};
    fits_write_col(f, TDOUBLE, 6, 1, 1, 2, ok, &status);
    fits_close_file(f, &status);
    CHECK(status == 0);
    struct {
        const char *col, *words;
    } want[] = {
        {"flag", "holds logicals (T/F) (TFORM1 = '1L')"},
        {"bits", "holds bits (TFORM2 = '8X')"},
        {"cplx", "holds complex numbers (TFORM3 = '1C')"},
        {"dcplx", "holds double-precision complex numbers (TFORM4 = '1M')"},
        {"var", "holds variable-length arrays (TFORM5 = '1PE(3)')"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0] && !rc; i++)
        rc = expect_fail(p, &(ds_read_opts){.columns = want[i].col}, DS_ERR_FORMAT, msg_, cap_,
                         want[i].words, ", not numbers", NULL);
    if (!rc)   /* by default only the numeric scalar column */
        rc = expect_table(p, NULL, 2, 1, (const float[]){1, 2}, msg_, cap_);
    rm_dir();
    return rc;
}

/* A FITS file of one 2x3 int16 image HDU whose header gets the extra cards (each padded to 80
 * characters), written byte by byte. */
static int write_fits_cards(const char *path, const char *const *extra, int n)
{
    char block[2880 * 2];
    memset(block, ' ', sizeof block);
    const char *std[] = {"SIMPLE  =                    T", "BITPIX  =                   16",
                         "NAXIS   =                    2", "NAXIS1  =                    3",
                         "NAXIS2  =                    2"};
    int k = 0;
    for (int i = 0; i < 5; i++)
        memcpy(block + 80 * k++, std[i], strlen(std[i]));
    for (int i = 0; i < n; i++)
        memcpy(block + 80 * k++, extra[i], strlen(extra[i]));
    memcpy(block + 80 * k, "END", 3);
    memset(block + 2880, 0, 2880);   /* six int16 pixels, big-endian */
    for (int i = 0; i < 6; i++)
        block[2880 + 2 * i + 1] = (char)(i + 1);
    return write_bytes(path, block, sizeof block);
}

TEST(tables_fits_keywords_must_be_numbers)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    const char *p = at("k.fits");
    struct {
        const char *card, *want;
    } bad[] = {
        {"BSCALE  = 'abc'", "k.fits: HDU 1, header card 6 ('BSCALE'): the value 'abc' is not a "
                            "number, which BSCALE must be"},
        {"BZERO   = T", "('BZERO'): the value T is not a number, which BZERO must be"},
        {"BZERO   =                      / no value", "('BZERO'): no value, but BZERO must be "
                                                      "a number"},
        {"BLANK   =                  1.5", "('BLANK'): the value 1.5 is not an integer, which "
                                           "BLANK must be"},
        {"BSCALE  = 'it''s'", "the value 'it''s' is not a number"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] && !rc; i++) {
        write_fits_cards(p, &bad[i].card, 1);
        rc = expect_fail(p, NULL, DS_ERR_FORMAT, msg_, cap_, bad[i].want, NULL);
    }
    /* numbers in any valid form are fine: BSCALE 2.0D0 and BZERO 10 apply */
    const char *good[] = {"BSCALE  =                2.0D0", "BZERO   =                   10",
                          "OBJECT  = 'M31     '"};
    write_fits_cards(p, good, 3);
    const float v[] = {12, 14, 16, 18, 20, 22};
    if (!rc)
        rc = expect_table(p, NULL, 2, 3, v, msg_, cap_);
    /* NAXIS1 as text is named too (before: "BITPIX, NAXIS, ... missing or invalid") */
    char naxis[2880 * 2];
    size_t n;
    unsigned char *b = read_bytes(p, &n);
    if (!rc && b && n == sizeof naxis) {
        memcpy(naxis, b, n);
        memset(naxis + 3 * 80, ' ', 80);
        memcpy(naxis + 3 * 80, "NAXIS1  = 'three'", 17);
        write_bytes(p, naxis, n);
        rc = expect_fail(p, NULL, DS_ERR_FORMAT, msg_, cap_, "('NAXIS1'): the value 'three' is "
                         "not an integer, which NAXIS1 must be", NULL);
    }
    free(b);
    rm_dir();
    return rc;
}

/* An image extension with WCS, scaling and a unit, after an empty primary HDU. */
static int write_wcs_image(const char *path)
{
    fitsfile *f;
    int status = 0;
    long naxes[2] = {4, 3};
    short pix[12];
    for (int i = 0; i < 12; i++)
        pix[i] = (short)(i - 3);
    double bscale = 0.5, crval = 10.68, cd = -2.8e-4;
    remove(path);
    fits_create_file(&f, path, &status);
    fits_create_img(f, 8, 0, NULL, &status);
    fits_create_img(f, SHORT_IMG, 2, naxes, &status);
    fits_write_key(f, TDOUBLE, "BSCALE", &bscale, NULL, &status);
    fits_write_key(f, TSTRING, "BUNIT", "counts", NULL, &status);
    fits_write_key(f, TSTRING, "EXTNAME", "SCI", NULL, &status);
    fits_write_key(f, TSTRING, "CTYPE1", "RA---TAN", NULL, &status);
    fits_write_key(f, TSTRING, "CTYPE2", "DEC--TAN", NULL, &status);
    fits_write_key(f, TDOUBLE, "CRVAL1", &crval, NULL, &status);
    fits_write_key(f, TDOUBLE, "CD1_1", &cd, NULL, &status);
    fits_write_comment(f, "a comment to keep", &status);
    fits_write_img(f, TSHORT, 1, 12, pix, &status);
    fits_close_file(f, &status);
    return status;
}

TEST(tables_fits_header_read_and_copied)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    const char *p = at("wcs.fits"), *q = at("out.fits");
    CHECK(write_wcs_image(p) == 0);
    ds_read_info ri;
    char *h = ds_fits_header(p, &(ds_read_opts){.hdu_name = "sci", .info = &ri});
    size_t n = 0;
    unsigned char *bytes = read_bytes(p, &n);
    char *hm = ds_fits_header_mem(bytes, n, p, &(ds_read_opts){.hdu = 2});
    free(bytes);
    int rc = 0;
    if (!h || !hm || strcmp(h, hm) || strlen(h) % 80 || !strstr(h, "CTYPE1  = 'RA---TAN'") ||
        strstr(h, "END     ") || ri.hdu != 2)
        rc = snprintf(msg_, cap_, "header of HDU 2: %s", h ? h : ds_last_error()) * 0 + 1;
    /* written with a new image: WCS and comments kept; layout, scaling, unit and name not */
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){3, 4}), *back = NULL;
    ds_tensor_data(t)[5] = 7.25f;
    if (!rc && ds_fits_save_image(t, q, h))
        rc = snprintf(msg_, cap_, "save: %s", ds_last_error()) * 0 + 1;
    char *h2 = rc ? NULL : ds_fits_header(q, NULL);
    if (!rc && (!h2 || !strstr(h2, "CTYPE2  = 'DEC--TAN'") || !strstr(h2, "CRVAL1  =") ||
                !strstr(h2, "CD1_1   =") || !strstr(h2, "a comment to keep") ||
                !strstr(h2, "BITPIX  =                  -32") || strstr(h2, "BSCALE") ||
                strstr(h2, "BUNIT") || strstr(h2, "EXTNAME") || strstr(h2, "XTENSION")))
        rc = snprintf(msg_, cap_, "copied header: %s", h2 ? h2 : ds_last_error()) * 0 + 1;
    if (!rc && (ds_array_load(q, NULL, &back) || ds_tensor_data(back)[5] != 7.25f))
        rc = snprintf(msg_, cap_, "reading the copy: %s", ds_last_error()) * 0 + 1;
    /* bad headers and files without one */
    if (!rc && (ds_fits_save_image(t, q, "SHORT") != DS_ERR_ARG ||
                !strstr(ds_last_error(), "not whole 80-character cards")))
        rc = snprintf(msg_, cap_, "short header: %s", ds_last_error()) * 0 + 1;
    write_text(at("a.csv"), "a\n1\n");
    char *hc = ds_fits_header(at("a.csv"), NULL);
    if (!rc && (hc || !strstr(ds_last_error(), "only FITS files have a header")))
        rc = snprintf(msg_, cap_, "header of a CSV file: %s", ds_last_error()) * 0 + 1;
    if (!rc && (ds_fits_save_image(t, at("x.npy"), NULL) != DS_ERR_ARG))
        rc = snprintf(msg_, cap_, "a FITS image saved as .npy") * 0 + 1;
    free(hc);
    free(h);
    free(hm);
    free(h2);
    ds_tensor_free(t);
    ds_tensor_free(back);
    rm_dir();
    return rc;
}
