/* test_fit.c - the training loop and non-finite values: an Inf gradient behind a finite loss
 * stops training with a message naming the epoch, the batch and the parameter, leaving the
 * weights as they were; with skip_nonfinite the step is skipped instead; a run that diverges
 * after some epochs keeps, bit for bit, the weights from before the failing step in memory and
 * those of its last good epoch in its files. */
#include "test.h"

#include <float.h>
#include <stdbool.h>
#include <unistd.h>

/* A zero-initialized convolution on inputs near FLT_MAX computes zeros, so the loss is
 * finite, but its weight gradient (input times output gradient) overflows to Inf. */
static const char *const l2net =
    "input shape=1x8x8\n"
    "conv2d filters=2 kernel=3 padding=same init=zeros bias_init=zeros\n"
    "flatten\n"
    "dense units=1\n"
    "loss mse\n"
    "optimizer sgd lr=0.1\n";

/* Every parameter of m, one after the other, into dst (ds_model_numel(m, 0) values; the
 * model's own block may hold padding between parameters). */
static void gather_params(ds_model *m, float *dst)
{
    for (int i = 0; i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        memcpy(dst, ds_param_data(p), (size_t)ds_param_numel(p) * sizeof(float));
        dst += ds_param_numel(p);
    }
}

/* Trains l2net for 2 epochs; *finite: its weights are finite after; *unchanged: they are,
 * bit for bit, those it started with. */
static int fit_l2net(bool skip, ds_status *st, ds_fit_result *res, int *finite, int *unchanged,
                     char *err, size_t cap)
{
    ds_net *net = NULL;
    ds_net_opts no = {.batch = 4, .seed = 1};
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){12, 1, 8, 8});
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){12, 1});
    if (!x || !y || ds_net_parse(l2net, "l2.model", &no, &net) != DS_OK) {
        ds_tensor_free(x);
        ds_tensor_free(y);
        return 0;
    }
    for (int64_t i = 0; i < ds_tensor_numel(x); i++)
        ds_tensor_data(x)[i] = FLT_MAX / 2;
    for (int64_t i = 0; i < ds_tensor_numel(y); i++)
        ds_tensor_data(y)[i] = 1000;
    ds_model *m = ds_net_model(net);
    size_t bytes = (size_t)ds_model_numel(m, 0) * sizeof(float);
    float *w0 = malloc(bytes), *w1 = malloc(bytes);
    if (!w0 || !w1) {
        free(w0);
        free(w1);
        ds_net_free(net);
        ds_tensor_free(x);
        ds_tensor_free(y);
        return 0;
    }
    gather_params(m, w0);
    ds_fit_opts fo = {.epochs = 2, .batch_size = 4, .seed = 3, .skip_nonfinite = skip};
    *st = ds_net_fit(net, x, y, NULL, NULL, &fo, res);
    snprintf(err, cap, "%s", ds_last_error());
    gather_params(m, w1);
    *unchanged = !memcmp(w0, w1, bytes);
    free(w0);
    free(w1);
    const float *w = ds_model_data(m);
    *finite = 1;
    for (int64_t i = 0; i < ds_model_block_len(m, 0); i++)
        *finite &= isfinite(w[i]) != 0;
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return 1;
}

TEST(fit_stops_on_a_nonfinite_gradient_naming_the_parameter)
{
    ds_status st;
    ds_fit_result res;
    int finite, unchanged;
    char err[512];
    CHECK(fit_l2net(false, &st, &res, &finite, &unchanged, err, sizeof err));
    if (st != DS_ERR_VALUE || !strstr(err, "conv2d_1.weight") || !strstr(err, "epoch 1") ||
        !strstr(err, "batch 1"))
        FAIL("got %s: '%s'", ds_status_name(st), err);
    CHECK(finite);
    CHECK(unchanged);   /* the first step failed: no update */
    snprintf(msg_, cap_, "%s", err);
    return TEST_PASS;
}

TEST(fit_skips_nonfinite_steps_when_asked)
{
    ds_status st;
    ds_fit_result res;
    int finite, unchanged;
    char err[512];
    CHECK(fit_l2net(true, &st, &res, &finite, &unchanged, err, sizeof err));
    CHECK(st == DS_OK);
    CHECK(res.skipped_steps == 6);   /* 3 batches in each of 2 epochs */
    CHECK(finite);
    CHECK(unchanged);   /* every step was skipped */
    return TEST_PASS;
}

/* The weights as the progress callback saw them: after the last step taken, at the end of
 * the last complete epoch, and at the end of the last epoch that improved (the best). */
typedef struct {
    ds_model *m;
    float *last, *epoch_end, *best;
    int steps, last_epoch, last_batch, epochs_done, best_epoch;
} watch;

static void on_progress(void *ctx, const ds_progress *p)
{
    watch *w = ctx;
    gather_params(w->m, w->last);
    if (!p->end_of_epoch) {
        w->steps++;
        w->last_epoch = p->epoch;
        w->last_batch = (int)p->batch;
        return;
    }
    gather_params(w->m, w->epoch_end);
    w->epochs_done = p->epoch;
    if (p->improved) {
        gather_params(w->m, w->best);
        w->best_epoch = p->epoch;
    }
}

/* Whether every parameter of m in the file at path equals, bit for bit, its value in want
 * (as gather_params lays them out). 0, or 1 with msg set. */
static int file_holds(ds_model *m, const float *want, const char *path, char *msg, size_t cap)
{
    ds_tensor_set *s = NULL;
    if (ds_safetensors_load(path, &s) != DS_OK) {
        snprintf(msg, cap, "%s does not load after the stop: %s", path, ds_last_error());
        return 1;
    }
    for (int i = 0; i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        ds_tensor *t = ds_tensor_set_get(s, ds_param_name(p));
        if (!t || ds_tensor_numel(t) != ds_param_numel(p) ||
            memcmp(ds_tensor_data(t), want, (size_t)ds_param_numel(p) * sizeof(float))) {
            snprintf(msg, cap, "%s: '%s' differs from the weights expected", path, ds_param_name(p));
            ds_tensor_set_free(s);
            return 1;
        }
        want += ds_param_numel(p);
    }
    ds_tensor_set_free(s);
    return 0;
}

/* Plain SGD with a learning rate past the stable limit diverges: the weights grow about
 * 6000-fold per epoch until the loss overflows, some epochs in. Training then stops before
 * the update: the weights in memory are, bit for bit, those after the last step taken (seen
 * through the progress callback); the weights and checkpoint files hold, bit for bit, those
 * of the last complete epoch, the best file those of the last epoch that improved; they all
 * load, their optimizer state is finite, and the checkpoint says the epoch before. */
TEST(fit_nonfinite_stop_keeps_the_last_good_files)
{
    static const char *const net_text = "input shape=4\ndense units=1\nloss mse\noptimizer sgd lr=1.5\n";
    char dir[] = "/tmp/deepsky-fit-XXXXXX";
    CHECK(mkdtemp(dir));
    char out[128], best[128], ckpt[128];
    snprintf(out, sizeof out, "%s/w.safetensors", dir);
    snprintf(best, sizeof best, "%s/w.best.safetensors", dir);
    snprintf(ckpt, sizeof ckpt, "%s/w.ckpt.safetensors", dir);
    ds_net *net = NULL;
    ds_net_opts no = {.batch = 8, .seed = 1};
    CHECK(ds_net_parse(net_text, "diverge.model", &no, &net) == DS_OK);
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){64, 4});
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){64, 1});
    CHECK(x && y);
    ds_rng r;
    ds_rng_seed(&r, 5);
    fill_uniform(ds_tensor_data(x), 64 * 4, -2, 2, &r);
    fill_uniform(ds_tensor_data(y), 64, -1, 1, &r);
    watch w = {.m = ds_net_model(net)};
    size_t bytes = (size_t)ds_model_numel(w.m, 0) * sizeof(float);
    float *now = malloc(bytes);
    w.last = malloc(bytes);
    w.epoch_end = malloc(bytes);
    w.best = malloc(bytes);
    CHECK(now && w.last && w.epoch_end && w.best);
    ds_fit_opts fo = {.epochs = 100, .batch_size = 8, .seed = 2, .out_path = out,
                      .progress = on_progress, .ctx = &w};
    ds_fit_result res;
    ds_status st = ds_net_fit(net, x, y, NULL, NULL, &fo, &res);
    char err[512];
    snprintf(err, sizeof err, "%s", ds_last_error());
    int epoch = 0, batch = 0;
    const char *e = strstr(err, "epoch ");
    if (e)
        epoch = atoi(e + 6);
    e = strstr(err, "batch ");
    if (e)
        batch = atoi(e + 6);
    gather_params(w.m, now);
    int same_mem = !memcmp(now, w.last, bytes);
    int rc = TEST_PASS;
    /* the last step taken is the one before the failing step (epoch, batch) */
    if (st != DS_ERR_VALUE || epoch < 3 || batch < 1)
        snprintf(msg_, cap_, "expected a stop after some epochs, got %s: '%s'",
                 ds_status_name(st), err), rc = TEST_FAIL;
    else if (w.epochs_done != epoch - 1 || (batch > 1 ? w.last_epoch != epoch ||
                                            w.last_batch != batch - 1 : w.last_epoch != epoch - 1))
        snprintf(msg_, cap_, "stop at epoch %d batch %d, but the last step reported was epoch %d "
                 "batch %d, the last epoch %d", epoch, batch, w.last_epoch, w.last_batch,
                 w.epochs_done), rc = TEST_FAIL;
    else if (!same_mem)
        snprintf(msg_, cap_, "the weights in memory differ from those after the last step "
                 "(epoch %d, batch %d)", w.last_epoch, w.last_batch), rc = TEST_FAIL;
    else if (file_holds(w.m, w.epoch_end, out, msg_, cap_) ||
             file_holds(w.m, w.epoch_end, ckpt, msg_, cap_) ||
             file_holds(w.m, w.best, best, msg_, cap_))
        rc = TEST_FAIL;
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y);
    free(now);
    free(w.last);
    free(w.epoch_end);
    free(w.best);
    if (rc != TEST_PASS)
        return rc;
    const char *paths[3] = {out, best, ckpt};
    for (int k = 0; k < 3; k++) {
        ds_tensor_set *s = NULL;
        if (ds_safetensors_load(paths[k], &s) != DS_OK)
            FAIL("%s does not load after the stop: %s", paths[k], ds_last_error());
        for (int i = 0; i < ds_tensor_set_count(s); i++) {
            ds_tensor *t = ds_tensor_set_at(s, i);
            /* weights and optimizer state; the history marks missing values with NaN */
            if (strncmp(ds_tensor_set_name(s, i), "fit.", 4) &&
                ds_tensor_check_finite(t, ds_tensor_set_name(s, i)) != DS_OK) {
                ds_tensor_set_free(s);
                FAIL("%s: %s", paths[k], ds_last_error());
            }
        }
        ds_tensor *state = ds_tensor_set_get(s, "fit.state");
        int saved = state ? (int)ds_tensor_data(state)[0] : -1;
        ds_tensor_set_free(s);
        if (k == 2 && saved != epoch - 1)
            FAIL("the checkpoint holds epoch %d; the stop came in epoch %d", saved, epoch);
        remove(paths[k]);
    }
    rmdir(dir);
    snprintf(msg_, cap_, "stopped in epoch %d, batch %d, after %d steps (%.40s...): the "
             "weights in memory are those after the step before, the files those of epoch %d "
             "(best: %d), bit for bit", epoch, batch, w.steps, err, epoch - 1, w.best_epoch);
    return TEST_PASS;
}

/* A cosine schedule without t_max spans the run: 3 epochs of 10 samples in steps of 4
 * (batch 2, accumulate 2) are 9 steps, so the weights equal those of t_max=9, differ from
 * those of t_max=90, and the net's settings keep t_max 0 for its next run. */
static int train_cosine(const char *tmax, float *w)
{
    char text[512];
    snprintf(text, sizeof text, "input shape=3\ndense units=2\nloss mse\n"
             "optimizer sgd lr=0.5 schedule=cosine %s\n", tmax);
    ds_net *net = NULL;
    ds_net_opts no = {.batch = 2, .seed = 4};
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){10, 3});
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){10, 2});
    int ok = x && y && ds_net_parse(text, "cos.model", &no, &net) == DS_OK;
    for (int64_t i = 0; ok && i < 30; i++)
        ds_tensor_data(x)[i] = (float)((i * 37) % 11) / 11.0f;
    for (int64_t i = 0; ok && i < 20; i++)
        ds_tensor_data(y)[i] = (float)((i * 5) % 7) / 7.0f;
    ds_fit_opts fo = {.epochs = 3, .batch_size = 2, .accumulate = 2, .no_shuffle = 1};
    ds_fit_result r;
    ok = ok && ds_net_fit(net, x, y, NULL, NULL, &fo, &r) == DS_OK;
    if (ok)
        gather_params(ds_net_model(net), w);
    ok = ok && ds_net_optim_opts(net)->schedule.t_max == (*tmax ? atoll(tmax + 6) : 0);
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return ok;
}

TEST(fit_cosine_without_t_max_spans_the_run)
{
    float a[8], b[8], c[8];
    CHECK(train_cosine("", a) && train_cosine("t_max=9", b) && train_cosine("t_max=90", c));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    return TEST_PASS;
}
