/* missing.c - the command line's missing values (--nan): NaN in data files and FITS BLANK
 * pixels dropped with their samples, or filled with a value or a mean; labels may only
 * be dropped. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NAN_HINT "--nan fill:VALUE, --nan mean or --nan drop-samples handles missing values"

int cli_nan_option(const cli_cmd *c, cli_nan *n)
{
    const char *v = cli_get(c, "nan");
    memset(n, 0, sizeof *n);
    if (!v)
        return 0;
    if (!strcmp(v, "mean")) {
        n->kind = CLI_NAN_MEAN;
    } else if (!strcmp(v, "drop-samples")) {
        n->kind = CLI_NAN_DROP;
    } else if (!strncmp(v, "fill:", 5)) {
        char *end;
        errno = 0;
        double x = strtod(v + 5, &end);
        if (end == v + 5 || *end || errno || !isfinite(x) || fabs(x) > 3.4e38)
            return cli_usage_error(c, "option '--nan': '%s' is not a finite number", v + 5);
        n->kind = CLI_NAN_FILL;
        n->value = (float)x;
    } else {
        return cli_usage_error(c, "option '--nan': '%s' is not fill:VALUE, mean or "
                               "drop-samples", v);
    }
    return 0;
}

/* The first NaN or Inf of t as an error naming path, with hint for a NaN (or NULL). */
static int check_finite(const ds_tensor *t, const char *path, const char *hint)
{
    if (ds_tensor_check_finite(t, path) == DS_OK)
        return 0;
    bool is_nan = strstr(ds_last_error(), " NaN") != NULL;
    fprintf(stderr, "deepsky: error: %s%s%s\n", ds_last_error(), is_nan && hint ? "; " : "",
            is_nan && hint ? hint : "");
    return 1;
}

static int64_t samples(const ds_tensor *t)
{
    return ds_tensor_ndim(t) ? ds_tensor_shape(t)[0] : 1;
}

/* Marks in bad[] the samples of t that hold a NaN. */
static void mark_nan(ds_tensor *t, bool *bad)
{
    int64_t n = samples(t), per = n ? ds_tensor_numel(t) / n : 0;
    const float *x = ds_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < per && !bad[i]; k++)
            bad[i] = isnan(x[i * per + k]);
}

/* t without the samples marked bad (keep of them stay). */
static int drop_rows(cli_item *it, const bool *bad, int64_t keep)
{
    ds_tensor *t = it->t;
    int nd = ds_tensor_ndim(t);
    int64_t shape[DS_MAX_DIMS], n = samples(t), per = ds_tensor_numel(t) / (n ? n : 1);
    memcpy(shape, ds_tensor_shape(t), (size_t)nd * sizeof *shape);
    shape[0] = keep;
    ds_tensor *r = ds_tensor_create(nd, shape);
    if (!r)
        return cli_fail();
    const float *x = ds_tensor_data(t);
    float *y = ds_tensor_data(r);
    for (int64_t i = 0, k = 0; i < n; i++)
        if (!bad[i])
            memcpy(y + k++ * per, x + i * per, (size_t)per * sizeof *y);
    ds_tensor_free(t);
    it->t = r;
    return 0;
}

/* --nan drop-samples: the samples with a NaN in any file of d, out of every file. */
static int drop_samples(cli_data *d)
{
    int64_t n = samples(d->x[0].t);
    cli_item *all[2 * DS_FEED_MAX];
    int count = 0;
    for (int i = 0; i < d->nx; i++)
        all[count++] = &d->x[i];
    for (int i = 0; i < d->ny; i++)
        all[count++] = &d->y[i];
    for (int i = 0; i < count; i++)
        if (ds_tensor_ndim(all[i]->t) < 1 || samples(all[i]->t) != n) {
            fprintf(stderr, "deepsky: error: --nan drop-samples: %s has %lld samples but %s "
                    "has %lld\n", d->x[0].path, (long long)n, all[i]->path,
                    (long long)samples(all[i]->t));
            return 1;
        }
    bool *bad = calloc((size_t)n + 1, sizeof *bad);
    if (!bad)
        return cli_fail();
    for (int i = 0; i < count; i++)
        mark_nan(all[i]->t, bad);
    int64_t drop = 0;
    char list[160] = "";
    for (int64_t i = 0; i < n; i++)
        if (bad[i] && ++drop <= 8)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%lld",
                     drop > 1 ? ", " : "", (long long)i);
    int rc = 0;
    for (int i = 0; drop && i < count && !rc; i++)
        rc = drop_rows(all[i], bad, n - drop);
    free(bad);
    if (drop && !rc)
        fprintf(stderr, "deepsky: note: --nan drop-samples: left out %lld of %lld samples that "
                "hold NaN (samples %s%s, counted from 0)\n", (long long)drop, (long long)n,
                list, drop > 8 ? ", ..." : "");
    return rc;
}

int cli_nan_drop(cli_data *d)
{
    int rc = d->ro.nan.kind == CLI_NAN_DROP && d->nx ? drop_samples(d) : 0;
    for (int i = 0; !rc && i < d->ny; i++)
        rc = check_finite(d->y[i].t, d->y[i].path, "missing labels are not filled: --nan "
                          "drop-samples leaves out their samples");
    return rc;
}

/* The mean of the finite values x[start + k * stride], k < n; false if there are none. */
static bool finite_mean(const float *x, int64_t start, int64_t n, int64_t stride, float *mean)
{
    double s = 0;
    int64_t m = 0;
    for (int64_t k = 0; k < n; k++) {
        float v = x[start + k * stride];
        if (isfinite(v))
            s += v, m++;
    }
    *mean = m ? (float)(s / (double)m) : 0;
    return m > 0;
}

/* Each NaN of a group (elements start + k * stride, k < n) replaced by the group's mean. */
static bool fill_group(float *x, int64_t start, int64_t n, int64_t stride)
{
    bool any = false;
    for (int64_t k = 0; k < n && !any; k++)
        any = isnan(x[start + k * stride]);
    float mean;
    if (!any)
        return true;
    if (!finite_mean(x, start, n, stride, &mean))
        return false;
    for (int64_t k = 0; k < n; k++)
        if (isnan(x[start + k * stride]))
            x[start + k * stride] = mean;
    return true;
}

/* --nan mean: a feature's mean over the samples when each sample is a row of features
 * (rank 2), else the mean of the image (the last two axes, per sample and channel). */
static int fill_mean(cli_item *it)
{
    ds_tensor *t = it->t;
    int nd = ds_tensor_ndim(t);
    const int64_t *sh = ds_tensor_shape(t);
    float *x = ds_tensor_data(t);
    int64_t numel = ds_tensor_numel(t);
    if (nd <= 2) {
        int64_t n = nd ? sh[0] : 1, f = nd == 2 ? sh[1] : 1;
        for (int64_t j = 0; j < f; j++)
            if (!fill_group(x, j, n, f)) {
                fprintf(stderr, "deepsky: error: --nan mean: %s: feature %lld has no finite "
                        "value to take the mean of\n", it->path, (long long)j + 1);
                return 1;
            }
        return 0;
    }
    int64_t plane = sh[nd - 1] * sh[nd - 2];
    for (int64_t p = 0; plane && p < numel / plane; p++)
        if (!fill_group(x, p * plane, plane, 1)) {
            fprintf(stderr, "deepsky: error: --nan mean: %s: image %lld (sample %lld) has no "
                    "finite pixel to take the mean of\n", it->path, (long long)p,
                    (long long)(p * plane / (numel / sh[0])));
            return 1;
        }
    return 0;
}

int cli_nan_fill(const cli_data *d, cli_item *it)
{
    if (d->ro.nan.kind == CLI_NAN_FILL) {
        float *x = ds_tensor_data(it->t);
        for (int64_t i = 0; i < ds_tensor_numel(it->t); i++)
            if (isnan(x[i]))
                x[i] = d->ro.nan.value;
    } else if (d->ro.nan.kind == CLI_NAN_MEAN && fill_mean(it)) {
        return 1;
    }
    return check_finite(it->t, it->path, d->ro.nan.kind == CLI_NAN_ERROR ? NAN_HINT : NULL);
}
