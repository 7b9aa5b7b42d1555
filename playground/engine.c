/* engine.c - the browser playground's C API over include/deepsky.h: a net from model-file
 * text, its data, epochs of training, losses, outputs and layer values on a grid, export.
 * Compiled to WebAssembly by `make playground` (the page's worker calls it) and natively by
 * `make test-playground` (playground/native.c), so both builds run the same steps. */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one net the page trains, and what goes with it. */
static struct {
    ds_net *net;
    ds_trainer *tr;
    ds_net *viz;          /* the same text, batch = grid points, every node kept */
    int64_t viz_n;
    char *text;
    uint64_t seed;
    int64_t batch;
    double l1;
    ds_rng rng;           /* the order of the samples in each epoch */
    ds_tensor *x[2], *y[2];   /* training and test data */
    int64_t *order;
    int64_t epoch;
} S;
static char err[2048];

static int fail(const char *what)
{
    snprintf(err, sizeof err, "%s%s%s", what ? what : "", what ? ": " : "", ds_last_error());
    return 1;
}

PG_API const char *pg_error(void) { return err; }
PG_API void pg_free(void *p) { free(p); }
PG_API void *pg_alloc(int bytes) { return malloc(bytes > 0 ? (size_t)bytes : 1); }

static void free_data(void)
{
    for (int i = 0; i < 2; i++) {
        ds_tensor_free(S.x[i]);
        ds_tensor_free(S.y[i]);
        S.x[i] = S.y[i] = NULL;
    }
    free(S.order);
    S.order = NULL;
}

PG_API void pg_reset(void)
{
    ds_trainer_free(S.tr);
    ds_net_free(S.net);
    ds_net_free(S.viz);
    free(S.text);
    free_data();
    memset(&S, 0, sizeof S);
}

/* L1 regularization of the dense weights: rate * sign(w) added to their gradient. */
static ds_status l1_hook(void *ctx, const ds_step_info *s)
{
    (void)ctx;
    for (int i = 0; i < ds_model_param_count(s->model); i++) {
        ds_param *p = ds_model_param(s->model, i);
        const char *name = ds_param_name(p);
        size_t k = strlen(name);
        float *g = ds_param_grad(p);
        if (!g || k < 7 || strcmp(name + k - 7, ".weight"))
            continue;
        const float *w = ds_param_data(p);
        for (int64_t j = 0; j < ds_param_numel(p); j++)
            g[j] += (float)S.l1 * (float)((w[j] > 0) - (w[j] < 0));
    }
    return DS_OK;
}

PG_API int pg_build(const char *text, double seed, int batch, double l1)
{
    ds_net *n = NULL;
    ds_trainer *tr = NULL;
    /* a categorical loss reads class indices (the page's labels of several classes) */
    ds_net_opts o = {.batch = batch > 0 ? batch : 10, .seed = (uint64_t)seed,
                     .labels = DS_LABELS_INDEX};
    if (ds_net_parse(text, "playground.model", &o, &n) != DS_OK)
        return fail(NULL);
    if (!ds_net_loss(n)) {
        ds_net_free(n);
        snprintf(err, sizeof err, "playground.model: the model needs a loss line");
        return 1;
    }
    ds_trainer_opts to = {.grad_hook = l1 > 0 ? l1_hook : NULL};
    char *copy = malloc(strlen(text) + 1);
    if (!copy || ds_trainer_create(n, &to, &tr) != DS_OK) {
        free(copy);
        ds_net_free(n);
        return fail("trainer");
    }
    strcpy(copy, text);
    pg_reset();
    S.net = n;
    S.tr = tr;
    S.text = copy;
    S.seed = (uint64_t)seed;
    S.batch = o.batch;
    S.l1 = l1;
    ds_rng_seed(&S.rng, S.seed ^ 0x9e3779b97f4a7c15ull);
    return 0;
}

/* Features per sample: the first input's size. */
PG_API int pg_features(void)
{
    if (!S.net)
        return 0;
    const ds_node *in = ds_net_input(S.net);
    return (int)(ds_node_numel(in) / ds_node_shape(in)[0]);
}

PG_API int pg_classes(void) { return S.net ? (int)ds_net_classes(S.net) : 0; }

/* Data set which (0 training, 1 test): n samples of nf features (row-major) and their labels,
 * ycols per sample (0: one class index each, [n]). Checked against the net (shapes, finite
 * values, classes in range); on failure the previous data stay. */
PG_API int pg_set_data(int which, const float *x, const float *y, int n, int nf, int ycols)
{
    if (!S.net || which < 0 || which > 1 || n < 1 || nf < 1) {
        snprintf(err, sizeof err, "pg_set_data: no net, or an empty data set");
        return 1;
    }
    ds_tensor *tx = ds_tensor_create(2, (int64_t[]){n, nf});
    ds_tensor *ty = ycols > 0 ? ds_tensor_create(2, (int64_t[]){n, ycols})
                              : ds_tensor_create(1, (int64_t[]){n});
    int64_t *order = which == 0 ? malloc((size_t)n * sizeof *order) : NULL;
    if (!tx || !ty || (which == 0 && !order)) {
        ds_tensor_free(tx);
        ds_tensor_free(ty);
        free(order);
        return fail("data");
    }
    memcpy(ds_tensor_data(tx), x, (size_t)n * (size_t)nf * sizeof(float));
    memcpy(ds_tensor_data(ty), y, (size_t)n * (size_t)(ycols > 0 ? ycols : 1) * sizeof(float));
    if (ds_net_check_data(S.net, tx, which ? "test data" : "training data", ty,
                          which ? "test labels" : "training labels") != DS_OK) {
        ds_tensor_free(tx);
        ds_tensor_free(ty);
        free(order);
        return fail(NULL);
    }
    ds_tensor_free(S.x[which]);
    ds_tensor_free(S.y[which]);
    S.x[which] = tx;
    S.y[which] = ty;
    if (which == 0) {
        free(S.order);
        S.order = order;
        for (int64_t i = 0; i < n; i++)
            order[i] = i;
    }
    return 0;
}

/* epochs passes over the training data in batches (the last one smaller), the order
 * shuffled each epoch from the seed. Returns the last epoch's mean training loss as the
 * steps saw it, or NAN (pg_error says why). */
PG_API double pg_train(int epochs)
{
    if (!S.tr || !S.x[0]) {
        snprintf(err, sizeof err, "pg_train: no net or no training data");
        return NAN;
    }
    int64_t n = ds_tensor_shape(S.x[0])[0];
    ds_feed f = {.inputs = {{NULL, S.x[0], "training data"}},
                 .labels = {{NULL, S.y[0], "training labels"}}};
    double sum = 0;
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = n - 1; i > 0; i--) {   /* Fisher-Yates */
            int64_t j = (int64_t)ds_rng_below(&S.rng, (uint64_t)i + 1), t = S.order[i];
            S.order[i] = S.order[j];
            S.order[j] = t;
        }
        sum = 0;
        for (int64_t i = 0; i < n; i += S.batch) {
            int64_t b = n - i < S.batch ? n - i : S.batch;
            ds_step_result r;
            if (ds_trainer_step(S.tr, &f, S.order + i, b, &r) != DS_OK) {
                fail(NULL);
                return NAN;
            }
            sum += r.loss * (double)b;
        }
        ds_optim_epoch_end(ds_trainer_optim(S.tr));
        S.epoch++;
    }
    /* a step leaves the graph in training mode, in which ds_net_predict would keep dropout
     * drawing (Monte Carlo dropout): predictions and pictures are the eval mode's */
    ds_graph_set_mode(ds_net_graph(S.net), DS_MODE_EVAL);
    return sum / (double)n;
}

PG_API int pg_epoch(void) { return (int)S.epoch; }
PG_API double pg_lr(void) { return S.tr ? ds_optim_lr(ds_trainer_optim(S.tr)) : NAN; }

/* Mean loss over data set which (0 training, 1 test), in inference mode; NAN on failure. */
PG_API double pg_loss(int which)
{
    if (!S.net || which < 0 || which > 1 || !S.x[which])
        return NAN;
    ds_feed f = {.inputs = {{NULL, S.x[which], NULL}}, .labels = {{NULL, S.y[which], NULL}}};
    double loss;
    if (ds_net_loss_value_feed(S.net, &f, 256, &loss) != DS_OK) {
        fail(NULL);
        return NAN;
    }
    return loss;
}

/* The first output for n samples x (row-major, pg_features() each) into out; returns the
 * values per sample, or -1. */
PG_API int pg_predict(const float *x, int n, float *out)
{
    int nf = pg_features();
    if (!nf || n < 1)
        return -1;
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){n, nf}), *o = NULL;
    if (!t)
        return fail("predict"), -1;
    memcpy(ds_tensor_data(t), x, (size_t)n * (size_t)nf * sizeof(float));
    ds_status st = ds_net_predict(S.net, t, 256, &o);
    ds_tensor_free(t);
    if (st != DS_OK)
        return fail("predict"), -1;
    int64_t k = ds_tensor_numel(o) / n;
    memcpy(out, ds_tensor_data(o), (size_t)ds_tensor_numel(o) * sizeof(float));
    ds_tensor_free(o);
    return (int)k;
}

/* One inference pass of the current weights over n samples x, keeping every layer's
 * values for pg_viz_read (the neurons' heat maps). */
PG_API int pg_viz(const float *x, int n)
{
    if (!S.net || n < 1)
        return 1;
    if (!S.viz || S.viz_n != n) {
        ds_net_free(S.viz);
        S.viz = NULL;
        ds_net_opts o = {.batch = n, .seed = S.seed, .labels = DS_LABELS_INDEX};
        if (ds_net_parse(S.text, "playground.model", &o, &S.viz) != DS_OK)
            return fail("viz");
        ds_graph_keep_all(ds_net_graph(S.viz), 1);
        ds_graph_set_mode(ds_net_graph(S.viz), DS_MODE_EVAL);
        S.viz_n = n;
    }
    ds_model *m = ds_net_model(S.net), *v = ds_net_model(S.viz);
    memcpy(ds_model_data(v), ds_model_data(m), (size_t)ds_model_block_len(m, 0) * sizeof(float));
    (void)ds_model_data(v);   /* tells the graph the values changed */
    ds_graph *g = ds_net_graph(S.viz);
    if (ds_graph_set_input(g, ds_net_input(S.viz), x, (int64_t)n * pg_features()) != DS_OK ||
        ds_graph_forward_to(g, ds_net_output(S.viz)) != DS_OK)
        return fail("viz");
    return 0;
}

/* Layer name's values from the last pg_viz into out (at most cap floats); returns the
 * values per sample, or -1 if there is no such layer. */
PG_API int pg_viz_read(const char *name, float *out, int cap)
{
    ds_node *nd = S.viz ? ds_graph_find(ds_net_graph(S.viz), name) : NULL;
    if (!nd || ds_node_numel(nd) > cap)
        return -1;
    memcpy(out, ds_node_data(nd), (size_t)ds_node_numel(nd) * sizeof(float));
    return (int)(ds_node_numel(nd) / S.viz_n);
}

/* Parameter name's values into out (at most cap floats); returns their count, or -1. */
PG_API int pg_param(const char *name, float *out, int cap)
{
    ds_param *p = S.net ? ds_model_find(ds_net_model(S.net), name) : NULL;
    if (!p || ds_param_numel(p) > cap)
        return -1;
    memcpy(out, ds_param_data(p), (size_t)ds_param_numel(p) * sizeof(float));
    return (int)ds_param_numel(p);
}

/* The weights file's bytes (ds_net_save_weights_mem): *len gets the count; pg_free it. */
PG_API void *pg_export_weights(int *len)
{
    void *buf = NULL;
    size_t n = 0;
    if (!S.net || ds_net_save_weights_mem(S.net, &buf, &n) != DS_OK) {
        fail("export");
        *len = 0;
        return NULL;
    }
    *len = (int)n;
    return buf;
}

/* The summary table (the CLI's `deepsky summary`); pg_free it. */
PG_API char *pg_summary(void) { return S.net ? ds_net_summary(S.net) : NULL; }
