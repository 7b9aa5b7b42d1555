/* test_stream.c - data larger than memory: .npy files mapped (not counted against the memory
 * limit, writes never reaching the file); streams of shards found by globs, folders and
 * lists, every sample once per epoch, the same order for a seed whatever the threads and
 * prefetch, the errors of shards that do not match, truncated, missing, mixed or changed
 * files and of bad values (naming the file and the sample); training on a stream equal, bit
 * for bit, to training on the same data in memory in file order; resume; and a data set
 * above the memory limit trained by streaming where loading it whole fails. */
#include "test.h"
#include "../src/io/stream.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *make_tmpdir(char *buf, size_t cap) { return (char *)test_tmpdir(buf, cap, "stream"); }

static void rm_tmpdir(const char *dir) { test_rm_rf(dir); }

static const char *at(const char *dir, const char *name)
{
    static char bufs[8][600];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* Shard files <dir>/x_<k>.npy [count, 3] and y_<k>.npy [count]: sample i (counting across
 * the shards in order) holds x = (i, i + 0.25, -i) and y = i % classes. */
static int write_shards(const char *dir, int n, const int64_t *counts, int classes)
{
    int64_t id = 0;
    for (int k = 0; k < n; k++) {
        char name[64];
        ds_tensor *x = ds_tensor_create(2, (int64_t[]){counts[k], 3});
        ds_tensor *y = ds_tensor_create(1, (int64_t[]){counts[k]});
        if (!x || !y)
            return 1;
        for (int64_t i = 0; i < counts[k]; i++, id++) {
            float *r = ds_tensor_data(x) + 3 * i;
            r[0] = (float)id;
            r[1] = (float)id + 0.25f;
            r[2] = -(float)id;
            ds_tensor_data(y)[i] = (float)(id % classes);
        }
        snprintf(name, sizeof name, "x_%d.npy", k);
        int rc = ds_npy_save(x, at(dir, name)) != DS_OK;
        snprintf(name, sizeof name, "y_%d.npy", k);
        rc |= ds_npy_save(y, at(dir, name)) != DS_OK;
        ds_tensor_free(x);
        ds_tensor_free(y);
        if (rc)
            return 1;
    }
    return 0;
}

static ds_status open_xy(const char *dir, int64_t buffer, int prefetch, ds_stream **s)
{
    char xs[600], ys[600];
    snprintf(xs, sizeof xs, "%s/x_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/y_*.npy", dir);
    ds_stream_opts o = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}},
                        .shuffle_buffer = buffer, .prefetch = prefetch};
    return ds_stream_open(&o, s);
}

/* Reads `epochs` epochs from the stream in batches of b into ids (epochs x N), checking
 * each batch: its values are those of its ids, its place in the epoch, its size. 0, or 1
 * with msg set. */
static int read_epochs(ds_stream *s, int64_t b, uint64_t seed, int epochs, int no_shuffle,
                       int64_t *ids, int classes, char *msg, size_t cap)
{
    int64_t N = ds_stream_samples(s), batches = (N + b - 1) / b;
    ds_stream_run r = {.batch = b, .seed = seed, .epochs = epochs, .no_shuffle = no_shuffle};
    if (ds_stream_start(s, &r) != DS_OK) {
        snprintf(msg, cap, "start: %s", ds_last_error());
        return 1;
    }
    for (int e = 0; e < epochs; e++)
        for (int64_t bi = 0, seen = 0; bi < batches; bi++) {
            ds_feed f;
            ds_stream_batch info;
            if (ds_stream_next(s, &f, &info) != DS_OK) {
                snprintf(msg, cap, "next: %s", ds_last_error());
                return 1;
            }
            int64_t want = bi + 1 < batches ? b : N - (batches - 1) * b;
            if (info.epoch != e || info.index != bi || info.count != want ||
                info.last != (bi + 1 == batches) || !f.inputs[0].data || !f.labels[0].data) {
                snprintf(msg, cap, "epoch %d batch %lld: got epoch %d batch %lld of %lld, last "
                         "%d", e, (long long)bi, info.epoch, (long long)info.index,
                         (long long)info.count, info.last);
                return 1;
            }
            const float *x = ds_tensor_data(f.inputs[0].data);
            const float *y = ds_tensor_data(f.labels[0].data);
            for (int64_t k = 0; k < info.count; k++, seen++) {
                int64_t id = info.ids[k];
                if (x[3 * k] != (float)id || x[3 * k + 1] != (float)id + 0.25f ||
                    x[3 * k + 2] != -(float)id || y[k] != (float)(id % classes)) {
                    snprintf(msg, cap, "epoch %d: sample %lld holds %g, %g", e, (long long)id,
                             x[3 * k], y[k]);
                    return 1;
                }
                ids[e * N + seen] = id;
            }
        }
    ds_feed f;
    ds_stream_batch info;
    if (ds_stream_next(s, &f, &info) != DS_OK || info.count != 0) {
        snprintf(msg, cap, "after the last epoch: count %lld (%s)", (long long)info.count,
                 ds_last_error());
        return 1;
    }
    return 0;
}

TEST(stream_every_sample_once_per_epoch)
{
    char dir[64];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {7, 0, 13, 1, 20};   /* an empty shard among them */
    CHECK(write_shards(dir, 5, counts, 3) == 0);
    ds_stream *s;
    CHECK(open_xy(dir, 10, 0, &s) == DS_OK);
    CHECK(ds_stream_samples(s) == 41 && ds_stream_shard_count(s) == 5);
    CHECK(!strcmp(ds_stream_shard_path(s, 1, 0, 4), at(dir, "y_4.npy")));
    int nd;
    int64_t shape[DS_MAX_DIMS];
    CHECK(ds_stream_sample_shape(s, 0, 0, &nd, shape) == DS_OK && nd == 1 && shape[0] == 3);
    CHECK(ds_stream_sample_shape(s, 1, 0, &nd, shape) == DS_OK && nd == 0);
    int64_t ids[3 * 41], plain[41];
    char m[300];
    if (read_epochs(s, 8, 5, 3, 0, ids, 3, m, sizeof m))
        FAIL("shuffled: %s", m);
    for (int e = 0; e < 3; e++) {
        int seen[41] = {0};
        for (int i = 0; i < 41; i++)
            seen[ids[e * 41 + i]]++;
        for (int i = 0; i < 41; i++)
            if (seen[i] != 1)
                FAIL("epoch %d: sample %d went out %d times", e, i, seen[i]);
    }
    /* shuffled: not in file order, and each epoch in its own order */
    int in_order = 0, same = 0;
    for (int i = 0; i < 41; i++) {
        in_order += ids[i] == i;
        same += ids[i] == ids[41 + i];
    }
    CHECK(in_order < 20 && same < 20);
    /* without shuffling: file order, every epoch */
    if (read_epochs(s, 8, 5, 1, 1, plain, 3, m, sizeof m))
        FAIL("in order: %s", m);
    for (int i = 0; i < 41; i++)
        CHECK(plain[i] == i);
    /* a buffer of the whole data set, batches larger than it */
    ds_stream_free(s);
    CHECK(open_xy(dir, 1000, 1, &s) == DS_OK);
    if (read_epochs(s, 100, 9, 2, 0, ids, 3, m, sizeof m))
        FAIL("whole buffer: %s", m);
    ds_stream_free(s);
    rm_tmpdir(dir);
    return TEST_PASS;
}

/* The ids of 2 epochs at a thread count and prefetch. */
static int order_of(const char *dir, int threads, int prefetch, uint64_t seed, int64_t *ids,
                    char *msg, size_t cap)
{
    ds_stream *s;
    int keep = ds_get_num_threads();
    ds_set_num_threads(threads);
    if (open_xy(dir, 16, prefetch, &s) != DS_OK) {
        snprintf(msg, cap, "open: %s", ds_last_error());
        ds_set_num_threads(keep);
        return 1;
    }
    int rc = read_epochs(s, 5, seed, 2, 0, ids, 4, msg, cap);
    ds_stream_free(s);
    ds_set_num_threads(keep);
    return rc;
}

TEST(stream_same_order_for_a_seed)
{
    char dir[64];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {30, 11, 25, 4};
    CHECK(write_shards(dir, 4, counts, 4) == 0);
    int64_t a[140], b[140], c[140];
    CHECK_OK(order_of(dir, 1, 1, 42, a, msg_, cap_));
    CHECK_OK(order_of(dir, 2, 9, 42, b, msg_, cap_));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(order_of(dir, 2, 2, 43, c, msg_, cap_));
    CHECK(memcmp(a, c, sizeof a) != 0);
    rm_tmpdir(dir);
    return TEST_PASS;
}

/* The stream of x and y files named so fails with st and a message holding want. */
static int open_fails(const char *xs, const char *ys, ds_status st, const char *want, char *msg,
                      size_t cap)
{
    ds_stream_opts o = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}}};
    ds_stream *s = (ds_stream *)1;
    ds_status got = ds_stream_open(&o, &s);
    if (got != st || s || !strstr(ds_last_error(), want)) {
        snprintf(msg, cap, "%s / %s: %s (%s), expected %s with '%s'", xs, ys,
                 ds_status_name(got), ds_last_error(), ds_status_name(st), want);
        ds_stream_free(s);
        return 1;
    }
    return 0;
}

TEST(stream_shards_that_do_not_match)
{
    char dir[64], xs[100], ys[100], want[400];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {6, 10, 5};
    CHECK(write_shards(dir, 3, counts, 2) == 0);
    snprintf(xs, sizeof xs, "%s/x_*.npy", dir);
    /* a missing labels file: 3 files against 2 */
    CHECK(unlink(at(dir, "y_2.npy")) == 0);
    snprintf(ys, sizeof ys, "%s/y_*.npy", dir);
    snprintf(want, sizeof want, "labels '%s': 2 files, but data '%s': 3: the k-th files of "
             "each are a shard, so their numbers must agree", ys, xs);
    CHECK_OK(open_fails(xs, ys, DS_ERR_ARG, want, msg_, cap_));
    /* a labels file of 9 samples beside a data file of 10 */
    ds_tensor *y = ds_tensor_create(1, (int64_t[]){9});
    CHECK(y && ds_npy_save(y, at(dir, "y_2.npy")) == DS_OK);
    CHECK(rename(at(dir, "y_1.npy"), at(dir, "y_9.npy")) == 0);
    CHECK(rename(at(dir, "y_2.npy"), at(dir, "y_1.npy")) == 0);
    CHECK(rename(at(dir, "y_9.npy"), at(dir, "y_2.npy")) == 0);
    snprintf(want, sizeof want, "shard 2 of 3: %s has 10 samples but %s has 9",
             at(dir, "x_1.npy"), at(dir, "y_1.npy"));
    CHECK_OK(open_fails(xs, ys, DS_ERR_SHAPE, want, msg_, cap_));
    ds_tensor_free(y);
    rm_tmpdir(dir);
    return TEST_PASS;
}

TEST(stream_bad_files)
{
    char dir[64], xs[100], ys[100], want[400];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {6, 10, 5};
    CHECK(write_shards(dir, 3, counts, 2) == 0);
    snprintf(xs, sizeof xs, "%s/x_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/y_*.npy", dir);
    /* a glob that matches nothing; a folder without data files; an empty list */
    char none[100];
    snprintf(none, sizeof none, "%s/z_*.npy", dir);
    snprintf(want, sizeof want, "'%s' matches no file", none);
    CHECK_OK(open_fails(none, ys, DS_ERR_IO, want, msg_, cap_));
    CHECK(mkdir(at(dir, "empty"), 0700) == 0);
    snprintf(want, sizeof want, "the folder '%s' holds no data file", at(dir, "empty"));
    CHECK_OK(open_fails(at(dir, "empty"), ys, DS_ERR_IO, want, msg_, cap_));
    FILE *fp = fopen(at(dir, "list.txt"), "w");
    CHECK(fp && fputs("# nothing\n\n", fp) >= 0 && fclose(fp) == 0);
    char list[100];
    snprintf(list, sizeof list, "@%s", at(dir, "list.txt"));
    snprintf(want, sizeof want, "the list '%s' names no file", at(dir, "list.txt"));
    CHECK_OK(open_fails(list, ys, DS_ERR_IO, want, msg_, cap_));
    /* a truncated shard: the loader's message, before anything is read */
    struct stat sb;
    CHECK(stat(at(dir, "x_1.npy"), &sb) == 0 && truncate(at(dir, "x_1.npy"), sb.st_size - 5) == 0);
    snprintf(want, sizeof want, "%s: truncated data: shape [10, 3] needs 120 bytes, the file "
             "holds 115", at(dir, "x_1.npy"));
    CHECK_OK(open_fails(xs, ys, DS_ERR_FORMAT, want, msg_, cap_));
    /* samples of another shape in one file */
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){10, 4});
    CHECK(x && ds_npy_save(x, at(dir, "x_1.npy")) == DS_OK);
    ds_tensor_free(x);
    snprintf(want, sizeof want, "%s holds samples of shape [4], but %s holds samples of shape "
             "[3]: the files of a stream hold samples of one shape", at(dir, "x_1.npy"),
             at(dir, "x_0.npy"));
    CHECK_OK(open_fails(xs, ys, DS_ERR_SHAPE, want, msg_, cap_));
    /* a file named in a list that is not there */
    fp = fopen(at(dir, "list.txt"), "w");
    CHECK(fp && fputs("x_0.npy\nx_7.npy\nx_2.npy\n", fp) >= 0 && fclose(fp) == 0);
    snprintf(want, sizeof want, "cannot open '%s': No such file or directory", at(dir, "x_7.npy"));
    CHECK_OK(open_fails(list, ys, DS_ERR_IO, want, msg_, cap_));
    rm_tmpdir(dir);
    return TEST_PASS;
}

TEST(stream_lists_and_folders)
{
    char dir[64], list[100], ys[100];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {6, 10, 5};
    CHECK(write_shards(dir, 3, counts, 2) == 0);
    CHECK(mkdir(at(dir, "x"), 0700) == 0);
    for (int k = 0; k < 3; k++) {   /* the data files alone in a folder, with a stray file */
        char a[32], b[32];
        snprintf(a, sizeof a, "x_%d.npy", k);
        snprintf(b, sizeof b, "x/x_%d.npy", k);
        CHECK(rename(at(dir, a), at(dir, b)) == 0);
    }
    FILE *fp = fopen(at(dir, "x/notes.txt"), "w");
    CHECK(fp && fclose(fp) == 0);
    /* a list in its own order, relative to its folder, with a comment and a glob */
    fp = fopen(at(dir, "y.list"), "w");
    CHECK(fp && fputs("# labels\ny_0.npy\n\n  y_[12].npy  \n", fp) >= 0 && fclose(fp) == 0);
    snprintf(list, sizeof list, "@%s", at(dir, "y.list"));
    ds_stream_opts o = {.inputs = {{NULL, at(dir, "x"), NULL}}, .labels = {{NULL, list, NULL}}};
    ds_stream *s;
    CHECK(ds_stream_open(&o, &s) == DS_OK);
    CHECK(ds_stream_samples(s) == 21 && ds_stream_shard_count(s) == 3);
    CHECK(!strcmp(ds_stream_shard_path(s, 0, 0, 2), at(dir, "x/x_2.npy")));
    CHECK(!strcmp(ds_stream_shard_path(s, 1, 0, 1), at(dir, "y_1.npy")));
    /* loaded whole: the files one after the other */
    ds_tensor *y;
    CHECK(ds_stream_load(s, 1, 0, &y) == DS_OK && ds_tensor_numel(y) == 21);
    for (int i = 0; i < 21; i++)
        CHECK(ds_tensor_data(y)[i] == (float)(i % 2));
    ds_tensor_free(y);
    ds_stream_free(s);
    char **paths;
    int n;
    snprintf(ys, sizeof ys, "%s/y_*.npy", dir);
    CHECK(ds_stream_files(ys, &paths, &n) == DS_OK && n == 3);
    CHECK(!strcmp(paths[0], at(dir, "y_0.npy")) && !strcmp(paths[2], at(dir, "y_2.npy")));
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    rm_tmpdir(dir);
    return TEST_PASS;
}

/* Reads batches until the reader's failure; DS_OK if none came. */
static ds_status read_to_failure(ds_stream *s, int64_t b, int no_shuffle)
{
    ds_stream_run r = {.batch = b, .epochs = 1, .no_shuffle = no_shuffle};
    ds_status st = ds_stream_start(s, &r);
    for (ds_feed f; !st;) {
        ds_stream_batch info;
        if ((st = ds_stream_next(s, &f, &info)) || !info.count)
            break;
    }
    return st;
}

TEST(stream_values_checked_as_read)
{
    char dir[64];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {6, 10, 5};
    CHECK(write_shards(dir, 3, counts, 3) == 0);
    ds_tensor *x;
    CHECK(ds_npy_load(at(dir, "x_1.npy"), &x) == DS_OK);
    ds_tensor_data(x)[3 * 4 + 1] = NAN;   /* sample 4 of the second file */
    CHECK(ds_npy_save(x, at(dir, "x_2b.npy")) == DS_OK);
    ds_tensor_free(x);
    CHECK(rename(at(dir, "x_2b.npy"), at(dir, "x_1.npy")) == 0);
    ds_stream *s;
    CHECK(open_xy(dir, 4, 0, &s) == DS_OK);
    CHECK(read_to_failure(s, 3, 0) == DS_ERR_VALUE);
    char want[300];
    snprintf(want, sizeof want, "%s: element 13 (sample 4) is NaN", at(dir, "x_1.npy"));
    if (strcmp(ds_last_error(), want))
        FAIL("'%s', expected '%s'", ds_last_error(), want);
    ds_stream_free(s);
    /* a file changed after the stream opened */
    const int64_t again[] = {6, 10, 5};
    CHECK(write_shards(dir, 3, again, 3) == 0);
    CHECK(open_xy(dir, 4, 0, &s) == DS_OK);
    ds_tensor *y = ds_tensor_create(1, (int64_t[]){4});
    CHECK(y && ds_npy_save(y, at(dir, "y_2.npy")) == DS_OK);
    ds_tensor_free(y);
    CHECK(read_to_failure(s, 3, 1) == DS_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: the file changed since the stream opened: shape [5] then, "
             "[4] now", at(dir, "y_2.npy"));
    if (strcmp(ds_last_error(), want))
        FAIL("'%s', expected '%s'", ds_last_error(), want);
    ds_stream_free(s);
    rm_tmpdir(dir);
    return TEST_PASS;
}

TEST(npy_float32_is_mapped)
{
    char dir[64];
    CHECK(make_tmpdir(dir, sizeof dir));
    size_t keep = ds_get_memory_limit();
    int64_t n = 1 << 20;   /* 4 MiB of float32, 8 MiB as float64 */
    ds_tensor *t = ds_tensor_create(1, &n);
    CHECK(t);
    for (int64_t i = 0; i < n; i++)
        ds_tensor_data(t)[i] = (float)i;
    CHECK(ds_npy_save(t, at(dir, "a.npy")) == DS_OK);
    ds_tensor_free(t);
    /* the same values as float64: NumPy's header, then 8-byte doubles */
    FILE *fp = fopen(at(dir, "d.npy"), "wb");
    CHECK(fp);
    char h[128];
    int hl = snprintf(h, sizeof h, "{'descr': '<f8', 'fortran_order': False, 'shape': (%lld,), }",
                      (long long)n);
    while ((10 + hl + 1) % 64)
        h[hl++] = ' ';
    h[hl++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hl, 0};
    CHECK(fwrite(pre, 1, 10, fp) == 10 && fwrite(h, 1, (size_t)hl, fp) == (size_t)hl);
    for (int64_t i = 0; i < n; i++) {
        double v = (double)i;
        CHECK(fwrite(&v, 8, 1, fp) == 1);
    }
    CHECK(fclose(fp) == 0);
    ds_set_memory_limit((size_t)1 << 20);
    /* mapped: allowed above the limit, and writes stay in this process */
    ds_status st = ds_array_load(at(dir, "a.npy"), NULL, &t);
    if (st == DS_OK) {
        ds_tensor_data(t)[7] = -1;
        ds_tensor_free(t);
    }
    ds_status st64 = ds_npy_load(at(dir, "d.npy"), &t);
    char msg64[400];
    snprintf(msg64, sizeof msg64, "%s", ds_last_error());
    ds_set_memory_limit(keep);
    CHECK(st == DS_OK);
    CHECK(st64 == DS_ERR_NOMEM && strstr(msg64, "more than the memory limit"));
    CHECK(ds_npy_load(at(dir, "a.npy"), &t) == DS_OK);
    CHECK(ds_tensor_data(t)[7] == 7 && ds_tensor_data(t)[n - 1] == (float)(n - 1));
    ds_tensor *u;
    CHECK(ds_npy_load(at(dir, "d.npy"), &u) == DS_OK);
    CHECK(memcmp(ds_tensor_data(t), ds_tensor_data(u), (size_t)n * sizeof(float)) == 0);
    ds_tensor_free(t);
    ds_tensor_free(u);
    rm_tmpdir(dir);
    return TEST_PASS;
}

/* ---- training on a stream ---- */
static const char *const img_model =
    "input shape=1x4x4\n"
    "conv2d filters=3 kernel=3 padding=same activation=relu\n"
    "flatten\n"
    "dense units=3 activation=softmax\n"
    "loss categorical_crossentropy\n"
    "optimizer adam lr=0.01\n";

/* Images [N, 1, 4, 4] in 3 shard files <dir>/i_<k>.npy, as [n, 16] rows, and class
 * indices c_<k>.npy; x and y get the whole data set in memory. */
static int write_images(const char *dir, ds_tensor **x, ds_tensor **y)
{
    const int64_t counts[] = {17, 9, 14};
    *x = ds_tensor_create(4, (int64_t[]){40, 1, 4, 4});
    *y = ds_tensor_create(1, (int64_t[]){40});
    if (!*x || !*y)
        return 1;
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int i = 0; i < 40; i++) {
        int k = i % 3;
        ds_tensor_data(*y)[i] = (float)k;
        for (int j = 0; j < 16; j++)
            ds_tensor_data(*x)[16 * i + j] = (float)((j % 3 == k) + ds_rng_normal(&r) * 0.3 + 2);
    }
    for (int k = 0, first = 0; k < 3; first += (int)counts[k++]) {
        char name[32];
        ds_tensor *a = ds_tensor_from(2, (int64_t[]){counts[k], 16},
                                      ds_tensor_data(*x) + 16 * first);
        ds_tensor *b = ds_tensor_from(1, &counts[k], ds_tensor_data(*y) + first);
        snprintf(name, sizeof name, "i_%d.npy", k);
        int rc = !a || !b || ds_npy_save(a, at(dir, name)) != DS_OK;
        snprintf(name, sizeof name, "c_%d.npy", k);
        rc |= !b || ds_npy_save(b, at(dir, name)) != DS_OK;
        ds_tensor_free(a);
        ds_tensor_free(b);
        if (rc)
            return 1;
    }
    return 0;
}

static ds_status open_images(const char *dir, ds_stream **s)
{
    char xs[100], ys[100];
    snprintf(xs, sizeof xs, "%s/i_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/c_*.npy", dir);
    ds_stream_opts o = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}}};
    ds_status st = ds_stream_open(&o, s);
    if (!st && (st = ds_stream_reshape(*s, 0, 0, 3, (int64_t[]){1, 4, 4})))
        ds_stream_free(*s);
    return st;
}

/* Every parameter of the net, one after the other (malloc'd). */
static float *params_of(ds_net *n, int64_t *count)
{
    ds_model *m = ds_net_model(n);
    *count = ds_model_numel(m, 0);
    float *w = malloc((size_t)*count * sizeof *w), *p = w;
    for (int i = 0; w && i < ds_model_param_count(m); i++) {
        ds_param *q = ds_model_param(m, i);
        memcpy(p, ds_param_data(q), (size_t)ds_param_numel(q) * sizeof *p);
        p += ds_param_numel(q);
    }
    return w;
}

/* Trains img_model on the data in memory (s NULL) or the stream, in file order with
 * augmentation and gradient accumulation, standardized; the weights into *w. */
static ds_status train_images(ds_tensor *x, ds_tensor *y, ds_stream *s, float **w, int64_t *nw,
                              const char *out, int epochs, int resume)
{
    ds_net *n;
    ds_net_opts no = {.batch = 4, .seed = 2, .labels = DS_LABELS_INDEX};
    ds_status st = ds_net_parse(img_model, "img.model", &no, &n);
    if (st)
        return st;
    ds_fit_opts fo = {.epochs = epochs, .batch_size = 4, .accumulate = 2, .seed = 7,
                      .no_shuffle = 1, .augment = DS_AUG_FLIPS | DS_AUG_ROT90,
                      .out_path = out, .checkpoint_every = 0, .resume = resume};
    ds_fit_result r;
    ds_feed f = {.inputs = {{NULL, x, NULL}}, .labels = {{NULL, y, NULL}}};
    if (s)
        st = ds_net_set_input_scaling_stream(n, NULL, DS_SCALE_STANDARDIZE, 1, s);
    else if (!(st = ds_net_set_input_scaling(n, NULL, DS_SCALE_STANDARDIZE, 1, x)))
        st = ds_net_preprocess_feed(n, &f);
    if (!st)
        st = s ? ds_net_fit_stream(n, s, NULL, &fo, &r) : ds_net_fit_feed(n, &f, NULL, &fo, &r);
    if (!st && !(*w = params_of(n, nw)))
        st = DS_ERR_NOMEM;
    ds_net_free(n);
    return st;
}

TEST(stream_trains_as_in_memory)
{
    char dir[64];
    CHECK(make_tmpdir(dir, sizeof dir));
    ds_tensor *x, *y, *xc;
    CHECK(write_images(dir, &x, &y) == 0);
    CHECK((xc = ds_tensor_from(4, ds_tensor_shape(x), ds_tensor_data(x))));
    ds_stream *s;
    CHECK(open_images(dir, &s) == DS_OK);
    float *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    ds_status sa = train_images(xc, y, NULL, &a, &na, NULL, 3, 0);
    ds_status sb = sa ? sa : train_images(NULL, NULL, s, &b, &nb, NULL, 3, 0);
    bool same = !sa && !sb && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
    free(a);
    free(b);
    ds_stream_free(s);
    ds_tensor_free(x);
    ds_tensor_free(xc);
    ds_tensor_free(y);
    rm_tmpdir(dir);
    CHECK(!sa && !sb);
    CHECK(same);
    return TEST_PASS;
}

TEST(stream_fit_resumes_to_the_same_weights)
{
    char dir[64];
    CHECK(make_tmpdir(dir, sizeof dir));
    ds_tensor *x, *y;
    CHECK(write_images(dir, &x, &y) == 0);
    ds_stream *s;
    CHECK(open_images(dir, &s) == DS_OK);
    float *a = NULL, *b = NULL, *c = NULL;
    int64_t na = 0, nb = 0, nc = 0;
    /* shuffled through a buffer: 3 epochs at once, or 2 then a resumed third */
    ds_net *n;
    ds_net_opts no = {.batch = 4, .seed = 2, .labels = DS_LABELS_INDEX};
    CHECK(ds_net_parse(img_model, "img.model", &no, &n) == DS_OK);
    ds_fit_opts fo = {.epochs = 3, .batch_size = 5, .seed = 11,
                      .out_path = at(dir, "a.safetensors")};
    ds_status st = ds_net_fit_stream(n, s, NULL, &fo, NULL);
    a = st ? NULL : params_of(n, &na);
    ds_net_free(n);
    CHECK(st == DS_OK && a);
    CHECK(ds_net_parse(img_model, "img.model", &no, &n) == DS_OK);
    fo.epochs = 2;
    fo.out_path = at(dir, "b.safetensors");
    st = ds_net_fit_stream(n, s, NULL, &fo, NULL);
    ds_net_free(n);
    CHECK(st == DS_OK && ds_net_parse(img_model, "img.model", &no, &n) == DS_OK);
    fo.epochs = 3;
    fo.resume = 1;
    st = ds_net_fit_stream(n, s, NULL, &fo, NULL);
    b = st ? NULL : params_of(n, &nb);
    ds_net_free(n);
    CHECK(st == DS_OK && b && na == nb);
    bool same = memcmp(a, b, (size_t)na * sizeof *a) == 0;
    /* another shuffle buffer is another run: resume refuses it */
    ds_stream_free(s);
    char xs[100], ys[100];
    snprintf(xs, sizeof xs, "%s/i_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/c_*.npy", dir);
    ds_stream_opts so = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}},
                         .shuffle_buffer = 3};
    CHECK(ds_stream_open(&so, &s) == DS_OK);
    CHECK(ds_stream_reshape(s, 0, 0, 3, (int64_t[]){1, 4, 4}) == DS_OK);
    CHECK(ds_net_parse(img_model, "img.model", &no, &n) == DS_OK);
    st = ds_net_fit_stream(n, s, NULL, &fo, NULL);
    c = params_of(n, &nc);
    ds_net_free(n);
    ds_stream_free(s);
    ds_tensor_free(x);
    ds_tensor_free(y);
    rm_tmpdir(dir);
    free(a);
    free(b);
    free(c);
    CHECK(same);
    CHECK(st == DS_ERR_ARG && strstr(ds_last_error(), "training stream shuffle buffer: 40 then, "
                                     "3 now"));
    return TEST_PASS;
}

TEST(stream_fit_checks_labels_and_names)
{
    char dir[64], want[300];
    CHECK(make_tmpdir(dir, sizeof dir));
    ds_tensor *x, *y;
    CHECK(write_images(dir, &x, &y) == 0);
    ds_tensor *c;
    CHECK(ds_npy_load(at(dir, "c_1.npy"), &c) == DS_OK);
    ds_tensor *bad = ds_tensor_from(1, ds_tensor_shape(c), ds_tensor_data(c));
    CHECK(bad);
    ds_tensor_data(bad)[5] = 3;   /* a class the model does not have */
    ds_tensor_free(c);
    CHECK(ds_npy_save(bad, at(dir, "c_1.npy")) == DS_OK);
    ds_tensor_free(bad);
    ds_stream *s;
    CHECK(open_images(dir, &s) == DS_OK);
    ds_net *n;
    ds_net_opts no = {.batch = 4, .seed = 2, .labels = DS_LABELS_INDEX};
    CHECK(ds_net_parse(img_model, "img.model", &no, &n) == DS_OK);
    ds_fit_opts fo = {.epochs = 2, .batch_size = 4, .no_shuffle = 1};
    ds_status st = ds_net_fit_stream(n, s, NULL, &fo, NULL);
    snprintf(want, sizeof want, "%s: label 3 of sample 5 is not a class index in [0, 3)",
             at(dir, "c_1.npy"));
    bool label_msg = st == DS_ERR_VALUE && !strcmp(ds_last_error(), want);
    snprintf(want, sizeof want, "%s", ds_last_error());
    /* samples that do not fit the input: their shape named before training */
    ds_stream_free(s);
    char xs[100], ys[100];
    snprintf(xs, sizeof xs, "%s/i_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/c_*.npy", dir);
    ds_stream_opts so = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}}};
    CHECK(ds_stream_open(&so, &s) == DS_OK);
    ds_status st2 = ds_net_fit_stream(n, s, NULL, &fo, NULL);
    char want2[300];
    snprintf(want2, sizeof want2, "%s: data of shape [40, 16] does not fit the model's input",
             xs);
    bool shape_msg = st2 == DS_ERR_SHAPE && strstr(ds_last_error(), want2);
    ds_net_free(n);
    ds_stream_free(s);
    ds_tensor_free(x);
    ds_tensor_free(y);
    rm_tmpdir(dir);
    if (!label_msg)
        FAIL("labels: %s: %s", ds_status_name(st), want);
    if (!shape_msg)
        FAIL("shape: %s: %s", ds_status_name(st2), ds_last_error());
    return TEST_PASS;
}

TEST(stream_trains_above_the_memory_limit)
{
    char dir[64], xs[100], ys[100];
    CHECK(make_tmpdir(dir, sizeof dir));
    /* 8 MiB of data in 8 files of 1024 samples of 256 values (float32, mapped), under a
     * memory limit of 4 MiB */
    enum { FILES = 8, PER = 1024, F = 256 };
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){PER, F});
    ds_tensor *y = ds_tensor_create(1, (int64_t[]){PER});
    CHECK(x && y);
    ds_rng r;
    ds_rng_seed(&r, 1);
    for (int k = 0; k < FILES; k++) {
        char name[32];
        for (int i = 0; i < PER; i++) {
            int cls = (int)ds_rng_below(&r, 2);
            ds_tensor_data(y)[i] = (float)cls;
            for (int j = 0; j < F; j++)
                ds_tensor_data(x)[i * F + j] = (float)(ds_rng_normal(&r) + (j < 8 ? cls : 0));
        }
        snprintf(name, sizeof name, "x_%d.npy", k);
        CHECK(ds_npy_save(x, at(dir, name)) == DS_OK);
        snprintf(name, sizeof name, "y_%d.npy", k);
        CHECK(ds_npy_save(y, at(dir, name)) == DS_OK);
    }
    ds_tensor_free(x);
    ds_tensor_free(y);
    snprintf(xs, sizeof xs, "%s/x_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/y_*.npy", dir);
    size_t keep = ds_get_memory_limit();
    ds_set_memory_limit((size_t)4 << 20);
    ds_stream_opts so = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}}};
    ds_stream *s = NULL;
    ds_status st = ds_stream_open(&so, &s), whole = DS_OK, fit = DS_OK;
    char whole_msg[400] = "", fit_msg[400] = "";
    ds_fit_result res = {0};
    if (!st) {
        whole = ds_stream_load(s, 0, 0, &x);   /* loading it whole: refused */
        snprintf(whole_msg, sizeof whole_msg, "%s", ds_last_error());
        ds_net *n;
        ds_net_opts no = {.batch = 64, .seed = 1, .labels = DS_LABELS_INDEX};
        fit = ds_net_parse("input shape=256\ndense units=16 activation=relu\ndense units=2 "
                           "activation=softmax\nloss categorical_crossentropy\n"
                           "optimizer adam lr=0.01\n", "m.model", &no, &n);
        ds_fit_opts fo = {.epochs = 2, .batch_size = 64, .seed = 3};
        if (!fit)
            fit = ds_net_fit_stream(n, s, NULL, &fo, &res);
        snprintf(fit_msg, sizeof fit_msg, "%s", ds_last_error());
        if (!fit)
            ds_net_free(n);
    }
    ds_set_memory_limit(keep);
    ds_stream_free(s);
    rm_tmpdir(dir);
    CHECK(st == DS_OK);
    if (whole != DS_ERR_NOMEM || !strstr(whole_msg, "[8192, 256]") ||
        !strstr(whole_msg, "more than the memory limit of 0.00419 GB"))
        FAIL("loading whole: %s: %s", ds_status_name(whole), whole_msg);
    if (fit != DS_OK)
        FAIL("streaming: %s", fit_msg);
    CHECK(res.epochs_run == 2 && res.final_loss < 0.6);
    return TEST_PASS;
}

TEST(stream_fits_and_csv_shards)
{
    if (!ds_has_feature("fits"))
        SKIP("deepsky was built without FITS support");
    char dir[64], xs[100], list[100];
    CHECK(make_tmpdir(dir, sizeof dir));
    /* images as FITS cubes [n, 4, 4], their labels in CSV files of one column */
    const int64_t counts[] = {5, 9, 3};
    int64_t id = 0;
    for (int k = 0; k < 3; k++) {
        char name[32];
        ds_tensor *x = ds_tensor_create(3, (int64_t[]){counts[k], 4, 4});
        ds_tensor *y = ds_tensor_create(2, (int64_t[]){counts[k], 1});
        CHECK(x && y);
        for (int64_t i = 0; i < counts[k]; i++, id++) {
            for (int j = 0; j < 16; j++)
                ds_tensor_data(x)[16 * i + j] = (float)(100 * id + j);
            ds_tensor_data(y)[i] = (float)id;
        }
        snprintf(name, sizeof name, "img_%d.fits", k);
        CHECK(ds_array_save(x, at(dir, name), NULL) == DS_OK);
        snprintf(name, sizeof name, "lab_%d.csv", k);
        CHECK(ds_array_save(y, at(dir, name), (const char *const[]){"id"}) == DS_OK);
        ds_tensor_free(x);
        ds_tensor_free(y);
    }
    FILE *fp = fopen(at(dir, "labels.txt"), "w");
    CHECK(fp && fputs("lab_0.csv\nlab_1.csv\nlab_2.csv\n", fp) >= 0 && fclose(fp) == 0);
    snprintf(xs, sizeof xs, "%s/img_*.fits", dir);
    snprintf(list, sizeof list, "@%s", at(dir, "labels.txt"));
    ds_read_opts ro = {.columns = "id"};
    ds_stream_opts o = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, list, &ro}},
                        .shuffle_buffer = 4};
    ds_stream *s;
    CHECK(ds_stream_open(&o, &s) == DS_OK);
    CHECK(ds_stream_samples(s) == 17);
    ds_tensor *x;
    CHECK(ds_stream_load(s, 0, 0, &x) == DS_OK && ds_tensor_ndim(x) == 3);
    for (int i = 0; i < 17 * 16; i++)
        CHECK(ds_tensor_data(x)[i] == (float)(100 * (i / 16) + i % 16));
    ds_tensor_free(x);
    ds_stream_run r = {.batch = 4, .seed = 1, .epochs = 1};
    CHECK(ds_stream_start(s, &r) == DS_OK);
    int seen[17] = {0};
    for (;;) {
        ds_feed f;
        ds_stream_batch info;
        CHECK(ds_stream_next(s, &f, &info) == DS_OK);
        if (!info.count)
            break;
        for (int64_t k = 0; k < info.count; k++) {
            int64_t i = info.ids[k];
            CHECK(i >= 0 && i < 17);
            seen[i]++;
            CHECK(ds_tensor_data(f.labels[0].data)[k] == (float)i);
            CHECK(ds_tensor_data(f.inputs[0].data)[16 * k + 5] == (float)(100 * i + 5));
        }
    }
    for (int i = 0; i < 17; i++)
        CHECK(seen[i] == 1);
    ds_stream_stop(s);
    ds_feed f;
    ds_stream_batch info;
    CHECK(ds_stream_next(s, &f, &info) == DS_ERR_STATE);
    ds_stream_free(s);
    rm_tmpdir(dir);
    return TEST_PASS;
}

/* Counts the blocks checked per shard (by the first sample's value: shards of 7 samples);
 * while checking the third shard for the first time, writes a NaN into the second's file in
 * place (the same size, a later time). */
typedef struct {
    const char *dir;
    int calls[3];
} check_count;

static ds_status count_checks(void *ctx, const ds_feed *block, int64_t first)
{
    check_count *c = ctx;
    int k = (int)(ds_tensor_data(block->inputs[0].data)[0] / 7);
    (void)first;
    if (k >= 0 && k < 3 && c->calls[k]++ == 0 && k == 2) {
        struct timespec pause = {0, 30 * 1000 * 1000};   /* past the clock's granularity */
        nanosleep(&pause, NULL);
        FILE *fp = fopen(at(c->dir, "x_1.npy"), "r+b");
        float nan = NAN;
        if (fp) {
            fseek(fp, -4, SEEK_END);
            fwrite(&nan, 4, 1, fp);
            fclose(fp);
        }
    }
    return DS_OK;
}

TEST(stream_checks_each_file_once_unless_it_changes)
{
    char dir[64], want[300];
    CHECK(make_tmpdir(dir, sizeof dir));
    const int64_t counts[] = {7, 7, 7};
    CHECK(write_shards(dir, 3, counts, 2) == 0);
    ds_stream *s;
    CHECK(open_xy(dir, 0, 1, &s) == DS_OK);
    check_count c = {dir, {0}};
    dsi_stream_hooks h = {count_checks, NULL, &c};
    dsi_stream_set_hooks(s, &h);
    /* epoch 1 checks every file; epoch 2 only the one that changed, and finds its NaN */
    ds_stream_run r = {.batch = 21, .epochs = 3, .no_shuffle = 1};
    CHECK(ds_stream_start(s, &r) == DS_OK);
    ds_feed f;
    ds_stream_batch info;
    ds_status st = ds_stream_next(s, &f, &info);
    CHECK(st == DS_OK && info.count == 21 && info.epoch == 0);
    st = ds_stream_next(s, &f, &info);
    snprintf(want, sizeof want, "%s: element 20 (sample 6) is NaN", at(dir, "x_1.npy"));
    bool nan_found = st == DS_ERR_VALUE && !strcmp(ds_last_error(), want);
    char got[300];
    snprintf(got, sizeof got, "%s", ds_last_error());
    dsi_stream_set_hooks(s, NULL);
    ds_stream_free(s);
    rm_tmpdir(dir);
    if (!nan_found)
        FAIL("epoch 2: %s: '%s', expected '%s'", ds_status_name(st), got, want);
    CHECK(c.calls[0] == 1 && c.calls[1] == 1 && c.calls[2] == 1);
    return TEST_PASS;
}
