/* trainer.c - optimizer steps on a net: forward and backward passes over micro-batches
 * (gradient accumulation), then the gradient hook, the NaN/Inf check, clipping by global
 * norm, and the optimizer's update. */
#include "net.h"

#include <float.h>
#include <math.h>

struct ds_trainer {
    ds_net *net;
    ds_optim *opt;
    ds_trainer_opts o;
    float clip_norm;         /* from the net's optimizer settings; the optimizer gets 0 */
    dsi_gather_fn gather;    /* or NULL: rows gathered from the step's feed */
    void *gather_ctx;
    const ds_dist *dist;     /* data-parallel: the ranks' sums after the backward passes */
};

void dsi_trainer_set_dist(ds_trainer *t, const ds_dist *d) { t->dist = d; }

void dsi_trainer_set_gather(ds_trainer *t, dsi_gather_fn fn, void *ctx)
{
    t->gather = fn;
    t->gather_ctx = ctx;
}

ds_status ds_trainer_create(ds_net *n, const ds_trainer_opts *o, ds_trainer **out)
{
    ds_trainer_opts def = {0};
    *out = NULL;
    if (!o)
        o = &def;
    if (!n->loss)
        return dsi_fail(DS_ERR_STATE, "%s: training needs a loss line", n->path);
    if (o->micro_batch < 0)
        return dsi_fail(DS_ERR_ARG, "trainer: micro_batch %lld is negative",
                        (long long)o->micro_batch);
    if (o->micro_batch > 0 && n->reductions == (1 << DS_REDUCE_MEAN | 1 << DS_REDUCE_SUM))
        return dsi_fail(DS_ERR_ARG, "%s: gradient accumulation needs every loss line with the "
                        "same reduction (mean or sum)", n->path);
    for (int i = 0; i < n->g->n_nodes; i++) {   /* Bayesian layers */
        const ds_node *y = n->g->nodes[i];
        if (y->op == DS_OP_BAYES_KL && y->attr.bayes_kl.auto_weight && !y->attr.bayes_kl.weight_set)
            return dsi_fail(DS_ERR_STATE, "%s: layer '%s': the KL term's weight is not set: "
                            "ds_graph_set_kl_weight (training with ds_net_fit sets 1/samples)",
                            n->path, dsi_node_layer(y));
    }
    ds_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the trainer");
    ds_optim_opts oo = n->optim;
    t->clip_norm = oo.clip_norm;
    if (oo.clip_norm > 0)
        oo.clip_norm = 0;   /* the trainer clips, after its gradient hook */
    if (!(t->opt = ds_optim_create(n->m, &oo))) {
        free(t);
        return dsi_last_status();   /* the optimizer said why */
    }
    t->net = n;
    t->o = *o;
    *out = t;
    return DS_OK;
}

void ds_trainer_free(ds_trainer *t)
{
    if (!t)
        return;
    ds_graph_set_mode(t->net->g, DS_MODE_EVAL);
    ds_optim_free(t->opt);
    free(t);
}

ds_optim *ds_trainer_optim(ds_trainer *t) { return t->opt; }
int64_t ds_trainer_steps(const ds_trainer *t) { return ds_optim_steps(t->opt); }

/* The first trainable parameter, in the model's (layer) order, with a NaN or Inf in its
 * gradient, or NULL. */
static const ds_param *nonfinite_grad(const ds_model *m)
{
    if (dsi_values_finite(m->grad, (int64_t)m->grad_n))
        return NULL;   /* the usual case, in one pass over the block, over threads */
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        if (!p->trainable)
            continue;
        const float *g = m->grad + p->goffset;
        int bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t k = 0; k < p->numel; k++)
            bad |= !(fabsf(g[k]) <= FLT_MAX);
        if (bad)
            return p;
    }
    return NULL;
}

/* torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)). */
static void clip_grad(ds_model *m, double clip)
{
    double coef = clip / (ds_model_grad_norm(m) + 1e-6);
    if (coef >= 1)
        return;
    float *g = ds_model_grad(m);
    for (size_t i = 0; i < m->grad_n; i++)
        g[i] = (float)(g[i] * coef);
}

/* One forward and backward pass over rows[first..first+b) of d. With several passes per
 * step the gradient is seeded with scale, the pass's weight in the step. A non-finite loss
 * sets r->nonfinite and stops before the backward pass. */
static ds_status run_pass(ds_trainer *t, const dsi_bound *d, const int64_t *rows, int64_t first,
                          int64_t b, float scale, ds_step_result *r)
{
    ds_net *n = t->net;
    ds_status st = dsi_net_use_batch(n->g, b);
    if (st)
        return st;
    if (t->gather)
        t->gather(t->gather_ctx, n, first, b);
    else
        dsi_bound_gather(n, d, rows, first, b, true);
    if (t->o.batch_hook)
        t->o.batch_hook(t->o.batch_ctx, n, rows, first, b);
    if ((st = ds_graph_forward(n->g)))
        return st;
    float lv = n->loss->data[0];
    bool bad = !isfinite(lv);
    if (n->g->sync && (st = dsi_dist_any(n->g->sync, &bad)))
        return st;   /* SyncBN: all ranks skip backward together, or none does */
    if (bad) {
        r->nonfinite = 1;
        r->loss = lv;
        return DS_OK;
    }
    st = scale ? ds_graph_backward_seed(n->g, n->loss, &scale) : ds_graph_backward(n->g, n->loss);
    r->loss += scale ? (double)scale * lv : (double)lv;
    dsi_net_batch_metric(n, b, &r->metric_sum, &r->metric_count);
    return st;
}

/* The step's arguments: names and counts of the data, labels for every target, rows in
 * range. */
static ds_status check_step(const ds_trainer *t, const ds_feed *data, const int64_t *rows,
                            int64_t b, dsi_bound *d)
{
    const ds_net *n = t->net;
    ds_status st = dsi_feed_bind(n, data, d);
    if (st || (st = dsi_require_labels(n, d, d->first)))
        return st;
    if (b < 1 || (!rows && b > d->n))
        return dsi_fail(DS_ERR_ARG, "trainer step: %lld %s of %lld", (long long)b,
                        dsi_plural(b, "sample", "samples"), (long long)d->n);
    for (int64_t k = 0; rows && k < b; k++)
        if (rows[k] < 0 || rows[k] >= d->n)
            return dsi_fail(DS_ERR_ARG, "trainer step: row %lld is not a sample of the data "
                            "(%lld %s)", (long long)rows[k], (long long)d->n,
                            dsi_plural(d->n, "sample", "samples"));
    return DS_OK;
}

/* After a non-finite loss or gradient: skip the update, or fail naming the step. */
static ds_status nonfinite(const ds_trainer *t, ds_step_result *r)
{
    if (t->o.skip_nonfinite) {
        r->skipped = 1;
        return DS_OK;
    }
    long long step = (long long)ds_optim_steps(t->opt) + 1;
    float lr = ds_optim_lr(t->opt);
    if (r->nonfinite == 1)
        return dsi_fail(DS_ERR_VALUE, "the training loss became %g at step %lld: lower the "
                        "learning rate (now %g), check the data, or skip such steps "
                        "(--skip-nonfinite)", r->loss, step, lr);
    return dsi_fail(DS_ERR_VALUE, "the gradient of '%s' became NaN or Inf at step %lld (loss "
                    "%g), the first parameter in layer order to do so: lower the learning rate "
                    "(now %g), check the data, or skip such steps (--skip-nonfinite)",
                    r->nonfinite_param, step, r->loss, lr);
}

/* Between the backward passes and the update: the hook, the check, the clipping. */
static ds_status finish_gradient(ds_trainer *t, ds_step_result *r)
{
    ds_net *n = t->net;
    if (t->o.grad_hook) {
        ds_step_info info = {
            .net = n, .model = n->m, .step = ds_optim_steps(t->opt),
            .micro_batches = r->micro_batches, .samples = r->samples, .loss = r->loss,
        };
        ds_status st = t->o.grad_hook(t->o.grad_ctx, &info);
        if (st)
            return dsi_fail(st, "step %lld: the gradient hook returned %s",
                            (long long)info.step + 1, ds_status_name(st));
    }
    const ds_param *bad = nonfinite_grad(n->m);
    if (bad) {
        r->nonfinite = 2;
        r->nonfinite_param = bad->name;
        return nonfinite(t, r);
    }
    if (t->clip_norm > 0)
        clip_grad(n->m, t->clip_norm);
    return DS_OK;
}

ds_status ds_trainer_step(ds_trainer *t, const ds_feed *data, const int64_t *rows, int64_t b,
                          ds_step_result *r)
{
    return dsi_trainer_step_part(t, data, rows, b, b, r);
}

/* b of the step's total samples here (a rank's shard; b may be 0 then), the rest on the
 * other ranks of t->dist: each pass's gradient is seeded with its share of the total. */
ds_status dsi_trainer_step_part(ds_trainer *t, const ds_feed *data, const int64_t *rows,
                                int64_t b, int64_t total, ds_step_result *r)
{
    ds_step_result res = {0};
    dsi_bound d;
    ds_net *n = t->net;
    bool none = b < 1 && t->dist;   /* a rank without samples in this step: zero gradient */
    ds_status st = check_step(t, data, none ? NULL : rows, none ? 1 : b, &d);
    int64_t mb = t->o.micro_batch > 0 && t->o.micro_batch < b ? t->o.micro_batch : b;
    res.samples = b;
    res.micro_batches = mb > 0 ? (int)((b + mb - 1) / mb) : 0;
    /* each pass's share of a mean loss over the step; a sum adds up as it is */
    bool mean = !(n->reductions & 1 << DS_REDUCE_SUM);
    int mode = ds_graph_mode(n->g) & ~DS_INFER;   /* restored after the step */
    if (!st) {
        ds_graph_set_mode(n->g, DS_MODE_TRAIN);
        ds_model_zero_grad(n->m);   /* parameter gradients accumulate over the passes */
    }
    if (!st && t->dist && t->dist->sync_bn && t->dist->size > 1)
        st = dsi_dist_same_passes(t->dist, res.micro_batches);
    n->g->sync = !st && t->dist && t->dist->sync_bn && t->dist->size > 1 ? t->dist : NULL;
    for (int64_t i = 0; i < b && !st && !res.nonfinite; i += mb) {
        int64_t bk = b - i < mb ? b - i : mb;
        /* 0: a single pass, seeded with 1 as ds_graph_backward does */
        float scale = res.micro_batches == 1 && b == total ? 0.0f
                      : mean ? (float)((double)bk / (double)total) : 1.0f;
        st = run_pass(t, &d, rows, i, bk, scale, &res);
    }
    n->g->sync = NULL;
    ds_graph_set_mode(n->g, mode);
    if (!st && t->dist)   /* every rank, even after a non-finite loss: they agree on it */
        st = dsi_dist_step_sums(t->dist, n->m, &res);
    if (!st && res.nonfinite)
        st = nonfinite(t, &res);
    else if (!st)
        st = finish_gradient(t, &res);
    if (!st && !res.skipped)
        st = ds_optim_step(t->opt);
    if (!st && t->dist)
        st = dsi_dist_after_step(t->dist, n->m, ds_optim_steps(t->opt));
    if (r)
        *r = res;
    return st;
}
