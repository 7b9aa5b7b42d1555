/* dist_fit.c - data-parallel training over a ds_dist (MPI ranks): each rank's shard of a
 * step, the sums of the gradient, loss and metric over the ranks, batch norm's running
 * statistics averaged, and the checksum that proves the replicas identical. */
#include "net.h"

#include <math.h>

/* The collectives, their failures named. */
static ds_status failed(const ds_dist *d, ds_status st)
{
    return dsi_fail(st, "data-parallel training (rank %d of %d): %s", d->rank, d->size,
                    d->message ? d->message(d->ctx) : "a collective failed");
}

static ds_status sum_float(const ds_dist *d, float *x, int64_t n)
{
    ds_status st = d->sum_float(d->ctx, x, n);
    return st ? failed(d, st) : DS_OK;
}

static ds_status sum_double(const ds_dist *d, double *x, int64_t n)
{
    ds_status st = d->sum_double(d->ctx, x, n);
    return st ? failed(d, st) : DS_OK;
}

static ds_status bcast(const ds_dist *d, void *buf, size_t bytes)
{
    ds_status st = d->bcast(d->ctx, buf, bytes);
    return st ? failed(d, st) : DS_OK;
}

void dsi_dist_shard(const ds_dist *d, int64_t b, int64_t rep, int64_t *lo, int64_t *cnt)
{
    int64_t groups = b / rep, k = d->size, r = d->rank;
    int64_t g0 = groups * r / k, g1 = groups * (r + 1) / k;
    *lo = g0 * rep;
    *cnt = (g1 - g0) * rep;
}

uint64_t dsi_dist_pass_offset(const ds_dist *d, int64_t b, int64_t rep, int64_t mb,
                              uint64_t *total)
{
    uint64_t before = 0, all = 0;
    for (int q = 0; q < d->size; q++) {
        ds_dist dq = *d;
        int64_t lo, cnt;
        dq.rank = q;
        dsi_dist_shard(&dq, b, rep, &lo, &cnt);
        uint64_t passes = cnt < 1 ? 0 : mb > 0 ? (uint64_t)((cnt + mb - 1) / mb) : 1;
        before += q < d->rank ? passes : 0;
        all += passes;
    }
    *total = all;
    return before;
}

ds_status dsi_dist_any(const ds_dist *d, bool *flag)
{
    double v = *flag ? 1 : 0;
    ds_status st = sum_double(d, &v, 1);
    if (!st)
        *flag = v > 0;
    return st;
}

ds_status dsi_dist_same_passes(const ds_dist *d, int passes)
{
    double v[2] = {passes, (double)passes * passes};
    ds_status st = sum_double(d, v, 2);
    if (st)
        return st;
    if (v[1] * d->size != v[0] * v[0])   /* equal counts: sum^2 = K sum of squares */
        return dsi_fail(DS_ERR_ARG, "--sync-bn: the ranks make different numbers of passes "
                        "in a step (rank %d: %d, %.3g on average over %d ranks): batch norm "
                        "cannot share their statistics; give a batch size (and accumulate) "
                        "that splits evenly over the ranks, with at least one sample each",
                        d->rank, passes, v[0] / d->size, d->size);
    return DS_OK;
}

/* The loss and metric sums first (a non-finite loss on one rank is one on all: they all
 * skip or all stop), then the gradient. Each rank's loss is already its share of the
 * step's (its passes were seeded with their share), so plain sums give the step's. */
ds_status dsi_dist_step_sums(const ds_dist *d, ds_model *m, ds_step_result *r)
{
    double v[4] = {r->nonfinite == 1, r->nonfinite == 1 ? 0 : r->loss, r->metric_sum,
                   r->metric_count};
    ds_status st = sum_double(d, v, 4);
    if (st)
        return st;
    if (v[0] > 0) {
        if (r->nonfinite != 1)
            r->loss = NAN;   /* another rank's loss */
        r->nonfinite = 1;
        return DS_OK;
    }
    r->loss = v[1];
    r->metric_sum = v[2];
    r->metric_count = v[3];
    return m->grad_n ? sum_float(d, m->grad, (int64_t)m->grad_n) : DS_OK;
}

/* Floats in the parameters that are not trained (batch norm's running statistics). */
static int64_t buffer_count(const ds_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < m->n; i++)
        if (!m->params[i]->trainable)
            n += m->params[i]->numel;
    return n;
}

static void buffers_copy(ds_model *m, float *buf, bool to_buf)
{
    int64_t at = 0;
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        if (p->trainable)
            continue;
        float *x = m->data + p->offset;
        memcpy(to_buf ? buf + at : x, to_buf ? x : buf + at, (size_t)p->numel * sizeof(float));
        at += p->numel;
    }
}

/* x = x0 + sum_r (x_r - x0) / K with x0 rank 0's values: the same bits on every rank, and
 * exactly x0 where all ranks agree (frozen parameters). */
static ds_status average_buffers(const ds_dist *d, ds_model *m)
{
    int64_t n = buffer_count(m);
    if (!n)
        return DS_OK;
    float *x0 = malloc((size_t)(2 * n) * sizeof(float)), *dx = x0 + n;
    if (!x0)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld batch-norm statistics",
                        (long long)n);
    buffers_copy(m, x0, true);
    memcpy(dx, x0, (size_t)n * sizeof(float));
    ds_status st = bcast(d, x0, (size_t)n * sizeof(float));
    if (!st) {
        for (int64_t i = 0; i < n; i++)
            dx[i] -= x0[i];
        st = sum_float(d, dx, n);
    }
    if (!st) {
        for (int64_t i = 0; i < n; i++)
            x0[i] += dx[i] / (float)d->size;
        buffers_copy(m, x0, false);
        dsi_model_touch_stats(m);
    }
    free(x0);
    return st;
}

uint64_t ds_model_checksum(const ds_model *m)
{
    uint64_t h = 0x6473636b73756dULL;
    if (!m)
        return 0;
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        for (const char *c = p->name; *c; c++)
            h = dsi_mix64(h ^ (unsigned char)*c);
        const float *x = m->data + p->offset;
        for (int64_t k = 0; k < p->numel; k++) {
            uint32_t bits;
            memcpy(&bits, &x[k], 4);
            h = dsi_mix64(h ^ bits ^ (uint64_t)k << 32);
        }
    }
    return h;
}

ds_status dsi_dist_check_replicas(const ds_dist *d, const ds_model *m, int64_t step,
                                  const char *when)
{
    uint64_t mine[2] = {ds_model_checksum(m), (uint64_t)step}, r0[2] = {mine[0], mine[1]};
    ds_status st = bcast(d, r0, sizeof r0);
    bool differ = mine[0] != r0[0] || mine[1] != r0[1];
    if (st || (st = dsi_dist_any(d, &differ)))
        return st;
    if (differ)
        return dsi_fail(DS_ERR_STATE, "data-parallel training: the ranks' weights differ %s "
                        "(step %lld; rank %d: checksum %016llx, rank 0: %016llx): they must "
                        "start from the same weights and data", when, (long long)step,
                        d->rank, (unsigned long long)mine[0], (unsigned long long)r0[0]);
    return DS_OK;
}

ds_status dsi_dist_after_step(const ds_dist *d, ds_model *m, int64_t step)
{
    ds_status st = average_buffers(d, m);
    if (!st && d->check_every_step)
        st = dsi_dist_check_replicas(d, m, step, "after a step");
    return st;
}
