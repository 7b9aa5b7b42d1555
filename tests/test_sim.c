/* test_sim.c - the galaxy simulator: b_n, pixel conventions, agreement with astropy's
 * Sersic2D, flux of cuspy profiles, PSF convolution against the analytic Gaussian, SNR and
 * noise, catalogues (reproducible, thread-count independent), the CLI, bad inputs. */
#include "test.h"
#include "spawn.h"

#include <unistd.h>

/* Unweighted moments of an image: flux, centroid, second central moments. */
typedef struct { double f, x, y, xx, xy, yy; } mom;

static mom moments(const float *img, int size)
{
    mom m = {0};
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double v = img[i * size + j];
            m.f += v;
            m.x += v * j;
            m.y += v * i;
        }
    m.x /= m.f;
    m.y /= m.f;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double v = img[i * size + j], dx = j - m.x, dy = i - m.y;
            m.xx += v * dx * dx;
            m.xy += v * dx * dy;
            m.yy += v * dy * dy;
        }
    m.xx /= m.f;
    m.xy /= m.f;
    m.yy /= m.f;
    return m;
}

TEST(sim_sersic_bn)
{
    CHECK_NEAR(ds_sersic_bn(1), 1.67834699, 1e-7);
    CHECK_NEAR(ds_sersic_bn(4), 7.66924944, 1e-7);
    CHECK_NEAR(ds_sersic_bn(0.5), 0.69314718, 1e-7);
    CHECK_NEAR(ds_sersic_bn(0.5), log(2.0), 1e-14);   /* exact for the Gaussian */
    double prev = 0;
    for (double n = 0.3; n <= 8; n += 0.1) {          /* increasing, near 2n - 1/3 */
        double b = ds_sersic_bn(n);
        CHECK(b > prev);
        if (n >= 1)
            CHECK_NEAR(b, 2 * n - 1.0 / 3 + 4 / (405 * n), 2e-3 / n);
        prev = b;
    }
    CHECK(isnan(ds_sersic_bn(0)) && isnan(ds_sersic_bn(-1)));
    return TEST_PASS;
}

/* phi = 0: elongated along x; phi = 45 deg: along x = y; a quarter turn flips e. */
TEST(sim_conventions)
{
    enum { S = 33 };
    float a[S * S], b[S * S];
    ds_galaxy g = {2, 3, 1, 0.3, 0, 0, 0};
    CHECK(ds_galaxy_render(&g, NULL, S, a) == DS_OK);
    mom m = moments(a, S);
    CHECK(m.xx > 1.5 * m.yy);
    CHECK(fabs(m.xy) < 1e-6 * m.xx);
    CHECK_NEAR(m.x, 16, 1e-5);
    g.e1 = 0, g.e2 = 0.3;
    CHECK(ds_galaxy_render(&g, NULL, S, a) == DS_OK);
    m = moments(a, S);
    CHECK(m.xy > 0.3 * m.xx);
    CHECK_NEAR(m.xx, m.yy, 1e-5 * m.xx);
    /* offsets move the centroid by (dx, dy) */
    ds_galaxy h = {1, 2, 1, 0, 0, 0.4, -0.3};
    CHECK(ds_galaxy_render(&h, NULL, S, a) == DS_OK);
    m = moments(a, S);
    CHECK_NEAR(m.x, 16.4, 2e-3);
    CHECK_NEAR(m.y, 15.7, 2e-3);
    /* rot90: N[i][j] = O[S-1-j][i] is the image turned by 90 degrees, i.e. (e1, e2) ->
     * (-e1, -e2), for even and odd stamps and with a PSF */
    const int sizes[2] = {33, 32};
    for (int t = 0; t < 2; t++) {
        int s = sizes[t];
        ds_psf psf = {.kind = t ? DS_PSF_GAUSSIAN : DS_PSF_NONE, .fwhm = 2.2, .beta = 0};
        ds_galaxy p = {3.5, 2.5, 10, 0.25, 0.2, 0, 0}, q = p;
        q.e1 = -p.e1, q.e2 = -p.e2;
        CHECK(ds_galaxy_render(&p, &psf, s, a) == DS_OK);
        CHECK(ds_galaxy_render(&q, &psf, s, b) == DS_OK);
        float peak = 0;
        for (int i = 0; i < s * s; i++)
            peak = fmaxf(peak, a[i]);
        for (int i = 0; i < s; i++)
            for (int j = 0; j < s; j++)
                if (fabsf(b[i * s + j] - a[(s - 1 - j) * s + i]) > 2e-5f * peak)
                    FAIL("size %d: rot90 pixel (%d, %d): %g vs %g", s, i, j, b[i * s + j],
                         a[(s - 1 - j) * s + i]);
    }
    return TEST_PASS;
}

/* The same sub-pixel sampling as astropy's Sersic2D (fixture), n from 0.5 to 6. */
TEST(sim_astropy)
{
    ds_tensor_set *fx = fixture_load("sersic", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    for (int k = 0; k < 5; k++) {
        char key[32];
        snprintf(key, sizeof key, "c%d.params", k);
        const float *p = fixture_data(fx, key, NULL, msg_, cap_);
        snprintf(key, sizeof key, "c%d.image", k);
        int64_t npix;
        const float *want = fixture_data(fx, key, &npix, msg_, cap_);
        if (!p || !want) {
            ds_tensor_set_free(fx);
            return TEST_FAIL;
        }
        int size = (int)p[7];
        ds_galaxy g = {p[0], p[1], p[2], p[3], p[4], p[5], p[6]};
        float *got = malloc(sizeof *got * (size_t)npix);
        CHECK(got && npix == size * size);
        CHECK(ds_galaxy_render_sampled(&g, size, (int)p[8], got) == DS_OK);
        double sg = 0, sw = 0, peak = 0, worst = 0;
        for (int64_t i = 0; i < npix; i++) {
            sg += got[i];
            sw += want[i];
            peak = fmax(peak, want[i]);
        }
        for (int64_t i = 0; i < npix; i++)
            if (want[i] > 0.01 * peak)
                worst = fmax(worst, fabs(got[i] - want[i]) / want[i]);
        free(got);
        if (fabs(sg - sw) > 1e-3 * sw || worst > 1e-2) {
            ds_tensor_set_free(fx);
            FAIL("case %d (n = %g): flux %g vs astropy %g, worst pixel rel. error %g", k, p[0],
                 sg, sw, worst);
        }
    }
    ds_tensor_set_free(fx);
    return TEST_PASS;
}

/* P(a, x) by its series (all terms positive, fine for any x here). */
static double gamma_p_series(double a, double x)
{
    double term = 1 / a, sum = term;
    for (int i = 1; i < 100000 && term > 1e-18 * sum; i++) {
        term *= x / (a + i);
        sum += term;
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Flux of a centred round Sersic inside the square |x|, |y| <= L: (4 / pi) times the
 * integral over theta in [0, pi/4] of the flux enclosed within radius L / cos(theta). */
static double flux_in_square(double n, double hlr, double L)
{
    double b = ds_sersic_bn(n), s = 0;
    enum { K = 2000 };
    for (int i = 0; i < K; i++) {   /* midpoint rule on a smooth integrand */
        double th = (i + 0.5) * (M_PI / 4) / K;
        s += gamma_p_series(2 * n, b * pow(L / cos(th) / hlr, 1 / n));
    }
    return 4 / M_PI * s * (M_PI / 4) / K;
}

/* Cuspy profiles: the stamp holds the right flux (the exact flux inside the square) to
 * 1e-3; the brief asks for 1%. */
TEST(sim_flux_cuspy)
{
    enum { S = 255 };
    float *img = malloc(sizeof *img * S * S);
    CHECK(img);
    const double cases[4][2] = {{4, 1}, {6, 0.7}, {1, 0.6}, {0.5, 0.8}};
    for (int c = 0; c < 4; c++) {
        ds_galaxy g = {cases[c][0], cases[c][1], 1, 0, 0, 0, 0};
        CHECK(ds_galaxy_render(&g, NULL, S, img) == DS_OK);
        double s = 0;
        for (int i = 0; i < S * S; i++)
            s += img[i];
        double want = flux_in_square(g.n, g.hlr, S / 2.0);
        if (fabs(s - want) > 1e-3 * want) {
            free(img);
            FAIL("n = %g, hlr = %g: stamp flux %.6f, exact %.6f", g.n, g.hlr, s, want);
        }
    }
    /* elliptical and off-centre: the flux stays (nothing near the edges) */
    ds_galaxy e = {4, 1, 1, 0.4, -0.3, 0.37, -0.21};
    CHECK(ds_galaxy_render(&e, NULL, S, img) == DS_OK);
    double s = 0;
    for (int i = 0; i < S * S; i++)
        s += img[i];
    free(img);
    CHECK_NEAR(s, flux_in_square(4, 1, S / 2.0), 2e-3);
    return TEST_PASS;
}

/* Pixel integral of an axis-aligned Gaussian (sx, sy) centred at (x0, y0). */
static double gauss_pixel(int i, int j, double x0, double y0, double sx, double sy)
{
    double ex = 0.5 * (erf((j + 0.5 - x0) / (sx * M_SQRT2)) - erf((j - 0.5 - x0) / (sx * M_SQRT2)));
    double ey = 0.5 * (erf((i + 0.5 - y0) / (sy * M_SQRT2)) - erf((i - 0.5 - y0) / (sy * M_SQRT2)));
    return ex * ey;
}

/* Gaussian galaxy (n = 1/2) convolved with a Gaussian PSF = the Gaussian of summed
 * variances, pixel-integrated: peak and second moments to 1e-3. */
TEST(sim_psf_gaussian)
{
    enum { S = 40 };
    float img[S * S];
    double ref[S * S];
    const double fwhms[3] = {2.0, 3.0, 1.2}, hlrs[3] = {1.5, 2.5, 1.0};
    for (int t = 0; t < 3; t++) {
        double e1 = 0.25, eps = e1, q = (1 - eps) / (1 + eps);
        ds_galaxy g = {0.5, hlrs[t], 3.0, e1, 0, 0.3, -0.45};
        ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = fwhms[t], .beta = 0};
        CHECK(ds_galaxy_render(&g, &psf, S, img) == DS_OK);
        double sg = g.hlr / sqrt(2 * log(2.0)), sp = fwhms[t] / (2 * sqrt(2 * log(2.0)));
        double sx = sqrt(sg * sg / q + sp * sp), sy = sqrt(sg * sg * q + sp * sp);
        double x0 = (S - 1) / 2.0 + g.dx, y0 = (S - 1) / 2.0 + g.dy, pk = 0, pg = 0;
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                ref[i * S + j] = g.flux * gauss_pixel(i, j, x0, y0, sx, sy);
                pk = fmax(pk, ref[i * S + j]);
                pg = fmax(pg, img[i * S + j]);
            }
        float rf[S * S];
        for (int i = 0; i < S * S; i++)
            rf[i] = (float)ref[i];
        mom a = moments(img, S), b = moments(rf, S);
        if (fabs(pg - pk) > 1e-3 * pk || fabs(a.xx - b.xx) > 1e-3 * b.xx ||
            fabs(a.yy - b.yy) > 1e-3 * b.yy || fabs(a.xy) > 1e-4 * b.xx ||
            fabs(a.f - b.f) > 1e-4 * b.f)
            FAIL("fwhm %g: peak %g vs %g, Mxx %g vs %g, Myy %g vs %g, Mxy %g, flux %g vs %g",
                 fwhms[t], pg, pk, a.xx, b.xx, a.yy, b.yy, a.xy, a.f, b.f);
    }
    /* the PSF image alone */
    ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2.5, .beta = 0};
    CHECK(ds_psf_render(&psf, S, img) == DS_OK);
    mom m = moments(img, S);
    double sp = 2.5 / (2 * sqrt(2 * log(2.0)));
    CHECK_NEAR(m.f, 1, 1e-5);
    CHECK_NEAR(m.xx, sp * sp + 1.0 / 12, 1e-4);   /* the pixel adds 1/12 */
    CHECK_NEAR(m.x, (S - 1) / 2.0, 1e-5);
    return TEST_PASS;
}

/* Moffat: flux kept, broadens the galaxy by the PSF's second moment (within truncation). */
TEST(sim_psf_moffat)
{
    enum { S = 48 };
    float a[S * S], b[S * S], p[S * S];
    ds_galaxy g = {1.5, 1.5, 2.0, 0.1, -0.2, 0.2, 0.1};
    ds_psf none = {.kind = DS_PSF_NONE}, mof = {.kind = DS_PSF_MOFFAT, .fwhm = 2.5, .beta = 3.5};
    CHECK(ds_galaxy_render(&g, &none, S, a) == DS_OK);
    CHECK(ds_galaxy_render(&g, &mof, S, b) == DS_OK);
    CHECK(ds_psf_render(&mof, S, p) == DS_OK);
    mom ma = moments(a, S), mb = moments(b, S), mp = moments(p, S);
    CHECK_NEAR(mp.f, 1, 1e-5);
    CHECK_NEAR(mb.f, ma.f, 2e-3 * ma.f);
    CHECK_NEAR(mb.x, (S - 1) / 2.0 + g.dx, 1e-3);   /* (the unconvolved, undersampled
                                                     * cusp's pixel centroid is off by 4e-3) */
    CHECK_NEAR(mb.y, (S - 1) / 2.0 + g.dy, 1e-3);
    /* second moments add (the PSF image counts the pixel once too many: minus 1/12) */
    CHECK_NEAR(mb.xx, ma.xx + mp.xx - 1.0 / 12, 0.01 * mb.xx);
    CHECK_NEAR(mb.yy, ma.yy + mp.yy - 1.0 / 12, 0.01 * mb.yy);
    CHECK_NEAR(mb.xy, ma.xy, 0.01 * mb.xx);
    /* a point-like galaxy through the Moffat has the PSF image's size (to 2%: a point
     * source inside one sub-pixel cell is the worst case of the cell-grid convolution) */
    ds_galaxy pt = {0.5, 0.05, 1, 0, 0, 0, 0};
    CHECK(ds_galaxy_render(&pt, &mof, S, b) == DS_OK);
    mom mq = moments(b, S);
    CHECK_NEAR(mq.f, 1, 1e-3);
    CHECK_NEAR(mq.xx, mp.xx, 0.02 * mp.xx);
    CHECK_NEAR(mq.x, (S - 1) / 2.0, 1e-6);
    return TEST_PASS;
}

TEST(sim_snr_noise)
{
    float img[4] = {3, 4, 0, 0};
    CHECK_NEAR(ds_image_snr(img, 4, 1), 5, 1e-12);
    CHECK_NEAR(ds_image_snr(img, 4, 2.5), 2, 1e-12);
    CHECK(isnan(ds_image_snr(img, 4, 0)));
    enum { N = 200000 };
    float *x = calloc(N, sizeof *x);
    CHECK(x);
    ds_rng r;
    ds_rng_seed(&r, 5);
    ds_add_noise(x, N, 2.0, 0, &r);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++)
        s += x[i], s2 += (double)x[i] * x[i];
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK_NEAR(mean, 0, 4 * 2.0 / sqrt(N));
    CHECK_NEAR(var, 4.0, 4 * 4.0 * sqrt(2.0 / N));
    /* Poisson (gain 2: variance v / 2) plus sky, at small and large means */
    const double vals[3] = {3.0, 40.0, 2e4};
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < N; i++)
            x[i] = (float)vals[t];
        ds_add_noise(x, N, 0.5, 2.0, &r);
        s = s2 = 0;
        for (int i = 0; i < N; i++)
            s += x[i] - vals[t], s2 += ((double)x[i] - vals[t]) * ((double)x[i] - vals[t]);
        mean = s / N;
        var = s2 / N - mean * mean;
        double want = vals[t] / 2 + 0.25;
        if (fabs(mean) > 4 * sqrt(want / N) || fabs(var - want) > 4 * want * sqrt(2.0 / N) + 1e-3)
            FAIL("mean %g: noise mean %g, variance %g (want %g)", vals[t], mean, var, want);
    }
    free(x);
    return TEST_PASS;
}

static ds_sim_opts small_opts(void)
{
    ds_sim_opts o = {0};
    o.count = 37;
    o.size = 24;
    o.seed = 11;
    o.n_min = 0.5, o.n_max = 6, o.hlr_min = 1.5, o.hlr_max = 4, o.e_max = 0.6;
    o.snr_min = 10, o.snr_max = 100, o.sky_sigma = 1.5, o.offset_max = 0.5;
    o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2, o.psf_fwhm_min = 1.8, o.psf_fwhm_max = 2.6;
    return o;
}

TEST(sim_galaxies)
{
    ds_sim_opts o = small_opts();
    ds_tensor *x1, *t1, *x2, *t2;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    CHECK(ds_sim_galaxies(&o, &x1, &t1) == DS_OK);
    ds_set_num_threads(2);
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    ds_set_num_threads(threads);
    const int64_t *sh = ds_tensor_shape(x1);
    CHECK(ds_tensor_ndim(x1) == 4 && sh[0] == 37 && sh[1] == 1 && sh[2] == 24 && sh[3] == 24);
    CHECK(ds_tensor_ndim(t1) == 2 && ds_tensor_shape(t1)[1] == ds_sim_column_count());
    CHECK(!memcmp(ds_tensor_data(x1), ds_tensor_data(x2), sizeof(float) * 37 * 24 * 24));
    CHECK(!memcmp(ds_tensor_data(t1), ds_tensor_data(t2),
                  sizeof(float) * 37 * ds_sim_column_count()));
    const char *const *cols = ds_sim_columns();
    CHECK(!strcmp(cols[0], "e1") && !strcmp(cols[5], "snr") && !strcmp(cols[8], "dy"));
    /* truth in range; the flux gives exactly the drawn SNR (noiseless re-render) */
    const float *t = ds_tensor_data(t1);
    float img[24 * 24];
    for (int i = 0; i < 37; i++) {
        const float *r = t + i * ds_sim_column_count();
        CHECK(hypot(r[0], r[1]) <= 0.6 + 1e-6 && r[2] >= 0.5 && r[2] <= 6);
        CHECK(r[3] >= 1.5 && r[3] <= 4 && r[5] >= 10 && r[5] <= 100);
        CHECK(r[6] >= 1.8 && r[6] <= 2.6 && fabs(r[7]) <= 0.5 && fabs(r[8]) <= 0.5);
        ds_galaxy g = {r[2], r[3], r[4], r[0], r[1], r[7], r[8]};
        ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = r[6], .beta = 0};
        CHECK(ds_galaxy_render(&g, &psf, 24, img) == DS_OK);
        CHECK_NEAR(ds_image_snr(img, 24 * 24, 1.5), r[5], 1e-5 * r[5]);
    }
    /* the noise is what was added: residual std = sky_sigma */
    double s2 = 0;
    for (int i = 0; i < 37; i++) {
        const float *r = t + i * ds_sim_column_count();
        ds_galaxy g = {r[2], r[3], r[4], r[0], r[1], r[7], r[8]};
        ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = r[6], .beta = 0};
        CHECK(ds_galaxy_render(&g, &psf, 24, img) == DS_OK);
        for (int p = 0; p < 24 * 24; p++) {
            double d = ds_tensor_data(x1)[i * 576 + p] - img[p];
            s2 += d * d;
        }
    }
    CHECK_NEAR(sqrt(s2 / (37 * 576)), 1.5, 0.03);
    /* another seed differs; a params table overrides where not NaN */
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){37, 9});
    float *pd = ds_tensor_data(par);
    for (int i = 0; i < 37 * 9; i++)
        pd[i] = NAN;
    pd[3 * 9 + 2] = 4.0f;     /* galaxy 3: n = 4 */
    pd[5 * 9 + 4] = 123.0f;   /* galaxy 5: flux 123 (its SNR follows) */
    pd[6 * 9 + 0] = 0.1f;     /* galaxy 6: e1 */
    o.params = par;
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    const float *u = ds_tensor_data(t2);
    const int nc = ds_sim_column_count();   /* truth row length; the params rows are 9 */
    CHECK(u[3 * nc + 2] == 4.0f && u[5 * nc + 4] == 123.0f && u[6 * nc + 0] == 0.1f);
    CHECK(u[3 * nc + 3] == t[3 * nc + 3] && u[6 * nc + 1] == t[6 * nc + 1]);   /* others: same draws */
    CHECK(u[0] == t[0] && u[36 * nc + 8] == t[36 * nc + 8]);
    /* noiseless: flux 1, images equal the renders */
    o.params = NULL;
    o.snr_min = o.snr_max = 0;
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    CHECK(ds_tensor_data(t2)[4] == 1.0f && ds_tensor_data(t2)[5] > 0);
    ds_tensor_free(par);
    ds_tensor_free(x1);
    ds_tensor_free(t1);
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    return TEST_PASS;
}

TEST(sim_errors)
{
    float img[16 * 16];
    ds_galaxy ok = {1, 2, 1, 0, 0, 0, 0}, g;
    ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2, .beta = 0};
    g = ok, g.n = 0;
    CHECK_OK(check_arg_error(ds_galaxy_render(&g, NULL, 16, img), "Sersic index", msg_, cap_));
    g = ok, g.n = -1;
    CHECK_OK(check_arg_error(ds_galaxy_render_sampled(&g, 16, 3, img), "Sersic index", msg_, cap_));
    g = ok, g.hlr = 0;
    CHECK_OK(check_arg_error(ds_galaxy_render(&g, &psf, 16, img), "half-light radius", msg_, cap_));
    g = ok, g.e1 = 0.8, g.e2 = 0.6;
    CHECK_OK(check_arg_error(ds_galaxy_render(&g, NULL, 16, img), "ellipticity", msg_, cap_));
    CHECK_OK(check_arg_error(ds_galaxy_render(&ok, NULL, 3, img), "stamp size", msg_, cap_));
    CHECK_OK(check_arg_error(ds_psf_render(&psf, 2, img), "stamp size", msg_, cap_));
    ds_psf bad = {.kind = DS_PSF_MOFFAT, .fwhm = 2, .beta = 1.0};
    CHECK_OK(check_arg_error(ds_galaxy_render(&ok, &bad, 16, img), "beta", msg_, cap_));
    bad.kind = DS_PSF_GAUSSIAN, bad.fwhm = -1;
    CHECK_OK(check_arg_error(ds_psf_render(&bad, 16, img), "FWHM", msg_, cap_));
    ds_sim_opts o = small_opts();
    ds_tensor *x, *t;
    o.n_min = 6, o.n_max = 1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "Sersic index range", msg_, cap_));
    CHECK(!x && !t);
    o = small_opts(), o.hlr_min = -1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "half-light radius range", msg_, cap_));
    o = small_opts(), o.e_max = 1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "e_max", msg_, cap_));
    o = small_opts(), o.snr_min = 50, o.snr_max = 20;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "SNR range", msg_, cap_));
    o = small_opts(), o.size = 3;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "stamp size", msg_, cap_));
    o = small_opts(), o.count = 0;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "count", msg_, cap_));
    o = small_opts(), o.psf_fwhm_min = 3, o.psf_fwhm_max = 2;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "PSF FWHM range", msg_, cap_));
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){37, 9});
    for (int i = 0; i < 37 * 9; i++)
        ds_tensor_data(par)[i] = NAN;
    ds_tensor_data(par)[9 * 9 + 3] = 0;   /* hlr 0 in row 9 */
    o = small_opts(), o.params = par;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "galaxy 9: hlr", msg_, cap_));
    ds_tensor_free(par);
    par = ds_tensor_create(2, (int64_t[]){5, 9});
    o.params = par;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "params table", msg_, cap_));
    ds_tensor_free(par);
    return TEST_PASS;
}

/* ---- the command line tool ---- */

/* Whether the last run exited with want and printed text; 0, or 1 with msg set. */
static int expect(int rc, int want, const char *text, char *msg, size_t cap)
{
    if (rc == want && strstr(cli_out, text))
        return 0;
    snprintf(msg, cap, "exit status %d%s (expected %d), output lacks \"%s\":\n%s", rc,
             rc == CLI_SANITIZER_EXIT ? ", a sanitizer report" : "", want, text, cli_out);
    return 1;
}

TEST(sim_cli)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[] = "/tmp/deepsky_sim_XXXXXX", args[2048], p1[256], p2[256], p3[256];
    CHECK(mkdtemp(dir));
    snprintf(p1, sizeof p1, "%s/img.fits", dir);
    snprintf(p2, sizeof p2, "%s/truth.fits", dir);
    snprintf(args, sizeof args, "sim galaxies --count 12 --size 20 --seed 4 --snr 20:40 "
             "--psf moffat --psf-fwhm 2:2.5 --beta 2.5 -o %s --truth %s --npy", p1, p2);
    int rc = cli_run("%s", args);
    if (rc)
        FAIL("exit %d: %s", rc, cli_out);
    ds_tensor *x, *t;
    CHECK(ds_array_load(p1, NULL, &x) == DS_OK);
    const int64_t *sh = ds_tensor_shape(x);
    CHECK(ds_tensor_ndim(x) == 3 && sh[0] == 12 && sh[1] == 20 && sh[2] == 20);
    CHECK(ds_array_load(p2, NULL, &t) == DS_OK);
    const int nc = ds_sim_column_count();
    CHECK(ds_tensor_ndim(t) == 2 && ds_tensor_shape(t)[0] == 12 && ds_tensor_shape(t)[1] == nc);
    char *names = ds_table_columns(p2, NULL);
    CHECK(names && strstr(names, "psf_fwhm") && strstr(names, "snr"));
    free(names);
    for (int i = 0; i < 12; i++)
        CHECK(ds_tensor_data(t)[i * nc + 5] >= 20 && ds_tensor_data(t)[i * nc + 5] <= 40);
    /* the library call with the same options gives the same cube */
    ds_sim_opts o = {0};
    o.count = 12, o.size = 20, o.seed = 4, o.n_min = 0.5, o.n_max = 6, o.hlr_min = 1.5;
    o.hlr_max = 5, o.e_max = 0.6, o.snr_min = 20, o.snr_max = 40, o.sky_sigma = 1;
    o.offset_max = 0.5, o.psf.kind = DS_PSF_MOFFAT, o.psf.fwhm = 2, o.psf.beta = 2.5;
    o.psf_fwhm_min = 2, o.psf_fwhm_max = 2.5;
    ds_tensor *x2, *t2, *xn;
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    CHECK(!memcmp(ds_tensor_data(x), ds_tensor_data(x2), sizeof(float) * 12 * 400));
    snprintf(p3, sizeof p3, "%s/img.npy", dir);
    CHECK(ds_npy_load(p3, &xn) == DS_OK && ds_tensor_numel(xn) == 12 * 400);
    CHECK(!memcmp(ds_tensor_data(x), ds_tensor_data(xn), sizeof(float) * 12 * 400));
    ds_tensor_free(xn);
    snprintf(p3, sizeof p3, "%s/truth.npy", dir);
    CHECK(access(p3, R_OK) == 0);
    ds_tensor_free(x);
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    /* the truth table as params reproduces the catalogue (CSV with a missing column too) */
    snprintf(p3, sizeof p3, "%s/p.csv", dir);
    FILE *f = fopen(p3, "w");
    CHECK(f);
    fprintf(f, "n,hlr,E1\n");
    for (int i = 0; i < 3; i++)
        fprintf(f, "%g,%g,%s\n", 1.0 + i, 2.0, i == 1 ? "nan" : "0.2");
    fclose(f);
    snprintf(args, sizeof args, "sim galaxies --params %s --psf none -o %s/a.fits --truth %s/a.csv",
             p3, dir, dir);
    rc = cli_run("%s", args);
    if (rc)
        FAIL("exit %d: %s", rc, cli_out);
    snprintf(p3, sizeof p3, "%s/a.csv", dir);
    CHECK(ds_array_load(p3, NULL, &x) == DS_OK && ds_tensor_shape(x)[0] == 3);
    CHECK(ds_tensor_data(x)[2] == 1.0f && ds_tensor_data(x)[ds_sim_column_count() + 2] == 2.0f);
    CHECK(ds_tensor_data(x)[0] == 0.2f && ds_tensor_data(x)[ds_sim_column_count()] != 0.2f);
    CHECK(ds_tensor_data(x)[6] == 0.0f);   /* psf_fwhm 0 without a PSF */
    ds_tensor_free(x);
    ds_tensor_free(t);
    /* usage errors exit 2, bad values 2, failures 1 */
    CHECK_OK(expect(cli_run("sim galaxies --help"), 0, "--psf-fwhm", msg_, cap_));
    CHECK_OK(expect(cli_run("sim galaxies --count 3"), 2, "-o IMAGES and --truth TABLE are "
                                                          "required",
                    msg_, cap_));
    snprintf(args, sizeof args, "sim galaxies --count 3 --n 6:1 -o %s/b.fits --truth %s/b.fits",
             dir, dir);
    CHECK_OK(expect(cli_run("%s", args), 2, "option '--n': '6:1' is not a number or range", msg_,
                    cap_));
    snprintf(args, sizeof args, "sim galaxies --count 3 --psf airy -o %s/b.fits --truth %s/b.fits",
             dir, dir);
    CHECK_OK(expect(cli_run("%s", args), 2, "option '--psf': 'airy' is not gaussian, moffat",
                    msg_, cap_));
    snprintf(args, sizeof args, "sim stars --count 3 -o %s/b.fits --truth %s/b.fits", dir, dir);
    CHECK_OK(expect(cli_run("%s", args), 2, "unknown kind 'stars' (galaxies, blends or anomalies)", msg_, cap_));
    snprintf(args, sizeof args, "sim galaxies --count 3 -o %s/b.fits --truth %s/b.txt", dir, dir);
    CHECK_OK(expect(cli_run("%s", args), 1, "b.txt': tables are written as .fits", msg_, cap_));
    snprintf(args, sizeof args, "sim galaxies --params %s/none.csv -o %s/b.fits --truth %s/t.fits",
             dir, dir, dir);
    snprintf(p3, sizeof p3, "cannot open '%s/none.csv'", dir);
    CHECK_OK(expect(cli_run("%s", args), 1, p3, msg_, cap_));
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    CHECK(system(args) == 0);
    return TEST_PASS;
}
