/* cmd_generate.c - deepsky generate MODEL --weights W --from LAYER --count N -o IMAGES:
 * decodes draws from the prior injected at a VAE's sampling layer. */
#include "cli.h"

int cmd_generate(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("weights", 0, "W", "trained weights (required)"),
        CLI_OPT("from", 0, "LAYER", "the sampling layer (sample_gaussian) the draws replace "
                "(required)"),
        CLI_OPT("count", 0, "N", "how many samples to generate (required)"),
        CLI_OPT("seed", 0, "S", "seed of the draws z ~ N(0, I) (default 0)"),
        CLI_OPT("batch-size", 0, "B", "batch size (default 256)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPT("output", 'o', "IMAGES", "output file: .fits or .npy (required): the model's "
                "first output for each draw, [N, ...]"),
    };
    cli_cmd c = {"generate", "MODEL --weights W --from LAYER --count N -o images.fits",
                 "Draws N latent vectors z ~ N(0, I), puts them in place of the sampling "
                 "layer --from of a VAE and writes the decoder's output (the model's first "
                 "output) for each, in eval mode.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long count, seed, batch;
    if (!cli_long(&c, "count", 1, 1L << 30, 0, &count) ||
        !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_long(&c, "batch-size", 1, 1L << 24, 256, &batch) || !cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "from") || !cli_has(&c, "count") ||
        !cli_has(&c, "output"))
        return cli_usage_error(&c, "--weights W, --from LAYER, --count N and -o FILE are "
                               "required");
    if (cli_stop_here(&c))
        return 0;
    const char *out = cli_get(&c, "output");
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_input(&files, "--weights", cli_get(&c, "weights"));
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    ds_net *n = NULL;
    ds_tensor *img = NULL;
    if ((rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, (uint64_t)seed, NULL,
                           &n)))
        return rc;
    if (ds_net_generate(n, cli_get(&c, "from"), count, (uint64_t)seed, batch, &img) ||
        ds_array_save(img, out, NULL)) {
        rc = cli_fail();
    } else {
        char shape[96];
        ds_shape_str(ds_tensor_ndim(img), ds_tensor_shape(img), shape, sizeof shape);
        printf("wrote %s %s: %ld %s decoded from layer '%s'\n", out, shape, count,
               cli_plural(count, "draw", "draws"), cli_get(&c, "from"));
    }
    ds_tensor_free(img);
    ds_net_free(n);
    return rc;
}
