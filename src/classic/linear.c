/* linear.c - linear models: multinomial logistic regression with an L2 penalty (L-BFGS or
 * Newton, as scikit-learn's LogisticRegression) and ridge regression (scikit-learn's Ridge,
 * and RidgeClassifier for classes: targets -1/+1 per class). Sums run in double, split by
 * output so that no result depends on the thread count. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- logistic ---- */

/* The objective, scaled by 1/n:  f = (1/n) sum_i -log p_i[y_i] + ||W||^2 / (2 C n), with
 * p_i = softmax(W x_i + b). theta = [W (K x F), b (K)]. */
typedef struct {
    const dsi_classic_data *d;
    int64_t K, F;
    double C;
    double *P;      /* [n, K] probabilities minus the one-hot labels, after eval */
    double *part;   /* the loss of each chunk of samples, added in order */
} logit_ctx;

/* f at theta; the gradient into g. */
static double logit_eval(logit_ctx *c, const double *theta, double *g)
{
    const dsi_classic_data *d = c->d;
    int64_t n = d->n, K = c->K, F = c->F;
    const double *W = theta, *b = theta + K * F;
    double loss = 0;
#pragma omp parallel for schedule(static) if (n * K * F > 1 << 20)
    for (int64_t ch = 0; ch < dsi_chunks(n); ch++) {
        double part = 0;
        for (int64_t i = ch * DSI_CHUNK; i < n && i < (ch + 1) * DSI_CHUNK; i++) {
            double *p = c->P + i * K, mx = -INFINITY, s = 0;
            const float *x = d->x + i * F;
            for (int64_t k = 0; k < K; k++) {
                double z = b[k];
                for (int64_t j = 0; j < F; j++)
                    z += W[k * F + j] * x[j];
                p[k] = z;
                mx = z > mx ? z : mx;
            }
            double zy = p[d->cls[i]] - mx;
            for (int64_t k = 0; k < K; k++)
                s += (p[k] = exp(p[k] - mx));
            part += log(s) - zy;
            for (int64_t k = 0; k < K; k++)
                p[k] = p[k] / s - (k == d->cls[i]);
        }
        c->part[ch] = part;
    }
    for (int64_t ch = 0; ch < dsi_chunks(n); ch++)
        loss += c->part[ch];
    double reg = 0;
    for (int64_t a = 0; a < K * F; a++)
        reg += W[a] * W[a];
    double inv_n = 1.0 / (double)n, lam = 1.0 / (c->C * (double)n);
#pragma omp parallel for schedule(static) if (n * K * F > 1 << 20)
    for (int64_t j = 0; j <= F; j++) {   /* column j of the gradient (F: the intercepts) */
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++)
                s += c->P[i * K + k] * (j < F ? d->x[i * F + j] : 1.0);
            if (j < F)
                g[k * F + j] = s * inv_n + lam * W[k * F + j];
            else
                g[K * F + k] = s * inv_n;
        }
    }
    return loss * inv_n + 0.5 * lam * reg;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Backtracking (Armijo) along dir from theta (f, g there) into theta; false if no step
 * decreases f. */
static bool line_search(logit_ctx *c, double *theta, double *f, double *g, const double *dir,
                        double step, double *work, double *gnew, int64_t P)
{
    double slope = dot(g, dir, P);
    if (!(slope < 0))
        return false;
    for (int t = 0; t < 60; t++, step *= 0.5) {
        for (int64_t a = 0; a < P; a++)
            work[a] = theta[a] + step * dir[a];
        double fn = logit_eval(c, work, gnew);
        if (fn <= *f + 1e-4 * step * slope) {
            memcpy(theta, work, (size_t)P * sizeof *theta);
            memcpy(g, gnew, (size_t)P * sizeof *g);
            *f = fn;
            return true;
        }
    }
    return false;
}

/* L-BFGS with 10 pairs; stops when the largest gradient component is below tol. */
static int lbfgs(logit_ctx *c, double *theta, int64_t P, int max_iter, double tol, double *buf)
{
    enum { M = 10 };
    double *g = buf, *dir = g + P, *work = dir + P, *gnew = work + P, *S = gnew + P;
    double *Y = S + M * P, rho[M], alpha[M];
    double f = logit_eval(c, theta, g);
    int it = 0, used = 0, head = 0;
    for (; it < max_iter && max_abs(g, P) > tol; it++) {
        for (int64_t a = 0; a < P; a++)
            dir[a] = -g[a];
        for (int q = 0; q < used; q++) {   /* newest first */
            int k = (head - 1 - q + M) % M;
            alpha[k] = rho[k] * dot(S + k * P, dir, P);
            for (int64_t a = 0; a < P; a++)
                dir[a] -= alpha[k] * Y[k * P + a];
        }
        if (used) {
            int k = (head - 1 + M) % M;
            double gamma = dot(S + k * P, Y + k * P, P) / dot(Y + k * P, Y + k * P, P);
            for (int64_t a = 0; a < P; a++)
                dir[a] *= gamma;
        }
        for (int q = used - 1; q >= 0; q--) {
            int k = (head - 1 - q + M) % M;
            double beta = rho[k] * dot(Y + k * P, dir, P);
            for (int64_t a = 0; a < P; a++)
                dir[a] += (alpha[k] - beta) * S[k * P + a];
        }
        double *s = S + head * P, *y = Y + head * P;
        memcpy(s, theta, (size_t)P * sizeof *s);
        memcpy(y, g, (size_t)P * sizeof *y);
        double step = used ? 1.0 : 1.0 / fmax(1.0, max_abs(g, P));
        if (!line_search(c, theta, &f, g, dir, step, work, gnew, P))
            break;
        for (int64_t a = 0; a < P; a++) {
            s[a] = theta[a] - s[a];
            y[a] = g[a] - y[a];
        }
        double sy = dot(s, y, P);
        if (sy > 1e-300) {
            rho[head] = 1 / sy;
            head = (head + 1) % M;
            used += used < M;
        }
    }
    return it;
}

/* The Hessian of logit_eval at the probabilities of its last call (P = probs - onehot, so
 * the probabilities are P + onehot), plus the penalty, into H [Q, Q], Q = K (F + 1), laid
 * out per class as [w_k, b_k]. Block (k, l) is (1/n) sum_i c_i x~_i x~_i^T with x~ = (x, 1)
 * and c_i = p_k (delta_kl - p_l): c >= 0 on the diagonal, <= 0 off it, so each block is
 * -+ A A^T with A's column i = sqrt(|c_i|) x~_i: one syrk (BLAS) per block and chunk of
 * samples, in a fixed order. A: F1 x HESS_CHUNK doubles, blk: F1 x F1. */
#define HESS_CHUNK 2048
static void logit_hessian(const logit_ctx *c, double *H, int64_t Q, double *A, double *blk)
{
    const dsi_classic_data *d = c->d;
    int64_t n = d->n, K = c->K, F = c->F, F1 = F + 1;
    double inv_n = 1.0 / (double)n, lam = 1.0 / (c->C * (double)n);
    for (int64_t k = 0; k < K; k++)
        for (int64_t l = 0; l <= k; l++) {
            memset(blk, 0, (size_t)(F1 * F1) * sizeof *blk);
            for (int64_t i0 = 0; i0 < n; i0 += HESS_CHUNK) {
                int64_t m = n - i0 < HESS_CHUNK ? n - i0 : HESS_CHUNK;
                for (int64_t i = 0; i < m; i++) {
                    const double *p = c->P + (i0 + i) * K;
                    int64_t y = d->cls[i0 + i];
                    double pk = p[k] + (k == y), pl = p[l] + (l == y);
                    double s = sqrt(fabs(pk * ((k == l) - pl)));
                    const float *x = d->x + (i0 + i) * F;
                    for (int64_t q = 0; q < F; q++)
                        A[q * m + i] = s * x[q];
                    A[F * m + i] = s;
                }
                dsi_dsyrk_ln(F1, m, A, m, blk, F1);   /* blk -= A A^T (lower triangle) */
            }
            double sign = k == l ? -inv_n : inv_n;
            for (int64_t a = 0; a < F1; a++)
                for (int64_t b = 0; b <= a; b++) {
                    double v = sign * blk[a * F1 + b];
                    H[(k * F1 + a) * Q + l * F1 + b] = H[(l * F1 + b) * Q + k * F1 + a] = v;
                    H[(k * F1 + b) * Q + l * F1 + a] = H[(l * F1 + a) * Q + k * F1 + b] = v;
                }
        }
    for (int64_t r = 0; r < Q; r++)   /* the intercepts' shift along all classes is free */
        H[r * Q + r] += r % F1 < F ? lam : 1e-10;
}

/* Newton's method with a backtracking line search. theta's layout: [W (K x F), b (K)]; the
 * Hessian's: per class [w_k, b_k], so the step is permuted on the way. */
static int newton(logit_ctx *c, double *theta, int64_t Q, int max_iter, double tol, double *buf)
{
    int64_t K = c->K, F = c->F, F1 = F + 1;
    double *g = buf, *dir = g + Q, *work = dir + Q, *gnew = work + Q, *H = gnew + Q;
    double *A = H + Q * Q, *blk = A + F1 * HESS_CHUNK;
    double f = logit_eval(c, theta, g);
    int it = 0;
    for (; it < max_iter && max_abs(g, Q) > tol; it++) {
        logit_hessian(c, H, Q, A, blk);
        for (int64_t k = 0; k < K; k++) {
            for (int64_t j = 0; j < F; j++)
                dir[k * F1 + j] = -g[k * F + j];
            dir[k * F1 + F] = -g[K * F + k];
        }
        if (!dsi_chol_solve(H, Q, dir))
            break;
        memcpy(work, dir, (size_t)Q * sizeof *work);
        for (int64_t k = 0; k < K; k++) {
            for (int64_t j = 0; j < F; j++)
                dir[k * F + j] = work[k * F1 + j];
            dir[K * F + k] = work[k * F1 + F];
        }
        if (!line_search(c, theta, &f, g, dir, 1.0, work, gnew, Q))
            break;
    }
    return it;
}

static ds_status logistic_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    (void)seed;
    int64_t K = m->classes, F = d->f, P = K * (F + 1);
    if (K < 2)
        return dsi_fail(DS_ERR_ARG, "logistic: the labels hold one class only (%lld): nothing "
                        "to separate", (long long)K - 1);
    bool nt = dsi_classic_num(m, "solver") == 1;
    if (nt && P > 6000)
        return dsi_fail(DS_ERR_ARG, "logistic: solver newton would build a Hessian of %lld x "
                        "%lld for %lld classes and %lld features: use solver=lbfgs",
                        (long long)P, (long long)P, (long long)K, (long long)F);
    size_t F1 = (size_t)F + 1;
    size_t work = nt ? (size_t)P * (4 + (size_t)P) + F1 * (HESS_CHUNK + F1)
                     : (size_t)P * (4 + 20);
    double *theta = calloc((size_t)P, sizeof *theta), *buf = malloc(work * sizeof *buf);
    logit_ctx c = {d, K, F, dsi_classic_num(m, "C"), malloc((size_t)(d->n * K) * sizeof(double)),
                   malloc((size_t)dsi_chunks(d->n) * sizeof(double))};
    ds_status st = DS_OK;
    if (!theta || !buf || !c.P || !c.part) {
        st = dsi_fail(DS_ERR_NOMEM, "logistic: out of memory for %lld parameters",
                      (long long)P);
        goto done;
    }
    int max_iter = (int)dsi_classic_num(m, "max-iter");
    double tol = dsi_classic_num(m, "tol");
    int it = nt ? newton(&c, theta, P, max_iter, tol, buf) : lbfgs(&c, theta, P, max_iter, tol, buf);
    double mean_b = 0;
    for (int64_t k = 0; k < K; k++)
        mean_b += theta[K * F + k] / (double)K;
    float *w = malloc((size_t)P * sizeof *w);
    if (!w) {
        st = dsi_fail(DS_ERR_NOMEM, "logistic: out of memory");
        goto done;
    }
    for (int64_t a = 0; a < K * F; a++)
        w[a] = (float)theta[a];
    for (int64_t k = 0; k < K; k++)   /* the intercepts' free shift: centred, as scikit-learn */
        w[K * F + k] = (float)(theta[K * F + k] - mean_b);
    int64_t s2[2] = {K, F};
    if (!(st = dsi_classic_put(m, "coef", 2, s2, w)) &&
        !(st = dsi_classic_put(m, "intercept", 1, &K, w + K * F)))
        st = dsi_classic_stat(m, "iterations", it);
    free(w);
done:
    free(theta);
    free(buf);
    free(c.P);
    free(c.part);
    return st;
}

static int64_t linear_width(const ds_classic *m)
{
    return m->task == DS_CLASSIC_CLASSIFY ? m->classes : m->outputs;
}

/* z [n, R] = x W^T + b for W [R, F]: sgemm (rows independent, any thread count). */
static void affine(const ds_classic *m, const float *x, int64_t n, int64_t R, float *z)
{
    int64_t F = m->features_in;
    const float *W = dsi_classic_arr(m, "coef", R, F), *b = dsi_classic_arr(m, "intercept", R, -1);
    for (int64_t i = 0; i < n; i++)
        memcpy(z + i * R, b, (size_t)R * sizeof *z);
    dsi_sgemm(false, true, n, R, F, 1.0f, x, F, W, F, 1.0f, z, R);
}

static void logistic_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t K = m->classes;
    affine(m, x, n, K, out);
    for (int64_t i = 0; i < n; i++) {
        float *p = out + i * K, mx = p[0];
        double s = 0;
        for (int64_t k = 1; k < K; k++)
            mx = p[k] > mx ? p[k] : mx;
        for (int64_t k = 0; k < K; k++)
            s += exp((double)p[k] - mx);
        for (int64_t k = 0; k < K; k++)
            p[k] = (float)(exp((double)p[k] - mx) / s);
    }
}

static ds_status linear_check(ds_classic *m, const char *file)
{
    int64_t R = m->task == DS_CLASSIC_CLASSIFY ? m->classes : m->outputs;
    if (!strcmp(m->method->name, "linear") && m->task == DS_CLASSIC_CLASSIFY && R == 2)
        R = 1;
    ds_status st = dsi_classic_need(m, file, "coef", R, m->features_in);
    return st ? st : dsi_classic_need(m, file, "intercept", R, -1);
}

static const dsi_classic_param logistic_params[] = {
    {"C", "1", NULL, 1e-12, 1e12, false, "inverse strength of the L2 penalty on the "
     "coefficients (scikit-learn's C)"},
    {"solver", "lbfgs", "lbfgs|newton", 0, 0, false, "L-BFGS, or Newton's method (exact "
     "Hessian; up to 6000 parameters)"},
    {"max-iter", "1000", NULL, 1, 1e6, true, "iterations at most"},
    {"tol", "1e-8", NULL, 0, 1, false, "stop when the largest gradient component of the mean "
     "loss is below this"},
};

const dsi_classic_method dsi_classic_logistic = {
    "logistic", "multinomial logistic regression, L2 penalty (L-BFGS or Newton)",
    DSI_TASK(DS_CLASSIC_CLASSIFY), logistic_params,
    (int)(sizeof logistic_params / sizeof *logistic_params), logistic_fit, linear_width,
    logistic_predict, linear_check, NULL};

/* ---- ridge ---- */

/* Ridge on centred data: (Xc^T Xc + alpha I) W^T = Xc^T Yc, b = mean(Y) - W mean(X).
 * Y: values [n, R], or for classes -1/+1 per class (one column, class 1, for two). */
static ds_status ridge_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    (void)seed;
    int64_t n = d->n, F = d->f, K = m->classes;
    int64_t R = m->task == DS_CLASSIC_CLASSIFY ? (K == 2 ? 1 : K) : d->t;
    if (m->task == DS_CLASSIC_CLASSIFY && K < 2)
        return dsi_fail(DS_ERR_ARG, "linear: the labels hold one class only: nothing to "
                        "separate");
    double alpha = dsi_classic_num(m, "alpha");
    double *A = calloc((size_t)(F * n), sizeof *A), *G = calloc((size_t)(F * F), sizeof *G);
    double *mx = calloc((size_t)F, sizeof *mx), *my = calloc((size_t)R, sizeof *my);
    double *B = calloc((size_t)(F * R), sizeof *B), *rhs = malloc((size_t)F * sizeof *rhs);
    double *Gc = malloc((size_t)(F * F) * sizeof *Gc);
    float *w = malloc((size_t)(R * (F + 1)) * sizeof *w);
    ds_status st = DS_OK;
    if (!A || !G || !mx || !my || !B || !rhs || !Gc || !w) {
        st = dsi_fail(DS_ERR_NOMEM, "linear: out of memory for %lld samples of %lld features",
                      (long long)n, (long long)F);
        goto done;
    }
#define YV(i, r) (m->task == DS_CLASSIC_CLASSIFY                                            \
                      ? (d->cls[i] == (K == 2 ? 1 : (r)) ? 1.0 : -1.0) : (double)d->y[(i) * R + (r)])
    for (int64_t j = 0; j < F; j++) {
        for (int64_t i = 0; i < n; i++)
            mx[j] += d->x[i * F + j];
        mx[j] /= (double)n;
        for (int64_t i = 0; i < n; i++)
            A[j * n + i] = d->x[i * F + j] - mx[j];   /* Xc^T: [F, n] */
    }
    for (int64_t r = 0; r < R; r++) {
        for (int64_t i = 0; i < n; i++)
            my[r] += YV(i, r);
        my[r] /= (double)n;
    }
    dsi_dsyrk_ln(F, n, A, n, G, F);   /* G = -Xc^T Xc, lower triangle */
#pragma omp parallel for schedule(static) if (F * n * R > 1 << 16)
    for (int64_t j = 0; j < F; j++)
        for (int64_t r = 0; r < R; r++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++)
                s += A[j * n + i] * (YV(i, r) - my[r]);
            B[r * F + j] = s;
        }
#undef YV
    for (int64_t r = 0; r < R && !st; r++) {
        for (int64_t i = 0; i < F; i++)
            for (int64_t j = 0; j <= i; j++)
                Gc[i * F + j] = Gc[j * F + i] = -G[i * F + j] + (i == j ? alpha : 0);
        memcpy(rhs, B + r * F, (size_t)F * sizeof *rhs);
        if (!dsi_chol_solve(Gc, F, rhs)) {
            st = dsi_fail(DS_ERR_VALUE, "linear: X^T X + alpha I is singular (alpha %g): give "
                          "alpha > 0, or leave out constant and repeated features", alpha);
            break;
        }
        double b = my[r];
        for (int64_t j = 0; j < F; j++) {
            w[r * F + j] = (float)rhs[j];
            b -= rhs[j] * mx[j];
        }
        w[R * F + r] = (float)b;
    }
    int64_t s2[2] = {R, F};
    if (!st && !(st = dsi_classic_put(m, "coef", 2, s2, w)))
        st = dsi_classic_put(m, "intercept", 1, &R, w + R * F);
done:
    free(A), free(G), free(mx), free(my), free(B), free(rhs), free(Gc), free(w);
    return st;
}

static void ridge_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t K = m->classes;
    if (m->task != DS_CLASSIC_CLASSIFY || K > 2) {
        affine(m, x, n, m->task == DS_CLASSIC_CLASSIFY ? K : m->outputs, out);
        return;
    }
    int64_t F = m->features_in;   /* two classes: one decision value z, scores (-z, z) */
    const float *W = dsi_classic_arr(m, "coef", 1, F), *b = dsi_classic_arr(m, "intercept", 1, -1);
    for (int64_t i = 0; i < n; i++) {
        double z = b[0];
        for (int64_t j = 0; j < F; j++)
            z += (double)W[j] * x[i * F + j];
        out[2 * i] = (float)-z;
        out[2 * i + 1] = (float)z;
    }
}

static const dsi_classic_param ridge_params[] = {
    {"alpha", "1", NULL, 0, 1e12, false, "strength of the L2 penalty (scikit-learn's alpha)"},
    {"task", "auto", "auto|classify|regress", 0, 0, false, "classify (targets -1/+1 per "
     "class, as RidgeClassifier) or regress; auto: classify integer labels"},
};

const dsi_classic_method dsi_classic_linear = {
    "linear", "ridge regression (least squares with an L2 penalty); classes as RidgeClassifier",
    DSI_TASK(DS_CLASSIC_CLASSIFY) | DSI_TASK(DS_CLASSIC_REGRESS), ridge_params,
    (int)(sizeof ridge_params / sizeof *ridge_params), ridge_fit, linear_width, ridge_predict,
    linear_check, NULL};
