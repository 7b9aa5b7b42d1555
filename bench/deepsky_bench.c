/* deepsky_bench.c - the deepsky side of the benchmark suite: one model file, one thread count,
 * training then inference timed on synthetic data, one JSON line of results on stdout.
 *
 *   deepsky_bench MODEL --threads N --batch B [--warmup S] [--time S] [--infer-time S]
 *                 [--infer-batches B1,B2,...] [--min-iters K] [--conv-algo auto|im2col]
 *   deepsky_bench --sgemm SIZE --threads N [--time S]
 *
 * bench/run.py runs it alternately with the peer scripts (bench/torch_bench.py, tf_bench.py,
 * jax_bench.py), which do the same in PyTorch, TensorFlow and JAX.
 * Training is the loop ds_net_fit runs (zero_grad, forward, backward, Adam step) without its
 * shuffling and bookkeeping; inference is a forward pass in eval mode, planned for
 * inference (DS_MODE_INFER). Each timed window
 * runs for the given seconds and at least K iterations (default 3), after a warm-up. The
 * second form times OpenBLAS sgemm on a SIZE x SIZE product: the practical peak of the
 * machine.
 *
 * Start-up: BENCH_T0 in the environment is the wall-clock time (seconds since the epoch)
 * just before the runner started this process; "startup_s" is the time from then until the
 * first training step starts (the library loaded, the model file read, the graph planned, the
 * weights initialized, the data in memory), "first_step_s" until that step has ended.
 * "peak_rss_kb" is the peak resident set after training. Inference runs the graph up to the
 * network's output only (not the loss), as PyTorch's model(x). */
#include <deepsky.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define POOL_BATCHES 4   /* distinct synthetic batches cycled through while training */
#define MAX_INFER 8

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;   /* kilobytes on Linux */
}

static void die(const char *what, ds_status st)
{
    fprintf(stderr, "deepsky_bench: %s failed (%s): %s\n", what, ds_status_name(st),
            ds_last_error());
    exit(1);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: deepsky_bench MODEL --threads N --batch B [--warmup S] [--time S]\n"
            "                     [--infer-time S] [--infer-batches B1,B2,...] [--min-iters K]\n"
            "                     [--conv-algo auto|im2col]\n"
            "       deepsky_bench --sgemm SIZE --threads N [--time S]\n");
    exit(2);
}

static double parse_num(const char *flag, const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "deepsky_bench: option '%s': '%s' is not a number in [%g, %g]\n", flag,
                s, lo, hi);
        exit(2);
    }
    return v;
}

/* Best and median GFLOP/s of C = A B on size x size matrices over at least 3 products and
 * `seconds` of work. Called outside any parallel region, so OpenBLAS uses the thread count
 * ds_set_num_threads gave it. */
static void bench_sgemm(int size, double seconds, int threads)
{
    size_t n = (size_t)size * (size_t)size;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "deepsky_bench: out of memory\n");
        exit(1);
    }
    ds_rng r;
    ds_rng_seed(&r, 7);
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)ds_rng_normal(&r);
        b[i] = (float)ds_rng_normal(&r);
    }
    double flop = 2.0 * size * (double)size * size, best = 0, rates[256];
    int reps = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b,
                size, 0.0f, c, size);   /* warm-up: threads started, pages touched */
    double t_end = mono_s() + seconds;
    while (reps < 3 || (mono_s() < t_end && reps < 256)) {
        double t0 = mono_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size,
                    b, size, 0.0f, c, size);
        double g = flop / (mono_s() - t0) / 1e9;
        rates[reps++] = g;
        if (g > best)
            best = g;
    }
    /* median by insertion sort: reps is small */
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && rates[j - 1] > rates[j]; j--) {
            double t = rates[j];
            rates[j] = rates[j - 1];
            rates[j - 1] = t;
        }
    printf("{\"framework\": \"sgemm\", \"size\": %d, \"threads\": %d, \"reps\": %d, "
           "\"gflops_best\": %.3f, \"gflops_median\": %.3f, \"check\": %.6g}\n",
           size, threads, reps, best, rates[reps / 2], (double)c[n / 2]);
    free(a);
    free(b);
    free(c);
}

typedef struct {
    ds_net *net;
    ds_graph *g;
    ds_node *in, *target, *loss, *out;
    ds_optim *opt;
    int64_t batch, fx, fy;   /* floats per sample of input and target */
    float *x, *y;            /* POOL_BATCHES batches */
} bench;

static void train_step(bench *b, int64_t i)
{
    ds_status st;
    int64_t k = i % POOL_BATCHES;
    if ((st = ds_graph_set_input(b->g, b->in, b->x + k * b->batch * b->fx, b->batch * b->fx)) ||
        (st = ds_graph_set_input(b->g, b->target, b->y + k * b->batch * b->fy,
                                 b->batch * b->fy)))
        die("set_input", st);
    ds_model_zero_grad(ds_net_model(b->net));
    if ((st = ds_graph_forward(b->g)))
        die("forward", st);
    if ((st = ds_graph_backward(b->g, b->loss)))
        die("backward", st);
    if ((st = ds_optim_step(b->opt)))
        die("optimizer step", st);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int threads = 1, sgemm = 0;
    int64_t batch = 0, infer_batch[MAX_INFER];
    int n_infer = 0, min_iters = 3;
    double warmup = 0.5, seconds = 2.0, infer_seconds = 1.0;
    char infer_list[256] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            model = a;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--threads"))
            threads = (int)parse_num(a, v, 1, 1024);
        else if (!strcmp(a, "--batch"))
            batch = (int64_t)parse_num(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--warmup"))
            warmup = parse_num(a, v, 0, 3600);
        else if (!strcmp(a, "--time"))
            seconds = parse_num(a, v, 0, 3600);
        else if (!strcmp(a, "--infer-time"))
            infer_seconds = parse_num(a, v, 0, 3600);
        else if (!strcmp(a, "--min-iters"))
            min_iters = (int)parse_num(a, v, 1, 1000000);
        else if (!strcmp(a, "--sgemm"))
            sgemm = (int)parse_num(a, v, 16, 16384);
        else if (!strcmp(a, "--infer-batches"))
            snprintf(infer_list, sizeof infer_list, "%s", v);
        else if (!strcmp(a, "--conv-algo") && (!strcmp(v, "auto") || !strcmp(v, "im2col")))
            ds_set_conv_algo(!strcmp(v, "auto") ? DS_CONV_AUTO : DS_CONV_IM2COL);
        else
            usage();
    }
    ds_set_num_threads(threads);
    if (sgemm) {
        bench_sgemm(sgemm, seconds, threads);
        return 0;
    }
    if (!model || batch < 1)
        usage();
    for (char *tok = strtok(infer_list, ","); tok && n_infer < MAX_INFER; tok = strtok(NULL, ","))
        infer_batch[n_infer++] = (int64_t)parse_num("--infer-batches", tok, 1, 1 << 20);
    const char *t0_env = getenv("BENCH_T0");
    double t0_wall = t0_env ? strtod(t0_env, NULL) : wall_s();
    long rss_start = peak_rss_kb();

    /* ---- the network and its synthetic data ---- */
    bench b = {.batch = batch};
    ds_status st;
    ds_net_opts no = {.batch = batch, .seed = 1, .labels = DS_LABELS_INDEX};
    if ((st = ds_net_load(model, &no, &b.net)))
        die("loading the model", st);
    b.g = ds_net_graph(b.net);
    b.in = ds_net_input(b.net);
    b.target = ds_net_target(b.net);
    b.loss = ds_net_loss(b.net);
    b.out = ds_net_output(b.net);
    if (!b.target || !b.loss) {
        fprintf(stderr, "deepsky_bench: %s has no loss reading labels\n", model);
        return 1;
    }
    ds_graph_set_mode(b.g, DS_MODE_TRAIN);
    if ((st = ds_graph_plan(b.g)))
        die("planning", st);
    b.fx = ds_node_numel(b.in) / batch;
    b.fy = ds_node_numel(b.target) / batch;
    int64_t classes = ds_net_is_classifier(b.net) ? ds_net_classes(b.net) : 0;
    b.x = malloc((size_t)(POOL_BATCHES * batch * b.fx) * sizeof(float));
    b.y = malloc((size_t)(POOL_BATCHES * batch * b.fy) * sizeof(float));
    if (!b.x || !b.y) {
        fprintf(stderr, "deepsky_bench: out of memory\n");
        return 1;
    }
    ds_rng r;
    ds_rng_seed(&r, 1234);
    ds_rng_fill_normal(&r, b.x, POOL_BATCHES * batch * b.fx);
    for (int64_t i = 0; i < POOL_BATCHES * batch * b.fy; i++)
        b.y[i] = classes ? (float)ds_rng_below(&r, (uint64_t)classes) : (float)ds_rng_normal(&r);
    if (!(b.opt = ds_optim_create(ds_net_model(b.net), ds_net_optim_opts(b.net))))
        die("creating the optimizer", DS_ERR_ARG);

    /* ---- training: first step, warm-up, timed window ---- */
    double startup = wall_s() - t0_wall;
    train_step(&b, 0);
    double first_step = wall_s() - t0_wall;
    int64_t step = 1;
    double t = mono_s(), t_warm = t + warmup;
    do
        train_step(&b, step++);
    while (mono_s() < t_warm);
    int64_t timed = 0;
    double t_start = mono_s(), t_stop = t_start + seconds, t_now;
    do {
        train_step(&b, step++);
        timed++;
    } while ((t_now = mono_s()) < t_stop || timed < min_iters);
    double train_sps = (double)(timed * batch) / (t_now - t_start);
    double last_loss = ds_node_data(b.loss)[0];
    long rss_train = peak_rss_kb();

    /* ---- inference in eval mode at each batch size ---- */
    char infer_json[1024] = "";
    size_t used = 0;
    ds_graph_set_mode(b.g, DS_MODE_INFER);   /* an inference plan: no backward follows */
    for (int k = 0; k < n_infer; k++) {
        int64_t ib = infer_batch[k];
        if ((st = ds_graph_set_batch(b.g, ib)) || (st = ds_graph_plan(b.g)))
            die("changing the batch size", st);
        float *xin = ds_node_data(b.in), *yin = ds_node_data(b.target);
        for (int64_t i = 0; i < ib * b.fx; i++)
            xin[i] = (float)ds_rng_normal(&r);
        memset(yin, 0, (size_t)(ib * b.fy) * sizeof(float));   /* class 0: a valid label */
        if ((st = ds_graph_forward_to(b.g, b.out)))
            die("forward", st);
        double tw = mono_s() + warmup / 2;
        while (mono_s() < tw)
            if ((st = ds_graph_forward_to(b.g, b.out)))
                die("forward", st);
        int64_t calls = 0;
        double ts = mono_s(), te = ts + infer_seconds, tn;
        do {
            if ((st = ds_graph_forward_to(b.g, b.out)))
                die("forward", st);
            calls++;
        } while ((tn = mono_s()) < te || calls < min_iters);
        used += (size_t)snprintf(infer_json + used, sizeof infer_json - used,
                                 "%s\"%lld\": {\"samples_per_s\": %.3f, \"latency_ms\": %.5f}",
                                 k ? ", " : "", (long long)ib,
                                 (double)(calls * ib) / (tn - ts), 1e3 * (tn - ts) / (double)calls);
        if (used >= sizeof infer_json)
            used = sizeof infer_json - 1;
    }

    printf("{\"framework\": \"deepsky\", \"model\": \"%s\", \"threads\": %d, \"batch\": %lld, "
           "\"params\": %lld, \"startup_s\": %.4f, \"first_step_s\": %.4f, \"train_steps\": %lld, "
           "\"train_samples_per_s\": %.3f, \"loss\": %.6g, \"rss_start_kb\": %ld, "
           "\"peak_rss_kb\": %ld, \"infer\": {%s}}\n",
           model, ds_get_num_threads(), (long long)batch,
           (long long)ds_model_numel(ds_net_model(b.net), 1), startup, first_step, (long long)timed,
           train_sps, last_loss, rss_start, rss_train, infer_json);
    ds_optim_free(b.opt);
    ds_net_free(b.net);
    free(b.x);
    free(b.y);
    return isfinite(last_loss) ? 0 : 1;
}
