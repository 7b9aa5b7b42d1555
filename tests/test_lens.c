/* test_lens.c - strong lensing (src/astro/lens.c): the SIE's deflection is the gradient of a
 * potential whose Laplacian is twice its convergence, the SIS maps a point source at the
 * origin to a ring of radius theta_e and magnifies a small offset source by 2 theta_e / beta,
 * the same render at 1 and 2 threads, bad lenses named. */
#include "test.h"

#include <math.h>

/* div alpha = 2 kappa and curl alpha = 0, by central differences at points around an SIE
 * (q 0.6, turned by 0.4 rad, off centre) with external shear, which adds neither. */
TEST(lens_sie_divergence_is_twice_kappa)
{
    ds_lens l = {.theta_e = 5, .q = 0.6, .phi = 0.4, .dx = 0.7, .dy = -0.3, .gamma1 = 0.05,
                 .gamma2 = -0.03};
    const double h = 1e-4, pts[][2] = {{3, 1}, {-2, 4}, {0.5, -6}, {-7, -2}, {1, 0.2}};
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++) {
        double x[4] = {pts[i][0] + h, pts[i][0] - h, pts[i][0], pts[i][0]};
        double y[4] = {pts[i][1], pts[i][1], pts[i][1] + h, pts[i][1] - h};
        double ax[4], ay[4];
        CHECK_OK(ds_lens_deflect(&l, 4, x, y, ax, ay));
        double div = (ax[0] - ax[1] + ay[2] - ay[3]) / (2 * h);
        double curl = (ax[2] - ax[3] - ay[0] + ay[1]) / (2 * h);
        /* kappa in the lens frame: theta_e / (2 sqrt(q x'^2 + y'^2 / q)) */
        double u = pts[i][0] - l.dx, v = pts[i][1] - l.dy;
        double xr = cos(l.phi) * u + sin(l.phi) * v, yr = -sin(l.phi) * u + cos(l.phi) * v;
        double kappa = l.theta_e / (2 * sqrt(l.q * xr * xr + yr * yr / l.q));
        CHECK_NEAR(div, 2 * kappa, 1e-6 * (1 + kappa));
        CHECK_NEAR(curl, 0, 1e-6);
    }
    /* nearly round: the series branch joins the exact one */
    ds_lens a = {.theta_e = 4, .q = 1 - 1e-9}, b = {.theta_e = 4, .q = 0.9999};
    double x = 2.5, y = -1.5, ax, ay, bx, by;
    CHECK_OK(ds_lens_deflect(&a, 1, &x, &y, &ax, &ay));
    CHECK_OK(ds_lens_deflect(&b, 1, &x, &y, &bx, &by));
    CHECK_NEAR(ax, 4 * x / hypot(x, y), 1e-8);
    CHECK_NEAR(ay, 4 * y / hypot(x, y), 1e-8);
    CHECK_NEAR(bx, ax, 1e-3);
    CHECK_NEAR(by, ay, 1e-3);
    return TEST_PASS;
}

/* Flux-weighted mean distance of img's light from the point (ox, oy) from the stamp
 * centre. */
static double mean_radius(const float *img, int size, double ox, double oy)
{
    double s = 0, sr = 0, c = 0.5 * (size - 1);
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double f = img[i * size + j];
            s += f;
            sr += f * hypot(j - c - ox, i - c - oy);
        }
    return sr / s;
}

static double total(const float *img, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += img[i];
    return s;
}

/* An SIS of theta_e 6.3 px and a point-like source (a Gaussian of hlr 0.1 px) behind its
 * centre: a ring of radius theta_e, within 0.05 px. The ring's mean radius measured from
 * pixel centres depends on where the centre falls in its pixel (0.07 px off with the centre
 * on a pixel corner), so it is averaged over 4 x 4 sub-pixel places of the lens. Off by
 * beta = 2 px, the source's images carry 2 theta_e / beta times its flux, within 1%. */
TEST(lens_sis_ring_and_magnification)
{
    enum { S = 32 };
    static float img[S * S];
    double r = 0;
    for (int a = 0; a < 16; a++) {
        double ox = (a % 4 + 0.5) / 4 - 0.5, oy = (a / 4 + 0.5) / 4 - 0.5;
        ds_lens sis = {.theta_e = 6.3, .q = 1, .dx = ox, .dy = oy};
        ds_galaxy src = {.n = 0.5, .hlr = 0.1, .flux = 1, .dx = ox, .dy = oy};
        CHECK_OK(ds_lens_render(&sis, &src, NULL, S, 8, img));
        CHECK(total(img, S * S) > 10);   /* a ring of a point source: a large magnification */
        r += mean_radius(img, S, ox, oy) / 16;
    }
    if (fabs(r - 6.3) > 0.05)
        FAIL("ring radius %.4f px, expected 6.3 within 0.05", r);
    ds_lens sis = {.theta_e = 6.3, .q = 1};
    ds_galaxy src = {.n = 0.5, .hlr = 0.1, .flux = 1, .dx = 2};
    CHECK_OK(ds_lens_render(&sis, &src, NULL, S, 16, img));
    double mu = total(img, S * S), want = 2 * 6.3 / 2;
    if (fabs(mu / want - 1) > 0.01)
        FAIL("magnification %.4f, SIS point source %.4f (off by %.2f%%)", mu, want,
             100 * (mu / want - 1));
    snprintf(msg_, cap_, "ring radius %.4f px (6.3), magnification %.4f (%.4f)", r, mu, want);
    return TEST_PASS;
}

/* A lensed Sersic source through an SIE with shear and a Moffat PSF: the same pixels at 1 and
 * 2 threads; the PSF keeps the flux. */
TEST(lens_render_threads_and_psf)
{
    enum { S = 48 };
    static float a[S * S], b[S * S], c[S * S];
    ds_lens l = {.theta_e = 8, .q = 0.7, .phi = 1.1, .dx = 0.4, .gamma1 = 0.04, .gamma2 = 0.02};
    ds_galaxy src = {.n = 1.5, .hlr = 0.8, .flux = 100, .e1 = 0.2, .e2 = -0.1, .dx = 1.2,
                     .dy = 0.5};
    ds_psf psf = {.kind = DS_PSF_MOFFAT, .fwhm = 2.5, .beta = 3};
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_lens_render(&l, &src, &psf, S, 4, a);
    ds_set_num_threads(2);
    ds_status s2 = ds_lens_render(&l, &src, &psf, S, 4, b);
    ds_set_num_threads(threads);
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(ds_lens_render(&l, &src, NULL, S, 4, c));
    double fa = total(a, S * S), fc = total(c, S * S);
    CHECK(fc > 150);   /* magnified: the source is inside the caustic */
    CHECK_NEAR(fa / fc, 1, 0.02);   /* a Moffat's wings leave the stamp: a little */
    return TEST_PASS;
}

TEST(lens_bad_input)
{
    float img[16 * 16];
    ds_galaxy src = {.n = 1, .hlr = 1, .flux = 1};
    double x = 1, y = 1, ax, ay;
    const struct {
        ds_lens l;
        const char *text;
    } bad[] = {
        {{.theta_e = 0, .q = 1}, "Einstein radius 0 must be in (0, 1e6) pixels"},
        {{.theta_e = 2, .q = 1.5}, "axis ratio q = 1.5 must be in (0, 1]"},
        {{.theta_e = 2, .q = 0}, "axis ratio q = 0 must be in (0, 1]"},
        {{.theta_e = 2, .q = 1, .gamma1 = 0.8, .gamma2 = 0.8}, "external shear (0.8, 0.8) must "
                                                               "have |gamma| < 1"},
        {{.theta_e = 2, .q = 1, .dx = NAN}, "angle 0 and centre (nan, 0) must be finite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(ds_lens_render(&bad[i].l, &src, NULL, 16, 2, img) == DS_ERR_ARG);
        CHECK(strstr(ds_last_error(), "ds_lens_render: ") && strstr(ds_last_error(), bad[i].text));
        CHECK(ds_lens_deflect(&bad[i].l, 1, &x, &y, &ax, &ay) == DS_ERR_ARG);
        CHECK(strstr(ds_last_error(), bad[i].text));
    }
    ds_lens ok = {.theta_e = 2, .q = 1};
    src.n = 12;
    CHECK(ds_lens_render(&ok, &src, NULL, 16, 2, img) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "ds_lens_render: Sersic index n = 12 is outside [0.3, 8]"));
    src.n = 1;
    CHECK(ds_lens_render(&ok, &src, NULL, 16, 0, img) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "oversample 0 (1..64)"));
    CHECK(ds_lens_render(&ok, &src, NULL, 16, 2, NULL) == DS_ERR_ARG);
    return TEST_PASS;
}
