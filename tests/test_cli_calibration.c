/* test_cli_calibration.c - deepsky eval --uncertainty through the tool: the report of a
 * heteroscedastic head and its figures, temperature scaling of a classifier on
 * Fashion-MNIST (a synthetic set when the data are absent) lowering the ECE, the
 * temperature stored with the weights and applied by predict, and bad input. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <unistd.h>

#define FASHION "/usr/share/datasets/fashion-mnist"

static char dir[256];

static int write_text(const char *name, const char *text) { return test_write_in(dir, name, text); }

/* Saves rows [i0, i0 + n) of t (samples first) as dir/name. */
static int save_rows(ds_tensor *t, int64_t i0, int64_t n, const char *name)
{
    int64_t shape[DS_MAX_DIMS];
    int nd = ds_tensor_ndim(t);
    memcpy(shape, ds_tensor_shape(t), (size_t)nd * sizeof *shape);
    int64_t per = ds_tensor_numel(t) / shape[0];
    shape[0] = n;
    ds_tensor *s = ds_tensor_from(nd, shape, ds_tensor_data(t) + i0 * per);
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int rc = !s || ds_npy_save(s, p) != DS_OK;
    ds_tensor_free(s);
    return rc;
}

/* The numbers after the first occurrence of key in the last output (up to n of them). */
static int numbers_after(const char *key, double *v, int n)
{
    const char *s = strstr(cli_out, key);
    if (!s)
        return 0;
    s += strlen(key);
    int k = 0;
    for (char *end; k < n; s = end) {
        v[k] = strtod(s, &end);
        if (end == s)
            break;
        k++;
    }
    return k;
}

/* ---- a heteroscedastic head ---- */
static const char *het_model =
    "input shape=1\n"
    "dense name=h units=24 activation=tanh\n"
    "dense name=h2 units=24 activation=tanh\n"
    "dense name=mu units=1 inputs=h2\n"
    "dense name=lv units=1 inputs=h2\n"
    "loss gaussian_nll mean=mu logvar=lv\n"
    "optimizer adam lr=3e-3\n";

/* y = sin(x) + (0.1 + 0.2 |x|) noise, x uniform in [-3, 3]: rows [0, 1200) train, the rest
 * are held out. */
static int write_toy(void)
{
    enum { N = 1700 };
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){N, 1}), *y = ds_tensor_create(2, (int64_t[]){N, 1});
    if (!x || !y)
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 8);
    for (int i = 0; i < N; i++) {
        double v = 6 * ds_rng_uniform(&r) - 3;
        ds_tensor_data(x)[i] = (float)v;
        ds_tensor_data(y)[i] = (float)(sin(v) + (0.1 + 0.2 * fabs(v)) * ds_rng_normal(&r));
    }
    int rc = save_rows(x, 0, 1200, "x.npy") || save_rows(y, 0, 1200, "y.npy") ||
             save_rows(x, 1200, N - 1200, "xv.npy") || save_rows(y, 1200, N - 1200, "yv.npy") ||
             write_text("het.model", het_model);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return rc;
}

TEST(cli_calib_regression_report)
{
    CHECK(test_tmpdir(dir, sizeof dir, "clicalib"));
    CHECK(write_toy() == 0);
    bool plot = ds_has_feature("plot");
    CHECK_RUN(0, "train %s/het.model --data %s/x.npy --labels %s/y.npy --epochs 60 "
              "--batch-size 64 --curve none --log none -o %s/het.safetensors", dir, dir, dir, dir);
    CHECK_RUN(0, "eval %s/het.model --weights %s/het.safetensors --data %s/xv.npy --labels "
              "%s/yv.npy --uncertainty %s%s%s%s%s", dir, dir, dir, dir,
              plot ? "--pit " : "", plot ? dir : "", plot ? "/pit.png --coverage " : "",
              plot ? dir : "", plot ? "/cov.png" : "");
    CHECK_OUT("uncertainty [mu]: gaussian_nll, std = exp(logvar / 2); 500 samples x 1 value");
    CHECK_OUT("coverage curve, nominal: empirical:");
    double all[6];
    CHECK(numbers_after("\n   all ", all, 6) == 6);
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/pit.png", dir);
    snprintf(p2, sizeof p2, "%s/cov.png", dir);
    int figs = access(p1, F_OK) == 0 && access(p2, F_OK) == 0;
    test_rm_rf(dir);
    /* a trained head on held-out data: close to nominal, loosely */
    if (!(all[0] > 0.6 && all[0] < 0.76 && all[1] > 0.9 && all[1] < 0.99 && fabs(all[2]) < 0.2 &&
          all[3] > 0.85 && all[3] < 1.15))
        FAIL("held-out calibration of the toy: cover68 %.4f cover95 %.4f z %.4f +- %.4f", all[0],
             all[1], all[2], all[3]);
    snprintf(msg_, cap_, "held-out cover68 %.3f, cover95 %.3f, z %+.3f +- %.3f, CRPS %.4f",
             all[0], all[1], all[2], all[3], all[5]);
    char note[300];
    snprintf(note, sizeof note, "%s", msg_);
    if (!plot)
        SKIP("figures need plotting support (built with NO_PLOT=1); %s", note);
    CHECK(figs);
    return TEST_PASS;
}

/* ---- a classifier ---- */
static const char *cls_model = "input shape=%d\n"
                               "dense name=h units=32 activation=relu\n"
                               "dense name=logits units=10\n"
                               "loss sparse_categorical_crossentropy from_logits=true\n"
                               "optimizer adam lr=3e-3\n";

/* 600 training and 1200 held-out samples: Fashion-MNIST's test set (pixels / 255) or, when
 * absent, 10 overlapping Gaussian classes in 20 dimensions. Returns the feature count. */
static int write_classes(bool *real)
{
    ds_tensor *x = NULL, *y = NULL;
    *real = access(FASHION "/t10k-images-idx3-ubyte.gz", R_OK) == 0 &&
            access(FASHION "/t10k-labels-idx1-ubyte.gz", R_OK) == 0;
    int F = *real ? 784 : 20;
    if (*real) {
        if (ds_array_load(FASHION "/t10k-images-idx3-ubyte.gz", NULL, &x) ||
            ds_array_load(FASHION "/t10k-labels-idx1-ubyte.gz", NULL, &y))
            return 0;
        ds_tensor_reshape(x, 2, (int64_t[]){10000, 784});
        for (int64_t i = 0; i < 1800 * 784; i++)
            ds_tensor_data(x)[i] /= 255;
    } else {
        x = ds_tensor_create(2, (int64_t[]){1800, F});
        y = ds_tensor_create(1, (int64_t[]){1800});
        ds_rng r;
        ds_rng_seed(&r, 9);
        float centre[10][20];
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < F; k++)
                centre[c][k] = (float)ds_rng_normal(&r);
        for (int i = 0; x && y && i < 1800; i++) {
            int c = i % 10;
            ds_tensor_data(y)[i] = (float)c;
            for (int k = 0; k < F; k++)
                ds_tensor_data(x)[i * F + k] = centre[c][k] + 1.2f * (float)ds_rng_normal(&r);
        }
    }
    char model[400];
    snprintf(model, sizeof model, cls_model, F);
    int rc = !x || !y || save_rows(x, 0, 600, "fx.npy") || save_rows(y, 0, 600, "fy.npy") ||
             save_rows(x, 600, 1200, "vx.npy") || save_rows(y, 600, 1200, "vy.npy") ||
             write_text("cls.model", model);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return rc ? 0 : F;
}

/* predict with the calibrated weights gives the raw logits divided by the stored T. */
static int check_predict(char *msg_, size_t cap_)
{
    char w2[300], a[300], b[300];
    snprintf(w2, sizeof w2, "%s/cal.safetensors", dir);
    snprintf(a, sizeof a, "%s/raw.npy", dir);
    snprintf(b, sizeof b, "%s/cal.npy", dir);
    CHECK_RUN(0, "predict %s/cls.model --weights %s/cls.safetensors --data %s/vx.npy -o %s", dir,
              dir, dir, a);
    CHECK_RUN(0, "predict %s/cls.model --weights %s --data %s/vx.npy -o %s", dir, w2, dir, b);
    CHECK_OUT("deepsky: note: the prediction of 'logits' is calibrated by the temperature T =");
    ds_tensor_set *s = NULL;
    ds_tensor *p = NULL, *q = NULL;
    CHECK(ds_safetensors_load(w2, &s) == DS_OK);
    const char *tv = ds_tensor_set_meta_get(s, "calib.temperature.logits");
    double T = tv ? atof(tv) : 0;
    ds_tensor_set_free(s);
    CHECK(T > 0 && ds_npy_load(a, &p) == DS_OK && ds_npy_load(b, &q) == DS_OK);
    double worst = 0;
    for (int64_t i = 0; i < ds_tensor_numel(p); i++)
        worst = fmax(worst, fabs(ds_tensor_data(q)[i] - ds_tensor_data(p)[i] / T));
    ds_tensor_free(p);
    ds_tensor_free(q);
    CHECK(worst < 1e-5);
    return 0;
}

TEST(cli_calib_temperature_lowers_ece)
{
    CHECK(test_tmpdir(dir, sizeof dir, "clicalib"));
    bool real, plot = ds_has_feature("plot");
    int F = write_classes(&real);
    CHECK(F > 0);
    CHECK_RUN(0, "train %s/cls.model --data %s/fx.npy --labels %s/fy.npy --epochs 20 "
              "--batch-size 32 --curve none --log none -o %s/cls.safetensors", dir, dir, dir, dir);
    CHECK_RUN(0, "eval %s/cls.model --weights %s/cls.safetensors --data %s/vx.npy --labels "
              "%s/vy.npy --calibrate-temperature --val-split 0.5 --save-temperature "
              "%s/cal.safetensors %s%s%s", dir, dir, dir, dir, dir, plot ? "--reliability " : "",
              plot ? dir : "", plot ? "/rel.png" : "");
    CHECK_OUT("calibration [logits]: 10 classes, 1200 rows, logits");
    CHECK_OUT("fitted on 600 rows (--val-split 0.5), reported on the other 600");
    double raw[5], cal[5];
    const char *second = strstr(cli_out, "\nheld-out ");
    CHECK(second && numbers_after("\nheld-out ", raw, 5) == 5);
    const char *s = strstr(second + 1, "\nheld-out ");
    CHECK(s);
    char *end;
    cal[0] = strtod(s + 10, &end);
    for (int k = 1; k < 5; k++)
        cal[k] = strtod(end, &end);
    char rel[300];
    snprintf(rel, sizeof rel, "%s/rel.png", dir);
    int drawn = access(rel, F_OK) == 0;
    int pred = check_predict(msg_, cap_);
    if (!pred) {   /* the stored temperature in eval's own report */
        CHECK_RUN(0, "eval %s/cls.model --weights %s/cal.safetensors --data %s/vx.npy --labels "
                  "%s/vy.npy --uncertainty", dir, dir, dir, dir);
        CHECK_OUT("all, stored T");
    }
    test_rm_rf(dir);
    if (pred)
        return TEST_FAIL;
    if (!(raw[0] == 1 && cal[0] > 1 && cal[1] < raw[1] && cal[3] < raw[3] && cal[4] == raw[4]))
        FAIL("held-out: T 1: ECE %.4f NLL %.4f acc %.4f; T %.4g: ECE %.4f NLL %.4f acc %.4f",
             raw[1], raw[3], raw[4], cal[0], cal[1], cal[3], cal[4]);
    snprintf(msg_, cap_, "%s: T = %.3f, held-out ECE %.4f -> %.4f, NLL %.4f -> %.4f",
             real ? "Fashion-MNIST subset" : "synthetic classes (no Fashion-MNIST)", cal[0],
             raw[1], cal[1], raw[3], cal[3]);
    char note[300];
    snprintf(note, sizeof note, "%s", msg_);
    if (!plot)
        SKIP("reliability diagram needs plotting support (built with NO_PLOT=1); %s", note);
    CHECK(drawn);
    return TEST_PASS;
}

/* ---- bad input ---- */
static int bad_input_setup(void)
{
    return write_text("c.model", "input shape=3\ndense name=out units=4\n"
                      "loss sparse_categorical_crossentropy from_logits=true\n") ||
           write_text("r.model", "input shape=3\ndense name=out units=1\nloss mse\n") ||
           write_text("g.model", "input name=x shape=3\ndense name=mu units=1\n"
                      "dense name=lv units=1 inputs=x\nloss gaussian_nll mean=mu logvar=lv\n") ||
           write_text("x.csv", "a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n") ||
           write_text("y.csv", "y\n0\n1\n2\n3\n") || write_text("yr.csv", "y\n0.5\n1\n2\n3\n") ||
           write_text("bad.csv", "y\n0\n1\n7\n3\n");
}

#define EVAL "eval %s/c.model --weights %s/c.safetensors --data %s/x.csv --labels %s/y.csv "

TEST(cli_calib_bad_input)
{
    CHECK(test_tmpdir(dir, sizeof dir, "clicalib"));
    CHECK(bad_input_setup() == 0);
    CHECK_RUN(0, "init %s/c.model -o %s/c.safetensors", dir, dir);
    CHECK_RUN(0, "init %s/r.model -o %s/r.safetensors", dir, dir);
    CHECK_RUN(2, EVAL "--val-split 0.5", dir, dir, dir, dir);
    CHECK_OUT("--val-split goes with --calibrate-temperature");
    CHECK_RUN(2, EVAL "--calibrate-temperature --val-split 1", dir, dir, dir, dir);
    CHECK_OUT("strictly between 0 and 1");
    CHECK_RUN(2, EVAL "--calibrate-temperature --save-temperature %s/t.npy", dir, dir, dir, dir,
              dir);
    CHECK_OUT("give a name ending in .safetensors");
    CHECK_RUN(2, EVAL "--calibrate-temperature --save-temperature %s/c.safetensors", dir, dir,
              dir, dir, dir);
    CHECK_OUT("c.safetensors is also --weights: writing it would destroy an input");
    CHECK_RUN(2, EVAL "--reliability %s/r.jpg", dir, dir, dir, dir, dir);
    CHECK_OUT("give a name ending in .png");
    CHECK_RUN(0, "eval %s/c.model --weights %s/c.safetensors --data %s/x.csv --labels "
              "%s/y.csv --uncertainty", dir, dir, dir, dir);
    CHECK_RUN(1, "eval %s/c.model --weights %s/c.safetensors --data %s/x.csv --labels "
              "%s/bad.csv --uncertainty", dir, dir, dir, dir);
    CHECK_OUT("bad.csv: label 7 of sample 2 is not a class index in [0, 4)");
    CHECK_RUN(1, "eval %s/r.model --weights %s/r.safetensors --data %s/x.csv --labels "
              "%s/yr.csv --uncertainty", dir, dir, dir, dir);
    CHECK_OUT("predicts no standard deviation and no class probabilities: give --mc N");
    CHECK_OUT("or train a model whose loss is 'gaussian_nll mean=LAYER logvar=LAYER'");
    CHECK_RUN(0, "init %s/g.model -o %s/g.safetensors", dir, dir);
    CHECK_RUN(1, "eval %s/g.model --weights %s/g.safetensors --data %s/x.csv --labels "
              "%s/yr.csv --calibrate-temperature", dir, dir, dir, dir);
    CHECK_OUT("uncertainty [mu]: gaussian_nll");
    CHECK_OUT("--calibrate-temperature: no loss of the model is a classifier's");
    if (!ds_has_feature("plot")) {
        CHECK_RUN(1, EVAL "--pit %s/p.png", dir, dir, dir, dir, dir);
        CHECK_OUT("deepsky was built without plotting support (NO_PLOT=1)");
        test_rm_rf(dir);
        SKIP("the figure options' errors need plotting support (built with NO_PLOT=1)");
    }
    CHECK_RUN(1, EVAL "--pit %s/p.png", dir, dir, dir, dir, dir);
    CHECK_OUT("--pit: loss 'out' is a classifier: --pit is for gaussian_nll heads");
    CHECK_RUN(1, EVAL "--reliability other=%s/p.png", dir, dir, dir, dir, dir);
    CHECK_OUT("--reliability other=");
    CHECK_OUT("no loss has that name (the losses that read labels: out)");
    char p[300];
    snprintf(p, sizeof p, "%s/p.png", dir);
    int none = access(p, F_OK) != 0;
    test_rm_rf(dir);
    CHECK(none);   /* no figure after an error */
    return TEST_PASS;
}
