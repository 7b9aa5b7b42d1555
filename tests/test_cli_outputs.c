/* test_cli_outputs.c - the command line's outputs: never a device, FIFO or other special
 * file (private ones made in a temporary folder), a symbolic link written through, never
 * one of the command's inputs or another output, never into the device folder, the weights
 * extension, and a file size limit (ulimit -f) that ends with a message and no temporary
 * files. The tool under test is spawned with the sanitizers (tests/spawn.h). */
#include "test.h"
#include "spawn.h"
#include "../src/cli/cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Runs and fails unless the status is want and the output holds each of the texts. */
#define EXPECT(want, texts, ...)                                                             \
    do {                                                                                     \
        int rc_ = cli_run(__VA_ARGS__);                                                      \
        const char *const *t_ = (texts);                                                     \
        if (rc_ != (want))                                                                   \
            FAIL("%s:%d: exit status %d, expected %d; output:\n%s", __FILE__, __LINE__, rc_,  \
                 (want), cli_out);                                                            \
        for (int k_ = 0; t_ && t_[k_]; k_++)                                                 \
            if (!strstr(cli_out, t_[k_]))                                                    \
                FAIL("%s:%d: output lacks \"%s\":\n%s", __FILE__, __LINE__, t_[k_], cli_out); \
    } while (0)
#define TEXTS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char dir[256];

static const char *mlp =
    "input name=x shape=4\n"
    "dense units=8 activation=relu\n"
    "dense units=2 activation=softmax\n"
    "loss categorical_crossentropy\n"
    "optimizer adam lr=1e-2\n";

/* <d>/m.model and <d>/t.csv: 40 rows of a,b,c,d and a class label. */
static int make_set(const char *d)
{
    char p[512];
    snprintf(p, sizeof p, "%s/m.model", d);
    if (test_write_text(p, mlp))
        return 1;
    snprintf(p, sizeof p, "%s/t.csv", d);
    FILE *f = fopen(p, "w");
    if (!f)
        return 1;
    fprintf(f, "a,b,c,d,label\n");
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int i = 0; i < 40; i++) {
        double x[4];
        for (int k = 0; k < 4; k++)
            x[k] = ds_rng_normal(&r);
        fprintf(f, "%.5f,%.5f,%.5f,%.5f,%d\n", x[0], x[1], x[2], x[3], x[0] + x[1] > 0);
    }
    return fclose(f);
}

/* The folder's entries whose names contain ".tmp", as " name name..." in buf; their count. */
static int tmp_files(const char *d, char *buf, size_t cap)
{
    int n = 0;
    size_t len = 0;
    buf[0] = 0;
    DIR *dp = opendir(d);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        if (!strstr(e->d_name, ".tmp"))
            continue;
        n++;
        if (len < cap)
            len += (size_t)snprintf(buf + len, cap - len, " %s", e->d_name);
    }
    if (dp)
        closedir(dp);
    return n;
}

#define TRAIN "train %s/m.model --data %s/t.csv --columns a,b,c,d --label-columns label " \
              "--epochs 2 -q"

/* A private FIFO (and, as root, a private character device) named as an output is refused
 * by every command before anything is written, and stays what it was; a symbolic link to
 * the FIFO too. */
TEST(cli_outputs_refuse_special_files)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char p[600], dev[600], ln[600];
    CHECK(d && !make_set(d));
    snprintf(p, sizeof p, "%s/f.safetensors", d);
    CHECK(mkfifo(p, 0600) == 0);
    const char *const *fifo = TEXTS("is a FIFO (named pipe), not a regular file: outputs are written "
                             "to a new file renamed into place, which would replace it");
    EXPECT(2, fifo, "init %s/m.model -o %s", d, p);
    EXPECT(2, fifo, TRAIN " -o %s", d, d, p);
    EXPECT(0, NULL, "init %s/m.model -o %s/w.safetensors", d, d);
    EXPECT(2, fifo, "grad %s/m.model --weights %s/w.safetensors --data %s/t.csv --columns "
           "a,b,c,d --label-columns label -o %s", d, d, d, p);
    snprintf(ln, sizeof ln, "%s/l.safetensors", d);
    CHECK(symlink("f.safetensors", ln) == 0);
    EXPECT(2, fifo, "init %s/m.model -o %s", d, ln);
    /* a FIFO as the log, or as a side file the run derives from -o */
    snprintf(p, sizeof p, "%s/log.csv", d);
    CHECK(mkfifo(p, 0600) == 0);
    EXPECT(2, TEXTS("--log", "is a FIFO"), TRAIN " -o %s/w2.safetensors --log %s", d, d, d, p);
    snprintf(p, sizeof p, "%s/w3.ckpt.safetensors", d);
    CHECK(mkfifo(p, 0600) == 0);
    EXPECT(2, TEXTS("the checkpoint of -o,", "is a FIFO"), TRAIN " -o %s/w3.safetensors", d, d,
           d);
    snprintf(p, sizeof p, "%s/p.npy", d);
    CHECK(mkfifo(p, 0600) == 0);
    EXPECT(2, fifo, "predict %s/m.model --weights %s/w.safetensors --data %s/t.csv --columns "
           "a,b,c,d -o %s", d, d, d, p);
    snprintf(p, sizeof p, "%s/s.fits", d);
    CHECK(mkfifo(p, 0600) == 0);
    EXPECT(2, fifo, "sim galaxies --count 2 --size 8 -o %s --truth %s/t.fits", p, d);
    struct stat st;
    CHECK(stat(ln, &st) == 0 && S_ISFIFO(st.st_mode));
    /* a private character device (the null device's numbers), as root only */
    snprintf(dev, sizeof dev, "%s/null.safetensors", d);
    const char *note = "FIFOs refused; no device node (mknod not permitted)";
    if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        EXPECT(2, TEXTS("is a character device, not a regular file"), "init %s/m.model -o %s",
               d, dev);
        CHECK(stat(dev, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1);
        note = "FIFOs and a character device refused, left as they were";
    }
    char left[512];
    if (tmp_files(d, left, sizeof left))
        FAIL("temporary files left:%s", left);
    snprintf(msg_, cap_, "%s", note);
    test_rm_rf(d);
    return TEST_PASS;
}

/* The library's writer refuses a special file too (for callers other than the tool). */
TEST(cli_outputs_writer_refuses_a_fifo)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char p[600];
    CHECK(d);
    snprintf(p, sizeof p, "%s/f.npy", d);
    CHECK(mkfifo(p, 0600) == 0);
    ds_tensor *t = ds_tensor_create(1, (int64_t[]){3});
    CHECK(t);
    ds_status st = ds_npy_save(t, p);
    ds_tensor_free(t);
    CHECK(st == DS_ERR_IO);
    CHECK(strstr(ds_last_error(), "is a FIFO (named pipe), not a regular file"));
    struct stat s;
    CHECK(stat(p, &s) == 0 && S_ISFIFO(s.st_mode));
    test_rm_rf(d);
    return TEST_PASS;
}

/* An output that is a symbolic link (to another folder, relative) keeps the link and
 * replaces its target, with the target's permissions. */
TEST(cli_outputs_write_through_symlinks)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char p[600], real[600], ln[600];
    CHECK(d && !make_set(d));
    snprintf(p, sizeof p, "%s/sub", d);
    CHECK(mkdir(p, 0700) == 0);
    snprintf(real, sizeof real, "%s/sub/real.safetensors", d);
    CHECK(test_write_text(real, "old") == 0 && chmod(real, 0640) == 0);
    snprintf(ln, sizeof ln, "%s/w.safetensors", d);
    CHECK(symlink("sub/real.safetensors", ln) == 0);
    EXPECT(0, NULL, "init %s/m.model -o %s", d, ln);
    struct stat st;
    CHECK(lstat(ln, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat(real, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640);
    ds_tensor_set *s = NULL;
    CHECK(ds_safetensors_load(real, &s) == DS_OK);
    ds_tensor_set_free(s);
    /* training through the link: the weights land in the target, the side files beside
     * the name given */
    EXPECT(0, NULL, TRAIN " -o %s", d, d, ln);
    CHECK(lstat(ln, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(ds_safetensors_load(real, &s) == DS_OK);
    ds_tensor_set_free(s);
    snprintf(p, sizeof p, "%s/w.ckpt.safetensors", d);
    CHECK(access(p, R_OK) == 0);
    char left[512];
    if (tmp_files(d, left, sizeof left))
        FAIL("temporary files left:%s", left);
    test_rm_rf(d);
    return TEST_PASS;
}

/* An output that is one of the command's inputs (by name, or the same inode under another
 * name), or two outputs that are one file, are refused before anything is read. */
TEST(cli_outputs_refuse_inputs_and_duplicates)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char p[600], q[600];
    CHECK(d && !make_set(d));
    EXPECT(0, NULL, "init %s/m.model -o %s/w0.safetensors", d, d);
    EXPECT(0, NULL, "init %s/m.model -o %s/w.best.safetensors", d, d);
    snprintf(p, sizeof p, "%s/t.csv", d);
    snprintf(q, sizeof q, "%s/hard.csv", d);
    CHECK(link(p, q) == 0);
    const char *destroy = "writing it would destroy an input; give another name";
    EXPECT(2, TEXTS("--log", "t.csv is also --data", destroy),
           TRAIN " -o %s/w.safetensors --log %s/t.csv", d, d, d, d);
    EXPECT(2, TEXTS("--log", "hard.csv is the same file as --data", destroy),
           TRAIN " -o %s/w.safetensors --log %s/hard.csv", d, d, d, d);
    EXPECT(2, TEXTS("-o ", "w0.safetensors is also --weights", destroy),
           TRAIN " --weights %s/w0.safetensors -o %s/w0.safetensors", d, d, d, d);
    EXPECT(2, TEXTS("the best weights of -o,", "w.best.safetensors is also --weights"),
           TRAIN " --weights %s/w.best.safetensors -o %s/w.safetensors", d, d, d, d);
    EXPECT(2, TEXTS("-o ", "w0.safetensors is also --weights"),
           "grad %s/m.model --weights %s/w0.safetensors --data %s/t.csv --columns a,b,c,d "
           "--label-columns label -o %s/w0.safetensors", d, d, d, d);
    snprintf(p, sizeof p, "%s/x.npy", d);
    CHECK(test_write_text(p, "not read") == 0);
    EXPECT(2, TEXTS("x.npy is also --data", destroy), "predict %s/m.model --weights "
           "%s/w0.safetensors --data %s/x.npy -o %s/x.npy", d, d, d, d);
    EXPECT(2, TEXTS("is the same file as the model file"), "predict %s/m.model --weights "
           "%s/w0.safetensors --data %s/t.csv --columns a,b,c,d -o %s/../%s/m.model", d, d, d, d,
           strrchr(d, '/') + 1);
    /* two outputs, one file: the same name, or a new name spelled two ways */
    EXPECT(2, TEXTS("-o", "--truth", "are the same file: give each output its own name"),
           "sim galaxies --count 2 --size 8 -o %s/s.fits --truth %s/s.fits", d, d);
    EXPECT(2, TEXTS("are the same file"), "sim galaxies --count 2 --size 8 -o %s/s.fits "
           "--truth %s/./s.fits", d, d);
    EXPECT(2, TEXTS("the .npy copy of -o,", "the .npy copy of --truth,", "are the same file"),
           "sim galaxies --count 2 --size 8 -o %s/s.fits --truth %s/s.csv --npy", d, d);
    /* nothing was written: the inputs are intact */
    snprintf(p, sizeof p, "%s/s.fits", d);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/w.safetensors", d);
    CHECK(access(p, F_OK) != 0);
    test_rm_rf(d);
    return TEST_PASS;
}

/* train, init and grad write safetensors, the log CSV and the curve PNG: other names are
 * refused before anything is read; none turns the log or the curve off. */
TEST(cli_outputs_need_their_extension)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char p[600];
    CHECK(d && !make_set(d));
    EXPECT(2, TEXTS("deepsky init: -o /dev/full: weights are written as safetensors: give a "
                    "name ending in .safetensors"), "init %s/m.model -o /dev/full", d);
    EXPECT(2, TEXTS("-o ", "w.bin: weights are written as safetensors"),
           TRAIN " -o %s/w.bin", d, d, d);
    EXPECT(2, TEXTS("-o ", "g.npy: gradients are written as safetensors"),
           "grad %s/m.model --weights w.safetensors --data %s/t.csv -o %s/g.npy", d, d, d);
    EXPECT(2, TEXTS("--log ", "l.txt: logs are written as csv: give a name ending in .csv"),
           TRAIN " -o %s/w.safetensors --log %s/l.txt", d, d, d, d);
    EXPECT(2, TEXTS("--curve ", "m.model: learning curves are written as png"),
           TRAIN " -o %s/w.safetensors --curve %s/m.model", d, d, d, d);
    EXPECT(2, TEXTS("-o ", "/.safetensors: weights are written as safetensors"),
           "init %s/m.model -o %s/.safetensors", d, d);
    EXPECT(0, TEXTS("done: 2 epochs"), "train %s/m.model --data %s/t.csv --columns a,b,c,d "
           "--label-columns label --epochs 2 --log none --curve none -o %s/w.safetensors", d, d,
           d);
    CHECK(!strstr(cli_out, ".log.csv") && !strstr(cli_out, ".png"));
    snprintf(p, sizeof p, "%s/w.log.csv", d);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/w.curve.png", d);
    CHECK(access(p, F_OK) != 0);
    test_rm_rf(d);
    return TEST_PASS;
}

/* stderr of the calls in between, captured into buf. */
typedef struct {
    int saved;
    char path[300];
} capture;

static int capture_start(capture *c, const char *d)
{
    snprintf(c->path, sizeof c->path, "%s/stderr.txt", d);
    fflush(stderr);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    c->saved = dup(2);
    if (fd < 0 || c->saved < 0 || dup2(fd, 2) < 0)
        return 1;
    close(fd);
    return 0;
}

static void capture_end(capture *c, char *buf, size_t cap)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* The device-folder rule, with a private folder standing for /dev: an output in it or
 * below it is refused; one beside it is not. (The real /dev is never written in tests.) */
TEST(cli_outputs_never_go_into_the_device_folder)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char devroot[600], sub[600], out[700], other[700], err[2048];
    CHECK(d);
    snprintf(devroot, sizeof devroot, "%s/dev", d);
    snprintf(sub, sizeof sub, "%s/dev/sub", d);
    CHECK(mkdir(devroot, 0700) == 0 && mkdir(sub, 0700) == 0);
    cli_cmd c = {.name = "train"};
    cli_files f = {0};
    snprintf(out, sizeof out, "%s/w.best.safetensors", sub);
    cli_files_output(&f, "the best weights of -o,", out);
    capture cap;
    CHECK(capture_start(&cap, d) == 0);
    int rc = cli_files_check_in(&c, &f, devroot);
    capture_end(&cap, err, sizeof err);
    if (rc != 2 || !strstr(err, "is in the device folder") || !strstr(err, "outputs never go "
                                                                           "there"))
        FAIL("status %d, message '%s'", rc, err);
    cli_files g = {0};
    snprintf(other, sizeof other, "%s/w.safetensors", d);
    cli_files_output(&g, "-o", other);
    CHECK(cli_files_check_in(&c, &g, devroot) == 0);
    CHECK(cli_in_device_folder(devroot, devroot) && cli_in_device_folder(sub, devroot));
    CHECK(!cli_in_device_folder(d, devroot));
    /* a folder that does not exist: a failure naming it, before any work */
    cli_files h = {0};
    snprintf(other, sizeof other, "%s/missing/w.safetensors", d);
    cli_files_output(&h, "-o", other);
    CHECK(capture_start(&cap, d) == 0);
    rc = cli_files_check_in(&c, &h, devroot);
    capture_end(&cap, err, sizeof err);
    if (rc != 1 || !strstr(err, "cannot write") || !strstr(err, "No such file or directory"))
        FAIL("missing folder: status %d, message '%s'", rc, err);
    snprintf(msg_, cap_, "%.200s", err);
    for (char *s = msg_; *s; s++)
        if (*s == '\n')
            *s = ' ';
    test_rm_rf(d);
    return TEST_PASS;
}

/* A file size limit (ulimit -f, SIGXFSZ left at its default, which would kill the tool):
 * a message naming the file, status 1, the previous files unchanged, no temporary file. */
TEST(cli_outputs_file_size_limit_is_a_message)
{
    const char *d = test_tmpdir(dir, sizeof dir, "out");
    char cmd[4096], p[600], left[512];
    CHECK(d && !make_set(d));
    EXPECT(0, NULL, "init %s/m.model -o %s/w.safetensors", d, d);
    snprintf(p, sizeof p, "%s/w.safetensors", d);
    struct stat before, after;
    CHECK(stat(p, &before) == 0);
    /* the runner may ignore SIGXFSZ (cli_main does, and the fuzz corpus test calls it):
     * the tool is spawned with the default action, which kills a process at the limit */
    signal(SIGXFSZ, SIG_DFL);
    /* one block of 512 bytes: less than the weights file */
    snprintf(cmd, sizeof cmd, "ulimit -f 1; exec %s init %s/m.model --seed 5 "
             "-o %s/w.safetensors", cli_bin(), d, d);
    int rc = cli_run_sh(cmd, NULL, cli_out, sizeof cli_out);
    if (rc != 1 || !strstr(cli_out, "cannot write") || !strstr(cli_out, "w.safetensors") ||
        !strstr(cli_out, "File too large"))
        FAIL("status %d, output '%s'", rc, cli_out);
    CHECK(stat(p, &after) == 0 && after.st_ino == before.st_ino &&
          after.st_size == before.st_size);
    snprintf(cmd, sizeof cmd, "ulimit -f 1; exec %s train %s/m.model --data %s/t.csv --columns "
             "a,b,c,d --label-columns label --epochs 3 -q -o %s/v.safetensors", cli_bin(), d, d,
             d);
    rc = cli_run_sh(cmd, NULL, cli_out, sizeof cli_out);
    if (rc != 1 || !strstr(cli_out, "File too large"))
        FAIL("train: status %d, output '%s'", rc, cli_out);
    if (tmp_files(d, left, sizeof left))
        FAIL("temporary files left:%s", left);
    snprintf(msg_, cap_, "%.200s", cli_out);
    for (char *s = msg_; *s; s++)
        if (*s == '\n')
            *s = ' ';
    test_rm_rf(d);
    return TEST_PASS;
}
