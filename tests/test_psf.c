/* test_psf.c - variable PSFs: round outputs unchanged from main, the Moffat's flux and FWHM,
 * sheared PSFs' adaptive moments, the optical PSF against analytic facts (Airy zero, peak,
 * encircled energy, Kolmogorov FWHM and peak), shear recovery with an elliptical PSF,
 * simulator ranges and per-stamp PSF images, the CLI, bad values. */
#include "test.h"
#include "spawn.h"

#include "../src/astro/sim.h"

#include <unistd.h>

/* ---- round PSFs: bit-identical to main e80e7e7 ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* FNV-1a of the stamps and of the first 9 truth columns of a catalogue. */
static uint64_t sim_hash(ds_psf_kind kind, double fwhm, double lo, double hi, double beta,
                         int size, int count, uint64_t seed, double snr_lo, double snr_hi)
{
    ds_sim_opts o = {0};
    o.count = count, o.size = size, o.seed = seed, o.e_max = 0.6, o.offset_max = 0.5;
    o.snr_min = snr_lo, o.snr_max = snr_hi;
    o.psf.kind = kind, o.psf.fwhm = fwhm, o.psf.beta = beta;
    o.psf_fwhm_min = lo, o.psf_fwhm_max = hi;
    ds_tensor *x, *t;
    if (ds_sim_galaxies(&o, &x, &t) != DS_OK)
        return 0;
    uint64_t h = fnv(0xcbf29ce484222325ULL, ds_tensor_data(x),
                     sizeof(float) * (size_t)ds_tensor_numel(x));
    int64_t nc = ds_tensor_shape(t)[1];
    for (int i = 0; i < count; i++)
        h = fnv(h, ds_tensor_data(t) + i * nc, 9 * sizeof(float));
    ds_tensor_free(x);
    ds_tensor_free(t);
    return h;
}

static uint64_t psf_hash(ds_psf_kind kind, double fwhm, double beta, int size)
{
    float img[64 * 64];
    ds_psf p = {.kind = kind, .fwhm = fwhm, .beta = beta};
    if (ds_psf_render(&p, size, img) != DS_OK)
        return 0;
    return fnv(0xcbf29ce484222325ULL, img, sizeof(float) * (size_t)(size * size));
}

/* The hashes were made by the same code built against main e80e7e7 (before variable PSFs). */
TEST(psf_round_unchanged)
{
    CHECK(sim_hash(DS_PSF_GAUSSIAN, 2, 1.8, 2.6, 0, 24, 12, 7, 10, 50) == 0x855309e80cc12517ULL);
    CHECK(sim_hash(DS_PSF_MOFFAT, 2.5, 1.5, 3.5, 2.5, 20, 8, 3, 0, 0) == 0xf50374f062259dfeULL);
    CHECK(sim_hash(DS_PSF_NONE, 0, 0, 0, 0, 16, 4, 5, 20, 40) == 0x9da51c3be09bdb30ULL);
    CHECK(psf_hash(DS_PSF_GAUSSIAN, 2.2, 0, 16) == 0xcc74520f40f40115ULL);
    CHECK(psf_hash(DS_PSF_MOFFAT, 2.5, 2.5, 17) == 0xc8cf224914006814ULL);
    return TEST_PASS;
}

/* ---- Moffat: unit flux, FWHM ---- */

static double moffat_alpha(double fwhm, double beta)
{
    return fwhm / (2 * sqrt(pow(2, 1 / beta) - 1));
}

/* The unit-flux Moffat (beta - 1) / (pi alpha^2) (1 + r^2 / alpha^2)^-beta. */
static double moffat(double r2, double alpha, double beta)
{
    return (beta - 1) / (M_PI * alpha * alpha) * pow(1 + r2 / (alpha * alpha), -beta);
}

/* The integral over pixel (i, j) of f(r^2 from the centre c), by 3 x 3 Gauss-Legendre
 * points in each of k x k sub-cells; f(r2) = 0 beyond rt. */
typedef double (*radial_fn)(double r2, const double *par);

static double pixel_integral(radial_fn f, const double *par, int i, int j, double c, int k,
                             double rt)
{
    static const double gx[3] = {-0.3872983346207417, 0, 0.3872983346207417};
    static const double gw[3] = {0.2777777777777778, 0.4444444444444444, 0.2777777777777778};
    double s = 0, h = 1.0 / k;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            for (int u = 0; u < 3; u++)
                for (int v = 0; v < 3; v++) {
                    double y = i - 0.5 + (a + 0.5 + gx[u]) * h - c;
                    double x = j - 0.5 + (b + 0.5 + gx[v]) * h - c;
                    if (x * x + y * y <= rt * rt)
                        s += gw[u] * gw[v] * f(x * x + y * y, par);
                }
    return s * h * h;
}

static double moffat_fn(double r2, const double *par)
{
    return moffat(r2, par[0], par[1]);
}

/* The PSF image against an independent integration (12 x 12 sub-cells a pixel) of the
 * unit-flux Moffat cut at rt: its total is the analytic flux inside rt, 1 - (1 +
 * rt^2/alpha^2)^(1 - beta), within 1e-4 (the profile integrates to 1), and the image is that
 * integral renormalized, within 1e-4 of the peak. A small galaxy keeps its flux to 1e-4. */
TEST(psf_moffat_unit_flux)
{
    const double betas[] = {1.5, 2.5, 3.5, 4.765}, fwhms[] = {1.5, 2.5, 3.5};
    enum { S = 40 };
    static float img[S * S];
    static double q[S * S];
    double w_flux = 0, w_pix = 0, w_gal = 0;
    for (int b = 0; b < 4; b++)
        for (int f = 0; f < 3; f++) {
            ds_psf p = {.kind = DS_PSF_MOFFAT, .fwhm = fwhms[f], .beta = betas[b]};
            CHECK(ds_psf_render(&p, S, img) == DS_OK);
            const double a = moffat_alpha(fwhms[f], betas[b]), rt = dsi_psf_trunc(&p, S);
            const double c = 0.5 * (S - 1);
            double tot = 0, peak = 0, worst = 0, par[2] = {a, betas[b]};
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++) {
                    int near = abs(i - S / 2) < 5 && abs(j - S / 2) < 5;
                    q[i * S + j] = pixel_integral(moffat_fn, par, i, j, c, near ? 12 : 3, rt);
                    tot += q[i * S + j];
                }
            double inside = 1 - pow(1 + rt * rt / (a * a), 1 - betas[b]);
            w_flux = fmax(w_flux, fabs(tot - inside));
            if (fabs(tot - inside) > 1e-4)
                FAIL("beta %g FWHM %g: the unit-flux Moffat integrates to %.6f inside %g px, "
                     "analytic %.6f", betas[b], fwhms[f], tot, rt, inside);
            for (int k = 0; k < S * S; k++) {
                peak = fmax(peak, img[k]);
                worst = fmax(worst, fabs(img[k] - q[k] / tot));
            }
            w_pix = fmax(w_pix, worst / peak);
            if (worst > 1e-4 * peak)
                FAIL("beta %g FWHM %g: image differs from the integral by %g (peak %g)",
                     betas[b], fwhms[f], worst, peak);
            /* a small galaxy at the centre keeps its flux (beta 1.5's wings cross the edge) */
            if (betas[b] < 2)
                continue;
            ds_galaxy g = {.n = 1, .hlr = 0.5, .flux = 1};
            CHECK(ds_galaxy_render(&g, &p, S, img) == DS_OK);
            double sum = 0;
            for (int k = 0; k < S * S; k++)
                sum += img[k];
            w_gal = fmax(w_gal, fabs(sum - 1));
            if (fabs(sum - 1) > 1e-4)
                FAIL("beta %g FWHM %g: galaxy flux %.6f after the Moffat", betas[b], fwhms[f], sum);
        }
    snprintf(msg_, cap_, "beta 1.5-4.765, FWHM 1.5-3.5: |flux - analytic| <= %.1e, image vs "
             "integral <= %.1e of the peak, galaxy |flux - 1| <= %.1e", w_flux, w_pix, w_gal);
    return TEST_PASS;
}

/* Radius where the row through the centre pixel (odd size) falls to half the centre value,
 * linearly interpolated between pixel centres. */
static double half_max_radius(const float *img, int size)
{
    const int c = size / 2;
    const float *row = img + (size_t)c * size;
    const double half = 0.5 * row[c];
    for (int j = c + 1; j < size; j++)
        if (row[j] <= half)
            return (j - 1 - c) + (row[j - 1] - half) / (row[j - 1] - row[j]);
    return NAN;
}

/* FWHM 1.5 to 3.5 pixels sampled 10 times finer: the Moffat is self-similar, so rendering
 * FWHM 10 F on unit pixels is the profile of FWHM F at steps of 0.1 pixel. */
TEST(psf_moffat_fwhm)
{
    const double betas[] = {1.5, 2.5, 3.5, 4.765, 5}, fwhms[] = {1.5, 2.5, 3.5};
    enum { S = 151 };
    float *img = malloc(sizeof *img * S * S);
    CHECK(img);
    double worst = 0;
    for (int b = 0; b < 5; b++)
        for (int f = 0; f < 3; f++) {
            ds_psf p = {.kind = DS_PSF_MOFFAT, .fwhm = 10 * fwhms[f], .beta = betas[b]};
            CHECK(ds_psf_render(&p, S, img) == DS_OK);
            double w = 2 * half_max_radius(img, S) / 10;
            worst = fmax(worst, fabs(w / fwhms[f] - 1));
            if (!(fabs(w / fwhms[f] - 1) < 0.01)) {
                free(img);
                FAIL("beta %g: FWHM %g measured %.4f", betas[b], fwhms[f], w);
            }
        }
    free(img);
    snprintf(msg_, cap_, "beta 1.5-5, FWHM 1.5-3.5 px: max |FWHM / requested - 1| = %.1e", worst);
    return TEST_PASS;
}

/* ---- sheared PSFs ---- */

/* The eps ellipticity of an image's adaptive moments, less the pixel's 1/12 in Mxx, Myy. */
static int moments_eps(const float *img, int size, double *e1, double *e2)
{
    ds_moments m;
    if (ds_adaptive_moments(img, size, 0, &m) != DS_OK || m.flag)
        return 1;
    double xx = m.mxx - 1.0 / 12, yy = m.myy - 1.0 / 12, t = xx + yy;
    double d1 = (xx - yy) / t, d2 = 2 * m.mxy / t, d = hypot(d1, d2);
    double k = d > 0 ? 1 / (1 + sqrt(1 - d * d)) : 0;
    *e1 = d1 * k;
    *e2 = d2 * k;
    return 0;
}

/* The adaptive moments of a sheared PSF give its e: exactly for a Gaussian (up to the pixel
 * response), closely for the others (the weight is a Gaussian, the profile is not). */
TEST(psf_elliptical_moments)
{
    const double es[][2] = {{0.1, 0}, {0, -0.1}, {0.0707, 0.0707}, {-0.05, 0.08}, {0.3, -0.2}};
    enum { S = 64 };
    static float img[S * S];
    const ds_psf base[] = {
        {.kind = DS_PSF_GAUSSIAN, .fwhm = 3},
        {.kind = DS_PSF_MOFFAT, .fwhm = 3, .beta = 3.5},
        {.kind = DS_PSF_OPTICAL, .fwhm = 2.5, .lam_over_diam = 1.2, .obscuration = 0.3},
    };
    const double tol[] = {2e-4, 2e-3, 2e-3};
    double wsmall[3] = {0}, wlarge[3] = {0};
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < 5; t++) {
            ds_psf p = base[k];
            p.e1 = es[t][0], p.e2 = es[t][1];
            CHECK(ds_psf_render(&p, S, img) == DS_OK);
            double e1, e2;
            CHECK(!moments_eps(img, S, &e1, &e2));
            /* the pixel's 1/12 is only the leading term: more is left at |e| = 0.36 */
            double tk = tol[k] * (hypot(p.e1, p.e2) > 0.15 ? 5 : 1);
            double *w = hypot(p.e1, p.e2) > 0.15 ? &wlarge[k] : &wsmall[k];
            *w = fmax(*w, fmax(fabs(e1 - p.e1), fabs(e2 - p.e2)));
            if (fabs(e1 - p.e1) > tk || fabs(e2 - p.e2) > tk)
                FAIL("PSF kind %d e (%g, %g): adaptive moments give (%.6f, %.6f)", (int)p.kind,
                     p.e1, p.e2, e1, e2);
            /* the galaxy convolution shears the same way: a tiny round galaxy takes the PSF's e */
            ds_galaxy g = {.n = 0.5, .hlr = 0.3, .flux = 1};
            CHECK(ds_galaxy_render(&g, &p, S, img) == DS_OK);
            ds_moments m;
            CHECK(ds_adaptive_moments(img, S, 0, &m) == DS_OK && !m.flag);
            double d1 = (m.mxx - m.myy) / (m.mxx + m.myy), d2 = 2 * m.mxy / (m.mxx + m.myy);
            if (d1 * p.e1 < 0 || d2 * p.e2 < 0 || fabs(hypot(d1, d2)) < hypot(p.e1, p.e2))
                FAIL("PSF kind %d e (%g, %g): the convolved galaxy's distortion (%.4f, %.4f)",
                     (int)p.kind, p.e1, p.e2, d1, d2);
        }
    snprintf(msg_, cap_, "max |e error|, |e| <= 0.1 / 0.36: Gaussian %.1e / %.1e, Moffat %.1e / "
             "%.1e, optical %.1e / %.1e", wsmall[0], wlarge[0], wsmall[1], wlarge[1], wsmall[2],
             wlarge[2]);
    return TEST_PASS;
}

/* Unweighted second moments of an image about its centroid. */
static void moments2(const float *img, int size, double m[3])
{
    double f = 0, x = 0, y = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            f += img[i * size + j];
            x += img[i * size + j] * j;
            y += img[i * size + j] * i;
        }
    x /= f, y /= f;
    m[0] = m[1] = m[2] = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double v = img[i * size + j] / f;
            m[0] += v * (j - x) * (j - x);
            m[1] += v * (j - x) * (i - y);
            m[2] += v * (i - y) * (i - y);
        }
}

/* The PSF image is the PSF the galaxies are convolved with: second moments add, M(galaxy *
 * PSF) = M(galaxy) + M(PSF image) - 1/12 (the image counts the pixel once more), for each
 * kind of sheared PSF (the Airy's wings, cut by the stamp, make it the loosest). */
TEST(psf_image_matches_convolution)
{
    enum { S = 64 };
    static float a[S * S], b[S * S], p[S * S];
    const ds_psf psfs[] = {
        {.kind = DS_PSF_GAUSSIAN, .fwhm = 2.5, .e1 = 0.1, .e2 = 0.05},
        {.kind = DS_PSF_MOFFAT, .fwhm = 2.5, .beta = 3.5, .e1 = -0.08, .e2 = 0.06},
        {.kind = DS_PSF_OPTICAL, .fwhm = 2, .lam_over_diam = 1.2, .obscuration = 0.3, .e2 = -0.1},
    };
    const double tol[] = {1e-4, 1e-4, 5e-3};
    ds_galaxy g = {.n = 0.5, .hlr = 1.5, .flux = 1, .e1 = 0.1, .e2 = -0.2, .dx = 0.3, .dy = -0.2};
    CHECK(ds_galaxy_render(&g, &(ds_psf){.kind = DS_PSF_NONE}, S, a) == DS_OK);
    double ma[3], mb[3], mp[3], w[3];
    moments2(a, S, ma);
    for (int k = 0; k < 3; k++) {
        CHECK(ds_galaxy_render(&g, &psfs[k], S, b) == DS_OK);
        CHECK(ds_psf_render(&psfs[k], S, p) == DS_OK);
        moments2(b, S, mb);
        moments2(p, S, mp);
        double t = mb[0] + mb[2];
        w[k] = fmax(fabs(mb[0] - (ma[0] + mp[0] - 1.0 / 12)), fabs(mb[2] - (ma[2] + mp[2] - 1.0 / 12)));
        w[k] = fmax(w[k], fabs(mb[1] - (ma[1] + mp[1]))) / t;
        if (w[k] > tol[k])
            FAIL("PSF kind %d: moments of the convolved galaxy (%.4f, %.4f, %.4f), galaxy + PSF "
                 "image - 1/12 (%.4f, %.4f, %.4f)", (int)psfs[k].kind, mb[0], mb[1], mb[2],
                 ma[0] + mp[0] - 1.0 / 12, ma[1] + mp[1], ma[2] + mp[2] - 1.0 / 12);
    }
    snprintf(msg_, cap_, "max |M(gal * PSF) - M(gal) - M(PSF image) + 1/12| / tr M: Gaussian "
             "%.1e, Moffat %.1e, optical %.1e", w[0], w[1], w[2]);
    return TEST_PASS;
}

/* ---- the optical PSF against analytic facts ---- */

/* The obscured Airy's unit-flux intensity at r (pixels): (pi / 4) (1 - eps^2) / lod^2 times
 * [(2 J1(x) / x - eps^2 2 J1(eps x) / (eps x)) / (1 - eps^2)]^2, x = pi r / lod. */
static double airy(double r, double lod, double eps)
{
    double x = M_PI * r / lod, a = x > 0 ? 2 * j1(x) / x : 1;
    double b = eps > 0 ? (x > 0 ? 2 * j1(eps * x) / (eps * x) : 1) : 0;
    double amp = (a - eps * eps * b) / (1 - eps * eps);
    return M_PI * (1 - eps * eps) / (4 * lod * lod) * amp * amp;
}

static double airy_fn(double r2, const double *par)
{
    return airy(sqrt(r2), par[0], par[1]);
}

TEST(psf_optical_airy)
{
    enum { S = 129 };
    static double v[S * S];
    const int c = S / 2;
    /* unobscured, lambda/D = 40 px: the first dark ring at 1.2197 lambda/D */
    const double L = 40, R0 = 1.2196698912665045 * L;
    ds_psf p = {.kind = DS_PSF_OPTICAL, .lam_over_diam = L};
    CHECK(dsi_optical_image(&p, S, 0, v) == DS_OK);
    const double *row = v + (size_t)c * S;
    int jm = c + 1;
    while (jm + 1 < S && !(row[jm] < row[jm - 1] && row[jm] <= row[jm + 1]))
        jm++;
    double d = 0.5 * (row[jm - 1] - row[jm + 1]) / (row[jm - 1] - 2 * row[jm] + row[jm + 1]);
    double r0 = jm - c + d;
    double ee = 0;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++)
            if (hypot(i - c, j - c) <= R0)
                ee += v[i * S + j];
    double peak = row[c], pk = M_PI / (4 * L * L);
    int ok = fabs(r0 / R0 - 1) < 1e-3 && row[jm] < 1e-3 * peak && fabs(peak / pk - 1) < 1e-3 &&
             fabs(ee - (1 - pow(j0(3.8317059702), 2))) < 1e-3;
    if (!ok)
        FAIL("Airy: first dark ring %.4f px (1.2197 lambda/D = %.4f), its value %.2g of the "
             "peak; peak %.6g (pi / 4 / lod^2 = %.6g); energy inside %.5f (1 - J0^2 = 0.83778)", r0,
             R0, row[jm] / peak, peak, pk, ee);
    char note[200];
    snprintf(note, sizeof note, "dark ring %.3f lambda/D (1.2197), peak %+.1e, EE %.5f (0.83778)",
             r0 / L, peak / pk - 1, ee);
    /* obscured: the peak is (pi / 4) (1 - eps^2) / lod^2 and the profile the analytic one */
    const double eps[] = {0.2, 0.4}, lods[] = {4, 2.5};
    for (int t = 0; t < 2; t++) {
        ds_psf o = {.kind = DS_PSF_OPTICAL, .lam_over_diam = lods[t], .obscuration = eps[t]};
        CHECK(dsi_optical_image(&o, S, 0, v) == DS_OK);
        double want = M_PI * (1 - eps[t] * eps[t]) / (4 * lods[t] * lods[t]), worst = 0;
        for (int i = c - 20; i <= c + 20; i++)
            for (int j = c - 20; j <= c + 20; j++)
                worst = fmax(worst, fabs(v[i * S + j] - airy(hypot(i - c, j - c), lods[t], eps[t])));
        if (fabs(v[c * S + c] / want - 1) > 1e-3 || worst > 1e-3 * want)
            FAIL("obscured Airy eps %g: peak %.6g, analytic %.6g; worst difference %.3g", eps[t],
                 v[c * S + c], want, worst);
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len, "; eps %g: peak %+.1e, profile %.1e", eps[t],
                 v[c * S + c] / want - 1, worst / want);
    }
    snprintf(msg_, cap_, "%s", note);
    return TEST_PASS;
}

/* Kolmogorov alone: FWHM = 0.9759 lambda / r0 (GalSim's factor; fwhm is given, so the
 * measured FWHM must come back) and the analytic peak k0^2 0.0876787 (GalSim's xzero, k0 =
 * 2.99294 / (lambda / r0)); the convolution with an Airy has the peak of the product of the
 * OTFs (a radial integral computed here). */
TEST(psf_optical_kolmogorov)
{
    enum { S = 129 };
    static double v[S * S];
    static float img[S * S];
    const int c = S / 2;
    const double fw[] = {12, 20};
    double wf = 0, wp = 0;
    for (int t = 0; t < 2; t++) {
        ds_psf p = {.kind = DS_PSF_OPTICAL, .fwhm = fw[t]};
        CHECK(dsi_optical_image(&p, S, 0, v) == DS_OK);
        for (int k = 0; k < S * S; k++)
            img[k] = (float)v[k];
        double w = 2 * half_max_radius(img, S), lor0 = fw[t] / 0.9758634299;
        double k0 = 2.992939911888651 / lor0, peak = k0 * k0 * 0.08767865636723461;
        wf = fmax(wf, fabs(w / fw[t] - 1));
        wp = fmax(wp, fabs(v[c * S + c] / peak - 1));
        if (fabs(w / fw[t] - 1) > 0.01 || fabs(v[c * S + c] / peak - 1) > 1e-3)
            FAIL("Kolmogorov FWHM %g: measured %.4f, peak %.6g (analytic %.6g)", fw[t], w,
                 v[c * S + c], peak);
    }
    ds_psf p = {.kind = DS_PSF_OPTICAL, .fwhm = 6, .lam_over_diam = 4, .obscuration = 0.3};
    CHECK(dsi_optical_otf(&p, 0, 0) == 1 && dsi_optical_otf(&p, 0.25, 0) == 0);
    double peak = 0;
    const int nf = 20000;
    for (int i = 0; i < nf; i++) {   /* 2 pi int T(f) f df over [0, 1 / lod], midpoints */
        double f = (i + 0.5) / (nf * 4.0);
        peak += 2 * M_PI * f * dsi_optical_otf(&p, f, 0) / (nf * 4.0);
    }
    static double vc[33 * 33];
    CHECK(dsi_optical_image(&p, 33, 0, vc) == DS_OK);
    if (fabs(vc[16 * 33 + 16] / peak - 1) > 1e-3)
        FAIL("Airy * Kolmogorov: peak %.6g, radial integral of the OTF %.6g", vc[16 * 33 + 16],
             peak);
    snprintf(msg_, cap_, "Kolmogorov: |FWHM / (0.9759 lambda/r0) - 1| <= %.1e, peak %.1e; with "
             "the Airy: peak %+.1e", wf, wp, vc[16 * 33 + 16] / peak - 1);
    return TEST_PASS;
}

/* Pixel integration and unit flux: the optical PSF image's pixels against the analytic
 * obscured Airy integrated over each pixel (8 x 8 points), without renormalizing. */
TEST(psf_optical_pixels)
{
    enum { S = 33 };
    static double v[S * S];
    const double lod = 2, eps = 0.3, c = 0.5 * (S - 1), par[2] = {lod, eps};
    ds_psf p = {.kind = DS_PSF_OPTICAL, .lam_over_diam = lod, .obscuration = eps};
    CHECK(dsi_optical_image(&p, S, 1, v) == DS_OK);
    double worst = 0, tot = 0, tot_ref = 0;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) {
            double s = pixel_integral(airy_fn, par, i, j, c, 4, INFINITY);
            worst = fmax(worst, fabs(v[i * S + j] - s));
            tot += v[i * S + j];
            tot_ref += s;
        }
    if (worst > 2e-4 * v[(S / 2) * S + S / 2] || fabs(tot - tot_ref) > 1e-3)
        FAIL("pixel-integrated Airy: worst pixel difference %.3g (peak %.4g); flux on the stamp "
             "%.5f, analytic %.5f", worst, v[(S / 2) * S + S / 2], tot, tot_ref);
    snprintf(msg_, cap_, "lambda/D 2 px, eps 0.3: pixels within %.1e of the peak, stamp flux "
             "%.5f (analytic %.5f)", worst / v[(S / 2) * S + S / 2], tot, tot_ref);
    /* ds_psf_render: unit sum; even size centred between pixels (symmetric) */
    float img[32 * 32];
    p.fwhm = 1.5;
    CHECK(ds_psf_render(&p, 32, img) == DS_OK);
    double sum = 0, asym = 0;
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < 32; j++) {
            sum += img[i * 32 + j];
            asym = fmax(asym, fabs(img[i * 32 + j] - img[(31 - i) * 32 + 31 - j]));
            asym = fmax(asym, fabs(img[i * 32 + j] - img[j * 32 + i]));
        }
    CHECK(fabs(sum - 1) < 1e-5 && asym < 1e-7);
    return TEST_PASS;
}

/* ---- shear measurement with an elliptical PSF ---- */

/* Re-Gaussianization given the PSF's image removes the PSF's ellipticity: noiseless round
 * and elliptical galaxies come back with their e. */
TEST(psf_shear_recovery)
{
    enum { S = 48 };
    static float gal[S * S], psf[S * S];
    const ds_psf psfs[] = {
        {.kind = DS_PSF_GAUSSIAN, .fwhm = 2.5, .e1 = 0.1, .e2 = 0.05},
        {.kind = DS_PSF_MOFFAT, .fwhm = 2.5, .beta = 3.5, .e1 = -0.08, .e2 = 0.06},
        {.kind = DS_PSF_OPTICAL, .fwhm = 2, .lam_over_diam = 1.2, .obscuration = 0.3, .e2 = -0.1},
    };
    const double ge[][2] = {{0, 0}, {0.3, -0.2}};
    double res[3][2];
    for (int k = 0; k < 3; k++) {
        CHECK(ds_psf_render(&psfs[k], S, psf) == DS_OK);
        for (int t = 0; t < 2; t++) {
            ds_galaxy g = {.n = 0.5, .hlr = 3, .flux = 1, .e1 = ge[t][0], .e2 = ge[t][1]};
            CHECK(ds_galaxy_render(&g, &psfs[k], S, gal) == DS_OK);
            ds_shear s;
            CHECK(ds_shear_estimate(gal, psf, S, 0, DS_SHEAR_REGAUSS, &s) == DS_OK && !s.flag);
            double r = hypot(s.e1 - g.e1, s.e2 - g.e2);
            res[k][t] = r;
            if (r > 0.01)
                FAIL("PSF kind %d e (%g, %g), galaxy e (%g, %g): REGAUSS gives (%.4f, %.4f)",
                     (int)psfs[k].kind, psfs[k].e1, psfs[k].e2, g.e1, g.e2, s.e1, s.e2);
        }
    }
    snprintf(msg_, cap_, "|e_REGAUSS - e|, round / e = (0.3, -0.2) galaxy: Gaussian PSF %.1e / "
             "%.1e, Moffat %.1e / %.1e, optical %.1e / %.1e", res[0][0], res[0][1], res[1][0],
             res[1][1], res[2][0], res[2][1]);
    return TEST_PASS;
}

/* ---- the simulator: ranges, truth, per-stamp PSF images ---- */

static int ncols(void)
{
    int n = 0;
    while (ds_sim_columns()[n])
        n++;
    return n;
}

static int col(const char *name)
{
    for (int j = 0; ds_sim_columns()[j]; j++)
        if (!strcmp(ds_sim_columns()[j], name))
            return j;
    return -1;
}

static ds_sim_opts psf_opts(ds_psf_kind kind)
{
    ds_sim_opts o = {0};
    o.count = 23, o.size = 20, o.seed = 11, o.e_max = 0.5, o.offset_max = 0.5;
    o.snr_min = 20, o.snr_max = 60;
    o.psf.kind = kind, o.psf.fwhm = 2, o.psf.beta = 3;
    o.psf_fwhm_min = 1.5, o.psf_fwhm_max = 3.5;
    return o;
}

TEST(psf_sim_ranges)
{
    const int C = ncols(), pb = col("psf_beta"), pe1 = col("psf_e1"), pe2 = col("psf_e2");
    const int pl = col("psf_lod"), po = col("psf_obsc");
    CHECK(pb >= 9 && pe1 == pb + 1 && pe2 == pb + 2 && pl == pb + 3 && po == pb + 4);
    ds_sim_opts o = psf_opts(DS_PSF_MOFFAT);
    ds_tensor *x0, *t0, *x1, *t1, *x2, *t2;
    CHECK(ds_sim_galaxies(&o, &x0, &t0) == DS_OK);
    o.psf_beta_min = 2.5, o.psf_beta_max = 5, o.psf_e_max = 0.1;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    CHECK(ds_sim_galaxies(&o, &x1, &t1) == DS_OK);
    ds_set_num_threads(2);
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    ds_set_num_threads(threads);
    CHECK(!memcmp(ds_tensor_data(x1), ds_tensor_data(x2), sizeof(float) * 23 * 400));
    const float *a = ds_tensor_data(t0), *b = ds_tensor_data(t1);
    double bmin = 10, bmax = 0, emax = 0;
    for (int i = 0; i < 23; i++) {
        for (int j = 0; j < 9; j++)   /* own stream: the same draws (the flux follows the PSF) */
            CHECK(j == 4 || a[i * C + j] == b[i * C + j]);
        CHECK(a[i * C + pb] == 3.0f && a[i * C + pe1] == 0 && a[i * C + pe2] == 0);
        CHECK(b[i * C + pl] == 0 && b[i * C + po] == 0);
        bmin = fmin(bmin, b[i * C + pb]);
        bmax = fmax(bmax, b[i * C + pb]);
        emax = fmax(emax, hypot(b[i * C + pe1], b[i * C + pe2]));
    }
    CHECK(bmin >= 2.5 && bmax <= 5 && bmax - bmin > 1 && emax <= 0.1 + 1e-7 && emax > 0.05);
    /* the PSF images: each row's PSF, unit sum */
    ds_tensor *pi;
    CHECK(ds_sim_psf_images(&o, t1, &pi) == DS_OK);
    const int64_t *sh = ds_tensor_shape(pi);
    CHECK(ds_tensor_ndim(pi) == 4 && sh[0] == 23 && sh[1] == 1 && sh[2] == 20 && sh[3] == 20);
    float one[400];
    for (int i = 0; i < 23; i += 5) {
        const float *r = b + i * C;
        ds_psf p = {.kind = DS_PSF_MOFFAT, .fwhm = r[6], .beta = r[pb], .e1 = r[pe1], .e2 = r[pe2]};
        CHECK(ds_psf_render(&p, 20, one) == DS_OK);
        CHECK(!memcmp(one, ds_tensor_data(pi) + i * 400, sizeof one));
    }
    ds_tensor_free(pi);
    /* a params table may set the PSF columns; a narrower one (9 columns) still works */
    int D = 0;   /* the drawn columns, up to psf_obsc: a params table's widest */
    while (strcmp(ds_sim_columns()[D++], "psf_obsc"))
        ;
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){23, D});
    for (int k = 0; k < 23 * D; k++)
        ds_tensor_data(par)[k] = NAN;
    ds_tensor_data(par)[4 * D + pe1] = 0.05f;
    o.params = par;
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    CHECK(ds_tensor_data(t2)[4 * C + pe1] == 0.05f && ds_tensor_data(t2)[4 * C + pe2] == b[4 * C + pe2]);
    ds_tensor_free(par);
    /* the optical kind: lambda/D drawn, obscuration copied */
    o = psf_opts(DS_PSF_OPTICAL);
    o.count = 6, o.psf.obscuration = 0.3, o.psf_lod_min = 1, o.psf_lod_max = 2, o.psf_e_max = 0.1;
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    for (int i = 0; i < 6; i++) {
        const float *r = ds_tensor_data(t2) + i * C;
        CHECK(r[pl] >= 1 && r[pl] <= 2 && r[po] == 0.3f && r[pb] == 0);
    }
    CHECK(ds_sim_psf_images(&o, t2, &pi) == DS_OK);
    double s = 0;
    for (int k = 0; k < 400; k++)
        s += ds_tensor_data(pi)[k];
    CHECK(fabs(s - 1) < 1e-5);
    ds_tensor_free(pi);
    ds_tensor_free(x0);
    ds_tensor_free(t0);
    ds_tensor_free(x1);
    ds_tensor_free(t1);
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    return TEST_PASS;
}

/* ---- bad values ---- */

TEST(psf_errors)
{
    float img[16 * 16];
    ds_galaxy g = {.n = 1, .hlr = 2, .flux = 1};
    ds_psf p = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2, .e1 = 0.8, .e2 = 0.6};
    CHECK_OK(check_arg_error(ds_psf_render(&p, 16, img), "PSF ellipticity |e| = 1", msg_, cap_));
    CHECK_OK(check_arg_error(ds_galaxy_render(&g, &p, 16, img), "must be < 1", msg_, cap_));
    p.e1 = NAN, p.e2 = 0;
    CHECK_OK(check_arg_error(ds_psf_render(&p, 16, img), "PSF ellipticity", msg_, cap_));
    ds_psf o = {.kind = DS_PSF_OPTICAL, .fwhm = 1, .lam_over_diam = 1, .obscuration = 1};
    CHECK_OK(check_arg_error(ds_psf_render(&o, 16, img), "obscuration 1 must be in [0, 1)", msg_, cap_));
    o.obscuration = -0.1;
    CHECK_OK(check_arg_error(ds_psf_render(&o, 16, img), "obscuration -0.1", msg_, cap_));
    o.obscuration = 0, o.lam_over_diam = 0.1;
    CHECK_OK(check_arg_error(ds_psf_render(&o, 16, img), "lambda/D 0.1 must be in [0.25", msg_, cap_));
    o.lam_over_diam = 0, o.fwhm = 0;
    CHECK_OK(check_arg_error(ds_psf_render(&o, 16, img), "without diffraction", msg_, cap_));
    o.lam_over_diam = 1, o.fwhm = -1;
    CHECK_OK(check_arg_error(ds_psf_render(&o, 16, img), "Kolmogorov) FWHM -1", msg_, cap_));
    ds_psf m = {.kind = DS_PSF_MOFFAT, .fwhm = 2, .beta = 3, .lam_over_diam = 1};
    CHECK_OK(check_arg_error(ds_psf_render(&m, 16, img), "for the optical PSF only", msg_, cap_));
    ds_psf n = {.kind = DS_PSF_NONE, .e1 = 0.1};
    CHECK_OK(check_arg_error(ds_galaxy_render(&g, &n, 16, img), "needs a PSF", msg_, cap_));
    /* the simulator's ranges */
    ds_tensor *x = NULL, *t = NULL;
    ds_sim_opts s = psf_opts(DS_PSF_MOFFAT);
    s.psf_e_max = 1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "psf_e_max 1 must be in [0, 1)", msg_, cap_));
    s = psf_opts(DS_PSF_MOFFAT), s.psf_beta_min = 0.5, s.psf_beta_max = 3;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "Moffat beta range [0.5, 3]", msg_, cap_));
    s = psf_opts(DS_PSF_OPTICAL), s.psf_lod_min = 2, s.psf_lod_max = 1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "lambda/D range [2, 1]", msg_, cap_));
    s = psf_opts(DS_PSF_OPTICAL), s.psf_lod_min = 0.1, s.psf_lod_max = 1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "lambda/D 0.1", msg_, cap_));
    s = psf_opts(DS_PSF_NONE), s.psf_e_max = 0.1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "needs a PSF", msg_, cap_));
    const int C = col("psf_obsc") + 1;   /* a params table's widest: the drawn columns */
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){23, C});
    for (int k = 0; k < 23 * C; k++)
        ds_tensor_data(par)[k] = NAN;
    ds_tensor_data(par)[7 * C + col("psf_beta")] = 3;
    s = psf_opts(DS_PSF_GAUSSIAN), s.params = par;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "galaxy 7: psf_beta = 3", msg_, cap_));
    ds_tensor_data(par)[7 * C + col("psf_beta")] = NAN;
    ds_tensor_data(par)[9 * C + col("psf_e1")] = 1.5;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "galaxy 9: PSF ellipticity", msg_, cap_));
    ds_tensor_free(par);
    par = ds_tensor_create(2, (int64_t[]){23, 8});
    s.params = par;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&s, &x, &t), "expected [23, 9 to", msg_, cap_));
    ds_tensor_free(par);
    /* PSF images of a table: its shape, its rows */
    par = ds_tensor_create(2, (int64_t[]){3, 9});
    s = psf_opts(DS_PSF_GAUSSIAN);
    CHECK_OK(check_arg_error(ds_sim_psf_images(&s, par, &x), "truth table is [3, 9]", msg_, cap_));
    ds_tensor_free(par);
    par = ds_tensor_create(2, (int64_t[]){3, ncols()});   /* zeros: psf_fwhm 0 */
    CHECK_OK(check_arg_error(ds_sim_psf_images(&s, par, &x), "galaxy 0: PSF FWHM 0", msg_, cap_));
    CHECK(x == NULL);
    ds_tensor_free(par);
    return TEST_PASS;
}

/* ---- the command line ---- */

/* The PSF cube written by --psf-out against the library's images of the truth written. */
static int check_cube(const char *cube, const char *truth, ds_psf_kind kind, double obsc,
                      char *msg_, size_t cap_)
{
    ds_tensor *p, *t, *q;
    CHECK(ds_array_load(cube, NULL, &p) == DS_OK);
    CHECK(ds_array_load(truth, NULL, &t) == DS_OK);
    const int64_t *sh = ds_tensor_shape(p);
    CHECK(ds_tensor_ndim(p) == 3 && sh[0] == 6 && sh[1] == 20 && sh[2] == 20);
    ds_sim_opts o = {0};
    o.size = 20, o.psf.kind = kind, o.psf.obscuration = obsc;
    CHECK(ds_sim_psf_images(&o, t, &q) == DS_OK);
    CHECK(!memcmp(ds_tensor_data(p), ds_tensor_data(q), sizeof(float) * 6 * 400));
    ds_tensor_free(p);
    ds_tensor_free(t);
    ds_tensor_free(q);
    return 0;
}

TEST(psf_cli)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[] = "/tmp/deepsky_psf_XXXXXX", args[2048], p1[256], p2[256], p3[256];
    CHECK(mkdtemp(dir));
    snprintf(p1, sizeof p1, "%s/img.npy", dir);
    snprintf(p2, sizeof p2, "%s/truth.csv", dir);
    snprintf(p3, sizeof p3, "%s/psf.npy", dir);
    snprintf(args, sizeof args, "sim galaxies --count 6 --size 20 --seed 2 --psf moffat "
             "--psf-fwhm 1.5:3.5 --psf-beta 2.5:5 --psf-e 0.1 -o %s --truth %s --psf-out %s",
             p1, p2, p3);
    int rc = cli_run("%s", args);
    if (rc)
        FAIL("exit %d: %s", rc, cli_out);
    CHECK_OK(check_cube(p3, p2, DS_PSF_MOFFAT, 0, msg_, cap_));
    char *names = ds_table_columns(p2, NULL);
    CHECK(names && strstr(names, "psf_beta") && strstr(names, "psf_e2") && strstr(names, "psf_obsc"));
    free(names);
    snprintf(args, sizeof args, "sim galaxies --count 6 --size 20 --psf optical --psf-fwhm 0:1 "
             "--psf-lod 1:2 --psf-obscuration 0.3 --psf-e 0.05,-0.02 -o %s --truth %s "
             "--psf-out %s", p1, p2, p3);
    rc = cli_run("%s", args);
    if (rc)
        FAIL("exit %d: %s", rc, cli_out);
    CHECK_OK(check_cube(p3, p2, DS_PSF_OPTICAL, 0.3, msg_, cap_));
    /* usage errors */
    const char *bad[][2] = {
        {"--psf optical", "--psf optical needs --psf-lod L"},
        {"--psf-e 1", "option '--psf-e': '1' is not E in [0, 1)"},
        {"--psf-e 0.6,0.8", "'0.6,0.8' is not E in [0, 1) or E1,E2 with |e| < 1"},
        {"--psf optical --psf-lod 1 --psf-obscuration 1", "option '--psf-obscuration'"},
        {"--psf-beta 3", "option '--psf-beta' is for --psf moffat only"},
        {"--psf moffat --psf-beta 3 --beta 3", "are the same: give one"},
        {"--psf-lod 1", "are for --psf optical only"},
        {"--psf none --psf-e 0.1", "option '--psf-e' needs a PSF"},
        {"--psf-fwhm 0", "option '--psf-fwhm': must be > 0"},
        {"--psf optical --psf-lod 0.1", "lambda/D 0.1 must be in [0.25, 1000]"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(args, sizeof args, "sim galaxies --count 2 --size 16 %s -o %s --truth %s",
                 bad[k][0], p1, p2);
        int want = strstr(bad[k][1], "0.1 must") ? 1 : 2;
        CHECK_OK(cli_expect(cli_run("%s", args), want, bad[k][1], msg_, cap_));
    }
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    CHECK(system(args) == 0);
    return TEST_PASS;
}
