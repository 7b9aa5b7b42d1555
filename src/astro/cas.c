/* cas.c - CAS morphology statistics (Conselice 2003): concentration, asymmetry and
 * smoothness of a stamp, with the Petrosian radius and the asymmetry centre they use. */
#include "../internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ETA 0.2          /* Petrosian eta (Bershady et al. 2000) */

typedef struct {
    double d, f;
} pix;

static int by_distance(const void *a, const void *b)
{
    double x = ((const pix *)a)->d, y = ((const pix *)b)->d;
    return (x > y) - (x < y);
}

/* A curve of growth about a centre: the pixels by distance, cumulative flux and count. */
typedef struct {
    int64_t n;
    pix *p;
    double *cf, *cn;
} growth;

static void growth_build(const float *img, int size, double xc, double yc, growth *g)
{
    int64_t n = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++)
            g->p[n++] = (pix){hypot(j - xc, i - yc), img[(size_t)i * size + j]};
    qsort(g->p, (size_t)n, sizeof *g->p, by_distance);
    double f = 0;
    for (int64_t k = 0; k < n; k++) {
        f += g->p[k].f;
        g->cf[k] = f;
        g->cn[k] = (double)(k + 1);
    }
    g->n = n;
}

/* Flux and pixel count within r, linear between the sorted distances. */
static void growth_at(const growth *g, double r, double *f, double *cnt)
{
    int64_t lo = 0, hi = g->n - 1;
    if (r < g->p[0].d) {
        *f = 0, *cnt = 0;
        return;
    }
    if (r >= g->p[hi].d) {
        *f = g->cf[hi], *cnt = g->cn[hi];
        return;
    }
    while (hi - lo > 1) {   /* p[lo].d <= r < p[hi].d */
        int64_t mid = (lo + hi) / 2;
        if (g->p[mid].d <= r)
            lo = mid;
        else
            hi = mid;
    }
    double t = (r - g->p[lo].d) / (g->p[hi].d - g->p[lo].d + 1e-300);
    *f = g->cf[lo] + t * (g->cf[hi] - g->cf[lo]);
    *cnt = g->cn[lo] + t * (g->cn[hi] - g->cn[lo]);
}

/* The Petrosian radius: the first r where the annulus [0.8 r, 1.25 r]'s mean brightness
 * falls below ETA times the mean within r (linear between steps of 0.05 px); the largest
 * radius whose annulus fits the stamp if it never does. */
static double petrosian(const growth *g, int size)
{
    const double rmax = 0.5 * size / 1.25;
    double prev_r = 0, prev_eta = 1;
    for (double r = 1; r <= rmax; r += 0.05) {
        double fi, ni, fa, na, fb, nb;
        growth_at(g, r, &fi, &ni);
        growth_at(g, 0.8 * r, &fa, &na);
        growth_at(g, 1.25 * r, &fb, &nb);
        if (!(ni > 0 && nb - na > 0 && fi > 0))
            continue;
        double eta = ((fb - fa) / (nb - na)) / (fi / ni);
        if (eta < ETA) {
            if (prev_r == 0)
                return r;
            return prev_r + (r - prev_r) * (prev_eta - ETA) / (prev_eta - eta);
        }
        prev_r = r, prev_eta = eta;
    }
    return rmax;
}

/* The radius holding the fraction q of the flux ftot: the first crossing, linear between
 * pixels. */
static double radius_of(const growth *g, double q, double ftot)
{
    const double want = q * ftot;
    double pd = 0, pf = 0;
    for (int64_t k = 0; k < g->n; k++) {
        if (g->cf[k] >= want) {
            double t = (want - pf) / (g->cf[k] - pf + 1e-300);
            return pd + t * (g->p[k].d - pd);
        }
        pd = g->p[k].d, pf = g->cf[k];
    }
    return pd;
}

/* sum |I - I_180| and sum |I| over the pixels within rad of (cx, cy) (2 cx, 2 cy integers)
 * whose turned counterpart is in the stamp; *cnt their number. */
static void asym_sums(const float *img, int size, double cx, double cy, double rad,
                      double *num, double *den, double *cnt)
{
    const int tx = (int)lround(2 * cx), ty = (int)lround(2 * cy);
    double a = 0, b = 0, c = 0, r2 = rad * rad;
    for (int i = 0; i < size; i++) {
        int i2 = ty - i;
        if (i2 < 0 || i2 >= size)
            continue;
        for (int j = 0; j < size; j++) {
            int j2 = tx - j;
            double dx = j - cx, dy = i - cy;
            if (j2 < 0 || j2 >= size || dx * dx + dy * dy > r2)
                continue;
            float v = img[(size_t)i * size + j];
            a += fabs(v - img[(size_t)i2 * size + j2]);
            b += fabs(v);
            c += 1;
        }
    }
    *num = a, *den = b, *cnt = c;
}

/* The centre on the half-pixel grid within 2 pixels of (x0, y0) of least sum|I - I_180| /
 * sum|I| within rad. */
static void asym_centre(const float *img, int size, double x0, double y0, double rad,
                        double *xc, double *yc)
{
    double bx = round(2 * x0) / 2, by = round(2 * y0) / 2, best = INFINITY;
    *xc = bx, *yc = by;
    for (int a = -4; a <= 4; a++)
        for (int b = -4; b <= 4; b++) {
            double cx = bx + 0.5 * b, cy = by + 0.5 * a, num, den, cnt;
            if (cx < 0 || cy < 0 || cx > size - 1 || cy > size - 1)
                continue;
            asym_sums(img, size, cx, cy, rad, &num, &den, &cnt);
            if (den > 0 && num / den < best) {
                best = num / den;
                *xc = cx, *yc = cy;
            }
        }
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 1.4826 MAD of the outer two-pixel frame. buf: room for 8 size values. */
static double frame_sigma(const float *img, int size, double *buf)
{
    int64_t n = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++)
            if (i < 2 || j < 2 || i >= size - 2 || j >= size - 2)
                buf[n++] = img[(size_t)i * size + j];
    qsort(buf, (size_t)n, sizeof *buf, by_value);
    double med = n % 2 ? buf[n / 2] : 0.5 * (buf[n / 2 - 1] + buf[n / 2]);
    for (int64_t k = 0; k < n; k++)
        buf[k] = fabs(buf[k] - med);
    qsort(buf, (size_t)n, sizeof *buf, by_value);
    return 1.4826 * (n % 2 ? buf[n / 2] : 0.5 * (buf[n / 2 - 1] + buf[n / 2]));
}

/* Smoothness over rin < r <= rout about (xc, yc), the box of width w (odd) clipped at the
 * edges; sigma: the noise term. */
static double smoothness(const float *img, int size, double xc, double yc, double rin,
                         double rout, int w, double sigma, double *integral)
{
    const int n1 = size + 1, h = w / 2;
    for (int i = 0; i <= size; i++)
        for (int j = 0; j <= size; j++)
            integral[(size_t)i * n1 + j] =
                i && j ? img[(size_t)(i - 1) * size + j - 1] + integral[(size_t)(i - 1) * n1 + j] +
                             integral[(size_t)i * n1 + j - 1] - integral[(size_t)(i - 1) * n1 + j - 1]
                       : 0;
    double num = 0, den = 0, cnt = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double d = hypot(j - xc, i - yc);
            if (d <= rin || d > rout)
                continue;
            int i0 = i - h < 0 ? 0 : i - h, i1 = i + h + 1 > size ? size : i + h + 1;
            int j0 = j - h < 0 ? 0 : j - h, j1 = j + h + 1 > size ? size : j + h + 1;
            double box = integral[(size_t)i1 * n1 + j1] - integral[(size_t)i0 * n1 + j1] -
                         integral[(size_t)i1 * n1 + j0] + integral[(size_t)i0 * n1 + j0];
            double v = img[(size_t)i * size + j], r = v - box / ((i1 - i0) * (j1 - j0));
            num += r > 0 ? r : 0;
            den += v;
            cnt += 1;
        }
    if (!(den > 0))
        return 0;
    double sky = cnt * sigma * sqrt(1 - 1.0 / (w * w)) / sqrt(2 * M_PI);
    return 10 * (num - sky) / den;
}

/* The flux-weighted centroid of the pixels above one sigma; false if there is no flux. */
static bool centroid(const float *img, int size, double sigma, double *x0, double *y0)
{
    double s = 0, sx = 0, sy = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double v = img[(size_t)i * size + j];
            if (v > sigma) {
                s += v, sx += v * j, sy += v * i;
            }
        }
    if (!(s > 0))
        return false;
    *x0 = sx / s, *y0 = sy / s;
    return true;
}

static void measure(const float *img, int size, double sigma, growth *g, double *integral,
                    ds_cas *o)
{
    double x0, y0;
    if (!centroid(img, size, sigma, &x0, &y0))
        return;
    growth_build(img, size, x0, y0, g);
    double rp = petrosian(g, size);
    asym_centre(img, size, x0, y0, 1.5 * rp, &o->xc, &o->yc);
    growth_build(img, size, o->xc, o->yc, g);
    rp = petrosian(g, size);
    double ftot, cnt;
    growth_at(g, 1.5 * rp, &ftot, &cnt);
    if (!(ftot > 0))
        return;
    o->r_petro = rp;
    o->flux = ftot;
    o->r20 = radius_of(g, 0.2, ftot);
    o->r80 = radius_of(g, 0.8, ftot);
    o->c = 5 * log10(fmax(o->r80, 1e-3) / fmax(o->r20, 1e-3));
    double num, den;
    asym_sums(img, size, o->xc, o->yc, 1.5 * rp, &num, &den, &cnt);
    o->a = den > 0 ? (num - cnt * 2 * sigma / sqrt(M_PI)) / den : 0;
    int w = 2 * (int)floor(0.125 * rp + 0.5) + 1;
    w = w < 3 ? 3 : w;
    o->s = smoothness(img, size, o->xc, o->yc, 0.25 * rp, 1.5 * rp, w, sigma, integral);
    o->ok = 1;
}

ds_status ds_cas_measure(const float *img, int size, double sky_sigma, ds_cas *out)
{
    if (!img || !out)
        return dsi_fail(DS_ERR_ARG, "ds_cas_measure: image and output must not be NULL");
    if (size < 8 || size > 8192)
        return dsi_fail(DS_ERR_ARG, "ds_cas_measure: stamp size %d must be in [8, 8192]", size);
    memset(out, 0, sizeof *out);
    const size_t npix = (size_t)size * size;
    growth g;
    g.p = malloc(npix * sizeof *g.p);
    double *buf = malloc((2 * npix + (size_t)(size + 1) * (size + 1)) * sizeof *buf);
    if (!g.p || !buf) {
        free(g.p);
        free(buf);
        return dsi_fail(DS_ERR_NOMEM, "ds_cas_measure: out of memory for a %d x %d stamp",
                        size, size);
    }
    g.cf = buf, g.cn = buf + npix;
    out->sky_sigma = sky_sigma > 0 ? sky_sigma : frame_sigma(img, size, buf);
    measure(img, size, out->sky_sigma, &g, buf + 2 * npix, out);
    if (!out->ok) {
        double s = out->sky_sigma;
        memset(out, 0, sizeof *out);
        out->sky_sigma = s;
    }
    free(g.p);
    free(buf);
    return DS_OK;
}
