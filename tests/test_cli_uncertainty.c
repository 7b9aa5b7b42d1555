/* test_cli_uncertainty.c - predict --mc N, --samples, ensembles (train --ensemble K and
 * several --weights) end to end: file layouts, thread-count determinism, bad input; eval
 * --uncertainty and predict --classes on the pooled draws. */
#include "test.h"
#include "spawn.h"
#include "toy_uq.h"

#include <stdbool.h>
#include <unistd.h>

static char dir[64];

/* A 3-class toy, xc.npy [60, 2] and yc.npy [60]: classes by the sign of x0 + x1, and
 * x0 > 1. */
static int class_toy(const char *d)
{
    char p[128];
    int rc = 0;
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
    return rc;
}

/* The toy's data x.npy, y.npy, the class toy and a model file of each kind in d. */
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
    snprintf(p, sizeof p, "%s/drop.model", d);
    rc |= test_write_text(p, drop);
    snprintf(p, sizeof p, "%s/gauss.model", d);
    rc |= test_write_text(p, gauss);
    snprintf(p, sizeof p, "%s/plain.model", d);
    rc |= test_write_text(p, plain);
    snprintf(p, sizeof p, "%s/cls.model", d);
    rc |= test_write_text(p, cls);
    return rc | class_toy(d);
}

static ds_tensor *load(const char *d, const char *name)
{
    char p[128];
    ds_tensor *t = NULL;
    snprintf(p, sizeof p, "%s/%s", d, name);
    return ds_npy_load(p, &t) == DS_OK ? t : NULL;
}

static bool same_file(const char *d, const char *a, const char *b)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cmp -s '%s/%s' '%s/%s'", d, a, d, b);
    return system(cmd) == 0;
}

/* --mc N writes [N, outputs, 2] (mean, std) as .npy, NAME_mean and NAME_std columns in a
 * table, and --samples the draws [N, samples, outputs]; the same seed gives the same files
 * on 1 and 2 threads. */
TEST(cli_predict_mc_layouts_and_threads)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/drop.model --data %s/x.npy --labels %s/y.npy --epochs 2 -q "
              "-o %s/w.safetensors", d, d, d, d);
    for (int t = 1; t <= 2; t++) {
        CHECK_RUN(0, "predict %s/drop.model --weights %s/w.safetensors --data %s/x.npy --mc 6 "
                  "--seed 4 --threads %d --batch-size 16 -o %s/p%d.npy --samples %s/s%d.npy",
                  d, d, d, t, d, t, d, t);
    }
    CHECK_OUT("p2.npy [40, 1, 2]: mean, std");
    CHECK_OUT("s2.npy [6, 40, 1]: 6 draws of 40 samples");
    CHECK(same_file(d, "p1.npy", "p2.npy") && same_file(d, "s1.npy", "s2.npy"));
    ds_tensor *p = load(d, "p1.npy"), *s = load(d, "s1.npy");
    CHECK(p && s);
    for (int i = 0; i < 40; i++) {
        double m = 0, v = 0;
        for (int k = 0; k < 6; k++)
            m += ds_tensor_data(s)[k * 40 + i] / 6.0;
        for (int k = 0; k < 6; k++)
            v += pow(ds_tensor_data(s)[k * 40 + i] - m, 2) / 6.0;
        CHECK_NEAR(ds_tensor_data(p)[2 * i], m, 1e-5);
        CHECK_NEAR(ds_tensor_data(p)[2 * i + 1], sqrt(v), 1e-5);
    }
    ds_tensor_free(p);
    ds_tensor_free(s);
    CHECK_RUN(0, "predict %s/drop.model --weights %s/w.safetensors --data %s/x.npy --mc 6 "
              "--seed 4 -o %s/p.csv --samples %s/s.csv", d, d, d, d, d);
    char path[128], line[256];
    snprintf(path, sizeof path, "%s/p.csv", d);
    FILE *f = fopen(path, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strncmp(line, "y_mean,y_std", 12));
    snprintf(path, sizeof path, "%s/s.csv", d);
    f = fopen(path, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strncmp(line, "draw,sample,y", 13));
    test_rm_rf(d);
    return TEST_PASS;
}

/* A gaussian_nll model: mean, std, std_aleatoric, std_epistemic with std^2 = a^2 + e^2;
 * plain predict gives the mean and the standard deviation (positive). */
TEST(cli_predict_mc_gaussian_parts)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/gauss.model --data %s/x.npy --labels %s/y.npy --epochs 2 -q "
              "-o %s/g.safetensors", d, d, d, d);
    CHECK_RUN(0, "predict %s/gauss.model --weights %s/g.safetensors --data %s/x.npy "
              "-o %s/plain.npy", d, d, d, d);
    CHECK_RUN(0, "predict %s/gauss.model --weights %s/g.safetensors --data %s/x.npy --mc 5 "
              "-o %s/g.npy", d, d, d, d);
    CHECK_OUT("[40, 1, 4]: mean, std, std_aleatoric, std_epistemic");
    ds_tensor *p = load(d, "g.npy"), *q = load(d, "plain.npy");
    CHECK(p && q && ds_tensor_shape(q)[1] == 2);
    for (int i = 0; i < 40; i++) {
        const float *v = ds_tensor_data(p) + 4 * i;
        CHECK(v[2] > 0 && v[3] > 0 && ds_tensor_data(q)[2 * i + 1] > 0);
        CHECK_NEAR(v[1] * v[1], v[2] * v[2] + v[3] * v[3], 1e-5 * (1 + v[1] * v[1]));
    }
    ds_tensor_free(p);
    ds_tensor_free(q);
    CHECK_RUN(0, "predict %s/gauss.model --weights %s/g.safetensors --data %s/x.npy --mc 3 "
              "-o %s/g.csv", d, d, d, d);
    char path[128], line[256];
    snprintf(path, sizeof path, "%s/g.csv", d);
    FILE *f = fopen(path, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strncmp(line, "mu_mean,mu_std,mu_std_aleatoric,mu_std_epistemic", 48));
    if (ds_has_feature("fits")) {
        CHECK_RUN(0, "predict %s/gauss.model --weights %s/g.safetensors --data %s/x.npy "
                  "--mc 3 -o %s/g.fits", d, d, d, d);
        CHECK_OUT("g.fits [40, 4]: mean, std, std_aleatoric, std_epistemic");
    }
    test_rm_rf(d);
    return TEST_PASS;
}

/* train --ensemble K writes K members (each resumes); predict pools them; members of
 * another model are refused. */
TEST(cli_train_ensemble_and_predict)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/gauss.model --data %s/x.npy --labels %s/y.npy --epochs 2 "
              "--ensemble 3 --seed 10 --curve none -o %s/e.safetensors", d, d, d, d);
    CHECK_OUT("ensemble member 3 of 3, seed 12:");
    CHECK_OUT("predict with --weights ");
    char path[128];
    for (int i = 0; i < 3; i++) {
        ds_tensor_set *s = NULL;
        snprintf(path, sizeof path, "%s/e.m%d.safetensors", d, i);
        CHECK(ds_safetensors_load(path, &s) == DS_OK);
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        CHECK(!strcmp(ds_tensor_set_meta_get(s, "ensemble.member"), want));
        CHECK(!strcmp(ds_tensor_set_meta_get(s, "ensemble.members"), "3"));
        CHECK(!strcmp(ds_tensor_set_meta_get(s, "ensemble.seed"), "10"));
        CHECK(!strncmp(ds_tensor_set_meta_get(s, "ensemble.model"), "fnv1a64 ", 8));
        ds_tensor_set_free(s);
    }
    /* resumed: every member's checkpoint is found and the run goes on to 3 epochs */
    CHECK_RUN(0, "train %s/gauss.model --data %s/x.npy --labels %s/y.npy --epochs 3 "
              "--ensemble 3 --seed 10 --curve none --resume -o %s/e.safetensors", d, d, d, d);
    CHECK_OUT("resumed after epoch 2");
    CHECK_RUN(0, "predict %s/gauss.model --data %s/x.npy --weights %s/e.m0.safetensors "
              "--weights %s/e.m1.safetensors --weights %s/e.m2.safetensors -o %s/p.npy "
              "--samples %s/s.npy", d, d, d, d, d, d, d);
    CHECK_OUT("ensemble: 3 members");
    CHECK_OUT("p.npy [40, 1, 4]: mean, std, std_aleatoric, std_epistemic");
    CHECK_OUT("s.npy [3, 40, 2]: 3 draws of 40 samples");
    /* a member of another model (the same layers, another file) */
    snprintf(path, sizeof path, "%s/other.model", d);
    CHECK(!test_write_text(path, "# another model\n"
                            "input name=x shape=1\n"
                            "dense name=h units=16 activation=tanh\n"
                            "dropout name=dr rate=0.1\n"
                            "dense name=mu units=1 inputs=dr\n"
                            "dense name=lv units=1 inputs=dr\n"
                            "loss gaussian_nll mean=mu logvar=lv\n"));
    CHECK_RUN(0, "train %s/other.model --data %s/x.npy --labels %s/y.npy --epochs 1 -q "
              "--ensemble 1 -o %s/o.safetensors", d, d, d, d);
    CHECK_RUN(1, "predict %s/gauss.model --data %s/x.npy --weights %s/e.m0.safetensors "
              "--weights %s/o.m0.safetensors -o %s/p.npy", d, d, d, d, d);
    CHECK_OUT("o.m0.safetensors' come from different models (ensemble.model fnv1a64 ");
    test_rm_rf(d);
    return TEST_PASS;
}

/* A model with two outputs: -o and --samples NAME=FILE for each; an output of F > 1
 * values gets the columns NAME_J_mean, NAME_J_std. Weights from `deepsky init`. */
TEST(cli_predict_mc_several_outputs)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
    char m[128], line[256];
    CHECK(d && !setup(d));
    snprintf(m, sizeof m, "%s/two.model", d);
    CHECK(!test_write_text(m, "input name=x shape=1\n"
                         "dense name=h units=8 activation=relu\n"
                         "dropout name=dr rate=0.3\n"
                         "dense name=a units=1 inputs=dr\n"
                         "dense name=b units=2 inputs=dr\n"
                         "output a,b\n"));
    CHECK_RUN(0, "init %s -o %s/w.safetensors", m, d);
    CHECK_RUN(0, "predict %s --weights %s/w.safetensors --data %s/x.npy --mc 4 -o a=%s/pa.npy "
              "-o b=%s/pb.csv --samples b=%s/sb.csv --samples a=%s/sa.npy", m, d, d, d, d, d, d);
    CHECK_OUT("pa.npy [40, 1, 2]: mean, std");
    CHECK_OUT("pb.csv [40, 4]: mean, std");
    CHECK_OUT("sa.npy [4, 40, 1]: 4 draws of 40 samples");
    CHECK_OUT("sb.csv [160, 4]: 4 draws of 40 samples");
    snprintf(m, sizeof m, "%s/pb.csv", d);
    FILE *f = fopen(m, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strncmp(line, "b_0_mean,b_0_std,b_1_mean,b_1_std", 33));
    snprintf(m, sizeof m, "%s/sb.csv", d);
    f = fopen(m, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(!strncmp(line, "draw,sample,b_0,b_1", 19));
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_predict_mc_bad_input)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
    CHECK(d && !setup(d));
    CHECK_RUN(0, "train %s/plain.model --data %s/x.npy --labels %s/y.npy --epochs 1 -q "
              "-o %s/w.safetensors", d, d, d, d);
    CHECK_RUN(2, "predict %s/plain.model --weights %s/w.safetensors --data %s/x.npy --mc 0 "
              "-o %s/p.npy", d, d, d, d);
    CHECK_OUT("option '--mc': '0' is not an integer in [1, 100000]");
    CHECK_RUN(1, "predict %s/plain.model --weights %s/w.safetensors --data %s/x.npy --mc 4 "
              "-o %s/p.npy", d, d, d, d);
    CHECK_OUT("deepsky: error: --mc 4: ");
    CHECK_OUT("plain.model: the model has no stochastic layer (dropout or Bayesian weights)");
    char p[128];
    snprintf(p, sizeof p, "%s/p.npy", d);
    CHECK(access(p, F_OK) != 0);
    CHECK_RUN(2, "predict %s/plain.model --weights %s/w.safetensors --data %s/x.npy "
              "--samples %s/s.npy -o %s/p.npy", d, d, d, d, d);
    CHECK_OUT("--samples keeps the draws of --mc N or of an ensemble");
    CHECK_RUN(2, "predict %s/plain.model --weights %s/w.safetensors --data %s/x.npy --mc 3 "
              "--mc-dropout -o %s/p.npy", d, d, d, d);
    CHECK_OUT("--mc-dropout draws one sample and --mc N pools N: give one of them");
    CHECK_RUN(2, "train %s/plain.model --data %s/x.npy --labels %s/y.npy --ensemble 2 "
              "--log l.csv -o %s/w.safetensors", d, d, d, d);
    CHECK_OUT("--ensemble: each member writes its own log and curve");
    CHECK_RUN(2, "train %s/plain.model --data %s/x.npy --labels %s/y.npy --ensemble 0 "
              "-o %s/w.safetensors", d, d, d, d);
    CHECK_OUT("option '--ensemble': '0' is not an integer in [1, 64]");
    test_rm_rf(d);
    return TEST_PASS;
}

/* ---- eval --uncertainty on pooled draws, predict --classes pooled ---- */
/* An MC-dropout regression (mse, no std of its own): the spread of 20 draws is the error
 * bar; the same seed gives the same report on 1 and 2 threads. Without --mc: the error
 * says how to get one. */
TEST(cli_eval_uncertainty_mc)
{
    static char first[1 << 16];
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
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
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
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
 * argmax of the means; without --classes, the mean and std of the probabilities. */
TEST(cli_predict_classes_pooled)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
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
    /* without --classes: the pooled mean and std of the probabilities, not of the logits */
    CHECK_RUN(0, "predict %s/cls.model --weights %s/c.m0.safetensors --data %s/xc.npy "
              "--mc 8 -o %s/pl.npy", d, d, d, d);
    CHECK_OUT("output 'p': a classifier's draws, pooled as probabilities");
    snprintf(path, sizeof path, "%s/pl.npy", d);
    CHECK(ds_npy_load(path, &p) == DS_OK && ds_tensor_ndim(p) == 3 &&
          ds_tensor_shape(p)[0] == 60 && ds_tensor_shape(p)[1] == 3 && ds_tensor_shape(p)[2] == 2);
    for (int i = 0; i < 60; i++) {
        const float *v = ds_tensor_data(p) + 6 * i;   /* [class][mean, std] */
        CHECK_NEAR(v[0] + v[2] + v[4], 1.0, 1e-5);
        for (int k = 0; k < 3; k++)
            CHECK(v[2 * k] >= 0 && v[2 * k] <= 1 && v[2 * k + 1] >= 0 && v[2 * k + 1] <= 0.5);
    }
    ds_tensor_free(p);
    CHECK_RUN(1, "predict %s/drop.model --weights %s/c.m0.safetensors --data %s/x.npy --mc 3 "
              "--classes -o %s/pd.npy", d, d, d, d);
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_eval_uncertainty_mc_bad_input)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cliuq");
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
