/* test_photoz.c - photometric redshifts: the metrics (ds_photoz_metrics) against numpy on
 * fixed arrays (tests/fixtures/photoz/gen_photoz.py), the colour table's checks (a NaN
 * magnitude names its band and rows), the figure, and the command line: `sim photometry`
 * (its catalogue's columns, --from a user's catalogue, a missing band, NaN rows, --depth),
 * `eval --photoz` and `classic eval --photoz` on a small model. */
#include "test.h"
#include "spawn.h"

#include <math.h>

#define FIX "tests/fixtures/photoz/"

/* The reference line of set name in metrics_ref.txt: n, then sigma_nmad, outliers,
 * fraction, bias, rms, median_dz into v[0..6). 0, or 1 with msg. */
static int reference(const char *name, double *v, char *msg_, size_t cap_)
{
    FILE *fp = fopen(FIX "metrics_ref.txt", "r");
    if (!fp)
        FAIL("cannot open " FIX "metrics_ref.txt");
    char key[32];
    int found = 0;
    while (!found && fscanf(fp, "%31s %lf %lf %lf %lf %lf %lf %lf", key, &v[0], &v[1], &v[2],
                            &v[3], &v[4], &v[5], &v[6]) == 8)
        found = !strcmp(key, name);
    fclose(fp);
    if (!found)
        FAIL(FIX "metrics_ref.txt has no line '%s'", name);
    return 0;
}

TEST(photoz_metrics_match_numpy)
{
    static const char *const sets[] = {"metrics", "metrics_even"};
    for (int k = 0; k < 2; k++) {
        char path[128];
        snprintf(path, sizeof path, FIX "%s.csv", sets[k]);
        ds_tensor *t;
        CHECK(ds_array_load(path, NULL, &t) == DS_OK);
        int64_t n = ds_tensor_shape(t)[0];
        float *zs = malloc(sizeof *zs * (size_t)n), *zp = malloc(sizeof *zp * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            zs[i] = ds_tensor_data(t)[2 * i];
            zp[i] = ds_tensor_data(t)[2 * i + 1];
        }
        ds_tensor_free(t);
        ds_photoz_stats s;
        ds_status st = ds_photoz_metrics(n, zp, zs, &s);
        free(zs);
        free(zp);
        CHECK(st == DS_OK);
        double ref[7];
        CHECK_OK(reference(sets[k], ref, msg_, cap_));
        CHECK(s.count == (int64_t)ref[0] && s.outliers == (int64_t)ref[2]);
        CHECK_NEAR(s.sigma_nmad, ref[1], 1e-12 * ref[1]);
        CHECK_NEAR(s.outlier_fraction, ref[3], 1e-15);
        CHECK_NEAR(s.bias, ref[4], 1e-12);
        CHECK_NEAR(s.rms, ref[5], 1e-12);
        CHECK_NEAR(s.median_dz, ref[6], 1e-12);
    }
    /* by hand: dz = 0.1, 0, 0.5 at z = 0, 1, 0: median(dz) 0.1, |dz - 0.1| / (1 + z) =
     * 0, 0.05, 0.4 -> 1.48 x 0.05; one outlier (0.5) */
    const float zs[3] = {0, 1, 0}, zp[3] = {0.1f, 1, 0.5f};
    ds_photoz_stats s;
    CHECK(ds_photoz_metrics(3, zp, zs, &s) == DS_OK);
    CHECK_NEAR(s.sigma_nmad, 1.48 * 0.05, 1e-7);
    CHECK(s.outliers == 1);
    CHECK_NEAR(s.bias, 0.2, 1e-7);
    return TEST_PASS;
}

TEST(photoz_metrics_bad_input)
{
    float zs[3] = {0.5f, 1, 2}, zp[3] = {0.5f, NAN, 2};
    ds_photoz_stats s;
    CHECK(ds_photoz_metrics(3, zp, zs, &s) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "galaxy 1") && strstr(ds_last_error(), "nan"));
    zp[1] = 1;
    zs[2] = -1;
    CHECK(ds_photoz_metrics(3, zp, zs, &s) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "galaxy 2: z_spec -1 is not above -1"));
    CHECK(ds_photoz_metrics(0, zp, zs, &s) == DS_ERR_ARG);
    CHECK(ds_photoz_metrics(3, NULL, zs, &s) == DS_ERR_ARG);
    return TEST_PASS;
}

TEST(photo_colour_table_names_nan_rows)
{
    ds_tensor *m = ds_tensor_create(2, (int64_t[]){5, 6}), *c = NULL;
    for (int64_t i = 0; i < 30; i++)
        ds_tensor_data(m)[i] = 20 + (float)(i % 6) * 0.5f;
    ds_status st = ds_photo_colour_table(m, "cat.csv", &c);
    int ok = st == DS_OK && ds_tensor_shape(c)[0] == 5 && ds_tensor_shape(c)[1] == 5 &&
             ds_tensor_data(c)[7] == -0.5f;   /* row 1, g - r */
    ds_tensor_free(c);
    ds_tensor_data(m)[1 * 6 + 2] = NAN;   /* mag_r of rows 2 and 4 (from 1) */
    ds_tensor_data(m)[3 * 6 + 2] = NAN;
    ds_tensor_data(m)[4 * 6 + 5] = NAN;   /* and mag_y of row 5: the first band is named */
    st = ds_photo_colour_table(m, "cat.csv", &c);
    char err[512];
    snprintf(err, sizeof err, "%s", ds_last_error());
    ds_tensor *bad = ds_tensor_create(2, (int64_t[]){5, 5});
    ds_status st2 = ds_photo_colour_table(bad, "cat.csv", &c);
    ds_tensor_free(m);
    ds_tensor_free(bad);
    CHECK(ok);
    if (st != DS_ERR_VALUE || !strstr(err, "cat.csv: mag_r is NaN in 2 rows: 2, 4") || c)
        FAIL("status %s, message '%s'", ds_status_name(st), err);
    CHECK(st2 == DS_ERR_SHAPE && strstr(ds_last_error(), "[rows, 6]"));
    return TEST_PASS;
}

TEST(photoz_figure)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "photoz_fig"));
    float zs[200], zp[200];
    for (int i = 0; i < 200; i++) {
        zs[i] = 0.015f * (float)i;
        zp[i] = zs[i] * (i % 17 ? 1.02f : 0.5f);
    }
    const char *png = test_at(d, "zz.png");
    ds_status st = ds_plot_photoz(200, zp, zs, NULL, png);
    size_t n = 0;
    char *bytes = st == DS_OK ? test_read_file(png, &n) : NULL;
    int is_png = bytes && n > 1000 && !memcmp(bytes, "\x89PNG", 4);
    free(bytes);
    test_rm_rf(d);
    if (!ds_has_feature("plot")) {
        CHECK(st != DS_OK && strstr(ds_last_error(), "plot"));
        SKIP("the figure needs plotting support (built with NO_PLOT=1); its error is checked");
    }
    CHECK(st == DS_OK && is_png);
    return TEST_PASS;
}

/* ---- the command line ---- */

TEST(cli_sim_photometry_catalogue)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "photoz_sim"));
    CHECK_RUN(0, "sim photometry --count 300 --seed 3 --mag-i 20:23 --z-max 2 -o %s",
              test_at(d, "cat.csv"));
    CHECK_OUT("simulated 300 galaxies, i < 23, z <= 2");
    ds_tensor *t = NULL, *z = NULL;
    char *cols = ds_table_columns(test_at(d, "cat.csv"), NULL);
    ds_status st = ds_array_load(test_at(d, "cat.csv"), NULL, &t);
    ds_status st2 = ds_array_load(test_at(d, "cat.csv"), &(ds_read_opts){.columns = "redshift"},
                                  &z);
    test_rm_rf(d);
    const char *want = "mag_u,mag_g,mag_r,mag_i,mag_z,mag_y,err_u,err_g,err_r,err_i,err_z,err_y,"
                       "u_g,g_r,r_i,i_z,z_y,redshift,type,mag_i_true";
    int cols_ok = cols && !strcmp(cols, want);
    free(cols);
    int ok = st == DS_OK && st2 == DS_OK && ds_tensor_shape(t)[0] == 300 &&
             ds_tensor_shape(t)[1] == 20;
    for (int64_t i = 0; ok && i < 300; i++) {
        const float *r = ds_tensor_data(t) + i * 20;
        ok = fabsf(r[12] - (r[0] - r[1])) < 1e-5f && fabsf(r[16] - (r[4] - r[5])) < 1e-5f &&
             r[17] > 0 && r[17] <= 2 && r[18] >= 0 && r[18] <= 4 && r[19] >= 20 && r[19] <= 23;
    }
    ds_tensor_free(t);
    ds_tensor_free(z);
    if (!cols_ok)
        FAIL("the catalogue's columns are not %s", want);
    CHECK(ok);
    return TEST_PASS;
}

TEST(cli_sim_photometry_bad_input)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "photoz_bad"));
    const char *good = "id,mag_u,mag_g,mag_r,mag_i,mag_z,mag_y,z_spec\n"
                       "1,23.1,22.5,21.9,21.5,21.3,21.2,0.41\n"
                       "2,24.0,23.4,22.8,22.4,22.2,22.0,0.63\n";
    CHECK(test_write_in(d, "good.csv", good) == 0);
    CHECK(test_write_in(d, "noz.csv", "id,mag_u,mag_g,mag_r,mag_i,mag_y\n1,23,22,21,21,21\n") == 0);
    CHECK(test_write_in(d, "nan.csv", "mag_u,mag_g,mag_r,mag_i,mag_z,mag_y\n"
                                      "23,22,21,21,21,21\n23,nan,21,21,21,21\n"
                                      "23,22,21,21,21,21\n23,,21,21,21,21\n") == 0);
    int rc = cli_run("sim photometry --from %s -o %s", test_at(d, "good.csv"),
                     test_at(d, "good_out.csv"));
    ds_tensor *t = NULL;
    char *cols = rc ? NULL : ds_table_columns(test_at(d, "good_out.csv"), NULL);
    if (!rc)
        ds_array_load(test_at(d, "good_out.csv"), NULL, &t);
    int from_ok = cols && !strcmp(cols, "mag_u,mag_g,mag_r,mag_i,mag_z,mag_y,u_g,g_r,r_i,i_z,"
                                        "z_y,id,z_spec") &&
                  t && fabsf(ds_tensor_data(t)[6] - 0.6f) < 1e-5f &&
                  fabsf(ds_tensor_data(t)[13 + 12] - 0.63f) < 1e-6f;
    free(cols);
    ds_tensor_free(t);
    if (!from_ok) {
        test_rm_rf(d);
        FAIL("--from: exit %d, output %s", rc, cli_out);
    }
    /* a missing band */
    CHECK_RUN(1, "sim photometry --from %s -o %s", test_at(d, "noz.csv"), test_at(d, "o.csv"));
    CHECK_OUT("noz.csv: no column mag_z: a catalogue needs the magnitudes mag_u");
    /* NaN magnitudes: the band and the rows */
    CHECK_RUN(1, "sim photometry --from %s -o %s", test_at(d, "nan.csv"), test_at(d, "o.csv"));
    CHECK_OUT("nan.csv: mag_g is NaN in 2 rows: 2, 4");
    /* --depth with a band missing, bad options */
    CHECK_RUN(2, "sim photometry --count 5 --depth 25,26,26,26,25 -o %s", test_at(d, "o.csv"));
    CHECK_OUT("gives 5 of the 6 depths (ugrizy): the y band is missing");
    CHECK_RUN(2, "sim photometry --count 5 --depth 25,26,26,40,25,24 -o %s", test_at(d, "o.csv"));
    CHECK_OUT("the i band's depth 40 is not in [15, 35]");
    CHECK_RUN(2, "sim photometry --count 5 -o %s", test_at(d, "o.npy"));
    CHECK_OUT("give a name ending in .fits or .csv");
    CHECK_RUN(2, "sim photometry --count 5 --mag-i 24:20 -o %s", test_at(d, "o.csv"));
    CHECK_RUN(2, "sim photometry --count 5 --from %s -o %s", test_at(d, "good.csv"),
              test_at(d, "o.csv"));
    CHECK_RUN(2, "sim photometry -o %s", test_at(d, "o.csv"));
    CHECK_OUT("--count N (or --from CATALOGUE) is required");
    int left = test_read_file(test_at(d, "o.csv"), NULL) != NULL;
    test_rm_rf(d);
    CHECK(!left);   /* no failed run wrote its output */
    return TEST_PASS;
}

/* A small MLP and kNN on 600 galaxies: eval --photoz and classic eval --photoz print the
 * table; the MLP's model row beats the mean; k-means or a non-PNG figure is refused. */
TEST(cli_eval_photoz)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "photoz_eval"));
    CHECK(test_write_in(d, "m.model", "input shape=11\ndense units=32 activation=relu\n"
                                      "dense units=1\nloss mse\noptimizer adam lr=3e-3\n") == 0);
    const char *cols = "--columns mag_u-mag_y,u_g-z_y --label-columns redshift";
    CHECK_RUN(0, "sim photometry --count 600 --seed 1 -o %s", test_at(d, "cat.csv"));
    CHECK_RUN(0, "train %s --data %s %s --scale standardize --epochs 10 --batch-size 32 "
              "--log none --curve none -q -o %s", test_at(d, "m.model"), test_at(d, "cat.csv"),
              cols, test_at(d, "w.safetensors"));
    CHECK_RUN(0, "eval %s --weights %s --data %s %s --photoz", test_at(d, "m.model"),
              test_at(d, "w.safetensors"), test_at(d, "cat.csv"), cols);
    CHECK_OUT("photo-z [dense_2]: 600 galaxies");
    double s_model = NAN, s_mean = NAN;
    const char *p = strstr(cli_out, "\nmodel ");
    const char *q = strstr(cli_out, "\nmean z (");
    if (p)
        sscanf(p + 7, "%lf", &s_model);
    if (q)
        sscanf(strchr(q, ')') + 1, "%lf", &s_mean);
    if (!(s_model < 0.5 * s_mean))
        FAIL("the MLP's sigma_NMAD %g is not below half the mean's %g:\n%s", s_model, s_mean,
             cli_out);
    CHECK_RUN(2, "eval %s --weights %s --data %s %s --photoz-figure %s", test_at(d, "m.model"),
              test_at(d, "w.safetensors"), test_at(d, "cat.csv"), cols, test_at(d, "f.jpg"));
    CHECK_OUT("--photoz-figure");
    CHECK_RUN(0, "classic train --method knn --k 5 --data %s %s --scale standardize -o %s",
              test_at(d, "cat.csv"), cols, test_at(d, "knn.safetensors"));
    CHECK_RUN(0, "classic eval %s --data %s %s --photoz", test_at(d, "knn.safetensors"),
              test_at(d, "cat.csv"), cols);
    CHECK_OUT("photo-z [knn]: 600 galaxies");
    /* clusters are no redshift */
    CHECK_RUN(0, "classic train --method kmeans --k 3 --data %s --columns u_g-z_y -o %s",
              test_at(d, "cat.csv"), test_at(d, "km.safetensors"));
    int rc = cli_run("classic eval %s --data %s --columns u_g-z_y --label-columns redshift "
                     "--photoz", test_at(d, "km.safetensors"), test_at(d, "cat.csv"));
    test_rm_rf(d);
    if (rc != 1 || !strstr(cli_out, "is no regression of one value per sample"))
        FAIL("a classifier with --photoz: exit %d:\n%s", rc, cli_out);
    return TEST_PASS;
}

/* make photoz-quick (scripts/photoz.sh --quick) end to end with the release tool (the
 * sanitized one runs the same commands above): the script's own check that the MLP beats
 * predicting the mean z passes, results.csv has its three rows, sane, and the files are
 * there. */
TEST(photoz_quick_pipeline)
{
    char d[256], cmd[1024], env_bin[600];
    CHECK(test_tmpdir(d, sizeof d, "photoz_quick"));
    const char *bin = getenv("DEEPSKY_PY_CLI");
    snprintf(env_bin, sizeof env_bin, "BIN=%s", bin ? bin : "build/deepsky");
    int plot = ds_has_feature("plot");
    const char *env[] = {env_bin, plot ? "FIGURES=1" : "FIGURES=0", NULL};
    snprintf(cmd, sizeof cmd, "exec sh scripts/photoz.sh --quick %s", d);
    static char out[1 << 15];
    int rc = cli_run_sh(cmd, env, out, sizeof out);
    char *res = test_read_file(test_at(d, "results.csv"), NULL);
    double v[3][4] = {{0}};
    int rows = 0;
    if (res) {
        const char *names[3] = {"mlp,", "knn,", "mean_z,"};
        for (int k = 0; k < 3; k++) {
            const char *p = strstr(res, names[k]);
            if (p && sscanf(p + strlen(names[k]), "%lf,%lf,%lf,%lf", &v[k][0], &v[k][1],
                            &v[k][2], &v[k][3]) == 4)
                rows++;
        }
    }
    int figs = 1;
    for (int k = 0; plot && k < 3; k++) {
        static const char *const png[] = {"mlp_zz.png", "knn_zz.png", "mlp_coverage.png"};
        char *bytes = test_read_file(test_at(d, png[k]), NULL);
        figs = figs && bytes;
        free(bytes);
    }
    free(res);
    test_rm_rf(d);
    if (rc != 0 || rows != 3)
        FAIL("photoz.sh --quick: exit %d, %d rows of results.csv:\n%s", rc, rows, out);
    for (int k = 0; k < 2; k++)   /* the MLP and k-NN: well below the mean's scatter */
        if (!(v[k][0] > 0 && v[k][0] < 0.5 * v[2][0] && v[k][1] < v[2][1] && fabs(v[k][2]) < 0.1))
            FAIL("results.csv row %d is not sane (sigma_NMAD %g, outliers %g, bias %g; mean z "
                 "%g, %g):\n%s", k + 1, v[k][0], v[k][1], v[k][2], v[2][0], v[2][1], out);
    CHECK(figs);
    snprintf(msg_, cap_, "MLP sigma_NMAD %.4f outliers %.3f; k-NN %.4f, %.3f; mean z %.4f, %.3f",
             v[0][0], v[0][1], v[1][0], v[1][1], v[2][0], v[2][1]);
    return TEST_PASS;
}
