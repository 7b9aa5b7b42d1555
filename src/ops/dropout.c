/* dropout.c - inverted dropout op and its "Dropout" layer: shape rule, forward, backward. */
#include "../internal.h"

/* attr.dropout.rate. state.dropout.dropped is set by forward: whether that forward dropped
 * (the mode had DS_DROPOUT_ON), so backward applies the same map. saved: one keep byte per
 * element.
 *
 * The mask is a counter-based hash of (graph seed, forward step, node id, element index):
 * reproducible for a seed, independent of the thread count, different at every forward
 * call and between dropout layers of the same shape. Forward may run in place (y over x),
 * and without the keep bytes in an inference plan (saved NULL). */
static ds_status dropout_shape(ds_node *y)
{
    dsi_set_shape(y, y->in[0]->ndim, y->in[0]->shape);
    return DS_OK;
}

static size_t dropout_saved(const ds_node *y) { return (size_t)y->numel; }

DS_HOT
static void dropout_forward(ds_node *y)
{
    const float *x = y->in[0]->data;
    float *yd = y->data;
    uint8_t *keep = y->saved;
    double rate = y->attr.dropout.rate;
    int64_t n = y->numel;
    y->state.dropout.dropped = (y->g->mode & DS_DROPOUT_ON) && rate > 0;
    if (!y->state.dropout.dropped) {
        if (yd != x)   /* in place, nothing to do */
            memcpy(yd, x, (size_t)n * sizeof *yd);
        return;
    }
    const ds_graph *g = y->g;
    uint64_t key = dsi_mix64(g->seed ^ dsi_mix64((uint64_t)y->id * 0xd1b54a32d192ed03ULL ^
                                                 dsi_mix64(g->step)));
    float scale = (float)(1.0 / (1.0 - rate));
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint64_t h = dsi_mix64(key + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
        double u = (double)(h >> 11) * 0x1.0p-53;   /* uniform in [0, 1) */
        bool k = u >= rate;
        if (keep)   /* NULL in an inference plan */
            keep[i] = k;
        yd[i] = k ? x[i] * scale : 0.0f;
    }
}

/* dx += dy * keep / (1 - rate), or dx += dy when the forward did not drop. */
DS_HOT
static void dropout_backward(ds_node *y)
{
    float *dx = y->in[0]->grad;
    if (!dx)
        return;
    const float *dy = y->grad;
    const uint8_t *keep = y->saved;
    int64_t n = y->numel;
    if (!y->state.dropout.dropped) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i];
        return;
    }
    float scale = (float)(1.0 / (1.0 - (double)y->attr.dropout.rate));
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        if (keep[i])
            dx[i] += dy[i] * scale;
}

const ds_op_def dsi_op_dropout = {
    .shape = dropout_shape, .cpu = {dropout_forward, dropout_backward},
    .saved_bytes = dropout_saved, .bwd_reads = dsi_reads_none, .inplace = true,
    .saved_optional = true, .stochastic = true,
};

ds_node *ds_dropout(ds_graph *g, ds_node *x, float rate)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "Dropout", "dropout", NULL, name))
        return NULL;
    ds_node *y = NULL;
    if (!(rate >= 0.0f && rate < 1.0f)) {   /* also refuses NaN */
        dsi_fail(DS_ERR_ARG, "dropout '%s': rate %g must be in [0, 1)", name, (double)rate);
        dsi_build_fail(g, DS_ERR_ARG);
    } else {
        y = dsi_node(g, DS_OP_DROPOUT, 1, &x, &(dsi_dropout_attr){ .rate = rate });
    }
    return dsi_layer_end(g, y);
}
