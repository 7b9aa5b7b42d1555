/* gmm.c - a Gaussian mixture with full covariances fitted by EM (k-means++ seeds and Lloyd
 * iterations to start, as scikit-learn's GaussianMixture), its draws and its log-likelihood:
 * the density of a VAE's latent codes to sample from (ex-post density estimation). In
 * double precision and in a fixed order: the result depends on the seed only. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GMM_MAX_ITER 200
#define GMM_TOL 1e-4        /* stop when the mean log-likelihood changes less than this */
#define GMM_REG 1e-6        /* added to each covariance's diagonal (scikit-learn's reg_covar) */
#define LLOYD_ITER 20

struct ds_gmm {
    int64_t k, d;
    double *w;              /* [k] weights */
    double *mu;             /* [k, d] means */
    double *L;              /* [k, d, d] Cholesky factors (lower) of the covariances */
    double *logdet_w;       /* [k] log w - sum log diag L - d/2 log 2 pi */
    int iterations;
    double loglik;          /* mean log-likelihood of the fitted data */
};

void ds_gmm_free(ds_gmm *m)
{
    if (!m)
        return;
    free(m->w), free(m->mu), free(m->L), free(m->logdet_w);
    free(m);
}

static ds_gmm *gmm_new(int64_t k, int64_t d)
{
    ds_gmm *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->k = k, m->d = d;
    m->w = malloc(sizeof(double) * (size_t)k);
    m->mu = malloc(sizeof(double) * (size_t)(k * d));
    m->L = calloc((size_t)(k * d * d), sizeof(double));
    m->logdet_w = malloc(sizeof(double) * (size_t)k);
    if (!m->w || !m->mu || !m->L || !m->logdet_w) {
        ds_gmm_free(m);
        return NULL;
    }
    return m;
}

/* In-place Cholesky of a [d, d] (lower triangle used, upper zeroed); false if not positive
 * definite. */
static bool cholesky(double *a, int64_t d)
{
    for (int64_t j = 0; j < d; j++) {
        double s = a[j * d + j];
        for (int64_t p = 0; p < j; p++)
            s -= a[j * d + p] * a[j * d + p];
        if (!(s > 0))
            return false;
        a[j * d + j] = sqrt(s);
        for (int64_t i = j + 1; i < d; i++) {
            double t = a[i * d + j];
            for (int64_t p = 0; p < j; p++)
                t -= a[i * d + p] * a[j * d + p];
            a[i * d + j] = t / a[j * d + j];
        }
        for (int64_t i = 0; i < j; i++)
            a[i * d + j] = 0;
    }
    return true;
}

/* log w_c + log N(x | mu_c, L_c L_c^T) for each component c into lp [k]; tmp [d]. */
static void log_probs(const ds_gmm *m, const float *x, double *lp, double *tmp)
{
    int64_t d = m->d;
    for (int64_t c = 0; c < m->k; c++) {
        const double *L = m->L + c * d * d, *mu = m->mu + c * d;
        double q = 0;
        for (int64_t i = 0; i < d; i++) {   /* tmp = L^-1 (x - mu) */
            double t = x[i] - mu[i];
            for (int64_t p = 0; p < i; p++)
                t -= L[i * d + p] * tmp[p];
            tmp[i] = t / L[i * d + i];
            q += tmp[i] * tmp[i];
        }
        lp[c] = m->logdet_w[c] - 0.5 * q;
    }
}

static double log_sum_exp(const double *v, int64_t k)
{
    double hi = -INFINITY, s = 0;
    for (int64_t c = 0; c < k; c++)
        hi = v[c] > hi ? v[c] : hi;
    for (int64_t c = 0; c < k; c++)
        s += exp(v[c] - hi);
    return hi + log(s);
}

static void set_logdet(ds_gmm *m)
{
    int64_t d = m->d;
    for (int64_t c = 0; c < m->k; c++) {
        double s = 0;
        for (int64_t i = 0; i < d; i++)
            s += log(m->L[c * d * d + i * d + i]);
        m->logdet_w[c] = log(m->w[c]) - s - 0.5 * (double)d * log(2 * M_PI);
    }
}

/* E step: responsibilities r [n, k]; returns the mean log-likelihood. */
static double e_step(const ds_gmm *m, const float *x, int64_t n, double *r)
{
    double tmp[DS_GMM_MAX_DIMS], total = 0;
    for (int64_t i = 0; i < n; i++) {
        double *ri = r + i * m->k;
        log_probs(m, x + i * m->d, ri, tmp);
        double l = log_sum_exp(ri, m->k);
        for (int64_t c = 0; c < m->k; c++)
            ri[c] = exp(ri[c] - l);
        total += l;
    }
    return total / (double)n;
}

/* M step from responsibilities r [n, k]; false if a covariance is not positive definite. */
static bool m_step(ds_gmm *m, const float *x, int64_t n, const double *r)
{
    int64_t k = m->k, d = m->d;
    for (int64_t c = 0; c < k; c++) {
        double nk = 1e-10 * (double)n, *mu = m->mu + c * d, *S = m->L + c * d * d;
        memset(mu, 0, sizeof(double) * (size_t)d);
        memset(S, 0, sizeof(double) * (size_t)(d * d));
        for (int64_t i = 0; i < n; i++) {
            nk += r[i * k + c];
            for (int64_t j = 0; j < d; j++)
                mu[j] += r[i * k + c] * x[i * d + j];
        }
        for (int64_t j = 0; j < d; j++)
            mu[j] /= nk;
        for (int64_t i = 0; i < n; i++) {
            double ric = r[i * k + c], dx[DS_GMM_MAX_DIMS];
            if (ric == 0)
                continue;
            for (int64_t j = 0; j < d; j++)
                dx[j] = x[i * d + j] - mu[j];
            for (int64_t a = 0; a < d; a++)
                for (int64_t b = 0; b <= a; b++)
                    S[a * d + b] += ric * dx[a] * dx[b];
        }
        for (int64_t a = 0; a < d; a++) {
            for (int64_t b = 0; b <= a; b++)
                S[a * d + b] /= nk;
            S[a * d + a] += GMM_REG;
        }
        m->w[c] = nk / (double)n;
        if (!cholesky(S, d))
            return false;
    }
    set_logdet(m);
    return true;
}

static double dist2(const float *a, const double *c, int64_t d)
{
    double s = 0;
    for (int64_t j = 0; j < d; j++)
        s += (a[j] - c[j]) * (a[j] - c[j]);
    return s;
}

/* k-means++ seeds into C [k, d]: each a sample drawn in proportion to its squared distance
 * to the nearest seed so far (best [n]). */
static void plus_plus(const float *x, int64_t n, int64_t d, int64_t k, ds_rng *rng, double *C,
                      double *best)
{
    for (int64_t c = 0; c < k; c++) {
        int64_t pick = (int64_t)ds_rng_below(rng, (uint64_t)n);
        if (c > 0) {
            double pot = 0, cum = 0;
            for (int64_t i = 0; i < n; i++)
                pot += best[i];
            double u = ds_rng_uniform(rng) * pot;
            for (pick = 0; pick < n - 1 && (cum += best[pick]) <= u; pick++)
                ;
        }
        for (int64_t j = 0; j < d; j++)
            C[c * d + j] = x[pick * d + j];
        for (int64_t i = 0; i < n; i++) {
            double s = dist2(x + i * d, C + c * d, d);
            best[i] = c == 0 || s < best[i] ? s : best[i];
        }
    }
}

/* Lloyd's iterations from the centres C: the labels of the last assignment into lab. */
static void lloyd(const float *x, int64_t n, int64_t d, int64_t k, ds_rng *rng, double *C,
                  int64_t *lab, int64_t *cnt)
{
    for (int it = 0; it < LLOYD_ITER; it++) {
        for (int64_t i = 0; i < n; i++) {
            double bd = INFINITY;
            for (int64_t c = 0; c < k; c++) {
                double s = dist2(x + i * d, C + c * d, d);
                if (s < bd)
                    bd = s, lab[i] = c;
            }
        }
        memset(C, 0, sizeof(double) * (size_t)(k * d));
        memset(cnt, 0, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < n; i++) {
            cnt[lab[i]]++;
            for (int64_t j = 0; j < d; j++)
                C[lab[i] * d + j] += x[i * d + j];
        }
        for (int64_t c = 0; c < k; c++)
            for (int64_t j = 0; j < d; j++)   /* an empty cluster takes a random sample */
                C[c * d + j] = cnt[c] ? C[c * d + j] / (double)cnt[c]
                                      : x[(int64_t)ds_rng_below(rng, (uint64_t)n) * d + j];
    }
}

/* The start: k-means, as hard responsibilities in r [n, k]. false: out of memory. */
static bool kmeans_start(const float *x, int64_t n, int64_t d, int64_t k, ds_rng *rng,
                         double *r)
{
    double *C = malloc(sizeof(double) * (size_t)(k * d));
    double *best = malloc(sizeof(double) * (size_t)n);
    int64_t *lab = malloc(sizeof(int64_t) * (size_t)n), *cnt = malloc(sizeof(int64_t) * (size_t)k);
    bool ok = C && best && lab && cnt;
    if (ok) {
        plus_plus(x, n, d, k, rng, C, best);
        lloyd(x, n, d, k, rng, C, lab, cnt);
        memset(r, 0, sizeof(double) * (size_t)(n * k));
        for (int64_t i = 0; i < n; i++)
            r[i * k + lab[i]] = 1;
    }
    free(C), free(best), free(lab), free(cnt);
    return ok;
}

ds_status ds_gmm_fit(const ds_tensor *x, int k, uint64_t seed, ds_gmm **out)
{
    *out = NULL;
    if (!x || x->ndim != 2)
        return dsi_fail(DS_ERR_SHAPE, "ds_gmm_fit: the data must be [samples, dims]%s",
                        x ? "" : " (got none)");
    int64_t n = x->shape[0], d = x->shape[1];
    if (k < 1 || k > DS_GMM_MAX_COMPONENTS || d < 1 || d > DS_GMM_MAX_DIMS ||
        n < (int64_t)k * (d + 1))
        return dsi_fail(DS_ERR_ARG, "ds_gmm_fit: %d components (1 to %d) of %lld dims (1 to "
                        "%d) need at least %lld samples, got %lld", k, DS_GMM_MAX_COMPONENTS,
                        (long long)d, DS_GMM_MAX_DIMS, (long long)k * (d + 1), (long long)n);
    ds_status st = ds_tensor_check_finite(x, "the GMM's data");
    if (st)
        return st;
    ds_gmm *m = gmm_new(k, d);
    double *r = malloc(sizeof(double) * (size_t)(n * k));
    if (!m || !r) {
        ds_gmm_free(m), free(r);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a GMM of %d components", k);
    }
    ds_rng rng;
    ds_rng_seed(&rng, seed);
    if (!kmeans_start(x->data, n, d, k, &rng, r)) {
        ds_gmm_free(m), free(r);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a GMM of %d components", k);
    }
    double prev = -INFINITY;
    bool ok = m_step(m, x->data, n, r);
    for (m->iterations = 1; ok && m->iterations <= GMM_MAX_ITER; m->iterations++) {
        m->loglik = e_step(m, x->data, n, r);
        if (fabs(m->loglik - prev) < GMM_TOL)
            break;
        prev = m->loglik;
        ok = m_step(m, x->data, n, r);
    }
    free(r);
    if (!ok) {
        ds_gmm_free(m);
        return dsi_fail(DS_ERR_VALUE, "ds_gmm_fit: a covariance of the %d components is not "
                        "positive definite (too few distinct samples?)", k);
    }
    *out = m;
    return DS_OK;
}

ds_status ds_gmm_sample(const ds_gmm *m, int64_t count, uint64_t seed, ds_tensor **out)
{
    *out = NULL;
    if (!m || count < 1)
        return dsi_fail(DS_ERR_ARG, "ds_gmm_sample: no GMM or a count of %lld (1 or more)",
                        (long long)count);
    int64_t d = m->d;
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){count, d});
    if (!t)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld draws", (long long)count);
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int64_t i = 0; i < count; i++) {
        double u = ds_rng_uniform(&r), cum = 0, e[DS_GMM_MAX_DIMS];
        int64_t c = 0;
        for (; c < m->k - 1 && (cum += m->w[c]) <= u; c++)
            ;
        for (int64_t j = 0; j < d; j++)
            e[j] = ds_rng_normal(&r);
        const double *L = m->L + c * d * d;
        for (int64_t j = 0; j < d; j++) {
            double v = m->mu[c * d + j];
            for (int64_t p = 0; p <= j; p++)
                v += L[j * d + p] * e[p];
            t->data[i * d + j] = (float)v;
        }
    }
    *out = t;
    return DS_OK;
}

ds_status ds_gmm_score(const ds_gmm *m, const ds_tensor *x, double *mean_loglik)
{
    if (!m || !x || x->ndim != 2 || x->shape[1] != m->d || x->shape[0] < 1)
        return dsi_fail(DS_ERR_SHAPE, "ds_gmm_score: the data must be [samples, %lld]",
                        m ? (long long)m->d : 0LL);
    double lp[DS_GMM_MAX_COMPONENTS], tmp[DS_GMM_MAX_DIMS], s = 0;
    for (int64_t i = 0; i < x->shape[0]; i++) {
        log_probs(m, x->data + i * m->d, lp, tmp);
        s += log_sum_exp(lp, m->k);
    }
    *mean_loglik = s / (double)x->shape[0];
    return DS_OK;
}

int ds_gmm_components(const ds_gmm *m) { return m ? (int)m->k : 0; }
int ds_gmm_iterations(const ds_gmm *m) { return m ? m->iterations : 0; }
