/* stamp_stats.c - statistics to compare populations of galaxy stamps (generated against
 * real): the two-sample Kolmogorov-Smirnov test, and per-stamp flux, half-light radius and
 * ellipticity from adaptive moments. */
#include "../internal.h"

#include <math.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorted copy of x, or NULL (with a message) for a NaN or no memory. */
static double *sorted_copy(const double *x, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (isnan(x[i])) {
            dsi_fail(DS_ERR_ARG, "ks_2samp: %s[%lld] is NaN", what, (long long)i);
            return NULL;
        }
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) {
        dsi_fail(DS_ERR_NOMEM, "ks_2samp: out of memory for %lld values", (long long)n);
        return NULL;
    }
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return s;
}

/* Kolmogorov's limiting distribution: Q(t) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 t^2), 1 for
 * small t (where the series converges slowly and Q is 1 to double precision). */
static double kolmogorov_q(double t)
{
    if (t < 0.18)
        return 1.0;
    double sum = 0, sign = 1;
    for (int k = 1; k <= 100; k++) {
        double term = exp(-2.0 * k * k * t * t);
        sum += sign * term;
        sign = -sign;
        if (term < 1e-17 * sum)
            break;
    }
    double q = 2 * sum;
    return q < 0 ? 0 : q > 1 ? 1 : q;
}

/* D = max |F_a(v) - F_b(v)| over every value v of either sample (ties: each empirical
 * distribution counts all values <= v, as scipy's searchsorted 'right'). */
ds_status ds_ks_2samp(const double *a, int64_t na, const double *b, int64_t nb, double *d,
                      double *p)
{
    if (!a || !b || !d || na < 1 || nb < 1)
        return dsi_fail(DS_ERR_ARG, "ks_2samp: two non-empty samples are needed (%lld and "
                        "%lld values)", (long long)na, (long long)nb);
    double *sa = sorted_copy(a, na, "a"), *sb = sa ? sorted_copy(b, nb, "b") : NULL;
    if (!sa || !sb) {
        free(sa);
        return dsi_last_status();
    }
    int64_t i = 0, j = 0;
    double dmax = 0;
    while (i < na || j < nb) {
        double v = j >= nb || (i < na && sa[i] <= sb[j]) ? sa[i] : sb[j];
        while (i < na && sa[i] <= v)
            i++;
        while (j < nb && sb[j] <= v)
            j++;
        dmax = fmax(dmax, fabs((double)i / (double)na - (double)j / (double)nb));
    }
    free(sa);
    free(sb);
    *d = dmax;
    if (p) {
        double en = (double)na * (double)nb / ((double)na + (double)nb), s = sqrt(en);
        *p = kolmogorov_q((s + 0.12 + 0.11 / s) * dmax);   /* Stephens (1970) */
    }
    return DS_OK;
}

/* Per stamp: adaptive moments from a round weight of sigma 2 pixels at the centre. */
ds_status ds_stamp_stats(const float *img, int64_t n, int size, ds_stamp_stat *out)
{
    if (!img || !out || n < 0 || size < 1)
        return dsi_fail(DS_ERR_ARG, "stamp stats: NULL pointers, %lld stamps or size %d",
                        (long long)n, size);
    const int64_t npix = (int64_t)size * size;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t k = 0; k < n; k++) {
        ds_moments m;
        ds_stamp_stat *s = &out[k];
        ds_status st = ds_adaptive_moments(img + k * npix, size, 2.0, &m);
        DS_ASSERT(st == DS_OK);   /* its arguments are checked above */
        (void)st;
        s->flag = m.flag;
        s->flux = m.flux;
        s->hlr = m.sigma * sqrt(2.0 * log(2.0));
        double dist = hypot(m.e1, m.e2);   /* distortion (1 - q^2) / (1 + q^2) -> eps */
        double f = m.flag || dist >= 1 ? NAN : 1.0 / (1.0 + sqrt(1.0 - dist * dist));
        s->e = dist * f;
        s->e1 = m.e1 * f;
        s->e2 = m.e2 * f;
    }
    return DS_OK;
}
