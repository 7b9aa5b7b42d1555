/* curve_net.c - deepsky curve for a network: learning curves against the training-set size
 * (prefixes of a shuffle), each size trained over seeds and scored on it and on validation. */
#include "net_job.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows idx[0, k) of every tensor of f into sub (new tensors; free_feed releases them). */
static ds_status sub_feed(const ds_feed *f, const int64_t *idx, int64_t k, ds_feed *sub)
{
    memset(sub, 0, sizeof *sub);
    const ds_feed_item *from[2] = {f->inputs, f->labels};
    ds_feed_item *to[2] = {sub->inputs, sub->labels};
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < DS_FEED_MAX && from[w][i].data; i++) {
            ds_tensor *t = from[w][i].data;
            int64_t shape[DS_MAX_DIMS];
            int nd = ds_tensor_ndim(t);
            memcpy(shape, ds_tensor_shape(t), (size_t)nd * sizeof *shape);
            int64_t per = ds_tensor_numel(t) / shape[0];
            shape[0] = k;
            ds_tensor *r = ds_tensor_create(nd, shape);
            if (!r)
                return DS_ERR_NOMEM;
            for (int64_t q = 0; q < k; q++)
                memcpy(ds_tensor_data(r) + q * per, ds_tensor_data(t) + idx[q] * per,
                       (size_t)per * sizeof(float));
            to[w][i] = from[w][i];
            to[w][i].data = r;
        }
    return DS_OK;
}

static void free_feed(ds_feed *f)
{
    for (int i = 0; i < DS_FEED_MAX; i++) {
        ds_tensor_free(f->inputs[i].data);
        ds_tensor_free(f->labels[i].data);
    }
}

/* The score of n on feed f: accuracy for a classifier (its first target), else R^2 of the
 * first output against the first labels, averaged over the values per sample. */
static ds_status net_score(ds_net *n, const ds_feed *f, int64_t batch, double *score)
{
    ds_status st;
    if (ds_net_is_classifier(n)) {
        ds_tensor_set *v = ds_tensor_set_create();
        char *report = NULL;
        if (!v)
            return DS_ERR_NOMEM;
        st = ds_net_evaluate_feed(n, f, batch, &report, v);
        ds_tensor *acc = st ? NULL : ds_tensor_set_get(v, "accuracy");
        if (!st && !acc)
            acc = ds_tensor_set_get(v, ds_net_target_name(n, 0));
        *score = acc ? ds_tensor_data(acc)[0] : NAN;
        free(report);
        ds_tensor_set_free(v);
        return st;
    }
    ds_tensor *out[DS_FEED_MAX] = {0};
    if ((st = ds_net_predict_feed(n, f, batch, out)))
        return st;
    ds_tensor *y = f->labels[0].data;
    int64_t N = y ? ds_tensor_shape(y)[0] : 0, w = N ? ds_tensor_numel(y) / N : 0;
    if (!y || ds_tensor_numel(out[0]) != ds_tensor_numel(y)) {
        *score = NAN;
    } else {
        const float *p = ds_tensor_data(out[0]), *t = ds_tensor_data(y);
        double r2 = 0;
        for (int64_t j = 0; j < w; j++) {
            double mean = 0, sse = 0, sst = 0;
            for (int64_t i = 0; i < N; i++)
                mean += t[i * w + j] / (double)N;
            for (int64_t i = 0; i < N; i++) {
                double e = p[i * w + j] - t[i * w + j], d = t[i * w + j] - mean;
                sse += e * e;
                sst += d * d;
            }
            r2 += (sst > 0 ? 1 - sse / sst : sse > 0 ? 0 : 1) / (double)w;
        }
        *score = r2;
    }
    for (int i = 0; i < DS_FEED_MAX; i++)
        ds_tensor_free(out[i]);
    return DS_OK;
}

/* Trains a fresh net (seed) on the first k of the shuffled training rows, scores it on them
 * and on the validation data. */
static ds_status curve_fit(const net_job *j, const int64_t *idx, int64_t k, uint64_t seed,
                           double *train, double *val)
{
    ds_feed sub;
    char *text = NULL;
    ds_net *n = NULL;
    ds_status st = sub_feed(&j->f, idx, k, &sub);
    if (!st)
        st = net_job_trial(j, "", seed, &text, &n);
    ds_fit_opts fo = {.epochs = (int)j->epochs, .batch_size = j->batch, .seed = seed};
    ds_fit_result r;
    if (!st)
        st = ds_net_fit_feed(n, &sub, NULL, &fo, &r);
    if (!st)
        st = net_score(n, &sub, j->batch, train);
    if (!st)
        st = net_score(n, &j->fv, j->batch, val);
    free(text);
    ds_net_free(n);
    free_feed(&sub);
    return st;
}

int cli_curve_net(cli_cmd *c)
{
    long seeds;
    if (!cli_long(c, "seeds", 1, 1000, 3, &seeds))
        return 2;
    double frac[64];
    int nf = cli_parse_fractions(c, cli_has(c, "fractions") ? cli_get(c, "fractions") : "1/16..1",
                                 frac, 64);
    if (nf <= 0)
        return -nf;
    int rc;
    if ((rc = net_job_outputs(c, cli_get(c, "output"), "learning curve")))
        return rc;
    net_job j = {0};
    cli_split how;
    if ((rc = net_job_options(c, &j, &how))) {
        net_job_free(&j);
        return rc < 0 ? 0 : rc;
    }
    cli_files files = {0};
    cli_files_input(&files, "the model file", j.model);
    cli_files_inputs(&files, c, "data");
    cli_files_output(&files, "-o", cli_get(c, "output"));
    cli_files_output(&files, "--plot", cli_get(c, "plot"));
    if ((rc = cli_files_check(c, &files)) || (rc = net_job_load(c, &j, &how))) {
        net_job_free(&j);
        return rc;
    }
    int64_t n = ds_tensor_shape(j.f.inputs[0].data)[0];
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    double *tv = calloc((size_t)(2 * nf * seeds), sizeof *tv);
    ds_curve_point pt[64];
    ds_status st = idx && tv ? DS_OK : DS_ERR_NOMEM;
    if (!j.quiet)
        printf("learning curve of %s: %lld training samples, %ld %s per size, %ld epochs\n",
               j.model, (long long)n, seeds, cli_plural(seeds, "seed", "seeds"), j.epochs);
    for (long k = 0; k < seeds && !st; k++) {
        ds_rng r;
        ds_rng_seed(&r, (uint64_t)(j.seed + k) ^ 0xc0a7eULL);
        for (int64_t i = 0; i < n; i++)
            idx[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {   /* the subsets: prefixes of a shuffle */
            int64_t q = (int64_t)ds_rng_below(&r, (uint64_t)i + 1), t = idx[i];
            idx[i] = idx[q];
            idx[q] = t;
        }
        for (int s = 0; s < nf && !st; s++) {
            int64_t m = (int64_t)ceil(frac[s] * (double)n);
            m = m < 2 ? 2 : m > n ? n : m;
            pt[s].size = m;
            double *at = tv + 2 * (s * seeds + k);
            st = curve_fit(&j, idx, m, (uint64_t)(j.seed + k), &at[0], &at[1]);
            if (!st && !j.quiet)
                printf("seed %ld, %6lld samples: train %.4f, validation %.4f\n", j.seed + k,
                       (long long)m, at[0], at[1]);
            fflush(stdout);
        }
    }
    for (int s = 0; !st && s < nf; s++) {
        double a[2] = {0}, a2[2] = {0};
        for (long k = 0; k < seeds; k++)
            for (int q = 0; q < 2; q++) {
                double v = tv[2 * (s * seeds + k) + q];
                a[q] += v / (double)seeds;
                a2[q] += v * v / (double)seeds;
            }
        pt[s].fraction = frac[s];
        pt[s].train = a[0], pt[s].val = a[1];
        pt[s].train_spread = sqrt(fmax(0, a2[0] - a[0] * a[0]));
        pt[s].val_spread = sqrt(fmax(0, a2[1] - a[1] * a[1]));
    }
    free(idx), free(tv);
    if (st)
        rc = cli_fail();
    if (!rc && !j.quiet) {
        printf("  size  train            validation (%s)\n",
               ds_net_is_classifier(j.base) ? "accuracy" : "R^2");
        for (int s = 0; s < nf; s++)
            printf("%6lld  %.4f +- %.4f  %.4f +- %.4f\n", (long long)pt[s].size, pt[s].train,
                   pt[s].train_spread, pt[s].val, pt[s].val_spread);
    }
    if (!rc && !(rc = cli_write_curve(cli_get(c, "output"), pt, nf)))
        printf("curve: %s\n", cli_get(c, "output"));
    if (!rc && cli_has(c, "plot") &&
        !(rc = cli_plot_curve(cli_get(c, "plot"),
                              strrchr(j.model, '/') ? strrchr(j.model, '/') + 1 : j.model, pt,
                              nf, !ds_net_is_classifier(j.base))))
        printf("figure: %s\n", cli_get(c, "plot"));
    net_job_free(&j);
    return rc;
}
