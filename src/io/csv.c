/* csv.c - CSV and TSV tables (gzipped or not): a header line of names (or none, told or
 * guessed from the content), then rows of numbers, read into [rows, columns]; written with
 * %.9g so that float32 values round-trip exactly. */
#include "data.h"

#include <errno.h>
#include <math.h>

/* Record reader over a buffer (p to end). Separator ',' (or ';', tab or runs of blanks,
 * chosen from the first line); "quoted" fields with "" escapes may hold separators and newlines;
 * blank lines and lines starting with '#' are skipped. */
typedef struct {
    const char *path;
    const char *p, *end;
    int line;            /* line number at p */
    char sep;
    char *buf;           /* unescaped text of the current record, fields NUL-terminated */
    size_t blen, bcap;
    size_t *off;         /* field i starts at buf + off[i] */
    bool *quoted;        /* field i was quoted */
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
        if (o)
            c->off = o;
        bool *q = o ? realloc(c->quoted, (size_t)n * sizeof *q) : NULL;
        if (!q)
            return false;
        c->quoted = q;
        c->fcap = n;
    }
    c->quoted[c->nf] = false;
    c->off[c->nf++] = c->blen;
    return true;
}

static const char *field(const csv *c, int i) { return c->buf + c->off[i]; }

/* Blanks trimmed around a field: not those that separate fields. */
static bool is_space(const csv *c, char ch)
{
    return ch == '\r' || (ch == ' ' && c->sep != ' ') ||
           (ch == '\t' && c->sep != '\t' && c->sep != ' ');
}

/* With sep ' ' (whitespace-separated columns), any run of spaces and tabs separates. */
static bool is_sep(const csv *c, char ch)
{
    return ch == c->sep || (c->sep == ' ' && ch == '\t');
}

static void skip_blanks(csv *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r'))
        c->p++;
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

/* The separator that occurs most often outside quotes on the first line (',' on ties);
 * ' ' (runs of blanks) if there is none of ',', ';' and tab but blanks between words. */
static char detect_sep(const char *p, const char *end)
{
    int n[3] = {0, 0, 0}, gaps = 0;
    bool quoted = false, word = false;
    for (; p < end && (quoted || *p != '\n'); p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted)
            n[0] += *p == ',', n[1] += *p == ';', n[2] += *p == '\t';
        if (!quoted && *p == ' ' && word && p + 1 < end && p[1] != ' ' && p[1] != '\r' &&
            p[1] != '\n')
            gaps++;
        word = word || (*p != ' ' && *p != '\r');
    }
    if (!n[0] && !n[1] && !n[2] && gaps)
        return ' ';
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
    if (c->sep == ' ')
        skip_blanks(c);
    for (;;) {
        if (!new_field(c))
            goto nomem;
        while (c->p < c->end && is_space(c, *c->p))
            c->p++;
        if (c->p < c->end && *c->p == '"') {
            int start = c->line;
            c->quoted[c->nf - 1] = true;
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
            if (c->p < c->end && !is_sep(c, *c->p) && *c->p != '\n') {
                dsi_fail(DS_ERR_FORMAT, "%s:%d: unexpected '%c' after a closing quote", c->path,
                         c->line, *c->p);
                return -1;
            }
        } else {
            size_t first = c->blen;
            while (c->p < c->end && !is_sep(c, *c->p) && *c->p != '\n')
                if (!put(c, *c->p++))
                    goto nomem;
            while (c->blen > first && is_space(c, c->buf[c->blen - 1]))
                c->blen--;
        }
        if (!put(c, 0))
            goto nomem;
        if (c->p < c->end && is_sep(c, *c->p)) {
            c->p++;
            if (c->sep == ' ')
                skip_blanks(c);
            if (c->sep != ' ' || (c->p < c->end && *c->p != '\n'))
                continue;   /* blanks at the end of a line separate nothing */
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
    free(c->quoted);
}

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

enum { EMPTY, NUMBER, TEXT };

/* Field i of the current record: a quoted field is text, whatever it holds. */
static int kind_of(const csv *c, int i)
{
    float v;
    const char *s = field(c, i);
    return c->quoted[i] ? TEXT : !*s ? EMPTY : parse_num(s, &v) ? NUMBER : TEXT;
}

/* The column names and how the first line was read. */
typedef struct {
    char **names;
    int *kinds;          /* of the first line's fields */
    int n;
    ds_first_line first;
    int first_line;      /* its line number */
    int names_line;      /* the line that names the columns when it is not the first, or 0 */
    int row_line;        /* the line of the first row of data (0: none yet) */
} header;

/* Copies of the current record's fields and their kinds into h (false on no memory). */
static bool copy_fields(const csv *c, header *h)
{
    char **nm = calloc((size_t)c->nf, sizeof *nm);
    if (!nm || !(h->kinds = malloc((size_t)c->nf * sizeof *h->kinds))) {
        free(nm);
        return false;
    }
    for (int i = 0; i < c->nf; i++) {
        h->kinds[i] = kind_of(c, i);
        if (!(nm[i] = dsi_strdup(field(c, i)))) {
            free_names(nm, i);
            return false;
        }
    }
    h->names = nm;
    h->n = c->nf;
    return true;
}

/* Names "1".."n" in place of h->names. */
static bool number_names(header *h, int n)
{
    char **nm = calloc((size_t)n + 1, sizeof *nm);
    for (int i = 0; nm && i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        if (!(nm[i] = dsi_strdup(num))) {
            free_names(nm, i);
            nm = NULL;
        }
    }
    if (!nm)
        return false;
    free_names(h->names, h->n);
    h->names = nm;
    h->n = n;
    return true;
}

/* DS_HEADER_AUTO's verdict on the first line, whose fields are h->names (a quoted field
 * counts as text), from its content and the next record's:
 * - numbers (some) above a record of text only: skipped, and that record names the
 *   columns (h then holds its names, and the reader stands after it);
 * - only numbers: data;
 * - another number of fields than the next record: skipped;
 * - no number, or nothing follows: names;
 * - numbers and text: data if the next record has numbers and text in the same columns,
 *   else skipped.
 * *why says which rule; *nrow is the number of columns. Reads ahead and comes back. */
static int guess_first(csv *c, header *h, ds_first_line *first, const char **why, int *nrow)
{
    int num = 0, text = 0, rnum = 0, rtext = 0;
    for (int i = 0; i < h->n; i++)
        num += h->kinds[i] == NUMBER, text += h->kinds[i] == TEXT;
    const char *p = c->p;
    int line = c->line, at, r = next_record(c, &at);
    if (r < 0)
        return -1;
    for (int i = 0; r > 0 && i < c->nf; i++)
        rnum += kind_of(c, i) == NUMBER, rtext += kind_of(c, i) == TEXT;
    *nrow = h->n;
    *first = DS_FIRST_LINE_NAMES;
    if (num && rtext && !rnum) {
        *first = DS_FIRST_LINE_SKIPPED;
        *why = "holds numbers above a line of text";
        free_names(h->names, h->n);
        free(h->kinds);
        h->names = NULL;
        h->kinds = NULL;
        h->names_line = at;
        *nrow = c->nf;
        return copy_fields(c, h) ? 0 : -2;
    }
    if (num && !text) {
        *first = DS_FIRST_LINE_DATA;
        *why = "holds only numbers";
    } else if (r > 0 && c->nf != h->n) {
        *first = DS_FIRST_LINE_SKIPPED;
        *why = "has another number of fields than the rows below";
        *nrow = c->nf;
    } else if (r > 0 && num) {
        *first = DS_FIRST_LINE_DATA;
        *why = "holds numbers and text in the same columns as the row below";
        for (int i = 0; i < h->n; i++) {
            int a = h->kinds[i], b = kind_of(c, i);
            if (a != EMPTY && b != EMPTY && a != b) {
                *first = DS_FIRST_LINE_SKIPPED;
                *why = "mixes numbers and text unlike the rows below";
            }
        }
    }
    c->p = p;
    c->line = line;
    return 0;
}

/* "150,4,setosa,..." : the first line's text, shortened, for a note. */
static void line_excerpt(const char *p, const char *end, char *buf, size_t cap)
{
    size_t n = 0;
    while (p + n < end && p[n] != '\n' && p[n] != '\r')
        n++;
    if (n + 1 > cap)
        snprintf(buf, cap, "%.*s...", (int)(cap - 4), p);
    else
        snprintf(buf, cap, "%.*s", (int)n, p);
}

/* Starts on the file's bytes data[0..size) (sep: the separator, 0 to detect it from the
 * first line) and reads what comes before the data: the column names, by mode. */
static ds_status read_header(csv *c, const unsigned char *data, size_t size, char sep,
                             ds_header_mode mode, header *h, ds_read_info *info)
{
    memset(h, 0, sizeof *h);
    if (memchr(data, 0, size))
        return dsi_fail(DS_ERR_FORMAT, "%s: holds binary data (a NUL byte), not CSV text",
                        c->path);
    c->p = (const char *)data;
    c->end = c->p + size;
    c->line = 1;
    if (size >= 3 && !memcmp(c->p, "\xEF\xBB\xBF", 3))   /* UTF-8 byte order mark */
        c->p += 3;
    if (!skip_to_record(c))
        return dsi_fail(DS_ERR_FORMAT, mode == DS_HEADER_NONE ? "%s: no rows (empty file)" :
                        "%s: no header line of column names (empty file)", c->path);
    c->sep = sep ? sep : detect_sep(c->p, c->end);
    const char *p0 = c->p;
    int line0 = c->line, r = next_record(c, &h->first_line);
    if (r < 0)
        return dsi_last_status();   /* a bad field, or out of memory */
    if (!copy_fields(c, h))
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", c->path);
    h->first = mode == DS_HEADER_NONE ? DS_FIRST_LINE_DATA : DS_FIRST_LINE_NAMES;
    const char *why = NULL;
    int nrow = h->n, g = mode == DS_HEADER_AUTO ? guess_first(c, h, &h->first, &why, &nrow) : 0;
    if (g == -1)
        return dsi_last_status();
    if (h->first == DS_FIRST_LINE_DATA) {   /* read it again, as a row */
        c->p = p0;
        c->line = line0;
    }
    if (g == -2 || (h->first != DS_FIRST_LINE_NAMES && !h->names_line && !number_names(h, nrow)))
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", c->path);
    if (info) {
        info->table = 1;
        info->first_line = h->first;
        info->guessed = mode == DS_HEADER_AUTO && h->first != DS_FIRST_LINE_NAMES;
        char text[48], then[96];
        line_excerpt(p0, c->end, text, sizeof text);
        if (h->names_line)
            snprintf(then, sizeof then, "skipped, and line %d names the columns", h->names_line);
        else
            snprintf(then, sizeof then, "%s, and the columns are named 1 to %d", h->first ==
                     DS_FIRST_LINE_DATA ? "read as data, not as column names" : "skipped: it is "
                     "neither column names nor data", h->n);
        if (info->guessed)
            snprintf(info->note, sizeof info->note, "%s:%d: the first line ('%s') %s, so it "
                     "is %s", c->path, h->first_line, text, why, then);
    }
    return DS_OK;
}

/* The columns to read when no list is given: those whose value on the first row is a number
 * (or empty), less the excluded. */
static ds_status default_columns(csv *c, const header *h, const bool *excl, int line, int *sel,
                                 int *nsel)
{
    float v;
    *nsel = 0;
    for (int i = 0; i < h->n; i++)
        if ((!excl || !excl[i]) && parse_num(field(c, i), &v))
            sel[(*nsel)++] = i;
    if (*nsel)
        return DS_OK;
    char list[400];
    dsi_columns_list(h->n, h->names, list, sizeof list);
    return dsi_fail(DS_ERR_FORMAT, "%s:%d: no column holds numbers%s (columns: %s)", c->path,
                    line, excl ? " besides those left out" : "", list);
}

/* Appends the selected fields of the current record to vals. */
static ds_status add_row(csv *c, const header *h, const int *sel, int nsel, int line,
                         float **vals, size_t *nvals, size_t *cap)
{
    if (*nvals + (size_t)nsel > *cap) {
        size_t ncap = *cap ? 2 * *cap : 1024;
        while (ncap < *nvals + (size_t)nsel)
            ncap *= 2;
        float *nv = realloc(*vals, ncap * sizeof *nv);
        if (!nv)
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory at line %d", c->path, line);
        *vals = nv;
        *cap = ncap;
    }
    for (int j = 0; j < nsel; j++) {
        const char *s = field(c, sel[j]);
        if (!parse_num(s, &(*vals)[(*nvals)++]))
            return dsi_fail(DS_ERR_FORMAT, "%s:%d: column '%.60s': '%.40s' is not a number",
                            c->path, line, h->names[sel[j]], s);
    }
    return DS_OK;
}

/* The rows of a table whose header h was read: every field count checked, the selected
 * columns (columns, or by default_columns) into out. */
static ds_status read_rows(csv *c, header *h, const char *columns, const char *exclude,
                           ds_tensor **out)
{
    int nsel = 0, *sel = NULL;
    bool *excl = NULL;
    float *vals = NULL;
    size_t nvals = 0, cap = 0;
    int64_t rows = 0;
    ds_status st = DS_OK;
    if (columns)
        st = dsi_columns_select(c->path, columns, h->n, h->names, &sel, &nsel);
    else if (exclude)
        st = dsi_columns_mask(c->path, exclude, h->n, h->names, &excl);
    while (st == DS_OK) {
        int line, r = next_record(c, &line);
        if (r <= 0) {
            st = r < 0 ? dsi_last_status() : DS_OK;
            break;
        }
        if (!h->row_line)
            h->row_line = line;
        if (c->nf != h->n) {
            if (h->first == DS_FIRST_LINE_NAMES)
                st = dsi_fail(DS_ERR_FORMAT, "%s:%d: %d fields, but the header names %d "
                              "columns", c->path, line, c->nf, h->n);
            else
                st = dsi_fail(DS_ERR_FORMAT, "%s:%d: %d fields, but the first row (line %d) "
                              "has %d", c->path, line, c->nf, h->row_line, h->n);
            break;
        }
        if (!sel && !(sel = malloc(((size_t)h->n + 1) * sizeof *sel)))
            st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", c->path);
        else if (!columns && rows == 0)
            st = default_columns(c, h, excl, line, sel, &nsel);
        if (st == DS_OK)
            st = add_row(c, h, sel, nsel, line, &vals, &nvals, &cap);
        rows++;
    }
    if (st == DS_OK && !rows && !columns)   /* no rows: every column not left out */
        for (int i = 0; i < h->n; i++)
            nsel += !excl || !excl[i];
    ds_tensor *t = st == DS_OK ? ds_tensor_create(2, (int64_t[]){rows, nsel}) : NULL;
    if (st == DS_OK && !t)
        st = DS_ERR_NOMEM;
    if (t && nvals)
        memcpy(t->data, vals, nvals * sizeof *vals);
    *out = t;
    free(vals);
    free(sel);
    free(excl);
    return st;
}

/* A gzipped file's text (*own, to free), or the bytes as they are. */
static ds_status plain_text(const unsigned char **data, size_t *size, const char *path,
                            unsigned char **own)
{
    *own = NULL;
    if (!dsi_is_gzip(*data, *size))
        return DS_OK;
    ds_status st = dsi_gunzip(*data, *size, path, 1, own, size);
    if (st == DS_OK)
        *data = *own;
    return st;
}

static const char *given(const char *s) { return s && *s ? s : NULL; }

ds_status dsi_csv_load_mem(const unsigned char *data, size_t size, const char *path, char sep,
                           const ds_read_opts *o, ds_tensor **out)
{
    *out = NULL;
    csv c = {.path = path};
    header h = {0};
    unsigned char *own;
    ds_status st = plain_text(&data, &size, path, &own);
    if (st == DS_OK)
        st = read_header(&c, data, size, sep, o ? o->header : DS_HEADER_AUTO, &h,
                         o ? o->info : NULL);
    if (st == DS_OK)
        st = read_rows(&c, &h, o ? given(o->columns) : NULL, o ? given(o->exclude) : NULL, out);
    if (st != DS_OK && o && o->info)
        memset(o->info, 0, sizeof *o->info);
    free_names(h.names, h.n);
    free(h.kinds);
    csv_free(&c);
    free(own);
    return st;
}

char *dsi_csv_columns_mem(const unsigned char *data, size_t size, const char *path, char sep,
                          const ds_read_opts *o)
{
    csv c = {.path = path};
    header h = {0};
    char *s = NULL;
    unsigned char *own;
    if (plain_text(&data, &size, path, &own) == DS_OK &&
        read_header(&c, data, size, sep, o ? o->header : DS_HEADER_AUTO, &h,
                    o ? o->info : NULL) == DS_OK)
        s = dsi_columns_join(h.n, h.names);
    if (!s && o && o->info)
        memset(o->info, 0, sizeof *o->info);
    free_names(h.names, h.n);
    free(h.kinds);
    csv_free(&c);
    free(own);
    return s;
}

/* ---- writing ---- */

static void put_name(FILE *fp, const char *s)
{
    size_t n = strlen(s);
    float v;
    /* quoted: what a reader would split or trim, and names that read as numbers (which
     * DS_HEADER_AUTO would take for data) */
    bool q = n == 0 || s[0] == '#' || s[0] == ' ' || s[n - 1] == ' ' ||
             strpbrk(s, ",;\t\"\r\n") != NULL || parse_num(s, &v);
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

/* Either data (row-major [nrows, ncols], named by names) or cols (ncols columns of nrows
 * numbers or strings). */
static ds_status write_table(const char *path, char sep, int ncols, const char *const *names,
                             int64_t nrows, const float *data, const ds_column *cols)
{
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, path);
    if (st != DS_OK)
        return st;
    for (int j = 0; j < ncols; j++) {
        if (j)
            fputc(sep, w.fp);
        const char *name = cols ? cols[j].name : names ? names[j] : NULL;
        if (name) {
            put_name(w.fp, name);
        } else {
            fprintf(w.fp, "col%d", j + 1);
        }
    }
    fputc('\n', w.fp);
    for (int64_t i = 0; i < nrows && !ferror(w.fp); i++) {
        for (int j = 0; j < ncols; j++) {
            if (j)
                fputc(sep, w.fp);
            if (cols && cols[j].s)
                put_name(w.fp, cols[j].s[i]);
            else
                fprintf(w.fp, "%.9g", (double)(data ? data[i * ncols + j] : cols[j].f[i]));
        }
        fputc('\n', w.fp);
    }
    return dsi_wfile_commit(&w);
}

ds_status dsi_csv_save(const ds_tensor *t, const char *path, char sep,
                       const char *const *colnames)
{
    if (t->ndim != 1 && t->ndim != 2)
        return dsi_fail(DS_ERR_SHAPE, "%s: a CSV file holds a table [rows, columns] or one "
                        "column (1-D), not shape %s", path, dsi_shape_str(t->ndim, t->shape));
    int64_t ncols = t->ndim == 2 ? t->shape[1] : 1;
    if (ncols < 1 || ncols > 1000000)
        return dsi_fail(DS_ERR_SHAPE, "%s: cannot write a table of %lld columns", path,
                        (long long)ncols);
    return write_table(path, sep, (int)ncols, colnames, t->shape[0], t->data, NULL);
}

ds_status dsi_csv_save_table(const char *path, char sep, int ncols, const ds_column *cols,
                             int64_t nrows)
{
    return write_table(path, sep, ncols, NULL, nrows, NULL, cols);
}
