/* test_cli.c - the command line tool end to end: model files, every command, data formats,
 * resume, agreement with PyTorch through `deepsky grad`, and bad inputs (clear message,
 * exit status 1 or 2, never a crash: the tool under test is built with the sanitizers). */
#include "test.h"
#include "spawn.h"

#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

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

/* The temporary files of the atomic writer in d ("<file>.tmp.<pid>"), as " name name..."
 * in buf; returns how many. */
static int tmp_files(const char *d, char *buf, size_t cap)
{
    int n = 0;
    size_t len = 0;
    buf[0] = 0;
    DIR *dp = opendir(d);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        if (!strstr(e->d_name, ".tmp."))
            continue;
        n++;
        if (len < cap)
            len += (size_t)snprintf(buf + len, cap - len, " %s", e->d_name);
    }
    if (dp)
        closedir(dp);
    return n;
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

#define CHECK_OUTF(...)                                                                      \
    do {                                                                                     \
        char want_[1024];                                                                    \
        snprintf(want_, sizeof want_, __VA_ARGS__);                                          \
        CHECK_OUT(want_);                                                                    \
    } while (0)

TEST(cli_issue_example_model_is_accepted)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/e.model", d);
    CHECK(!test_write_text(m, "# galaxy ellipticity CNN\n"
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
    test_rm_rf(d);
    return TEST_PASS;
}

/* summary ends with the memory of a training step: parameters and their gradients, Adam's
 * two moments, and the planned values, which grow with --batch-size. */
TEST(cli_summary_memory_at_batch_size)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/w.model", d);
    /* 1000 x 1000 + 1000 + 1000 + 1 = 1,002,001 parameters: 8.0 MB with their gradients */
    CHECK(!test_write_text(m, "input shape=1000\ndense units=1000\ndense units=1\nloss mse\n"
                         "optimizer adam\n"));
    CHECK_RUN(0, "summary %s", m);
    CHECK_OUT("Memory for a training step at batch 32:");
    CHECK_OUT("parameters and their gradients 8.0 MB, optimizer state 8.0 MB");
    double v32 = -1, v1024 = -1;
    const char *p = strstr(cli_out, "values and gradients ");
    CHECK(p && sscanf(p, "values and gradients %lf", &v32) == 1);
    CHECK_RUN(0, "summary %s --batch-size 1024", m);
    CHECK_OUT("at batch 1024:");
    p = strstr(cli_out, "values and gradients ");
    CHECK(p && sscanf(p, "values and gradients %lf", &v1024) == 1);
    /* at least the input, the hidden layer and its gradient: 3 x 1024 x 1000 floats */
    if (!(v1024 >= 12.2 && v1024 > 20 * v32))
        FAIL("values and gradients: %.1f MB at batch 32, %.1f MB at 1024", v32, v1024);
    CHECK_RUN(2, "summary %s --batch-size many", m);
    CHECK_OUT("option '--batch-size': 'many' is not an integer in [1, ");
    test_rm_rf(d);
    snprintf(msg_, cap_, "values and gradients %.1f MB at batch 32, %.1f MB at 1024", v32, v1024);
    return TEST_PASS;
}

/* The DAG example of the README: a skip connection and a second input. */
TEST(cli_readme_dag_example)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/dag.model", d);
    CHECK(!test_write_text(m, "input name=img shape=3x32x32\n"
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
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_help_documents_every_command)
{
    CHECK_RUN(0, "help");
    const char *cmds[] = {"summary", "init", "train", "eval", "predict", "grad"};
    for (int i = 0; i < 6; i++) {
        CHECK_OUT(cmds[i]);
        char saved[1 << 12];
        snprintf(saved, sizeof saved, "%.4000s", cli_out);
        CHECK_RUN(0, "%s --help", cmds[i]);
        CHECK_OUT("usage: deepsky");
        snprintf(cli_out, sizeof cli_out, "%s", saved);
    }
    CHECK_RUN(0, "train --help");
    CHECK_OUT("--early-stopping");
    CHECK_OUT("--resume");
    CHECK_RUN(2, "frobnicate");
    CHECK_OUT("unknown command 'frobnicate'");
    CHECK_RUN(2, "train --bogus 3");
    CHECK_OUT("unknown option '--bogus'");
    return TEST_PASS;
}

TEST(cli_train_eval_predict_resume)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
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
    CHECK_OUTF("%s/part.ckpt.safetensors: the checkpoint was made with other settings", d);
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_early_stopping_stops)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
    CHECK(!make_images(d, 64));
    /* a learning rate so small that the validation loss stays where it started */
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy --epochs 200 --val-split 0.5 "
              "--early-stopping 2 --optimizer sgd --lr 1e-12 --seed 1 -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("early stopping");
    CHECK_OUT("done: 3 epochs");
    test_rm_rf(d);
    return TEST_PASS;
}

/* deepsky grad reproduces PyTorch's loss, output and gradients for the three networks. */
TEST(cli_grad_matches_pytorch)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
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
    test_rm_rf(d);
    return TEST_PASS;
}

/* A regression on a FITS catalogue (table) and a FITS cube, written with cfitsio. */
TEST(cli_fits_catalogue_regression)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
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
    CHECK(!test_write_text(m, "input shape=2\ndense units=1\nloss mse\noptimizer adam lr=0.05\n"));
    CHECK_RUN(0, "train %s --data %s --columns mag_g,mag_r --label-columns z --epochs 60 "
              "--batch-size 20 -q -o %s/w.safetensors", m, p, d);
    CHECK_RUN(0, "eval %s --weights %s/w.safetensors --data %s --columns MAG_G,MAG_R "
              "--label-columns Z", m, d, p);
    CHECK_OUT("RMSE");
    const char *rm = strstr(cli_out, "all");
    CHECK(rm && atof(rm + 3) < 0.05);
    CHECK_RUN(0, "predict %s --weights %s/w.safetensors --data %s --columns 1,2 -o %s/z.fits",
              m, d, p, d);
    /* unknown column: the message lists the available ones */
    CHECK_RUN(1, "train %s --data %s --columns mag_q,mag_r --label-columns z -o %s/w2.safetensors",
              m, p, d);
    CHECK_OUTF("%s: no column 'mag_q' (columns: MAG_G, MAG_R, NOISE, Z)", p);
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
    CHECK(!test_write_text(m, "input shape=1x8x8\nflatten\ndense units=1\nloss mse\n"
                              "optimizer adam lr=0.02\n"));
    CHECK_RUN(0, "train %s --data %s/cube.fits --labels %s/t.npy --epochs 80 --batch-size 20 -q "
              "-o %s/wc.safetensors", m, d, d, d);
    CHECK_RUN(0, "eval %s --weights %s/wc.safetensors --data %s/cube.fits --labels %s/t.npy", m, d, d, d);
    rm = strstr(cli_out, "all");
    CHECK(rm && atof(rm + 3) < 0.1);
    test_rm_rf(d);
    return TEST_PASS;
}

/* ---- bad inputs: a clear message, exit status 1 (2 for command-line usage) ---- */
TEST(cli_bad_model_files)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/bad.model", d);
    struct { const char *text, *want; } cases[] = {
        {"input shape=4\nconvolve filters=3\n", "bad.model:2: unknown layer 'convolve'"},
        {"input shape=4\ndense unit=3\n", "bad.model:2: dense: unknown option 'unit'"},
        {"input shape=4\ndense units=three\n", "bad.model:2: dense: option 'units': 'three' is not an integer in [1, "},
        {"input shape=4\ndense units=3 activation=relux\n",
         "bad.model:2: dense: option 'activation': unknown activation 'relux'"},
        {"input shape=1x8x8\nconv2d filters=3 kernel=3 padding=sometimes\n", "bad.model:2: conv2d: option 'padding': 'sometimes' is not valid"},
        {"input shape=4\ndense units=3\nloss msq\n", "bad.model:3: unknown loss 'msq'"},
        {"input shape=4\ndense units=3\noptimizer adamax\n", "bad.model:3: unknown optimizer 'adamax'"},
        {"dense units=3\n", "bad.model:1: dense: no input"},
        {"input shape=1x4x4\nconv2d filters=2 kernel=7\n",
         "bad.model:2: conv 'conv2d_1': kernel 7x7 (dilated: 7x7) is larger than the padded input 4x4"},
        {"input shape=4\ndense units=3 inputs=nowhere\n", "bad.model:2: dense: option 'inputs': no layer named 'nowhere'"},
        {"input shape=4\ndense name=a units=3\ndense name=a units=2\n", "bad.model:3: layer name 'a' is already used at line 2"},
        {"input shape=4\ndense units=2 activation=softmax\nloss categorical_crossentropy\n", NULL},
        {"input shape=4\ndense units=2\nloss categorical_crossentropy\n", "bad.model:3: loss categorical_crossentropy expects class probabilities"},
        {"input shape=4\ndropout rate=1.5\n", "bad.model:2: dropout: option 'rate': '1.5' is not a number in [0, "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(!test_write_text(m, cases[i].text));
        int rc = cli_run("summary %s", m);
        if (!cases[i].want) {
            if (rc != 0)
                FAIL("case %zu: exit %d: %s", i, rc, cli_out);
            continue;
        }
        if (rc != 1 || !strstr(cli_out, cases[i].want))
            FAIL("case %zu: exit %d (want 1), output lacks \"%s\":\n%s", i, rc, cases[i].want, cli_out);
    }
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_bad_data)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512], p[600];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
    CHECK(!make_images(d, 32));
    CHECK_RUN(0, "init %s -o %s/w0.safetensors", m, d);
    /* missing files: data, labels */
    CHECK_RUN(1, "train %s --data %s/nope.npy --labels %s/y.npy -o %s/w.safetensors", m, d, d, d);
    CHECK_OUTF("cannot open '%s/nope.npy': No such file or directory", d);
    CHECK_RUN(1, "train %s --data %s/x.npy --labels %s/nolabels.npy -o %s/w.safetensors", m, d, d, d);
    CHECK_OUTF("cannot open '%s/nolabels.npy': No such file or directory", d);
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
    CHECK_OUTF("%s: dtype '<U3' is not supported", p);
    /* data shape not matching the model's input */
    snprintf(p, sizeof p, "%s/x5.npy", d);
    static float z[32 * 25];
    CHECK(!save_npy(p, 4, (int64_t[]){32, 1, 5, 5}, z));
    CHECK_RUN(1, "train %s --data %s --labels %s/y.npy -o %s/w.safetensors", m, p, d, d);
    CHECK_OUTF("%s: data of shape [32, 1, 5, 5] does not fit the model's input 'img'", p);
    /* fewer labels than samples */
    static float lab[32];
    snprintf(p, sizeof p, "%s/y31.npy", d);
    CHECK(!save_npy(p, 1, (int64_t[]){31}, lab));
    CHECK_RUN(1, "train %s --data %s/x.npy --labels %s -o %s/w.safetensors", m, d, p, d);
    CHECK_OUTF("%s/x.npy has 32 samples but %s has 31 labels", d, p);
    /* labels out of range */
    for (int i = 0; i < 32; i++)
        lab[i] = (float)(i % 3);
    snprintf(p, sizeof p, "%s/y3.npy", d);
    CHECK(!save_npy(p, 1, (int64_t[]){32}, lab));
    CHECK_RUN(1, "train %s --data %s/x.npy --labels %s -o %s/w.safetensors", m, d, p, d);
    CHECK_OUT("label 2 of sample 2 is not a class index in [0, 2)");
    /* NaN and Inf in data (element 40 is in sample 1) and labels, for every command that
     * reads them; the weights exist, so that only the data can be at fault */
    static float xn[32 * 36];
    snprintf(p, sizeof p, "%s/xn.npy", d);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const char *bad_name[] = {"NaN", "+Inf", "-Inf"};
    for (int k = 0; k < 3; k++) {
        xn[40] = bad[k];
        CHECK(!save_npy(p, 4, (int64_t[]){32, 1, 6, 6}, xn));
        CHECK_RUN(1, "train %s --data %s --labels %s/y.npy -o %s/w.safetensors", m, p, d, d);
        CHECK_OUTF("%s: element 40 (sample 1) is %s", p, bad_name[k]);
        CHECK_RUN(1, "predict %s --weights %s/w0.safetensors --data %s -o %s/p.npy", m, d, p, d);
        CHECK_OUTF("%s: element 40 (sample 1) is %s", p, bad_name[k]);
        CHECK_RUN(1, "eval %s --weights %s/w0.safetensors --data %s --labels %s/y.npy", m, d, p, d);
        CHECK_OUTF("%s: element 40 (sample 1) is %s", p, bad_name[k]);
    }
    for (int i = 0; i < 32; i++)
        lab[i] = (float)(i % 2);
    lab[7] = NAN;
    snprintf(p, sizeof p, "%s/yn.npy", d);
    CHECK(!save_npy(p, 1, (int64_t[]){32}, lab));
    CHECK_RUN(1, "train %s --data %s/x.npy --labels %s -o %s/w.safetensors", m, d, p, d);
    CHECK_OUTF("%s: element 7 (sample 7) is NaN", p);
    /* none of these runs wrote weights or left a temporary file */
    snprintf(p, sizeof p, "%s/w.safetensors", d);
    CHECK(access(p, F_OK) != 0);
    char left[1024];
    if (tmp_files(d, left, sizeof left) != 0)
        FAIL("temporary files left behind:%s", left);
    /* flags */
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --epochs -3 -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("option '--epochs': '-3' is not an integer in [1, ");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --lr abc -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("option '--lr': 'abc' is not a number in [");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --batch-size 0 -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("option '--batch-size': '0' is not an integer in [1, ");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --val-split 1.5 -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("option '--val-split': '1.5' is not a number in [0, 1]");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --scale sideways -o %s/w.safetensors", m, d, d, d);
    CHECK_OUT("option '--scale': 'sideways' is not none, standardize");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy --epochs", m, d, d);
    CHECK_OUT("option '--epochs' needs a value");
    CHECK_RUN(2, "train %s --data %s/x.npy --labels %s/y.npy", m, d, d);
    CHECK_OUT("-o W.safetensors is required");
    CHECK_RUN(2, "predict %s --data %s/x.npy -o %s/p.npy", m, d, d);
    CHECK_OUT("--weights W, --data X and -o P are required");
    test_rm_rf(d);
    return TEST_PASS;
}

/* Truncating a file at several points gives an error naming it, never a crash. */
TEST(cli_truncated_files)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512], p[600], q[600];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
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
            int rc = k == 3 ? cli_run("eval %s --weights %s --data %s/x.npy --labels %s/y.npy", m, q, d, d)
                            : cli_run("predict %s --weights %s/w.safetensors --data %s -o %s/p.npy", m, d, q, d);
            if (rc != 1)
                FAIL("%s cut at %ld bytes: exit %d, expected 1:\n%s", files[k], cuts[c], rc, cli_out);
            char want[700];
            snprintf(want, sizeof want, "deepsky: error: %s: ", q);
            if (!strstr(cli_out, want))
                FAIL("%s cut at %ld bytes: the message does not start with the file's name:\n%s",
                     files[k], cuts[c], cli_out);
        }
    }
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_weights_from_another_model)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512], m2[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
    snprintf(m2, sizeof m2, "%s/o.model", d);
    CHECK(!test_write_text(m2, "input shape=1x6x6\nflatten\ndense units=8\n"
                               "dense units=2 activation=softmax\n"
                               "loss categorical_crossentropy\n"));
    CHECK(!make_images(d, 16));
    CHECK_RUN(0, "init %s -o %s/w.safetensors", m2, d);
    CHECK_RUN(1, "eval %s --weights %s/w.safetensors --data %s/x.npy --labels %s/y.npy", m, d, d, d);
    CHECK_OUTF("%s/w.safetensors: 5 mismatches with the model: 'conv2d_1.weight' [4, 1, 3, 3] "
               "is missing", d);
    CHECK_OUT("'dense_1.weight' has shape [8, 36], the model expects [16, 36]");
    test_rm_rf(d);
    return TEST_PASS;
}

/* The flagship demo at small size (make demo-quick): it must run end to end, write its
 * outputs, and the CNN must beat predicting zero ellipticity (the demo exits 3 if not). */
/* The ellipticity demo's binary: $DEEPSKY_DEMO, else the build's. */
static const char *demo_bin(void)
{
    const char *d = getenv("DEEPSKY_DEMO");
    return d ? d : "build/examples/ellipticity_demo";
}

/* Runs the ellipticity demo with args and --out d; its output (stdout and stderr) goes to
 * d/log.txt and into cli_out. Returns its exit status. */
static int run_demo(const char *demo, const char *d, const char *args)
{
    char cmd[1024], p[512];
    snprintf(cmd, sizeof cmd, "%s %s --out %s > %s/log.txt 2>&1", demo, args, d, d);
    int st = system(cmd);
    snprintf(p, sizeof p, "%s/log.txt", d);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(cli_out, 1, sizeof cli_out - 1, f) : 0;
    cli_out[n] = 0;
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TEST(demo_quick_cnn_beats_zero)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    const char *demo = demo_bin();
    if (access(demo, X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo);
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char p[512];
    /* an earlier run's files under the names that misled (the best as cnn.best), and a
     * file of the user's: the first two go, the last stays */
    const char *stale[] = {"cnn.best.safetensors", "cnn.ckpt.safetensors", "notes.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d, stale[i]);
        CHECK(!test_write_text(p, "old"));
    }
    int rc = run_demo(demo, d, "--quick");
    if (rc != 0)
        FAIL("demo exit status %d (3: the CNN did not beat zero); log:\n%s", rc, cli_out);
    const char *files[] = {"results.md", "results.csv", "cnn.safetensors", "galaxies.png",
                           "true_vs_measured.png", "residuals_vs_snr.png", "learning_curve.png",
                           "cnn.last.safetensors", "notes.txt", "cnn.mse.safetensors"};
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        if (access(p, R_OK) != 0)
            FAIL("demo did not write %s", files[i]);
    }
    const char *gone[] = {"cnn.best.safetensors", "cnn.ckpt.safetensors",
                          "cnn.last.best.safetensors", "cnn.last.ckpt.safetensors"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", d, gone[i]);
        if (access(p, F_OK) == 0)
            FAIL("the demo left %s", gone[i]);
    }
    /* cnn.safetensors: the best epoch, which the tables used; cnn.last: the last */
    ds_weights_info wb, wl;
    ds_tensor_set *sb = NULL, *sl = NULL;
    snprintf(p, sizeof p, "%s/cnn.safetensors", d);
    CHECK(ds_safetensors_load(p, &sb) == DS_OK);
    ds_weights_info_get(sb, &wb);
    snprintf(p, sizeof p, "%s/cnn.last.safetensors", d);
    ds_status ls = ds_safetensors_load(p, &sl);
    ds_weights_info_get(sl, &wl);
    /* --quick's 3 epochs by default: 2 of the MSE (cnn.mse.*), then 1 of loss msb (cnn.*) */
    char used[96];
    snprintf(used, sizeof used, "the tables use %s/cnn.safetensors (epoch %d of 1, best "
             "validation loss", d, wb.best_epoch);
    bool ok = ls == DS_OK && wb.epoch >= 1 && wb.epoch == wb.best_epoch && wb.epochs_run == 1 &&
              wl.epoch == 1 && wl.epochs_run == 1 && wl.best_epoch == wb.epoch &&
              wb.command && strstr(wb.command, "--quick") && strstr(cli_out, used);
    ds_tensor_set_free(sb);
    ds_tensor_set_free(sl);
    if (!ok)
        FAIL("cnn.safetensors epoch %d of %d (best %d), cnn.last.safetensors epoch %d of %d; "
             "log lacks '%s'?\n%s", wb.epoch, wb.epochs_run, wb.best_epoch, wl.epoch,
             wl.epochs_run, used, cli_out);
    /* the RMSE verdict compares the CNN with re-Gaussianization on the same galaxies */
    snprintf(p, sizeof p, "%s/results.md", d);
    char *md = test_read_file(p, NULL);
    CHECK(md);
    ok = strstr(md, "**RMSE against re-Gaussianization**") &&
         strstr(md, "| SNR | CNN, all galaxies | CNN, the same galaxies |") &&
         strstr(cli_out, "SNR bins on the galaxies re-Gaussianization measured (");
    free(md);
    if (!ok)
        FAIL("results.md or the log lacks the RMSE verdict on the same galaxies; log:\n%s",
             cli_out);
    test_note_line(msg_, cap_, cli_out, "CNN RMSE ", 120);
    test_rm_rf(d);
    return TEST_PASS;
}

/* --loss msb --warm F: the MSE network first (cnn.mse.safetensors), then the msb loss
 * from its best weights, and the table comparing the two. */
TEST(demo_msb_warm_start)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    const char *demo = demo_bin();
    if (access(demo, X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo);
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char p[512];
    int rc = run_demo(demo, d, "--quick --loss msb --warm 0.5 --train 600 --per-bin 20 "
                      "--shear-per-bin 96 --epochs 2");
    if (rc != 0 && rc != 3)   /* 3: the tiny CNN did not beat zero, which is allowed here */
        FAIL("demo exit status %d; log:\n%s", rc, cli_out);
    const char *files[] = {"cnn.mse.safetensors", "cnn.safetensors", "training_log.mse.csv",
                           "training_log.csv", "results.md"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        if (access(p, R_OK) != 0)
            FAIL("demo did not write %s; log:\n%s", files[i], cli_out);
    }
    CHECK(strstr(cli_out, "starting from the weights of") != NULL);
    CHECK(strstr(cli_out, "The msb network against its MSE warm start") != NULL);
    CHECK(strstr(cli_out, "ellipticity_msb.model") != NULL);
    test_rm_rf(d);
    return TEST_PASS;
}

/* Every bad flag of the ellipticity demo is a usage error (status 2) naming the flag and its
 * value, before anything is simulated or written (the log is the only file in d). */
TEST(demo_bad_flags_name_the_flag)
{
    const char *demo = demo_bin();
    if (access(demo, X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo);
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    CHECK(d);
    const struct {
        const char *args, *text;
    } bad[] = {
        {"--bogus", "ellipticity demo: error: unknown option '--bogus'"},
        {"--seed abc", "option '--seed' needs a whole number in [0, "},
        {"--train 1e4", "option '--train' needs a whole number in [100, 10000000], got '1e4'"},
        {"--epochs 0", "option '--epochs' needs a whole number in [1, 10000], got '0'"},
        {"--budget soon", "option '--budget' needs seconds in [0, 1e6] (0: no limit), got 'soon'"},
        {"--warm 1", "option '--warm' needs a share in [0, 1), got '1'"},
        {"--realizations 3", "option '--realizations' needs a divisor of the batch of 64, got '3'"},
        {"--shear-per-bin 12",
         "option '--shear-per-bin' needs a multiple of 8 (shear cycles), got '12'"},
        {"--loss mae", "option '--loss' needs msb or mse, got 'mae'"},
        {"--model ''", "option '--model' needs a non-empty value"},
        {"--weights a.safetensors --init b.safetensors",
         "--weights (measure given weights) and --init (train from them) exclude each other"},
        {"--quick --realizations 8",
         "--loss msb: the 500 validation galaxies are not a multiple of --realizations 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run_demo(demo, d, bad[i].args);
        if (rc != 2 || !strstr(cli_out, bad[i].text) ||
            !strstr(cli_out, "usage: ellipticity_demo") || strstr(cli_out, "simulating"))
            FAIL("ellipticity_demo %s: status %d (expected 2), output lacks \"%s\" or the "
                 "usage:\n%s", bad[i].args, rc, bad[i].text, cli_out);
    }
    const char *only[] = {"log.txt"}, *extra = NULL;
    CHECK(test_folder_holds(d, only, 1, &extra) == 0);
    test_rm_rf(d);
    return TEST_PASS;
}

/* --weights W: no training, the tables of given weights; on the same seed's test set they
 * match the tables of the run that trained W, row for row. */
TEST(demo_measures_given_weights)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    const char *demo = demo_bin();
    if (access(demo, X_OK) != 0)
        SKIP("%s not built (make test builds it)", demo);
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char p[600], args[768], d2[520];
    const char *small = "--quick --train 400 --per-bin 20 --shear-per-bin 96";
    snprintf(args, sizeof args, "%s --epochs 1", small);
    int rc = run_demo(demo, d, args);
    if (rc != 0 && rc != 3)   /* 3: the tiny CNN did not beat zero, which is allowed here */
        FAIL("demo exit status %d; log:\n%s", rc, cli_out);
    snprintf(p, sizeof p, "%s/results.md", d);
    char *trained = test_read_file(p, NULL);
    snprintf(d2, sizeof d2, "%s/measured", d);
    CHECK(mkdir(d2, 0700) == 0);   /* run_demo writes its log there */
    snprintf(args, sizeof args, "%s --weights %s/cnn.safetensors", small, d);
    rc = run_demo(demo, d2, args);
    snprintf(p, sizeof p, "%s/results.md", d2);
    char *measured = test_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/cnn.safetensors", d2);
    bool wrote = access(p, F_OK) == 0;   /* nothing trained, nothing written */
    /* every table row of the CNN, raw, calibrated and shear, as in the training run */
    int rows = 0, missing = 0;
    char row[400] = "";
    for (const char *q = trained; q && measured && (q = strstr(q, "| CNN (8 symmetries averaged) |")); q++) {
        size_t len = strcspn(q, "\n");
        snprintf(row, sizeof row, "%.*s", (int)len, q);
        missing += !strstr(measured, row);
        rows++;
    }
    bool said = measured && strstr(measured, "CNN weights measured, no training");
    free(trained);
    free(measured);
    if ((rc != 0 && rc != 3) || !said || wrote || missing || rows != 14)   /* 5 raw, 5 calibrated, 4 shear */
        FAIL("demo --weights: exit status %d, %s, %s, %d of %d CNN rows differ from the "
             "training run's (last: %s); log:\n%s", rc, said ? "says so" : "does not say it measured",
             wrote ? "wrote cnn.safetensors" : "wrote no weights", missing, rows, row, cli_out);
    /* --weights with --init is a usage error */
    snprintf(args, sizeof args, "%s --weights %s/cnn.safetensors --init %s/cnn.safetensors",
             small, d, d);
    CHECK(run_demo(demo, d2, args) == 2);
    /* --realizations K must divide the batch of 64 rows */
    CHECK(run_demo(demo, d2, "--quick --loss msb --realizations 3") == 2);
    CHECK(run_demo(demo, d2, "--quick --loss msb --realizations 1") == 2);
    test_rm_rf(d);
    return TEST_PASS;
}

/* Starts "deepsky <args>" and SIGKILLs it after ms milliseconds, unless it ended first.
 * Returns 1 if it was killed, 0 if it ended cleanly, -1 otherwise (a failure, a sanitizer
 * report, or no start), with its output in cli_out. */
static int run_and_kill(int ms, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s %s", cli_bin(), args);
    cli_proc p;
    if (cli_start(&p, cmd, NULL) != 0)
        return -1;
    if (cli_poll(&p, ms) == CLI_ENDED)
        return cli_finish(&p, cli_out, sizeof cli_out) == 0 ? 0 : -1;
    return cli_kill(&p, cli_out, sizeof cli_out) == 128 + SIGKILL ? 1 : -1;
}

/* A training run killed with SIGKILL at 10 random moments (the weights and checkpoint are
 * rewritten every epoch, --checkpoint-every 0; cli_kill_lands_inside_a_write places kills
 * inside writes; tests/test_cli_resume.c kills between coalesced writes): every
 * file left loads, the only other files are temporary ones, "<output>.tmp.<pid>", and
 * --resume then reaches weights bit-identical to an uninterrupted run with the same seed. */
TEST(cli_train_survives_sigkill)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512], args[2048], p[640];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
    CHECK(!make_images(d, 480));
    const char *common = "--epochs 60 --batch-size 16 --seed 4 --checkpoint-every 0 -q";
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy %s -o %s/full.safetensors", m, d, d,
              common, d);
    ds_rng r;
    ds_rng_seed(&r, 77);
    int killed = 0;
    snprintf(args, sizeof args, "train %s --data %s/x.npy --labels %s/y.npy %s "
             "--resume-if-exists -o %s/part.safetensors", m, d, d, common, d);
    for (int k = 0; k < 10; k++) {
        int rc = run_and_kill(30 + (int)ds_rng_below(&r, 120), args);
        if (rc < 0)
            FAIL("run %d neither ended cleanly nor was killed:\n%s", k + 1, cli_out);
        killed += rc;
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
    DIR *dp = opendir(d);
    CHECK(dp);
    int ntmp = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        const char *ok[] = {".", "..", "c.model", "x.npy", "y.npy", "full.safetensors",
                            "full.best.safetensors", "full.ckpt.safetensors", "full.log.csv",
                            "full.curve.png", "part.safetensors", "part.best.safetensors",
                            "part.ckpt.safetensors", "part.log.csv", "part.curve.png"};
        int known = 0;
        for (size_t i = 0; i < sizeof ok / sizeof ok[0] && !known; i++) {
            size_t n = strlen(ok[i]);
            known = !strcmp(e->d_name, ok[i]) ||
                    (!strncmp(e->d_name, ok[i], n) && !strncmp(e->d_name + n, ".tmp.", 5) &&
                     strspn(e->d_name + n + 5, "0123456789") == strlen(e->d_name + n + 5));
            ntmp += known && strstr(e->d_name, ".tmp.") != NULL;
        }
        if (!known) {
            closedir(dp);
            FAIL("after the kills: an unexpected file '%s'", e->d_name);
        }
    }
    closedir(dp);
    CHECK_RUN(0, "%s", args);
    CHECK(same_tensors(d, "full.safetensors", "part.safetensors"));
    snprintf(msg_, cap_, "%d of 10 runs killed, every file left loaded, %d temporary files "
             "left, resumed run identical", killed, ntmp);
    test_rm_rf(d);
    return TEST_PASS;
}

/* The whole file at path (malloc'd, *n bytes), or NULL if it cannot be read. */
static unsigned char *read_all(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    *n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)*n + 1)) && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    if (f)
        fclose(f);
    return b;
}

/* Whether a and b hold the same bytes (both NULL: both absent). */
static int same_bytes(const unsigned char *a, long na, const unsigned char *b, long nb)
{
    return (!a && !b) || (a && b && na == nb && !memcmp(a, b, (size_t)na));
}

/* The epoch a checkpoint file says it holds (its fit.state), or -1 if it does not load. */
static int ckpt_epoch(const char *path)
{
    ds_tensor_set *s = NULL;
    if (ds_safetensors_load(path, &s) != DS_OK)
        return -1;
    ds_tensor *t = ds_tensor_set_get(s, "fit.state");
    int e = t ? (int)ds_tensor_data(t)[0] : -1;
    ds_tensor_set_free(s);
    return e;
}

static int loads(const char *path)
{
    ds_tensor_set *s = NULL;
    int ok = ds_safetensors_load(path, &s) == DS_OK;
    ds_tensor_set_free(s);
    return ok;
}

/* One run of "exec deepsky train ..." (cmd) stopped by the writer's test hook inside the
 * write of file, before or after its rename, looked at, then SIGKILLed. Before the rename:
 * file is still what it was (prev) and the complete new file is in "<file>.tmp.<pid>", whose
 * name goes to left; after: file is new, complete, and no temporary file is left. Either
 * way the kill changes nothing. Returns 0, or 1 with msg set. */
static int kill_in_write(const char *cmd, const char *file, int before, char *left,
                         size_t left_cap, char *msg, size_t cap)
{
    char hook[700], env[800], tmp[700];
    long nprev, nstop, nafter, ntmp, nleft;
    snprintf(hook, sizeof hook, "stop-%s-rename:%s", before ? "before" : "after", file);
    snprintf(env, sizeof env, "DEEPSKY_TEST_ATOMIC=%s", hook);
    const char *e[] = {env, NULL};
    unsigned char *prev = read_all(file, &nprev), *at_stop = NULL, *t = NULL, *after = NULL;
    unsigned char *t_after = NULL;
    const char *why = NULL;
    cli_proc p;
    if (cli_start(&p, cmd, e) != 0) {
        free(prev);
        snprintf(msg, cap, "%s: cannot start %s", hook, cmd);
        return 1;
    }
    int stopped = cli_poll(&p, 300000) == CLI_STOPPED;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)p.pid);
    if (stopped) {
        at_stop = read_all(file, &nstop);
        t = read_all(tmp, &ntmp);
    }
    int rc = cli_kill(&p, cli_out, sizeof cli_out);
    after = read_all(file, &nafter);
    t_after = read_all(tmp, &nleft);
    if (!stopped)
        why = "the run did not stop there";
    else if (rc != 128 + SIGKILL)
        why = "the run did not die by the kill";
    else if (before && !same_bytes(at_stop, nstop, prev, nprev))
        why = "the file changed before the rename";
    else if (before && (!t || !loads(tmp) || same_bytes(t, ntmp, prev, nprev)))
        why = "the temporary file is not the complete new file";
    else if (before && !same_bytes(t_after, nleft, t, ntmp))
        why = "the temporary file was not left behind as it was";
    else if (!before && (t || t_after))
        why = "a temporary file is left after the rename";
    else if (!before && (!at_stop || same_bytes(at_stop, nstop, prev, nprev) || !loads(file)))
        why = "the file in place after the rename is not the complete new file";
    else if (!same_bytes(after, nafter, at_stop, nstop) || (after && !loads(file)))
        why = "the kill changed the file";
    if (before && left)
        snprintf(left, left_cap, "%s", strrchr(tmp, '/') + 1);
    free(prev);
    free(at_stop);
    free(t);
    free(after);
    free(t_after);
    if (why)
        snprintf(msg, cap, "%s: %s (status %d); output:\n%.2000s", hook, why, rc, cli_out);
    return why != NULL;
}

/* Kills that land inside writes, at both sides of the rename, through the test-only hook of
 * the atomic writer (DEEPSKY_TEST_ATOMIC, src/io/atomic.c): the run stops itself (SIGSTOP)
 * with the temporary file of a chosen output written and closed, or just after its rename;
 * the test looks at the files there, then SIGKILLs it. Before the rename the previous file is
 * intact and the complete new one waits under "<file>.tmp.<pid>"; the kill leaves that
 * temporary file behind (nothing reads, renames or removes it later, and its name does not
 * end in .safetensors, so no command takes it for an output). After the rename the new file
 * is in place and complete. --resume then starts from the last checkpoint renamed into place
 * and reaches weights bit-identical to an uninterrupted run. */
TEST(cli_kill_lands_inside_a_write)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512], cmd[2048], w[600], ck[600];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
    CHECK(!make_images(d, 96));
    const char *common = "--epochs 4 --batch-size 16 --seed 4 --checkpoint-every 0";
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy %s -q -o %s/full.safetensors", m, d,
              d, common, d);
    snprintf(cmd, sizeof cmd, "exec %s train %s --data %s/x.npy --labels %s/y.npy %s -q "
             "--resume-if-exists -o %s/part.safetensors", cli_bin(), m, d, d, common, d);
    snprintf(w, sizeof w, "%s/part.safetensors", d);
    snprintf(ck, sizeof ck, "%s/part.ckpt.safetensors", d);
    /* Epoch 1 runs to its checkpoint, then epoch 2 is cut at each point. Each epoch writes
     * the weights, then the checkpoint; a run starts after the checkpoint's epoch. */
    struct { const char *file; int before, ckpt_epoch; } rounds[] = {
        {ck, 0, 1},   /* after the rename of the first checkpoint */
        {w, 1, 1},    /* epoch 2's weights written, not renamed */
        {w, 0, 1},    /* epoch 2's weights in place, its checkpoint not yet written */
        {ck, 1, 1},   /* epoch 2 again: its checkpoint written, not renamed */
        {ck, 0, 2},   /* epoch 2 again, so from the epoch-1 checkpoint and not from the
                       * epoch-2 one left in a temporary file: its checkpoint in place */
    };
    char left[2][256], err[8192];
    int nleft = 0;
    for (int k = 0; k < 5; k++) {
        char *l = rounds[k].before ? left[nleft++] : NULL;
        if (kill_in_write(cmd, rounds[k].file, rounds[k].before, l, sizeof left[0], err,
                          sizeof err))
            FAIL("round %d: %s", k + 1, err);
        int ep = ckpt_epoch(ck);
        if (ep != rounds[k].ckpt_epoch)
            FAIL("round %d: the checkpoint holds epoch %d, expected %d", k + 1, ep,
                 rounds[k].ckpt_epoch);
        if (k == 3) {   /* the temporary checkpoint is epoch 2's */
            char tmp[600];
            snprintf(tmp, sizeof tmp, "%s/%s", d, left[1]);
            CHECK(ckpt_epoch(tmp) == 2);
        }
        /* epoch 2 redone from the same checkpoint rewrites the same weights */
        if (k == 2) {
            char cp[1400];
            snprintf(cp, sizeof cp, "cp '%s' '%s/epoch2.safetensors'", w, d);
            CHECK(system(cp) == 0);
        }
        if (k == 3)
            CHECK(same_tensors(d, "part.safetensors", "epoch2.safetensors"));
    }
    /* the resumed run starts after epoch 2, ignores the temporary files, and ends where the
     * uninterrupted run ended */
    CHECK_RUN(0, "train %s --data %s/x.npy --labels %s/y.npy %s --resume -o %s/part.safetensors",
              m, d, d, common, d);
    CHECK_OUT("resumed after epoch 2");
    CHECK(same_tensors(d, "full.safetensors", "part.safetensors"));
    char names[1024];
    int n = tmp_files(d, names, sizeof names);
    if (n != 2 || !strstr(names, left[0]) || !strstr(names, left[1]))
        FAIL("temporary files:%s; expected %s and %s", names, left[0], left[1]);
    for (int i = 0; i < 2; i++)
        if (!strstr(left[i], ".safetensors.tmp.") || strstr(strstr(left[i], ".tmp."), ".safetensors"))
            FAIL("temporary file %s: not named <file>.tmp.<pid>", left[i]);
    snprintf(msg_, cap_, "5 kills at both sides of the rename; left behind:%s", names);
    test_rm_rf(d);
    return TEST_PASS;
}

/* A disk that fills up while the weights are written (a file size limit: ulimit -f, with
 * SIGXFSZ ignored so that the write fails with EFBIG as on a full disk): a clear error naming
 * the file, exit status 1, and the previous weights and checkpoint still load, unchanged. */
TEST(cli_train_full_disk_keeps_the_checkpoint)
{
    const char *d = test_tmpdir(dir, sizeof dir, "cli");
    char m[512];
    snprintf(m, sizeof m, "%s/c.model", d);
    CHECK(!test_write_text(m, cls_model));
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
             "-o %s/w.safetensors", cli_bin(), m, d, d, d);
    int rc = cli_run_sh(cmd, NULL, cli_out, sizeof cli_out);
    int ok = rc == 1 && strstr(cli_out, "cannot write") && strstr(cli_out, "w.safetensors") &&
             strstr(cli_out, "large");
    ok = ok && same_tensors(d, "w.safetensors", "w0.safetensors") &&
         same_tensors(d, "w.ckpt.safetensors", "w0.ckpt.safetensors");
    if (!ok)
        FAIL("status %d, output '%s'", rc, cli_out);
    /* and no half-written temporary file is left behind */
    char left[1024];
    if (tmp_files(d, left, sizeof left) != 0)
        FAIL("temporary files left behind:%s", left);
    snprintf(msg_, cap_, "%.200s", cli_out);
    for (char *c = msg_; *c; c++)
        if (*c == '\n')
            *c = ' ';
    test_rm_rf(d);
    return TEST_PASS;
}
