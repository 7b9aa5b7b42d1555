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

static const char *mpi_bin(void)
{
    const char *b = getenv("DEEPSKY_MPI");
    return b && *b ? b : NULL;
}

/* "mpirun ... -np k <mpi tool>": as root mpirun needs --allow-run-as-root; two ranks on a
 * machine of two cores shared with other jobs, --oversubscribe. */
static void mpirun(char *buf, size_t cap, int k)
{
    snprintf(buf, cap, "mpirun --allow-run-as-root --oversubscribe --bind-to none -np %d "
             "-x ASAN_OPTIONS -x UBSAN_OPTIONS -x LSAN_OPTIONS -x OMP_NUM_THREADS %s", k,
             mpi_bin());
}

static char out[1 << 16];

/* Runs a shell command line in dir, OpenMPI's leaks aside (its own allocations at exit are
 * not ours: detect_leaks=0 under mpirun), one OpenMP thread per rank. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "cd %s && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    const char *env[] = {"OMP_NUM_THREADS=1", "OMPI_MCA_rmaps_base_oversubscribe=1", NULL};
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

static const char *train_args = "train m.model --data t.csv --label-columns y --epochs 10 "
                                "--seed 7 --threads 1 -q";

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
    int st = sh("%s %s --batch-size 32 --check-replicas -o a.safetensors", run, train_args);
    if (st != 0)
        FAIL("2 ranks: status %d: %s", st, out);
    st = sh("%s %s --batch-size 16 --accumulate 2 -o b.safetensors", cli_bin(), train_args);
    if (st != 0)
        FAIL("1 process, 16 x 2: status %d: %s", st, out);
    st = sh("%s %s --batch-size 32 -o c.safetensors", cli_bin(), train_args);
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
    /* rank 0 alone wrote: the files of one run, no temporary left */
    const char *files[] = {"m.model", "t.csv", "a.safetensors", "a.best.safetensors",
                           "a.ckpt.safetensors", "a.log.csv", "a.curve.png",
                           "b.safetensors", "b.best.safetensors", "b.ckpt.safetensors",
                           "b.log.csv", "b.curve.png", "c.safetensors", "c.best.safetensors",
                           "c.ckpt.safetensors", "c.log.csv", "c.curve.png"};
    int nf = (int)(sizeof files / sizeof files[0]);
    const char *name;
    if (!ds_has_feature("plot")) {   /* no curves without cairo */
        files[6] = files[11] = files[16] = "m.model";
    }
    int h = test_folder_holds(dir, files, nf, &name);
    test_rm_rf(dir);
    if (h == 2)
        FAIL("a file no run should write: %s", name);
    return TEST_PASS;
}

/* Batch norm per rank, its statistics averaged: the replicas stay bit-identical (checked
 * after every step), and a K of 3 splits a step of 32 unevenly (10, 11, 11). */
TEST(mpi_train_replicas_batchnorm)
{
    char run[512];
    int rc = setup(msg_, cap_, "mpi_bn");
    if (rc)
        return rc;
    char p[512];
    snprintf(p, sizeof p, "%s/m.model", dir);
    CHECK(test_write_text(p, cnn) == 0);
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){40, 1, 8, 8});
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){40, 2});
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int64_t i = 0; x && i < ds_tensor_numel(x); i++)
        ds_tensor_data(x)[i] = (float)ds_rng_normal(&r);
    for (int64_t i = 0; y && i < 80; i++)
        ds_tensor_data(y)[i] = ds_tensor_data(x)[(i / 2) * 64 + 27 + i % 2];
    char px[512], py[512];
    snprintf(px, sizeof px, "%s/x.npy", dir);
    snprintf(py, sizeof py, "%s/y.npy", dir);
    CHECK(x && y && ds_npy_save(x, px) == DS_OK && ds_npy_save(y, py) == DS_OK);
    ds_tensor_free(x);
    ds_tensor_free(y);
    mpirun(run, sizeof run, 3);
    int st = sh("%s train m.model --data x.npy --labels y.npy --epochs 3 --batch-size 32 "
                "--threads 1 --check-replicas -q -o w.safetensors", run);
    test_rm_rf(dir);
    if (st != 0)
        FAIL("3 ranks with batch norm: status %d: %s", st, out);
    return TEST_PASS;
}
