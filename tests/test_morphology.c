/* test_morphology.c - bulge + disk scenes: total flux kept by every part (arms, bar, clumps,
 * companion) and in every band, the scene against ds_galaxy_render of its parts, the
 * simulator's classes, bits at 1 and 2 threads and bad input; CAS statistics against the
 * exact curves of growth of Sersic profiles (tests/fixtures/morphology/cas_sersic.py),
 * asymmetry and smoothness of symmetric, lopsided and clumpy galaxies; `sim morphology`. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <unistd.h>

/* A galaxy with every part: bulge, disk with arms and lopsidedness, bar, clumps, companion. */
static ds_morph_galaxy full_galaxy(void)
{
    ds_morph_galaxy g = {.flux = 1000, .dx = 0.3, .dy = -0.2, .bt = 0.3, .bulge_n = 4,
                         .bulge_hlr = 1.2, .bulge_e1 = 0.1, .disk_n = 1, .disk_hlr = 4,
                         .disk_incl = 50, .disk_pa = 30, .disk_q0 = 0.12, .arms = 2,
                         .arm_amp = 0.7, .arm_pitch = 20, .arm_phase = 40, .lopsided = 0.2,
                         .bar_frac = 0.1, .bar_hlr = 2.5, .bar_q = 0.3, .bar_angle = 60,
                         .clumps = 3, .clump_frac = 0.1, .clump_hlr = 0.8, .comp_frac = 0.1,
                         .comp_n = 2, .comp_hlr = 2, .comp_e2 = 0.2, .comp_dx = 9, .comp_dy = 4};
    const double cx[3] = {0.5, -1, 0.2}, cy[3] = {0.8, 0.1, -1.3}, cw[3] = {1, 0.5, 0.7};
    for (int k = 0; k < 3; k++)
        g.clump_x[k] = cx[k], g.clump_y[k] = cy[k], g.clump_w[k] = cw[k];
    const double col[DS_MORPH_PARTS][2] = {{0.8, 0.4}, {0.4, 0.2}, {0.6, 0.3}, {0.1, 0.0},
                                           {0.5, 0.3}};
    memcpy(g.colour, col, sizeof col);
    return g;
}

static double sum(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

/* Issue 19's check: two-component galaxies conserve the total flux within 1e-3, in every
 * band (each part's flux scaled by its colour), with and without a PSF. */
TEST(morph_flux_is_conserved)
{
    const int S = 160;
    float *img = malloc(sizeof *img * 3 * S * S);
    CHECK(img);
    ds_morph_galaxy g = full_galaxy();
    const double frac[DS_MORPH_PARTS] = {0.3, 0.4, 0.1, 0.1, 0.1};
    ds_psf psfs[2] = {{.kind = DS_PSF_NONE}, {.kind = DS_PSF_GAUSSIAN, .fwhm = 2.5}};
    for (int p = 0; p < 2; p++) {
        if (ds_morph_render(&g, &psfs[p], S, 3, img) != DS_OK) {
            free(img);
            FAIL("%s", ds_last_error());
        }
        for (int b = 0; b < 3; b++) {
            double want = 0;
            for (int k = 0; k < DS_MORPH_PARTS; k++)
                want += g.flux * frac[k] *
                        (b == 0 ? pow(10, -0.4 * g.colour[k][0])
                                : b == 2 ? pow(10, 0.4 * g.colour[k][1]) : 1);
            double got = sum(img + (size_t)b * S * S, (int64_t)S * S);
            if (!(fabs(got / want - 1) < 1e-3)) {
                free(img);
                FAIL("PSF %d, band %d: total %.6f, the parts' %.6f (rel %.2e)", p, b, got,
                     want, got / want - 1);
            }
        }
    }
    free(img);
    return TEST_PASS;
}

/* Without perturbations the scene is the sum of its two Sersic parts as ds_galaxy_render
 * draws them; the arms then move light (a large change) but keep the flux. */
TEST(morph_scene_is_its_parts)
{
    const int S = 40;
    float a[S * S], b[S * S], c[S * S], d[S * S];
    ds_morph_galaxy g = {.flux = 500, .dx = 0.4, .bt = 0.4, .bulge_n = 3, .bulge_hlr = 1.5,
                         .bulge_e2 = -0.1, .disk_n = 1, .disk_hlr = 5, .disk_incl = 60,
                         .disk_pa = 20, .disk_q0 = 0.1};
    ds_psf psf = {.kind = DS_PSF_MOFFAT, .fwhm = 2.2, .beta = 3};
    CHECK(ds_morph_render(&g, &psf, S, 1, a) == DS_OK);
    double q = sqrt(pow(cos(60 * M_PI / 180), 2) + 0.01 * pow(sin(60 * M_PI / 180), 2));
    double e = (1 - q) / (1 + q);
    ds_galaxy bulge = {3, 1.5, 200, 0, -0.1, 0.4, 0};
    ds_galaxy disk = {1, 5, 300, e * cos(40 * M_PI / 180), e * sin(40 * M_PI / 180), 0.4, 0};
    CHECK(ds_galaxy_render(&bulge, &psf, S, b) == DS_OK);
    CHECK(ds_galaxy_render(&disk, &psf, S, c) == DS_OK);
    double peak = 0, diff = 0;
    for (int i = 0; i < S * S; i++) {
        peak = fmax(peak, a[i]);
        diff = fmax(diff, fabs(a[i] - b[i] - c[i]));
    }
    if (!(diff < 1e-5 * peak))
        FAIL("scene against its parts: max |diff| %g of a peak %g", diff, peak);
    g.arms = 2, g.arm_amp = 0.8, g.arm_pitch = 15;
    CHECK(ds_morph_render(&g, &psf, S, 1, d) == DS_OK);
    double moved = 0;
    for (int i = 0; i < S * S; i++)
        moved += fabs(d[i] - a[i]);
    CHECK(moved > 0.05 * 300);
    /* (light moved across the stamp's edge: exact only on an infinite stamp, checked above) */
    CHECK_NEAR(sum(d, S * S) / sum(a, S * S), 1, 1e-2);
    return TEST_PASS;
}

static ds_morph_opts morph_opts(void)
{
    ds_morph_opts o = {.count = 16, .size = 32, .seed = 7, .bands = 3, .snr_min = 20,
                       .snr_max = 80, .sky_sigma = 1, .offset_max = 1, .hlr_min = 2,
                       .hlr_max = 4, .bar_prob = 0.5, .merger_frac = 0.5};
    o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2;
    return o;
}

static bool same(const ds_tensor *a, const ds_tensor *b)
{
    return ds_tensor_numel(a) == ds_tensor_numel(b) &&
           !memcmp(ds_tensor_data((ds_tensor *)a), ds_tensor_data((ds_tensor *)b),
                   sizeof(float) * (size_t)ds_tensor_numel(a));
}

static int column(const char *name)
{
    const char *const *c = ds_morph_columns();
    for (int j = 0; c[j]; j++)
        if (!strcmp(c[j], name))
            return j;
    return -1;
}

/* Classes in turn with their B/T ranges, spirals with arms, the r band's SNR as drawn
 * (from the noiseless stamp: noise off), the same bits at 1 and 2 threads. */
TEST(morph_sim_classes_and_threads)
{
    ds_morph_opts o = morph_opts();
    ds_tensor *x1 = NULL, *t1 = NULL, *x2 = NULL, *t2 = NULL;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_sim_morphology(&o, &x1, &t1);
    ds_set_num_threads(2);
    ds_status s2 = ds_sim_morphology(&o, &x2, &t2);
    ds_set_num_threads(threads);
    bool eq = !s1 && !s2 && same(x1, x2) && same(t1, t2);
    const int nc = ds_morph_column_count(), cc = column("class"), cb = column("bt");
    const int ca = column("arms"), cs = column("snr");
    bool classes = !s1 && ds_tensor_shape(x1)[1] == 3 && ds_tensor_shape(t1)[1] == nc;
    for (int64_t i = 0; classes && i < o.count; i++) {
        const float *t = ds_tensor_data(t1) + i * nc;
        double bt = t[cb];
        classes = t[cc] == i % 4 && t[cs] >= 20 && t[cs] <= 80 &&
                  (i % 4 != 0 || bt >= 0.85) && (i % 4 != 1 || (bt >= 0.3 && bt <= 0.7)) &&
                  (i % 4 != 2 || (bt <= 0.3 && t[ca] >= 2)) && (i % 4 == 2 || t[ca] == 0);
    }
    ds_tensor_free(x1), ds_tensor_free(t1), ds_tensor_free(x2), ds_tensor_free(t2);
    CHECK(eq);
    CHECK(classes);
    /* noiseless: the snr column is the r band's (the middle channel) */
    o.snr_min = o.snr_max = 0, o.count = 4;
    CHECK(ds_sim_morphology(&o, &x1, &t1) == DS_OK);
    const int64_t npix = 32 * 32;
    double snr = ds_image_snr(ds_tensor_data(x1) + 3 * npix + npix, npix, 1);
    double want = ds_tensor_data(t1)[nc + cs];
    ds_tensor_free(x1), ds_tensor_free(t1);
    CHECK_NEAR(snr, want, 1e-4 * want);
    return TEST_PASS;
}

TEST(morph_bad_input)
{
    ds_morph_galaxy g = full_galaxy();
    float img[16 * 16 * 3];
    g.bt = 0.9;   /* with the others' 0.3: more than the whole */
    CHECK(ds_morph_render(&g, NULL, 16, 1, img) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "sum to at most 1"));
    g = full_galaxy(), g.arm_amp = 0.9;
    CHECK(ds_morph_render(&g, NULL, 16, 1, img) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "lopsided"));
    g = full_galaxy(), g.disk_incl = 95;
    CHECK(ds_morph_render(&g, NULL, 16, 1, img) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "disk_incl"));
    g = full_galaxy(), g.bulge_n = 9;
    CHECK(ds_morph_render(&g, NULL, 16, 1, img) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "Sersic index"));
    g = full_galaxy();
    CHECK(ds_morph_render(&g, NULL, 16, 2, img) == DS_ERR_ARG);
    ds_morph_opts o = morph_opts();
    ds_tensor *x = NULL, *t = NULL;
    o.bands = 2;
    CHECK(ds_sim_morphology(&o, &x, &t) == DS_ERR_ARG && !x && !t);
    o = morph_opts(), o.hlr_max = 100;
    CHECK(ds_sim_morphology(&o, &x, &t) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "half-light radius"));
    o = morph_opts(), o.bar_prob = 2;
    CHECK(ds_sim_morphology(&o, &x, &t) == DS_ERR_ARG);
    return TEST_PASS;
}

/* ---- CAS ---- */

/* Noiseless round Sersic profiles, r_e = 8 pixels, no PSF: the Petrosian radius and C
 * against the exact curve of growth (within 3% and 0.1; the pixel grid is what differs). */
TEST(cas_concentration_of_sersic_profiles)
{
    FILE *fp = fopen("tests/fixtures/morphology/cas_sersic.txt", "r");
    if (!fp)
        FAIL("cannot read tests/fixtures/morphology/cas_sersic.txt");
    const int S = 96;
    float *img = malloc(sizeof *img * S * S);
    double n, rp, c;
    int rows = 0, rc = TEST_PASS;
    while (img && rc == TEST_PASS && fscanf(fp, "%lf %lf %lf", &n, &rp, &c) == 3) {
        ds_galaxy g = {n, 8, 1000, 0, 0, 0, 0};
        ds_cas m;
        if (ds_galaxy_render(&g, NULL, S, img) || ds_cas_measure(img, S, 1e-6, &m)) {
            snprintf(msg_, cap_, "n = %g: %s", n, ds_last_error());
            rc = TEST_FAIL;
        } else if (!m.ok || fabs(m.r_petro / (8 * rp) - 1) > 0.03 || fabs(m.c - c) > 0.1 ||
                   fabs(m.xc - 47.5) > 0.01 || fabs(m.yc - 47.5) > 0.01 || fabs(m.a) > 1e-3) {
            snprintf(msg_, cap_, "n = %g: r_petro %.3f (exact %.3f), C %.3f (exact %.3f), "
                     "centre (%g, %g), A %.4f", n, m.r_petro, 8 * rp, m.c, c, m.xc, m.yc, m.a);
            rc = TEST_FAIL;
        }
        rows++;
    }
    fclose(fp);
    free(img);
    if (rc == TEST_PASS && rows != 4)
        FAIL("read %d rows of the fixture, expected 4", rows);
    return rc;
}

/* A: about 0 for a symmetric galaxy under noise (the sky term removes the noise's), large
 * for a lopsided merger; S: about 0 for a smooth one, larger with clumps. */
TEST(cas_asymmetry_and_smoothness)
{
    const int S = 64;
    float img[3][64 * 64];
    ds_morph_galaxy smooth = {.flux = 4000, .bt = 0.3, .bulge_n = 3, .bulge_hlr = 1.5,
                              .disk_n = 1, .disk_hlr = 6, .disk_incl = 40, .disk_q0 = 0.1};
    ds_morph_galaxy clumpy = smooth, merger = smooth;
    clumpy.clumps = 5, clumpy.clump_frac = 0.3, clumpy.clump_hlr = 0.8;
    for (int k = 0; k < 5; k++)
        clumpy.clump_x[k] = 1.2 * cos(k * 1.3), clumpy.clump_y[k] = 1.2 * sin(k * 1.3),
        clumpy.clump_w[k] = 1;
    merger.comp_frac = 0.35, merger.comp_n = 2, merger.comp_hlr = 3, merger.comp_dx = 10;
    merger.lopsided = 0.4;
    ds_psf psf = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2};
    ds_morph_galaxy *gs[3] = {&smooth, &clumpy, &merger};
    ds_cas m[3];
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int k = 0; k < 3; k++) {
        CHECK(ds_morph_render(gs[k], &psf, S, 1, img[k]) == DS_OK);
        ds_add_noise(img[k], S * S, 1, 0, &r);
        CHECK(ds_cas_measure(img[k], S, 0, &m[k]) == DS_OK && m[k].ok);
        CHECK_NEAR(m[k].sky_sigma, 1, 0.15);   /* estimated from the frame */
    }
    if (!(fabs(m[0].a) < 0.03 && m[2].a > 0.2 && m[1].a > m[0].a + 0.05))
        FAIL("asymmetry: smooth %.4f, clumpy %.4f, merger %.4f", m[0].a, m[1].a, m[2].a);
    /* (the sky term over-corrects a little: an exponential disk is convex, so I - I_s < 0
     * there and clipping the residual at 0 takes less of the noise than for flat sky) */
    if (!(fabs(m[0].s) < 0.15 && m[1].s > m[0].s + 0.2))
        FAIL("smoothness: smooth %.4f, clumpy %.4f", m[0].s, m[1].s);
    /* an empty stamp fails softly */
    float zero[16 * 16] = {0};
    ds_cas z;
    CHECK(ds_cas_measure(zero, 16, 1, &z) == DS_OK && !z.ok && z.c == 0);
    CHECK(ds_cas_measure(zero, 4, 1, &z) == DS_ERR_ARG);
    return TEST_PASS;
}

/* ---- the command line ---- */

TEST(morph_cli_writes_images_labels_and_truth)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256], p[512];
    CHECK(test_tmpdir(dir, sizeof dir, "morph"));
    int rc = cli_run("sim morphology --count 8 --size 24 --hlr 2:4 --seed 3 --threads 1 "
                     "--multi-band -o %s/x.npy --labels %s/y.npy --truth %s/t.csv", dir, dir,
                     dir);
    int rc2 = rc ? rc : cli_run("sim morphology --count 4 --size 24 --hlr 2:4 -o %s/x1.npy "
                                "--labels %s/bt.npy --bt --truth %s/t1.csv", dir, dir, dir);
    ds_tensor *x = NULL, *y = NULL, *bt = NULL;
    snprintf(p, sizeof p, "%s/x.npy", dir);
    bool ok = !rc && !rc2 && ds_array_load(p, NULL, &x) == DS_OK;
    snprintf(p, sizeof p, "%s/y.npy", dir);
    ok = ok && ds_array_load(p, NULL, &y) == DS_OK;
    snprintf(p, sizeof p, "%s/bt.npy", dir);
    ok = ok && ds_array_load(p, NULL, &bt) == DS_OK;
    test_rm_rf(dir);
    bool shapes = ok && ds_tensor_ndim(x) == 4 && ds_tensor_shape(x)[1] == 3 &&
                  ds_tensor_shape(x)[3] == 24 && ds_tensor_numel(y) == 8 &&
                  ds_tensor_ndim(bt) == 2 && ds_tensor_numel(bt) == 4;
    for (int i = 0; shapes && i < 8; i++)
        shapes = ds_tensor_data(y)[i] == i % 4;
    ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(bt);
    if (!ok)
        FAIL("exit %d, %d: %s", rc, rc2, cli_out);
    CHECK(shapes);
    CHECK_RUN(2, "sim morphology --count 4 -o x.npy --truth t.csv --hlr 2:40");
    CHECK_OUT("more than half the 48-pixel stamp");
    CHECK_RUN(2, "sim morphology --count 4 -o x.npy --truth t.csv --bt");
    CHECK_OUT("give --labels");
    CHECK_RUN(2, "sim morphology --count 4 -o x.npy --truth t.csv --psf airy");
    CHECK_OUT("'airy' is not gaussian, moffat or none");
    return TEST_PASS;
}

/* `--features cas`: five values per channel, the same as ds_cas_measure's; refused on
 * samples that are not square stamps. */
TEST(cas_classic_features)
{
    ds_morph_opts o = morph_opts();
    o.count = 4;
    ds_tensor *x = NULL, *t = NULL, *f = NULL;
    CHECK(ds_sim_morphology(&o, &x, &t) == DS_OK);
    ds_status st = ds_classic_features("cas", x, &f);
    bool ok = st == DS_OK && ds_tensor_shape(f)[0] == 4 && ds_tensor_shape(f)[1] == 15;
    for (int i = 0; ok && i < 4; i++)
        for (int b = 0; ok && b < 3; b++) {
            ds_cas m;
            ds_cas_measure(ds_tensor_data(x) + (i * 3 + b) * 32 * 32, 32, 0, &m);
            const float *v = ds_tensor_data(f) + i * 15 + b * 5;
            ok = m.ok && v[0] == (float)m.c && v[1] == (float)m.a && v[2] == (float)m.s &&
                 v[3] == (float)m.r_petro && v[4] == 1;
        }
    ds_tensor_free(f), ds_tensor_free(t);
    CHECK(ok);
    int64_t sh[2] = {4, 3 * 32 * 32};
    CHECK(ds_tensor_reshape(x, 2, sh) == DS_OK);
    CHECK(ds_classic_features("cas", x, &f) == DS_ERR_SHAPE);
    CHECK(strstr(ds_last_error(), "not square stamps"));
    ds_tensor_free(x);
    return TEST_PASS;
}

/* eval --confusion: the figure of a classifier, its refusals. */
TEST(morph_eval_confusion_figure)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    if (!ds_has_feature("plot"))
        SKIP("needs figures (built with NO_PLOT=1)");
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "morphcm"));
    const char *csv = "examples/data/iris_train.csv";
    int rc = cli_run("train examples/iris.model --data %s --no-header --label-columns -1 "
                     "--epochs 2 --batch-size 16 --log none -o %s/w.safetensors", csv, dir);
    int rc2 = rc ? rc : cli_run("eval examples/iris.model --weights %s/w.safetensors --data %s "
                                "--no-header --label-columns -1 --confusion %s/cm.png "
                                "--class-names setosa,versicolor,virginica", dir, csv, dir);
    bool fig = access(test_at(dir, "cm.png"), R_OK) == 0;
    int rc3 = cli_run("eval examples/iris.model --weights %s/w.safetensors --data %s --no-header "
                      "--label-columns -1 --confusion %s/cm2.png --class-names a,b", dir, csv,
                      dir);
    bool names = strstr(cli_out, "--class-names: 2 names for 3 classes") != NULL;
    bool none = access(test_at(dir, "cm2.png"), F_OK) != 0;
    test_write_in(dir, "reg.model", "input shape=4\ndense units=1\nloss mse\n");
    int rc4 = cli_run("train %s/reg.model --data %s --no-header --label-columns -1 --epochs 1 "
                      "--log none -o %s/r.safetensors", dir, csv, dir);
    int rc5 = rc4 ? rc4 : cli_run("eval %s/reg.model --weights %s/r.safetensors --data %s "
                                  "--no-header --label-columns -1 --confusion %s/cm3.png", dir,
                                  dir, csv, dir);
    bool reg = rc4 == 0 && rc5 == 1 && strstr(cli_out, "the model has no classifier output");
    test_rm_rf(dir);
    if (rc || rc2)
        FAIL("exit %d, %d: %s", rc, rc2, cli_out);
    CHECK(fig);
    CHECK(rc3 == 1 && names && none);
    if (!reg)
        FAIL("a regression with --confusion: exit %d, %d: %s", rc4, rc5, cli_out);
    return TEST_PASS;
}

/* ---- make morphology-quick ---- */

/* The accuracy on the line "accuracy: X (...)" of a report file; NaN if absent. */
static double report_accuracy(const char *path)
{
    char *text = test_read_file(path, NULL);
    const char *s = !text ? NULL : !strncmp(text, "accuracy: ", 10) ? text
                                                                    : strstr(text, "\naccuracy: ");
    double a = s ? strtod(s + (*s == '\n') + 10, NULL) : NAN;
    free(text);
    return a;
}

/* The quick pipeline (scripts/morphology.sh, QUICK=1) on the release tool: it runs end to
 * end, writes the figure, and its CNN beats the majority class (25% of balanced classes)
 * by a margin the quick training reaches (about 60%) and chance does not. */
TEST(morph_quick_pipeline_beats_the_majority_class)
{
    if (!ds_has_feature("plot"))
        SKIP("needs figures (built with NO_PLOT=1): the pipeline writes the confusion matrix");
    const char *bin = getenv("DEEPSKY_PY_CLI") ? getenv("DEEPSKY_PY_CLI") : "build/deepsky";
    if (access(bin, X_OK))
        SKIP("no release tool to run (%s)", bin);
    char dir[256], cmd[1024];
    static char out[1 << 16];
    CHECK(test_tmpdir(dir, sizeof dir, "morphq"));
    snprintf(cmd, sizeof cmd, "QUICK=1 BIN=%s exec scripts/morphology.sh %s/out", bin, dir);
    int rc = cli_run_sh(cmd, NULL, out, sizeof out);
    double cnn = report_accuracy(test_at(dir, "out/cnn_eval.txt"));
    double cas = report_accuracy(test_at(dir, "out/cas_logistic_eval.txt"));
    bool fig = access(test_at(dir, "out/confusion.png"), R_OK) == 0;
    test_rm_rf(dir);
    if (rc)
        FAIL("scripts/morphology.sh exited %d:\n%s", rc, out);
    if (!(cnn > 0.40 && cas > 0.40 && fig))
        FAIL("CNN accuracy %.4f, CAS + logistic %.4f (majority class 0.25), figure %s", cnn, cas,
             fig ? "written" : "missing");
    return TEST_PASS;
}
