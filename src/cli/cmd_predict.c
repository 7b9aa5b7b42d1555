/* cmd_predict.c - deepsky predict MODEL --weights W --data X -o P: every output for data. */
#include "cli.h"

#include <string.h>

/* Which -o item takes each output of the model: a plain file for a model with one output,
 * else NAME=FILE for every output. 0, or 1 after printing. */
static int match_outputs(const ds_net *n, const cli_item *items, int count, int *which)
{
    int no = ds_net_output_count(n);
    char list[512] = "";
    for (int k = 0; k < no; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                 ds_net_output_name(n, k));
    if (!items[0].name[0]) {
        which[0] = 0;
        if (no == 1)
            return 0;
        fprintf(stderr, "deepsky: error: the model has %d outputs (%s): give -o NAME=FILE for "
                "each\n", no, list);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        int k = 0;
        while (k < no && strcmp(items[i].name, ds_net_output_name(n, k)))
            k++;
        if (k == no) {
            fprintf(stderr, "deepsky: error: -o %s=%s: the model has no output named '%s' "
                    "(its outputs: %s)\n", items[i].name, items[i].path, items[i].name, list);
            return 1;
        }
    }
    for (int k = 0; k < no; k++) {
        which[k] = -1;
        for (int i = 0; i < count; i++)
            if (!strcmp(items[i].name, ds_net_output_name(n, k)))
                which[k] = i;
        if (which[k] < 0) {
            fprintf(stderr, "deepsky: error: the model's output '%s' has no file: give -o "
                    "%s=FILE (its outputs: %s)\n", ds_net_output_name(n, k),
                    ds_net_output_name(n, k), list);
            return 1;
        }
    }
    return 0;
}

/* Writes each output to its file. */
static int write_outputs(const ds_net *n, ds_tensor **p, const cli_item *items, const int *which)
{
    for (int k = 0; k < ds_net_output_count(n); k++) {
        const char *path = items[which[k]].path;
        if (ds_array_save(p[k], path, NULL))
            return cli_fail();
        char shape[96];
        ds_shape_str(ds_tensor_ndim(p[k]), ds_tensor_shape(p[k]), shape, sizeof shape);
        printf("wrote %s %s\n", path, shape);
    }
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("weights", 0, "W", "trained weights (required)"),
        CLI_OPTS("data", 0, "X", "data (.npy, .fits, .csv or IDX) (required); NAME=X for each "
                 "input of a model with several (repeat the option)"),
        CLI_OPTS("columns", 0, "COLS", "table data: feature columns; NAME=COLS for one input's "
                 "file"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary"),
        CLI_OPT("batch-size", 0, "B", "batch size (default 256)"),
        CLI_OPT("mc-dropout", 0, NULL, "keep dropout on (one Monte Carlo sample per call)"),
        CLI_OPT("seed", 0, "S", "seed of the dropout stream with --mc-dropout (default 0)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPTS("output", 'o', "P", "output file: .npy, .fits or .csv (required); NAME=P for "
                 "each output of a model with several"),
    };
    cli_cmd c = {"predict", "MODEL --weights W --data X -o P.npy",
                 "Writes the model's outputs for every sample of X: the layers its output "
                 "lines name, else each loss's prediction (class probabilities after a "
                 "softmax or sigmoid; logits with from_logits=true), else the last layer. "
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
    cli_item outs[DS_FEED_MAX], ins[DS_FEED_MAX];
    int n_outs, n_ins, which[DS_FEED_MAX];
    if ((rc = cli_named_list(&c, "data", ins, &n_ins)) ||
        (rc = cli_named_list(&c, "output", outs, &n_outs)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_input(&files, "--weights", cli_get(&c, "weights"));
    cli_files_inputs(&files, &c, "data");
    for (int i = 0; i < n_outs; i++)
        cli_files_output(&files, "-o", outs[i].path);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    cli_data d = {0};
    ds_feed f;
    ds_tensor *p[DS_FEED_MAX] = {0};
    ds_net *n = NULL;
    if ((rc = cli_load_set(&c, "data", NULL, &d)) ||
        (rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, (uint64_t)seed,
                           NULL, &n)) ||
        (rc = cli_feed(n, &d, &f)) || (rc = match_outputs(n, outs, n_outs, which)))
        goto done;
    if (cli_has(&c, "mc-dropout"))
        ds_graph_set_mode(ds_net_graph(n), DS_MODE_MC_DROPOUT);
    if (ds_net_check_feed(n, &f) || ds_net_preprocess_feed(n, &f) ||
        ds_net_predict_feed(n, &f, batch, p)) {
        rc = cli_fail();
        goto done;
    }
    rc = write_outputs(n, p, outs, which);
done:
    for (int k = 0; k < DS_FEED_MAX; k++)
        ds_tensor_free(p[k]);
    cli_data_free(&d);
    ds_net_free(n);
    return rc;
}
