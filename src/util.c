/* util.c - aligned allocation, strings, threads and the sgemm wrapper. */
#include "internal.h"

#include <cblas.h>
#include <omp.h>

void *dsi_aligned_alloc(size_t bytes)
{
    size_t n = (bytes + DS_ALIGN - 1) / DS_ALIGN * DS_ALIGN;
    void *p = aligned_alloc(DS_ALIGN, n ? n : DS_ALIGN);
    if (p)
        memset(p, 0, n ? n : DS_ALIGN);
    return p;
}

char *dsi_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int dsi_snprintf_cat(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strnlen(buf, cap);
    if (len >= cap)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- threads ---- */
void ds_set_num_threads(int n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ds_get_num_threads(void)
{
    return omp_get_max_threads();
}

int dsi_threads(void)
{
    return omp_get_max_threads();
}

/* ---- BLAS ---- */
void dsi_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
               float *c, int64_t ldc)
{
    if (m == 0 || n == 0)
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb,
                beta, c, (blasint)ldc);
}
