/* cmd_grad.c - deepsky grad: one forward and backward pass over all of X as one batch,
 * written as safetensors (loss, output, input gradient, parameter gradients). */
#include "cli.h"

int cmd_grad(int argc, char **argv)
{
    cli_opt opts[] = {
        {"weights", 0, "W", "weights (required)", NULL},
        {"data", 0, "X", "data, all of it one batch (required)", NULL},
        {"labels", 0, "Y", "labels (required if the loss reads labels)", NULL},
        {"columns", 0, "COLS", "table data: feature columns", NULL},
        {"label-columns", 0, "COLS", "table data: label columns", NULL},
        {"hdu", 0, "N", "FITS: HDU number, 1 = primary", NULL},
        {"eval", 0, NULL, "batch norm with running statistics (default: batch statistics)", NULL},
        {"threads", 0, "N", "threads (default: all cores)", NULL},
        {"output", 'o', "G.safetensors", "output (required)", NULL},
    };
    cli_cmd c = {"grad", "MODEL --weights W --data X [--labels Y] -o G.safetensors [--eval]",
                 "One forward and backward pass over all of X as one batch, dropout off. G "
                 "holds 'loss' (a scalar), 'output', 'input' (d loss / d input) and each "
                 "parameter's gradient under the parameter's name. Running statistics are "
                 "not updated. For debugging and comparing with other frameworks.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    if (!cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "data") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--weights W, --data X and -o G are required");
    if (cli_stop_here(&c))
        return 0;
    ds_tensor *x = NULL, *y = NULL;
    ds_net *n = NULL;
    ds_tensor_set *s = NULL;
    rc = 1;
    const char *xname = cli_get(&c, "data");
    if (cli_load_data(&c, xname, cli_get(&c, "labels"), &x, &y) ||
        cli_load_net(c.positional[0], cli_get(&c, "weights"), ds_tensor_shape(x)[0], 0,
                     cli_label_mode(y), &n) ||
        cli_fit_input(n, &x, xname))
        goto done;
    if (ds_net_target(n) && !y) {
        fprintf(stderr, "deepsky: error: %s: the loss reads labels: give --labels\n",
                c.positional[0]);
        goto done;
    }
    if (!(s = ds_tensor_set_create()) || ds_net_preprocess(n, x) ||
        ds_net_grad(n, x, y, cli_has(&c, "eval"), s) ||
        ds_safetensors_save(s, cli_get(&c, "output"))) {
        rc = cli_fail();
        goto done;
    }
    printf("wrote %s: loss %.9g and %d tensors\n", cli_get(&c, "output"),
           ds_tensor_data(ds_tensor_set_get(s, "loss"))[0], ds_tensor_set_count(s));
    rc = 0;
done:
    ds_tensor_set_free(s);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    return rc;
}
