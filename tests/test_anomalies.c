/* test_anomalies.c - injected anomalies: fraction 0 is ds_sim_galaxies bit for bit, each
 * kind at its share and visible against the same stamps without it, the same bits at 1 and
 * 2 threads, bad options, and `deepsky sim anomalies`. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <unistd.h>

static ds_anomaly_opts anomaly_opts(void)
{
    ds_anomaly_opts o = {0};
    ds_sim_opts *s = &o.sim;
    s->count = 80, s->size = 32, s->seed = 9, s->n_min = 0.5, s->n_max = 6, s->hlr_min = 1.5;
    s->hlr_max = 4, s->e_max = 0.5, s->snr_min = 20, s->snr_max = 60, s->sky_sigma = 1;
    s->offset_max = 0.5, s->psf.kind = DS_PSF_GAUSSIAN, s->psf.fwhm = 2;
    return o;
}

static bool same(const ds_tensor *a, const ds_tensor *b)
{
    return ds_tensor_numel(a) == ds_tensor_numel(b) &&
           !memcmp(ds_tensor_data((ds_tensor *)a), ds_tensor_data((ds_tensor *)b),
                   sizeof(float) * (size_t)ds_tensor_numel(a));
}

/* Column name's value on row i of an anomaly truth table. */
static double acol(const ds_tensor *t, int64_t i, const char *name)
{
    const char *const *c = ds_anomaly_columns();
    for (int j = 0; c[j]; j++)
        if (!strcmp(c[j], name))
            return ds_tensor_data((ds_tensor *)t)[i * ds_anomaly_column_count() + j];
    return NAN;
}

TEST(anomalies_names_and_columns)
{
    const char *const *c = ds_anomaly_columns();
    const int ns = ds_sim_column_count();
    CHECK(ds_anomaly_column_count() == ns + 7);
    for (int j = 0; j < ns; j++)
        CHECK(!strcmp(c[j], ds_sim_columns()[j]));
    CHECK(!strcmp(c[ns], "anomaly") && !strcmp(c[ns + 6], "an_width") && !c[ns + 7]);
    const char *names[] = {"normal", "cosmic", "trail", "hot", "ring"};
    for (int k = 0; k < DS_ANOMALY_KINDS; k++)
        CHECK(!strcmp(ds_anomaly_name(k), names[k]) && ds_anomaly_code(names[k]) == k);
    CHECK(!ds_anomaly_name(5) && ds_anomaly_code("comet") == -1);
    return TEST_PASS;
}

TEST(anomalies_fraction_zero_is_sim_galaxies_bit_for_bit)
{
    ds_anomaly_opts o = anomaly_opts();
    o.sim.count = 24, o.sim.gain = 3;
    ds_tensor *x, *t, *gx, *gt;
    CHECK(ds_sim_anomalies(&o, &x, &t) == DS_OK);
    CHECK(ds_sim_galaxies(&o.sim, &gx, &gt) == DS_OK);
    const int ns = ds_sim_column_count(), nc = ds_anomaly_column_count();
    bool rows = true;
    for (int64_t i = 0; i < o.sim.count && rows; i++) {
        const float *a = ds_tensor_data(t) + i * nc, *g = ds_tensor_data(gt) + i * ns;
        rows = !memcmp(a, g, sizeof(float) * (size_t)ns);
        for (int j = ns; j < nc; j++)
            rows = rows && a[j] == 0;
    }
    bool img = same(x, gx);
    ds_tensor_free(x), ds_tensor_free(t), ds_tensor_free(gx), ds_tensor_free(gt);
    CHECK(img);
    CHECK(rows);
    return TEST_PASS;
}

/* The injected signal d (anomalous stamp minus the same stamp without it) of row i. */
typedef struct {
    double max, min, sum, ss;
    int64_t pos, over_half;   /* pixels > 0, pixels > max / 2 */
} diff_stats;

static diff_stats diff_of(const float *a, const float *b, int64_t npix)
{
    diff_stats s = {-1e30, 1e30, 0, 0, 0, 0};
    for (int64_t j = 0; j < npix; j++) {
        double d = (double)a[j] - b[j];
        s.max = fmax(s.max, d), s.min = fmin(s.min, d), s.sum += d, s.ss += d * d;
        s.pos += d > 0;
    }
    for (int64_t j = 0; j < npix; j++)
        s.over_half += (double)a[j] - b[j] > s.max / 2;
    return s;
}

static double peak(const float *x, int64_t npix)
{
    double m = -1e30;
    for (int64_t j = 0; j < npix; j++)
        m = fmax(m, x[j]);
    return m;
}

/* Why row i's injection of kind k does not look as it should, or NULL. */
static const char *judge(int k, const diff_stats *d, const ds_tensor *t, int64_t i,
                         const float *normal, const double *diff, int64_t npix)
{
    if (k == DS_ANOMALY_COSMIC)   /* sharp, brighter than the galaxy's peak, a few pixels */
        return d->min < 0 ? "a cosmic ray took light away" :
               d->max <= peak(normal, npix) ? "a cosmic ray's peak is below the galaxy's" :
               d->pos > 2 * acol(t, i, "an_length") + 3 ? "a cosmic ray spread too wide" : NULL;
    if (k == DS_ANOMALY_TRAIL)    /* a line across the stamp: > half its peak along its chord */
        return d->min < 0 ? "a trail took light away" :
               fabs(d->max / acol(t, i, "an_amp") - 1) > 0.05 ? "a trail's peak is not an_amp" :
               d->over_half < 0.8 * acol(t, i, "an_length") ? "a trail is shorter than its chord" :
               NULL;
    if (k == DS_ANOMALY_HOT)      /* 1 to 3 pixels of amp */
        return d->pos < 1 || d->pos > acol(t, i, "an_length") ? "hot pixels: wrong count" :
               fabs(d->max / acol(t, i, "an_amp") - 1) > 1e-4 ? "hot pixels: wrong value" : NULL;
    /* a ring moves light from the centre to the ring (at R / sqrt(q) along the major axis),
     * by more than 3 sigmas, and adds at most the light it moved */
    const double eps = hypot(acol(t, i, "e1"), acol(t, i, "e2")), q = (1 - eps) / (1 + eps);
    const double r = acol(t, i, "an_length") / sqrt(q), th = acol(t, i, "an_angle") * M_PI / 180;
    const long x0 = lround(acol(t, i, "an_x")), y0 = lround(acol(t, i, "an_y"));
    const long x1 = lround(acol(t, i, "an_x") + r * cos(th));
    const long y1 = lround(acol(t, i, "an_y") + r * sin(th));
    const int size = 32;
    const double centre = diff[y0 * size + x0];
    const double on_ring = x1 >= 0 && x1 < size && y1 >= 0 && y1 < size ? diff[y1 * size + x1]
                                                                       : 1;
    return d->sum > acol(t, i, "an_amp") * acol(t, i, "flux") ? "a ring added light" :
           sqrt(d->ss) < 3 ? "a ring is not visible above the noise" :
           centre >= 0 ? "a ring left its galaxy's centre as bright" :
           on_ring <= 0 ? "no light on the ring's major axis" : NULL;
}

TEST(anomalies_each_kind_at_its_share_and_visible)
{
    ds_anomaly_opts o = anomaly_opts(), z;
    o.fraction = 0.5;
    z = o;
    z.fraction = 0;
    ds_tensor *x, *t, *x0, *t0;
    CHECK(ds_sim_anomalies(&o, &x, &t) == DS_OK);
    CHECK(ds_sim_anomalies(&z, &x0, &t0) == DS_OK);
    const int64_t npix = 32 * 32;
    int count[DS_ANOMALY_KINDS] = {0};
    const char *why = NULL;
    int64_t at = -1;
    for (int64_t i = 0; i < o.sim.count && !why; i++) {
        const int k = (int)acol(t, i, "anomaly");
        const float *a = ds_tensor_data(x) + i * npix, *b = ds_tensor_data(x0) + i * npix;
        count[k]++;
        at = i;
        if (k == 0) {
            why = memcmp(a, b, sizeof(float) * (size_t)npix) ? "a normal stamp changed" : NULL;
            continue;
        }
        diff_stats d = diff_of(a, b, npix);
        double dd[32 * 32];
        for (int64_t j = 0; j < npix; j++)
            dd[j] = (double)a[j] - b[j];
        why = judge(k, &d, t, i, b, dd, npix);
    }
    ds_tensor_free(x), ds_tensor_free(t), ds_tensor_free(x0), ds_tensor_free(t0);
    if (why)
        FAIL("row %lld: %s", (long long)at, why);
    CHECK(count[0] == 40);
    for (int k = 1; k < DS_ANOMALY_KINDS; k++)
        CHECK(count[k] == 10);
    return TEST_PASS;
}

TEST(anomalies_fraction_rounds_and_kinds_select)
{
    ds_anomaly_opts o = anomaly_opts();
    o.sim.count = 30, o.fraction = 0.25, o.kinds = 1u << DS_ANOMALY_TRAIL | 1u << DS_ANOMALY_HOT;
    ds_tensor *x, *t;
    CHECK(ds_sim_anomalies(&o, &x, &t) == DS_OK);
    int count[DS_ANOMALY_KINDS] = {0};
    for (int64_t i = 0; i < o.sim.count; i++)
        count[(int)acol(t, i, "anomaly")]++;
    ds_tensor_free(x), ds_tensor_free(t);
    CHECK(count[0] == 22 && count[DS_ANOMALY_TRAIL] == 4 && count[DS_ANOMALY_HOT] == 4);
    CHECK(count[DS_ANOMALY_COSMIC] == 0 && count[DS_ANOMALY_RING] == 0);
    o.fraction = 1;
    CHECK(ds_sim_anomalies(&o, &x, &t) == DS_OK);
    int normal = 0;
    for (int64_t i = 0; i < o.sim.count; i++)
        normal += acol(t, i, "anomaly") == 0;
    ds_tensor_free(x), ds_tensor_free(t);
    CHECK(normal == 0);
    return TEST_PASS;
}

TEST(anomalies_same_bits_at_1_and_2_threads)
{
    ds_anomaly_opts o = anomaly_opts();
    o.sim.count = 16, o.fraction = 0.75, o.sim.psf.kind = DS_PSF_MOFFAT, o.sim.psf.beta = 3;
    ds_tensor *x1, *t1, *x2, *t2;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_sim_anomalies(&o, &x1, &t1);
    ds_set_num_threads(2);
    ds_status s2 = ds_sim_anomalies(&o, &x2, &t2);
    ds_set_num_threads(threads);
    CHECK(s1 == DS_OK && s2 == DS_OK);
    bool eq = same(x1, x2) && same(t1, t2);
    ds_tensor_free(x1), ds_tensor_free(t1), ds_tensor_free(x2), ds_tensor_free(t2);
    CHECK(eq);
    return TEST_PASS;
}

static int expect_arg(ds_anomaly_opts o, const char *word, char *msg_, size_t cap_)
{
    ds_tensor *x = NULL, *t = NULL;
    ds_status st = ds_sim_anomalies(&o, &x, &t);
    if (x || t)
        FAIL("outputs left after an error for '%s'", word);
    return check_arg_error(st, word, msg_, cap_);
}

TEST(anomalies_bad_options)
{
    ds_anomaly_opts o = anomaly_opts();
    o.fraction = 1.5;
    CHECK_OK(expect_arg(o, "fraction 1.5 must be in [0, 1]", msg_, cap_));
    o.fraction = -0.1;
    CHECK_OK(expect_arg(o, "fraction -0.1 must be in [0, 1]", msg_, cap_));
    o = anomaly_opts();
    o.kinds = 1u << 5;
    CHECK_OK(expect_arg(o, "kinds 0x20 has bits outside the kinds 1 to 4", msg_, cap_));
    o = anomaly_opts();
    o.sim.snr_min = o.sim.snr_max = 0;
    CHECK_OK(expect_arg(o, "the stamps must be noisy", msg_, cap_));
    o = anomaly_opts();
    o.cr_amp_min = 10, o.cr_amp_max = 5;
    CHECK_OK(expect_arg(o, "cosmic-ray amplitude range [10, 5]", msg_, cap_));
    o = anomaly_opts();
    o.ring_frac_min = 0.5, o.ring_frac_max = 1.5;
    CHECK_OK(expect_arg(o, "ring flux fraction range [0.5, 1.5]", msg_, cap_));
    return TEST_PASS;
}

/* ---- the command line ---- */

TEST(anomalies_cli_writes_stamps_and_truth)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256], p[512];
    CHECK(test_tmpdir(dir, sizeof dir, "anomalies"));
    int rc = cli_run("sim anomalies --count 8 --size 24 --seed 2 --threads 1 --fraction 0.5 "
                     "--types cosmic,ring -o %s/a.npy --truth %s/t.csv", dir, dir);
    ds_tensor *x = NULL, *k = NULL;
    ds_read_opts ro = {.columns = "anomaly"};
    bool ok = rc == 0;
    snprintf(p, sizeof p, "%s/a.npy", dir);
    ok = ok && ds_array_load(p, NULL, &x) == DS_OK;
    snprintf(p, sizeof p, "%s/t.csv", dir);
    ok = ok && ds_array_load(p, &ro, &k) == DS_OK;
    test_rm_rf(dir);
    int count[DS_ANOMALY_KINDS] = {0};
    bool shapes = ok && ds_tensor_ndim(x) == 3 && ds_tensor_shape(x)[0] == 8 &&
                  ds_tensor_shape(x)[1] == 24 && ds_tensor_numel(k) == 8;
    for (int i = 0; shapes && i < 8; i++) {
        float v = ds_tensor_data(k)[i];
        if (v >= 0 && v < DS_ANOMALY_KINDS)
            count[(int)v]++;
    }
    ds_tensor_free(x), ds_tensor_free(k);
    if (!ok)
        FAIL("exit %d: %s", rc, cli_out);
    CHECK(shapes);
    CHECK(strstr(cli_out, "kinds: normal 4, cosmic 2, trail 0, hot 0, ring 2"));
    CHECK(count[0] == 4 && count[1] == 2 && count[4] == 2);
    return TEST_PASS;
}

TEST(anomalies_cli_bad_input)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "anomalies_bad"));
    static const struct {
        const char *args, *text;
    } cases[] = {
        {"--count 4 --fraction 1.5", "option '--fraction': '1.5' is not a number in [0, 1]"},
        {"--count 4 --fraction -0.5", "option '--fraction': '-0.5' is not a number in [0, 1]"},
        {"--count 4 --fraction 0.5 --types cosmic,comet",
         "option '--types': unknown anomaly type 'comet' (cosmic, trail, hot or ring)"},
        {"--count 4 --fraction 0.5 --types ,", "option '--types': ',' names no type"},
        {"--count 4", "--count N and --fraction F are required"},
        {"--count 4 --fraction 0.5 --snr 0", "anomalies need an SNR range > 0"},
        {"--count 4 --fraction 0.5 --ring-fraction 0.5:2", "option '--ring-fraction'"},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] && !bad; k++)
        bad = cli_expect(cli_run("sim anomalies %s -o %s/a.npy --truth %s/t.csv", cases[k].args,
                                 dir, dir), 2, cases[k].text, msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run("sim anomalies --count 4 --fraction 0.5 --truth %s/t.csv", dir),
                         2, "-o IMAGES and --truth TABLE are required", msg_, cap_);
    test_rm_rf(dir);
    return bad ? TEST_FAIL : TEST_PASS;
}
