/* test_sgemm.c - our own sgemm (src/blas/sgemm.c, called directly in every build) and the
 * library's dsi_sgemm against a double-precision reference: every transpose combination,
 * odd shapes across the block edges, alpha/beta, padded leading dimensions; results that do
 * not depend on the thread count; the Cholesky helpers of blas.c. */
#include "test.h"

#include "../src/internal.h"

#include <float.h>

typedef void (*gemm_fn)(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc);

typedef struct {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    int64_t pad;       /* extra columns in every leading dimension, filled with NaN */
} gemm_case;

/* A rows x cols matrix with leading dimension cols + pad; the padding holds NaN, so that a
 * read past a row shows up in the result. */
static float *matrix(int64_t rows, int64_t cols, int64_t pad, ds_rng *r)
{
    int64_t ld = cols + pad;
    float *x = malloc((size_t)(rows * ld > 0 ? rows * ld : 1) * sizeof *x);
    if (!x)
        return NULL;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++)
            x[i * ld + j] = j < cols ? (float)(2 * ds_rng_uniform(r) - 1) : NAN;
    return x;
}

/* Checks c against the reference computed in double from a, b and c0 (C on entry). The
 * bound is that of any summation order in float: (k + 2) eps (|alpha| sum |a b| + |beta c|). */
static int check_case(gemm_fn fn, const char *what, const gemm_case *t, uint64_t seed,
                      char *msg_, size_t cap_)
{
    ds_rng r;
    ds_rng_seed(&r, seed);
    int64_t ar = t->ta ? t->k : t->m, ac = t->ta ? t->m : t->k;
    int64_t br = t->tb ? t->n : t->k, bc = t->tb ? t->k : t->n;
    int64_t lda = ac + t->pad, ldb = bc + t->pad, ldc = t->n + t->pad;
    float *a = matrix(ar, ac, t->pad, &r), *b = matrix(br, bc, t->pad, &r);
    float *c = matrix(t->m, t->n, t->pad, &r), *c0 = matrix(t->m, t->n, t->pad, &r);
    int rc = 0;
    if (!a || !b || !c || !c0) {
        snprintf(msg_, cap_, "out of memory");
        rc = 1;
        goto done;
    }
    if (t->beta == 0.0f)   /* beta 0: C is never read, NaN in it must not come through */
        for (int64_t i = 0; i < t->m * ldc; i++)
            c[i] = NAN;
    memcpy(c0, c, (size_t)(t->m * ldc) * sizeof *c);
    fn(t->ta, t->tb, t->m, t->n, t->k, t->alpha, a, lda, b, ldb, t->beta, c, ldc);
    for (int64_t i = 0; i < t->m && !rc; i++)
        for (int64_t j = 0; j < ldc && !rc; j++) {
            double got = c[i * ldc + j];
            if (j >= t->n) {   /* padding of C: untouched */
                if (!isnan(got)) {
                    snprintf(msg_, cap_, "%s: wrote C's padding at (%lld, %lld)", what,
                             (long long)i, (long long)j);
                    rc = 1;
                }
                continue;
            }
            double s = 0, mag = 0;
            for (int64_t p = 0; p < t->k; p++) {
                double x = t->ta ? a[p * lda + i] : a[i * lda + p];
                double y = t->tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y;
                mag += fabs(x * y);
            }
            double c_in = t->beta == 0.0f ? 0 : c0[i * ldc + j];
            double want = t->alpha * s + t->beta * c_in;
            double tol = (double)(t->k + 2) * FLT_EPSILON *
                         (fabs(t->alpha) * mag + fabs(t->beta * c_in)) + 1e-30;
            if (!(fabs(got - want) <= tol)) {
                snprintf(msg_, cap_, "%s ta=%d tb=%d m=%lld n=%lld k=%lld alpha=%g beta=%g "
                         "pad=%lld: C[%lld][%lld] = %.9g, reference %.9g (tol %.3g)", what,
                         t->ta, t->tb, (long long)t->m, (long long)t->n, (long long)t->k,
                         t->alpha, t->beta, (long long)t->pad, (long long)i, (long long)j, got,
                         want, tol);
                rc = 1;
            }
        }
done:
    free(a);
    free(b);
    free(c);
    free(c0);
    return rc;
}

/* Shapes around the kernel's tile (6 x 16 or 6 x 32), the blocks (k 256, rows 144, columns
 * 3072), C^T computed for C with few columns, and degenerate ones; each with all four
 * transpose combinations. */
static const int64_t shapes[][3] = {
    {1, 1, 1}, {1, 17, 3}, {7, 1, 5}, {6, 16, 1}, {5, 15, 7}, {13, 33, 29}, {37, 50, 257},
    {145, 19, 40}, {150, 70, 300}, {3, 5, 0}, {64, 100, 9}, {7, 3100, 20}, {100, 5, 30},
    {300, 9, 270},
};

TEST(sgemm_own_matches_double_reference)
{
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tr = 0; tr < 4; tr++) {
            gemm_case t = {tr & 1, tr >> 1, shapes[s][0], shapes[s][1], shapes[s][2],
                           1.0f, 0.0f, (int64_t)(s % 3)};
            static const float ab[][2] = {{1, 0}, {-0.5f, 1}, {2, 0.25f}, {0, -1}};
            t.alpha = ab[(s + (size_t)tr) % 4][0];
            t.beta = ab[(s + (size_t)tr) % 4][1];
            CHECK_OK(check_case(dsi_sgemm_own, "own sgemm", &t, 100 + s * 4 + (size_t)tr,
                                msg_, cap_));
            cases++;
        }
    snprintf(msg_, cap_, "%d products", cases);
    return TEST_PASS;
}

/* The library's sgemm (OpenBLAS, or ours in the NO_BLAS build) on the same kind of cases. */
TEST(sgemm_library_matches_double_reference)
{
    for (int tr = 0; tr < 4; tr++) {
        gemm_case t = {tr & 1, tr >> 1, 29, 41, 67, 1.5f, tr == 2 ? 0.0f : 0.5f, 3};
        CHECK_OK(check_case(dsi_sgemm, "dsi_sgemm", &t, 7 + (uint64_t)tr, msg_, cap_));
    }
    return TEST_PASS;
}

/* Products large enough to be split over threads give the same bits on 1 and 2 threads,
 * and inside a parallel region (where they run on the calling thread). */
TEST(sgemm_own_same_bits_any_thread_count)
{
    const int64_t m = 150, n = 260, k = 300;
    ds_rng r;
    ds_rng_seed(&r, 3);
    float *a = matrix(k, m, 0, &r), *b = matrix(n, k, 0, &r);
    float *c[3] = {calloc((size_t)(m * n), sizeof(float)), calloc((size_t)(m * n), sizeof(float)),
                   calloc((size_t)(m * n), sizeof(float))};
    int keep = ds_get_num_threads(), rc = TEST_PASS;
    if (!a || !b || !c[0] || !c[1] || !c[2]) {
        snprintf(msg_, cap_, "out of memory");
        rc = TEST_FAIL;
        goto done;
    }
    ds_set_num_threads(1);
    dsi_sgemm_own(true, true, m, n, k, 1.0f, a, m, b, k, 0.0f, c[0], n);
    ds_set_num_threads(2);
    dsi_sgemm_own(true, true, m, n, k, 1.0f, a, m, b, k, 0.0f, c[1], n);
#ifdef _OPENMP
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        dsi_sgemm_own(true, true, m, n, k, 1.0f, a, m, b, k, 0.0f, c[2], n);
    }
#else
    dsi_sgemm_own(true, true, m, n, k, 1.0f, a, m, b, k, 0.0f, c[2], n);
#endif
    for (int v = 1; v < 3 && rc == TEST_PASS; v++)
        if (memcmp(c[0], c[v], (size_t)(m * n) * sizeof(float)) != 0) {
            snprintf(msg_, cap_, "%s differs from 1 thread", v == 1 ? "2 threads" :
                     "a call inside a parallel region");
            rc = TEST_FAIL;
        }
done:
    ds_set_num_threads(keep);
    free(a);
    free(b);
    for (int v = 0; v < 3; v++)
        free(c[v]);
    return rc;
}

/* Without memory for the packed panels it still computes the product (unblocked). */
TEST(sgemm_own_without_workspace_memory)
{
    gemm_case t[2] = {{false, true, 20, 30, 40, 1.0f, 0.5f, 1},
                      {true, false, 40, 3, 20, 1.0f, 0.5f, 1}};   /* C^T computed */
    ds_set_memory_limit(64);   /* every packed buffer is larger */
    int rc = check_case(dsi_sgemm_own, "own sgemm, no workspace", &t[0], 11, msg_, cap_) ||
             check_case(dsi_sgemm_own, "own sgemm, no workspace", &t[1], 12, msg_, cap_);
    ds_set_memory_limit(0);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* blas.c's Cholesky pieces (OpenBLAS or our loops): a lower triangular L with a strong
 * diagonal; dtrsm, dsyrk and dtrsv against their definitions. */
TEST(blas_cholesky_helpers)
{
    enum { N = 70, M = 9, K = 75 };
    static double L[N * N], B[M * N], B0[M * N], A[N * K], C[N * N], C0[N * N], x[N], x0[N];
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            L[i * N + j] = j > i ? 1e300 : j == i ? 2 + ds_rng_uniform(&r) : ds_rng_uniform(&r) - 0.5;
    for (int i = 0; i < M * N; i++)
        B[i] = B0[i] = ds_rng_uniform(&r) - 0.5;
    for (int i = 0; i < N * K; i++)
        A[i] = ds_rng_uniform(&r) - 0.5;
    for (int i = 0; i < N * N; i++)
        C[i] = C0[i] = ds_rng_uniform(&r) - 0.5;
    for (int i = 0; i < N; i++)
        x[i] = x0[i] = ds_rng_uniform(&r) - 0.5;
    /* B L^-T: then (B L^T) must give B0 back (L's upper triangle, 1e300, is never read) */
    dsi_dtrsm_rlt(M, N, L, N, B, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int q = 0; q <= j; q++)
                s += B[i * N + q] * L[j * N + q];
            CHECK_NEAR(s, B0[i * N + j], 1e-12);
        }
    dsi_dsyrk_ln(N, K, A, K, C, N);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = C0[i * N + j];
            for (int p = 0; j <= i && p < K; p++)
                s -= A[i * K + p] * A[j * K + p];
            CHECK_NEAR(C[i * N + j], s, 1e-12);   /* upper triangle untouched */
        }
    dsi_dtrsv_l(false, N, L, N, x);   /* L x = x0 */
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int q = 0; q <= i; q++)
            s += L[i * N + q] * x[q];
        CHECK_NEAR(s, x0[i], 1e-12);
    }
    memcpy(x, x0, sizeof x);
    dsi_dtrsv_l(true, N, L, N, x);   /* L^T x = x0 */
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int q = i; q < N; q++)
            s += L[q * N + i] * x[q];
        CHECK_NEAR(s, x0[i], 1e-12);
    }
    return TEST_PASS;
}
