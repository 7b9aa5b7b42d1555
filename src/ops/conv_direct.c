/* conv_direct.c - direct convolution for few channels x taps (stride 1, 1-D and 2-D): forward,
 * weight and input gradients side by side, vectorized over output positions with a block of
 * filters held in registers; no im2col.
 *
 * The flat grid: a sample's input, zero-padded, is kept as C planes of Hp rows of Wp columns
 * (Hp = OH + (KH-1) dh, Wp = OW + (KW-1) dw at stride 1), each plane followed by zero slack.
 * Output (oh, ow) then sits at flat position j = oh Wp + ow of the same grid, and tap
 * u = (c, kh, kw) reads plane c at j + off[u], off[u] = c ldx + kh dh Wp + kw dw: the
 * convolution is a 1-D correlation over j in [0, L), L = (OH-1) Wp + OW, with U = C KH KW taps
 * at fixed offsets. Columns ow >= OW of the grid are computed and dropped ((KW-1) dw / Wp of
 * the work in 2-D, none in 1-D). With dyg = dy on the same grid (masked by y > 0 under a
 * fused ReLU, zero at ow >= OW):
 *   forward  y[f][j]   = sum_u w[f][u] xp[j + off[u]]            corr(): FB filters x TW outputs
 *   dW       dw[f][u] += sum_j dyg[f][j] xp[j + off[u]]          grad(): GF filters x GT taps
 *   dx       dx[c][i]  = sum_(f,t) w[f][c][t] dyg[f][i - off[t]]  corr() again: taps flipped,
 *                                                                  dyg padded in front
 *   db       db[f]    += sum_j dyg[f][j]
 * For dW, groups of gs samples lie one after the other on the grid (S apart), so that the
 * lanes of grad()'s accumulators are summed once per group.
 * Threads: the forward splits (sample, filter block) jobs statically, each output element
 * computed the same way for any thread count. The backward splits the batch into
 * nch = min(N, 8) fixed chunks with their own partial dW (and db, in double), folded in chunk
 * order afterwards, as the im2col path does: results do not depend on the thread count. */
#include "conv_impl.h"

/* VL floats, a GCC/Clang vector extension: one AVX-512 register where the build targets it
 * (the kernels are bound by multiply-adds: twice the lanes, twice the speed), else 8 (one AVX
 * register, SSE pairs on the x86-64 baseline). Built with -ffp-contract=fast (Makefile) so
 * that a += b * c is one FMA. */
#ifdef __AVX512F__
#define VL 16
#define NV 3   /* vectors of outputs per corr() step */
#define FB 8   /* filters per corr() block: FB x NV = 24 accumulators of the 32 registers */
#else
#define VL 8
#define NV 4
#define FB 6
#endif
typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vfi __attribute__((vector_size(VL * 4)));

enum {
    TW = VL * NV,    /* outputs per corr() step, then VL for the rest */
    GF = 4, GT = 6,  /* filters x taps per grad() block: 24 accumulators */
    MAX_CHUNKS = 8,
};

/* v = VL floats at p, unaligned (a macro: a function returning a vector would change the ABI
 * of the x86-64 baseline build, and GCC warns). */
#define LOADV(v, p) memcpy(&(v), (p), sizeof(v))

static inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* ---- sizes ---- */

typedef struct {
    int64_t N, C, F, H, W, OH, OW, KH, KW, dh, dw, ph, pw;
    int64_t Hp, Wp, KK, U;   /* padded grid, taps per channel, taps per filter */
    bool row;                /* one row in and out (1-D): the grid row is y's and dx's row */
    int64_t L, Lr;           /* flat outputs, rounded up to VL */
    int64_t xb, Lx, Lxr;     /* dx: grid position of its first value, length, rounded */
    int64_t maxoff;          /* largest tap offset inside a plane */
    int64_t S, gs;           /* grid stride between the samples of a group; samples per group */
    int64_t ldx, P, ldd;     /* plane stride of xp; front zeros and row stride of dyp */
    int64_t ld;              /* row stride of obuf */
    int64_t nch;             /* backward chunks */
    /* scratch, in floats: shared part, then per thread xp [C, ldx], dyp [F, ldd] and
     * obuf [FB, ld] */
    int64_t o_part, o_wk, o_off, shared, per_thread;
} dgeom;

static void dgeom_of(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, dgeom *g)
{
    g->N = N, g->C = C, g->F = F;
    g->H = q->in[1], g->W = q->in[2], g->OH = q->out[1], g->OW = q->out[2];
    g->KH = q->k[1], g->KW = q->k[2], g->dh = q->d[1], g->dw = q->d[2];
    g->ph = q->p[1], g->pw = q->p[2];
    g->Hp = g->OH + (g->KH - 1) * g->dh;
    g->Wp = g->OW + (g->KW - 1) * g->dw;
    g->KK = g->KH * g->KW;
    g->U = C * g->KK;
    g->row = g->H == 1 && g->OH == 1;
    g->L = (g->OH - 1) * g->Wp + g->OW;
    g->Lr = round_up(g->L, VL);
    /* dx: the H input rows of the grid, or straight into dx's row */
    g->xb = g->ph * g->Wp + (g->row ? g->pw : 0);
    g->Lx = g->row ? g->W : g->H * g->Wp;
    g->Lxr = round_up(g->Lx, VL);
    g->maxoff = (g->KH - 1) * g->dh * g->Wp + (g->KW - 1) * g->dw;
    g->nch = N < MAX_CHUNKS ? N : MAX_CHUNKS;
    /* Groups of samples one after the other on the grid (S >= Hp Wp = L + maxoff: a tap never
     * reaches the next sample from a kept output), so that dW sums across lanes once per
     * group of about 2048 positions rather than once per sample. */
    g->S = round_up(g->Hp * g->Wp, 16);
    int64_t chunk = (N + g->nch - 1) / g->nch;
    g->gs = (2048 + g->S - 1) / g->S;
    g->gs = g->gs < chunk ? g->gs : chunk;
    int64_t Ls = (g->gs - 1) * g->S + g->Lr;   /* a group's outputs */
    g->ldx = round_up(Ls + g->maxoff, 16);
    g->P = round_up(g->maxoff, 16);
    int64_t tail = (g->gs - 1) * g->S + g->xb + g->Lxr;
    g->ldd = g->P + round_up(tail > Ls ? tail : Ls, 16);
    g->ld = round_up(g->Lr > g->Lxr ? g->Lr : g->Lxr, 16);
    int64_t nu = g->U > F * g->KK ? g->U : F * g->KK;
    g->o_part = round_up(2 * g->nch * F, 16);               /* after the bias partials */
    g->o_wk = g->o_part + round_up(g->nch * F * g->U, 16);  /* packed weights */
    g->o_off = g->o_wk + round_up(F * g->U, 16);            /* two offset tables, int64 */
    g->shared = g->o_off + round_up(2 * (g->U + nu), 16);
    g->per_thread = round_up(C * g->ldx + F * g->ldd + (g->row ? 0 : FB * g->ld), 16);
}

size_t dsi_direct_scratch(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, int nth)
{
    dgeom g;
    dgeom_of(q, N, C, F, &g);
    return (size_t)(g.shared + (int64_t)nth * g.per_thread) * sizeof(float);
}

/* Threads the scratch holds (the count may have been raised since planning), at most jobs. */
DS_OMP_ONLY static int direct_threads(const ds_node *y, const dgeom *g, int64_t jobs)
{
    int64_t avail = ((int64_t)(y->g->scratch_bytes / sizeof(float)) - g->shared) / g->per_thread;
    int64_t nth = omp_get_max_threads();
    if (nth > avail)
        nth = avail;
    if (nth > jobs)
        nth = jobs;
    return nth < 1 ? 1 : (int)nth;
}

/* ---- kernels ---- */

/* How corr() writes its outputs: each row's first n values (ldo apart) get
 * act(sum + bias[f]) (bias NULL: 0), or the sums are added to them (add). */
typedef struct {
    float *out;
    int64_t ldo, n;
    const float *bias;
    int act;
    bool add;
} corr_dst;

/* Outputs j .. j + VL nv of fb rows from the accumulators: whole vectors inside the row,
 * through a buffer at its end. */
static inline __attribute__((always_inline)) void
corr_store(int fb, int nv, vf acc[][NV], int64_t j, const corr_dst *d)
{
    int64_t m = d->n - j < VL * nv ? d->n - j : VL * nv;
#pragma GCC unroll 16
    for (int f = 0; f < fb; f++) {
        float *o = d->out + f * d->ldo + j, b = d->bias ? d->bias[f] : 0.0f;
        float buf[TW];
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) {
            vf r = acc[f][v];
            if (d->add) {
                vf old = {0};
                if (m == VL * nv)
                    LOADV(old, o + VL * v);
                else
                    for (int64_t i = VL * v; i < m && i < VL * v + VL; i++)
                        old[i - VL * v] = o[i];
                r += old;
            } else {
                r += b;
                if (d->act == DSI_FUSE_RELU)
                    r = (vf)((vfi)r & (r > 0));   /* r > 0: all ones */
            }
            if (m == VL * nv)
                memcpy(o + VL * v, &r, sizeof r);
            else
                memcpy(buf + VL * v, &r, sizeof r);
        }
        if (m < VL * nv)
            memcpy(o, buf, (size_t)m * sizeof *o);
    }
}

/* out row f, j < n: sum_u wp[u * fb + f] in[j + off[u]] for f < fb, in steps of VL nv
 * outputs held in fb x nv vector accumulators, one broadcast weight per filter and tap.
 * Reads in up to round_up(n, VL nv) - 1 + off[u]. */
static inline __attribute__((always_inline)) void
corr_block(int fb, int nv, const float *restrict wp, const float *in, const int64_t *off,
           int64_t U, int64_t j0, int64_t j1, const corr_dst *d)
{
    for (int64_t j = j0; j < j1; j += VL * nv) {
        vf acc[FB][NV];
#pragma GCC unroll 16
        for (int f = 0; f < fb; f++)
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++)
                acc[f][v] = (vf){0};
        const float *p = in + j, *wu = wp;
        for (int64_t u = 0; u < U; u++, wu += fb) {
            const float *pu = p + off[u];
            vf x[NV];
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++)
                LOADV(x[v], pu + VL * v);
#pragma GCC unroll 16
            for (int f = 0; f < fb; f++)
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++)
                    acc[f][v] += wu[f] * x[v];
        }
        corr_store(fb, nv, acc, j, d);
    }
}

#define CORR_CASE(f)                                                                    \
    case f:                                                                             \
        corr_block(f, NV, wp, in, off, U, 0, whole, d);                                 \
        corr_block(f, 1, wp, in, off, U, whole, d->n, d);                               \
        break;
/* corr_block for a block of fb <= FB filters whose packed weights start at wp: steps of TW
 * outputs, then of VL for the rest of the row. */
DS_HOT
static void corr(int fb, const float *wp, const float *in, const int64_t *off, int64_t U,
                 const corr_dst *d)
{
    int64_t whole = d->n / TW * TW;
    switch (fb) {
#if FB > 6   /* no blocks wider than FB: their accumulators would not fit */
    CORR_CASE(8) CORR_CASE(7)
#endif
    CORR_CASE(6) CORR_CASE(5) CORR_CASE(4) CORR_CASE(3) CORR_CASE(2) default: CORR_CASE(1)
    }
}
#undef CORR_CASE

/* dw[f * U + t] += sum_j dy[f * ldd + j] in[j + off[t]] for f < gf, t < gt, j < L8 (a
 * multiple of VL): gf x gt vector accumulators, summed across lanes at the end. */
static inline __attribute__((always_inline)) void
grad_block(int gf, int gt, const float *dy, int64_t ldd, const float *in, const int64_t *off,
           int64_t L8, float *restrict dw, int64_t U)
{
    vf acc[GF][GT];
#pragma GCC unroll 16
    for (int f = 0; f < gf; f++)
#pragma GCC unroll 16
        for (int t = 0; t < gt; t++)
            acc[f][t] = (vf){0};
    for (int64_t j = 0; j < L8; j += VL) {
        vf d[GF];
#pragma GCC unroll 16
        for (int f = 0; f < gf; f++)
            LOADV(d[f], dy + f * ldd + j);
#pragma GCC unroll 16
        for (int t = 0; t < gt; t++) {
            vf x;
            LOADV(x, in + j + off[t]);
#pragma GCC unroll 16
            for (int f = 0; f < gf; f++)
                acc[f][t] += d[f] * x;
        }
    }
#pragma GCC unroll 16
    for (int f = 0; f < gf; f++)
#pragma GCC unroll 16
        for (int t = 0; t < gt; t++) {
            float l[VL];
            memcpy(l, &acc[f][t], sizeof l);
            for (int h = VL / 2; h >= 1; h /= 2)   /* pairwise, in a fixed order */
                for (int i = 0; i < h; i++)
                    l[i] += l[i + h];
            dw[f * U + t] += l[0];
        }
}

#define GRAD_CASE(f, t) case f * 8 + t: grad_block(f, t, dy, ldd, in, off, L8, dw, U); break;
/* dW of F filters over all U taps, blocks of GF x GT. */
DS_HOT
static void grad(int64_t F, int64_t U, const float *dy0, int64_t ldd, const float *in,
                 const int64_t *off0, int64_t L8, float *dw0)
{
    for (int64_t f0 = 0; f0 < F; f0 += GF)
        for (int64_t u0 = 0; u0 < U; u0 += GT) {
            int gf = (int)(F - f0 < GF ? F - f0 : GF), gt = (int)(U - u0 < GT ? U - u0 : GT);
            const float *dy = dy0 + f0 * ldd;
            const int64_t *off = off0 + u0;
            float *dw = dw0 + f0 * U + u0;
            switch (gf * 8 + gt) {
            GRAD_CASE(4, 6) GRAD_CASE(4, 5) GRAD_CASE(4, 4) GRAD_CASE(4, 3) GRAD_CASE(4, 2)
            GRAD_CASE(4, 1) GRAD_CASE(3, 6) GRAD_CASE(3, 5) GRAD_CASE(3, 4) GRAD_CASE(3, 3)
            GRAD_CASE(3, 2) GRAD_CASE(3, 1) GRAD_CASE(2, 6) GRAD_CASE(2, 5) GRAD_CASE(2, 4)
            GRAD_CASE(2, 3) GRAD_CASE(2, 2) GRAD_CASE(2, 1) GRAD_CASE(1, 6) GRAD_CASE(1, 5)
            GRAD_CASE(1, 4) GRAD_CASE(1, 3) GRAD_CASE(1, 2) default: GRAD_CASE(1, 1)
            }
        }
}
#undef GRAD_CASE

/* ---- grids ---- */

/* Sample x [C, H, W] as sample s of a group of gn in xp: C planes (stride ldx) holding
 * zero-padded grids (row stride Wp) S apart; the last one zeroes the planes' ends. */
static void fill_xp(const dgeom *g, const float *x, int64_t s, int64_t gn, float *xp)
{
    const int64_t W = g->W, Wp = g->Wp;
    const int64_t rest = (s + 1 == gn ? g->ldx - s * g->S : g->S) - g->Hp * Wp;
    for (int64_t c = 0; c < g->C; c++) {
        float *pl = xp + c * g->ldx + s * g->S;
        for (int64_t r = 0; r < g->Hp; r++) {
            float *row = pl + r * Wp;
            int64_t i = r - g->ph;
            if (i < 0 || i >= g->H) {
                memset(row, 0, (size_t)Wp * sizeof *row);
                continue;
            }
            memset(row, 0, (size_t)g->pw * sizeof *row);
            memcpy(row + g->pw, x + (c * g->H + i) * W, (size_t)W * sizeof *row);
            memset(row + g->pw + W, 0, (size_t)(Wp - g->pw - W) * sizeof *row);
        }
        memset(pl + g->Hp * Wp, 0, (size_t)rest * sizeof *pl);
    }
}

/* Sample dy [F, OH, OW] as sample s of a group of gn on the grid of dyp (rows of ldd: P
 * zeros, then the samples S apart), masked by y > 0 under a fused ReLU; each filter's sum
 * into db[f]. */
static void fill_dyp(const dgeom *g, const float *dy, const float *y, int act, int64_t s,
                     int64_t gn, float *dyp, double *db)
{
    const int64_t OW = g->OW, gap = g->Wp - OW;
    for (int64_t f = 0; f < g->F; f++) {
        float *row = dyp + f * g->ldd + g->P + s * g->S, t = 0;
        if (s == 0)
            memset(row - g->P, 0, (size_t)g->P * sizeof *row);
        for (int64_t oh = 0; oh < g->OH; oh++) {
            const int64_t at = (f * g->OH + oh) * OW;
            float *dst = row + oh * g->Wp;
            t += dsi_conv_dy_row(dst, dy + at, y + at, OW, act);
            if (oh + 1 < g->OH)
                memset(dst + OW, 0, (size_t)gap * sizeof *dst);
        }
        int64_t end = s + 1 == gn ? g->ldd - g->P - s * g->S : g->S;
        memset(row + g->L, 0, (size_t)(end - g->L) * sizeof *row);
        db[f] += t;
    }
}

/* Tap offsets of the forward and dW, off[u] for u = (c, kh, kw): c ldx + kh dh Wp + kw dw;
 * of dx, offx[(f, t)] = f ldd - (kh dh Wp + kw dw) for t = (kh, kw) (flipped taps). */
static void fill_offsets(const dgeom *g, int64_t *off, int64_t *offx)
{
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t kh = 0; kh < g->KH; kh++)
            for (int64_t kw = 0; kw < g->KW; kw++)
                *off++ = c * g->ldx + kh * g->dh * g->Wp + kw * g->dw;
    for (int64_t f = 0; offx && f < g->F; f++)
        for (int64_t kh = 0; kh < g->KH; kh++)
            for (int64_t kw = 0; kw < g->KW; kw++)
                *offx++ = f * g->ldd - (kh * g->dh * g->Wp + kw * g->dw);
}

/* w [F, U] packed by blocks of FB filters, [block][u][f in block], for corr(). */
static void pack_forward(const dgeom *g, const float *w, float *wk)
{
    for (int64_t f0 = 0; f0 < g->F; f0 += FB) {
        int64_t fb = g->F - f0 < FB ? g->F - f0 : FB;
        for (int64_t u = 0; u < g->U; u++)
            for (int64_t f = 0; f < fb; f++)
                *wk++ = w[(f0 + f) * g->U + u];
    }
}

/* w [F, C, KK] as the dx correlation's weights: blocks of FB channels, [block][(f, t)][c]. */
static void pack_dx(const dgeom *g, const float *w, float *wk)
{
    for (int64_t c0 = 0; c0 < g->C; c0 += FB) {
        int64_t cb = g->C - c0 < FB ? g->C - c0 : FB;
        for (int64_t f = 0; f < g->F; f++)
            for (int64_t t = 0; t < g->KK; t++)
                for (int64_t c = 0; c < cb; c++)
                    *wk++ = w[(f * g->C + c0 + c) * g->KK + t];
    }
}

/* ---- forward ---- */

/* Jobs (sample n, block of FB filters), split statically; a thread refills its input grid
 * only when its sample changes. Bias and activation are applied as the outputs are stored:
 * into y directly for one row, else into obuf, whose grid rows are then copied. */
DS_HOT
void dsi_direct_forward(ds_node *y, const dsi_conv_geom *q)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    dgeom g;
    dgeom_of(q, x->shape[0], x->shape[1], w->shape[0], &g);
    float *sc = y->g->scratch, *wk = sc + g.o_wk, *yd = y->data;
    int64_t *off = (int64_t *)(sc + g.o_off);
    pack_forward(&g, w->data, wk);
    fill_offsets(&g, off, NULL);
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    const int act = y->attr.conv.act;
    const int64_t nfb = (g.F + FB - 1) / FB, jobs = g.N * nfb, O = g.OH * g.OW;
#pragma omp parallel num_threads(direct_threads(y, &g, jobs))
    {
        float *xp = sc + g.shared + omp_get_thread_num() * g.per_thread;
        float *obuf = xp + g.C * g.ldx + g.F * g.ldd;
        int64_t last = -1;
#pragma omp for schedule(static)
        for (int64_t k = 0; k < jobs; k++) {
            int64_t n = k / nfb, f0 = k % nfb * FB, fb = g.F - f0 < FB ? g.F - f0 : FB;
            float *yn = yd + (n * g.F + f0) * O;
            if (n != last)
                fill_xp(&g, x->data + n * g.C * g.H * g.W, 0, 1, xp);
            last = n;
            corr_dst d = {g.row ? yn : obuf, g.row ? O : g.ld, g.L, bias ? bias + f0 : NULL, act,
                          false};
            corr((int)fb, wk + f0 * g.U, xp, off, g.U, &d);
            if (!g.row)
                for (int64_t f = 0; f < fb; f++)
                    for (int64_t oh = 0; oh < g.OH; oh++)
                        memcpy(yn + f * O + oh * g.OW, obuf + f * g.ld + oh * g.Wp,
                               (size_t)g.OW * sizeof *yn);
        }
    }
}

/* ---- backward ---- */

/* Samples n0 .. n0+gn-1 (a group): their dy on the grid (and db), then dW over the whole
 * group into the chunk's partial pdw, and dx sample by sample (added into x->grad: straight
 * into it for one row, else through obuf). */
static void backward_group(ds_node *y, const dgeom *g, int64_t n0, int64_t gn, float *ts,
                           float *pdw, double *db, const float *wk, const int64_t *off,
                           const int64_t *offx)
{
    ds_node *x = y->in[0], *w = y->in[1];
    float *xp = ts, *dyp = xp + g->C * g->ldx, *obuf = dyp + g->F * g->ldd;
    const int64_t O = g->OH * g->OW, I = g->H * g->W;
    for (int64_t s = 0; s < gn; s++)
        fill_dyp(g, y->grad + (n0 + s) * g->F * O, y->data + (n0 + s) * g->F * O,
                 y->attr.conv.act, s, gn, dyp, db);
    if (w->grad) {
        for (int64_t s = 0; s < gn; s++)
            fill_xp(g, x->data + (n0 + s) * g->C * I, s, gn, xp);
        grad(g->F, g->U, dyp + g->P, g->ldd, xp, off, (gn - 1) * g->S + g->Lr, pdw);
    }
    for (int64_t s = 0; x->grad && s < gn; s++) {
        const float *in = dyp + g->P + s * g->S + g->xb;
        float *dx = x->grad + (n0 + s) * g->C * I;
        for (int64_t c0 = 0; c0 < g->C; c0 += FB) {
            int64_t cb = g->C - c0 < FB ? g->C - c0 : FB;
            corr_dst d = {g->row ? dx + c0 * I : obuf, g->row ? I : g->ld, g->Lx, NULL,
                          DSI_FUSE_NONE, g->row};
            corr((int)cb, wk + c0 * g->F * g->KK, in, offx, g->F * g->KK, &d);
            if (g->row)
                continue;
            for (int64_t c = 0; c < cb; c++)
                for (int64_t i = 0; i < g->H; i++) {
                    float *dr = dx + ((c0 + c) * g->H + i) * g->W;
                    const float *sr = obuf + c * g->ld + i * g->Wp + g->pw;
                    for (int64_t o = 0; o < g->W; o++)
                        dr[o] += sr[o];
                }
        }
    }
}

DS_HOT
void dsi_direct_backward(ds_node *y, const dsi_conv_geom *q)
{
    ds_node *x = y->in[0], *w = y->in[1];
    float *db = y->n_in == 3 ? y->in[2]->grad : NULL;
    if (!x->grad && !w->grad && !db)
        return;
    dgeom g;
    dgeom_of(q, x->shape[0], x->shape[1], w->shape[0], &g);
    float *sc = y->g->scratch, *part = sc + g.o_part, *wk = sc + g.o_wk;
    double *dbs = (double *)sc;
    int64_t *off = (int64_t *)(sc + g.o_off), *offx = off + g.U;
    fill_offsets(&g, off, offx);
    if (x->grad)
        pack_dx(&g, w->data, wk);
    memset(dbs, 0, (size_t)(g.nch * g.F) * sizeof *dbs);
    const int64_t nch = g.nch, N = g.N, FU = g.F * g.U;
#pragma omp parallel for schedule(static) num_threads(direct_threads(y, &g, nch))
    for (int64_t ch = 0; ch < nch; ch++) {
        float *ts = sc + g.shared + omp_get_thread_num() * g.per_thread, *pdw = part + ch * FU;
        if (w->grad)
            memset(pdw, 0, (size_t)FU * sizeof *pdw);
        int64_t hi = (ch + 1) * N / nch;
        for (int64_t n0 = ch * N / nch; n0 < hi; n0 += g.gs)
            backward_group(y, &g, n0, hi - n0 < g.gs ? hi - n0 : g.gs, ts, pdw, dbs + ch * g.F,
                           wk, off, offx);
    }
    if (w->grad)
        dsi_fold_partials(part, nch, FU, w->grad, true);
    if (db)
        dsi_fold_bias(dbs, nch, g.F, db);
}
