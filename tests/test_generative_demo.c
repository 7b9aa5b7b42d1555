/* test_generative_demo.c - the generative demo (examples/generative_demo.c, make
 * demo-generative) at small size (--quick): it runs end to end and writes its report, table,
 * weights and figures into --out (a folder it creates) and nothing else there; results.csv
 * holds every figure, finite and in range, and the ones a few seconds of training already
 * decide: the denoiser beats no filter at SNR 10, the anomaly scores rank cosmic rays, hot
 * pixels and all anomalies pooled above normal stamps (AUROC > 0.5), the watershed baseline
 * scores near its README value. Not the goals: those need the full run. Bad flags
 * give usage errors. */
#include "test.h"
#include "spawn.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

static const char *demo_bin(void)
{
    const char *d = getenv("DEEPSKY_GEN_DEMO");
    return d ? d : "build/examples/generative_demo";
}

static char out[1 << 16];

static int run_demo(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s %s", demo_bin(), args);
    return cli_run_sh(cmd, NULL, out, sizeof out);
}

/* The value of part,name in results.csv text csv (NaN if absent). */
static double value(const char *csv, const char *part, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s,%s,", part, name);
    const char *p = strstr(csv, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* Every value of results.csv in [lo, hi] (finite), naming the first that is not. */
static int check_ranges(const char *csv, char *msg, size_t cap)
{
    static const struct {
        const char *part, *name;
        double lo, hi;
    } want[] = {
        {"denoise", "snr10_rmse_input", 0.9, 1.1},   /* sky noise of sigma 1 */
        {"denoise", "snr10_filter_sigma", 0.2, 2.9},
        {"denoise", "snr10_rmse_filter", 0.01, 1},
        {"denoise", "snr10_rmse_denoiser", 0.01, 10},
        {"denoise", "snr40_rmse_denoiser", 0.01, 10},
        {"vae", "neg_elbo", 1, 1e9},
        {"vae", "ks_flux", 0, 1}, {"vae", "ks_hlr", 0, 1}, {"vae", "ks_e", 0, 1},
        {"vae", "ks_floor_flux", 0, 0.3},   /* two real sets of 300 */
        {"gan", "ks_flux", 0, 1}, {"gan", "ks_e", 0, 1}, {"gan", "epochs", 1, 1},
        {"anomaly", "auroc_cosmic", 0.5, 1}, {"anomaly", "auroc_hot", 0.5, 1},
        {"anomaly", "auroc_all", 0.5, 1}, {"anomaly", "auroc_ae512_cosmic", 0.5, 1},
        {"anomaly", "auroc_mse_hot", 0.5, 1}, {"anomaly", "auroc_ae512_mse_cosmic", 0.5, 1},
        {"anomaly", "auroc_trail", 0, 1}, {"anomaly", "auroc_ring", 0, 1},
        {"anomaly", "tpr1_all", 0, 1}, {"anomaly", "auroc_snr20_40_ring", 0, 1},
        {"unet", "iou_heldout", 0, 1}, {"unet", "iou_rows", 0, 1},
        {"unet", "iou_watershed_heldout", 0.5, 0.8},   /* README: 0.649 over the rows */
        {"unet", "iou_watershed_rows", 0.5, 0.8},
        {"unet", "iou_heldout_1", 0, 1}, {"unet", "iou_heldout_fixed_2", 0, 1},
        {"unet", "iou_watershed_heldout_1", 0.5, 0.9}, {"unet", "watershed_k", 0.8, 2},
        {"unet", "watershed_smooth", 0.4, 1}, {"unet", "iou_heldout_onepass", 0, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        double v = value(csv, want[i].part, want[i].name);
        if (!(v >= want[i].lo && v <= want[i].hi))
            return snprintf(msg, cap, "results.csv: %s %s = %g, expected in [%g, %g]:\n%s",
                            want[i].part, want[i].name, v, want[i].lo, want[i].hi, csv),
                   1;
    }
    /* the quick denoiser already beats no filter (RMSE to the noiseless stamps) */
    double in = value(csv, "denoise", "snr10_rmse_input");
    double dn = value(csv, "denoise", "snr10_rmse_denoiser");
    if (!(dn < in))
        return snprintf(msg, cap, "denoiser RMSE %g not below the input's %g", dn, in), 1;
    /* the matching maximizes the sum of IoUs, so it scores at least the fixed order; the
     * watershed's classes follow its markers' heights, the same order as the true classes
     * (class 1 the higher peak), so its fixed order is not far below */
    double m = value(csv, "unet", "iou_watershed_heldout");
    double f = value(csv, "unet", "iou_watershed_heldout_fixed");
    if (!(m >= f && f > m - 0.15))
        return snprintf(msg, cap, "watershed IoU matched %g, fixed order %g", m, f), 1;
    return 0;
}

TEST(generative_demo_quick_report)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    char dir[256];
    const char *d = test_tmpdir(dir, sizeof dir, "gendemo");
    CHECK(d);
    char args[600], o[400];
    snprintf(o, sizeof o, "%s/a/b", d);   /* a folder the demo must create */
    snprintf(args, sizeof args, "--quick --out %s", o);
    int rc = run_demo(args);
    if (rc != 0)
        FAIL("generative demo exit status %d; output:\n%s", rc, out);
    const char *files[] = {
        "results.md", "results.csv", "gan", "denoise_examples.png", "vae_samples.png",
        "real_samples.png", "gan_samples.png", "roc.png", "unet_examples.png",
        "denoise.safetensors", "denoise.last.safetensors", "denoise_log.csv",
        "vae.safetensors", "vae.last.safetensors", "vae_log.csv",
        "autoencoder.safetensors", "autoencoder.last.safetensors", "autoencoder_log.csv",
        "anomaly_ae.safetensors", "anomaly_ae.last.safetensors", "anomaly_ae_log.csv",
        "unet.safetensors", "unet.last.safetensors", "unet_log.csv"};
    const char *bad = NULL;
    int held = test_folder_holds(o, files, sizeof files / sizeof *files, &bad);
    if (held == 1)
        FAIL("the demo did not write %s; output:\n%s", bad, out);
    if (held == 2)
        FAIL("the demo left an unexpected file %s", bad);
    CHECK(held == 0);
    char g[500];
    snprintf(g, sizeof g, "%s/gan", o);
    const char *gfiles[] = {"generator.safetensors", "discriminator.safetensors",
                            "gan.ckpt.safetensors", "log.csv", "samples_0001.png"};
    held = test_folder_holds(g, gfiles, sizeof gfiles / sizeof *gfiles, &bad);
    if (held != 0)
        FAIL("gan/: %s %s", held == 1 ? "missing" : "unexpected", bad);
    char *csv = test_read_file(test_at(o, "results.csv"), NULL);
    CHECK(csv);
    int bad_range = check_ranges(csv, msg_, cap_);
    char *md = test_read_file(test_at(o, "results.md"), NULL);
    free(csv);
    CHECK(bad_range == 0);
    CHECK(md);
    const char *parts[] = {
        "## 1. Denoising autoencoder against a tuned Gaussian filter",
        "| SNR | input RMSE | Gaussian filter (sigma px) | filter RMSE | denoiser RMSE",
        "## 2. VAE: generated stamps against real ones", "| real against real (floor) | 300 |",
        "| VAE: GMM of the codes, decoded mean + likelihood noise | 300 |",
        "## 3. DCGAN: generated stamps against real ones", "| DCGAN samples | 300 |",
        "Flux variance, generated over real: ",
        "## 4. Anomaly detection by reconstruction error", "| cosmic | 50 |", "| ring | 50 |",
        "| all | 200 |", "## 5. U-Net on blends against threshold-and-watershed",
        "| 10-20 | 4-6 | 20 |", "| method | IoU | class 1 | class 2 | both |",
        "| U-Net | pooled |", "| U-Net, one pass | per object, matched |",
        "| 50-100 | 8-10 | 20 |", "| mean of the rows | | |",
        "![ROC curves of anomaly_ae, smoothed residual](roc.png)",
        "| anomaly | stamps | autoencoder, MSE |"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (!strstr(md, parts[i]))
            FAIL("results.md lacks \"%s\":\n%s", parts[i], md);
    free(md);
    test_note_line(msg_, cap_, out, "SNR 10: ", 120);
    test_rm_rf(d);
    return TEST_PASS;
}

/* Every bad flag is a usage error (status 2) naming the flag, before anything is written. */
TEST(generative_demo_bad_flags)
{
    if (access(demo_bin(), X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo_bin());
    const struct {
        const char *args, *text;
    } bad[] = {
        {"--bogus", "generative demo: error: unknown option '--bogus'"},
        {"--seed", "option '--seed' needs a value"},
        {"--seed x", "option '--seed' needs a whole number in [0, 1000000000], got 'x'"},
        {"--parts vae,gans", "option '--parts': 'vae,gans' is not a list of denoise, vae, gan, "
                             "anomaly, unet"},
        {"--parts ''", "option '--parts' needs a non-empty value"},
        {"--out ''", "option '--out' needs a non-empty value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run_demo(bad[i].args);
        if (rc != 2 || !strstr(out, bad[i].text) || !strstr(out, "usage: generative_demo"))
            FAIL("generative_demo %s: status %d (expected 2), output lacks \"%s\" or the "
                 "usage:\n%s", bad[i].args, rc, bad[i].text, out);
    }
    return TEST_PASS;
}
