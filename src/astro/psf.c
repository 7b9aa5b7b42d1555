/* psf.c - point-spread functions (Gaussian, Moffat, optical; round or sheared): checks,
 * pixel-integrated images, and the convolution of a sub-pixel galaxy grid with the sampled
 * PSF (separable for the round Gaussian, by FFT with zero padding otherwise; the optical
 * PSF's Fourier-space parts are in optics.c). */
#include "sim.h"

#include "../internal.h"
#include "fft.h"

#include <math.h>

#define FWHM_TO_SIGMA 0.42466090014400953   /* 1 / (2 sqrt(2 ln 2)) */

/* Moffat I(r) = (1 + (r / alpha)^2)^-beta has FWHM 2 alpha sqrt(2^(1/beta) - 1). */
static double moffat_alpha(const ds_psf *p)
{
    return p->fwhm / (2.0 * sqrt(pow(2.0, 1.0 / p->beta) - 1.0));
}

double dsi_psf_stretch(const ds_psf *psf)
{
    if (!psf || (psf->e1 == 0 && psf->e2 == 0))
        return 1;
    double e = hypot(psf->e1, psf->e2);
    return (1 + e) / sqrt(1 - e * e);
}

double dsi_psf_r2(const ds_psf *psf, double x, double y)
{
    if (psf->e1 == 0 && psf->e2 == 0)
        return x * x + y * y;
    double e2 = psf->e1 * psf->e1 + psf->e2 * psf->e2;
    return ((1 + e2) * (x * x + y * y) - 2 * psf->e1 * (x * x - y * y) - 4 * psf->e2 * x * y) /
           (1 - e2);
}

static ds_status check_optical(const ds_psf *psf, const char *who)
{
    const double lod = psf->lam_over_diam;
    if (!(psf->fwhm >= 0 && psf->fwhm <= 1000))
        return dsi_fail(DS_ERR_ARG, "%s: optical PSF: atmospheric (Kolmogorov) FWHM %g must be in "
                        "[0, 1000] pixels (0: none)", who, psf->fwhm);
    if (!(lod == 0 || (lod >= 0.25 && lod <= 1000)))
        return dsi_fail(DS_ERR_ARG, "%s: optical PSF: lambda/D %g must be in [0.25, 1000] pixels "
                        "(0: no diffraction)", who, lod);
    if (!(psf->obscuration >= 0 && psf->obscuration < 1))
        return dsi_fail(DS_ERR_ARG, "%s: optical PSF: obscuration %g must be in [0, 1)", who,
                        psf->obscuration);
    if (lod == 0 && !(psf->fwhm >= 0.25))
        return dsi_fail(DS_ERR_ARG, "%s: optical PSF: without diffraction (lambda/D 0) the "
                        "atmospheric FWHM %g must be >= 0.25 pixels", who, psf->fwhm);
    return DS_OK;
}

ds_status dsi_psf_check(const ds_psf *psf, const char *who)
{
    if (!psf)
        return DS_OK;
    if (psf->kind != DS_PSF_NONE && psf->kind != DS_PSF_GAUSSIAN && psf->kind != DS_PSF_MOFFAT &&
        psf->kind != DS_PSF_OPTICAL)
        return dsi_fail(DS_ERR_ARG, "%s: unknown PSF kind %d", who, (int)psf->kind);
    if (!(hypot(psf->e1, psf->e2) < 1))
        return dsi_fail(DS_ERR_ARG, "%s: PSF ellipticity |e| = %g (e1 = %g, e2 = %g) must be < 1",
                        who, hypot(psf->e1, psf->e2), psf->e1, psf->e2);
    if (psf->kind == DS_PSF_NONE) {
        if (psf->e1 != 0 || psf->e2 != 0)
            return dsi_fail(DS_ERR_ARG, "%s: a PSF ellipticity (%g, %g) needs a PSF (kind is none)",
                            who, psf->e1, psf->e2);
        return DS_OK;
    }
    if (psf->kind != DS_PSF_OPTICAL && (psf->lam_over_diam != 0 || psf->obscuration != 0))
        return dsi_fail(DS_ERR_ARG, "%s: lambda/D %g and obscuration %g are for the optical PSF "
                        "only (use 0)", who, psf->lam_over_diam, psf->obscuration);
    if (psf->kind == DS_PSF_OPTICAL)
        return check_optical(psf, who);
    if (!(psf->fwhm > 0 && psf->fwhm <= 1000))
        return dsi_fail(DS_ERR_ARG, "%s: PSF FWHM %g must be in (0, 1000] pixels", who, psf->fwhm);
    if (psf->kind == DS_PSF_MOFFAT && !(psf->beta > 1 && psf->beta <= 100))
        return dsi_fail(DS_ERR_ARG, "%s: Moffat beta %g must be in (1, 100]", who, psf->beta);
    return DS_OK;
}

/* The FWHM along the PSF's narrowest direction (the minor axis when sheared). */
static double min_fwhm(const ds_psf *psf)
{
    double f = psf->kind == DS_PSF_OPTICAL ? dsi_optical_fwhm(psf) : psf->fwhm;
    if (psf->e1 == 0 && psf->e2 == 0)
        return f;
    double e = hypot(psf->e1, psf->e2);
    return f * (1 - e) / sqrt(1 - e * e);
}

int dsi_psf_oversample(const ds_psf *psf)
{
    if (!psf || psf->kind == DS_PSF_NONE)
        return 2;
    int k = (int)ceil(4.0 / min_fwhm(psf) - 1e-9);
    /* the Airy's OTF ends at 1 / (lambda/D) cycles per pixel: below the grid's Nyquist */
    if (psf->kind == DS_PSF_OPTICAL && psf->lam_over_diam > 0)
        k = (int)fmax(k, ceil(2.0 / psf->lam_over_diam - 1e-9));
    return k < 2 ? 2 : k > 8 ? 8 : k;
}

double dsi_psf_trunc(const ds_psf *psf, int size)
{
    if (!psf || psf->kind == DS_PSF_NONE)
        return 0;
    if (psf->kind == DS_PSF_GAUSSIAN)
        return 5.0 * FWHM_TO_SIGMA * psf->fwhm;
    if (psf->kind == DS_PSF_OPTICAL)
        return fmax(0.5 * size, 4.0 * dsi_optical_fwhm(psf) * dsi_psf_stretch(psf));
    return fmax(0.5 * size, 4.0 * psf->fwhm);
}

int dsi_psf_margin(const ds_psf *psf, int size)
{
    if (!psf || psf->kind == DS_PSF_NONE)
        return 0;
    double r = dsi_psf_trunc(psf, size);
    if (psf->kind == DS_PSF_MOFFAT)
        r = fmin(r, 2.5 * psf->fwhm);
    if (psf->kind == DS_PSF_OPTICAL)
        return (int)ceil(fmin(r, 2.5 * dsi_optical_fwhm(psf) * dsi_psf_stretch(psf)));
    if (psf->e1 != 0 || psf->e2 != 0)
        r *= dsi_psf_stretch(psf);   /* the cut is an ellipse of semi-major axis r stretch */
    return (int)ceil(r);
}

/* Separable Gaussian: a horizontal then a vertical pass of the 1-D kernel sampled at cell
 * offsets, written as axpy loops (contiguous, vectorizable). */
static ds_status convolve_gaussian(const ds_psf *psf, int size, int k, int m, const double *g,
                                   double *out)
{
    const int nc = (size + 2 * m) * k, ns = size * k, off = m * k;
    const double sig = FWHM_TO_SIGMA * psf->fwhm * k;   /* in cells */
    const int r = (int)ceil(5.0 * sig);
    DS_ASSERT(r <= off);
    double *w = malloc(sizeof *w * (size_t)(2 * r + 1));
    double *tmp = calloc((size_t)nc * ns, sizeof *tmp);
    if (!w || !tmp) {
        free(w);
        free(tmp);
        return dsi_fail(DS_ERR_NOMEM, "PSF convolution: out of memory (%d x %d cells)", nc, ns);
    }
    double sum = 0;
    for (int d = -r; d <= r; d++)
        sum += w[d + r] = exp(-0.5 * d * d / (sig * sig));
    for (int d = 0; d <= 2 * r; d++)
        w[d] /= sum;
    for (int i = 0; i < nc; i++) {
        double *t = tmp + (size_t)i * ns;
        for (int d = -r; d <= r; d++) {
            const double *src = g + (size_t)i * nc + off + d, wd = w[d + r];
            for (int j = 0; j < ns; j++)
                t[j] += wd * src[j];
        }
    }
    for (int i = 0; i < ns; i++) {
        double *o = out + (size_t)i * ns;
        for (int j = 0; j < ns; j++)
            o[j] = 0;
        for (int d = -r; d <= r; d++) {
            const double *src = tmp + (size_t)(i + off + d) * ns, wd = w[d + r];
            for (int j = 0; j < ns; j++)
                o[j] += wd * src[j];
        }
    }
    free(w);
    free(tmp);
    return DS_OK;
}

/* The PSF's profile (not normalized) at r2 = |A^-1 x|^2 in units of sigma (Gaussian) or
 * alpha (Moffat), before the cut at dsi_psf_trunc. */
static double kernel_value(const ds_psf *psf, double r2_scaled)
{
    if (psf->kind == DS_PSF_GAUSSIAN)
        return exp(-0.5 * r2_scaled);
    return pow(1.0 + r2_scaled, -psf->beta);
}

/* Moffat or sheared Gaussian: the kernel (cut at dsi_psf_trunc, an ellipse when sheared)
 * and the galaxy go into one complex array (galaxy real, kernel imaginary), one forward FFT
 * separates into both spectra, and the inverse FFT of their product is the convolution.
 * The size N >= (size + m) k + R keeps the wrap-around of the cyclic convolution out of the
 * stamp (R: the cut's semi-major axis). */
static ds_status convolve_fft(const ds_psf *psf, int size, int k, int m, const double *g,
                              double *out)
{
    const int nc = (size + 2 * m) * k, ns = size * k, off = m * k;
    const double rt = dsi_psf_trunc(psf, size) * k;
    const double w = (psf->kind == DS_PSF_GAUSSIAN ? FWHM_TO_SIGMA * psf->fwhm
                                                   : moffat_alpha(psf)) * k;
    const int round = psf->e1 == 0 && psf->e2 == 0;
    const int r = (int)floor(round ? rt : rt * dsi_psf_stretch(psf));
    int n = 1;
    while (n < (size + m) * k + r || n < nc)
        n <<= 1;
    size_t nn = (size_t)n * n;
    double *z = calloc(2 * nn, sizeof *z), *p = malloc(2 * nn * sizeof *p);
    double *tw = malloc(sizeof *tw * (size_t)n), *buf = malloc(2 * sizeof *buf * (size_t)n);
    if (!z || !p || !tw || !buf) {
        free(z);
        free(p);
        free(tw);
        free(buf);
        return dsi_fail(DS_ERR_NOMEM, "PSF convolution: out of memory (FFT of %d x %d)", n, n);
    }
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < nc; j++)
            z[2 * ((size_t)i * n + j)] = g[(size_t)i * nc + j];
    double sum = 0;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            double r2 = round ? (double)dx * dx + (double)dy * dy : dsi_psf_r2(psf, dx, dy);
            if (r2 > rt * rt)
                continue;
            double v = kernel_value(psf, r2 / (w * w));
            z[2 * ((size_t)((dy + n) % n) * n + (dx + n) % n) + 1] = v;
            sum += v;
        }
    dsi_fft_twiddles(n, tw);
    dsi_fft2(z, n, 0, tw, buf);
    /* G = (Z(u) + conj Z(-u)) / 2, K = (Z(u) - conj Z(-u)) / 2i; p = G K / (sum n^2). */
    const double scale = 1.0 / (sum * (double)nn);
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) {
            const double *a = z + 2 * ((size_t)u * n + v);
            const double *b = z + 2 * ((size_t)((n - u) % n) * n + (n - v) % n);
            double gr = 0.5 * (a[0] + b[0]), gi = 0.5 * (a[1] - b[1]);
            double kr = 0.5 * (a[1] + b[1]), ki = -0.5 * (a[0] - b[0]);
            p[2 * ((size_t)u * n + v)] = (gr * kr - gi * ki) * scale;
            p[2 * ((size_t)u * n + v) + 1] = (gr * ki + gi * kr) * scale;
        }
    dsi_fft2(p, n, 1, tw, buf);
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < ns; j++)
            out[(size_t)i * ns + j] = p[2 * ((size_t)(i + off) * n + j + off)];
    free(z);
    free(p);
    free(tw);
    free(buf);
    return DS_OK;
}

ds_status dsi_psf_convolve(const ds_psf *psf, int size, int k, int m, const double *g,
                           double *out)
{
    if (psf->kind == DS_PSF_OPTICAL)
        return dsi_optical_convolve(psf, size, k, m, g, out);
    if (psf->kind == DS_PSF_GAUSSIAN && psf->e1 == 0 && psf->e2 == 0)
        return convolve_gaussian(psf, size, k, m, g, out);
    return convolve_fft(psf, size, k, m, g, out);
}

/* Gauss-Legendre nodes and weights on [-1/2, 1/2] (3 points). */
static const double GL3_X[3] = {-0.3872983346207417, 0.0, 0.3872983346207417};
static const double GL3_W[3] = {0.2777777777777778, 0.4444444444444444, 0.2777777777777778};

/* The Moffat or sheared Gaussian integrated over each pixel: 3 x 3 Gauss-Legendre points in
 * each of ns x ns sub-cells per pixel, the Moffat cut at the truncation radius. */
static void render_quadrature(const ds_psf *psf, int size, double *acc)
{
    const double c = 0.5 * (size - 1);
    const int round = psf->e1 == 0 && psf->e2 == 0, moffat = psf->kind == DS_PSF_MOFFAT;
    const double w = moffat ? moffat_alpha(psf) : FWHM_TO_SIGMA * psf->fwhm;
    const double rt = moffat ? dsi_psf_trunc(psf, size) : INFINITY;
    int ns = (int)ceil(4.0 / min_fwhm(psf));
    ns = ns < 1 ? 1 : ns > 16 ? 16 : ns;
    const double h = 1.0 / ns;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double sum = 0;
            for (int a = 0; a < ns; a++)
                for (int b = 0; b < ns; b++) {
                    double yc = i - 0.5 + (a + 0.5) * h - c, xc = j - 0.5 + (b + 0.5) * h - c;
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) {
                            double y = yc + GL3_X[u] * h, x = xc + GL3_X[v] * h;
                            double r2 = round ? x * x + y * y : dsi_psf_r2(psf, x, y);
                            if (r2 <= rt * rt)
                                sum += GL3_W[u] * GL3_W[v] * kernel_value(psf, r2 / (w * w));
                        }
                }
            acc[(size_t)i * size + j] = sum;
        }
}

/* The round Gaussian, separable and exact: differences of erf at the pixel edges. */
static ds_status render_gaussian(const ds_psf *psf, int size, double *acc)
{
    const double c = 0.5 * (size - 1), s = FWHM_TO_SIGMA * psf->fwhm * M_SQRT2;
    double *e = malloc(sizeof *e * (size_t)size);
    if (!e)
        return dsi_fail(DS_ERR_NOMEM, "ds_psf_render: out of memory");
    for (int j = 0; j < size; j++)
        e[j] = 0.5 * (erf((j + 0.5 - c) / s) - erf((j - 0.5 - c) / s));
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++)
            acc[(size_t)i * size + j] = e[i] * e[j];
    free(e);
    return DS_OK;
}

ds_status ds_psf_render(const ds_psf *psf, int size, float *img)
{
    ds_status st = DS_OK;
    if (!psf || !img)
        return dsi_fail(DS_ERR_ARG, "ds_psf_render: psf and img must not be NULL");
    if (size < 4 || size > 4096)
        return dsi_fail(DS_ERR_ARG, "ds_psf_render: stamp size %d must be in [4, 4096]", size);
    if ((st = dsi_psf_check(psf, "ds_psf_render")) != DS_OK)
        return st;
    const double c = 0.5 * (size - 1);
    const size_t npix = (size_t)size * size;
    double *acc = calloc(npix, sizeof *acc);
    if (!acc)
        return dsi_fail(DS_ERR_NOMEM, "ds_psf_render: out of memory");
    if (psf->kind == DS_PSF_NONE) {
        /* a point source: its flux split among the pixels touching the centre */
        int lo = (int)floor(c), hi = (int)ceil(c);
        for (int i = lo; i <= hi; i++)
            for (int j = lo; j <= hi; j++)
                acc[(size_t)i * size + j] = 1.0;
    } else if (psf->kind == DS_PSF_GAUSSIAN && psf->e1 == 0 && psf->e2 == 0) {
        st = render_gaussian(psf, size, acc);
    } else if (psf->kind == DS_PSF_OPTICAL) {
        st = dsi_optical_image(psf, size, 1, acc);
    } else {
        render_quadrature(psf, size, acc);
    }
    if (st == DS_OK) {
        double tot = 0;
        for (size_t p = 0; p < npix; p++)
            tot += acc[p];
        for (size_t p = 0; p < npix; p++)
            img[p] = (float)(acc[p] / tot);
    }
    free(acc);
    return st;
}
