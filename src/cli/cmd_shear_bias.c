/* cmd_shear_bias.c - deepsky shear-bias: m and c of the mean shear response from a simulator's
 * truth table(s) and the measured ellipticities (ds_shear_bias), optionally in bins, set
 * against Euclid's requirement. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define M_REQ 2e-3   /* Euclid: |m| < 2e-3, |c| < 5e-4 (Cropper et al. 2013) */
#define C_REQ 5e-4
#define MAX_BINS 64

/* The parameters the rows of a pair or shear cycle share: they reveal its groups. */
static const char *const shared_cols[] = {"n", "hlr", "flux", "snr", "psf_fwhm", "dx", "dy"};
#define N_SHARED (int)(sizeof shared_cols / sizeof shared_cols[0])

/* A truth table: every column, [rows, ncol], and the names. */
typedef struct {
    const char *path;
    ds_tensor *t;
    char **names;
    int ncol;
    int64_t rows;
} table;

static bool ends_with(const char *s, const char *ext)
{
    size_t n = strlen(s), e = strlen(ext);
    return n > e && !strcasecmp(s + n - e, ext);
}

static void table_free(table *tb)
{
    ds_tensor_free(tb->t);
    for (int j = 0; tb->names && j < tb->ncol; j++)
        free(tb->names[j]);
    free(tb->names);
}

static int col_index(const table *tb, const char *name)
{
    for (int j = 0; j < tb->ncol; j++)
        if (!strcasecmp(tb->names[j], name))
            return j;
    return -1;
}

static float at(const table *tb, int64_t i, int j) { return ds_tensor_data(tb->t)[i * tb->ncol + j]; }

/* The names of a table file (FITS, CSV), or those of ds_sim_columns() for a .npy array. */
static int table_names(table *tb, char ***names, int *ncol)
{
    const char *const *sim = ds_sim_columns();
    int k = 0;
    if (ends_with(tb->path, ".npy")) {
        while (sim[k])
            k++;
        *names = calloc((size_t)k, sizeof **names);
        for (int j = 0; *names && j < k; j++)
            (*names)[j] = strdup(sim[j]);
        *ncol = k;
        return *names ? 0 : 1;
    }
    char *list = ds_table_columns(tb->path, NULL), *save = NULL;
    if (!list)
        return cli_fail();
    *names = calloc(strlen(list) / 2 + 2, sizeof **names);
    for (char *tok = strtok_r(list, ",", &save); *names && tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        (*names)[k++] = strdup(tok);
    }
    free(list);
    *ncol = k;
    return *names ? 0 : 1;
}

/* Loads a truth table whole (every column, in the order of its names). */
static int load_truth(const char *path, table *tb)
{
    *tb = (table){.path = path};
    if (table_names(tb, &tb->names, &tb->ncol))
        return 1;
    size_t len = 1;
    for (int j = 0; j < tb->ncol; j++)
        len += strlen(tb->names[j]) + 1;
    char *cols = calloc(len, 1);
    for (int j = 0; cols && j < tb->ncol; j++)
        strcat(strcat(cols, j ? "," : ""), tb->names[j]);
    ds_read_opts o = {.columns = ends_with(path, ".npy") ? NULL : cols};
    ds_status st = cols ? ds_array_load(path, &o, &tb->t) : DS_ERR_NOMEM;
    free(cols);
    if (st != DS_OK)
        return cli_fail();
    const int64_t *sh = ds_tensor_shape(tb->t);
    if (ds_tensor_ndim(tb->t) != 2 || sh[1] != tb->ncol) {
        char s[128];
        ds_shape_str(ds_tensor_ndim(tb->t), sh, s, sizeof s);
        fprintf(stderr, "deepsky: error: %s: the truth array is %s, expected [rows, %d] with the "
                "columns of deepsky sim\n", path, s, tb->ncol);
        return 1;
    }
    tb->rows = sh[0];
    for (const char *const *need = (const char *const[]){"g1", "g2", NULL}; *need; need++)
        if (col_index(tb, *need) < 0) {
            fprintf(stderr, "deepsky: error: %s: the truth table has no column '%s' (a table of "
                    "deepsky sim with --shear or --shear-cycle has)\n", path, *need);
            return 1;
        }
    return 0;
}

/* The measured (e1, e2) of a table (columns by name or number) or a .npy [N, K] array
 * (columns by number, default the first two) into e[2 rows]. */
static int load_measured(const char *path, const char *cols, int64_t rows, float *e)
{
    ds_tensor *t = NULL;
    int c[2] = {0, 1};
    bool npy = ends_with(path, ".npy");
    if (npy && cols) {
        char *end;
        long a = strtol(cols, &end, 10), b = *end == ',' ? strtol(end + 1, &end, 10) : 0;
        if (*end || a < 1 || b < 1) {
            fprintf(stderr, "deepsky: error: %s: a .npy array has no column names: give "
                    "--columns as two column numbers from 1 (e.g. 1,2), not '%s'\n", path, cols);
            return 1;
        }
        c[0] = (int)a - 1, c[1] = (int)b - 1;
    }
    ds_read_opts o = {.columns = npy ? NULL : cols ? cols : "e1,e2"};
    if (ds_array_load(path, &o, &t) != DS_OK) {
        fprintf(stderr, "deepsky: error: %s%s\n", ds_last_error(),
                cols ? "" : " (--columns names the measured e1, e2)");
        return 1;
    }
    const int64_t *sh = ds_tensor_shape(t);
    int64_t k = ds_tensor_ndim(t) == 2 ? sh[1] : 0;
    int rc = 0;
    if (ds_tensor_ndim(t) != 2 || k <= (c[0] > c[1] ? c[0] : c[1]) || sh[0] != rows) {
        char s[128];
        ds_shape_str(ds_tensor_ndim(t), sh, s, sizeof s);
        fprintf(stderr, "deepsky: error: %s: the measurements are %s, expected [%lld, %d or more] "
                "(one row per truth row, columns %d and %d)\n", path, s, (long long)rows,
                (c[0] > c[1] ? c[0] : c[1]) + 1, c[0] + 1, c[1] + 1);
        rc = 1;
    }
    for (int64_t i = 0; !rc && i < rows; i++)
        for (int q = 0; q < 2; q++) {
            float v = ds_tensor_data(t)[i * k + c[q]];
            if (isinf(v)) {
                fprintf(stderr, "deepsky: error: %s: data row %lld: e%d = %g (NaN marks a failed "
                        "measurement; infinity is an error)\n", path, (long long)i + 1, q + 1, v);
                rc = 1;
                break;
            }
            e[2 * i + q] = v;
        }
    ds_tensor_free(t);
    return rc;
}

/* Whether rows [i, i + g) share every shared column the table has. */
static bool shares(const table *tb, int64_t i, int g)
{
    for (int s = 0; s < N_SHARED; s++) {
        int j = col_index(tb, shared_cols[s]);
        for (int64_t r = i + 1; j >= 0 && r < i + g; r++)
            if (at(tb, r, j) != at(tb, i, j) && !(isnan(at(tb, r, j)) && isnan(at(tb, i, j))))
                return false;
    }
    return true;
}

/* The largest group (8, 4, 2, else 1) whose rows share the galaxy's parameters. */
static int infer_group(const table *tb)
{
    int present = 0;
    for (int s = 0; s < N_SHARED; s++)
        present += col_index(tb, shared_cols[s]) >= 0;
    for (int g = 8; present && g > 1; g /= 2) {
        bool ok = tb->rows % g == 0;
        for (int64_t i = 0; ok && i < tb->rows; i += g)
            ok = shares(tb, i, g);
        if (ok)
            return g;
    }
    return 1;
}

static const char *group_name(int g)
{
    return g == 1 ? "single galaxies" : g == 2 ? "90-degree pairs" : g == 4 ? "shear cycles" :
           g == 8 ? "shear cycles of pairs" : "groups";
}

/* --bin COL[:E0,E1,...]: the column and the bin edges (ascending), or none (distinct
 * values). 0, or 2 after a usage error. */
static int parse_bin(const cli_cmd *c, char *col, size_t cap, double *edges, int *nedges)
{
    const char *v = cli_get(c, "bin"), *colon = v ? strchr(v, ':') : NULL;
    *nedges = 0;
    col[0] = 0;
    if (!v)
        return 0;
    snprintf(col, cap, "%.*s", (int)(colon ? colon - v : (long)strlen(v)), v);
    if (!col[0])
        return cli_usage_error(c, "option '--bin': '%s' names no column (COL or COL:E0,E1,...)", v);
    for (const char *s = colon; s; s = strchr(s + 1, ',')) {
        char *end;
        errno = 0;
        double x = strtod(s + 1, &end);
        if (errno || end == s + 1 || (*end && *end != ',') || !isfinite(x) ||
            (*nedges && !(x > edges[*nedges - 1])) || *nedges > MAX_BINS)
            return cli_usage_error(c, "option '--bin': '%s' is not COL:E0,E1,... with at most %d "
                                   "increasing edges", v, MAX_BINS + 1);
        edges[(*nedges)++] = x;
    }
    if (colon && *nedges < 2)
        return cli_usage_error(c, "option '--bin': '%s' needs at least two edges", v);
    return 0;
}

typedef struct {
    double lo, hi;           /* [lo, hi) ([lo, hi] for the last); lo = hi: exact; NaN: all */
    ds_shear_bias_result r;
    ds_status st;
    char err[256];
} bin_result;

/* The bin of each group (-1: outside) from its first row's value v. */
static int bin_of(double v, const bin_result *b, int nb, bool exact)
{
    for (int k = 0; k < nb; k++)
        if (exact ? v == b[k].lo
                  : v >= b[k].lo && (v < b[k].hi || (k == nb - 1 && v == b[k].hi)))
            return k;
    return -1;
}

/* The bins: from the edges, else each distinct value of the groups (first rows). */
static int make_bins(const char *col, const float *val, int64_t ngr, const double *edges,
                     int nedges, bin_result *b, int *nb)
{
    *nb = 0;
    if (!col[0]) {
        b[(*nb)++] = (bin_result){.lo = NAN, .hi = NAN};
        return 0;
    }
    for (int k = 0; k + 1 < nedges; k++)
        b[(*nb)++] = (bin_result){.lo = edges[k], .hi = edges[k + 1]};
    for (int64_t j = 0; !nedges && j < ngr; j++) {
        if (isnan(val[j]) || bin_of(val[j], b, *nb, true) >= 0)
            continue;
        if (*nb == MAX_BINS) {
            fprintf(stderr, "deepsky: error: --bin %s: the column has more than %d distinct "
                    "values: give edges (--bin %s:E0,E1,...)\n", col, MAX_BINS, col);
            return 1;
        }
        int k = (*nb)++;
        while (k > 0 && b[k - 1].lo > val[j]) {   /* kept sorted */
            b[k] = b[k - 1];
            k--;
        }
        b[k] = (bin_result){.lo = val[j], .hi = val[j]};
    }
    return 0;
}

/* Fits each bin from the rows of its groups. */
static void fit_bins(const float *e, const float *g, const int *gbin, int64_t ngr, int grp,
                     const ds_shear_bias_opts *o, bin_result *b, int nb, float *se, float *sg)
{
    for (int k = 0; k < nb; k++) {
        int64_t n = 0;
        for (int64_t j = 0; j < ngr; j++)
            if (gbin[j] == k) {
                memcpy(se + 2 * n, e + 2 * j * grp, sizeof *se * 2 * (size_t)grp);
                memcpy(sg + 2 * n, g + 2 * j * grp, sizeof *sg * 2 * (size_t)grp);
                n += grp;
            }
        if (!n) {
            b[k].st = DS_ERR_ARG;
            snprintf(b[k].err, sizeof b[k].err, "no galaxies");
            continue;
        }
        b[k].st = ds_shear_bias(se, sg, n, o, &b[k].r);
        if (b[k].st != DS_OK)
            snprintf(b[k].err, sizeof b[k].err, "%s", ds_last_error());
    }
}

static void bin_label(const char *col, const bin_result *b, char *s, size_t cap)
{
    if (isnan(b->lo))
        snprintf(s, cap, "all");
    else if (b->lo == b->hi)
        snprintf(s, cap, "%s = %g", col, b->lo);
    else
        snprintf(s, cap, "%s [%g, %g%c", col, b->lo, b->hi, ')');
}

/* The table, then what it says against Euclid's requirement. */
static void print_bins(const char *col, const bin_result *b, int nb)
{
    char lab[96];
    printf("%-22s %9s %8s  %-20s %-20s %-20s %-20s\n", "bin", "galaxies", "dropped",
           "m1", "m2", "c1", "c2");
    for (int k = 0; k < nb; k++) {
        bin_label(col, &b[k], lab, sizeof lab);
        if (b[k].st != DS_OK) {
            printf("%-22s %9s %8s  (no fit: %s)\n", lab, "-", "-", b[k].err);
            continue;
        }
        const ds_shear_bias_result *r = &b[k].r;
        printf("%-22s %9lld %8lld  %+.5f +- %.5f   %+.5f +- %.5f   %+.2e +- %.1e   "
               "%+.2e +- %.1e\n", lab, (long long)r->rows, (long long)r->dropped_rows, r->m[0],
               r->m_err[0], r->m[1], r->m_err[1], r->c[0], r->c_err[0], r->c[1], r->c_err[1]);
    }
    printf("Euclid requires |m| < 2e-3 and |c| < 5e-4 (Cropper et al. 2013):\n");
    for (int k = 0; k < nb; k++) {
        if (b[k].st != DS_OK)
            continue;
        const ds_shear_bias_result *r = &b[k].r;
        bin_label(col, &b[k], lab, sizeof lab);
        double me = fmax(r->m_err[0], r->m_err[1]), ce = fmax(r->c_err[0], r->c_err[1]);
        double ma = fmax(fabs(r->m[0]), fabs(r->m[1])), ca = fmax(fabs(r->c[0]), fabs(r->c[1]));
        printf("  %s: ", lab);
        if (me > M_REQ)
            printf("m's error bar (%.2g) is larger than 2e-3: too few galaxies to test it", me);
        else
            printf("|m| %s 2e-3 (max %.2g +- %.2g)", ma < M_REQ ? "<" : ">=", ma, me);
        if (ce > C_REQ)
            printf("; c's error bar (%.2g) is larger than 5e-4: too few to test it\n", ce);
        else
            printf("; |c| %s 5e-4 (max %.2g +- %.2g)\n", ca < C_REQ ? "<" : ">=", ca, ce);
    }
}

static int write_bins(const char *path, const bin_result *b, int nb)
{
    static const char *const names[] = {"bin_lo", "bin_hi", "galaxies", "groups", "dropped",
                                        "m1", "m1_err", "m2", "m2_err", "c1", "c1_err",
                                        "c2", "c2_err"};
    enum { NC = sizeof names / sizeof names[0] };
    float v[NC][MAX_BINS];
    const float *cp[NC];
    for (int k = 0; k < nb; k++) {
        const ds_shear_bias_result *r = &b[k].r;
        bool ok = b[k].st == DS_OK;
        double x[NC] = {b[k].lo, b[k].hi, (double)r->rows, (double)r->groups,
                        (double)r->dropped_rows, r->m[0], r->m_err[0], r->m[1], r->m_err[1],
                        r->c[0], r->c_err[0], r->c[1], r->c_err[1]};
        for (int q = 0; q < NC; q++)
            v[q][k] = (float)(ok || q < 2 ? x[q] : NAN);
    }
    for (int q = 0; q < NC; q++)
        cp[q] = v[q];
    if (ds_table_save(path, NC, names, nb, cp) != DS_OK)
        return cli_fail();
    printf("wrote %s [%d %s]\n", path, nb, cli_plural(nb, "row", "rows"));
    return 0;
}

/* The options that pick the files and groups; 0, or 2 after a usage error. */
static int check_options(const cli_cmd *c, long *group, long *boot, long *seed)
{
    const char *const *tv, *const *mv;
    int nt = cli_values(c, "truth", &tv), nm = cli_values(c, "measured", &mv);
    if (!nt || nt != nm)
        return cli_usage_error(c, "give --truth TABLE and --measured TABLE (as many of each: "
                               "%d and %d)", nt, nm);
    const char *o = cli_get(c, "output");
    if (o && !ends_with(o, ".csv") && !ends_with(o, ".fits"))
        return cli_usage_error(c, "-o %s: the table is written as .csv or .fits", o);
    const char *g = cli_get(c, "group");
    if (g && !strcmp(g, "auto"))
        *group = 0;
    else if (!cli_long(c, "group", 1, 1 << 20, 0, group))
        return 2;
    if (!cli_long(c, "boot", 2, 1000000, 1000, boot) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, seed) || !cli_threads(c))
        return 2;
    return 0;
}

/* The truth tables' shears, the measurements, the group and the bin value of each group. */
typedef struct {
    float *e, *g, *val;
    int64_t rows;
    int grp;
    bool inferred;
} dataset;

/* Checks one file pair and appends it to d; 0 or 1 (printed). */
static int add_files(const cli_cmd *c, const char *tpath, const char *mpath, long group,
                     const char *bincol, dataset *d)
{
    table tb;
    int rc = load_truth(tpath, &tb);
    int jb = bincol[0] ? col_index(&tb, bincol) : -1;
    if (!rc && bincol[0] && jb < 0) {
        fprintf(stderr, "deepsky: error: --bin: %s has no column '%s'\n", tpath, bincol);
        rc = 1;
    }
    int grp = group ? (int)group : rc ? 1 : infer_group(&tb);
    if (!rc && tb.rows % grp) {
        fprintf(stderr, "deepsky: error: %s: %lld rows are not a whole number of groups of %d "
                "(--group)\n", tpath, (long long)tb.rows, grp);
        rc = 1;
    } else if (!rc && d->rows && grp != d->grp) {
        fprintf(stderr, "deepsky: error: %s: its rows form groups of %d (inferred), those of the "
                "files before groups of %d: give --group\n", tpath, grp, d->grp);
        rc = 1;
    }
    float *e = rc ? NULL : realloc(d->e, sizeof *e * 2 * (size_t)(d->rows + tb.rows));
    float *g = e ? realloc(d->g, sizeof *g * 2 * (size_t)(d->rows + tb.rows)) : NULL;
    float *val = g ? realloc(d->val, sizeof *val * (size_t)((d->rows + tb.rows) / grp)) : NULL;
    if (e)
        d->e = e;
    if (g)
        d->g = g;
    if (val)
        d->val = val;
    if (!rc && !val) {
        fprintf(stderr, "deepsky: error: out of memory for %lld rows\n", (long long)tb.rows);
        rc = 1;
    }
    if (!rc)
        rc = load_measured(mpath, cli_get(c, "columns"), tb.rows, d->e + 2 * d->rows);
    int j1 = col_index(&tb, "g1"), j2 = col_index(&tb, "g2");
    for (int64_t i = 0; !rc && i < tb.rows; i++) {
        float g1 = at(&tb, i, j1), g2 = at(&tb, i, j2);
        if (!(hypot(g1, g2) < 1)) {
            fprintf(stderr, "deepsky: error: %s: data row %lld: shear (g1, g2) = (%g, %g) is not "
                    "finite with |g| < 1\n", tpath, (long long)i + 1, g1, g2);
            rc = 1;
        }
        d->g[2 * (d->rows + i)] = g1;
        d->g[2 * (d->rows + i) + 1] = g2;
        if (i % grp == 0)
            d->val[(d->rows + i) / grp] = jb >= 0 ? at(&tb, i, jb) : 0;
    }
    if (!rc) {
        d->rows += tb.rows;
        d->grp = grp;
        d->inferred = !group;
    }
    table_free(&tb);
    return rc;
}

int cmd_shear_bias(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPTS("truth", 0, "TABLE", "truth table of deepsky sim (FITS, CSV or .npy): g1, g2 and "
                 "the parameters; repeat with --measured for several files"),
        CLI_OPTS("measured", 0, "TABLE", "the measured ellipticities, one row per truth row (CSV, "
                 "FITS or .npy; deepsky measure or predict output); NaN: failed"),
        CLI_OPT("columns", 0, "E1,E2", "the measured table's columns, names or numbers from 1 "
                "(default e1,e2; the first two of a .npy array)"),
        CLI_OPT("bin", 0, "COL[:EDGES]", "bins by a truth column: edges (snr:10,20,40,80) or one "
                "per distinct value (snr); a group goes by its first row"),
        CLI_OPT("group", 0, "N", "rows per galaxy group, the bootstrap unit (default auto: 8, 4, "
                "2 or 1, inferred from the parameters the rows share)"),
        CLI_OPT("boot", 0, "B", "bootstrap resamples of the groups (default 1000)"),
        CLI_OPT("seed", 0, "S", "seed of the bootstrap (default 0)"),
        CLI_OPT("output", 'o', "TABLE", "also write the table (.csv or .fits)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores; same result for any)"),
    };
    cli_cmd c = {"shear-bias", "--truth TRUTH --measured MEAS [--bin snr:10,20,40,80] [-o OUT]",
                 "Fits e = (1 + m) g + c per component (e1 on g1, e2 on g2) to the measured\n"
                 "ellipticities of sheared galaxies (deepsky sim --shear-cycle or --shear, with\n"
                 "--pairs), with errors from a bootstrap over the galaxy groups (pairs, cycles).\n"
                 "A failed measurement (NaN) drops its whole group. The output says where the\n"
                 "error bars are too large to test Euclid's |m| < 2e-3 and |c| < 5e-4.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 0, 0};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long group, boot, seed;
    char bincol[64];
    double edges[MAX_BINS + 2];
    int nedges;
    if ((rc = check_options(&c, &group, &boot, &seed)) ||
        (rc = parse_bin(&c, bincol, sizeof bincol, edges, &nedges)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    const char *const *tv, *const *mv;
    int nf = cli_values(&c, "truth", &tv);
    cli_values(&c, "measured", &mv);
    cli_files files = {0};
    cli_files_inputs(&files, &c, "truth");
    cli_files_inputs(&files, &c, "measured");
    cli_files_output(&files, "-o", cli_get(&c, "output"));
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    dataset d = {0};
    for (int f = 0; f < nf && !rc; f++)
        rc = add_files(&c, tv[f], mv[f], group, bincol, &d);
    bin_result *b = calloc(MAX_BINS, sizeof *b);
    int *gbin = NULL, nb = 0;
    float *se = NULL, *sg = NULL;
    if (!rc && (!b || !(gbin = malloc(sizeof *gbin * (size_t)(d.rows / d.grp))) ||
                !(se = malloc(sizeof *se * 2 * (size_t)d.rows)) ||
                !(sg = malloc(sizeof *sg * 2 * (size_t)d.rows)))) {
        fprintf(stderr, "deepsky: error: out of memory for %lld rows\n", (long long)d.rows);
        rc = 1;
    }
    const int64_t ngr = d.rows / (d.grp ? d.grp : 1);
    if (!rc)
        rc = make_bins(bincol, d.val, ngr, edges, nedges, b, &nb);
    if (!rc) {
        int64_t outside = 0;
        for (int64_t j = 0; j < ngr; j++)
            outside += (gbin[j] = bincol[0] ? bin_of(d.val[j], b, nb, !nedges) : 0) < 0;
        ds_shear_bias_opts o = {d.grp, (int)boot, (uint64_t)seed};
        fit_bins(d.e, d.g, gbin, ngr, d.grp, &o, b, nb, se, sg);
        printf("shear bias of %lld galaxies in %d %s, %s of %d rows (%s), %ld bootstrap "
               "resamples (seed %ld)\n", (long long)d.rows, nf, cli_plural(nf, "file", "files"),
               group_name(d.grp), d.grp, d.inferred ? "inferred" : "--group", boot, seed);
        if (outside)
            printf("%lld galaxies lie outside the bins of %s\n", (long long)outside * d.grp,
                   bincol);
        print_bins(bincol, b, nb);
        int ok = 0;
        for (int k = 0; k < nb; k++)
            ok += b[k].st == DS_OK;
        if (!ok) {
            fprintf(stderr, "deepsky: error: no bin could be fitted: %s\n", b[0].err);
            rc = 1;
        } else if (cli_get(&c, "output")) {
            rc = write_bins(cli_get(&c, "output"), b, nb);
        }
    }
    free(d.e);
    free(d.g);
    free(d.val);
    free(b);
    free(gbin);
    free(se);
    free(sg);
    return rc;
}
