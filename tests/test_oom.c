/* test_oom.c - out of memory is an error, in the manner of SQLite's malloc tests: for every
 * k, the k-th allocation the library makes fails (then, in a second pass, every one from
 * the k-th on) while a small CNN is parsed, planned, trained (a trainer step, then
 * ds_net_fit writing its files) and saved; while a model file, its weights, a .npy file and
 * a CSV table are loaded; and while a net with two heads predicts, evaluates,
 * differentiates and summarizes. Each time, the failing call returns DS_ERR_NOMEM with a
 * new message that speaks of memory, nothing leaks, no half-written or differing file is
 * left, a failed weights load leaves the net as it was, a call that can be repeated is made
 * again with memory available and the run then ends as the run without failures does, and
 * a call that recovers from the failure by itself must give that run's results, bit for
 * bit (files compared byte for byte, results by hash).
 *
 * The binary links with -Wl,--wrap=malloc,... (the Makefile's WRAP_ALLOC): every call to
 * these functions from the library's objects (and the tests') reaches the __wrap_ functions
 * below, which count, fail and track the calls of this thread while a scenario runs, and
 * pass everything else through to the real allocator. Leaks are found by the tracking (each
 * allocation made during a scenario must be freed by its end), which names the allocation
 * and the function that made it. Kernels run on one thread during the test, so that the
 * k-th allocation is the same one on every run.
 * Debugging: DEEPSKY_OOM_TRACE=k prints the stack of the k-th allocation of each scenario
 * where it fails; DEEPSKY_OOM_ALL=1 lists every defect on stderr, not only the first. */
#include "test.h"

#include "../src/internal.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

/* ---- the wrapped allocator ---- */
/* Resolved to the C library's functions by --wrap. */
extern void *__real_malloc(size_t n);
extern void *__real_calloc(size_t n, size_t size);
extern void *__real_realloc(void *p, size_t n);
extern void *__real_aligned_alloc(size_t align, size_t n);
extern char *__real_strdup(const char *s);
extern void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
char *__wrap_strdup(const char *s);
void __wrap_free(void *p);

static struct {
    atomic_int on;          /* a scenario runs on thread owner: count, fail and track */
    pthread_t owner;
    bool armed;             /* inside a library call: allocations count and may fail */
    bool persist;           /* fail every allocation from the fail_at-th on */
    long count;             /* allocations counted so far in this scenario */
    long fail_at;           /* 0: none fails */
    long injected;          /* failures injected so far */
    long trace_at;          /* DEEPSKY_OOM_TRACE=k: print the stack where the k-th fails */
    long seq;               /* allocations tracked so far */
    bool overflow;          /* too many live allocations to track */
} ws;

/* Live allocations of the scenario: open addressing on the pointer, deletion by backward
 * shift. */
#define TRACK_BITS 16
#define TRACK_MASK ((1u << TRACK_BITS) - 1)
typedef struct {
    void *p;
    size_t size;
    long seq;               /* 1-based order of the allocation in the scenario */
    long k;                 /* its number among counted allocations (0: made unarmed) */
    const void *pc;         /* where it was made */
} live_alloc;
static live_alloc live[TRACK_MASK + 1];
static long n_live;

static bool mine(void)
{
    return atomic_load_explicit(&ws.on, memory_order_relaxed) &&
           pthread_equal(pthread_self(), ws.owner);
}

static size_t home(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL) >> (64 - TRACK_BITS));
}

static void track(void *p, size_t size, const void *pc)
{
    if (!p)
        return;
    if (n_live >= (long)(TRACK_MASK / 2)) {
        ws.overflow = true;
        return;
    }
    size_t i = home(p);
    while (live[i].p)
        i = (i + 1) & TRACK_MASK;
    live[i] = (live_alloc){p, size, ++ws.seq, ws.armed ? ws.count : 0, pc};
    n_live++;
}

static void untrack(void *p)
{
    size_t i = home(p);
    while (live[i].p && live[i].p != p)
        i = (i + 1) & TRACK_MASK;
    if (!live[i].p)
        return;   /* made before the scenario, or by another thread */
    live[i].p = NULL;
    n_live--;
    /* an entry further on whose probe path crosses the hole moves into it */
    for (size_t j = (i + 1) & TRACK_MASK; live[j].p; j = (j + 1) & TRACK_MASK) {
        size_t h = home(live[j].p);
        if (((i - h) & TRACK_MASK) < ((j - h) & TRACK_MASK)) {
            live[i] = live[j];
            live[j].p = NULL;
            i = j;
        }
    }
}

/* Counts an allocation made inside a library call; true if it is to fail. */
static bool inject(void)
{
    if (!ws.armed)
        return false;
    long k = ++ws.count;
    if (!ws.fail_at || k < ws.fail_at || (k > ws.fail_at && !ws.persist))
        return false;
    ws.injected++;
#if defined(__SANITIZE_ADDRESS__)
    if (k == ws.trace_at) {
        fprintf(stderr, "test_oom: allocation %ld fails here:\n", k);
        __sanitizer_print_stack_trace();
    }
#endif
    return true;
}

#define WRAPPED(call, size)                                          \
    do {                                                             \
        if (!mine())                                                 \
            return __real_##call;                                    \
        if (inject())                                                \
            return NULL;                                             \
        void *p_ = __real_##call;                                    \
        track(p_, size, __builtin_return_address(0));                \
        return p_;                                                   \
    } while (0)

void *__wrap_malloc(size_t n) { WRAPPED(malloc(n), n); }
void *__wrap_calloc(size_t n, size_t size) { WRAPPED(calloc(n, size), n * size); }
void *__wrap_aligned_alloc(size_t align, size_t n) { WRAPPED(aligned_alloc(align, n), n); }
char *__wrap_strdup(const char *s) { WRAPPED(strdup(s), strlen(s) + 1); }

void *__wrap_realloc(void *p, size_t n)
{
    if (!mine())
        return __real_realloc(p, n);
    if (inject())
        return NULL;   /* p stays valid, as a failed realloc leaves it */
    void *q = __real_realloc(p, n);
    if (p && (q || !n))
        untrack(p);
    track(q, n, __builtin_return_address(0));
    return q;
}

void __wrap_free(void *p)
{
    if (p && mine())
        untrack(p);
    __real_free(p);
}

static void scenario_begin(long fail_at, bool persist)
{
    memset(live, 0, sizeof live);
    n_live = 0;
    ws.owner = pthread_self();
    ws.armed = false;
    ws.persist = persist;
    ws.count = ws.injected = ws.seq = 0;
    ws.fail_at = fail_at;
    ws.overflow = false;
    atomic_store(&ws.on, 1);
}

static void scenario_end(void)
{
    atomic_store(&ws.on, 0);
    ws.armed = false;
}

/* ---- a scenario's run ---- */
#define SENTINEL "test_oom: sentinel message, set before the call"

typedef struct {
    char why[2048];         /* the defect found, or "" */
    const char *stopped;    /* the call that failed cleanly, or NULL */
    char stop_msg[256];     /* and its message */
    int failed;             /* calls that failed cleanly */
    int retried;            /* of which ran again, successfully, with memory available */
    int recovered;          /* calls that succeeded although an allocation failed */
    const char *recovered_call;   /* the first of them */
    long injected_before;   /* ws.injected when the current call began */
    long count_before;      /* ws.count then */
    char tally[512];        /* "call allocations, ..." */
} run;

static void arm(run *r)
{
    dsi_fail(DS_OK, SENTINEL);
    r->injected_before = ws.injected;
    r->count_before = ws.count;
    ws.armed = true;
}

/* The verdict on a library call that returned st: 0 to go on, 1 to stop (a clean failure,
 * or a defect described in r->why). */
static int disarm(run *r, const char *what, ds_status st)
{
    ws.armed = false;
    long inj = ws.injected - r->injected_before;
    dsi_snprintf_cat(r->tally, sizeof r->tally, "%s%s %ld", r->tally[0] ? ", " : "",
                     strncmp(what, "ds_", 3) ? what : what + 3, ws.count - r->count_before);
    const char *msg = ds_last_error();
    if (st == DS_OK) {
        if (inj > 0 && !r->recovered++)
            r->recovered_call = what;
        return 0;
    }
    if (!inj)
        snprintf(r->why, sizeof r->why, "%s failed (%s) with no allocation failing: %s", what,
                 ds_status_name(st), msg);
    else if (st != DS_ERR_NOMEM)
        snprintf(r->why, sizeof r->why, "%s returned %s, not DS_ERR_NOMEM: %s", what,
                 ds_status_name(st), msg);
    else if (!strcmp(msg, SENTINEL))
        snprintf(r->why, sizeof r->why, "%s returned DS_ERR_NOMEM without setting a message",
                 what);
    else if (!strstr(msg, "memory"))
        snprintf(r->why, sizeof r->why, "%s: the message does not say memory ran out: %s", what,
                 msg);
    else
        r->failed++;
    r->stopped = what;
    snprintf(r->stop_msg, sizeof r->stop_msg, "%s", msg);
    return 1;
}

#define STEP(r, what, call)                                    \
    do {                                                       \
        arm(r);                                                \
        ds_status st_ = (call);                                \
        if (disarm(r, what, st_))                              \
            goto done;                                         \
    } while (0)

/* After a clean failure, the same call made again with memory available (st its status):
 * 0 to go on, 1 to stop (it failed again: r->why says so). */
static int retried(run *r, const char *what, ds_status st)
{
    if (st) {
        snprintf(r->why, sizeof r->why, "%s failed again (%s) once memory was available: %s",
                 what, ds_status_name(st), ds_last_error());
        return 1;
    }
    r->stopped = NULL;
    r->retried++;
    return 0;
}

/* STEP for a call that leaves its objects as they were when it runs out of memory: after a
 * clean failure it runs again, without failures, and the scenario goes on (its results must
 * still be those of the run without failures). */
#define RETRY(r, what, call)                                                     \
    do {                                                                         \
        arm(r);                                                                  \
        ds_status st_ = (call);                                                  \
        if (disarm(r, what, st_) && (r->why[0] || retried(r, what, (call))))    \
            goto done;                                                           \
    } while (0)

/* Leaks of the scenario just ended: 0, or 1 with r->why naming the first few. */
static int check_leaks(run *r)
{
    if (ws.overflow) {
        snprintf(r->why, sizeof r->why, "more than %u live allocations: not tracked",
                 TRACK_MASK / 2);
        return 1;
    }
    if (!n_live)
        return 0;
    live_alloc first[3];
    int nf = 0;
    for (size_t i = 0; i <= TRACK_MASK; i++) {
        if (!live[i].p)
            continue;
        int at = nf < 3 ? nf++ : 3;
        while (at > 0 && first[at - 1].seq > live[i].seq) {
            if (at < 3)
                first[at] = first[at - 1];
            at--;
        }
        if (at < 3)
            first[at] = live[i];
    }
    snprintf(r->why, sizeof r->why, "%ld allocation(s) leaked, the first:", n_live);
    for (int i = 0; i < nf; i++) {
        char where[256] = "?";
#if defined(__SANITIZE_ADDRESS__)
        __sanitizer_symbolize_pc((void *)((const char *)first[i].pc - 1), "%f %L", where,
                                 sizeof where);
#endif
        dsi_snprintf_cat(r->why, sizeof r->why, " %zu bytes (allocation %ld of the calls) in %s;",
                         first[i].size, first[i].k, where);
    }
#if defined(__SANITIZE_ADDRESS__)
    __lsan_do_recoverable_leak_check();   /* the full stacks, on stderr */
#endif
    return 1;
}

/* ---- files ---- */
static char *path_in(const char *dir, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        rewind(f);
        b = len >= 0 ? malloc((size_t)len + 1) : NULL;
        if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
            free(b);
            b = NULL;
        }
        if (b) {
            b[len] = 0;
            *n = (size_t)len;
        }
    }
    fclose(f);
    return b;
}

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            remove(path_in(dir, e->d_name, p, sizeof p));
    if (d)
        closedir(d);
}

/* ---- the network and its data ---- */
/* A small CNN: convolution, batch norm, pooling, dropout, dense layers, a loss and an
 * optimizer; c1 is named, so that the next layer's automatic name is made after
 * parameters exist. */
static const char model_text[] =
    "# test_oom: a small CNN\n"
    "input name=img shape=1x8x8\n"
    "conv2d name=c1 filters=4 kernel=3 padding=same activation=relu\n"
    "batchnorm\n"
    "maxpool size=2\n"
    "conv2d filters=4 kernel=3 padding=same\n"
    "dropout rate=0.25\n"
    "flatten\n"
    "dense units=8 activation=relu\n"
    "dense name=cls units=3 activation=softmax\n"
    "loss categorical_crossentropy\n"
    "optimizer adam lr=0.01\n";
#define NSAMP 4

/* Two heads on one trunk, a regression and a binary classifier (AUROC in the report). */
static const char heads_text[] =
    "input name=img shape=1x8x8\n"
    "conv2d filters=2 kernel=3 activation=relu\n"
    "flatten\n"
    "dense name=h units=4 activation=tanh\n"
    "dense name=reg units=1 inputs=h\n"
    "dense name=bin units=1 inputs=h activation=sigmoid\n"
    "loss mse output=reg\n"
    "loss binary_crossentropy output=bin\n";

/* The outputs a scenario may leave in its folder. */
static const char *const out_names[] = {"fit.safetensors", "fit.best.safetensors",
                                        "fit.ckpt.safetensors", "log.csv", "w.safetensors",
                                        "curve.png"};
#define NOUT 6

typedef struct {
    char in_dir[64], out_dir[64];
    ds_tensor *x, *y, *reg, *bin;
    ds_net_opts no;
    ds_fit_opts fo;
    char fit_path[128], log_path[128], w_path[128], curve_path[128];
    char model_path[128], npy_path[128], csv_path[128], weights_path[128];
    ds_tensor *tab, *tab_ca;   /* the CSV table: columns a, b, c; and c, a */
    /* the run without failures */
    unsigned char *ref[NOUT];
    size_t ref_n[NOUT];
    float *ref_weights, *init_weights;   /* after training; as parsed */
    int64_t ref_weights_n;
    ds_tensor_set *ref_ckpt;
    uint64_t ref_use;       /* hash of what scenario_use returns */
    uint64_t ref_sim;       /* and scenario_sim */
} oom_env;

/* FNV-1a, to compare results without keeping them. */
static uint64_t hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t hash_set(uint64_t h, const ds_tensor_set *s)
{
    for (int i = 0; i < ds_tensor_set_count(s); i++) {
        const char *nm = ds_tensor_set_name(s, i);
        ds_tensor *t = ds_tensor_set_at(s, i);
        h = hash(h, nm, strlen(nm) + 1);
        h = hash(h, ds_tensor_data(t), (size_t)ds_tensor_numel(t) * sizeof(float));
    }
    return h;
}

/* Scenario 1: parse, standardization of the input, plan, one trainer step, one epoch of
 * ds_net_fit (validation, weights, checkpoint, log, learning curve), save. keep: the
 * reference run, which keeps the trained weights in E. */
static void scenario_train(oom_env *E, run *r, bool keep)
{
    ds_net *n = NULL;
    ds_trainer *t = NULL;
    ds_feed f = {.inputs = {{NULL, E->x, NULL}}, .labels = {{NULL, E->y, NULL}}};
    arm(r);
    ds_status st = ds_net_parse(model_text, "oom.model", &E->no, &n);
    if (st && n) {
        snprintf(r->why, sizeof r->why, "ds_net_parse failed but returned a net");
        goto done;
    }
    if (disarm(r, "ds_net_parse", st))
        goto done;
    RETRY(r, "ds_net_set_scaling", ds_net_set_scaling(n, DS_SCALE_STANDARDIZE, 0, E->x));
    RETRY(r, "ds_graph_plan", ds_graph_plan(ds_net_graph(n)));
    RETRY(r, "ds_trainer_create", ds_trainer_create(n, NULL, &t));
    STEP(r, "ds_trainer_step", ds_trainer_step(t, &f, NULL, NSAMP, NULL));
    ds_trainer_free(t);
    t = NULL;
    STEP(r, "ds_net_fit", ds_net_fit(n, E->x, E->y, E->x, E->y, &E->fo, NULL));
    RETRY(r, "ds_net_save_weights", ds_net_save_weights(n, E->w_path));
    if (keep) {
        ds_model *m = ds_net_model(n);
        E->ref_weights_n = ds_model_block_len(m, 0);
        size_t bytes = (size_t)E->ref_weights_n * sizeof(float);
        if ((E->ref_weights = malloc(bytes)))
            memcpy(E->ref_weights, ds_model_data(m), bytes);
    }
done:
    ws.armed = false;
    ds_trainer_free(t);
    ds_net_free(n);
}

/* One array file loaded under injection: 0 to go on, 1 to stop. */
static int load_array(run *r, const char *path, const ds_read_opts *o, const ds_tensor *want)
{
    ds_tensor *a = NULL;
    arm(r);
    ds_status st = ds_array_load(path, o, &a);
    int stop = 1;
    if (st && a)
        snprintf(r->why, sizeof r->why, "ds_array_load failed but returned a tensor");
    else if (!disarm(r, "ds_array_load", st))
        stop = 0;
    if (!stop && (ds_tensor_numel(a) != ds_tensor_numel(want) ||
                  memcmp(ds_tensor_data(a), ds_tensor_data((ds_tensor *)want),
                         (size_t)ds_tensor_numel(a) * sizeof(float)))) {
        snprintf(r->why, sizeof r->why, "%s: what was loaded differs from the array saved", path);
        stop = 1;
    }
    ws.armed = false;
    ds_tensor_free(a);
    return stop;
}

/* Scenario 2: a model file, its trained weights, a .npy file and a CSV table (all its
 * columns, then two by name) loaded. */
static void scenario_load(oom_env *E, run *r)
{
    ds_net *n = NULL;
    arm(r);
    ds_status st = ds_net_load(E->model_path, &E->no, &n);
    if (st && n) {
        snprintf(r->why, sizeof r->why, "ds_net_load failed but returned a net");
        goto done;
    }
    if (disarm(r, "ds_net_load", st))
        goto done;
    ds_model *m = ds_net_model(n);
    size_t bytes = (size_t)E->ref_weights_n * sizeof(float);
    arm(r);
    st = ds_net_load_weights(n, E->weights_path);
    if (disarm(r, "ds_net_load_weights", st)) {
        if (r->why[0])
            goto done;
        /* a failed load leaves the net as it was */
        if (memcmp(ds_model_data(m), E->init_weights, bytes) ||
            ds_net_scaling(n) != DS_SCALE_NONE) {
            snprintf(r->why, sizeof r->why, "ds_net_load_weights failed (%s) but changed the "
                     "net's weights or preprocessing", ds_last_error());
            goto done;
        }
        if (retried(r, "ds_net_load_weights", ds_net_load_weights(n, E->weights_path)))
            goto done;
    }
    if (ds_model_block_len(m, 0) != E->ref_weights_n ||
        memcmp(ds_model_data(m), E->ref_weights, bytes)) {
        snprintf(r->why, sizeof r->why, "the weights loaded differ from those saved");
        goto done;
    }
    if (load_array(r, E->npy_path, NULL, E->x) || load_array(r, E->csv_path, NULL, E->tab))
        goto done;
    load_array(r, E->csv_path, &(ds_read_opts){.columns = "c,a"}, E->tab_ca);
done:
    ws.armed = false;
    ds_net_free(n);
}

/* Scenario 3: a net with two heads parsed, then used: predictions in batches of 3,
 * evaluation (report and values), gradients, summary. *h: a hash of all they return. */
static void scenario_use(oom_env *E, run *r, uint64_t *h)
{
    ds_net *n = NULL;
    ds_tensor *out[2] = {NULL, NULL};
    ds_tensor_set *vals = ds_tensor_set_create(), *grads = ds_tensor_set_create();
    char *report = NULL, *summary = NULL;
    ds_feed f = {.inputs = {{"img", E->x, NULL}},
                 .labels = {{"reg", E->reg, NULL}, {"bin", E->bin, NULL}}};
    *h = 0xcbf29ce484222325ULL;
    if (!vals || !grads) {
        snprintf(r->why, sizeof r->why, "%s", ds_last_error());
        goto done;
    }
    arm(r);
    ds_status st = ds_net_parse(heads_text, "heads.model", &E->no, &n);
    if (st && n) {
        snprintf(r->why, sizeof r->why, "ds_net_parse failed but returned a net");
        goto done;
    }
    if (disarm(r, "ds_net_parse", st))
        goto done;
    RETRY(r, "ds_net_predict_feed", ds_net_predict_feed(n, &f, 3, out));
    for (int i = 0; i < 2; i++)
        *h = hash(*h, ds_tensor_data(out[i]), (size_t)ds_tensor_numel(out[i]) * sizeof(float));
    RETRY(r, "ds_net_evaluate_feed", ds_net_evaluate_feed(n, &f, NSAMP, &report, vals));
    *h = hash_set(hash(*h, report, strlen(report)), vals);
    RETRY(r, "ds_net_grad_feed", ds_net_grad_feed(n, &f, 0, grads));
    *h = hash_set(*h, grads);
    arm(r);
    summary = ds_graph_summary(ds_net_graph(n));
    if (disarm(r, "ds_graph_summary", summary ? DS_OK : dsi_last_status()) &&
        (r->why[0] || retried(r, "ds_graph_summary",
                              (summary = ds_graph_summary(ds_net_graph(n))) ? DS_OK
                                                                            : dsi_last_status())))
        goto done;
    *h = hash(*h, summary, strlen(summary));
done:
    ws.armed = false;
    free(summary);
    free(report);
    ds_tensor_free(out[0]);
    ds_tensor_free(out[1]);
    ds_tensor_set_free(vals);
    ds_tensor_set_free(grads);
    ds_net_free(n);
}

static void scenario_use1(oom_env *E, run *r)
{
    uint64_t h;
    scenario_use(E, r, &h);
    if (!r->why[0] && !r->stopped && h != E->ref_use)
        snprintf(r->why, sizeof r->why, "the results differ from the run without failures");
}

/* Scenario 4: simulated galaxies with a Moffat PSF, the PSF's image, and each galaxy's
 * shear by re-Gaussianization and by linear PSF subtraction; then galaxies through sheared
 * optical PSFs and their PSF images. *h: a hash of the results. */
#define SIM_N 3
#define SIM_SIZE 16
static void scenario_sim(oom_env *E, run *r, uint64_t *h)
{
    (void)E;
    ds_tensor *img = NULL, *truth = NULL, *pimg = NULL;
    float psf_img[SIM_SIZE * SIM_SIZE];
    ds_psf psf = {.kind = DS_PSF_MOFFAT, .fwhm = 2.5, .beta = 3};
    ds_sim_opts o = {.count = SIM_N, .size = SIM_SIZE, .seed = 4, .n_min = 0.5, .n_max = 4,
                     .hlr_min = 1.5, .hlr_max = 3, .e_max = 0.5, .snr_min = 30, .snr_max = 60,
                     .sky_sigma = 1, .offset_max = 0.5, .psf = psf};
    *h = 0xcbf29ce484222325ULL;
    RETRY(r, "ds_sim_galaxies", ds_sim_galaxies(&o, &img, &truth));
    *h = hash(*h, ds_tensor_data(img), (size_t)ds_tensor_numel(img) * sizeof(float));
    *h = hash(*h, ds_tensor_data(truth), (size_t)ds_tensor_numel(truth) * sizeof(float));
    RETRY(r, "ds_psf_render", ds_psf_render(&psf, SIM_SIZE, psf_img));
    *h = hash(*h, psf_img, sizeof psf_img);
    for (int i = 0; i < SIM_N; i++)
        for (int m = 0; m < 2; m++) {
            ds_shear s;
            RETRY(r, "ds_shear_estimate",
                  ds_shear_estimate(ds_tensor_data(img) + i * SIM_SIZE * SIM_SIZE, psf_img,
                                    SIM_SIZE, 1.0, m ? DS_SHEAR_LINEAR : DS_SHEAR_REGAUSS, &s));
            *h = hash(*h, &s, sizeof s);
        }
    /* sheared optical PSFs (optics.c) and their per-stamp images */
    ds_tensor_free(img);
    ds_tensor_free(truth);
    img = truth = NULL;
    o.psf = (ds_psf){.kind = DS_PSF_OPTICAL, .fwhm = 1.5, .lam_over_diam = 1, .obscuration = 0.3};
    o.psf_e_max = 0.1;
    RETRY(r, "ds_sim_galaxies (optical)", ds_sim_galaxies(&o, &img, &truth));
    *h = hash(*h, ds_tensor_data(img), (size_t)ds_tensor_numel(img) * sizeof(float));
    RETRY(r, "ds_sim_psf_images", ds_sim_psf_images(&o, truth, &pimg));
    *h = hash(*h, ds_tensor_data(pimg), (size_t)ds_tensor_numel(pimg) * sizeof(float));
done:
    ws.armed = false;
    ds_tensor_free(img);
    ds_tensor_free(truth);
    ds_tensor_free(pimg);
}

static void scenario_sim1(oom_env *E, run *r)
{
    uint64_t h;
    scenario_sim(E, r, &h);
    if (!r->why[0] && !r->stopped && h != E->ref_sim)
        snprintf(r->why, sizeof r->why, "the results differ from the run without failures");
}

/* A checkpoint left by ds_net_fit: loads, and holds the reference's tensors with the same
 * values (the history has the epoch's seconds, which differ). */
static int check_ckpt(const oom_env *E, const char *path, run *r)
{
    ds_tensor_set *s = NULL;
    if (ds_safetensors_load(path, &s)) {
        snprintf(r->why, sizeof r->why, "%s does not load: %s", path, ds_last_error());
        return 1;
    }
    int bad = ds_tensor_set_count(s) != ds_tensor_set_count(E->ref_ckpt);
    for (int i = 0; !bad && i < ds_tensor_set_count(E->ref_ckpt); i++) {
        const char *nm = ds_tensor_set_name(E->ref_ckpt, i);
        ds_tensor *a = ds_tensor_set_at(E->ref_ckpt, i), *b = ds_tensor_set_get(s, nm);
        bad = !b || ds_tensor_numel(a) != ds_tensor_numel(b) ||
              (strcmp(nm, "fit.history") &&
               memcmp(ds_tensor_data(a), ds_tensor_data(b),
                      (size_t)ds_tensor_numel(a) * sizeof(float)));
    }
    ds_tensor_set_free(s);
    if (bad)
        snprintf(r->why, sizeof r->why, "%s differs from the run without failures", path);
    return bad;
}

/* Weights written by ds_net_fit: the reference's tensors and metadata but for the date of
 * the write (train.date), which may differ. */
static int check_weights(const oom_env *E, int k, const char *path, run *r)
{
    ds_tensor_set *s = NULL, *ref = NULL;
    int bad = ds_safetensors_load(path, &s) != DS_OK ||
              ds_safetensors_load_mem(E->ref[k], E->ref_n[k], "reference", &ref) != DS_OK ||
              same_weights_sets(ref, s, "the run without failures", path, r->why,
                                sizeof r->why);
    if (bad && !r->why[0])
        snprintf(r->why, sizeof r->why, "%s does not load: %s", path, ds_last_error());
    ds_tensor_set_free(s);
    ds_tensor_set_free(ref);
    return bad;
}

/* What a scenario left in the output folder: no temporary file, and every output complete
 * and equal to the run without failures (the log: its header and one line per epoch). */
static int check_outputs(const oom_env *E, run *r)
{
    DIR *d = opendir(E->out_dir);
    struct dirent *e;
    char p[512];
    int bad = !d;
    while (!bad && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int k = 0;
        while (k < NOUT && strcmp(e->d_name, out_names[k]))
            k++;
        path_in(E->out_dir, e->d_name, p, sizeof p);
        if (k == NOUT) {
            snprintf(r->why, sizeof r->why, "a file left behind: %s", p);
            bad = 1;
        } else if (!strcmp(out_names[k], "fit.ckpt.safetensors")) {
            bad = check_ckpt(E, p, r);
        } else if (!strcmp(out_names[k], "fit.safetensors") ||
                   !strcmp(out_names[k], "fit.best.safetensors")) {
            bad = check_weights(E, k, p, r);
        } else {
            size_t n = 0;
            unsigned char *b = read_all(p, &n);
            bool same = b && (!strcmp(out_names[k], "log.csv")
                                  ? n > 0 && b[n - 1] == '\n' &&
                                        !strncmp((char *)b, (char *)E->ref[k],
                                                 strcspn((char *)E->ref[k], "\n") + 1) &&
                                        strchr((char *)b, '\n') + 1 < (char *)b + n
                                  : n == E->ref_n[k] && !memcmp(b, E->ref[k], n));
            free(b);
            if (!same) {
                snprintf(r->why, sizeof r->why, "%s differs from the run without failures", p);
                bad = 1;
            }
        }
    }
    if (d)
        closedir(d);
    return bad;
}

typedef void (*scenario_fn)(oom_env *E, run *r);
static void scenario_train1(oom_env *E, run *r) { scenario_train(E, r, false); }

/* One run of a scenario with the k-th allocation failing (k = 0: none); 0 or 1 with msg. */
static int run_once(oom_env *E, scenario_fn fn, long k, bool persist, run *r, long *count,
                    char *msg, size_t cap)
{
    memset(r, 0, sizeof *r);
    clear_dir(E->out_dir);
    scenario_begin(k, persist);
    fn(E, r);
    scenario_end();
    *count = ws.count;
    if (!r->why[0])
        check_leaks(r);
    if (!r->why[0])
        check_outputs(E, r);
    if (r->why[0]) {
        snprintf(msg, cap, "allocation %ld failing%s: %s", k, persist ? " (and all after)" : "",
                 r->why);
        return 1;
    }
    return 0;
}

/* Every k from 1 until the scenario makes fewer than k allocations, transient and
 * persistent; counts what happened into the report. */
static int sweep(oom_env *E, scenario_fn fn, const char *name, char *msg, size_t cap)
{
    run r;
    long total = 0, clean = 0, retries = 0, recovered = 0, defects = 0;
    char where[256] = "";   /* the first calls that recovered, and their k */
    /* DEEPSKY_OOM_ALL=1: every defect on stderr, not only the first */
    bool keep_going = getenv("DEEPSKY_OOM_ALL") != NULL;
    if (run_once(E, fn, 0, false, &r, &total, msg, cap))
        return 1;
    if (r.stopped) {
        snprintf(msg, cap, "%s: the run without failures stopped at %s: %s", name, r.stopped,
                 r.stop_msg);
        return 1;
    }
    if (total == 0) {
        snprintf(msg, cap, "%s: no allocation of the library was seen: is it linked into the "
                 "test binary (not a shared library) with WRAP_ALLOC?", name);
        return 1;
    }
    char tally[512];
    snprintf(tally, sizeof tally, "%s", r.tally);
    for (int persist = 0; persist < 2; persist++)
        for (long k = 1;; k++) {
            long count;
            if (run_once(E, fn, k, persist, &r, &count, msg, cap)) {
                char tmp[2048];
                snprintf(tmp, sizeof tmp, "%s", msg);
                snprintf(msg, cap, "%s: %s", name, tmp);
                if (!keep_going)
                    return 1;
                fprintf(stderr, "test_oom: %s\n", msg);
                msg[0] = 0;
                defects++;
            }
            if (count < k)
                break;
            clean += r.failed;
            retries += r.retried;
            if (r.recovered && recovered++ < 4)
                dsi_snprintf_cat(where, sizeof where, "%s%s at %ld%s", recovered > 1 ? ", " : "",
                                 r.recovered_call, k, persist ? " (persistent)" : "");
        }
    if (defects) {
        snprintf(msg, cap, "%s: %ld defects (on stderr)", name, defects);
        return 1;
    }
    size_t len = strlen(msg);
    snprintf(msg + len, cap - len, "%s%s: %ld allocations (%s), %ld clean failures (%ld "
             "calls then made again), %ld recovered%s%s%s", len ? "; " : "", name, total, tally,
             clean, retries, recovered, recovered ? " (" : "", where, recovered ? ")" : "");
    return 0;
}

/* Whether this build draws figures (a build without cairo does not). */
static bool can_plot(const char *path)
{
    ds_figure *f = ds_figure_create(1, 1, 200, 200);
    bool ok = f && ds_figure_save_png(f, path) == DS_OK;
    ds_figure_free(f);
    remove(path);
    return ok;
}

/* Inputs, and the outputs of the run without failures. */
static int env_setup(oom_env *E, char *msg, size_t cap)
{
    snprintf(E->in_dir, sizeof E->in_dir, "/tmp/deepsky_oom_in_XXXXXX");
    /* outputs in memory where the system has a tmpfs there: every file written is synced to
     * disk, which on /tmp took two thirds of the test's time */
    snprintf(E->out_dir, sizeof E->out_dir, "/dev/shm/deepsky_oom_out_XXXXXX");
    bool made = mkdtemp(E->out_dir) != NULL;
    if (!made) {
        snprintf(E->out_dir, sizeof E->out_dir, "/tmp/deepsky_oom_out_XXXXXX");
        made = mkdtemp(E->out_dir) != NULL;
    }
    if (!made || !mkdtemp(E->in_dir))
        return snprintf(msg, cap, "mkdtemp failed"), 1;
    path_in(E->out_dir, "fit.safetensors", E->fit_path, sizeof E->fit_path);
    path_in(E->out_dir, "log.csv", E->log_path, sizeof E->log_path);
    path_in(E->out_dir, "w.safetensors", E->w_path, sizeof E->w_path);
    path_in(E->out_dir, "curve.png", E->curve_path, sizeof E->curve_path);
    path_in(E->in_dir, "oom.model", E->model_path, sizeof E->model_path);
    path_in(E->in_dir, "x.npy", E->npy_path, sizeof E->npy_path);
    path_in(E->in_dir, "t.csv", E->csv_path, sizeof E->csv_path);
    path_in(E->in_dir, "w.safetensors", E->weights_path, sizeof E->weights_path);
    E->no = (ds_net_opts){.batch = NSAMP, .seed = 7, .labels = DS_LABELS_INDEX};
    E->fo = (ds_fit_opts){.epochs = 1, .batch_size = NSAMP, .seed = 5, .out_path = E->fit_path,
                          .log_csv = E->log_path, .curve_png = E->curve_path};
    if (!can_plot(E->curve_path))
        E->fo.curve_png = NULL;   /* a build without plotting */
    E->x = ds_tensor_create(4, (int64_t[]){NSAMP, 1, 8, 8});
    E->y = ds_tensor_create(1, (int64_t[]){NSAMP});
    E->reg = ds_tensor_create(2, (int64_t[]){NSAMP, 1});
    E->bin = ds_tensor_create(2, (int64_t[]){NSAMP, 1});
    if (!E->x || !E->y || !E->reg || !E->bin)
        return snprintf(msg, cap, "%s", ds_last_error()), 1;
    ds_rng rng;
    ds_rng_seed(&rng, 11);
    fill_uniform(ds_tensor_data(E->x), ds_tensor_numel(E->x), -1, 1, &rng);
    for (int i = 0; i < NSAMP; i++) {
        ds_tensor_data(E->y)[i] = (float)(i % 3);
        ds_tensor_data(E->reg)[i] = 0.5f * (float)i - 1;
        ds_tensor_data(E->bin)[i] = (float)(i & 1);
    }
    FILE *f = fopen(E->model_path, "w");
    if (!f || fputs(model_text, f) < 0 || fclose(f) != 0)
        return snprintf(msg, cap, "cannot write %s", E->model_path), 1;
    if (ds_npy_save(E->x, E->npy_path))
        return snprintf(msg, cap, "%s", ds_last_error()), 1;
    E->tab = ds_tensor_create(2, (int64_t[]){5, 3});
    E->tab_ca = ds_tensor_create(2, (int64_t[]){5, 2});
    if (!E->tab || !E->tab_ca)
        return snprintf(msg, cap, "%s", ds_last_error()), 1;
    float *t = ds_tensor_data(E->tab), *tca = ds_tensor_data(E->tab_ca);
    for (int i = 0; i < 15; i++)
        t[i] = (float)(i * i) / 8 - 3;
    for (int i = 0; i < 5; i++) {
        tca[2 * i] = t[3 * i + 2];
        tca[2 * i + 1] = t[3 * i];
    }
    if (ds_array_save(E->tab, E->csv_path, (const char *const[]){"a", "b", "c"}))
        return snprintf(msg, cap, "%s", ds_last_error()), 1;
    ds_net *n = NULL;
    if (ds_net_load(E->model_path, &E->no, &n))
        return snprintf(msg, cap, "%s", ds_last_error()), 1;
    size_t bytes = (size_t)ds_model_block_len(ds_net_model(n), 0) * sizeof(float);
    if ((E->init_weights = malloc(bytes)))
        memcpy(E->init_weights, ds_model_data(ds_net_model(n)), bytes);
    ds_net_free(n);
    if (!E->init_weights)
        return snprintf(msg, cap, "out of memory"), 1;
    run r = {0};
    clear_dir(E->out_dir);
    scenario_train(E, &r, true);
    if (r.stopped || r.why[0] || !E->ref_weights)
        return snprintf(msg, cap, "the run without failures: %s %s %s",
                        r.stopped ? r.stopped : "", r.why, r.stop_msg), 1;
    char p[512];
    for (int k = 0; k < NOUT - !E->fo.curve_png; k++)
        if (!(E->ref[k] = read_all(path_in(E->out_dir, out_names[k], p, sizeof p), &E->ref_n[k])))
            return snprintf(msg, cap, "the run without failures wrote no %s", p), 1;
    if (ds_safetensors_load(path_in(E->out_dir, "fit.ckpt.safetensors", p, sizeof p),
                            &E->ref_ckpt))
        return snprintf(msg, cap, "%s", ds_last_error()), 1;
    scenario_use(E, &r, &E->ref_use);
    if (!r.stopped && !r.why[0])
        scenario_sim(E, &r, &E->ref_sim);
    if (r.stopped || r.why[0])
        return snprintf(msg, cap, "the run without failures: %s %s %s",
                        r.stopped ? r.stopped : "", r.why, r.stop_msg), 1;
    f = fopen(E->weights_path, "wb");
    int k = 4;   /* w.safetensors */
    if (!f || fwrite(E->ref[k], 1, E->ref_n[k], f) != E->ref_n[k] || fclose(f) != 0)
        return snprintf(msg, cap, "cannot write %s", E->weights_path), 1;
    return 0;
}

static void env_free(oom_env *E)
{
    ds_tensor_free(E->x);
    ds_tensor_free(E->y);
    ds_tensor_free(E->reg);
    ds_tensor_free(E->bin);
    ds_tensor_free(E->tab);
    ds_tensor_free(E->tab_ca);
    for (int k = 0; k < NOUT; k++)
        free(E->ref[k]);
    free(E->ref_weights);
    free(E->init_weights);
    ds_tensor_set_free(E->ref_ckpt);
    if (E->in_dir[0]) {
        clear_dir(E->in_dir);
        rmdir(E->in_dir);
    }
    if (E->out_dir[0]) {
        clear_dir(E->out_dir);
        rmdir(E->out_dir);
    }
}

/* Whether the allocator is wrapped: a malloc by this thread during a scenario is tracked. */
static bool wrapped(void)
{
    void *(*volatile alloc)(size_t) = malloc;   /* a call the compiler cannot elide */
    void (*volatile release)(void *) = free;
    scenario_begin(0, false);
    void *p = alloc(16);
    bool seen = n_live == 1;
    release(p);
    scenario_end();
    return seen;
}

TEST(oom_every_allocation_of_a_cnn_fails_cleanly)
{
    if (!wrapped())
        SKIP("the test binary is not linked with -Wl,--wrap=malloc,... (WRAP_ALLOC)");
    const char *tr = getenv("DEEPSKY_OOM_TRACE");
    ws.trace_at = tr ? atol(tr) : 0;
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    oom_env E = {0};
    msg_[0] = 0;
    int bad = env_setup(&E, msg_, cap_) ||
              sweep(&E, scenario_train1, "parse, plan, step, fit, save", msg_, cap_) ||
              sweep(&E, scenario_load, "load model, weights, npy, csv", msg_, cap_) ||
              sweep(&E, scenario_use1, "predict, evaluate, grad, summary", msg_, cap_) ||
              sweep(&E, scenario_sim1, "simulate, measure shears", msg_, cap_);
    env_free(&E);
    ds_set_num_threads(threads);
    return bad ? TEST_FAIL : TEST_PASS;
}

/* Without any allocation failing: weights whose preprocessing record is broken (standardize
 * without its statistics) are refused, and the net keeps its weights and its preprocessing
 * (it used to take the weights and a standardization without statistics, which preprocess
 * then read through a NULL pointer). */
TEST(failed_weights_load_leaves_the_net_as_it_was)
{
    char dir[] = "/tmp/deepsky_oom_w_XXXXXX", path[64], why[256];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    ds_net *a = NULL, *b = NULL;
    ds_net_opts oa = {.batch = 2, .seed = 1}, ob = {.batch = 2, .seed = 2};
    ds_tensor_set *s = ds_tensor_set_create();
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){2, 1, 8, 8});
    ds_status st = !s || !x ? DS_ERR_NOMEM : DS_OK;
    if (!st && !(st = ds_net_parse(model_text, "a.model", &oa, &a)) &&
        !(st = ds_net_parse(model_text, "b.model", &ob, &b)) &&
        !(st = ds_model_to_set(ds_net_model(b), s)) &&
        !(st = ds_tensor_set_meta_set(s, "deepsky.scale", "standardize")))
        st = ds_safetensors_save(s, path);
    snprintf(why, sizeof why, "%s", ds_last_error());
    ds_tensor_set_free(s);
    ds_model *m = a ? ds_net_model(a) : NULL;
    size_t bytes = m ? (size_t)ds_model_block_len(m, 0) * sizeof(float) : 0;
    float *before = malloc(bytes ? bytes : 1);
    if (!st && before) {
        memcpy(before, ds_model_data(m), bytes);
        st = ds_net_load_weights(a, path);
        snprintf(why, sizeof why, "%s", ds_last_error());
    }
    int same = before && m && !memcmp(before, ds_model_data(m), bytes);
    ds_scale_kind kind = a ? ds_net_scaling(a) : DS_SCALE_NONE;
    /* preprocess reads the standardization's statistics: only safe when none was taken */
    ds_status pst = kind == DS_SCALE_NONE && a ? ds_net_preprocess(a, x) : DS_ERR_STATE;
    free(before);
    ds_tensor_free(x);
    ds_net_free(a);
    ds_net_free(b);
    remove(path);
    rmdir(dir);
    if (st != DS_ERR_FORMAT || !strstr(why, "standardization statistics"))
        FAIL("loading gave %s: %s", ds_status_name(st), why);
    if (!same || kind != DS_SCALE_NONE || pst != DS_OK)
        FAIL("the failed load changed the net: weights %s, preprocessing %d",
             same ? "kept" : "changed", (int)kind);
    return TEST_PASS;
}
