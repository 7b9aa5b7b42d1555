/* eval_uncertainty.c - deepsky eval --uncertainty: calibration reports of each labelled
 * loss (coverage, z, NLL, CRPS; ECE, reliability), temperature scaling, figures. */
#include "eval_uncertainty.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const figure_opts[] = {"pit", "coverage", "reliability"};
#define N_FIGURE_OPTS 3

/* Pooled draws asked for: --mc N, or an ensemble (several --weights). */
static bool pooled(const cli_cmd *c)
{
    const char *const *w;
    return cli_has(c, "mc") || cli_values(c, "weights", &w) > 1;
}

bool cli_uncertainty_wanted(const cli_cmd *c)
{
    bool any = cli_has(c, "uncertainty") || cli_has(c, "calibrate-temperature") || pooled(c);
    for (int k = 0; k < N_FIGURE_OPTS; k++)
        any = any || cli_has(c, figure_opts[k]);
    return any;
}

/* --val-split, --seed and --save-temperature need --calibrate-temperature. */
static int check_dependencies(const cli_cmd *c)
{
    static const char *const needs[] = {"val-split", "save-temperature"};
    for (int k = 0; k < 2; k++)
        if (cli_has(c, needs[k]) && !cli_has(c, "calibrate-temperature"))
            return cli_usage_error(c, "--%s goes with --calibrate-temperature", needs[k]);
    if (cli_has(c, "seed") && !cli_has(c, "val-split") && !cli_has(c, "mc"))
        return cli_usage_error(c, "--seed is the seed of --val-split and of the --mc draws: "
                               "give --val-split F or --mc N too");
    double v;
    long seed, mc;
    if (!cli_double(c, "val-split", 0, 1, 0.5, &v) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, &seed) || !cli_long(c, "mc", 1, 100000, 0, &mc))
        return 2;
    if (pooled(c) && cli_has(c, "save-temperature"))
        return cli_usage_error(c, "--save-temperature stores a T for one set of weights, and "
                               "predict applies it to each draw: fit it without --mc and with "
                               "one --weights");
    if (cli_has(c, "val-split") && !(v > 0 && v < 1))
        return cli_usage_error(c, "--val-split %s: the fraction must be strictly between 0 and "
                               "1 (both parts need samples)", cli_get(c, "val-split"));
    return 0;
}

int cli_uncertainty_check(const cli_cmd *c)
{
    int rc = check_dependencies(c);
    const char *w2 = cli_get(c, "save-temperature");
    if (rc || (w2 && (rc = cli_output_ext(c, "--save-temperature", w2, ".safetensors",
                                          "weights"))))
        return rc;
    bool figures = false;
    for (int k = 0; k < N_FIGURE_OPTS; k++) {
        cli_item items[DS_FEED_MAX];
        int count;
        char what[32];
        snprintf(what, sizeof what, "--%s", figure_opts[k]);
        if ((rc = cli_named_list(c, figure_opts[k], items, &count)))
            return rc;
        for (int i = 0; i < count; i++)
            if ((rc = cli_output_ext(c, what, items[i].path, ".png", "figures")))
                return rc;
        figures = figures || count > 0;
    }
    if (figures && !ds_has_feature("plot")) {
        fprintf(stderr, "deepsky: error: --pit, --coverage and --reliability draw figures, but "
                "deepsky was built without plotting support (NO_PLOT=1); rebuild with cairo\n");
        return 1;
    }
    return 0;
}

/* Eval's inputs and the outputs asked for: none may be a device, an input or twice. */
int cli_uncertainty_files(const cli_cmd *c)
{
    cli_files files = {0};
    cli_files_input(&files, "the model file", c->positional[0]);
    const char *const *w;
    for (int i = 0, k = cli_values(c, "weights", &w); i < k; i++)
        cli_files_input(&files, "--weights", w[i]);
    cli_files_inputs(&files, c, "data");
    cli_files_inputs(&files, c, "labels");
    cli_files_output(&files, "--save-temperature", cli_get(c, "save-temperature"));
    cli_files_output(&files, "--roc", cli_get(c, "roc"));   /* eval_binary.c */
    for (int k = 0; k < N_FIGURE_OPTS; k++) {
        cli_item items[DS_FEED_MAX];
        int count;
        char what[32];
        snprintf(what, sizeof what, "--%s", figure_opts[k]);
        if (cli_named_list(c, figure_opts[k], items, &count))
            return 2;
        for (int i = 0; i < count; i++)
            cli_files_output(&files, what, items[i].path);
    }
    return cli_files_check(c, &files);
}

/* Every NAME of a figure option is a loss's, and a plain PNG is only for a net with one. */
static int check_figure_names(const cli_cmd *c, const ds_net *n)
{
    int nt = ds_net_target_count(n);
    char list[512] = "";
    for (int i = 0; i < nt; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 ds_net_target_name(n, i));
    for (int k = 0; k < N_FIGURE_OPTS; k++) {
        cli_item items[DS_FEED_MAX];
        int count;
        cli_named_list(c, figure_opts[k], items, &count);   /* checked before */
        for (int i = 0; i < count; i++) {
            int t = 0;
            while (items[i].name[0] && t < nt && strcmp(items[i].name, ds_net_target_name(n, t)))
                t++;
            if (!items[i].name[0] && nt == 1)
                continue;
            if (items[i].name[0] && t < nt)
                continue;
            fprintf(stderr, "deepsky: error: --%s %s%s%s: %s (the losses that read labels: "
                    "%s)\n", figure_opts[k], items[i].name, items[i].name[0] ? "=" : "",
                    items[i].path, items[i].name[0] ? "no loss has that name"
                    : "the model has several losses: give NAME=PNG", list[0] ? list : "none");
            return 1;
        }
    }
    return 0;
}

/* The figure of option opt for target i, or NULL. */
static const char *figure_for(const cli_cmd *c, const ds_net *n, const char *opt, int i)
{
    return cli_named_value(c, opt, ds_net_target_name(n, i));
}

/* A figure asked for a target of the other kind. */
static int wrong_kind(const cli_cmd *c, const ds_net *n, int i, const char *opt, const char *why)
{
    if (!figure_for(c, n, opt, i))
        return 0;
    fprintf(stderr, "deepsky: error: --%s: loss '%s' %s\n", opt, ds_net_target_name(n, i), why);
    return 1;
}

/* ---- regression ---- */
static void stats_row(const char *label, const ds_calib_stats *s)
{
    printf("%6s  %7.4f  %7.4f  %+8.4f  %7.4f  %9.5g  %9.5g\n", label, s->cover68, s->cover95,
           s->z_mean, s->z_std, s->nll, s->crps);
}

static void regression_text(const char *name, const char *what, const ds_regression_calib *r,
                            const ds_regression_calib *alea)
{
    printf("\nuncertainty [%s]: %s; %lld samples x %lld %s\n", name, what,
           (long long)r->samples, (long long)r->outputs,
           cli_plural(r->outputs, "value", "values"));
    printf("output  cover68  cover95    z mean    z std        NLL       CRPS\n");
    for (int64_t j = 0; j < r->outputs && r->outputs <= 64; j++) {
        char lab[24];
        snprintf(lab, sizeof lab, "%lld", (long long)j);
        stats_row(lab, &r->per_output[j]);
    }
    stats_row("all", &r->all);
    if (alea) {
        printf("aleatoric std alone (the predicted sigmas, without the spread of the means):\n");
        stats_row("all", &alea->all);
    }
    printf("(calibrated: cover68 0.68, cover95 0.95, z mean 0, z std 1; NLL with its constant)\n"
           "coverage curve, nominal: empirical:");
    static const int levels[] = {10, 20, 30, 40, 50, 60, 68, 70, 80, 90, 95, 99};
    for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++)
        printf("%s %d%%: %.3f", k % 6 ? "" : "\n ", levels[k], r->empirical[levels[k] - 1]);
    printf("\n");
}

/* What the std of a report is: draws, the count pooled (0: one prediction in eval mode). */
static void std_source(const ds_target_values *v, long draws, const char *how, char *buf,
                       size_t cap)
{
    if (!draws)
        snprintf(buf, cap, "gaussian_nll, std = exp(logvar / 2)");
    else if (v->std_aleatoric)
        snprintf(buf, cap, "gaussian_nll, mean and std of %ld draws (%s): std = total, "
                 "sqrt(aleatoric^2 + epistemic^2)", draws, how);
    else
        snprintf(buf, cap, "mean and std of %ld draws (%s): std = their spread (epistemic)",
                 draws, how);
}

static int regression_report(const cli_cmd *c, const ds_net *n, int i,
                             const ds_target_values *v, long draws, const char *how)
{
    ds_regression_calib r, alea = {0};
    if (wrong_kind(c, n, i, "reliability", "is a regression: the reliability diagram is for "
                   "classifiers (--pit, --coverage)") ||
        ds_calibrate_regression(v->rows, v->width, ds_tensor_data(v->pred),
                                ds_tensor_data(v->std), ds_tensor_data(v->truth), &r))
        return ds_last_error()[0] ? cli_fail() : 1;
    if (v->std_aleatoric &&
        ds_calibrate_regression(v->rows, v->width, ds_tensor_data(v->pred),
                                ds_tensor_data(v->std_aleatoric), ds_tensor_data(v->truth),
                                &alea)) {
        ds_regression_calib_free(&r);
        return cli_fail();
    }
    const char *name = ds_net_target_name(n, i);
    char what[400];
    std_source(v, draws, how, what, sizeof what);
    regression_text(name, what, &r, v->std_aleatoric ? &alea : NULL);
    ds_regression_calib_free(&alea);
    const char *pit = figure_for(c, n, "pit", i), *cov = figure_for(c, n, "coverage", i);
    char title[160];
    int rc = 0;
    snprintf(title, sizeof title, "PIT histogram of '%s'", name);
    if (pit && !(rc = ds_plot_pit(&r, -1, title, pit) ? cli_fail() : 0))
        printf("wrote %s\n", pit);
    snprintf(title, sizeof title, "Coverage of '%s'", name);
    if (!rc && cov && !(rc = ds_plot_coverage(&r, title, cov) ? cli_fail() : 0))
        printf("wrote %s\n", cov);
    ds_regression_calib_free(&r);
    return rc;
}

/* ---- classifiers ---- */
/* The rows of v whose sample's mask byte is want, as new arrays (want < 0: every row). */
typedef struct {
    int64_t n;
    float *scores, *labels;
} rows_sel;

static int select_rows(const ds_target_values *v, const unsigned char *is_val, int64_t samples,
                       int want, rows_sel *s)
{
    int64_t K = v->width, per = v->rows / samples;
    const float *p = ds_tensor_data(v->pred), *y = ds_tensor_data(v->truth);
    s->n = 0;
    s->scores = malloc((size_t)(v->rows * K) * sizeof *s->scores);
    s->labels = malloc((size_t)v->rows * sizeof *s->labels);
    if (!s->scores || !s->labels) {
        fprintf(stderr, "deepsky: error: out of memory selecting %lld rows\n",
                (long long)v->rows);
        return 1;
    }
    for (int64_t r = 0; r < v->rows; r++) {
        if (want >= 0 && is_val[r / per] != want)
            continue;
        memcpy(s->scores + s->n * K, p + r * K, (size_t)K * sizeof *p);
        s->labels[s->n++] = y[r];
    }
    return 0;
}

static void rows_free(rows_sel *s)
{
    free(s->scores);
    free(s->labels);
}

static void calib_row(const char *label, const ds_classifier_calib *k)
{
    printf("%-22s %8.4g  %7.4f  %7.4f  %8.5g  %8.4f\n", label, k->temperature, k->ece, k->mce,
           k->nll, k->accuracy);
}

static void bins_text(const ds_classifier_calib *k, const char *rows)
{
    printf("reliability (%s, T = %.4g): confidence bin, rows, mean confidence, accuracy\n", rows,
           k->temperature);
    for (int b = 0; b < DS_CALIB_BINS; b++)
        if (k->bins[b].count)
            printf("  (%.3f, %.3f]  %7lld  %8.4f  %8.4f\n", k->bins[b].lo, k->bins[b].hi,
                   (long long)k->bins[b].count, k->bins[b].confidence, k->bins[b].accuracy);
}

/* The validation mask of --val-split over the feed's samples (NULL without it). */
static int split_mask(const cli_cmd *c, const ds_net *n, const ds_feed *f, int64_t samples,
                      unsigned char **mask)
{
    double frac;
    long seed;
    *mask = NULL;
    if (!cli_has(c, "val-split"))
        return 0;
    cli_double(c, "val-split", 0, 1, 0.5, &frac);   /* checked before */
    cli_long(c, "seed", 0, 0x7fffffffL, 0, &seed);
    ds_split_info info;
    if (!(*mask = calloc((size_t)samples, 1)) ||
        ds_net_split(n, f, frac, 0, (uint64_t)seed, *mask, &info)) {
        free(*mask);
        *mask = NULL;
        return cli_fail();
    }
    return 0;
}

typedef struct {
    ds_classifier_calib raw, cal;    /* on the rows reported: T = 1, and the T applied */
    bool has_cal;
    double fitted;                   /* 0: no fit */
} class_result;

/* --calibrate-temperature: T from the validation rows (or all), the report on the others. */
static int fit_and_report(const cli_cmd *c, const ds_net *n, const ds_feed *f,
                          const ds_target_values *v, class_result *res)
{
    int64_t samples = ds_tensor_shape(f->inputs[0].data)[0];
    unsigned char *mask;
    rows_sel fit = {0}, rep = {0};
    int rc = split_mask(c, n, f, samples, &mask);
    if (!rc)
        rc = select_rows(v, mask, samples, mask ? 1 : -1, &fit);
    if (!rc)
        rc = select_rows(v, mask, samples, mask ? 0 : -1, &rep);
    if (!rc && (ds_fit_temperature(fit.n, v->width, fit.scores, v->score_kind, fit.labels,
                                   &res->fitted) ||
                ds_calibrate_classifier(rep.n, v->width, rep.scores, v->score_kind, rep.labels,
                                        1, &res->raw) ||
                ds_calibrate_classifier(rep.n, v->width, rep.scores, v->score_kind, rep.labels,
                                        res->fitted, &res->cal)))
        rc = cli_fail();
    if (!rc) {
        const char *rows = mask ? "held-out" : "all (in-sample)";
        res->has_cal = true;
        if (mask)
            printf("temperature scaling: T = %.6g fitted on %lld rows (--val-split %s), "
                   "reported on the other %lld\n", res->fitted, (long long)fit.n,
                   cli_get(c, "val-split"), (long long)rep.n);
        else
            printf("temperature scaling: T = %.6g fitted and reported on the same %lld rows "
                   "(in-sample; --val-split F reports on held-out rows)\n", res->fitted,
                   (long long)fit.n);
        if (res->fitted <= 0.0100001 || res->fitted >= 99.999)
            printf("note: T is at the end of its range [0.01, 100]\n");
        calib_row(rows, &res->raw);
        calib_row(rows, &res->cal);
    }
    free(mask);
    rows_free(&fit);
    rows_free(&rep);
    return rc;
}

static int classifier_report(const cli_cmd *c, ds_net *n, const ds_feed *f, int i,
                             const ds_target_values *v, long draws, const char *how)
{
    const char *name = ds_net_target_name(n, i);
    class_result res = {0};
    const float *p = ds_tensor_data(v->pred), *y = ds_tensor_data(v->truth);
    if (wrong_kind(c, n, i, "pit", "is a classifier: --pit is for gaussian_nll heads") ||
        wrong_kind(c, n, i, "coverage", "is a classifier: --coverage is for gaussian_nll heads"))
        return 1;
    if (draws)
        printf("\npooled [%s]: the mean probabilities of %ld draws (%s)%s", name, draws,
               how, ds_net_temperature(n, i) != 1 ? ", the stored temperature applied to "
               "each" : "");
    printf("\ncalibration [%s]: %lld %s, %lld rows, %s\n%-22s %8s  %7s  %7s  %8s  %8s\n", name,
           (long long)(v->width == 1 ? 2 : v->width), v->width == 1 ? "classes (binary)" :
           "classes", (long long)v->rows, v->score_kind == DS_SCORES_LOGITS ? "logits" :
           "probabilities", "rows", "T", "ECE", "MCE", "NLL", "accuracy");
    if (ds_calibrate_classifier(v->rows, v->width, p, v->score_kind, y, 1, &res.raw))
        return cli_fail();
    calib_row("all", &res.raw);
    if (v->temperature != 1) {
        if (ds_calibrate_classifier(v->rows, v->width, p, v->score_kind, y, v->temperature,
                                    &res.cal))
            return cli_fail();
        calib_row("all, stored T", &res.cal);
        res.has_cal = true;
    }
    int rc = cli_has(c, "calibrate-temperature") ? fit_and_report(c, n, f, v, &res) : 0;
    if (!rc && res.fitted > 0 && cli_has(c, "save-temperature") &&
        ds_net_set_temperature(n, i, res.fitted))
        rc = cli_fail();
    if (rc)
        return rc;
    const char *rows = res.fitted > 0 && cli_has(c, "val-split") ? "held-out rows" : "all rows";
    bins_text(res.has_cal ? &res.cal : &res.raw, rows);
    const char *png = figure_for(c, n, "reliability", i);
    char title[160];
    snprintf(title, sizeof title, "Reliability of '%s' (%s)", name, rows);
    if (png && !(rc = ds_plot_reliability(&res.raw, res.has_cal ? &res.cal : NULL, title, png)
                      ? cli_fail() : 0))
        printf("wrote %s\n", png);
    return rc;
}

/* ---- the command ---- */
/* The draws pooled for the report (u NULL: none). */
typedef struct {
    const ds_uq_output *u;
    long draws;
    char how[160];
} pool_info;

static int target_report(const cli_cmd *c, ds_net *n, const ds_feed *f, long batch, int i,
                         const pool_info *pi, int *reported, int *classifiers)
{
    ds_target_values v;
    if (pi->u ? ds_net_target_values_pooled(n, f, i, pi->u, &v)
              : ds_net_target_values(n, f, batch, i, &v))
        return cli_fail();
    int rc = 0;
    if (v.kind == DS_TARGET_GAUSSIAN)
        rc = regression_report(c, n, i, &v, pi->draws, pi->how);
    else if (v.kind == DS_TARGET_CLASSIFIER)
        rc = classifier_report(c, n, f, i, &v, pi->draws, pi->how);
    else if (ds_net_target_count(n) > 1)
        printf("\nuncertainty [%s]: no predicted standard deviation (not a gaussian_nll loss): "
               "no calibration report\n", ds_net_target_name(n, i));
    *reported += v.kind != DS_TARGET_POINT;
    *classifiers += v.kind == DS_TARGET_CLASSIFIER;
    if (!rc && v.kind == DS_TARGET_POINT && (figure_for(c, n, "pit", i) ||
                                             figure_for(c, n, "coverage", i)))
        rc = wrong_kind(c, n, i, figure_for(c, n, "pit", i) ? "pit" : "coverage",
                        "predicts no standard deviation (its loss is not gaussian_nll)");
    ds_target_values_free(&v);
    return rc;
}

/* --mc N or an ensemble: every output's draws pooled (probabilities for classifiers). */
static int pool_draws(const cli_cmd *c, ds_net *n, const ds_feed *f, const ds_feed *raw,
                      long batch, ds_uq_output *u, pool_info *pi)
{
    const char *const *w;
    int k = cli_values(c, "weights", &w);
    long mc, seed;
    cli_long(c, "mc", 1, 100000, 0, &mc);   /* checked before */
    cli_long(c, "seed", 0, 0x7fffffffL, 0, &seed);
    ds_uq_opts o = {.passes = mc ? (int)mc : 1, .seed = (uint64_t)seed, .batch = batch,
                    .probs = 1};
    ds_status st;
    if (k > 1) {
        st = ds_net_predict_ensemble(n, k, w, raw, &o, u);
        pi->draws = (long)k * o.passes;
        snprintf(pi->how, sizeof pi->how, "an ensemble of %d members%s%s", k,
                 mc ? ", --mc " : "", mc ? cli_get(c, "mc") : "");
    } else {
        st = ds_net_predict_mc(n, f, &o, u);
        pi->draws = mc;
        snprintf(pi->how, sizeof pi->how, "--mc %ld, seed %ld", mc, seed);
    }
    if (st && k < 2) {
        fprintf(stderr, "deepsky: error: --mc %ld: %s\n", mc, ds_last_error());
        return 1;
    }
    if (st)
        return cli_fail();
    pi->u = u;
    printf("\nuncertainty: the reports below pool %ld draws (%s); the loss and metrics above "
           "are of %s\n", pi->draws, pi->how, k > 1 ? "the first member, one pass in eval "
           "mode" : "one pass in eval mode (dropout off)");
    return 0;
}

int cli_uncertainty_run(const cli_cmd *c, ds_net *n, const ds_feed *f, const ds_feed *raw,
                        long batch)
{
    int rc = check_figure_names(c, n), reported = 0, classifiers = 0;
    int nt = ds_net_target_count(n);
    ds_uq_output u[DS_FEED_MAX] = {{0}};
    pool_info pi = {0};
    if (!rc && pooled(c))
        rc = pool_draws(c, n, f, raw, batch, u, &pi);
    for (int i = 0; i < nt && !rc; i++)
        rc = target_report(c, n, f, batch, i, &pi, &reported, &classifiers);
    for (int k = 0; k < DS_FEED_MAX; k++)
        ds_uq_output_free(&u[k]);
    if (!rc && !classifiers && cli_has(c, "calibrate-temperature")) {
        fprintf(stderr, "deepsky: error: --calibrate-temperature: no loss of the model is a "
                "classifier's (categorical or binary cross-entropy): a temperature calibrates "
                "class probabilities\n");
        return 1;
    }
    if (!rc && !reported) {
        fprintf(stderr, "deepsky: error: --uncertainty: %s predicts no standard deviation and "
                "no class probabilities: give --mc N (a model with dropout or Bayesian layers) "
                "or an ensemble (several --weights, train --ensemble K) to use the spread of "
                "the draws as the error bar, or train a model whose loss is 'gaussian_nll "
                "mean=LAYER logvar=LAYER' (a mean and a log-variance layer)\n",
                nt == 1 ? "the model's loss" : "none of the model's losses");
        return 1;
    }
    const char *w2 = cli_get(c, "save-temperature");
    if (!rc && w2) {
        if (ds_net_save_temperatures(n, cli_get(c, "weights"), w2))
            return cli_fail();
        printf("wrote %s: the weights of %s with the fitted temperature\n", w2,
               cli_get(c, "weights"));
    }
    return rc;
}
