/* cmd_eval.c - deepsky eval MODEL --weights W --data X --labels Y: loss and metrics. */
#include "cli.h"

#include <stdlib.h>

int cmd_eval(int argc, char **argv)
{
    cli_opt opts[] = {
        {"weights", 0, "W", "trained weights (required)", NULL},
        {"data", 0, "X", "data (.npy, .fits, .csv or IDX) (required)", NULL},
        {"labels", 0, "Y", "labels (required, or --label-columns)", NULL},
        {"columns", 0, "COLS", "table data: feature columns", NULL},
        {"label-columns", 0, "COLS", "table data: label columns", NULL},
        {"hdu", 0, "N", "FITS: HDU number, 1 = primary", NULL},
        {"batch-size", 0, "B", "batch size (default 256)", NULL},
        {"threads", 0, "N", "threads (default: all cores)", NULL},
    };
    cli_cmd c = {"eval", "MODEL --weights W --data X --labels Y",
                 "Prints the loss and metrics of the weights on labelled data: for "
                 "classifiers accuracy, per-class precision and recall, the confusion matrix "
                 "and (two classes) AUROC; for regression RMSE, MAE and mean bias per output. "
                 "The preprocessing stored with the weights is applied.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long batch;
    if (!cli_long(&c, "batch-size", 1, 1L << 24, 256, &batch) || !cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "data"))
        return cli_usage_error(&c, "--weights W and --data X are required");
    if (!cli_has(&c, "labels") && !cli_has(&c, "label-columns"))
        return cli_usage_error(&c, "--labels Y (or --label-columns) is required");
    if (cli_stop_here(&c))
        return 0;
    ds_tensor *x = NULL, *y = NULL;
    ds_net *n = NULL;
    char *report = NULL;
    rc = 1;
    const char *xname = cli_get(&c, "data");
    const char *yname = cli_has(&c, "labels") ? cli_get(&c, "labels") : xname;
    if (cli_load_data(&c, xname, cli_get(&c, "labels"), &x, &y) ||
        cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, 0, cli_label_mode(y), &n) ||
        cli_fit_input(n, &x, xname))
        goto done;
    if (ds_net_check_data(n, x, xname, y, yname) || ds_net_preprocess(n, x) ||
        ds_net_evaluate(n, x, y, batch, &report, NULL)) {
        rc = cli_fail();
        goto done;
    }
    fputs(report, stdout);
    rc = 0;
done:
    free(report);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    return rc;
}
