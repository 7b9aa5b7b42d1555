/* test_cli_generative.c - the command line of generative models end to end: train and eval
 * of an autoencoder and a VAE without labels (the log's term columns), predict --score
 * reconstruction, generate (from the prior, a GMM of the codes, given codes), and their bad
 * input. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <unistd.h>

static const char *const vae =
    "input name=x shape=1x4x4\n"
    "flatten\n"
    "dense name=h units=8 activation=relu\n"
    "dense name=mu inputs=h units=2\n"
    "dense name=lv inputs=h units=2 init=zeros\n"
    "sample_gaussian name=z mean=mu logvar=lv\n"
    "dense units=16\n"
    "reshape name=dec shape=1x4x4\n"
    "loss mse output=dec target=x reduction=sum name=recon\n"
    "loss kl_gaussian mean=mu logvar=lv reduction=sum name=kl\n"
    "optimizer adam lr=0.01\n";

/* vae.model and x.npy [40, 1, 4, 4] in d. */
static int setup(const char *d)
{
    char p[300];
    snprintf(p, sizeof p, "%s/vae.model", d);
    int rc = test_write_text(p, vae);
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){40, 1, 4, 4});
    ds_rng r;
    ds_rng_seed(&r, 1);
    if (x)
        fill_uniform(ds_tensor_data(x), 640, -1, 1, &r);
    snprintf(p, sizeof p, "%s/x.npy", d);
    rc |= !x || ds_npy_save(x, p) != DS_OK;
    ds_tensor_free(x);
    return rc;
}

/* Whether files a and b of folder d hold the same bytes, more than min of them. */
static bool same_files(const char *d, const char *a, const char *b, size_t min)
{
    size_t na = 0, nb = 0;
    char *fa = test_read_file(test_at(d, a), &na), *fb = test_read_file(test_at(d, b), &nb);
    bool same = fa && fb && na == nb && na > min && !memcmp(fa, fb, na);
    free(fa), free(fb);
    return same;
}

TEST(cli_vae_trains_without_labels_scores_and_generates)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_gen") && setup(d) == 0);
    int rc = TEST_FAIL;
    /* training: the terms in the progress lines and the log */
    if (cli_expect(cli_run_in(d, "train vae.model --data x.npy --epochs 3 --batch-size 8 "
                              "-o w.safetensors --log log.csv"), 0, "(recon ", msg_, cap_) ||
        cli_expect(0, 0, "  kl ", msg_, cap_))
        goto done;
    char p[300];
    snprintf(p, sizeof p, "%s/log.csv", d);
    FILE *fp = fopen(p, "r");
    char head[256] = "";
    if (!fp || !fgets(head, sizeof head, fp) ||
        strcmp(head, "epoch,loss,rmse,val_loss,val_rmse,lr,seconds,loss_recon,loss_kl\n")) {
        snprintf(msg_, cap_, "log header '%s'", head);
        if (fp)
            fclose(fp);
        goto done;
    }
    fclose(fp);
    if (cli_expect(cli_run_in(d, "eval vae.model --weights w.safetensors --data x.npy"), 0,
                   "reconstruction RMSE (recon against input 'x')", msg_, cap_) ||
        cli_expect(cli_run_in(d, "predict vae.model --weights w.safetensors --data x.npy "
                              "--score reconstruction -o s.csv"), 0,
                   "wrote s.csv: the reconstruction score of 40 samples", msg_, cap_) ||
        cli_expect(cli_run_in(d, "generate vae.model --weights w.safetensors --from z "
                              "--count 12 --seed 3 -o g.npy"), 0,
                   "wrote g.npy [12, 1, 4, 4]: 12 draws decoded from layer 'z'", msg_, cap_) ||
        cli_expect(cli_run_in(d, "generate vae.model --weights w.safetensors --from z "
                              "--count 12 --seed 3 --threads 1 -o g1.npy"), 0, "wrote g1.npy",
                   msg_, cap_))
        goto done;
    if (!same_files(d, "g.npy", "g1.npy", 12 * 16 * sizeof(float))) {
        snprintf(msg_, cap_, "generate: the samples differ between 2 threads and 1");
        goto done;
    }
    rc = TEST_PASS;
done:
    test_rm_rf(d);
    return rc;
}

/* --prior gmm:K --fit DATA draws from a mixture fitted to the codes (the same at 1 and 2
 * threads); --z FILE decodes given codes: the same values as the library's ds_net_decode. */
TEST(cli_generate_from_a_gmm_and_given_codes)
{
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_gen_gmm") && setup(d) == 0);
    int rc = TEST_FAIL;
    ds_tensor *z = ds_tensor_create(2, (int64_t[]){3, 2}), *g = NULL, *want = NULL;
    ds_net *n = NULL;
    for (int i = 0; z && i < 6; i++)
        ds_tensor_data(z)[i] = 0.5f * (float)i - 1;
    if (!z || ds_npy_save(z, test_at(d, "z.npy")) ||
        cli_expect(cli_run_in(d, "train vae.model --data x.npy --epochs 2 -o w.safetensors "
                              "--quiet"), 0, "", msg_, cap_) ||
        cli_expect(cli_run_in(d, "generate vae.model --weights w.safetensors --from z "
                              "--count 7 --prior gmm:2 --fit x.npy -o g.npy"), 0,
                   "wrote g.npy [7, 1, 4, 4]: a GMM of 2 components fitted to the codes of 40 "
                   "samples (", msg_, cap_) ||
        cli_expect(cli_run_in(d, "generate vae.model --weights w.safetensors --from z "
                              "--count 7 --prior gmm:2 --fit x.npy --threads 1 -o g1.npy"), 0,
                   "wrote g1.npy", msg_, cap_) ||
        cli_expect(cli_run_in(d, "generate vae.model --weights w.safetensors --from z "
                              "--z z.npy -o d.npy"), 0,
                   "wrote d.npy [3, 1, 4, 4]: 3 latent vectors of z.npy decoded from layer 'z'",
                   msg_, cap_))
        goto done;
    if (!same_files(d, "g.npy", "g1.npy", 7 * 16 * sizeof(float))) {
        snprintf(msg_, cap_, "generate --prior gmm:2: the samples differ between 2 threads and 1");
        goto done;
    }
    if (ds_net_parse(vae, "vae.model", NULL, &n) ||
        ds_net_load_weights(n, test_at(d, "w.safetensors")) ||
        ds_net_decode(n, "z", z, 0, &want) || ds_npy_load(test_at(d, "d.npy"), &g) ||
        ds_tensor_numel(g) != 48 ||
        memcmp(ds_tensor_data(g), ds_tensor_data(want), 48 * sizeof(float))) {
        snprintf(msg_, cap_, "generate --z: not ds_net_decode's values (%s)", ds_last_error());
        goto done;
    }
    rc = TEST_PASS;
done:
    ds_tensor_free(z), ds_tensor_free(g), ds_tensor_free(want);
    ds_net_free(n);
    test_rm_rf(d);
    return rc;
}

/* Each bad input is an error naming what is wrong (status 2 for flags, 1 for the files'
 * contents), and writes no output file. */
TEST(cli_generative_bad_input)
{
#define GEN "generate vae.model --weights w.safetensors --from "
#define PRED "predict vae.model --weights w.safetensors --data x.npy --score "
    static const struct {
        const char *args;
        int status;
        const char *want;
    } cases[] = {
        {GEN "h --count 2 -o g.npy", 1, "layer 'h' (Dense) is not a sampling layer"},
        {GEN "q --count 2 -o g.npy", 1, "no layer named 'q'"},
        {GEN "z -o g.npy", 2, "--count N"},
        {GEN "z --z nope.npy --count 2 -o g.npy", 2,
         "--z FILE decodes the given values: it does not go with --count"},
        {GEN "z --count 2 --prior gmm:x --fit x.npy -o g.npy", 2,
         "option '--prior': 'gmm:x' is not normal or gmm:K (K from 1 to 256)"},
        {GEN "z --count 2 --prior gmm:2 -o g.npy", 2, "--prior gmm:K needs --fit DATA"},
        {GEN "z --count 2 --fit x.npy -o g.npy", 2, "--fit DATA goes with --prior gmm:K"},
        {GEN "z --count 2 --prior gmm:30 --fit x.npy -o g.npy", 1,
         "30 components (1 to 256) of 2 dims (1 to 256) need at least 90 samples, got 40"},
        {GEN "z --z x.npy -o g.npy", 1,
         "the latent values [40, 1, 4, 4] do not fit layer 'z' of [2] per sample: give "
         "[count, 2]"},
        {PRED "recon -o s.csv", 2, "--score: 'recon' is not a score (expected: reconstruction)"},
        {PRED "reconstruction --mc 3 -o s.csv", 2, "does not go with --mc"},
    };
#undef GEN
#undef PRED
    char d[256];
    CHECK(test_tmpdir(d, sizeof d, "cli_gen_bad") && setup(d) == 0);
    int rc = TEST_FAIL;
    if (cli_expect(cli_run_in(d, "train vae.model --data x.npy --epochs 1 -o w.safetensors "
                              "--quiet"), 0, "", msg_, cap_))
        goto done;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cli_expect(cli_run_in(d, "%s", cases[i].args), cases[i].status, cases[i].want,
                       msg_, cap_)) {
            char why[1024];
            snprintf(why, sizeof why, "%s", msg_);
            snprintf(msg_, cap_, "deepsky %s: %s", cases[i].args, why);
            goto done;
        }
        if (!access(test_at(d, "g.npy"), F_OK) || !access(test_at(d, "s.csv"), F_OK)) {
            snprintf(msg_, cap_, "deepsky %s: wrote an output file", cases[i].args);
            goto done;
        }
    }
    rc = TEST_PASS;
done:
    test_rm_rf(d);
    return rc;
}
