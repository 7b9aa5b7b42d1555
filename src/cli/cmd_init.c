/* cmd_init.c - deepsky init MODEL [--seed S] -o W: writes initial weights. */
#include "cli.h"

int cmd_init(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("seed", 0, "S", "seed of the initializers (default 0)"),
        CLI_OPT("output", 'o', "W.safetensors", "where to write the weights (required)"),
    };
    cli_cmd c = {"init", "MODEL [--seed S] -o W.safetensors",
                 "Writes the initial weights of MODEL (each layer's initializer, seeded).",
                 opts, 2, {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long seed;
    if (!cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed))
        return 2;
    const char *out = cli_get(&c, "output");
    if (!out)
        return cli_usage_error(&c, "-o W.safetensors is required");
    if ((rc = cli_output_ext(&c, "-o", out, ".safetensors", "weights")))
        return rc;
    ds_net *n;
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    if ((rc = cli_load_net(c.positional[0], NULL, 1, (uint64_t)seed, NULL, &n)))
        return rc;
    rc = ds_net_save_weights(n, out) == DS_OK ? 0 : cli_fail();
    long long np = (long long)ds_model_numel(ds_net_model(n), 0);
    if (!rc)
        printf("wrote %lld %s to %s\n", np, cli_plural(np, "parameter", "parameters"), out);
    ds_net_free(n);
    return rc;
}
