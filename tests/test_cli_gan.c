/* test_cli_gan.c - deepsky train-gan: a short run's folder (both weights, checkpoint, log,
 * sample grids), resume equal to an uninterrupted run, and its bad input (missing flags,
 * a generator that does not fit the discriminator, values out of range, a resume with other
 * settings), each message asserted. The tool is spawned with the sanitizers (tests/spawn.h). */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>

static const char *gen8 =
    "input name=z shape=8\n"
    "dense units=128\n"
    "reshape shape=8x4x4\n"
    "batchnorm\n"
    "relu\n"
    "conv2d_transpose filters=1 kernel=4 stride=2 padding=1\n"
    "optimizer adam lr=1e-3 beta1=0.5\n";
static const char *disc8 =
    "input name=img shape=1x8x8\n"
    "conv2d filters=8 kernel=4 stride=2 padding=1\n"
    "leaky_relu alpha=0.2\n"
    "flatten\n"
    "dense units=1\n"
    "optimizer adam lr=1e-3 beta1=0.5\n";
static const char *disc16 =
    "input name=img shape=1x16x16\n"
    "flatten\n"
    "dense units=1\n";

/* dir/g.model, d.model, d16.model and x.npy: 40 blobs of 8x8. */
static int make_set(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/g.model", dir);
    if (test_write_text(p, gen8))
        return 1;
    snprintf(p, sizeof p, "%s/d.model", dir);
    if (test_write_text(p, disc8))
        return 1;
    snprintf(p, sizeof p, "%s/d16.model", dir);
    if (test_write_text(p, disc16))
        return 1;
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){40, 1, 8, 8});
    if (!x)
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int k = 0; k < 40; k++) {
        double cx = 2 + 3 * ds_rng_uniform(&r), cy = 2 + 3 * ds_rng_uniform(&r);
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++)
                ds_tensor_data(x)[k * 64 + i * 8 + j] =
                    (float)exp(-((i - cy) * (i - cy) + (j - cx) * (j - cx)) / 3.0);
    }
    snprintf(p, sizeof p, "%s/x.npy", dir);
    ds_status st = ds_array_save(x, p, NULL);
    ds_tensor_free(x);
    return st != DS_OK;
}

/* Runs train-gan on dir's set with more options; its exit status. */
static int gan(const char *dir, const char *dmodel, const char *more)
{
    return cli_run("train-gan --generator %s/g.model --discriminator %s/%s --data %s/x.npy "
                   "--batch-size 16 --seed 3 %s", dir, dir, dmodel, dir, more);
}

/* Fails unless status rc is want and the output holds text. */
#define EXPECT(rc, want, text) CHECK_OK(cli_expect((rc), (want), (text), msg_, cap_))

TEST(cli_train_gan_writes_its_folder_and_resumes)
{
    char dir[256], more[1024];
    CHECK(test_tmpdir(dir, sizeof dir, "cli_gan"));
    CHECK(!make_set(dir));
    bool plot = ds_has_feature("plot");
    const char *grid = plot ? "2x3" : "none";
    /* three epochs at once into a/, two then one more (--resume) into b/ */
    snprintf(more, sizeof more, "--epochs 3 --d-steps 2 --label-smoothing 0.1 --grid %s "
             "-o %s/a", grid, dir);
    EXPECT(gan(dir, "d.model", more), 0, "epoch 3/3: d_loss");
    snprintf(more, sizeof more, "--epochs 2 --d-steps 2 --label-smoothing 0.1 --grid %s "
             "-o %s/b", grid, dir);
    EXPECT(gan(dir, "d.model", more), 0, "wrote ");
    snprintf(more, sizeof more, "--epochs 3 --d-steps 2 --label-smoothing 0.1 --grid %s "
             "-o %s/b --resume", grid, dir);
    EXPECT(gan(dir, "d.model", more), 0, "resumed after epoch 2");
    char a[512], b[512], log[4096] = "";
    for (int k = 0; k < 2; k++) {
        const char *f = k ? "discriminator.safetensors" : "generator.safetensors";
        snprintf(a, sizeof a, "%s/a/%s", dir, f);
        snprintf(b, sizeof b, "%s/b/%s", dir, f);
        if (same_weights_files(a, b, msg_, cap_)) {
            test_rm_rf(dir);
            return TEST_FAIL;
        }
    }
    const char *files[] = {"generator.safetensors", "discriminator.safetensors",
                           "gan.ckpt.safetensors", "log.csv", "samples_0001.png",
                           "samples_0002.png", "samples_0003.png"};
    const char *odd = NULL;
    snprintf(a, sizeof a, "%s/b", dir);
    int holds = test_folder_holds(a, files, plot ? 7 : 4, &odd);
    snprintf(a, sizeof a, "%s/b/log.csv", dir);
    FILE *fp = fopen(a, "r");
    size_t got = fp ? fread(log, 1, sizeof log - 1, fp) : 0;
    if (fp)
        fclose(fp);
    log[got] = 0;
    test_rm_rf(dir);
    if (holds)
        FAIL("b/: %s %s", holds == 1 ? "missing" : "unexpected file", odd ? odd : "");
    CHECK(!strncmp(log, "epoch,d_loss,g_loss,d_real,d_fake,seconds\n1,", 44));
    CHECK(strstr(log, "\n3,") && !strstr(log, "\n4,"));
    snprintf(msg_, cap_, "weights of 2 + 1 (--resume) epochs equal to 3 epochs'%s",
             plot ? "; 3 sample grids" : " (no grids: built without plotting)");
    return TEST_PASS;
}

TEST(cli_train_gan_bad_input_is_named)
{
    char dir[256], more[1024];
    CHECK(test_tmpdir(dir, sizeof dir, "cli_gan_bad"));
    CHECK(!make_set(dir));
    int rc = cli_run("train-gan --generator %s/g.model --data %s/x.npy -o %s/o", dir, dir, dir);
    EXPECT(rc, 2, "--generator G.model, --discriminator D.model, --data X and --out DIR are "
           "required");
    snprintf(more, sizeof more, "-o %s/o", dir);
    EXPECT(gan(dir, "d16.model", more), 1, "the generator's output does not fit the "
           "discriminator's input: generator");
    EXPECT(gan(dir, "d16.model", more), 1, "g.model: output 'conv2d_transpose_1' is 1x8x8 per "
           "sample; discriminator");
    EXPECT(gan(dir, "d16.model", more), 1, "d16.model: input 'img' takes 1x16x16");
    snprintf(more, sizeof more, "--latent 4 -o %s/o", dir);
    EXPECT(gan(dir, "d.model", more), 1, "g.model: --latent 4, but its input 'z' takes 8");
    snprintf(more, sizeof more, "--label-smoothing 0.5 -o %s/o", dir);
    EXPECT(gan(dir, "d.model", more), 2, "--label-smoothing");
    snprintf(more, sizeof more, "--grid 0x3 -o %s/o", dir);
    EXPECT(gan(dir, "d.model", more), 2, "option '--grid': '0x3' is not ROWSxCOLS");
    snprintf(more, sizeof more, "--scale divide -o %s/o", dir);
    EXPECT(gan(dir, "d.model", more), 2, "option '--scale': 'divide' is not none, divide:A or "
           "asinh:A");
    snprintf(more, sizeof more, "--resume -o %s/o", dir);
    EXPECT(gan(dir, "d.model", more), 1, "o/gan.ckpt.safetensors: no checkpoint to resume from");
    /* a resume with another seed names the difference */
    snprintf(more, sizeof more, "--epochs 1 --grid none -q -o %s/o", dir);
    EXPECT(gan(dir, "d.model", more), 0, "");
    rc = cli_run("train-gan --generator %s/g.model --discriminator %s/d.model --data %s/x.npy "
                 "--batch-size 16 --seed 4 --epochs 2 --grid none --resume -o %s/o", dir, dir,
                 dir, dir);
    test_rm_rf(dir);
    EXPECT(rc, 1, "the checkpoint was made with other settings");
    EXPECT(rc, 1, "seed: 3 then, 4 now");
    return TEST_PASS;
}
