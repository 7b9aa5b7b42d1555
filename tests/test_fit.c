/* test_fit.c - the training loop and non-finite values: an Inf gradient behind a finite loss
 * stops training with a message naming the epoch, the batch and the parameter, leaving the
 * weights finite; with skip_nonfinite the step is skipped instead; a run that diverges after
 * some epochs leaves the files of its last good epoch intact. */
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

static int fit_l2net(bool skip, ds_status *st, ds_fit_result *res, int *finite, char *err,
                     size_t cap)
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
    ds_fit_opts fo = {.epochs = 2, .batch_size = 4, .seed = 3, .skip_nonfinite = skip};
    *st = ds_net_fit(net, x, y, NULL, NULL, &fo, res);
    snprintf(err, cap, "%s", ds_last_error());
    ds_model *m = ds_net_model(net);
    const float *w = ds_model_data(m);
    *finite = 1;
    for (int64_t i = 0; i < ds_model_numel(m, 0); i++)
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
    int finite;
    char err[512];
    CHECK(fit_l2net(false, &st, &res, &finite, err, sizeof err));
    if (st != DS_ERR_VALUE || !strstr(err, "conv2d_1.weight") || !strstr(err, "epoch 1") ||
        !strstr(err, "batch 1"))
        FAIL("got %s: '%s'", ds_status_name(st), err);
    CHECK(finite);
    snprintf(msg_, cap_, "%s", err);
    return TEST_PASS;
}

TEST(fit_skips_nonfinite_steps_when_asked)
{
    ds_status st;
    ds_fit_result res;
    int finite;
    char err[512];
    CHECK(fit_l2net(true, &st, &res, &finite, err, sizeof err));
    CHECK(st == DS_OK);
    CHECK(res.skipped_steps == 6);   /* 3 batches in each of 2 epochs */
    CHECK(finite);
    return TEST_PASS;
}

/* Plain SGD with a learning rate past the stable limit diverges: the weights grow about
 * 6000-fold per epoch until the loss overflows, some epochs in. Training then stops, and
 * the weights, best and checkpoint files written after the last good epoch stay as they
 * were: they load, their weights and optimizer state are finite, and the checkpoint says
 * the epoch before. */
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
    ds_fit_opts fo = {.epochs = 100, .batch_size = 8, .seed = 2, .out_path = out};
    ds_fit_result res;
    ds_status st = ds_net_fit(net, x, y, NULL, NULL, &fo, &res);
    char err[512];
    snprintf(err, sizeof err, "%s", ds_last_error());
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y);
    int epoch = 0;
    const char *e = strstr(err, "epoch ");
    if (e)
        epoch = atoi(e + 6);
    if (st != DS_ERR_VALUE || epoch < 3)
        FAIL("expected a stop after some epochs, got %s: '%s'", ds_status_name(st), err);
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
    snprintf(msg_, cap_, "stopped in epoch %d; the epoch-%d files are intact", epoch, epoch - 1);
    return TEST_PASS;
}
