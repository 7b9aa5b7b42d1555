/* test_cli_uq_eval.c - eval --uncertainty on pooled draws (--mc N, ensembles) and
 * predict --classes with --mc or an ensemble, end to end; bad input. */
#include "test.h"
#include "spawn.h"
#include "toy_uq.h"

static char dir[64];

/* The toy's x.npy, y.npy; a 3-class toy xc.npy, yc.npy; the model files. */
static int setup(const char *d)
{
    static const char *const drop =
        "input name=x shape=1\n"
        "dense units=16 activation=relu\n"
        "dropout rate=0.2\n"
        "dense name=y units=1\n"
        "loss mse\n"
        "optimizer adam lr=0.01\n";
    static const char *const gauss =
        "input name=x shape=1\n"
        "dense name=h units=16 activation=tanh\n"
        "dropout name=dr rate=0.1\n"
        "dense name=mu units=1 inputs=dr\n"
        "dense name=lv units=1 inputs=dr\n"
        "loss gaussian_nll mean=mu logvar=lv\n"
        "optimizer adam lr=0.01\n";
    static const char *const plain =
        "input name=x shape=1\n"
        "dense units=8 activation=relu\n"
        "dense name=y units=1\n"
        "loss mse\n";
    static const char *const cls =
        "input name=x shape=2\n"
        "dense units=16 activation=relu\n"
        "dropout rate=0.2\n"
        "dense name=p units=3\n"
        "loss categorical_crossentropy from_logits=true\n"
        "optimizer adam lr=0.01\n";
    char p[128];
    ds_tensor *x, *y;
    if (toy_data(40, TOY_X_LO, TOY_X_HI, 1, &x, &y))
        return 1;
    snprintf(p, sizeof p, "%s/x.npy", d);
    int rc = ds_npy_save(x, p) != DS_OK;
    snprintf(p, sizeof p, "%s/y.npy", d);
    rc |= ds_npy_save(y, p) != DS_OK;
    ds_tensor_free(x);
    ds_tensor_free(y);
    /* classes by the sign of x0 + x1 and by x0 > 1 */
    ds_tensor *xc = ds_tensor_create(2, (int64_t[]){60, 2});
    ds_tensor *yc = ds_tensor_create(1, (int64_t[]){60});
    ds_rng r;
    ds_rng_seed(&r, 3);
    if (!xc || !yc)
        rc = 1;
    for (int i = 0; !rc && i < 60; i++) {
        float *v = ds_tensor_data(xc) + 2 * i;
        fill_uniform(v, 2, -2, 2, &r);
        ds_tensor_data(yc)[i] = v[0] > 1 ? 2.0f : v[0] + v[1] > 0 ? 1.0f : 0.0f;
    }
    snprintf(p, sizeof p, "%s/xc.npy", d);
    rc |= !xc || ds_npy_save(xc, p) != DS_OK;
    snprintf(p, sizeof p, "%s/yc.npy", d);
    rc |= !yc || ds_npy_save(yc, p) != DS_OK;
    ds_tensor_free(xc);
    ds_tensor_free(yc);
    static const char *const names[] = {"drop", "gauss", "plain", "cls"};
    const char *const texts[] = {drop, gauss, plain, cls};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s.model", d, names[k]);
        rc |= test_write_text(p, texts[k]);
    }
    return rc;
}

/* An MC-dropout regression (mse, no std of its own): the spread of 20 draws is the error
 * bar; the same seed gives the same report on 1 and 2 threads. Without --mc: the error
 * says how to get one. */
TEST(cli_eval_uncertainty_mc)
{
    static char first[1 << 16];
    const char *d = test_tmpdir(dir, sizeof dir, "cliuqeval");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/drop.model --data %s/x.npy --labels %s/y.npy --epochs 3 -q "
              "-o %s/w.safetensors", d, d, d, d);
    CHECK_RUN(0, "eval %s/drop.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --uncertainty --mc 20 --seed 5 --threads 1", d, d, d, d);
    CHECK_OUT("the reports below pool 20 draws (--mc 20, seed 5)");
    CHECK_OUT("uncertainty [y]: mean and std of 20 draws (--mc 20, seed 5): std = their "
              "spread (epistemic); 40 samples x 1 value");
    CHECK_OUT("cover68  cover95");
    CHECK_OUT("coverage curve, nominal: empirical:");
    snprintf(first, sizeof first, "%s", strstr(cli_out, "uncertainty:"));
    CHECK_RUN(0, "eval %s/drop.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --mc 20 --seed 5 --threads 2", d, d, d, d);
    CHECK(strstr(cli_out, "uncertainty:") && !strcmp(first, strstr(cli_out, "uncertainty:")));
    CHECK_RUN(1, "eval %s/drop.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --uncertainty", d, d, d, d);
    CHECK_OUT("predicts no standard deviation and no class probabilities: give --mc N (a "
              "model with dropout or Bayesian layers) or an ensemble (several --weights");
    test_rm_rf(d);
    return TEST_PASS;
}

/* An ensemble of 2 gaussian_nll members: the total std (aleatoric and epistemic) and the
 * aleatoric part alone; a classifier's pooled mean probabilities with --mc. */
TEST(cli_eval_uncertainty_ensemble_and_classes)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuqeval");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/gauss.model --data %s/x.npy --labels %s/y.npy --epochs 2 -q "
              "--ensemble 2 --curve none -o %s/g.safetensors", d, d, d, d);
    CHECK_RUN(0, "eval %s/gauss.model --weights %s/g.m0.safetensors --weights "
              "%s/g.m1.safetensors --data %s/x.npy --labels %s/y.npy --uncertainty", d, d, d,
              d, d);
    CHECK_OUT("the reports below pool 2 draws (an ensemble of 2 members); the loss and metrics "
              "above are of the first member");
    CHECK_OUT("uncertainty [mu]: gaussian_nll, mean and std of 2 draws (an ensemble of 2 "
              "members): std = total, sqrt(aleatoric^2 + epistemic^2)");
    CHECK_OUT("aleatoric std alone (the predicted sigmas");
    CHECK_RUN(0, "train %s/cls.model --data %s/xc.npy --labels %s/yc.npy --epochs 3 -q "
              "-o %s/c.safetensors", d, d, d, d);
    CHECK_RUN(0, "eval %s/cls.model --weights %s/c.safetensors --data %s/xc.npy --labels "
              "%s/yc.npy --mc 10 --calibrate-temperature", d, d, d, d);
    CHECK_OUT("pooled [p]: the mean probabilities of 10 draws (--mc 10, seed 0)");
    CHECK_OUT("calibration [p]: 3 classes, 60 rows, probabilities");
    CHECK_OUT("temperature scaling: T = ");
    CHECK_OUT("reliability (all rows");
    test_rm_rf(d);
    return TEST_PASS;
}

/* predict --classes with --mc and with an ensemble: each class's mean and std, and the
 * argmax of the means. */
TEST(cli_predict_classes_pooled)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuqeval");
    char path[128], line[256];
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/cls.model --data %s/xc.npy --labels %s/yc.npy --epochs 2 -q "
              "--ensemble 2 --curve none -o %s/c.safetensors", d, d, d, d);
    CHECK_RUN(0, "predict %s/cls.model --weights %s/c.m0.safetensors --data %s/xc.npy "
              "--mc 8 --classes -o %s/pc.csv", d, d, d, d);
    CHECK_OUT("pc.csv [60, 7]: the mean and std of 3 probabilities and the class of the mean");
    snprintf(path, sizeof path, "%s/pc.csv", d);
    FILE *f = fopen(path, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strncmp(line, "prob_0_mean,prob_0_std,prob_1_mean,prob_1_std,prob_2_mean,"
                         "prob_2_std,class", 69));
    CHECK_RUN(0, "predict %s/cls.model --weights %s/c.m0.safetensors --weights "
              "%s/c.m1.safetensors --data %s/xc.npy --classes -o %s/pe.npy", d, d, d, d, d);
    CHECK_OUT("ensemble: 2 members");
    ds_tensor *p = NULL;
    snprintf(path, sizeof path, "%s/pe.npy", d);
    CHECK(ds_npy_load(path, &p) == DS_OK && ds_tensor_ndim(p) == 2 &&
          ds_tensor_shape(p)[0] == 60 && ds_tensor_shape(p)[1] == 7);
    for (int i = 0; i < 60; i++) {
        const float *v = ds_tensor_data(p) + 7 * i;
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (v[2 * k] > v[2 * best])
                best = k;
        CHECK_NEAR(v[0] + v[2] + v[4], 1.0, 1e-5);
        CHECK(v[6] == (float)best && v[1] >= 0);
    }
    ds_tensor_free(p);
    CHECK_RUN(1, "predict %s/drop.model --weights %s/c.m0.safetensors --data %s/x.npy --mc 3 "
              "--classes -o %s/pd.npy", d, d, d, d);
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_eval_uncertainty_mc_bad_input)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuqeval");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/plain.model --data %s/x.npy --labels %s/y.npy --epochs 1 -q "
              "-o %s/w.safetensors", d, d, d, d);
    CHECK_RUN(2, "eval %s/plain.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --uncertainty --mc 0", d, d, d, d);
    CHECK_OUT("option '--mc': '0' is not an integer in [1, 100000]");
    CHECK_RUN(1, "eval %s/plain.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --uncertainty --mc 4", d, d, d, d);
    CHECK_OUT("deepsky: error: --mc 4: ");
    CHECK_OUT("plain.model: the model has no stochastic layer (dropout or Bayesian weights)");
    CHECK_RUN(2, "eval %s/plain.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --mc 4 --calibrate-temperature --save-temperature %s/t.safetensors",
              d, d, d, d, d);
    CHECK_OUT("--save-temperature stores a T for one set of weights");
    CHECK_RUN(2, "eval %s/plain.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "%s/y.npy --uncertainty --seed 3", d, d, d, d);
    CHECK_OUT("--seed is the seed of --val-split and of the --mc draws");
    test_rm_rf(d);
    return TEST_PASS;
}
