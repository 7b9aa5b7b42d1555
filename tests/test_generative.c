/* test_generative.c - autoencoders, VAEs and segmentation losses: the sampling op and the
 * Dice loss against PyTorch and finite differences, loss target=INPUT, the loss terms of
 * the log, generation, encoding and decoding given codes, reconstruction scores, a denoiser
 * on simulated galaxies. */
#include "test.h"

#include "../src/internal.h"
#include "../src/io/io.h"

#include <math.h>

#define FAIL_MSG(...) snprintf(msg_, cap_, __VA_ARGS__)

/* ---- ops against PyTorch ---- */
static int torch_case(const ds_tensor_set *fx, const char *c, int nd, const int64_t *shape,
                      int kind, double *max_rel, char *msg, size_t cap)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x[2] = {grad_input(g, "a", nd, shape), NULL};
    int64_t ts[DS_MAX_DIMS];
    int tn = nd;
    memcpy(ts, shape, (size_t)nd * sizeof *ts);
    if (kind == 4) {   /* class indices: [N, H, W] */
        tn = nd - 1;
        for (int i = 1; i < tn; i++)
            ts[i] = shape[i + 1];
    }
    x[1] = kind == 0 ? grad_input(g, "b", nd, shape) : kind == 1 ? grad_input(g, "b", nd, shape)
                                                     : ds_input(g, "b", tn, ts);
    ds_node *y = kind == 0   ? ds_sample_gaussian(g, x[0], x[1])
                 : kind == 1 ? ds_loss_dice(g, x[0], x[1], strstr(c, "_sum") ? DS_REDUCE_SUM
                                                                              : DS_REDUCE_MEAN)
                 : kind == 2 ? ds_loss_bce_logits(g, x[0], x[1], DS_REDUCE_MEAN)
                 : kind == 3 ? ds_loss_cce_logits(g, x[0], x[1], DS_REDUCE_MEAN)
                             : ds_loss_cce_logits_int(g, x[0], x[1], DS_REDUCE_MEAN);
    int rc = 1;
    char key[96];
    snprintf(key, sizeof key, "%s.eps", c);
    const float *eps = kind == 0 ? fixture_data(fx, key, NULL, msg, cap) : NULL;
    if (!y || (kind == 0 && !eps)) {
        if (!y)
            snprintf(msg, cap, "%s: %s", c, ds_last_error());
        goto done;
    }
    if (kind == 0) {   /* training mode: the sample draws, from the fixture's noise */
        dsi_sample_fix_noise(y, eps);
        ds_graph_set_mode(g, DS_MODE_TRAIN);
    }
    rc = fixture_run_case(fx, c, g, y, x, 2, msg, cap) ||
         fixture_compare_grads(fx, c, y, x, kind <= 1 ? 2 : 1, max_rel, msg, cap);
done:
    ds_graph_free(g);
    ds_model_free(m);
    return rc;
}

TEST(generative_ops_match_pytorch)
{
    ds_tensor_set *fx = fixture_load("generative", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    static const struct { const char *c; int nd; int64_t shape[4]; int kind; } cases[] = {
        {"sample_2d", 2, {4, 6}, 0},          {"sample_4d", 4, {2, 3, 4, 5}, 0},
        {"dice_c1_mean", 4, {3, 1, 5, 4}, 1}, {"dice_c1_sum", 4, {3, 1, 5, 4}, 1},
        {"dice_c3_mean", 4, {2, 3, 4, 4}, 1}, {"dice_c3_sum", 4, {2, 3, 4, 4}, 1},
        {"bce_pix", 4, {2, 1, 5, 4}, 2},      {"cce_pix", 4, {2, 3, 4, 4}, 3},
        {"cce_int_pix", 4, {2, 3, 4, 4}, 4},
    };
    double max_rel = 0;
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++)
        if (torch_case(fx, cases[i].c, cases[i].nd, cases[i].shape, cases[i].kind, &max_rel,
                       msg_, cap_)) {
            ds_tensor_set_free(fx);
            return TEST_FAIL;
        }
    ds_tensor_set_free(fx);
    snprintf(msg_, cap_, "%d cases (sampling, Dice, per-pixel BCE and CCE), max rel err %.2g",
             n, max_rel);
    return TEST_PASS;
}

/* ---- finite differences ---- */
TEST(sample_gaussian_and_dice_gradcheck)
{
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int stream = 0; stream < 2; stream++) {   /* fixed noise, then the graph's stream */
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 3);
        int64_t shape[2] = {3, 5};
        ds_node *x[2] = {grad_input(g, "m", 2, shape), grad_input(g, "lv", 2, shape)};
        ds_node *y = ds_sample_gaussian(g, x[0], x[1]);
        float eps[15];
        fill_uniform(eps, 15, -2, 2, &r);
        CHECK(y && ds_graph_plan(g) == DS_OK);
        if (!stream)
            dsi_sample_fix_noise(y, eps);
        ds_graph_set_mode(g, DS_MODE_TRAIN);
        fill_uniform(ds_node_data(x[0]), 15, -1, 1, &r);
        fill_uniform(ds_node_data(x[1]), 15, -2, 1, &r);
        int rc = gradcheck(g, y, 2, x, 1e-3, 1e-4, 3e-3, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return TEST_FAIL;
    }
    for (int red = 0; red < 2; red++) {
        ds_model *m = ds_model_create(1);
        ds_graph *g = ds_graph_create(m, 1);
        int64_t shape[4] = {2, 2, 2, 2};   /* few pixels a row: gradients well above rounding */
        ds_node *x[2] = {grad_input(g, "p", 4, shape), grad_input(g, "t", 4, shape)};
        ds_node *y = ds_loss_dice(g, x[0], x[1], (ds_reduction)red);
        CHECK(y && ds_graph_plan(g) == DS_OK);
        fill_uniform(ds_node_data(x[0]), 16, 0.05f, 0.95f, &r);
        fill_uniform(ds_node_data(x[1]), 16, 0, 1, &r);
        int rc = gradcheck(g, y, 2, x, 3e-3, 1e-4, 3e-3, msg_, cap_);
        ds_graph_free(g);
        ds_model_free(m);
        if (rc)
            return TEST_FAIL;
    }
    return TEST_PASS;
}

/* ---- the sampling op's modes, statistics and determinism ---- */
/* z of a [rows, cols] sample with mean mu, logvar lv everywhere, at the graph seed, mode and
 * thread count given; malloc'd. */
static float *draw(int64_t rows, int64_t cols, float mu, float lv, uint64_t seed, int mode,
                   int threads)
{
    ds_set_num_threads(threads);
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, seed);
    int64_t shape[2] = {rows, cols};
    ds_node *a = ds_input(g, "m", 2, shape), *b = ds_input(g, "lv", 2, shape);
    ds_node *y = ds_sample_gaussian(g, a, b);
    float *out = NULL;
    if (y && ds_graph_plan(g) == DS_OK) {
        for (int64_t i = 0; i < rows * cols; i++) {
            ds_node_data(a)[i] = mu;
            ds_node_data(b)[i] = lv;
        }
        ds_graph_set_mode(g, mode);
        if (ds_graph_forward(g) == DS_OK && (out = malloc((size_t)(rows * cols) * sizeof *out)))
            memcpy(out, ds_node_data(y), (size_t)(rows * cols) * sizeof *out);
    }
    ds_graph_free(g);
    ds_model_free(m);
    ds_set_num_threads(0);
    return out;
}

TEST(sample_gaussian_draws_in_training_only_same_at_any_thread_count)
{
    CHECK(dsi_ops[DS_OP_SAMPLE_GAUSSIAN]->stochastic && !dsi_ops[DS_OP_LOSS_DICE]->stochastic);
    enum { R = 400, C = 100 };
    float *ev = draw(R, C, 0.7f, 1.0f, 9, DS_MODE_EVAL, 1);
    float *t1 = draw(R, C, 0.7f, 1.0f, 9, DS_MODE_TRAIN, 1);
    float *t2 = draw(R, C, 0.7f, 1.0f, 9, DS_MODE_TRAIN, 2);
    float *mc = draw(R, C, 0.7f, 1.0f, 9, DS_MODE_MC_DROPOUT, 2);
    float *o = draw(R, C, 0.7f, 1.0f, 10, DS_MODE_TRAIN, 2);
    int rc = TEST_FAIL;
    if (!ev || !t1 || !t2 || !mc || !o) {
        FAIL_MSG("a draw failed: %s", ds_last_error());
        goto done;
    }
    double s = 0, ss = 0;
    int64_t same_seed_other = 0;
    for (int64_t i = 0; i < R * C; i++) {
        if (ev[i] != 0.7f) {
            FAIL_MSG("eval mode: z[%lld] = %g, not the mean 0.7", (long long)i, ev[i]);
            goto done;
        }
        s += t1[i];
        ss += (double)t1[i] * t1[i];
        same_seed_other += o[i] == t1[i];
    }
    if (memcmp(t1, t2, sizeof(float) * R * C) || memcmp(t1, mc, sizeof(float) * R * C)) {
        FAIL_MSG("the draws differ between 1 and 2 threads or training and MC modes");
        goto done;
    }
    double mean = s / (R * C), var = ss / (R * C) - mean * mean;
    /* 40,000 draws of N(0.7, e^1): the mean's standard error is 0.008, the variance's 0.02 */
    if (fabs(mean - 0.7) > 0.04 || fabs(var - exp(1.0)) > 0.1 || same_seed_other > 10) {
        FAIL_MSG("mean %.4f (want 0.7), variance %.4f (want %.4f), %lld equal draws at "
                 "another seed", mean, var, exp(1.0), (long long)same_seed_other);
        goto done;
    }
    snprintf(msg_, cap_, "mean %.4f variance %.4f of N(0.7, e); bit-identical at 1 and 2 "
             "threads", mean, var);
    rc = TEST_PASS;
done:
    free(ev);
    free(t1);
    free(t2);
    free(mc);
    free(o);
    return rc;
}

/* ---- model files ---- */
static const char *const ae_text =
    "input name=x shape=1x6x6\n"
    "conv2d filters=4 kernel=3 padding=same activation=relu\n"
    "conv2d name=out filters=1 kernel=3 padding=same\n"
    "loss mse target=x\n"
    "optimizer adam lr=0.01\n";

static ds_tensor *smooth_images(int64_t n, int64_t side, uint64_t seed)
{
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){n, 1, side, side});
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int64_t i = 0; x && i < n; i++) {
        double a = ds_rng_uniform(&r) * 2 - 1, b = ds_rng_uniform(&r) * 2 - 1;
        for (int64_t p = 0; p < side * side; p++)
            ds_tensor_data(x)[i * side * side + p] =
                (float)(a * (double)(p / side) / side + b * (double)(p % side) / side);
    }
    return x;
}

TEST(autoencoder_trains_on_inputs_alone)
{
    ds_net *n = NULL;
    CHECK(ds_net_parse(ae_text, "ae.model", NULL, &n) == DS_OK);
    CHECK(ds_net_target_count(n) == 0 && ds_net_loss_term_count(n) == 0);
    ds_tensor *x = smooth_images(48, 6, 1);
    double before = 0, after = 0;
    ds_fit_opts o = {.epochs = 8, .batch_size = 16, .seed = 2};
    ds_fit_result res;
    char *rep = NULL;
    ds_status st = ds_net_loss_value(n, x, NULL, 48, &before);
    if (!st)
        st = ds_net_fit(n, x, NULL, NULL, NULL, &o, &res);
    if (!st)
        st = ds_net_loss_value(n, x, NULL, 48, &after);
    if (!st)
        st = ds_net_evaluate(n, x, NULL, 48, &rep, NULL);
    ds_feed f;
    memset(&f, 0, sizeof f);
    f.inputs[0] = (ds_feed_item){.data = x, .source = "x"};
    ds_tensor *sc = NULL;
    if (!st)
        st = ds_net_score_reconstruction(n, &f, &sc);
    int ok = !st && after < 0.5 * before && rep && strstr(rep, "reconstruction RMSE");
    /* the score of a sample is its loss alone: the mean of the scores is the mean loss */
    double ms = 0;
    for (int64_t i = 0; sc && i < 48; i++)
        ms += ds_tensor_data(sc)[i] / 48.0;
    if (ok)
        snprintf(msg_, cap_, "loss %.4g -> %.4g; mean score %.4g", before, after, ms);
    else
        snprintf(msg_, cap_, "status %s (%s), loss %.4g -> %.4g, report %s",
                 ds_status_name(st), ds_last_error(), before, after, rep ? rep : "none");
    free(rep);
    ds_tensor_free(x);
    ds_tensor_free(sc);
    ds_net_free(n);
    CHECK(ok);
    CHECK_NEAR(ms, after, 1e-4 * (1 + after));
    return TEST_PASS;
}

TEST(target_bad_input_messages)
{
    static const struct { const char *text, *want[3]; } cases[] = {
        {"input name=x shape=4\ndense name=h units=4\nloss mse target=h\n",
         {"ae.model:3:", "target=h", "not an input"}},
        {"input name=x shape=4\ndense name=h units=4\nloss mse target=nope\n",
         {"ae.model:3:", "target=nope", "no input of that name"}},
        {"input name=x shape=4\ndense name=h units=3\nloss mae target=x\n",
         {"output 'h' has shape [32, 3]", "input 'x', has shape [32, 4]", "ae.model:3:"}},
        {"input name=x shape=4\ndense name=h units=4\nsample_gaussian mean=h\n",
         {"ae.model:3:", "option 'logvar' is required", "sample_gaussian"}},
        {"input name=x shape=4\ndense name=h units=4\nsample_gaussian mean=h logvar=q\n",
         {"ae.model:3:", "no layer named 'q'", "logvar"}},
        {"input name=x shape=4\ndense name=h units=4\ndense name=v units=3\n"
         "sample_gaussian mean=h logvar=v\n", {"ae.model:4:", "mean [32, 4] and logvar [32, 3]",
                                              "differ in shape"}},
        {"input name=x shape=4\ndense name=h units=4\nsample_gaussian inputs=h mean=h logvar=h\n",
         {"ae.model:3:", "not inputs=", "mean=LAYER"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ds_net *n = NULL;
        ds_status st = ds_net_parse(cases[i].text, "ae.model", NULL, &n);
        ds_net_free(n);
        if (st == DS_OK)
            FAIL("case %zu parsed", i);
        for (int k = 0; k < 3; k++)
            if (!strstr(ds_last_error(), cases[i].want[k]))
                FAIL("case %zu: '%s' lacks '%s'", i, ds_last_error(), cases[i].want[k]);
    }
    return TEST_PASS;
}

/* ---- a small VAE: terms in the log, generation, scores ---- */
static const char *const vae_text =
    "input name=x shape=1x6x6\n"
    "flatten\n"
    "dense name=h units=16 activation=relu\n"
    "dense name=mu inputs=h units=2\n"
    "dense name=lv inputs=h units=2 init=zeros\n"
    "sample_gaussian name=z mean=mu logvar=lv\n"
    "dense units=36\n"
    "reshape name=dec shape=1x6x6\n"
    "loss mse output=dec target=x reduction=sum name=recon\n"
    "loss kl_gaussian mean=mu logvar=lv reduction=sum name=kl\n"
    "optimizer adam lr=0.01\n";

TEST(vae_logs_its_terms_generates_and_scores)
{
    char dir[256], log[300];
    CHECK(test_tmpdir(dir, sizeof dir, "vae"));
    snprintf(log, sizeof log, "%s/log.csv", dir);
    ds_net *n = NULL;
    ds_tensor *x = smooth_images(96, 6, 3), *img = NULL, *img2 = NULL, *sc = NULL;
    ds_tensor *xv = smooth_images(32, 6, 4);
    CHECK(ds_net_parse(vae_text, "vae.model", NULL, &n) == DS_OK);
    CHECK(ds_net_loss_term_count(n) == 2 && !strcmp(ds_net_loss_term_name(n, 0), "recon") &&
          !strcmp(ds_net_loss_term_name(n, 1), "kl"));
    ds_fit_opts o = {.epochs = 20, .batch_size = 16, .seed = 2, .log_csv = log};
    ds_fit_result res;
    ds_status st = ds_net_fit(n, x, NULL, NULL, NULL, &o, &res);
    ds_feed f;
    memset(&f, 0, sizeof f);
    f.inputs[0] = (ds_feed_item){.data = xv, .source = "held-out"};
    if (!st)
        st = ds_net_score_reconstruction(n, &f, &sc);
    if (!st)
        st = ds_net_generate(n, "z", 50, 7, 16, &img);
    if (!st)
        st = ds_net_generate(n, "z", 50, 7, 64, &img2);   /* another batch size: the same */
    char *text = NULL;
    size_t len = 0;
    int rc = TEST_FAIL;
    if (st) {
        FAIL_MSG("%s: %s", ds_status_name(st), ds_last_error());
        goto done;
    }
    CHECK(dsi_read_file(log, (unsigned char **)&text, &len) == DS_OK);
    text = realloc(text, len + 1);
    text[len] = 0;
    if (!strstr(text, ",loss_recon,loss_kl\n")) {
        FAIL_MSG("log header: %.200s", text);
        goto done;
    }
    /* each line: loss = recon + kl (the weighted terms add up to the loss) */
    const char *last = strrchr(text, '\n');
    while (last > text && last[-1] != '\n')
        last--;
    double v[10];
    int got = sscanf(last, "%*d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3],
                     &v[4], &v[5], &v[6], &v[7]);
    if (got != 8 || fabs(v[0] - v[6] - v[7]) > 1e-4 * fabs(v[0]) || !(v[7] > 0)) {
        FAIL_MSG("last line '%s': loss %g, recon %g + kl %g", last, v[0], v[6], v[7]);
        goto done;
    }
    double elbo = 0;
    for (int64_t i = 0; i < 32; i++)
        elbo -= ds_tensor_data(sc)[i] / 32.0;
    CHECK(ds_tensor_ndim(img) == 4 && ds_tensor_shape(img)[0] == 50 &&
          ds_tensor_shape(img)[3] == 6);
    CHECK(!memcmp(ds_tensor_data(img), ds_tensor_data(img2), 50 * 36 * sizeof(float)));
    /* draws differ from each other (the decoder is not constant) */
    CHECK(memcmp(ds_tensor_data(img), ds_tensor_data(img) + 36, 36 * sizeof(float)));
    ds_tensor *bad = NULL;
    CHECK(ds_net_generate(n, "h", 5, 1, 0, &bad) == DS_ERR_ARG && !bad);
    CHECK(strstr(ds_last_error(), "layer 'h' (Dense) is not a sampling layer"));
    CHECK(ds_net_generate(n, "nope", 5, 1, 0, &bad) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "no layer named 'nope'"));
    snprintf(msg_, cap_, "train loss %.4g = recon %.4g + kl %.4g; held-out ELBO per sample "
             "%.4g", v[0], v[6], v[7], elbo);
    rc = TEST_PASS;
done:
    free(text);
    ds_tensor_free(x);
    ds_tensor_free(xv);
    ds_tensor_free(img);
    ds_tensor_free(img2);
    ds_tensor_free(sc);
    ds_net_free(n);
    test_rm_rf(dir);
    return rc;
}

/* Encoding then decoding a stamp gives its eval-mode reconstruction; codes of a GMM fitted
 * to them decode; bad latent values and layers give clear errors. */
TEST(vae_encodes_and_decodes_given_codes)
{
    ds_net *n = NULL;
    ds_tensor *x = smooth_images(64, 6, 5), *xv = smooth_images(40, 6, 6);
    ds_tensor *codes = NULL, *dec = NULL, *rec[DS_FEED_MAX] = {0}, *bad = NULL, *zs = NULL;
    ds_gmm *g = NULL;
    CHECK(ds_net_parse(vae_text, "vae.model", NULL, &n) == DS_OK);
    ds_fit_opts o = {.epochs = 5, .batch_size = 16, .seed = 3};
    ds_fit_result res;
    ds_feed f;
    memset(&f, 0, sizeof f);
    f.inputs[0] = (ds_feed_item){.data = xv, .source = "held-out"};
    CHECK(ds_net_fit(n, x, NULL, NULL, NULL, &o, &res) == DS_OK);
    CHECK(ds_net_encode(n, &f, "z", 16, &codes) == DS_OK);
    CHECK(ds_tensor_ndim(codes) == 2 && ds_tensor_shape(codes)[0] == 40 &&
          ds_tensor_shape(codes)[1] == 2);
    CHECK(ds_net_decode(n, "z", codes, 7, &dec) == DS_OK);
    CHECK(ds_net_predict_feed(n, &f, 32, rec) == DS_OK);
    CHECK(ds_tensor_numel(dec) == 40 * 36 && ds_tensor_numel(rec[0]) == 40 * 36);
    double worst = 0, spread = 0;
    for (int64_t i = 0; i < 40 * 36; i++) {
        worst = fmax(worst, fabs(ds_tensor_data(dec)[i] - ds_tensor_data(rec[0])[i]));
        spread = fmax(spread, fabs(ds_tensor_data(dec)[i] - ds_tensor_data(dec)[i % 36]));
    }
    CHECK(worst <= 1e-5 && spread > 1e-3);   /* the same images, and not all one image */
    /* a mixture fitted to the codes: its draws decode */
    CHECK(ds_gmm_fit(codes, 2, 1, &g) == DS_OK);
    CHECK(ds_gmm_sample(g, 9, 2, &zs) == DS_OK);
    ds_tensor_free(dec);
    CHECK(ds_net_decode(n, "z", zs, 0, &dec) == DS_OK);
    CHECK(ds_tensor_ndim(dec) == 4 && ds_tensor_shape(dec)[0] == 9);
    /* bad latent values and layers */
    ds_tensor *z3 = ds_tensor_create(2, (int64_t[]){5, 3});
    CHECK(ds_net_decode(n, "z", z3, 0, &bad) == DS_ERR_SHAPE && !bad);
    CHECK(strstr(ds_last_error(), "the latent values [5, 3] do not fit layer 'z' of [2] per "
                 "sample: give [count, 2]"));
    ds_tensor_free(z3);
    ds_tensor_data(zs)[4] = NAN;
    CHECK(ds_net_decode(n, "z", zs, 0, &bad) == DS_ERR_VALUE && !bad);
    CHECK(strstr(ds_last_error(), "the latent values"));
    CHECK(ds_net_decode(n, "h", codes, 0, &bad) == DS_ERR_ARG && !bad);
    CHECK(strstr(ds_last_error(), "layer 'h' (Dense) is not a sampling layer"));
    CHECK(ds_net_encode(n, &f, "mu", 0, &bad) == DS_ERR_ARG && !bad);
    CHECK(strstr(ds_last_error(), "layer 'mu' (Dense) is not a sampling layer"));
    snprintf(msg_, cap_, "decode(encode(x)) against the reconstruction: max |diff| %.2g", worst);
    for (int k = 0; k < DS_FEED_MAX; k++)
        ds_tensor_free(rec[k]);
    ds_tensor_free(dec), ds_tensor_free(codes), ds_tensor_free(zs);
    ds_tensor_free(x), ds_tensor_free(xv);
    ds_gmm_free(g);
    ds_net_free(n);
    return TEST_PASS;
}

/* ---- a denoising autoencoder on simulated galaxies at SNR 10 ---- */
/* count noiseless 16x16 stamps of ds_sim_galaxies (seed), and noisy copies at SNR 10: both
 * divided by each stamp's noise sigma, so the noisy stamps' RMSE to the clean ones is ~1. */
static ds_status snr10_pairs(int64_t count, uint64_t seed, ds_tensor **noisy, ds_tensor **clean)
{
    ds_sim_opts o = {.count = count, .size = 16, .seed = seed, .hlr_min = 1.5, .hlr_max = 3,
                     .snr_max = -1, .sky_sigma = 1, .offset_max = 0.5};
    ds_tensor *truth = NULL;
    ds_status st = ds_sim_galaxies(&o, clean, &truth);
    ds_tensor_free(truth);
    if (st)
        return st;
    if (!(*noisy = ds_tensor_create(4, (int64_t[]){count, 1, 16, 16})))
        return DS_ERR_NOMEM;
    ds_rng r;
    ds_rng_seed(&r, seed + 1);
    float *c = ds_tensor_data(*clean), *x = ds_tensor_data(*noisy);
    for (int64_t i = 0; i < count; i++) {
        float *ci = c + i * 256, *xi = x + i * 256;
        double sigma = ds_image_snr(ci, 256, 1.0) / 10.0;
        for (int p = 0; p < 256; p++) {
            ci[p] = (float)(ci[p] / sigma);
            xi[p] = (float)(ci[p] + ds_rng_normal(&r));
        }
    }
    return DS_OK;
}

static double rmse(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s / (double)n);
}

TEST(denoiser_halves_the_rmse_of_snr10_galaxies)
{
    static const char *const text =
        "input name=noisy shape=1x16x16\n"
        "input name=clean shape=1x16x16\n"
        "conv2d inputs=noisy filters=6 kernel=5 padding=same activation=relu\n"
        "conv2d name=denoised filters=1 kernel=3 padding=same\n"
        "loss mse target=clean\n"
        "optimizer adam lr=3e-3\n";
    ds_net *n = NULL;
    ds_tensor *x = NULL, *c = NULL, *xv = NULL, *cv = NULL, *p[1] = {0};
    ds_status st = ds_net_parse(text, "denoise.model", NULL, &n);
    if (!st)
        st = snr10_pairs(128, 11, &x, &c);
    if (!st)
        st = snr10_pairs(64, 12, &xv, &cv);
    ds_feed f = {0}, fv = {0};
    f.inputs[0] = (ds_feed_item){.name = "noisy", .data = x, .source = "noisy"};
    f.inputs[1] = (ds_feed_item){.name = "clean", .data = c, .source = "clean"};
    fv.inputs[0] = (ds_feed_item){.name = "noisy", .data = xv, .source = "held-out noisy"};
    ds_fit_opts o = {.epochs = 8, .batch_size = 16, .seed = 3};
    ds_fit_result res;
    if (!st)
        st = ds_net_fit_feed(n, &f, NULL, &o, &res);
    if (!st)   /* prediction needs the noisy stamps only */
        st = ds_net_predict_feed(n, &fv, 64, p);
    double in = 0, out = 0;
    if (!st) {
        in = rmse(ds_tensor_data(xv), ds_tensor_data(cv), 64 * 256);
        out = rmse(ds_tensor_data(p[0]), ds_tensor_data(cv), 64 * 256);
    }
    ds_net_free(n);
    ds_tensor_free(x);
    ds_tensor_free(c);
    ds_tensor_free(xv);
    ds_tensor_free(cv);
    ds_tensor_free(p[0]);
    if (st)
        FAIL("%s: %s", ds_status_name(st), ds_last_error());
    if (!(out < 0.5 * in))
        FAIL("held-out RMSE to the noiseless stamps: input %.4f, output %.4f (want < half)",
             in, out);
    snprintf(msg_, cap_, "held-out RMSE to the noiseless stamps: input %.4f, output %.4f "
             "(%.1fx lower)", in, out, in / out);
    return TEST_PASS;
}

/* ---- U-Net: examples/unet.model on a toy segmentation ---- */
/* count 16x16 images of a disc (radius 2.5 to 5, anywhere; 1 on 0) with noise of sigma 0.3,
 * and its mask. */
static void discs(int64_t count, uint64_t seed, ds_tensor **img, ds_tensor **mask)
{
    *img = ds_tensor_create(4, (int64_t[]){count, 1, 16, 16});
    *mask = ds_tensor_create(4, (int64_t[]){count, 1, 16, 16});
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int64_t i = 0; *img && *mask && i < count; i++) {
        double cx = 3 + 10 * ds_rng_uniform(&r), cy = 3 + 10 * ds_rng_uniform(&r);
        double rad = 2.5 + 2.5 * ds_rng_uniform(&r);
        for (int p = 0; p < 256; p++) {
            double dx = p % 16 - cx, dy = p / 16 - cy;
            bool in = dx * dx + dy * dy <= rad * rad;
            ds_tensor_data(*mask)[i * 256 + p] = in;
            ds_tensor_data(*img)[i * 256 + p] = (float)(in + 0.3 * ds_rng_normal(&r));
        }
    }
}

TEST(unet_example_segments_discs)
{
    unsigned char *text = NULL;
    size_t len;
    CHECK(dsi_read_file("examples/unet.model", &text, &len) == DS_OK);
    char *t = realloc(text, len + 1), *at;
    CHECK(t);
    t[len] = 0;
    /* the same network on 16x16 stamps: a test of seconds */
    CHECK((at = strstr(t, "shape=1x32x32")) != NULL);
    memcpy(at, "shape=1x16x16", 13);
    ds_net *n = NULL;
    ds_status st = ds_net_parse(t, "examples/unet.model", NULL, &n);
    free(t);
    CHECK(st == DS_OK);
    ds_tensor *x, *y, *xv, *yv;
    discs(48, 1, &x, &y);
    discs(32, 2, &xv, &yv);
    ds_fit_opts o = {.epochs = 5, .batch_size = 16, .seed = 1};
    ds_fit_result res;
    ds_tensor_set *vals = ds_tensor_set_create();
    char *rep = NULL;
    if (!st)
        st = ds_net_fit(n, x, y, NULL, NULL, &o, &res);
    if (!st)
        st = ds_net_evaluate(n, xv, yv, 32, &rep, vals);
    ds_tensor *iou = vals ? ds_tensor_set_get(vals, "iou_1") : NULL;
    ds_tensor *acc = vals ? ds_tensor_set_get(vals, "accuracy") : NULL;
    double i1 = iou ? iou->data[0] : NAN, a = acc ? acc->data[0] : NAN;
    int ok = !st && rep && strstr(rep, "mean IoU") && i1 >= 0.75 && a >= 0.9;
    if (ok)
        snprintf(msg_, cap_, "held-out IoU of the discs %.3f, pixel accuracy %.3f", i1, a);
    else
        snprintf(msg_, cap_, "%s (%s): IoU %.3f, accuracy %.3f; report:\n%s", ds_status_name(st),
                 ds_last_error(), i1, a, rep ? rep : "none");
    free(rep);
    ds_tensor_set_free(vals);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_tensor_free(xv);
    ds_tensor_free(yv);
    ds_net_free(n);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* loss dice in a model file: its labels, eval's pixel accuracy and IoU. */
TEST(dice_loss_line_and_its_eval)
{
    static const char *const text =
        "input name=x shape=1x4x4\n"
        "conv2d name=seg filters=2 kernel=1 activation=softmax\n"
        "loss soft_dice\n";
    ds_net *n = NULL;
    CHECK(ds_net_parse(text, "seg.model", NULL, &n) == DS_OK);
    CHECK(ds_net_target_count(n) == 1 && ds_node_ndim(ds_net_target_at(n, 0)) == 4);
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){3, 1, 4, 4});
    ds_tensor *y = ds_tensor_create(4, (int64_t[]){3, 2, 4, 4});
    CHECK(x && y);
    for (int64_t i = 0; i < 48; i++) {   /* class 1 where x > 0 */
        float v = (float)((i * 7) % 5) - 2;
        int64_t s = i / 16, p = i % 16;
        ds_tensor_data(x)[i] = v;
        ds_tensor_data(y)[(s * 2 + 1) * 16 + p] = v > 0;
        ds_tensor_data(y)[(s * 2) * 16 + p] = v <= 0;
    }
    char *rep = NULL;
    ds_tensor_set *vals = ds_tensor_set_create();
    ds_status st = ds_net_evaluate(n, x, y, 8, &rep, vals);
    int ok = !st && rep && strstr(rep, "accuracy:") && strstr(rep, "mean IoU") &&
             ds_tensor_set_get(vals, "iou_0") && ds_tensor_set_get(vals, "mean_iou");
    snprintf(msg_, cap_, "%s", ok ? "" : rep ? rep : ds_last_error());
    free(rep);
    ds_tensor_set_free(vals);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    if (!ok)
        return TEST_FAIL;
    return TEST_PASS;
}
