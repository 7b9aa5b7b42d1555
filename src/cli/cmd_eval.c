/* cmd_eval.c - deepsky eval MODEL --weights W --data X --labels Y: loss and metrics. */
#include "eval_binary.h"
#include "eval_uncertainty.h"
#include "photoz_report.h"

#include <stdlib.h>
#include <string.h>

/* --confusion PNG: the first confusion matrix of the report's values, as a figure with the
 * names of --class-names. 0, or 1 (printed). */
static int confusion_figure(const cli_cmd *c, const ds_tensor_set *values)
{
    const ds_tensor *cm = NULL;
    for (int i = 0; i < ds_tensor_set_count(values) && !cm; i++) {
        const char *nm = ds_tensor_set_name(values, i);
        size_t n = strlen(nm);
        if (n >= 9 && !strcmp(nm + n - 9, "confusion"))
            cm = ds_tensor_set_at(values, i);
    }
    if (!cm) {
        fprintf(stderr, "deepsky: error: --confusion: the model has no classifier output\n");
        return 1;
    }
    const int k = (int)ds_tensor_shape(cm)[0];
    int64_t counts[64 * 64];
    const char *names[64] = {0};
    char *list = cli_has(c, "class-names") ? strdup(cli_get(c, "class-names")) : NULL;
    int given = 0;
    for (char *save = NULL, *t = list ? strtok_r(list, ",", &save) : NULL; t && given < 64;
         t = strtok_r(NULL, ",", &save))
        names[given++] = t;
    int rc = 0;
    if (list && given != k) {
        fprintf(stderr, "deepsky: error: --class-names: %d names for %d classes\n", given, k);
        rc = 1;
    }
    for (int i = 0; !rc && i < k * k && k <= 64; i++)
        counts[i] = (int64_t)ds_tensor_data((ds_tensor *)cm)[i];
    if (!rc && ds_plot_confusion(counts, k, list ? names : NULL, NULL, cli_get(c, "confusion")))
        rc = cli_fail();
    if (!rc)
        printf("confusion matrix figure: %s\n", cli_get(c, "confusion"));
    free(list);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPTS("weights", 0, "W", "trained weights (required); given several times, the "
                 "members of an ensemble (train --ensemble): --uncertainty reports on their "
                 "pooled draws"),
        CLI_OPTS("data", 0, "X", "data (.npy, .fits, .csv or IDX) (required); NAME=X for each "
                 "input of a model with several (repeat the option)"),
        CLI_OPTS("labels", 0, "Y", "labels (required, or --label-columns); NAME=Y for each loss "
                 "that reads labels, when several do"),
        CLI_OPTS("columns", 0, "COLS", "table data: feature columns; NAME=COLS for one input's "
                 "file"),
        CLI_OPTS("label-columns", 0, "COLS", "table data: label columns; NAME=COLS for one loss's "
                 "labels"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "
                "data)"),
        CLI_READ_OPTS,
        CLI_OPT("batch-size", 0, "B", "batch size (default 256)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_UNCERTAINTY_OPTS,
        CLI_PHOTOZ_OPTS,
        CLI_BINARY_OPTS,
        CLI_OPT("confusion", 0, "PNG", "classifiers: the confusion matrix as a figure (each "
                "row's shares and counts)"),
        CLI_OPT("class-names", 0, "LIST", "with --confusion: the classes' names, comma-"
                "separated, in order (default 0, 1, ...)"),
    };
    cli_cmd c = {"eval", "MODEL --weights W --data X --labels Y",
                 "Prints the loss and metrics of the weights on labelled data: for "
                 "classifiers accuracy, per-class precision and recall, the confusion matrix "
                 "and (two classes) AUROC; for regression RMSE, MAE and mean bias per output; "
                 "one section per loss that reads labels. The preprocessing stored with the "
                 "weights is applied. --metrics auroc,tpr0,tpr10 prints a binary classifier's "
                 "AUROC and true-positive rates at fewer than K false positives, --roc its "
                 "ROC curve. --uncertainty adds calibration reports (error bars of "
                 "gaussian_nll heads, class probabilities of classifiers), "
                 "--calibrate-temperature fits temperature scaling.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long batch;
    if (!cli_long(&c, "batch-size", 1, 1L << 24, 256, &batch) || !cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "data"))
        return cli_usage_error(&c, "--weights W and --data X are required");
    if (!cli_has(&c, "labels") && !cli_has(&c, "label-columns") &&
        cli_model_reads_labels(c.positional[0]))   /* autoencoders (target=INPUT) need none */
        return cli_usage_error(&c, "--labels Y (or --label-columns) is required");
    cli_item items[DS_FEED_MAX];
    int count;
    if ((rc = cli_named_list(&c, "data", items, &count)) ||
        (rc = cli_named_list(&c, "labels", items, &count)) ||
        (rc = cli_uncertainty_check(&c)) || (rc = cli_photoz_check(&c, false)) ||
        (rc = cli_binary_check(&c)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    if (((cli_uncertainty_wanted(&c) || cli_has(&c, "roc")) &&
         (rc = cli_uncertainty_files(&c))) ||
        (rc = cli_photoz_check(&c, true)))
        return rc;
    if (cli_has(&c, "confusion")) {
        cli_files files = {0};
        cli_files_inputs(&files, &c, "data");
        cli_files_output(&files, "--confusion", cli_get(&c, "confusion"));
        if ((rc = cli_files_check(&c, &files)))
            return rc;
    }
    ds_tensor_set *values = cli_has(&c, "confusion") ? ds_tensor_set_create() : NULL;
    cli_data d = {0};
    ds_feed f;
    ds_feed raw = {0};   /* an ensemble's: the inputs before preprocessing */
    ds_net *n = NULL;
    char *report = NULL;
    const char *const *wv;
    bool ensemble = cli_values(&c, "weights", &wv) > 1;
    if ((rc = cli_load_set(&c, "data", "labels", &d)) ||
        (rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, 0, &d, &n)) ||
        (rc = cli_feed(n, &d, &f)))
        goto done;
    cli_weights_note(cli_get(&c, "weights"), n);
    for (int i = 0; ensemble && i < DS_FEED_MAX && f.inputs[i].data; i++) {
        const ds_tensor *x = f.inputs[i].data;
        raw.inputs[i] = f.inputs[i];
        if (!(raw.inputs[i].data = ds_tensor_from(ds_tensor_ndim(x), ds_tensor_shape(x),
                                                  ds_tensor_data((ds_tensor *)x)))) {
            rc = cli_fail();
            goto done;
        }
    }
    if (ds_net_check_feed(n, &f) || ds_net_preprocess_feed(n, &f) ||
        ds_net_evaluate_feed(n, &f, batch, &report, values)) {
        rc = cli_fail();
        goto done;
    }
    fputs(report, stdout);
    if (cli_binary_wanted(&c))
        rc = cli_binary_run(&c, n, &f, batch);
    if (!rc && values)
        rc = confusion_figure(&c, values);
    if (!rc && cli_uncertainty_wanted(&c))
        rc = cli_uncertainty_run(&c, n, &f, &raw, batch);
    if (!rc && cli_photoz_wanted(&c))
        rc = cli_photoz_eval(&c, n, &f, batch);
done:
    ds_tensor_set_free(values);
    for (int i = 0; i < DS_FEED_MAX; i++)
        ds_tensor_free(raw.inputs[i].data);
    free(report);
    cli_data_free(&d);
    ds_net_free(n);
    return rc;
}
