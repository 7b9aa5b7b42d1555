/* test_realism.c - the simulator's realism switches: off is bit-identical to the simulator
 * before them, a neighbour galaxy, correlated noise against its kernel's autocorrelation, a
 * size-magnitude population, bad options, and the `sim galaxies` flags. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

/* ---- helpers ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* FNV-1a of the images and of the first 9 truth columns (those main e80e7e7 wrote). */
static uint64_t sim_hash(const ds_tensor *img, const ds_tensor *tr)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(h, ds_tensor_data((ds_tensor *)img), sizeof(float) * (size_t)ds_tensor_numel(img));
    const int64_t n = ds_tensor_shape(tr)[0], nc = ds_tensor_shape(tr)[1];
    for (int64_t i = 0; i < n; i++)
        h = fnv(h, ds_tensor_data((ds_tensor *)tr) + i * nc, 9 * sizeof(float));
    return h;
}

static ds_sim_opts opts_a(void)
{
    ds_sim_opts a = {0};
    a.count = 64, a.size = 32, a.seed = 7, a.n_min = 0.5, a.n_max = 6, a.hlr_min = 1.5;
    a.hlr_max = 5, a.e_max = 0.6, a.snr_min = 10, a.snr_max = 100, a.sky_sigma = 1;
    a.offset_max = 0.5, a.psf.kind = DS_PSF_GAUSSIAN, a.psf.fwhm = 2;
    return a;
}

static ds_sim_opts opts_b(void)
{
    ds_sim_opts b = {0};
    b.count = 40, b.size = 24, b.seed = 3, b.n_min = 1, b.n_max = 4, b.hlr_min = 1;
    b.hlr_max = 3, b.e_max = 0.7, b.snr_min = 20, b.snr_max = 40, b.sky_sigma = 0.5;
    b.gain = 5, b.offset_max = 1, b.psf.kind = DS_PSF_MOFFAT, b.psf.fwhm = 2, b.psf.beta = 3;
    b.psf_fwhm_min = 1.8, b.psf_fwhm_max = 3;
    return b;
}

static ds_sim_opts opts_c(void)
{
    ds_sim_opts c = {0};
    c.count = 16, c.size = 20, c.seed = 11, c.e_max = 0.3;
    return c;
}

/* Truth column j of galaxy i. */
static double col(const ds_tensor *tr, int64_t i, int j)
{
    return ds_tensor_data((ds_tensor *)tr)[i * ds_tensor_shape(tr)[1] + j];
}

/* The index of a truth column by name (the features' blocks move as features are added). */
static int cidx(const char *name)
{
    for (int j = 0; ds_sim_columns()[j]; j++)
        if (!strcmp(ds_sim_columns()[j], name))
            return j;
    return -1;
}

enum { E1, E2, N, HLR, FLUX, SNR, FWHM, DX, DY };
#define NB_FLUX cidx("nb_flux")
#define NB_DX cidx("nb_dx")
#define NB_DY cidx("nb_dy")
#define NB_HLR cidx("nb_hlr")

/* ---- off: the simulator of main e80e7e7, bit for bit ---- */

/* The hashes were computed with main e80e7e7's simulator (before the realism switches) for
 * the same options: images and the 9 columns it had. */
TEST(realism_off_is_bit_identical_to_main)
{
    static const uint64_t want[3] = {0x6634ad7f0112a623ULL, 0x4c9d1bf1a5118c18ULL,
                                     0x7d2d34105de459afULL};
    ds_sim_opts o[3] = {opts_a(), opts_b(), opts_c()};
    for (int k = 0; k < 3; k++) {
        /* a switch's range options alone do not switch it on */
        for (int variant = 0; variant < 2; variant++) {
            ds_sim_opts v = o[k];
            if (variant)
                v.nb_r_min = 1, v.nb_r_max = 3, v.nb_flux_min = 0.5, v.nb_flux_max = 2,
                v.pop_hlr_median = 2, v.pop_alpha = 2.5, v.pop_flux_min = 10,
                v.pop_flux_max = 100;
            ds_tensor *img, *tr;
            CHECK(ds_sim_galaxies(&v, &img, &tr) == DS_OK);
            uint64_t h = sim_hash(img, tr);
            int nb_zero = 1;
            for (int64_t i = 0; i < v.count; i++)
                for (int j = NB_FLUX; j <= NB_HLR; j++)
                    nb_zero &= col(tr, i, j) == 0;
            ds_tensor_free(img);
            ds_tensor_free(tr);
            if (h != want[k])
                FAIL("options %c (variant %d): hash %016llx, main gave %016llx", 'A' + k,
                     variant, (unsigned long long)h, (unsigned long long)want[k]);
            CHECK(nb_zero);
        }
    }
    return TEST_PASS;
}

/* A 1 x 1 kernel is white noise: the same pixels as without a kernel, bit for bit. */
TEST(realism_kernel_1x1_is_white_noise)
{
    ds_sim_opts o = opts_a();
    const double k1[1] = {2};
    ds_tensor *x1, *t1, *x2, *t2;
    CHECK(ds_sim_galaxies(&o, &x1, &t1) == DS_OK);
    o.noise_kernel = k1, o.noise_kernel_size = 1;
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    CHECK(!memcmp(ds_tensor_data(x1), ds_tensor_data(x2),
                  sizeof(float) * (size_t)ds_tensor_numel(x1)));
    ds_tensor_free(x1);
    ds_tensor_free(t1);
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    return TEST_PASS;
}

/* ---- a neighbour galaxy ---- */

/* With a neighbour always there: the central columns and the noise are unchanged, so the
 * stamp minus the stamp without it is the neighbour alone, whose flux and centroid are the
 * truth's nb_flux and (nb_dx, nb_dy), at a distance and flux ratio within the ranges. */
TEST(realism_neighbour_adds_a_second_galaxy)
{
    enum { S = 48, CNT = 24 };
    ds_sim_opts o = opts_a();
    o.size = S, o.count = CNT, o.hlr_min = 1, o.hlr_max = 2, o.n_max = 2;
    ds_tensor *x0, *t0, *x1, *t1;
    CHECK(ds_sim_galaxies(&o, &x0, &t0) == DS_OK);
    o.nb_prob = 1, o.nb_r_min = 5, o.nb_r_max = 9, o.nb_flux_min = 0.3, o.nb_flux_max = 0.8;
    CHECK(ds_sim_galaxies(&o, &x1, &t1) == DS_OK);
    const float *a = ds_tensor_data(x0), *b = ds_tensor_data(x1);
    for (int64_t i = 0; i < CNT; i++) {
        for (int j = 0; j < 9; j++)
            CHECK(col(t0, i, j) == col(t1, i, j));   /* snr: the central galaxy's alone */
        double f = col(t1, i, NB_FLUX), dx = col(t1, i, NB_DX), dy = col(t1, i, NB_DY);
        double ratio = f / col(t1, i, FLUX);
        CHECK(ratio >= 0.3 - 1e-6 && ratio <= 0.8 + 1e-6);
        double r = hypot(dx - col(t1, i, DX), dy - col(t1, i, DY));
        CHECK(r >= 5 - 1e-4 && r <= 9 + 1e-4);
        CHECK(col(t1, i, NB_HLR) >= 1 && col(t1, i, NB_HLR) <= 2);
        double s = 0, sx = 0, sy = 0;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double d = (double)b[i * S * S + y * S + x] - a[i * S * S + y * S + x];
                s += d, sx += d * x, sy += d * y;
            }
        /* the noise cancels to float rounding (values ~ 100); light beyond the stamp is
         * lost, a few per cent at most for these sizes and distances */
        CHECK_NEAR(s, f, 0.03 * f + 0.5);
        CHECK_NEAR(sx / s - (S - 1) / 2.0, dx, 0.15);
        CHECK_NEAR(sy / s - (S - 1) / 2.0, dy, 0.15);
    }
    ds_tensor_free(x0);
    ds_tensor_free(t0);
    ds_tensor_free(x1);
    ds_tensor_free(t1);
    return TEST_PASS;
}

/* nb_prob is a probability; absent neighbours have all four columns 0. */
TEST(realism_neighbour_probability)
{
    ds_sim_opts o = opts_c();
    o.count = 1000, o.size = 8, o.hlr_min = 1, o.hlr_max = 1.2, o.n_min = 0.5, o.n_max = 1;
    o.nb_prob = 0.3, o.nb_r_min = 1, o.nb_r_max = 2;
    ds_tensor *x, *t;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    int64_t with = 0;
    for (int64_t i = 0; i < o.count; i++) {
        if (col(t, i, NB_FLUX) > 0) {
            with++;
            CHECK(col(t, i, NB_HLR) > 0);
        } else {
            CHECK(col(t, i, NB_FLUX) == 0 && col(t, i, NB_DX) == 0 && col(t, i, NB_DY) == 0 &&
                  col(t, i, NB_HLR) == 0);
        }
    }
    double p = (double)with / (double)o.count, err = sqrt(0.3 * 0.7 / (double)o.count);
    CHECK_NEAR(p, 0.3, 4 * err);
    ds_tensor_free(x);
    ds_tensor_free(t);
    return TEST_PASS;
}

/* A params table's nb_flux places (> 0, even with the switch off) or removes (0) the
 * neighbour; nb_dx, nb_dy, nb_hlr override the draws; a negative nb_flux is an error. */
TEST(realism_neighbour_params)
{
    ds_sim_opts o = opts_c();
    o.count = 4;
    const int nc = NB_HLR + 1;   /* a params table's widest: the drawn columns */
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){4, nc});
    CHECK(par);
    float *p = ds_tensor_data(par);
    for (int i = 0; i < 4 * nc; i++)
        p[i] = NAN;
    p[0 * nc + NB_FLUX] = 0.5f, p[0 * nc + NB_DX] = 3, p[0 * nc + NB_DY] = -2;
    p[0 * nc + NB_HLR] = 1.5f;
    p[1 * nc + NB_FLUX] = 0;
    o.params = par;
    ds_tensor *x, *t;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    CHECK(col(t, 0, NB_FLUX) == 0.5f && col(t, 0, NB_DX) == 3 && col(t, 0, NB_DY) == -2 &&
          col(t, 0, NB_HLR) == 1.5f);
    for (int i = 1; i < 4; i++)
        CHECK(col(t, i, NB_FLUX) == 0);
    ds_tensor_free(x);
    ds_tensor_free(t);
    o.nb_prob = 1;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    CHECK(col(t, 0, NB_FLUX) == 0.5f && col(t, 1, NB_FLUX) == 0 && col(t, 2, NB_FLUX) > 0);
    ds_tensor_free(x);
    ds_tensor_free(t);
    p[0 * nc + NB_FLUX] = -1;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "galaxy 0: nb_flux = -1"));
    p[0 * nc + NB_FLUX] = 1, p[0 * nc + NB_DX] = 100;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "galaxy 0: neighbour offset = 100"));
    ds_tensor_free(par);
    return TEST_PASS;
}

/* ---- correlated noise ---- */

/* Noise-only stamps (every flux given as 0) with kernel K: the per-pixel variance and the
 * correlations at lags (0, 1), (1, 0), (1, 1), (1, -1) and (0, 2) match the autocorrelation
 * sky^2 sum_p K(p) K(p + d) / sum K^2 within 4 standard errors (the scatter of the
 * per-stamp estimates over sqrt(stamps)), over the whole stamp and over its edge rows and
 * columns alone (a padded grid: no darker edges). */
static int check_kernel(const double *k, int ks, const char *what, char *msg_, size_t cap_)
{
    enum { S = 32, CNT = 300 };
    static const int lag[6][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {1, -1}, {0, 2}};   /* (dy, dx) */
    const double sky = 1.7;
    ds_sim_opts o = opts_c();
    o.count = CNT, o.size = S, o.snr_min = 10, o.snr_max = 20, o.sky_sigma = sky;
    o.noise_kernel = k, o.noise_kernel_size = ks;
    const int nc = NB_HLR + 1;   /* a params table's widest: the drawn columns */
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){CNT, nc});
    CHECK(par);
    for (int64_t i = 0; i < (int64_t)CNT * nc; i++)
        ds_tensor_data(par)[i] = i % nc == FLUX ? 0.0f : NAN;
    o.params = par;
    ds_tensor *x, *t;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    ds_tensor_free(par);
    double ss = 0;
    for (int j = 0; j < ks * ks; j++)
        ss += k[j] * k[j];
    int rc = 0;
    for (int edge = 0; edge < 2 && !rc; edge++)
        for (int l = 0; l < 6 && !rc; l++) {
            const int dy = lag[l][0], dx = lag[l][1];
            double want = 0;
            for (int a = 0; a < ks; a++)
                for (int b = 0; b < ks; b++)
                    if (a + dy >= 0 && a + dy < ks && b + dx >= 0 && b + dx < ks)
                        want += k[a * ks + b] * k[(a + dy) * ks + b + dx];
            want *= sky * sky / ss;
            double sum = 0, sum2 = 0;
            for (int i = 0; i < CNT; i++) {
                const float *im = ds_tensor_data(x) + (int64_t)i * S * S;
                double s = 0;
                int64_t m = 0;
                for (int y = 0; y + dy < S; y++)
                    for (int xx = 0; xx < S; xx++) {
                        if (xx + dx < 0 || xx + dx >= S)
                            continue;
                        if (edge && y != 0 && xx != 0 && y + dy != S - 1 && xx + dx != S - 1)
                            continue;
                        s += (double)im[y * S + xx] * im[(y + dy) * S + xx + dx];
                        m++;
                    }
                s /= (double)m;
                sum += s;
                sum2 += s * s;
            }
            double mean = sum / CNT, se = sqrt((sum2 / CNT - mean * mean) / (CNT - 1));
            if (!(fabs(mean - want) <= 4 * se)) {
                snprintf(msg_, cap_, "%s: %s lag (dy %d, dx %d): measured %.5f +- %.5f, the "
                         "kernel's autocorrelation %.5f", what, edge ? "edge" : "all", dy, dx,
                         mean, se, want);
                rc = 1;
            }
        }
    ds_tensor_free(x);
    ds_tensor_free(t);
    return rc;
}

TEST(realism_correlated_noise_matches_the_kernel)
{
    const double k3[9] = {0.1, 0.2, 0.1, 0.2, 1, 0.2, 0.1, 0.2, 0.1};
    CHECK_OK(check_kernel(k3, 3, "3 x 3 symmetric", msg_, cap_));
    /* a kernel along x only: rows are y, so lag (0, 1) is correlated and (1, 0) is not */
    const double kx[9] = {0, 0, 0, 0, 1, 1, 0, 0, 0};
    CHECK_OK(check_kernel(kx, 3, "3 x 3 along x", msg_, cap_));
    double k5[25];
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
            k5[a * 5 + b] = exp(-((a - 2) * (a - 2) + 0.5 * (b - 2) * (b - 2) + 0.3 * (a - 2) *
                                  (b - 2)) / 2.0);
    CHECK_OK(check_kernel(k5, 5, "5 x 5 elliptical Gaussian", msg_, cap_));
    return TEST_PASS;
}

/* ---- size-magnitude population ---- */

/* Fluxes follow dN/dF ~ F^-alpha (the fraction below F is the CDF within binomial errors at
 * five quantiles), log10 hlr is normal (median, dex) truncated to the hlr range, the size
 * follows F^beta, and the snr column is the flux times the unit-flux stamp's SNR. */
TEST(realism_population_distributions)
{
    enum { CNT = 2000 };
    ds_sim_opts o = opts_c();
    o.count = CNT, o.size = 8, o.sky_sigma = 2, o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2;
    o.hlr_min = 0.5, o.hlr_max = 10, o.population = 1, o.pop_hlr_median = 1.2;
    o.pop_hlr_dex = 0.15, o.pop_flux_min = 50, o.pop_flux_max = 5000, o.pop_alpha = 1.8;
    o.pop_beta = 0.25;
    ds_tensor *x, *t;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    const double a1 = 1 - o.pop_alpha, lo = pow(50, a1), hi = pow(5000, a1);
    static const double qs[5] = {60, 100, 200, 600, 2000};
    for (int q = 0; q < 5; q++) {
        double cdf = (pow(qs[q], a1) - lo) / (hi - lo);
        int64_t below = 0;
        for (int64_t i = 0; i < CNT; i++)
            below += col(t, i, FLUX) < qs[q];
        CHECK_NEAR((double)below / CNT, cdf, 4 * sqrt(cdf * (1 - cdf) / CNT));
    }
    /* log10 hlr - beta log10(F / Fmin) is the log-normal: mean and scatter (the truncation
     * at 0.5 and 10 px is 2.5 sigma away at worst), and the regression
     * slope of log hlr on log F is beta */
    double sr = 0, sr2 = 0, sxx = 0, sxy = 0, sx = 0, sy = 0;
    for (int64_t i = 0; i < CNT; i++) {
        double h = col(t, i, HLR), lf = log10(col(t, i, FLUX) / 50);
        CHECK(h >= 0.5 && h <= 10);
        double r = log10(h) - 0.25 * lf;
        sr += r, sr2 += r * r;
        sx += lf, sy += log10(h), sxx += lf * lf, sxy += lf * log10(h);
    }
    double mr = sr / CNT, sd = sqrt(sr2 / CNT - mr * mr);
    CHECK_NEAR(mr, log10(1.2), 4 * 0.15 / sqrt(CNT) + 0.004);
    CHECK_NEAR(sd, 0.15, 0.01);
    double slope = (sxy / CNT - sx / CNT * sy / CNT) / (sxx / CNT - sx / CNT * sx / CNT);
    CHECK_NEAR(slope, 0.25, 0.03);
    /* the SNR follows from the flux (GalSim's definition, sky_sigma 2) */
    float img[8 * 8];
    for (int64_t i = 0; i < 20; i++) {
        ds_galaxy g = {col(t, i, N), col(t, i, HLR), col(t, i, FLUX), col(t, i, E1),
                       col(t, i, E2), col(t, i, DX), col(t, i, DY)};
        CHECK(ds_galaxy_render(&g, &o.psf, 8, img) == DS_OK);
        CHECK_NEAR(ds_image_snr(img, 64, 2), col(t, i, SNR), 1e-4 * col(t, i, SNR));
    }
    /* noisy stamps: the residual is the sky */
    double s2 = 0;
    for (int64_t i = 0; i < 200; i++) {
        ds_galaxy g = {col(t, i, N), col(t, i, HLR), col(t, i, FLUX), col(t, i, E1),
                       col(t, i, E2), col(t, i, DX), col(t, i, DY)};
        CHECK(ds_galaxy_render(&g, &o.psf, 8, img) == DS_OK);
        for (int p = 0; p < 64; p++) {
            double d = ds_tensor_data(x)[i * 64 + p] - img[p];
            s2 += d * d;
        }
    }
    CHECK_NEAR(sqrt(s2 / (200 * 64)), 2, 0.05);
    ds_tensor_free(x);
    ds_tensor_free(t);
    return TEST_PASS;
}

/* A narrow truncation far in the log-normal's tail still gives sizes inside the range, and
 * alpha = 1 (log-uniform fluxes) works; a given snr (no flux) sets the flux instead. */
TEST(realism_population_edges)
{
    ds_sim_opts o = opts_c();
    o.count = 200, o.size = 8, o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2;
    o.hlr_min = 3, o.hlr_max = 3.1, o.population = 1, o.pop_hlr_median = 0.3;
    o.pop_hlr_dex = 0.1, o.pop_alpha = 1;
    ds_tensor *x, *t;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    int64_t below = 0;
    for (int64_t i = 0; i < o.count; i++) {
        CHECK(col(t, i, HLR) >= 3 && col(t, i, HLR) <= 3.1);
        CHECK(col(t, i, FLUX) >= 60 * (1 - 1e-6) && col(t, i, FLUX) <= 6000 * (1 + 1e-6));
        below += col(t, i, FLUX) < 600;   /* log-uniform: half below the geometric middle */
    }
    CHECK_NEAR((double)below / o.count, 0.5, 4 * sqrt(0.25 / o.count));
    ds_tensor_free(x);
    ds_tensor_free(t);
    const int nc = NB_HLR + 1;   /* a params table's widest: the drawn columns */
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){200, nc});
    CHECK(par);
    for (int64_t i = 0; i < 200 * nc; i++)
        ds_tensor_data(par)[i] = NAN;
    ds_tensor_data(par)[3 * nc + SNR] = 25;
    o.params = par;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    CHECK_NEAR(col(t, 3, SNR), 25, 1e-4);
    ds_tensor_free(par);
    ds_tensor_free(x);
    ds_tensor_free(t);
    return TEST_PASS;
}

/* All three switches on: the same stamps and truth on 1 thread and on 2 (per-galaxy
 * streams, each stamp rendered by one thread). */
TEST(realism_thread_count_independent)
{
    static const double k3[9] = {0.1, 0.2, 0.1, 0.2, 1, 0.2, 0.1, 0.2, 0.1};
    ds_sim_opts o = opts_b();
    o.count = 30, o.nb_prob = 0.7, o.noise_kernel = k3, o.noise_kernel_size = 3;
    o.population = 1, o.snr_min = o.snr_max = 0, o.pop_beta = 0.3;
    ds_tensor *x1, *t1, *x2, *t2;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_sim_galaxies(&o, &x1, &t1);
    ds_set_num_threads(2);
    ds_status s2 = ds_sim_galaxies(&o, &x2, &t2);
    ds_set_num_threads(threads);
    CHECK(s1 == DS_OK && s2 == DS_OK);
    bool eq = !memcmp(ds_tensor_data(x1), ds_tensor_data(x2),
                      sizeof(float) * (size_t)ds_tensor_numel(x1)) &&
              !memcmp(ds_tensor_data(t1), ds_tensor_data(t2),
                      sizeof(float) * (size_t)ds_tensor_numel(t1));
    int64_t with = 0;
    for (int64_t i = 0; i < o.count; i++)
        with += col(t1, i, NB_FLUX) > 0;
    ds_tensor_free(x1);
    ds_tensor_free(t1);
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    CHECK(eq);
    CHECK(with > 0 && with < o.count);
    return TEST_PASS;
}

/* ---- bad options ---- */

static int expect_arg(ds_sim_opts *o, const char *word, char *msg_, size_t cap_)
{
    ds_tensor *x = NULL, *t = NULL;
    ds_status st = ds_sim_galaxies(o, &x, &t);
    if (st != DS_ERR_ARG || x || t)
        FAIL("expected DS_ERR_ARG and no outputs for '%s', got %s", word, ds_status_name(st));
    if (!strstr(ds_last_error(), word))
        FAIL("message '%s' does not mention '%s'", ds_last_error(), word);
    return 0;
}

TEST(realism_bad_options)
{
    const double even[4] = {1, 1, 1, 1}, zero[9] = {0}, nan9[9] = {0, 0, 0, 0, NAN, 0, 0, 0, 0};
    ds_sim_opts o;
    o = opts_c(), o.nb_prob = 1.5;
    CHECK_OK(expect_arg(&o, "neighbour probability = 1.5", msg_, cap_));
    o = opts_c(), o.nb_prob = 1, o.nb_r_min = 2, o.nb_r_max = 30;
    CHECK_OK(expect_arg(&o, "neighbour distance range [2, 30]", msg_, cap_));
    o = opts_c(), o.nb_prob = 1, o.nb_flux_min = 2, o.nb_flux_max = 1;
    CHECK_OK(expect_arg(&o, "neighbour flux ratio range [2, 1]", msg_, cap_));
    o = opts_c(), o.noise_kernel = even, o.noise_kernel_size = 2;
    CHECK_OK(expect_arg(&o, "noise kernel size = 2", msg_, cap_));
    o = opts_c(), o.noise_kernel_size = 3;
    CHECK_OK(expect_arg(&o, "given without a kernel", msg_, cap_));
    o = opts_c(), o.noise_kernel = zero, o.noise_kernel_size = 3;
    CHECK_OK(expect_arg(&o, "3 x 3 noise kernel is all zero", msg_, cap_));
    o = opts_c(), o.noise_kernel = nan9, o.noise_kernel_size = 3;
    CHECK_OK(expect_arg(&o, "noise kernel value 4 (row 1, column 1) is nan", msg_, cap_));
    o = opts_c(), o.population = 2;
    CHECK_OK(expect_arg(&o, "population = 2", msg_, cap_));
    o = opts_c(), o.population = 1, o.pop_alpha = -1;
    CHECK_OK(expect_arg(&o, "count slope alpha = -1", msg_, cap_));
    o = opts_c(), o.population = 1, o.pop_hlr_median = -2;
    CHECK_OK(expect_arg(&o, "hlr median = -2", msg_, cap_));
    o = opts_c(), o.population = 1, o.pop_flux_min = 10, o.pop_flux_max = 5;
    CHECK_OK(expect_arg(&o, "population flux range [10, 5]", msg_, cap_));
    o = opts_c(), o.population = 1, o.pop_beta = 5;
    CHECK_OK(expect_arg(&o, "size-flux slope beta = 5", msg_, cap_));
    return TEST_PASS;
}

/* ---- the command line tool ---- */

/* The images of a .npy output. */
static ds_tensor *load_npy(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ds_tensor *x = NULL;
    return ds_npy_load(p, &x) == DS_OK ? x : NULL;
}

static bool same(const ds_tensor *a, const ds_tensor *b)
{
    return a && b && ds_tensor_numel(a) == ds_tensor_numel(b) &&
           !memcmp(ds_tensor_data((ds_tensor *)a), ds_tensor_data((ds_tensor *)b),
                   sizeof(float) * (size_t)ds_tensor_numel(a));
}

/* Equal to float rounding: a kernel read from a file is float32 (0.1f is not 0.1). */
static bool close_to(const ds_tensor *a, const ds_tensor *b)
{
    if (!a || !b || ds_tensor_numel(a) != ds_tensor_numel(b))
        return false;
    for (int64_t i = 0; i < ds_tensor_numel(a); i++)
        if (!(fabs(ds_tensor_data((ds_tensor *)a)[i] - ds_tensor_data((ds_tensor *)b)[i]) <
              1e-5 * (1 + fabs(ds_tensor_data((ds_tensor *)a)[i]))))
            return false;
    return true;
}

/* Each flag gives what the library gives with the same options; an inline kernel, a .npy
 * kernel and a CSV kernel are the same kernel (to float32 rounding of the files' values). */
TEST(realism_cli_runs)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[] = "/tmp/deepsky_realism_XXXXXX", args[2048], p[512];
    CHECK(mkdtemp(dir));
    const char *base = "sim galaxies --count 10 --size 24 --seed 9 --threads 1";
    snprintf(args, sizeof args, "%s --neighbour 1 --neighbour-distance 3:6 --neighbour-flux "
             "0.2:0.5 -o %s/n.npy --truth %s/n.csv", base, dir, dir);
    int rc = cli_run("%s", args);
    if (rc)
        FAIL("exit %d: %s", rc, cli_out);
    snprintf(args, sizeof args, "%s --noise-kernel 0.1,0.2,0.1,0.2,1,0.2,0.1,0.2,0.1 "
             "-o %s/k.npy --truth %s/k.csv", base, dir, dir);
    if ((rc = cli_run("%s", args)))
        FAIL("exit %d: %s", rc, cli_out);
    /* the same kernel from a .npy file and from a CSV file */
    ds_tensor *kt = ds_tensor_create(2, (int64_t[]){3, 3});
    CHECK(kt);
    const float kv[9] = {0.1f, 0.2f, 0.1f, 0.2f, 1, 0.2f, 0.1f, 0.2f, 0.1f};
    memcpy(ds_tensor_data(kt), kv, sizeof kv);
    snprintf(p, sizeof p, "%s/kernel.npy", dir);
    CHECK(ds_npy_save(kt, p) == DS_OK);
    ds_tensor_free(kt);
    snprintf(args, sizeof args, "%s --noise-kernel %s -o %s/k2.npy --truth %s/k2.csv", base, p,
             dir, dir);
    if ((rc = cli_run("%s", args)))
        FAIL("exit %d: %s", rc, cli_out);
    snprintf(p, sizeof p, "%s/kernel.csv", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fprintf(f, "0.1,0.2,0.1\n0.2,1,0.2\n0.1,0.2,0.1\n");
    fclose(f);
    snprintf(args, sizeof args, "%s --noise-kernel %s -o %s/k3.npy --truth %s/k3.csv", base, p,
             dir, dir);
    if ((rc = cli_run("%s", args)))
        FAIL("exit %d: %s", rc, cli_out);
    snprintf(args, sizeof args, "%s --population --pop-hlr 2 --pop-hlr-dex 0.1 --pop-flux "
             "100:1000 --pop-slope 2 --pop-size-slope 0.2 -o %s/p.npy --truth %s/p.csv", base,
             dir, dir);
    if ((rc = cli_run("%s", args)))
        FAIL("exit %d: %s", rc, cli_out);
    /* the library with the same options */
    ds_sim_opts o = opts_a();
    o.count = 10, o.size = 24, o.seed = 9;
    const double k9[9] = {0.1, 0.2, 0.1, 0.2, 1, 0.2, 0.1, 0.2, 0.1};
    ds_sim_opts on = o, ok = o, op = o;
    on.nb_prob = 1, on.nb_r_min = 3, on.nb_r_max = 6, on.nb_flux_min = 0.2;
    on.nb_flux_max = 0.5;
    ok.noise_kernel = k9, ok.noise_kernel_size = 3;
    op.population = 1, op.pop_hlr_median = 2, op.pop_hlr_dex = 0.1, op.pop_flux_min = 100;
    op.pop_flux_max = 1000, op.pop_alpha = 2, op.pop_beta = 0.2;
    ds_sim_opts *lib[3] = {&on, &ok, &op};
    const char *files[3] = {"n.npy", "k.npy", "p.npy"};
    for (int j = 0; j < 3; j++) {
        ds_tensor *xi, *ti, *xc = load_npy(dir, files[j]);
        CHECK(ds_sim_galaxies(lib[j], &xi, &ti) == DS_OK);
        bool eq = same(xi, xc);
        ds_tensor_free(xi);
        ds_tensor_free(ti);
        ds_tensor_free(xc);
        if (!eq)
            FAIL("%s: the tool's images differ from the library's", files[j]);
    }
    ds_tensor *a = load_npy(dir, "k.npy"), *b = load_npy(dir, "k2.npy");
    ds_tensor *c = load_npy(dir, "k3.npy");
    bool eq = close_to(a, b) && close_to(a, c) && !same(a, b);
    ds_tensor_free(a);
    ds_tensor_free(b);
    ds_tensor_free(c);
    CHECK(eq);
    /* the truth names the neighbour's columns */
    snprintf(p, sizeof p, "%s/n.csv", dir);
    char *names = ds_table_columns(p, NULL);
    CHECK(names && strstr(names, "nb_flux") && strstr(names, "nb_hlr"));
    free(names);
    test_rm_rf(dir);
    return TEST_PASS;
}

/* Usage errors name the flag and the value (exit 2); a bad kernel file names the file. */
TEST(realism_cli_errors)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[] = "/tmp/deepsky_realism_XXXXXX", args[2048], out[600];
    CHECK(mkdtemp(dir));
    snprintf(out, sizeof out, "-o %s/x.npy --truth %s/x.csv", dir, dir);
    static const struct {
        const char *flags;
        int status;
        const char *text;
    } cases[] = {
        {"--neighbour 2", 2, "option '--neighbour': '2'"},
        {"--neighbour 0", 2, "option '--neighbour': '0' must be > 0"},
        {"--neighbour x", 2, "option '--neighbour': 'x'"},
        {"--neighbour-flux 0.1:1", 2, "option '--neighbour-flux' needs --neighbour"},
        {"--neighbour 1 --neighbour-distance 5:2", 2,
         "option '--neighbour-distance': '5:2' is not a number or range"},
        {"--neighbour 1 --neighbour-distance 1:40", 2,
         "option '--neighbour-distance': '1:40' is not a number or range MIN:MAX within [0, 32]"},
        {"--neighbour 0.5 --neighbour-flux 0", 2, "option '--neighbour-flux': '0'"},
        {"--noise-kernel 1,2,3", 2, "option '--noise-kernel': '1,2,3' has 3 values"},
        {"--noise-kernel 0,0,0,0,0,0,0,0,0", 2, "option '--noise-kernel': '0,0,0,0,0,0,0,0,0' is "
         "all zero"},
        {"--noise-kernel 1,2,nan,1,1,1,1,1,1", 2, "option '--noise-kernel': value 3 of"},
        {"--noise-kernel /nonexistent/k.npy", 1, "/nonexistent/k.npy"},
        {"--pop-slope 2", 2, "option '--pop-slope' needs --population"},
        {"--population --snr 10:20", 2, "options '--population' and '--snr' exclude each other"},
        {"--population --pop-slope -1", 2, "option '--pop-slope'"},
        {"--population --pop-flux 100:10", 2, "option '--pop-flux': '100:10'"},
        {"--population --pop-hlr 0", 2, "option '--pop-hlr'"},
        {"--population --pop-hlr-dex 5", 2, "option '--pop-hlr-dex'"},
        {"--population --pop-size-slope 4", 2, "option '--pop-size-slope'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "sim galaxies --count 3 %s %s", cases[i].flags, out);
        CHECK_OK(cli_expect(cli_run("%s", args), cases[i].status, cases[i].text, msg_, cap_));
    }
    /* a kernel file of 4 values names the file and the count */
    char p[512];
    snprintf(p, sizeof p, "%s/k4.csv", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fprintf(f, "1,2\n3,4\n");
    fclose(f);
    snprintf(args, sizeof args, "sim galaxies --count 3 --noise-kernel %s %s", p, out);
    CHECK_OK(cli_expect(cli_run("%s", args), 1, "k4.csv: the noise kernel has 4 values", msg_, cap_));
    CHECK(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/x.npy", dir);
    CHECK(access(p, F_OK) != 0);   /* nothing written on an error */
    test_rm_rf(dir);
    return TEST_PASS;
}
