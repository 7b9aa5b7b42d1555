/* test_cli.c - the command line tool end to end: model files, every command, data formats,
 * resume, agreement with PyTorch through `deepsky grad`, and bad inputs (clear message,
 * exit status 1 or 2, never a crash: the tool under test is built with the sanitizers). */
#include "test.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_buf[1 << 16];

static const char *bin(void)
{
    const char *b = getenv("DEEPSKY");
    return b ? b : "build/deepsky-test";
}

/* Runs "deepsky <args>" with stdout and stderr captured in out_buf; returns the exit
 * status, or 128 + signal if it died. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp "
             "%s %s 2>&1", bin(), args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = 0;
    int st = pclose(p);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static char dir[256];

static const char *tmpdir(void)
{
    snprintf(dir, sizeof dir, "/tmp/deepsky_cli_XXXXXX");
    return mkdtemp(dir);
}

static void rm_rf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d);
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fputs(text, f);
    return fclose(f);
}

static int save_npy(const char *path, int nd, const int64_t *shape, const float *data)
{
    ds_tensor *t = ds_tensor_from(nd, shape, data);
    int rc = !t || ds_npy_save(t, path) != DS_OK;
    ds_tensor_free(t);
    return rc;
}

/* Whether <d>/<fa> and <d>/<fb> both load and hold the same tensors, bit for bit. */
static int same_tensors(const char *d, const char *fa, const char *fb)
{
    char p[640];
    ds_tensor_set *a = NULL, *b = NULL;
    snprintf(p, sizeof p, "%s/%s", d, fa);
    int ok = ds_safetensors_load(p, &a) == DS_OK;
    snprintf(p, sizeof p, "%s/%s", d, fb);
    ok = ok && ds_safetensors_load(p, &b) == DS_OK;
    ok = ok && ds_tensor_set_count(a) == ds_tensor_set_count(b);
    for (int i = 0; ok && i < ds_tensor_set_count(a); i++) {
        ds_tensor *ta = ds_tensor_set_at(a, i);
        ds_tensor *tb = ds_tensor_set_get(b, ds_tensor_set_name(a, i));
        ok = tb && ds_tensor_numel(ta) == ds_tensor_numel(tb) &&
             !memcmp(ds_tensor_data(ta), ds_tensor_data(tb), (size_t)ds_tensor_numel(ta) * 4);
    }
    ds_tensor_set_free(a);
    ds_tensor_set_free(b);
    return ok;
}

/* A small classification set: 64 images 1x6x6; class 1 when the top half is brighter. */
static int make_images(const char *d, int64_t n)
{
    char p[512];
    float *x = malloc((size_t)n * 36 * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    ds_rng r;
    ds_rng_seed(&r, 11);
    for (int64_t i = 0; i < n; i++) {
        double top = 0, bottom = 0;
        for (int k = 0; k < 36; k++) {
            x[i * 36 + k] = (float)ds_rng_normal(&r);
            if (k < 18)
                top += x[i * 36 + k];
            else
                bottom += x[i * 36 + k];
        }
        y[i] = top > bottom;
    }
    snprintf(p, sizeof p, "%s/x.npy", d);
    int rc = save_npy(p, 4, (int64_t[]){n, 1, 6, 6}, x);
    snprintf(p, sizeof p, "%s/y.npy", d);
    rc |= save_npy(p, 1, (int64_t[]){n}, y);
    free(x);
    free(y);
    return rc;
}

static const char *cls_model =
    "# a small classifier\n"
    "input name=img shape=1x6x6\n"
    "conv2d filters=4 kernel=3 padding=same activation=relu\n"
    "maxpool size=2\n"
    "flatten\n"
    "dense units=16 activation=relu\n"
    "dropout rate=0.25\n"
    "dense units=2 activation=softmax\n"
    "loss categorical_crossentropy\n"
    "optimizer adam lr=3e-3\n";

#define CHECK_RUN(want, ...)                                                                 \
    do {                                                                                     \
        int rc_ = run(__VA_ARGS__);                                                          \
        if (rc_ != (want))                                                                   \
            FAIL("%s:%d: exit status %d, expected %d; output:\n%s", __FILE__, __LINE__, rc_, \
                 (want), out_buf);                                                           \
    } while (0)
#define CHECK_OUT(text)                                                                      \
    do {                                                                                     \
        if (!strstr(out_buf, (text)))                                                        \
            FAIL("%s:%d: output lacks \"%s\":\n%s", __FILE__, __LINE__, (text), out_buf);    \
    } while (0)

TEST(cli_issue_example_model_is_accepted)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/e.model", d);
    CHECK(!write_text(m, "# galaxy ellipticity CNN\n"
                         "input   name=image shape=1x64x64\n"
                         "conv2d  filters=32 kernel=3 padding=same activation=relu\n"
                         "maxpool size=2\n"
                         "flatten\n"
                         "dense   units=128 activation=relu\n"
                         "dropout rate=0.5\n"
                         "dense   name=e units=2\n"
                         "loss    mse\n"
                         "optimizer adam lr=1e-3\n"));
    CHECK_RUN(0, "summary %s", m);
    CHECK_OUT("conv2d_1 (Conv2D)");
    CHECK_OUT("(None, 32, 64, 64)");
    CHECK_OUT("e (Dense)");
    CHECK_OUT("4,195,010");
    rm_rf(d);
    return TEST_PASS;
}

/* summary ends with the memory of a training step: parameters and their gradients, Adam's
 * two moments, and the planned values, which grow with --batch-size. */
TEST(cli_summary_memory_at_batch_size)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/w.model", d);
    /* 1000 x 1000 + 1000 + 1000 + 1 = 1,002,001 parameters: 8.0 MB with their gradients */
    CHECK(!write_text(m, "input shape=1000\ndense units=1000\ndense units=1\nloss mse\n"
                         "optimizer adam\n"));
    CHECK_RUN(0, "summary %s", m);
    CHECK_OUT("Memory for a training step at batch 32:");
    CHECK_OUT("parameters and their gradients 8.0 MB, optimizer state 8.0 MB");
    double v32 = -1, v1024 = -1;
    const char *p = strstr(out_buf, "values and gradients ");
    CHECK(p && sscanf(p, "values and gradients %lf", &v32) == 1);
    CHECK_RUN(0, "summary %s --batch-size 1024", m);
    CHECK_OUT("at batch 1024:");
    p = strstr(out_buf, "values and gradients ");
    CHECK(p && sscanf(p, "values and gradients %lf", &v1024) == 1);
    /* at least the input, the hidden layer and its gradient: 3 x 1024 x 1000 floats */
    if (!(v1024 >= 12.2 && v1024 > 20 * v32))
        FAIL("values and gradients: %.1f MB at batch 32, %.1f MB at 1024", v32, v1024);
    CHECK_RUN(2, "summary %s --batch-size many", m);
    CHECK_OUT("'--batch-size'");
    rm_rf(d);
    snprintf(msg_, cap_, "values and gradients %.1f MB at batch 32, %.1f MB at 1024", v32, v1024);
    return TEST_PASS;
}

/* The DAG example of the README: a skip connection and a second input. */
TEST(cli_readme_dag_example)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/dag.model", d);
    CHECK(!write_text(m, "input name=img shape=3x32x32\n"
                         "conv2d name=c1 filters=16 kernel=3 padding=same activation=relu\n"
                         "conv2d name=c2 filters=16 kernel=3 padding=same\n"
                         "add inputs=c1,c2                       # skip connection\n"
                         "relu\n"
                         "globalavgpool\n"
                         "input name=meta shape=4                # a second input\n"
                         "concat inputs=global_average_pooling2d_1,meta axis=1\n"
                         "dense units=1\n"
                         "loss mse\n"));
    CHECK_RUN(0, "summary %s", m);
    CHECK_OUT("add_1 (Add)");
    CHECK_OUT("c1, c2");
    CHECK_OUT("(None, 20)");
    rm_rf(d);
    return TEST_PASS;
}

TEST(cli_help_documents_every_command)
{
    CHECK_RUN(0, "help");
    const char *cmds[] = {"summary", "init", "train", "eval", "predict", "grad"};
    for (int i = 0; i < 6; i++) {
        CHECK_OUT(cmds[i]);
        char saved[1 << 12];
        snprintf(saved, sizeof saved, "%.4000s", out_buf);
        CHECK_RUN(0, "%s --help", cmds[i]);
        CHECK_OUT("usage: deepsky");
        snprintf(out_buf, sizeof out_buf, "%s", saved);
    }
    CHECK_RUN(0, "train --help");
    CHECK_OUT("--early-stopping");
    CHECK_OUT("--resume");
    CHECK_RUN(2, "frobnicate");
    CHECK_RUN(2, "train --bogus 3");
    CHECK_OUT("unknown option '--bogus'");
    return TEST_PASS;
}

TEST(cli_train_eval_predict_resume)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    CHECK(!make_images(d, 96));
    CHECK_RUN(0, "init %s --seed 2 -o %s/w0.safetensors", m, d);
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 6 --batch-size 16 "
              "--val-split 0.25 --seed 5 --scale standardize -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("epoch 6/6");
    CHECK_OUT("val_acc");
    char p[600];
    const char *files[] = {"w.safetensors", "w.best.safetensors", "w.ckpt.safetensors",
                           "w.log.csv", "w.curve.png"};
    for (int i = 0; i < (ds_has_feature("plot") ? 5 : 4); i++) {   /* no figure: NO_PLOT */
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        CHECK(access(p, R_OK) == 0);
    }
    CHECK_RUN(0, "eval %s --weights %s/w.safetensors --data %s/x.npy --labels %s/y.npy", m, d, d, d);
    CHECK_OUT("accuracy:");
    CHECK_OUT("confusion matrix");
    CHECK_OUT("AUROC");
    CHECK_RUN(0, "predict %s --weights %s/w.safetensors --data %s/x.npy -o %s/p.npy", m, d, d, d);
    ds_tensor *pr = NULL;
    snprintf(p, sizeof p, "%s/p.npy", d);
    CHECK(ds_npy_load(p, &pr) == DS_OK);
    CHECK(ds_tensor_ndim(pr) == 2 && ds_tensor_shape(pr)[0] == 96 && ds_tensor_shape(pr)[1] == 2);
    CHECK_NEAR(ds_tensor_data(pr)[0] + ds_tensor_data(pr)[1], 1.0, 1e-5);   /* probabilities */
    ds_tensor_free(pr);
    CHECK_RUN(0, "predict %s --weights %s/w.safetensors --data %s/x.npy -o %s/p.csv", m, d, d, d);

    /* resume: 3 epochs, then the same command to 6 epochs, equals 6 uninterrupted epochs */
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 6 --batch-size 16 "
              "--seed 9 -q -o %s/full.safetensors", m, d, d, d);
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 3 --batch-size 16 "
              "--seed 9 -q -o %s/part.safetensors", m, d, d, d);
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 6 --batch-size 16 "
              "--seed 9 --resume -o %s/part.safetensors", m, d, d, d);
    CHECK_OUT("resumed after epoch 3");
    CHECK(same_tensors(d, "full.safetensors", "part.safetensors"));
    /* a checkpoint of another run is refused */
    CHECK_RUN(1, "train %s --data %s/x.npy --labels %s/y.npy --epochs 6 --batch-size 8 "
              "--seed 9 --resume -o %s/part.safetensors", m, d, d, d);
    CHECK_OUT("other settings");
    rm_rf(d);
    return TEST_PASS;
}

TEST(cli_early_stopping_stops)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    CHECK(!make_images(d, 64));
    /* a learning rate so small that the validation loss stays where it started */
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 200 --val-split 0.5 "
              "--early-stopping 2 --optimizer sgd --lr 1e-12 --seed 1 -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("early stopping");
    CHECK_OUT("done: 3 epochs");
    rm_rf(d);
    return TEST_PASS;
}

/* deepsky grad reproduces PyTorch's loss, output and gradients for the three networks. */
TEST(cli_grad_matches_pytorch)
{
    const char *d = tmpdir();
    const char *nets[] = {"mlp", "cnn", "spectra"};
    for (int k = 0; k < 3; k++) {
        const char *n = nets[k];
        CHECK_RUN(0, "grad tests/fixtures/net_%s.model --weights tests/fixtures/net_%s.weights.safetensors "
                  "--data tests/fixtures/net_%s.x.npy --labels tests/fixtures/net_%s.y.npy -o %s/g.safetensors",
                  n, n, n, n, d);
        char p[512];
        snprintf(p, sizeof p, "%s/g.safetensors", d);
        ds_tensor_set *got = NULL;
        CHECK(ds_safetensors_load(p, &got) == DS_OK);
        char name[64];
        snprintf(name, sizeof name, "net_%s.grad", n);
        ds_tensor_set *ref = fixture_load(name, msg_, cap_);
        if (!ref)
            return TEST_FAIL;
        CHECK(ds_tensor_set_count(got) == ds_tensor_set_count(ref));
        /* absolute tolerance from the largest gradient: gradients that are exactly zero in
         * theory (a bias before batch norm) come out as float rounding noise */
        double scale = 0;
        for (int i = 0; i < ds_tensor_set_count(ref); i++) {
            if (!strcmp(ds_tensor_set_name(ref, i), "output") || !strcmp(ds_tensor_set_name(ref, i), "loss"))
                continue;
            const float *r = ds_tensor_data(ds_tensor_set_at(ref, i));
            for (int64_t j = 0; j < ds_tensor_numel(ds_tensor_set_at(ref, i)); j++)
                scale = fmax(scale, fabs(r[j]));
        }
        for (int i = 0; i < ds_tensor_set_count(ref); i++) {
            const char *key = ds_tensor_set_name(ref, i);
            ds_tensor *t = ds_tensor_set_get(got, key);
            if (!t)
                FAIL("%s: deepsky grad wrote no '%s'", n, key);
            if (fixture_compare(ref, key, ds_tensor_data(t), ds_tensor_numel(t), 1e-4,
                                1e-6 * scale, msg_, cap_))
                return TEST_FAIL;
        }
        ds_tensor_set_free(got);
        ds_tensor_set_free(ref);
    }
    rm_rf(d);
    return TEST_PASS;
}

/* A regression on a FITS catalogue (table) and a FITS cube, written with cfitsio. */
TEST(cli_fits_catalogue_regression)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    const char *d = tmpdir();
    enum { N = 200 };
    static float a[N], b[N], c[N], t[N];
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        a[i] = (float)ds_rng_normal(&r);
        b[i] = (float)ds_rng_normal(&r);
        c[i] = (float)ds_rng_normal(&r);
        t[i] = 2 * a[i] - b[i] + 0.5f;
    }
    char p[512], m[512];
    snprintf(p, sizeof p, "%s/cat.fits", d);
    CHECK(ds_table_save(p, 4, (const char *[]){"MAG_G", "MAG_R", "NOISE", "Z"}, N,
                        (const float *[]){a, b, c, t}) == DS_OK);
    snprintf(m, sizeof m, "%s/r.model", d);
    CHECK(!write_text(m, "input shape=2\ndense units=1\nloss mse\noptimizer adam lr=0.05\n"));
    CHECK_RUN(0, "train %s --data %s --columns mag_g,mag_r --label-columns z --epochs 60 "
              "--batch-size 20 -q -o %s/w.safetensors", m, p, d);
    CHECK_RUN(0, "eval %s --weights %s/w.safetensors --data %s --columns MAG_G,MAG_R "
              "--label-columns Z", m, d, p);
    CHECK_OUT("RMSE");
    const char *rm = strstr(out_buf, "all");
    CHECK(rm && atof(rm + 3) < 0.05);
    CHECK_RUN(0, "predict %s --weights %s/w.safetensors --data %s --columns 1,2 -o %s/z.fits",
              m, d, p, d);
    /* unknown column: the message lists the available ones */
    CHECK_RUN(1, "train %s --data %s --columns mag_q,mag_r --label-columns z -o %s/w2.safetensors",
              m, p, d);
    CHECK_OUT("mag_q");
    /* a cube [N, 8, 8] feeding an image input [1, 8, 8] */
    static float cube[N * 64];
    for (int i = 0; i < N * 64; i++)
        cube[i] = (float)ds_rng_normal(&r);
    for (int i = 0; i < N; i++)
        t[i] = cube[i * 64 + 27];   /* the pixel at row 3, column 3 */
    ds_tensor *ct = ds_tensor_from(3, (int64_t[]){N, 8, 8}, cube);
    snprintf(p, sizeof p, "%s/cube.fits", d);
    CHECK(ct && ds_array_save(ct, p, NULL) == DS_OK);
    ds_tensor_free(ct);
    snprintf(p, sizeof p, "%s/t.npy", d);
    CHECK(!save_npy(p, 1, (int64_t[]){N}, t));
    snprintf(m, sizeof m, "%s/i.model", d);
    CHECK(!write_text(m, "input shape=1x8x8\nflatten\ndense units=1\nloss mse\noptimizer adam lr=0.02\n"));
    CHECK_RUN(0, "train %s --data %s/cube.fits --labels %s/t.npy --epochs 80 --batch-size 20 -q "
              "-o %s/wc.safetensors", m, d, d, d);
    CHECK_RUN(0, "eval %s --weights %s/wc.safetensors --data %s/cube.fits --labels %s/t.npy", m, d, d, d);
    rm = strstr(out_buf, "all");
    CHECK(rm && atof(rm + 3) < 0.1);
    rm_rf(d);
    return TEST_PASS;
}

/* ---- bad inputs: a clear message, exit status 1 (2 for command-line usage) ---- */
TEST(cli_bad_model_files)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/bad.model", d);
    struct { const char *text, *want; } cases[] = {
        {"input shape=4\nconvolve filters=3\n", "bad.model:2: unknown layer 'convolve'"},
        {"input shape=4\ndense unit=3\n", "bad.model:2: dense: unknown option 'unit'"},
        {"input shape=4\ndense units=three\n", "bad.model:2: dense: option 'units': 'three' is not an integer"},
        {"input shape=4\ndense units=3 activation=relux\n", "unknown activation 'relux'"},
        {"input shape=1x8x8\nconv2d filters=3 kernel=3 padding=sometimes\n", "bad.model:2: conv2d: option 'padding'"},
        {"input shape=4\ndense units=3\nloss msq\n", "bad.model:3: unknown loss 'msq'"},
        {"input shape=4\ndense units=3\noptimizer adamax\n", "bad.model:3: unknown optimizer 'adamax'"},
        {"dense units=3\n", "bad.model:1: dense: no input"},
        {"input shape=1x4x4\nconv2d filters=2 kernel=7\n", "bad.model:2:"},
        {"input shape=4\ndense units=3 inputs=nowhere\n", "no layer named 'nowhere'"},
        {"input shape=4\ndense name=a units=3\ndense name=a units=2\n", "layer name 'a' is already used at line 2"},
        {"input shape=4\ndense units=2 activation=softmax\nloss categorical_crossentropy\n", NULL},
        {"input shape=4\ndense units=2\nloss categorical_crossentropy\n", "expects class probabilities"},
        {"input shape=4\ndropout rate=1.5\n", "bad.model:2: dropout: option 'rate'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(!write_text(m, cases[i].text));
        int rc = run("summary %s", m);
        if (!cases[i].want) {
            if (rc != 0)
                FAIL("case %zu: exit %d: %s", i, rc, out_buf);
            continue;
        }
        if (rc != 1 || !strstr(out_buf, cases[i].want))
            FAIL("case %zu: exit %d (want 1), output lacks \"%s\":\n%s", i, rc, cases[i].want, out_buf);
    }
    rm_rf(d);
    return TEST_PASS;
}

TEST(cli_bad_data)
{
    const char *d = tmpdir();
    char m[512], p[600];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    CHECK(!make_images(d, 32));
    /* missing file */
    CHECK_RUN(1, "train %s --data %s/nope.npy --labels %s/y.npy -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("nope.npy");
    /* wrong dtype: a unicode-string .npy */
    snprintf(p, sizeof p, "%s/s.npy", d);
    FILE *f = fopen(p, "wb");
    const char hdr[] = "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }";
    char h[128];
    memset(h, ' ', sizeof h);
    memcpy(h, hdr, sizeof hdr - 1);
    h[117] = '\n';
    fwrite("\x93NUMPY\x01\x00\x76\x00", 1, 10, f);
    fwrite(h, 1, 118, f);
    fwrite("abcdefghijklmnopqrstuvwx", 1, 24, f);
    fclose(f);
    CHECK_RUN(1, "train %s --data %s --labels %s/y.npy -o %s/w.safetensors", m, p, d, d);
    CHECK_OUT("dtype");
    /* data shape not matching the model's input */
    snprintf(p, sizeof p, "%s/x5.npy", d);
    static float z[32 * 25];
    CHECK(!save_npy(p, 4, (int64_t[]){32, 1, 5, 5}, z));
    CHECK_RUN(1, "train %s --data %s --labels %s/y.npy -o %s/w.safetensors", m, p, d, d);
    CHECK_OUT("does not fit the model's input");
    /* labels out of range */
    static float lab[32];
    for (int i = 0; i < 32; i++)
        lab[i] = (float)(i % 3);
    snprintf(p, sizeof p, "%s/y3.npy", d);
    CHECK(!save_npy(p, 1, (int64_t[]){32}, lab));
    CHECK_RUN(1, "train %s --data %s/x.npy --labels %s -o %s/w.safetensors", m, d, p, d);
    CHECK_OUT("label 2 of sample 2 is not a class index in [0, 2)");
    /* NaN in data */
    static float xn[32 * 36];
    xn[40] = NAN;
    snprintf(p, sizeof p, "%s/xn.npy", d);
    CHECK(!save_npy(p, 4, (int64_t[]){32, 1, 6, 6}, xn));
    CHECK_RUN(1, "train %s --data %s --labels %s/y.npy -o %s/w.safetensors", m, p, d, d);
    CHECK_OUT("NaN");
    xn[40] = INFINITY;
    CHECK(!save_npy(p, 4, (int64_t[]){32, 1, 6, 6}, xn));
    CHECK_RUN(1, "predict %s --weights %s/w.safetensors --data %s -o %s/p.npy", m, d, p, d);
    /* flags */
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --epochs -3 -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("--epochs");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --lr abc -o %s/w.safetensors", m, d, d, d);
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy", m, d, d);
    CHECK_OUT("-o W.safetensors is required");
    rm_rf(d);
    return TEST_PASS;
}

/* Truncating a file at several points gives an error naming it, never a crash. */
TEST(cli_truncated_files)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    const char *d = tmpdir();
    char m[512], p[600], q[600];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    CHECK(!make_images(d, 32));
    CHECK_RUN(0, "init %s -o %s/w.safetensors", m, d);
    /* a FITS cube and an IDX file of the same images */
    ds_tensor *x = NULL;
    snprintf(p, sizeof p, "%s/x.npy", d);
    CHECK(ds_npy_load(p, &x) == DS_OK);
    snprintf(p, sizeof p, "%s/x.fits", d);
    CHECK(ds_array_save(x, p, NULL) == DS_OK);
    ds_tensor_free(x);
    snprintf(p, sizeof p, "%s/x-idx3-ubyte", d);
    {
        FILE *f = fopen(p, "wb");
        unsigned char head[] = {0, 0, 8, 3, 0, 0, 0, 32, 0, 0, 0, 6, 0, 0, 0, 6};
        fwrite(head, 1, sizeof head, f);
        for (int i = 0; i < 32 * 36; i++)
            fputc(i % 251, f);
        fclose(f);
    }
    const char *files[] = {"x.npy", "x.fits", "x-idx3-ubyte", "w.safetensors"};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s", d, files[k]);
        struct stat sb;
        CHECK(stat(p, &sb) == 0);
        long cuts[] = {0, 5, 20, 100, sb.st_size / 2, sb.st_size - 1};
        for (int c = 0; c < 6; c++) {
            if (cuts[c] >= sb.st_size)
                continue;
            snprintf(q, sizeof q, "%s/cut_%s", d, files[k]);
            char cmd[1500];
            snprintf(cmd, sizeof cmd, "head -c %ld '%s' > '%s'", cuts[c], p, q);
            CHECK(system(cmd) == 0);
            int rc = k == 3 ? run("eval %s --weights %s --data %s/x.npy --labels %s/y.npy", m, q, d, d)
                            : run("predict %s --weights %s/w.safetensors --data %s -o %s/p.npy", m, d, q, d);
            if (rc != 1)
                FAIL("%s cut at %ld bytes: exit %d, expected 1:\n%s", files[k], cuts[c], rc, out_buf);
            if (!strstr(out_buf, "cut_"))
                FAIL("%s cut at %ld bytes: the message does not name the file:\n%s", files[k],
                     cuts[c], out_buf);
        }
    }
    rm_rf(d);
    return TEST_PASS;
}

TEST(cli_weights_from_another_model)
{
    const char *d = tmpdir();
    char m[512], m2[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    snprintf(m2, sizeof m2, "%s/o.model", d);
    CHECK(!write_text(m2, "input shape=1x6x6\nflatten\ndense units=8\ndense units=2 activation=softmax\n"
                          "loss categorical_crossentropy\n"));
    CHECK(!make_images(d, 16));
    CHECK_RUN(0, "init %s -o %s/w.safetensors", m2, d);
    CHECK_RUN(1, "eval %s --weights %s/w.safetensors --data %s/x.npy --labels %s/y.npy", m, d, d, d);
    CHECK_OUT("w.safetensors");
    CHECK_OUT("conv2d_1.weight");
    CHECK_OUT("missing");
    rm_rf(d);
    return TEST_PASS;
}

/* The flagship demo at small size (make demo-quick): it must run end to end, write its
 * outputs, and the CNN must beat predicting zero ellipticity (the demo exits 3 if not). */
TEST(demo_quick_cnn_beats_zero)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    const char *demo = getenv("DEEPSKY_DEMO");
    if (!demo)
        demo = "build/examples/ellipticity_demo";
    if (access(demo, X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo);
    const char *d = tmpdir();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --quick --out %s > %s/log.txt 2>&1", demo, d, d);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    char p[512];
    snprintf(p, sizeof p, "%s/log.txt", d);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(out_buf, 1, sizeof out_buf - 1, f) : 0;
    out_buf[n] = 0;
    if (f)
        fclose(f);
    if (rc != 0)
        FAIL("demo exit status %d (3: the CNN did not beat zero); log:\n%s", rc, out_buf);
    const char *files[] = {"results.md", "results.csv", "cnn.safetensors", "galaxies.png",
                           "true_vs_measured.png", "residuals_vs_snr.png", "learning_curve.png"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        if (access(p, R_OK) != 0)
            FAIL("demo did not write %s", files[i]);
    }
    const char *v = strstr(out_buf, "CNN RMSE ");
    snprintf(msg_, cap_, "%.120s", v ? v : "");
    char *nl = strchr(msg_, '\n');
    if (nl)
        *nl = 0;
    rm_rf(d);
    return TEST_PASS;
}

/* Starts "deepsky <args>" (output discarded) and SIGKILLs it after ms milliseconds, unless
 * it ended first; returns 1 if it was killed. */
static int run_and_kill(int ms, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s %s >/dev/null 2>&1", bin(), args);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    for (int t = 0; t < ms; t++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return 0;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 1;
}

/* A training run killed with SIGKILL at 10 random moments (the weights and checkpoint are
 * rewritten every epoch, so some kills land inside a write): every file left loads, and
 * --resume then reaches weights bit-identical to an uninterrupted run with the same seed. */
TEST(cli_train_survives_sigkill)
{
    const char *d = tmpdir();
    char m[512], args[2048], p[640];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    CHECK(!make_images(d, 480));
    const char *common = "--epochs 60 --batch-size 16 --seed 4 -q";
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy %s -o %s/full.safetensors", m, d, d,
              common, d);
    ds_rng r;
    ds_rng_seed(&r, 77);
    int killed = 0;
    snprintf(args, sizeof args, "train %s --data %s/x.npy --labels %s/y.npy %s --resume "
             "-o %s/part.safetensors", m, d, d, common, d);
    for (int k = 0; k < 10; k++) {
        killed += run_and_kill(30 + (int)ds_rng_below(&r, 120), args) == 1;
        const char *files[] = {"part.safetensors", "part.best.safetensors", "part.ckpt.safetensors"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", d, files[i]);
            if (access(p, R_OK) != 0)
                continue;
            ds_tensor_set *s = NULL;
            if (ds_safetensors_load(p, &s) != DS_OK)
                FAIL("after kill %d, %s does not load: %s", k + 1, files[i], ds_last_error());
            ds_tensor_set_free(s);
        }
    }
    CHECK(killed >= 3);   /* kills landed before the end (all 10 on this machine) */
    CHECK_RUN(0, "%s", args);
    CHECK(same_tensors(d, "full.safetensors", "part.safetensors"));
    snprintf(msg_, cap_, "%d of 10 runs killed, every file left loaded, resumed run identical",
             killed);
    rm_rf(d);
    return TEST_PASS;
}

/* A disk that fills up while the weights are written (a file size limit: ulimit -f, with
 * SIGXFSZ ignored so that the write fails with EFBIG as on a full disk): a clear error naming
 * the file, exit status 1, and the previous weights and checkpoint still load, unchanged. */
TEST(cli_train_full_disk_keeps_the_checkpoint)
{
    const char *d = tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!write_text(m, cls_model));
    CHECK(!make_images(d, 64));
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 2 --batch-size 16 "
              "--seed 4 -q -o %s/w.safetensors", m, d, d, d);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp %s/w.safetensors %s/w0.safetensors && cp %s/w.ckpt.safetensors "
             "%s/w0.ckpt.safetensors", d, d, d, d);
    CHECK(system(cmd) == 0);
    /* 4 blocks of 512 bytes: less than the weights file (626 parameters), the first written */
    snprintf(cmd, sizeof cmd, "trap '' XFSZ; ulimit -f 4; exec %s train %s --data %s/x.npy "
             "--labels %s/y.npy --epochs 4 --batch-size 16 --seed 4 -q --resume "
             "-o %s/w.safetensors 2>&1", bin(), m, d, d, d);
    FILE *pp = popen(cmd, "r");
    CHECK(pp);
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, pp);
    out_buf[n] = 0;
    int st = pclose(pp);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(out_buf, "cannot write") &&
             strstr(out_buf, "w.safetensors") && strstr(out_buf, "large");
    ok = ok && same_tensors(d, "w.safetensors", "w0.safetensors") &&
         same_tensors(d, "w.ckpt.safetensors", "w0.ckpt.safetensors");
    if (!ok)
        FAIL("status %d, output '%s'", st, out_buf);
    /* and no half-written temporary file is left behind */
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.tmp\\.'", d);
    pp = popen(cmd, "r");
    CHECK(pp);
    n = fread(out_buf + 1024, 1, 16, pp);
    out_buf[1024 + n] = 0;
    pclose(pp);
    CHECK(atoi(out_buf + 1024) == 0);
    snprintf(msg_, cap_, "%.200s", out_buf);
    for (char *c = msg_; *c; c++)
        if (*c == '\n')
            *c = ' ';
    rm_rf(d);
    return TEST_PASS;
}
