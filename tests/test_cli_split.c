/* test_cli_split.c - honest validation splits (seeded, shuffled, stratified by class; the
 * Keras split kept as --val-split-last; warnings when the two sides' classes differ; several
 * inputs split alike; reproduced on --resume), the progress line's best-epoch marker, counts
 * with their singular ("1 epoch"), and the summary's labels shapes, through the tool. */
#include "test.h"
#include "spawn.h"

#include "../src/cli/cli.h"

#include <unistd.h>

static char dir[256];

/* An iris-like table as it ships: 150 flowers, 50 per species, sorted by species; four
 * measurements around a species' own means. */
static int write_iris(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 4);
    fprintf(f, "sepal_length,sepal_width,petal_length,petal_width,species\n");
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 50; i++)
            fprintf(f, "%.2f,%.2f,%.2f,%.2f,%d\n", 5 + 0.8 * c + 0.3 * ds_rng_normal(&r),
                    3.4 - 0.3 * c + 0.3 * ds_rng_normal(&r),
                    1.5 + 2.2 * c + 0.3 * ds_rng_normal(&r),
                    0.2 + 0.9 * c + 0.2 * ds_rng_normal(&r), c);
    return fclose(f);
}

static const char *iris_model = "input shape=4\ndense units=16 activation=relu\n"
                                "dense units=3 activation=softmax\nloss categorical_crossentropy\n";

#define IRIS_COLS "--columns sepal_length,sepal_width,petal_length,petal_width " \
                  "--label-columns species"

/* The iris table's x [150, 4] and class indices y [150]. */
static void iris_arrays(ds_tensor **x, ds_tensor **y)
{
    ds_rng r;
    ds_rng_seed(&r, 4);
    *x = ds_tensor_create(2, (int64_t[]){150, 4});
    *y = ds_tensor_create(1, (int64_t[]){150});
    for (int i = 0; i < 150; i++) {
        for (int k = 0; k < 4; k++)
            ds_tensor_data(*x)[4 * i + k] = (float)ds_rng_normal(&r);
        ds_tensor_data(*y)[i] = (float)(i / 50);
    }
}

/* Validation samples per class of a split mask over the sorted iris labels. */
static void per_class(const unsigned char *is_val, int64_t counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    for (int i = 0; i < 150; i++)
        counts[i / 50] += is_val[i];
}

/* The case through the library: the Keras split of a table sorted by class holds
 * one class; the shuffled split holds every class in proportion, and follows the seed. */
TEST(split_of_a_table_sorted_by_class_holds_every_class_in_proportion)
{
    ds_net *n;
    ds_net_opts o = {.labels = DS_LABELS_INDEX};
    CHECK(ds_net_parse(iris_model, "iris.model", &o, &n) == DS_OK);
    ds_tensor *x, *y;
    iris_arrays(&x, &y);
    ds_feed f = {.inputs = {{NULL, x, "x"}}, .labels = {{NULL, y, "y"}}};
    unsigned char a[150], b[150], c[150];
    ds_split_info info;
    int64_t k[3];
    int ok = ds_net_split(n, &f, 0.2, 1, 0, a, &info) == DS_OK;
    per_class(a, k);
    ok = ok && k[0] == 0 && k[1] == 0 && k[2] == 30 && info.classes == 0;
    for (int i = 120; ok && i < 150; i++)
        ok = a[i];   /* the last 30, in order */
    int stratified = ds_net_split(n, &f, 0.2, 0, 7, b, &info) == DS_OK;
    int64_t kb[3];
    per_class(b, kb);
    stratified = stratified && kb[0] == 10 && kb[1] == 10 && kb[2] == 10 && info.val == 30 &&
                 info.train == 120 && info.classes == 3 && info.single == 0;
    int again = ds_net_split(n, &f, 0.2, 0, 7, c, &info) == DS_OK && !memcmp(b, c, 150);
    int other = ds_net_split(n, &f, 0.2, 0, 8, c, &info) == DS_OK && memcmp(b, c, 150);
    int shuffled = 0;   /* not the first ten of each class */
    for (int i = 10; i < 50; i++)
        shuffled |= b[i];
    ds_net_free(n);
    ds_tensor_free(x);
    ds_tensor_free(y);
    if (!ok)
        FAIL("--val-split-last: %lld/%lld/%lld per class, expected 0/0/30", (long long)k[0],
             (long long)k[1], (long long)k[2]);
    if (!stratified)
        FAIL("stratified: %lld/%lld/%lld per class (expected 10 each), %lld classes; %s",
             (long long)kb[0], (long long)kb[1], (long long)kb[2], (long long)info.classes,
             ds_last_error());
    CHECK(again && other && shuffled);
    return TEST_PASS;
}

/* Small classes: one of a single sample stays in training; one of two gives one sample;
 * one-hot labels are stratified like class indices; a regression is split at random. */
TEST(split_small_classes_one_hot_labels_and_regression)
{
    enum { N = 23 };
    /* classes: 20 x class 0, 2 x class 1, 1 x class 2 */
    float cls[N], onehot[3 * N] = {0}, xs[N];
    for (int i = 0; i < N; i++) {
        cls[i] = i < 20 ? 0 : i < 22 ? 1 : 2;
        onehot[3 * i + (int)cls[i]] = 1;
        xs[i] = (float)i;
    }
    ds_tensor *x = ds_tensor_from(2, (int64_t[]){N, 1}, xs);
    ds_tensor *yi = ds_tensor_from(1, (int64_t[]){N}, cls);
    ds_tensor *yo = ds_tensor_from(2, (int64_t[]){N, 3}, onehot);
    static const char *m = "input shape=1\ndense units=3 activation=softmax\n"
                           "loss categorical_crossentropy\n";
    ds_net *ni, *no, *nr;
    ds_net_opts oi = {.labels = DS_LABELS_INDEX}, od = {0};
    CHECK(ds_net_parse(m, "c.model", &oi, &ni) == DS_OK);
    CHECK(ds_net_parse(m, "c.model", &od, &no) == DS_OK);
    CHECK(ds_net_parse("input shape=1\ndense units=1\nloss mse\n", "r.model", NULL, &nr) == DS_OK);
    unsigned char v[N], w[N];
    ds_split_info a, b, r;
    ds_feed fi = {.inputs = {{NULL, x, "x"}}, .labels = {{NULL, yi, "yi"}}};
    ds_feed fo = {.inputs = {{NULL, x, "x"}}, .labels = {{NULL, yo, "yo"}}};
    ds_feed fr = {.inputs = {{NULL, x, "x"}}, .labels = {{NULL, x, "y"}}};
    int ok_i = ds_net_split(ni, &fi, 0.1, 0, 3, v, &a) == DS_OK;
    int ok_o = ds_net_split(no, &fo, 0.1, 0, 3, w, &b) == DS_OK;
    int in1 = v[20] + v[21], in2 = v[22], in0 = 0;
    for (int i = 0; i < 20; i++)
        in0 += v[i];
    int ok_r = ds_net_split(nr, &fr, 0.1, 0, 3, w, &r) == DS_OK;
    ds_net_free(ni);
    ds_net_free(no);
    ds_net_free(nr);
    ds_tensor_free(x);
    ds_tensor_free(yi);
    ds_tensor_free(yo);
    CHECK(ok_i && ok_o && ok_r);
    if (in0 != 2 || in1 != 1 || in2 != 0 || a.classes != 3 || a.single != 1 || a.val != 3)
        FAIL("class counts 20/2/1 at 0.1: %d/%d/%d to validation (expected 2/1/0), %lld "
             "classes, %lld single", in0, in1, in2, (long long)a.classes, (long long)a.single);
    CHECK(b.classes == 3 && b.val == a.val);   /* one-hot rows: the same classes */
    CHECK(r.classes == 0 && r.val == 2 && r.train == 21);   /* round(0.1 x 23) at random */
    return TEST_PASS;
}

/* cli_split_set applies one mask to every input and label file alike: the rows that go to
 * validation are the same samples in each. */
TEST(split_moves_the_same_samples_of_every_input_and_labels)
{
    static const char *m = "input name=a shape=2\ninput name=b shape=1\n"
                           "concat inputs=a,b\ndense units=4 activation=softmax\n"
                           "loss categorical_crossentropy\n";
    ds_net *n;
    ds_net_opts o = {.labels = DS_LABELS_INDEX};
    CHECK(ds_net_parse(m, "two.model", &o, &n) == DS_OK);
    enum { N = 40 };
    cli_data d = {.nx = 2, .ny = 1, .xopt = "data", .yopt = "labels"};
    snprintf(d.x[0].name, sizeof d.x[0].name, "a");
    snprintf(d.x[1].name, sizeof d.x[1].name, "b");
    d.x[0].t = ds_tensor_create(2, (int64_t[]){N, 2});
    d.x[1].t = ds_tensor_create(2, (int64_t[]){N, 1});
    d.y[0].t = ds_tensor_create(1, (int64_t[]){N});
    d.x[0].path = "a.npy", d.x[1].path = "b.npy", d.y[0].path = "y.npy";
    for (int i = 0; i < N; i++) {   /* every value names its sample */
        ds_tensor_data(d.x[0].t)[2 * i] = (float)i;
        ds_tensor_data(d.x[0].t)[2 * i + 1] = (float)(1000 + i);
        ds_tensor_data(d.x[1].t)[i] = (float)(2000 + i);
        ds_tensor_data(d.y[0].t)[i] = (float)(i % 4);
    }
    ds_feed f;
    cli_data va = {0};
    cli_split how = {.fraction = 0.25, .seed = 2, .quiet = true};
    int rc = cli_feed(n, &d, &f) || cli_split_set(n, &d, &f, &how, &va);
    int ok = !rc && va.nx == 2 && va.ny == 1 && ds_tensor_shape(va.x[0].t)[0] == 10 &&
             ds_tensor_shape(d.x[0].t)[0] == 30 && ds_tensor_shape(va.y[0].t)[0] == 10;
    int per_class[4] = {0}, last = -1;
    for (int s = 0; ok && s < 2; s++) {
        const cli_data *side = s ? &va : &d;
        for (int64_t i = 0; ok && i < ds_tensor_shape(side->x[0].t)[0]; i++) {
            int id = (int)ds_tensor_data(side->x[0].t)[2 * i];
            ok = ds_tensor_data(side->x[0].t)[2 * i + 1] == 1000 + id &&
                 ds_tensor_data(side->x[1].t)[i] == 2000 + id &&
                 ds_tensor_data(side->y[0].t)[i] == id % 4;
            if (s) {
                per_class[id % 4]++;
                ok = ok && id > last;   /* file order kept */
                last = id;
            }
        }
    }
    cli_data_free(&d);
    cli_data_free(&va);
    ds_net_free(n);
    CHECK(!rc);
    CHECK(ok);
    /* 2.5 of each class of 10: two each, and one more to the first two of the tied
     * remainders, so that the total is round(0.25 x 40) = 10 */
    CHECK(per_class[0] == 3 && per_class[1] == 3 && per_class[2] == 2 && per_class[3] == 2);
    return TEST_PASS;
}

/* The tool on the iris-like table: --val-split-last warns that validation misses two
 * classes; --val-split says what it split and warns of nothing. Bad fractions are usage
 * errors, and a fraction too small for the data says so. */
TEST(cli_val_split_on_a_table_sorted_by_class)
{
    const char *d = test_tmpdir(dir, sizeof dir, "split");
    CHECK(d);
    char p[512], m[512];
    snprintf(p, sizeof p, "%s/iris.csv", d);
    snprintf(m, sizeof m, "%s/iris.model", d);
    CHECK(write_iris(p) == 0 && test_write_text(m, iris_model) == 0);
    CHECK_RUN(0, "train %s --data %s " IRIS_COLS " --val-split-last 0.2 --epochs 2 "
              "-o %s/last.safetensors", m, p, d);
    CHECK_OUT("validation split: 30 of 150 samples (fraction 0.2), the last ones, in file order");
    CHECK_OUT("deepsky: warning: the validation labels have no sample of classes 0, 1, which "
              "the training labels have: validation does not measure them");
    CHECK_RUN(0, "train %s --data %s " IRIS_COLS " --val-split 0.2 --seed 3 --epochs 2 "
              "-o %s/strat.safetensors", m, p, d);
    CHECK_OUT("validation split: 30 of 150 samples (fraction 0.2), shuffled with seed 3, by "
              "class (3 classes)");
    CHECK_OUT("iris.model on 120 samples (validation 30)");
    CHECK_NOT_OUT("warning");
    /* a regression is split at random, not by class */
    char r[512];
    snprintf(r, sizeof r, "%s/reg.model", d);
    CHECK(test_write_text(r, "input shape=4\ndense units=1\nloss mse\n") == 0);
    CHECK_RUN(0, "train %s --data %s " IRIS_COLS " --val-split 0.2 --epochs 1 -o %s/r.safetensors",
              r, p, d);
    CHECK_OUT("validation split: 30 of 150 samples (fraction 0.2), shuffled with seed 0\n");
    /* bad fractions */
    CHECK_RUN(2, "train %s --data %s " IRIS_COLS " --val-split 0.2 --val-split-last 0.2 "
              "-o %s/w.safetensors", m, p, d);
    CHECK_OUT("give either --val-split or --val-split-last, not both");
    CHECK_RUN(2, "train %s --data %s " IRIS_COLS " --val-split 0 -o %s/w.safetensors", m, p, d);
    CHECK_OUT("option '--val-split': 0 is not a fraction between 0 and 1 (exclusive)");
    CHECK_RUN(2, "train %s --data %s " IRIS_COLS " --val-split-last 1 -o %s/w.safetensors", m, p,
              d);
    CHECK_OUT("option '--val-split-last': 1 is not a fraction between 0 and 1 (exclusive)");
    CHECK_RUN(2, "train %s --data %s " IRIS_COLS " --val %s --val-split-last 0.2 "
              "-o %s/w.safetensors", m, p, p, d);
    CHECK_OUT("give either --val or --val-split-last, not both");
    CHECK_RUN(1, "train %s --data %s " IRIS_COLS " --val-split-last 0.001 -o %s/w.safetensors",
              m, p, d);
    CHECK_OUT("deepsky: error: --val-split-last 0.001: a validation fraction of 0.001 of 150 "
              "samples leaves 0 for validation and 150 for training; both need at least one");
    CHECK_RUN(2, "train %s --data %s " IRIS_COLS " --early-stopping 3 -o %s/w.safetensors", m, p,
              d);
    CHECK_OUT("--early-stopping needs validation data (--val, --val-split or --val-split-last)");
    CHECK_RUN(0, "train --help");
    CHECK_OUT("--val-split-last F");
    CHECK_OUT("chosen at random with --seed, in proportion from each class");
    test_rm_rf(d);
    return TEST_PASS;
}

/* Validation files whose classes differ from the training labels' draw a warning on
 * stderr either way, and training goes on. */
TEST(cli_warns_when_validation_and_training_classes_differ)
{
    const char *d = test_tmpdir(dir, sizeof dir, "split");
    CHECK(d);
    char p[512], m[512], a[512], b[512];
    snprintf(p, sizeof p, "%s/iris.csv", d);
    snprintf(m, sizeof m, "%s/iris.model", d);
    snprintf(a, sizeof a, "%s/two.csv", d);
    snprintf(b, sizeof b, "%s/one.csv", d);
    CHECK(write_iris(p) == 0 && test_write_text(m, iris_model) == 0);
    CHECK(test_write_text(a, "x,y\n1,0\n2,0\n3,1\n4,1\n") == 0);
    CHECK(test_write_text(b, "x,y\n1,2\n2,2\n") == 0);
    static const char *small = "input shape=1\ndense units=3 activation=softmax\n"
                               "loss categorical_crossentropy\n";
    CHECK(test_write_text(m, small) == 0);
    CHECK_RUN(0, "train %s --data %s --columns x --label-columns y --val %s --epochs 1 "
              "-o %s/w.safetensors", m, a, b, d);
    CHECK_OUT("deepsky: warning: the validation labels have no sample of classes 0, 1, which "
              "the training labels have: validation does not measure them");
    CHECK_OUT("deepsky: warning: the validation labels have class 2, which the training labels "
              "never show");
    CHECK_OUT("done: 1 epoch in");
    test_rm_rf(d);
    return TEST_PASS;
}

/* A run with --val-split interrupted after 2 epochs and resumed to 4 ends with the weights
 * of an uninterrupted 4-epoch run: the resumed run split the data the same way. */
TEST(cli_val_split_is_reproduced_on_resume)
{
    const char *d = test_tmpdir(dir, sizeof dir, "split");
    CHECK(d);
    char p[512], m[512];
    snprintf(p, sizeof p, "%s/iris.csv", d);
    snprintf(m, sizeof m, "%s/iris.model", d);
    CHECK(write_iris(p) == 0 && test_write_text(m, iris_model) == 0);
    CHECK_RUN(0, "train %s --data %s " IRIS_COLS " --val-split 0.3 --seed 9 --epochs 4 -q "
              "-o %s/whole.safetensors", m, p, d);
    CHECK_RUN(0, "train %s --data %s " IRIS_COLS " --val-split 0.3 --seed 9 --epochs 2 -q "
              "-o %s/part.safetensors", m, p, d);
    CHECK_RUN(0, "train %s --data %s " IRIS_COLS " --val-split 0.3 --seed 9 --epochs 4 -q "
              "--resume -o %s/part.safetensors", m, p, d);
    const char *names[] = {"whole.safetensors", "part.safetensors", "whole.best.safetensors",
                           "part.best.safetensors"};
    for (int k = 0; k < 2; k++) {
        ds_tensor_set *s[2] = {NULL, NULL};
        for (int j = 0; j < 2; j++) {
            char path[640];
            snprintf(path, sizeof path, "%s/%s", d, names[2 * k + j]);
            CHECK(ds_safetensors_load(path, &s[j]) == DS_OK);
        }
        int same = ds_tensor_set_count(s[0]) == ds_tensor_set_count(s[1]);
        for (int i = 0; same && i < ds_tensor_set_count(s[0]); i++) {
            ds_tensor *t0 = ds_tensor_set_at(s[0], i);
            ds_tensor *t1 = ds_tensor_set_get(s[1], ds_tensor_set_name(s[0], i));
            same = t1 && ds_tensor_numel(t0) == ds_tensor_numel(t1) &&
                   !memcmp(ds_tensor_data(t0), ds_tensor_data(t1),
                           (size_t)ds_tensor_numel(t0) * sizeof(float));
        }
        ds_tensor_set_free(s[0]);
        ds_tensor_set_free(s[1]);
        if (!same)
            FAIL("%s and %s differ", names[2 * k], names[2 * k + 1]);
    }
    test_rm_rf(d);
    return TEST_PASS;
}

/* On a terminal (through script(1)) the closing line of an epoch reads "elapsed 0:00  *":
 * the marker after the time, not inside it. */
TEST(cli_progress_marker_follows_the_elapsed_time)
{
    if (access("/usr/bin/script", X_OK) != 0)
        SKIP("no /usr/bin/script to give the tool a terminal");
    const char *d = test_tmpdir(dir, sizeof dir, "split");
    CHECK(d);
    char p[512], m[512], cmd[4096];
    snprintf(p, sizeof p, "%s/iris.csv", d);
    snprintf(m, sizeof m, "%s/iris.model", d);
    CHECK(write_iris(p) == 0 && test_write_text(m, iris_model) == 0);
    snprintf(cmd, sizeof cmd, "exec /usr/bin/script -qefc '%s train %s --data %s " IRIS_COLS
             " --epochs 2 -o %s/w.safetensors' %s/typescript", cli_bin(), m, p, d, d);
    int rc = cli_run_sh(cmd, NULL, cli_out, sizeof cli_out);
    if (rc != 0)
        FAIL("exit status %d:\n%s", rc, cli_out);
    CHECK_OUT("epoch 1/2 [");
    CHECK_OUT("elapsed 0:00  *");
    CHECK_NOT_OUT("elapsed   *");
    CHECK_NOT_OUT("elapsed  *");
    test_rm_rf(d);
    return TEST_PASS;
}

/* Counts of one read in the singular: epochs, samples, steps, threads, labels. */
TEST(cli_counts_of_one_are_singular)
{
    const char *d = test_tmpdir(dir, sizeof dir, "split");
    CHECK(d);
    char m[512], a[512], b[512];
    snprintf(m, sizeof m, "%s/m.model", d);
    snprintf(a, sizeof a, "%s/one.csv", d);
    snprintf(b, sizeof b, "%s/two.csv", d);
    CHECK(test_write_text(m, "input shape=1\ndense units=1\nloss mse\n") == 0);
    CHECK(test_write_text(a, "x,y\n1,2\n") == 0);
    CHECK(test_write_text(b, "x,y\n1,2\n3,4\n") == 0);
    CHECK_RUN(0, "train %s --data %s --columns x --label-columns y --epochs 1 --threads 1 "
              "-o %s/w.safetensors", m, a, d);
    CHECK_OUT("m.model on 1 sample, batch 32, adam lr 0.001, 1 thread\n");
    CHECK_OUT("done: 1 epoch in");
    CHECK_RUN(0, "train %s --data %s --columns x --label-columns y --epochs 2 --threads 1 "
              "-o %s/w.safetensors", m, b, d);
    CHECK_OUT("on 2 samples");
    CHECK_OUT("done: 2 epochs in");
    CHECK_RUN(1, "train %s --data %s --columns x --labels %s --label-columns y "
              "-o %s/w.safetensors", m, b, a, d);
    CHECK_OUT("has 2 samples but");
    CHECK_OUT("has 1 label\n");
    CHECK(test_write_text(m, "input shape=1\ndense units=1 use_bias=false\nloss mse\n") == 0);
    CHECK_RUN(0, "init %s -o %s/w1.safetensors", m, d);
    CHECK_OUT("wrote 1 parameter to");
    test_rm_rf(d);
    return TEST_PASS;
}

/* `deepsky summary` of a categorical model: its labels take class indices or one-hot rows. */
TEST(cli_summary_shows_class_index_labels)
{
    const char *d = test_tmpdir(dir, sizeof dir, "split");
    CHECK(d);
    char m[512];
    snprintf(m, sizeof m, "%s/iris.model", d);
    CHECK(test_write_text(m, iris_model) == 0);
    CHECK_RUN(0, "summary %s", m);
    CHECK_OUT("(InputLayer)                 (None, 3) or (None,)   0");
    test_rm_rf(d);
    return TEST_PASS;
}
