/* cmd_train.c - deepsky train: loads data (or streams it from many files), applies
 * preprocessing, trains with validation, early stopping and checkpoints, and shows progress
 * (a bar on a terminal, lines otherwise). */
#include "cli.h"
#include "../mpi/dist.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
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
    char eta[32], metric[400] = "", val[96] = "";
    fmt_time(p->eta_s, eta, sizeof eta);
    if (!isnan(p->kl))   /* Bayesian layers: the KL term, a part of loss */
        snprintf(metric, sizeof metric, "  (kl %.4g)", p->kl);
    for (int k = 0; k < p->n_terms; k++) {   /* several loss lines: each one's term */
        size_t l = strlen(metric);
        snprintf(metric + l, sizeof metric - l, "%s%s %.4g%s", k ? "  " : "  (",
                 p->term_names[k], p->terms[k], k + 1 == p->n_terms ? ")" : "");
    }
    if (p->metric_name && !isnan(p->metric)) {
        size_t l = strlen(metric);
        snprintf(metric + l, sizeof metric - l, "  %s %.4f", p->metric_name, p->metric);
    }
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
        char bar[32], el[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < done ? '=' : (i == done ? '>' : ' ');
        bar[width] = 0;
        fmt_time(p->elapsed_s, el, sizeof el);
        /* the best-epoch marker goes after the time, which ends the line's fields */
        printf("\r\033[Kepoch %d/%d [%s] %lld/%lld  loss %.4g%s%s  %.0f samples/s  %s %s%s%s",
               p->epoch, p->epochs, bar, (long long)p->batch, (long long)p->batches, p->loss,
               metric, val, p->samples_per_s, p->end_of_epoch ? "elapsed" : "ETA",
               p->end_of_epoch ? el : eta, p->end_of_epoch && p->improved ? "  *" : "",
               p->end_of_epoch ? "\n" : "");
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

/* One --scale value's HOW: none|standardize|per_image|asinh[:A]|divide:A */
bool cli_parse_scale(const cli_cmd *c, const char *v, ds_scale_kind *kind, float *a)
{
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

/* Every --scale value: plain HOW (every input) or NAME=HOW (one input each), not both. */
bool cli_check_scales(const cli_cmd *c)
{
    const char *const *v;
    int n = cli_values(c, "scale", &v), plain = 0;
    for (int i = 0; i < n; i++) {
        char name[CLI_NAME_MAX];
        const char *how;
        ds_scale_kind kind;
        float a;
        cli_split_named(v[i], name, sizeof name, &how);
        plain += !name[0];
        if (!cli_parse_scale(c, how, &kind, &a))
            return false;
    }
    if (plain && n > 1) {
        cli_usage_error(c, "option '--scale': give either one HOW for every input or NAME=HOW "
                        "for each input");
        return false;
    }
    return true;
}

/* Sets each input's scaling from --scale, with statistics from its training data (the
 * feed f, or the stream s). */
int cli_apply_scales(const cli_cmd *c, ds_net *n, const ds_feed *f, ds_stream *s)
{
    const char *const *v;
    int count = cli_values(c, "scale", &v);
    for (int i = 0; i < count; i++) {
        char name[CLI_NAME_MAX];
        const char *how;
        ds_scale_kind kind;
        float a;
        cli_split_named(v[i], name, sizeof name, &how);
        cli_parse_scale(c, how, &kind, &a);   /* checked before loading */
        bool found = false;
        for (int k = 0; k < ds_net_input_count(n); k++) {
            const char *in = ds_net_input_name(n, k);
            if (name[0] && strcmp(name, in))
                continue;
            found = true;
            const ds_tensor *x = NULL;
            for (int j = 0; f && j < DS_FEED_MAX && f->inputs[j].data && !x; j++)
                if (!f->inputs[j].name || !strcmp(f->inputs[j].name, in))
                    x = f->inputs[j].data;
            if (s ? ds_net_set_input_scaling_stream(n, in, kind, a, s)
                  : ds_net_set_input_scaling(n, in, kind, a, x))
                return cli_fail();
        }
        if (!found) {
            fprintf(stderr, "deepsky: error: --scale %s: the model has no input named '%s'\n",
                    v[i], name);
            return 1;
        }
    }
    return 0;
}

/* noise:S or noise:S:INPUT: Gaussian noise of standard deviation S on the first input or
 * the one named. */
static bool parse_noise(const cli_cmd *c, const char *t, double *noise, char *input, size_t cap)
{
    char *end;
    errno = 0;
    double s = strtod(t + 6, &end);
    if (end == t + 6 || (*end && *end != ':') || errno || !(s > 0 && s < 1e30) ||
        (*end == ':' && (!end[1] || strlen(end + 1) >= cap))) {
        cli_usage_error(c, "option '--augment': '%s': noise:S[:INPUT] takes a standard "
                        "deviation S > 0 (in the input's units after scaling) and optionally "
                        "an input's name", t);
        return false;
    }
    *noise = s;
    snprintf(input, cap, "%s", *end == ':' ? end + 1 : "");
    return true;
}

static bool parse_augment(const cli_cmd *c, int *flags, int *shift, double *noise, char *input,
                          size_t cap)
{
    const char *v = cli_get(c, "augment");
    *flags = 0;
    *shift = 0;
    *noise = 0;
    input[0] = 0;
    if (!v)
        return true;
    char buf[128], *save = NULL;
    snprintf(buf, sizeof buf, "%s", v);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "flips"))
            *flags |= DS_AUG_FLIPS;
        else if (!strcmp(t, "rot90"))
            *flags |= DS_AUG_ROT90;
        else if (!strcmp(t, "hflip"))
            *flags |= DS_AUG_HFLIP;
        else if (!strncmp(t, "shift:", 6)) {
            char *end;
            errno = 0;
            long s = strtol(t + 6, &end, 10);
            if (end == t + 6 || *end || errno || s < 1 || s > 1024) {
                cli_usage_error(c, "option '--augment': '%s': shift:N takes a whole number of "
                                "pixels from 1 to 1024", t);
                return false;
            }
            *shift = (int)s;
        } else if (!strncmp(t, "noise:", 6)) {
            if (!parse_noise(c, t, noise, input, cap))
                return false;
        } else {
            cli_usage_error(c, "option '--augment': '%s' is not flips, hflip, rot90, shift:N or "
                            "noise:S[:INPUT]", t);
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

static void stem_name(const char *out, const char *suffix, char *buf, size_t cap)
{
    size_t n = strlen(out), e = strlen(".safetensors");
    if (n > e && !strcmp(out + n - e, ".safetensors"))
        n -= e;
    snprintf(buf, cap, "%.*s%s", (int)n, out, suffix);
}


/* printf at the end of the text in buf (truncated to cap). */
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (len + 1 < cap)
        vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* FNV-1a hash of a file's bytes into buf ("fnv1a64 <hex>"); false if it cannot be read. */
static bool file_hash(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        for (size_t i = 0; i < n; i++)
            h = (h ^ chunk[i]) * 0x100000001b3ULL;
    bool ok = !ferror(fp);
    fclose(fp);
    snprintf(buf, cap, "fnv1a64 %016llx", (unsigned long long)h);
    return ok;
}

/* The command line's settings that change the result and that the library does not see
 * (it records the seed, batch, optimizer, scaling and a hash of the data as loaded): the
 * model file's and the starting weights' bytes, and the options that pick what is loaded
 * and how it is split. A resume must match them (ds_fit_opts.settings). Options a later
 * change adds to train that select or split data belong in the list. */
void cli_run_settings(const cli_cmd *c, char *buf, size_t cap)
{
    static const char *const opts[] = {"columns", "label-columns", "hdu", "val-split",
                                       "val-split-last", "no-header", "nan"};
    char h[64];
    const char *w = cli_get(c, "weights");
    snprintf(buf, cap, "model file: %s\n", file_hash(c->positional[0], h, sizeof h) ? h :
             "unreadable");
    append(buf, cap, "--weights: %s\n", !w ? "(not given)" : file_hash(w, h, sizeof h) ? h :
           "unreadable");
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *const *v;
        int n = cli_values(c, opts[i], &v);
        if (!v)
            continue;   /* not an option of this command */
        append(buf, cap, "--%s:", opts[i]);
        if (!n)
            append(buf, cap, " %s", cli_has(c, opts[i]) ? "given" : "(not given)");
        for (int k = 0; k < n; k++)
            append(buf, cap, " %s", v[k]);
        append(buf, cap, "\n");
    }
}

/* The files a run writes: W, its best weights and checkpoint, the log and the curve
 * (NULL when turned off with "none"). */
typedef struct {
    const char *out, *log, *curve;
    char best[4096], ckpt[4096], logp[4096], curvep[4096];
} run_files;

/* out: -o, or an ensemble member's file (member_path). */
static int output_names(const cli_cmd *c, const char *out, run_files *rf)
{
    const char *log = cli_get(c, "log"), *curve = cli_get(c, "curve");
    int rc;
    rf->out = out;
    if ((rc = cli_output_ext(c, "-o", rf->out, ".safetensors", "weights")) ||
        (log && strcmp(log, "none") && (rc = cli_output_ext(c, "--log", log, ".csv", "logs"))) ||
        (curve && strcmp(curve, "none") &&
         (rc = cli_output_ext(c, "--curve", curve, ".png", "learning curves"))))
        return rc;
    stem_name(rf->out, ".best.safetensors", rf->best, sizeof rf->best);
    stem_name(rf->out, ".ckpt.safetensors", rf->ckpt, sizeof rf->ckpt);
    stem_name(rf->out, ".log.csv", rf->logp, sizeof rf->logp);
    stem_name(rf->out, ".curve.png", rf->curvep, sizeof rf->curvep);
    rf->log = !log ? rf->logp : strcmp(log, "none") ? log : NULL;
    /* no default figure in a build without plotting (NO_PLOT); --curve is then an error */
    rf->curve = !curve ? (ds_has_feature("plot") ? rf->curvep : NULL)
                       : strcmp(curve, "none") ? curve : NULL;
    return 0;
}

/* No output of the run may be an input, another output, a device or go into /dev. */
static int check_files(const cli_cmd *c, const run_files *rf)
{
    cli_files f = {0};
    cli_files_input(&f, "the model file", c->positional[0]);
    cli_files_input(&f, "--weights", cli_get(c, "weights"));
    const char *lists[] = {"data", "labels", "val", "val-labels"};
    for (int i = 0; i < 4; i++)
        cli_files_inputs(&f, c, lists[i]);
    cli_files_output(&f, "-o", rf->out);
    cli_files_output(&f, "the best weights of -o,", rf->best);
    cli_files_output(&f, "the checkpoint of -o,", rf->ckpt);
    cli_files_output(&f, cli_has(c, "log") ? "--log" : "the log of -o,", rf->log);
    cli_files_output(&f, cli_has(c, "curve") ? "--curve" : "the curve of -o,", rf->curve);
    return cli_files_check(c, &f);
}

/* The options of a run, checked before any file is read. */
typedef struct {
    long epochs, batch, seed, patience, accumulate, buffer;
    size_t memory_limit;   /* --memory-limit, 0 if not given */
    double vsplit, every;
    bool vsplit_last;      /* --val-split-last: the last fraction, unshuffled */
    bool stream;           /* --data or --labels names several files: streamed */
    int aug, aug_shift;
    double noise;          /* --augment noise:S[:INPUT] */
    char noise_input[64];
    long repeat;
    long ensemble;         /* --ensemble K: members (0: a single run) */
    long split_seed;       /* the validation split's seed: --seed, for every member */
} train_settings;

/* --memory-limit SIZE: bytes, or a number with K, M, G or T (powers of 1024); set once the
 * options are checked (the check-only mode changes nothing). */
static bool parse_memory_limit(const cli_cmd *c, size_t *limit)
{
    const char *v = cli_get(c, "memory-limit");
    *limit = 0;
    if (!v)
        return true;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    const char *units = "KMGT", *u = *end ? strchr(units, *end) : NULL;
    if (u && end[1] == 0)
        x = ldexp(x, 10 * (int)(u - units + 1));
    if (end == v || (*end && (!u || end[1])) || errno || !(x >= 1 << 20) || x > 0x1p60) {
        cli_usage_error(c, "option '--memory-limit': '%s' is not a size from 1M to 1024P "
                        "(bytes, or a number with K, M, G or T)", v);
        return false;
    }
    *limit = (size_t)x;
    return true;
}

/* Streamed training data: validation from --val, --shuffle-buffer only then. */
static int check_stream_options(const cli_cmd *c, train_settings *t)
{
    t->stream = cli_streams(c);
    if (cli_has(c, "shuffle-buffer") && !t->stream)
        return cli_usage_error(c, "--shuffle-buffer applies to data streamed from several "
                               "files (--data 'x_*.npy', a folder or @LIST); the samples of "
                               "one file are shuffled all together");
    if (t->stream && t->vsplit > 0)
        return cli_usage_error(c, "--%s takes validation samples out of data in memory; "
                               "streamed data (--data naming several files) take it from --val "
                               "X2 --val-labels Y2", t->vsplit_last ? "val-split-last"
                               : "val-split");
    return 0;
}

/* --val-split F or --val-split-last F (not both) into *fraction and *is_last. */
bool cli_parse_split(const cli_cmd *c, double *fraction, bool *is_last)
{
    double last;
    if (!cli_double(c, "val-split", 0, 1, 0, fraction) ||
        !cli_double(c, "val-split-last", 0, 1, 0, &last))
        return false;
    if (cli_has(c, "val-split") && cli_has(c, "val-split-last")) {
        cli_usage_error(c, "give either --val-split or --val-split-last, not both");
        return false;
    }
    const char *opt = cli_has(c, "val-split") ? "val-split" : "val-split-last";
    if (cli_has(c, opt) && !(*fraction + last > 0 && *fraction + last < 1)) {
        cli_usage_error(c, "option '--%s': %s is not a fraction between 0 and 1 (exclusive)",
                        opt, cli_get(c, opt));
        return false;
    }
    *is_last = last > 0;
    *fraction += last;
    return true;
}

static int check_options(const cli_cmd *c, train_settings *t)
{
    if (!cli_long(c, "epochs", 1, 1000000, 10, &t->epochs) ||
        !cli_long(c, "batch-size", 1, 1L << 24, 32, &t->batch) ||
        !cli_long(c, "accumulate", 1, 1000000, 1, &t->accumulate) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, &t->seed) ||
        !cli_long(c, "early-stopping", 1, 1000000, 0, &t->patience) ||
        !cli_parse_split(c, &t->vsplit, &t->vsplit_last) ||
        !cli_long(c, "repeat", 1, 1L << 20, 1, &t->repeat) ||
        !parse_augment(c, &t->aug, &t->aug_shift, &t->noise, t->noise_input,
                       sizeof t->noise_input) ||
        !cli_double(c, "checkpoint-every", 0, 1e9, 10, &t->every) ||
        !cli_long(c, "shuffle-buffer", 1, 1L << 40, 0, &t->buffer) ||
        !cli_long(c, "ensemble", 1, 64, 0, &t->ensemble) ||
        !cli_threads(c) || !cli_check_scales(c) ||
        !parse_memory_limit(c, &t->memory_limit))
        return 2;
    t->split_seed = t->seed;
    if (t->ensemble && ((cli_has(c, "log") && strcmp(cli_get(c, "log"), "none")) ||
                        (cli_has(c, "curve") && strcmp(cli_get(c, "curve"), "none"))))
        return cli_usage_error(c, "--ensemble: each member writes its own log and curve "
                               "(<W>.m<i>.log.csv, <W>.m<i>.curve.png): --log and --curve take "
                               "only 'none'");
    if (!cli_has(c, "data"))
        return cli_usage_error(c, "--data X is required");
    /* a model whose losses read only its inputs (target=INPUT) trains without labels */
    bool labelled = cli_has(c, "labels") || cli_has(c, "label-columns") ||
                    cli_model_reads_labels(c->positional[0]);
    if (!cli_has(c, "labels") && !cli_has(c, "label-columns") && labelled)
        return cli_usage_error(c, "--labels Y (or --label-columns for a table) is required");
    if (!cli_has(c, "output"))
        return cli_usage_error(c, "-o W.safetensors is required");
    if (cli_has(c, "val") != cli_has(c, "val-labels") && !cli_has(c, "label-columns") &&
        labelled)
        return cli_usage_error(c, "--val and --val-labels go together");
    if (cli_has(c, "val") && t->vsplit > 0)
        return cli_usage_error(c, "give either --val or --%s, not both",
                               t->vsplit_last ? "val-split-last" : "val-split");
    if (t->patience && !cli_has(c, "val") && !(t->vsplit > 0))
        return cli_usage_error(c, "--early-stopping needs validation data (--val, --val-split "
                               "or --val-split-last)");
    cli_item items[DS_FEED_MAX];
    int n, rc = 0;
    const char *lists[] = {"data", "labels", "val", "val-labels"};
    for (int i = 0; i < 4 && !rc; i++)
        rc = cli_named_list(c, lists[i], items, &n);
    if (rc)
        return rc;
    ds_optim_opts optim_check = {0};   /* a bad --optimizer or --lr fails before any loading */
    return parse_optimizer(c, &optim_check) ? check_stream_options(c, t) : 2;
}

/* Training and validation data, then the model (label modes from the labels' shapes). */
static int load_all(const cli_cmd *c, const train_settings *t, cli_data *tr, cli_data *va,
                    ds_net **n)
{
    int rc = cli_load_set(c, "data", "labels", tr);
    if (!rc && cli_has(c, "val"))
        rc = cli_load_set(c, "val", "val-labels", va);
    if (!rc)
        rc = cli_load_net(c->positional[0], cli_get(c, "weights"), t->batch, (uint64_t)t->seed,
                          tr, n);
    return rc;
}

int cli_train_feeds(const cli_cmd *c, const cli_split *how, ds_net *n, cli_data *tr,
                    cli_data *va, ds_feed *f, ds_feed *fv)
{
    int rc = cli_feed(n, tr, f);
    if (!rc && how->fraction > 0 && !(rc = cli_split_set(n, tr, f, how, va)))
        rc = cli_feed(n, tr, f);
    if (!rc && va->nx)
        rc = cli_feed(n, va, fv);
    if (rc)
        return rc;
    cli_warn_classes(n, tr, f, va, fv);
    if (ds_net_check_feed(n, f) || (va->nx && ds_net_check_feed(n, fv)))
        return cli_fail();
    if ((rc = cli_apply_scales(c, n, f, NULL)))
        return rc;
    if (ds_net_preprocess_feed(n, f) || (va->nx && ds_net_preprocess_feed(n, fv)))
        return cli_fail();
    return 0;
}

/* Feeds checked against the model (the validation split taken from the training data
 * first), the optimizer flags, scaling and preprocessing. */
static int prepare(const cli_cmd *c, const train_settings *t, ds_net *n, cli_data *tr,
                   cli_data *va, ds_feed *f, ds_feed *fv)
{
    cli_split how = {t->vsplit, t->vsplit_last, (uint64_t)t->split_seed, cli_has(c, "quiet")};
    if (!parse_optimizer(c, ds_net_optim_opts_mut(n)))
        return 2;
    return cli_train_feeds(c, &how, n, tr, va, f, fv);
}

/* The stream of --data and --labels, the validation data in memory, then the model. */
static int load_stream(const cli_cmd *c, const train_settings *t, cli_data *tr, cli_data *va,
                       ds_stream **s, ds_net **n)
{
    int rc = cli_open_stream(c, t->buffer, tr, s);
    if (!rc && cli_has(c, "val"))
        rc = cli_load_set(c, "val", "val-labels", va);
    if (!rc)
        rc = cli_load_net(c->positional[0], cli_get(c, "weights"), t->batch, (uint64_t)t->seed,
                          tr, n);
    return rc;
}

/* The stream fitted to the model, the validation feed checked, scaling (statistics from
 * the stream) and the validation data preprocessed; the stream preprocesses its batches. */
static int prepare_stream(const cli_cmd *c, ds_net *n, cli_data *tr, ds_stream *s,
                          cli_data *va, ds_feed *fv)
{
    int rc = cli_fit_stream(n, tr, s);
    if (!rc && va->nx)
        rc = cli_feed(n, va, fv);
    if (rc)
        return rc;
    if (!parse_optimizer(c, ds_net_optim_opts_mut(n)))
        return 2;
    if (va->nx && ds_net_check_feed(n, fv))
        return cli_fail();
    if ((rc = cli_apply_scales(c, n, NULL, s)))
        return rc;
    if (va->nx && ds_net_preprocess_feed(n, fv))
        return cli_fail();
    return 0;
}

static void print_start(const cli_cmd *c, const ds_net *n, const cli_data *tr,
                        const cli_data *va, const train_settings *t, const ds_stream *s)
{
    const ds_optim_opts *o = ds_net_optim_opts(n);
    char val[64] = "", acc[64] = "";
    char from[96] = "";
    if (va->nx)
        snprintf(val, sizeof val, " (validation %lld)", (long long)ds_tensor_shape(va->x[0].t)[0]);
    if (t->accumulate > 1)
        snprintf(acc, sizeof acc, " x %ld accumulated", t->accumulate);
    int64_t ns = s ? ds_stream_samples(s) : ds_tensor_shape(tr->x[0].t)[0];
    if (s)
        snprintf(from, sizeof from, " streamed from %d %s", ds_stream_shard_count(s),
                 cli_plural(ds_stream_shard_count(s), "shard", "shards"));
    printf("training %s on %lld %s%s%s, batch %ld%s, %s lr %g, %d %s\n", c->positional[0],
           (long long)ns, cli_plural(ns, "sample", "samples"), from, val, t->batch, acc,
           ds_optim_name(o->kind), o->lr > 0 ? o->lr : (o->kind == DS_OPT_SGD ? 1e-2 : 1e-3),
           ds_get_num_threads(), cli_plural(ds_get_num_threads(), "thread", "threads"));
}

static void print_done(const ds_fit_result *r, const ds_fit_opts *fo, bool val, long patience)
{
    if (r->resumed_from)
        printf("resumed after epoch %d\n", r->resumed_from);
    if (r->stopped_early)
        printf("early stopping: no better validation loss for %ld %s\n", patience,
               cli_plural(patience, "epoch", "epochs"));
    if (r->skipped_steps)
        printf("skipped %lld %s with a NaN or Inf loss or gradient\n",
               (long long)r->skipped_steps, cli_plural(r->skipped_steps, "step", "steps"));
    printf("done: %d %s in %.1f s; best epoch %d%s", r->epochs_run,
           cli_plural(r->epochs_run, "epoch", "epochs"), r->seconds, r->best_epoch,
           val ? "" : " (by training loss)");
    if (val)
        printf(" (val_loss %.4g)", r->best_val_loss);
    char best[4096];
    stem_name(fo->out_path, ".best.safetensors", best, sizeof best);
    printf("\nwrote %s (last), %s (best)%s%s%s%s\n", fo->out_path, best,
           fo->log_csv ? ", " : "", fo->log_csv ? fo->log_csv : "", fo->curve_png ? ", " : "",
           fo->curve_png ? fo->curve_png : "");
}

/* "deepsky train ..." as given, quoted so a shell runs it again (stored in the weights). */
static char *train_command(int argc, char **argv)
{
    const char **w = malloc(((size_t)argc + 2) * sizeof *w);
    if (!w)
        return NULL;
    w[0] = "deepsky";
    w[1] = "train";
    for (int i = 0; i < argc; i++)
        w[i + 2] = argv[i];
    char *line = ds_command_line(argc + 2, w);
    free(w);
    return line;
}

static int train_run(cli_cmd *cp, const train_settings *tp, const run_files *rfp, int argc,
                     char **argv, const ds_tensor_set *meta);

/* Member i's weights file of an ensemble written to out: <W>.m<i>.safetensors. */
static void member_path(const char *out, long i, char *buf, size_t cap)
{
    char suffix[48];
    snprintf(suffix, sizeof suffix, ".m%ld.safetensors", i);
    stem_name(out, suffix, buf, cap);
}

/* The ensemble.* keys of member i (ds_fit_opts.meta): the model file's hash, which predict
 * checks all members share, the member, the count and the first seed. */
static ds_tensor_set *member_meta(const cli_cmd *c, const train_settings *t, long i)
{
    ds_tensor_set *s = ds_tensor_set_create();
    char h[64], v[32];
    bool ok = s && file_hash(c->positional[0], h, sizeof h) &&
              !ds_tensor_set_meta_set(s, "ensemble.model", h);
    snprintf(v, sizeof v, "%ld", i);
    ok = ok && !ds_tensor_set_meta_set(s, "ensemble.member", v);
    snprintf(v, sizeof v, "%ld", t->ensemble);
    ok = ok && !ds_tensor_set_meta_set(s, "ensemble.members", v);
    snprintf(v, sizeof v, "%ld", t->seed);
    ok = ok && !ds_tensor_set_meta_set(s, "ensemble.seed", v);
    if (!ok) {
        fprintf(stderr, "deepsky: error: %s: cannot hash the model file for the ensemble's "
                "metadata\n", c->positional[0]);
        ds_tensor_set_free(s);
        return NULL;
    }
    return s;
}

/* --ensemble K: K runs with seeds S..S+K-1 into <W>.m<i>.safetensors (each with its best
 * weights, checkpoint, log and curve, so each resumes), the same validation split. */
static int train_ensemble(cli_cmd *c, const train_settings *t, int argc, char **argv)
{
    run_files *rf = calloc((size_t)t->ensemble, sizeof *rf);
    char (*paths)[4096] = calloc((size_t)t->ensemble, sizeof *paths);
    int rc = !rf || !paths ? (fprintf(stderr, "deepsky: error: out of memory\n"), 1) : 0;
    for (long i = 0; i < t->ensemble && !rc; i++) {
        member_path(cli_get(c, "output"), i, paths[i], sizeof paths[i]);
        rc = output_names(c, paths[i], &rf[i]);
    }
    if (!rc && cli_stop_here(c)) {
        free(rf);
        free(paths);
        return 0;
    }
    for (long i = 0; i < t->ensemble && !rc; i++)
        rc = check_files(c, &rf[i]);
    for (long i = 0; i < t->ensemble && !rc; i++) {
        train_settings m = *t;
        m.seed = t->seed + i;
        ds_tensor_set *meta = member_meta(c, t, i);
        if (!cli_has(c, "quiet"))
            printf("%sensemble member %ld of %ld, seed %ld: %s\n", i ? "\n" : "", i + 1,
                   t->ensemble, m.seed, paths[i]);
        rc = meta ? train_run(c, &m, &rf[i], argc, argv, meta) : 1;
        ds_tensor_set_free(meta);
    }
    if (!rc && !cli_has(c, "quiet")) {
        printf("\nensemble of %ld: predict with", t->ensemble);
        for (long i = 0; i < t->ensemble; i++)
            printf(" --weights %s", paths[i]);
        printf("\n");
    }
    free(rf);
    free(paths);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPTS("data", 0, "X", "training data (.npy, .fits, .csv or IDX; a glob 'x_*.npy', a "
                 "folder or @LIST of files is streamed); NAME=X for each input of a model with "
                 "several (repeat the option)"),
        CLI_OPTS("labels", 0, "Y", "training labels (class indices, one-hot rows or targets; "
                 "files matched to --data's shard by shard); NAME=Y for each loss that reads "
                 "labels, when several do"),
        CLI_OPTS("columns", 0, "COLS", "table data: feature columns, e.g. mag_u,mag_g or 1,2; "
                 "NAME=COLS for one input's file"),
        CLI_OPTS("label-columns", 0, "COLS", "table data: label columns (from --labels, or "
                 "--data); NAME=COLS for one loss's labels"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "
                "data)"),
        CLI_READ_OPTS,
        CLI_OPTS("val", 0, "X2", "validation data; NAME=X2 for each input"),
        CLI_OPTS("val-labels", 0, "Y2", "validation labels; NAME=Y2 for each loss"),
        CLI_OPT("val-split", 0, "F", "hold out a fraction F of the data for validation, chosen "
                "at random with --seed, in proportion from each class for a classifier"),
        CLI_OPT("val-split-last", 0, "F", "hold out the last fraction F of the data, in file "
                "order (as Keras' validation_split)"),
        CLI_OPT("weights", 0, "W0", "start from these weights (default: fresh initialization)"),
        CLI_OPT("epochs", 0, "N", "epochs (default 10)"),
        CLI_OPT("batch-size", 0, "B", "mini-batch size, samples per forward/backward pass "
                "(default 32)"),
        CLI_OPT("accumulate", 0, "K", "sum the gradients of K batches per optimizer step: as "
                "batch K*B with the memory of B (default 1)"),
        CLI_OPT("optimizer", 0, "NAME", "sgd, adagrad, rmsprop, adam or adamw (default: the model "
                "file's)"),
        CLI_OPT("lr", 0, "LR", "learning rate (default: the model file's, else 1e-3; sgd 1e-2)"),
        CLI_OPT("seed", 0, "S", "seed for initialization, shuffling, dropout, augmentation "
                "(default 0)"),
        CLI_OPT("no-shuffle", 0, NULL, "keep the sample order"),
        CLI_OPT("skip-nonfinite", 0, NULL, "skip a step whose loss or gradient is NaN or Inf "
                "instead of stopping"),
        CLI_OPT("augment", 0, "LIST", "random transforms of images [N, C, H, W] each epoch, "
                "a list of: flips (mirrors of rows and columns), hflip (left-right mirrors "
                "only), rot90 (quarter turns of square images), shift:N (translations by up "
                "to N pixels, uncovered pixels 0), noise:S[:INPUT] (Gaussian noise of standard "
                "deviation S on the first input or INPUT, after scaling, fresh in every step)"),
        CLI_OPT("repeat", 0, "K", "each sample drawn appears K times in a row in its batch (its "
                "noise differs): the realizations 'loss msb group=K' compares; the batch size "
                "counts rows (default 1)"),
        CLI_OPT("early-stopping", 0, "P", "stop after P epochs without a better validation loss"),
        CLI_OPTS("scale", 0, "HOW", "none, standardize, per_image, asinh[:A], divide:A for every "
                 "input (default none); NAME=HOW for each input"),
        CLI_OPT("resume", 0, NULL, "continue an interrupted run of the same command from its "
                "checkpoint, which must exist and match every setting"),
        CLI_OPT("resume-if-exists", 0, NULL, "as --resume, but start afresh when there is no "
                "checkpoint"),
        CLI_OPT("shuffle-buffer", 0, "N", "streamed data: samples in the shuffle buffer (default: "
                "as many as fit in 64 MiB)"),
        CLI_OPT("memory-limit", 0, "SIZE", "refuse any single allocation above SIZE (bytes, or "
                "with K, M, G or T), e.g. data loaded whole (default: the physical memory)"),
        CLI_OPT("checkpoint-every", 0, "SECONDS", "write W, <W>.best, <W>.ckpt and the log at "
                "most this often, and after the last epoch (default 10; 0: every epoch)"),
        CLI_OPT("log", 0, "CSV", "per-epoch log (default: <W>.log.csv; none: no log)"),
        CLI_OPT("curve", 0, "PNG", "learning curve figure, redrawn at most every 5 s and at the "
                "end (default: <W>.curve.png; none: no figure)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPT("quiet", 'q', NULL, "no progress output"),
        CLI_OPT("ensemble", 0, "K", "a deep ensemble: K runs with seeds S..S+K-1 (the same "
                "validation split), member i into <W>.m<i>.safetensors with its own best "
                "weights, checkpoint and log (each resumes); predict takes every member's "
                "--weights"),
        CLI_OPT("output", 'o', "W.safetensors", "final weights (required); also writes <W>.best "
                "and <W>.ckpt"),
        CLI_OPT("mpi-timeout", 0, "SECONDS", "under mpirun (make MPI=1): seconds a rank waits "
                "for the others in one collective before the job stops with an error (default "
                "300)"),
        CLI_OPT("check-replicas", 0, NULL, "under mpirun: compare a checksum of every rank's "
                "weights after every step (default: after every epoch)"),
        CLI_OPT("sync-bn", 0, NULL, "under mpirun: batch norm normalizes with the statistics "
                "of the whole step over the ranks (SyncBN; default: each rank's own, as "
                "PyTorch's DDP); no effect in one process"),
    };
    cli_cmd c = {"train", "MODEL --data X --labels Y [options] -o W.safetensors",
                 "Trains MODEL with mini-batches. It writes the last weights to W, the best so "
                 "far (lowest validation loss, or training loss without validation) to "
                 "<W>.best.safetensors, a checkpoint with the optimizer's state to "
                 "<W>.ckpt.safetensors and the log, each atomically, together, after the last "
                 "epoch and after any epoch ending --checkpoint-every seconds after the "
                 "previous write. Outputs must be regular files (or new names), none of them "
                 "an input or in /dev. Flags override the model "
                 "file's optimizer line. A model with several inputs takes --data NAME=FILE "
                 "for each (NAME: the input line's name); with several losses that read "
                 "labels, --labels NAME=FILE for each (NAME: the loss's name, by default the "
                 "layer it reads); 'deepsky summary MODEL' lists the names. Data in several "
                 "files (--data 'shards/x_*.npy', a folder, or @LIST naming one file per "
                 "line) stream through a reader thread and a shuffle buffer, so they need not "
                 "fit in memory; --labels then names as many files, matched in sorted order.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    train_settings t;
    if ((rc = check_options(&c, &t)))
        return rc;
    double timeout;   /* data-parallel under mpirun: src/mpi/dist.c */
    if (!cli_double(&c, "mpi-timeout", 0.01, 1e7, CLI_MPI_TIMEOUT, &timeout))
        return 2;
    if (t.ensemble && (rc = cli_mpi_start(timeout)))
        return rc;
    if (t.ensemble && cli_mpi_size() > 1)
        return cli_mpi_end(cli_usage_error(&c, "--ensemble trains its members one after the "
                                           "other: run it as one process, or each member as "
                                           "its own mpirun job (--seed)"));
    if (t.ensemble)
        return train_ensemble(&c, &t, argc, argv);
    run_files rf;
    if ((rc = output_names(&c, cli_get(&c, "output"), &rf)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    if ((rc = cli_mpi_start(timeout)))
        return rc;
    if ((rc = check_files(&c, &rf)))
        return cli_mpi_end(rc);
    rc = train_run(&c, &t, &rf, argc, argv, NULL);
    return rc && cli_mpi_size() > 1 ? cli_mpi_fail(rc) : cli_mpi_end(rc);
}

/* One training run: t's seed, rf's files, meta (ensemble.* keys, or NULL) in every file. */
static int train_run(cli_cmd *cp, const train_settings *tp, const run_files *rfp, int argc,
                     char **argv, const ds_tensor_set *meta)
{
    cli_cmd c = *cp;
    train_settings t = *tp;
    run_files rf = *rfp;
    int rc = 0;
    if (t.memory_limit)
        ds_set_memory_limit(t.memory_limit);
    cli_data tr = {0}, va = {0};
    ds_feed f, fv;
    ds_net *n = NULL;
    ds_stream *s = NULL;
    char *command = NULL;
    if (t.stream)
        rc = load_stream(&c, &t, &tr, &va, &s, &n);
    else
        rc = load_all(&c, &t, &tr, &va, &n);
    if (rc || (rc = t.stream ? prepare_stream(&c, n, &tr, s, &va, &fv)
                             : prepare(&c, &t, n, &tr, &va, &f, &fv)))
        goto done;
    char settings[8192];
    cli_run_settings(&c, settings, sizeof settings);
    if (!(command = train_command(argc, argv))) {
        rc = cli_fail();
        goto done;
    }
    progress_state ps = {.tty = isatty(fileno(stdout)) != 0};
    bool quiet = cli_has(&c, "quiet") || cli_mpi_rank() > 0;   /* rank 0 speaks for all */
    ds_fit_opts fo = {
        .epochs = (int)t.epochs, .batch_size = t.batch, .accumulate = (int)t.accumulate,
        .seed = (uint64_t)t.seed, .no_shuffle = cli_has(&c, "no-shuffle"), .augment = t.aug,
        .augment_shift = t.aug_shift, .augment_noise = t.noise,
        .noise_input = t.noise_input[0] ? t.noise_input : NULL, .repeat = (int)t.repeat,
        .patience = (int)t.patience, .skip_nonfinite = cli_has(&c, "skip-nonfinite"),
        .out_path = rf.out, .log_csv = rf.log, .curve_png = rf.curve,
        .checkpoint_every = t.every, .settings = settings,
        .resume = cli_has(&c, "resume") || cli_has(&c, "resume-if-exists"),
        .resume_if_exists = cli_has(&c, "resume-if-exists"),
        .progress = quiet ? NULL : show, .ctx = &ps, .command = command,
        .meta = meta, .dist = cli_mpi_dist(),
    };
    ds_dist dist;
    if (fo.dist) {
        dist = *fo.dist;
        dist.check_every_step = cli_has(&c, "check-replicas");
        dist.sync_bn = cli_has(&c, "sync-bn");
        fo.dist = &dist;
    }
    if (!quiet)
        print_start(&c, n, &tr, &va, &t, s);
    ds_fit_result r;
    if (s ? ds_net_fit_stream(n, s, va.nx ? &fv : NULL, &fo, &r)
          : ds_net_fit_feed(n, &f, va.nx ? &fv : NULL, &fo, &r)) {
        rc = cli_fail();
        goto done;
    }
    if (!quiet)
        print_done(&r, &fo, va.nx > 0, t.patience);
done:
    free(command);
    ds_stream_free(s);
    cli_data_free(&tr);
    cli_data_free(&va);
    ds_net_free(n);
    return rc;
}
