/* data.c - the commands' named data: the NAME=FILE values of --data, --labels, --val,
 * --val-labels (and -o), loaded with their --columns (a glob, folder or @LIST loaded whole,
 * or opened as a stream for training), split for validation, matched to the model's inputs
 * and losses, and handed to the library as feeds. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_split_named(const char *v, char *name, size_t cap, const char **path)
{
    const char *eq = strchr(v, '=');
    name[0] = 0;
    *path = v;
    if (!eq || eq == v || memchr(v, '/', (size_t)(eq - v)))
        return;
    snprintf(name, cap, "%.*s", (int)(eq - v), v);
    *path = eq + 1;
}

const char *cli_named_value(const cli_cmd *c, const char *opt, const char *name)
{
    const char *const *v;
    int n = cli_values(c, opt, &v);
    const char *plain = NULL;
    for (int i = 0; i < n; i++) {
        char nm[CLI_NAME_MAX];
        const char *rest;
        cli_split_named(v[i], nm, sizeof nm, &rest);
        if (!nm[0])
            plain = v[i];
        else if (name && !strcmp(nm, name))
            return rest;
    }
    return plain;
}

int cli_named_list(const cli_cmd *c, const char *opt, cli_item *items, int *count)
{
    const char *const *v;
    int n = cli_values(c, opt, &v);
    *count = 0;
    for (int i = 0; i < n; i++) {
        cli_item *it = &items[i];
        memset(it, 0, sizeof *it);
        cli_split_named(v[i], it->name, sizeof it->name, &it->path);
        if (!*it->path)
            return cli_usage_error(c, "option '--%s': '%s' names no file", opt, v[i]);
        if (!it->name[0] && n > 1)
            return cli_usage_error(c, "option '--%s' given %d times: give NAME=FILE for each "
                                   "(NAME: %s)", opt, n, !strcmp(opt, "output") ? "an output"
                                   : strstr(opt, "labels") ? "a loss that reads labels"
                                   : "an input");
        for (int k = 0; k < i; k++)
            if (!strcmp(items[k].name, it->name))
                return cli_usage_error(c, "option '--%s': '%s' given twice", opt, it->name);
    }
    *count = n;
    return 0;
}

int cli_hdu(const cli_cmd *c, int *num, const char **name)
{
    const char *v = cli_get(c, "hdu");
    *num = 0;
    *name = NULL;
    if (!v)
        return 0;
    if (!*v || strspn(v, "0123456789+-") == strlen(v)) {   /* a number */
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < 1 || n > 100000)
            return cli_usage_error(c, "option '--hdu': '%s' is not an HDU: they are numbered "
                                   "from 1, the primary HDU, to 100000 (leave --hdu out to read "
                                   "the first HDU that holds data; or give an EXTNAME)", v);
        *num = (int)n;
        return 0;
    }
    *name = v;   /* an EXTNAME (or HDUNAME) */
    return 0;
}

int cli_read_options(const cli_cmd *c, cli_read_opts *r)
{
    memset(r, 0, sizeof *r);
    if (cli_has(c, "header") && cli_has(c, "no-header"))
        return cli_usage_error(c, "give --header or --no-header, not both");
    r->header = cli_has(c, "no-header") ? DS_HEADER_NONE
              : cli_has(c, "header") ? DS_HEADER_NAMES : DS_HEADER_AUTO;
    int rc = cli_hdu(c, &r->hdu, &r->hdu_name);
    return rc ? rc : cli_nan_option(c, &r->nan);
}

/* Whether files a and b are the same file (the same name, or the same inode). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return !strcmp(a, b) || (!stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev &&
                             sa.st_ino == sb.st_ino);
}

/* The --label-columns lists of the labels read from file path (itself a data file), joined
 * by commas into buf: the columns to leave out of its features. */
static void label_columns_of(const cli_cmd *c, const cli_data *d, const char *path, char *buf,
                             size_t cap)
{
    buf[0] = 0;
    if (!d->yopt) {   /* predict: every --label-columns names columns of the data file */
        const char *const *v;
        int n = cli_values(c, "label-columns", &v);
        for (int i = 0; i < n; i++) {
            char name[CLI_NAME_MAX];
            const char *cols;
            cli_split_named(v[i], name, sizeof name, &cols);
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", *buf ? "," : "", cols);
        }
        return;
    }
    for (int i = 0; i < d->ny; i++) {
        const char *cols = cli_named_value(c, "label-columns", d->y[i].name[0] ? d->y[i].name
                                                                                : NULL);
        if (cols && *cols && same_file(d->y[i].path, path))
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", *buf ? "," : "", cols);
    }
}

/* Prints what the reader assumed about path, once per file of the set. */
static void note_once(cli_data *d, const char *path, const ds_read_info *info)
{
    if (!info->note[0])
        return;
    for (int i = 0; i < d->n_noted; i++)
        if (!strcmp(d->noted[i], path))
            return;
    if (d->n_noted < 2 * DS_FEED_MAX)
        d->noted[d->n_noted++] = path;
    fprintf(stderr, "deepsky: note: %s (%s)\n", info->note, info->first_line ==
            DS_FIRST_LINE_DATA ? "--no-header says so; --header reads the line as column names"
            : "--header reads it as column names; --no-header as data");
}

bool cli_is_pattern(const char *path)
{
    struct stat sb;
    return path[0] == '@' || strpbrk(path, "*?[") ||
           (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
}

/* The read options of one item: the columns its name selects (colopt), exclude left out. */
static ds_read_opts item_opts(const cli_cmd *c, const cli_data *d, const char *colopt,
                              const char *exclude, const cli_item *it, ds_read_info *info)
{
    return (ds_read_opts){.columns = cli_named_value(c, colopt, it->name[0] ? it->name : NULL),
                          .hdu = d->ro.hdu, .hdu_name = d->ro.hdu_name, .header = d->ro.header,
                          .exclude = exclude, .info = info};
}

/* The files of a glob, folder or @LIST one after the other in one tensor. */
static ds_status load_whole(const char *files, const ds_read_opts *ro, ds_tensor **t)
{
    ds_stream_opts so = {.inputs = {{NULL, files, ro}}};
    ds_stream *s;
    ds_status st = ds_stream_open(&so, &s);
    if (!st)
        st = ds_stream_load(s, 0, 0, t);
    ds_stream_free(s);
    return st;
}

/* Loads one file (or the files of a pattern, whole) with the columns its name selects
 * (colopt), leaving out exclude. */
static int load_item(const cli_cmd *c, cli_data *d, const char *colopt, const char *exclude,
                     cli_item *it)
{
    ds_read_info info;
    ds_read_opts ro = item_opts(c, d, colopt, exclude, it, &info);
    if ((cli_is_pattern(it->path) ? load_whole(it->path, &ro, &it->t)
                                   : ds_array_load(it->path, &ro, &it->t)) != DS_OK)
        return cli_fail();
    note_once(d, it->path, &info);
    it->ndim0 = ds_tensor_ndim(it->t);
    memcpy(it->shape0, ds_tensor_shape(it->t), (size_t)it->ndim0 * sizeof *it->shape0);
    /* one image with one header: several files loaded whole have several */
    it->fits_image = info.hdu > 0 && !info.table && !cli_is_pattern(it->path);
    return 0;
}

/* Labels from other columns of a data file: one item per --label-columns value without a
 * labels file, taken from the only data file. */
static int labels_from_data(const cli_cmd *c, cli_data *d)
{
    const char *const *v;
    int n = cli_values(c, "label-columns", &v);
    if (n && d->nx != 1)
        return cli_usage_error(c, "--label-columns without --%s takes the labels from the data "
                               "file, but there are %d: give --%s", d->yopt, d->nx, d->yopt);
    for (int i = 0; i < n && d->ny < DS_FEED_MAX; i++) {
        cli_item *it = &d->y[d->ny++];
        memset(it, 0, sizeof *it);
        const char *cols;
        cli_split_named(v[i], it->name, sizeof it->name, &cols);
        it->path = d->x[0].path;
    }
    return 0;
}

/* Every NAME=VALUE of a per-name option (--columns) names one of the items. */
static int check_names(const cli_cmd *c, const char *opt, const cli_item *items, int count,
                       const char *list_opt)
{
    const char *const *v;
    int n = cli_values(c, opt, &v);
    for (int i = 0; i < n; i++) {
        char name[CLI_NAME_MAX];
        const char *rest;
        cli_split_named(v[i], name, sizeof name, &rest);
        int k = 0;
        while (name[0] && k < count && strcmp(items[k].name, name))
            k++;
        if (name[0] && k == count)
            return cli_usage_error(c, "option '--%s': no --%s NAME=FILE is named '%s'", opt,
                                   list_opt, name);
    }
    return 0;
}

/* The columns of --label-columns to leave out of data file i's features (none when
 * --columns names them) into excl. */
static void excluded(const cli_cmd *c, const cli_data *d, int i, char *excl, size_t cap)
{
    label_columns_of(c, d, d->x[i].path, excl, cap);
    if (cli_named_value(c, "columns", d->x[i].name[0] ? d->x[i].name : NULL))
        excl[0] = 0;   /* the features are the columns named */
}

/* The data files of d with their columns, those of --label-columns left out of the
 * features when no --columns names them. */
static int load_inputs(const cli_cmd *c, cli_data *d)
{
    if (!d->yopt && cli_has(c, "label-columns") && d->nx != 1)
        return cli_usage_error(c, "--label-columns names the label columns of the data file, "
                               "left out of the features, but there are %d data files: give "
                               "--columns NAME=COLS instead", d->nx);
    for (int i = 0; i < d->nx; i++) {
        char excl[1024];
        excluded(c, d, i, excl, sizeof excl);
        int rc = load_item(c, d, "columns", excl[0] ? excl : NULL, &d->x[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* The NAME=FILE values of a set and the options that say how to read them, before any
 * file is read. */
static int list_set(const cli_cmd *c, const char *xopt, const char *yopt, cli_data *d)
{
    memset(d, 0, sizeof *d);
    d->xopt = xopt;
    d->yopt = yopt;
    int rc = cli_named_list(c, xopt, d->x, &d->nx);
    if (!rc && yopt)
        rc = cli_named_list(c, yopt, d->y, &d->ny);
    if (!rc)
        rc = check_names(c, "columns", d->x, d->nx, xopt);
    if (!rc && yopt && d->ny)
        rc = check_names(c, "label-columns", d->y, d->ny, yopt);
    if (!rc)
        rc = cli_read_options(c, &d->ro);
    if (!rc && yopt && !d->ny)
        rc = labels_from_data(c, d);
    return rc;
}

int cli_load_set(const cli_cmd *c, const char *xopt, const char *yopt, cli_data *d)
{
    int rc = list_set(c, xopt, yopt, d);
    if (!rc)
        rc = load_inputs(c, d);
    for (int i = 0; !rc && i < d->ny; i++)
        rc = load_item(c, d, "label-columns", NULL, &d->y[i]);
    if (rc)
        return rc;
    if (d->nx == 1 && d->ny == 1 &&
        ds_tensor_shape(d->y[0].t)[0] != ds_tensor_shape(d->x[0].t)[0]) {
        int64_t nx = ds_tensor_shape(d->x[0].t)[0], ny = ds_tensor_shape(d->y[0].t)[0];
        fprintf(stderr, "deepsky: error: %s has %lld %s but %s has %lld %s\n", d->x[0].path,
                (long long)nx, cli_plural(nx, "sample", "samples"), d->y[0].path,
                (long long)ny, cli_plural(ny, "label", "labels"));
        return 1;
    }
    return cli_nan_drop(d);
}

void cli_data_free(cli_data *d)
{
    for (int i = 0; i < d->nx; i++)
        ds_tensor_free(d->x[i].t);
    d->nx = 0;
    cli_data_free_labels(d);
}

void cli_data_free_labels(cli_data *d)
{
    for (int i = 0; i < d->ny; i++)
        ds_tensor_free(d->y[i].t);
    d->ny = 0;
}

void cli_label_choices(const cli_data *d, ds_net_opts *o)
{
    int k = 0;
    for (int i = 0; d && i < d->ny; i++) {
        ds_label_mode mode = cli_label_mode_shape(d->y[i].ndim0, d->y[i].shape0);
        if (!d->y[i].name[0])
            o->labels = mode;
        else
            o->label_choices[k++] = (ds_label_choice){.loss = d->y[i].name, .mode = mode};
    }
}

/* The rows of t whose is_val byte is want, in order, as a new tensor; NULL: no memory. */
static ds_tensor *rows_where(const ds_tensor *t, const unsigned char *is_val, int want,
                             int64_t count)
{
    int nd = ds_tensor_ndim(t);
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, ds_tensor_shape(t), (size_t)nd * sizeof *shape);
    int64_t n = shape[0], per = ds_tensor_numel(t) / n;
    shape[0] = count;
    ds_tensor *r = ds_tensor_create(nd, shape);
    float *dst = r ? ds_tensor_data(r) : NULL;
    const float *src = ds_tensor_data((ds_tensor *)t);
    for (int64_t i = 0, k = 0; r && i < n; i++)
        if (is_val[i] == want)
            memcpy(dst + per * k++, src + per * i, (size_t)per * sizeof *dst);
    return r;
}

/* Splits every item of one list (inputs or labels) alike. */
static int split_items(cli_item *src, int count, const unsigned char *is_val,
                       const ds_split_info *info, cli_item *dst)
{
    for (int i = 0; i < count; i++) {
        ds_tensor *a = rows_where(src[i].t, is_val, 0, info->train);
        ds_tensor *b = rows_where(src[i].t, is_val, 1, info->val);
        if (!a || !b) {
            ds_tensor_free(a);
            ds_tensor_free(b);
            return cli_fail();
        }
        ds_tensor_free(src[i].t);
        src[i].t = a;
        dst[i] = src[i];
        dst[i].path = "validation split";
        dst[i].t = b;
    }
    return 0;
}

static void print_split(const ds_split_info *info, double fraction, bool last, uint64_t seed)
{
    int64_t n = info->train + info->val;
    printf("validation split: %lld of %lld %s (fraction %g), ", (long long)info->val,
           (long long)n, cli_plural(n, "sample", "samples"), fraction);
    if (last)
        printf("the last ones, in file order\n");
    else if (info->classes)
        printf("shuffled with seed %llu, by class (%lld %s)\n", (unsigned long long)seed,
               (long long)info->classes, cli_plural(info->classes, "class", "classes"));
    else
        printf("shuffled with seed %llu\n", (unsigned long long)seed);
}

int cli_split_set(const ds_net *n, cli_data *d, const ds_feed *f, const cli_split *how,
                  cli_data *val)
{
    int64_t N = ds_tensor_shape(d->x[0].t)[0];
    unsigned char *is_val = malloc((size_t)N + 1);
    ds_split_info info;
    if (!is_val || ds_net_split(n, f, how->fraction, how->last, how->seed, is_val, &info)) {
        free(is_val);
        if (!is_val)
            return cli_fail();
        fprintf(stderr, "deepsky: error: --%s %g: %s\n", how->last ? "val-split-last" : "val-split",
                how->fraction, ds_last_error());
        return 1;
    }
    int rc = cli_split_rows(d, is_val, &info, how, val);
    free(is_val);
    return rc;
}

int cli_split_rows(cli_data *d, const unsigned char *is_val, const ds_split_info *info,
                   const cli_split *how, cli_data *val)
{
    *val = *d;
    val->nx = val->ny = 0;
    int rc = split_items(d->x, d->nx, is_val, info, val->x);
    if (!rc)
        val->nx = d->nx;
    if (!rc && !(rc = split_items(d->y, d->ny, is_val, info, val->y)))
        val->ny = d->ny;
    if (!rc && !how->quiet)
        print_split(info, how->fraction, how->last, how->seed);
    return rc;
}

/* "1, 2, 5" (at most 8, then "..."): the classes with a count on one side only. */
static void class_list(const int64_t *mine, const int64_t *other, int64_t K, char *buf,
                       size_t cap, int *count)
{
    buf[0] = 0;
    *count = 0;
    for (int64_t c = 0; c < K; c++)
        if (mine[c] && !other[c] && (*count)++ < 8)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%lld", *count > 1 ? ", " : "",
                     (long long)c);
    if (*count > 8)
        snprintf(buf + strlen(buf), cap - strlen(buf), ", ...");
}

/* Samples per class of a feed into counts (K of them); false without classes. */
static bool class_counts(const ds_net *n, const ds_feed *f, int64_t N, int64_t *counts,
                         int64_t K)
{
    int64_t *cls = malloc((size_t)N * sizeof *cls), k = 0;
    bool ok = cls && !ds_net_sample_classes(n, f, cls, &k) && k == K;
    for (int64_t i = 0; ok && i < N; i++)
        counts[cls[i]]++;
    free(cls);
    return ok;
}

void cli_warn_classes(const ds_net *n, const cli_data *tr, const ds_feed *ft, const cli_data *va,
                      const ds_feed *fv)
{
    int64_t K = ds_net_classes(n);
    if (!K || !va->nx || !tr->ny || !va->ny)
        return;
    int64_t *ct = calloc((size_t)K, sizeof *ct), *cv = calloc((size_t)K, sizeof *cv);
    if (ct && cv && class_counts(n, ft, ds_tensor_shape(tr->x[0].t)[0], ct, K) &&
        class_counts(n, fv, ds_tensor_shape(va->x[0].t)[0], cv, K)) {
        char list[160];
        int count;
        class_list(ct, cv, K, list, sizeof list, &count);
        if (count)
            fprintf(stderr, "deepsky: warning: the validation labels have no sample of %s %s, "
                    "which the training labels have: validation does not measure %s\n",
                    cli_plural(count, "class", "classes"), list, count > 1 ? "them" : "it");
        class_list(cv, ct, K, list, sizeof list, &count);
        if (count)
            fprintf(stderr, "deepsky: warning: the validation labels have %s %s, which the "
                    "training labels never show\n", cli_plural(count, "class", "classes"), list);
    }
    free(ct);
    free(cv);
}

/* Whether samples of shape have[0..hn) fit samples of shape want[0..wn): the same sizes
 * once axes of size one are dropped, or (row) a table's row of as many values. */
static bool sample_fits(const int64_t *have, int hn, const int64_t *want, int wn, bool row)
{
    int64_t a[DS_MAX_DIMS], b[DS_MAX_DIMS], pa = 1, pb = 1;
    int na = 0, nb = 0;
    for (int i = 0; i < hn; i++) {
        pa *= have[i];
        if (have[i] != 1)
            a[na++] = have[i];
    }
    for (int i = 0; i < wn; i++) {
        pb *= want[i];
        if (want[i] != 1)
            b[nb++] = want[i];
    }
    if (row)
        return pa == pb;
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

int cli_fit_input(const ds_node *in, ds_tensor **x, const char *path)
{
    int nd = ds_node_ndim(in), tnd = ds_tensor_ndim(*x);
    const int64_t *want = ds_node_shape(in), *have = ds_tensor_shape(*x);
    if (tnd == nd)
        return 0;   /* checked in full by ds_net_check_data */
    int64_t shape[DS_MAX_DIMS];
    for (int i = 1; i < nd; i++)
        shape[i] = want[i];
    /* first reading: samples along the first axis (a table's rows may fill any shape);
     * second: the whole array as one sample (a single image for an HxW or 1xHxW input) */
    if (tnd >= 1 && sample_fits(have + 1, tnd - 1, want + 1, nd - 1, tnd == 2))
        shape[0] = have[0];
    else if (sample_fits(have, tnd, want + 1, nd - 1, false))
        shape[0] = 1;
    else
        shape[0] = -1;
    if (shape[0] >= 0 && ds_tensor_reshape(*x, nd, shape) == DS_OK)
        return 0;
    char a[96], b[96], c[120], s[96];
    int64_t per = 1;
    for (int i = 1; i < nd; i++)
        per *= want[i];
    ds_shape_str(tnd, have, a, sizeof a);
    ds_shape_str(nd - 1, want + 1, b, sizeof b);
    if (tnd == 2)   /* a table's rows fill any shape of as many values */
        snprintf(c, sizeof c, "%lld values", (long long)have[1]);
    else
        snprintf(c, sizeof c, "shape %s", ds_shape_str(tnd > 1 ? tnd - 1 : 0, have + 1, s,
                                                        sizeof s));
    fprintf(stderr, "deepsky: error: %s: data of shape %s does not fit the model's input '%s', "
            "which takes samples of shape %s (%lld values): read as %lld samples of %s, or as "
            "one sample of shape %s\n", path, a, ds_node_layer_name(in), b, (long long)per,
            (long long)(tnd ? have[0] : 1), c, a);
    return 1;
}

/* "img, meta" */
static void input_names(const ds_net *n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < ds_net_input_count(n); i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "",
                 ds_net_input_name(n, i));
}

static void target_names(const ds_net *n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < ds_net_target_count(n); i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "",
                 ds_net_target_name(n, i));
}

int cli_feed(const ds_net *n, cli_data *d, ds_feed *f)
{
    char list[512];
    memset(f, 0, sizeof *f);
    for (int i = 0; i < d->nx; i++) {
        cli_item *it = &d->x[i];
        if (!it->name[0] && ds_net_input_count(n) > 1) {
            input_names(n, list, sizeof list);
            fprintf(stderr, "deepsky: error: %s: the model has %d inputs (%s): give --%s "
                    "NAME=FILE for each\n", it->path, ds_net_input_count(n), list, d->xopt);
            return 1;
        }
        ds_node *in = NULL;
        for (int k = 0; k < ds_net_input_count(n); k++)
            if (!it->name[0] || !strcmp(it->name, ds_net_input_name(n, k)))
                in = in ? in : ds_net_input_at(n, k);
        if (in && cli_fit_input(in, &it->t, it->path))
            return 1;
        if (cli_nan_fill(d, it))
            return 1;
        f->inputs[i] = (ds_feed_item){it->name[0] ? it->name : NULL, it->t, it->path};
    }
    for (int i = 0; i < d->ny; i++) {
        cli_item *it = &d->y[i];
        if (!it->name[0] && ds_net_target_count(n) > 1) {
            target_names(n, list, sizeof list);
            fprintf(stderr, "deepsky: error: %s: the model has %d losses that read labels (%s): "
                    "give --%s NAME=FILE for each\n", it->path, ds_net_target_count(n), list,
                    d->yopt);
            return 1;
        }
        f->labels[i] = (ds_feed_item){it->name[0] ? it->name : NULL, it->t, it->path};
    }
    return 0;
}

/* ---- streams ---- */
bool cli_streams(const cli_cmd *c)
{
    const char *opts[] = {"data", "labels"};
    for (int k = 0; k < 2; k++) {
        const char *const *v;
        int n = cli_values(c, opts[k], &v);
        for (int i = 0; i < n; i++) {
            char name[CLI_NAME_MAX];
            const char *path;
            cli_split_named(v[i], name, sizeof name, &path);
            if (cli_is_pattern(path))
                return true;
        }
    }
    return false;
}

/* An item's shape as the stream reads it: [N, sample shape]. */
static void stream_shape(const ds_stream *s, int labels, int i, cli_item *it)
{
    int nd;
    int64_t shape[DS_MAX_DIMS];
    ds_stream_sample_shape(s, labels, i, &nd, shape);
    it->ndim0 = nd + 1;
    it->shape0[0] = ds_stream_samples(s);
    memcpy(it->shape0 + 1, shape, (size_t)nd * sizeof *shape);
}

int cli_open_stream(const cli_cmd *c, int64_t buffer, cli_data *d, ds_stream **out)
{
    *out = NULL;
    int rc = list_set(c, "data", "labels", d);
    if (rc)
        return rc;
    if (d->ro.nan.kind != CLI_NAN_ERROR)
        return cli_usage_error(c, "--nan: streamed data are neither filled nor dropped (the "
                               "values are checked as they are read); give files without "
                               "missing values");
    ds_stream_opts so = {.shuffle_buffer = buffer};
    ds_read_opts ro[2 * DS_FEED_MAX];
    ds_read_info info[2 * DS_FEED_MAX];
    char excl[DS_FEED_MAX][1024];
    for (int i = 0; i < d->nx; i++) {
        excluded(c, d, i, excl[i], sizeof excl[i]);
        ro[i] = item_opts(c, d, "columns", excl[i][0] ? excl[i] : NULL, &d->x[i], &info[i]);
        so.inputs[i] = (ds_stream_item){d->x[i].name[0] ? d->x[i].name : NULL, d->x[i].path,
                                        &ro[i]};
    }
    for (int i = 0; i < d->ny; i++) {
        ds_read_opts *r = &ro[DS_FEED_MAX + i];
        *r = item_opts(c, d, "label-columns", NULL, &d->y[i], &info[DS_FEED_MAX + i]);
        so.labels[i] = (ds_stream_item){d->y[i].name[0] ? d->y[i].name : NULL, d->y[i].path, r};
    }
    if (ds_stream_open(&so, out))
        return cli_fail();
    for (int i = 0; i < d->nx; i++) {
        note_once(d, d->x[i].path, &info[i]);
        stream_shape(*out, 0, i, &d->x[i]);
    }
    for (int i = 0; i < d->ny; i++) {
        note_once(d, d->y[i].path, &info[DS_FEED_MAX + i]);
        stream_shape(*out, 1, i, &d->y[i]);
    }
    return 0;
}

/* Item i's samples in the shape of the model's input in, as cli_fit_input reads an array
 * (samples along the first axis; a table's row fills any shape of as many values). */
static int fit_stream_input(const ds_node *in, ds_stream *s, int i, const char *path)
{
    int nd = ds_node_ndim(in), hn;
    const int64_t *want = ds_node_shape(in);
    int64_t have[DS_MAX_DIMS];
    ds_stream_sample_shape(s, 0, i, &hn, have);
    if (hn == nd - 1)
        return 0;   /* checked in full when training starts */
    if (sample_fits(have, hn, want + 1, nd - 1, hn == 1) &&
        ds_stream_reshape(s, 0, i, nd - 1, want + 1) == DS_OK)
        return 0;
    int64_t per = 1;
    for (int k = 1; k < nd; k++)
        per *= want[k];
    char a[96], b[96];
    fprintf(stderr, "deepsky: error: %s: samples of shape %s do not fit the model's input '%s', "
            "which takes samples of shape %s (%lld values)\n", path,
            ds_shape_str(hn, have, a, sizeof a), ds_node_layer_name(in),
            ds_shape_str(nd - 1, want + 1, b, sizeof b), (long long)per);
    return 1;
}

int cli_fit_stream(const ds_net *n, const cli_data *d, ds_stream *s)
{
    char list[512];
    for (int i = 0; i < d->nx; i++) {
        const cli_item *it = &d->x[i];
        if (!it->name[0] && ds_net_input_count(n) > 1) {
            input_names(n, list, sizeof list);
            fprintf(stderr, "deepsky: error: %s: the model has %d inputs (%s): give --%s "
                    "NAME=FILES for each\n", it->path, ds_net_input_count(n), list, d->xopt);
            return 1;
        }
        const ds_node *in = NULL;
        for (int k = 0; k < ds_net_input_count(n) && !in; k++)
            if (!it->name[0] || !strcmp(it->name, ds_net_input_name(n, k)))
                in = ds_net_input_at(n, k);
        if (in && fit_stream_input(in, s, i, it->path))
            return 1;   /* a name the model lacks: the library's message when training */
    }
    for (int i = 0; i < d->ny; i++)
        if (!d->y[i].name[0] && ds_net_target_count(n) > 1) {
            target_names(n, list, sizeof list);
            fprintf(stderr, "deepsky: error: %s: the model has %d losses that read labels (%s): "
                    "give --%s NAME=FILES for each\n", d->y[i].path, ds_net_target_count(n),
                    list, d->yopt);
            return 1;
        }
    return 0;
}
