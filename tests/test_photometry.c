/* test_photometry.c - the photometry simulator (src/astro/photometry.c): template colours
 * against synthetic photometry integrated here independently (to 1e-3 mag), the physics a
 * photo-z relies on (ellipticals redder, the 4000 A break and the Lyman break moving through
 * the bands), the noise model, the same tables at 1 and 2 threads, bad options named. */
#include "test.h"

#include <math.h>

/* -2.5 log10 of band b's filter-weighted mean of f_nu over d lambda / lambda, by Simpson's
 * rule on a 0.5 A grid, at z (below 1216 A rest frame not covered: z small here). */
static double synth(int type, int band, double z)
{
    double num = 0, den = 0, h = 0.5;
    int n = (int)((11400 - 2600) / h);
    for (int k = 0; k <= n; k++) {
        double l = 2600 + k * h, w = (k == 0 || k == n) ? 1 : (k & 1) ? 4 : 2;
        double t = ds_photo_filter(band, l) / l;
        num += w * t * ds_photo_sed(type, l / (1 + z));
        den += w * t;
    }
    return -2.5 * log10(num / den);
}

TEST(photometry_colours_match_synthetic_photometry)
{
    double worst = 0;
    const double zs[] = {0, 0.35};
    for (int t = 0; t < DS_PHOTO_TYPES; t++)
        for (int k = 0; k < 2; k++) {
            double m[DS_PHOTO_BANDS];
            CHECK_OK(ds_photo_colours(t, zs[k], m));
            double mi = synth(t, 3, zs[k]);
            for (int b = 0; b < DS_PHOTO_BANDS; b++) {
                double d = fabs(m[b] - (synth(t, b, zs[k]) - mi));
                worst = d > worst ? d : worst;
                if (d > 1e-3)
                    FAIL("type %s band %s z %.2f: colour %.5f, synthetic %.5f",
                         ds_photo_type_name(t), ds_photo_bands()[b], zs[k], m[b],
                         synth(t, b, zs[k]) - mi);
            }
        }
    snprintf(msg_, cap_, "worst colour difference %.1e mag", worst);
    return TEST_PASS;
}

/* g - r of an elliptical exceeds a starburst's; the elliptical's g - r grows as its 4000 A
 * break moves from below g into it (z 0 to 0.4); at z 3 the Lyman limit (3650 A) empties
 * half of u and the forest dims the rest: a u-band dropout of a flat-spectrum starburst. */
TEST(photometry_breaks_move_through_the_bands)
{
    double e0[6], e4[6], sb0[6], sb3[6];
    CHECK_OK(ds_photo_colours(0, 0, e0));
    CHECK_OK(ds_photo_colours(0, 0.4, e4));
    CHECK_OK(ds_photo_colours(4, 0, sb0));
    CHECK_OK(ds_photo_colours(4, 3, sb3));
    double gr_e0 = e0[1] - e0[2], gr_e4 = e4[1] - e4[2], gr_sb = sb0[1] - sb0[2];
    CHECK(gr_e0 > gr_sb + 0.4);
    CHECK(gr_e4 > gr_e0 + 0.4);
    CHECK(sb3[0] - sb3[1] > 1 && fabs(sb0[0] - sb0[1]) < 0.2);
    /* a mixed type lies between its two templates */
    double mid[6];
    CHECK_OK(ds_photo_colours(3.5, 0.8, mid));
    double a[6], b[6];
    CHECK_OK(ds_photo_colours(3, 0.8, a));
    CHECK_OK(ds_photo_colours(4, 0.8, b));
    for (int k = 0; k < 6; k++)
        CHECK(mid[k] >= fmin(a[k], b[k]) - 1e-6 && mid[k] <= fmax(a[k], b[k]) + 1e-6);
    snprintf(msg_, cap_, "g-r: E %.3f (z 0), %.3f (z 0.4), SB %.3f; SB u-g at z 3: %.2f", gr_e0,
             gr_e4, gr_sb, sb3[0] - sb3[1]);
    return TEST_PASS;
}

/* 20,000 galaxies: the ranges, the errors' calibration on detected bright ones (the spread
 * of (m_obs - m_true) / err near 1), and the same tables at 1 and 2 threads. */
TEST(photometry_simulator_noise_and_threads)
{
    ds_photo_opts o = {.count = 20000, .seed = 7, .mag_min = 18, .mag_max = 24, .z_max = 3};
    ds_tensor *x1, *t1, *x2, *t2;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_sim_photometry(&o, &x1, &t1);
    ds_set_num_threads(2);
    ds_status s2 = ds_sim_photometry(&o, &x2, &t2);
    ds_set_num_threads(threads);
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK(!memcmp(ds_tensor_data(x1), ds_tensor_data(x2), sizeof(float) * 20000 * 12));
    CHECK(!memcmp(ds_tensor_data(t1), ds_tensor_data(t2), sizeof(float) * 20000 * 3));
    const float *x = ds_tensor_data(x1), *t = ds_tensor_data(t1);
    double s = 0, s2sum = 0, zsum = 0;
    int n = 0, low = 0;
    for (int i = 0; i < 20000; i++) {
        const float *r = x + 12 * i, *u = t + 3 * i;
        CHECK(u[0] > 0 && u[0] <= 3 && u[1] >= 0 && u[1] <= 4 && u[2] >= 18 && u[2] <= 24);
        for (int b = 0; b < 12; b++)
            CHECK(isfinite(r[b]) && (b < 6 || r[b] > 0));
        double zz = (r[3] - u[2]) / r[9];
        s += zz, s2sum += zz * zz, n++;
        zsum += u[0];
        low += u[0] < 0.5;
    }
    double mean = s / n, sd = sqrt(s2sum / n - mean * mean);
    CHECK(fabs(mean) < 0.05);
    CHECK(fabs(sd - 1) < 0.05);   /* i < 24 is far above the i depth: errors are Gaussian */
    CHECK(zsum / n > 0.4 && zsum / n < 1.5 && low > 1000);
    snprintf(msg_, cap_, "i-band (m_obs - m_true) / err: mean %+.3f, std %.3f; mean z %.3f", mean,
             sd, zsum / n);
    ds_tensor *all[] = {x1, t1, x2, t2};
    for (int i = 0; i < 4; i++)
        ds_tensor_free(all[i]);
    return TEST_PASS;
}

TEST(photometry_bad_options)
{
    ds_tensor *x, *t;
    const struct {
        ds_photo_opts o;
        const char *text;
    } bad[] = {
        {{.count = 0, .mag_min = 18, .mag_max = 24, .z_max = 3}, "count 0 must be in [1, 1e8]"},
        {{.count = 5, .mag_min = 24, .mag_max = 18, .z_max = 3},
         "i-band range 24:18 must be increasing"},
        {{.count = 5, .mag_min = 18, .mag_max = 24, .z_max = 4}, "z_max 4 must be in (0, 3]"},
        {{.count = 5, .mag_min = 18, .mag_max = 24, .z_max = 3, .depth = {0, 0, 0, 0, 0, 50}},
         "y-band depth 50 must be 0 (the default, 24.8) or in [15, 35]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(ds_sim_photometry(&bad[i].o, &x, &t) == DS_ERR_ARG && !x && !t);
        CHECK(strstr(ds_last_error(), bad[i].text));
    }
    double m[6];
    CHECK(ds_photo_colours(5, 1, m) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "type 5 must be in [0, 4] and z 1 in [0, 3]"));
    CHECK(isnan(ds_photo_sed(7, 5000)) && isnan(ds_photo_filter(6, 5000)));
    return TEST_PASS;
}
