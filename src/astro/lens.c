/* lens.c - strong gravitational lensing: the deflection of a singular isothermal ellipsoid
 * (SIE) with external shear, and a Sersic source ray-traced through it onto the pixel grid
 * (surface brightness is conserved), optionally convolved with a PSF (psf.c). */
#include "sim.h"

#include "../internal.h"

#include <math.h>
#include <stdlib.h>


static ds_status lens_check(const ds_lens *l, const char *who)
{
    if (!l)
        return dsi_fail(DS_ERR_ARG, "%s: lens is NULL", who);
    if (!(l->theta_e > 0 && l->theta_e < 1e6))
        return dsi_fail(DS_ERR_ARG, "%s: Einstein radius %g must be in (0, 1e6) pixels", who,
                        l->theta_e);
    if (!(l->q > 0 && l->q <= 1))
        return dsi_fail(DS_ERR_ARG, "%s: axis ratio q = %g must be in (0, 1]", who, l->q);
    if (!isfinite(l->phi) || !isfinite(l->dx) || !isfinite(l->dy))
        return dsi_fail(DS_ERR_ARG, "%s: angle %g and centre (%g, %g) must be finite", who,
                        l->phi, l->dx, l->dy);
    if (!(hypot(l->gamma1, l->gamma2) < 1))
        return dsi_fail(DS_ERR_ARG, "%s: external shear (%g, %g) must have |gamma| < 1", who,
                        l->gamma1, l->gamma2);
    return DS_OK;
}

/* The SIE's deflection at (x, y) in its own frame (major axis along x), Kormann et al. 1994
 * in Keeton's form: with psi = sqrt(q^2 x^2 + y^2) and f = sqrt(1 - q^2),
 * ax = b / f atan(f x / psi), ay = b / f atanh(f y / psi), b = theta_e sqrt(q). As q -> 1 it
 * becomes the SIS's, theta_e (x, y) / r. */
static void sie_frame(double te, double q, double x, double y, double *ax, double *ay)
{
    double psi = sqrt(q * q * x * x + y * y);
    if (psi == 0) {   /* the centre: 0 by symmetry (a set of measure zero) */
        *ax = *ay = 0;
        return;
    }
    double f = sqrt(1 - q * q), b = te * sqrt(q);
    if (f < 1e-4) {   /* nearly round: the series to first order in f^2 */
        double u = x / psi, v = y / psi, f2 = f * f;
        *ax = b * u * (1 - f2 * u * u / 3);
        *ay = b * v * (1 + f2 * v * v / 3);
        return;
    }
    *ax = b / f * atan(f * x / psi);
    *ay = b / f * atanh(f * y / psi);
}

/* Deflection at (x, y), pixels from the stamp centre. */
static void deflect(const ds_lens *l, double cs, double sn, double x, double y, double *ax,
                    double *ay)
{
    double u = x - l->dx, v = y - l->dy;
    double xr = cs * u + sn * v, yr = -sn * u + cs * v, fx, fy;
    sie_frame(l->theta_e, l->q, xr, yr, &fx, &fy);
    *ax = cs * fx - sn * fy + l->gamma1 * u + l->gamma2 * v;
    *ay = sn * fx + cs * fy + l->gamma2 * u - l->gamma1 * v;
}

ds_status ds_lens_deflect(const ds_lens *l, int64_t n, const double *x, const double *y,
                          double *ax, double *ay)
{
    ds_status st = lens_check(l, "ds_lens_deflect");
    if (st != DS_OK)
        return st;
    if (n < 0 || (n > 0 && (!x || !y || !ax || !ay)))
        return dsi_fail(DS_ERR_ARG, "ds_lens_deflect: %lld points with a NULL array",
                        (long long)n);
    double cs = cos(l->phi), sn = sin(l->phi);
    for (int64_t i = 0; i < n; i++)
        deflect(l, cs, sn, x[i], y[i], &ax[i], &ay[i]);
    return DS_OK;
}

/* Row i of the nc x nc cells of side h = 1/k from x_lo: each cell's flux, the mean of the
 * source's brightness at the 2 x 2 points traced back to the source plane, times h^2. */
static ds_status trace_row(const ds_lens *l, const ds_galaxy *src, int nc, int k, double x_lo,
                           int i, double *xs, double *ys, double *v, double *row)
{
    const double h = 1.0 / k, o = GL2 * h, cs = cos(l->phi), sn = sin(l->phi);
    const double yc = x_lo + (i + 0.5) * h;
    for (int j = 0; j < nc; j++)
        for (int p = 0; p < 4; p++) {
            double x = x_lo + (j + 0.5) * h + (p & 1 ? o : -o), y = yc + (p & 2 ? o : -o);
            double ax, ay;
            deflect(l, cs, sn, x, y, &ax, &ay);
            xs[4 * j + p] = x - ax;
            ys[4 * j + p] = y - ay;
        }
    ds_status st = dsi_sersic_eval(src, 4 * (int64_t)nc, xs, ys, v, "ds_lens_render");
    for (int j = 0; j < nc && st == DS_OK; j++)
        row[j] = (v[4 * j] + v[4 * j + 1] + v[4 * j + 2] + v[4 * j + 3]) * h * h * 0.25;
    return st;
}

/* The grid of cells covering the stamp and a margin of m pixels (x_lo = -size/2 - m from the
 * stamp centre, in pixels). */
static ds_status trace_grid(const ds_lens *l, const ds_galaxy *src, int size, int k, int m,
                            double *g)
{
    const int nc = (size + 2 * m) * k;
    const double x_lo = -0.5 * size - m;
    int failed = 0;   /* rows whose buffer could not be allocated (src was checked) */
#pragma omp parallel for schedule(static) reduction(+ : failed)
    for (int i = 0; i < nc; i++) {
        double *buf = malloc(sizeof *buf * (size_t)nc * 12);
        failed += !buf || trace_row(l, src, nc, k, x_lo, i, buf, buf + 4 * nc, buf + 8 * nc,
                                    g + (size_t)i * nc) != DS_OK;
        free(buf);
    }
    if (failed)
        return dsi_fail(DS_ERR_NOMEM, "ds_lens_render: out of memory (%d cells a side)", nc);
    return DS_OK;
}

ds_status ds_lens_render(const ds_lens *l, const ds_galaxy *src, const ds_psf *psf, int size,
                         int oversample, float *img)
{
    const char *who = "ds_lens_render";
    ds_status st;
    double probe = 0, pv;
    if ((st = lens_check(l, who)) || (st = dsi_psf_check(psf, who)) ||
        (st = dsi_sersic_eval(src, 1, &probe, &probe, &pv, who)))
        return st;
    if (!img || size < 4 || size > 4096 || oversample < 1 || oversample > 64)
        return dsi_fail(DS_ERR_ARG, "%s: image %s, size %d (4..4096), oversample %d (1..64)",
                        who, img ? "given" : "NULL", size, oversample);
    const int conv = psf && psf->kind != DS_PSF_NONE;
    const int kp = conv ? dsi_psf_oversample(psf) : 1, k = oversample > kp ? oversample : kp;
    const int m = conv ? dsi_psf_margin(psf, size) : 0;
    const int nc = (size + 2 * m) * k, ns = size * k;
    if ((double)nc * nc > 1 << 26)
        return dsi_fail(DS_ERR_ARG, "%s: a %d-pixel stamp with a %d-pixel margin and %d x %d "
                        "sub-cells per pixel is too large", who, size, m, k, k);
    double *grid = malloc(sizeof *grid * (size_t)nc * nc);
    double *sub = conv ? malloc(sizeof *sub * (size_t)ns * ns) : grid;
    if (!grid || !sub) {
        free(grid);
        if (conv)
            free(sub);
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory (%d x %d cells)", who, nc, nc);
    }
    if ((st = trace_grid(l, src, size, k, m, grid)) == DS_OK && conv)
        st = dsi_psf_convolve(psf, size, k, m, grid, sub);
    for (int i = 0; i < size && st == DS_OK; i++)
        for (int j = 0; j < size; j++) {
            double s = 0;
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++)
                    s += sub[(size_t)(i * k + a) * ns + (size_t)j * k + b];
            img[(size_t)i * size + j] = (float)s;
        }
    free(grid);
    if (conv)
        free(sub);
    return st;
}
