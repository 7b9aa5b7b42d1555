/* conv_winograd.c - Winograd F(2x2, 3x3): the 3x3, stride-1 2-D convolutions of CNNs with
 * 2.25x fewer multiplications than im2col + sgemm, in the forward pass and in both
 * gradients. conv.c calls it when dsi_wino_applies.
 *
 * Lavin & Gray (2016): an output tile Y (2x2) from an input tile d (4x4, rows and columns
 * 2t - pad .. 2t - pad + 3) and a kernel g (3x3) is Y = A^T [(G g G^T) . (B^T d B)] A. Summed
 * over channels, each of the 16 points xi of a transformed tile is a matrix product,
 * M_xi [F, T] = U_xi [F, C] V_xi [C, T], one sgemm per xi on a block of T tiles.
 * Backward runs the adjoints of these steps: dM = A dY A^T; dV_xi = U_xi^T dM_xi, then
 * dx += B dV B^T (neighbouring tiles overlap and add); dU_xi += dM_xi V_xi^T, then
 * dW += G^T dU G. They are the exact gradients of the forward pass as computed.
 *
 * Work split: the forward pass cuts the flattened list of (sample, tile) into blocks of T
 * tiles, each computed on its own; backward cuts the batch into nch = min(N, 8) chunks of
 * whole samples (so no two threads add into the same dx), each with its partial dU and bias
 * gradient, summed over chunks in order. Blocks and chunks depend on the shapes only, so
 * results do not depend on the thread count. */
#include "conv_impl.h"

#include <omp.h>

enum { XI = 16 };   /* points of a transformed 4x4 tile */

typedef struct {
    int64_t N, C, F, H, W, OH, OW, ph, pw;
    int64_t TH, TW, tiles;   /* tiles per sample: TH x TW */
    int64_t tb;              /* tiles per block */
    int64_t nch;             /* backward chunks */
    int64_t vs, ms;          /* floats from one point's slice of V [C, tb] (M [F, tb]) to the next */
    int64_t per_thread;      /* floats: V [16][C, tb], M [16][F, tb], two rows, acc, tail */
    int64_t shared;          /* floats: U, bias partials (double), nch dU partials */
    int64_t bias_off, du_off;
} wino_plan;

bool dsi_wino_applies(const dsi_conv_geom *q, int64_t C, int64_t F)
{
    /* a 2-D convolution (the leading axis is a dummy), 3x3, stride 1, dilation 1; with few
     * channels the products are too thin for the transforms to pay */
    return q->in[0] == 1 && q->k[0] == 1 && q->k[1] == 3 && q->k[2] == 3 && q->s[1] == 1 &&
           q->s[2] == 1 && q->d[1] == 1 && q->d[2] == 1 && C >= 8 && F >= 8 &&
           q->out[1] >= 2 && q->out[2] >= 2;
}

static void plan_of(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, wino_plan *p)
{
    p->N = N;
    p->C = C;
    p->F = F;
    p->H = q->in[1];
    p->W = q->in[2];
    p->OH = q->out[1];
    p->OW = q->out[2];
    p->ph = q->p[1];
    p->pw = q->p[2];
    p->TH = (p->OH + 1) / 2;
    p->TW = (p->OW + 1) / 2;
    p->tiles = p->TH * p->TW;
    /* blocks of about 1.5 MB of transformed tiles per thread, 32 to 512 tiles */
    int64_t tb = 24576 / (C + F) / 16 * 16;
    p->tb = tb < 32 ? 32 : tb > 512 ? 512 : tb;
    p->nch = N < 8 ? N : 8;
    int64_t rows = ((p->W > p->OW ? p->W : p->OW) + 15) / 16 * 16;
    /* 16 floats between the points' slices: strides of a power of two would put all 16
     * streams of a transform in the same cache sets */
    p->vs = C * p->tb + 16;
    p->ms = F * p->tb + 16;
    p->per_thread = XI * (p->vs + p->ms) + 2 * rows + 4 * (2 * p->tb + 2) + 8 * p->tb;
    p->bias_off = XI * F * C;
    p->du_off = p->bias_off + (2 * p->nch * F + 15) / 16 * 16;
    p->shared = p->du_off + p->nch * XI * F * C;
}

size_t dsi_wino_scratch(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, int nth)
{
    wino_plan p;
    plan_of(q, N, C, F, &p);
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

/* ---- the transforms ---- */

/* U = G g G^T for every (f, c): U [16, F, C]. */
static void weight_transform(const float *w, int64_t F, int64_t C, float *U)
{
    const int64_t FC = F * C;
#pragma omp parallel for schedule(static) if (FC * 64 > DS_PAR_MIN)
    for (int64_t fc = 0; fc < FC; fc++) {
        const float *g = w + fc * 9;
        float t[4][3], u[4][4];
        for (int j = 0; j < 3; j++) {
            float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
            t[0][j] = g0;
            t[1][j] = 0.5f * (g0 + g1 + g2);
            t[2][j] = 0.5f * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        for (int i = 0; i < 4; i++) {
            float a = t[i][0], b = t[i][1], c = t[i][2];
            u[i][0] = a;
            u[i][1] = 0.5f * (a + b + c);
            u[i][2] = 0.5f * (a - b + c);
            u[i][3] = c;
        }
        for (int k = 0; k < XI; k++)
            U[k * FC + fc] = u[k / 4][k % 4];
    }
}

/* dW[f, c] += G^T dU G, dU [16, F, C]. */
static void weight_adjoint(const float *dU, int64_t F, int64_t C, float *dw)
{
    const int64_t FC = F * C;
#pragma omp parallel for schedule(static) if (FC * 64 > DS_PAR_MIN)
    for (int64_t fc = 0; fc < FC; fc++) {
        float u[4][4], t[3][4];
        for (int k = 0; k < XI; k++)
            u[k / 4][k % 4] = dU[k * FC + fc];
        for (int j = 0; j < 4; j++) {
            float a = u[0][j], b = u[1][j], c = u[2][j], d = u[3][j];
            t[0][j] = a + 0.5f * (b + c);
            t[1][j] = 0.5f * (b - c);
            t[2][j] = 0.5f * (b + c) + d;
        }
        float *g = dw + fc * 9;
        for (int i = 0; i < 3; i++) {
            float a = t[i][0], b = t[i][1], c = t[i][2], d = t[i][3];
            g[i * 3 + 0] += a + 0.5f * (b + c);
            g[i * 3 + 1] += 0.5f * (b - c);
            g[i * 3 + 2] += 0.5f * (b + c) + d;
        }
    }
}

/* ---- tiles along a row ----
 * A block of tiles is a run of segments, each a stretch [tw0, tw1) of one tile row th of one
 * sample n, at position k0 in the block. Along a segment, transformed values of consecutive
 * tiles are consecutive in V and M, so the loops over tiles vectorize; tiles that reach
 * past the plane's edge take the scalar path. */
typedef struct {
    int64_t n, th, tw0, tw1, k0;
} seg;

/* The segment starting at global tile g of a block starting at g0 and ending at g_end;
 * returns the first tile after it. */
static int64_t seg_at(const wino_plan *p, int64_t g, int64_t g0, int64_t g_end, seg *s)
{
    int64_t t = g % p->tiles, end;
    s->n = g / p->tiles;
    s->th = t / p->TW;
    s->tw0 = t % p->TW;
    end = g + (p->TW - s->tw0);
    if (end > g_end)
        end = g_end;
    s->tw1 = s->tw0 + (end - g);
    s->k0 = g - g0;
    return end;
}

/* Clips [*lo, *hi) to the tiles tw whose 4 columns 2 tw - pw .. 2 tw - pw + 3 lie inside
 * [0, W); an empty result has *lo == *hi. */
static void inner_tiles(int64_t W, int64_t pw, int64_t *lo, int64_t *hi)
{
    int64_t a = (pw + 1) / 2, b = W - 4 + pw >= 0 ? (W - 4 + pw) / 2 + 1 : 0;
    a = a > *lo ? a : *lo;
    b = b < *hi ? b : *hi;
    if (a > *hi)
        a = *hi;
    *lo = a;
    *hi = b > a ? b : a;
}

/* v = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
#define BT_D_B(d, v)                                                                     \
    do {                                                                                 \
        float t_[4][4];                                                                  \
        for (int j_ = 0; j_ < 4; j_++) {                                                 \
            t_[0][j_] = d[0][j_] - d[2][j_];                                             \
            t_[1][j_] = d[1][j_] + d[2][j_];                                             \
            t_[2][j_] = d[2][j_] - d[1][j_];                                             \
            t_[3][j_] = d[1][j_] - d[3][j_];                                             \
        }                                                                                \
        for (int i_ = 0; i_ < 4; i_++) {                                                 \
            v[i_ * 4 + 0] = t_[i_][0] - t_[i_][2];                                       \
            v[i_ * 4 + 1] = t_[i_][1] + t_[i_][2];                                       \
            v[i_ * 4 + 2] = t_[i_][2] - t_[i_][1];                                       \
            v[i_ * 4 + 3] = t_[i_][1] - t_[i_][3];                                       \
        }                                                                                \
    } while (0)

/* The transform of one tile at column c0 that reaches past the plane's edge. */
static void edge_input(const float *const rows[4], int64_t W, int64_t c0, float *V, int64_t ld)
{
    float d[4][4], v[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            d[i][j] = c0 + j >= 0 && c0 + j < W ? rows[i][c0 + j] : 0.0f;
    BT_D_B(d, v);
    for (int x = 0; x < XI; x++)
        V[x * ld] = v[x];
}

/* Input transforms of one channel plane along a segment: V[xi * ld + k] for the segment's
 * tiles k = 0, 1, ...; zero is a row of W zeros standing for rows outside the plane. */
static void seg_inputs(const wino_plan *p, const float *plane, const seg *s, float *V,
                       int64_t ld, const float *zero)
{
    const int64_t W = p->W, pw = p->pw, t0 = s->tw0;
    const float *rows[4];
    for (int i = 0; i < 4; i++) {
        int64_t r = 2 * s->th - p->ph + i;
        rows[i] = r >= 0 && r < p->H ? plane + r * W : zero;
    }
    const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
    int64_t lo = t0, hi = s->tw1;
    inner_tiles(W, pw, &lo, &hi);
    for (int64_t tw = t0; tw < lo; tw++)
        edge_input(rows, W, 2 * tw - pw, V + (tw - t0), ld);
#pragma omp simd
    for (int64_t tw = lo; tw < hi; tw++) {
        const int64_t c0 = 2 * tw - pw, k = tw - t0;
        float d[4][4], v[16];
        for (int j = 0; j < 4; j++) {
            d[0][j] = r0[c0 + j];
            d[1][j] = r1[c0 + j];
            d[2][j] = r2[c0 + j];
            d[3][j] = r3[c0 + j];
        }
        BT_D_B(d, v);
        for (int x = 0; x < XI; x++)
            V[x * ld + k] = v[x];
    }
    for (int64_t tw = hi; tw < s->tw1; tw++)
        edge_input(rows, W, 2 * tw - pw, V + (tw - t0), ld);
}

/* Input transforms of the tiles [g0, g0 + nt): V [16][C, tb]. */
static void block_inputs(const wino_plan *p, const float *x, int64_t g0, int64_t nt, float *V,
                         const float *zero)
{
    const int64_t ld = p->vs;
    seg s;
    for (int64_t g = g0; g < g0 + nt;) {
        int64_t next = seg_at(p, g, g0, g0 + nt, &s);
        for (int64_t c = 0; c < p->C; c++)
            seg_inputs(p, x + (s.n * p->C + c) * p->H * p->W, &s, V + c * p->tb + s.k0, ld,
                       zero);
        g = next;
    }
}

/* dx += B dV B^T along a segment of one channel plane, dV[xi * ld + k] for its tiles k.
 * Tiles overlap by two columns and two rows: the columns are summed in the row buffers
 * acc (4 rows of 2 * tb + 2) and tail (4 rows of 2 * tb), the rows added into the plane. */
static void seg_input_adjoint(const wino_plan *p, const float *V, int64_t ld, const seg *s,
                              float *plane, float *acc, float *tail)
{
    const int64_t n = s->tw1 - s->tw0, la = 2 * p->tb + 2, W = p->W;
    float *a0 = acc, *a1 = acc + la, *a2 = acc + 2 * la, *a3 = acc + 3 * la;
    float *e0 = tail, *e1 = tail + 2 * p->tb, *e2 = tail + 4 * p->tb, *e3 = tail + 6 * p->tb;
    /* B = [1 0 0 0; 0 1 -1 1; -1 1 1 0; 0 0 0 -1]: d = B v B^T; columns 0, 1 of tile k go
     * to acc[2k], acc[2k + 1], columns 2, 3 to tail[2k], tail[2k + 1] */
#pragma omp simd
    for (int64_t k = 0; k < n; k++) {
        float v[4][4], t[4][4], d[4][4];
        for (int x = 0; x < XI; x++)
            v[x / 4][x % 4] = V[x * ld + k];
        for (int j = 0; j < 4; j++) {
            t[0][j] = v[0][j];
            t[1][j] = v[1][j] - v[2][j] + v[3][j];
            t[2][j] = v[1][j] + v[2][j] - v[0][j];
            t[3][j] = -v[3][j];
        }
        for (int i = 0; i < 4; i++) {
            d[i][0] = t[i][0];
            d[i][1] = t[i][1] - t[i][2] + t[i][3];
            d[i][2] = t[i][1] + t[i][2] - t[i][0];
            d[i][3] = -t[i][3];
        }
        a0[2 * k] = d[0][0]; a0[2 * k + 1] = d[0][1]; e0[2 * k] = d[0][2]; e0[2 * k + 1] = d[0][3];
        a1[2 * k] = d[1][0]; a1[2 * k + 1] = d[1][1]; e1[2 * k] = d[1][2]; e1[2 * k + 1] = d[1][3];
        a2[2 * k] = d[2][0]; a2[2 * k + 1] = d[2][1]; e2[2 * k] = d[2][2]; e2[2 * k + 1] = d[2][3];
        a3[2 * k] = d[3][0]; a3[2 * k + 1] = d[3][1]; e3[2 * k] = d[3][2]; e3[2 * k + 1] = d[3][3];
    }
    float *rows[4] = {a0, a1, a2, a3}, *tails[4] = {e0, e1, e2, e3};
    const int64_t c0 = 2 * s->tw0 - p->pw, len = 2 * n + 2;
    int64_t m0 = c0 < 0 ? -c0 : 0, m1 = W - c0 < len ? W - c0 : len;
    for (int i = 0; i < 4; i++) {
        float *a = rows[i];
        const float *e = tails[i];
        a[2 * n] = 0.0f;
        a[2 * n + 1] = 0.0f;
#pragma omp simd
        for (int64_t m = 0; m < 2 * n; m++)
            a[m + 2] += e[m];
        int64_t r = 2 * s->th - p->ph + i;
        if (r < 0 || r >= p->H)
            continue;
        float *dst = plane + r * W;
#pragma omp simd
        for (int64_t m = m0; m < m1; m++)
            dst[c0 + m] += a[m];
    }
}

/* ---- forward ---- */

/* Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], of the tile M[xi * ld + k]. */
#define AT_M_A(M, ld, k, y)                                                               \
    do {                                                                                  \
        float r_[2][4];                                                                   \
        for (int j_ = 0; j_ < 4; j_++) {                                                  \
            float m0_ = M[j_ * ld + k], m1_ = M[(4 + j_) * ld + k];                       \
            float m2_ = M[(8 + j_) * ld + k], m3_ = M[(12 + j_) * ld + k];                \
            r_[0][j_] = m0_ + m1_ + m2_;                                                  \
            r_[1][j_] = m1_ - m2_ - m3_;                                                  \
        }                                                                                 \
        for (int i_ = 0; i_ < 2; i_++) {                                                  \
            y[i_][0] = r_[i_][0] + r_[i_][1] + r_[i_][2];                                 \
            y[i_][1] = r_[i_][1] - r_[i_][2] - r_[i_][3];                                 \
        }                                                                                 \
    } while (0)

static inline float out_act(float v, int act) { return act == DSI_FUSE_RELU && !(v > 0) ? 0.0f : v; }

/* act(Y + b) along a segment for one filter, M[xi * ld + k] for its tiles k, into the
 * output plane; sink is a row of OW floats taking the second row of the last tile row when
 * OH is odd. */
static void seg_outputs(const wino_plan *p, const float *M, int64_t ld, const seg *s,
                        float *plane, float b, int act, float *sink)
{
    const int64_t OW = p->OW, r0 = 2 * s->th, n = s->tw1 - s->tw0;
    float *y0 = plane + r0 * OW + 2 * s->tw0;
    float *y1 = r0 + 1 < p->OH ? y0 + OW : sink;
    const int64_t full = 2 * s->tw1 > OW ? n - 1 : n;   /* the last tile of an odd row is cut */
#pragma omp simd
    for (int64_t k = 0; k < full; k++) {
        float t[2][2];
        AT_M_A(M, ld, k, t);
        y0[2 * k] = out_act(t[0][0] + b, act);
        y0[2 * k + 1] = out_act(t[0][1] + b, act);
        y1[2 * k] = out_act(t[1][0] + b, act);
        y1[2 * k + 1] = out_act(t[1][1] + b, act);
    }
    if (full < n) {
        float t[2][2];
        AT_M_A(M, ld, full, t);
        y0[2 * full] = out_act(t[0][0] + b, act);
        y1[2 * full] = out_act(t[1][0] + b, act);
    }
}

/* Per-thread scratch besides V and M: a row of zeros and a sink row, each of row_n floats. */
static int64_t row_n(const wino_plan *p)
{
    int64_t w = p->W > p->OW ? p->W : p->OW;
    return (w + 15) / 16 * 16;
}

void dsi_wino_forward(ds_node *y, const dsi_conv_geom *q)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    const int act = (int)y->ia[13];
    wino_plan p;
    plan_of(q, x->shape[0], x->shape[1], w->shape[0], &p);
    float *U = y->g->scratch, *base = y->g->scratch + p.shared, *yd = y->data;
    weight_transform(w->data, p.F, p.C, U);
    const int64_t total = p.N * p.tiles, units = (total + p.tb - 1) / p.tb;
    const int64_t F = p.F, C = p.C, tb = p.tb, OHW = p.OH * p.OW;
#pragma omp parallel num_threads(wino_threads(y, &p, units))
    {
        float *V = base + omp_get_thread_num() * p.per_thread, *M = V + XI * p.vs;
        float *zero = M + XI * p.ms, *sink = zero + row_n(&p);
        memset(zero, 0, (size_t)row_n(&p) * sizeof *zero);
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            int64_t g0 = u * tb, nt = total - g0 < tb ? total - g0 : tb;
            block_inputs(&p, x->data, g0, nt, V, zero);
            for (int k = 0; k < XI; k++)
                dsi_sgemm(false, false, F, nt, C, 1.0f, U + k * F * C, C, V + k * p.vs, tb,
                          0.0f, M + k * p.ms, tb);
            seg sg;
            for (int64_t g = g0; g < g0 + nt;) {
                int64_t next = seg_at(&p, g, g0, g0 + nt, &sg);
                for (int64_t f = 0; f < F; f++)
                    seg_outputs(&p, M + f * tb + sg.k0, p.ms, &sg, yd + (sg.n * F + f) * OHW,
                                bias ? bias[f] : 0.0f, act, sink);
                g = next;
            }
        }
    }
}

/* ---- backward ---- */

/* dM = A dY A^T, A = [1 0; 1 1; 1 -1; 0 -1], of the 2x2 tile e into M[xi * ld + k]. */
#define A_E_AT(e, M, ld, k)                                                               \
    do {                                                                                  \
        float t_[4][2];                                                                   \
        for (int j_ = 0; j_ < 2; j_++) {                                                  \
            t_[0][j_] = e[0][j_];                                                         \
            t_[1][j_] = e[0][j_] + e[1][j_];                                              \
            t_[2][j_] = e[0][j_] - e[1][j_];                                              \
            t_[3][j_] = -e[1][j_];                                                        \
        }                                                                                 \
        for (int i_ = 0; i_ < 4; i_++) {                                                  \
            M[(i_ * 4 + 0) * ld + k] = t_[i_][0];                                         \
            M[(i_ * 4 + 1) * ld + k] = t_[i_][0] + t_[i_][1];                             \
            M[(i_ * 4 + 2) * ld + k] = t_[i_][0] - t_[i_][1];                             \
            M[(i_ * 4 + 3) * ld + k] = -t_[i_][1];                                        \
        }                                                                                 \
    } while (0)

/* The gradient at the output, masked by y > 0 under a fused ReLU. */
static inline float in_grad(float g, float yv, int act)
{
    return act == DSI_FUSE_RELU && !(yv > 0) ? 0.0f : g;
}

/* dM along a segment for one filter from the planes of dy and y (zero: a row of zeros for
 * the second row of the last tile row when OH is odd); returns the sum of the (masked) dy. */
static float seg_grads(const wino_plan *p, const float *dyp, const float *yp, int act,
                       const seg *s, float *M, int64_t ld, const float *zero)
{
    const int64_t OW = p->OW, r0 = 2 * s->th, n = s->tw1 - s->tw0, c = 2 * s->tw0;
    const bool two = r0 + 1 < p->OH;
    const float *d0 = dyp + r0 * OW + c, *d1 = two ? d0 + OW : zero;
    const float *y0 = yp + r0 * OW + c, *y1 = two ? y0 + OW : zero;
    const int64_t full = 2 * s->tw1 > OW ? n - 1 : n;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < full; k++) {
        float e[2][2];
        e[0][0] = in_grad(d0[2 * k], y0[2 * k], act);
        e[0][1] = in_grad(d0[2 * k + 1], y0[2 * k + 1], act);
        e[1][0] = in_grad(d1[2 * k], y1[2 * k], act);
        e[1][1] = in_grad(d1[2 * k + 1], y1[2 * k + 1], act);
        sum += (e[0][0] + e[0][1]) + (e[1][0] + e[1][1]);
        A_E_AT(e, M, ld, k);
    }
    if (full < n) {
        float e[2][2] = {{in_grad(d0[2 * full], y0[2 * full], act), 0.0f},
                         {in_grad(d1[2 * full], y1[2 * full], act), 0.0f}};
        sum += e[0][0] + e[1][0];
        A_E_AT(e, M, ld, full);
    }
    return sum;
}

void dsi_wino_backward(ds_node *y, const dsi_conv_geom *q)
{
    ds_node *x = y->in[0], *w = y->in[1];
    float *dx = x->grad, *dw = w->grad, *db = y->n_in == 3 ? y->in[2]->grad : NULL;
    if (!dx && !dw && !db)
        return;
    const int act = (int)y->ia[13];
    wino_plan p;
    plan_of(q, x->shape[0], x->shape[1], w->shape[0], &p);
    const int64_t F = p.F, C = p.C, tb = p.tb, FC = F * C, nch = p.nch, N = p.N;
    const int64_t OHW = p.OH * p.OW, HW = p.H * p.W;
    float *U = y->g->scratch, *base = y->g->scratch + p.shared;
    double *dbs = (double *)(y->g->scratch + p.bias_off);
    float *dU = y->g->scratch + p.du_off;
    if (dx)
        weight_transform(w->data, F, C, U);
#pragma omp parallel for schedule(static) num_threads(wino_threads(y, &p, nch))
    for (int64_t ch = 0; ch < nch; ch++) {
        float *V = base + omp_get_thread_num() * p.per_thread, *M = V + XI * p.vs;
        float *zero = M + XI * p.ms, *acc = zero + row_n(&p), *tail = acc + 4 * (2 * tb + 2);
        memset(zero, 0, (size_t)row_n(&p) * sizeof *zero);
        float *du = dU + ch * XI * FC;
        double *dbc = db ? dbs + ch * F : NULL;
        if (dbc)
            memset(dbc, 0, (size_t)F * sizeof *dbc);
        if (dw)
            memset(du, 0, (size_t)(XI * FC) * sizeof *du);
        int64_t g_end = (ch + 1) * N / nch * p.tiles;
        for (int64_t g0 = ch * N / nch * p.tiles; g0 < g_end; g0 += tb) {
            int64_t nt = g_end - g0 < tb ? g_end - g0 : tb;
            seg sg;
            for (int64_t g = g0; g < g0 + nt;) {
                int64_t next = seg_at(&p, g, g0, g0 + nt, &sg);
                for (int64_t f = 0; f < F; f++) {
                    int64_t off = (sg.n * F + f) * OHW;
                    float s = seg_grads(&p, y->grad + off, y->data + off, act, &sg,
                                        M + f * tb + sg.k0, p.ms, zero);
                    if (dbc)
                        dbc[f] += s;
                }
                g = next;
            }
            if (dw) {
                block_inputs(&p, x->data, g0, nt, V, zero);
                for (int k = 0; k < XI; k++)
                    dsi_sgemm(false, true, F, C, nt, 1.0f, M + k * p.ms, tb, V + k * p.vs,
                              tb, 1.0f, du + k * FC, C);
            }
            if (!dx)
                continue;
            for (int k = 0; k < XI; k++)
                dsi_sgemm(true, false, C, nt, F, 1.0f, U + k * FC, C, M + k * p.ms, tb, 0.0f,
                          V + k * p.vs, tb);
            for (int64_t g = g0; g < g0 + nt;) {
                int64_t next = seg_at(&p, g, g0, g0 + nt, &sg);
                for (int64_t c = 0; c < C; c++)
                    seg_input_adjoint(&p, V + c * tb + sg.k0, p.vs, &sg,
                                      dx + (sg.n * C + c) * HW, acc, tail);
                g = next;
            }
        }
    }
    if (dw) {
        /* partials summed over chunks in order, into chunk 0's */
#pragma omp parallel for schedule(static) if (nch * XI * FC > DS_PAR_MIN)
        for (int64_t e = 0; e < XI * FC; e++) {
            float s = dU[e];
            for (int64_t ch = 1; ch < nch; ch++)
                s += dU[ch * XI * FC + e];
            dU[e] = s;
        }
        weight_adjoint(dU, F, C, dw);
    }
    if (db)
        for (int64_t f = 0; f < F; f++) {
            double s = 0;
            for (int64_t ch = 0; ch < nch; ch++)
                s += dbs[ch * F + f];
            db[f] += (float)s;
        }
}
