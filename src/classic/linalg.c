/* linalg.c - small dense linear algebra in double for the classic methods: the symmetric
 * eigen-decomposition of PCA (cyclic Jacobi) and the Cholesky solve of Newton and ridge. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One rotation in the (p, q) plane that zeroes a[p][q]; v's rows p and q follow. */
static void rotate(double *a, int64_t n, double *v, int64_t p, int64_t q)
{
    double apq = a[p * n + q];
    double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
    double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
    double c = 1 / sqrt(t * t + 1), s = t * c;
    for (int64_t k = 0; k < n; k++) {   /* columns p, q */
        double akp = a[k * n + p], akq = a[k * n + q];
        a[k * n + p] = c * akp - s * akq;
        a[k * n + q] = s * akp + c * akq;
    }
    for (int64_t k = 0; k < n; k++) {   /* rows p, q */
        double apk = a[p * n + k], aqk = a[q * n + k];
        a[p * n + k] = c * apk - s * aqk;
        a[q * n + k] = s * apk + c * aqk;
    }
    a[p * n + q] = a[q * n + p] = 0;
    for (int64_t k = 0; k < n; k++) {
        double vp = v[p * n + k], vq = v[q * n + k];
        v[p * n + k] = c * vp - s * vq;
        v[q * n + k] = s * vp + c * vq;
    }
}

static double off_diagonal(const double *a, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (i != j)
                s += a[i * n + j] * a[i * n + j];
    return s;
}

void dsi_sym_eigen(double *a, int64_t n, double *w, double *v)
{
    double scale = 0;
    for (int64_t i = 0; i < n * n; i++)
        scale += a[i] * a[i];
    memset(v, 0, (size_t)(n * n) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i * n + i] = 1;
    for (int sweep = 0; sweep < 100 && off_diagonal(a, n) > 1e-30 * scale; sweep++)
        for (int64_t p = 0; p < n - 1; p++)
            for (int64_t q = p + 1; q < n; q++)
                if (fabs(a[p * n + q]) > 1e-300)
                    rotate(a, n, v, p, q);
    /* selection sort by descending value, rows of v alongside */
    for (int64_t i = 0; i < n; i++)
        w[i] = a[i * n + i];
    for (int64_t i = 0; i < n; i++) {
        int64_t best = i;
        for (int64_t j = i + 1; j < n; j++)
            if (w[j] > w[best])
                best = j;
        if (best != i) {
            double t = w[i];
            w[i] = w[best];
            w[best] = t;
            for (int64_t k = 0; k < n; k++) {
                t = v[i * n + k];
                v[i * n + k] = v[best * n + k];
                v[best * n + k] = t;
            }
        }
        int64_t big = 0;
        for (int64_t k = 1; k < n; k++)
            if (fabs(v[i * n + k]) > fabs(v[i * n + big]))
                big = k;
        if (v[i * n + big] < 0)
            for (int64_t k = 0; k < n; k++)
                v[i * n + k] = -v[i * n + k];
    }
}

bool dsi_chol_solve(double *a, int64_t n, double *b)
{
    for (int64_t j = 0; j < n; j++) {   /* a = L L^T, L in the lower triangle */
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++)
            d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0))
            return false;
        d = sqrt(d);
        a[j * n + j] = d;
#pragma omp parallel for schedule(static) if ((n - j) * j > 1 << 20)
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; k++)
                s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
    }
    dsi_dtrsv_l(false, n, a, n, b);
    dsi_dtrsv_l(true, n, a, n, b);
    return true;
}
