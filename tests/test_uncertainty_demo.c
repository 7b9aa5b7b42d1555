/* test_uncertainty_demo.c - the uncertainty demo (examples/uncertainty_demo.c, make
 * demo-uncertainty) at small size (--quick): it runs end to end and writes its report,
 * table, weights and figures into --out (a folder it creates) and nothing else there; every
 * row of results.csv (8 symmetries combined, and one orientation) is present and sane
 * (counts adding up, RMSE, sigma_e and CRPS finite and positive, coverages in [0, 1] with the 95% one above the 68% one); the report and the
 * log carry the table and the verdicts. Not the goals: 2 epochs calibrate nothing.
 * --weights measures given weights without training. Bad flags and a model without a
 * gaussian_nll head give clear errors. */
#include "test.h"
#include "spawn.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

static const char *demo_bin(void)
{
    const char *d = getenv("DEEPSKY_UQ_DEMO");
    return d ? d : "build/examples/uncertainty_demo";
}

static char out[1 << 16];

/* Runs the demo with args; its exit status, the output in out. */
static int run_demo(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s %s", demo_bin(), args);
    return cli_run_sh(cmd, NULL, out, sizeof out);
}

#define PER_BIN 100   /* the quick run's galaxies per SNR bin (uncertainty_demo.c, --quick) */

/* results.csv: the 8-symmetry measurement (sym8), then the stamp as it is (single), each
 * in the 4 SNR bins and "all", 12 fields a row; the symmetry spread only for sym8. */
static int check_results(const char *d, char *msg, size_t cap)
{
    static const char *const snr[] = {"10", "20", "40", "80", "all"};
    const char *header = "measure,snr,n,rmse,sigma_mean,cover68,cover95,z_mean,z_std,crps,nll,"
                         "symmetry_spread\n";
    char p[600], line[1024];
    snprintf(p, sizeof p, "%s/results.csv", d);
    FILE *fp = fopen(p, "r");
    if (!fp || !fgets(line, sizeof line, fp) || strcmp(line, header)) {
        snprintf(msg, cap, "%s: missing, or its header is not \"%s\"", p, header);
        if (fp)
            fclose(fp);
        return 1;
    }
    int rows = 0;
    for (; fgets(line, sizeof line, fp); rows++) {
        char how[16], key[16];
        long n;
        double v[9];
        int k = sscanf(line, "%15[^,],%15[^,],%ld,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", how, key,
                       &n, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]);
        long want = rows % 5 == 4 ? 4 * PER_BIN : PER_BIN;
        bool sym8 = rows < 5;
        bool ok = rows < 10 && k == 12 && !strcmp(how, sym8 ? "sym8" : "single") &&
                  !strcmp(key, snr[rows % 5]) && n == want;
        for (int j = 0; j < 9 && ok; j++)
            ok = isfinite(v[j]);
        /* rmse, sigma in (0, 1); 0 <= cover68 <= cover95 <= 1; z std, crps, spread > 0 */
        ok = ok && v[0] > 0 && v[0] < 1 && v[1] > 0 && v[1] < 1 && v[2] >= 0 &&
             v[2] <= v[3] && v[3] <= 1 && fabs(v[4]) < 3 && v[5] > 0 && v[6] > 0 &&
             v[6] < 1 && (sym8 ? v[8] > 0 && v[8] < 1 : v[8] == 0);
        if (!ok) {
            snprintf(msg, cap, "results.csv row %d is not sane: %s", rows + 1, line);
            fclose(fp);
            return 1;
        }
    }
    fclose(fp);
    if (rows != 10) {
        snprintf(msg, cap, "results.csv has %d rows, expected 10", rows);
        return 1;
    }
    return 0;
}


/* --weights measures the weights the quick run of folder o trained, without training: the
 * same test sets and weights give the same results.csv, the report names the weights, and
 * the new folder holds only the report, the table and the figures. */
static int check_measure_only(const char *o, char *msg, size_t cap)
{
    char args[1600], w[500];
    snprintf(w, sizeof w, "%.400s/w", o);
    snprintf(args, sizeof args, "--quick --out %s --weights %s/cnn_uq.safetensors", w, o);
    int rc = run_demo(args);
    const char *files[] = {"results.md", "results.csv", "sigma_vs_error.png", "pit.png",
                           "coverage.png"};
    const char *bad = NULL;
    int held = test_folder_holds(w, files, sizeof files / sizeof *files, &bad);
    size_t na = 0, nb = 0;
    char *a = test_read_file(test_at(o, "results.csv"), &na);
    char *b = test_read_file(test_at(w, "results.csv"), &nb);
    char *md = test_read_file(test_at(w, "results.md"), NULL);
    bool same = a && b && na == nb && !memcmp(a, b, na);
    bool named = md && strstr(md, "/cnn_uq.safetensors, given with --weights (epoch");
    free(a);
    free(b);
    free(md);
    if (rc != 0 || held != 0 || strstr(out, "training") || !same || !named)
        return snprintf(msg, cap, "--weights: status %d, folder check %d (%s), results.csv %s "
                        "the trained run's; output:\n%s", rc, held, bad ? bad : "-",
                        same ? "equals" : "differs from", out),
               1;
    snprintf(args, sizeof args, "--quick --out %s/x --weights %s/none.safetensors", o, o);
    rc = run_demo(args);
    if (rc != 1 || !strstr(out, "/none.safetensors") || strstr(out, "simulating"))
        return snprintf(msg, cap, "--weights of a missing file: status %d, output:\n%s", rc, out), 1;
    return 0;
}

TEST(uncertainty_demo_quick_report)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    char dir[256];
    const char *d = test_tmpdir(dir, sizeof dir, "uqdemo");
    CHECK(d);
    char args[600], o[400], p[700];
    snprintf(o, sizeof o, "%s/a/b", d);   /* a folder the demo must create */
    snprintf(args, sizeof args, "--quick --out %s", o);
    int rc = run_demo(args);
    if (rc != 0)
        FAIL("uncertainty demo exit status %d; output:\n%s", rc, out);
    const char *files[] = {"results.md", "results.csv", "cnn_uq.safetensors",
                           "cnn_uq.last.safetensors", "training_log.csv", "learning_curve.png",
                           "sigma_vs_error.png", "pit.png", "coverage.png"};
    const char *bad = NULL;
    int held = test_folder_holds(o, files, sizeof files / sizeof *files, &bad);
    if (held == 1)
        FAIL("the demo did not write %s; output:\n%s", bad, out);
    if (held == 2)
        FAIL("the demo left an unexpected file %s", bad);
    CHECK(held == 0);
    CHECK_OK(check_results(o, msg_, cap_));
    char *md = test_read_file(test_at(o, "results.md"), NULL);
    CHECK(md);
    const char *parts[] = {"**Test sets, 8 symmetries combined, 100 galaxies per SNR bin (e1 "
                           "and e2 pooled)**",
                           "**The stamp as it is (one orientation), 100 galaxies per SNR bin",
                           "| SNR | galaxies | RMSE | mean sigma_e | 68% coverage | 95% coverage "
                           "| z mean | z std | CRPS | symmetry spread |",
                           "| 10 | 100 |", "| 80 | 100 |", "| all | 400 |",
                           "sigma_e^2 = mean of the 8 predicted variances",
                           "weights cnn_uq.safetensors (epoch"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (!strstr(md, parts[i]))
            FAIL("results.md lacks \"%s\":\n%s", parts[i], md);
    free(md);
    if (!strstr(out, "| all | 400 |") || !strstr(out, "mean sigma_e grows as the SNR falls: ") ||
        !strstr(out, "68% coverage within 2 points of nominal in "))
        FAIL("the log lacks the table or the verdicts:\n%s", out);
    /* the weights load into the model and predict mean and std side by side */
    ds_net *net = NULL;
    CHECK(ds_net_load("examples/ellipticity_uq.model", NULL, &net) == DS_OK);
    snprintf(p, sizeof p, "%s/cnn_uq.safetensors", o);
    ds_status st = ds_net_load_weights(net, p);
    int gauss = ds_net_output_is_gaussian(net, 0);
    ds_net_free(net);
    if (st != DS_OK || !gauss)
        FAIL("cnn_uq.safetensors: load %s, gaussian output %d", ds_status_name(st), gauss);
    CHECK_OK(check_measure_only(o, msg_, cap_));
    test_note_line(msg_, cap_, out, "mean sigma_e grows", 170);
    test_rm_rf(d);
    return TEST_PASS;
}

/* Every bad flag is a usage error (status 2) naming the flag; a model without a gaussian_nll
 * head fails (status 1) naming the file, before any simulation. */
TEST(uncertainty_demo_bad_flags)
{
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    const struct {
        const char *args, *text;
    } bad[] = {
        {"--bogus", "uncertainty demo: error: unknown option '--bogus'"},
        {"--budget", "uncertainty demo: error: option '--budget' needs a value"},
        {"--budget soon", "option '--budget' needs seconds in [0, 1e6] (0: no limit), got 'soon'"},
        {"--per-bin 5", "option '--per-bin' needs a whole number in [10, 10000000], got '5'"},
        {"--train 1e4", "option '--train' needs a whole number in [100, 10000000], got '1e4'"},
        {"--seed -1", "option '--seed' needs a whole number in [0, "},
        {"--epochs 0", "option '--epochs' needs a whole number in [1, 10000], got '0'"},
        {"--out ''", "option '--out' needs a non-empty value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run_demo(bad[i].args);
        if (rc != 2 || !strstr(out, bad[i].text) || !strstr(out, "usage: uncertainty_demo"))
            FAIL("uncertainty_demo %s: status %d (expected 2), output lacks \"%s\" or the "
                 "usage:\n%s", bad[i].args, rc, bad[i].text, out);
    }
    char dir[256];
    const char *d = test_tmpdir(dir, sizeof dir, "uqdemo");
    CHECK(d);
    char args[600];
    snprintf(args, sizeof args, "--quick --out %s --model examples/ellipticity.model", d);
    int rc = run_demo(args);
    if (rc != 1 || !strstr(out, "uncertainty demo: error: examples/ellipticity.model: expected "
                                "one input of shape 1x32x32 (the stamps) and a first output "
                                "from a 'loss gaussian_nll mean=LAYER logvar=LAYER' line whose "
                                "mean has 2 values (e1, e2)") ||
        strstr(out, "simulating"))
        FAIL("a model without a gaussian_nll head: status %d, output:\n%s", rc, out);
    test_rm_rf(d);
    return TEST_PASS;
}
