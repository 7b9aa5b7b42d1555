/* blas.c - the BLAS calls the library makes: OpenBLAS by default, our own code in the NO_BLAS
 * build (sgemm.c for sgemm; the double-precision Cholesky pieces of the Newton optimizer
 * here, simple loops since they only serve networks of a few thousand parameters). */
#include "../internal.h"

#ifndef DS_NO_BLAS
#include <cblas.h>
#endif

void dsi_blas_set_threads(int n)
{
#ifndef DS_NO_BLAS
    openblas_set_num_threads(n);
#else
    (void)n;
#endif
}

void dsi_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
               float *c, int64_t ldc)
{
    if (m == 0 || n == 0)
        return;
#ifndef DS_NO_BLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb,
                beta, c, (blasint)ldc);
#else
    dsi_sgemm_own(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

#ifndef DS_NO_BLAS
void dsi_dtrsm_rlt(int64_t m, int64_t n, const double *L, int64_t ldl, double *B, int64_t ldb)
{
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (blasint)m,
                (blasint)n, 1.0, L, (blasint)ldl, B, (blasint)ldb);
}

void dsi_dsyrk_ln(int64_t n, int64_t k, const double *A, int64_t lda, double *C, int64_t ldc)
{
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (blasint)n, (blasint)k, -1.0, A,
                (blasint)lda, 1.0, C, (blasint)ldc);
}

void dsi_dtrsv_l(bool trans, int64_t n, const double *L, int64_t ldl, double *x)
{
    cblas_dtrsv(CblasRowMajor, CblasLower, trans ? CblasTrans : CblasNoTrans, CblasNonUnit,
                (blasint)n, L, (blasint)ldl, x, 1);
}
#else
/* Each row b of B: x L^T = b, i.e. L x^T = b^T, by forward substitution. */
void dsi_dtrsm_rlt(int64_t m, int64_t n, const double *L, int64_t ldl, double *B, int64_t ldb)
{
    for (int64_t r = 0; r < m; r++) {
        double *x = B + r * ldb;
        for (int64_t j = 0; j < n; j++) {
            double s = x[j];
            for (int64_t q = 0; q < j; q++)
                s -= L[j * ldl + q] * x[q];
            x[j] = s / L[j * ldl + j];
        }
    }
}

/* Columns of C in blocks of SYRK_J: the block's rows of A are transposed into T on the
 * stack, so that the update of row i is an axpy over contiguous j (it vectorizes). */
#define SYRK_J 32
#define SYRK_P 64
void dsi_dsyrk_ln(int64_t n, int64_t k, const double *A, int64_t lda, double *C, int64_t ldc)
{
    double T[SYRK_P][SYRK_J];
    for (int64_t j0 = 0; j0 < n; j0 += SYRK_J) {
        int64_t jn = n - j0 < SYRK_J ? n - j0 : SYRK_J;
        for (int64_t p0 = 0; p0 < k; p0 += SYRK_P) {
            int64_t pn = k - p0 < SYRK_P ? k - p0 : SYRK_P;
            for (int64_t p = 0; p < pn; p++)
                for (int64_t j = 0; j < jn; j++)
                    T[p][j] = A[(j0 + j) * lda + p0 + p];
            for (int64_t i = j0; i < n; i++) {
                double *c = C + i * ldc + j0;
                int64_t w = i - j0 + 1 < jn ? i - j0 + 1 : jn;   /* lower triangle: j <= i */
                for (int64_t p = 0; p < pn; p++) {
                    double a = A[i * lda + p0 + p];
                    for (int64_t j = 0; j < w; j++)
                        c[j] -= a * T[p][j];
                }
            }
        }
    }
}

void dsi_dtrsv_l(bool trans, int64_t n, const double *L, int64_t ldl, double *x)
{
    if (!trans) {
        for (int64_t j = 0; j < n; j++) {
            double s = x[j];
            for (int64_t q = 0; q < j; q++)
                s -= L[j * ldl + q] * x[q];
            x[j] = s / L[j * ldl + j];
        }
    } else {
        /* L^T is upper triangular: back substitution, column j of L read down its rows. */
        for (int64_t j = n - 1; j >= 0; j--) {
            x[j] /= L[j * ldl + j];
            for (int64_t q = 0; q < j; q++)
                x[q] -= L[j * ldl + q] * x[j];
        }
    }
}
#endif
