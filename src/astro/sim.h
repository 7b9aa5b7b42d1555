/* sim.h - private pieces shared by the galaxy simulator (sersic.c, psf.c, optics.c, sim.c,
 * shear.c, lens.c). */
#ifndef DS_ASTRO_SIM_H
#define DS_ASTRO_SIM_H

#include "deepsky.h"

/* DS_ERR_ARG naming who unless psf is NULL, kind NONE (round), or a valid Gaussian, Moffat
 * or optical PSF. */
ds_status dsi_psf_check(const ds_psf *psf, const char *who);
/* Semi-major axis over radius of the PSF's shear, (1 + |e|) / sqrt(1 - |e|^2); 1 if round. */
double dsi_psf_stretch(const ds_psf *psf);
/* |A^-1 (x, y)|^2: the squared radius in the round profile of the point (x, y) of the PSF
 * sheared by A = [[1 + e1, e2], [e2, 1 - e1]] / sqrt(1 - |e|^2) (area kept). */
double dsi_psf_r2(const ds_psf *psf, double x, double y);
/* Sub-cells per pixel side (k) of the grid the galaxy is integrated on before the
 * convolution: the sampled PSF must be smooth on that grid (h = 1/k <= FWHM / 4). */
int dsi_psf_oversample(const ds_psf *psf);
/* Radius (pixels, in the round profile) beyond which the PSF is cut: 5 sigma for a
 * Gaussian, max(size / 2, 4 FWHM) for a Moffat; for the optical PSF (never cut, its OTF is
 * used whole) the reach of the FFT's zero padding. */
double dsi_psf_trunc(const ds_psf *psf, int size);
/* Pixels rendered around the stamp so that light scattered into it is kept. */
int dsi_psf_margin(const ds_psf *psf, int size);
/* g: nc x nc cells of side 1/k covering the stamp and a margin of m pixels on every side
 * (nc = (size + 2 m) k), each holding the galaxy's flux in that cell. out: the (size k)^2
 * cells of the stamp after convolution with the PSF sampled at cell offsets (unit sum).
 * Summing the k x k cells of a pixel then gives the pixel-integrated convolved image
 * exactly, up to the aliasing of the sampled PSF (negligible for h <= FWHM / 4). */
ds_status dsi_psf_convolve(const ds_psf *psf, int size, int k, int m, const double *g,
                           double *out);


/* ---- optics.c ---- */
/* OTF (real, even) of the optical PSF at frequency (fx, fy) cycles per pixel: the annular
 * pupil's autocorrelation (if lam_over_diam > 0) times the Kolmogorov OTF (if fwhm > 0),
 * sheared by the PSF ellipticity. 1 at 0. */
double dsi_optical_otf(const ds_psf *p, double fx, double fy);
/* A rough FWHM of the optical PSF, pixels: the quadrature sum of the atmosphere's and the
 * unobscured Airy's (1.029 lambda/D), for sampling choices. */
double dsi_optical_fwhm(const ds_psf *p);
/* dsi_psf_convolve for the optical PSF: the galaxy's spectrum times the OTF (not cut). */
ds_status dsi_optical_convolve(const ds_psf *psf, int size, int k, int m, const double *g,
                               double *out);
/* The optical PSF (unit total flux, not renormalized) at the pixel centres of a size x size
 * stamp centred as ds_psf_render: integrated over each pixel if integrate, else its value
 * at the centre. Poisson summation of the OTF: exact up to the wrap-around of the periodic
 * grid (period >= 2 size pixels). */
ds_status dsi_optical_image(const ds_psf *psf, int size, int integrate, double *acc);

/* ---- Sersic profiles (sersic.c) ---- */
/* 2-point Gauss-Legendre nodes at +-GL2 h from the middle of a cell of side h (sersic.c,
 * lens.c integrate over cells with 2 x 2 of them). */
#define GL2 0.28867513459481287
/* out[i] = the surface brightness of g (flux per square pixel) at (x[i], y[i]), pixels from
 * the stamp centre, g's centre at (g->dx, g->dy). DS_ERR_ARG naming who for a bad galaxy. */
ds_status dsi_sersic_eval(const ds_galaxy *g, int64_t n, const double *x, const double *y,
                          double *out, const char *who);

/* g's flux at unit total flux (g->flux is ignored) in each of the nc x nc cells of side 1/k
 * covering the stamp and a margin of m pixels, nc = (size + 2 m) k, as ds_galaxy_render
 * integrates them before the convolution (dipole: the cusp's correction for a convolution
 * that follows). DS_ERR_ARG naming who for a bad galaxy. (morphology.c) */
ds_status dsi_sersic_grid(const ds_galaxy *g, int size, int k, int m, int dipole, double *grid,
                          const char *who);

/* ---- shear (shear.c) ---- */
/* DS_ERR_ARG naming the option: |g| >= 1, a negative or >= 1/sqrt(2) cycle amplitude, a
 * count that is not a multiple of the group. */
ds_status dsi_sim_shear_check(const ds_sim_opts *o);
/* Rows per group of galaxies that share their parameters: 1, 2 (pairs), 4 (a shear cycle)
 * or 8 (both). */
int dsi_sim_group(const ds_sim_opts *o);
/* Row i's intrinsic shape e_int (e0, that of its group's first row, turned by 90 degrees
 * for the second row of a pair), its shear g and its sheared shape e. */
void dsi_sim_shear_row(const ds_sim_opts *o, int64_t i, const double e0[2], double e_int[2],
                       double g[2], double e[2]);
/* The row whose noise stream row i uses: itself, but in a shear cycle the group's first
 * row of the same rotation, so that the shears of a galaxy see the same noise. */
int64_t dsi_sim_noise_row(const ds_sim_opts *o, int64_t i);

#endif
