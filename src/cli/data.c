/* data.c - the commands' named data: the NAME=FILE values of --data, --labels, --val,
 * --val-labels (and -o), loaded with their --columns, split for validation, matched to the
 * model's inputs and losses, and handed to the library as feeds. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Loads one file with the columns its name selects, and checks its values. */
static int load_item(const cli_cmd *c, const char *colopt, int hdu, cli_item *it)
{
    ds_read_opts ro = {.columns = cli_named_value(c, colopt, it->name[0] ? it->name : NULL),
                       .hdu = hdu};
    if (ds_array_load(it->path, &ro, &it->t) != DS_OK ||
        ds_tensor_check_finite(it->t, it->path) != DS_OK)
        return cli_fail();
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

int cli_load_set(const cli_cmd *c, const char *xopt, const char *yopt, cli_data *d)
{
    long hdu;
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
    if (rc)
        return rc;
    if (!cli_long(c, "hdu", 0, 100000, 0, &hdu))
        return 2;
    for (int i = 0; i < d->nx; i++)
        if ((rc = load_item(c, "columns", (int)hdu, &d->x[i])))
            return rc;
    if (yopt && !d->ny && (rc = labels_from_data(c, d)))
        return rc;
    for (int i = 0; i < d->ny; i++)
        if ((rc = load_item(c, "label-columns", (int)hdu, &d->y[i])))
            return rc;
    if (d->nx == 1 && d->ny == 1 &&
        ds_tensor_shape(d->y[0].t)[0] != ds_tensor_shape(d->x[0].t)[0]) {
        int64_t nx = ds_tensor_shape(d->x[0].t)[0], ny = ds_tensor_shape(d->y[0].t)[0];
        fprintf(stderr, "deepsky: error: %s has %lld %s but %s has %lld %s\n", d->x[0].path,
                (long long)nx, cli_plural(nx, "sample", "samples"), d->y[0].path,
                (long long)ny, cli_plural(ny, "label", "labels"));
        return 1;
    }
    return 0;
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
        ds_label_mode mode = cli_label_mode(d->y[i].t);
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
    *val = *d;
    val->nx = val->ny = 0;
    int rc = split_items(d->x, d->nx, is_val, &info, val->x);
    if (!rc)
        val->nx = d->nx;
    if (!rc && !(rc = split_items(d->y, d->ny, is_val, &info, val->y)))
        val->ny = d->ny;
    free(is_val);
    if (!rc && !how->quiet)
        print_split(&info, how->fraction, how->last, how->seed);
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
