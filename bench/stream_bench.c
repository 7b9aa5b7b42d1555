/* stream_bench.c - training on a data set twice the memory limit, streamed from .npy shards,
 * against the same data loaded whole into memory: samples per second of each.
 *
 *   stream_bench [--model bench/models/mlp.model] [--limit-mb 256] [--threads 2]
 *                [--batch 64] [--epochs 3] [--shards 16] [--rounds 5] [--dir DIR] [--keep]
 *                [--only stream|memory]
 *
 * It writes synthetic data for the model's first input (float32 .npy shards x_<k>.npy and
 * class labels y_<k>.npy, 2 x the limit in all) to a fresh folder under DIR (default
 * /tmp), then, `rounds` times, trains twice, in turn streamed first or in memory first:
 * under ds_set_memory_limit(limit), ds_net_fit_stream on the shards (a reader thread, a
 * 64 MiB shuffle buffer); without a limit, the shards loaded whole (ds_stream_load) and
 * ds_net_fit_feed (a full shuffle each epoch). Both train the same model with the same
 * options, without validation or files. The throughput counted is the epochs after the
 * first (the steady state: the first includes filling the shuffle buffer, and loading is
 * outside fit) from the progress callback's clock; the whole call, and the CPU time of
 * every thread per sample, are reported too. Prints one line per round, the medians and
 * their ratio, and a JSON line. --only runs one side (for a profile). The files are in the
 * page cache (just written): this measures the reader's work, not the disk. */
#include <deepsky.h>
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *model, *dir;
    long limit_mb, threads, batch, epochs, shards, rounds;
    int keep;
    int only;            /* 0: both; 1: streamed only; 2: in memory only (for profiles) */
} opts;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "stream_bench: %s: %s\n", what, ds_last_error());
    exit(1);
}

static long num(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "stream_bench: %s needs an integer in [%ld, %ld]\n", flag, lo, hi);
        exit(2);
    }
    return x;
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){"bench/models/mlp.model", "/tmp", 256, 2, 64, 3, 16, 5, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keep")) {
            o->keep = 1;
            continue;
        }
        i++;
        if (!strcmp(a, "--model") && v)
            o->model = v;
        else if (!strcmp(a, "--dir") && v)
            o->dir = v;
        else if (!strcmp(a, "--limit-mb"))
            o->limit_mb = num(a, v, 8, 1 << 20);
        else if (!strcmp(a, "--threads"))
            o->threads = num(a, v, 1, 1024);
        else if (!strcmp(a, "--batch"))
            o->batch = num(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--epochs"))
            o->epochs = num(a, v, 2, 1000);
        else if (!strcmp(a, "--shards"))
            o->shards = num(a, v, 1, 100000);
        else if (!strcmp(a, "--rounds"))
            o->rounds = num(a, v, 1, 100);
        else if (!strcmp(a, "--only") && v && (!strcmp(v, "stream") || !strcmp(v, "memory")))
            o->only = v[0] == 's' ? 1 : 2;
        else {
            fprintf(stderr, "usage: stream_bench [--model M] [--limit-mb MB] [--threads N] "
                    "[--batch B] [--epochs E>=2] [--shards K] [--rounds R] [--dir DIR] "
                    "[--keep] [--only stream|memory]\n");
            exit(2);
        }
    }
}

/* Shards of synthetic samples for the net's first input, 2 x limit bytes in all: the class
 * (uniform in 0..K-1) shifts a few features, so the loss can fall. */
static int64_t write_shards(const opts *o, ds_net *n, const char *dir, int64_t *per_out)
{
    const ds_node *in = ds_net_input_at(n, 0);
    int nd = ds_node_ndim(in);
    const int64_t *ishape = ds_node_shape(in);
    int64_t per = ds_node_numel(in) / ishape[0], K = ds_net_classes(n);
    if (K < 2)
        K = 2;
    int64_t N = 2 * (int64_t)o->limit_mb * (1 << 20) / (per * 4 + 4);
    ds_rng r;
    ds_rng_seed(&r, 1);
    for (long k = 0; k < o->shards; k++) {
        int64_t lo = N * k / o->shards, hi = N * (k + 1) / o->shards, m = hi - lo;
        int64_t shape[DS_MAX_DIMS];
        memcpy(shape, ishape, (size_t)nd * sizeof *shape);
        shape[0] = m;
        ds_tensor *x = ds_tensor_create(nd, shape), *y = ds_tensor_create(1, &m);
        if (!x || !y)
            die("shard memory");
        float *xd = ds_tensor_data(x), *yd = ds_tensor_data(y);
        ds_rng_fill_normal(&r, xd, m * per);
        for (int64_t i = 0; i < m; i++) {
            int64_t c = (int64_t)ds_rng_below(&r, (uint64_t)K);
            yd[i] = (float)c;
            for (int64_t j = 0; j < 8 && j < per; j++)
                xd[i * per + (c * 8 + j) % per] += 1.5f;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/x_%04ld.npy", dir, k);
        if (ds_npy_save(x, path))
            die(path);
        snprintf(path, sizeof path, "%s/y_%04ld.npy", dir, k);
        if (ds_npy_save(y, path))
            die(path);
        ds_tensor_free(x);
        ds_tensor_free(y);
    }
    *per_out = per;
    return N;
}

/* The clock at each epoch's end. */
typedef struct {
    double t[1001];
    int epochs;
} clock_ctx;

static void on_progress(void *ctx, const ds_progress *p)
{
    clock_ctx *c = ctx;
    if (p->end_of_epoch && p->epoch <= 1000) {
        c->t[p->epoch] = now_s();
        c->epochs = p->epoch;
    }
}

typedef struct {
    double steady, whole, loss;   /* samples/s after the first epoch, of the whole call */
    double cpu_us;                /* CPU time (every thread) per sample of the whole call */
} result;

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static result fit_once(const opts *o, ds_stream *s, ds_tensor *x, ds_tensor *y, int64_t N)
{
    ds_net *n;
    ds_net_opts no = {.batch = o->batch, .seed = 1, .labels = DS_LABELS_INDEX};
    if (ds_net_load(o->model, &no, &n))
        die(o->model);
    clock_ctx c = {{0}, 0};
    ds_fit_opts fo = {.epochs = (int)o->epochs, .batch_size = o->batch, .seed = 5,
                      .progress = on_progress, .ctx = &c};
    ds_feed f = {.inputs = {{NULL, x, NULL}}, .labels = {{NULL, y, NULL}}};
    ds_fit_result res;
    double t0 = now_s(), c0 = cpu_s();
    ds_status st = s ? ds_net_fit_stream(n, s, NULL, &fo, &res)
                     : ds_net_fit_feed(n, &f, NULL, &fo, &res);
    double t1 = now_s(), c1 = cpu_s();
    if (st)
        die(s ? "training on the stream" : "training in memory");
    ds_net_free(n);
    result r = {(double)(o->epochs - 1) * (double)N / (c.t[o->epochs] - c.t[1]),
                (double)o->epochs * (double)N / (t1 - t0), res.final_loss,
                1e6 * (c1 - c0) / ((double)o->epochs * (double)N)};
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

int main(int argc, char **argv)
{
    opts o;
    parse(argc, argv, &o);
    ds_set_num_threads((int)o.threads);
    size_t limit = (size_t)o.limit_mb << 20;
    char dir[4096], xs[4200], ys[4200];
    snprintf(dir, sizeof dir, "%s/ds_stream_bench_XXXXXX", o.dir);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "stream_bench: cannot make a folder in %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    ds_net *n;
    if (ds_net_load(o.model, &(ds_net_opts){.batch = o.batch}, &n))
        die(o.model);
    int64_t per, N = write_shards(&o, n, dir, &per);
    ds_net_free(n);
    sync();   /* no writeback of the new files during the timed runs */
    snprintf(xs, sizeof xs, "%s/x_*.npy", dir);
    snprintf(ys, sizeof ys, "%s/y_*.npy", dir);
    double data_mb = (double)N * (double)(per + 1) * 4 / (1 << 20);
    printf("%s: %lld samples of %lld floats, %.0f MiB in %ld shards; memory limit %ld MiB; "
           "%ld threads, batch %ld, %ld epochs (throughput of epochs 2-%ld)\n", o.model,
           (long long)N, (long long)per, data_mb, o.shards, o.limit_mb, o.threads, o.batch,
           o.epochs, o.epochs);
    double ss[100], ms[100], sw[100], mw[100], sc[100], mc[100];
    long rss_stream = 0;
    for (long k = 0; k < o.rounds; k++) {
        ds_set_memory_limit(limit);
        ds_stream_opts so = {.inputs = {{NULL, xs, NULL}}, .labels = {{NULL, ys, NULL}}};
        ds_stream *s;
        if (ds_stream_open(&so, &s))
            die("opening the stream");
        ds_tensor *whole;
        if (ds_stream_load(s, 0, 0, &whole) == DS_OK)
            die("loading whole under the limit should fail");
        if (!k)
            printf("loaded whole under the limit: %s\n", ds_last_error());
        result a = {0}, b = {0};
        bool stream_first = k % 2 == 0;   /* alternately, against drifts of the machine */
        if (stream_first && o.only != 2)
            a = fit_once(&o, s, NULL, NULL, N);
        if (!k)
            rss_stream = peak_rss_mb();
        ds_set_memory_limit(0);
        ds_tensor *x = NULL, *y = NULL;
        if (o.only != 1 && (ds_stream_load(s, 0, 0, &x) || ds_stream_load(s, 1, 0, &y)))
            die("loading whole");
        if (o.only != 1)
            b = fit_once(&o, NULL, x, y, N);
        ds_tensor_free(x);
        ds_tensor_free(y);
        ds_set_memory_limit(limit);
        if (!stream_first && o.only != 2)
            a = fit_once(&o, s, NULL, NULL, N);
        ds_set_memory_limit(0);
        ds_stream_free(s);
        printf("round %ld: streamed %.0f samples/s (whole call %.0f, %.1f us CPU a sample, "
               "loss %.3f); in memory %.0f samples/s (whole call %.0f, %.1f us CPU, loss %.3f)"
               "\n", k + 1, a.steady, a.whole, a.cpu_us, a.loss, b.steady, b.whole, b.cpu_us,
               b.loss);
        fflush(stdout);
        ss[k] = a.steady;
        ms[k] = b.steady;
        sw[k] = a.whole;
        mw[k] = b.whole;
        sc[k] = a.cpu_us;
        mc[k] = b.cpu_us;
    }
    double s_med = median(ss, (int)o.rounds), m_med = median(ms, (int)o.rounds);
    double sw_med = median(sw, (int)o.rounds), mw_med = median(mw, (int)o.rounds);
    double sc_med = median(sc, (int)o.rounds), mc_med = median(mc, (int)o.rounds);
    printf("median: streamed %.0f samples/s, in memory %.0f samples/s: ratio %.3f (whole calls "
           "%.3f); CPU a sample %.1f us streamed, %.1f us in memory; peak RSS while streaming "
           "%ld MiB\n", s_med, m_med, s_med / m_med, sw_med / mw_med, sc_med, mc_med,
           rss_stream);
    printf("{\"model\": \"%s\", \"threads\": %ld, \"batch\": %ld, \"samples\": %lld, "
           "\"data_mib\": %.0f, \"limit_mib\": %ld, \"stream_sps\": %.0f, \"memory_sps\": %.0f, "
           "\"ratio\": %.4f, \"ratio_whole\": %.4f, \"stream_cpu_us\": %.2f, "
           "\"memory_cpu_us\": %.2f, \"stream_peak_rss_mib\": %ld}\n", o.model,
           o.threads, o.batch, (long long)N, data_mb, o.limit_mb, s_med, m_med, s_med / m_med,
           sw_med / mw_med, sc_med, mc_med, rss_stream);
    if (!o.keep) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "stream_bench: could not remove %s\n", dir);
    }
    return 0;
}
