/* conv_winograd.c - Winograd F(4x4, 3x3) and F(2x2, 3x3): the 3x3, stride-1 2-D convolutions
 * of CNNs with 4x (2.25x) fewer multiplications than im2col + sgemm, in the forward pass and
 * in both gradients. conv.c calls it when dsi_wino_applies.
 *
 * Lavin & Gray (2016): an output tile Y (m x m, m = 4 or 2) from an input tile d (a x a,
 * a = m + 2, rows and columns m t - pad .. m t - pad + a - 1) and a kernel g (3x3) is
 * Y = A^T [(G g G^T) . (B^T d B)] A. Summed over channels, each of the a^2 points xi of a
 * transformed tile is a matrix product, M_xi [F, T] = U_xi [F, C] V_xi [C, T], one sgemm per
 * xi on a block of T tiles. Backward runs the adjoints of these steps: dM = A dY A^T;
 * dV_xi = U_xi^T dM_xi, then dx += B dV B^T (neighbouring tiles overlap by two rows and
 * columns and add); dU_xi += dM_xi V_xi^T, then dW += G^T dU G. They are the exact gradients
 * of the forward pass as computed.
 *
 * F(4x4, 3x3) interpolates at 0, 1, -1, 1/2, -2 and infinity rather than the usual 0, +-1,
 * +-2: the fp32 error falls from about 8e-6 to 2.5e-6 of the largest output (Barabasz et al.,
 * 2020). The filter transform runs in double. tests/test_conv_winograd4.c measures the
 * error of each pass against a double-precision direct convolution.
 *
 * Work split: the forward pass cuts the flattened list of (sample, tile) into blocks of T
 * tiles, each computed on its own by one thread, or, with fewer than 4 blocks a thread (as at
 * batch 1), by all threads together (transforms split over channels and filters, products
 * over the points xi); backward cuts the batch into up to 8 chunks of whole
 * samples (so no two threads add into the same dx), each with its partial dU and bias
 * gradient, summed over chunks in order. Blocks and chunks depend on the shapes only, so
 * results do not depend on the thread count. */
#include "conv_impl.h"

enum {
    A_MAX = 6,     /* input tile side, a = m + 2 */
    XI_MAX = 36,   /* points of a transformed tile, a^2 */
    TV = 16,       /* most tiles per step of the transforms: loops of a fixed length vectorize */
    ROW = 4 * TV + 4,   /* floats of an input row buffer: m (tv + 1) */
};

/* The 1-D transforms, row-major: B^T [a, a], A^T [m, a], G [a, 3]. */
static const float BT2[16] = {1, 0, -1, 0,  0, 1, 1, 0,  0, -1, 1, 0,  0, 1, 0, -1};
static const float AT2[8] = {1, 1, 1, 0,  0, 1, -1, -1};
static const double G2[12] = {1, 0, 0,  0.5, 0.5, 0.5,  0.5, -0.5, 0.5,  0, 0, 1};
static const float BT4[36] = {
    1, -1.5f, -2, 1.5f, 1, 0,
    0, -1, 0.5f, 2.5f, 1, 0,
    0, 1, -2.5f, 0.5f, 1, 0,
    0, -2, -1, 2, 1, 0,
    0, 0.5f, -1, -0.5f, 1, 0,
    0, 1, -1.5f, -2, 1.5f, 1,
};
static const float AT4[24] = {
    1, 1, 1, 1, 1, 0,
    0, 1, -1, 0.5f, -2, 0,
    0, 1, 1, 0.25f, 4, 0,
    0, 1, -1, 0.125f, -8, 1,
};
static const double G4[18] = {
    1, 0, 0,
    1.0 / 3, 1.0 / 3, 1.0 / 3,
    -1.0 / 3, 1.0 / 3, -1.0 / 3,
    -16.0 / 15, -8.0 / 15, -4.0 / 15,
    1.0 / 15, -2.0 / 15, 4.0 / 15,
    0, 0, 1,
};
/* Entries for a tile size m that is a constant where inlined (so are i and k in unrolled
 * loops): the compiler reads them at compile time. */
#define BT_(m, i, k) ((m) == 4 ? BT4[(i) * 6 + (k)] : BT2[(i) * 4 + (k)])
#define AT_(m, i, k) ((m) == 4 ? AT4[(i) * 6 + (k)] : AT2[(i) * 4 + (k)])

/* out[0..n) = the sum over k < nk of coef * src[0..n) (coef and src expressions of k_),
 * skipping zero coefficients. Unrolled, the coefficients are constants: a zero costs nothing,
 * 1 and -1 no multiplication. */
#define LINCOMB(out, n, nk, coef, src)                                                   \
    do {                                                                                 \
        bool first_ = true;                                                              \
        _Pragma("GCC unroll 6") for (int k_ = 0; k_ < (nk); k_++) {                      \
            const float c_ = (coef);                                                     \
            if (c_ == 0.0f)                                                              \
                continue;                                                                \
            const float *s_ = (src);                                                     \
            if (first_)                                                                  \
                for (int j_ = 0; j_ < (n); j_++)                                         \
                    (out)[j_] = c_ * s_[j_];                                             \
            else                                                                         \
                for (int j_ = 0; j_ < (n); j_++)                                         \
                    (out)[j_] += c_ * s_[j_];                                            \
            first_ = false;                                                              \
        }                                                                                \
    } while (0)

/* The largest tile side used (dsi_wino_set_max_tile). */
static _Atomic int max_tile = 4;
void dsi_wino_set_max_tile(int m) { max_tile = m >= 4 ? 4 : 2; }

bool dsi_wino_applies(const dsi_conv_geom *q, int64_t C, int64_t F)
{
    /* a 2-D convolution (the leading axis is a dummy), 3x3, stride 1, dilation 1; with few
     * channels the products are too thin for the transforms to pay */
    return q->in[0] == 1 && q->k[0] == 1 && q->k[1] == 3 && q->k[2] == 3 && q->s[1] == 1 &&
           q->s[2] == 1 && q->d[1] == 1 && q->d[2] == 1 && C >= 8 && F >= 8 &&
           q->out[1] >= 2 && q->out[2] >= 2;
}

int dsi_wino_tile(const dsi_conv_geom *q, int64_t C, int64_t F)
{
    if (!dsi_wino_applies(q, C, F))
        return 0;
    /* 6x6 outputs take four 4x4 tiles or nine 2x2 ones, the same products; F(4x4, 3x3)
     * gains from 7 on */
    if (max_tile < 4 || q->out[1] < 6 || q->out[2] < 6)
        return 2;
    return 4;
}

size_t dsi_wino_cache_floats(const dsi_conv_geom *q, int64_t C, int64_t F)
{
    if (!dsi_wino_applies(q, C, F))
        return 0;
    int a = q->out[1] < 6 || q->out[2] < 6 ? 4 : 6;   /* the largest tile it may use */
    return (size_t)(a * a * F * C + 15) / 16 * 16;
}

typedef struct {
    int m, a, xi;            /* output tile m x m, input tile a x a, a^2 transformed points */
    int tv;                  /* tiles per step of the transforms along one row: 16, 8 or 4 */
    int R;                   /* tile rows per segment where whole rows fit a step of 16 */
    int64_t N, C, F, H, W, OH, OW, ph, pw;
    int64_t TH, TW, tiles;   /* tiles per sample: TH x TW */
    int64_t tb;              /* tiles per block */
    int64_t nch;             /* backward chunks */
    int64_t vrow, mrow;      /* floats from one channel's V [xi, tb] (filter's M) to the next */
    int64_t per_thread;      /* floats: V [xi][C, tb] and M [xi][F, tb] */
    int64_t shared;          /* floats: U, bias partials (double), nch dU partials */
    int64_t bias_off, du_off;
} wino_plan;

static void plan_of(const dsi_conv_geom *q, int m, int64_t N, int64_t C, int64_t F,
                    wino_plan *p)
{
    p->m = m;
    p->a = m + 2;
    p->xi = p->a * p->a;
    p->N = N;
    p->C = C;
    p->F = F;
    p->H = q->in[1];
    p->W = q->in[2];
    p->OH = q->out[1];
    p->OW = q->out[2];
    p->ph = q->p[1];
    p->pw = q->p[2];
    p->TH = (p->OH + m - 1) / m;
    p->TW = (p->OW + m - 1) / m;
    p->tiles = p->TH * p->TW;
    p->tv = p->TW >= 16 ? 16 : p->TW >= 8 ? 8 : 4;
    p->R = m == 4 && (p->TW == 4 || p->TW == 8) ? 16 / (int)p->TW : 1;
    /* blocks of about 0.75 MB of transformed tiles per thread, 32 to 512 tiles */
    int64_t tb = 196608 / p->xi / (C + F) / 16 * 16;
    p->tb = tb < 32 ? 32 : tb > 512 ? 512 : tb;
    /* up to 8 chunks of at least 128 tiles: each has its own partial dU [xi, F, C] to clear
     * and sum, which on small planes cost more than the chunks gain */
    int64_t nch = N * p->tiles / 128;
    nch = nch > N ? N : nch > 8 ? 8 : nch;
    p->nch = nch < 1 ? 1 : nch;
    /* V [C][xi][tb] and M [F][xi][tb]: a transform reads or writes one contiguous stretch
     * per channel or filter. 16 floats between channels: strides of a power of two would put
     * the rows of a product in the same cache sets. */
    p->vrow = p->xi * p->tb + 16;
    p->mrow = p->xi * p->tb + 16;
    p->per_thread = C * p->vrow + F * p->mrow;
    p->bias_off = p->xi * F * C;
    p->du_off = p->bias_off + (2 * p->nch * F + 15) / 16 * 16;
    p->shared = p->du_off + p->nch * p->xi * F * C;
}

size_t dsi_wino_scratch(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, int nth)
{
    wino_plan p;
    plan_of(q, dsi_wino_tile(q, C, F), N, C, F, &p);
    return (size_t)(p.shared + (int64_t)nth * p.per_thread) * sizeof(float);
}

/* Threads that the planned scratch holds (the count may have grown since planning). */
static int wino_threads(const ds_node *y, const wino_plan *p, int64_t units)
{
    int64_t avail = ((int64_t)(y->g->scratch_bytes / sizeof(float)) - p->shared) / p->per_thread;
    int64_t nth = omp_get_max_threads();
    if (nth > avail)
        nth = avail;
    if (nth > units)
        nth = units;
    return nth < 1 ? 1 : (int)nth;
}

/* ---- the filter transforms (in double: they are cheap, and rounding there adds to every
 * output) ---- */

enum { WB = 16 };   /* kernels per step of the filter transforms: loops over them vectorize */

/* U = G g G^T for every (f, c): U [xi, F, C]. */
DS_HOT
static void weight_transform(const float *w, int m, int64_t F, int64_t C, float *U)
{
    const int64_t FC = F * C;
    const int a = m + 2;
    const double *G = m == 4 ? G4 : G2;
#pragma omp parallel for schedule(static) if (FC * 64 > DS_PAR_MIN)
    for (int64_t f0 = 0; f0 < FC; f0 += WB) {
        const int nb = FC - f0 < WB ? (int)(FC - f0) : WB;
        double g[9][WB] = {{0}}, t[A_MAX][3][WB], u[WB];
        for (int j = 0; j < nb; j++)
            for (int e = 0; e < 9; e++)
                g[e][j] = w[(f0 + j) * 9 + e];
        for (int i = 0; i < a; i++)
            for (int e = 0; e < 3; e++)
                for (int j = 0; j < WB; j++)
                    t[i][e][j] = G[i * 3] * g[e][j] + G[i * 3 + 1] * g[3 + e][j] +
                                 G[i * 3 + 2] * g[6 + e][j];
        for (int i = 0; i < a; i++)
            for (int l = 0; l < a; l++) {
                for (int j = 0; j < WB; j++)
                    u[j] = t[i][0][j] * G[l * 3] + t[i][1][j] * G[l * 3 + 1] +
                           t[i][2][j] * G[l * 3 + 2];
                float *dst = U + (i * a + l) * FC + f0;
                for (int j = 0; j < nb; j++)
                    dst[j] = (float)u[j];
            }
    }
}

/* dW[f, c] += G^T dU G, dU [xi, F, C]. */
DS_HOT
static void weight_adjoint(const float *dU, int m, int64_t F, int64_t C, float *dw)
{
    const int64_t FC = F * C;
    const int a = m + 2;
    const double *G = m == 4 ? G4 : G2;
#pragma omp parallel for schedule(static) if (FC * 64 > DS_PAR_MIN)
    for (int64_t f0 = 0; f0 < FC; f0 += WB) {
        const int nb = FC - f0 < WB ? (int)(FC - f0) : WB;
        double t[3][A_MAX][WB] = {{{0}}}, s[WB];   /* G^T dU */
        for (int i = 0; i < a; i++)
            for (int l = 0; l < a; l++) {
                double d[WB] = {0};
                const float *src = dU + (i * a + l) * FC + f0;
                for (int j = 0; j < nb; j++)
                    d[j] = src[j];
                for (int k = 0; k < 3; k++)
                    for (int j = 0; j < WB; j++)
                        t[k][l][j] += G[i * 3 + k] * d[j];
            }
        for (int k = 0; k < 3; k++)
            for (int e = 0; e < 3; e++) {
                for (int j = 0; j < WB; j++) {
                    s[j] = 0;
                    for (int l = 0; l < a; l++)
                        s[j] += t[k][l][j] * G[l * 3 + e];
                }
                for (int j = 0; j < nb; j++)
                    dw[(f0 + j) * 9 + k * 3 + e] += (float)s[j];
            }
    }
}

/* ---- the filters a pass uses ---- */

/* The model version y's transformed filters follow: with a batch norm folded in (an inference
 * plan), its running statistics too. */
static uint64_t filters_version(const ds_node *y)
{
    return y->fold ? y->g->m->version : y->g->m->weights_version;
}

/* U [xi, F, C], y's filters transformed for tile side p->m: y's cache (ds_node.wino_u) when
 * it holds them, else transformed into it (or, inside a parallel region, where other threads
 * may read the cache, into the scratch). An inference plan keeps them until the model's
 * version changes (as its batch-norm folds: see ds_param_data). A training plan transforms
 * them in each forward pass (its weights may have been written through a pointer taken
 * earlier, as gradient checks do) and its backward pass reuses them. The transform is the
 * same wherever it lands, so results do not depend on the cache. */
static const float *filters(ds_node *y, const wino_plan *p, bool forward)
{
    const float *w = y->in[1]->data;
    float *U = y->wino_u;
    if (U) {
        const ds_graph *g = y->g;
        dsi_wino_stamp *s = y->wino_stamp;
        const uint64_t v = filters_version(y);
        if (s->m == p->m && s->src == w && s->version == v &&
            (g->infer || (!forward && s->step + 1 == g->step)))
            return U;
        if (!omp_in_parallel()) {
            weight_transform(w, p->m, p->F, p->C, U);
            *s = (dsi_wino_stamp){.u = U, .src = w, .version = v, .step = g->step, .m = p->m};
            return U;
        }
    }
    U = y->g->scratch;
    weight_transform(w, p->m, p->F, p->C, U);
    return U;
}

void dsi_wino_prepare(ds_node *y, const dsi_conv_geom *q)
{
    wino_plan p;
    int64_t C = y->in[0]->shape[1], F = y->in[1]->shape[0];
    plan_of(q, dsi_wino_tile(q, C, F), y->in[0]->shape[0], C, F, &p);
    filters(y, &p, true);
}

/* ---- tiles along rows ----
 * A block of tiles is a run of segments, each at position k0 in the block: a stretch
 * [tw0, tw1) of one tile row th of one sample n, or (rows > 1) that many whole tile rows
 * th .. th + rows - 1 of narrow planes (TW = 4 or 8 with 4x4 tiles: a 16x16 sample is one
 * segment). Along a segment, transformed values of consecutive tiles are consecutive in V and
 * M. The transforms take tv tiles at a time through small local arrays (zero-padded at the
 * plane's edges and past a segment's end), so that their loops have a fixed length and
 * vectorize; each applies its 1-D transform down the columns (over whole rows), then along
 * the rows (over the tiles, their columns gathered by offset). */
typedef struct {
    int64_t n, th, tw0, tw1, k0;
    int rows;
} seg;

/* The segment starting at global tile g of a block starting at g0 and ending at g_end;
 * returns the first tile after it. */
static int64_t seg_at(const wino_plan *p, int64_t g, int64_t g0, int64_t g_end, seg *s)
{
    int64_t t = g % p->tiles, end;
    s->n = g / p->tiles;
    s->th = t / p->TW;
    s->tw0 = t % p->TW;
    s->k0 = g - g0;
    s->rows = 1;
    if (p->R > 1 && s->tw0 == 0 && s->th + p->R <= p->TH && g + p->R * p->TW <= g_end) {
        s->rows = p->R;
        s->tw1 = p->TW;
        return g + p->R * p->TW;
    }
    end = g + (p->TW - s->tw0);
    if (end > g_end)
        end = g_end;
    s->tw1 = s->tw0 + (end - g);
    return end;
}

/* buf[j] = row[c + j] for j < len; 0 outside [0, w), or everywhere when row is NULL (a row
 * outside the plane). */
static inline void load_row(const float *row, int64_t w, int64_t c, float *buf, int len)
{
    if (row && c >= 0 && c + len <= w) {
        memcpy(buf, row + c, (size_t)len * sizeof *buf);
        return;
    }
    for (int j = 0; j < len; j++) {
        int64_t cc = c + j;
        buf[j] = row && cc >= 0 && cc < w ? row[cc] : 0.0f;
    }
}

/* dst[j] = src[j] for j < n; n == full (a constant where inlined) copies a fixed size. */
static inline __attribute__((always_inline)) void copy_n(float *dst, const float *src, int n,
                                                         int full)
{
    if (n == full)
        memcpy(dst, src, (size_t)full * sizeof *dst);
    else if (n > 0)
        memcpy(dst, src, (size_t)n * sizeof *dst);
}

/* Prefetches floats [0, n) of row (the next plane's: a transform reads more streams than the
 * hardware follows). */
static inline __attribute__((always_inline)) void prefetch_row(const float *row, int64_t n)
{
    for (int64_t j = 0; j < n; j += 16)
        __builtin_prefetch(row + j);
    __builtin_prefetch(row + n - 1);
}

#define INLINE static inline __attribute__((always_inline))
/* Runs f(args..., m, tv, rows) with the segment's tile size, step and rows as constants. */
#define BY_TILE(p, s, f, ...)                                                            \
    ((s)->rows == 4   ? f(__VA_ARGS__, 4, 16, 4)                                         \
     : (s)->rows == 2 ? f(__VA_ARGS__, 4, 16, 2)                                         \
     : (p)->m == 4    ? ((p)->tv == 16 ? f(__VA_ARGS__, 4, 16, 1)                        \
                         : (p)->tv == 8 ? f(__VA_ARGS__, 4, 8, 1) : f(__VA_ARGS__, 4, 4, 1)) \
                      : ((p)->tv == 16 ? f(__VA_ARGS__, 2, 16, 1)                        \
                         : (p)->tv == 8 ? f(__VA_ARGS__, 2, 8, 1) : f(__VA_ARGS__, 2, 4, 1)))

/* Steps of a segment: tv tiles each, tw tiles a row (tv / rows; one step when rows > 1). */
#define SEG_STEPS(s, tv, rows, k0, cnt)                                                  \
    for (int64_t k0 = 0, n_ = (s)->tw1 - (s)->tw0, cnt; k0 < n_; k0 += (tv) / (rows))   \
        if ((cnt = n_ - k0 < (tv) / (rows) ? n_ - k0 : (tv) / (rows)), true)

/* Input transforms of one channel plane along a segment: V[xi * ld + k] = (B^T d B)[xi] for
 * the segment's tiles k = 0, 1, ...; next: prefetch the next plane's rows. */
INLINE void plane_inputs(const wino_plan *p, const float *plane, bool next, const seg *s,
                         float *V, int64_t ld, const int m, const int tv, const int rows)
{
    const int a = m + 2, tw = tv / rows, len = m * tw + 2;
    const int64_t HW = p->H * p->W;
    SEG_STEPS(s, tv, rows, k0, cnt) {
        float r[A_MAX][ROW], t[A_MAX][ROW], ph[A_MAX][A_MAX][TV], v[XI_MAX][TV];
        const int64_t c0 = m * (s->tw0 + k0) - p->pw;
        for (int rr = 0; rr < rows; rr++) {
            for (int i = 0; i < a; i++) {
                int64_t row = m * (s->th + rr) - p->ph + i;
                const float *src = row >= 0 && row < p->H ? plane + row * p->W : NULL;
                if (src && next)
                    prefetch_row(src + HW + (c0 < 0 ? 0 : c0), len);
                load_row(src, p->W, c0, r[i], len);
            }
            _Pragma("GCC unroll 6") for (int b = 0; b < a; b++)   /* down the columns */
                LINCOMB(t[b], len, a, BT_(m, b, k_), r[k_]);
            for (int b = 0; b < a; b++)
                for (int k = 0; k < a; k++)
                    for (int j = 0; j < tw; j++)
                        ph[b][k][rr * tw + j] = t[b][m * j + k];
        }
        _Pragma("GCC unroll 6") for (int b = 0; b < a; b++)   /* along the rows */
            _Pragma("GCC unroll 6") for (int c = 0; c < a; c++)
                LINCOMB(v[b * a + c], tv, a, BT_(m, c, k_), ph[b][k_]);
        for (int x = 0; x < a * a; x++)
            copy_n(V + x * ld + k0, v[x], (int)cnt * rows, tv);
    }
}

INLINE void seg_inputs_mt(const wino_plan *p, const float *x, const seg *s, float *V,
                          int64_t ld, int64_t c0, int64_t c1, const int m, const int tv,
                          const int rows)
{
    const int64_t HW = p->H * p->W;
    for (int64_t c = c0; c < c1; c++)
        plane_inputs(p, x + c * HW, c + 1 < c1, s, V + c * p->vrow, ld, m, tv, rows);
}

/* Input transforms along a segment for planes [c0, c1) from x's, into V[c * vrow + k]. */
DS_HOT
static void seg_inputs(const wino_plan *p, const float *x, const seg *s, float *V, int64_t ld,
                       int64_t c0, int64_t c1)
{
    BY_TILE(p, s, seg_inputs_mt, p, x, s, V, ld, c0, c1);
}

/* Input transforms of the tiles [g0, g0 + nt) for channels [c0, c1): V [C][xi][tb]. */
static void block_inputs(const wino_plan *p, const float *x, int64_t g0, int64_t nt, float *V,
                         int64_t c0, int64_t c1)
{
    seg s;
    for (int64_t g = g0; g < g0 + nt;) {
        int64_t next = seg_at(p, g, g0, g0 + nt, &s);
        seg_inputs(p, x + s.n * p->C * p->H * p->W, &s, V + s.k0, p->tb, c0, c1);
        g = next;
    }
}

/* dx += B dV B^T along a segment of one channel plane, dV[xi * ld + k] for its tiles k (the
 * next channel's at vrow on, prefetched; 0: none). Neighbouring tiles overlap by two columns
 * (summed in a row buffer) and two rows (added into the plane in turn). */
INLINE void plane_input_adjoint(const wino_plan *p, const float *V, int64_t ld, int64_t vrow,
                                const seg *s, float *plane, const int m, const int tv,
                                const int rows)
{
    const int a = m + 2, tw = tv / rows;
    const int64_t W = p->W;
    SEG_STEPS(s, tv, rows, k0, cnt) {
        float v[XI_MAX][TV], t[A_MAX][A_MAX][TV], d[A_MAX][TV], acc[ROW];
        for (int x = 0; x < a * a; x++)
            __builtin_prefetch(V + vrow + x * ld + k0);
        if (cnt < tw)
            memset(v, 0, sizeof v);
        for (int x = 0; x < a * a; x++)
            copy_n(v[x], V + x * ld + k0, (int)cnt * rows, tv);
        _Pragma("GCC unroll 6") for (int i = 0; i < a; i++)   /* down the columns */
            _Pragma("GCC unroll 6") for (int b = 0; b < a; b++)
                LINCOMB(t[i][b], tv, a, BT_(m, k_, i), v[k_ * a + b]);
        const int64_t c = m * (s->tw0 + k0) - p->pw, len = m * cnt + 2;
        const int64_t m0 = c < 0 ? -c : 0, m1 = W - c < len ? W - c : len;
        for (int i = 0; i < a; i++) {
            _Pragma("GCC unroll 6") for (int l = 0; l < a; l++)   /* along the rows */
                LINCOMB(d[l], tv, a, BT_(m, k_, l), t[i][k_]);
            for (int rr = 0; rr < rows; rr++) {
                int64_t r = m * (s->th + rr) - p->ph + i;
                if (r < 0 || r >= p->H)
                    continue;
                for (int j = 0; j < tw; j++)
                    for (int e = 0; e < m; e++)
                        acc[m * j + e] = d[e][rr * tw + j];
                acc[m * tw] = acc[m * tw + 1] = 0.0f;
                for (int j = 0; j < tw; j++)
                    for (int e = 0; e < 2; e++)
                        acc[m * (j + 1) + e] += d[m + e][rr * tw + j];
                float *dst = plane + r * W;
                for (int64_t e = m0; e < m1; e++)
                    dst[c + e] += acc[e];
            }
        }
    }
}

INLINE void seg_input_adjoint_mt(const wino_plan *p, const float *V, int64_t ld,
                                 const seg *s, float *dx, const int m, const int tv,
                                 const int rows)
{
    const int64_t HW = p->H * p->W;
    for (int64_t c = 0; c < p->C; c++)
        plane_input_adjoint(p, V + c * p->vrow, ld, c + 1 < p->C ? p->vrow : 0, s, dx + c * HW,
                            m, tv, rows);
}

/* The adjoint along a segment for the C planes from dx's, from V[c * vrow + k]. */
DS_HOT
static void seg_input_adjoint(const wino_plan *p, const float *V, int64_t ld, const seg *s,
                              float *dx)
{
    BY_TILE(p, s, seg_input_adjoint_mt, p, V, ld, s, dx);
}

/* ---- forward ---- */

/* act(Y + b) along a segment for one filter into its output plane, Y = A^T M A, from
 * M[xi * ld + k] for the segment's tiles k. */
INLINE void plane_outputs(const wino_plan *p, const float *M, int64_t ld, int64_t mrow,
                          const seg *s, float *plane, float b, int act, const int m,
                          const int tv, const int rows)
{
    const int a = m + 2, tw = tv / rows;
    const int64_t OW = p->OW;
    SEG_STEPS(s, tv, rows, k0, cnt) {
        float mm[XI_MAX][TV], r[4][A_MAX][TV], o[4][4][TV], out[4 * TV];
        for (int x = 0; x < a * a; x++)   /* the next filter's */
            __builtin_prefetch(M + mrow + x * ld + k0);
        if (cnt < tw)
            memset(mm, 0, sizeof mm);
        for (int x = 0; x < a * a; x++)
            copy_n(mm[x], M + x * ld + k0, (int)cnt * rows, tv);
        _Pragma("GCC unroll 4") for (int i = 0; i < m; i++)   /* down the columns */
            _Pragma("GCC unroll 6") for (int c = 0; c < a; c++)
                LINCOMB(r[i][c], tv, a, AT_(m, i, k_), mm[k_ * a + c]);
        _Pragma("GCC unroll 4") for (int i = 0; i < m; i++)   /* along the rows */
            _Pragma("GCC unroll 4") for (int e = 0; e < m; e++)
                LINCOMB(o[i][e], tv, a, AT_(m, e, k_), r[i][k_]);
        for (int i = 0; i < m; i++)
            for (int e = 0; e < m; e++) {
#pragma omp simd
                for (int j = 0; j < tv; j++)
                    o[i][e][j] += b;
                if (act == DSI_FUSE_RELU) {
#pragma omp simd
                    for (int j = 0; j < tv; j++)
                        o[i][e][j] = o[i][e][j] > 0 ? o[i][e][j] : 0.0f;
                }
            }
        const int64_t col = m * (s->tw0 + k0);
        const int w = (int)(OW - col < m * cnt ? OW - col : m * cnt);   /* the plane's edge cuts the last tile */
        for (int rr = 0; rr < rows; rr++)
            for (int i = 0; i < m && m * (s->th + rr) + i < p->OH; i++) {
                for (int j = 0; j < tw; j++)
                    for (int e = 0; e < m; e++)
                        out[m * j + e] = o[i][e][rr * tw + j];
                copy_n(plane + (m * (s->th + rr) + i) * OW + col, out, w, m * tw);
            }
    }
}

INLINE void seg_outputs_mt(const wino_plan *p, const float *M, int64_t ld, const seg *s,
                           float *y, const float *bias, int act, int64_t f0, int64_t f1,
                           const int m, const int tv, const int rows)
{
    const int64_t OHW = p->OH * p->OW;
    for (int64_t f = f0; f < f1; f++)
        plane_outputs(p, M + f * p->mrow, ld, f + 1 < f1 ? p->mrow : 0, s, y + f * OHW,
                      bias ? bias[f] : 0.0f, act, m, tv, rows);
}

/* The outputs along a segment for filters [f0, f1), from M[f * mrow + k], into y's
 * planes. */
DS_HOT
static void seg_outputs(const wino_plan *p, const float *M, int64_t ld, const seg *s,
                        float *y, const float *bias, int act, int64_t f0, int64_t f1)
{
    BY_TILE(p, s, seg_outputs_mt, p, M, ld, s, y, bias, act, f0, f1);
}

/* The parts of a block of the forward pass, tiles [g0, g0 + nt), with V and M [xi][F, tb]:
 * the products M_xi = U_xi V_xi for points [k0, k1); the outputs of filters [f0, f1). */
static void block_products(const wino_plan *p, const float *U, const float *V, float *M,
                           int64_t nt, int k0, int k1)
{
    const int64_t F = p->F, C = p->C, tb = p->tb;
    for (int k = k0; k < k1; k++)
        dsi_sgemm(false, false, F, nt, C, 1.0f, U + k * F * C, C, V + k * tb, p->vrow, 0.0f,
                  M + k * tb, p->mrow);
}

static void block_outputs(const ds_node *y, const wino_plan *p, const float *M, int64_t g0,
                          int64_t nt, int64_t f0, int64_t f1)
{
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    seg sg;
    for (int64_t g = g0; g < g0 + nt;) {
        int64_t next = seg_at(p, g, g0, g0 + nt, &sg);
        seg_outputs(p, M + sg.k0, p->tb, &sg, y->data + sg.n * p->F * p->OH * p->OW, bias,
                    y->attr.conv.act, f0, f1);
        g = next;
    }
}

/* Block u's first tile and tile count. */
static int64_t block_tiles(const wino_plan *p, int64_t u, int64_t *g0)
{
    int64_t total = p->N * p->tiles;
    *g0 = u * p->tb;
    return total - *g0 < p->tb ? total - *g0 : p->tb;
}

/* One block of the forward pass: tiles [u tb, (u + 1) tb) into y, with the V and M of
 * thread slot tid. */
DS_HOT
static void forward_block(const ds_node *y, const wino_plan *p, const float *U, int64_t u,
                          int tid)
{
    float *V = y->g->scratch + p->shared + tid * p->per_thread, *M = V + p->C * p->vrow;
    int64_t g0, nt = block_tiles(p, u, &g0);
    block_inputs(p, y->in[0]->data, g0, nt, V, 0, p->C);
    block_products(p, U, V, M, nt, 0, p->xi);
    block_outputs(y, p, M, g0, nt, 0, p->F);
}

/* [lo, hi) of thread t of n over count items: the static split of STYLE.md. */
static void share(int64_t count, int t, int n, int64_t *lo, int64_t *hi)
{
    int64_t per = (count + n - 1) / n;
    *lo = t * per < count ? t * per : count;
    *hi = *lo + per < count ? *lo + per : count;
}

/* Few blocks (a small batch): the threads compute each block together, with the V and M of
 * slot 0, its input transforms split over channels, its products over the points xi, its
 * outputs over filters. Each value is computed as forward_block computes it. */
DS_HOT
static void forward_wide(const ds_node *y, const wino_plan *p, const float *U, int64_t units,
                         DS_OMP_ONLY int nth)
{
    float *V = y->g->scratch + p->shared, *M = V + p->C * p->vrow;
#pragma omp parallel num_threads(nth)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t c0, c1, k0, k1, f0, f1;
        share(p->C, t, n, &c0, &c1);
        share(p->xi, t, n, &k0, &k1);
        share(p->F, t, n, &f0, &f1);
        for (int64_t u = 0; u < units; u++) {
            int64_t g0, nt = block_tiles(p, u, &g0);
            block_inputs(p, y->in[0]->data, g0, nt, V, c0, c1);
#ifdef _OPENMP   /* the minimal build has -fopenmp-simd only, which warns on it */
#pragma omp barrier
#endif
            block_products(p, U, V, M, nt, (int)k0, (int)k1);
#ifdef _OPENMP
#pragma omp barrier
#endif
            block_outputs(y, p, M, g0, nt, f0, f1);
        }
    }
}

DS_HOT
void dsi_wino_forward(ds_node *y, const dsi_conv_geom *q)
{
    wino_plan p;
    int64_t C = y->in[0]->shape[1], F = y->in[1]->shape[0];
    plan_of(q, dsi_wino_tile(q, C, F), y->in[0]->shape[0], C, F, &p);
    const float *U = filters(y, &p, true);
    const int64_t units = (p.N * p.tiles + p.tb - 1) / p.tb;
    const int wide = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (wide > 1 && units < 4 * (int64_t)wide) {   /* blocks alone would leave threads idle */
        forward_wide(y, &p, U, units, wide);
        return;
    }
    int nth = wino_threads(y, &p, units);
    if (nth == 1) {
        /* no parallel region: OpenBLAS may thread the products itself (inside a region of
         * one thread it would open a nested team beside our idle threads) */
        for (int64_t u = 0; u < units; u++)
            forward_block(y, &p, U, u, 0);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t u = 0; u < units; u++)
        forward_block(y, &p, U, u, omp_get_thread_num());
}

/* ---- backward ---- */

/* dM = A dY A^T along a segment for one filter, from its planes of dy and y (dy masked by
 * y > 0 under a fused ReLU), into M[xi * ld + k]; returns the sum of the (masked) dy. next:
 * prefetch the next filter's rows. */
INLINE float plane_grads(const wino_plan *p, const float *dyp, const float *yp, int act,
                         bool next, const seg *s, float *M, int64_t ld, const int m,
                         const int tv, const int rows)
{
    const int a = m + 2, tw = tv / rows;
    const int64_t OW = p->OW, OHW = p->OH * OW;
    float sum = 0;
    SEG_STEPS(s, tv, rows, k0, cnt) {
        const int64_t c = m * (s->tw0 + k0);
        const int w = (int)(OW - c < m * cnt ? OW - c : m * cnt);
        float e[4 * TV], yv[4 * TV], rs[4 * TV], ph[4][4][TV], t[A_MAX][4][TV], mm[XI_MAX][TV];
        for (int j = 0; j < m * tw; j++)
            rs[j] = 0.0f;
        for (int rr = 0; rr < rows; rr++)
            for (int i = 0; i < m; i++) {
                const int64_t r = m * (s->th + rr) + i, off = r * OW + c;
                if (w < m * tw || r >= p->OH)
                    memset(e, 0, sizeof e);
                if (r < p->OH) {
                    if (next) {
                        prefetch_row(dyp + OHW + off, w);
                        if (act == DSI_FUSE_RELU)
                            prefetch_row(yp + OHW + off, w);
                    }
                    copy_n(e, dyp + off, w, m * tw);
                    if (act == DSI_FUSE_RELU) {
                        if (w < m * tw)
                            memset(yv, 0, sizeof yv);
                        copy_n(yv, yp + off, w, m * tw);
                        for (int j = 0; j < m * tw; j++)
                            e[j] = yv[j] > 0 ? e[j] : 0.0f;
                    }
                }
                for (int j = 0; j < m * tw; j++)
                    rs[j] += e[j];
                for (int l = 0; l < m; l++)
                    for (int j = 0; j < tw; j++)
                        ph[i][l][rr * tw + j] = e[m * j + l];
            }
        for (int wd = m * tw / 2; wd > 0; wd /= 2)   /* a tree: no chain of dependent adds */
            for (int j = 0; j < wd; j++)
                rs[j] += rs[j + wd];
        sum += rs[0];
        _Pragma("GCC unroll 6") for (int k = 0; k < a; k++)   /* down the columns */
            _Pragma("GCC unroll 4") for (int l = 0; l < m; l++)
                LINCOMB(t[k][l], tv, m, AT_(m, k_, k), ph[k_][l]);
        _Pragma("GCC unroll 6") for (int k = 0; k < a; k++)   /* along the rows */
            _Pragma("GCC unroll 6") for (int l = 0; l < a; l++)
                LINCOMB(mm[k * a + l], tv, m, AT_(m, k_, l), t[k][k_]);
        for (int x = 0; x < a * a; x++)
            copy_n(M + x * ld + k0, mm[x], (int)cnt * rows, tv);
    }
    return sum;
}

INLINE void seg_grads_mt(const wino_plan *p, const float *dy, const float *yd, int act,
                         const seg *s, float *M, int64_t ld, double *db, const int m,
                         const int tv, const int rows)
{
    const int64_t OHW = p->OH * p->OW;
    for (int64_t f = 0; f < p->F; f++) {
        float t = plane_grads(p, dy + f * OHW, yd + f * OHW, act, f + 1 < p->F, s,
                              M + f * p->mrow, ld, m, tv, rows);
        if (db)
            db[f] += t;
    }
}

/* dM along a segment for the F filters from dy's and y's planes, into M[f * mrow + k];
 * adds each filter's sum of the (masked) dy into db[f] when db is set. */
DS_HOT
static void seg_grads(const wino_plan *p, const float *dy, const float *yd, int act,
                      const seg *s, float *M, int64_t ld, double *db)
{
    BY_TILE(p, s, seg_grads_mt, p, dy, yd, act, s, M, ld, db);
}

/* What the backward pass computes: dx, the partial dU per chunk, the partial db per chunk. */
typedef struct {
    bool dx, dw, db;
} wants;

/* One chunk of the backward pass: samples [ch N / nch, (ch + 1) N / nch), its partial dU
 * and bias gradient, with the V and M of thread slot tid. */
DS_HOT
static void backward_chunk(ds_node *y, const wino_plan *p, wants w, const float *U,
                           int64_t ch, int tid)
{
    const ds_node *x = y->in[0];
    const int act = y->attr.conv.act;
    const int64_t F = p->F, C = p->C, tb = p->tb, FC = F * C, nch = p->nch, N = p->N;
    const int64_t OHW = p->OH * p->OW, HW = p->H * p->W;
    float *V = y->g->scratch + p->shared + tid * p->per_thread, *M = V + C * p->vrow;
    float *du = y->g->scratch + p->du_off + ch * p->xi * FC;
    double *dbc = w.db ? (double *)(y->g->scratch + p->bias_off) + ch * F : NULL;
    if (dbc)
        memset(dbc, 0, (size_t)F * sizeof *dbc);
    int64_t g_start = ch * N / nch * p->tiles, g_end = (ch + 1) * N / nch * p->tiles;
    for (int64_t g0 = g_start; g0 < g_end; g0 += tb) {
        int64_t nt = g_end - g0 < tb ? g_end - g0 : tb;
        seg sg;
        for (int64_t g = g0; g < g0 + nt;) {
            int64_t next = seg_at(p, g, g0, g0 + nt, &sg);
            seg_grads(p, y->grad + sg.n * F * OHW, y->data + sg.n * F * OHW, act, &sg,
                      M + sg.k0, tb, dbc);
            g = next;
        }
        if (w.dw) {
            block_inputs(p, x->data, g0, nt, V, 0, p->C);
            for (int k = 0; k < p->xi; k++)
                dsi_sgemm(false, true, F, C, nt, 1.0f, M + k * tb, p->mrow, V + k * tb,
                          p->vrow, g0 == g_start ? 0.0f : 1.0f, du + k * FC, C);
        }
        if (!w.dx)
            continue;
        for (int k = 0; k < p->xi; k++)
            dsi_sgemm(true, false, C, nt, F, 1.0f, U + k * FC, C, M + k * tb, p->mrow, 0.0f,
                      V + k * tb, p->vrow);
        for (int64_t g = g0; g < g0 + nt;) {
            int64_t next = seg_at(p, g, g0, g0 + nt, &sg);
            seg_input_adjoint(p, V + sg.k0, tb, &sg, x->grad + sg.n * C * HW);
            g = next;
        }
    }
}

DS_HOT
void dsi_wino_backward(ds_node *y, const dsi_conv_geom *q)
{
    ds_node *x = y->in[0], *wt = y->in[1];
    wants w = {x->grad, wt->grad, y->n_in == 3 && y->in[2]->grad};
    if (!w.dx && !w.dw && !w.db)
        return;
    const int m = dsi_wino_tile(q, x->shape[1], wt->shape[0]);
    wino_plan p;
    plan_of(q, m, x->shape[0], x->shape[1], wt->shape[0], &p);
    const int64_t nch = p.nch;
    const float *U = w.dx ? filters(y, &p, false) : NULL;
    int nth = wino_threads(y, &p, nch);
    if (nth == 1) {
        for (int64_t ch = 0; ch < nch; ch++)   /* no region: see dsi_wino_forward */
            backward_chunk(y, &p, w, U, ch, 0);
    } else {
#pragma omp parallel for schedule(static) num_threads(nth)
        for (int64_t ch = 0; ch < nch; ch++)
            backward_chunk(y, &p, w, U, ch, omp_get_thread_num());
    }
    float *dU = y->g->scratch + p.du_off;
    if (w.dw) {
        dsi_fold_partials(dU, nch, p.xi * p.F * p.C, dU, false);   /* into chunk 0's */
        weight_adjoint(dU, m, p.F, p.C, wt->grad);
    }
    if (w.db)
        dsi_fold_bias((double *)(y->g->scratch + p.bias_off), nch, p.F, y->in[2]->grad);
}
