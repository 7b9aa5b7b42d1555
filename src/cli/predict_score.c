/* predict_score.c - deepsky predict --score reconstruction: each sample's reconstruction
 * error (an autoencoder's loss, a VAE's negative ELBO) as one column; and whether a model
 * file's losses read labels (train and eval need --labels then). */
#include "cli.h"

#include <string.h>
#include <strings.h>

bool cli_model_reads_labels(const char *model)
{
    ds_net *n = NULL;
    ds_net_opts o = {.batch = 1};
    if (ds_net_load(model, &o, &n) != DS_OK)
        return true;   /* the load that follows says what is wrong */
    bool labels = ds_net_target_count(n) > 0;
    ds_net_free(n);
    return labels;
}

int cli_score_check(const cli_cmd *c, bool uq)
{
    const char *v = cli_get(c, "score");
    if (!v)
        return 0;
    if (strcmp(v, "reconstruction"))
        return cli_usage_error(c, "--score: '%s' is not a score (expected: reconstruction)", v);
    if (uq || cli_has(c, "classes") || cli_has(c, "mc-dropout"))
        return cli_usage_error(c, "--score reconstruction scores each sample in eval mode: it "
                               "does not go with --mc, --mc-dropout, --classes or several "
                               "--weights");
    return 0;
}

int cli_predict_score(const cli_cmd *c, ds_net *n, ds_feed *f, const char *path)
{
    ds_tensor *s = NULL;
    if (ds_net_check_feed(n, f) || ds_net_preprocess_feed(n, f) ||
        ds_net_score_reconstruction(n, f, &s))
        return cli_fail();
    (void)c;
    int64_t N = ds_tensor_shape(s)[0];
    const char *names[] = {"score"};
    const float *cols[] = {ds_tensor_data(s)};
    size_t len = strlen(path);
    bool npy = len > 4 && !strcasecmp(path + len - 4, ".npy");
    int rc = (npy ? ds_array_save(s, path, names) : ds_table_save(path, 1, names, N, cols))
                 ? cli_fail() : 0;
    if (!rc)
        printf("wrote %s: the reconstruction score of %lld %s\n", path, (long long)N,
               cli_plural(N, "sample", "samples"));
    ds_tensor_free(s);
    return rc;
}
