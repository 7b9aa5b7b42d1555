/* test_moments.c - adaptive moments and PSF-corrected shapes (src/astro/moments.c,
 * regauss.c) on analytic images rendered here, and against GalSim's HSM (fixture hsm). */
#include "test.h"

#include <stdbool.h>
#include <time.h>

/* ---- analytic images ---- */

/* Covariance of a round Gaussian of width sigma sheared to eps = (e1, e2), area preserved:
 * semi-axes sigma / sqrt(q), sigma sqrt(q) along phi = atan2(e2, e1) / 2. */
static void shape_cov(double sigma, double e1, double e2, double c[3])
{
    double e = hypot(e1, e2), q = (1 - e) / (1 + e), phi = 0.5 * atan2(e2, e1);
    double a2 = sigma * sigma / q, b2 = sigma * sigma * q, cs = cos(phi), sn = sin(phi);
    c[0] = a2 * cs * cs + b2 * sn * sn;
    c[1] = (a2 - b2) * cs * sn;
    c[2] = a2 * sn * sn + b2 * cs * cs;
}

/* eps of a covariance: distortion (Cxx - Cyy, 2 Cxy) / T, then eps = e / (1 + sqrt(1 - e^2)). */
static void cov_eps(double cxx, double cxy, double cyy, double *g1, double *g2)
{
    double t = cxx + cyy, e1 = (cxx - cyy) / t, e2 = 2 * cxy / t;
    double f = 1 / (1 + sqrt(1 - e1 * e1 - e2 * e2));
    *g1 = e1 * f;
    *g2 = e2 * f;
}

static void eps_to_distortion(double g1, double g2, double *e1, double *e2)
{
    double f = 2 / (1 + g1 * g1 + g2 * g2);
    *e1 = g1 * f;
    *e2 = g2 * f;
}

/* P(a < Z < b) for standard normal Z, without cancellation in either tail. */
static double normal_mass(double a, double b)
{
    const double r = 1 / sqrt(2.0);
    return a > 0 ? 0.5 * (erfc(a * r) - erfc(b * r)) : 0.5 * (erfc(-b * r) - erfc(-a * r));
}

/* A Gaussian of covariance c and flux at (x0, y0), integrated over each pixel: exactly in x
 * (erf of the conditional distribution given y), 8-point Gauss-Legendre in y. */
static void render_gauss(float *img, int n, const double c[3], double x0, double y0,
                         double flux)
{
    static const double gx[4] = {0.1834346424956498, 0.5255324099163290, 0.7966664774136267,
                                 0.9602898564975363};
    static const double gw[4] = {0.3626837833783620, 0.3137066458778873, 0.2223810344533745,
                                 0.1012285362903763};
    double sy = sqrt(c[2]), slope = c[1] / c[2], sx = sqrt(c[0] - c[1] * c[1] / c[2]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = 0;
            for (int k = 0; k < 8; k++) {
                double t = (k < 4 ? -gx[k] : gx[k - 4]) * 0.5, w = gw[k & 3] * 0.5;
                double y = i + t, dy = (y - y0) / sy;
                double py = exp(-0.5 * dy * dy) / (sqrt(2 * M_PI) * sy);
                double m = x0 + slope * (y - y0);
                v += w * py * normal_mass((j - 0.5 - m) / sx, (j + 0.5 - m) / sx);
            }
            img[i * n + j] = (float)(flux * v);
        }
}

/* An elliptical exponential (Sersic n = 1, half-light radius hlr before shearing to eps)
 * at (x0, y0), convolved with a round Gaussian PSF of width psf_sigma (0: none) and
 * integrated over pixels: sampled at os x os sub-pixel centres, convolved with the sampled
 * Gaussian (separable, direct), summed per pixel. Unit central surface brightness. */
static int render_exp(float *img, int n, double hlr, double e1, double e2, double x0,
                      double y0, double psf_sigma, int os)
{
    const double b1 = 1.678346990016661;   /* gamma(2, b) = 1/2 */
    double e = hypot(e1, e2), q = (1 - e) / (1 + e), phi = 0.5 * atan2(e2, e1);
    double cs = cos(phi), sn = sin(phi), h = 1.0 / os;
    int pad = psf_sigma > 0 ? (int)ceil(6 * psf_sigma * os) : 0;
    int m = n * os, w = m + 2 * pad;
    double *g = malloc(sizeof *g * w * w), *a = malloc(sizeof *a * w * m);
    double *k = malloc(sizeof *k * (2 * pad + 1));
    if (!g || !a || !k) {
        free(g), free(a), free(k);
        return 1;
    }
    for (int r = 0; r < w; r++)
        for (int s = 0; s < w; s++) {
            double dx = (s - pad + 0.5) * h - 0.5 - x0, dy = (r - pad + 0.5) * h - 0.5 - y0;
            double u = cs * dx + sn * dy, v = -sn * dx + cs * dy;
            g[r * w + s] = exp(-b1 * sqrt(q * u * u + v * v / q) / hlr);
        }
    double ks = 0;
    for (int t = -pad; t <= pad; t++) {
        double z = psf_sigma > 0 ? t * h / psf_sigma : 0;
        ks += k[t + pad] = exp(-0.5 * z * z);
    }
    for (int t = 0; t <= 2 * pad; t++)
        k[t] /= ks;
    for (int r = 0; r < w; r++)          /* along x: a[r][s], s in the stamp */
        for (int s = 0; s < m; s++) {
            double acc = 0;
            for (int t = 0; t <= 2 * pad; t++)
                acc += k[t] * g[r * w + s + t];
            a[r * m + s] = acc;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int r = i * os; r < (i + 1) * os; r++)
                for (int s = j * os; s < (j + 1) * os; s++)
                    for (int t = 0; t <= 2 * pad; t++)
                        acc += k[t] * a[(r + t) * m + s];
            img[i * n + j] = (float)(acc * h * h);
        }
    free(g), free(a), free(k);
    return 0;
}

static const double FWHM_TO_SIGMA = 0.42466090014400953;   /* 1 / (2 sqrt(2 ln 2)) */

/* ---- adaptive moments ---- */

/* A pixel-integrated Gaussian of covariance C has adaptive moments close to C + I/12: the
 * pixel is a box of variance 1/12 per axis. Close, not equal: the box is not Gaussian (its
 * anisotropic kurtosis) and a narrow minor axis is undersampled (aliasing, depending on the
 * sub-pixel phase): eps moves by <= 2e-4 at sigma = 2 px, up to 1.4e-3 at 1.5 px and 4e-3
 * at 1.2 px, so the sizes here start at 2 px. */
TEST(moments_recover_gaussians)
{
    const int n = 48;
    static float img[48 * 48];
    static const double shapes[][2] = {{0, 0}, {0.3, 0}, {0, -0.3}, {0.2, 0.35}, {-0.45, 0.1},
                                       {0.05, -0.6}};
    static const double sigmas[] = {2.0, 2.75, 3.5};
    static const double offs[][2] = {{0, 0}, {0.3, -0.45}, {-1.7, 2.2}};
    double worst = 0, worst_nopix = 0;
    int cases = 0;
    for (size_t a = 0; a < sizeof shapes / sizeof shapes[0]; a++)
        for (size_t b = 0; b < sizeof sigmas / sizeof sigmas[0]; b++)
            for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
                double c[3], x0 = 0.5 * (n - 1) + offs[o][0], y0 = 0.5 * (n - 1) + offs[o][1];
                shape_cov(sigmas[b], shapes[a][0], shapes[a][1], c);
                render_gauss(img, n, c, x0, y0, 3.0);
                ds_moments mo;
                CHECK(ds_adaptive_moments(img, n, b & 1 ? 0.0 : 2.5, &mo) == DS_OK);
                if (mo.flag)
                    FAIL("sigma %g eps (%g, %g): flag %s", sigmas[b], shapes[a][0],
                         shapes[a][1], ds_moments_flag_name(mo.flag));
                double t1, t2, g1, g2, u1, u2;
                cov_eps(c[0] + 1 / 12.0, c[1], c[2] + 1 / 12.0, &t1, &t2);
                cov_eps(mo.mxx, mo.mxy, mo.myy, &g1, &g2);
                cov_eps(c[0], c[1], c[2], &u1, &u2);
                double err = fmax(fabs(g1 - t1), fabs(g2 - t2));
                worst = fmax(worst, err);
                worst_nopix = fmax(worst_nopix, fmax(fabs(g1 - u1), fabs(g2 - u2)));
                if (err > 1e-3)
                    FAIL("sigma %g eps (%g, %g) off (%g, %g): eps (%.6f, %.6f), want "
                         "(%.6f, %.6f)", sigmas[b], shapes[a][0], shapes[a][1], offs[o][0],
                         offs[o][1], g1, g2, t1, t2);
                CHECK_NEAR(mo.x0, x0, 1e-3);
                CHECK_NEAR(mo.y0, y0, 1e-3);
                CHECK_NEAR(mo.mxx, c[0] + 1 / 12.0, 3e-3 * (c[0] + c[2]));
                CHECK_NEAR(mo.myy, c[2] + 1 / 12.0, 3e-3 * (c[0] + c[2]));
                CHECK_NEAR(mo.flux, 3.0, 3e-3);
                CHECK_NEAR(mo.rho4, 2.0, 1e-2);
                CHECK_NEAR(mo.sigma, pow(mo.mxx * mo.myy - mo.mxy * mo.mxy, 0.25), 1e-12);
                CHECK_NEAR(mo.e1, (mo.mxx - mo.myy) / (mo.mxx + mo.myy), 1e-12);
                CHECK(mo.iterations > 0 && mo.iterations <= 400);
                cases++;
            }
    /* the pixel term matters: without it the truth is wrong by more than the tolerance */
    CHECK(worst_nopix > 1e-2);
    snprintf(msg_, cap_, "%d cases, max |eps - eps(C + I/12)| = %.1e (%.1e ignoring the pixel)",
             cases, worst, worst_nopix);
    return TEST_PASS;
}

/* Rotates a square image by a quarter turn: out(x, y) = in(n - 1 - y, x). */
static void quarter_turn(const float *in, float *out, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[i * n + j] = in[j * n + (n - 1 - i)];
}

static void transpose(const float *in, float *out, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[i * n + j] = in[j * n + i];
}

TEST(moments_conventions)
{
    const int n = 32;
    float img[32 * 32], rot[32 * 32];
    double c[3];
    ds_moments a, b;
    /* elongated along x */
    shape_cov(2.0, 0.3, 0, c);
    render_gauss(img, n, c, 15.5, 15.5, 1);
    CHECK(ds_adaptive_moments(img, n, 0, &a) == DS_OK && !a.flag);
    CHECK(a.e1 > 0.3 && fabs(a.e2) < 1e-7 && a.mxx > a.myy);
    /* phi = 45 degrees: along x = y */
    shape_cov(2.0, 0, 0.3, c);
    CHECK(c[1] > 0);
    render_gauss(img, n, c, 15.5, 15.5, 1);
    CHECK(ds_adaptive_moments(img, n, 0, &a) == DS_OK && !a.flag);
    CHECK(a.e2 > 0.3 && fabs(a.e1) < 1e-7);
    /* a quarter turn flips both components (2 phi moves by 180 degrees); the transpose
     * (x <-> y) flips e1 only; an off-centre exponential, so nothing is symmetric */
    CHECK(!render_exp(img, n, 2.5, 0.25, -0.15, 16.3, 14.8, 0, 5));
    CHECK(ds_adaptive_moments(img, n, 3.0, &a) == DS_OK && !a.flag);
    quarter_turn(img, rot, n);
    CHECK(ds_adaptive_moments(rot, n, 3.0, &b) == DS_OK && !b.flag);
    CHECK_NEAR(b.e1, -a.e1, 1e-7);
    CHECK_NEAR(b.e2, -a.e2, 1e-7);
    CHECK_NEAR(b.sigma, a.sigma, 1e-7);
    CHECK_NEAR(b.x0, a.y0, 1e-6);          /* (x, y) -> (y, n - 1 - x) */
    CHECK_NEAR(b.y0, n - 1 - a.x0, 1e-6);
    transpose(img, rot, n);
    CHECK(ds_adaptive_moments(rot, n, 3.0, &b) == DS_OK && !b.flag);
    CHECK_NEAR(b.e1, -a.e1, 1e-7);
    CHECK_NEAR(b.e2, a.e2, 1e-7);
    /* a sheared exponential's adaptive moments have its shape exactly (no PSF): eps within
     * the sampling error of the renderer */
    double g1, g2;
    cov_eps(a.mxx - 1 / 12.0, a.mxy, a.myy - 1 / 12.0, &g1, &g2);
    CHECK_NEAR(g1, 0.25, 5e-3);
    CHECK_NEAR(g2, -0.15, 5e-3);
    return TEST_PASS;
}

/* ---- PSF correction ---- */

/* Gaussian galaxy * Gaussian PSF, both pixel-integrated. The PSF image of FWHM 2 px
 * (sigma 0.85 px) is itself not Gaussian (the box again): its adaptive moments are ~2% below
 * Cp + I/12, which LINEAR carries into e (up to 4e-3 for the smallest galaxy here) and
 * REGAUSS models away. At FWHM 3 px both are within 1e-3. */
TEST(shear_gaussian_galaxy_gaussian_psf)
{
    const int n = 32;
    float gal[32 * 32], psf[32 * 32];
    static const double cases[][5] = {   /* sigma, eps1, eps2, dx, dy */
        {2.0, 0.2, 0.1, 0, 0}, {2.5, -0.4, 0.3, 0.3, -0.2}, {1.6, 0.05, -0.5, -0.4, 0.1},
        {3.0, 0, 0, 0.5, 0.5}, {1.2, 0.3, 0.3, 0, 0},
    };
    static const double fwhm[2] = {2.0, 3.0};
    double worst[2][2] = {{0, 0}, {0, 0}};
    for (int p = 0; p < 2; p++) {
        double cp[3];
        ds_moments pm;
        shape_cov(fwhm[p] * FWHM_TO_SIGMA, 0, 0, cp);
        render_gauss(psf, n, cp, 15.5, 15.5, 1);
        CHECK(ds_adaptive_moments(psf, n, 0, &pm) == DS_OK && !pm.flag);
        double tp = pm.mxx + pm.myy;
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            const double *cs = cases[k];
            double cg[3], c[3];
            shape_cov(cs[0], cs[1], cs[2], cg);
            for (int t = 0; t < 3; t++)
                c[t] = cg[t] + cp[t];
            render_gauss(gal, n, c, 15.5 + cs[3], 15.5 + cs[4], 50.0);
            for (int meth = 0; meth < 2; meth++) {
                ds_shear s;
                CHECK(ds_shear_estimate(gal, psf, n, 0.0, (ds_shear_method)meth, &s) == DS_OK);
                if (s.flag)
                    FAIL("case %zu method %d: flag %s", k, meth, ds_moments_flag_name(s.flag));
                double err = fmax(fabs(s.e1 - cs[1]), fabs(s.e2 - cs[2]));
                double tol = meth == DS_SHEAR_LINEAR && p == 0 ? 5e-3 : 1e-3;
                worst[p][meth] = fmax(worst[p][meth], err);
                if (err > tol)
                    FAIL("case %zu PSF FWHM %g %s: eps (%.5f, %.5f), want (%g, %g)", k, fwhm[p],
                         meth ? "LINEAR" : "REGAUSS", s.e1, s.e2, cs[1], cs[2]);
                /* R2 = 1 - Tpsf / Tgal: LINEAR's galaxy is the observed image (~ C + I/12);
                 * REGAUSS's is the galaxy seen through the PSF's Gaussian fit */
                double tg = meth == DS_SHEAR_LINEAR ? c[0] + c[2] + 1 / 6.0 : cg[0] + cg[2] + tp;
                CHECK_NEAR(s.resolution, 1 - tp / tg, 1e-3);
            }
        }
    }
    snprintf(msg_, cap_, "max |eps error|, PSF FWHM 2 px: REGAUSS %.1e, LINEAR %.1e; 3 px: "
             "REGAUSS %.1e, LINEAR %.1e", worst[0][0], worst[0][1], worst[1][0], worst[1][1]);
    return TEST_PASS;
}

/* An exponential galaxy through a Gaussian PSF of FWHM 2 px: subtracting the PSF's moments
 * under-corrects (the notes measured m ~ -0.04 for n < 1.5); re-Gaussianization should be
 * much closer. m from e_meas = (1 + m) e_true, least squares over a ring of shapes. */
TEST(shear_exponential_bias)
{
    const int n = 40;
    float *gal = malloc(sizeof *gal * n * n), *psf = malloc(sizeof *psf * n * n);
    CHECK(gal && psf);
    double ps = 2.0 * FWHM_TO_SIGMA, cp[3];
    shape_cov(ps, 0, 0, cp);
    render_gauss(psf, n, cp, 0.5 * (n - 1), 0.5 * (n - 1), 1);
    static const double mags[] = {0.1, 0.3, 0.5};
    double num[2] = {0, 0}, den = 0, minres = 1;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double ang = (20 + 120 * b) * M_PI / 180, e1 = mags[a] * cos(ang),
                   e2 = mags[a] * sin(ang);
            if (render_exp(gal, n, 2.0, e1, e2, 0.5 * (n - 1) + 0.2, 0.5 * (n - 1) - 0.3, ps,
                           7))
                FAIL("no memory");
            for (int meth = 0; meth < 2; meth++) {
                ds_shear s;
                CHECK(ds_shear_estimate(gal, psf, n, 0.0, (ds_shear_method)meth, &s) == DS_OK);
                if (s.flag)
                    FAIL("eps (%g, %g) method %d: %s", e1, e2, meth,
                         ds_moments_flag_name(s.flag));
                num[meth] += s.e1 * e1 + s.e2 * e2;
                minres = fmin(minres, s.resolution);
            }
            den += e1 * e1 + e2 * e2;
        }
    free(gal);
    free(psf);
    double m_rg = num[0] / den - 1, m_lin = num[1] / den - 1;
    snprintf(msg_, cap_, "n=1 hlr 2 px, PSF FWHM 2 px (R2 >= %.2f): m REGAUSS %+.4f, LINEAR "
             "%+.4f", minres, m_rg, m_lin);
    CHECK(m_lin < -0.02);
    CHECK(fabs(m_rg) < 0.25 * fabs(m_lin));
    CHECK(fabs(m_rg) < 0.01);
    return TEST_PASS;
}

/* ---- failures ---- */

TEST(moments_failure_flags)
{
    const int n = 32;
    float img[32 * 32] = {0}, psf[32 * 32];
    double cp[3];
    shape_cov(0.85, 0, 0, cp);
    render_gauss(psf, n, cp, 15.5, 15.5, 1);
    ds_moments mo;
    ds_shear s;
    /* empty stamp */
    CHECK(ds_adaptive_moments(img, n, 0, &mo) == DS_OK && mo.flag == DS_MOM_NO_FLUX);
    CHECK(isnan(mo.e1) && isnan(mo.sigma));
    CHECK(ds_adaptive_moments(img, n, 3, &mo) == DS_OK && mo.flag == DS_MOM_NO_FLUX);
    for (int meth = 0; meth < 2; meth++) {
        CHECK(ds_shear_estimate(img, psf, n, 1, (ds_shear_method)meth, &s) == DS_OK);
        CHECK(s.flag == (DS_SHEAR_FAIL_GAL | DS_MOM_NO_FLUX) && isnan(s.e1));
        CHECK(ds_shear_estimate(psf, img, n, 1, (ds_shear_method)meth, &s) == DS_OK);
        CHECK(s.flag == (DS_SHEAR_FAIL_PSF | DS_MOM_NO_FLUX));
    }
    /* NaN and infinity */
    render_gauss(img, n, cp, 15.5, 15.5, 1);
    img[100] = NAN;
    CHECK(ds_adaptive_moments(img, n, 0, &mo) == DS_OK && mo.flag == DS_MOM_NONFINITE);
    CHECK(ds_shear_estimate(img, psf, n, 1, DS_SHEAR_REGAUSS, &s) == DS_OK);
    CHECK(s.flag == (DS_SHEAR_FAIL_GAL | DS_MOM_NONFINITE));
    img[100] = INFINITY;
    CHECK(ds_shear_estimate(psf, img, n, 1, DS_SHEAR_LINEAR, &s) == DS_OK);
    CHECK(s.flag == (DS_SHEAR_FAIL_PSF | DS_MOM_NONFINITE));
    /* pure noise: no crash, and a result is either flagged or finite */
    ds_rng r;
    ds_rng_seed(&r, 11);
    int flagged = 0, tries = 40;
    for (int t = 0; t < tries; t++) {
        for (int i = 0; i < n * n; i++)
            img[i] = (float)ds_rng_normal(&r);
        CHECK(ds_adaptive_moments(img, n, t & 1 ? 0 : 3, &mo) == DS_OK);
        CHECK(mo.flag || (isfinite(mo.e1) && mo.e1 * mo.e1 + mo.e2 * mo.e2 < 1));
        CHECK(ds_shear_estimate(img, psf, n, 1, (ds_shear_method)(t & 1), &s) == DS_OK);
        CHECK(s.flag || (isfinite(s.e1) && s.e1 * s.e1 + s.e2 * s.e2 < 1 && s.resolution > 0));
        flagged += s.flag != 0;
    }
    /* a point source (smaller than the PSF) is unresolved for LINEAR */
    memset(img, 0, sizeof img);
    img[15 * n + 15] = 1;
    CHECK(ds_shear_estimate(img, psf, n, 0, DS_SHEAR_LINEAR, &s) == DS_OK && s.flag);
    /* tiny stamps and arguments */
    float one = 1;
    CHECK(ds_adaptive_moments(&one, 1, 0, &mo) == DS_OK && mo.flag == DS_MOM_FEW_PIXELS);
    CHECK(ds_adaptive_moments(NULL, n, 0, &mo) == DS_ERR_ARG);
    CHECK(ds_adaptive_moments(psf, 0, 0, &mo) == DS_ERR_ARG && strstr(ds_last_error(), "size"));
    CHECK(ds_adaptive_moments(psf, n, NAN, &mo) == DS_ERR_ARG);
    CHECK(ds_adaptive_moments(psf, n, 0, NULL) == DS_ERR_ARG);
    CHECK(ds_shear_estimate(psf, NULL, n, 0, DS_SHEAR_REGAUSS, &s) == DS_ERR_ARG);
    CHECK(ds_shear_estimate(psf, psf, n, -1, DS_SHEAR_REGAUSS, &s) == DS_ERR_ARG);
    CHECK(ds_shear_estimate(psf, psf, n, 0, (ds_shear_method)7, &s) == DS_ERR_ARG &&
          strstr(ds_last_error(), "method"));
    /* names */
    CHECK(!strcmp(ds_moments_flag_name(0), "ok"));
    for (int f = 0; f < 0x60; f++)
        CHECK(ds_moments_flag_name(f) && *ds_moments_flag_name(f));
    CHECK(!strcmp(ds_moments_flag_name(-3), "unknown flag"));
    snprintf(msg_, cap_, "pure noise: %d of %d shear measurements flagged", flagged, tries);
    return TEST_PASS;
}

/* ---- GalSim ---- */

static const char *const HSM_CASES[] = {"gauss_round", "gauss_ell", "exp_ell", "exp_small",
                                        "sersic4", "sersic2_moffat", "exp_psf_ell", "exp_noisy"};

static const float *fx_get(const ds_tensor_set *fx, const char *c, const char *what,
                           int64_t want, char *msg, size_t cap)
{
    char key[96];
    int64_t got = 0;
    snprintf(key, sizeof key, "%s.%s", c, what);
    const float *p = fixture_data(fx, key, &got, msg, cap);
    if (p && got != want) {
        snprintf(msg, cap, "%s: %lld values, expected %lld", key, (long long)got,
                 (long long)want);
        return NULL;
    }
    return p;
}

/* FindAdaptiveMom: centroid, sigma, e1, e2, rho4, flux; EstimateShear(REGAUSS): e, R2. */
TEST(moments_match_galsim)
{
    ds_tensor_set *fx = fixture_load("hsm", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    double worst_mom = 0, worst_e = 0, worst_rg = 0, worst_r = 0;
    int rc = TEST_PASS;
    for (size_t k = 0; k < sizeof HSM_CASES / sizeof HSM_CASES[0] && rc == TEST_PASS; k++) {
        const char *c = HSM_CASES[k];
        const float *gal = fx_get(fx, c, "gal", 1024, msg_, cap_);
        const float *psf = fx_get(fx, c, "psf", 1024, msg_, cap_);
        const float *mom = fx_get(fx, c, "mom", 7, msg_, cap_);
        const float *pmom = fx_get(fx, c, "psfmom", 7, msg_, cap_);
        const float *rg = fx_get(fx, c, "regauss", 3, msg_, cap_);
        if (!gal || !psf || !mom || !pmom || !rg) {
            rc = TEST_FAIL;
            break;
        }
        for (int w = 0; w < 2 && rc == TEST_PASS; w++) {
            ds_moments mo;
            const float *ref = w ? pmom : mom;
            if (ds_adaptive_moments(w ? psf : gal, 32, 5.0, &mo) != DS_OK || mo.flag) {
                snprintf(msg_, cap_, "%s: moments failed (%s)", c, ds_moments_flag_name(mo.flag));
                rc = TEST_FAIL;
                break;
            }
            double got[7] = {mo.x0, mo.y0, mo.sigma, mo.e1, mo.e2, mo.rho4, mo.flux};
            /* limits: e1, e2 to 1e-7 (absolute); the centroid to 2e-6 px; sigma, rho4 and
             * the flux to 2e-6 relative. The fixtures are float32 (about 3e-8 on e). */
            for (int t = 0; t < 7; t++) {
                bool is_e = t == 3 || t == 4;
                double err = fabs(got[t] - ref[t]) / (t <= 1 || is_e ? 1 : fabs(ref[t]));
                if (is_e)
                    worst_e = fmax(worst_e, err);
                else
                    worst_mom = fmax(worst_mom, err);
                if (err > (is_e ? 1e-7 : 2e-6)) {
                    snprintf(msg_, cap_, "%s %s: value %d = %.8g, GalSim %.8g", c,
                             w ? "psf" : "gal", t, got[t], ref[t]);
                    rc = TEST_FAIL;
                    break;
                }
            }
        }
        if (rc != TEST_PASS)
            break;
        ds_shear s;
        if (ds_shear_estimate(gal, psf, 32, 0.0, DS_SHEAR_REGAUSS, &s) != DS_OK || s.flag) {
            snprintf(msg_, cap_, "%s: REGAUSS failed (%s)", c, ds_moments_flag_name(s.flag));
            rc = TEST_FAIL;
            break;
        }
        double e1, e2;
        eps_to_distortion(s.e1, s.e2, &e1, &e2);
        double err = fmax(fabs(e1 - rg[0]), fabs(e2 - rg[1]));
        worst_rg = fmax(worst_rg, err);
        worst_r = fmax(worst_r, fabs(s.resolution - rg[2]));
        if (err > 1e-7 || fabs(s.resolution - rg[2]) > 1e-7) {
            snprintf(msg_, cap_, "%s REGAUSS: e (%.7f, %.7f) R2 %.7f, GalSim (%.7f, %.7f) %.7f",
                     c, e1, e2, s.resolution, rg[0], rg[1], rg[2]);
            rc = TEST_FAIL;
        }
    }
    ds_tensor_set_free(fx);
    if (rc == TEST_PASS)
        snprintf(msg_, cap_, "8 stamps: moments e max err %.1e (limit 1e-7), the others %.1e "
                 "(2e-6); REGAUSS e %.1e, R2 %.1e (1e-7)", worst_e, worst_mom, worst_rg, worst_r);
    return rc;
}

/* Not a check: stamps per second on this build (sanitizers in test builds). */
TEST(moments_speed)
{
    const int n = 32;
    float gal[32 * 32], psf[32 * 32];
    double cp[3];
    shape_cov(0.85, 0, 0, cp);
    render_gauss(psf, n, cp, 15.5, 15.5, 1);
    CHECK(!render_exp(gal, n, 2.5, 0.2, -0.3, 15.7, 15.2, 0.85, 3));
    double rate[3];
    for (int k = 0; k < 3; k++) {
        struct timespec t0, t1;
        int reps = 0;
        double dt = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            ds_moments mo;
            ds_shear s;
            if (k == 0)
                CHECK(ds_adaptive_moments(gal, n, 0, &mo) == DS_OK && !mo.flag);
            else
                CHECK(ds_shear_estimate(gal, psf, n, 0, (ds_shear_method)(k - 1), &s) ==
                          DS_OK && !s.flag);
            reps++;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        } while (dt < 0.1);
        rate[k] = reps / dt;
    }
    snprintf(msg_, cap_, "32x32 stamps/s: moments %.0f, REGAUSS %.0f, LINEAR %.0f", rate[0],
             rate[1], rate[2]);
    return TEST_PASS;
}
