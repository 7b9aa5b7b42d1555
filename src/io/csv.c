/* csv.c - CSV tables: a header line of names, then rows of numbers, read into [rows,
 * columns]; written with %.9g so that float32 values round-trip exactly. */
#include "data.h"

#include <errno.h>
#include <math.h>

/* Record reader over a buffer (p to end). Separator ',' (or ';' or tab, chosen from
 * the header line); "quoted" fields with "" escapes may hold separators and newlines;
 * blank lines and lines starting with '#' are skipped. */
typedef struct {
    const char *path;
    const char *p, *end;
    int line;            /* line number at p */
    char sep;
    char *buf;           /* unescaped text of the current record, fields NUL-terminated */
    size_t blen, bcap;
    size_t *off;         /* field i starts at buf + off[i] */
    int nf, fcap;
} csv;

static bool put(csv *c, char ch)
{
    if (c->blen == c->bcap) {
        size_t n = c->bcap ? 2 * c->bcap : 256;
        char *b = realloc(c->buf, n);
        if (!b)
            return false;
        c->buf = b;
        c->bcap = n;
    }
    c->buf[c->blen++] = ch;
    return true;
}

static bool new_field(csv *c)
{
    if (c->nf == c->fcap) {
        int n = c->fcap ? 2 * c->fcap : 16;
        size_t *o = realloc(c->off, (size_t)n * sizeof *o);
        if (!o)
            return false;
        c->off = o;
        c->fcap = n;
    }
    c->off[c->nf++] = c->blen;
    return true;
}

static const char *field(const csv *c, int i) { return c->buf + c->off[i]; }

static bool is_space(const csv *c, char ch)
{
    return ch == ' ' || ch == '\r' || (ch == '\t' && c->sep != '\t');
}

/* Skips blank and comment lines; false at the end of the file. */
static bool skip_to_record(csv *c)
{
    for (;;) {
        const char *q = c->p;
        while (q < c->end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q >= c->end)
            return false;
        if (*q != '\n' && *q != '#')
            return true;
        while (q < c->end && *q != '\n')
            q++;
        if (q < c->end)
            q++;
        c->p = q;
        c->line++;
    }
}

/* The separator that occurs most often outside quotes on the header line (',' on ties). */
static char detect_sep(const char *p, const char *end)
{
    int n[3] = {0, 0, 0};
    bool quoted = false;
    for (; p < end && (quoted || *p != '\n'); p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted)
            n[0] += *p == ',', n[1] += *p == ';', n[2] += *p == '\t';
    }
    if (n[1] > n[0] && n[1] >= n[2])
        return ';';
    if (n[2] > n[0] && n[2] > n[1])
        return '\t';
    return ',';
}

/* Reads the next record into c->buf/off. 1: a record (starting on *line), 0: end of file,
 * -1: error (message set). */
static int next_record(csv *c, int *line)
{
    if (!skip_to_record(c))
        return 0;
    *line = c->line;
    c->nf = 0;
    c->blen = 0;
    for (;;) {
        if (!new_field(c))
            goto nomem;
        while (c->p < c->end && is_space(c, *c->p))
            c->p++;
        if (c->p < c->end && *c->p == '"') {
            int start = c->line;
            c->p++;
            for (;;) {
                if (c->p >= c->end) {
                    dsi_fail(DS_ERR_FORMAT, "%s:%d: quoted field is not closed", c->path, start);
                    return -1;
                }
                char ch = *c->p++;
                if (ch == '"') {
                    if (c->p < c->end && *c->p == '"')
                        c->p++;
                    else
                        break;
                }
                if (ch == '\n')
                    c->line++;
                if (!put(c, ch))
                    goto nomem;
            }
            while (c->p < c->end && is_space(c, *c->p))
                c->p++;
            if (c->p < c->end && *c->p != c->sep && *c->p != '\n') {
                dsi_fail(DS_ERR_FORMAT, "%s:%d: unexpected '%c' after a closing quote", c->path,
                         c->line, *c->p);
                return -1;
            }
        } else {
            size_t first = c->blen;
            while (c->p < c->end && *c->p != c->sep && *c->p != '\n')
                if (!put(c, *c->p++))
                    goto nomem;
            while (c->blen > first && is_space(c, c->buf[c->blen - 1]))
                c->blen--;
        }
        if (!put(c, 0))
            goto nomem;
        if (c->p < c->end && *c->p == c->sep) {
            c->p++;
            continue;
        }
        if (c->p < c->end) {    /* '\n' */
            c->p++;
            c->line++;
        }
        return 1;
    }
nomem:
    dsi_fail(DS_ERR_NOMEM, "%s: out of memory", c->path);
    return -1;
}

/* A number (strtod: also nan, inf); an empty cell is a missing value, NaN. */
static bool parse_num(const char *s, float *v)
{
    if (!*s) {
        *v = NAN;
        return true;
    }
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    if (e == s || *e)
        return false;
    *v = (float)d;
    return true;
}

static void csv_free(csv *c)
{
    free(c->buf);
    free(c->off);
}

/* Starts on the file's bytes data[0..size) and reads the header: names[nhead] (malloc'd
 * copies) and the separator. */
static ds_status read_header(csv *c, const unsigned char *data, size_t size, char ***names,
                             int *nhead)
{
    *names = NULL;
    *nhead = 0;
    if (memchr(data, 0, size))
        return dsi_fail(DS_ERR_FORMAT, "%s: holds binary data (a NUL byte), not CSV text",
                        c->path);
    c->p = (const char *)data;
    c->end = c->p + size;
    c->line = 1;
    if (size >= 3 && !memcmp(c->p, "\xEF\xBB\xBF", 3))   /* UTF-8 byte order mark */
        c->p += 3;
    if (!skip_to_record(c))
        return dsi_fail(DS_ERR_FORMAT, "%s: no header line of column names (empty file)",
                        c->path);
    c->sep = detect_sep(c->p, c->end);
    int line, r = next_record(c, &line);
    if (r < 0)
        return dsi_last_status();   /* a bad field, or out of memory */
    char **nm = calloc((size_t)c->nf, sizeof *nm);
    if (!nm)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", c->path);
    bool numeric = true;
    for (int i = 0; i < c->nf; i++) {
        float v;
        numeric = numeric && *field(c, i) && parse_num(field(c, i), &v);
        if (!(nm[i] = dsi_strdup(field(c, i)))) {
            for (int j = 0; j < i; j++)
                free(nm[j]);
            free(nm);
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", c->path);
        }
    }
    *names = nm;
    *nhead = c->nf;
    if (numeric)
        return dsi_fail(DS_ERR_FORMAT, "%s:%d: the first line must name the columns, but it "
                        "holds numbers ('%s', ...)", c->path, line, nm[0]);
    return DS_OK;
}

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

ds_status dsi_csv_load_mem(const unsigned char *data, size_t size, const char *path,
                           const char *columns, ds_tensor **out)
{
    *out = NULL;
    csv c = {.path = path};
    char **names = NULL;
    int nhead = 0, nsel = 0, *sel = NULL;
    float *vals = NULL;
    size_t nvals = 0, cap = 0;
    int64_t rows = 0;
    ds_status st = read_header(&c, data, size, &names, &nhead);
    if (st != DS_OK)
        goto done;
    if (columns && (st = dsi_columns_select(path, columns, nhead, names, &sel, &nsel)) != DS_OK)
        goto done;
    for (;;) {
        int line, r = next_record(&c, &line);
        if (r < 0) {
            st = dsi_last_status();
            goto done;
        }
        if (r == 0)
            break;
        if (c.nf != nhead) {
            st = dsi_fail(DS_ERR_FORMAT, "%s:%d: %d fields, but the header names %d columns",
                          path, line, c.nf, nhead);
            goto done;
        }
        if (!sel) {   /* no list given: the columns whose first value is a number */
            if (!(sel = malloc((size_t)nhead * sizeof *sel))) {
                st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            float v;
            for (int i = 0; i < nhead; i++)
                if (parse_num(field(&c, i), &v))
                    sel[nsel++] = i;
            if (!nsel) {
                char list[400];
                dsi_columns_list(nhead, names, list, sizeof list);
                st = dsi_fail(DS_ERR_FORMAT, "%s:%d: no column holds numbers (columns: %s)",
                              path, line, list);
                goto done;
            }
        }
        if (nvals + (size_t)nsel > cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            while (ncap < nvals + (size_t)nsel)
                ncap *= 2;
            float *nv = realloc(vals, ncap * sizeof *nv);
            if (!nv) {
                st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory at line %d", path, line);
                goto done;
            }
            vals = nv;
            cap = ncap;
        }
        for (int j = 0; j < nsel; j++) {
            const char *s = field(&c, sel[j]);
            if (!parse_num(s, &vals[nvals++])) {
                st = dsi_fail(DS_ERR_FORMAT, "%s:%d: column '%s': '%.40s' is not a number", path,
                              line, names[sel[j]], s);
                goto done;
            }
        }
        rows++;
    }
    if (!sel)   /* header only: every column, no rows */
        nsel = nhead;
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){rows, nsel});
    if (!t) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    if (nvals)
        memcpy(t->data, vals, nvals * sizeof *vals);
    *out = t;
    st = DS_OK;
done:
    free(vals);
    free(sel);
    free_names(names, nhead);
    csv_free(&c);
    return st;
}

char *dsi_csv_columns_mem(const unsigned char *data, size_t size, const char *path)
{
    csv c = {.path = path};
    char **names = NULL, *s = NULL;
    int n = 0;
    if (read_header(&c, data, size, &names, &n) == DS_OK)
        s = dsi_columns_join(n, names);
    free_names(names, n);
    csv_free(&c);
    return s;
}

/* ---- writing ---- */

static void put_name(FILE *fp, const char *s)
{
    size_t n = strlen(s);
    bool q = n == 0 || s[0] == '#' || s[0] == ' ' || s[n - 1] == ' ' ||
             strpbrk(s, ",;\t\"\r\n") != NULL;
    if (!q) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* Either data (row-major [nrows, ncols]) or cols (ncols arrays of nrows). */
static ds_status write_table(const char *path, int ncols, const char *const *names,
                             int64_t nrows, const float *data, const float *const *cols)
{
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, path);
    if (st != DS_OK)
        return st;
    for (int j = 0; j < ncols; j++) {
        if (j)
            fputc(',', w.fp);
        if (names && names[j]) {
            put_name(w.fp, names[j]);
        } else {
            fprintf(w.fp, "col%d", j + 1);
        }
    }
    fputc('\n', w.fp);
    for (int64_t i = 0; i < nrows && !ferror(w.fp); i++) {
        for (int j = 0; j < ncols; j++) {
            float v = data ? data[i * ncols + j] : cols[j][i];
            fprintf(w.fp, j ? ",%.9g" : "%.9g", (double)v);
        }
        fputc('\n', w.fp);
    }
    return dsi_wfile_commit(&w);
}

ds_status dsi_csv_save(const ds_tensor *t, const char *path, const char *const *colnames)
{
    if (t->ndim != 1 && t->ndim != 2)
        return dsi_fail(DS_ERR_SHAPE, "%s: a CSV file holds a table [rows, columns] or one "
                        "column (1-D), not shape %s", path, dsi_shape_str(t->ndim, t->shape));
    int64_t ncols = t->ndim == 2 ? t->shape[1] : 1;
    if (ncols < 1 || ncols > 1000000)
        return dsi_fail(DS_ERR_SHAPE, "%s: cannot write a table of %lld columns", path,
                        (long long)ncols);
    return write_table(path, (int)ncols, colnames, t->shape[0], t->data, NULL);
}

ds_status dsi_csv_save_table(const char *path, int ncols, const char *const *names,
                             int64_t nrows, const float *const *cols)
{
    return write_table(path, ncols, names, nrows, NULL, cols);
}
