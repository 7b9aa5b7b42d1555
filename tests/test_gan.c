/* test_gan.c - GAN training (ds_gan_fit): a toy generator learns a 2-D Gaussian, a resumed
 * run equals the uninterrupted one bit for bit, 1 and 2 threads agree, bad pairs of models
 * and options are refused naming both models and the shapes. */
#include "test.h"

#include <unistd.h>

/* The toy: data ~ N((2, -1), diag(0.5, 0.3)^2); G: z (4) -> 2, D: 2 -> one logit. */
static const char *toy_g =
    "input name=z shape=4\n"
    "dense units=16 activation=tanh\n"
    "dense units=2\n"
    "optimizer adam lr=2e-3 beta1=0.5\n";
static const char *toy_d =
    "input name=x shape=2\n"
    "dense units=16 activation=leaky_relu\n"
    "dense units=1\n"
    "optimizer adam lr=2e-3 beta1=0.5\n";
/* With batch norm in G and dropout in D: the graphs' random streams and running statistics
 * must come back on resume too. */
static const char *bn_g =
    "input name=z shape=4\n"
    "dense units=16\n"
    "batchnorm\n"
    "relu\n"
    "dense units=2\n"
    "optimizer adam lr=2e-3 beta1=0.5\n";
static const char *drop_d =
    "input name=x shape=2\n"
    "dense units=16 activation=leaky_relu\n"
    "dropout rate=0.2\n"
    "dense units=1 activation=sigmoid\n"
    "optimizer sgd lr=1e-2 momentum=0.9\n";

static const double mu[2] = {2.0, -1.0}, sd[2] = {0.5, 0.3};

static ds_tensor *toy_data(int64_t n)
{
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){n, 2});
    ds_rng r;
    ds_rng_seed(&r, 21);
    for (int64_t i = 0; x && i < n; i++)
        for (int k = 0; k < 2; k++)
            ds_tensor_data(x)[2 * i + k] = (float)(mu[k] + sd[k] * ds_rng_normal(&r));
    return x;
}

static int load_pair(const char *gt, const char *dt, uint64_t seed, ds_net **g, ds_net **d)
{
    ds_net_opts o = {.batch = 32, .seed = seed};
    *g = *d = NULL;
    if (ds_net_parse(gt, "g.model", &o, g))
        return 1;
    o.seed = seed + 1;
    return ds_net_parse(dt, "d.model", &o, d) != DS_OK;
}

/* Of 2000 samples of g: the distance of their mean to mu, and the smaller of std / sd
 * over both coordinates (into *ratio). */
static double toy_stats(ds_net *g, double *ratio)
{
    ds_tensor *s = NULL;
    if (ds_gan_sample(g, 2000, 77, &s))
        return NAN;
    double dist = 0;
    *ratio = INFINITY;
    for (int k = 0; k < 2; k++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < 2000; i++)
            m += ds_tensor_data(s)[2 * i + k];
        m /= 2000;
        for (int64_t i = 0; i < 2000; i++) {
            double dv = ds_tensor_data(s)[2 * i + k] - m;
            v += dv * dv;
        }
        dist += (m - mu[k]) * (m - mu[k]);
        *ratio = fmin(*ratio, sqrt(v / 2000) / sd[k]);
    }
    ds_tensor_free(s);
    return sqrt(dist);
}

TEST(gan_toy_generator_moves_to_the_data)
{
    ds_net *g, *d;
    ds_tensor *x = toy_data(512);
    CHECK(x && !load_pair(toy_g, toy_d, 3, &g, &d));
    double r0, r1, before = toy_stats(g, &r0);
    ds_gan_opts o = {.epochs = 30, .batch_size = 32, .seed = 5};
    ds_gan_result r;
    ds_status st = ds_gan_fit(g, d, x, &o, &r);
    double after = toy_stats(g, &r1);
    ds_net_free(g);
    ds_net_free(d);
    ds_tensor_free(x);
    CHECK(st == DS_OK);
    CHECK(r.epochs_run == 30 && isfinite(r.d_loss) && isfinite(r.g_loss));
    /* the mean moves from ~2.2 away to within 0.3 of the data's; the spread stays at least a
     * quarter of the data's in each coordinate (small GANs under-disperse, none collapses) */
    if (!(before > 1.8 && after < 0.3 && r1 > 0.25))
        FAIL("distance of the samples' mean to the data's %.3f before, %.3f after (want < 0.3); "
             "std / data's std at least %.2f (want > 0.25)", before, after, r1);
    snprintf(msg_, cap_, "samples' mean %.3f from the data's before, %.3f after 30 epochs; std "
             "ratio %.2f -> %.2f (D loss %.3f, G loss %.3f, D(x) %.2f, D(G(z)) %.2f)", before,
             after, r0, r1, r.d_loss, r.g_loss, r.d_real, r.d_fake);
    return TEST_PASS;
}

/* Trains the batch-norm/dropout pair for `epochs` epochs into dir (resuming if asked); the
 * weights of both nets into w (malloc'd, G's then D's) with their count. */
static int run_pair(const char *dir, int epochs, int resume, int d_steps, double smooth,
                    float **w, int64_t *n, ds_gan_result *r)
{
    ds_net *g, *d;
    ds_tensor *x = toy_data(100);
    int bad = !x || load_pair(bn_g, drop_d, 9, &g, &d);
    ds_gan_opts o = {.epochs = epochs, .batch_size = 16, .seed = 13, .out_dir = dir,
                     .resume = resume, .d_steps = d_steps, .label_smoothing = smooth};
    bad = bad || ds_gan_fit(g, d, x, &o, r) != DS_OK;
    if (!bad) {
        int64_t ng = ds_model_block_len(ds_net_model(g), 0);
        int64_t nd = ds_model_block_len(ds_net_model(d), 0);
        *n = ng + nd;
        if ((*w = malloc((size_t)*n * sizeof **w))) {
            memcpy(*w, ds_model_data(ds_net_model(g)), (size_t)ng * sizeof **w);
            memcpy(*w + ng, ds_model_data(ds_net_model(d)), (size_t)nd * sizeof **w);
        }
        bad = !*w;
    }
    ds_net_free(g);
    ds_net_free(d);
    ds_tensor_free(x);
    return bad;
}

TEST(gan_resume_equals_an_uninterrupted_run)
{
    char a[256], b[256];
    CHECK(test_tmpdir(a, sizeof a, "gan_a") && test_tmpdir(b, sizeof b, "gan_b"));
    float *wa = NULL, *wb = NULL, *wc = NULL;
    int64_t na = 0, nb = 0, nc = 0;
    ds_gan_result ra, rb, rc;
    int bad = run_pair(a, 4, 0, 2, 0.1, &wa, &na, &ra);
    bad = bad || run_pair(b, 2, 0, 2, 0.1, &wc, &nc, &rc);
    bad = bad || run_pair(b, 4, 1, 2, 0.1, &wb, &nb, &rb);
    int same = !bad && na == nb && !memcmp(wa, wb, (size_t)na * sizeof *wa);
    int differ_mid = !bad && memcmp(wa, wc, (size_t)na * sizeof *wa);
    const char *files[] = {"generator.safetensors", "discriminator.safetensors",
                           "gan.ckpt.safetensors", "log.csv"};
    const char *odd = NULL;
    int holds = test_folder_holds(b, files, 4, &odd);
    /* a checkpoint of other settings is refused, naming the difference */
    ds_net *g = NULL, *d = NULL;
    ds_tensor *x = toy_data(100);
    int loaded = x && !load_pair(bn_g, drop_d, 9, &g, &d);
    ds_gan_opts o = {.epochs = 4, .batch_size = 16, .seed = 14, .out_dir = b, .resume = 1,
                     .d_steps = 2, .label_smoothing = 0.1};
    ds_status st = loaded ? ds_gan_fit(g, d, x, &o, NULL) : DS_ERR_STATE;
    char err[1024];
    snprintf(err, sizeof err, "%s", ds_last_error());
    ds_net_free(g);
    ds_net_free(d);
    ds_tensor_free(x);
    free(wa);
    free(wb);
    free(wc);
    test_rm_rf(a);
    test_rm_rf(b);
    CHECK(!bad);
    CHECK(rb.resumed_from == 2 && rb.epochs_run == 4);
    CHECK(rb.d_loss == ra.d_loss && rb.g_loss == ra.g_loss);
    CHECK(same);
    CHECK(differ_mid);
    if (holds)
        FAIL("the output folder: %s %s", holds == 1 ? "missing" : "unexpected", odd ? odd : "");
    CHECK(st == DS_ERR_ARG);
    if (!strstr(err, "other settings") || !strstr(err, "seed: 13 then, 14 now"))
        FAIL("resume with another seed: %s", err);
    snprintf(msg_, cap_, "%lld weights equal after 2 + 2 epochs and 4 (d_steps 2, smoothing "
             "0.1, batch norm, dropout)", (long long)na);
    return TEST_PASS;
}

/* Images: G z (8) -> 1x16x16 through a transposed convolution; D a strided convolution. */
static const char *img_g =
    "input name=z shape=8\n"
    "dense units=256\n"
    "reshape shape=16x4x4\n"
    "batchnorm\n"
    "relu\n"
    "conv2d_transpose filters=8 kernel=4 stride=2 padding=1\n"
    "leaky_relu alpha=0.2\n"
    "conv2d_transpose filters=1 kernel=4 stride=2 padding=1\n"
    "optimizer adam lr=2e-4 beta1=0.5\n";
static const char *img_d =
    "input name=img shape=1x16x16\n"
    "conv2d filters=8 kernel=4 stride=2 padding=1\n"
    "leaky_relu alpha=0.2\n"
    "conv2d filters=16 kernel=4 stride=2 padding=1\n"
    "batchnorm\n"
    "leaky_relu alpha=0.2\n"
    "flatten\n"
    "dense units=1\n"
    "optimizer adam lr=2e-4 beta1=0.5\n";

static float *train_images(int threads, int64_t *n)
{
    int keep = ds_get_num_threads();
    ds_set_num_threads(threads);
    ds_net *g = NULL, *d = NULL;
    float *w = NULL;
    *n = 0;
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){64, 1, 16, 16});
    if (x && !load_pair(img_g, img_d, 2, &g, &d)) {
        ds_rng r;
        ds_rng_seed(&r, 4);
        fill_uniform(ds_tensor_data(x), ds_tensor_numel(x), -1, 1, &r);
        ds_gan_opts o = {.epochs = 2, .batch_size = 32, .seed = 6};
        if (ds_gan_fit(g, d, x, &o, NULL) == DS_OK) {
            int64_t ng = ds_model_block_len(ds_net_model(g), 0);
            int64_t nd = ds_model_block_len(ds_net_model(d), 0);
            *n = ng + nd;
            if ((w = malloc((size_t)*n * sizeof *w))) {
                memcpy(w, ds_model_data(ds_net_model(g)), (size_t)ng * sizeof *w);
                memcpy(w + ng, ds_model_data(ds_net_model(d)), (size_t)nd * sizeof *w);
            }
        }
    }
    ds_net_free(g);
    ds_net_free(d);
    ds_tensor_free(x);
    ds_set_num_threads(keep);
    return w;
}

TEST(gan_training_is_bit_identical_at_1_and_2_threads)
{
    int64_t n[3];
    float *w[3] = {train_images(1, &n[0]), train_images(2, &n[1]), train_images(2, &n[2])};
    int ok = w[0] && w[1] && w[2] && n[0] > 0 && n[1] == n[0] && n[2] == n[0];
    int same12 = ok && !memcmp(w[0], w[1], (size_t)n[0] * sizeof(float));
    int same22 = ok && !memcmp(w[1], w[2], (size_t)n[0] * sizeof(float));
    for (int i = 0; i < 3; i++)
        free(w[i]);
    CHECK(ok);
    CHECK(same12);
    CHECK(same22);
    snprintf(msg_, cap_, "%lld weights of G and D identical after 2 epochs, 1 and 2 threads",
             (long long)n[0]);
    return TEST_PASS;
}

/* Fails unless ds_gan_check(g, d, latent) gives st with every text in its message. */
static int check_pair(const char *gt, const char *dt, int64_t latent, ds_status want,
                      const char *const *texts, char *msg, size_t cap)
{
    ds_net *g, *d;
    if (load_pair(gt, dt, 1, &g, &d)) {
        snprintf(msg, cap, "cannot build the models: %s", ds_last_error());
        ds_net_free(g);
        return 1;
    }
    ds_status st = ds_gan_check(g, d, latent);
    int bad = st != want;
    for (int k = 0; !bad && texts[k]; k++)
        bad = !strstr(ds_last_error(), texts[k]);
    if (bad)
        snprintf(msg, cap, "expected %s naming the models and shapes, got %s: %s",
                 ds_status_name(want), ds_status_name(st), ds_last_error());
    ds_net_free(g);
    ds_net_free(d);
    return bad;
}

TEST(gan_pairs_that_do_not_fit_are_refused_naming_both)
{
    CHECK_OK(check_pair(img_g, toy_d, 0, DS_ERR_SHAPE,
                        (const char *const[]){"generator g.model", "1x16x16",
                                              "discriminator d.model", "input 'x' takes 2",
                                              NULL}, msg_, cap_));
    CHECK_OK(check_pair(toy_g, toy_d, 5, DS_ERR_SHAPE,
                        (const char *const[]){"generator g.model: --latent 5", "input 'z'",
                                              "4 values per sample", NULL}, msg_, cap_));
    const char *d2 = "input name=x shape=2\ndense units=2\n";
    CHECK_OK(check_pair(toy_g, d2, 0, DS_ERR_SHAPE,
                        (const char *const[]){"discriminator d.model", "is 2 per sample",
                                              "one logit per sample", NULL}, msg_, cap_));
    const char *d3 = "input name=x shape=2\ndense units=1\nloss mse\n";
    CHECK_OK(check_pair(toy_g, d3, 0, DS_ERR_ARG,
                        (const char *const[]){"discriminator d.model", "reads labels",
                                              "remove the model's loss lines", NULL}, msg_, cap_));
    /* the data must fit D, options must be in range */
    ds_net *g, *d;
    CHECK(!load_pair(toy_g, toy_d, 1, &g, &d));
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){10, 3});
    ds_gan_opts o = {.epochs = 1};
    ds_status s1 = ds_gan_fit(g, d, x, &o, NULL);
    char e1[512];
    snprintf(e1, sizeof e1, "%s", ds_last_error());
    ds_tensor *y = toy_data(10);
    o.label_smoothing = 0.5;
    ds_status s2 = ds_gan_fit(g, d, y, &o, NULL);
    char e2[512];
    snprintf(e2, sizeof e2, "%s", ds_last_error());
    o = (ds_gan_opts){.resume = 1};
    ds_status s3 = ds_gan_fit(g, d, y, &o, NULL);
    ds_net_free(g);
    ds_net_free(d);
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK(s1 == DS_ERR_SHAPE && strstr(e1, "[10, 3]") && strstr(e1, "d.model") &&
          strstr(e1, "takes 2"));
    CHECK(s2 == DS_ERR_ARG && strstr(e2, "label smoothing 0.5"));
    CHECK_OK(check_arg_error(s3, "resume needs the output folder", msg_, cap_));
    CHECK_OK(check_arg_error(ds_gan_fit(NULL, NULL, NULL, NULL, NULL), "the generator or the "
                             "discriminator is NULL", msg_, cap_));
    return TEST_PASS;
}

TEST(gan_resume_without_a_checkpoint_names_it)
{
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "gan_nock"));
    ds_net *g, *d;
    ds_tensor *x = toy_data(20);
    CHECK(x && !load_pair(toy_g, toy_d, 1, &g, &d));
    ds_gan_opts o = {.epochs = 1, .out_dir = dir, .resume = 1};
    ds_status st = ds_gan_fit(g, d, x, &o, NULL);
    char err[1024];
    snprintf(err, sizeof err, "%s", ds_last_error());
    ds_net_free(g);
    ds_net_free(d);
    ds_tensor_free(x);
    test_rm_rf(dir);
    CHECK(st == DS_ERR_ARG);
    CHECK(strstr(err, "gan.ckpt.safetensors: no checkpoint to resume from"));
    return TEST_PASS;
}
