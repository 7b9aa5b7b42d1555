/* calibration.c - calibration reports from arrays: Gaussian coverage, z, NLL, CRPS and PIT
 * for regression; ECE, NLL and the reliability bins for classifiers; temperature scaling. */
#include "../internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T_MIN 0.01
#define T_MAX 100.0
#define LOG_CLAMP (-100.0)   /* log p of a probability 0, as PyTorch's cross-entropy */

/* ---- the standard normal ---- */
static double norm_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }
static double norm_pdf(double z) { return exp(-0.5 * z * z) / sqrt(2.0 * M_PI); }

/* Phi^-1(p) for p in (0, 1): bisection on erfc to the last bits (a few calls per report). */
static double norm_quantile(double p)
{
    double lo = -40, hi = 40;
    for (int i = 0; i < 200 && hi - lo > 1e-15; i++) {
        double mid = 0.5 * (lo + hi);
        if (norm_cdf(mid) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Half-widths (in sigmas) of the central intervals: the curve's levels, then 68% and 95%. */
static void half_widths(double *q)
{
    for (int i = 0; i < DS_CALIB_LEVELS; i++)
        q[i] = norm_quantile(0.5 + 0.5 * (i + 1) / 100.0);
    q[DS_CALIB_LEVELS] = norm_quantile(0.84);
    q[DS_CALIB_LEVELS + 1] = norm_quantile(0.975);
}

/* ---- regression ---- */
/* Running sums of one group of values (an output, or all). */
typedef struct {
    int64_t count, in68, in95;
    double z, zz, nll, crps;
} acc;

static void acc_add(acc *a, double z, double sigma, const double *q)
{
    double az = fabs(z);
    a->count++;
    a->in68 += az <= q[DS_CALIB_LEVELS];
    a->in95 += az <= q[DS_CALIB_LEVELS + 1];
    a->z += z;
    a->zz += z * z;
    a->nll += 0.5 * log(2.0 * M_PI * sigma * sigma) + 0.5 * z * z;
    a->crps += sigma * (z * (2.0 * norm_cdf(z) - 1.0) + 2.0 * norm_pdf(z) - 1.0 / sqrt(M_PI));
}

static ds_calib_stats acc_stats(const acc *a)
{
    double n = (double)a->count, m = a->z / n;
    return (ds_calib_stats){.count = a->count, .cover68 = (double)a->in68 / n,
                            .cover95 = (double)a->in95 / n, .z_mean = m,
                            .z_std = sqrt(fmax(0.0, a->zz / n - m * m)), .nll = a->nll / n,
                            .crps = a->crps / n};
}

static ds_status check_value(const char *what, int64_t i, int64_t j, float v, bool positive)
{
    if (isfinite(v) && (!positive || v > 0))
        return DS_OK;
    return dsi_fail(DS_ERR_VALUE, "calibration: %s of sample %lld, output %lld is %g: %s", what,
                    (long long)i, (long long)j, (double)v,
                    positive ? "a standard deviation must be finite and > 0" : "not finite");
}

static ds_status check_arrays(int64_t n, int64_t k, const float *mean, const float *std,
                              const float *truth)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            int64_t e = i * k + j;
            ds_status st = check_value("the predicted mean", i, j, mean[e], false);
            if (!st)
                st = check_value("the predicted std", i, j, std[e], true);
            if (!st)
                st = check_value("the true value", i, j, truth[e], false);
            if (st)
                return st;
        }
    return DS_OK;
}

void ds_regression_calib_free(ds_regression_calib *r)
{
    if (!r)
        return;
    free(r->per_output);
    free(r->pit);
    memset(r, 0, sizeof *r);
}

ds_status ds_calibrate_regression(int64_t n, int64_t outputs, const float *mean,
                                  const float *std, const float *truth, ds_regression_calib *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_calibrate_regression: out is NULL");
    memset(out, 0, sizeof *out);
    if (!mean || !std || !truth || n < 1 || outputs < 1)
        return dsi_fail(DS_ERR_ARG, "ds_calibrate_regression: %lld samples x %lld outputs "
                        "(both must be >= 1) or a NULL array", (long long)n, (long long)outputs);
    ds_status st = check_arrays(n, outputs, mean, std, truth);
    if (st)
        return st;
    out->per_output = malloc((size_t)outputs * sizeof *out->per_output);
    out->pit = malloc((size_t)(n * outputs) * sizeof *out->pit);
    acc *a = malloc((size_t)(outputs + 1) * sizeof *a);
    int64_t *inside = calloc(DS_CALIB_LEVELS, sizeof *inside);
    if (!out->per_output || !out->pit || !a || !inside) {
        free(a);
        free(inside);
        ds_regression_calib_free(out);
        return dsi_fail(DS_ERR_NOMEM, "calibration: out of memory for %lld x %lld values",
                        (long long)n, (long long)outputs);
    }
    double q[DS_CALIB_LEVELS + 2];
    half_widths(q);
    memset(a, 0, (size_t)(outputs + 1) * sizeof *a);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < outputs; j++) {
            int64_t e = i * outputs + j;
            double sigma = std[e], z = ((double)truth[e] - mean[e]) / sigma;
            acc_add(&a[j], z, sigma, q);
            acc_add(&a[outputs], z, sigma, q);
            out->pit[e] = (float)norm_cdf(z);
            for (int l = 0; l < DS_CALIB_LEVELS; l++)
                inside[l] += fabs(z) <= q[l];
        }
    for (int64_t j = 0; j < outputs; j++)
        out->per_output[j] = acc_stats(&a[j]);
    out->all = acc_stats(&a[outputs]);
    for (int l = 0; l < DS_CALIB_LEVELS; l++) {
        out->level[l] = (l + 1) / 100.0;
        out->empirical[l] = (double)inside[l] / (double)(n * outputs);
    }
    out->samples = n;
    out->outputs = outputs;
    free(a);
    free(inside);
    return DS_OK;
}

static bool same_shape(const ds_tensor *a, const ds_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape);
}

ds_status ds_calibrate_regression_tensors(const ds_tensor *mean, const ds_tensor *std,
                                          const ds_tensor *truth, ds_regression_calib *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_calibrate_regression_tensors: out is NULL");
    memset(out, 0, sizeof *out);
    if (!mean || !std || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_calibrate_regression_tensors: a NULL tensor");
    const ds_tensor *t[2] = {std, truth};
    const char *what[2] = {"std", "truth"};
    for (int k = 0; k < 2; k++)
        if (!same_shape(mean, t[k]))
            return dsi_fail(DS_ERR_SHAPE, "calibration: the predicted means have shape %s but "
                            "the %s %s", dsi_shape_str(mean->ndim, mean->shape), what[k],
                            dsi_shape_str(t[k]->ndim, t[k]->shape));
    if (mean->ndim < 1 || mean->shape[0] < 1)
        return dsi_fail(DS_ERR_SHAPE, "calibration: predicted means of shape %s hold no "
                        "samples", dsi_shape_str(mean->ndim, mean->shape));
    int64_t n = mean->shape[0];
    return ds_calibrate_regression(n, mean->numel / n, mean->data, std->data, truth->data, out);
}

/* ---- classifiers ---- */
/* Row r's logits into l (k values; a binary row as the two logits [0, z]); the class count
 * of the softmax is returned. */
static int64_t row_logits(const float *scores, int64_t r, int64_t classes, ds_score_kind kind,
                          double *l)
{
    const float *s = scores + r * classes;
    if (classes == 1) {
        double p = s[0];
        l[0] = 0;
        l[1] = kind == DS_SCORES_LOGITS ? p
               : fmax(log(p), LOG_CLAMP) - fmax(log1p(-p), LOG_CLAMP);
        return 2;
    }
    for (int64_t k = 0; k < classes; k++)
        l[k] = kind == DS_SCORES_LOGITS ? s[k] : fmax(log((double)s[k]), LOG_CLAMP);
    return classes;
}

static ds_status check_row(const float *scores, const float *labels, int64_t r, int64_t classes,
                           ds_score_kind kind)
{
    const float *s = scores + r * classes;
    int64_t top = classes == 1 ? 2 : classes;
    float y = labels[r];
    if (!(y >= 0 && y < (float)top && y == floorf(y)))
        return dsi_fail(DS_ERR_VALUE, "calibration: the label of row %lld is %g: not a class "
                        "index in [0, %lld)", (long long)r, (double)y, (long long)top);
    double sum = 0;
    for (int64_t k = 0; k < classes; k++) {
        if (!isfinite(s[k]))
            return dsi_fail(DS_ERR_VALUE, "calibration: score %lld of row %lld is %g",
                            (long long)k, (long long)r, (double)s[k]);
        if (kind == DS_SCORES_PROBS && (s[k] < 0 || s[k] > 1))
            return dsi_fail(DS_ERR_VALUE, "calibration: probability %lld of row %lld is %g, "
                            "outside [0, 1] (logits given as probabilities?)", (long long)k,
                            (long long)r, (double)s[k]);
        sum += s[k];
    }
    if (kind == DS_SCORES_PROBS && classes > 1 && fabs(sum - 1) > 1e-3)
        return dsi_fail(DS_ERR_VALUE, "calibration: the probabilities of row %lld sum to %.6g, "
                        "not 1", (long long)r, sum);
    return DS_OK;
}

static ds_status check_scores(int64_t n, int64_t classes, const float *scores,
                              ds_score_kind kind, const float *labels, const char *fn)
{
    if (!scores || !labels || n < 1 || classes < 1)
        return dsi_fail(DS_ERR_ARG, "%s: %lld rows x %lld classes (both must be >= 1) or a NULL "
                        "array", fn, (long long)n, (long long)classes);
    if (kind != DS_SCORES_LOGITS && kind != DS_SCORES_PROBS)
        return dsi_fail(DS_ERR_ARG, "%s: unknown score kind %d", fn, (int)kind);
    for (int64_t r = 0; r < n; r++) {
        ds_status st = check_row(scores, labels, r, classes, kind);
        if (st)
            return st;
    }
    return DS_OK;
}

/* log sum exp(beta l), and the softmax's mean and variance of l (for the temperature). */
static double lse_moments(const double *l, int64_t K, double beta, double *mean, double *var)
{
    double mx = l[0];
    for (int64_t k = 1; k < K; k++)
        mx = fmax(mx, l[k]);
    double s = 0, m1 = 0, m2 = 0;
    for (int64_t k = 0; k < K; k++) {
        double w = exp(beta * (l[k] - mx));
        s += w;
        m1 += w * l[k];
        m2 += w * l[k] * l[k];
    }
    m1 /= s;
    if (mean)
        *mean = m1;
    if (var)
        *var = fmax(0.0, m2 / s - m1 * m1);
    return beta * mx + log(s);
}

ds_status ds_calibrate_classifier(int64_t n, int64_t classes, const float *scores,
                                  ds_score_kind kind, const float *labels, double temperature,
                                  ds_classifier_calib *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_calibrate_classifier: out is NULL");
    memset(out, 0, sizeof *out);
    if (!(isfinite(temperature) && temperature > 0))
        return dsi_fail(DS_ERR_ARG, "ds_calibrate_classifier: temperature %g (must be finite "
                        "and > 0)", temperature);
    ds_status st = check_scores(n, classes, scores, kind, labels, "ds_calibrate_classifier");
    int64_t K = classes == 1 ? 2 : classes, right = 0;
    double *l = st ? NULL : malloc((size_t)K * sizeof *l);
    if (st || !l)
        return st ? st : dsi_fail(DS_ERR_NOMEM, "calibration: out of memory");
    double nll = 0, conf_sum[DS_CALIB_BINS] = {0};
    int64_t hits[DS_CALIB_BINS] = {0};
    for (int64_t r = 0; r < n; r++) {
        row_logits(scores, r, classes, kind, l);
        double lse = lse_moments(l, K, 1.0 / temperature, NULL, NULL);
        int64_t best = 0, y = (int64_t)labels[r];
        for (int64_t k = 1; k < K; k++)
            if (l[k] > l[best])
                best = k;
        double conf = exp(l[best] / temperature - lse);
        nll += lse - l[y] / temperature;
        int b = (int)ceil(conf * DS_CALIB_BINS) - 1;
        b = b < 0 ? 0 : b >= DS_CALIB_BINS ? DS_CALIB_BINS - 1 : b;
        out->bins[b].count++;
        conf_sum[b] += conf;
        hits[b] += best == y;
        right += best == y;
    }
    free(l);
    for (int b = 0; b < DS_CALIB_BINS; b++) {
        ds_calib_bin *B = &out->bins[b];
        B->lo = (double)b / DS_CALIB_BINS;
        B->hi = (double)(b + 1) / DS_CALIB_BINS;
        B->confidence = B->count ? conf_sum[b] / (double)B->count : NAN;
        B->accuracy = B->count ? (double)hits[b] / (double)B->count : NAN;
        if (!B->count)
            continue;
        double gap = fabs(B->accuracy - B->confidence);
        out->ece += (double)B->count / (double)n * gap;
        out->mce = fmax(out->mce, gap);
    }
    out->samples = n;
    out->classes = classes;
    out->temperature = temperature;
    out->nll = nll / (double)n;
    out->accuracy = (double)right / (double)n;
    return DS_OK;
}

/* ---- temperature scaling ---- */
/* The mean NLL's derivative g and second derivative h in beta = 1/T:
 * NLL(beta) = mean(lse(beta l) - beta l_y), g = mean(E_p[l] - l_y), h = mean(Var_p[l]). */
static void nll_slope(int64_t n, int64_t K, const double *L, const float *labels, double beta,
                      double *g, double *h)
{
    double sg = 0, sh = 0;
    for (int64_t r = 0; r < n; r++) {
        double m, v;
        lse_moments(L + r * K, K, beta, &m, &v);
        sg += m - L[r * K + (int64_t)labels[r]];
        sh += v;
    }
    *g = sg / (double)n;
    *h = sh / (double)n;
}

/* The root of the increasing g in [lo, hi] (g(lo) < 0 < g(hi)): Newton steps, a geometric
 * bisection whenever a step would leave the bracket. */
static double beta_root(int64_t n, int64_t K, const double *L, const float *labels, double lo,
                        double hi)
{
    double beta = 1.0 > lo && 1.0 < hi ? 1.0 : sqrt(lo * hi);
    for (int it = 0; it < 200 && hi / lo > 1 + 1e-12; it++) {
        double g, h;
        nll_slope(n, K, L, labels, beta, &g, &h);
        if (g == 0)
            return beta;
        if (g < 0)
            lo = beta;
        else
            hi = beta;
        double next = h > 0 ? beta - g / h : NAN;
        if (!(next > lo && next < hi))
            next = sqrt(lo * hi);
        if (fabs(next - beta) <= 1e-12 * beta)
            return next;
        beta = next;
    }
    return beta;
}

ds_status ds_fit_temperature(int64_t n, int64_t classes, const float *scores, ds_score_kind kind,
                             const float *labels, double *temperature)
{
    if (!temperature)
        return dsi_fail(DS_ERR_ARG, "ds_fit_temperature: temperature is NULL");
    *temperature = 1;
    ds_status st = check_scores(n, classes, scores, kind, labels, "ds_fit_temperature");
    int64_t K = classes == 1 ? 2 : classes;
    double *L = st ? NULL : malloc((size_t)(n * K) * sizeof *L);
    if (st || !L)
        return st ? st : dsi_fail(DS_ERR_NOMEM, "temperature scaling: out of memory for %lld "
                                  "rows", (long long)n);
    for (int64_t r = 0; r < n; r++)
        row_logits(scores, r, classes, kind, L + r * K);
    double lo = 1 / T_MAX, hi = 1 / T_MIN, glo, ghi, h;
    nll_slope(n, K, L, labels, lo, &glo, &h);
    nll_slope(n, K, L, labels, hi, &ghi, &h);
    double beta = glo >= 0 ? lo : ghi <= 0 ? hi : beta_root(n, K, L, labels, lo, hi);
    free(L);
    *temperature = 1 / beta;
    return DS_OK;
}
