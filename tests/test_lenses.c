/* test_lenses.c - simulated strong lenses (src/astro/lenses.c, `sim lenses`): exactly
 * round(f N) lenses and the non-lens kinds in turn; an SIS row's magnification against the
 * analytic 2 theta_e / beta; sources off the stamp flagged and kept; ground-like bands in
 * their colours; the same bits at 1 and 2 threads; bad options; the command line, and
 * eval's binary metrics (--metrics, --roc) and their bad input. The SIS ring radius and the
 * render's magnification are checked in test_lens.c. */
#include "test.h"
#include "spawn.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

static ds_lens_sim_opts lens_opts(void)
{
    ds_lens_sim_opts o = {0};
    o.count = 24, o.size = 16, o.seed = 5, o.lens_fraction = 0.5, o.theta_min = 2;
    o.theta_max = 4, o.lens_hlr_min = 1, o.lens_hlr_max = 2;
    return o;
}

/* Column name's value on row i of a lens truth table. */
static double col(const ds_tensor *t, int64_t i, const char *name)
{
    const char *const *c = ds_lens_sim_columns();
    for (int j = 0; c[j]; j++)
        if (!strcmp(c[j], name))
            return ds_tensor_data((ds_tensor *)t)[i * ds_lens_sim_column_count() + j];
    return NAN;
}

static double stamp_sum(const ds_tensor *x, int64_t i, int b)
{
    const int64_t nb = ds_tensor_shape(x)[1], S = ds_tensor_shape(x)[2];
    const float *p = ds_tensor_data((ds_tensor *)x) + ((i * nb) + b) * S * S;
    double s = 0;
    for (int64_t k = 0; k < S * S; k++)
        s += p[k];
    return s;
}

TEST(lenses_names_counts_and_kinds)
{
    CHECK(ds_lens_bands(DS_LENS_SPACE) == 1 && ds_lens_bands(DS_LENS_GROUND) == 4);
    CHECK(!strcmp(ds_lens_band_name(DS_LENS_GROUND, 2), "r") &&
          !ds_lens_band_name(DS_LENS_SPACE, 1));
    const char *names[] = {"galaxy", "lens", "neighbour", "ring"};
    for (int k = 0; k < DS_SCENE_KINDS; k++)
        CHECK(!strcmp(ds_lens_scene_name(k), names[k]) && ds_lens_scene_code(names[k]) == k);
    CHECK(!ds_lens_scene_name(4) && ds_lens_scene_code("arc") == -1);
    CHECK(!strcmp(ds_lens_sim_columns()[0], "is_lens") &&
          !ds_lens_sim_columns()[ds_lens_sim_column_count()]);
    ds_lens_sim_opts o = lens_opts();
    o.count = 31, o.lens_fraction = 0.4;
    ds_tensor *x, *t;
    CHECK_OK(ds_sim_lenses(&o, &x, &t));
    int cnt[DS_SCENE_KINDS] = {0}, lenses = 0;
    bool sane = ds_tensor_ndim(x) == 4 && ds_tensor_shape(x)[1] == 1;
    for (int64_t i = 0; i < 31; i++) {
        int k = (int)col(t, i, "kind");
        cnt[k]++;
        lenses += col(t, i, "is_lens") == 1;
        sane = sane && (k == DS_SCENE_LENS) == (col(t, i, "is_lens") == 1);
        if (k == DS_SCENE_LENS)   /* magnified; the mass's columns filled */
            sane = sane && col(t, i, "mu") > 1 && col(t, i, "theta_e") >= 2 &&
                   col(t, i, "theta_e") <= 4 && col(t, i, "src_snr") > 0;
        else   /* no mass on a non-lens */
            sane = sane && col(t, i, "theta_e") == 0;
    }
    ds_tensor_free(x), ds_tensor_free(t);
    CHECK(sane);
    CHECK(lenses == 12 && cnt[DS_SCENE_LENS] == 12);   /* round(0.4 x 31) */
    CHECK(cnt[0] == 7 && cnt[2] == 6 && cnt[3] == 6);  /* 19 non-lenses in turn */
    o.negatives = 1u << DS_SCENE_RING;
    CHECK_OK(ds_sim_lenses(&o, &x, &t));
    for (int64_t i = 0; i < 31; i++)
        CHECK(col(t, i, "kind") == DS_SCENE_LENS || col(t, i, "kind") == DS_SCENE_RING);
    ds_tensor_free(x), ds_tensor_free(t);
    return TEST_PASS;
}

/* SIS (q = 1, no shear) of theta_e 8 px, a Gaussian source (n = 0.5, hlr 0.5 px) at beta = 4
 * px: mu = 2 theta_e / beta for a point, times 1 + sigma^2 / (2 beta^2) for a Gaussian of
 * sigma = hlr / 1.1774 (the mean of 1 / |beta| over it), within 1%. */
TEST(lenses_sis_magnification)
{
    ds_lens_sim_opts o = lens_opts();
    o.count = 6, o.size = 32, o.lens_fraction = 1, o.theta_min = o.theta_max = 8, o.q_min = 1;
    o.gamma_max = -1, o.beta_min = o.beta_max = 0.5, o.src_n_min = o.src_n_max = 0.5;
    o.src_hlr_min = o.src_hlr_max = 0.5, o.src_e_max = 1e-9, o.offset_max = -1;
    ds_tensor *x, *t;
    CHECK_OK(ds_sim_lenses(&o, &x, &t));
    const double s = 0.5 / 1.1774100225154747, want = 2 * 8.0 / 4 * (1 + s * s / (2 * 16));
    double worst = 0;
    for (int64_t i = 0; i < 6; i++) {
        double mu = col(t, i, "mu");
        CHECK_NEAR(hypot(col(t, i, "src_x"), col(t, i, "src_y")), 4, 1e-5);
        worst = fmax(worst, fabs(mu / want - 1));
        CHECK(col(t, i, "outside") == 0 && col(t, i, "in_stamp") > 0.99);
    }
    ds_tensor_free(x), ds_tensor_free(t);
    if (worst > 0.01)
        FAIL("magnification off the SIS's %.4f by %.2f%%", want, 100 * worst);
    snprintf(msg_, cap_, "SIS magnification within %.3f%% of %.4f", 100 * worst, want);
    return TEST_PASS;
}

/* Sources 1.5 to 2 Einstein radii of 12 px from the lens: their centres lie off a 24-pixel
 * stamp; flagged in the truth table, and every row is still there. */
TEST(lenses_source_off_the_stamp_is_flagged_not_dropped)
{
    ds_lens_sim_opts o = lens_opts();
    o.count = 8, o.size = 24, o.lens_fraction = 1, o.theta_min = o.theta_max = 12;
    o.beta_min = 1.5;
    o.beta_max = 2;
    ds_tensor *x, *t;
    CHECK_OK(ds_sim_lenses(&o, &x, &t));
    bool ok = ds_tensor_shape(x)[0] == 8 && ds_tensor_shape(t)[0] == 8;
    for (int64_t i = 0; i < 8; i++) {
        bool off = fabs(col(t, i, "src_x")) > 12 || fabs(col(t, i, "src_y")) > 12;
        ok = ok && col(t, i, "is_lens") == 1 && col(t, i, "mu") > 0 &&
             col(t, i, "outside") == (off || col(t, i, "in_stamp") < 0.5);
        ok = ok && (hypot(col(t, i, "src_x"), col(t, i, "src_y")) < 12 ||
                    col(t, i, "outside") == 1);
    }
    int flagged = 0;
    for (int64_t i = 0; i < 8; i++)
        flagged += col(t, i, "outside") == 1;
    ds_tensor_free(x), ds_tensor_free(t);
    CHECK(ok);
    CHECK(flagged >= 4);
    return TEST_PASS;
}

/* Ground-like: 4 bands; at SNR 1e5 (noise negligible), a lone galaxy's bands carry the lens colours
 * (u, g, r, i = 0.1, 0.4, 1, 1.4 of r) and a ring's the source's (0.9, 1, 1, 0.9), to the
 * flux the broader blue PSFs scatter off the stamp (compact galaxies: their light is on it). */
TEST(lenses_ground_bands_and_colours)
{
    ds_lens_sim_opts o = lens_opts();
    o.survey = DS_LENS_GROUND, o.count = 6, o.lens_fraction = 0, o.size = 24;
    o.lens_snr_min = o.lens_snr_max = o.src_snr_min = o.src_snr_max = 1e5;
    o.lens_n_min = 1, o.lens_n_max = 2, o.lens_hlr_min = 1, o.lens_hlr_max = 1.5;   /* on the stamp */
    o.negatives = 1u << DS_SCENE_GALAXY | 1u << DS_SCENE_RING;
    ds_tensor *x, *t;
    CHECK_OK(ds_sim_lenses(&o, &x, &t));
    CHECK(ds_tensor_shape(x)[1] == 4 && ds_tensor_shape(x)[2] == 24);
    const double lens[4] = {0.1, 0.4, 1, 1.4}, src[4] = {0.9, 1, 1, 0.9};
    bool ok = true;
    for (int64_t i = 0; i < 6; i++) {
        double r = stamp_sum(x, i, 2), lf = col(t, i, "lens_flux"), sf = col(t, i, "src_flux");
        for (int b = 0; b < 4; b++) {
            double want = lf * lens[b] + (col(t, i, "kind") == DS_SCENE_RING ? sf * src[b] : 0);
            double wr = lf + (col(t, i, "kind") == DS_SCENE_RING ? sf : 0);
            ok = ok && fabs(stamp_sum(x, i, b) / r - want / wr) < 0.03 * want / wr;
        }
    }
    ds_tensor_free(x), ds_tensor_free(t);
    CHECK(ok);
    return TEST_PASS;
}

TEST(lenses_same_bits_at_1_and_2_threads)
{
    ds_lens_sim_opts o = lens_opts();
    o.count = 8, o.survey = DS_LENS_GROUND;
    ds_tensor *x1, *t1, *x2, *t2;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_sim_lenses(&o, &x1, &t1);
    ds_set_num_threads(2);
    ds_status s2 = ds_sim_lenses(&o, &x2, &t2);
    ds_set_num_threads(threads);
    CHECK(s1 == DS_OK && s2 == DS_OK);
    bool eq = !memcmp(ds_tensor_data(x1), ds_tensor_data(x2), sizeof(float) *
                      (size_t)ds_tensor_numel(x1)) &&
              !memcmp(ds_tensor_data(t1), ds_tensor_data(t2), sizeof(float) *
                      (size_t)ds_tensor_numel(t1));
    ds_tensor_free(x1), ds_tensor_free(t1), ds_tensor_free(x2), ds_tensor_free(t2);
    CHECK(eq);
    return TEST_PASS;
}

static int expect_arg(ds_lens_sim_opts o, const char *word, char *msg_, size_t cap_)
{
    ds_tensor *x = NULL, *t = NULL;
    ds_status st = ds_sim_lenses(&o, &x, &t);
    if (x || t)
        FAIL("outputs left after an error for '%s'", word);
    return check_arg_error(st, word, msg_, cap_);
}

TEST(lenses_bad_options)
{
    ds_lens_sim_opts o = lens_opts();
    o.lens_fraction = 1.5;
    CHECK_OK(expect_arg(o, "lens fraction 1.5 must be in [0, 1]", msg_, cap_));
    o = lens_opts(), o.count = 0;
    CHECK_OK(expect_arg(o, "count 0 must be in [1, 2^31]", msg_, cap_));
    o = lens_opts(), o.size = 8;
    CHECK_OK(expect_arg(o, "stamp size 8 must be in [16, 256]", msg_, cap_));
    o = lens_opts(), o.survey = (ds_lens_survey)7;
    CHECK_OK(expect_arg(o, "survey 7 is neither space (0) nor ground (1)", msg_, cap_));
    o = lens_opts(), o.negatives = 1u << DS_SCENE_LENS;
    CHECK_OK(expect_arg(o, "negatives 0x2 names kinds other than", msg_, cap_));
    o = lens_opts(), o.theta_min = 5, o.theta_max = 20;
    CHECK_OK(expect_arg(o, "Einstein radius range [5, 20] must be a non-empty interval within "
                        "[0.1, 8]", msg_, cap_));
    o = lens_opts(), o.src_snr_min = 30, o.src_snr_max = 10;
    CHECK_OK(expect_arg(o, "source SNR range [30, 10]", msg_, cap_));
    o = lens_opts(), o.q_min = 2;
    CHECK_OK(expect_arg(o, "minimum axis ratio 2 must be within [0.05, 1]", msg_, cap_));
    o = lens_opts(), o.lens_n_min = 0.1, o.lens_n_max = 4;
    CHECK_OK(expect_arg(o, "lens Sersic index range [0.1, 4]", msg_, cap_));
    ds_tensor *x, *t;
    CHECK(ds_sim_lenses(NULL, &x, &t) == DS_ERR_ARG);
    return TEST_PASS;
}

/* ---- the command line ---- */

TEST(lenses_cli_writes_stamps_and_truth)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256], p[512];
    CHECK(test_tmpdir(dir, sizeof dir, "lenses"));
    int rc = cli_run("sim lenses --count 4 --size 16 --theta-e 2:4 --seed 3 --threads 1 "
                     "--survey ground -o %s/g.npy --truth %s/g.csv", dir, dir);
    int rc1 = rc ? rc : cli_run("sim lenses --count 6 --size 24 --theta-e 2:4 --negatives ring "
                                "-o %s/s.npy --truth %s/s.csv", dir, dir);
    ds_tensor *g = NULL, *s = NULL, *k = NULL;
    ds_read_opts ro = {.columns = "is_lens"};
    bool ok = rc == 0 && rc1 == 0;
    snprintf(p, sizeof p, "%s/g.npy", dir);
    ok = ok && ds_array_load(p, NULL, &g) == DS_OK;
    snprintf(p, sizeof p, "%s/s.npy", dir);
    ok = ok && ds_array_load(p, NULL, &s) == DS_OK;
    snprintf(p, sizeof p, "%s/s.csv", dir);
    ok = ok && ds_array_load(p, &ro, &k) == DS_OK;
    test_rm_rf(dir);
    bool shapes = ok && ds_tensor_ndim(g) == 4 && ds_tensor_shape(g)[1] == 4 &&
                  ds_tensor_shape(g)[3] == 16 && ds_tensor_ndim(s) == 3 &&
                  ds_tensor_shape(s)[2] == 24 && ds_tensor_numel(k) == 6;
    double lenses = 0;
    for (int i = 0; shapes && i < 6; i++)
        lenses += ds_tensor_data(k)[i];
    ds_tensor_free(g), ds_tensor_free(s), ds_tensor_free(k);
    if (!ok)
        FAIL("exit %d, %d: %s", rc, rc1, cli_out);
    CHECK(shapes && lenses == 3);
    CHECK(strstr(cli_out, "kinds: galaxy 0, lens 3, neighbour 0, ring 3"));
    return TEST_PASS;
}

TEST(lenses_cli_bad_input)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "lenses_bad"));
    static const struct {
        const char *args, *text;
    } cases[] = {
        {"--count 4 --survey moon", "option '--survey': 'moon' is neither space nor ground"},
        {"--count 4 --negatives galaxy,arc", "option '--negatives': unknown non-lens kind 'arc'"},
        {"--count 4 --negatives lens", "unknown non-lens kind 'lens'"},
        {"--count 4 --lens-fraction 2", "option '--lens-fraction'"},
        {"--count 4 --theta-e 3:30", "option '--theta-e'"},
        {"--count 4 --size 8", "option '--size'"},
        {"", "--count N is required"},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] && !bad; k++)
        bad = cli_expect(cli_run("sim lenses %s -o %s/a.npy --truth %s/t.csv", cases[k].args,
                                 dir, dir), 2, cases[k].text, msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run("sim lenses --count 4 --truth %s/t.csv", dir), 2,
                         "-o IMAGES and --truth TABLE are required", msg_, cap_);
    if (!bad && !access(test_at(dir, "a.npy"), F_OK))
        bad = 1, snprintf(msg_, cap_, "a file was written after a usage error");
    test_rm_rf(dir);
    return bad ? TEST_FAIL : TEST_PASS;
}

/* A tiny classifier trained for one epoch on lenses: eval --metrics prints the asked
 * metrics, --roc draws the figure, classic eval does the same for a logistic regression;
 * bad metric names, a figure that is no PNG, a model without a binary classifier (a
 * regression, a clustering) and a ground cube fed to the one-band model are errors. */
TEST(lenses_cli_eval_metrics_and_roc)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "lenses_eval"));
    const char *model = "input shape=1x16x16\nflatten\ndense units=1 activation=sigmoid\n"
                        "loss binary_crossentropy\noptimizer adam lr=1e-2\n";
    const char *reg = "input shape=1x16x16\nflatten\ndense units=1\nloss mse\n";
    int bad = test_write_in(dir, "m.model", model) || test_write_in(dir, "r.model", reg);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "sim lenses --count 64 --size 16 --theta-e 2:4 "
                                    "--threads 1 -o x.npy --truth t.csv"), 0, "lens 32", msg_,
                         cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "sim lenses --count 8 --size 16 --theta-e 2:4 "
                                    "--survey ground --threads 1 -o g.npy --truth g.csv"), 0,
                         "4 bands", msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "train m.model --data x.npy --labels t.csv "
                                    "--label-columns is_lens --epochs 1 --log none --curve none "
                                    "--threads 1 -o w.safetensors"), 0, "", msg_, cap_);
    const char *ev = "eval m.model --weights w.safetensors --data x.npy --labels t.csv "
                     "--label-columns is_lens --threads 1";
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "%s --metrics auroc,tpr0,tpr10", ev), 0,
                         "binary classifier: 64 samples, 32 positive, 32 negative", msg_, cap_);
    if (!bad && (!strstr(cli_out, "\nauroc ") || !strstr(cli_out, "\ntpr0 ") ||
                 !strstr(cli_out, "\ntpr10 ") ||
                 !strstr(cli_out, "true-positive rate with at most 9 false positives")))
        bad = 1, snprintf(msg_, cap_, "metrics missing: %s", cli_out);
    ds_has_feature("plot");
    if (!bad && ds_has_feature("plot")) {
        bad = cli_expect(cli_run_in(dir, "%s --roc roc.png", ev), 0, "wrote roc.png", msg_, cap_);
        if (!bad && access(test_at(dir, "roc.png"), F_OK))
            bad = 1, snprintf(msg_, cap_, "no roc.png");
    }
    static const struct {
        const char *args, *text;
        int rc;
    } cases[] = {
        {"--metrics auroc,f1", "option '--metrics': unknown metric 'f1'", 2},
        {"--metrics tprx", "unknown metric 'tprx'", 2},
        {"--metrics ,", "option '--metrics': ',' names no metric", 2},
        {"--roc roc.jpg", "--roc", 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] && !bad; k++)
        bad = cli_expect(cli_run_in(dir, "%s %s", ev, cases[k].args), cases[k].rc,
                         cases[k].text, msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "init r.model -o r.safetensors"), 0, "", msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "eval r.model --weights r.safetensors --data x.npy "
                                    "--labels t.csv --label-columns is_lens --metrics auroc"),
                         1, "the model has no binary classifier", msg_, cap_);
    if (!bad)   /* a classic classifier gets them too; a clustering is refused */
        bad = cli_expect(cli_run_in(dir, "classic train --method logistic --data x.npy --labels "
                                    "t.csv --label-columns is_lens -o lg.safetensors"), 0, "",
                         msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "classic eval lg.safetensors --data x.npy --labels t.csv "
                                    "--label-columns is_lens --metrics auroc,tpr10"), 0,
                         "binary classifier: 64 samples, 32 positive, 32 negative", msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "classic train --method kmeans --data x.npy -o "
                                    "km.safetensors"), 0, "", msg_, cap_);
    if (!bad)
        bad = cli_expect(cli_run_in(dir, "classic eval km.safetensors --data x.npy --metrics "
                                    "auroc"), 1, "need a classifier of two classes, not a kmeans "
                         "model", msg_, cap_);
    if (!bad)   /* four bands into a one-band model: the shapes are named */
        bad = cli_expect(cli_run_in(dir, "eval m.model --weights w.safetensors --data g.npy "
                                    "--labels g.csv --label-columns is_lens --metrics auroc"),
                         1, "data of shape [8, 4, 16, 16] does not fit", msg_, cap_);
    test_rm_rf(dir);
    return bad ? TEST_FAIL : TEST_PASS;
}
