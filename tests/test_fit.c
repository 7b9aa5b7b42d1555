/* test_fit.c - the training loop and non-finite values: an Inf gradient behind a finite loss
 * stops training with a message naming the epoch, the batch and the parameter, leaving the
 * weights finite; with skip_nonfinite the step is skipped instead. */
#include "test.h"

#include <float.h>
#include <stdbool.h>

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
