/* test_fit_repeat.c - training with repeated rows and fresh noise (ds_fit_opts.repeat,
 * augment_noise): repeats with loss msb and no noise train exactly as MSE on distinct rows,
 * the noise is fresh per row, epoch and repeat with the requested spread, the same at any
 * thread count, and bad settings are refused with clear errors. */
#include "test.h"

#include <math.h>

static const char *const msb_net =
    "input shape=6\n"
    "dense units=8 activation=tanh\n"
    "dense units=2\n"
    "loss msb group=4 unbiased=true\n"
    "optimizer adam lr=1e-2\n";
static const char *const mse_net =
    "input shape=6\n"
    "dense units=8 activation=tanh\n"
    "dense units=2\n"
    "loss mse\n"
    "optimizer adam lr=1e-2\n";

static void make_data(ds_tensor **x, ds_tensor **y)
{
    *x = ds_tensor_create(2, (int64_t[]){40, 6});
    *y = ds_tensor_create(2, (int64_t[]){40, 2});
    ds_rng r;
    ds_rng_seed(&r, 3);
    fill_uniform(ds_tensor_data(*x), 240, -1, 1, &r);
    fill_uniform(ds_tensor_data(*y), 80, -1, 1, &r);
}

/* Trains text on (x, y) with o and batch size b; returns the weights (malloc'd, *n). */
static float *train(const char *text, const ds_tensor *x, const ds_tensor *y, ds_fit_opts o,
                    int64_t *n, ds_status *st)
{
    ds_net *net;
    *st = ds_net_parse(text, "rep.model", &(ds_net_opts){.batch = o.batch_size, .seed = 5}, &net);
    if (*st)
        return NULL;
    *st = ds_net_fit(net, x, y, NULL, NULL, &o, NULL);
    ds_model *m = ds_net_model(net);
    *n = ds_model_numel(m, 0);
    float *w = malloc((size_t)*n * sizeof *w), *d = w;
    for (int i = 0; w && i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        memcpy(d, ds_param_data(p), (size_t)ds_param_numel(p) * sizeof *d);
        d += ds_param_numel(p);
    }
    ds_net_free(net);
    return w;
}

/* Without noise, the 4 repeats of a sample are equal: their spread is 0 and their mean
 * error is the error, so msb over groups of 4 on batches of 16 rows trains as MSE on
 * batches of the 4 distinct samples, step for step. */
TEST(fit_repeat_msb_without_noise_is_mse)
{
    ds_tensor *x, *y;
    make_data(&x, &y);
    int64_t na, nb;
    ds_status sa, sb;
    float *a = train(msb_net, x, y, (ds_fit_opts){.epochs = 3, .batch_size = 16, .repeat = 4,
                                                   .seed = 9}, &na, &sa);
    float *b = train(mse_net, x, y, (ds_fit_opts){.epochs = 3, .batch_size = 4, .seed = 9},
                     &nb, &sb);
    CHECK(sa == DS_OK && sb == DS_OK && a && b && na == nb);
    double worst = 0, moved = 0;
    ds_net *fresh;
    CHECK(ds_net_parse(mse_net, "rep.model", &(ds_net_opts){.batch = 4, .seed = 5}, &fresh) == 0);
    const float *w0 = ds_param_data(ds_model_param(ds_net_model(fresh), 0));
    for (int64_t i = 0; i < na; i++)
        worst = fmax(worst, fabs(a[i] - b[i]));
    for (int64_t i = 0; i < 48; i++)
        moved = fmax(moved, fabs(a[i] - w0[i]));
    ds_net_free(fresh);
    free(a);
    free(b);
    ds_tensor_free(x);
    ds_tensor_free(y);
    if (!(worst < 1e-5 && moved > 1e-2))
        FAIL("largest weight difference %g (limit 1e-5), largest move from the start %g", worst,
             moved);
    snprintf(msg_, cap_, "largest difference %.2g after 30 steps (weights moved %.2g)", worst,
             moved);
    return TEST_PASS;
}

/* The inputs of every step, copied by the gradient hook. */
typedef struct {
    ds_net *net;
    float *seen;
    int64_t cap, n;
} spy;

static ds_status copy_inputs(void *ctx, const ds_step_info *s)
{
    spy *sp = ctx;
    ds_node *in = ds_net_input_at(s->net, 0);
    int64_t k = ds_node_numel(in);
    if (sp->n + k <= sp->cap)
        memcpy(sp->seen + sp->n, ds_node_data(in), (size_t)k * sizeof(float));
    sp->n += k;
    return DS_OK;
}

/* Trains with noise sigma on all-zero inputs: what the steps see is the noise alone. */
static int noise_run(int threads, float *seen, int64_t cap, char *msg, size_t mcap)
{
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){40, 6});
    ds_tensor *y0 = ds_tensor_create(2, (int64_t[]){40, 2});
    memset(ds_tensor_data(x), 0, 240 * sizeof(float));
    memset(ds_tensor_data(y0), 0, 80 * sizeof(float));
    ds_net *net;
    int rc = 1;
    int keep = ds_get_num_threads();
    ds_set_num_threads(threads);
    spy sp = {.seen = seen, .cap = cap};
    ds_fit_opts o = {.epochs = 2, .batch_size = 16, .repeat = 4, .seed = 4,
                     .augment_noise = 0.5, .grad_hook = copy_inputs, .grad_ctx = &sp};
    if (ds_net_parse(msb_net, "rep.model", &(ds_net_opts){.batch = 16, .seed = 5}, &net) ||
        ds_net_fit(net, x, y0, NULL, NULL, &o, NULL))
        snprintf(msg, mcap, "%s", ds_last_error());
    else if (sp.n != cap)
        snprintf(msg, mcap, "the steps saw %lld values, expected %lld", (long long)sp.n,
                 (long long)cap);
    else
        rc = 0;
    ds_set_num_threads(keep);
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y0);
    return rc;
}

TEST(fit_noise_is_fresh_and_thread_independent)
{
    const int64_t cap = 2 * 160 * 6;   /* 2 epochs of 40 samples x 4 repeats x 6 features */
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    CHECK(a && b);
    CHECK_OK(noise_run(1, a, cap, msg_, cap_));
    CHECK_OK(noise_run(2, b, cap, msg_, cap_));
    CHECK(memcmp(a, b, cap * sizeof *a) == 0);
    double s = 0, q = 0;
    for (int64_t i = 0; i < cap; i++)
        s += a[i], q += (double)a[i] * a[i];
    double mean = s / cap, sd = sqrt(q / cap - mean * mean);
    /* 1920 draws: the mean's error is 0.5 / sqrt(1920) = 0.011, the sd's 0.008 */
    CHECK(fabs(mean) < 0.05 && fabs(sd - 0.5) < 0.04);
    /* the repeats of a sample differ, and so do the epochs */
    int same = 0;
    for (int64_t r = 0; r + 1 < 320; r++)
        same += !memcmp(a + r * 6, a + (r + 1) * 6, 6 * sizeof *a);
    for (int64_t r = 0; r < 160; r++)
        same += !memcmp(a + r * 6, a + (160 + r) * 6, 6 * sizeof *a);
    CHECK(same == 0);
    free(a);
    free(b);
    snprintf(msg_, cap_, "noise mean %.3f, sd %.3f (want 0.5), 1 and 2 threads identical", mean,
             sd);
    return TEST_PASS;
}

TEST(fit_repeat_errors)
{
    ds_tensor *x, *y;
    make_data(&x, &y);
    ds_net *net;
    CHECK(ds_net_parse(msb_net, "rep.model", &(ds_net_opts){.batch = 16}, &net) == DS_OK);
    static const struct { ds_fit_opts o; const char *want; } c[] = {
        {{.batch_size = 10, .repeat = 4}, "batch size 10 is not a multiple of repeat=4"},
        {{.batch_size = 16, .repeat = -1}, "repeat: -1 rows per sample"},
        {{.batch_size = 16, .augment_noise = -1}, "augment_noise: standard deviation -1"},
        {{.batch_size = 16, .augment_noise = 1, .noise_input = "psf"},
         "noise_input: no input named 'psf'"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ds_status st = ds_net_fit(net, x, y, NULL, NULL, &c[i].o, NULL);
        if (st != DS_ERR_ARG || !strstr(ds_last_error(), c[i].want))
            FAIL("case %zu: %s: '%s'", i, ds_status_name(st), ds_last_error());
    }
    /* validation that splits a group: the shape rule names it */
    ds_tensor *xv = ds_tensor_create(2, (int64_t[]){6, 6}), *yv = ds_tensor_create(2, (int64_t[]){6, 2});
    memset(ds_tensor_data(xv), 0, 36 * sizeof(float));
    memset(ds_tensor_data(yv), 0, 12 * sizeof(float));
    ds_status st = ds_net_fit(net, x, y, xv, yv, &(ds_fit_opts){.epochs = 1, .batch_size = 16,
                                                                .repeat = 4}, NULL);
    CHECK(st == DS_ERR_SHAPE && strstr(ds_last_error(), "not whole groups of group=4"));
    ds_tensor_free(xv);
    ds_tensor_free(yv);
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return TEST_PASS;
}

/* ---- the command line: --repeat and --augment noise:S[:INPUT] ---- */
#include "spawn.h"

#include <stdlib.h>

TEST(cli_train_repeat_and_noise)
{
    char dir[] = "/tmp/deepsky_repeat_XXXXXX", cmd[2048], out[8192], p[4][320];
    CHECK(mkdtemp(dir));
    ds_tensor *x, *y;
    make_data(&x, &y);
    snprintf(p[0], sizeof p[0], "%s/x.npy", dir);
    snprintf(p[1], sizeof p[1], "%s/y.npy", dir);
    snprintf(p[2], sizeof p[2], "%s/m.model", dir);
    snprintf(p[3], sizeof p[3], "%s/w.safetensors", dir);
    FILE *f = fopen(p[2], "w");
    CHECK(f && fputs(msb_net, f) >= 0 && fclose(f) == 0);
    CHECK(ds_npy_save(x, p[0]) == DS_OK && ds_npy_save(y, p[1]) == DS_OK);
    ds_tensor_free(x);
    ds_tensor_free(y);
    static const struct { const char *flags; int status; const char *want; } c[] = {
        {"--repeat 4 --batch-size 16 --augment noise:0.3", 0, "epoch 2/2"},
        {"--repeat 4 --batch-size 16 --augment noise:0.3:input_1", 0, "epoch 2/2"},
        {"--repeat 4 --batch-size 10", 1, "10 rows are not whole groups of group=4"},
        {"--repeat 0", 2, "--repeat"},
        {"--augment noise:0", 2, "noise:S[:INPUT] takes a standard deviation S > 0"},
        {"--augment noise:x", 2, "'noise:x'"},
        {"--repeat 4 --batch-size 16 --augment noise:1:psf", 1,
         "no input named 'psf' (the inputs: 'input_1')"},
    };
    int rc = TEST_PASS;
    for (size_t i = 0; i < sizeof c / sizeof c[0] && rc == TEST_PASS; i++) {
        snprintf(cmd, sizeof cmd, "exec '%s' train '%s' --data '%s' --labels '%s' -o '%s' "
                 "--epochs 2 %s 2>&1", cli_bin(), p[2], p[0], p[1], p[3], c[i].flags);
        int st = cli_run_sh(cmd, NULL, out, sizeof out);
        if (st != c[i].status || !strstr(out, c[i].want)) {
            snprintf(msg_, cap_, "%s: status %d (want %d), output:\n%s", c[i].flags, st,
                     c[i].status, out);
            rc = TEST_FAIL;
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = TEST_FAIL;
    return rc;
}
