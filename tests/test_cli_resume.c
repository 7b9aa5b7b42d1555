/* test_cli_resume.c - strict resume and cheap epochs: a checkpoint made with other settings
 * (data, labels, scaling, split, optimizer, model file, ...) is refused naming each
 * difference; --resume needs a checkpoint unless --resume-if-exists; resumed log lines keep
 * their exact values; the files are written together, coalesced for short epochs
 * (--checkpoint-every), and a run killed between two writes resumes to the bits of an
 * uninterrupted run; the curve is drawn at the end of a short run only; the overhead of an
 * epoch is measured. The tool under test is spawned with the sanitizers (tests/spawn.h). */
#include "test.h"
#include "spawn.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static const char *mlp =
    "input name=x shape=4\n"
    "dense units=16 activation=relu\n"
    "dropout rate=0.2\n"
    "dense units=2 activation=softmax\n"
    "loss categorical_crossentropy\n"
    "optimizer adam lr=1e-2\n";

/* <d>/m.model and <d>/<name>: rows of a,b,c,d and two class labels (seeded). */
static int make_set(const char *d, const char *name, int rows, uint64_t seed)
{
    char p[512];
    snprintf(p, sizeof p, "%s/m.model", d);
    if (test_write_text(p, mlp))
        return 1;
    snprintf(p, sizeof p, "%s/%s", d, name);
    FILE *f = fopen(p, "w");
    if (!f)
        return 1;
    fprintf(f, "a,b,c,d,label,label2\n");
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int i = 0; i < rows; i++) {
        double x[4];
        for (int k = 0; k < 4; k++)
            x[k] = ds_rng_normal(&r);
        fprintf(f, "%.5f,%.5f,%.5f,%.5f,%d,%d\n", x[0], x[1], x[2], x[3], x[0] + x[1] > 0,
                x[2] > 0);
    }
    return fclose(f);
}

/* printf at the end of buf's text (truncated to cap). */
static void cat(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (len + 1 < cap)
        vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* The whole text file at path (malloc'd), or NULL. */
static char *read_text(const char *path) { return test_read_file(path, NULL); }

/* A log's text with the last column (seconds) of every line cut off. */
static void drop_seconds(char *s)
{
    char *w = s;
    for (char *line = s; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char *comma = memrchr(line, ',', n);
        size_t keep = comma ? (size_t)(comma - line) : n;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        line = end ? end + 1 : line + n;
    }
    *w = 0;
}

/* Whether two safetensors files hold the same tensors, bit for bit (prefix: only names
 * that start with it, NULL: all of a's). */
static int same_tensors(const char *fa, const char *fb, const char *prefix)
{
    ds_tensor_set *a = NULL, *b = NULL;
    int ok = ds_safetensors_load(fa, &a) == DS_OK && ds_safetensors_load(fb, &b) == DS_OK;
    for (int i = 0; ok && i < ds_tensor_set_count(a); i++) {
        const char *name = ds_tensor_set_name(a, i);
        if (prefix && strncmp(name, prefix, strlen(prefix)))
            continue;
        ds_tensor *ta = ds_tensor_set_at(a, i), *tb = ds_tensor_set_get(b, name);
        ok = tb && ds_tensor_numel(ta) == ds_tensor_numel(tb) &&
             !memcmp(ds_tensor_data(ta), ds_tensor_data(tb), (size_t)ds_tensor_numel(ta) * 4);
    }
    ds_tensor_set_free(a);
    ds_tensor_set_free(b);
    return ok;
}

/* The epoch a checkpoint holds, or -1. */
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

static int log_epochs(const char *path)
{
    char *t = read_text(path);
    int n = -1;
    for (char *c = t; c && *c; c++)
        n += *c == '\n';
    free(t);
    return n;
}

#define BASE "train %s/m.model --data %s/t.csv --columns a,b,c,d --label-columns label -q"

/* A checkpoint of 2 epochs, then --resume with one setting changed at a time: each is
 * refused (status 1), and the message names what changed. The same command resumes. */
TEST(cli_resume_refuses_other_settings)
{
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char p[600];
    CHECK(d && !make_set(d, "t.csv", 40, 1) && !make_set(d, "t2.csv", 40, 2));
    CHECK_RUN(0, BASE " --epochs 2 -o %s/w.safetensors", d, d, d);
    CHECK_RUN(0, "init %s/m.model -o %s/w0.safetensors", d, d);
    const struct {
        const char *extra, *want;
    } cases[] = {
        {"--seed 2", "seed: 0 then, 2 now"},
        {"--lr 0.1", "lr: 0.01 then, 0.1 now"},
        {"--optimizer sgd", "optimizer: adam then, sgd now"},
        {"--scale standardize", "scaling 'x': none then, standardize now"},
        {"--scale asinh:2", "scaling 'x': none then, asinh:2 now"},
        {"--val-split 0.25", "--val-split: (not given) then, 0.25 now"},
        {"--val-split 0.25", "training data 'x': [40, 4] then, [30, 4] now"},
        {"--val-split 0.25", "validation data 'x': none then, [10, 4] now"},
        {"--batch-size 8", "batch size: 32 then, 8 now"},
        {"--batch-size 16 --accumulate 2", "accumulate: 1 then, 2 now"},
        {"--no-shuffle", "shuffle: yes then, no now"},
        {"--skip-nonfinite", "non-finite steps: stop then, skip now"},
        {"--weights %s/w0.safetensors", "--weights: (not given) then, fnv1a64 "},
        {"=--columns b,a,c,d --label-columns label", "--columns: a,b,c,d then, b,a,c,d now"},
        {"=--columns b,a,c,d --label-columns label",
         "training data 'x': other values (same shape [40, 4])"},
        {"=--columns a,b,c,d --label-columns label2",
         "--label-columns: label then, label2 now"},
        {"=--columns a,b,c,d --label-columns label2",
         "training labels 'dense_2': other values (same shape [40"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[700];
        bool cols = cases[i].extra[0] == '=';
        snprintf(extra, sizeof extra, cases[i].extra + cols, d);
        int rc = cli_run("train %s/m.model --data %s/t.csv %s -q --epochs 4 %s --resume "
                     "-o %s/w.safetensors", d, d,
                     cols ? "" : "--columns a,b,c,d --label-columns label", extra, d);
        const char *want = "w.ckpt.safetensors: the checkpoint was made with other settings (";
        if (rc != 1 || !strstr(cli_out, want) || !strstr(cli_out, cases[i].want))
            FAIL("%s: status %d, output:\n%s\nexpected \"%s\"", extra, rc, cli_out,
                 cases[i].want);
    }
    /* other data of the same shape, under another name */
    CHECK_RUN(1, "train %s/m.model --data %s/t2.csv --columns a,b,c,d --label-columns label -q "
              "--epochs 4 --resume -o %s/w.safetensors", d, d, d);
    CHECK_OUT("training data 'x': other values (same shape [40, 4])");
    CHECK_OUT("training labels 'dense_2': other values");
    /* the model file edited in place (a comment: the file's bytes count) */
    snprintf(p, sizeof p, "%s/m.model", d);
    char *text = read_text(p);
    CHECK(text);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fprintf(f, "# edited\n%s", text);
    fclose(f);
    CHECK_RUN(1, BASE " --epochs 4 --resume -o %s/w.safetensors", d, d, d);
    CHECK_OUT("model file: fnv1a64 ");
    CHECK_OUT("other settings (1)");
    CHECK(test_write_text(p, text) == 0);
    free(text);
    CHECK_RUN(0, "train %s/m.model --data %s/t.csv --columns a,b,c,d --label-columns label "
              "--epochs 4 --resume -o %s/w.safetensors", d, d, d);
    CHECK_OUT("resumed after epoch 2");
    test_rm_rf(d);
    return TEST_PASS;
}

/* --resume without a checkpoint (a mistyped -o) is an error; --resume-if-exists starts
 * afresh, and resumes once there is one. */
TEST(cli_resume_needs_a_checkpoint)
{
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char p[600];
    CHECK(d && !make_set(d, "t.csv", 40, 1));
    CHECK_RUN(1, BASE " --epochs 2 --resume -o %s/typo.safetensors", d, d, d);
    char want[700];
    snprintf(want, sizeof want, "deepsky: error: %s/typo.ckpt.safetensors: no checkpoint to "
             "resume from: give the output name of the interrupted run, or start afresh when "
             "there is none (--resume-if-exists)", d);
    CHECK_OUT(want);
    snprintf(p, sizeof p, "%s/typo.safetensors", d);
    CHECK(access(p, F_OK) != 0);
    CHECK_RUN(0, BASE " --epochs 2 --resume-if-exists -o %s/w.safetensors", d, d, d);
    CHECK(!strstr(cli_out, "resumed"));
    CHECK_RUN(0, BASE " --epochs 3 --resume-if-exists -o %s/w.safetensors", d, d, d);
    CHECK_RUN(0, "train %s/m.model --data %s/t.csv --columns a,b,c,d --label-columns label "
              "--epochs 4 --resume -o %s/w.safetensors", d, d, d);
    CHECK_OUT("resumed after epoch 3");
    CHECK_OUT("done: 4 epochs");
    /* a run of one epoch says so in the singular */
    CHECK_RUN(0, "train %s/m.model --data %s/t.csv --columns a,b,c,d --label-columns label "
              "--epochs 1 -o %s/one.safetensors", d, d, d);
    CHECK_OUT("done: 1 epoch in");
    test_rm_rf(d);
    return TEST_PASS;
}

/* The log of a resumed run: its first lines are those the interrupted run wrote, to the
 * character (seconds included), and every value equals an uninterrupted run's. */
TEST(cli_resume_log_keeps_its_values)
{
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char p[600], q[600];
    CHECK(d && !make_set(d, "t.csv", 60, 4));
    CHECK_RUN(0, BASE " --val-split 0.2 --epochs 6 --seed 3 -o %s/full.safetensors", d, d, d);
    CHECK_RUN(0, BASE " --val-split 0.2 --epochs 3 --seed 3 -o %s/part.safetensors", d, d, d);
    snprintf(p, sizeof p, "%s/part.log.csv", d);
    char *three = read_text(p);
    CHECK(three);
    CHECK_RUN(0, BASE " --val-split 0.2 --epochs 6 --seed 3 --resume -o %s/part.safetensors", d,
              d, d);
    char *six = read_text(p);
    snprintf(q, sizeof q, "%s/full.log.csv", d);
    char *full = read_text(q);
    int ok = six && full && !strncmp(six, three, strlen(three));
    if (ok) {
        drop_seconds(six);
        drop_seconds(full);
        ok = !strcmp(six, full);
    }
    if (!ok)
        FAIL("logs differ:\nafter 3 epochs:\n%s\nresumed to 6:\n%s\nuninterrupted:\n%s", three,
             six ? six : "(none)", full ? full : "(none)");
    free(three);
    free(six);
    free(full);
    snprintf(p, sizeof p, "%s/part.safetensors", d);
    snprintf(q, sizeof q, "%s/full.safetensors", d);
    CHECK(same_tensors(p, q, NULL));
    test_rm_rf(d);
    return TEST_PASS;
}

/* A run stopped by the atomic writer's test hook (DEEPSKY_TEST_ATOMIC) just after the
 * first rename of file: returns the checkpoint's epoch and the log's line count then. */
static int first_write(const char *cmd, const char *file, const char *ckpt, const char *log,
                       int *epoch, int *lines)
{
    char env[800];
    snprintf(env, sizeof env, "DEEPSKY_TEST_ATOMIC=stop-after-rename:%s", file);
    const char *e[] = {env, NULL};
    cli_proc p;
    if (cli_start(&p, cmd, e) != 0)
        return 1;
    int stopped = cli_poll(&p, 300000) == CLI_STOPPED;
    *epoch = stopped ? ckpt_epoch(ckpt) : -1;
    *lines = stopped ? log_epochs(log) : -1;
    cli_kill(&p, cli_out, sizeof cli_out);
    return !stopped;
}

/* Short epochs: with the default --checkpoint-every (10 s) the first write of the weights,
 * checkpoint and log is the last epoch's, and the curve too is drawn only at the end; with
 * --checkpoint-every 0 every epoch writes them (the curve still only at the end). */
TEST(cli_checkpoint_writes_coalesce)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char cmd[2048], w[600], ck[600], lg[600], cv[600];
    CHECK(d && !make_set(d, "t.csv", 40, 1));
    snprintf(w, sizeof w, "%s/w.safetensors", d);
    snprintf(ck, sizeof ck, "%s/w.ckpt.safetensors", d);
    snprintf(lg, sizeof lg, "%s/w.log.csv", d);
    snprintf(cv, sizeof cv, "%s/w.curve.png", d);
    /* the checkpoint's epoch and the log's lines when the file is first renamed into place
     * (-1: not written yet; the log is written after the checkpoint) */
    const struct {
        const char *flags, *file;
        int epoch, lines;
    } cases[] = {
        {"", ck, 40, -1}, {"", lg, 40, 40}, {"", cv, 40, 40},
        {"--checkpoint-every 0", ck, 1, -1}, {"--checkpoint-every 0", lg, 1, 1},
        {"--checkpoint-every 0", cv, 40, 40},
    };
    char seen[512] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_rm_rf(d);
        CHECK(mkdir(d, 0700) == 0 && !make_set(d, "t.csv", 40, 1));
        snprintf(cmd, sizeof cmd, "exec %s " BASE " --epochs 40 %s -o %s", cli_bin(), d, d,
                 cases[i].flags, w);
        int epoch, lines;
        if (first_write(cmd, cases[i].file, ck, lg, &epoch, &lines))
            FAIL("%s, %s: the run did not stop at the write; output:\n%s", cases[i].flags,
                 strrchr(cases[i].file, '/') + 1, cli_out);
        if (epoch != cases[i].epoch || lines != cases[i].lines)
            FAIL("%s: at the first write of %s the checkpoint holds epoch %d and the log %d "
                 "lines; expected %d and %d", cases[i].flags[0] ? cases[i].flags : "(default)",
                 strrchr(cases[i].file, '/') + 1, epoch, lines, cases[i].epoch, cases[i].lines);
        cat(seen, sizeof seen, "%s%s %s: %d", i ? "; " : "",
                         strrchr(cases[i].file, '/') + 1, cases[i].flags, epoch);
    }
    snprintf(msg_, cap_, "%s", seen);
    test_rm_rf(d);
    return TEST_PASS;
}

/* A kill after the last checkpoint but before the log (and curve) of the last epoch: the
 * resumed run has no epoch left, and writes both again from the checkpoint's history. */
TEST(cli_resume_with_nothing_left_restores_the_log)
{
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char p[600], q[600];
    CHECK(d && !make_set(d, "t.csv", 60, 3));
    CHECK_RUN(0, BASE " --epochs 3 -o %s/w.safetensors", d, d, d);
    snprintf(p, sizeof p, "%s/w.log.csv", d);
    char *full = read_text(p);
    CHECK(full);
    char *cut = strchr(full, '\n');   /* the header line only: the log as left by the kill */
    snprintf(q, sizeof q, "%s/w.curve.png", d);
    bool plot = ds_has_feature("plot");   /* a NO_PLOT build draws no curve */
    int ok = cut && !test_write_text(p, "epoch\n") && (!plot || unlink(q) == 0);
    if (ok)
        CHECK_RUN(0, BASE " --epochs 3 --resume -o %s/w.safetensors", d, d, d);
    char *again = ok ? read_text(p) : NULL;
    drop_seconds(full);
    if (again)
        drop_seconds(again);
    ok = ok && again && !strcmp(full, again) && (!plot || access(q, F_OK) == 0);
    free(full);
    free(again);
    test_rm_rf(d);
    CHECK(ok);
    return TEST_PASS;
}

/* Kills at random moments of a run whose writes are coalesced (--checkpoint-every 0.05,
 * epochs of a few milliseconds): after each, the weights, the checkpoint and the log on
 * disk belong to one epoch; --resume-if-exists then redoes the epochs after it and ends
 * bit for bit where an uninterrupted run ends: last and best weights, and the log. */
TEST(cli_resume_after_kills_between_coalesced_writes)
{
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char args[2048], cmd[4096], w[600], ck[600], lg[600], p[600], q[600];
    CHECK(d && !make_set(d, "t.csv", 1500, 6));
    const char *common = "--epochs 300 --batch-size 50 --val-split 0.2 --seed 2 "
                         "--checkpoint-every 0.05 --curve none";
    CHECK_RUN(0, BASE " %s -o %s/full.safetensors", d, d, common, d);
    snprintf(w, sizeof w, "%s/part.safetensors", d);
    snprintf(ck, sizeof ck, "%s/part.ckpt.safetensors", d);
    snprintf(lg, sizeof lg, "%s/part.log.csv", d);
    snprintf(args, sizeof args, BASE " %s --resume-if-exists -o %s", d, d, common, w);
    snprintf(cmd, sizeof cmd, "exec %s %s", cli_bin(), args);
    ds_rng r;
    ds_rng_seed(&r, 5);
    int killed = 0, epochs[12], nk = 0, consistent = 0;
    for (int k = 0; k < 12; k++) {
        cli_proc pr;
        CHECK(cli_start(&pr, cmd, NULL) == 0);
        if (cli_poll(&pr, 60 + (int)ds_rng_below(&r, 200)) == CLI_ENDED) {
            if (cli_finish(&pr, cli_out, sizeof cli_out) != 0)
                FAIL("run %d failed:\n%s", k + 1, cli_out);
            break;
        }
        int rc = cli_kill(&pr, cli_out, sizeof cli_out);
        if (rc != 128 + SIGKILL && rc != 0)
            FAIL("run %d: status %d:\n%s", k + 1, rc, cli_out);
        killed += rc == 128 + SIGKILL;
        if (access(ck, F_OK) != 0)
            continue;
        int e = ckpt_epoch(ck), lines = log_epochs(lg);
        bool same_w = same_tensors(ck, w, "dense");
        epochs[nk++] = e;
        /* The files of a write go weights, best, checkpoint, log: a kill between two writes
         * leaves one epoch on disk; one inside a write, newer weights or an older log. */
        if (e < 1 || lines > e || (lines < e && !same_w))
            FAIL("after kill %d: checkpoint at epoch %d, log of %d lines, weights %s", k + 1, e,
                 lines, same_w ? "the checkpoint's" : "not the checkpoint's");
        consistent += lines == e && same_w;
    }
    CHECK_RUN(0, "%s", args);
    snprintf(p, sizeof p, "%s/full.safetensors", d);
    CHECK(same_tensors(w, p, NULL));
    snprintf(p, sizeof p, "%s/part.best.safetensors", d);
    snprintf(q, sizeof q, "%s/full.best.safetensors", d);
    CHECK(same_tensors(p, q, NULL));
    char *a = read_text(lg);
    snprintf(q, sizeof q, "%s/full.log.csv", d);
    char *b = read_text(q);
    CHECK(a && b);
    drop_seconds(a);
    drop_seconds(b);
    int same = !strcmp(a, b);
    char first[400] = "";
    size_t at = 0, line = 1;
    while (a[at] && a[at] == b[at])   /* the first line that differs, from both logs */
        line += a[at++] == '\n';
    while (at && a[at - 1] != '\n')
        at--;
    if (!same)
        snprintf(first, sizeof first, "line %zu: resumed '%.120s' vs uninterrupted '%.120s'",
                 line, a + at, b + at);
    free(a);
    free(b);
    if (!same)
        FAIL("the resumed run's log differs from the uninterrupted run's: %s", first);
    CHECK(killed >= 3);
    char list[200] = "";
    for (int i = 0; i < nk; i++)
        cat(list, sizeof list, "%s%d", i ? "," : "", epochs[i]);
    snprintf(msg_, cap_, "%d kills, checkpoints on disk after them at epochs %s (%d between "
             "writes); resumed run identical (weights, best, log)", killed, list, consistent);
    test_rm_rf(d);
    return TEST_PASS;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 300 epochs of a 100-sample table in the library: the time with every file (weights,
 * best, checkpoint, log, curve; default CLI interval) minus the time with none, per epoch.
 * Before the files were coalesced it was 33-100 ms in a release build (four files synced
 * and the curve drawn every epoch); the bound leaves room for the sanitizers and a busy
 * machine. */
TEST(fit_file_overhead_per_epoch)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    const char *d = test_tmpdir(dir, sizeof dir, "resume");
    char w[600], lg[600], cv[600], ck[600];
    CHECK(d);
    ds_net *n = NULL;
    ds_net_opts no = {.labels = DS_LABELS_INDEX};
    CHECK(ds_net_parse(mlp, "mlp.model", &no, &n) == DS_OK);
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){100, 4});
    ds_tensor *y = ds_tensor_create(1, (int64_t[]){100});
    CHECK(x && y);
    ds_rng r;
    ds_rng_seed(&r, 9);
    for (int i = 0; i < 100; i++) {
        float *row = ds_tensor_data(x) + i * 4;
        fill_uniform(row, 4, -1, 1, &r);
        ds_tensor_data(y)[i] = row[0] + row[1] > 0;
    }
    snprintf(w, sizeof w, "%s/w.safetensors", d);
    snprintf(lg, sizeof lg, "%s/w.log.csv", d);
    snprintf(cv, sizeof cv, "%s/w.curve.png", d);
    double t[2];
    ds_status st = DS_OK;
    for (int files = 0; files < 2 && !st; files++) {
        ds_fit_opts o = {.epochs = 300, .seed = 1, .checkpoint_every = 10};
        if (files) {
            o.out_path = w;
            o.log_csv = lg;
            o.curve_png = cv;
        }
        double t0 = now_s();
        st = ds_net_fit(n, x, y, NULL, NULL, &o, NULL);
        t[files] = now_s() - t0;
    }
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    CHECK(st == DS_OK);
    snprintf(ck, sizeof ck, "%s/w.ckpt.safetensors", d);
    CHECK(ckpt_epoch(ck) == 300);
    CHECK(log_epochs(lg) == 300 && access(cv, R_OK) == 0);
    double per = (t[1] - t[0]) / 300 * 1e3;
    if (!(per < 3))
        FAIL("%.3f ms of file overhead per epoch (%.3f s with files, %.3f s without)", per,
             t[1], t[0]);
    snprintf(msg_, cap_, "300 epochs: %.3f s with the files, %.3f s without: %.3f ms per epoch "
             "(sanitizer build)", t[1], t[0], per);
    test_rm_rf(d);
    return TEST_PASS;
}
