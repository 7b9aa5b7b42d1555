/* cmd_summary.c - deepsky summary MODEL: the Keras-like table of a model file. */
#include "cli.h"

#include <stdlib.h>

static double mb(double floats) { return floats * 4 / 1e6; }

/* What one training step holds: the planned values and gradients of the graph, the
 * parameters with their gradients, and the optimizer's state. */
static int print_memory(ds_net *n, long batch)
{
    ds_graph *g = ds_net_graph(n);
    ds_model *m = ds_net_model(n);
    if (ds_graph_plan(g) != DS_OK)
        return cli_fail();
    double planned = (double)ds_graph_bytes(g) / 1e6;
    double params = mb((double)(ds_model_numel(m, 0) + ds_model_numel(m, 1)));
    int64_t state = ds_optim_state_numel(ds_net_optim_opts(n), m);
    if (state < 0)
        return cli_fail();
    printf("Memory for a training step at batch %ld: %.1f MB (values and gradients %.1f MB, "
           "parameters and their gradients %.1f MB, optimizer state %.1f MB)\n", batch,
           planned + params + mb((double)state), planned, params, mb((double)state));
    return 0;
}

/* "Inputs (...): img, meta": the names data, outputs and labels go by. */
static void print_names(const char *what, int count, const ds_net *n,
                        const char *(*name)(const ds_net *, int))
{
    if (!count)
        return;
    printf("%s:", what);
    for (int i = 0; i < count; i++)
        printf("%s %s", i ? "," : "", name(n, i));
    printf("\n");
}

int cmd_summary(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("batch-size", 0, "B", "batch size for the memory estimate (default 32; shapes "
                "show None for the batch)"),
    };
    cli_cmd c = {"summary", "MODEL", "Prints the layers of MODEL with their output shapes, "
                 "parameter counts and inputs, then the totals and the memory one training "
                 "step needs at batch size B.", opts, 1, {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long batch;
    if (!cli_long(&c, "batch-size", 1, 1L << 24, 32, &batch))
        return 2;
    ds_net *n;
    if (cli_stop_here(&c))
        return 0;
    if ((rc = cli_load_net(c.positional[0], NULL, batch, 0, NULL, &n)))
        return rc;
    char *s = ds_net_summary(n);
    if (!s) {
        ds_net_free(n);
        return cli_fail();
    }
    fputs(s, stdout);
    free(s);
    const ds_optim_opts *o = ds_net_optim_opts(n);
    if (ds_net_loss(n))
        printf("Loss: %s\n", ds_node_layer_name(ds_net_loss(n)));
    print_names("Inputs (--data NAME=FILE)", ds_net_input_count(n), n, ds_net_input_name);
    print_names("Outputs (predict -o NAME=FILE)", ds_net_output_count(n), n, ds_net_output_name);
    print_names("Labels (--labels NAME=FILE)", ds_net_target_count(n), n, ds_net_target_name);
    printf("Optimizer: %s, lr %g\n", ds_optim_name(o->kind),
           o->lr > 0 ? o->lr : (o->kind == DS_OPT_SGD ? 1e-2 : 1e-3));
    rc = print_memory(n, batch);
    ds_net_free(n);
    return rc;
}
