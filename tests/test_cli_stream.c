/* test_cli_stream.c - the command line on data in many files (issue 13): train --data
 * 'shards/x_*.npy' --labels 'shards/y_*.npy' streamed, to the same weights as the one file
 * in file order; folders and @LIST; the errors of files that do not match, are missing,
 * truncated or of mixed shapes, and of options that need data in memory; --memory-limit,
 * under which streaming trains where loading the same data whole fails; outputs among the
 * files a glob names refused; eval and --val loading a glob whole. The tool under test is the
 * sanitizer build; every error message is asserted. */
#include "test.h"
#include "spawn.h"

#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];


static int make_dir(void) { return test_tmpdir(dir, sizeof dir, "cli_stream") ? 0 : 1; }
static void rm_dir(void) { test_rm_rf(dir); }
static const char *at(const char *name) { return test_at(dir, name); }
static int write_text(const char *name, const char *text) { return test_write_in(dir, name, text); }

/* Whether two weights files in dir hold the same tensors, bit for bit, and metadata (but
 * for the date and command of the run). */
static bool same_weights(const char *a, const char *b)
{
    char why[256], pa[600];
    snprintf(pa, sizeof pa, "%s", at(a));
    if (!same_weights_files(pa, at(b), why, sizeof why))
        return true;
    fprintf(stderr, "%s\n", why);
    return false;
}

static int has(char *msg, size_t cap, ...)
{
    va_list ap;
    va_start(ap, cap);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(cli_out, s)) {
            va_end(ap);
            snprintf(msg, cap, "output lacks '%s':\n%.3000s", s, cli_out);
            return 1;
        }
    va_end(ap);
    return 0;
}

#define EXPECT(status, call)                                                              \
    do {                                                                                  \
        int st_ = (call);                                                                 \
        if (st_ != (status))                                                              \
            FAIL("%s:%d: exit status %d, expected %d:\n%.3000s", __FILE__, __LINE__, st_,  \
                 (status), cli_out);                                                       \
    } while (0)
#define HAS(...) CHECK_OK(has(msg_, cap_, __VA_ARGS__, NULL))

/* t as a float64 .npy file (NumPy's header, then each value as a double). */
static int save_f64(const ds_tensor *t, const char *path)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 1;
    char h[160], shape[64];
    const int64_t *sh = ds_tensor_shape(t);
    if (ds_tensor_ndim(t) == 1)
        snprintf(shape, sizeof shape, "(%lld,)", (long long)sh[0]);
    else
        snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)sh[0], (long long)sh[1]);
    int hl = snprintf(h, sizeof h, "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }",
                      shape);
    while ((10 + hl + 1) % 64)
        h[hl++] = ' ';
    h[hl++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hl, 0};
    int rc = fwrite(pre, 1, 10, fp) != 10 || fwrite(h, 1, (size_t)hl, fp) != (size_t)hl;
    for (int64_t i = 0; i < ds_tensor_numel(t) && !rc; i++) {
        double v = ds_tensor_data((ds_tensor *)t)[i];
        rc = fwrite(&v, 8, 1, fp) != 1;
    }
    return fclose(fp) != 0 || rc;
}

static int save(const ds_tensor *t, const char *path, bool f64)
{
    return f64 ? save_f64(t, path) : ds_npy_save(t, path) != DS_OK;
}

/* <sub>/x_<k>.npy [counts[k], 8] and <sub>/y_<k>.npy [counts[k]] (classes 0..2 that the first
 * features tell), and all of them in one file each, all_x.npy and all_y.npy; float64
 * instead of float32 when f64 (read converted, not mapped). */
static int write_data(const char *sub, int n, const int *counts, bool f64)
{
    int total = 0;
    for (int k = 0; k < n; k++)
        total += counts[k];
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){total, 8});
    ds_tensor *y = ds_tensor_create(1, (int64_t[]){total});
    if (!x || !y || mkdir(at(sub), 0700) != 0)
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int i = 0; i < total; i++) {
        int c = (int)ds_rng_below(&r, 3);
        ds_tensor_data(y)[i] = (float)c;
        for (int j = 0; j < 8; j++)
            ds_tensor_data(x)[8 * i + j] = (float)(ds_rng_normal(&r) * 0.5 + (j == c));
    }
    int rc = 0;
    char name[300];
    snprintf(name, sizeof name, "%s/all_x.npy", sub);
    rc |= save(x, at(name), f64);
    snprintf(name, sizeof name, "%s/all_y.npy", sub);
    rc |= save(y, at(name), f64);
    for (int k = 0, first = 0; k < n && !rc; first += counts[k++]) {
        ds_tensor *a = ds_tensor_from(2, (int64_t[]){counts[k], 8}, ds_tensor_data(x) + 8 * first);
        ds_tensor *b = ds_tensor_from(1, (int64_t[]){counts[k]}, ds_tensor_data(y) + first);
        snprintf(name, sizeof name, "%s/x_%d.npy", sub, k);
        rc |= !a || !b || save(a, at(name), f64);
        snprintf(name, sizeof name, "%s/y_%d.npy", sub, k);
        rc |= !b || save(b, at(name), f64);
        ds_tensor_free(a);
        ds_tensor_free(b);
    }
    ds_tensor_free(x);
    ds_tensor_free(y);
    return rc;
}

static const char *model = "input shape=8\n"
                           "dense units=16 activation=relu\n"
                           "dense units=3 activation=softmax\n"
                           "loss categorical_crossentropy\n"
                           "optimizer adam lr=0.01\n";

#define TRAIN "train m.model --epochs 3 --batch-size 16 --seed 4 -q "

TEST(cli_stream_trains_as_one_file)
{
    CHECK(make_dir() == 0);
    const int counts[] = {50, 33, 71, 46};
    CHECK(write_data("s", 4, counts, false) == 0);
    CHECK(write_text("m.model", model) == 0);
    /* in file order: the same weights, bit for bit, as from the one file */
    EXPECT(0, cli_run_in(dir, TRAIN "--no-shuffle --data s/all_x.npy --labels s/all_y.npy -o "
                              "a.safetensors"));
    EXPECT(0, cli_run_in(dir, TRAIN "--no-shuffle --data 's/x_*.npy' --labels 's/y_*.npy' -o "
                              "b.safetensors"));
    CHECK(same_weights("a.safetensors", "b.safetensors"));
    /* shuffled: runs, says where the data come from, and is the same for a seed */
    EXPECT(0, cli_run_in(dir, "train m.model --epochs 2 --data 's/x_*.npy' --labels 's/y_*.npy' "
                              "--shuffle-buffer 60 --seed 4 --threads 1 -o c.safetensors"));
    HAS("training m.model on 200 samples streamed from 4 shards, batch 32", "done: 2 epochs");
    EXPECT(0, cli_run_in(dir, "train m.model --epochs 2 --data 's/x_*.npy' --labels 's/y_*.npy' "
                              "--shuffle-buffer 60 --seed 4 --threads 1 -q -o d.safetensors"));
    CHECK(same_weights("c.safetensors", "d.safetensors"));
    /* a list and a folder give the same files */
    CHECK(write_text("s.list", "s/y_0.npy\ns/y_1.npy\ns/y_[23].npy\n") == 0);
    CHECK(mkdir(at("xs"), 0700) == 0);
    for (int k = 0; k < 4; k++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "s/x_%d.npy", k);
        snprintf(b, sizeof b, "xs/x_%d.npy", k);
        CHECK(link(at(a), at(b)) == 0);
    }
    EXPECT(0, cli_run_in(dir, TRAIN "--no-shuffle --data xs --labels @s.list -o e.safetensors"));
    CHECK(same_weights("a.safetensors", "e.safetensors"));
    /* standardized with the stream's statistics: as from the one file */
    EXPECT(0, cli_run_in(dir, TRAIN "--no-shuffle --scale standardize --data s/all_x.npy --labels "
                              "s/all_y.npy -o f.safetensors"));
    EXPECT(0, cli_run_in(dir, TRAIN "--no-shuffle --scale standardize --data 's/x_*.npy' --labels "
                              "'s/y_*.npy' -o g.safetensors"));
    CHECK(same_weights("f.safetensors", "g.safetensors"));
    /* eval and validation take a glob whole */
    EXPECT(0, cli_run_in(dir, "eval m.model --weights a.safetensors --data 's/x_*.npy' --labels "
                              "'s/y_*.npy'"));
    HAS("samples: 200");
    EXPECT(0, cli_run_in(dir, TRAIN "--data 's/x_[01].npy' --labels 's/y_[01].npy' --val "
                              "'s/x_[23].npy' --val-labels 's/y_[23].npy' -o h.safetensors"));
    rm_dir();
    return TEST_PASS;
}

TEST(cli_stream_bad_shards)
{
    CHECK(make_dir() == 0);
    const int counts[] = {50, 33, 71};
    CHECK(write_data("s", 3, counts, false) == 0);
    CHECK(write_text("m.model", model) == 0);
    EXPECT(1, cli_run_in(dir, TRAIN "--data 's/z_*.npy' --labels 's/y_*.npy' -o w.safetensors"));
    HAS("deepsky: error: 's/z_*.npy' matches no file");
    EXPECT(1, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_[01].npy' -o w.safetensors"));
    HAS("deepsky: error: labels 's/y_[01].npy': 2 files, but data 's/x_*.npy': 3: the k-th "
        "files of each are a shard, so their numbers must agree");
    CHECK(rename(at("s/y_1.npy"), at("s/y_9.npy")) == 0);
    CHECK(rename(at("s/y_2.npy"), at("s/y_1.npy")) == 0);
    CHECK(rename(at("s/y_9.npy"), at("s/y_2.npy")) == 0);
    EXPECT(1, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' -o w.safetensors"));
    HAS("deepsky: error: shard 2 of 3: s/x_1.npy has 33 samples but s/y_1.npy has 71");
    CHECK(rename(at("s/y_1.npy"), at("s/y_9.npy")) == 0);
    CHECK(rename(at("s/y_2.npy"), at("s/y_1.npy")) == 0);
    CHECK(rename(at("s/y_9.npy"), at("s/y_2.npy")) == 0);
    struct stat sb;
    CHECK(stat(at("s/x_2.npy"), &sb) == 0 && truncate(at("s/x_2.npy"), sb.st_size - 4) == 0);
    EXPECT(1, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' -o w.safetensors"));
    HAS("deepsky: error: s/x_2.npy: truncated data: shape [71, 8] needs 2272 bytes, the file "
        "holds 2268");
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){71, 9});
    CHECK(x && ds_npy_save(x, at("s/x_2.npy")) == DS_OK);
    ds_tensor_free(x);
    EXPECT(1, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' -o w.safetensors"));
    HAS("deepsky: error: s/x_2.npy holds samples of shape [9], but s/x_0.npy holds samples of "
        "shape [8]: the files of a stream hold samples of one shape");
    rm_dir();
    return TEST_PASS;
}

TEST(cli_stream_options)
{
    CHECK(make_dir() == 0);
    const int counts[] = {50, 33};
    CHECK(write_data("s", 2, counts, false) == 0);
    CHECK(write_text("m.model", model) == 0);
    EXPECT(2, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' --val-split 0.2 -o "
                              "w.safetensors"));
    HAS("deepsky train: --val-split takes validation samples out of data in memory; streamed "
        "data (--data naming several files) take it from --val X2 --val-labels Y2");
    EXPECT(2, cli_run_in(dir, TRAIN "--data s/all_x.npy --labels s/all_y.npy --shuffle-buffer 10 "
                              "-o w.safetensors"));
    HAS("deepsky train: --shuffle-buffer applies to data streamed from several files");
    EXPECT(2, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' --nan mean -o "
                              "w.safetensors"));
    HAS("deepsky train: --nan: streamed data are neither filled nor dropped");
    EXPECT(2, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' --memory-limit 12Q -o "
                              "w.safetensors"));
    HAS("deepsky train: option '--memory-limit': '12Q' is not a size from 1M to 1024P");
    EXPECT(2, cli_run_in(dir, TRAIN "--data 's/x_*.npy' --labels 's/y_*.npy' --memory-limit 1000 "
                              "-o w.safetensors"));
    /* an output among the files a glob names, under its name or another */
    CHECK(write_text("s/x_log.csv", "") == 0);
    EXPECT(2, cli_run_in(dir, TRAIN "--data 's/x_*' --labels 's/y_*.npy' --log s/x_log.csv -o "
                              "w.safetensors"));
    HAS("deepsky train: --log s/x_log.csv is one of the files of --data 's/x_*': writing it "
        "would destroy an input; give another name");
    EXPECT(2, cli_run_in(dir, TRAIN "--data 's/x_*' --labels 's/y_*.npy' --log ./s/x_log.csv -o "
                              "w.safetensors"));
    HAS("deepsky train: --log ./s/x_log.csv is s/x_log.csv, one of the files of --data 's/x_*': "
        "writing it would destroy an input; give another name");
    rm_dir();
    return TEST_PASS;
}

TEST(cli_stream_above_the_memory_limit)
{
    CHECK(make_dir() == 0);
    /* 40000 samples of 8 values in 8 files of float64 (read converted: 1.28 MB as float32
     * whole, 160 KB a file), under a limit of 1 MiB */
    const int counts[] = {5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000};
    CHECK(write_data("s", 8, counts, true) == 0);
    CHECK(write_text("m.model", model) == 0);
    EXPECT(1, cli_run_in(dir, "train m.model --epochs 1 -q --memory-limit 1M --data s/all_x.npy "
                              "--labels s/all_y.npy -o w.safetensors"));
    HAS("deepsky: error: out of memory for a tensor of shape [40000, 8] (1.28e+06 bytes; more "
        "than the memory limit of 0.00105 GB (ds_set_memory_limit))");
    EXPECT(0, cli_run_in(dir, "train m.model --epochs 1 --memory-limit 1M --data 's/x_*.npy' "
                              "--labels 's/y_*.npy' -o w.safetensors"));
    HAS("training m.model on 40000 samples streamed from 8 shards", "done: 1 epoch");
    rm_dir();
    return TEST_PASS;
}
