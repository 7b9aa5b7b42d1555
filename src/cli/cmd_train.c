/* cmd_train.c - deepsky train: loads data, applies preprocessing, trains with validation,
 * early stopping and checkpoints, and shows progress (a bar on a terminal, lines otherwise). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    bool tty;
    double last;
} progress_state;

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_time(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, cap, "--:--");
    else if (s >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(buf, cap, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void show(void *ctx, const ds_progress *p)
{
    progress_state *ps = ctx;
    char eta[32], metric[48] = "", val[96] = "";
    fmt_time(p->eta_s, eta, sizeof eta);
    if (p->metric_name && !isnan(p->metric))
        snprintf(metric, sizeof metric, "  %s %.4f", p->metric_name, p->metric);
    if (p->end_of_epoch && !isnan(p->val_loss)) {
        snprintf(val, sizeof val, "  val_loss %.4g", p->val_loss);
        if (p->metric_name && !isnan(p->val_metric)) {
            size_t l = strlen(val);
            snprintf(val + l, sizeof val - l, "  val_%s %.4f", p->metric_name, p->val_metric);
        }
    }
    if (ps->tty) {
        double t = wall();
        if (!p->end_of_epoch && t - ps->last < 0.1 && p->batch != 1)
            return;
        ps->last = t;
        int width = 24, done = (int)(width * p->batch / p->batches);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < done ? '=' : (i == done ? '>' : ' ');
        bar[width] = 0;
        printf("\r\033[Kepoch %d/%d [%s] %lld/%lld  loss %.4g%s%s  %.0f samples/s  %s %s%s",
               p->epoch, p->epochs, bar, (long long)p->batch, (long long)p->batches, p->loss,
               metric, val, p->samples_per_s, p->end_of_epoch ? "elapsed" : "ETA",
               p->end_of_epoch ? "" : eta, p->improved ? "  *" : "");
        if (p->end_of_epoch) {
            char el[32];
            fmt_time(p->elapsed_s, el, sizeof el);
            printf("%s\n", el);
        }
        fflush(stdout);
    } else if (p->end_of_epoch) {
        char el[32];
        fmt_time(p->elapsed_s, el, sizeof el);
        printf("epoch %d/%d  loss %.4g%s%s  %.0f samples/s  elapsed %s  ETA %s%s\n", p->epoch,
               p->epochs, p->loss, metric, val, p->samples_per_s, el, eta,
               p->improved ? "  *" : "");
        fflush(stdout);
    }
}

/* --scale none|standardize|per_image|asinh[:A]|divide:A */
static bool parse_scale(const cli_cmd *c, ds_scale_kind *kind, float *a)
{
    const char *v = cli_get(c, "scale");
    *a = 1;
    if (!strcmp(v, "none"))
        *kind = DS_SCALE_NONE;
    else if (!strcmp(v, "standardize"))
        *kind = DS_SCALE_STANDARDIZE;
    else if (!strcmp(v, "per_image"))
        *kind = DS_SCALE_PER_IMAGE;
    else if (!strncmp(v, "asinh", 5) || !strncmp(v, "divide", 6)) {
        *kind = v[0] == 'a' ? DS_SCALE_ASINH : DS_SCALE_DIVIDE;
        const char *colon = strchr(v, ':');
        if (!colon && *kind == DS_SCALE_DIVIDE) {
            cli_usage_error(c, "option '--scale': divide needs a value, e.g. divide:255");
            return false;
        }
        if (colon) {
            char *end;
            double x = strtod(colon + 1, &end);
            if (end == colon + 1 || *end || !(x > 0) || !isfinite(x)) {
                cli_usage_error(c, "option '--scale': '%s' is not a positive number", colon + 1);
                return false;
            }
            *a = (float)x;
        }
    } else {
        cli_usage_error(c, "option '--scale': '%s' is not none, standardize, per_image, "
                        "asinh[:A] or divide:A", v);
        return false;
    }
    return true;
}

static bool parse_augment(const cli_cmd *c, int *flags)
{
    const char *v = cli_get(c, "augment");
    *flags = 0;
    if (!v)
        return true;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        if (!strcmp(t, "flips"))
            *flags |= DS_AUG_FLIPS;
        else if (!strcmp(t, "rot90"))
            *flags |= DS_AUG_ROT90;
        else {
            cli_usage_error(c, "option '--augment': '%s' is not flips or rot90", t);
            return false;
        }
    }
    return true;
}

static bool parse_optimizer(const cli_cmd *c, ds_optim_opts *o)
{
    const char *v = cli_get(c, "optimizer");
    if (v) {
        int k = -1;
        for (int i = 0; i < DS_OPT_COUNT; i++)
            if (!strcmp(v, ds_optim_name((ds_optim_kind)i)))
                k = i;
        if (k < 0) {
            cli_usage_error(c, "option '--optimizer': '%s' is not sgd, adagrad, rmsprop, adam or "
                            "adamw", v);
            return false;
        }
        if (k != (int)o->kind)
            memset(o, 0, sizeof *o);   /* another optimizer: its own defaults */
        o->kind = (ds_optim_kind)k;
    }
    double lr;
    if (!cli_double(c, "lr", 1e-12, 1e3, 0, &lr))
        return false;
    if (lr > 0)
        o->lr = (float)lr;
    return true;
}

/* Moves the last fraction f of the samples into a validation set (as Keras' validation_split). */
static int split(ds_tensor **x, ds_tensor **y, double f, ds_tensor **xv, ds_tensor **yv)
{
    int64_t N = ds_tensor_shape(*x)[0];
    int64_t nv = (int64_t)floor(f * (double)N + 0.5);
    if (nv < 1 || nv >= N) {
        fprintf(stderr, "deepsky: error: --val-split %g of %lld samples leaves %lld for "
                "validation and %lld for training; both need at least one\n", f, (long long)N,
                (long long)nv, (long long)(N - nv));
        return 1;
    }
    ds_tensor **src[2] = {x, y}, **dst[2] = {xv, yv};
    for (int k = 0; k < 2; k++) {
        ds_tensor *t = *src[k];
        int nd = ds_tensor_ndim(t);
        int64_t shape[DS_MAX_DIMS];
        memcpy(shape, ds_tensor_shape(t), (size_t)nd * sizeof *shape);
        int64_t per = ds_tensor_numel(t) / N;
        shape[0] = N - nv;
        ds_tensor *a = ds_tensor_from(nd, shape, ds_tensor_data(t));
        shape[0] = nv;
        ds_tensor *b = ds_tensor_from(nd, shape, ds_tensor_data(t) + (N - nv) * per);
        if (!a || !b) {
            ds_tensor_free(a);
            ds_tensor_free(b);
            return cli_fail();
        }
        ds_tensor_free(t);
        *src[k] = a;
        *dst[k] = b;
    }
    return 0;
}

static void stem_name(const char *out, const char *suffix, char *buf, size_t cap)
{
    size_t n = strlen(out), e = strlen(".safetensors");
    if (n > e && !strcmp(out + n - e, ".safetensors"))
        n -= e;
    snprintf(buf, cap, "%.*s%s", (int)n, out, suffix);
}

int cmd_train(int argc, char **argv)
{
    cli_opt opts[] = {
        {"data", 0, "X", "training data (.npy, .fits, .csv or IDX)", NULL},
        {"labels", 0, "Y", "training labels (class indices, one-hot rows or targets)", NULL},
        {"columns", 0, "COLS", "table data: feature columns, e.g. mag_u,mag_g or 1,2", NULL},
        {"label-columns", 0, "COLS", "table data: label columns (from --labels, or --data)", NULL},
        {"hdu", 0, "N", "FITS: HDU number, 1 = primary (default: first with data)", NULL},
        {"val", 0, "X2", "validation data", NULL},
        {"val-labels", 0, "Y2", "validation labels", NULL},
        {"val-split", 0, "F", "hold out the last fraction F of the data for validation", NULL},
        {"weights", 0, "W0", "start from these weights (default: fresh initialization)", NULL},
        {"epochs", 0, "N", "epochs (default 10)", NULL},
        {"batch-size", 0, "B", "mini-batch size (default 32)", NULL},
        {"optimizer", 0, "NAME", "sgd, adagrad, rmsprop, adam or adamw (default: the model file's)", NULL},
        {"lr", 0, "LR", "learning rate (default: the model file's, else 1e-3; sgd 1e-2)", NULL},
        {"seed", 0, "S", "seed for initialization, shuffling, dropout, augmentation (default 0)", NULL},
        {"no-shuffle", 0, NULL, "keep the sample order", NULL},
        {"skip-nonfinite", 0, NULL, "skip a step whose loss or gradient is NaN or Inf instead "
         "of stopping", NULL},
        {"augment", 0, "LIST", "random flips,rot90 of square images each epoch", NULL},
        {"early-stopping", 0, "P", "stop after P epochs without a better validation loss", NULL},
        {"scale", 0, "HOW", "none, standardize, per_image, asinh[:A], divide:A (default none)", NULL},
        {"resume", 0, NULL, "continue an interrupted run of the same command from its checkpoint", NULL},
        {"log", 0, "CSV", "per-epoch log (default: <W>.log.csv)", NULL},
        {"curve", 0, "PNG", "learning curve figure (default: <W>.curve.png)", NULL},
        {"threads", 0, "N", "threads (default: all cores)", NULL},
        {"quiet", 'q', NULL, "no progress output", NULL},
        {"output", 'o', "W.safetensors", "final weights (required); also writes <W>.best and <W>.ckpt", NULL},
    };
    cli_cmd c = {"train", "MODEL --data X --labels Y [options] -o W.safetensors",
                 "Trains MODEL with mini-batches. After every epoch it writes the last weights "
                 "to W, the best so far (lowest validation loss, or training loss without "
                 "validation) to <W>.best.safetensors, and a checkpoint with the optimizer's "
                 "state to <W>.ckpt.safetensors, each atomically. Flags override the model "
                 "file's optimizer line.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long epochs, batch, seed, patience;
    double vsplit;
    int aug;
    ds_scale_kind scale = DS_SCALE_NONE;
    float scale_a = 1;
    if (!cli_long(&c, "epochs", 1, 1000000, 10, &epochs) ||
        !cli_long(&c, "batch-size", 1, 1L << 24, 32, &batch) ||
        !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_long(&c, "early-stopping", 1, 1000000, 0, &patience) ||
        !cli_double(&c, "val-split", 0, 1, 0, &vsplit) || !parse_augment(&c, &aug) ||
        !cli_threads(&c))
        return 2;
    if (cli_has(&c, "scale") && !parse_scale(&c, &scale, &scale_a))
        return 2;
    if (!cli_has(&c, "data"))
        return cli_usage_error(&c, "--data X is required");
    if (!cli_has(&c, "labels") && !cli_has(&c, "label-columns"))
        return cli_usage_error(&c, "--labels Y (or --label-columns for a table) is required");
    if (!cli_has(&c, "output"))
        return cli_usage_error(&c, "-o W.safetensors is required");
    if (cli_has(&c, "val") != cli_has(&c, "val-labels") && !cli_has(&c, "label-columns"))
        return cli_usage_error(&c, "--val and --val-labels go together");
    if (cli_has(&c, "val") && cli_has(&c, "val-split"))
        return cli_usage_error(&c, "give either --val or --val-split, not both");
    if (patience && !cli_has(&c, "val") && !cli_has(&c, "val-split"))
        return cli_usage_error(&c, "--early-stopping needs validation data (--val or --val-split)");
    ds_optim_opts optim_check = {0};   /* a bad --optimizer or --lr fails before any loading */
    if (!parse_optimizer(&c, &optim_check))
        return 2;
    if (cli_stop_here(&c))
        return 0;

    ds_tensor *x = NULL, *y = NULL, *xv = NULL, *yv = NULL;
    ds_net *n = NULL;
    rc = 1;
    if (cli_load_data(&c, cli_get(&c, "data"), cli_get(&c, "labels"), &x, &y))
        goto done;
    if (cli_has(&c, "val") &&
        cli_load_data(&c, cli_get(&c, "val"), cli_get(&c, "val-labels"), &xv, &yv))
        goto done;
    if (vsplit > 0 && split(&x, &y, vsplit, &xv, &yv))
        goto done;
    if (cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, (uint64_t)seed,
                     cli_label_mode(y), &n))
        goto done;
    if (cli_fit_input(n, &x, cli_get(&c, "data")) ||
        (xv && cli_fit_input(n, &xv, cli_has(&c, "val") ? cli_get(&c, "val") : "validation split")))
        goto done;
    if (!parse_optimizer(&c, ds_net_optim_opts_mut(n))) {
        rc = 2;
        goto done;
    }
    const char *xname = cli_get(&c, "data");
    const char *yname = cli_get(&c, "labels") ? cli_get(&c, "labels") : xname;
    if (ds_net_check_data(n, x, xname, y, yname) ||
        (xv && ds_net_check_data(n, xv, cli_has(&c, "val") ? cli_get(&c, "val") : "validation split",
                                 yv, cli_has(&c, "val-labels") ? cli_get(&c, "val-labels") : "validation split")))
        goto fail;
    if (cli_has(&c, "scale") && ds_net_set_scaling(n, scale, scale_a, x))
        goto fail;
    if (ds_net_preprocess(n, x) || (xv && ds_net_preprocess(n, xv)))
        goto fail;

    char logp[4096], curvep[4096];
    const char *out = cli_get(&c, "output");
    stem_name(out, ".log.csv", logp, sizeof logp);
    stem_name(out, ".curve.png", curvep, sizeof curvep);
    progress_state ps = {.tty = isatty(fileno(stdout)) != 0};
    ds_fit_opts fo = {
        .epochs = (int)epochs, .batch_size = batch, .seed = (uint64_t)seed,
        .no_shuffle = cli_has(&c, "no-shuffle"), .augment = aug, .patience = (int)patience,
        .skip_nonfinite = cli_has(&c, "skip-nonfinite"),
        .out_path = out, .log_csv = cli_has(&c, "log") ? cli_get(&c, "log") : logp,
        /* no default figure in a build without plotting (NO_PLOT); --curve is then an error */
        .curve_png = cli_has(&c, "curve") ? cli_get(&c, "curve")
                                          : ds_has_feature("plot") ? curvep : NULL,
        .resume = cli_has(&c, "resume"), .progress = cli_has(&c, "quiet") ? NULL : show, .ctx = &ps,
    };
    if (!cli_has(&c, "quiet")) {
        const ds_optim_opts *o = ds_net_optim_opts(n);
        char val[64] = "";
        if (xv)
            snprintf(val, sizeof val, " (validation %lld)", (long long)ds_tensor_shape(xv)[0]);
        printf("training %s on %lld samples%s, batch %ld, %s lr %g, %d threads\n",
               c.positional[0], (long long)ds_tensor_shape(x)[0], val, batch,
               ds_optim_name(o->kind), o->lr > 0 ? o->lr : (o->kind == DS_OPT_SGD ? 1e-2 : 1e-3),
               ds_get_num_threads());
    }
    ds_fit_result r;
    if (ds_net_fit(n, x, y, xv, yv, &fo, &r))
        goto fail;
    if (!cli_has(&c, "quiet")) {
        if (r.resumed_from)
            printf("resumed after epoch %d\n", r.resumed_from);
        if (r.stopped_early)
            printf("early stopping: no better validation loss for %ld epochs\n", patience);
        if (r.skipped_steps)
            printf("skipped %lld steps with a NaN or Inf loss or gradient\n",
                   (long long)r.skipped_steps);
        printf("done: %d epochs in %.1f s; best epoch %d%s", r.epochs_run, r.seconds, r.best_epoch,
               xv ? "" : " (by training loss)");
        if (xv)
            printf(" (val_loss %.4g)", r.best_val_loss);
        char best[4096];
        stem_name(out, ".best.safetensors", best, sizeof best);
        printf("\nwrote %s (last), %s (best), %s%s%s\n", out, best, fo.log_csv,
               fo.curve_png ? ", " : "", fo.curve_png ? fo.curve_png : "");
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail();
done:
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_tensor_free(xv);
    ds_tensor_free(yv);
    ds_net_free(n);
    return rc;
}
