/* optics.c - the optical PSF: an obscured Airy (annular pupil) convolved with Kolmogorov
 * seeing, both given by their OTFs as GalSim defines them, sheared by the PSF ellipticity;
 * the galaxy convolution and the PSF's pixel images are computed in Fourier space. */
#include "sim.h"

#include "../internal.h"
#include "fft.h"

#include <math.h>

/* GalSim's Kolmogorov: T(k) = exp(-(k / k0)^(5/3)) with k0 = KOLMO_K0 / (lambda / r0),
 * i.e. exp(-3.44 (lambda f / r0)^(5/3)) at f = k / 2 pi; FWHM = KOLMO_FWHM lambda / r0. */
#define KOLMO_K0 2.992939911888651
#define KOLMO_FWHM 0.9758634299

/* |A f|^2 for the shear A = [[1 + e1, e2], [e2, 1 - e1]] / sqrt(1 - e^2): the OTF of the
 * sheared PSF K(A^-1 x) is T(A f) (det A = 1, A symmetric). */
static double sheared_f2(const ds_psf *p, double fx, double fy)
{
    if (p->e1 == 0 && p->e2 == 0)
        return fx * fx + fy * fy;
    double e2 = p->e1 * p->e1 + p->e2 * p->e2;
    return ((1 + e2) * (fx * fx + fy * fy) + 2 * p->e1 * (fx * fx - fy * fy) +
            4 * p->e2 * fx * fy) / (1 - e2);
}

/* Area of the intersection of two discs of radii r and s whose centres are t apart. */
static double circle_overlap(double r, double s, double t)
{
    if (r <= 0 || s <= 0 || t >= r + s)
        return 0;
    if (t <= fabs(r - s)) {
        double m = fmin(r, s);
        return M_PI * m * m;
    }
    double a = r * r * acos((t * t + r * r - s * s) / (2 * t * r));
    double b = s * s * acos((t * t + s * s - r * r) / (2 * t * s));
    double c = sqrt(fmax(0.0, (-t + r + s) * (t + r - s) * (t - r + s) * (t + r + s)));
    return a + b - 0.5 * c;
}

/* OTF of the annular pupil (outer radius 1, inner eps) at nu = f lambda / D: the overlap of
 * the annulus with itself shifted by 2 nu, over its area. Zero from nu = 1 on. */
static double airy_otf(double nu, double eps)
{
    if (nu >= 1)
        return 0;
    double d = 2 * nu;
    double a = circle_overlap(1, 1, d) - 2 * circle_overlap(1, eps, d) +
               circle_overlap(eps, eps, d);
    return a / (M_PI * (1 - eps * eps));
}

double dsi_optical_otf(const ds_psf *p, double fx, double fy)
{
    double f = sqrt(sheared_f2(p, fx, fy)), t = 1;
    if (p->lam_over_diam > 0)
        t = airy_otf(f * p->lam_over_diam, p->obscuration);
    if (p->fwhm > 0 && t != 0) {
        double k = 2 * M_PI * f * (p->fwhm / KOLMO_FWHM) / KOLMO_K0;
        t *= exp(-pow(k, 5.0 / 3.0));
    }
    return t;
}

/* The frequency (cycles per pixel) beyond which the OTF is 0 (Airy) or below 1e-16
 * (Kolmogorov alone), along the sheared PSF's most extended direction. */
static double optical_fmax(const ds_psf *p)
{
    double e = hypot(p->e1, p->e2), grow = sqrt((1 + e) / (1 - e));
    if (p->lam_over_diam > 0)
        return grow / p->lam_over_diam;
    return grow * KOLMO_K0 * pow(-log(1e-16), 0.6) / (2 * M_PI * p->fwhm / KOLMO_FWHM);
}

double dsi_optical_fwhm(const ds_psf *p)
{
    double a = 1.0289 * p->lam_over_diam;   /* the unobscured Airy's FWHM */
    return sqrt(p->fwhm * p->fwhm + a * a);
}

static int pow2_at_least(int v)
{
    int n = 1;
    while (n < v)
        n <<= 1;
    return n;
}

/* Cyclic frequency of index u of an n-point transform on a grid of step h pixels. */
static double freq(int u, int n, double h)
{
    return (u < n / 2 ? u : u - n) / (n * h);
}

ds_status dsi_optical_convolve(const ds_psf *psf, int size, int k, int m, const double *g,
                               double *out)
{
    const int nc = (size + 2 * m) * k, ns = size * k, off = m * k;
    const int r = (int)floor(dsi_psf_trunc(psf, size) * k);
    const int n = pow2_at_least((size + m) * k + r > nc ? (size + m) * k + r : nc);
    const size_t nn = (size_t)n * n;
    double *z = calloc(2 * nn, sizeof *z), *tw = malloc(sizeof *tw * (size_t)n);
    double *buf = malloc(2 * sizeof *buf * (size_t)n);
    if (!z || !tw || !buf) {
        free(z);
        free(tw);
        free(buf);
        return dsi_fail(DS_ERR_NOMEM, "PSF convolution: out of memory (FFT of %d x %d)", n, n);
    }
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < nc; j++)
            z[2 * ((size_t)i * n + j)] = g[(size_t)i * nc + j];
    dsi_fft_twiddles(n, tw);
    dsi_fft2(z, n, 0, tw, buf);
    /* the OTF is real and even: no phase; rows are y, columns x */
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) {
            double t = dsi_optical_otf(psf, freq(v, n, 1.0 / k), freq(u, n, 1.0 / k)) / (double)nn;
            z[2 * ((size_t)u * n + v)] *= t;
            z[2 * ((size_t)u * n + v) + 1] *= t;
        }
    dsi_fft2(z, n, 1, tw, buf);
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < ns; j++)
            out[(size_t)i * ns + j] = z[2 * ((size_t)(i + off) * n + j + off)];
    free(z);
    free(tw);
    free(buf);
    return DS_OK;
}

static double sinc(double x)
{
    return x == 0 ? 1.0 : sin(M_PI * x) / (M_PI * x);
}

/* The spectrum of the samples P(q + s) (q integer, P the profile, integrated over a pixel
 * if integrate) by Poisson summation: S(f0) = sum over integers m of
 * P^(f0 + m) exp(2 pi i (f0 + m) s), finite since P^ vanishes beyond optical_fmax. */
static void sample_spectrum(const ds_psf *p, int integrate, double fx0, double fy0, double s,
                            double fmax, int mm, double *re, double *im)
{
    double sr = 0, si = 0;
    for (int a = -mm; a <= mm; a++) {
        double fy = fy0 + a;
        if (fabs(fy) > fmax)
            continue;
        for (int b = -mm; b <= mm; b++) {
            double fx = fx0 + b;
            if (fabs(fx) > fmax || fx * fx + fy * fy > fmax * fmax)
                continue;
            double t = dsi_optical_otf(p, fx, fy);
            if (integrate)
                t *= sinc(fx) * sinc(fy);
            double ph = 2 * M_PI * (fx + fy) * s;
            sr += t * cos(ph);
            si += t * sin(ph);
        }
    }
    *re = sr;
    *im = si;
}

ds_status dsi_optical_image(const ds_psf *psf, int size, int integrate, double *acc)
{
    /* pixel j sits at x = (j - jc) + s from the PSF centre c = (size - 1) / 2 */
    const int jc = (size - 1) / 2, n = pow2_at_least(2 * size < 16 ? 16 : 2 * size);
    const double s = jc - 0.5 * (size - 1), fmax = optical_fmax(psf);
    const int mm = (int)ceil(fmax + 0.5);
    const size_t nn = (size_t)n * n;
    double *z = malloc(2 * nn * sizeof *z), *tw = malloc(sizeof *tw * (size_t)n);
    double *buf = malloc(2 * sizeof *buf * (size_t)n);
    if (!z || !tw || !buf) {
        free(z);
        free(tw);
        free(buf);
        return dsi_fail(DS_ERR_NOMEM, "ds_psf_render: out of memory (FFT of %d x %d)", n, n);
    }
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) {
            double *c = z + 2 * ((size_t)u * n + v);
            sample_spectrum(psf, integrate, freq(v, n, 1), freq(u, n, 1), s, fmax, mm, c, c + 1);
        }
    dsi_fft_twiddles(n, tw);
    dsi_fft2(z, n, 1, tw, buf);
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            size_t q = (size_t)((i - jc + n) % n) * n + (size_t)((j - jc + n) % n);
            acc[(size_t)i * size + j] = z[2 * q] / (double)nn;
        }
    free(z);
    free(tw);
    free(buf);
    return DS_OK;
}
