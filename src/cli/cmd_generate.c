/* cmd_generate.c - deepsky generate MODEL --weights W --from LAYER --count N -o IMAGES:
 * decodes draws injected at a VAE's sampling layer, from the prior N(0, I), from a Gaussian
 * mixture fitted to the codes of a data set (--prior gmm:K --fit DATA), or given (--z). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* --prior: normal (*k = 0) or gmm:K (*k = K); false after a usage error. */
static bool parse_prior(const cli_cmd *c, long *k)
{
    const char *v = cli_get(c, "prior");
    *k = 0;
    if (!v || !strcmp(v, "normal"))
        return true;
    char *end = NULL;
    if (!strncmp(v, "gmm:", 4)) {
        *k = strtol(v + 4, &end, 10);
        if (end != v + 4 && !*end && *k >= 1 && *k <= DS_GMM_MAX_COMPONENTS)
            return true;
    }
    cli_usage_error(c, "option '--prior': '%s' is not normal or gmm:K (K from 1 to %d)", v,
                    DS_GMM_MAX_COMPONENTS);
    return false;
}

/* The draws z of a K-component GMM fitted to the codes of --fit at layer from; 0, or 1
 * (printed). *words says what was fitted. */
static int gmm_draws(const cli_cmd *c, ds_net *n, long k, long count, uint64_t seed,
                     int64_t batch, ds_tensor **z, char *words, size_t cap)
{
    cli_data d = {0};
    ds_feed f;
    ds_tensor *codes = NULL;
    ds_gmm *g = NULL;
    int rc = cli_load_set(c, "fit", NULL, &d);
    if (!rc && !(rc = cli_feed(n, &d, &f))) {
        if (ds_net_check_feed(n, &f) || ds_net_preprocess_feed(n, &f) ||
            ds_net_encode(n, &f, cli_get(c, "from"), batch, &codes) ||
            ds_gmm_fit(codes, (int)k, seed, &g) || ds_gmm_sample(g, count, seed + 1, z))
            rc = cli_fail();
        else
            snprintf(words, cap, "a GMM of %ld %s fitted to the codes of %lld %s (%d EM "
                     "iterations)", k, cli_plural(k, "component", "components"),
                     (long long)ds_tensor_shape(codes)[0],
                     cli_plural(ds_tensor_shape(codes)[0], "sample", "samples"),
                     ds_gmm_iterations(g));
    }
    ds_gmm_free(g);
    ds_tensor_free(codes);
    cli_data_free(&d);
    return rc;
}

/* The images of the latent values the flags ask for into *img; 0 or 1 (printed). */
static int decode(const cli_cmd *c, ds_net *n, long k, long count, uint64_t seed, int64_t batch,
                  ds_tensor **img, char *words, size_t cap)
{
    const char *from = cli_get(c, "from");
    ds_tensor *z = NULL;
    int rc = 0;
    if (cli_has(c, "z")) {
        if (ds_array_load(cli_get(c, "z"), NULL, &z) || ds_net_decode(n, from, z, batch, img))
            rc = cli_fail();
        else
            snprintf(words, cap, "%lld latent %s of %s", (long long)ds_tensor_shape(z)[0],
                     cli_plural(ds_tensor_shape(z)[0], "vector", "vectors"), cli_get(c, "z"));
    } else if (k) {
        if (!(rc = gmm_draws(c, n, k, count, seed, batch, &z, words, cap)) &&
            ds_net_decode(n, from, z, batch, img))
            rc = cli_fail();
    } else if (ds_net_generate(n, from, count, seed, batch, img)) {
        rc = cli_fail();
    } else {
        snprintf(words, cap, "%ld %s", count, cli_plural(count, "draw", "draws"));
    }
    ds_tensor_free(z);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("weights", 0, "W", "trained weights (required)"),
        CLI_OPT("from", 0, "LAYER", "the sampling layer (sample_gaussian) the draws replace "
                "(required)"),
        CLI_OPT("count", 0, "N", "how many samples to generate (required without --z)"),
        CLI_OPT("seed", 0, "S", "seed of the draws z ~ N(0, I) (default 0)"),
        CLI_OPT("prior", 0, "KIND", "what z is drawn from: normal, N(0, I) (the default), or "
                "gmm:K, a Gaussian mixture of K components with full covariances fitted to "
                "the codes (the encoder's means at --from) of --fit DATA"),
        CLI_OPTS("fit", 0, "DATA", "with --prior gmm:K: the samples whose codes the mixture "
                 "is fitted to, e.g. the training set (preprocessed as stored with the "
                 "weights); NAME=DATA for each input of a model with several"),
        CLI_OPT("z", 0, "FILE", "decode these latent values instead of draws: [N, D] (.npy, "
                ".fits, .csv), D the numbers per sample of the layer --from"),
        CLI_OPT("batch-size", 0, "B", "batch size (default 256)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPT("output", 'o', "IMAGES", "output file: .fits or .npy (required): the model's "
                "first output for each draw, [N, ...]"),
    };
    cli_cmd c = {"generate", "MODEL --weights W --from LAYER --count N -o images.fits",
                 "Draws N latent vectors z ~ N(0, I) (or from a Gaussian mixture fitted to "
                 "the codes of --fit DATA, or reads them from --z), puts them in place of the "
                 "sampling layer --from of a VAE and writes the decoder's output (the model's "
                 "first output) for each, in eval mode.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long count, seed, batch, k;
    if (!cli_long(&c, "count", 1, 1L << 30, 0, &count) ||
        !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_long(&c, "batch-size", 1, 1L << 24, 256, &batch) || !cli_threads(&c) ||
        !parse_prior(&c, &k))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "from") || !cli_has(&c, "output") ||
        (!cli_has(&c, "count") && !cli_has(&c, "z")))
        return cli_usage_error(&c, "--weights W, --from LAYER, --count N (or --z FILE) and "
                               "-o FILE are required");
    if (cli_has(&c, "z") && (cli_has(&c, "count") || cli_has(&c, "prior") ||
                             cli_has(&c, "fit") || cli_has(&c, "seed")))
        return cli_usage_error(&c, "--z FILE decodes the given values: it does not go with "
                               "--count, --seed, --prior or --fit");
    if ((k > 0) != cli_has(&c, "fit"))
        return cli_usage_error(&c, "%s", k ? "--prior gmm:K needs --fit DATA (the samples "
                               "whose codes it fits)" : "--fit DATA goes with --prior gmm:K");
    if (cli_stop_here(&c))
        return 0;
    const char *out = cli_get(&c, "output");
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_input(&files, "--weights", cli_get(&c, "weights"));
    if (cli_has(&c, "z"))
        cli_files_input(&files, "--z", cli_get(&c, "z"));
    cli_files_inputs(&files, &c, "fit");
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    ds_net *n = NULL;
    ds_tensor *img = NULL;
    char words[256] = "";
    if ((rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, (uint64_t)seed, NULL,
                           &n)))
        return rc;
    if (!(rc = decode(&c, n, k, count, (uint64_t)seed, batch, &img, words, sizeof words))) {
        if (ds_array_save(img, out, NULL)) {
            rc = cli_fail();
        } else {
            char shape[96];
            ds_shape_str(ds_tensor_ndim(img), ds_tensor_shape(img), shape, sizeof shape);
            printf("wrote %s %s: %s decoded from layer '%s'\n", out, shape, words,
                   cli_get(&c, "from"));
        }
    }
    ds_tensor_free(img);
    ds_net_free(n);
    return rc;
}
