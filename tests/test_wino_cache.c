/* test_wino_cache.c - the Winograd-transformed filters a graph keeps (ds_node.wino_u): an
 * inference plan transforms them once per model version, and after a write through
 * ds_param_data, an optimizer step or ds_net_load_weights_mem its next prediction gives the
 * new weights' result, bit for bit that of a fresh net (which has no cache); a training step
 * transforms them in forward and reuses them in backward, with the gradients of a backward
 * that transforms them anew. */
#include "test.h"
#include "../src/internal.h"

#include <stdbool.h>

/* A Winograd convolution without a batch norm, one with a batch norm folded into it (in an
 * inference plan) and a pooling fused with it, in sub-batches of 2 samples (run in parallel
 * with 2 threads or more). */
enum { IN = 8 * 48 * 48 };   /* input values per sample */
static const char *const net_text =
    "input shape=8x48x48\n"
    "conv2d filters=16 kernel=3 padding=same activation=relu\n"
    "conv2d filters=48 kernel=3 padding=same\nbatchnorm\nrelu\nmaxpool size=2\n"
    "flatten\ndense units=3\nloss mse\n";

static ds_net *make_net(int64_t batch, uint64_t seed)
{
    ds_net *n = NULL;
    ds_net_opts o = {.batch = batch, .seed = seed};
    if (ds_net_parse(net_text, "wino cache net", &o, &n) != DS_OK)
        return NULL;
    ds_rng r;
    ds_rng_seed(&r, seed);
    ds_model *m = ds_net_model(n);
    for (int i = 0; i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        bool var = strstr(ds_param_name(p), "running_var") != NULL;
        fill_uniform(ds_param_data(p), ds_param_numel(p), var ? 0.5f : -0.5f, var ? 2.0f : 0.5f,
                     &r);
    }
    return n;
}

/* The conv nodes of n's graph that keep transformed filters (count of them into *k). */
static int cached_convs(ds_net *n, ds_node **out)
{
    ds_graph *g = ds_net_graph(n);
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == DS_OP_CONV && g->nodes[i]->wino_u)
            out[k++] = g->nodes[i];
    return k;
}

/* One inference-plan forward of n over x; its output copied (malloc'd) or NULL. */
static float *predict(ds_net *n, const float *x)
{
    ds_graph *g = ds_net_graph(n);
    ds_node *in = ds_net_input(n), *out = ds_net_output(n);
    ds_graph_set_mode(g, DS_MODE_INFER);
    if (ds_graph_set_input(g, in, x, ds_node_numel(in)) || ds_graph_forward_to(g, out))
        return NULL;
    float *y = malloc((size_t)ds_node_numel(out) * sizeof *y);
    if (y)
        memcpy(y, ds_node_data(out), (size_t)ds_node_numel(out) * sizeof *y);
    return y;
}

/* What a fresh net with n's weights predicts (no cache yet). */
static float *fresh_predict(ds_net *n, int64_t batch, const float *x)
{
    ds_net *f = make_net(batch, 1);
    if (!f)
        return NULL;
    ds_model *a = ds_net_model(n), *b = ds_net_model(f);
    memcpy(ds_model_data(b), a->data, a->data_n * sizeof(float));
    float *y = predict(f, x);
    ds_net_free(f);
    return y;
}

/* Round 0: a write through ds_param_data into the first conv's weight; 1: the folded conv's
 * running variance; 2: an optimizer step; 3: weights loaded from safetensors bytes. */
static ds_status update(ds_net *n, ds_optim *opt, int round, const void *st, size_t st_len)
{
    ds_model *m = ds_net_model(n);
    if (round == 0) {
        ds_param_data(ds_model_find(m, "conv2d_1.weight"))[5] += 0.25f;
    } else if (round == 1) {
        ds_param_data(ds_model_find(m, "batch_normalization_1.running_var"))[2] *= 3.0f;
    } else if (round == 2) {
        ds_rng r;
        ds_rng_seed(&r, 5);
        fill_uniform(ds_model_grad(m), ds_model_block_len(m, 1), -1.0f, 1.0f, &r);
        return ds_optim_step(opt);
    } else {
        return ds_net_load_weights_mem(n, st, st_len, "weights");
    }
    return DS_OK;
}

TEST(wino_cache_follows_weight_changes_between_predictions)
{
    const int64_t batch = 3;
    ds_net *n = make_net(batch, 7), *src = make_net(batch, 8);
    CHECK(n && src);
    ds_tensor_set *set = ds_tensor_set_create();
    void *bytes = NULL;
    size_t len = 0;
    CHECK(set && ds_model_to_set(ds_net_model(src), set) == DS_OK);
    CHECK(ds_safetensors_save_mem(set, &bytes, &len) == DS_OK);
    ds_optim_opts oo = {.kind = DS_OPT_SGD, .lr = 0.05f};
    ds_optim *opt = ds_optim_create(ds_net_model(n), &oo);
    CHECK(opt);
    ds_rng r;
    ds_rng_seed(&r, 3);
    int64_t nx = batch * IN, k;
    float *x = malloc((size_t)nx * sizeof *x);
    CHECK(x);
    fill_uniform(x, nx, -1.0f, 1.0f, &r);
    float *prev = predict(n, x);
    CHECK(prev);
    k = ds_node_numel(ds_net_output(n));
    ds_node *conv[4];
    CHECK(cached_convs(n, conv) == 2);
    CHECK(conv[1]->fold && !conv[0]->fold && conv[1]->pool && conv[1]->pool_sub == 2);
    uint64_t step0[2] = {conv[0]->wino_stamp->step, conv[1]->wino_stamp->step};
    /* a second prediction with the same weights transforms nothing */
    float *again = predict(n, x);
    CHECK(again && !memcmp(again, prev, (size_t)k * sizeof *again));
    for (int c = 0; c < 2; c++)
        CHECK(conv[c]->wino_stamp->m == 4 && conv[c]->wino_stamp->step == step0[c]);
    free(again);
    int rc = 0;
    for (int round = 0; round < 4 && !rc; round++) {
        CHECK(update(n, opt, round, bytes, len) == DS_OK);
        float *got = predict(n, x), *ref = fresh_predict(n, batch, x);
        CHECK(got && ref);
        bool changed = false;
        for (int64_t i = 0; i < k; i++)
            changed |= got[i] != prev[i];
        int64_t i = 0;
        while (i < k && got[i] == ref[i])
            i++;
        if (!changed)
            rc = snprintf(msg_, cap_, "round %d: the prediction did not change", round) > 0;
        else if (i < k)
            rc = snprintf(msg_, cap_, "round %d: output %lld is %.9g, a fresh net's %.9g",
                          round, (long long)i, got[i], ref[i]) > 0;
        free(prev);
        prev = got;
        free(ref);
    }
    free(prev);
    free(x);
    free(bytes);
    ds_tensor_set_free(set);
    ds_optim_free(opt);
    ds_net_free(n);
    ds_net_free(src);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* One training forward and backward at batch 4 (batch norm on batch statistics, which move
 * the running ones); the parameter gradients copied into grads. With stale set, every
 * cached transform is marked stale between forward and backward, so backward transforms
 * again where it computes dx. Returns 0 or 1 (with msg). */
static int train_pass(ds_net *n, const float *x, const float *t, bool stale, float *grads,
                      char *msg, size_t cap)
{
    ds_graph *g = ds_net_graph(n);
    ds_model *m = ds_net_model(n);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    ds_node *in = ds_net_input(n), *tg = ds_net_target(n), *conv[4];
    ds_model_zero_grad(m);
    if (ds_graph_set_input(g, in, x, ds_node_numel(in)) ||
        ds_graph_set_input(g, tg, t, ds_node_numel(tg)) || ds_graph_forward(g))
        return snprintf(msg, cap, "forward: %s", ds_last_error()) > 0;
    int nc = cached_convs(n, conv);
    if (nc != 2)
        return snprintf(msg, cap, "%d convolutions keep filters (2 expected)", nc) > 0;
    for (int c = 0; c < nc; c++) {
        if (conv[c]->wino_stamp->step + 1 != g->step)
            return snprintf(msg, cap, "conv %d: forward did not transform its filters", c) > 0;
        if (stale)
            conv[c]->wino_stamp->m = 0;
    }
    if (ds_graph_backward(g, ds_net_loss(n)))
        return snprintf(msg, cap, "backward: %s", ds_last_error()) > 0;
    for (int c = 0; c < nc; c++) {   /* the first has no dx to compute: no filters used */
        bool again = stale && conv[c]->in[0]->grad;
        if ((conv[c]->wino_stamp->step == g->step) != again)
            return snprintf(msg, cap, "conv %d: backward %s its filters again", c,
                            again ? "did not transform" : "transformed") > 0;
    }
    memcpy(grads, m->grad, m->grad_n * sizeof *grads);
    return 0;
}

TEST(wino_cache_training_backward_reuses_the_forward_filters)
{
    ds_net *n = make_net(4, 9);
    CHECK(n);
    ds_model *m = ds_net_model(n);
    ds_rng r;
    ds_rng_seed(&r, 4);
    float t[4 * 3], *x = malloc(4 * IN * sizeof *x);
    float *ga = malloc(m->grad_n * sizeof *ga), *gb = malloc(m->grad_n * sizeof *gb);
    CHECK(x && ga && gb);
    fill_uniform(x, 4 * IN, -1.0f, 1.0f, &r);
    fill_uniform(t, 12, -1.0f, 1.0f, &r);
    int rc = train_pass(n, x, t, false, ga, msg_, cap_) || train_pass(n, x, t, true, gb, msg_, cap_);
    if (!rc && memcmp(ga, gb, m->grad_n * sizeof *ga))
        rc = snprintf(msg_, cap_, "the gradients differ when backward transforms the filters "
                      "again") > 0;
    /* a write between forward and backward: backward transforms the new weights */
    ds_graph *g = ds_net_graph(n);
    ds_node *conv[4];
    if (!rc) {
        CHECK(ds_graph_forward(g) == DS_OK);
        ds_param_data(ds_model_find(m, "conv2d_2.weight"))[0] += 0.5f;
        CHECK(ds_graph_backward(g, ds_net_loss(n)) == DS_OK);
        CHECK(cached_convs(n, conv) == 2);
        CHECK(conv[1]->wino_stamp->step == g->step);
    }
    free(x);
    free(ga);
    free(gb);
    ds_net_free(n);
    return rc ? TEST_FAIL : TEST_PASS;
}
