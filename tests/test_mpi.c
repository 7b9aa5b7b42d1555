/* test_mpi.c - the tool under mpirun (issue 21): 2 ranks x 16 train to the bits of 1 process
 * x 16 x 2 accumulated (and within 1e-6 of one pass of 32), the ranks' weights compared
 * after every step, a stuck rank stops the job within --mpi-timeout and --resume then ends
 * on the bits of an uninterrupted run (and resumes with another rank count), and sharded
 * inference over 100 FITS files with 2 corrupt ones (98 outputs, 2 listed, exit 1; a second
 * run does only the failed ones; the bits of a single process). The MPI tool is
 * $DEEPSKY_MPI (make test builds build/deepsky-test-mpi where mpicc exists); without it
 * the tests skip. */
#include "test.h"
#include "spawn.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

/* An MLP without dropout or batch norm: its gradient is a plain sum over the samples. */
static const char *mlp =
    "input name=x shape=6\n"
    "dense units=24 activation=tanh\n"
    "dense units=12 activation=relu\n"
    "dense units=1\n"
    "loss mse\n"
    "optimizer adam lr=3e-3\n";

/* A CNN with batch norm, for the replicas check and sharded inference (8x8 images). */
static const char *cnn =
    "input name=x shape=1,8,8\n"
    "conv2d filters=4 kernel=3 padding=same\n"
    "batchnorm\n"
    "relu\n"
    "maxpool size=2\n"
    "flatten\n"
    "dense units=2\n"
    "loss mse\n"
    "optimizer adam lr=1e-2\n";

/* path made absolute (the commands run in the test's folder), in buf. */
static const char *absolute(const char *path, char *buf)
{
    return path && realpath(path, buf) ? buf : path;
}

static const char *mpi_bin(void)
{
    static char buf[4096];
    const char *b = getenv("DEEPSKY_MPI");
    return b && *b ? absolute(b, buf) : NULL;
}

static const char *tool(void)
{
    static char buf[4096];
    return absolute(cli_bin(), buf);
}

/* "mpirun ... -np k <mpi tool>": as root mpirun needs --allow-run-as-root; more ranks than
 * the free cores, --oversubscribe. The ranks run with the sanitizers of tests/spawn.h but
 * for the leak check: OpenMPI keeps allocations of its own until exit. */
static void mpirun(char *buf, size_t cap, int k)
{
    snprintf(buf, cap, "mpirun --allow-run-as-root --oversubscribe --bind-to none -np %d "
             "-x ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:exitcode=%d "
             "-x UBSAN_OPTIONS -x OMP_NUM_THREADS %s", k, CLI_SANITIZER_EXIT, mpi_bin());
}

static char out[1 << 16];

/* Runs a shell command line in dir, one OpenMP thread per rank. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "cd %s && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    char cwd[512] = "", lsan[700];   /* the leak suppressions, from the test's folder */
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = 0;
    snprintf(lsan, sizeof lsan, "LSAN_OPTIONS=suppressions=%s/tests/lsan.supp:exitcode=%d",
             cwd, CLI_SANITIZER_EXIT);
    const char *env[] = {"OMP_NUM_THREADS=1", lsan, NULL};
    return cli_run_sh(cmd, env, out, sizeof out);
}

static int setup(char *msg_, size_t cap_, const char *tag)
{
    if (!mpi_bin())
        SKIP("no MPI tool: built without mpicc (OpenMPI's libopenmpi-dev) or with NO_MPI=1");
    if (system("command -v mpirun >/dev/null 2>&1") != 0)
        SKIP("mpirun is not installed (openmpi-bin)");
    if (!test_tmpdir(dir, sizeof dir, tag))
        FAIL("cannot make a temporary folder");
    return TEST_PASS;
}

/* <dir>/<name>: rows of 6 features and a smooth target (seeded), as CSV. */
static int make_table(const char *name, int rows, uint64_t seed)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f)
        return 1;
    fprintf(f, "a,b,c,d,e,f,y\n");
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int i = 0; i < rows; i++) {
        double x[6];
        for (int k = 0; k < 6; k++)
            x[k] = ds_rng_normal(&r);
        fprintf(f, "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n", x[0], x[1], x[2], x[3], x[4], x[5],
                sin(x[0]) + x[1] * x[2] - 0.5 * x[3]);
    }
    return fclose(f);
}

/* The largest |a - b| over the tensors of two weights files, relative to the largest |a|;
 * -1 when they do not hold the same tensors. *same: bit-identical. */
static double weights_diff(const char *pa, const char *pb, bool *same)
{
    char a_path[512], b_path[512];
    snprintf(a_path, sizeof a_path, "%s/%s", dir, pa);
    snprintf(b_path, sizeof b_path, "%s/%s", dir, pb);
    ds_tensor_set *a = NULL, *b = NULL;
    double worst = -1, amax = 0;
    *same = false;
    if (ds_safetensors_load(a_path, &a) || ds_safetensors_load(b_path, &b) ||
        ds_tensor_set_count(a) != ds_tensor_set_count(b))
        goto done;
    worst = 0;
    *same = true;
    for (int i = 0; i < ds_tensor_set_count(a); i++) {
        const char *name = ds_tensor_set_name(a, i);
        const ds_tensor *x = ds_tensor_set_get(a, name), *y = ds_tensor_set_get(b, name);
        if (!y || ds_tensor_numel(x) != ds_tensor_numel(y)) {
            worst = -1;
            break;
        }
        const float *u = ds_tensor_data((ds_tensor *)x), *v = ds_tensor_data((ds_tensor *)y);
        for (int64_t k = 0; k < ds_tensor_numel(x); k++) {
            worst = fmax(worst, fabs((double)u[k] - v[k]));
            amax = fmax(amax, fabs((double)u[k]));
            *same &= memcmp(&u[k], &v[k], 4) == 0;
        }
    }
done:
    ds_tensor_set_free(a);
    ds_tensor_set_free(b);
    return worst > 0 && amax > 0 ? worst / amax : worst;
}

static const char *train_args = "--data t.csv --label-columns y --epochs 10 --seed 7 "
                                "--threads 1 -q";

TEST(mpi_train_equivalence)
{
    char run[512];
    int rc = setup(msg_, cap_, "mpi_eq");
    if (rc)
        return rc;
    char p[512];
    snprintf(p, sizeof p, "%s/m.model", dir);
    CHECK(test_write_text(p, mlp) == 0 && make_table("t.csv", 64, 3) == 0);
    mpirun(run, sizeof run, 2);
    /* 64 samples, global batch 32: 2 steps an epoch, 20 steps */
    int st = sh("%s train m.model %s --batch-size 32 --check-replicas -o a.safetensors", run,
                train_args);
    if (st != 0)
        FAIL("2 ranks: status %d: %s", st, out);
    st = sh("%s train m.model %s --batch-size 16 --accumulate 2 -o b.safetensors", tool(),
            train_args);
    if (st != 0)
        FAIL("1 process, 16 x 2: status %d: %s", st, out);
    st = sh("%s train m.model %s --batch-size 32 -o c.safetensors", tool(), train_args);
    if (st != 0)
        FAIL("1 process, 32: status %d: %s", st, out);
    bool same;
    double d = weights_diff("a.safetensors", "b.safetensors", &same);
    if (!same)
        FAIL("2 ranks x 16 against 1 process x 16 x 2 accumulated: not bit-identical "
             "(relative difference %g)", d);
    d = weights_diff("a.safetensors", "c.safetensors", &same);
    if (!(d >= 0 && d <= 1e-6))
        FAIL("2 ranks x 16 against 1 process x 32 after 20 steps: relative difference %g", d);
    /* with dropout: each rank's pass draws the masks of the same pass of the accumulation */
    CHECK(sh("sed 's/^dense units=12/dropout rate=0.3\\ndense units=12/' m.model > d.model && "
             "grep -q dropout d.model") == 0);
    st = sh("%s train d.model %s --batch-size 32 -o d1.safetensors --log none --curve none", run,
            train_args);
    if (st != 0 || sh("%s train d.model %s --batch-size 16 --accumulate 2 -o d2.safetensors "
                      "--log none --curve none", tool(), train_args) != 0)
        FAIL("dropout: status %d: %s", st, out);
    d = weights_diff("d1.safetensors", "d2.safetensors", &same);
    if (!same)
        FAIL("with dropout, 2 ranks x 16 against 1 process x 16 x 2: not bit-identical "
             "(relative %g)", d);
    CHECK(sh("rm d.model d1.* d2.*") == 0);
    /* rank 0 alone wrote, atomically: the files of one run each, no temporary left */
    const char *files[17] = {"m.model", "t.csv"};
    int nf = 2;
    const char *suffix[] = {".safetensors", ".best.safetensors", ".ckpt.safetensors",
                            ".log.csv", ".curve.png"};
    static char names[15][32];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 5; k++)
            if (k < 4 || ds_has_feature("plot")) {   /* no curve without cairo */
                snprintf(names[r * 5 + k], sizeof names[0], "%c%s", "abc"[r], suffix[k]);
                files[nf++] = names[r * 5 + k];
            }
    const char *name;
    int h = test_folder_holds(dir, files, nf, &name);
    test_rm_rf(dir);
    if (h)
        FAIL("the folder is not what the three runs write: %s %s", h == 1 ? "missing" :
             "unexpected", h < 3 ? name : "(unreadable)");
    return TEST_PASS;
}

/* The CNN with batch norm as m.model, and 40 images x.npy with two of their pixels as labels
 * y.npy, in the test's folder. */
static int make_images(void)
{
    char p[512], px[512], py[512];
    snprintf(p, sizeof p, "%s/m.model", dir);
    snprintf(px, sizeof px, "%s/x.npy", dir);
    snprintf(py, sizeof py, "%s/y.npy", dir);
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){40, 1, 8, 8});
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){40, 2});
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int64_t i = 0; x && i < ds_tensor_numel(x); i++)
        ds_tensor_data(x)[i] = (float)ds_rng_normal(&r);
    for (int64_t i = 0; y && i < 80; i++)
        ds_tensor_data(y)[i] = ds_tensor_data(x)[(i / 2) * 64 + 27 + i % 2];
    int bad = test_write_text(p, cnn) != 0 || !x || !y || ds_npy_save(x, px) != DS_OK ||
              ds_npy_save(y, py) != DS_OK;
    ds_tensor_free(x);
    ds_tensor_free(y);
    return bad;
}

/* Batch norm per rank, its statistics averaged: the replicas stay bit-identical (checked
 * after every step), and a K of 3 splits a step of 32 unevenly (10, 11, 11). */
TEST(mpi_train_replicas_batchnorm)
{
    char run[512];
    int rc = setup(msg_, cap_, "mpi_bn");
    if (rc)
        return rc;
    CHECK(make_images() == 0);
    mpirun(run, sizeof run, 3);
    int st = sh("%s train m.model --data x.npy --labels y.npy --epochs 3 --batch-size 32 "
                "--threads 1 --check-replicas -q -o w.safetensors", run);
    test_rm_rf(dir);
    if (st != 0)
        FAIL("3 ranks with batch norm: status %d: %s", st, out);
    return TEST_PASS;
}

/* --sync-bn: 2 ranks x 16 normalize as 1 process x 32 does (the same weights to 1e-6
 * relative: the statistics are summed in another order), while per-rank batch norm differs; a step
 * that gives a rank no sample is refused on every rank, naming the cause. */
TEST(mpi_train_sync_bn)
{
    char run[512];
    int rc = setup(msg_, cap_, "mpi_sync_bn");
    if (rc)
        return rc;
    /* no convolution bias: batch norm takes any constant out, so its gradient is rounding
     * noise, which Adam scales up to whole steps */
    CHECK(make_images() == 0 && sh("sed -i 's/padding=same$/padding=same bias=false/' m.model "
                                   "&& grep -q bias=false m.model") == 0);
    const char *args = "--data x.npy --labels y.npy --epochs 5 --batch-size 32 --seed 3 "
                       "--no-shuffle --threads 1 -q --log none --curve none";
    mpirun(run, sizeof run, 2);
    int st = sh("%s train m.model %s --sync-bn --check-replicas -o s.safetensors", run, args);
    if (st != 0)
        FAIL("2 ranks --sync-bn: status %d: %s", st, out);
    CHECK(sh("%s train m.model %s --sync-bn -o one.safetensors", tool(), args) == 0);
    CHECK(sh("%s train m.model %s -o p.safetensors", run, args) == 0);
    bool same;
    double ds = weights_diff("s.safetensors", "one.safetensors", &same);
    double dp = weights_diff("p.safetensors", "one.safetensors", &same);
    if (!(ds >= 0 && ds < 1e-6 && dp > 100 * ds))
        FAIL("2 ranks against 1 process after 10 steps: %g with --sync-bn, %g without", ds, dp);
    /* 40 samples in steps of 39: the second step's one sample leaves two of 3 ranks idle */
    mpirun(run, sizeof run, 3);
    st = sh("%s train m.model --data x.npy --labels y.npy --epochs 1 --batch-size 39 "
            "--threads 1 -q --sync-bn -o e.safetensors 2>&1", run);
    test_rm_rf(dir);
    if (st == 0 || !strstr(out, "--sync-bn: the ranks make different numbers of passes"))
        FAIL("an uneven step with --sync-bn: status %d: %s", st, out);
    return TEST_PASS;
}

/* The pid of rank `rank` among the children of mpirun (pid parent): its environment says. */
static pid_t rank_pid(pid_t parent, int rank)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    while (d && found < 0 && (e = readdir(d))) {
        char p[300], buf[1 << 15];
        long ppid = -1;
        snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        if (fscanf(f, "%*d (%*[^)]) %*c %ld", &ppid) != 1)
            ppid = -1;
        fclose(f);
        if (ppid != parent)
            continue;
        snprintf(p, sizeof p, "/proc/%s/environ", e->d_name);
        if (!(f = fopen(p, "rb")))
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
            buf[n] = 0;
            if (!strcmp(buf + i, want))
                found = (pid_t)atol(e->d_name);
        }
    }
    if (d)
        closedir(d);
    return found;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Starts a 2-rank run of `args` -o k.safetensors, waits for its first checkpoint, then
 * sends sig to rank 1; the job must end non-zero within a few seconds, saying why. */
static int break_rank(char *msg_, size_t cap_, const char *args, int sig, const char *expect)
{
    char run[512], cmd[2048];
    mpirun(run, sizeof run, 2);
    snprintf(cmd, sizeof cmd, "cd %s && exec %s %s -o k.safetensors", dir, run, args);
    const char *env[] = {"OMP_NUM_THREADS=1", NULL};
    cli_proc p;
    CHECK(cli_start(&p, cmd, env) == 0);
    char ck[512];
    snprintf(ck, sizeof ck, "%s/k.ckpt.safetensors", dir);
    double t0 = now_s();
    while (access(ck, F_OK) != 0 && now_s() - t0 < 60 && cli_poll(&p, 20) == CLI_RUNNING) {
    }
    usleep(200000);
    pid_t r1 = rank_pid(p.pid, 1);
    if (r1 < 0) {
        cli_kill(&p, out, sizeof out);
        FAIL("no rank 1 among mpirun's children (a checkpoint after %.1f s): %s",
             now_s() - t0, out);
    }
    kill(r1, sig);
    double t1 = now_s();
    while (now_s() - t1 < 30 && cli_poll(&p, 50) == CLI_RUNNING) {
    }
    double waited = now_s() - t1;
    int st = waited < 30 ? cli_finish(&p, out, sizeof out) : cli_kill(&p, out, sizeof out);
    if (st == 0 || waited >= 30)
        FAIL("rank 1 sent signal %d: the job %s after %.1f s: %s", sig, st ? "hung" : "ended "
             "well", waited, out);
    if (!strstr(out, expect))
        FAIL("rank 1 sent signal %d: no '%s' in: %s", sig, expect, out);
    return TEST_PASS;
}

/* A stuck rank (SIGSTOP): the other gives up after --mpi-timeout 2 and the job stops with
 * that message; a dead one (SIGKILL): mpirun stops the job. --resume then ends on the bits
 * of an uninterrupted run, with 2 ranks; and resumes with 1 as well. */
TEST(mpi_train_stuck_rank_resume)
{
    int rc = setup(msg_, cap_, "mpi_kill");
    if (rc)
        return rc;
    char p[512], run[512];
    snprintf(p, sizeof p, "%s/m.model", dir);
    CHECK(test_write_text(p, mlp) == 0 && make_table("t.csv", 64, 3) == 0);
    const char *base = "train m.model --data t.csv --label-columns y --seed 7 --threads 1 -q "
                       "--batch-size 32 --checkpoint-every 0.2 --curve none --mpi-timeout 2";
    /* The broken runs are far too long to end before the signal (a job that ended first
     * would leave rank 1 nothing to stop, or stop it inside MPI_Finalize, which has no
     * timeout); the epochs are not a setting that --resume compares, so the resumed and
     * uninterrupted runs below go 1,000 epochs past the checkpoint. */
    char args[600];
    snprintf(args, sizeof args, "%s --epochs 1000000", base);
    const char *stuck = "no answer from the other ranks in 2 s";
    rc = break_rank(msg_, cap_, args, SIGSTOP, stuck);
    if (rc)
        return rc;
    ds_tensor_set *ck = NULL;
    ds_weights_info wi = {0};
    snprintf(p, sizeof p, "%s/k.safetensors", dir);
    CHECK(ds_safetensors_load(p, &ck) == DS_OK);
    ds_weights_info_get(ck, &wi);
    ds_tensor_set_free(ck);
    CHECK(wi.epoch >= 1);
    snprintf(args, sizeof args, "%s --epochs %d", base, wi.epoch + 1000);
    CHECK(sh("cp k.ckpt.safetensors k1.ckpt.safetensors && cp k.safetensors "
             "k1.safetensors && cp k.best.safetensors k1.best.safetensors") == 0);
    mpirun(run, sizeof run, 2);
    int st = sh("%s %s --resume -o k.safetensors", run, args);
    if (st != 0)
        FAIL("--resume with 2 ranks: status %d: %s", st, out);
    st = sh("%s %s -o u.safetensors", run, args);
    if (st != 0)
        FAIL("the uninterrupted run: status %d: %s", st, out);
    bool same;
    double d = weights_diff("k.safetensors", "u.safetensors", &same);
    if (!same)
        FAIL("resumed with 2 ranks against uninterrupted: not bit-identical (relative %g)", d);
    /* another K: one pass of 32 instead of two halves, the sums' rounding differs and
     * 2,000 Adam steps carry it on (1e-2 relative seen) */
    st = sh("%s %s --resume -o k1.safetensors", tool(), args);
    d = weights_diff("k1.safetensors", "u.safetensors", &same);
    if (st != 0 || !(d >= 0 && d < 5e-2))
        FAIL("resumed as 1 process: status %d, relative difference %g: %s", st, d, out);
    CHECK(sh("rm -f k.*") == 0);
    snprintf(args, sizeof args, "%s --epochs 1000000", base);
    rc = break_rank(msg_, cap_, args, SIGKILL, "exited on signal 9");
    test_rm_rf(dir);
    return rc;
}

/* 100 FITS files of 3 8x8 stamps, files 17 and 62 not FITS. */
static int make_cutouts(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/cut", dir);
    if (mkdir(p, 0777))
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 11);
    ds_tensor *t = ds_tensor_create(3, (int64_t[]){3, 8, 8});
    int rc = !t;
    for (int i = 0; i < 100 && !rc; i++) {
        snprintf(p, sizeof p, "%s/cut/c%03d.fits", dir, i);
        for (int64_t k = 0; k < 192; k++)
            ds_tensor_data(t)[k] = (float)ds_rng_normal(&r);
        rc = i == 17 || i == 62 ? test_write_text(p, "SIMPLE  =  not a FITS file")
                                : ds_fits_save_image(t, p, NULL) != DS_OK;
    }
    ds_tensor_free(t);
    return rc;
}

/* Whether the files of folders a and b are the same bytes (cmp); 0 when they are. */
static int same_files(const char *a, const char *b)
{
    return sh("for f in %s/*; do cmp -s $f %s/${f##*/} || exit 1; done; "
              "[ $(ls %s | wc -l) = $(ls %s | wc -l) ]", a, b, a, b);
}

TEST(mpi_predict_shards)
{
    int rc = setup(msg_, cap_, "mpi_pred");
    if (rc)
        return rc;
    if (!ds_has_feature("fits"))
        SKIP("built without cfitsio (NO_FITS=1)");
    char p[512], run[512];
    snprintf(p, sizeof p, "%s/m.model", dir);
    CHECK(test_write_text(p, cnn) == 0 && make_cutouts() == 0);
    CHECK(sh("%s init m.model --seed 3 -o w.safetensors", tool()) == 0);
    mpirun(run, sizeof run, 2);
    const char *args = "predict m.model --weights w.safetensors --data 'cut/*.fits' --threads 1";
    int st = sh("%s %s -o preds/", run, args);
    if (st != 1)
        FAIL("2 ranks, 2 corrupt files of 100: status %d (1 expected): %s", st, out);
    if (!strstr(out, "predict: 100 files in ") ||
        !strstr(out, "on 2 ranks: 98 written, 0 skipped (output already there), 2 failed") ||
        !strstr(out, "failed: cut/c017.fits\nfailed: cut/c062.fits\n"))
        FAIL("2 ranks: the summary: %s", out);
    CHECK(sh("[ $(ls preds | wc -l) = 98 ] && [ ! -e preds/c017.npy ] && [ ! -e preds/c062.npy ]")
          == 0);
    st = sh("%s %s -o preds/", run, args);   /* again: only the failed ones */
    if (st != 1 || !strstr(out, "98 skipped (output already there), 2 failed") ||
        strstr(out, "wrote preds/"))
        FAIL("the second run: status %d: %s", st, out);
    st = sh("%s %s -o single/", tool(), args);
    if (st != 1 || !strstr(out, "on 1 rank: 98 written"))
        FAIL("1 process: status %d: %s", st, out);
    if (same_files("preds", "single") != 0)
        FAIL("2 ranks and 1 process wrote different outputs");
    /* the corrupt files mended: the third run writes those two only, and succeeds */
    CHECK(sh("cp cut/c016.fits cut/c017.fits && cp cut/c016.fits cut/c062.fits") == 0);
    st = sh("%s %s -o preds/", run, args);
    if (st != 0 || !strstr(out, "2 written, 98 skipped (output already there), 0 failed"))
        FAIL("the third run: status %d: %s", st, out);
    test_rm_rf(dir);
    return TEST_PASS;
}

/* The plain tool (no MPI) started as 2 ranks says so instead of running twice over the
 * same files; the MPI tool started alone is one process. */
TEST(mpi_plain_tool_refuses_ranks)
{
    int rc = setup(msg_, cap_, "mpi_plain");
    if (rc)
        return rc;
    char p[512], run[512];
    snprintf(p, sizeof p, "%s/m.model", dir);
    CHECK(test_write_text(p, mlp) == 0 && make_table("t.csv", 16, 3) == 0);
    mpirun(run, sizeof run, 2);
    char *plain = strstr(run, mpi_bin());   /* the same mpirun line, the plain tool */
    snprintf(plain, sizeof run - (size_t)(plain - run), "%s", tool());
    int st = sh("%s train m.model %s --batch-size 8 -o w.safetensors", run, train_args);
    if (st == 0 || !strstr(out, "deepsky: error: started as 2 MPI ranks, but deepsky was not "
                           "built with MPI: rebuild with 'make MPI=1' (OpenMPI's mpicc)"))
        FAIL("the plain tool as 2 ranks: status %d: %s", st, out);
    st = sh("%s train m.model %s --batch-size 8 -o w.safetensors && test -f w.safetensors",
            mpi_bin(), train_args);
    test_rm_rf(dir);
    if (st != 0)
        FAIL("the MPI tool alone: status %d: %s", st, out);
    return TEST_PASS;
}
