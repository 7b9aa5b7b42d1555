/* cmd_classic.c - deepsky classic train|eval|predict: classic baselines (logistic, linear,
 * knn, forests, boosting, svm, kmeans, pca) on the data of train and eval, read the same
 * way (data.c). */
#include "cli.h"
#include "photoz_report.h"
#include "eval_binary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the methods' options: one --NAME per hyperparameter name of any method ---- */
#define MAX_MOPTS 32
static cli_opt method_opts[MAX_MOPTS];
static char method_help[MAX_MOPTS][640];
static int n_method_opts;

/* The union of the methods' hyperparameters, each with the help of every method using it. */
static void build_method_opts(void)
{
    if (n_method_opts)
        return;
    for (int i = 0; ds_classic_method_name(i); i++) {
        const char *me = ds_classic_method_name(i);
        for (int k = 0; ds_classic_param_name(me, k); k++) {
            const char *name = ds_classic_param_name(me, k);
            int j = 0;
            while (j < n_method_opts && strcmp(method_opts[j].name, name))
                j++;
            if (j == MAX_MOPTS)
                continue;
            if (j == n_method_opts) {
                method_opts[j] = (cli_opt)CLI_OPT(name, 0, "V", method_help[j]);
                n_method_opts++;
            }
            char *h = method_help[j];
            snprintf(h + strlen(h), sizeof method_help[j] - strlen(h), "%s%s: %s (default %s)",
                     *h ? "; " : "", me, ds_classic_param_help(me, k),
                     ds_classic_param_default(me, k));
        }
    }
}

int cli_classic_method_opts(cli_opt *opts, int n, int cap)
{
    build_method_opts();
    for (int k = 0; k < n_method_opts && n < cap; k++)
        opts[n++] = method_opts[k];
    return n;
}

/* The options of the method given, into m; an option of another method is a usage error
 * naming the method's own. */
static int set_method_opts(const cli_cmd *c, ds_classic *m)
{
    const char *me = ds_classic_method(m);
    for (int j = 0; j < n_method_opts; j++) {
        const char *name = method_opts[j].name, *v = cli_get(c, name);
        if (!v)
            continue;
        if (!ds_classic_get(m, name)) {
            char list[512] = "";
            for (int k = 0; ds_classic_param_name(me, k); k++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s--%s",
                         k ? ", " : "", ds_classic_param_name(me, k));
            return cli_usage_error(c, "option '--%s' is not an option of method '%s' (its "
                                   "options: %s)", name, me, *list ? list : "none");
        }
        if (ds_classic_set(m, name, v))
            return cli_usage_error(c, "option '--%s': %s", name, ds_last_error());
    }
    return 0;
}

typedef struct {
    cli_data d, v;
    ds_classic *m;
} job;

static void job_free(job *j)
{
    cli_data_free(&j->d);
    cli_data_free(&j->v);
    ds_classic_free(j->m);
}

/* The data of a set as one tensor x (fill or check its NaN as train does) and its labels y
 * (NULL without). */
int cli_classic_tensors(cli_data *d, ds_tensor **x, ds_tensor **y)
{
    if (d->nx != 1 || d->ny > 1) {
        fprintf(stderr, "deepsky: error: --%s: classic models read one data file and one set "
                "of labels, not %d and %d\n", d->xopt, d->nx, d->ny);
        return 1;
    }
    if (cli_nan_fill(d, &d->x[0]))
        return 1;
    *x = d->x[0].t;
    *y = d->ny ? d->y[0].t : NULL;
    return 0;
}

/* Prints a report under a heading; 0 or 1. */
static int report(const ds_classic *m, const char *heading, ds_tensor *x, ds_tensor *y)
{
    char *rep;
    if (ds_classic_evaluate(m, x, y, &rep, NULL))
        return cli_fail();
    if (heading)
        printf("\n%s (%lld %s):\n", heading, (long long)ds_tensor_shape(x)[0],
               cli_plural(ds_tensor_shape(x)[0], "sample", "samples"));
    fputs(rep, stdout);
    free(rep);
    return 0;
}

/* ---- train ---- */

int cli_classic_prepare(const cli_cmd *c, ds_classic *m)
{
    int rc = set_method_opts(c, m);
    if (rc)
        return rc;
    const char *feat = cli_get(c, "features"), *tr = cli_get(c, "transform");
    if (feat && ds_classic_set_features(m, feat))
        return cli_usage_error(c, "option '--features': %s", ds_last_error());
    if (tr && !strcmp(ds_classic_method(m), "pca"))
        return cli_usage_error(c, "--transform pca:K goes before another method; method pca "
                               "is one already (its option --components)");
    if (tr && ds_classic_set_transform(m, tr))
        return cli_usage_error(c, "option '--transform': %s", ds_last_error());
    const char *sc = cli_get(c, "scale");
    ds_scale_kind kind = DS_SCALE_NONE;
    float a = 1;
    if (sc && !cli_parse_scale(c, sc, &kind, &a))
        return 2;
    ds_classic_set_scaling(m, kind, a);
    return 0;
}

/* --val-split F / --val-split-last F: the validation samples out of the training set. */
static int split_off(job *j, double fraction, bool last, long seed)
{
    int64_t N = ds_tensor_shape(j->d.x[0].t)[0];
    unsigned char *is_val = malloc((size_t)N + 1);
    ds_split_info info;
    if (!is_val)
        return cli_fail();
    if (ds_classic_split(j->d.ny ? j->d.y[0].t : NULL, N, fraction, last, (uint64_t)seed,
                         is_val, &info)) {
        fprintf(stderr, "deepsky: error: --%s %g: %s\n", last ? "val-split-last" : "val-split",
                fraction, ds_last_error());
        free(is_val);
        return 1;
    }
    cli_split how = {fraction, last, (uint64_t)seed, false};
    int rc = cli_split_rows(&j->d, is_val, &info, &how, &j->v);
    free(is_val);
    return rc;
}

static void print_fit(const ds_classic *m, const ds_tensor *x, double seconds)
{
    printf("classic %s: %s, %lld %s of shape", ds_classic_method(m),
           ds_classic_task_name(ds_classic_task_of(m)), (long long)ds_tensor_shape(x)[0],
           cli_plural(ds_tensor_shape(x)[0], "sample", "samples"));
    char s[96];
    printf(" %s", ds_shape_str(ds_tensor_ndim(x) - 1, ds_tensor_shape(x) + 1, s, sizeof s));
    if (ds_classic_classes(m))
        printf(", %lld classes", (long long)ds_classic_classes(m));
    printf(", fitted in %.3g s\n", seconds);
    const char *stats[] = {"iterations", "inertia", "silhouette", "oob_score", "rounds",
                           "support_vectors"};
    for (int i = 0; i < 6; i++)
        if (!isnan(ds_classic_stat(m, stats[i])))
            printf("%s: %.6g\n", stats[i], ds_classic_stat(m, stats[i]));
}

static int train_run(const cli_cmd *c, job *j, double vsplit, bool vlast, long seed)
{
    int rc;
    ds_tensor *x, *y, *vx = NULL, *vy = NULL;
    if ((rc = cli_load_set(c, "data", "labels", &j->d)))
        return rc;
    if (vsplit > 0 && (rc = split_off(j, vsplit, vlast, seed)))
        return rc;
    if (cli_has(c, "val") && (rc = cli_load_set(c, "val", "val-labels", &j->v)))
        return rc;
    if ((rc = cli_classic_tensors(&j->d, &x, &y)) || (j->v.nx && (rc = cli_classic_tensors(&j->v, &vx, &vy))))
        return rc;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ds_classic_fit(j->m, x, y, (uint64_t)seed))
        return cli_fail();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_fit(j->m, x, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    if (!strcmp(ds_classic_method(j->m), "knn"))   /* it remembers them: no measure, and slow */
        printf("\ntraining set: not evaluated (knn holds the training samples; give --val or "
               "--val-split)\n");
    else if ((rc = report(j->m, "training set", x, y)))
        return rc;
    if (vx && (rc = report(j->m, "validation set", vx, vy)))
        return rc;
    if (ds_classic_save(j->m, cli_get(c, "output")))
        return cli_fail();
    printf("\nmodel: %s\n", cli_get(c, "output"));
    return 0;
}

static int classic_train(int argc, char **argv)
{
    build_method_opts();
    cli_opt opts[80] = {
        CLI_OPT("method", 0, "M", "the method (required): logistic, linear, knn, random-forest, "
                "gradient-boosting, svm, kmeans, pca"),
        CLI_CLASSIC_DATA_OPTS("labels (required but for kmeans and pca; or --label-columns)"),
        CLI_CLASSIC_PREP_OPTS,
        CLI_OPTS("val", 0, "X2", "validation data"),
        CLI_OPTS("val-labels", 0, "Y2", "validation labels"),
        CLI_OPT("val-split", 0, "F", "hold out fraction F of the data for validation "
                "(shuffled with --seed, by class for class labels)"),
        CLI_OPT("val-split-last", 0, "F", "hold out the last fraction F, in file order"),
        CLI_OPT("seed", 0, "S", "random seed (default 0)"),
        CLI_OPT("output", 'o', "MODEL", "the model file to write (.safetensors, required)"),
    };
    int n = 0;
    while (opts[n].name)
        n++;
    n = cli_classic_method_opts(opts, n, (int)(sizeof opts / sizeof opts[0]) - 1);
    cli_cmd c = {"classic train", "--method M [options] --data X --labels Y -o MODEL.safetensors",
                 "Fits a classic model (--method M; M's options below, e.g. --C for logistic, "
                 "--k for knn) and prints its metrics on the training and validation data "
                 "as eval does.", opts, n, {0}, 0, 0, 0};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long seed;
    double vsplit = 0, vlast = 0;
    if (!cli_threads(&c) || !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_double(&c, "val-split", 1e-9, 1 - 1e-9, 0, &vsplit) ||
        !cli_double(&c, "val-split-last", 1e-9, 1 - 1e-9, 0, &vlast))
        return 2;
    if (!cli_has(&c, "method") || !cli_has(&c, "data") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--method M, --data X and -o MODEL are required");
    if ((vsplit > 0) + (vlast > 0) + cli_has(&c, "val") > 1)
        return cli_usage_error(&c, "give one of --val, --val-split and --val-split-last");
    if (cli_has(&c, "val") != cli_has(&c, "val-labels") && cli_has(&c, "labels"))
        return cli_usage_error(&c, "--val X2 needs --val-labels Y2 (and the reverse)");
    if ((rc = cli_output_ext(&c, "-o", cli_get(&c, "output"), ".safetensors", "classic model")))
        return rc;
    job j = {0};
    if (ds_classic_create(cli_get(&c, "method"), &j.m)) {
        rc = cli_usage_error(&c, "option '--method': %s", ds_last_error());
        goto done;
    }
    if ((rc = cli_classic_prepare(&c, j.m)))
        goto done;
    cli_item items[DS_FEED_MAX];
    int count;
    if ((rc = cli_named_list(&c, "data", items, &count)))
        goto done;
    if (cli_stop_here(&c))
        goto done;
    cli_files files = {0};
    cli_files_inputs(&files, &c, "data");
    cli_files_inputs(&files, &c, "labels");
    cli_files_output(&files, "-o", cli_get(&c, "output"));
    if (!(rc = cli_files_check(&c, &files)))
        rc = train_run(&c, &j, vsplit + vlast, vlast > 0, seed);
done:
    job_free(&j);
    return rc;
}

/* ---- eval and predict ---- */

static int load_model(const cli_cmd *c, ds_classic **m)
{
    if (ds_classic_load(c->positional[0], cli_get(c, "method"), m))
        return cli_fail();
    return 0;
}

/* eval --metrics, --roc (eval_binary.c) of a classifier of two classes: class 1's score. */
static int binary_report(const cli_cmd *c, const ds_classic *m, const ds_tensor *x,
                         const ds_tensor *y)
{
    ds_tensor *p = NULL;
    if (ds_classic_task_of(m) != DS_CLASSIC_CLASSIFY) {
        fprintf(stderr, "deepsky: error: --metrics and --roc need a classifier of two classes, "
                "not a %s model\n", ds_classic_method(m));
        return 1;
    }
    if (ds_classic_predict(m, x, &p))
        return cli_fail();
    const int64_t n = ds_tensor_shape(y)[0];
    int rc = 0;
    if (ds_tensor_ndim(p) != 2 || ds_tensor_shape(p)[1] != 2 || ds_tensor_numel(y) != n) {
        fprintf(stderr, "deepsky: error: --metrics and --roc need a classifier of two classes "
                "(this one scores %lld)\n", (long long)(ds_tensor_numel(p) / n));
        rc = 1;
    }
    float *s = rc ? NULL : malloc(sizeof *s * (size_t)n);
    if (!rc && !s) {
        fprintf(stderr, "deepsky: error: out of memory for %lld scores\n", (long long)n);
        rc = 1;
    }
    for (int64_t i = 0; s && i < n; i++)
        s[i] = ds_tensor_data(p)[2 * i + 1];
    if (s)
        rc = cli_binary_report(c, n, s, ds_tensor_data((ds_tensor *)y));
    free(s);
    ds_tensor_free(p);
    return rc;
}

static int classic_eval(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_CLASSIC_DATA_OPTS("labels (required but for kmeans and pca models; or --label-columns)"),
        CLI_OPT("method", 0, "M", "refuse a model of another method"),
        CLI_PHOTOZ_OPTS,
        CLI_BINARY_OPTS,
    };
    cli_cmd c = {"classic eval", "MODEL --data X --labels Y",
                 "Prints the metrics of a classic model on labelled data, as eval does: "
                 "accuracy, per-class precision and recall, the confusion matrix, AUROC; "
                 "RMSE, MAE, bias; inertia and silhouette (kmeans); explained variance and "
                 "reconstruction error (pca).",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    if (!cli_threads(&c))
        return 2;
    if (!cli_has(&c, "data"))
        return cli_usage_error(&c, "--data X is required");
    if ((rc = cli_photoz_check(&c, false)) || (rc = cli_binary_check(&c)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    if ((rc = cli_photoz_check(&c, true)))
        return rc;
    job j = {0};
    ds_tensor *x, *y;
    if (!(rc = load_model(&c, &j.m)) && !(rc = cli_load_set(&c, "data", "labels", &j.d)) &&
        !(rc = cli_classic_tensors(&j.d, &x, &y))) {
        ds_classic_task t = ds_classic_task_of(j.m);
        if (!y && (t == DS_CLASSIC_CLASSIFY || t == DS_CLASSIC_REGRESS))
            rc = cli_usage_error(&c, "a %s model needs --labels Y (or --label-columns)",
                                 ds_classic_method(j.m));
        else
            rc = report(j.m, NULL, x, y);
        if (!rc && cli_photoz_wanted(&c))
            rc = cli_photoz_classic(&c, j.m, x, y);
        if (!rc && cli_binary_wanted(&c))
            rc = binary_report(&c, j.m, x, y);
    }
    job_free(&j);
    return rc;
}

/* The prediction p with the decision (class, cluster) first, and its column names. */
static int write_prediction(const ds_classic *m, ds_tensor *p, const char *path)
{
    ds_tensor *dec = ds_classic_decide(m, p);
    int64_t n = ds_tensor_shape(p)[0], w = ds_tensor_shape(p)[1], lead = dec ? 1 : 0;
    int64_t shape[2] = {n, w + lead};
    ds_tensor *t = ds_tensor_create(2, shape);
    char (*names)[32] = malloc((size_t)(w + lead) * sizeof *names);
    const char **nv = malloc((size_t)(w + lead) * sizeof *nv);
    int rc = 0;
    if (!t || !names || !nv) {
        rc = cli_fail();
        goto done;
    }
    ds_classic_task task = ds_classic_task_of(m);
    const char *lead_name = task == DS_CLASSIC_CLASSIFY ? "class" : "cluster";
    const char *pre = task == DS_CLASSIC_CLASSIFY ? "p" : task == DS_CLASSIC_CLUSTER ? "d2"
                    : task == DS_CLASSIC_TRANSFORM ? "pc" : "y";
    for (int64_t k = 0; k < w + lead; k++) {
        if (k < lead)
            snprintf(names[k], sizeof names[k], "%s", lead_name);
        else
            snprintf(names[k], sizeof names[k], "%s%lld", pre,
                     (long long)(k - lead + (task == DS_CLASSIC_TRANSFORM)));
        nv[k] = names[k];
    }
    float *o = ds_tensor_data(t), *pv = ds_tensor_data(p);
    for (int64_t i = 0; i < n; i++) {
        if (dec)
            o[i * (w + lead)] = ds_tensor_data(dec)[i];
        memcpy(o + i * (w + lead) + lead, pv + i * w, (size_t)w * sizeof *o);
    }
    if (ds_array_save(t, path, nv))
        rc = cli_fail();
    else
        printf("predictions of %lld %s: %s (columns %s%s%s%s...)\n", (long long)n,
               cli_plural(n, "sample", "samples"), path, nv[0], w + lead > 1 ? ", " : "",
               w + lead > 1 ? nv[1] : "", w + lead > 2 ? ", " : "");
done:
    ds_tensor_free(dec);
    ds_tensor_free(t);
    free(names);
    free(nv);
    return rc;
}

static int classic_predict(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_CLASSIC_DATA_OPTS("not read (predict needs no labels)"),
        CLI_OPT("method", 0, "M", "refuse a model of another method"),
        CLI_OPT("output", 'o', "FILE", "predictions (.csv, .npy or .fits; required): the class "
                "(or cluster) first, then the class probabilities (p0...), squared distances "
                "to the centres (d2_...), values (y0...) or components (pc1...)"),
    };
    cli_cmd c = {"classic predict", "MODEL --data X -o OUT",
                 "Writes a classic model's predictions for data.", opts,
                 (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    if (!cli_threads(&c))
        return 2;
    if (!cli_has(&c, "data") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--data X and -o OUT are required");
    if (cli_has(&c, "labels"))
        return cli_usage_error(&c, "predict reads no labels (classic eval compares with them)");
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "MODEL", c.positional[0]);
    cli_files_inputs(&files, &c, "data");
    cli_files_output(&files, "-o", cli_get(&c, "output"));
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    job j = {0};
    ds_tensor *x, *y, *p = NULL;
    if (!(rc = load_model(&c, &j.m)) && !(rc = cli_load_set(&c, "data", NULL, &j.d)) &&
        !(rc = cli_classic_tensors(&j.d, &x, &y))) {
        if (ds_classic_predict(j.m, x, &p))
            rc = cli_fail();
        else
            rc = write_prediction(j.m, p, cli_get(&c, "output"));
    }
    ds_tensor_free(p);
    job_free(&j);
    return rc;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} subs[] = {{"train", classic_train}, {"eval", classic_eval}, {"predict", classic_predict}};
#define N_SUBS (int)(sizeof subs / sizeof subs[0])

static void usage(FILE *fp)
{
    fprintf(fp, "usage: deepsky classic train|eval|predict [options]\n\n"
            "Classic baselines beside the networks. Methods:\n");
    for (int i = 0; ds_classic_method_name(i); i++)
        fprintf(fp, "  %-10s %s\n", ds_classic_method_name(i), ds_classic_method_about(i));
    fprintf(fp, "\n'deepsky classic train --help' lists the options of every method.\n");
}

int cmd_classic(int argc, char **argv)
{
    if (cli_visitor) {   /* the fuzz dictionary: every subcommand's table */
        for (int i = 0; i < N_SUBS; i++)
            subs[i].fn(argc, argv);
        return -1;
    }
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : -1;
    }
    for (int i = 0; i < N_SUBS; i++)
        if (!strcmp(argv[0], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "deepsky classic: unknown subcommand '%s' (train, eval or predict)\n",
            argv[0]);
    return 2;
}
