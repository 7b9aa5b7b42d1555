/* uncertainty_demo.c - per-galaxy error bars: the ellipticity CNN with a heteroscedastic head
 * (examples/ellipticity_uq.model, loss gaussian_nll) trained on the ellipticity demo's
 * galaxies, then measured on test sets at SNR 10, 20, 40 and 80: RMSE, the mean predicted
 * sigma_e, the coverage of the 68% and 95% intervals, the standardized residuals z and the
 * CRPS per SNR bin (ds_calibrate_regression), with figures of sigma_e against the true
 * error, the PIT histogram and the coverage curve. `make demo-uncertainty` runs it;
 * `--quick` is the small version the tests run. */
#include "demo_common.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBINS 4
static const double snr_bins[NBINS] = {10, 20, 40, 80};
#define SIZE 32
#define NC ds_sim_column_count()
#define SIGMA_BINS 8   /* figure: quantile bins of predicted sigma per SNR bin */

typedef struct {
    int64_t n_train, n_val, per_bin;
    int epochs;
    double budget_s;   /* 0: no limit */
    uint64_t seed;
    const char *out, *model;
    const char *weights;   /* measure these weights, no training; NULL: train */
    bool quick;
} config;

/* ---- simulation: the ellipticity demo's set-up (ellipticity_demo.c); with the same seeds
 * and sizes, its very training (--loss mse), validation and test sets ---- */
static ds_sim_opts base_sim(void)
{
    ds_sim_opts o = {0};
    o.size = SIZE;
    o.n_min = 0.5;
    o.n_max = 6;
    o.hlr_min = 1.5;
    o.hlr_max = 5;
    o.sky_sigma = 1;
    o.offset_max = 0.5;
    o.psf.kind = DS_PSF_GAUSSIAN;
    o.psf.fwhm = 2;
    return o;
}

/* Training-like galaxies: |e| <= 0.75, SNR uniform in [8, 100]. */
static void sim_train(uint64_t seed, int64_t n, ds_tensor **img, ds_tensor **truth)
{
    ds_sim_opts o = base_sim();
    o.count = n;
    o.seed = seed;
    o.e_max = 0.75;   /* wider than the test's 0.6: no pull toward the prior's edge */
    o.snr_min = 8;
    o.snr_max = 100;
    DEMO_TRY(ds_sim_galaxies(&o, img, truth));
}

/* per_bin galaxies at each SNR of snr_bins, |e| <= 0.6, bin after bin. */
static void sim_binned(uint64_t seed, int64_t per_bin, ds_tensor **img, ds_tensor **truth)
{
    int64_t n = per_bin * NBINS, per_img = SIZE * SIZE;
    ds_tensor *imgs = ds_tensor_create(4, (int64_t[]){n, 1, SIZE, SIZE});
    ds_tensor *tr = ds_tensor_create(2, (int64_t[]){n, NC});
    if (!imgs || !tr)
        DEMO_TRY(DS_ERR_NOMEM);
    for (int b = 0; b < NBINS; b++) {
        ds_sim_opts o = base_sim();
        o.count = per_bin;
        o.seed = seed * 1000 + (uint64_t)b;
        o.e_max = 0.6;
        o.snr_min = o.snr_max = snr_bins[b];
        ds_tensor *bi, *bt;
        DEMO_TRY(ds_sim_galaxies(&o, &bi, &bt));
        memcpy(ds_tensor_data(imgs) + b * per_bin * per_img, ds_tensor_data(bi),
               (size_t)(per_bin * per_img) * sizeof(float));
        memcpy(ds_tensor_data(tr) + b * per_bin * NC, ds_tensor_data(bt),
               (size_t)(per_bin * NC) * sizeof(float));
        ds_tensor_free(bi);
        ds_tensor_free(bt);
    }
    *img = imgs;
    *truth = tr;
}

/* ---- the measurement ----
 * Each stamp is measured in its eight symmetries (mirror x four quarter turns), each giving
 * a mean mu_s and a standard deviation sigma_s per component. The eight see the same noise,
 * so their errors are not independent: write mu_s = T + d_s, T the part they share (the
 * noise, the galaxy) and d_s the part each orientation adds (the network's lack of exact
 * symmetry), of variance s^2. The network's sigma_s^2 is one orientation's error variance,
 * var(T) + s^2. The mean of the eight has var(T) + s^2 / 8 = avg sigma_s^2 - (7/8) s^2, and
 * (7/8) s^2 is what the spread of the mu_s, avg (mu_s - mean)^2, estimates. So: mean = avg
 * mu_s (mapped back to the stamp's frame, as demo_measure_cnn does), variance = avg
 * sigma_s^2 - spread^2, never below avg sigma_s^2 / 8 (eight independent errors). The
 * symmetries only flip the signs of e1 and e2, so sigma_s needs no mapping. The stamp as it
 * is (symmetry 0) is kept too, in *one: the network's own calibration, without the average. */
typedef struct {
    int64_t n;
    float *mean, *std, *spread;   /* [n, 2] each; spread NULL for a single orientation */
} uq_measured;

static void uq_measured_free(uq_measured *m)
{
    free(m->mean);
    free(m->std);
    free(m->spread);
}

static uq_measured measure(ds_net *net, const ds_tensor *img, uq_measured *one)
{
    const int64_t *sh = ds_tensor_shape(img);
    uq_measured m = {.n = sh[0]};
    size_t nv = (size_t)m.n * 2;
    *one = (uq_measured){.n = m.n, .mean = malloc(nv * sizeof(float)),
                         .std = malloc(nv * sizeof(float))};
    if (!one->mean || !one->std)
        DEMO_TRY(DS_ERR_NOMEM);
    double *s1 = calloc(nv, sizeof *s1), *s2 = calloc(nv, sizeof *s2), *v = calloc(nv, sizeof *v);
    float *tmp = malloc((size_t)(sh[2] * sh[3]) * sizeof *tmp);
    m.mean = malloc(nv * sizeof *m.mean);
    m.std = malloc(nv * sizeof *m.std);
    m.spread = malloc(nv * sizeof *m.spread);
    if (!s1 || !s2 || !v || !tmp || !m.mean || !m.std || !m.spread)
        DEMO_TRY(DS_ERR_NOMEM);
    int64_t per = sh[1] * sh[2] * sh[3];
    for (int s = 0; s < 8; s++) {
        int tr = (s & 1) | (s >> 1) << 2;
        ds_tensor *x = ds_tensor_from(4, sh, ds_tensor_data((ds_tensor *)img));
        if (!x)
            DEMO_TRY(DS_ERR_NOMEM);
        for (int64_t i = 0; i < m.n; i++)
            ds_image_transform(ds_tensor_data(x) + i * per, sh[1], sh[2], sh[3], tr, tmp);
        ds_feed f = {.inputs = {{NULL, x, NULL}}};
        ds_tensor *out[DS_FEED_MAX] = {0};
        ds_status st = ds_net_predict_feed(net, &f, 256, out);
        ds_tensor_free(x);
        DEMO_TRY(st);
        float *pd = ds_tensor_data(out[0]);   /* [n, 4]: mu1, mu2, sigma1, sigma2 */
        for (int64_t i = 0; i < m.n; i++) {
            ds_ellipticity_transform(NULL, tr, pd + 4 * i, 2);
            for (int k = 0; k < 2; k++) {
                double mu = pd[4 * i + k], sd = pd[4 * i + 2 + k];
                if (s == 0) {
                    one->mean[2 * i + k] = (float)mu;
                    one->std[2 * i + k] = (float)sd;
                }
                s1[2 * i + k] += mu;
                s2[2 * i + k] += mu * mu;
                v[2 * i + k] += sd * sd;
            }
        }
        for (int k = 0; k < ds_net_output_count(net); k++)
            ds_tensor_free(out[k]);
    }
    for (size_t j = 0; j < nv; j++) {
        double mu = s1[j] / 8, var = s2[j] / 8 - mu * mu;
        m.mean[j] = (float)mu;
        double v1 = v[j] / 8, vm = v1 - (var > 0 ? var : 0);
        m.std[j] = (float)sqrt(vm > v1 / 8 ? vm : v1 / 8);
        m.spread[j] = (float)sqrt(var > 0 ? var : 0);
    }
    free(s1);
    free(s2);
    free(v);
    free(tmp);
    return m;
}

/* ---- statistics per SNR bin ---- */
typedef struct {
    int64_t n;
    double rmse, sigma, spread;   /* over both components: RMS error, mean sigma, RMS spread */
    ds_regression_calib cal;
} bin_stats;

/* Rows [lo, hi) of the measurement against the labels y [n, 2]. */
static bin_stats stats_of(const uq_measured *m, const float *y, int64_t lo, int64_t hi)
{
    bin_stats s = {.n = hi - lo};
    double se = 0, sg = 0, sp = 0;
    for (int64_t j = 2 * lo; j < 2 * hi; j++) {
        double d = m->mean[j] - y[j];
        se += d * d;
        sg += m->std[j];
        sp += m->spread ? (double)m->spread[j] * m->spread[j] : 0;
    }
    double nv = 2.0 * (double)s.n;
    s.rmse = sqrt(se / nv);
    s.sigma = sg / nv;
    s.spread = sqrt(sp / nv);
    DEMO_TRY(ds_calibrate_regression(s.n, 2, m->mean + 2 * lo, m->std + 2 * lo, y + 2 * lo,
                                     &s.cal));
    return s;
}

static void print_table(FILE *fp, const config *c, const char *title,
                        const bin_stats st[NBINS + 1], bool spread, bool md)
{
    if (md)
        fprintf(fp, "\n**%s, %lld galaxies per SNR bin (e1 and e2 pooled)**\n\n", title,
                (long long)c->per_bin);
    else
        fprintf(fp, "\n%s, %lld galaxies per SNR bin (e1 and e2 pooled)\n", title,
                (long long)c->per_bin);
    fprintf(fp, "| SNR | galaxies | RMSE | mean sigma_e | 68%% coverage | 95%% coverage | z mean "
            "| z std | CRPS | symmetry spread |\n");
    fprintf(fp, "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int b = 0; b <= NBINS; b++) {
        const bin_stats *s = &st[b];
        char snr[16];
        if (b < NBINS)
            snprintf(snr, sizeof snr, "%g", snr_bins[b]);
        else
            snprintf(snr, sizeof snr, "all");
        char sp[16] = "-";
        if (spread)
            snprintf(sp, sizeof sp, "%.4f", s->spread);
        fprintf(fp, "| %s | %lld | %.4f | %.4f | %.1f%% | %.1f%% | %+.3f | %.3f | %.4f | %s |\n",
                snr, (long long)s->n, s->rmse, s->sigma, 100 * s->cal.all.cover68,
                100 * s->cal.all.cover95, s->cal.all.z_mean, s->cal.all.z_std, s->cal.all.crps,
                sp);
    }
}

/* Rows of the 8-symmetry measurement (measure sym8), then of the stamp as it is (single). */
static void write_csv(const config *c, const bin_stats st[NBINS + 1],
                      const bin_stats one[NBINS + 1])
{
    char p[600];
    demo_path(c->out, "results.csv", p, sizeof p);
    FILE *fp = fopen(p, "w");
    if (!fp) {
        fprintf(stderr, "%s: error: cannot write %s: %s\n", demo_name, p, strerror(errno));
        exit(1);
    }
    fprintf(fp, "measure,snr,n,rmse,sigma_mean,cover68,cover95,z_mean,z_std,crps,nll,"
            "symmetry_spread\n");
    for (int r = 0; r < 2 * (NBINS + 1); r++) {
        int b = r % (NBINS + 1);
        const bin_stats *s = r <= NBINS ? &st[b] : &one[b];
        fprintf(fp, "%s,", r <= NBINS ? "sym8" : "single");
        if (b < NBINS)
            fprintf(fp, "%g", snr_bins[b]);
        else
            fprintf(fp, "all");
        fprintf(fp, ",%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", (long long)s->n,
                s->rmse, s->sigma, s->cal.all.cover68, s->cal.all.cover95, s->cal.all.z_mean,
                s->cal.all.z_std, s->cal.all.crps, s->cal.all.nll, s->spread);
    }
    if (fclose(fp) != 0) {
        fprintf(stderr, "%s: error: cannot write %s: %s\n", demo_name, p, strerror(errno));
        exit(1);
    }
}

/* ---- figures ---- */
static const float *sort_key;
static int by_key(const void *a, const void *b)
{
    float x = sort_key[*(const int64_t *)a], y = sort_key[*(const int64_t *)b];
    return (x > y) - (x < y);
}

/* sigma_e against the true error: per SNR bin, the values (both components) in SIGMA_BINS
 * quantile bins of predicted sigma; x the bin's RMS predicted sigma, y its RMS true error
 * |e_meas - e_true|. Calibrated error bars lie on the diagonal. */
static void fig_sigma_vs_error(const config *c, const uq_measured *m, const float *y)
{
    int64_t nv = 2 * c->per_bin;
    int64_t *idx = malloc((size_t)nv * sizeof *idx);
    if (!idx)
        DEMO_TRY(DS_ERR_NOMEM);
    ds_figure *f = ds_figure_create(1, 1, 720, 640);
    if (!f)
        DEMO_TRY(DS_ERR_NOMEM);
    ds_axes *a = ds_figure_axes(f, 0);
    ds_axes_labels(a, "Predicted sigma_e against the true error",
                   "predicted sigma_e (RMS in bin)", "RMS of e_measured - e_true in bin");
    ds_axes_log_x(a, 1);
    ds_axes_log_y(a, 1);
    double lo = INFINITY, hi = 0;
    for (int b = 0; b < NBINS; b++) {
        const float *sd = m->std + 2 * b * c->per_bin;
        const float *mu = m->mean + 2 * b * c->per_bin, *yt = y + 2 * b * c->per_bin;
        for (int64_t j = 0; j < nv; j++)
            idx[j] = j;
        sort_key = sd;
        qsort(idx, (size_t)nv, sizeof *idx, by_key);
        double bx[SIGMA_BINS], by[SIGMA_BINS], be[SIGMA_BINS];
        for (int q = 0; q < SIGMA_BINS; q++) {
            int64_t j0 = nv * q / SIGMA_BINS, j1 = nv * (q + 1) / SIGMA_BINS;
            double ss = 0, ee = 0;
            for (int64_t j = j0; j < j1; j++) {
                double d = mu[idx[j]] - yt[idx[j]];
                ss += (double)sd[idx[j]] * sd[idx[j]];
                ee += d * d;
            }
            int64_t k = j1 - j0 > 0 ? j1 - j0 : 1;
            bx[q] = sqrt(ss / k);
            by[q] = sqrt(ee / k);
            be[q] = by[q] / sqrt(2.0 * k);   /* the RMS's standard error for Gaussian errors */
            lo = fmin(lo, fmin(bx[q], by[q]));
            hi = fmax(hi, fmax(bx[q], by[q]));
        }
        char label[32];
        snprintf(label, sizeof label, "SNR %g", snr_bins[b]);
        DEMO_TRY(ds_axes_errorbar(a, SIGMA_BINS, bx, by, be, label));
    }
    if (hi > lo && lo > 0) {
        ds_axes_xlim(a, lo / 1.3, hi * 1.3);
        ds_axes_ylim(a, lo / 1.3, hi * 1.3);
    }
    DEMO_TRY(ds_axes_refline(a, 1, 0, "calibrated (y = x)"));
    char p[600];
    demo_path(c->out, "sigma_vs_error.png", p, sizeof p);
    DEMO_TRY(ds_figure_save_png(f, p));
    ds_figure_free(f);
    free(idx);
}

/* ---- the command line ---- */
static void usage(FILE *fp)
{
    fprintf(fp, "usage: uncertainty_demo [--quick] [--out DIR] [--seed S] [--budget SECONDS]\n"
            "                        [--epochs E] [--train N] [--per-bin N] [--model FILE]\n"
            "                        [--weights W]\n"
            "Trains the CNN of --model (default examples/ellipticity_uq.model: a mean and a\n"
            "log-variance head, loss gaussian_nll) for up to --budget seconds (default 420)\n"
            "and --epochs epochs (default 30) on simulated galaxies, then reports how well its\n"
            "per-galaxy error bars are calibrated on test sets at SNR 10, 20, 40 and 80.\n"
            "--weights W: measure these weights of --model instead of training.\n"
            "Writes results.md, results.csv, figures and weights to --out (default\n"
            "out/uncertainty). --quick: the small version the tests run.\n");
}

/* Parses argv into c: 0 on success, else the exit status (2). */
static int parse_args(int argc, char **argv, config *c)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) {   /* first, so other flags may override it */
            c->quick = true;
            c->n_train = 1600;
            c->n_val = 300;
            c->per_bin = 100;
            c->epochs = 2;
            c->budget_s = 0;   /* no time limit: the same result on every machine */
        }
    static const char *const with_value[] = {"--out", "--seed", "--budget", "--epochs",
                                             "--train", "--per-bin", "--model", "--weights",
                                             NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t x;
        if (!strcmp(a, "--quick"))
            continue;
        if (!(v = demo_flag_value(argc, argv, &i, with_value)))
            return 2;
        if (!strcmp(a, "--out") || !strcmp(a, "--model") || !strcmp(a, "--weights")) {
            if (!demo_parse_text(a, v, !strcmp(a, "--out") ? &c->out
                                       : !strcmp(a, "--model") ? &c->model : &c->weights))
                return 2;
        } else if (!strcmp(a, "--budget")) {
            if (!demo_parse_double(a, v, 0, 1e6, "seconds in [0, 1e6] (0: no limit)",
                                   &c->budget_s))
                return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!demo_parse_int(a, v, 0, INT64_MAX / 8, &x))
                return 2;
            c->seed = (uint64_t)x;
        } else if (!strcmp(a, "--epochs")) {
            if (!demo_parse_int(a, v, 1, 10000, &x))
                return 2;
            c->epochs = (int)x;
        } else {
            bool train = !strcmp(a, "--train");
            if (!demo_parse_int(a, v, train ? 100 : 10, 10000000, &x))
                return 2;
            *(train ? &c->n_train : &c->per_bin) = x;
        }
    }
    return 0;
}

/* Simulates the training and validation sets and trains net on them (flips and quarter
 * turns, the ellipticities following them), keeping the best epoch's weights in net; says
 * what was trained in `trained`. */
static void train(const config *c, ds_net *net, int argc, char **argv, char *trained,
                  size_t cap)
{
    printf("== simulating %lld training and %lld validation galaxies (%dx%d, Sersic n 0.5-6, "
           "hlr 1.5-5 px, Gaussian PSF FWHM 2 px)\n", (long long)c->n_train, (long long)c->n_val,
           SIZE, SIZE);
    double ts = demo_now();
    ds_tensor *xtr, *ttr, *xva, *tva;
    sim_train(c->seed * 7919, c->n_train, &xtr, &ttr);
    sim_train(c->seed * 7919 + 1, c->n_val, &xva, &tva);
    printf("   %.1f s\n", demo_now() - ts);
    char *command = ds_command_line(argc, (const char *const *)argv);
    if (!command)
        DEMO_TRY(DS_ERR_NOMEM);
    ds_tensor *ytr = demo_labels(ttr), *yva = demo_labels(tva);
    char wpath[600], logp[600], curve[600];
    demo_remove_stale(c->out, "cnn_uq");
    demo_path(c->out, "cnn_uq.last.safetensors", wpath, sizeof wpath);
    demo_path(c->out, "training_log.csv", logp, sizeof logp);
    demo_path(c->out, "learning_curve.png", curve, sizeof curve);
    ds_fit_opts fo = {.epochs = c->epochs, .batch_size = 64, .seed = c->seed, .out_path = wpath,
                      .log_csv = logp, .curve_png = ds_has_feature("plot") ? curve : NULL,
                      .max_seconds = c->budget_s, .augment = DS_AUG_FLIPS | DS_AUG_ROT90,
                      .augment_labels = ds_ellipticity_transform, .command = command};
    if (c->budget_s > 0)
        printf("== training %s for up to %d epochs or %.0f s\n", c->model, c->epochs, c->budget_s);
    else
        printf("== training %s for %d epochs\n", c->model, c->epochs);
    ds_fit_result fr;
    DEMO_TRY(ds_net_fit(net, xtr, ytr, xva, yva, &fo, &fr));
    free(command);
    printf("   %d epochs in %.0f s%s, best validation loss %.5f at epoch %d\n", fr.epochs_run,
           fr.seconds, fr.out_of_time ? " (time budget reached)" : "", fr.best_val_loss,
           fr.best_epoch);
    demo_keep_best(c->out, "cnn_uq");
    demo_path(c->out, "cnn_uq.safetensors", wpath, sizeof wpath);
    DEMO_TRY(ds_net_load_weights(net, wpath));
    snprintf(trained, cap, "trained %d epochs in %.0f s on %lld galaxies (%dx%d, Sersic n 0.5-6, "
             "hlr 1.5-5 px, Gaussian PSF FWHM 2 px, |e| <= 0.75, SNR 8-100); weights "
             "cnn_uq.safetensors", fr.epochs_run, fr.seconds, (long long)c->n_train, SIZE, SIZE);
    ds_tensor *all[] = {xtr, ttr, xva, tva, ytr, yva};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ds_tensor_free(all[i]);
}

int main(int argc, char **argv)
{
    demo_name = "uncertainty demo";
    demo_usage = usage;
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress lines show in a log file as they come */
    config c = {.n_train = 50000, .n_val = 2000, .per_bin = 2500, .epochs = 30,
                .budget_s = 420, .seed = 1, .out = "out/uncertainty",
                .model = "examples/ellipticity_uq.model"};
    int rc = parse_args(argc, argv, &c);
    if (rc)
        return rc;
    double t0 = demo_now();
    /* the model first: a mistake in it shows before the simulation */
    ds_net *net;
    DEMO_TRY(ds_net_load(c.model, &(ds_net_opts){.batch = 64, .seed = c.seed}, &net));
    /* one input [N, 1, 32, 32]; output 0 [N, 4]: the gaussian_nll head's 2 means, 2 stds */
    const ds_node *in = ds_net_input_count(net) == 1 ? ds_net_input_at(net, 0) : NULL;
    const ds_node *o = ds_net_output_count(net) >= 1 ? ds_net_output_at(net, 0) : NULL;
    if (!in || ds_node_ndim(in) != 4 || ds_node_shape(in)[1] != 1 ||
        ds_node_shape(in)[2] != SIZE || ds_node_shape(in)[3] != SIZE || !o ||
        !ds_net_output_is_gaussian(net, 0) || ds_node_ndim(o) != 2 || ds_node_shape(o)[1] != 4) {
        fprintf(stderr, "%s: error: %s: expected one input of shape 1x%dx%d (the stamps) and a "
                "first output from a 'loss gaussian_nll mean=LAYER logvar=LAYER' line whose "
                "mean has 2 values (e1, e2)\n", demo_name, c.model, SIZE, SIZE);
        ds_net_free(net);
        return 1;
    }
    if (c.weights)   /* before anything is written */
        DEMO_TRY(ds_net_load_weights(net, c.weights));
    demo_make_dirs(c.out);

    /* 1. simulate; 2. train (or take --weights) */
    ds_tensor *xte, *tte;
    char trained[600];
    sim_binned(c.seed * 31 + 3, c.per_bin, &xte, &tte);
    if (c.weights)
        snprintf(trained, sizeof trained, "weights %s, given with --weights", c.weights);
    else
        train(&c, net, argc, argv, trained, sizeof trained);
    char used[256];
    demo_weights_words(net, used, sizeof used);
    printf("   the tables use %s (%s)\n", c.weights ? c.weights : "cnn_uq.safetensors", used);
    ds_tensor *yte = demo_labels(tte);

    /* 3. measure the test sets (8 symmetries) and the statistics per SNR bin */
    printf("== measuring the test sets (8 symmetries per stamp)\n");
    double tm = demo_now();
    uq_measured m1, m = measure(net, xte, &m1);
    printf("   %.1f s\n", demo_now() - tm);
    const float *y = ds_tensor_data(yte);
    bin_stats st[NBINS + 1], s1[NBINS + 1];
    for (int b = 0; b <= NBINS; b++) {
        int64_t lo = b < NBINS ? b * c.per_bin : 0;
        int64_t hi = b < NBINS ? lo + c.per_bin : NBINS * c.per_bin;
        st[b] = stats_of(&m, y, lo, hi);
        s1[b] = stats_of(&m1, y, lo, hi);
    }

    /* 4. the report */
    const char *t8 = "Test sets, 8 symmetries combined";
    const char *t1 = "The stamp as it is (one orientation)";
    print_table(stdout, &c, t8, st, true, false);
    print_table(stdout, &c, t1, s1, false, false);
    char p[600];
    demo_path(c.out, "results.md", p, sizeof p);
    FILE *md = fopen(p, "w");
    if (!md) {
        fprintf(stderr, "%s: error: cannot write %s: %s\n", demo_name, p, strerror(errno));
        return 1;
    }
    fprintf(md, "# Per-galaxy error bars: the ellipticity CNN with a heteroscedastic head\n\n"
            "%s (loss gaussian_nll) %s (%s). Test sets: |e| <= 0.6, one SNR per bin.\n\n"
            "Each stamp is measured in its 8 symmetries: e_meas = mean of the 8 means, sigma_e^2 "
            "= mean of the 8 predicted variances less the variance of the 8 means (the error "
            "each orientation adds, which the average divides by 8; never below the mean "
            "variance / 8), per component. Coverage: the fraction of "
            "e1 and e2 values with |e_meas - e_true| <= 0.994 sigma_e (68%%) and 1.960 sigma_e "
            "(95%%); z = (e_true - e_meas) / sigma_e; CRPS in units of e. The symmetry spread "
            "(RMS of the std of the 8 means) is that per-orientation error. The second table "
            "measures each stamp once, as it is: the network's own calibration.\n",
            c.model, trained, used);
    print_table(md, &c, t8, st, true, true);
    print_table(md, &c, t1, s1, false, true);
    fclose(md);
    write_csv(&c, st, s1);
    if (ds_has_feature("plot")) {
        fig_sigma_vs_error(&c, &m, y);
        demo_path(c.out, "pit.png", p, sizeof p);
        DEMO_TRY(ds_plot_pit(&st[NBINS].cal, -1, "PIT of e1 and e2, all SNR bins", p));
        demo_path(c.out, "coverage.png", p, sizeof p);
        DEMO_TRY(ds_plot_coverage(&st[NBINS].cal, "Coverage of e1 and e2, all SNR bins", p));
    }

    /* the verdicts the issue asks for */
    int grows = 0, covered = 0;
    for (int b = 0; b < NBINS; b++) {
        grows += b == 0 || st[b].sigma < st[b - 1].sigma;
        covered += fabs(st[b].cal.all.cover68 - 0.68) <= 0.02;
    }
    printf("\nmean sigma_e grows as the SNR falls: %s (%.4f at SNR 10, %.4f at SNR 80); 68%% "
           "coverage within 2 points of nominal in %d of %d SNR bins\n",
           grows == NBINS ? "yes" : "no", st[0].sigma, st[NBINS - 1].sigma, covered, NBINS);
    bool plot = ds_has_feature("plot");
    printf("results in %s/ (results.md, results.csv%s%s%s); %.0f s in all\n", c.out,
           c.weights ? "" : ", cnn_uq.safetensors, cnn_uq.last.safetensors, training_log.csv",
           plot && !c.weights ? ", learning_curve.png" : "",
           plot ? ", sigma_vs_error.png, pit.png, coverage.png" : "", demo_now() - t0);
    for (int b = 0; b <= NBINS; b++) {
        ds_regression_calib_free(&st[b].cal);
        ds_regression_calib_free(&s1[b].cal);
    }
    uq_measured_free(&m);
    uq_measured_free(&m1);
    ds_tensor *all[] = {xte, tte, yte};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ds_tensor_free(all[i]);
    ds_net_free(net);
    return 0;
}
