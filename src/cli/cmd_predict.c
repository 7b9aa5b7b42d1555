/* cmd_predict.c - deepsky predict MODEL --weights W --data X -o P: outputs for data. */
#include "cli.h"

int cmd_predict(int argc, char **argv)
{
    cli_opt opts[] = {
        {"weights", 0, "W", "trained weights (required)", NULL},
        {"data", 0, "X", "data (.npy, .fits, .csv or IDX) (required)", NULL},
        {"columns", 0, "COLS", "table data: feature columns", NULL},
        {"hdu", 0, "N", "FITS: HDU number, 1 = primary", NULL},
        {"batch-size", 0, "B", "batch size (default 256)", NULL},
        {"mc-dropout", 0, NULL, "keep dropout on (one Monte Carlo sample per call)", NULL},
        {"seed", 0, "S", "seed of the dropout stream with --mc-dropout (default 0)", NULL},
        {"threads", 0, "N", "threads (default: all cores)", NULL},
        {"output", 'o', "P", "output file: .npy, .fits or .csv (required)", NULL},
    };
    cli_cmd c = {"predict", "MODEL --weights W --data X -o P.npy",
                 "Writes the output of the model's last layer for every sample of X (class "
                 "probabilities after a softmax or sigmoid; logits with from_logits=true). "
                 "The preprocessing stored with the weights is applied.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long batch, seed;
    if (!cli_long(&c, "batch-size", 1, 1L << 24, 256, &batch) ||
        !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) || !cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "data") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--weights W, --data X and -o P are required");
    if (cli_stop_here(&c))
        return 0;
    ds_tensor *x = NULL, *p = NULL;
    ds_net *n = NULL;
    rc = 1;
    const char *xname = cli_get(&c, "data");
    if (cli_load_data(&c, xname, NULL, &x, NULL) ||
        cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, (uint64_t)seed,
                     DS_LABELS_AUTO, &n) ||
        cli_fit_input(n, &x, xname))
        goto done;
    if (cli_has(&c, "mc-dropout"))
        ds_graph_set_mode(ds_net_graph(n), DS_MODE_MC_DROPOUT);
    if (ds_net_check_data(n, x, xname, NULL, NULL) || ds_net_preprocess(n, x) ||
        ds_net_predict(n, x, batch, &p) || ds_array_save(p, cli_get(&c, "output"), NULL)) {
        rc = cli_fail();
        goto done;
    }
    char shape[96];
    ds_shape_str(ds_tensor_ndim(p), ds_tensor_shape(p), shape, sizeof shape);
    printf("wrote %s %s\n", cli_get(&c, "output"), shape);
    rc = 0;
done:
    ds_tensor_free(x);
    ds_tensor_free(p);
    ds_net_free(n);
    return rc;
}
