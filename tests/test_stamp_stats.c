/* test_stamp_stats.c - statistics of galaxy stamps (src/astro/stamp_stats.c): the two-sample
 * KS test against scipy.stats.ks_2samp (fixture ks_2samp, tests/fixtures/gen_ks.py), and the
 * per-stamp flux, half-light radius and ellipticity on analytic elliptical Gaussians. */
#include "test.h"

static const char *const ks_cases[] = {"shift", "same", "ties", "far", "shape", "tiny"};

/* The fixture's float32 sample as doubles (malloc'd). */
static double *sample(const ds_tensor_set *fx, const char *key, int64_t *n, char *msg,
                      size_t cap)
{
    const float *v = fixture_data(fx, key, n, msg, cap);
    double *d = v ? malloc((size_t)*n * sizeof *d) : NULL;
    for (int64_t i = 0; d && i < *n; i++)
        d[i] = v[i];
    return d;
}

static double meta_num(const ds_tensor_set *fx, const char *c, const char *what)
{
    char key[64];
    snprintf(key, sizeof key, "%s.%s", c, what);
    const char *v = ds_tensor_set_meta_get(fx, key);
    return v ? strtod(v, NULL) : NAN;
}

TEST(ks_2samp_matches_scipy)
{
    ds_tensor_set *fx = fixture_load("ks_2samp", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    double worst_asymp = 0;
    for (size_t c = 0; c < sizeof ks_cases / sizeof ks_cases[0]; c++) {
        char ka[64], kb[64];
        snprintf(ka, sizeof ka, "%s.a", ks_cases[c]);
        snprintf(kb, sizeof kb, "%s.b", ks_cases[c]);
        int64_t na = 0, nb = 0;
        double *a = sample(fx, ka, &na, msg_, cap_), *b = sample(fx, kb, &nb, msg_, cap_);
        double d = NAN, p = NAN, d2 = NAN;
        ds_status st = a && b ? ds_ks_2samp(a, na, b, nb, &d, &p) : DS_ERR_ARG;
        ds_status st2 = a && b ? ds_ks_2samp(b, nb, a, na, &d2, NULL) : DS_ERR_ARG;
        free(a);
        free(b);
        double want_d = meta_num(fx, ks_cases[c], "d"), want_p = meta_num(fx, ks_cases[c],
                                                                          "p_stephens");
        double asymp = meta_num(fx, ks_cases[c], "p_asymp");
        if (st || st2 || fabs(d - want_d) > 1e-12 || d2 != d ||
            fabs(p - want_p) > 1e-12 + 1e-9 * want_p || fabs(p - asymp) > 0.01) {
            ds_tensor_set_free(fx);
            FAIL("case %s: D %.17g (swapped %.17g), p %.17g; scipy: D %.17g, Stephens p "
                 "%.17g, method='asymp' p %.17g", ks_cases[c], d, d2, p, want_d, want_p, asymp);
        }
        worst_asymp = fmax(worst_asymp, fabs(p - asymp));
    }
    ds_tensor_set_free(fx);
    snprintf(msg_, cap_, "6 cases: D to 1e-12, p to 1e-9 relative of the Stephens formula, "
             "within %.4f of scipy's method='asymp'", worst_asymp);
    return TEST_PASS;
}

TEST(ks_2samp_refuses_empty_samples_and_nan)
{
    double a[3] = {1, NAN, 2}, b[2] = {0, 1}, d, p;
    CHECK_OK(check_arg_error(ds_ks_2samp(a, 0, b, 2, &d, &p), "two non-empty samples", msg_,
                             cap_));
    CHECK_OK(check_arg_error(ds_ks_2samp(a, 3, b, 2, &d, &p), "a[1] is NaN", msg_, cap_));
    CHECK_OK(check_arg_error(ds_ks_2samp(b, 2, a, 3, &d, &p), "b[1] is NaN", msg_, cap_));
    /* identical samples: D = 0, p = 1 */
    CHECK(ds_ks_2samp(b, 2, b, 2, &d, &p) == DS_OK && d == 0 && p == 1);
    return TEST_PASS;
}

/* A point-sampled elliptical Gaussian: flux, sigma (det^(1/4) of the covariance), eps
 * along the angle phi, centred at (c, c). */
static void gauss(float *img, int n, double flux, double sigma, double eps, double phi,
                  double c)
{
    double q = (1 - eps) / (1 + eps), a2 = sigma * sigma / q, b2 = sigma * sigma * q;
    double cs = cos(phi), sn = sin(phi);
    double cxx = a2 * cs * cs + b2 * sn * sn, cxy = (a2 - b2) * cs * sn;
    double cyy = a2 * sn * sn + b2 * cs * cs, det = cxx * cyy - cxy * cxy;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double x = j - c, y = i - c;
            double r2 = (cyy * x * x - 2 * cxy * x * y + cxx * y * y) / det;
            img[i * n + j] = (float)(flux * exp(-0.5 * r2) / (2 * M_PI * sqrt(det)));
        }
}

TEST(stamp_stats_of_elliptical_gaussians)
{
    enum { N = 4, S = 32 };
    static const double flux[N] = {100, 250, 40, 1000}, sigma[N] = {2.5, 3, 2.5, 2};
    static const double eps[N] = {0, 0.2, 0.35, 0.1}, phi[N] = {0, 0.3, 1.2, -0.7};
    float *img = malloc(sizeof(float) * N * S * S);
    ds_stamp_stat st[N + 1];
    CHECK(img);
    for (int k = 0; k < N; k++)
        gauss(img + k * S * S, S, flux[k], sigma[k], eps[k], phi[k], 15.5);
    ds_status s = ds_stamp_stats(img, N, S, st);
    for (int k = 0; k < N && !s; k++) {
        double hlr = sigma[k] * sqrt(2 * log(2.0));
        if (st[k].flag || fabs(st[k].flux / flux[k] - 1) > 1e-3 || fabs(st[k].hlr - hlr) > 1e-3 ||
            fabs(st[k].e - eps[k]) > 1e-4 ||
            fabs(st[k].e1 - eps[k] * cos(2 * phi[k])) > 1e-4 ||
            fabs(st[k].e2 - eps[k] * sin(2 * phi[k])) > 1e-4) {
            free(img);
            FAIL("stamp %d: flux %g hlr %g e %g (%g, %g) flag %d; want %g, %g, %g", k,
                 st[k].flux, st[k].hlr, st[k].e, st[k].e1, st[k].e2, st[k].flag, flux[k], hlr,
                 eps[k]);
        }
    }
    /* an empty stamp is flagged with NaN values, not an error */
    memset(img, 0, sizeof(float) * S * S);
    ds_status s2 = ds_stamp_stats(img, 1, S, &st[N]);
    free(img);
    CHECK(s == DS_OK && s2 == DS_OK);
    CHECK(st[N].flag != 0 && isnan(st[N].flux) && isnan(st[N].hlr) && isnan(st[N].e));
    CHECK_OK(check_arg_error(ds_stamp_stats(NULL, 1, S, st), "stamp stats", msg_, cap_));
    return TEST_PASS;
}
