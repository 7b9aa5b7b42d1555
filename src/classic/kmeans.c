/* kmeans.c - k-means (Lloyd's iterations from greedy k-means++ seeds, the best inertia of
 * n-init runs, as scikit-learn's KMeans) and the silhouette score. Every sum runs in a fixed
 * order, so the result depends on the seed only. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIL_MAX 10000   /* the silhouette of a fit looks at this many samples at most */

static double d2(const float *a, const double *c, int64_t f)
{
    double s = 0;
    for (int64_t j = 0; j < f; j++) {
        double t = a[j] - c[j];
        s += t * t;
    }
    return s;
}

/* Greedy k-means++: each new centre is the best (lowest potential) of 2 + log(k) draws
 * proportional to the squared distance to the nearest centre so far. */
static void plus_plus(const float *x, int64_t n, int64_t f, int64_t k, ds_rng *r, double *C,
                      double *best, double *trial, double *cum)
{
    int64_t trials = 2 + (int64_t)log((double)k), first = (int64_t)ds_rng_below(r, (uint64_t)n);
    for (int64_t j = 0; j < f; j++)
        C[j] = x[first * f + j];
#pragma omp parallel for schedule(static) if (n * f > 1 << 16)
    for (int64_t i = 0; i < n; i++)
        best[i] = d2(x + i * f, C, f);
    for (int64_t c = 1; c < k; c++) {
        double pot = 0, best_pot = INFINITY;
        for (int64_t i = 0; i < n; i++)
            cum[i] = (pot += best[i]);
        int64_t pick = 0;
        for (int64_t t = 0; t < trials; t++) {
            double u = ds_rng_uniform(r) * pot;
            int64_t lo = 0, hi = n - 1;   /* the first i with cum[i] > u */
            while (lo < hi) {
                int64_t mid = (lo + hi) / 2;
                if (cum[mid] > u)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            double *cc = C + c * f, p = 0;
            for (int64_t j = 0; j < f; j++)
                cc[j] = x[lo * f + j];
#pragma omp parallel for schedule(static) if (n * f > 1 << 16)
            for (int64_t i = 0; i < n; i++) {
                double v = d2(x + i * f, cc, f);
                trial[i] = v < best[i] ? v : best[i];
            }
            for (int64_t i = 0; i < n; i++)
                p += trial[i];
            if (p < best_pot)
                best_pot = p, pick = lo;
        }
        for (int64_t j = 0; j < f; j++)
            C[c * f + j] = x[pick * f + j];
#pragma omp parallel for schedule(static) if (n * f > 1 << 16)
        for (int64_t i = 0; i < n; i++) {
            double v = d2(x + i * f, C + c * f, f);
            best[i] = v < best[i] ? v : best[i];
        }
    }
}

/* Each sample's nearest centre into lab and its squared distance into dist; the inertia. */
static double assign(const float *x, int64_t n, int64_t f, const double *C, int64_t k,
                     int64_t *lab, double *dist)
{
#pragma omp parallel for schedule(static) if (n * k * f > 1 << 16)
    for (int64_t i = 0; i < n; i++) {
        double bd = INFINITY;
        for (int64_t c = 0; c < k; c++) {
            double v = d2(x + i * f, C + c * f, f);
            if (v < bd)
                bd = v, lab[i] = c;
        }
        dist[i] = bd;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += dist[i];
    return s;
}

/* New centres: the means of their samples (each centre summed by one thread, in sample
 * order); an empty cluster takes the sample farthest from its centre. Returns the total
 * squared shift. */
static double update(const float *x, int64_t n, int64_t f, double *C, int64_t k,
                     const int64_t *lab, double *dist, double *old)
{
    memcpy(old, C, (size_t)(k * f) * sizeof *old);
#pragma omp parallel for schedule(static) if (n * f > 1 << 16)
    for (int64_t c = 0; c < k; c++) {
        double *cc = C + c * f;
        int64_t cnt = 0;
        memset(cc, 0, (size_t)f * sizeof *cc);
        for (int64_t i = 0; i < n; i++)
            if (lab[i] == c) {
                cnt++;
                for (int64_t j = 0; j < f; j++)
                    cc[j] += x[i * f + j];
            }
        for (int64_t j = 0; j < f && cnt; j++)
            cc[j] /= (double)cnt;
        if (!cnt)
            cc[0] = NAN;   /* filled below, in centre order */
    }
    for (int64_t c = 0; c < k; c++)
        if (isnan(C[c * f])) {
            int64_t far = 0;
            for (int64_t i = 1; i < n; i++)
                if (dist[i] > dist[far])
                    far = i;
            for (int64_t j = 0; j < f; j++)
                C[c * f + j] = x[far * f + j];
            dist[far] = 0;
        }
    double shift = 0;
    for (int64_t a = 0; a < k * f; a++)
        shift += (C[a] - old[a]) * (C[a] - old[a]);
    return shift;
}

static ds_status kmeans_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    int64_t n = d->n, f = d->f, k = (int64_t)dsi_classic_num(m, "k");
    int runs = (int)dsi_classic_num(m, "n-init"), max_iter = (int)dsi_classic_num(m, "max-iter");
    if (k > n)
        return dsi_fail(DS_ERR_ARG, "kmeans: k = %lld is more than the %lld %s", (long long)k,
                        (long long)n, dsi_plural(n, "sample", "samples"));
    double var = 0;   /* tol is relative to the mean variance of the features */
    for (int64_t j = 0; j < f; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++)
            s += d->x[i * f + j];
        for (int64_t i = 0; i < n; i++)
            s2 += (d->x[i * f + j] - s / n) * (d->x[i * f + j] - s / n);
        var += s2 / n / f;
    }
    double tol = dsi_classic_num(m, "tol") * var, best_in = INFINITY;
    double *C = malloc((size_t)(k * f) * sizeof *C), *B = malloc((size_t)(k * f) * sizeof *B);
    double *old = malloc((size_t)(k * f) * sizeof *old), *w = malloc((size_t)(3 * n) * sizeof *w);
    int64_t *lab = malloc((size_t)n * sizeof *lab), *blab = malloc((size_t)n * sizeof *blab);
    float *cf = malloc((size_t)(k * f) * sizeof *cf);
    ds_status st = DS_OK;
    int best_it = 0;
    if (!C || !B || !old || !w || !lab || !blab || !cf) {
        st = dsi_fail(DS_ERR_NOMEM, "kmeans: out of memory for %lld samples", (long long)n);
        goto done;
    }
    for (int r = 0; r < runs; r++) {
        ds_rng rng;
        ds_rng_seed(&rng, dsi_mix64(seed ^ dsi_mix64(0x6b6d65616eULL + (uint64_t)r)));
        plus_plus(d->x, n, f, k, &rng, C, w, w + n, w + 2 * n);
        int it = 0;
        double inertia = assign(d->x, n, f, C, k, lab, w);
        while (it++ < max_iter) {
            double shift = update(d->x, n, f, C, k, lab, w, old);
            inertia = assign(d->x, n, f, C, k, lab, w);
            if (shift <= tol)
                break;
        }
        if (inertia < best_in) {
            best_in = inertia;
            best_it = it;
            memcpy(B, C, (size_t)(k * f) * sizeof *B);
            memcpy(blab, lab, (size_t)n * sizeof *blab);
        }
    }
    for (int64_t a = 0; a < k * f; a++)
        cf[a] = (float)B[a];
    int64_t s2[2] = {k, f};
    if (!(st = dsi_classic_put(m, "centers", 2, s2, cf)) &&
        !(st = dsi_classic_stat(m, "inertia", best_in)) &&
        !(st = dsi_classic_stat(m, "iterations", best_it)))
        st = dsi_classic_stat(m, "silhouette", dsi_silhouette(d->x, n < SIL_MAX ? n : SIL_MAX, f,
                                                               blab, k));
    m->classes = 0;
done:
    free(C), free(B), free(old), free(w), free(lab), free(blab), free(cf);
    return st;
}

double dsi_silhouette(const float *x, int64_t n, int64_t f, const int64_t *label, int64_t k)
{
    int64_t *size = calloc((size_t)k, sizeof *size);
    double *s = malloc((size_t)(n ? n : 1) * sizeof *s), total = 0;
    if (!size || !s || n < 2) {
        free(size);
        free(s);
        return NAN;
    }
    for (int64_t i = 0; i < n; i++)
        size[label[i]]++;
#pragma omp parallel
    {
        double *sum = malloc((size_t)k * sizeof *sum);
#pragma omp for schedule(dynamic, 32)
        for (int64_t i = 0; i < n; i++) {
            s[i] = 0;
            if (!sum || size[label[i]] < 2)
                continue;   /* a cluster of one: 0, as scikit-learn */
            memset(sum, 0, (size_t)k * sizeof *sum);
            for (int64_t q = 0; q < n; q++) {
                double t = 0;
                for (int64_t j = 0; j < f; j++)
                    t += ((double)x[i * f + j] - x[q * f + j]) * ((double)x[i * f + j] - x[q * f + j]);
                sum[label[q]] += sqrt(t);
            }
            double a = sum[label[i]] / (double)(size[label[i]] - 1), b = INFINITY;
            for (int64_t c = 0; c < k; c++)
                if (c != label[i] && size[c] && sum[c] / (double)size[c] < b)
                    b = sum[c] / (double)size[c];
            s[i] = isfinite(b) && fmax(a, b) > 0 ? (b - a) / fmax(a, b) : 0;
        }
        free(sum);
    }
    for (int64_t i = 0; i < n; i++)
        total += s[i];
    free(size);
    free(s);
    return total / (double)n;
}

static int64_t kmeans_width(const ds_classic *m)
{
    return (int64_t)dsi_classic_num(m, "k");
}

static void kmeans_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t k = kmeans_width(m), f = m->features_in;
    const float *C = dsi_classic_arr(m, "centers", k, f);
#pragma omp parallel for schedule(static) if (n * k * f > 1 << 16)
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < k; c++) {
            double s = 0;
            for (int64_t j = 0; j < f; j++) {
                double t = (double)x[i * f + j] - C[c * f + j];
                s += t * t;
            }
            out[i * k + c] = (float)s;
        }
}

static ds_status kmeans_check(ds_classic *m, const char *file)
{
    return dsi_classic_need(m, file, "centers", kmeans_width(m), m->features_in);
}

static const dsi_classic_param kmeans_params[] = {
    {"k", "8", NULL, 1, 1e6, true, "clusters"},
    {"n-init", "10", NULL, 1, 1000, true, "runs from different k-means++ seeds; the lowest "
     "inertia wins"},
    {"max-iter", "300", NULL, 1, 1e6, true, "Lloyd iterations per run at most"},
    {"tol", "1e-4", NULL, 0, 1, false, "stop when the centres move less (squared, relative to "
     "the features' mean variance)"},
};

const dsi_classic_method dsi_classic_kmeans = {
    "kmeans", "k-means clustering (k-means++ seeds, best of n-init; inertia and silhouette)",
    DSI_TASK(DS_CLASSIC_CLUSTER), kmeans_params,
    (int)(sizeof kmeans_params / sizeof *kmeans_params), kmeans_fit, kmeans_width,
    kmeans_predict, kmeans_check, NULL};
