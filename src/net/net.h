/* net.h - the ds_net structure shared by the model-file builder, feeds, the trainer,
 * training and evaluation. */
#ifndef DS_NET_H
#define DS_NET_H

#include "../internal.h"

typedef enum {
    DSI_LOSS_NONE = 0, DSI_LOSS_MSE, DSI_LOSS_MAE, DSI_LOSS_BCE, DSI_LOSS_CCE,
    DSI_LOSS_GAUSS_NLL, DSI_LOSS_KL, DSI_LOSS_MSB, DSI_LOSS_DICE,
} dsi_loss_kind;

/* A data input with its preprocessing (stored with the weights). */
typedef struct {
    char name[DS_NAME_MAX];
    ds_node *node;
    ds_scale_kind scale;
    float scale_a;
    ds_tensor *mean, *std;       /* DS_SCALE_STANDARDIZE: per-feature statistics */
} dsi_net_input;

/* A loss that reads labels: its labels input and the prediction they are compared with. */
typedef struct {
    char name[DS_NAME_MAX];      /* the loss's name: the key of its labels in a feed */
    ds_node *target;             /* the labels input */
    ds_node *pred;               /* the prediction (logits if from_logits) */
    dsi_loss_kind kind;
    ds_label_mode labels;
    bool index_too;              /* categorical, one-hot rows by default (DS_LABELS_AUTO):
                                  * built with DS_LABELS_INDEX it reads class indices */
    int64_t classes;             /* classifiers: number of classes (2 for binary) */
    bool output_logits;          /* pred is logits (from_logits=true), not probabilities */
    double temperature;          /* classifiers: calibration T (calib_net.c); 0: none (1) */
} dsi_net_target;

typedef struct {
    char name[DS_NAME_MAX];
    ds_node *node;
} dsi_net_output;

/* A loss that compares an output with an input of the net (target=INPUT): autoencoders. */
typedef struct {
    char name[DS_NAME_MAX];      /* the loss's name */
    ds_node *pred;               /* the output compared */
    int input;                   /* the input it is compared with (index in inputs) */
    dsi_loss_kind kind;
} dsi_net_recon;

#define DSI_MAX_TERMS 8          /* loss lines of a model file */

struct ds_net {
    ds_model *m;
    ds_graph *g;
    dsi_net_input inputs[DS_FEED_MAX];
    dsi_net_output outputs[DS_FEED_MAX];
    dsi_net_target targets[DS_FEED_MAX];
    int n_inputs, n_outputs, n_targets;
    ds_node *loss;               /* the weighted sum of the loss lines, or NULL */
    int reductions;              /* bit DS_REDUCE_MEAN / DS_REDUCE_SUM set per loss line */
    ds_optim_opts optim;
    char path[512];
    ds_tensor_set *wmeta;        /* train.* metadata of the weights last loaded, or NULL */
    ds_node *kl;                 /* Bayesian layers' KL term in loss (ds_graph_kl_loss), or NULL */
    /* issue 17: losses against inputs; with several loss lines, each line's weighted value
     * (kept), named, for the training log's columns (a VAE's reconstruction and KL) */
    dsi_net_recon recons[DS_FEED_MAX];
    int n_recons;
    ds_node *terms[DSI_MAX_TERMS];
    char term_names[DSI_MAX_TERMS][DS_NAME_MAX];
    int n_terms;
};

/* A feed bound to a net: each input's and each target's tensor (NULL if not fed), the
 * names of their sources for messages, and the common sample count. */
typedef struct {
    const ds_tensor *x[DS_FEED_MAX], *y[DS_FEED_MAX];
    const char *xname[DS_FEED_MAX], *yname[DS_FEED_MAX];
    int64_t n;
    const char *first;           /* the source that set n */
    int n_labels;                /* targets with labels */
} dsi_bound;

/* modelfile.c: the keyword tables of the model-file language, for the keyword-coverage
 * test (tests/test_keywords.c) and the fuzz dictionary (fuzz/dict.c). */
typedef enum {
    DSI_KW_LAYER,        /* layer keywords but the activations' ("dense", "conv2d", ...) */
    DSI_KW_ACTIVATION,   /* activation layer keywords: every DS_ACT_* but DS_ACT_NONE */
    DSI_KW_LOSS,         /* "loss mse", ... */
    DSI_KW_OPTIMIZER,    /* "optimizer adam", ... */
    DSI_KW_TABLES
} dsi_kw_table;
/* The keyword of row `row` of table t (aliases aside), or NULL past the last row. */
const char *dsi_modelfile_keyword(dsi_kw_table t, int row);
/* Called after each successful ds_net_parse, once per keyword row the text used (through
 * any spelling); file is the parse's file name. */
typedef void (*dsi_modelfile_hook_fn)(const char *file, dsi_kw_table t, int row);
/* Sets the hook (NULL: none, the default). For tests: set it before parsing starts, from
 * one thread; the library itself never sets it. */
void dsi_modelfile_set_hook(dsi_modelfile_hook_fn fn);
/* Parses a model file's text and calls fn for each layer line and the optimizer line once
 * it is built: its line number, the layer's name (name=, else the automatic one; the
 * optimizer's is "optimizer"), the line's keyword and the options it accepts (space-
 * separated, name and inputs left out). The net is freed; a bad file's error is returned
 * (modeltext.c). */
typedef void (*dsi_line_fn)(void *ctx, int line, const char *name, const char *kind,
                            const char *keys);
ds_status dsi_net_parse_lines(const char *text, const char *filename, dsi_line_fn fn, void *ctx);
/* fn on every word of the language: line and layer keywords with their aliases and
 * automatic names, option keys, and option values (activations, initializers, optimizers,
 * schedules, booleans, padding, ...). Some words come more than once. */
void dsi_modelfile_words(void (*fn)(const char *word, void *ctx), void *ctx);

/* feed.c */
/* Matches the feed's entries to the net's inputs and targets by name (NULL: the only one),
 * checking the names, that every input is fed and that sample counts agree. Labels are
 * optional here; the data themselves are not checked (ds_net_check_feed does). */
ds_status dsi_feed_bind(const ds_net *n, const ds_feed *f, dsi_bound *b);
/* Copies the rows [i0, i0+b) (or rows idx[i0..]) of every bound input, and of every bound
 * target if labels, into the graph's input nodes. */
void dsi_bound_gather(const ds_net *n, const dsi_bound *d, const int64_t *idx, int64_t i0,
                      int64_t b, bool labels);
/* A one-tensor feed: x for the only input, y (may be NULL) for the only labelled loss. */
void dsi_feed_single(ds_feed *f, const ds_tensor *x, const char *xname, const ds_tensor *y,
                     const char *yname);
/* ds_net_check_feed's checks of names, sample counts and shapes, which read no values
 * (the tensors' data may be NULL); d gets the binding. */
ds_status dsi_net_check_shapes(const ds_net *n, const ds_feed *f, dsi_bound *d);
/* Its checks of the labels' values (class indices, [0, 1] for cross-entropies) on a feed
 * whose tensors hold samples first.. of their sources (a block of a stream's files);
 * reads nothing of the net that training changes, so a stream's reader thread may run it. */
ds_status dsi_net_check_labels(const ds_net *n, const ds_feed *f, int64_t first);
/* Fails naming the targets without labels in d (what: "training", "validation", ...). */
ds_status dsi_require_labels(const ds_net *n, const dsi_bound *d, const char *what);
int dsi_net_find_input(const ds_net *n, const char *name);     /* index or -1 */
int dsi_net_find_target(const ds_net *n, const char *name);    /* index or -1 */

/* trainer.c: fills the graph's inputs and targets with rows [first, first + b) of the
 * step (rows NULL) from memory of the caller's instead of the step's feed, which is then
 * only bound and checked (a stream's batch, read where the stream holds it). */
typedef void (*dsi_gather_fn)(void *ctx, ds_net *n, int64_t first, int64_t b);
void dsi_trainer_set_gather(ds_trainer *t, dsi_gather_fn fn, void *ctx);
/* Data-parallel steps (dist_fit.c): the trainer sums over d's ranks after its passes. */
void dsi_trainer_set_dist(ds_trainer *t, const ds_dist *d);
ds_status dsi_trainer_step_part(ds_trainer *t, const ds_feed *data, const int64_t *rows,
                                int64_t b, int64_t total, ds_step_result *r);

/* dist_fit.c: data-parallel training over the ranks of a ds_dist. */
/* The step's sums over the ranks: a non-finite loss anywhere, else the loss, the metric and
 * the gradient (each rank's passes seeded with their share of the step). */
ds_status dsi_dist_step_sums(const ds_dist *d, ds_model *m, ds_step_result *r);
/* After the update: batch norm's running statistics averaged, the replicas compared when
 * d->check_every_step. */
ds_status dsi_dist_after_step(const ds_dist *d, ds_model *m, int64_t step);
/* Fails with DS_ERR_STATE, on every rank, when the ranks' weights differ (when: "at the
 * start", "after epoch 3", ...). */
ds_status dsi_dist_check_replicas(const ds_dist *d, const ds_model *m, int64_t step,
                                  const char *when);
/* Rank r's rows [*lo, *lo + *cnt) of a step of b rows, in whole groups of rep. */
void dsi_dist_shard(const ds_dist *d, int64_t b, int64_t rep, int64_t *lo, int64_t *cnt);
/* The forward passes of a step of b rows (micro-batches of mb, 0: one pass a rank) before
 * this rank's in the order of the ranks, and in all (*total): the graph's step counter, and
 * so the dropout masks, then follow one process accumulating the same micro-batches. */
uint64_t dsi_dist_pass_offset(const ds_dist *d, int64_t b, int64_t rep, int64_t mb,
                              uint64_t *total);
/* Any rank's flag set: the OR over the ranks into *flag. */
ds_status dsi_dist_any(const ds_dist *d, bool *flag);
/* SyncBN: DS_ERR_ARG on every rank unless all make the same number of passes this step. */
ds_status dsi_dist_same_passes(const ds_dist *d, int passes);

/* net.c */
/* Sets the graph's batch size when it changes, and plans. */
ds_status dsi_net_use_batch(ds_graph *g, int64_t b);
ds_status dsi_net_to_set(const ds_net *n, ds_tensor_set *s);
ds_status dsi_net_from_set(ds_net *n, const ds_tensor_set *s, const char *what);

/* weights_meta.c: the training metadata of one weights file (ds_weights_info's keys). */
typedef struct {
    int epoch, epochs_run, epochs, best_epoch;
    double loss, metric, val_loss, val_metric;   /* NAN: none (the key is left out) */
    const char *metric_name, *command;           /* NULL: none */
} dsi_train_meta;
/* Sets the train.* keys of m on s, with the date (now) and DS_VERSION. */
ds_status dsi_weights_meta_set(ds_tensor_set *s, const dsi_train_meta *m);
/* The train.* metadata of s in a new set without tensors. */
ds_status dsi_weights_meta_copy(const ds_tensor_set *s, ds_tensor_set **out);
/* Adds a batch's correct predictions (classifiers) or squared errors (regression) of the
 * first labelled loss to num and the count to den; metric_value turns them into accuracy
 * or RMSE (NAN if none). */
void dsi_net_batch_metric(const ds_net *n, int64_t b, double *num, double *den);
double dsi_net_metric_value(const ds_net *n, double num, double den);
const char *dsi_net_metric_name(const ds_net *n);   /* "acc", "rmse" or NULL */
/* Values of the kept nodes for every sample of d (inputs only), in inference mode (MC
 * dropout if the graph's mode has dropout on), batch by batch: out[k] for nodes[k]. */
ds_status dsi_net_collect(ds_net *n, const dsi_bound *d, int64_t batch, int count,
                          ds_node *const *nodes, ds_tensor **out);
ds_status dsi_net_evaluate_set(ds_net *n, const dsi_bound *d, int64_t batch, double *loss,
                               double *metric);
void dsi_gather(const ds_tensor *t, const int64_t *idx, int64_t i0, int64_t b, float *dst);
/* calib_net.c: temperatures of classifier targets, stored with the weights. */
/* Reads the calib.temperature.* keys of s (what names the file) into temps, one per
 * target (0: none); DS_ERR_FORMAT for a value that is no temperature. */
ds_status dsi_calib_from_set(const ds_net *n, const ds_tensor_set *s, const char *what,
                             double *temps);
/* Sets the key of each classifier target with a temperature (all: every classifier's). */
ds_status dsi_calib_to_set(const ds_net *n, ds_tensor_set *s, bool all);
/* Applies the targets' temperatures to the outputs out[k] that are their predictions. */
void dsi_calib_apply(const ds_net *n, ds_tensor **out);
/* Classifier outputs out[k] with logits (from_logits=true) turned into probabilities:
 * softmax over axis 1 (categorical), sigmoid (binary). */
void dsi_calib_to_probs(const ds_net *n, ds_tensor **out);
/* eval.c: the classifier target reading output i, or NULL; ds_net_output_classes, with
 * probs: p holds probabilities even when the output is logits (binary cut at 0.5). */
const dsi_net_target *dsi_output_classifier(const ds_net *n, int i);
ds_status dsi_output_classes(const ds_net *n, int i, const ds_tensor *p, bool probs,
                             ds_tensor **out);
/* Scaling and metrics for the classic models (src/classic/): a network input's scaling
 * statistics from x (standardize; a no-op otherwise), applied in place; the metrics report
 * of eval for predictions p of labels y (classes K > 0: p [N, K] scores, y [N] indices). */
ds_status dsi_scaling_fit(dsi_net_input *in, const ds_tensor *x);
ds_status dsi_scaling_apply(const dsi_net_input *in, ds_tensor *x);
/* ds_net_split's choice for N samples of classes cls[N] in [0, K) (NULL: no classes). */
ds_status dsi_split_samples(int64_t N, const int64_t *cls, int64_t K, double fraction, int last,
                            uint64_t seed, unsigned char *is_val, ds_split_info *info);
ds_status dsi_metrics_report(const ds_tensor *p, const ds_tensor *y, int64_t classes,
                             dsi_buf *rep, ds_tensor_set *values);
/* generative.c: a loss line's weighted value as a named term of the training log (kept);
 * the RMSE of the first loss against an input, as the metric of a net without labels
 * (false: the net has labels or no such loss). */
void dsi_net_add_term(ds_net *n, ds_node *term, const char *name);
bool dsi_recon_metric(const ds_net *n, int64_t b, double *num, double *den);
/* Whether input i is the target of a loss (target=INPUT) and read by losses only: the
 * clean images of a denoiser, which prediction does without. */
bool dsi_input_loss_only(const ds_net *n, int i);
/* eval's sections: IoU per class and their mean from a confusion matrix conf[true][pred]
 * of K classes over pixels; the RMSE of each loss against an input over the bound set. */
ds_status dsi_iou_report(dsi_buf *rep, const int64_t *conf, int64_t K, const char *prefix,
                         ds_tensor_set *values);
ds_status dsi_recon_report(ds_net *n, const dsi_bound *d, int64_t batch, dsi_buf *rep,
                           ds_tensor_set *values);
#endif
