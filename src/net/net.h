/* net.h - the ds_net structure shared by the model-file builder, training and evaluation. */
#ifndef DS_NET_H
#define DS_NET_H

#include "../internal.h"

typedef enum {
    DSI_LOSS_NONE = 0, DSI_LOSS_MSE, DSI_LOSS_MAE, DSI_LOSS_BCE, DSI_LOSS_CCE,
    DSI_LOSS_GAUSS_NLL, DSI_LOSS_KL,
} dsi_loss_kind;

struct ds_net {
    ds_model *m;
    ds_graph *g;
    ds_node *input, *output, *target, *loss;
    dsi_loss_kind target_loss;   /* the loss that reads the labels */
    ds_label_mode labels;
    int64_t classes;             /* classifiers: number of classes (2 for binary) */
    bool output_logits;          /* the output is logits (from_logits=true), not probabilities */
    ds_optim_opts optim;
    char path[512];
    /* preprocessing */
    ds_scale_kind scale;
    float scale_a;
    ds_tensor *mean, *std;       /* DS_SCALE_STANDARDIZE: per-feature statistics */
};



/* net.c */
ds_status dsi_net_to_set(const ds_net *n, ds_tensor_set *s);
ds_status dsi_net_from_set(ds_net *n, const ds_tensor_set *s, const char *what);
/* Adds a batch's correct predictions (classifiers) or squared errors (regression) to
 * num and the count to den; metric_value turns them into accuracy or RMSE (NAN if none). */
void dsi_net_batch_metric(const ds_net *n, int64_t b, double *num, double *den);
double dsi_net_metric_value(const ds_net *n, double num, double den);
const char *dsi_net_metric_name(const ds_net *n);   /* "acc", "rmse" or NULL */
ds_status dsi_net_evaluate_set(ds_net *n, const ds_tensor *x, const ds_tensor *y, int64_t batch,
                               double *loss, double *metric);
void dsi_gather(const ds_tensor *t, const int64_t *idx, int64_t i0, int64_t b, float *dst);
#endif
