/* test_shear.c - shear in the simulator (composition law against matrices, round Gaussians,
 * 90-degree pairs, shear cycles), the shear-bias estimator on planted m and c, and the
 * measure and shear-bias commands. */
#include "test.h"
#include "spawn.h"

#include <unistd.h>

/* ---- the composition law ---- */

/* The area-preserving shear matrix of eps ellipticity x: it maps the unit circle onto an
 * ellipse of that ellipticity. */
static void shear_matrix(double x1, double x2, double s[4])
{
    double f = 1 / sqrt(1 - x1 * x1 - x2 * x2);
    s[0] = f * (1 + x1), s[1] = f * x2, s[2] = f * x2, s[3] = f * (1 - x1);
}

/* eps of the shape A (unit circle): Q = A A^T, distortion, then eps. */
static void eps_of(const double a[4], double *e1, double *e2)
{
    double qxx = a[0] * a[0] + a[1] * a[1], qyy = a[2] * a[2] + a[3] * a[3];
    double qxy = a[0] * a[2] + a[1] * a[3];
    double c1 = (qxx - qyy) / (qxx + qyy), c2 = 2 * qxy / (qxx + qyy);
    double f = 1 / (1 + sqrt(1 - c1 * c1 - c2 * c2));
    *e1 = c1 * f, *e2 = c2 * f;
}

TEST(shear_compose_matrix)
{
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int t = 0; t < 200; t++) {
        double e = 0.9 * sqrt(ds_rng_uniform(&r)), a = 2 * M_PI * ds_rng_uniform(&r);
        double g = 0.3 * ds_rng_uniform(&r), b = 2 * M_PI * ds_rng_uniform(&r);
        double e1 = e * cos(a), e2 = e * sin(a), g1 = g * cos(b), g2 = g * sin(b);
        double se[4], sg[4], m[4], w1, w2, x1 = e1, x2 = e2;
        shear_matrix(e1, e2, se);
        shear_matrix(g1, g2, sg);
        eps_of(se, &w1, &w2);   /* the matrix of e has ellipticity e */
        CHECK_NEAR(w1, e1, 1e-12);
        CHECK_NEAR(w2, e2, 1e-12);
        for (int i = 0; i < 2; i++)   /* the lens acts after the intrinsic shape: S(g) S(e) */
            for (int j = 0; j < 2; j++)
                m[2 * i + j] = sg[2 * i] * se[j] + sg[2 * i + 1] * se[2 + j];
        eps_of(m, &w1, &w2);
        CHECK(ds_ellipticity_shear(&x1, &x2, g1, g2) == DS_OK);
        CHECK_NEAR(x1, w1, 1e-12);
        CHECK_NEAR(x2, w2, 1e-12);
    }
    double x1 = 0.2, x2 = 0;
    CHECK(ds_ellipticity_shear(&x1, &x2, 0.6, 0.8) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "|g| < 1"));
    x1 = 1;
    CHECK(ds_ellipticity_shear(&x1, &x2, 0.1, 0) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "|e| < 1"));
    CHECK(ds_ellipticity_shear(NULL, &x2, 0.1, 0) == DS_ERR_ARG);
    return TEST_PASS;
}

/* ---- the simulator ---- */

static int ncols(void)
{
    int k = 0;
    while (ds_sim_columns()[k])
        k++;
    return k;
}

static int col(const char *name)
{
    for (int j = 0; ds_sim_columns()[j]; j++)
        if (!strcmp(ds_sim_columns()[j], name))
            return j;
    return -1;
}

/* eps of a stamp by adaptive moments, the pixel's 1/12 taken off the second moments
 * (exact for a Gaussian up to the box's fourth moments, negligible at sigma 3.4 px). */
static int measure_eps(const float *img, int size, double *e1, double *e2)
{
    ds_moments m;
    if (ds_adaptive_moments(img, size, 0, &m) != DS_OK || m.flag)
        return -1;
    double xx = m.mxx - 1.0 / 12, yy = m.myy - 1.0 / 12, xy = m.mxy;
    double c1 = (xx - yy) / (xx + yy), c2 = 2 * xy / (xx + yy);
    double f = 1 / (1 + sqrt(1 - c1 * c1 - c2 * c2));
    *e1 = c1 * f, *e2 = c2 * f;
    return 0;
}

/* Round Gaussians (n = 0.5), no PSF, no noise. */
static ds_sim_opts gauss_opts(int64_t count, double e_max)
{
    ds_sim_opts o = {0};
    o.count = count, o.size = 48, o.seed = 3;
    o.n_min = o.n_max = 0.5, o.hlr_min = o.hlr_max = 4, o.e_max = e_max;
    o.psf.kind = DS_PSF_NONE;
    return o;
}

TEST(shear_round_gaussian)
{
    const double gs[][2] = {{0.02, 0}, {0, -0.05}, {0.1, 0.1}, {-0.3, 0.2}, {0.5, -0.4}};
    const int nc = ncols();
    const int g1 = col("g1");   /* the shear's block follows dy */
    CHECK(nc >= 13 && g1 > col("dy") && col("g2") == g1 + 1 && col("e1_int") == g1 + 2 &&
          col("e2_int") == g1 + 3);
    for (size_t k = 0; k < sizeof gs / sizeof gs[0]; k++) {
        ds_sim_opts o = gauss_opts(1, 0);
        o.g1 = gs[k][0], o.g2 = gs[k][1];
        ds_tensor *x, *t;
        CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
        const float *tr = ds_tensor_data(t);
        CHECK(tr[col("g1")] == (float)o.g1 && tr[col("g2")] == (float)o.g2);
        CHECK(tr[col("e1_int")] == 0 && tr[col("e2_int")] == 0);
        CHECK(tr[0] == (float)o.g1 && tr[1] == (float)o.g2);   /* round: e = g */
        double e1, e2, g2 = o.g1 * o.g1 + o.g2 * o.g2;
        CHECK(measure_eps(ds_tensor_data(x), 48, &e1, &e2) == 0);
        /* the measured distortion 2 e / (1 + |e|^2) is 2 g / (1 + |g|^2) */
        double d1 = 2 * e1 / (1 + e1 * e1 + e2 * e2), d2 = 2 * e2 / (1 + e1 * e1 + e2 * e2);
        /* measured to 3e-5 relative at |g| = 0.64 (the pixel box's non-Gaussian moments) */
        double w1 = 2 * o.g1 / (1 + g2), w2 = 2 * o.g2 / (1 + g2);
        CHECK_NEAR(d1, w1, 2e-6 + 5e-5 * fabs(w1));
        CHECK_NEAR(d2, w2, 2e-6 + 5e-5 * fabs(w2));
        ds_tensor_free(x);
        ds_tensor_free(t);
    }
    return TEST_PASS;
}

/* Pairs: the rows of a pair share every parameter but the intrinsic shape, negated; the
 * pair's mean measured shape is the composition law's mean, and responds to g. */
TEST(shear_pairs)
{
    const int nc = ncols(), n = 40;
    ds_sim_opts o = gauss_opts(n, 0.5);
    o.hlr_min = 2, o.hlr_max = 3.5, o.offset_max = 0.5, o.pairs = 1;
    o.g1 = 0.05, o.g2 = -0.03;
    ds_tensor *x, *t, *x0, *t0;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    o.g1 = o.g2 = 0;
    CHECK(ds_sim_galaxies(&o, &x0, &t0) == DS_OK);
    const float *tr = ds_tensor_data(t), *tr0 = ds_tensor_data(t0);
    const int i1 = col("e1_int"), i2 = col("e2_int");
    double mean[2] = {0, 0};
    for (int p = 0; p < n / 2; p++) {
        const float *a = tr + 2 * p * nc, *b = a + nc;
        CHECK(a[i1] + b[i1] == 0 && a[i2] + b[i2] == 0 && a[i1] != 0);   /* exact */
        for (int j = 2; j < 9; j++)
            CHECK(a[j] == b[j]);
        CHECK(tr0[2 * p * nc] == a[i1] && tr0[2 * p * nc + 1] == a[i2]);   /* g = 0: e = e_int */
        double m[2][2], want[2] = {0, 0};
        for (int s = 0; s < 2; s++) {
            CHECK(measure_eps(ds_tensor_data(x) + (2 * p + s) * 48 * 48, 48, &m[s][0],
                              &m[s][1]) == 0);
            double w1 = tr[(2 * p + s) * nc + i1], w2 = tr[(2 * p + s) * nc + i2];
            CHECK(ds_ellipticity_shear(&w1, &w2, 0.05, -0.03) == DS_OK);
            CHECK_NEAR(tr[(2 * p + s) * nc], w1, 1e-6);
            want[0] += w1 / 2, want[1] += w2 / 2;
        }
        for (int k = 0; k < 2; k++) {
            double pm = (m[0][k] + m[1][k]) / 2;
            CHECK_NEAR(pm, want[k], 2e-4);
            mean[k] += pm / (n / 2);
        }
        /* unsheared, the pair's measured shapes cancel */
        double z[2][2];
        for (int s = 0; s < 2; s++)
            CHECK(measure_eps(ds_tensor_data(x0) + (2 * p + s) * 48 * 48, 48, &z[s][0],
                              &z[s][1]) == 0);
        CHECK_NEAR(z[0][0] + z[1][0], 0, 2e-4);
        CHECK_NEAR(z[0][1] + z[1][1], 0, 2e-4);
    }
    /* the response: the mean is g up to the pairs' e^2 g terms, which average out */
    CHECK_NEAR(mean[0], 0.05, 0.01);
    CHECK_NEAR(mean[1], -0.03, 0.01);
    ds_tensor_free(x);
    ds_tensor_free(t);
    ds_tensor_free(x0);
    ds_tensor_free(t0);
    return TEST_PASS;
}

/* A shear cycle of pairs: 8 rows share a galaxy, flux and SNR; each rotation's noise is the
 * same under the four shears, and the two rotations' noises differ. */
TEST(shear_cycle_noise)
{
    const int nc = ncols(), n = 16, S = 24;
    ds_sim_opts o = {0};
    o.count = n, o.size = S, o.seed = 9, o.n_min = 0.5, o.n_max = 4, o.hlr_min = 1.5;
    o.hlr_max = 3, o.e_max = 0.6, o.snr_min = 20, o.snr_max = 40, o.sky_sigma = 1;
    o.offset_max = 0.5, o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2, o.pairs = 1;
    o.shear_cycle = 0.02;
    ds_tensor *x, *t, *x1, *t1;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    ds_set_num_threads(2);
    CHECK(ds_sim_galaxies(&o, &x1, &t1) == DS_OK);
    ds_set_num_threads(threads);
    CHECK(!memcmp(ds_tensor_data(x), ds_tensor_data(x1), sizeof(float) * n * S * S));
    CHECK(!memcmp(ds_tensor_data(t), ds_tensor_data(t1), sizeof(float) * n * nc));
    const float *tr = ds_tensor_data(t);
    static const float sg[4][2] = {{1, 1}, {-1, 1}, {1, -1}, {-1, -1}};
    float *noise = malloc(sizeof *noise * n * S * S);
    CHECK(noise);
    for (int i = 0; i < n; i++) {
        const float *r = tr + i * nc, *f = tr + (i - i % 8) * nc;
        for (int j = 2; j < 9; j++)   /* n, hlr, flux, snr, psf_fwhm, dx, dy */
            CHECK(r[j] == f[j]);
        CHECK(r[col("g1")] == 0.02f * sg[i % 8 / 2][0] && r[col("g2")] == 0.02f * sg[i % 8 / 2][1]);
        CHECK(r[col("e1_int")] == (i % 2 ? -f[col("e1_int")] : f[col("e1_int")]));
        ds_galaxy g = {r[2], r[3], r[4], r[0], r[1], r[7], r[8]};
        ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = r[6]};
        CHECK(ds_galaxy_render(&g, &psf, S, noise + i * S * S) == DS_OK);
        for (int p = 0; p < S * S; p++)
            noise[i * S * S + p] = ds_tensor_data(x)[i * S * S + p] - noise[i * S * S + p];
    }
    for (int i = 0; i < n; i++) {
        const float *a = noise + i * S * S, *b = noise + (i - i % 8 + i % 2) * S * S;
        const float *c = noise + (i ^ 1) * S * S;
        double d_same = 0, d_other = 0;
        for (int p = 0; p < S * S; p++) {
            d_same = fmax(d_same, fabs(a[p] - b[p]));
            d_other = fmax(d_other, fabs(a[p] - c[p]));
        }
        CHECK(d_same < 1e-3 && d_other > 0.5);
    }
    free(noise);
    ds_tensor_free(x);
    ds_tensor_free(t);
    ds_tensor_free(x1);
    ds_tensor_free(t1);
    /* without pairs: groups of 4, one intrinsic shape under the four shears */
    o.pairs = 0, o.count = 8;
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    tr = ds_tensor_data(t);
    for (int i = 0; i < 8; i++) {
        const float *r = tr + i * nc, *f = tr + (i - i % 4) * nc;
        CHECK(r[col("e1_int")] == f[col("e1_int")] && r[col("e2_int")] == f[col("e2_int")]);
        CHECK(r[col("g1")] == 0.02f * sg[i % 4][0] && r[col("g2")] == 0.02f * sg[i % 4][1]);
        CHECK(r[3] == f[3] && r[4] == f[4]);
    }
    CHECK(tr[col("e1_int")] != tr[4 * nc + col("e1_int")]);   /* the next group: another galaxy */
    ds_tensor_free(x);
    ds_tensor_free(t);
    return TEST_PASS;
}

TEST(shear_sim_errors)
{
    ds_tensor *x, *t;
    ds_sim_opts o = gauss_opts(4, 0.5);
    o.g1 = 0.8, o.g2 = 0.6;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "shear (0.8, 0.6) must have |g| < 1",
                        msg_, cap_));
    o = gauss_opts(7, 0.5), o.pairs = 1;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "count 7 is not a multiple of 2", msg_,
                        cap_));
    o = gauss_opts(12, 0.5), o.pairs = 1, o.shear_cycle = 0.02;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "not a multiple of 8", msg_, cap_));
    o = gauss_opts(8, 0.5), o.shear_cycle = 0.02, o.g1 = 0.01;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "exclude each other", msg_, cap_));
    o = gauss_opts(8, 0.5), o.shear_cycle = 0.8;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "shear_cycle 0.8", msg_, cap_));
    /* a params row of a pair's second galaxy may only repeat the first's */
    ds_tensor *par = ds_tensor_create(2, (int64_t[]){4, 9});
    for (int i = 0; i < 36; i++)
        ds_tensor_data(par)[i] = NAN;
    ds_tensor_data(par)[3 * 9 + 3] = 2.5f;   /* hlr of row 3 */
    o = gauss_opts(4, 0.5), o.pairs = 1, o.params = par;
    CHECK_OK(check_arg_error(ds_sim_galaxies(&o, &x, &t), "galaxy 3: params hlr = 2.5 differs", msg_,
                        cap_));
    ds_tensor_data(par)[2 * 9 + 3] = 2.5f;   /* the same in row 2: fine */
    CHECK(ds_sim_galaxies(&o, &x, &t) == DS_OK);
    CHECK(ds_tensor_data(t)[3 * ncols() + 3] == 2.5f);
    ds_tensor_free(x);
    ds_tensor_free(t);
    ds_tensor_free(par);
    return TEST_PASS;
}

/* ---- the estimator ---- */

/* Synthetic outputs of an estimator: shear cycles of pairs (groups of 8) with intrinsic
 * shapes cancelling in each pair, e = (1 + m) g + c + e_int + noise. */
static void synthetic(int64_t n, double m1, double m2, double c1, double c2, double sigma,
                      uint64_t seed, float *e, float *g)
{
    ds_rng r;
    ds_rng_seed(&r, seed);
    double ei[2] = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        if (i % 2 == 0) {
            double a = 0.6 * sqrt(ds_rng_uniform(&r)), th = 2 * M_PI * ds_rng_uniform(&r);
            ei[0] = a * cos(th), ei[1] = a * sin(th);
        }
        int k = (int)(i % 8) / 2;
        double s = i % 2 ? -1 : 1;
        g[2 * i] = k & 1 ? -0.02f : 0.02f;
        g[2 * i + 1] = k & 2 ? -0.02f : 0.02f;
        e[2 * i] = (float)((1 + m1) * g[2 * i] + c1 + s * ei[0] + sigma * ds_rng_normal(&r));
        e[2 * i + 1] = (float)((1 + m2) * g[2 * i + 1] + c2 + s * ei[1] + sigma * ds_rng_normal(&r));
    }
}

TEST(shear_bias_planted)
{
    enum { N = 4000, SEEDS = 60 };
    float *e = malloc(sizeof *e * 2 * 4 * N), *g = malloc(sizeof *g * 2 * 4 * N);
    CHECK(e && g);
    const double m1 = 0.03, m2 = -0.05, c1 = 2e-3, c2 = -1e-3;
    ds_shear_bias_opts o = {8, 300, 1};
    int in1 = 0, in2 = 0, total = 0;
    double s_dev = 0, s_err = 0;
    for (int s = 0; s < SEEDS; s++) {
        synthetic(N, m1, m2, c1, c2, 0.1, 100 + (uint64_t)s, e, g);
        ds_shear_bias_result r;
        CHECK(ds_shear_bias(e, g, N, &o, &r) == DS_OK);
        CHECK(r.rows == N && r.groups == N / 8 && r.dropped_groups == 0);
        double want[4] = {m1, m2, c1, c2}, got[4] = {r.m[0], r.m[1], r.c[0], r.c[1]};
        double err[4] = {r.m_err[0], r.m_err[1], r.c_err[0], r.c_err[1]};
        for (int q = 0; q < 4; q++) {
            double z = fabs(got[q] - want[q]) / err[q];
            in1 += z < 1;
            in2 += z < 2;
            total++;
            CHECK(z < 4.5);
        }
        s_dev += (got[0] - m1) * (got[0] - m1);
        s_err += err[0] * err[0];
    }
    /* coverage: 68% and 95% of the values within 1 and 2 error bars (binomial slack) */
    double f1 = (double)in1 / total, f2 = (double)in2 / total;
    if (!(f1 > 0.56 && f1 < 0.80 && f2 > 0.89))
        FAIL("coverage within 1 sigma %.2f, 2 sigma %.2f", f1, f2);
    double ratio = sqrt(s_dev / s_err);   /* scatter of m1 over seeds / its error bar */
    if (!(ratio > 0.75 && ratio < 1.3))
        FAIL("the scatter of m1 over seeds is %.2f times its error bar", ratio);
    /* errors shrink as 1 / sqrt(N) */
    ds_shear_bias_result a, b;
    synthetic(N, m1, m2, c1, c2, 0.1, 7, e, g);
    CHECK(ds_shear_bias(e, g, N, &o, &a) == DS_OK);
    synthetic(4 * N, m1, m2, c1, c2, 0.1, 8, e, g);
    CHECK(ds_shear_bias(e, g, 4 * N, &o, &b) == DS_OK);
    for (int k = 0; k < 2; k++) {
        CHECK_NEAR(a.m_err[k] / b.m_err[k], 2, 0.3);
        CHECK_NEAR(a.c_err[k] / b.c_err[k], 2, 0.3);
    }
    free(e);
    free(g);
    snprintf(msg_, cap_, "%d estimates: %.0f%% within 1 error bar, %.0f%% within 2; scatter / "
             "error %.2f; error ratio for 4x N %.2f", total, 100 * f1, 100 * f2, ratio,
             a.m_err[0] / b.m_err[0]);
    return TEST_PASS;
}

/* NaN drops the whole group (the fit then equals the fit without it); the same result at
 * any thread count; errors name the row. */
TEST(shear_bias_rules)
{
    enum { N = 800 };
    float e[2 * N], g[2 * N];
    synthetic(N, 0.01, 0.02, 0, 0, 0.05, 3, e, g);
    ds_shear_bias_opts o = {8, 200, 5};
    ds_shear_bias_result a, b, c;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    CHECK(ds_shear_bias(e, g, N, &o, &a) == DS_OK);
    ds_set_num_threads(2);
    CHECK(ds_shear_bias(e, g, N, &o, &b) == DS_OK);
    ds_set_num_threads(threads);
    CHECK(!memcmp(&a, &b, sizeof a));
    e[2 * 13 + 1] = NAN;   /* row 13: group 1 (rows 8..15) */
    CHECK(ds_shear_bias(e, g, N, &o, &b) == DS_OK);
    CHECK(b.dropped_groups == 1 && b.dropped_rows == 8 && b.rows == N - 8 && b.groups == N / 8 - 1);
    memmove(e + 16, e + 32, sizeof(float) * 2 * (N - 16));   /* the same without rows 8..15 */
    memmove(g + 16, g + 32, sizeof(float) * 2 * (N - 16));
    CHECK(ds_shear_bias(e, g, N - 8, &o, &c) == DS_OK);
    CHECK(b.m[0] == c.m[0] && b.m[1] == c.m[1] && b.c[0] == c.c[0] && b.c[1] == c.c[1]);
    /* errors */
    synthetic(N, 0.01, 0.02, 0, 0, 0.05, 3, e, g);
    e[2 * 7] = INFINITY;
    CHECK_OK(check_arg_error(ds_shear_bias(e, g, N, &o, &c), "row 7: measured e (inf", msg_, cap_));
    synthetic(N, 0.01, 0.02, 0, 0, 0.05, 3, e, g);
    g[2 * 3 + 1] = 1.5f;
    CHECK_OK(check_arg_error(ds_shear_bias(e, g, N, &o, &c), "row 3: shear (-0.02, 1.5)", msg_, cap_));
    CHECK_OK(check_arg_error(ds_shear_bias(e, g, N - 3, &o, &c), "not a positive multiple of the group "
                        "of 8", msg_, cap_));
    synthetic(N, 0.01, 0.02, 0, 0, 0.05, 3, e, g);
    for (int i = 0; i < N; i++)
        g[2 * i] = 0.02f;
    CHECK_OK(check_arg_error(ds_shear_bias(e, g, N, &o, &c), "g1 takes the single value 0.02", msg_,
                        cap_));
    for (int i = 0; i < N; i++)
        e[2 * i] = NAN;
    CHECK_OK(check_arg_error(ds_shear_bias(e, g, N, &o, &c), "every one of the 100 groups", msg_, cap_));
    CHECK_OK(check_arg_error(ds_shear_bias(NULL, g, N, &o, &c), "must not be NULL", msg_, cap_));
    return TEST_PASS;
}

/* ---- the command line ---- */

static int save_npy(const char *path, int nd, const int64_t *shape, const float *data)
{
    ds_tensor *t = ds_tensor_from(nd, shape, data);
    int rc = !t || ds_npy_save(t, path) != DS_OK;
    ds_tensor_free(t);
    return rc;
}

TEST(shear_cli_sim)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[] = "/tmp/deepsky_shear_XXXXXX", a[2048];
    CHECK(mkdtemp(dir));
    snprintf(a, sizeof a, "sim galaxies --count 16 --size 20 --pairs --shear-cycle 0.03 -o %s/x.npy "
             "--truth %s/t.csv", dir, dir);
    int rc = cli_run("%s", a);
    if (rc)
        FAIL("exit %d: %s", rc, cli_out);
    snprintf(a, sizeof a, "%s/t.csv", dir);
    char *names = ds_table_columns(a, NULL);
    CHECK(names && strstr(names, "dy,") && strstr(names, ",g1,g2,e1_int,e2_int"));
    free(names);
    ds_tensor *t;
    CHECK(ds_array_load(a, NULL, &t) == DS_OK && ds_tensor_shape(t)[1] == ncols());
    /* the library with the same options gives the same table */
    ds_sim_opts o = {0};
    o.count = 16, o.size = 20, o.n_min = 0.5, o.n_max = 6, o.hlr_min = 1.5, o.hlr_max = 5;
    o.e_max = 0.6, o.snr_min = 10, o.snr_max = 100, o.sky_sigma = 1, o.offset_max = 0.5;
    o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2, o.psf_fwhm_min = o.psf_fwhm_max = 2;
    o.pairs = 1, o.shear_cycle = 0.03;
    ds_tensor *x2, *t2;
    CHECK(ds_sim_galaxies(&o, &x2, &t2) == DS_OK);
    for (int i = 0; i < 16 * ncols(); i++)
        CHECK(fabsf(ds_tensor_data(t)[i] - ds_tensor_data(t2)[i]) <= 1e-6f * fabsf(ds_tensor_data(t2)[i]));
    ds_tensor_free(t);
    ds_tensor_free(x2);
    ds_tensor_free(t2);
    snprintf(a, sizeof a, "sim galaxies --count 4 --shear 0.1,-0.05 -o %s/y.npy --truth %s/y.csv",
             dir, dir);
    CHECK(cli_run("%s", a) == 0);
    snprintf(a, sizeof a, "%s/y.csv", dir);
    ds_read_opts ro = {.columns = "g1,g2"};
    CHECK(ds_array_load(a, &ro, &t) == DS_OK);
    CHECK(ds_tensor_data(t)[6] == 0.1f && ds_tensor_data(t)[7] == -0.05f);
    ds_tensor_free(t);
    static const struct { const char *args, *msg; } bad[] = {
        {"--count 4 --shear 0.8,0.8", "option '--shear': |g| = 1.13137 must be < 1"},
        {"--count 4 --shear 0.1", "option '--shear': '0.1' is not two numbers G1,G2"},
        {"--count 4 --shear 0.1,x", "'0.1,x' is not two numbers"},
        {"--count 7 --pairs", "--pairs needs an even number of galaxies (7)"},
        {"--count 6 --shear-cycle 0.02", "--shear-cycle needs a number of galaxies that is a "
                                         "multiple of 4 (6)"},
        {"--count 12 --pairs --shear-cycle 0.02", "--shear-cycle with --pairs needs a number of "
                                                   "galaxies that is a multiple of 8 (12)"},
        {"--count 8 --shear 0.1,0 --shear-cycle 0.02", "--shear and --shear-cycle exclude"},
        {"--count 8 --shear-cycle 0.9", "option '--shear-cycle'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(a, sizeof a, "sim galaxies %s -o %s/z.fits --truth %s/z.csv", bad[k].args, dir,
                 dir);
        CHECK_OK(cli_expect(cli_run("%s", a), 2, bad[k].msg, msg_, cap_));
    }
    snprintf(a, sizeof a, "%s/p.csv", dir);
    FILE *f = fopen(a, "w");
    CHECK(f);
    fprintf(f, "n\n1\n2\n3\n");
    fclose(f);
    snprintf(a, sizeof a, "sim galaxies --params %s/p.csv --pairs -o %s/z.fits --truth %s/z.csv",
             dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 2, "--pairs needs an even number of galaxies (3)", msg_, cap_));
    snprintf(a, sizeof a, "rm -rf '%s'", dir);
    CHECK(system(a) == 0);
    return TEST_PASS;
}

/* measure: one PSF or one per stamp give the library's values; shear-bias: the library's
 * fit of the same rows, thread-count independent, and errors that name file and row. */
TEST(shear_cli_measure_bias)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    enum { N = 64, S = 24 };
    char dir[] = "/tmp/deepsky_shear_XXXXXX", a[3072], p[512];
    CHECK(mkdtemp(dir));
    snprintf(a, sizeof a, "sim galaxies --count %d --size %d --pairs --shear-cycle 0.05 --snr 0 "
             "--n 0.5:2 --hlr 2:4 --seed 2 -o %s/x.npy --truth %s/t.csv --threads 1", N, S, dir, dir);
    CHECK(cli_run("%s", a) == 0);
    float psf[S * S], *cube = malloc(sizeof *cube * N * S * S);
    ds_psf ps = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2};
    CHECK(cube && ds_psf_render(&ps, S, psf) == DS_OK);
    for (int i = 0; i < N; i++)
        memcpy(cube + i * S * S, psf, sizeof psf);
    snprintf(p, sizeof p, "%s/psf.npy", dir);
    CHECK(save_npy(p, 2, (int64_t[]){S, S}, psf) == 0);
    snprintf(p, sizeof p, "%s/cube.npy", dir);
    CHECK(save_npy(p, 4, (int64_t[]){N, 1, S, S}, cube) == 0);
    free(cube);
    snprintf(a, sizeof a, "measure --method linear --data %s/x.npy --psf %s/psf.npy -o %s/m.csv",
             dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 0, "measured 64 stamps (linear): 0 failed", msg_, cap_));
    snprintf(a, sizeof a, "measure --method linear --data %s/x.npy --psf %s/cube.npy -o %s/m.npy",
             dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 0, "measured 64 stamps", msg_, cap_));
    ds_tensor *mc, *mn, *x;
    snprintf(p, sizeof p, "%s/m.csv", dir);
    CHECK(ds_array_load(p, NULL, &mc) == DS_OK && ds_tensor_shape(mc)[1] == 4);
    snprintf(p, sizeof p, "%s/m.npy", dir);
    CHECK(ds_npy_load(p, &mn) == DS_OK && ds_tensor_shape(mn)[0] == N);
    snprintf(p, sizeof p, "%s/x.npy", dir);
    CHECK(ds_npy_load(p, &x) == DS_OK);
    for (int i = 0; i < N; i++) {
        ds_shear s;
        CHECK(ds_shear_estimate(ds_tensor_data(x) + i * S * S, psf, S, 1, DS_SHEAR_LINEAR, &s) ==
              DS_OK);
        CHECK(ds_tensor_data(mn)[4 * i] == (float)s.e1 && ds_tensor_data(mn)[4 * i + 1] == (float)s.e2);
        CHECK(ds_tensor_data(mn)[4 * i + 3] == 0);
        CHECK_NEAR(ds_tensor_data(mc)[4 * i], s.e1, 1e-6);
    }
    ds_tensor_free(x);
    /* shear-bias: the library's fit of the same rows (groups of 8 inferred) */
    snprintf(p, sizeof p, "%s/t.csv", dir);
    ds_read_opts ro = {.columns = "g1,g2"};
    ds_tensor *g;
    CHECK(ds_array_load(p, &ro, &g) == DS_OK);
    float *e = malloc(sizeof *e * 2 * N);
    CHECK(e);
    for (int i = 0; i < N; i++)
        e[2 * i] = ds_tensor_data(mn)[4 * i], e[2 * i + 1] = ds_tensor_data(mn)[4 * i + 1];
    ds_shear_bias_opts bo = {8, 100, 4};
    ds_shear_bias_result r;
    CHECK(ds_shear_bias(e, ds_tensor_data(g), N, &bo, &r) == DS_OK);
    free(e);
    ds_tensor_free(g);
    snprintf(a, sizeof a, "shear-bias --truth %s/t.csv --measured %s/m.csv --boot 100 --seed 4 "
             "-o %s/b1.csv --threads 1", dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 0, "shear cycles of pairs of 8 rows (inferred)", msg_, cap_));
    CHECK_OK(cli_expect(0, 0, "Euclid requires |m| < 2e-3", msg_, cap_));
    CHECK_OK(cli_expect(0, 0, "m's error bar", msg_, cap_));
    snprintf(a, sizeof a, "shear-bias --truth %s/t.csv --measured %s/m.npy --boot 100 --seed 4 "
             "-o %s/b2.csv --threads 2", dir, dir, dir);
    CHECK(cli_run("%s", a) == 0);
    ds_tensor *b1, *b2;
    snprintf(p, sizeof p, "%s/b1.csv", dir);
    CHECK(ds_array_load(p, NULL, &b1) == DS_OK && ds_tensor_shape(b1)[1] == 13);
    snprintf(p, sizeof p, "%s/b2.csv", dir);
    CHECK(ds_array_load(p, NULL, &b2) == DS_OK);
    CHECK(!memcmp(ds_tensor_data(b1), ds_tensor_data(b2), sizeof(float) * 13));
    const float *row = ds_tensor_data(b1);
    CHECK(row[2] == N && row[4] == 0);
    CHECK_NEAR(row[5], r.m[0], 1e-6);
    CHECK_NEAR(row[6], r.m_err[0], 1e-6);
    CHECK_NEAR(row[11], r.c[1], 1e-7);
    ds_tensor_free(b1);
    ds_tensor_free(b2);
    ds_tensor_free(mn);
    ds_tensor_free(mc);
    /* bins by distinct values and by edges; a NaN drops its group */
    snprintf(p, sizeof p, "%s/m2.csv", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fprintf(f, "a,b\n");
    for (int i = 0; i < N; i++)
        fprintf(f, "%g,%s\n", 0.1 * (i % 2 ? -1 : 1) + 1.02 * 0.05 * (i % 8 / 2 % 2 ? -1 : 1),
                i == 9 ? "nan" : "0.05");
    fclose(f);
    snprintf(a, sizeof a, "shear-bias --truth %s/t.csv --measured %s/m2.csv --columns a,b "
             "--bin psf_fwhm", dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 0, "psf_fwhm = 2", msg_, cap_));
    CHECK_OK(cli_expect(0, 0, "       56        8  +0.02000 +- 0.00000", msg_, cap_));
    snprintf(a, sizeof a, "shear-bias --truth %s/t.csv --measured %s/m2.csv --columns a,b "
             "--bin hlr:2,3,4", dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 0, "hlr [3, 4)", msg_, cap_));
    /* bad input */
    static const struct { const char *args; int rc; const char *msg; } bad[] = {
        {"--truth @/t.csv", 2, "give --truth TABLE and --measured TABLE (as many of each: 1 and 0)"},
        {"--truth @/t.csv --measured @/m2.csv", 1, "m2.csv: no column 'e1' (columns: a, b) "
                                                     "(--columns names the measured e1, e2)"},
        {"--truth @/t.csv --measured @/m2.csv --columns a,zz", 1, "no column 'zz'"},
        {"--truth @/t.csv --measured @/psf.npy", 1, "psf.npy: the measurements are [24, 24], "
                                                     "expected [64, 2 or more]"},
        {"--truth @/t.csv --measured @/m.npy --columns a,b", 1, "m.npy: a .npy array has no "
                                                                 "column names"},
        {"--truth @/t.csv --measured @/m.npy --bin zz", 1, "--bin: ", },
        {"--truth @/t.csv --measured @/m.npy --bin snr:3,2", 2, "option '--bin': 'snr:3,2' is "
                                                                 "not COL:E0,E1"},
        {"--truth @/t.csv --measured @/m.npy --group 3", 1, "64 rows are not a whole number of "
                                                             "groups of 3"},
        {"--truth @/t.csv --measured @/m.npy -o @/b.txt", 2, "-o @/b.txt: the table is written "
                                                              "as .csv or .fits"},
        {"--truth @/m.csv --measured @/m.npy", 1, "m.csv: the truth table has no column 'g1'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char args[1024] = "shear-bias ", msg[512] = "";
        for (const char *s = bad[k].args; *s; s++)   /* @ stands for the folder */
            if (*s == '@')
                strcat(args, dir);
            else
                strncat(args, s, 1);
        for (const char *s = bad[k].msg; *s; s++)
            if (*s == '@')
                strcat(msg, dir);
            else
                strncat(msg, s, 1);
        CHECK_OK(cli_expect(cli_run("%s", args), bad[k].rc, msg, msg_, cap_));
    }
    /* an infinite measurement and a bad shear name their file and row */
    snprintf(p, sizeof p, "%s/m3.csv", dir);
    f = fopen(p, "w");
    CHECK(f);
    fprintf(f, "e1,e2\n");
    for (int i = 0; i < N; i++)
        fprintf(f, "0.1,%s\n", i == 5 ? "inf" : "0");
    fclose(f);
    snprintf(a, sizeof a, "shear-bias --truth %s/t.csv --measured %s/m3.csv", dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 1, "m3.csv: data row 6: e2 = inf", msg_, cap_));
    snprintf(a, sizeof a, "measure --method foo --data %s/x.npy --psf %s/psf.npy -o %s/q.csv",
             dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 2, "option '--method': 'foo' is not regauss or linear", msg_, cap_));
    snprintf(a, sizeof a, "measure --data %s/x.npy --psf %s/m.npy -o %s/q.csv", dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 1, "m.npy: PSF shape [64, 4] is neither one PSF [24, 24]", msg_,
                    cap_));
    snprintf(a, sizeof a, "measure --data %s/psf.npy --psf %s/psf.npy -o %s/q.txt", dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 2, "the table is written as .csv, .fits or .npy", msg_, cap_));
    snprintf(a, sizeof a, "measure --data %s/m.npy --psf %s/psf.npy -o %s/q.csv", dir, dir, dir);
    CHECK_OK(cli_expect(cli_run("%s", a), 1, "m.npy: shape [64, 4] is not stamps [N, S, S]", msg_, cap_));
    snprintf(a, sizeof a, "rm -rf '%s'", dir);
    CHECK(system(a) == 0);
    return TEST_PASS;
}
