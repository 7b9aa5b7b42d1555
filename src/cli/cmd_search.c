/* cmd_search.c - deepsky search (hyperparameter search with k-fold cross-validation over a
 * classic method's options) and deepsky curve (learning curves), on classic train's data;
 * with a model file instead of --method, the network's (search_net.c, curve_net.c). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 128

/* The options both commands share: the data, a classic method's or a network's, then every
 * method's; the count. *first_classic: where the options only a classic method takes
 * begin, *first_net: where those only a network takes begin (before them). */
static int common_opts(cli_opt *opts, int n, int *first_net, int *first_classic)
{
    cli_opt base[] = {
        CLI_CLASSIC_DATA_OPTS("labels (required; or --label-columns)"),
        CLI_SCALE_OPT,
        CLI_OPT("seed", 0, "S", "random seed: folds, draws and fits (default 0)"),
    };
    cli_opt net[] = {
        CLI_OPTS("val", 0, "X2", "network: validation data; NAME=X2 for each input"),
        CLI_OPTS("val-labels", 0, "Y2", "network: validation labels"),
        CLI_OPT("val-split", 0, "F", "network: hold out a fraction F of the data for "
                "validation (as train)"),
        CLI_OPT("val-split-last", 0, "F", "network: hold out the last fraction F"),
        CLI_OPT("epochs", 0, "N", "network: epochs of a trial (halving: of the last rung) "
                "(default 10)"),
        CLI_OPT("batch-size", 0, "B", "network: mini-batch size (default 32)"),
        CLI_OPT("checkpoint-every", 0, "SECONDS", "network: a trial's checkpoint at most this "
                "often, and after its last epoch (default 10; 0: every epoch)"),
        CLI_OPT("quiet", 'q', NULL, "network: no line per trial"),
    };
    cli_opt classic[] = {
        CLI_OPT("method", 0, "M", "the classic method (required without MODEL): logistic, "
                "linear, knn, random-forest, gradient-boosting, svm"),
        CLI_FEATURES_OPT,
        CLI_TRANSFORM_OPT,
        CLI_OPT("folds", 0, "K", "cross-validation folds, stratified by class for class labels "
                "(default 5)"),
    };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        opts[n++] = base[i];
    *first_net = n;
    for (size_t i = 0; i < sizeof net / sizeof net[0]; i++)
        opts[n++] = net[i];
    *first_classic = n;
    for (size_t i = 0; i < sizeof classic / sizeof classic[0]; i++)
        opts[n++] = classic[i];
    return n;
}

/* A network's options (those from first_net, and the command's own in only, NULL-ended)
 * refused without MODEL, a classic method's with it; 0 or 2. */
static int check_kind(const cli_cmd *c, int first_net, int first_classic,
                      const char *const *only)
{
    bool net = c->n_positional > 0;
    if (net && cli_has(c, "method"))
        return cli_usage_error(c, "give either MODEL (a network's search) or --method M (a "
                               "classic method's), not both");
    if (!net && !cli_has(c, "method") && cli_has(c, "data"))
        return cli_usage_error(c, "give MODEL (a network's model file) or --method M (a "
                               "classic method)");
    int from = net ? first_classic : first_net, to = net ? c->n_opts : first_classic;
    for (int i = from; i < to; i++)
        if (c->opts[i].value)
            return cli_usage_error(c, "--%s applies to %s", c->opts[i].name,
                                   net ? "a classic method (--method M), not a network"
                                       : "a network (MODEL), not a classic method");
    for (int i = 0; !net && only[i]; i++)
        if (cli_has(c, only[i]))
            return cli_usage_error(c, "--%s applies to a network (MODEL), not a classic method",
                                   only[i]);
    return 0;
}

typedef struct {
    cli_data d;
    ds_classic *m;
    ds_tensor *x, *y;
} job;

/* The model (--method and its options) and the data; 0, 1 or 2. */
static int setup(const cli_cmd *c, job *j)
{
    if (!cli_has(c, "method") || !cli_has(c, "data") || !cli_has(c, "output"))
        return cli_usage_error(c, "--method M, --data X and -o OUT are required");
    if (ds_classic_create(cli_get(c, "method"), &j->m))
        return cli_usage_error(c, "option '--method': %s", ds_last_error());
    int rc = cli_classic_prepare(c, j->m);
    if (rc)
        return rc;
    if (cli_stop_here(c))
        return -1;
    cli_files files = {0};
    cli_files_inputs(&files, c, "data");
    cli_files_inputs(&files, c, "labels");
    cli_files_output(&files, "-o", cli_get(c, "output"));
    if (cli_has(c, "best"))
        cli_files_output(&files, "--best", cli_get(c, "best"));
    if (cli_has(c, "plot"))
        cli_files_output(&files, "--plot", cli_get(c, "plot"));
    if ((rc = cli_files_check(c, &files)) || (rc = cli_load_set(c, "data", "labels", &j->d)) ||
        (rc = cli_classic_tensors(&j->d, &j->x, &j->y)))
        return rc;
    if (!j->y)
        return cli_usage_error(c, "--labels Y (or --label-columns) is required: the folds are "
                               "scored against them");
    return 0;
}

static void job_free(job *j)
{
    cli_data_free(&j->d);
    ds_classic_free(j->m);
}

/* ---- search ---- */

static void progress(const ds_search_result *r, int done, int total, void *user)
{
    (void)user;
    printf("trial %d/%d: %-40s score %.4f +- %.4f\n", done + 1, total, r->params, r->score,
           r->spread);
    fflush(stdout);
}

/* The results as CSV: rank, trial, score, spread, then one column per parameter. */
static int write_results(const char *path, const ds_search_result *r, int n, int np,
                         const char *const *params)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        fprintf(stderr, "deepsky: error: %s: cannot write\n", path);
        return 1;
    }
    fprintf(fp, "rank,trial,score,spread");
    for (int p = 0; p < np; p++)
        fprintf(fp, ",%.*s", (int)strcspn(params[p], "="), params[p]);
    fprintf(fp, "\n");
    for (int i = 0; i < n; i++) {
        fprintf(fp, "%d,%d,%.6f,%.6f", i + 1, r[i].trial + 1, r[i].score, r[i].spread);
        for (const char *s = r[i].params; *s;) {   /* "a=1 b=2": the values */
            const char *v = strchr(s, '=') + 1;
            size_t len = strcspn(v, " ");
            fprintf(fp, ",%.*s", (int)len, v);
            s = v + len + (v[len] == ' ');
        }
        fprintf(fp, "\n");
    }
    bool bad = ferror(fp) != 0;
    if (fclose(fp) || bad || rename(tmp, path)) {
        remove(tmp);
        fprintf(stderr, "deepsky: error: %s: cannot write\n", path);
        return 1;
    }
    return 0;
}

/* Refits the best parameters on all the data and saves the model. */
static int save_best(job *j, const ds_search_result *best, const char *path, uint64_t seed)
{
    char text[sizeof best->params];
    snprintf(text, sizeof text, "%s", best->params);
    for (char *s = strtok(text, " "); s; s = strtok(NULL, " ")) {
        char *eq = strchr(s, '=');
        *eq = 0;
        if (ds_classic_set(j->m, s, eq + 1))
            return cli_fail();
    }
    if (ds_classic_fit(j->m, j->x, j->y, seed) || ds_classic_save(j->m, path))
        return cli_fail();
    printf("best model (refitted on all %lld samples): %s\n",
           (long long)ds_tensor_shape(j->x)[0], path);
    return 0;
}

/* The command's own options (opts, up to the first empty slot), then the data and training
 * options and the classic methods' options: their count. */
static int shared_opts(cli_opt *opts, int *first_net, int *first_classic)
{
    int n = 0;
    while (opts[n].name)
        n++;
    n = common_opts(opts, n, first_net, first_classic);
    return cli_classic_method_opts(opts, n, MAX_OPTS - 1);
}

int cmd_search(int argc, char **argv)
{
    cli_opt opts[MAX_OPTS] = {
        CLI_OPTS("param", 0, "NAME=SPEC", "a hyperparameter to search (1 to 8): values "
                 "A,B,C, a range LO:HI, or LO:HI:log (integers for two integer ends); for a "
                 "network NAME is LAYER.OPTION (conv2d_1.filters, optimizer.lr) or an option "
                 "one line takes (lr)"),
        CLI_OPT("strategy", 0, "S", "grid (every combination; ranges in --grid-points "
                "values), random (--trials draws) or, for a network, halving (successive "
                "halving of --trials draws on epochs) (default grid; network: random)"),
        CLI_OPT("trials", 0, "N", "random and halving: draws (default 16; halving 27)"),
        CLI_OPT("eta", 0, "K", "halving: each rung keeps the best 1/K for K times the epochs "
                "(default 3)"),
        CLI_OPT("budget", 0, "SECONDS", "network: start no trial after this long, stop one "
                "at the end of the epoch past it (a rerun goes on)"),
        CLI_OPT("plot", 0, "PNG", "network: the validation loss against each parameter"),
        CLI_OPT("grid-points", 0, "N", "grid: values of a range (default 5)"),
        CLI_OPT("output", 'o', "CSV", "the results (required); classic, best first: rank, "
                "trial, score (mean over the folds), spread (their standard deviation), the "
                "values; network, a row per trial (and rung) as each ends: trial, rung, epochs, "
                "val_loss, val_acc or val_rmse, the values"),
        CLI_OPT("best", 0, "MODEL", "classic: refit the best parameters on all the data and "
                "save the model (.safetensors); network: the best trial's model file, its "
                "weights beside it (<stem>.safetensors)"),
    };
    int first_net, first_classic;
    int n = shared_opts(opts, &first_net, &first_classic);
    cli_cmd c = {"search", "[MODEL | --method M] --param NAME=SPEC ... --data X --labels Y "
                 "-o RESULTS.csv",
                 "Hyperparameter search. For a classic method (--method M): each point of a "
                 "grid (or each random draw) is scored by k-fold cross-validation (accuracy for "
                 "classes, R^2 for values); prints the trials and the best, writes the table "
                 "sorted by score. Options of the method given directly (e.g. --kernel rbf) "
                 "hold for every trial. For a network (MODEL, a model file): each trial sets "
                 "the options in the file's text and trains as train does, scored by its best "
                 "validation loss; the table (one row per trial, and rung for halving) grows "
                 "as trials end, the trials' weights and checkpoints go in <RESULTS>.trials/, "
                 "and the same command run again skips the trials done and resumes the one "
                 "cut short.",
                 opts, n, {0}, 0, 0, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    const char *const only[] = {"eta", "budget", "plot", NULL};
    if ((rc = check_kind(&c, first_net, first_classic, only)))
        return rc;
    if (c.n_positional)
        return cli_search_net(&c);
    long seed, folds, trials, points;
    if (!cli_threads(&c) || !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_long(&c, "folds", 2, 1000, 5, &folds) || !cli_long(&c, "trials", 1, 100000, 16, &trials) ||
        !cli_long(&c, "grid-points", 2, 1000, 5, &points))
        return 2;
    const char *strategy = cli_get(&c, "strategy");
    if (strategy && strcmp(strategy, "grid") && strcmp(strategy, "random"))
        return cli_usage_error(&c, "option '--strategy': '%s' is not grid or random%s", strategy,
                               strcmp(strategy, "halving") ? "" : " (halving trains networks: "
                               "give a MODEL)");
    bool random = strategy && !strcmp(strategy, "random");
    if (!random && cli_has(&c, "trials"))
        return cli_usage_error(&c, "--trials counts random draws: give --strategy random");
    const char *const *params;
    int np = cli_values(&c, "param", &params);
    if (np < 1)
        return cli_usage_error(&c, "give the hyperparameters to search: --param NAME=SPEC");
    if ((rc = cli_output_ext(&c, "-o", cli_get(&c, "output"), ".csv", "search results")) ||
        (cli_has(&c, "best") &&
         (rc = cli_output_ext(&c, "--best", cli_get(&c, "best"), ".safetensors", "classic model"))))
        return rc;
    for (int p = 0; p < np; p++) {   /* a searched option given directly too */
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(params[p], "="), params[p]);
        if (cli_has(&c, name))
            return cli_usage_error(&c, "--%s is given and searched (--param %s): give one",
                                   name, params[p]);
    }
    job j = {0};
    if ((rc = setup(&c, &j))) {
        job_free(&j);
        return rc < 0 ? 0 : rc;
    }
    ds_search_opts o = {random, (int)trials, (int)points, (int)folds, (uint64_t)seed, progress,
                        NULL};
    ds_search_result *res = NULL;
    int count = 0;
    if (ds_classic_search(j.m, np, params, &o, j.x, j.y, &res, &count)) {
        job_free(&j);
        return cli_fail();
    }
    printf("\nrank  score    +-       parameters\n");
    for (int i = 0; i < count && i < 20; i++)
        printf("%4d  %.4f  %.4f  %s\n", i + 1, res[i].score, res[i].spread, res[i].params);
    if (count > 20)
        printf("(%d more in %s)\n", count - 20, cli_get(&c, "output"));
    printf("\nbest: %s (score %.4f +- %.4f, %ld-fold)\n", res[0].params, res[0].score,
           res[0].spread, folds);
    rc = write_results(cli_get(&c, "output"), res, count, np, params);
    if (!rc)
        printf("results: %s\n", cli_get(&c, "output"));
    if (!rc && cli_has(&c, "best"))
        rc = save_best(&j, &res[0], cli_get(&c, "best"), (uint64_t)seed);
    free(res);
    job_free(&j);
    return rc;
}

/* ---- curve ---- */

/* "0.1,0.5,1", "1/16,1/4,1" or "1/16..1" (halving from 1 down to 1/16) into f. */
int cli_parse_fractions(const cli_cmd *c, const char *s, double *f, int cap)
{
    int n = 0;
    const char *dots = strstr(s, "..");
    if (dots) {
        double lo = 0;
        char *end;
        long den = strncmp(s, "1/", 2) ? 0 : strtol(s + 2, &end, 10);
        if (!den || end != dots || strcmp(dots + 2, "1") || den < 2 || den > 1 << 20)
            return -cli_usage_error(c, "option '--fractions': '%s' is not 1/N..1", s);
        lo = 1.0 / (double)den;
        for (double v = lo; v < 1 && n < cap - 1; v *= 2)
            f[n++] = v;
        f[n++] = 1;
        return n;
    }
    for (const char *p = s; *p && n < cap; n++) {
        char *end;
        double v = strtod(p, &end);
        if (*end == '/') {
            double d = strtod(end + 1, &end);
            v = d > 0 ? v / d : -1;
        }
        if (end == p || (*end && *end != ',') || !(v > 0 && v <= 1))
            return -cli_usage_error(c, "option '--fractions': '%s' is not fractions in (0, 1] "
                                    "(0.25,0.5,1 or 1/16..1)", s);
        f[n] = v;
        p = end + (*end == ',');
    }
    return n;
}

int cli_write_curve(const char *path, const ds_curve_point *pt, int n)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        fprintf(stderr, "deepsky: error: %s: cannot write\n", path);
        return 1;
    }
    fprintf(fp, "fraction,size,train,train_spread,val,val_spread\n");
    for (int s = 0; s < n; s++)
        fprintf(fp, "%.6g,%lld,%.6f,%.6f,%.6f,%.6f\n", pt[s].fraction, (long long)pt[s].size,
                pt[s].train, pt[s].train_spread, pt[s].val, pt[s].val_spread);
    bool bad = ferror(fp) != 0;
    if (fclose(fp) || bad || rename(tmp, path)) {
        remove(tmp);
        fprintf(stderr, "deepsky: error: %s: cannot write\n", path);
        return 1;
    }
    return 0;
}

int cli_plot_curve(const char *path, const char *method, const ds_curve_point *pt, int n,
                   bool values)
{
    double x[64], y[2][64], e[2][64];
    for (int s = 0; s < n; s++) {
        x[s] = (double)pt[s].size;
        y[0][s] = pt[s].train, e[0][s] = pt[s].train_spread;
        y[1][s] = pt[s].val, e[1][s] = pt[s].val_spread;
    }
    ds_figure *f = ds_figure_create(1, 1, 640, 480);
    if (!f)
        return cli_fail();
    ds_axes *a = ds_figure_axes(f, 0);
    char title[128];
    snprintf(title, sizeof title, "learning curve: %s", method);
    ds_axes_labels(a, title, "training samples", values ? "R^2" : "accuracy");
    ds_axes_log_x(a, 1);
    ds_status st = ds_axes_errorbar(a, n, x, y[0], e[0], "training");
    if (!st)
        st = ds_axes_errorbar(a, n, x, y[1], e[1], "validation");
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st ? cli_fail() : 0;
}

int cmd_curve(int argc, char **argv)
{
    cli_opt opts[MAX_OPTS] = {
        CLI_OPT("fractions", 0, "F", "training-set fractions: 1/16..1 (halving; the "
                "default), or a list such as 0.1,0.3,1"),
        CLI_OPT("output", 'o', "CSV", "the curve: fraction, size, train, train_spread, val, "
                "val_spread (means and standard deviations over the folds; required)"),
        CLI_OPT("plot", 0, "PNG", "the figure: scores against the training-set size, error "
                "bars over the folds (network: the seeds)"),
        CLI_OPT("seeds", 0, "K", "network: trainings per size, seeds S..S+K-1 (default 3)"),
    };
    int first_net, first_classic;
    int n = shared_opts(opts, &first_net, &first_classic);
    cli_cmd c = {"curve", "[MODEL | --method M] [options] --data X --labels Y -o CURVE.csv "
                 "[--plot C.png]",
                 "Learning curve of a classic method: for each fold of a k-fold split, the "
                 "method fitted on growing fractions of the other folds, scored on them "
                 "(training) and on the fold (validation): accuracy for classes, R^2 for "
                 "values. How much data do I need? For a network (MODEL): for each of --seeds "
                 "seeds, a fresh net trained (--epochs) on growing prefixes of a shuffle of "
                 "the training data, scored on them and on the validation data (--val or "
                 "--val-split).",
                 opts, n, {0}, 0, 0, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    const char *const only[] = {"seeds", NULL};
    if ((rc = check_kind(&c, first_net, first_classic, only)))
        return rc;
    if (c.n_positional)
        return cli_curve_net(&c);
    long seed, folds;
    if (!cli_threads(&c) || !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_long(&c, "folds", 2, 1000, 5, &folds))
        return 2;
    double frac[64];
    int nf = cli_parse_fractions(&c, cli_has(&c, "fractions") ? cli_get(&c, "fractions")
                                                                : "1/16..1", frac, 64);
    if (nf <= 0)
        return -nf;
    if ((rc = cli_output_ext(&c, "-o", cli_get(&c, "output"), ".csv", "learning curve")) ||
        (cli_has(&c, "plot") && (rc = cli_output_ext(&c, "--plot", cli_get(&c, "plot"), ".png",
                                                     "figures"))))
        return rc;
    if (cli_has(&c, "plot") && !ds_has_feature("plot")) {
        fprintf(stderr, "deepsky: error: --plot draws a figure, but deepsky was built without "
                "plotting support (NO_PLOT=1); rebuild with cairo\n");
        return 1;
    }
    job j = {0};
    if ((rc = setup(&c, &j))) {
        job_free(&j);
        return rc < 0 ? 0 : rc;
    }
    ds_curve_point pt[64];
    if (ds_classic_learning_curve(j.m, j.x, j.y, nf, frac, (int)folds, (uint64_t)seed, pt)) {
        job_free(&j);
        return cli_fail();
    }
    printf("learning curve of %s, %ld-fold:\n  size  train            validation\n",
           ds_classic_method(j.m), folds);
    for (int s = 0; s < nf; s++)
        printf("%6lld  %.4f +- %.4f  %.4f +- %.4f\n", (long long)pt[s].size, pt[s].train,
               pt[s].train_spread, pt[s].val, pt[s].val_spread);
    rc = cli_write_curve(cli_get(&c, "output"), pt, nf);
    if (!rc)
        printf("curve: %s\n", cli_get(&c, "output"));
    bool values = false;
    if (!rc && cli_has(&c, "plot")) {   /* the score's name: fit nothing, read the labels */
        for (int64_t i = 0; i < ds_tensor_numel(j.y); i++)
            values |= ds_tensor_data(j.y)[i] != floorf(ds_tensor_data(j.y)[i]);
        const char *task = ds_classic_get(j.m, "task");
        values = task && strcmp(task, "auto") ? !strcmp(task, "regress") : values;
        if (!(rc = cli_plot_curve(cli_get(&c, "plot"), ds_classic_method(j.m), pt, nf, values)))
            printf("figure: %s\n", cli_get(&c, "plot"));
    }
    job_free(&j);
    return rc;
}
