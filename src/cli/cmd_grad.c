/* cmd_grad.c - deepsky grad: one forward and backward pass over all of X as one batch,
 * written as safetensors (loss, outputs, input gradients, parameter gradients). */
#include "cli.h"

int cmd_grad(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("weights", 0, "W", "weights (required)"),
        CLI_OPTS("data", 0, "X", "data, all of it one batch (required); NAME=X for each input of "
                 "a model with several (repeat the option)"),
        CLI_OPTS("labels", 0, "Y", "labels (required if a loss reads labels); NAME=Y for each "
                 "loss that reads labels, when several do"),
        CLI_OPTS("columns", 0, "COLS", "table data: feature columns; NAME=COLS for one input's "
                 "file"),
        CLI_OPTS("label-columns", 0, "COLS", "table data: label columns; NAME=COLS for one loss's "
                 "labels"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "
                "data)"),
        CLI_READ_OPTS,
        CLI_OPT("eval", 0, NULL, "batch norm with running statistics (default: batch statistics)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPT("output", 'o', "G.safetensors", "output (required)"),
    };
    cli_cmd c = {"grad", "MODEL --weights W --data X [--labels Y] -o G.safetensors [--eval]",
                 "One forward and backward pass over all of X as one batch, dropout off. G "
                 "holds 'loss' (a scalar), 'output', 'input' (d loss / d input) and each "
                 "parameter's gradient under the parameter's name; a model with several "
                 "outputs or inputs gives 'output.NAME' and 'input.NAME' for each. Running "
                 "statistics are not updated. For debugging and comparing with other "
                 "frameworks.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    if (!cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "data") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--weights W, --data X and -o G are required");
    const char *out = cli_get(&c, "output");
    if ((rc = cli_output_ext(&c, "-o", out, ".safetensors", "gradients")))
        return rc;
    cli_item items[DS_FEED_MAX];
    int count;
    if ((rc = cli_named_list(&c, "data", items, &count)) ||
        (rc = cli_named_list(&c, "labels", items, &count)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_input(&files, "--weights", cli_get(&c, "weights"));
    cli_files_inputs(&files, &c, "data");
    cli_files_inputs(&files, &c, "labels");
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    cli_data d = {0};
    ds_feed f;
    ds_net *n = NULL;
    ds_tensor_set *s = NULL;
    if ((rc = cli_load_set(&c, "data", "labels", &d)) ||
        (rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), ds_tensor_shape(d.x[0].t)[0],
                           0, &d, &n)))
        goto done;
    if (ds_net_target_count(n) && !d.ny) {
        fprintf(stderr, "deepsky: error: %s: the loss reads labels: give --labels\n",
                c.positional[0]);
        rc = 1;
        goto done;
    }
    if (!ds_net_target_count(n))
        cli_data_free_labels(&d);   /* labels for a model whose losses read none are ignored */
    if ((rc = cli_feed(n, &d, &f)))
        goto done;
    if (!(s = ds_tensor_set_create()) || ds_net_preprocess_feed(n, &f) ||
        ds_net_grad_feed(n, &f, cli_has(&c, "eval"), s) ||
        ds_safetensors_save(s, out)) {
        rc = cli_fail();
        goto done;
    }
    printf("wrote %s: loss %.9g and %d %s\n", out,
           ds_tensor_data(ds_tensor_set_get(s, "loss"))[0], ds_tensor_set_count(s),
           cli_plural(ds_tensor_set_count(s), "tensor", "tensors"));
done:
    ds_tensor_set_free(s);
    cli_data_free(&d);
    ds_net_free(n);
    return rc;
}
