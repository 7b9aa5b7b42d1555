/* test_psf_demo.c - the variable-PSF demo (examples/psf_demo.c, make demo-psf) at small size
 * (--quick): it runs end to end and writes its report, tables, weights and figures into
 * --out (a folder it creates) and nothing else there; every row of its tables is present
 * and sane (RMSE finite and below 1, counts adding up, the CNNs never failing, leakage
 * fitted on every group re-Gaussianization did not drop); the weights keep the PSF input's
 * scaling; --loss msb trains in two phases and --init / --weights-nopsf skip them; bad
 * flags, a model without a psf input and an msb model without loss msb give clear errors. */
#include "test.h"
#include "spawn.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

static char dir[256];

static const char *demo_bin(void)
{
    const char *d = getenv("DEEPSKY_PSF_DEMO");
    return d ? d : "build/examples/psf_demo";
}

static char out[1 << 16];

/* Runs the demo with args; its exit status, the output in out. */
static int run_demo(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s %s", demo_bin(), args);
    return cli_run_sh(cmd, NULL, out, sizeof out);
}

/* The quick run's sizes (psf_demo.c, --quick). */
#define PER_BIN 100
#define LEAK_GROUPS 40
#define OPTICAL_PER_BIN 50

/* Reads a CSV file's data lines into rows of fields (at most 40 rows of 24 fields). */
typedef struct {
    int n;
    char f[40][24][32];
    int nf[40];
} csv;

static int read_csv(const char *path, const char *header_start, csv *c, char *msg, size_t cap)
{
    FILE *fp = fopen(path, "r");
    char line[1024];
    if (!fp || !fgets(line, sizeof line, fp) || strncmp(line, header_start, strlen(header_start))) {
        snprintf(msg, cap, "%s: missing, or its header is not \"%s...\"", path, header_start);
        if (fp)
            fclose(fp);
        return 1;
    }
    c->n = 0;
    while (c->n < 40 && fgets(line, sizeof line, fp)) {
        int k = 0;
        for (char *s = strtok(line, ",\n"); s && k < 24; s = strtok(NULL, ",\n"))
            snprintf(c->f[c->n][k++], 32, "%s", s);
        c->nf[c->n++] = k;
    }
    fclose(fp);
    return 0;
}

/* results.csv: held_out and optical, 3 methods and the CNN + PSF on re-Gaussianization's
 * successes (matched_cnn_psf), 4 SNR bins and "all". */
static int check_results(const char *d, char *msg, size_t cap)
{
    static csv c;
    char p[600];
    int matched = 0;
    snprintf(p, sizeof p, "%s/results.csv", d);
    if (read_csv(p, "set,method,snr,n,failed,rmse_e1", &c, msg, cap))
        return 1;
    if (c.n != 40) {
        snprintf(msg, cap, "results.csv has %d rows, expected 40", c.n);
        return 1;
    }
    for (int i = 0; i < c.n; i++) {
        const char *set = c.f[i][0], *method = c.f[i][1], *snr = c.f[i][2];
        long per = !strcmp(set, "optical") ? OPTICAL_PER_BIN : PER_BIN;
        long want = !strcmp(snr, "all") ? 4 * per : per;
        long n = atol(c.f[i][3]), failed = atol(c.f[i][4]);
        double r1 = atof(c.f[i][5]), r2 = atof(c.f[i][6]);
        bool cnn = !strncmp(method, "cnn", 3);
        matched += !strcmp(method, "matched_cnn_psf");
        if (c.nf[i] != 15 || n + failed != want || (cnn && failed) || !(r1 > 0 && r1 < 1) ||
            !(r2 > 0 && r2 < 1)) {
            snprintf(msg, cap, "results.csv row %d (%s %s SNR %s): %d fields, n %ld + failed "
                     "%ld (expected %ld), RMSE %g %g", i + 1, set, method, snr, c.nf[i], n,
                     failed, want, r1, r2);
            return 1;
        }
    }
    if (matched != 10) {
        snprintf(msg, cap, "results.csv has %d matched_cnn_psf rows, expected 10", matched);
        return 1;
    }
    return 0;
}

/* leakage.csv: 3 methods, 4 SNR bins and "all"; groups + dropped add up, alpha finite. */
static int check_leakage(const char *d, char *msg, size_t cap)
{
    static csv c;
    char p[600];
    snprintf(p, sizeof p, "%s/leakage.csv", d);
    if (read_csv(p, "method,snr,groups,dropped,alpha1", &c, msg, cap))
        return 1;
    if (c.n != 15) {
        snprintf(msg, cap, "leakage.csv has %d rows, expected 15", c.n);
        return 1;
    }
    for (int i = 0; i < c.n; i++) {
        long want = !strcmp(c.f[i][1], "all") ? 4 * LEAK_GROUPS : LEAK_GROUPS;
        long g = atol(c.f[i][2]), dropped = atol(c.f[i][3]);
        double a1 = atof(c.f[i][4]), da1 = atof(c.f[i][5]), a2 = atof(c.f[i][6]);
        double da2 = atof(c.f[i][7]);
        bool cnn = !strncmp(c.f[i][0], "cnn", 3);
        if (c.nf[i] != 21 || g + dropped != want || (cnn && dropped) || g < want / 4 ||
            !(fabs(a1) < 5 && fabs(a2) < 5 && da1 > 0 && da2 > 0 && da1 < 5 && da2 < 5)) {
            snprintf(msg, cap, "leakage.csv row %d (%s SNR %s): %d fields, groups %ld + dropped "
                     "%ld (expected %ld), alpha %g +- %g, %g +- %g", i + 1, c.f[i][0], c.f[i][1],
                     c.nf[i], g, dropped, want, a1, da1, a2, da2);
            return 1;
        }
    }
    return 0;
}

TEST(psf_demo_quick_report)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    const char *d = test_tmpdir(dir, sizeof dir, "psfdemo");
    CHECK(d);
    char args[600], o[400], p[700];
    snprintf(o, sizeof o, "%s/a/b", d);   /* a folder the demo must create */
    snprintf(args, sizeof args, "--quick --loss mse --out %s", o);
    int rc = run_demo(args);
    if (rc != 0)
        FAIL("psf demo exit status %d (3: the CNN did not beat zero); output:\n%s", rc, out);
    const char *files[] = {"results.md", "results.csv", "leakage.csv", "cnn_psf.safetensors",
                           "cnn_psf.last.safetensors", "cnn_psf.log.csv",
                           "cnn_nopsf.safetensors", "cnn_nopsf.last.safetensors",
                           "cnn_nopsf.log.csv", "rmse_vs_snr.png", "psf_leakage.png",
                           "cnn_psf.curve.png", "cnn_nopsf.curve.png"};
    const char *bad = NULL;
    int held = test_folder_holds(o, files, sizeof files / sizeof *files, &bad);
    if (held == 1)
        FAIL("the demo did not write %s; output:\n%s", bad, out);
    if (held == 2)
        FAIL("the demo left an unexpected file %s", bad);
    CHECK(held == 0);
    CHECK_OK(check_results(o, msg_, cap_));
    CHECK_OK(check_leakage(o, msg_, cap_));
    /* the report's tables, and the log's verdict line */
    snprintf(p, sizeof p, "%s/results.md", o);
    FILE *f = fopen(p, "r");
    CHECK(f);
    static char md[1 << 15];
    size_t n = fread(md, 1, sizeof md - 1, f);
    md[n] = 0;
    fclose(f);
    const char *parts[] = {"**Held-out Moffat PSFs (FWHM 2.3-2.7 px, beta 3.5-4.0",
                           "**PSF leakage**", "**Out of family: optical PSFs",
                           "| 10 |", "| 80 |", "| all |", "CNN + PSF image", "CNN without PSF",
                           "weights cnn_psf.safetensors (epoch"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (!strstr(md, parts[i]))
            FAIL("results.md lacks \"%s\":\n%s", parts[i], md);
    if (!strstr(out, "CNN + PSF RMSE below re-Gaussianization's in "))
        FAIL("the log lacks the verdict:\n%s", out);
    /* the weights keep the PSF input's scaling: the model predicts from them as trained */
    ds_net *net = NULL;
    CHECK(ds_net_load("examples/ellipticity_psf.model", NULL, &net) == DS_OK);
    snprintf(p, sizeof p, "%s/cnn_psf.safetensors", o);
    ds_status st = ds_net_load_weights(net, p);
    int psf = ds_net_input_count(net) == 2 && !strcmp(ds_net_input_name(net, 1), "psf");
    ds_scale_kind sk = ds_net_input_scaling(net, 1);
    ds_net_free(net);
    if (st != DS_OK || !psf || sk != DS_SCALE_DIVIDE)
        FAIL("cnn_psf.safetensors: load %s, psf input %d, its scaling %d (expected divide)",
             ds_status_name(st), psf, (int)sk);
    test_note_line(msg_, cap_, out, "CNN + PSF RMSE below", 160);
    test_rm_rf(d);
    return TEST_PASS;
}

/* loss msb (the default): an MSE phase, then the bias-targeting loss from its best weights, both
 * reported with their files; --init starts the CNN + PSF from given weights (no MSE phase)
 * and --weights-nopsf uses the baseline's weights untrained: neither run's files appear. */
TEST(psf_demo_quick_msb)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    const char *d = test_tmpdir(dir, sizeof dir, "psfmsb");
    CHECK(d);
    char args[1400], o[400], o2[400], p[700];
    snprintf(o, sizeof o, "%s/a", d);
    snprintf(args, sizeof args, "--quick --realizations 2 --out %s", o);
    int rc = run_demo(args);
    if (rc != 0)
        FAIL("psf demo --loss msb: exit status %d; output:\n%s", rc, out);
    const char *files[] = {"results.md", "results.csv", "leakage.csv", "cnn_psf.safetensors",
                           "cnn_psf.last.safetensors", "cnn_psf.log.csv", "cnn_psf.curve.png",
                           "cnn_psf.mse.safetensors", "cnn_psf.mse.last.safetensors",
                           "cnn_psf.mse.log.csv", "cnn_psf.mse.curve.png",
                           "cnn_nopsf.safetensors", "cnn_nopsf.last.safetensors",
                           "cnn_nopsf.log.csv", "cnn_nopsf.curve.png", "rmse_vs_snr.png",
                           "psf_leakage.png"};
    const char *bad = NULL;
    int held = test_folder_holds(o, files, sizeof files / sizeof *files, &bad);
    if (held)
        FAIL("the msb run %s %s; output:\n%s", held == 1 ? "did not write" : "left", bad, out);
    CHECK_OK(check_results(o, msg_, cap_));
    CHECK_OK(check_leakage(o, msg_, cap_));
    snprintf(p, sizeof p, "%s/results.md", o);
    char *md = test_read_file(p, NULL);
    CHECK(md);
    const char *parts[] = {"(examples/ellipticity_psf_msb.model): 1 epochs in",
                           "loss msb, 2 noise realizations per galaxy per step, from the best "
                           "weights of the MSE phase",
                           "MSE phase (examples/ellipticity_psf.model, fresh noise at every "
                           "step): 2 epochs in"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (!strstr(md, parts[i]))
            FAIL("results.md lacks \"%s\":\n%s", parts[i], md);
    free(md);
    snprintf(o2, sizeof o2, "%s/b", d);
    snprintf(args, sizeof args, "--quick --init %s/cnn_psf.mse.safetensors "
             "--weights-nopsf %s/cnn_nopsf.safetensors --out %s", o, o, o2);
    rc = run_demo(args);
    if (rc != 0 || !strstr(out, "== cnn_nopsf: the weights of ") ||
        !strstr(out, "== training cnn_psf (examples/ellipticity_psf_msb.model) for 1 epochs"))
        FAIL("psf demo --init --weights-nopsf: exit status %d; output:\n%s", rc, out);
    const char *files2[] = {"results.md", "results.csv", "leakage.csv", "cnn_psf.safetensors",
                            "cnn_psf.last.safetensors", "cnn_psf.log.csv", "cnn_psf.curve.png",
                            "rmse_vs_snr.png", "psf_leakage.png"};
    held = test_folder_holds(o2, files2, sizeof files2 / sizeof *files2, &bad);
    if (held)
        FAIL("the --init run %s %s", held == 1 ? "did not write" : "left", bad);
    test_rm_rf(d);
    return TEST_PASS;
}

/* Every bad flag is a usage error (status 2) naming the flag; a model without a psf input
 * fails (status 1) naming the file, before any simulation. */
TEST(psf_demo_bad_flags)
{
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    const struct {
        const char *args, *text;
    } bad[] = {
        {"--bogus", "psf demo: error: unknown option '--bogus'"},
        {"--budget", "psf demo: error: option '--budget' needs a value"},
        {"--budget soon", "option '--budget' needs seconds in [0, 1e6] (0: no limit), got 'soon'"},
        {"--budget -5", "option '--budget' needs seconds in [0, 1e6]"},
        {"--per-bin 5", "option '--per-bin' needs a whole number in [10, 10000000], got '5'"},
        {"--train 1e4", "option '--train' needs a whole number in [100, 10000000], got '1e4'"},
        {"--seed -1", "option '--seed' needs a whole number in [0, "},
        {"--epochs 0", "option '--epochs' needs a whole number in [1, 10000], got '0'"},
        {"--out ''", "option '--out' needs a non-empty value"},
        {"--train-psf-e 0.9", "option '--train-psf-e' needs an ellipticity in (0, 0.5], got '0.9'"},
        {"--loss mae", "option '--loss' needs msb or mse, got 'mae'"},
        {"--realizations 3", "option '--realizations' needs a divisor of the batch of 64, got '3'"},
        {"--realizations 1", "option '--realizations' needs a whole number in [2, 64], got '1'"},
        {"--msb-epochs 0", "option '--msb-epochs' needs a whole number in [1, 10000], got '0'"},
        {"--msb-budget x",
         "option '--msb-budget' needs seconds in [0, 1e6] (0: no limit), got 'x'"},
        {"--quick --realizations 32",
         "--loss msb: the 400 validation galaxies are not a multiple of --realizations"},
        {"--init ''", "option '--init' needs a non-empty value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run_demo(bad[i].args);
        if (rc != 2 || !strstr(out, bad[i].text) || !strstr(out, "usage: psf_demo"))
            FAIL("psf_demo %s: status %d (expected 2), output lacks \"%s\" or the usage:\n%s",
                 bad[i].args, rc, bad[i].text, out);
    }
    const char *d = test_tmpdir(dir, sizeof dir, "psfdemo");
    CHECK(d);
    char args[600];
    snprintf(args, sizeof args, "--quick --out %s --model examples/ellipticity.model", d);
    int rc = run_demo(args);
    if (rc != 1 || !strstr(out, "psf demo: error: examples/ellipticity.model: the model has 1 "
                                "input; expected two, the stamps and one named psf") ||
        strstr(out, "simulating"))
        FAIL("a model without a psf input: status %d, output:\n%s", rc, out);
    snprintf(args, sizeof args, "--quick --out %s --model-msb "
             "examples/ellipticity_psf.model", d);
    rc = run_demo(args);
    if (rc != 1 || !strstr(out, "examples/ellipticity_psf.model: parameter 'loss.group'") ||
        strstr(out, "simulating"))
        FAIL("--model-msb without loss msb: status %d, output:\n%s", rc, out);
    snprintf(args, sizeof args, "--quick --out %s --model-nopsf examples/ellipticity_psf.model", d);
    rc = run_demo(args);
    if (rc != 1 || !strstr(out, "examples/ellipticity_psf.model: the model has 2 inputs; "
                                "expected one, the stamps"))
        FAIL("a baseline model with a psf input: status %d, output:\n%s", rc, out);
    test_rm_rf(d);
    return TEST_PASS;
}
