/* cmd_summary.c - deepsky summary MODEL: the Keras-like table of a model file. */
#include "cli.h"

#include <stdlib.h>

int cmd_summary(int argc, char **argv)
{
    cli_opt opts[] = {
        {"batch-size", 0, "B", "batch size to build the graph for (shapes show None)", NULL},
    };
    cli_cmd c = {"summary", "MODEL", "Prints the layers of MODEL with their output shapes, "
                 "parameter counts and inputs, then the totals.", opts, 1, {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    ds_net *n;
    if (cli_stop_here(&c))
        return 0;
    if ((rc = cli_load_net(c.positional[0], NULL, 1, 0, DS_LABELS_AUTO, &n)))
        return rc;
    char *s = ds_graph_summary(ds_net_graph(n));
    if (!s) {
        ds_net_free(n);
        return cli_fail();
    }
    fputs(s, stdout);
    free(s);
    const ds_optim_opts *o = ds_net_optim_opts(n);
    if (ds_net_loss(n))
        printf("Loss: %s\n", ds_node_layer_name(ds_net_loss(n)));
    printf("Optimizer: %s, lr %g\n", ds_optim_name(o->kind),
           o->lr > 0 ? o->lr : (o->kind == DS_OPT_SGD ? 1e-2 : 1e-3));
    ds_net_free(n);
    return 0;
}
