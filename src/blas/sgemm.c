/* sgemm.c - our own single-precision matrix product, row-major C = alpha op(A) op(B) + beta C:
 * the one the NO_BLAS build runs, and that every build tests against a double reference.
 *
 * The classic Goto/BLIS structure. C is cut into column blocks of NC, k into blocks of KC,
 * rows into blocks of MC. For each (NC, KC) block, op(B) is packed into panels of NR
 * columns ([KC][NR] each, the panel stays in L1 while the kernel streams A past it) and,
 * per MC block, op(A) into panels of MR rows ([KC][MR], the block stays in L2). The kernel
 * keeps an MR x NR tile of C in registers: for each p it multiplies MR broadcast values of A
 * by NR values of B. Packing pads with zeros, so the kernel never sees an edge; edge tiles
 * are written through a bounds-checked copy. A C with fewer columns than a panel (a dense
 * layer with two outputs) is computed as C^T = op(B)^T op(A)^T, which fills the panels.
 *
 * Threads: outside any OpenMP parallel region and when the product is large enough, the
 * (MC block, column chunk) tasks of each (NC, KC) block are split over the threads; inside
 * one (kernels that call sgemm per sample) it runs on the calling thread. Every element of
 * C sums its k-blocks in the same order whatever the thread count, so results do not depend
 * on it. The Makefile compiles this file with -ffp-contract=fast: the kernel's multiply-add
 * becomes an FMA where the target has one. */
#include "../internal.h"

/* The tile: 6 rows of 2 vectors, 12 accumulators. With AVX-512 (32 registers of 16 floats)
 * that is 6 x 32; with AVX (16 registers of 8) 6 x 16; else (SSE, WebAssembly SIMD: 16 of 4)
 * 6 x 8. The portable build compiles for the baseline but runs the clones of macro_kernel
 * for AVX2 or AVX-512 on nearly every x86-64 CPU: it takes the 6 x 16 tile. */
#if defined(__AVX512F__)
#define VW 16
#elif defined(__AVX__) || defined(DS_PORTABLE)
#define VW 8
#else
#define VW 4
#endif
#define NV 2
#define MR 6
#define NR (NV * VW)
#define KC 256
#define MC 144          /* 24 panels of MR: an A block of 144 KB, in L2 */
#define NC 3072         /* a B block of at most 3 MB */
#define NCHUNK 256      /* columns per task when splitting a block over threads */
typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef float vf_u __attribute__((vector_size(VW * sizeof(float)), aligned(4), may_alias));
#define PAR_MIN_MACS ((int64_t)1 << 21)   /* multiply-adds below which one thread runs */

typedef struct {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb;
    float *c;
    int64_t rs, cs;       /* C[i][j] is c[i*rs + j*cs]: (ldc, 1), or (1, ldc) when swapped */
} gemm_args;

/* op(A)[i][p]. */
static inline float at_a(const gemm_args *g, int64_t i, int64_t p)
{
    return g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
}

/* Rows i0 .. i0+mc-1, k p0 .. p0+kc-1 of op(A) into panels of MR rows: panel r holds
 * element (i0 + r*MR + i, p0 + p) at [r*kc*MR + p*MR + i]; rows past m are zero. */
static void pack_a(const gemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float *restrict dst)
{
    for (int64_t r = 0; r < mc; r += MR, dst += kc * MR) {
        int64_t rows = mc - r < MR ? mc - r : MR;
        if (!g->ta) {   /* row i of the panel is a row of a: read in order, write stride MR */
            for (int64_t i = 0; i < rows; i++) {
                const float *src = g->a + (i0 + r + i) * g->lda + p0;
                for (int64_t p = 0; p < kc; p++)
                    dst[p * MR + i] = src[p];
            }
        } else {
            const float *src = g->a + p0 * g->lda + i0 + r;
            for (int64_t p = 0; p < kc; p++)
                for (int64_t i = 0; i < rows; i++)
                    dst[p * MR + i] = src[p * g->lda + i];
        }
        for (int64_t p = 0; rows < MR && p < kc; p++)
            for (int64_t i = rows; i < MR; i++)
                dst[p * MR + i] = 0.0f;
    }
}

/* Columns j0 .. j0+nc-1, k p0 .. p0+kc-1 of op(B) into panels of NR columns: panel s holds
 * element (p0 + p, j0 + s*NR + j) at [s*kc*NR + p*NR + j]; columns past n are zero. Only
 * panels s0 .. s1-1 are written (threads pack a block together). */
static void pack_b(const gemm_args *g, int64_t j0, int64_t nc, int64_t p0, int64_t kc,
                   int64_t s0, int64_t s1, float *restrict dst)
{
    for (int64_t s = s0; s < s1; s++) {
        float *d = dst + s * kc * NR;
        int64_t j = j0 + s * NR, cols = nc - s * NR < NR ? nc - s * NR : NR;
        if (!g->tb) {
            const float *src = g->b + p0 * g->ldb + j;
            for (int64_t p = 0; p < kc; p++) {
                for (int64_t q = 0; q < cols; q++)
                    d[p * NR + q] = src[p * g->ldb + q];
                for (int64_t q = cols; q < NR; q++)
                    d[p * NR + q] = 0.0f;
            }
        } else {
            /* column q of the panel is a row of b: read it in order, write with stride NR
             * (the panel, kc x NR floats, stays in L1) */
            for (int64_t q = 0; q < cols; q++) {
                const float *src = g->b + (j + q) * g->ldb + p0;
                for (int64_t p = 0; p < kc; p++)
                    d[p * NR + q] = src[p];
            }
            for (int64_t p = 0; cols < NR && p < kc; p++)
                for (int64_t q = cols; q < NR; q++)
                    d[p * NR + q] = 0.0f;
        }
    }
}

/* The MR x NR tile acc = A panel (kc x MR) times B panel (kc x NR). The tile lives in
 * MR x NV vectors of VW floats (GCC's vector extension: AVX-512 or AVX registers where the
 * target has them, pairs of SSE or WebAssembly SIMD registers elsewhere); each step adds a
 * broadcast value of A times a row of B. Plain loops vectorize too, but gcc then keeps the
 * tile in memory; so does a memcpy into the vectors. */
static inline void kernel(int64_t kc, const float *restrict a, const float *restrict b,
                          float acc[MR][NR])
{
    vf t[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++)
            t[i][v] = (vf){0};
    for (int64_t p = 0; p < kc; p++, a += MR, b += NR) {
        vf bv[NV];
        for (int v = 0; v < NV; v++)
            bv[v] = *(const vf_u *)(b + v * VW);
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++)
                t[i][v] += a[i] * bv[v];
    }
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++)
            *(vf_u *)&acc[i][v * VW] = t[i][v];
}

/* C tile (rows x cols at c, strides rs and cs) = alpha acc + beta C; beta 0 never reads C
 * (it may hold NaN). */
static inline void store(float *restrict c, int64_t rs, int64_t cs, float acc[MR][NR],
                         int64_t rows, int64_t cols, float alpha, float beta)
{
    if (cs != 1) {
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                float *e = c + i * rs + j * cs;
                *e = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *e;
            }
        return;
    }
    for (int64_t i = 0; i < rows; i++, c += rs) {
        if (beta == 0.0f)
            for (int64_t j = 0; j < cols; j++)
                c[j] = alpha * acc[i][j];
        else if (beta == 1.0f)
            for (int64_t j = 0; j < cols; j++)
                c[j] += alpha * acc[i][j];
        else
            for (int64_t j = 0; j < cols; j++)
                c[j] = alpha * acc[i][j] + beta * c[j];
    }
}

/* The tiles of C rows i0 .. i0+mc-1 and columns j0+q0 .. j0+q1-1 (q0 a multiple of NR) for
 * one k-block: packed A (this MC block) times packed B (this NC block). */
DS_HOT static void macro_kernel(const gemm_args *g, const float *pa, const float *pb,
                                int64_t i0, int64_t mc, int64_t j0, int64_t q0, int64_t q1,
                                int64_t kc, float beta)
{
    float acc[MR][NR];
    for (int64_t q = q0; q < q1; q += NR) {
        const float *bp = pb + q / NR * kc * NR;
        int64_t cols = q1 - q < NR ? q1 - q : NR;
        for (int64_t r = 0; r < mc; r += MR) {
            kernel(kc, pa + r / MR * kc * MR, bp, acc);
            int64_t rows = mc - r < MR ? mc - r : MR;
            store(g->c + (i0 + r) * g->rs + (j0 + q) * g->cs, g->rs, g->cs, acc, rows, cols,
                  g->alpha, beta);
        }
    }
}

/* Work of one (NC, KC) block as tasks: MC row blocks times column chunks of cw. */
typedef struct {
    int64_t j0, nc, p0, kc;
    int64_t cw;           /* columns per chunk, a multiple of NR */
    int64_t n_ib, n_jc;   /* row blocks, column chunks */
    float beta;           /* the caller's beta on the first k-block, then 1 */
} block_job;

static void run_tasks(const gemm_args *g, const block_job *b, const float *pb, float *pa,
                      int64_t t0, int64_t t1)
{
    int64_t packed = -1;   /* the row block whose A panels pa holds */
    for (int64_t t = t0; t < t1; t++) {
        int64_t ib = t / b->n_jc, jc = t % b->n_jc;
        int64_t i0 = ib * MC, mc = g->m - i0 < MC ? g->m - i0 : MC;
        int64_t q0 = jc * b->cw, q1 = q0 + b->cw < b->nc ? q0 + b->cw : b->nc;
        if (packed != ib) {
            pack_a(g, i0, mc, b->p0, b->kc, pa);
            packed = ib;
        }
        macro_kernel(g, pa, pb, i0, mc, b->j0, q0, q1, b->kc, b->beta);
    }
}

/* Thread ith of nth (all inside one parallel region, or nth = 1): packs its share of B's
 * panels, waits for the others, then runs a contiguous range of tasks (consecutive tasks
 * share their A block) and waits again before B is repacked. */
static void run_block(const gemm_args *g, const block_job *b, float *pb, float *pa, int ith,
                      int nth)
{
    int64_t panels = (b->nc + NR - 1) / NR, per = (panels + nth - 1) / nth;
    int64_t s0 = ith * per < panels ? ith * per : panels;
    int64_t s1 = s0 + per < panels ? s0 + per : panels;
    pack_b(g, b->j0, b->nc, b->p0, b->kc, s0, s1, pb);
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#endif
    int64_t tasks = b->n_ib * b->n_jc, tper = (tasks + nth - 1) / nth;
    int64_t t0 = ith * tper < tasks ? ith * tper : tasks;
    run_tasks(g, b, pb, pa, t0, t0 + tper < tasks ? t0 + tper : tasks);
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#endif
}

/* Columns per task: the whole block on one thread; on nth, chunks of at most NCHUNK and
 * enough of them for 2 tasks per thread when the rows give few blocks, of equal widths
 * (multiples of NR). */
static int64_t chunk_width(int64_t nc, int64_t n_ib, int nth)
{
    int64_t chunks = nth == 1 ? 1 : (nc + NCHUNK - 1) / NCHUNK;
    if (nth > 1 && chunks * n_ib < 2 * nth)
        chunks = (2 * nth + n_ib - 1) / n_ib;
    int64_t cw = (nc + chunks - 1) / chunks;
    return (cw + NR - 1) / NR * NR;
}

/* The whole product, as thread ith of nth. */
static void gemm_blocks(const gemm_args *g, float *pb, float *pa, int ith, int nth)
{
    for (int64_t j0 = 0; j0 < g->n; j0 += NC)
        for (int64_t p0 = 0; p0 < g->k; p0 += KC) {
            block_job b = {.j0 = j0, .p0 = p0, .beta = p0 == 0 ? g->beta : 1.0f};
            b.nc = g->n - j0 < NC ? g->n - j0 : NC;
            b.kc = g->k - p0 < KC ? g->k - p0 : KC;
            b.n_ib = (g->m + MC - 1) / MC;
            b.cw = chunk_width(b.nc, b.n_ib, nth);
            b.n_jc = (b.nc + b.cw - 1) / b.cw;
            run_block(g, &b, pb, pa, ith, nth);
        }
}

/* C = beta C (k = 0 or alpha = 0); beta 0 writes zeros without reading C. */
static void scale_c(const gemm_args *g)
{
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            float *c = g->c + i * g->rs + j * g->cs;
            *c = g->beta == 0.0f ? 0.0f : g->beta * *c;
        }
}

/* Without memory for the packed panels: unblocked, slow but correct (k in order, in float). */
static void gemm_unpacked(const gemm_args *g)
{
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            float s = 0.0f;
            for (int64_t p = 0; p < g->k; p++)
                s += at_a(g, i, p) * (g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j]);
            float *c = g->c + i * g->rs + j * g->cs;
            *c = g->beta == 0.0f ? g->alpha * s : g->alpha * s + g->beta * *c;
        }
}

/* Threads for a product: one inside a parallel region (active or not) or when small. */
static int gemm_threads(const gemm_args *g)
{
    if (omp_get_level() > 0 || g->m * g->n * g->k < PAR_MIN_MACS)
        return 1;
    int nth = dsi_threads();
    int64_t tasks = (g->m + MC - 1) / MC * (((g->n < NC ? g->n : NC) + NR - 1) / NR);
    return tasks < nth ? (int)tasks : nth;
}

void dsi_sgemm_own(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc)
{
    gemm_args g = {ta, tb, m, n, k, alpha, beta, a, b, lda, ldb, c, ldc, 1};
    if (m <= 0 || n <= 0)
        return;
    /* Fewer columns than a panel holds (a dense layer with 2 outputs, a weight gradient of
     * 9 columns): compute C^T = op(B)^T op(A)^T instead, which fills the panels. */
    if (n < NR && m > n)
        g = (gemm_args){!tb, !ta, n, m, k, alpha, beta, b, a, ldb, lda, c, 1, ldc};
    if (k <= 0 || alpha == 0.0f) {
        scale_c(&g);
        return;
    }
    int nth = gemm_threads(&g);
    int64_t kc = g.k < KC ? g.k : KC, nc = g.n < NC ? g.n : NC, mc = g.m < MC ? g.m : MC;
    size_t b_floats = (size_t)((nc + NR - 1) / NR * NR * kc);
    size_t a_floats = (size_t)((mc + MR - 1) / MR * MR * kc);
    float *pb = dsi_aligned_alloc_raw((b_floats + (size_t)nth * a_floats) * sizeof(float));
    if (!pb) {
        gemm_unpacked(&g);
        return;
    }
    if (nth == 1) {
        gemm_blocks(&g, pb, pb + b_floats, 0, 1);
    } else {
#pragma omp parallel num_threads(nth)
        {
            int ith = omp_get_thread_num();
            gemm_blocks(&g, pb, pb + b_floats + (size_t)ith * a_floats, ith,
                        omp_get_num_threads());
        }
    }
    free(pb);
}
