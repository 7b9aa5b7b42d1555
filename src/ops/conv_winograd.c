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

enum {
    XI = 16,   /* points of a transformed 4x4 tile */
    TV = 16,   /* tiles per step of the transforms: loops of a fixed length vectorize */
};

typedef struct {
    int64_t N, C, F, H, W, OH, OW, ph, pw;
    int64_t TH, TW, tiles;   /* tiles per sample: TH x TW */
    int64_t tb;              /* tiles per block */
    int64_t nch;             /* backward chunks */
    int64_t vs, ms;          /* floats from one point's slice of V [C, tb] (M [F, tb]) to the next */
    int64_t per_thread;      /* floats: V [16][C, tb] and M [16][F, tb] */
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
    /* blocks of about 0.75 MB of transformed tiles per thread, 32 to 512 tiles */
    int64_t tb = 12288 / (C + F) / 16 * 16;
    p->tb = tb < 32 ? 32 : tb > 512 ? 512 : tb;
    p->nch = N < 8 ? N : 8;
    /* 16 floats between the points' slices: strides of a power of two would put all 16
     * streams of a transform in the same cache sets */
    p->vs = C * p->tb + 16;
    p->ms = F * p->tb + 16;
    p->per_thread = XI * (p->vs + p->ms);
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
DS_HOT
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
DS_HOT
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

/* ---- tiles along a row ----
 * A block of tiles is a run of segments, each a stretch [tw0, tw1) of one tile row th of one
 * sample n, at position k0 in the block. Along a segment, transformed values of consecutive
 * tiles are consecutive in V and M. The transforms take TV tiles at a time through small
 * local arrays (zero-padded at the plane's edges and past a segment's end), so that their
 * loops have a fixed length and vectorize on any SIMD width. */
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

/* Input transforms of one channel plane along a segment: V[xi * ld + k] for the segment's
 * tiles k = 0, 1, ... */
/* tv tiles per step: 16 or 8, a constant once inlined */
static inline __attribute__((always_inline)) void
seg_inputs_tv(const wino_plan *p, const float *plane, const seg *s, float *V,
                       int64_t ld, const int tv)
{
    const float *rows[4];
    for (int i = 0; i < 4; i++) {
        int64_t r = 2 * s->th - p->ph + i;
        rows[i] = r >= 0 && r < p->H ? plane + r * p->W : NULL;
    }
    const int64_t n = s->tw1 - s->tw0;
    for (int64_t k0 = 0; k0 < n; k0 += tv) {
        int cnt = n - k0 < tv ? (int)(n - k0) : tv;
        float r[4][2 * TV + 2], v[XI][TV];
        for (int i = 0; i < 4; i++)
            load_row(rows[i], p->W, 2 * (s->tw0 + k0) - p->pw, r[i], 2 * tv + 2);
        for (int j = 0; j < tv; j++) {
            float d[4][4], t[16];
            for (int i = 0; i < 4; i++)
                for (int jj = 0; jj < 4; jj++)
                    d[i][jj] = r[i][2 * j + jj];
            BT_D_B(d, t);
            for (int x = 0; x < XI; x++)
                v[x][j] = t[x];
        }
        for (int x = 0; x < XI; x++)
            copy_n(V + x * ld + k0, v[x], cnt, tv);
    }
}

/* Input transforms along a segment for the C planes from x's, into V[c * tb + k]. */
DS_HOT
static void seg_inputs(const wino_plan *p, const float *x, const seg *s, float *V, int64_t ld)
{
    const int64_t HW = p->H * p->W;
    if (p->TW >= 16)
        for (int64_t c = 0; c < p->C; c++)
            seg_inputs_tv(p, x + c * HW, s, V + c * p->tb, ld, 16);
    else
        for (int64_t c = 0; c < p->C; c++)
            seg_inputs_tv(p, x + c * HW, s, V + c * p->tb, ld, 8);
}

/* Input transforms of the tiles [g0, g0 + nt): V [16][C, tb]. */
static void block_inputs(const wino_plan *p, const float *x, int64_t g0, int64_t nt, float *V)
{
    seg s;
    for (int64_t g = g0; g < g0 + nt;) {
        int64_t next = seg_at(p, g, g0, g0 + nt, &s);
        seg_inputs(p, x + s.n * p->C * p->H * p->W, &s, V + s.k0, p->vs);
        g = next;
    }
}

/* dx += B dV B^T along a segment of one channel plane, dV[xi * ld + k] for its tiles k.
 * B = [1 0 0 0; 0 1 -1 1; -1 1 1 0; 0 0 0 -1]. Neighbouring tiles overlap by two columns
 * (summed in a row buffer) and two rows (added into the plane in turn). */
/* tv tiles per step: 16 or 8, a constant once inlined */
static inline __attribute__((always_inline)) void
seg_input_adjoint_tv(const wino_plan *p, const float *V, int64_t ld, const seg *s,
                              float *plane, const int tv)
{
    const int64_t n = s->tw1 - s->tw0, W = p->W;
    for (int64_t k0 = 0; k0 < n; k0 += tv) {
        int cnt = n - k0 < tv ? (int)(n - k0) : tv;
        float v[XI][TV], acc[4][2 * TV + 2], tail[4][2 * TV];
        if (cnt < tv)
            memset(v, 0, sizeof v);
        for (int x = 0; x < XI; x++)
            copy_n(v[x], V + x * ld + k0, cnt, tv);
        for (int j = 0; j < tv; j++) {
            float t[4][4], d[4][4];
            for (int jj = 0; jj < 4; jj++) {
                t[0][jj] = v[jj][j];
                t[1][jj] = v[4 + jj][j] - v[8 + jj][j] + v[12 + jj][j];
                t[2][jj] = v[4 + jj][j] + v[8 + jj][j] - v[jj][j];
                t[3][jj] = -v[12 + jj][j];
            }
            for (int i = 0; i < 4; i++) {
                d[i][0] = t[i][0];
                d[i][1] = t[i][1] - t[i][2] + t[i][3];
                d[i][2] = t[i][1] + t[i][2] - t[i][0];
                d[i][3] = -t[i][3];
                acc[i][2 * j] = d[i][0];
                acc[i][2 * j + 1] = d[i][1];
                tail[i][2 * j] = d[i][2];
                tail[i][2 * j + 1] = d[i][3];
            }
        }
        const int64_t c = 2 * (s->tw0 + k0) - p->pw, len = 2 * cnt + 2;
        const int64_t m0 = c < 0 ? -c : 0, m1 = W - c < len ? W - c : len;
        for (int i = 0; i < 4; i++) {
            acc[i][2 * tv] = acc[i][2 * tv + 1] = 0.0f;
            for (int m = 0; m < 2 * tv; m++)
                acc[i][m + 2] += tail[i][m];
            int64_t r = 2 * s->th - p->ph + i;
            if (r < 0 || r >= p->H)
                continue;
            float *dst = plane + r * W;
            for (int64_t m = m0; m < m1; m++)
                dst[c + m] += acc[i][m];
        }
    }
}

/* The adjoint along a segment for the C planes from dx's, from V[c * tb + k]. */
DS_HOT
static void seg_input_adjoint(const wino_plan *p, const float *V, int64_t ld, const seg *s,
                              float *dx)
{
    const int64_t HW = p->H * p->W;
    if (p->TW >= 16)
        for (int64_t c = 0; c < p->C; c++)
            seg_input_adjoint_tv(p, V + c * p->tb, ld, s, dx + c * HW, 16);
    else
        for (int64_t c = 0; c < p->C; c++)
            seg_input_adjoint_tv(p, V + c * p->tb, ld, s, dx + c * HW, 8);
}

/* ---- forward ---- */

static inline float out_act(float v, int act) { return act == DSI_FUSE_RELU && !(v > 0) ? 0.0f : v; }

/* act(Y + b) along a segment for one filter into its output plane, Y = A^T M A with
 * A^T = [1 1 1 0; 0 1 -1 -1] and M[xi * ld + k] for the segment's tiles k. */
/* tv tiles per step: 16 or 8, a constant once inlined */
static inline __attribute__((always_inline)) void
seg_outputs_tv(const wino_plan *p, const float *M, int64_t ld, const seg *s,
                        float *plane, float b, int act, const int tv)
{
    const int64_t n = s->tw1 - s->tw0, OW = p->OW, r0 = 2 * s->th;
    float *y0 = plane + r0 * OW, *y1 = r0 + 1 < p->OH ? y0 + OW : NULL;
    for (int64_t k0 = 0; k0 < n; k0 += tv) {
        int cnt = n - k0 < tv ? (int)(n - k0) : tv;
        float m[XI][TV], out[2][2 * TV];
        if (cnt < tv)
            memset(m, 0, sizeof m);
        for (int x = 0; x < XI; x++)
            copy_n(m[x], M + x * ld + k0, cnt, tv);
        for (int j = 0; j < tv; j++) {
            float r[2][4];
            for (int jj = 0; jj < 4; jj++) {
                r[0][jj] = m[jj][j] + m[4 + jj][j] + m[8 + jj][j];
                r[1][jj] = m[4 + jj][j] - m[8 + jj][j] - m[12 + jj][j];
            }
            for (int i = 0; i < 2; i++) {
                out[i][2 * j] = out_act(r[i][0] + r[i][1] + r[i][2] + b, act);
                out[i][2 * j + 1] = out_act(r[i][1] - r[i][2] - r[i][3] + b, act);
            }
        }
        int64_t c = 2 * (s->tw0 + k0);
        int w = (int)(OW - c < 2 * cnt ? OW - c : 2 * cnt);   /* an odd width cuts the last tile */
        copy_n(y0 + c, out[0], w, 2 * tv);
        if (y1)
            copy_n(y1 + c, out[1], w, 2 * tv);
    }
}

/* The outputs along a segment for the F filters, from M[f * tb + k], into y's planes. */
DS_HOT
static void seg_outputs(const wino_plan *p, const float *M, int64_t ld, const seg *s,
                        float *y, const float *bias, int act)
{
    const int64_t OHW = p->OH * p->OW;
    if (p->TW >= 16)
        for (int64_t f = 0; f < p->F; f++)
            seg_outputs_tv(p, M + f * p->tb, ld, s, y + f * OHW, bias ? bias[f] : 0.0f, act,
                           16);
    else
        for (int64_t f = 0; f < p->F; f++)
            seg_outputs_tv(p, M + f * p->tb, ld, s, y + f * OHW, bias ? bias[f] : 0.0f, act,
                           8);
}

/* One block of the forward pass: tiles [u tb, (u + 1) tb) into y, with the V and M of
 * thread slot tid. */
DS_HOT
static void forward_block(const ds_node *y, const wino_plan *p, const float *U, int64_t u,
                          int tid)
{
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    const int64_t F = p->F, C = p->C, tb = p->tb, total = p->N * p->tiles;
    float *V = y->g->scratch + p->shared + tid * p->per_thread, *M = V + XI * p->vs;
    int64_t g0 = u * tb, nt = total - g0 < tb ? total - g0 : tb;
    block_inputs(p, y->in[0]->data, g0, nt, V);
    for (int k = 0; k < XI; k++)
        dsi_sgemm(false, false, F, nt, C, 1.0f, U + k * F * C, C, V + k * p->vs, tb, 0.0f,
                  M + k * p->ms, tb);
    seg sg;
    for (int64_t g = g0; g < g0 + nt;) {
        int64_t next = seg_at(p, g, g0, g0 + nt, &sg);
        seg_outputs(p, M + sg.k0, p->ms, &sg, y->data + sg.n * F * p->OH * p->OW, bias,
                    y->attr.conv.act);
        g = next;
    }
}

DS_HOT
void dsi_wino_forward(ds_node *y, const dsi_conv_geom *q)
{
    wino_plan p;
    plan_of(q, y->in[0]->shape[0], y->in[0]->shape[1], y->in[1]->shape[0], &p);
    float *U = y->g->scratch;
    weight_transform(y->in[1]->data, p.F, p.C, U);
    const int64_t units = (p.N * p.tiles + p.tb - 1) / p.tb;
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

/* dM = A dY A^T, A = [1 0; 1 1; 1 -1; 0 -1], along a segment for one filter, from its planes
 * of dy and y (dy masked by y > 0 under a fused ReLU), into M[xi * ld + k]; returns the sum
 * of the (masked) dy. */
/* tv tiles per step: 16 or 8, a constant once inlined */
static inline __attribute__((always_inline)) float
seg_grads_tv(const wino_plan *p, const float *dyp, const float *yp, int act,
                       const seg *s, float *M, int64_t ld, const int tv)
{
    const int64_t n = s->tw1 - s->tw0, OW = p->OW, r0 = 2 * s->th;
    const bool two = r0 + 1 < p->OH;
    float sum = 0;
    for (int64_t k0 = 0; k0 < n; k0 += tv) {
        int cnt = n - k0 < tv ? (int)(n - k0) : tv;
        int64_t c = 2 * (s->tw0 + k0);
        int w = (int)(OW - c < 2 * cnt ? OW - c : 2 * cnt);
        float e[2][2 * TV], yv[2][2 * TV], m[XI][TV];
        for (int i = 0; i < 2; i++) {
            if (i == 1 && !two) {
                memset(e[1], 0, sizeof e[1]);
                continue;
            }
            const int64_t off = (r0 + i) * OW + c;
            if (w < 2 * tv) {
                memset(e[i], 0, sizeof e[i]);
                memset(yv[i], 0, sizeof yv[i]);
            }
            copy_n(e[i], dyp + off, w, 2 * tv);
            if (act == DSI_FUSE_RELU) {
                copy_n(yv[i], yp + off, w, 2 * tv);
                for (int j = 0; j < 2 * tv; j++)
                    e[i][j] = yv[i][j] > 0 ? e[i][j] : 0.0f;
            }
        }
        float rs[2 * TV];   /* the step's sum as a tree: no chain of dependent adds */
        for (int j = 0; j < 2 * tv; j++)
            rs[j] = e[0][j] + e[1][j];
        for (int wd = tv; wd > 0; wd /= 2)
            for (int j = 0; j < wd; j++)
                rs[j] += rs[j + wd];
        sum += rs[0];
        for (int j = 0; j < tv; j++) {
            float t[4][2];
            for (int jj = 0; jj < 2; jj++) {
                float a = e[0][2 * j + jj], b = e[1][2 * j + jj];
                t[0][jj] = a;
                t[1][jj] = a + b;
                t[2][jj] = a - b;
                t[3][jj] = -b;
            }
            for (int i = 0; i < 4; i++) {
                m[i * 4 + 0][j] = t[i][0];
                m[i * 4 + 1][j] = t[i][0] + t[i][1];
                m[i * 4 + 2][j] = t[i][0] - t[i][1];
                m[i * 4 + 3][j] = -t[i][1];
            }
        }
        for (int x = 0; x < XI; x++)
            copy_n(M + x * ld + k0, m[x], cnt, tv);
    }
    return sum;
}

/* dM along a segment for the F filters from dy's and y's planes, into M[f * tb + k];
 * adds each filter's sum of the (masked) dy into db[f] when db is set. */
DS_HOT
static void seg_grads(const wino_plan *p, const float *dy, const float *yd, int act,
                      const seg *s, float *M, int64_t ld, double *db)
{
    const int64_t OHW = p->OH * p->OW;
    for (int64_t f = 0; f < p->F; f++) {
        float t = p->TW >= 16 ? seg_grads_tv(p, dy + f * OHW, yd + f * OHW, act, s,
                                             M + f * p->tb, ld, 16)
                              : seg_grads_tv(p, dy + f * OHW, yd + f * OHW, act, s,
                                             M + f * p->tb, ld, 8);
        if (db)
            db[f] += t;
    }
}

/* One chunk of the backward pass: samples [ch N / nch, (ch + 1) N / nch), its partial dU
 * and bias gradient, with the V and M of thread slot tid. */
DS_HOT
static void backward_chunk(ds_node *y, const wino_plan *p, const float *U, int64_t ch, int tid)
{
    const ds_node *x = y->in[0];
    float *dx = x->grad;
    const bool dw = y->in[1]->grad != NULL, db = y->n_in == 3 && y->in[2]->grad;
    const int act = y->attr.conv.act;
    const int64_t F = p->F, C = p->C, tb = p->tb, FC = F * C, nch = p->nch, N = p->N;
    const int64_t OHW = p->OH * p->OW, HW = p->H * p->W;
    float *V = y->g->scratch + p->shared + tid * p->per_thread, *M = V + XI * p->vs;
    float *du = y->g->scratch + p->du_off + ch * XI * FC;
    double *dbc = db ? (double *)(y->g->scratch + p->bias_off) + ch * F : NULL;
    if (dbc)
        memset(dbc, 0, (size_t)F * sizeof *dbc);
    if (dw)
        memset(du, 0, (size_t)(XI * FC) * sizeof *du);
    int64_t g_end = (ch + 1) * N / nch * p->tiles;
    for (int64_t g0 = ch * N / nch * p->tiles; g0 < g_end; g0 += tb) {
        int64_t nt = g_end - g0 < tb ? g_end - g0 : tb;
        seg sg;
        for (int64_t g = g0; g < g0 + nt;) {
            int64_t next = seg_at(p, g, g0, g0 + nt, &sg);
            seg_grads(p, y->grad + sg.n * F * OHW, y->data + sg.n * F * OHW, act, &sg,
                      M + sg.k0, p->ms, dbc);
            g = next;
        }
        if (dw) {
            block_inputs(p, x->data, g0, nt, V);
            for (int k = 0; k < XI; k++)
                dsi_sgemm(false, true, F, C, nt, 1.0f, M + k * p->ms, tb, V + k * p->vs, tb,
                          1.0f, du + k * FC, C);
        }
        if (!dx)
            continue;
        for (int k = 0; k < XI; k++)
            dsi_sgemm(true, false, C, nt, F, 1.0f, U + k * FC, C, M + k * p->ms, tb, 0.0f,
                      V + k * p->vs, tb);
        for (int64_t g = g0; g < g0 + nt;) {
            int64_t next = seg_at(p, g, g0, g0 + nt, &sg);
            seg_input_adjoint(p, V + sg.k0, p->vs, &sg, dx + sg.n * C * HW);
            g = next;
        }
    }
}

DS_HOT
void dsi_wino_backward(ds_node *y, const dsi_conv_geom *q)
{
    ds_node *x = y->in[0], *w = y->in[1];
    float *dx = x->grad, *dw = w->grad, *db = y->n_in == 3 ? y->in[2]->grad : NULL;
    if (!dx && !dw && !db)
        return;
    wino_plan p;
    plan_of(q, x->shape[0], x->shape[1], w->shape[0], &p);
    const int64_t F = p.F, C = p.C, FC = F * C, nch = p.nch;
    float *U = y->g->scratch;
    double *dbs = (double *)(y->g->scratch + p.bias_off);
    float *dU = y->g->scratch + p.du_off;
    if (dx)
        weight_transform(w->data, F, C, U);
    int nth = wino_threads(y, &p, nch);
    if (nth == 1) {
        for (int64_t ch = 0; ch < nch; ch++)   /* no region: see dsi_wino_forward */
            backward_chunk(y, &p, U, ch, 0);
    } else {
#pragma omp parallel for schedule(static) num_threads(nth)
        for (int64_t ch = 0; ch < nch; ch++)
            backward_chunk(y, &p, U, ch, omp_get_thread_num());
    }
    if (dw) {
        dsi_fold_partials(dU, nch, XI * FC, dU, false);   /* into chunk 0's */
        weight_adjoint(dU, F, C, dw);
    }
    if (db)
        dsi_fold_bias(dbs, nch, F, db);
}
