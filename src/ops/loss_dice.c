/* loss_dice.c - the soft Dice loss of segmentation (per sample and class, over pixels);
 * shape rule, forward and backward side by side. */
#include "../internal.h"

/* ---- loss_dice: probabilities p and targets t of one shape [N, C, ...] ----
 * Per sample n and class c, over the positions s of the trailing axes,
 *     A = sum_s p t,  B = sum_s p + sum_s t,  D = (2 A + 1) / (B + 1)   (smoothing 1),
 * the loss is sum_{n,c} (1 - D), divided by N C for the mean.
 *     dp = -(2 t (B + 1) - (2 A + 1)) / (B + 1)^2,  dt = -(2 p (B + 1) - (2 A + 1)) / (B + 1)^2.
 * Sums in double in element order: the same bits at any thread count. */
#define DICE_SMOOTH 1.0

static ds_status dice_shape(ds_node *y)
{
    const ds_node *p = y->in[0], *t = y->in[1];
    if (p->ndim < 2)
        return dsi_fail_node(y, DS_ERR_SHAPE, "prediction %s: expected [batch, classes, ...]",
                             dsi_shape_str(p->ndim, p->shape));
    if (p->ndim != t->ndim || memcmp(p->shape, t->shape, (size_t)p->ndim * sizeof *p->shape))
        return dsi_fail_node(y, DS_ERR_SHAPE, "prediction %s and target %s must have the same "
                             "shape", dsi_shape_str(p->ndim, p->shape),
                             dsi_shape_str(t->ndim, t->shape));
    dsi_set_shape(y, 0, NULL);
    return DS_OK;
}

/* Rows (n, c) and positions per row. */
static void dice_dims(const ds_node *p, int64_t *rows, int64_t *inner)
{
    *rows = p->shape[0] * p->shape[1];
    *inner = p->numel / *rows;
}

/* A and B of row r. */
static void dice_sums(const float *p, const float *t, int64_t r, int64_t inner, double *a,
                      double *b)
{
    double sa = 0, sb = 0;
    for (int64_t s = 0; s < inner; s++) {
        double pv = p[r * inner + s], tv = t[r * inner + s];
        sa += pv * tv;
        sb += pv + tv;
    }
    *a = sa;
    *b = sb;
}

static void dice_forward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    int64_t rows, inner;
    dice_dims(y->in[0], &rows, &inner);
    double sum = 0;
    for (int64_t r = 0; r < rows; r++) {
        double a, b;
        dice_sums(p, t, r, inner, &a, &b);
        sum += 1.0 - (2.0 * a + DICE_SMOOTH) / (b + DICE_SMOOTH);
    }
    double scale = y->attr.loss.reduction == DS_REDUCE_MEAN ? 1.0 / (double)rows : 1.0;
    y->data[0] = (float)(sum * scale);
}

static void dice_backward(ds_node *y)
{
    const float *p = y->in[0]->data, *t = y->in[1]->data;
    float *dp = y->in[0]->grad, *dt = y->in[1]->grad;
    int64_t rows, inner;
    dice_dims(y->in[0], &rows, &inner);
    double c = y->grad[0] * (y->attr.loss.reduction == DS_REDUCE_MEAN ? 1.0 / (double)rows : 1.0);
#pragma omp parallel for schedule(static) if (rows * inner > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        double a, b;
        dice_sums(p, t, r, inner, &a, &b);
        double den = b + DICE_SMOOTH, num = 2.0 * a + DICE_SMOOTH, k = c / (den * den);
        for (int64_t s = 0; s < inner; s++) {
            int64_t i = r * inner + s;
            if (dp)
                dp[i] -= (float)(k * (2.0 * t[i] * den - num));
            if (dt)
                dt[i] -= (float)(k * (2.0 * p[i] * den - num));
        }
    }
}

const ds_op_def dsi_op_loss_dice = {
    .shape = dice_shape, .cpu = {dice_forward, dice_backward}, .bwd_reads = dsi_reads_in01,
};

ds_node *ds_loss_dice(ds_graph *g, ds_node *prob, ds_node *target, ds_reduction r)
{
    if (!g || !prob || !target || g->status != DS_OK)
        return NULL;
    if (r != DS_REDUCE_MEAN && r != DS_REDUCE_SUM) {
        dsi_fail(DS_ERR_ARG, "loss_dice: reduction %d is neither DS_REDUCE_MEAN nor "
                 "DS_REDUCE_SUM", (int)r);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    ds_node *in[2] = {prob, target};
    return dsi_node(g, DS_OP_LOSS_DICE, 2, in, &(dsi_loss_attr){.reduction = r});
}
