/* svm.c - support vector classification (scikit-learn's SVC, which wraps libsvm): C-SVC
 * with a linear or RBF kernel, solved by SMO with libsvm's second-order working-set
 * selection (Fan, Chen and Lin 2005), no shrinking; more than two classes one-vs-one (a
 * machine per pair of classes, votes), as SVC does. The kernel matrix of a pair is cached
 * whole up to SVM_CACHE entries, else its rows are computed when needed. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SVM_CACHE (1LL << 25)   /* kernel entries (floats) kept for one pair: 128 MB */
#define TAU 1e-12

typedef struct {
    const float *x;
    int64_t f;
    bool rbf;
    double gamma;
} kernel;

static double kval(const kernel *k, const float *a, const float *b)
{
    double s = 0;
    if (k->rbf) {
        for (int64_t j = 0; j < k->f; j++) {
            double t = (double)a[j] - b[j];
            s += t * t;
        }
        return exp(-k->gamma * s);
    }
    for (int64_t j = 0; j < k->f; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* One binary problem: samples idx[0, m) with y = +1 / -1. */
typedef struct {
    const kernel *k;
    const int64_t *idx;
    int64_t m;
    const signed char *y;
    double C;
    float *K;          /* [m, m] when cached, else NULL */
    float *row[2];     /* scratch rows when not cached */
    double *QD;
} problem;

/* Row i of the kernel (not Q: no labels), in slot s when computed. */
static const float *krow(problem *p, int64_t i, int s)
{
    if (p->K)
        return p->K + i * p->m;
    const float *xi = p->k->x + p->idx[i] * p->k->f;
#pragma omp parallel for schedule(static) if (p->m * p->k->f > 1 << 15)
    for (int64_t j = 0; j < p->m; j++)
        p->row[s][j] = (float)kval(p->k, xi, p->k->x + p->idx[j] * p->k->f);
    return p->row[s];
}

static bool upper(const problem *p, const double *a, int64_t t) { return a[t] >= p->C; }
static bool lower(const double *a, int64_t t) { return a[t] <= 0; }

/* libsvm's WSS 2: i, j into *pi, *pj; true when optimal within eps. */
static bool select_pair(problem *p, const double *a, const double *G, double eps, int64_t *pi,
                        int64_t *pj)
{
    const signed char *y = p->y;
    double Gmax = -INFINITY, Gmax2 = -INFINITY, best = INFINITY;
    int64_t i = -1, j = -1;
    for (int64_t t = 0; t < p->m; t++) {
        double v = y[t] > 0 ? (upper(p, a, t) ? -INFINITY : -G[t])
                            : (lower(a, t) ? -INFINITY : G[t]);
        if (v >= Gmax && v > -INFINITY)
            Gmax = v, i = t;
    }
    if (i < 0)
        return true;
    const float *Ki = krow(p, i, 0);
    for (int64_t t = 0; t < p->m; t++) {
        double gd, quad;
        if (y[t] > 0) {
            if (lower(a, t))
                continue;
            gd = Gmax + G[t];
            Gmax2 = G[t] > Gmax2 ? G[t] : Gmax2;
        } else {
            if (upper(p, a, t))
                continue;
            gd = Gmax - G[t];
            Gmax2 = -G[t] > Gmax2 ? -G[t] : Gmax2;
        }
        if (gd > 0) {
            quad = p->QD[i] + p->QD[t] - 2.0 * Ki[t];
            double od = -(gd * gd) / (quad > 0 ? quad : TAU);
            if (od <= best)
                best = od, j = t;
        }
    }
    *pi = i;
    *pj = j;
    return Gmax + Gmax2 < eps || j < 0;
}

/* SMO; alpha [m] out, rho out, iterations returned. */
static int64_t smo(problem *p, double eps, int64_t max_iter, double *a, double *G, double *rho)
{
    const signed char *y = p->y;
    int64_t m = p->m, it = 0;
    double C = p->C;
    for (int64_t t = 0; t < m; t++)
        a[t] = 0, G[t] = -1;
    for (; it < max_iter; it++) {
        int64_t i, j;
        if (select_pair(p, a, G, eps, &i, &j))
            break;
        const float *Ki = krow(p, i, 0), *Kj = krow(p, j, 1);
        double Qij = y[i] * y[j] * (double)Ki[j], ai = a[i], aj = a[j];
        if (y[i] != y[j]) {
            double quad = p->QD[i] + p->QD[j] + 2 * Qij, diff = a[i] - a[j];
            double delta = (-G[i] - G[j]) / (quad > 0 ? quad : TAU);
            a[i] += delta;
            a[j] += delta;
            if (diff > 0) {
                if (a[j] < 0)
                    a[j] = 0, a[i] = diff;
            } else if (a[i] < 0) {
                a[i] = 0, a[j] = -diff;
            }
            if (diff > 0) {
                if (a[i] > C)
                    a[i] = C, a[j] = C - diff;
            } else if (a[j] > C) {
                a[j] = C, a[i] = C + diff;
            }
        } else {
            double quad = p->QD[i] + p->QD[j] - 2 * Qij, sum = a[i] + a[j];
            double delta = (G[i] - G[j]) / (quad > 0 ? quad : TAU);
            a[i] -= delta;
            a[j] += delta;
            if (sum > C) {
                if (a[i] > C)
                    a[i] = C, a[j] = sum - C;
            } else if (a[j] < 0) {
                a[j] = 0, a[i] = sum;
            }
            if (sum > C) {
                if (a[j] > C)
                    a[j] = C, a[i] = sum - C;
            } else if (a[i] < 0) {
                a[i] = 0, a[j] = sum;
            }
        }
        double di = a[i] - ai, dj = a[j] - aj;
        for (int64_t t = 0; t < m; t++)
            G[t] += y[t] * (y[i] * (double)Ki[t] * di + y[j] * (double)Kj[t] * dj);
    }
    double ub = INFINITY, lb = -INFINITY, sum = 0;
    int64_t nfree = 0;
    for (int64_t t = 0; t < m; t++) {
        double yg = y[t] * G[t];
        if (upper(p, a, t)) {
            if (y[t] < 0)
                ub = fmin(ub, yg);
            else
                lb = fmax(lb, yg);
        } else if (lower(a, t)) {
            if (y[t] > 0)
                ub = fmin(ub, yg);
            else
                lb = fmax(lb, yg);
        } else {
            nfree++;
            sum += yg;
        }
    }
    *rho = nfree ? sum / (double)nfree : (ub + lb) / 2;
    return it;
}

/* gamma: the option, or 0 for scikit-learn's "scale", 1 / (F var(X)). */
static double gamma_of(const ds_classic *m, const dsi_classic_data *d)
{
    double g = dsi_classic_num(m, "gamma");
    if (g > 0)
        return g;
    double s = 0, s2 = 0, N = (double)(d->n * d->f);
    for (int64_t i = 0; i < d->n * d->f; i++)
        s += d->x[i];
    s /= N;
    for (int64_t i = 0; i < d->n * d->f; i++)
        s2 += (d->x[i] - s) * (d->x[i] - s);
    s2 /= N;
    return s2 > 0 ? 1 / ((double)d->f * s2) : 1;
}

/* Fits pair (a, b) of classes; its signed dual coefficients (y alpha) into coef [n] by
 * sample (zero elsewhere), rho into *rho. */
static ds_status fit_pair(const ds_classic *m, const dsi_classic_data *d, const kernel *k,
                          int64_t ca, int64_t cb, double *coef, double *rho, int64_t *iters)
{
    int64_t n = d->n, mm = 0;
    for (int64_t i = 0; i < n; i++)
        mm += d->cls[i] == ca || d->cls[i] == cb;
    int64_t *idx = malloc((size_t)(mm + 1) * sizeof *idx);
    signed char *y = malloc((size_t)mm + 1);
    double *a = malloc((size_t)(mm + 1) * sizeof *a), *G = malloc((size_t)(mm + 1) * sizeof *G);
    double *QD = malloc((size_t)(mm + 1) * sizeof *QD);
    bool cache = mm * mm <= SVM_CACHE;
    problem p = {k, idx, mm, y, dsi_classic_num(m, "C"),
                 cache ? malloc((size_t)(mm * mm) * sizeof(float)) : NULL,
                 {cache ? NULL : malloc((size_t)mm * sizeof(float)),
                  cache ? NULL : malloc((size_t)mm * sizeof(float))}, QD};
    ds_status st = DS_OK;
    if (!idx || !y || !a || !G || !QD || (cache ? !p.K : !p.row[0] || !p.row[1])) {
        st = dsi_fail(DS_ERR_NOMEM, "svm: out of memory for %lld samples of classes %lld and "
                      "%lld", (long long)mm, (long long)ca, (long long)cb);
        goto done;
    }
    for (int64_t i = 0, q = 0; i < n; i++)
        if (d->cls[i] == ca || d->cls[i] == cb) {
            idx[q] = i;
            y[q++] = d->cls[i] == ca ? 1 : -1;
        }
    for (int64_t i = 0; i < mm; i++)
        QD[i] = kval(k, d->x + idx[i] * d->f, d->x + idx[i] * d->f);
    if (cache) {
#pragma omp parallel for schedule(dynamic, 16) if (mm * mm * d->f > 1 << 16)
        for (int64_t i = 0; i < mm; i++)
            for (int64_t j = 0; j <= i; j++)
                p.K[i * mm + j] = p.K[j * mm + i] =
                    (float)kval(k, d->x + idx[i] * d->f, d->x + idx[j] * d->f);
    }
    *iters += smo(&p, dsi_classic_num(m, "tol"), (int64_t)dsi_classic_num(m, "max-iter"), a, G,
                  rho);
    for (int64_t q = 0; q < mm; q++)
        coef[idx[q]] = y[q] * a[q];
done:
    free(idx), free(y), free(a), free(G), free(QD), free(p.K), free(p.row[0]), free(p.row[1]);
    return st;
}

static ds_status svm_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    (void)seed;
    int64_t n = d->n, f = d->f, K = m->classes, P = K * (K - 1) / 2;
    if (K < 2)
        return dsi_fail(DS_ERR_ARG, "svm: the labels hold one class only: nothing to separate");
    if (P > 1 << 16)
        return dsi_fail(DS_ERR_ARG, "svm: %lld classes make %lld one-vs-one machines: too many",
                        (long long)K, (long long)P);
    kernel k = {d->x, f, dsi_classic_num(m, "kernel") == 0, gamma_of(m, d)};
    double *coef = calloc((size_t)(P * n), sizeof *coef), *rho = malloc((size_t)P * sizeof *rho);
    int64_t *sv = malloc((size_t)n * sizeof *sv), iters = 0;
    ds_status st = coef && rho && sv ? DS_OK : dsi_fail(DS_ERR_NOMEM, "svm: out of memory");
    for (int64_t a = 0, q = 0; a < K && !st; a++)
        for (int64_t b = a + 1; b < K && !st; b++, q++)
            st = fit_pair(m, d, &k, a, b, coef + q * n, &rho[q], &iters);
    int64_t nsv = 0;
    for (int64_t i = 0; !st && i < n; i++) {
        bool used = false;
        for (int64_t q = 0; q < P; q++)
            used |= coef[q * n + i] != 0;
        if (used)
            sv[nsv++] = i;
    }
    int64_t nz = nsv ? nsv : 1;
    float *X = calloc((size_t)(nz * f), sizeof *X), *D = calloc((size_t)(P * nz), sizeof *D);
    float *R = malloc((size_t)P * sizeof *R), g = (float)k.gamma;
    if (!st && (!X || !D || !R))
        st = dsi_fail(DS_ERR_NOMEM, "svm: out of memory for %lld support vectors", (long long)nsv);
    for (int64_t s = 0; !st && s < nsv; s++) {
        memcpy(X + s * f, d->x + sv[s] * f, (size_t)f * sizeof *X);
        for (int64_t q = 0; q < P; q++)
            D[q * nz + s] = (float)coef[q * n + sv[s]];
    }
    for (int64_t q = 0; !st && q < P; q++)
        R[q] = (float)rho[q];
    int64_t sx[2] = {nz, f}, sd[2] = {P, nz}, one = 1;
    if (!st && !(st = dsi_classic_put(m, "support", 2, sx, X)) &&
        !(st = dsi_classic_put(m, "dual", 2, sd, D)) && !(st = dsi_classic_put(m, "rho", 1, &P, R)) &&
        !(st = dsi_classic_put(m, "gamma", 1, &one, &g)) &&
        !(st = dsi_classic_stat(m, "support_vectors", (double)nsv)))
        st = dsi_classic_stat(m, "iterations", (double)iters);
    free(coef), free(rho), free(sv), free(X), free(D), free(R);
    return st;
}

static int64_t svm_width(const ds_classic *m) { return m->classes; }

/* The scores of scikit-learn's decision_function: two classes (-d, d) with d > 0 for class
 * 1; more, one-vs-one votes plus the summed confidences squashed below 1/3. */
static void svm_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t K = m->classes, P = K * (K - 1) / 2, f = m->features_in;
    const ds_tensor *st = ds_tensor_set_get(m->arrays, "support");
    int64_t ns = st->shape[0];
    const float *X = st->data, *D = dsi_classic_arr(m, "dual", P, ns);
    const float *R = dsi_classic_arr(m, "rho", P, -1), *g = dsi_classic_arr(m, "gamma", 1, -1);
    kernel k = {X, f, dsi_classic_num(m, "kernel") == 0, g[0]};
#pragma omp parallel
    {
        double *kv = malloc((size_t)ns * sizeof *kv), *conf = malloc((size_t)K * sizeof *conf);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float *o = out + i * K;
            if (!kv || !conf) {   /* cannot fail otherwise: predict has no status */
                memset(o, 0, (size_t)K * sizeof *o);
                continue;
            }
            for (int64_t s = 0; s < ns; s++)
                kv[s] = kval(&k, X + s * f, x + i * f);
            memset(conf, 0, (size_t)K * sizeof *conf);
            for (int64_t k2 = 0; k2 < K; k2++)
                o[k2] = 0;
            for (int64_t a = 0, q = 0; a < K; a++)
                for (int64_t b = a + 1; b < K; b++, q++) {
                    double dec = -R[q];
                    for (int64_t s = 0; s < ns; s++)
                        dec += D[q * ns + s] * kv[s];
                    if (K == 2) {
                        o[0] = (float)dec;
                        o[1] = (float)-dec;
                        continue;
                    }
                    o[dec > 0 ? a : b] += 1;
                    conf[a] += dec;
                    conf[b] -= dec;
                }
            for (int64_t c = 0; K > 2 && c < K; c++)
                o[c] += (float)(conf[c] / (3 * (fabs(conf[c]) + 1)));
        }
        free(kv), free(conf);
    }
}

static ds_status svm_check(ds_classic *m, const char *file)
{
    int64_t K = m->classes, P = K * (K - 1) / 2;
    const ds_tensor *t = ds_tensor_set_get(m->arrays, "support");
    if (K < 2 || K > 1 << 16)
        return dsi_fail(DS_ERR_FORMAT, "%s: classic model 'svm': %lld classes", file, (long long)K);
    ds_status st = !t || t->ndim != 2 || t->shape[0] < 1
                       ? dsi_classic_need(m, file, "support", 1, m->features_in)
                       : dsi_classic_need(m, file, "support", t->shape[0], m->features_in);
    if (!st)
        st = dsi_classic_need(m, file, "dual", P, t->shape[0]);
    if (!st)
        st = dsi_classic_need(m, file, "rho", P, -1);
    if (!st)
        st = dsi_classic_need(m, file, "gamma", 1, -1);
    if (!st && !(dsi_classic_arr(m, "gamma", 1, -1)[0] > 0))
        st = dsi_fail(DS_ERR_FORMAT, "%s: classic model 'svm': gamma %g is not positive", file,
                      (double)dsi_classic_arr(m, "gamma", 1, -1)[0]);
    return st;
}

static const dsi_classic_param svm_params[] = {
    {"kernel", "rbf", "rbf|linear", 0, 0, false, "exp(-gamma |x - x'|^2), or x . x'"},
    {"C", "1", NULL, 1e-12, 1e12, false, "the penalty on margin violations (scikit-learn's C)"},
    {"gamma", "0", NULL, 0, 1e12, false, "the RBF kernel's width; 0: scikit-learn's 'scale', "
     "1 / (features x variance of the data)"},
    {"tol", "1e-3", NULL, 1e-12, 1, false, "stop when the KKT violation is below this (libsvm's "
     "eps)"},
    {"max-iter", "10000000", NULL, 1, 1e12, true, "SMO steps per pair of classes at most"},
};

const dsi_classic_method dsi_classic_svm = {
    "svm", "support vector classifier (linear or RBF kernel; SMO; one-vs-one as SVC)",
    DSI_TASK(DS_CLASSIC_CLASSIFY), svm_params, (int)(sizeof svm_params / sizeof *svm_params),
    svm_fit, svm_width, svm_predict, svm_check, NULL};
