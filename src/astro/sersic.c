/* sersic.c - Sersic galaxy profiles: b_n from the regularized incomplete gamma function,
 * exact flux normalization, and pixel-integrated rendering (Gauss-Legendre points on a
 * sub-pixel grid, cells subdivided recursively where the profile is steep or cuspy),
 * optionally convolved with a PSF (psf.c). */
#include "sim.h"

#include "../internal.h"

#include <math.h>

/* ---- b_n ---- */

/* Regularized lower incomplete gamma P(a, x): series for x < a + 1, else 1 - Q with Q from
 * the continued fraction (modified Lentz). Relative accuracy ~1e-15. */
static double gamma_p(double a, double x)
{
    if (x <= 0)
        return 0;
    int sg;
    double lpre = -x + a * log(x) - lgamma_r(a, &sg);
    if (x < a + 1) {
        double term = 1.0 / a, sum = term;
        for (int i = 1; i < 10000; i++) {
            term *= x / (a + i);
            sum += term;
            if (fabs(term) < fabs(sum) * 1e-17)
                break;
        }
        return sum * exp(lpre);
    }
    const double tiny = 1e-300;
    double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-17)
            break;
    }
    return 1 - exp(lpre) * h;
}

/* Newton on P(2n, b) = 1/2 inside a bisection bracket, from the asymptotic expansion of
 * Ciotti & Bertin (1999). */
double ds_sersic_bn(double n)
{
    if (!(n > 0) || !isfinite(n))
        return NAN;
    const double a = 2 * n;
    int sg;
    const double lga = lgamma_r(a, &sg);
    double lo = 0, hi = fmax(2 * a, 1.0);
    while (gamma_p(a, hi) < 0.5)
        hi *= 2;
    double b = a - 1.0 / 3 + 4.0 / (405 * n) + 46.0 / (25515 * n * n);
    if (!(b > lo && b < hi))
        b = 0.5 * (lo + hi);
    for (int it = 0; it < 200; it++) {
        double f = gamma_p(a, b) - 0.5;
        if (f == 0)
            return b;
        if (f < 0)
            lo = b;
        else
            hi = b;
        double fp = exp(-b + (a - 1) * log(b) - lga);
        double nb = b - f / fp;
        if (!(nb > lo && nb < hi))
            nb = 0.5 * (lo + hi);
        if (fabs(nb - b) <= 1e-16 * b || hi - lo <= 1e-16 * b)
            return nb;
        b = nb;
    }
    return b;
}

/* ---- the profile ---- */

/* exp and log in plain arithmetic, branch-free, so the row loops vectorize (libm calls do
 * not without -ffast-math). Relative error < 1e-11 (exp for |x| <= 700, log for normal
 * positive x): Taylor series to r^10 on |r| <= ln(2)/2, and 2 atanh(s) to s^13 with
 * |s| <= 0.172. */
typedef union { double d; uint64_t u; } bits64;

static inline double fast_exp(double x)
{
    x = x > -700.0 ? x : -700.0;   /* callers never pass more than ~50 */
    const double shift = 0x1.8p52;
    double kd = x * 1.4426950408889634 + shift;
    kd -= shift;
    double r = x - kd * 6.93147180369123816490e-01 - kd * 1.90821492927058770002e-10;
    double p = 1.0 / 3628800;
    p = p * r + 1.0 / 362880;
    p = p * r + 1.0 / 40320;
    p = p * r + 1.0 / 5040;
    p = p * r + 1.0 / 720;
    p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    bits64 s;
    s.u = (uint64_t)((int64_t)kd + 1023) << 52;
    return p * s.d;
}

static inline double fast_log(double x)
{
    bits64 b = {x}, mb;
    int64_t e = (int64_t)(b.u >> 52) - 1023;
    mb.u = (b.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m = mb.d;
    double big = m > 1.4142135623730951 ? 1.0 : 0.0;   /* m in [sqrt(1/2), sqrt(2)) */
    m *= 1.0 - 0.5 * big;
    double s = (m - 1) / (m + 1), s2 = s * s;
    double p = 1.0 / 13;
    p = p * s2 + 1.0 / 11;
    p = p * s2 + 1.0 / 9;
    p = p * s2 + 1.0 / 7;
    p = p * s2 + 1.0 / 5;
    p = p * s2 + 1.0 / 3;
    p = p * s2 + 1.0;
    return ((double)e + big) * 0.6931471805599453 + 2 * s * p;
}

typedef struct {
    double x0, y0;            /* centre, pixels */
    double a, b2, c;          /* (r / hlr)^2 = a dx^2 + b2 dx dy + c dy^2 (round radius r) */
    double inv2n, bn, lnie;   /* ln I = lnie - bn ((r / hlr)^2)^(1 / 2n), unit flux */
    double hmin;              /* smallest cell side of the subdivision */
    int cusp;                 /* n > 0.55: the centre is not smooth */
    double n;
} profile;

/* (r/hlr)^2 = q x'^2 + y'^2 / q (over hlr^2) with x' along the major axis at angle phi:
 * the round profile sheared with its area kept. */
static ds_status profile_setup(const ds_galaxy *g, int size, const char *who, profile *p)
{
    if (!g)
        return dsi_fail(DS_ERR_ARG, "%s: galaxy is NULL", who);
    if (size < 4 || size > 4096)
        return dsi_fail(DS_ERR_ARG, "%s: stamp size %d must be in [4, 4096]", who, size);
    if (!(g->n >= 0.3 && g->n <= 8))
        return dsi_fail(DS_ERR_ARG, "%s: Sersic index n = %g is outside [0.3, 8]", who, g->n);
    if (!(g->hlr > 0 && g->hlr < 1e6))
        return dsi_fail(DS_ERR_ARG, "%s: half-light radius %g must be in (0, 1e6) pixels", who,
                        g->hlr);
    double eps = hypot(g->e1, g->e2);
    if (!(eps < 1))
        return dsi_fail(DS_ERR_ARG, "%s: ellipticity |e| = %g (e1 = %g, e2 = %g) must be < 1",
                        who, eps, g->e1, g->e2);
    if (!isfinite(g->flux) || !isfinite(g->dx) || !isfinite(g->dy))
        return dsi_fail(DS_ERR_ARG, "%s: flux %g and offsets (%g, %g) must be finite", who,
                        g->flux, g->dx, g->dy);
    double q = (1 - eps) / (1 + eps), phi = 0.5 * atan2(g->e2, g->e1);
    double cs = cos(phi), sn = sin(phi), h2 = g->hlr * g->hlr;
    p->x0 = 0.5 * (size - 1) + g->dx;
    p->y0 = 0.5 * (size - 1) + g->dy;
    p->a = (q * cs * cs + sn * sn / q) / h2;
    p->c = (q * sn * sn + cs * cs / q) / h2;
    p->b2 = 2 * cs * sn * (q - 1 / q) / h2;
    double bn = ds_sersic_bn(g->n);
    int sg;
    p->inv2n = 0.5 / g->n;
    p->bn = bn;
    /* I_e = 1 / (2 pi n e^b b^-2n Gamma(2n) hlr^2); I(0) = I_e e^b */
    p->lnie = -log(2 * M_PI * g->n * h2) + 2 * g->n * log(bn) - lgamma_r(2 * g->n, &sg);
    /* the cell holding the centre carries at most I(0) h^2: stop subdividing below 1e-7 of
     * the flux */
    p->hmin = sqrt(1e-7 / exp(p->lnie));
    p->cusp = g->n > 0.55;
    p->n = g->n;
    return DS_OK;
}

static inline double profile_t(const profile *p, double t)
{
    /* + 1e-150 keeps log finite at the centre and the inner exp above -700 for n >= 0.3 */
    return fast_exp(p->lnie - p->bn * fast_exp(p->inv2n * fast_log(t + 1e-150)));
}

/* v = I at (xc -+ o, yc - o), (xc -+ o, yc + o): one 4-wide vector */
static void profile_quad(const profile *p, double xc, double yc, double o, double *restrict v)
{
    const profile q = *p;
    const double sx[4] = {-o, o, -o, o}, sy[4] = {-o, -o, o, o};
    for (int i = 0; i < 4; i++) {
        double dx = xc + sx[i] - q.x0, dy = yc + sy[i] - q.y0;
        v[i] = profile_t(&q, (q.a * dx + q.b2 * dy) * dx + q.c * dy * dy);
    }
}

/* out[i] = I(x[i], y). The profile is copied to locals so the loop vectorizes (out could
 * otherwise alias it). This loop is most of the simulator's time: on x86 with GCC, 512-bit
 * vectors are allowed here where the CPU has them (-march=native). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target("prefer-vector-width=512")))
#endif
static void profile_row(const profile *p, int n, const double *restrict x, double y,
                        double *restrict out)
{
    const profile q = *p;
    const double dy = y - q.y0, cy = q.c * dy * dy, by = q.b2 * dy;
    for (int i = 0; i < n; i++) {
        double dx = x[i] - q.x0;
        out[i] = profile_t(&q, (q.a * dx + by) * dx + cy);
    }
}

/* ---- integration over cells ---- */

#define MAX_DEPTH 28

#define STEEP 1.3                 /* samples within this ratio: relative error < 1e-5 */
#define FAINT 1e-9                /* cells below this flux (unit total) are never split */
#define SPLIT_TOL 1e-7            /* split when the estimated error exceeds this */

/* A cell is subdivided when it holds the centre or touches it (a cusp there, for n > 0.55),
 * or when the profile changes steeply across its nodes: for I ~ exp(-g x), 2-point
 * Gauss-Legendre has relative error (g h)^4 / 4320 with g h ~ 1.73 ln(hi / lo), so the
 * cell's error is about f ln(hi / lo)^4 / 480. Faint and tiny cells are left alone. */
static int needs_split(const profile *p, double xc, double yc, double h, double sum,
                       double lo, double hi)
{
    double f = sum * h * h * 0.25;
    if (h <= p->hmin || f < FAINT)
        return 0;
    if (p->cusp && fabs(xc - p->x0) < h && fabs(yc - p->y0) < h)
        return 1;
    if (!(hi > STEEP * lo))
        return 0;
    double lr = log(hi / lo);
    return f * lr * lr * lr * lr > 480 * SPLIT_TOL;
}

/* (not fmin/fmax: those are library calls without -ffast-math) */
static inline double min4(double a, double b, double c, double d)
{
    double x = a < b ? a : b, y = c < d ? c : d;
    return x < y ? x : y;
}

static inline double max4(double a, double b, double c, double d)
{
    double x = a > b ? a : b, y = c > d ? c : d;
    return x > y ? x : y;
}

/* Flux in a cell and its first moments about the cell's centre: m = {f, fx, fy}. */
static void cell_flux(const profile *p, double xc, double yc, double h, int depth, double *m)
{
    const double o = GL2 * h;
    double v[4];
    profile_quad(p, xc, yc, o, v);
    double v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
    double sum = v0 + v1 + v2 + v3;
    double lo = min4(v0, v1, v2, v3), hi = max4(v0, v1, v2, v3);
    if (depth < MAX_DEPTH && needs_split(p, xc, yc, h, sum, lo, hi)) {
        const double q = 0.25 * h, sx[4] = {-q, q, -q, q}, sy[4] = {-q, -q, q, q};
        m[0] = m[1] = m[2] = 0;
        for (int c = 0; c < 4; c++) {
            double cm[3];
            cell_flux(p, xc + sx[c], yc + sy[c], 0.5 * h, depth + 1, cm);
            m[0] += cm[0];
            m[1] += cm[1] + cm[0] * sx[c];
            m[2] += cm[2] + cm[0] * sy[c];
        }
        return;
    }
    double w = h * h * 0.25;
    m[0] = sum * w;
    m[1] = (v1 + v3 - v0 - v2) * o * w;
    m[2] = (v2 + v3 - v0 - v1) * o * w;
}

/* g[nc x nc]: flux in each cell of side h = 1/k, the grid starting at pixel (-m, -m). The
 * 2 x 2 Gauss-Legendre points of all cells form a separable grid evaluated row by row.
 *
 * dipole (for the PSF convolution): the convolution treats each cell's flux as sitting at
 * the cell's centre, which is exact for a profile smooth on the scale of a cell (psf.c) but
 * not for the cusp of n >~ 1.5, whose light may sit at a cell's edge: its centroid would move
 * by up to h / 2 (errors of 2% of the peak for n = 6 at k = 2). For the 4 x 4 cells around
 * the centre, the first moment M of the cell is added back as a dipole, -M . grad(delta), written on the grid with the 4th-order central
 * difference (neighbours at +-1, +-2 cells), so that convolving with the sampled PSF gives
 * -M . grad(K). */
static ds_status integrate_grid(const profile *p, int nc, int k, int m, int dipole, double *g)
{
    const double h = 1.0 / k, o = GL2 * h, x_lo = -m - 0.5;
    double *xs = malloc(sizeof *xs * (size_t)(6 * nc));
    if (!xs)
        return dsi_fail(DS_ERR_NOMEM, "galaxy render: out of memory (%d cells a side)", nc);
    double *r0 = xs + 2 * nc, *r1 = xs + 4 * nc;
    double dip[16][4];   /* i, j, fx, fy: at most 4 x 4 cells are within 2h of the centre */
    int nd = 0;
    for (int j = 0; j < nc; j++) {
        double xc = x_lo + (j + 0.5) * h;
        xs[2 * j] = xc - o;
        xs[2 * j + 1] = xc + o;
    }
    for (int i = 0; i < nc; i++) {
        double yc = x_lo + (i + 0.5) * h;
        profile_row(p, 2 * nc, xs, yc - o, r0);
        profile_row(p, 2 * nc, xs, yc + o, r1);
        double *gi = g + (size_t)i * nc;
        for (int j = 0; j < nc; j++) {
            double v0 = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];
            double sum = v0 + v1 + v2 + v3;
            double lo = min4(v0, v1, v2, v3), hi = max4(v0, v1, v2, v3);
            double xc = x_lo + (j + 0.5) * h;
            if (needs_split(p, xc, yc, h, sum, lo, hi)) {
                double cm[3];
                cell_flux(p, xc, yc, h, 0, cm);
                gi[j] = cm[0];
                if (dipole && p->n >= 1.5 && fabs(xc - p->x0) < 2 * h && fabs(yc - p->y0) < 2 * h &&
                    nd < 16 && i >= 3 && j >= 3 && i < nc - 3 && j < nc - 3) {
                    dip[nd][0] = i, dip[nd][1] = j, dip[nd][2] = cm[1], dip[nd][3] = cm[2];
                    nd++;
                }
            } else {
                gi[j] = sum * h * h * 0.25;
            }
        }
    }
    /* only the excess over the dipole a smooth profile has, (h^2 / 12) grad(f), which the
     * cell scheme already accounts for (estimated from the neighbours' fluxes) */
    for (int d = 0; d < nd; d++) {
        const int i = (int)dip[d][0], j = (int)dip[d][1];
        const double *gi = g + (size_t)i * nc;
        dip[d][2] -= h * (gi[j + 1] - gi[j - 1]) / 24;
        dip[d][3] -= h * (gi[j + nc] - gi[j - nc]) / 24;
    }
    for (int d = 0; d < nd; d++) {
        const int i = (int)dip[d][0], j = (int)dip[d][1];
        const double cx = dip[d][2] / (12 * h), cy = dip[d][3] / (12 * h);
        double *row = g + (size_t)i * nc;
        row[j + 1] += 8 * cx, row[j - 1] -= 8 * cx, row[j + 2] -= cx, row[j - 2] += cx;
        g[(size_t)(i + 1) * nc + j] += 8 * cy, g[(size_t)(i - 1) * nc + j] -= 8 * cy;
        g[(size_t)(i + 2) * nc + j] -= cy, g[(size_t)(i - 2) * nc + j] += cy;
    }
    free(xs);
    return DS_OK;
}

/* ---- public ---- */

ds_status ds_galaxy_render(const ds_galaxy *g, const ds_psf *psf, int size, float *img)
{
    profile p;
    ds_status st;
    if (!img)
        return dsi_fail(DS_ERR_ARG, "ds_galaxy_render: img is NULL");
    if ((st = profile_setup(g, size, "ds_galaxy_render", &p)) != DS_OK ||
        (st = dsi_psf_check(psf, "ds_galaxy_render")) != DS_OK)
        return st;
    const int conv = psf && psf->kind != DS_PSF_NONE;
    const int k = dsi_psf_oversample(psf), m = dsi_psf_margin(psf, size);
    const int nc = (size + 2 * m) * k, ns = size * k;
    if ((double)nc * nc > 1 << 26)
        return dsi_fail(DS_ERR_ARG, "ds_galaxy_render: a %d-pixel stamp with a %d-pixel margin "
                        "and %d x %d sub-cells per pixel is too large", size, m, k, k);
    double *grid = malloc(sizeof *grid * (size_t)nc * nc);
    double *sub = conv ? malloc(sizeof *sub * (size_t)ns * ns) : grid;
    if (!grid || !sub) {
        free(grid);
        if (conv)
            free(sub);
        return dsi_fail(DS_ERR_NOMEM, "ds_galaxy_render: out of memory (%d x %d cells)", nc, nc);
    }
    if ((st = integrate_grid(&p, nc, k, m, conv, grid)) == DS_OK && conv)
        st = dsi_psf_convolve(psf, size, k, m, grid, sub);
    if (st == DS_OK)
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) {
                double s = 0;
                for (int a = 0; a < k; a++) {
                    const double *row = sub + (size_t)(i * k + a) * ns + (size_t)j * k;
                    for (int b = 0; b < k; b++)
                        s += row[b];
                }
                img[(size_t)i * size + j] = (float)(g->flux * s);
            }
    free(grid);
    if (conv)
        free(sub);
    return st;
}

ds_status ds_galaxy_render_sampled(const ds_galaxy *g, int size, int oversample, float *img)
{
    profile p;
    ds_status st;
    if (!img)
        return dsi_fail(DS_ERR_ARG, "ds_galaxy_render_sampled: img is NULL");
    if ((st = profile_setup(g, size, "ds_galaxy_render_sampled", &p)) != DS_OK)
        return st;
    if (oversample < 1 || oversample > 64)
        return dsi_fail(DS_ERR_ARG, "ds_galaxy_render_sampled: oversample %d must be in [1, 64]",
                        oversample);
    const int ns = size * oversample;
    double *xs = malloc(sizeof *xs * (size_t)(2 * ns));
    if (!xs)
        return dsi_fail(DS_ERR_NOMEM, "ds_galaxy_render_sampled: out of memory");
    double *row = xs + ns, w = g->flux / ((double)oversample * oversample);
    for (int j = 0; j < ns; j++)
        xs[j] = -0.5 + (j + 0.5) / oversample;
    for (int i = 0; i < size; i++) {
        double acc[4096] = {0};
        for (int a = 0; a < oversample; a++) {
            profile_row(&p, ns, xs, i - 0.5 + (a + 0.5) / oversample, row);
            for (int j = 0; j < ns; j++)
                acc[j / oversample] += row[j];
        }
        for (int j = 0; j < size; j++)
            img[(size_t)i * size + j] = (float)(w * acc[j]);
    }
    free(xs);
    return DS_OK;
}

ds_status dsi_sersic_grid(const ds_galaxy *g, int size, int k, int m, int dipole, double *grid,
                          const char *who)
{
    profile p;
    ds_status st = profile_setup(g, size, who, &p);
    if (st != DS_OK)
        return st;
    return integrate_grid(&p, (size + 2 * m) * k, k, m, dipole, grid);
}

ds_status dsi_sersic_eval(const ds_galaxy *g, int64_t n, const double *x, const double *y,
                          double *out, const char *who)
{
    profile p;
    ds_status st = profile_setup(g, 4, who, &p);
    if (st != DS_OK)
        return st;
    p.x0 = g->dx;   /* coordinates from the stamp centre */
    p.y0 = g->dy;
    for (int64_t i = 0; i < n; i++) {
        double dx = x[i] - p.x0, dy = y[i] - p.y0;
        out[i] = g->flux * profile_t(&p, (p.a * dx + p.b2 * dy) * dx + p.c * dy * dy);
    }
    return DS_OK;
}
