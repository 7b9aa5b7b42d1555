/* search_net.c - deepsky search for a network: trials of a model file's options (random,
 * grid or successive halving on epochs, each trial trained in-process as train does and
 * resumable), their table, best model and figure; and the job search and curve share
 * (net_job.h). */
#include "net_job.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRIALS 4096

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The whole text file at path (malloc'd), or NULL after printing why. */
static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (fp && fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, fp) == (size_t)n)
        buf[n] = 0;
    else {
        free(buf);
        buf = NULL;
        fprintf(stderr, "deepsky: error: cannot read '%s': %s\n", path,
                strerror(errno ? errno : EIO));
    }
    if (fp)
        fclose(fp);
    return buf;
}

/* path without its extension (after the last '/'), then suffix. */
static void stem(const char *path, const char *suffix, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t n = dot && (!slash || dot > slash) ? (size_t)(dot - path) : strlen(path);
    snprintf(buf, cap, "%.*s%s", (int)n, path, suffix);
}

/* The options both commands check and the model file's text; 0, -1 (check-only mode) or
 * 1/2. Then net_job_load reads the data. */
int net_job_options(cli_cmd *c, net_job *j, cli_split *how)
{
    j->c = c;
    j->model = c->positional[0];
    j->quiet = cli_has(c, "quiet");
    double vsplit = 0;
    bool last = false;
    if (!cli_long(c, "epochs", 1, 1000000, 10, &j->epochs) ||
        !cli_long(c, "batch-size", 1, 1L << 24, 32, &j->batch) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, &j->seed) ||
        !cli_double(c, "checkpoint-every", 0, 1e9, 10, &j->every) || !cli_threads(c) ||
        !cli_check_scales(c) || !cli_parse_split(c, &vsplit, &last))
        return 2;
    if (!cli_has(c, "data") || !cli_has(c, "output"))
        return cli_usage_error(c, "MODEL, --data X and -o OUT are required");
    bool labelled = cli_has(c, "labels") || cli_has(c, "label-columns") ||
                    cli_model_reads_labels(j->model);
    if (labelled && !cli_has(c, "labels") && !cli_has(c, "label-columns"))
        return cli_usage_error(c, "--labels Y (or --label-columns for a table) is required");
    if (cli_has(c, "val") && vsplit > 0)
        return cli_usage_error(c, "give either --val or --val-split, not both");
    if (!cli_has(c, "val") && !(vsplit > 0))
        return cli_usage_error(c, "the trials are scored on validation data: give --val X2 "
                               "--val-labels Y2, --val-split F or --val-split-last F");
    if (cli_has(c, "val") && labelled && !cli_has(c, "val-labels") && !cli_has(c, "label-columns"))
        return cli_usage_error(c, "--val and --val-labels go together");
    if (cli_stop_here(c))
        return -1;
    *how = (cli_split){vsplit, last, (uint64_t)j->seed, j->quiet};
    j->nopts = (ds_net_opts){.batch = j->batch, .seed = (uint64_t)j->seed};
    return (j->text = read_text(j->model)) ? 0 : 1;
}

int net_job_outputs(cli_cmd *c, const char *out, const char *what)
{
    int rc;
    if ((rc = cli_output_ext(c, "-o", out, ".csv", what)) ||
        (cli_has(c, "plot") && (rc = cli_output_ext(c, "--plot", cli_get(c, "plot"), ".png",
                                                    "figures"))))
        return rc;
    if (cli_has(c, "plot") && !ds_has_feature("plot"))
        return cli_usage_error(c, "--plot draws a figure, but deepsky was built without "
                               "plotting support (NO_PLOT=1); rebuild with cairo");
    return 0;
}

/* The data, split, checked against the model, scaled and preprocessed; 0, 1 or 2. */
int net_job_load(cli_cmd *c, net_job *j, const cli_split *how)
{
    int rc = cli_load_set(c, "data", "labels", &j->tr);
    if (!rc && cli_has(c, "val"))
        rc = cli_load_set(c, "val", "val-labels", &j->va);
    cli_label_choices(&j->tr, &j->nopts);
    if (!rc && ds_net_parse(j->text, j->model, &j->nopts, &j->base))
        rc = cli_fail();
    if (!rc)
        rc = cli_train_feeds(c, how, j->base, &j->tr, &j->va, &j->f, &j->fv);
    return rc;
}

void net_job_free(net_job *j)
{
    free(j->text);
    ds_net_free(j->base);
    cli_data_free(&j->tr);
    cli_data_free(&j->va);
}

/* "a=1 b=2" into names and values (pointing into buf); the count. */
static int split_params(const char *params, char *buf, size_t cap, const char **names,
                        const char **values)
{
    snprintf(buf, cap, "%s", params);
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(buf, " ", &save); s && n < 8; s = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(s, '=');
        *eq = 0;
        names[n] = s;
        values[n++] = eq + 1;
    }
    return n;
}

/* A net from the model file's text with params set, scaled as the base net. */
ds_status net_job_trial(const net_job *j, const char *params, uint64_t seed, char **text,
                        ds_net **out)
{
    char buf[sizeof ((ds_search_result *)0)->params];
    const char *names[8], *values[8];
    int np = split_params(params, buf, sizeof buf, names, values);
    *out = NULL;
    ds_status st = ds_net_text_set(j->text, j->model, np, names, values, text);
    ds_net_opts o = j->nopts;
    o.seed = seed;
    if (!st && !(st = ds_net_parse(*text, j->model, &o, out)) &&
        (st = ds_net_copy_scaling(*out, j->base))) {
        ds_net_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- search ---- */

/* One finished (or failed) trial at one rung: a row of the table. */
typedef struct {
    int trial, rung, epochs;
    double val_loss, val_metric;   /* the best epoch's; NAN: none (a failed trial: loss inf) */
} trial_row;

typedef struct {
    net_job j;
    const char *out, *const *specs;
    int np, count, eta, rungs;
    ds_search_result *pts;
    char dir[4200], state[4300], metric[16];
    trial_row rows[4 * MAX_TRIALS];
    int n_rows;
    double t0, budget;
    long epochs_trained;
} search_job;

/* The check of each --param: its name resolves in the model file, each value parses. */
static ds_status check_param(void *ctx, const char *name, const char *value)
{
    net_job *j = ctx;
    const char *v = value ? value : "1";
    char *text = NULL;
    ds_status st = ds_net_text_set(j->text, j->model, 1, &name, &v, &text);
    ds_net *n = NULL;
    ds_net_opts o = j->nopts;
    o.batch = 1;
    if (!st && value)
        st = ds_net_parse(text, j->model, &o, &n);
    ds_net_free(n);
    free(text);
    return st;
}

/* The table: trial, rung, epochs, val_loss, val_<metric>, then each parameter's value. */
static int write_table(const search_job *s)
{
    size_t cap = 256 + (size_t)s->n_rows * 700;
    char *t = malloc(cap);
    if (!t) {
        fprintf(stderr, "deepsky: error: out of memory for the table\n");
        return 1;
    }
    size_t at = (size_t)snprintf(t, cap, "trial,rung,epochs,val_loss,val_%s", s->metric);
    for (int p = 0; p < s->np; p++)
        at += (size_t)snprintf(t + at, cap - at, ",%.*s", (int)strcspn(s->specs[p], "="),
                               s->specs[p]);
    at += (size_t)snprintf(t + at, cap - at, "\n");
    for (int i = 0; i < s->n_rows; i++) {
        const trial_row *r = &s->rows[i];
        at += (size_t)snprintf(t + at, cap - at, "%d,%d,%d,%.9g,%.9g", r->trial + 1, r->rung,
                               r->epochs, r->val_loss, r->val_metric);
        char buf[600];
        const char *names[8], *values[8];
        int np = split_params(s->pts[r->trial].params, buf, sizeof buf, names, values);
        for (int p = 0; p < np; p++)
            at += (size_t)snprintf(t + at, cap - at, ",%s", values[p]);
        at += (size_t)snprintf(t + at, cap - at, "\n");
    }
    int rc = cli_write_text(s->out, t);
    free(t);
    return rc;
}

/* The rows of an earlier run of this search (its table), to skip. 0 or 1 (printed). */
static int read_table(search_job *s)
{
    if (access(s->out, F_OK) != 0)
        return 0;
    char *t = read_text(s->out);
    if (!t)
        return 1;
    const char *p = strchr(t, '\n'), *m = strstr(t, ",val_loss,val_");
    if (m && (!p || m < p))   /* the metric's name, for the lines printed */
        snprintf(s->metric, sizeof s->metric, "%.*s", (int)strcspn(m + 14, ",\n"), m + 14);
    for (p = p ? p + 1 : t + strlen(t); *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0)) {
        trial_row r;
        if (sscanf(p, "%d,%d,%d,%lg,%lg", &r.trial, &r.rung, &r.epochs, &r.val_loss,
                   &r.val_metric) != 5 || r.trial < 1 || r.trial > s->count || r.rung < 0 ||
            r.rung >= s->rungs || s->n_rows == 4 * MAX_TRIALS) {
            fprintf(stderr, "deepsky: error: %s: a row that is not this search's: '%.*s' "
                    "(remove the file and %s to start afresh)\n", s->out,
                    (int)strcspn(p, "\n"), p, s->dir);
            free(t);
            return 1;
        }
        r.trial--;
        s->rows[s->n_rows++] = r;
    }
    free(t);
    return 0;
}

static const trial_row *find_row(const search_job *s, int trial, int rung)
{
    for (int i = 0; i < s->n_rows; i++)
        if (s->rows[i].trial == trial && s->rows[i].rung == rung)
            return &s->rows[i];
    return NULL;
}

/* The state a rerun must match to go on: the search's settings. Creates the trials'
 * folder and its state, or checks them. 0, 1 or 2 (printed). */
static int open_state(search_job *s)
{
    const cli_cmd *c = s->j.c;
    char *st = malloc(16384);
    if (!st)
        return 1;
    cli_run_settings(c, st, 8192);
    const char *opts[] = {"data", "labels", "val", "val-labels", "scale", "strategy", "trials",
                          "grid-points", "eta", "epochs", "batch-size", "seed"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *const *v;
        int n = cli_values(c, opts[i], &v);
        snprintf(st + strlen(st), 16384 - strlen(st), "--%s:", opts[i]);
        for (int k = 0; k < n; k++)
            snprintf(st + strlen(st), 16384 - strlen(st), " %s", v[k]);
        snprintf(st + strlen(st), 16384 - strlen(st), "\n");
    }
    for (int p = 0; p < s->np; p++)
        snprintf(st + strlen(st), 16384 - strlen(st), "--param: %s\n", s->specs[p]);
    int rc = 0;
    if (access(s->state, F_OK) == 0) {
        char *old = read_text(s->state);
        if (!old)
            rc = 1;
        else if (strcmp(old, st)) {
            const char *a = old, *b = st;   /* the first line that differs */
            while (*a && *a == *b) {
                size_t n = strcspn(a, "\n");
                if (strncmp(a, b, n + 1))
                    break;
                a += n + 1, b += n + 1;
            }
            fprintf(stderr, "deepsky: error: %s holds the trials of another search: its "
                    "'%.*s' is now '%.*s'; remove %s and %s to start afresh, or give another "
                    "-o\n", s->dir, (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b, s->dir,
                    s->out);
            rc = 1;
        } else {
            rc = read_table(s);
            if (!rc && s->n_rows)
                printf("resuming: %d %s of %s done\n", s->n_rows,
                       cli_plural(s->n_rows, "trial", "trials"), s->out);
        }
        free(old);
    } else {
        if (mkdir(s->dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "deepsky: error: cannot make the trials' folder '%s': %s\n", s->dir,
                    strerror(errno));
            rc = 1;
        }
        if (!rc)
            rc = cli_write_text(s->state, st);
    }
    free(st);
    return rc;
}

/* Trains trial t to `epochs` (resuming its checkpoint) and adds its row at rung. 0, 1
 * (an error, printed), or 3: out of budget (nothing added; a rerun goes on). */
static int run_trial(search_job *s, int t, int rung, int epochs, int done_epochs)
{
    net_job *j = &s->j;
    char *text = NULL, wpath[4300], best[4300], settings[9000];
    ds_net *n = NULL;
    if (net_job_trial(j, s->pts[t].params, (uint64_t)j->seed, &text, &n)) {
        free(text);
        return cli_fail();
    }
    free(text);
    snprintf(wpath, sizeof wpath, "%s/t%04d.safetensors", s->dir, t + 1);
    snprintf(best, sizeof best, "%s/t%04d.best.safetensors", s->dir, t + 1);
    cli_run_settings(j->c, settings, 8192);
    snprintf(settings + strlen(settings), sizeof settings - strlen(settings), "trial: %s\n",
             s->pts[t].params);
    double left = s->budget > 0 ? s->budget - (now() - s->t0) : 0;
    ds_fit_opts fo = {.epochs = epochs, .batch_size = j->batch, .seed = (uint64_t)j->seed,
                      .out_path = wpath, .checkpoint_every = j->every, .settings = settings,
                      .resume = 1, .resume_if_exists = 1,
                      .max_seconds = s->budget > 0 ? fmax(left, 1e-3) : 0};
    ds_fit_result r;
    double t1 = now();
    trial_row row = {t, rung, epochs, INFINITY, NAN};
    ds_status st = ds_net_fit_feed(n, &j->f, &j->fv, &fo, &r);
    ds_net_free(n);
    if (!st && r.out_of_time && r.epochs_run < epochs)
        return 3;
    if (st) {   /* a diverging trial (NaN loss) fails; the search goes on */
        printf("trial %d: failed: %s\n", t + 1, ds_last_error());
    } else {
        row.val_loss = r.best_val_loss;
        ds_tensor_set *w = NULL;
        ds_weights_info info;
        if (ds_safetensors_load(best, &w) == DS_OK) {
            ds_weights_info_get(w, &info);
            row.val_metric = info.val_metric;
            if (info.metric_name)
                snprintf(s->metric, sizeof s->metric, "%s", info.metric_name);
        }
        ds_tensor_set_free(w);
    }
    s->rows[s->n_rows++] = row;
    s->epochs_trained += epochs - done_epochs;
    if (!j->quiet)
    {
        char where[32] = "";
        if (s->rungs > 1)
            snprintf(where, sizeof where, " (rung %d)", rung);
        printf("trial %d/%d%s, %d %s: %-36s val_loss %.5g  val_%s %.4g  (%.1f s)\n", t + 1,
               s->count, where, epochs, cli_plural(epochs, "epoch", "epochs"),
               s->pts[t].params, row.val_loss, s->metric, row.val_metric, now() - t1);
    }
    fflush(stdout);
    return write_table(s);
}

/* Rungs of successive halving for N configs: while a rung keeps more than one config and
 * its epochs stay >= 1. Epochs of rung k: round(E / eta^(K-1-k)), at least 1. */
static int rung_epochs(const search_job *s, int k)
{
    double e = (double)s->j.epochs / pow(s->eta, s->rungs - 1 - k);
    return e < 1 ? 1 : (int)lround(e);
}

static int cmp_rows(const void *a, const void *b)
{
    const trial_row *x = a, *y = b;
    if (x->val_loss != y->val_loss)
        return x->val_loss < y->val_loss ? -1 : 1;
    return x->trial - y->trial;
}

/* Removes trial t's files: its last weights and checkpoint, and its best weights unless
 * keep_best. A trial is pruned once it can go on no more (no rung ahead). */
static void prune(const search_job *s, int t, bool keep_best)
{
    const char *suffix[] = {"", ".ckpt", ".best"};
    for (int i = 0; i < 3 - keep_best; i++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/t%04d%s.safetensors", s->dir, t + 1, suffix[i]);
        remove(path);
    }
}

/* Runs the trials not done: every point at full epochs, or the rungs of halving. 0, 1 or 3
 * (the budget ran out). The files of trials that go on no more are removed as each rung
 * ends, but for the best weights of the last rung's best trial (--best copies them). */
static int run_all(search_job *s)
{
    int *alive = malloc((size_t)s->count * sizeof *alive), n_alive = s->count, rc = 0;
    trial_row *rk = malloc((size_t)s->count * sizeof *rk);
    if (!alive || !rk) {
        free(alive), free(rk);
        return 1;
    }
    for (int t = 0; t < s->count; t++)
        alive[t] = t;
    for (int k = 0; k < s->rungs && !rc; k++) {
        int e = rung_epochs(s, k), before = k ? rung_epochs(s, k - 1) : 0;
        for (int i = 0; i < n_alive && !rc; i++) {
            const trial_row *done = find_row(s, alive[i], k);
            if (done) {
                s->epochs_trained += e - before;
                continue;
            }
            if (s->budget > 0 && now() - s->t0 >= s->budget)
                rc = 3;
            else
                rc = run_trial(s, alive[i], k, e, before);
        }
        if (rc)
            break;
        for (int i = 0; i < n_alive; i++)   /* the best 1/eta go on */
            rk[i] = *find_row(s, alive[i], k);
        qsort(rk, (size_t)n_alive, sizeof *rk, cmp_rows);
        int next = k + 1 == s->rungs ? 0 : n_alive / s->eta > 1 ? n_alive / s->eta : 1;
        for (int i = next; i < n_alive; i++)
            prune(s, rk[i].trial, k + 1 == s->rungs && i == 0);
        if (k + 1 == s->rungs)
            break;
        n_alive = next;
        for (int i = 0; i < n_alive; i++)
            alive[i] = rk[i].trial;
        for (int i = 1; i < n_alive; i++)   /* in trial order */
            for (int q = i; q > 0 && alive[q - 1] > alive[q]; q--) {
                int tmp = alive[q];
                alive[q] = alive[q - 1];
                alive[q - 1] = tmp;
            }
        if (!s->j.quiet)
            printf("rung %d: the best %d of %d go on to %d epochs\n", k, n_alive,
                   k ? n_alive * s->eta : s->count, rung_epochs(s, k + 1));
    }
    free(alive), free(rk);
    return rc;
}

/* The value of parameter p of trial t for a figure: the number, or a word's index among
 * the words seen (words[nw], updated). */
static double param_value(const search_job *s, int t, int p, char (*words)[64], int *nw)
{
    char buf[600];
    const char *names[8], *values[8];
    split_params(s->pts[t].params, buf, sizeof buf, names, values);
    char *end;
    double v = strtod(values[p], &end);
    if (!*end)
        return v;
    int w = 0;
    while (w < *nw && strcmp(words[w], values[p]))
        w++;
    if (w == *nw && *nw < 64)
        snprintf(words[(*nw)++], 64, "%s", values[p]);
    return w;
}

/* One panel per parameter: the validation loss of each trial against its value, one series
 * per rung (a log axis for a log range; values that are words at their index). */
static int plot_search(const search_job *s, const char *path, int top)
{
    int cols = s->np < 3 ? s->np : 3, rows = (s->np + cols - 1) / cols;
    ds_figure *f = ds_figure_create(rows, cols, 440 * cols, 360 * rows);
    if (!f)
        return cli_fail();
    double *x = malloc((size_t)s->n_rows * sizeof *x), *y = malloc((size_t)s->n_rows * sizeof *y);
    ds_status st = x && y ? DS_OK : DS_ERR_NOMEM;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < s->n_rows; i++)
        if (isfinite(s->rows[i].val_loss)) {
            lo = fmin(lo, s->rows[i].val_loss);
            hi = fmax(hi, s->rows[i].val_loss);
        }
    for (int p = 0; p < s->np && !st; p++) {
        ds_axes *a = ds_figure_axes(f, p);
        char name[80], words[64][64], label[48];
        int nw = 0;
        snprintf(name, sizeof name, "%.*s", (int)strcspn(s->specs[p], "="), s->specs[p]);
        size_t len = strlen(s->specs[p]);
        ds_axes_log_x(a, len > 4 && !strcmp(s->specs[p] + len - 4, ":log"));
        ds_axes_log_y(a, lo > 0 && hi > 20 * lo);
        ds_axes_labels(a, name, name, "validation loss (best epoch)");
        for (int k = 0; k <= top && !st; k++) {
            int m = 0;
            for (int i = 0; i < s->n_rows; i++)
                if (s->rows[i].rung == k && isfinite(s->rows[i].val_loss)) {
                    x[m] = param_value(s, s->rows[i].trial, p, words, &nw);
                    y[m++] = s->rows[i].val_loss;
                }
            int e = rung_epochs(s, k);
            snprintf(label, sizeof label, "%d %s", e, cli_plural(e, "epoch", "epochs"));
            if (m)
                st = ds_axes_scatter(a, m, x, y, top ? label : NULL, 4, 0.8);
        }
    }
    if (!st)
        st = ds_figure_save_png(f, path);
    free(x), free(y);
    ds_figure_free(f);
    return st ? cli_fail() : 0;
}

/* The best row of the highest rung (every row for random and grid search), or NULL. */
static const trial_row *best_row(const search_job *s, int *rung)
{
    const trial_row *b = NULL;
    *rung = 0;
    for (int i = 0; i < s->n_rows; i++)
        *rung = s->rows[i].rung > *rung ? s->rows[i].rung : *rung;
    for (int i = 0; i < s->n_rows; i++)
        if (s->rows[i].rung == *rung && (!b || cmp_rows(&s->rows[i], b) < 0))
            b = &s->rows[i];
    return b && isfinite(b->val_loss) ? b : NULL;
}

/* --best B.model: the best trial's model file, and its best epoch's weights beside it. */
static int save_best(const search_job *s, const trial_row *b, const char *path)
{
    char *text = NULL, wsrc[4300], wdst[4300];
    const char *names[8], *values[8];
    char buf[600];
    int np = split_params(s->pts[b->trial].params, buf, sizeof buf, names, values);
    if (ds_net_text_set(s->j.text, s->j.model, np, names, values, &text))
        return cli_fail();
    int rc = cli_write_text(path, text);
    free(text);
    snprintf(wsrc, sizeof wsrc, "%s/t%04d.best.safetensors", s->dir, b->trial + 1);
    stem(path, ".safetensors", wdst, sizeof wdst);
    ds_tensor_set *w = NULL;
    if (!rc && (ds_safetensors_load(wsrc, &w) || ds_safetensors_save(w, wdst)))
        rc = cli_fail();
    ds_tensor_set_free(w);
    if (!rc)
        printf("best model: %s, its weights: %s\n", path, wdst);
    return rc;
}

static int search_checks(cli_cmd *c, search_job *s, bool *halving, bool *random, long *points)
{
    long trials, eta;
    const char *strategy = cli_get(c, "strategy");
    *halving = strategy && !strcmp(strategy, "halving");
    *random = !strategy || !strcmp(strategy, "random") || *halving;
    if (strategy && strcmp(strategy, "grid") && !*random)
        return cli_usage_error(c, "option '--strategy': '%s' is not random, grid or halving",
                               strategy);
    if (!cli_long(c, "trials", 1, MAX_TRIALS, *halving ? 27 : 16, &trials) ||
        !cli_long(c, "grid-points", 2, 1000, 5, points) ||
        !cli_long(c, "eta", 2, 100, 3, &eta) || !cli_double(c, "budget", 0.001, 1e9, 0, &s->budget))
        return 2;
    if (!*random && cli_has(c, "trials"))
        return cli_usage_error(c, "--trials counts random draws: give --strategy random or "
                               "halving");
    if (!*halving && cli_has(c, "eta"))
        return cli_usage_error(c, "--eta is successive halving's: give --strategy halving");
    s->count = (int)trials;
    s->eta = (int)eta;
    s->np = cli_values(c, "param", &s->specs);
    if (s->np < 1)
        return cli_usage_error(c, "give the hyperparameters to search: --param NAME=SPEC");
    s->out = cli_get(c, "output");
    int rc;
    if ((rc = net_job_outputs(c, s->out, "search results")))
        return rc;
    if (cli_has(c, "best") && !strcmp(cli_get(c, "best"), s->out))
        return cli_usage_error(c, "--best is the model file: give another name than -o");
    return 0;
}

int cli_search_net(cli_cmd *c)
{
    search_job *s = calloc(1, sizeof *s);
    if (!s)
        return cli_fail();
    bool halving, random;
    long points;
    int rc = search_checks(c, s, &halving, &random, &points);
    cli_split how;
    if (!rc) {
        stem(s->out, ".trials", s->dir, sizeof s->dir);
        snprintf(s->state, sizeof s->state, "%s/state.txt", s->dir);
        snprintf(s->metric, sizeof s->metric, "metric");
        rc = net_job_options(c, &s->j, &how);
    }
    ds_search_opts o = {random, s->count, (int)points, 0, (uint64_t)s->j.seed, NULL, NULL};
    if (!rc && ds_search_points(s->np, s->specs, &o, check_param, &s->j, &s->pts, &s->count))
        rc = cli_fail();   /* before the data are read: a bad --param fails at once */
    if (!rc && s->count > MAX_TRIALS) {
        fprintf(stderr, "deepsky: error: the grid holds %d points, more than the %d trials a "
                "network's search runs: fewer values, or --strategy random\n", s->count,
                MAX_TRIALS);
        rc = 1;
    }
    if (!rc) {
        cli_files files = {0};
        char wbest[4300];
        cli_files_input(&files, "the model file", s->j.model);
        cli_files_inputs(&files, c, "data");
        cli_files_inputs(&files, c, "labels");
        cli_files_output(&files, "-o", s->out);
        cli_files_output(&files, "--plot", cli_get(c, "plot"));
        cli_files_output(&files, "--best", cli_get(c, "best"));
        if (cli_has(c, "best")) {
            stem(cli_get(c, "best"), ".safetensors", wbest, sizeof wbest);
            cli_files_output(&files, "the weights of --best,", wbest);
        }
        rc = cli_files_check(c, &files);
    }
    if (!rc)
        rc = net_job_load(c, &s->j, &how);
    s->rungs = 1;
    while (!rc && halving && pow(s->eta, s->rungs) <= s->count &&
           (double)s->j.epochs / pow(s->eta, s->rungs) >= 1)
        s->rungs++;
    if (!rc)
        rc = open_state(s);
    if (!rc && !s->j.quiet)
        printf("search of %s: %d %s, %s%s, %ld epochs, seed %ld; trials in %s\n", s->j.model,
               s->count, cli_plural(s->count, "config", "configs"),
               halving ? "successive halving" : random ? "random draws" : "grid",
               halving ? (s->rungs > 1 ? "" : " (one rung: as random)") : "", s->j.epochs,
               s->j.seed, s->dir);
    s->t0 = now();
    if (!rc)
        rc = run_all(s);
    int rung;
    const trial_row *b = rc == 1 || rc < 0 ? NULL : best_row(s, &rung);
    if (rc == 3)
        printf("budget of %g s spent: %d %s done; the same command goes on\n", s->budget,
               s->n_rows, cli_plural(s->n_rows, "trial", "trials"));
    if (rc == 0 || rc == 3) {
        printf("epochs trained: %ld (every config at full epochs: %ld)\n", s->epochs_trained,
               (long)s->count * s->j.epochs);
        if (b)
            printf("best: trial %d, %s (val_loss %.5g, val_%s %.4g, %d %s)\n", b->trial + 1,
                   s->pts[b->trial].params, b->val_loss, s->metric, b->val_metric, b->epochs,
                   cli_plural(b->epochs, "epoch", "epochs"));
        else
            printf("no trial finished with a finite validation loss\n");
        printf("trials: %s\n", s->out);
        int r2 = 0;
        if (b && cli_has(c, "best"))
            r2 = save_best(s, b, cli_get(c, "best"));
        if (!r2 && b && cli_has(c, "plot") && !(r2 = plot_search(s, cli_get(c, "plot"), rung)))
            printf("figure: %s\n", cli_get(c, "plot"));
        rc = r2;
    }
    net_job_free(&s->j);
    free(s->pts);
    free(s);
    return rc < 0 ? 0 : rc;
}
