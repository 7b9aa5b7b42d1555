/* explain.h - what the attribution methods share: the net's input and explained output,
 * the targets, and batched passes over "rows" (a sample, a step, a noisy copy, a patch). */
#ifndef DS_EXPLAIN_H
#define DS_EXPLAIN_H

#include "../net/net.h"

/* Another data input of the net, fed with the values of a sample (or its only one). */
typedef struct {
    ds_node *node;
    const float *data;       /* rows x D */
    int64_t rows, D;
    const char *name, *source;
} dsx_other;

/* A net prepared for explaining: the data input explained and the others, the node whose
 * values are explained (the output, or the logits under a softmax output), the mode and
 * batch to restore. */
typedef struct {
    ds_net *net;
    ds_graph *g;
    ds_node *in, *out;
    const char *in_name;
    dsx_other oth[DS_FEED_MAX];
    int n_oth;
    int output;                  /* the net's output index */
    int64_t D;                   /* input values per sample */
    int64_t K;                   /* explained values per sample */
    int64_t batch;               /* rows per pass */
    int old_mode;
    int64_t old_batch;
    ds_node *seed_node;          /* where backward passes are seeded (default: out) */
    ds_node *kept[4];            /* nodes kept for the run (released by dsx_end) */
    bool grads;                  /* the input requires its gradient */
} dsx_run;

/* Checks the net, the input explained (o->input) and the others' data (o->others), x (NULL:
 * no data checks; else [N, input shape], finite, and the others' of N or 1 samples) and o,
 * and fills r. o NULL: the defaults. */
ds_status dsx_begin(ds_net *n, const ds_tensor *x, const ds_explain_opts *o, dsx_run *r);
/* The start of an attribution method on x: d gets o or the defaults, r the run
 * (dsx_begin), *N x's samples and res their score and target arrays (dsx_result_init).
 * res is zeroed first; on failure it holds nothing and the run is ended. */
ds_status dsx_begin_result(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                           ds_explain_opts *d, dsx_run *r, ds_explain_result *res, int64_t *N);
/* Checks that every other data input has data of N or 1 samples (begin does for x's N). */
ds_status dsx_check_others(const dsx_run *r, int64_t N);
/* Restores the graph's mode and batch, releases kept nodes and the input's gradient. */
void dsx_end(dsx_run *r);

/* A batched pass over rows [0, rows) in chunks of r->batch, in order. fill writes row
 * r's input (D floats); take receives row r (place j in its chunk) with its explained
 * values (K floats) and, after a backward pass, the gradient with respect to the input (D
 * floats; NULL for a forward pass). A backward pass runs when seed or seedv is set: seeded
 * at r->seed_node with 1 at value seed(ctx, r) of each row, or with seedv's values. */
typedef struct {
    void (*fill)(void *ctx, int64_t r, float *dst);
    int64_t (*seed)(void *ctx, int64_t r);
    int64_t (*sample)(void *ctx, int64_t r);   /* row r's sample (NULL: r), for the others */
    void (*seedv)(void *ctx, int64_t r, float *dst);
    void (*take)(void *ctx, int64_t r, int64_t j, const float *out, const float *grad);
    void *ctx;
} dsx_pass;
ds_status dsx_rows(dsx_run *r, int64_t rows, const dsx_pass *p);
/* The explained values (N x K) of the N samples x (N x D floats), forward only. */
ds_status dsx_forward(dsx_run *r, const float *x, int64_t N, float *vals);
/* Keeps node k for the run (and a ReLU's input, so it is not fused away). */
void dsx_keep(dsx_run *r, ds_node *k);

/* The explained value of each sample of x (N of them): o->targets, else o->target, else
 * the predicted class of a classifier output or 0 for an output of one value; tgt gets
 * them and score (may be NULL) f(x) at them. */
ds_status dsx_targets(dsx_run *r, const ds_tensor *x, const ds_explain_opts *o, int64_t *tgt,
                      float *score);

/* The spatial layout of a sample: planes x H x W (the last two axes; one axis: 1 x L). */
typedef struct {
    int64_t planes, h, w;
} dsx_layout;
dsx_layout dsx_sample_layout(const ds_node *in);

/* The baseline of one sample (D floats) for o->baseline: zeros, each plane's mean, or the
 * sample blurred by a Gaussian of sigma o->blur (0: the larger side / 8). */
void dsx_baseline(const ds_explain_opts *o, dsx_layout L, const float *x, float *dst);

/* A new result map [N, shape...] (zeroed); NULL after setting the message. */
ds_tensor *dsx_map(int64_t N, int ndim, const int64_t *shape, const char *what);
/* A result's score and target arrays for N samples. */
ds_status dsx_result_init(ds_explain_result *res, int64_t N);

/* The layer called name (NULL after a message naming what and listing the layers), the
 * first or last convolution layer (NULL after a message), and whether l is one. */
const dsi_layer *dsx_find_layer(const ds_net *n, const char *name, const char *what);
const dsi_layer *dsx_conv_layer(const ds_net *n, bool last, const char *what);
bool dsx_is_conv_layer(const dsi_layer *l);

/* o, or the zero options with target -1 when o is NULL (the defaults). */
ds_explain_opts dsx_opts(const ds_explain_opts *o);

#endif
