/* predict_uq.c - predict --mc N and ensembles (several --weights): the mean and standard
 * deviation of every output, and with --samples every draw, in each format's layout. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FITS_MAX_COLUMNS 999   /* TFIELDS of a FITS binary table */

static bool ends_with(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);
    if (n > 3 && !strcasecmp(path + n - 3, ".gz"))
        n -= 3;
    return n > k && !strncasecmp(path + n - k, ext, k);
}

static bool is_fits(const char *path)
{
    return ends_with(path, ".fits") || ends_with(path, ".fit") || ends_with(path, ".fts");
}

/* The parts of a pooled output in the order they are written: mean, std, then for a
 * gaussian_nll output std_aleatoric and std_epistemic. Their count. */
static int parts(const ds_uq_output *u, ds_tensor **t)
{
    t[0] = u->mean;
    t[1] = u->std;
    t[2] = u->std_aleatoric;
    t[3] = u->std_epistemic;
    return u->std_aleatoric ? 4 : 2;
}

static const char *const part_names[] = {"mean", "std", "std_aleatoric", "std_epistemic"};

/* A table of ncols columns of nrows values (cols[j] filled by the caller), written by
 * extension: FITS binary table, CSV or TSV. 0, or 1 after printing. */
typedef struct {
    int64_t ncols, nrows;
    char (*names)[80];
    const char **np;
    float **cols;
} table;

static int table_alloc(table *t, int64_t ncols, int64_t nrows, const char *path, const char *opt)
{
    *t = (table){.ncols = ncols, .nrows = nrows};
    if (is_fits(path) && ncols > FITS_MAX_COLUMNS) {
        fprintf(stderr, "deepsky: error: %s %s: %lld columns, more than a FITS table holds "
                "(%d): write .npy instead\n", opt, path, (long long)ncols, FITS_MAX_COLUMNS);
        return 1;
    }
    t->names = calloc((size_t)ncols, sizeof *t->names);
    t->np = calloc((size_t)ncols, sizeof *t->np);
    t->cols = calloc((size_t)ncols, sizeof *t->cols);
    for (int64_t j = 0; t->names && t->np && t->cols && j < ncols; j++) {
        t->np[j] = t->names[j];
        if (!(t->cols[j] = malloc(((size_t)nrows + 1) * sizeof **t->cols)))
            break;
    }
    if (!t->names || !t->np || !t->cols || (ncols && !t->cols[ncols - 1])) {
        fprintf(stderr, "deepsky: error: out of memory for the table of %s\n", path);
        return 1;
    }
    return 0;
}

static void table_free(table *t)
{
    for (int64_t j = 0; t->cols && j < t->ncols; j++)
        free(t->cols[j]);
    free(t->cols);
    free(t->np);
    free(t->names);
}

static int table_save(const table *t, const char *path)
{
    return ds_table_save(path, (int)t->ncols, t->np, t->nrows,
                         (const float *const *)t->cols) != DS_OK ? cli_fail() : 0;
}

/* Output `name`'s pooled parts: .npy [N, ..., P] with the parts on a last axis; a table
 * with a column NAME_PART per part (NAME_J_PART for value J of the F values per sample). */
static int write_pooled(const char *name, const ds_uq_output *u, const char *path)
{
    ds_tensor *t[4];
    int P = parts(u, t), nd = ds_tensor_ndim(u->mean), rc = 0;
    const int64_t *sh = ds_tensor_shape(u->mean);
    int64_t N = sh[0], numel = ds_tensor_numel(u->mean), F = N ? numel / N : 0;
    char shape[96];
    if (ends_with(path, ".npy")) {
        int64_t s[DS_MAX_DIMS];
        if (nd + 1 > DS_MAX_DIMS) {
            fprintf(stderr, "deepsky: error: output '%s' has %d axes: its mean and std need "
                    "one more, past the %d a tensor has\n", name, nd, DS_MAX_DIMS);
            return 1;
        }
        memcpy(s, sh, (size_t)nd * sizeof *s);
        s[nd] = P;
        ds_tensor *o = ds_tensor_create(nd + 1, s);
        for (int64_t e = 0; o && e < numel; e++)
            for (int q = 0; q < P; q++)
                ds_tensor_data(o)[e * P + q] = ds_tensor_data(t[q])[e];
        rc = !o || ds_array_save(o, path, NULL) != DS_OK ? cli_fail() : 0;
        ds_tensor_free(o);
        ds_shape_str(nd + 1, s, shape, sizeof shape);
    } else {
        table tb;
        if (!(rc = table_alloc(&tb, F * P, N, path, "-o"))) {
            for (int64_t j = 0; j < F; j++)
                for (int q = 0; q < P; q++) {
                    int64_t c = j * P + q;
                    if (F == 1)
                        snprintf(tb.names[c], sizeof tb.names[c], "%s_%s", name, part_names[q]);
                    else
                        snprintf(tb.names[c], sizeof tb.names[c], "%s_%lld_%s", name,
                                 (long long)j, part_names[q]);
                    for (int64_t i = 0; i < N; i++)
                        tb.cols[c][i] = ds_tensor_data(t[q])[i * F + j];
                }
            rc = table_save(&tb, path);
        }
        table_free(&tb);
        ds_shape_str(2, (int64_t[]){N, F * P}, shape, sizeof shape);
    }
    if (!rc)
        printf("wrote %s %s: %s\n", path, shape, P == 4 ? "mean, std, std_aleatoric, "
               "std_epistemic" : "mean, std");
    return rc;
}

/* --classes: output `name`'s pooled probabilities [N, K] (binary: [N, 1]) and the class of
 * their mean: columns prob_J_mean, prob_J_std for each class J (binary: prob_mean,
 * prob_std), then class; .npy [N, 2K + 1] with those column names. */
static int write_pooled_classes(const char *name, const ds_uq_output *u, const char *path)
{
    const int64_t *sh = ds_tensor_shape(u->mean);
    int64_t N = sh[0], K = ds_tensor_ndim(u->mean) == 2 ? sh[1] : 0, W = 2 * K + 1;
    if (!K || ds_tensor_numel(u->classes) != N) {
        char shape[96];
        ds_shape_str(ds_tensor_ndim(u->mean), sh, shape, sizeof shape);
        fprintf(stderr, "deepsky: error: --classes: output '%s' has shape %s: the class column "
                "goes beside one row of probabilities per sample [N, K]\n", name, shape);
        return 1;
    }
    table tb;
    int rc = table_alloc(&tb, W, N, path, "-o");
    const float *m = ds_tensor_data(u->mean), *s = ds_tensor_data(u->std),
                *c = ds_tensor_data(u->classes);
    for (int64_t j = 0; !rc && j < W; j++) {
        if (j == W - 1)
            snprintf(tb.names[j], sizeof tb.names[j], "class");
        else if (K == 1)
            snprintf(tb.names[j], sizeof tb.names[j], "prob_%s", part_names[j % 2]);
        else
            snprintf(tb.names[j], sizeof tb.names[j], "prob_%lld_%s", (long long)(j / 2),
                     part_names[j % 2]);
        for (int64_t i = 0; i < N; i++)
            tb.cols[j][i] = j == W - 1 ? c[i] : (j % 2 ? s : m)[i * K + j / 2];
    }
    if (!rc && ends_with(path, ".npy")) {   /* the columns side by side */
        ds_tensor *t = ds_tensor_create(2, (int64_t[]){N, W});
        for (int64_t i = 0; t && i < N * W; i++)
            ds_tensor_data(t)[i] = tb.cols[i % W][i / W];
        rc = !t || ds_array_save(t, path, tb.np) != DS_OK ? cli_fail() : 0;
        ds_tensor_free(t);
    } else if (!rc) {
        rc = table_save(&tb, path);
    }
    table_free(&tb);
    if (!rc)
        printf("wrote %s [%lld, %lld]: the mean and std of %lld %s and the class of the "
               "mean\n", path, (long long)N, (long long)W, (long long)K,
               cli_plural(K, "probability", "probabilities"));
    return rc;
}

/* --samples: every draw. .npy [S, N, ...] as predicted; a table of S * N rows (draw-major)
 * with the columns draw, sample, then the output's values (NAME, or NAME_J; a gaussian
 * output's NAME_mu and NAME_sigma, or NAME_J_mu and NAME_J_sigma). */
static int write_draws(const char *name, const ds_uq_output *u, const char *path)
{
    const ds_tensor *d = u->draws;
    const int64_t *sh = ds_tensor_shape(d);
    int64_t S = sh[0], N = sh[1], per = N ? ds_tensor_numel(d) / (S * N) : 0;
    bool gauss = u->std_aleatoric != NULL;
    char shape[96];
    int rc = 0;
    if (ends_with(path, ".npy")) {
        rc = ds_array_save(d, path, NULL) != DS_OK ? cli_fail() : 0;
        ds_shape_str(ds_tensor_ndim(d), sh, shape, sizeof shape);
    } else {
        table tb;
        int64_t half = per / 2, F = ds_tensor_numel(u->mean) / (N ? N : 1);
        if (!(rc = table_alloc(&tb, 2 + per, S * N, path, "--samples"))) {
            snprintf(tb.names[0], sizeof tb.names[0], "draw");
            snprintf(tb.names[1], sizeof tb.names[1], "sample");
            for (int64_t j = 0; j < per; j++) {
                int64_t v = gauss ? j % half : j;   /* gaussian: means, then sigmas */
                const char *what = !gauss ? "" : j < half ? "_mu" : "_sigma";
                if ((gauss ? F : per) == 1)
                    snprintf(tb.names[2 + j], sizeof tb.names[2 + j], "%s%s", name, what);
                else
                    snprintf(tb.names[2 + j], sizeof tb.names[2 + j], "%s_%lld%s", name,
                             (long long)v, what);
            }
            const float *x = ds_tensor_data((ds_tensor *)d);
            for (int64_t r = 0; r < S * N; r++) {
                tb.cols[0][r] = (float)(r / N);
                tb.cols[1][r] = (float)(r % N);
                for (int64_t j = 0; j < per; j++)
                    tb.cols[2 + j][r] = x[r * per + j];
            }
            rc = table_save(&tb, path);
        }
        table_free(&tb);
        ds_shape_str(2, (int64_t[]){S * N, 2 + per}, shape, sizeof shape);
    }
    if (!rc)
        printf("wrote %s %s: %lld %s of %lld %s\n", path, shape, (long long)S,
               cli_plural(S, "draw", "draws"), (long long)N, cli_plural(N, "sample", "samples"));
    return rc;
}

int cli_predict_uq(const cli_cmd *c, ds_net *n, ds_feed *f, const cli_uq_job *j)
{
    const char *const *w;
    int k = cli_values(c, "weights", &w), no = ds_net_output_count(n), rc = 0;
    ds_uq_opts o = {.passes = j->passes > 0 ? (int)j->passes : 1, .seed = j->seed,
                    .batch = j->batch, .keep_draws = j->samples != NULL,
                    .probs = 1};   /* averaging logits is not the predictive mean */
    ds_uq_output u[DS_FEED_MAX] = {{0}};
    ds_status st;
    if (k > 1) {
        fprintf(stderr, "ensemble: %d members (%s ... %s)\n", k, w[0], w[k - 1]);
        st = ds_net_predict_ensemble(n, k, w, f, &o, u);
    } else {
        st = ds_net_check_feed(n, f);
        if (!st)
            st = ds_net_preprocess_feed(n, f);
        if (!st)
            st = ds_net_predict_mc(n, f, &o, u);
    }
    if (st && k < 2) {
        fprintf(stderr, "deepsky: error: --mc %ld: %s\n", j->passes, ds_last_error());
        return 1;
    }
    if (st)
        return cli_fail();
    bool any = false;
    for (int i = 0; i < no; i++)
        any = any || u[i].classes;
    if (j->classes && !any) {
        fprintf(stderr, "deepsky: error: --classes: no output of the model is a classifier's "
                "prediction (categorical or binary cross-entropy)\n");
        rc = 1;
    }
    for (int i = 0; i < no && !rc; i++) {
        const char *name = ds_net_output_name(n, i), *path = j->outs[j->which[i]].path;
        if (u[i].classes && !j->classes)
            fprintf(stderr, "output '%s': a classifier's draws, pooled as probabilities\n", name);
        rc = u[i].classes && j->classes ? write_pooled_classes(name, &u[i], path)
                                        : write_pooled(name, &u[i], path);
        if (!rc && j->samples)
            rc = write_draws(name, &u[i], j->samples[j->swhich[i]].path);
    }
    for (int i = 0; i < no; i++)
        ds_uq_output_free(&u[i]);
    return rc;
}
