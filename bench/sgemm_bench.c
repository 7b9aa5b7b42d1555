/* sgemm_bench.c - our own sgemm (src/blas/sgemm.c, the NO_BLAS build's) against OpenBLAS, in
 * GFLOP/s (2 m n k per product): a 2048^3 product and the products of the galaxy CNN
 * (examples/ellipticity.model) at batch 32, at 1 and 2 threads. `make bench-sgemm`.
 *
 *   sgemm_bench [--time S] [--threads 1,2] [--shapes all|square|cnn]
 *
 * The CNN's products are those of im2col convolution (src/ops/conv.c; a 3x3 convolution
 * with 8 or more channels runs Winograd by default, whose products differ) and of the dense
 * layers: forward y = W col [F, C*9] x [C*9, g*H*W] on g samples side by side (g = 1, 4, 4
 * for the three convolutions, so that g*H*W ~ 1024), backward dW = dY col^T and
 * dcol = W^T dY; the dense layers' x W^T, dY W and dY^T x. Each product runs alone here,
 * with all the threads; in training the convolutions call them one per thread on chunks of
 * the batch. Each is timed for S seconds (default 0.5) after a warm-up call; the best rate
 * over the repeats is reported. */
#include "../src/internal.h"

#include <cblas.h>
#include <time.h>

typedef struct {
    const char *what;
    bool ta, tb;
    int64_t m, n, k;
} shape;

static const shape shapes[] = {
    {"square 2048^3", false, false, 2048, 2048, 2048},
    {"conv1 fwd  W col", false, false, 32, 1024, 9},
    {"conv2 fwd  W col", false, false, 64, 1024, 288},
    {"conv3 fwd  W col", false, false, 128, 256, 576},
    {"conv1 dW   dY col^T", false, true, 32, 9, 1024},
    {"conv2 dW   dY col^T", false, true, 64, 288, 1024},
    {"conv3 dW   dY col^T", false, true, 128, 576, 256},
    {"conv2 dcol W^T dY", true, false, 288, 1024, 64},
    {"conv3 dcol W^T dY", true, false, 576, 256, 128},
    {"dense1 fwd x W^T", false, true, 32, 128, 2048},
    {"dense1 dx  dY W", false, false, 32, 2048, 128},
    {"dense1 dW  dY^T x", true, false, 128, 2048, 32},
    {"dense2 fwd x W^T", false, true, 32, 2, 128},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void blas_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb,
                beta, c, (blasint)ldc);
}

typedef void (*gemm_fn)(bool, bool, int64_t, int64_t, int64_t, float, const float *, int64_t,
                        const float *, int64_t, float, float *, int64_t);

/* Best GFLOP/s of fn on s over seconds of repeats (at least 3). */
static double rate(gemm_fn fn, const shape *s, const float *a, const float *b, float *c,
                   double seconds)
{
    int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    double best = 1e30, t_end = now_s() + seconds;
    fn(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
    for (int rep = 0; rep < 3 || now_s() < t_end; rep++) {
        double t0 = now_s();
        fn(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * (double)s->m * (double)s->n * (double)s->k / best / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: sgemm_bench [--time S] [--threads 1,2] [--shapes all|square|cnn]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 0.5;
    const char *threads = "1,2", *which = "all";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--time"))
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads"))
            threads = argv[++i];
        else if (!strcmp(argv[i], "--shapes"))
            which = argv[++i];
        else
            usage();
    }
    if (!(seconds > 0 && seconds < 100) || (strcmp(which, "all") && strcmp(which, "square") &&
                                           strcmp(which, "cnn")))
        usage();
    size_t cap = (size_t)2048 * 2048;
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b), *c = malloc(cap * sizeof *c);
    if (!a || !b || !c)
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 1);
    ds_rng_fill_normal(&r, a, (int64_t)cap);
    ds_rng_fill_normal(&r, b, (int64_t)cap);
    printf("deepsky %s; GFLOP/s, best of %.2g s per product\n\n", ds_build_info(), seconds);
    printf("| product | m x n x k | threads | own | OpenBLAS | own / OpenBLAS |\n");
    printf("|---|---|---|---|---|---|\n");
    for (const char *t = threads; *t;) {
        int nth = atoi(t);
        ds_set_num_threads(nth);
        for (int i = 0; i < N_SHAPES; i++) {
            const shape *s = &shapes[i];
            if ((i == 0 && !strcmp(which, "cnn")) || (i > 0 && !strcmp(which, "square")))
                continue;
            double own = rate(dsi_sgemm_own, s, a, b, c, seconds);
            double ob = rate(blas_sgemm, s, a, b, c, seconds);
            printf("| %s | %lld x %lld x %lld | %d | %.1f | %.1f | %.2f |\n", s->what,
                   (long long)s->m, (long long)s->n, (long long)s->k, ds_get_num_threads(), own,
                   ob, own / ob);
            fflush(stdout);
        }
        t = strchr(t, ',');
        if (!t)
            break;
        t++;
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
