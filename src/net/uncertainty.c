/* uncertainty.c - Monte Carlo dropout, heteroscedastic outputs and deep ensembles: draws of
 * every output pooled into the mean, the standard deviation and its aleatoric and epistemic
 * parts. */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ds_net_stochastic_count(const ds_net *n)
{
    int c = 0;
    for (int i = 0; n && i < n->g->n_nodes; i++)
        c += dsi_ops[n->g->nodes[i]->op]->stochastic;
    return c;
}

int ds_net_output_is_gaussian(const ds_net *n, int i)
{
    if (!n || i < 0 || i >= n->n_outputs)
        return 0;
    for (int k = 0; k < n->n_targets; k++)
        if (n->targets[k].kind == DSI_LOSS_GAUSS_NLL && n->targets[k].pred == n->outputs[i].node)
            return 1;
    return 0;
}

void ds_uq_output_free(ds_uq_output *o)
{
    if (!o)
        return;
    ds_tensor_free(o->mean);
    ds_tensor_free(o->std);
    ds_tensor_free(o->std_aleatoric);
    ds_tensor_free(o->std_epistemic);
    ds_tensor_free(o->draws);
    ds_tensor_free(o->classes);
    *o = (ds_uq_output){0};
}

/* ---- pooling the draws of one output ---- */
/* A draw p has the output's shape [N, C, inner...]. Plain: every value pooled (D = C).
 * Gaussian: C = 2D, mu = p[i, c, r] and sigma = p[i, D + c, r] for c < D. The running mean
 * and sum of squared deviations (Welford, in double) give the spread of the means; var_sum
 * adds the sigma^2. Element by element in draw order: the same at any thread count. */
typedef struct {
    bool gauss;
    int64_t N, D, inner, numel;  /* pooled values: numel = N * D * inner */
    int count, total;            /* draws pooled so far, and expected */
    double *mean, *m2, *var_sum;
    ds_tensor *draws;            /* [total, output's shape] or NULL */
    int ndim;
    int64_t shape[DS_MAX_DIMS];  /* the pooled shape: axis 1 halved for gaussian outputs */
} pool;

static void pool_free(pool *a)
{
    free(a->mean);
    free(a->m2);
    free(a->var_sum);
    ds_tensor_free(a->draws);
    *a = (pool){0};
}

static ds_status pool_init(pool *a, const ds_node *y, int64_t N, bool gauss, int total,
                           bool keep, const char *name)
{
    *a = (pool){.gauss = gauss, .N = N, .total = total, .ndim = y->ndim};
    memcpy(a->shape, y->shape, sizeof a->shape);
    a->shape[0] = N;
    int64_t per = y->numel / y->shape[0];
    a->D = y->ndim > 1 ? y->shape[1] : 1;
    a->inner = per / a->D;
    if (gauss)
        a->shape[1] = a->D /= 2;
    a->numel = N * a->D * a->inner;
    size_t bytes = (size_t)(a->numel ? a->numel : 1) * sizeof(double);
    a->mean = calloc(1, bytes);
    a->m2 = calloc(1, bytes);
    a->var_sum = gauss ? calloc(1, bytes) : NULL;
    if (keep) {
        int64_t shape[DS_MAX_DIMS + 1] = {total};
        memcpy(shape + 1, y->shape, (size_t)y->ndim * sizeof *shape);
        shape[1] = N;
        if (y->ndim + 1 > DS_MAX_DIMS)
            return dsi_fail(DS_ERR_SHAPE, "output '%s': its draws [%d, %s] have more than %d "
                            "axes", name, total, dsi_shape_str(y->ndim, shape + 1), DS_MAX_DIMS);
        if (!(a->draws = ds_tensor_create(y->ndim + 1, shape)))
            return dsi_last_status();
    }
    if (!a->mean || !a->m2 || (gauss && !a->var_sum))
        return dsi_fail(DS_ERR_NOMEM, "out of memory pooling the draws of output '%s'", name);
    return DS_OK;
}

/* Adds draw p ([N, output's shape]) to the pool. */
static void pool_add(pool *a, const ds_tensor *p)
{
    int c = ++a->count;
    int64_t D = a->D, inner = a->inner, C = a->gauss ? 2 * D : D;
    if (a->draws)
        memcpy(a->draws->data + (int64_t)(c - 1) * p->numel, p->data,
               (size_t)p->numel * sizeof(float));
#pragma omp parallel for schedule(static) if (a->numel > DS_PAR_MIN)
    for (int64_t e = 0; e < a->numel; e++) {
        int64_t i = e / (D * inner), rest = e % (D * inner);
        int64_t src = i * C * inner + rest;   /* (i, ch, r) with ch * inner + r = rest */
        double x = p->data[src], d = x - a->mean[e];
        a->mean[e] += d / c;
        a->m2[e] += d * (x - a->mean[e]);
        if (a->gauss) {
            double s = p->data[src + D * inner];
            a->var_sum[e] += s * s;
        }
    }
}

/* mean (root false) or sqrt((a + b) / count) per pooled value; b may be NULL. */
static ds_tensor *pool_tensor(const pool *p, const double *a, const double *b, bool root)
{
    ds_tensor *t = ds_tensor_create(p->ndim, p->shape);
    for (int64_t e = 0; t && e < p->numel; e++)
        t->data[e] = (float)(root ? sqrt((a[e] + (b ? b[e] : 0.0)) / p->count) : a[e]);
    return t;
}

/* The pool's results into o; the pool keeps nothing (its draws move to o). */
static ds_status pool_finish(pool *a, ds_uq_output *o)
{
    *o = (ds_uq_output){0};
    o->mean = pool_tensor(a, a->mean, NULL, false);
    o->std = pool_tensor(a, a->m2, a->var_sum, true);
    if (a->gauss) {
        o->std_aleatoric = pool_tensor(a, a->var_sum, NULL, true);
        o->std_epistemic = pool_tensor(a, a->m2, NULL, true);
    }
    o->draws = a->draws;
    a->draws = NULL;
    if (!o->mean || !o->std || (a->gauss && (!o->std_aleatoric || !o->std_epistemic))) {
        ds_uq_output_free(o);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the mean and standard deviation");
    }
    return DS_OK;
}

/* ---- the passes ---- */
typedef struct {
    ds_net *n;
    const ds_uq_opts *o;
    int draws;                   /* expected in all */
    bool ready;                  /* the pools are set up */
    pool p[DS_FEED_MAX];
} run;

static ds_status check_opts(const ds_net *n, const ds_uq_opts *o, const void *f,
                            const ds_uq_output *out, const char *fn)
{
    if (!n || !o || !f || !out)
        return dsi_fail(DS_ERR_ARG, "%s: net, feed, options or outputs is NULL", fn);
    if (o->passes < 1)
        return dsi_fail(DS_ERR_ARG, "%s: %d passes: give at least 1", fn, o->passes);
    return DS_OK;
}

static ds_status check_stochastic(const ds_net *n, int passes)
{
    if (ds_net_stochastic_count(n) > 0)
        return DS_OK;
    return dsi_fail(DS_ERR_ARG, "%s: the model has no stochastic layer (dropout or Bayesian "
                    "weights), so its %d Monte Carlo passes would all give the same prediction "
                    "(add a dropout layer and train again, or predict once)", n->path, passes);
}

static ds_status run_init(run *r, ds_net *n, const ds_uq_opts *o, int64_t N, int draws)
{
    *r = (run){.n = n, .o = o, .draws = draws, .ready = true};
    ds_status st = DS_OK;
    for (int k = 0; k < n->n_outputs && !st; k++)
        st = pool_init(&r->p[k], n->outputs[k].node, N, ds_net_output_is_gaussian(n, k), draws,
                       o->keep_draws != 0, n->outputs[k].name);
    return st;
}

static void run_free(run *r)
{
    for (int k = 0; k < DS_FEED_MAX; k++)
        pool_free(&r->p[k]);
}

/* passes over the bound feed, pooled. With mc the graph draws dropout from seed, pass p's
 * batch b at step (p << 32) + b: the same draws whatever ran before; else eval mode. The
 * graph's seed, step and mode are restored. */
static ds_status run_passes(run *r, const dsi_bound *d, uint64_t seed, bool mc)
{
    ds_net *n = r->n;
    ds_graph *g = n->g;
    uint64_t seed0 = g->seed, step0 = g->step;
    int mode = ds_graph_mode(g);
    ds_node *nodes[DS_FEED_MAX];
    ds_tensor *preds[DS_FEED_MAX];
    for (int k = 0; k < n->n_outputs; k++)
        nodes[k] = n->outputs[k].node;
    g->seed = dsi_mix64(seed ^ 0x5eed5eed5eedULL);   /* as ds_graph_create seeds it */
    ds_graph_set_mode(g, mc ? DS_MODE_MC_DROPOUT : DS_MODE_EVAL);
    ds_status st = DS_OK;
    for (int p = 0; p < (mc ? r->o->passes : 1) && !st; p++) {
        g->step = (uint64_t)p << 32;
        if ((st = dsi_net_collect(n, d, r->o->batch, n->n_outputs, nodes, preds)))
            break;
        dsi_calib_apply(n, preds);   /* a stored temperature calibrates every draw */
        if (r->o->probs)
            dsi_calib_to_probs(n, preds);
        for (int k = 0; k < n->n_outputs; k++) {
            pool_add(&r->p[k], preds[k]);
            ds_tensor_free(preds[k]);
        }
    }
    ds_graph_set_mode(g, mode);
    g->seed = seed0;
    g->step = step0;
    return st;
}

static ds_status run_finish(run *r, ds_uq_output *out)
{
    ds_status st = DS_OK;
    for (int k = 0; k < r->n->n_outputs && !st; k++) {
        st = pool_finish(&r->p[k], &out[k]);
        if (!st && r->o->probs && dsi_output_classifier(r->n, k))
            st = dsi_output_classes(r->n, k, out[k].mean, true, &out[k].classes);
    }
    for (int k = 0; k < r->n->n_outputs && st; k++)
        ds_uq_output_free(&out[k]);
    return st;
}

ds_status ds_net_predict_mc(ds_net *n, const ds_feed *f, const ds_uq_opts *o, ds_uq_output *out)
{
    ds_status st = check_opts(n, o, f, out, "ds_net_predict_mc");
    if (st)
        return st;
    for (int k = 0; k < n->n_outputs; k++)
        out[k] = (ds_uq_output){0};
    dsi_bound d;
    run r;
    if ((st = check_stochastic(n, o->passes)) || (st = ds_net_check_feed(n, f)) ||
        (st = dsi_feed_bind(n, f, &d)))
        return st;
    if (!(st = run_init(&r, n, o, d.n, o->passes)) && !(st = run_passes(&r, &d, o->seed, true)))
        st = run_finish(&r, out);
    run_free(&r);
    return st;
}

/* ---- ensembles ---- */
/* The ensemble.* tags of a member's file (empty strings when absent). */
typedef struct {
    const char *path;
    char model[96], member[32], seed[32];
} member_tag;

static void read_tag(const ds_tensor_set *s, const char *path, member_tag *t)
{
    static const char *const keys[] = {"ensemble.model", "ensemble.member", "ensemble.seed"};
    char *dst[] = {t->model, t->member, t->seed};
    size_t cap[] = {sizeof t->model, sizeof t->member, sizeof t->seed};
    t->path = path;
    for (int i = 0; i < 3; i++) {
        const char *v = ds_tensor_set_meta_get(s, keys[i]);
        snprintf(dst[i], cap[i], "%s", v ? v : "");
    }
}

/* Members agree on their model, and no member comes twice. */
static ds_status check_tags(const member_tag *t, int j)
{
    for (int i = 0; i < j; i++) {
        const member_tag *a = &t[i], *b = &t[j];
        if (!a->model[0] != !b->model[0]) {
            const member_tag *in = a->model[0] ? a : b, *out = a->model[0] ? b : a;
            return dsi_fail(DS_ERR_ARG, "ensemble: '%s' is a member of an ensemble (model %s) "
                            "but '%s' is not (no ensemble.* metadata): give the members of "
                            "one 'deepsky train --ensemble' run", in->path, in->model, out->path);
        }
        if (strcmp(a->model, b->model))
            return dsi_fail(DS_ERR_ARG, "ensemble: '%s' and '%s' come from different models "
                            "(ensemble.model %s and %s): an ensemble's members are one model "
                            "trained from several seeds", a->path, b->path, a->model, b->model);
        if (a->model[0] && !strcmp(a->member, b->member) && !strcmp(a->seed, b->seed))
            return dsi_fail(DS_ERR_ARG, "ensemble: '%s' and '%s' are the same member (%s of the "
                            "run with seed %s)", a->path, b->path, a->member, a->seed);
    }
    return DS_OK;
}

/* A copy of f's inputs with member's preprocessing applied (*c = *f when no input is scaled:
 * nothing copied). */
static ds_status scaled_copy(const ds_net *n, const ds_feed *f, ds_feed *c, bool *copied)
{
    *c = (ds_feed){0};
    *copied = false;
    for (int i = 0; i < n->n_inputs; i++)
        *copied |= n->inputs[i].scale != DS_SCALE_NONE;
    for (int i = 0; i < DS_FEED_MAX && f->inputs[i].data; i++) {
        const ds_tensor *x = f->inputs[i].data;
        c->inputs[i] = f->inputs[i];
        if (*copied && !(c->inputs[i].data = ds_tensor_from(x->ndim, x->shape, x->data)))
            return dsi_last_status();
    }
    return *copied ? ds_net_preprocess_feed(n, c) : DS_OK;
}

static void free_copy(ds_feed *c, bool copied)
{
    for (int i = 0; copied && i < DS_FEED_MAX; i++)
        ds_tensor_free(c->inputs[i].data);
}

/* Member j: its weights into n, its scaling on a copy of f, its passes into r. */
static ds_status run_member(run *r, const ds_feed *f, const char *path, member_tag *tags, int j)
{
    ds_tensor_set *s = NULL;
    ds_feed c = {0};
    bool copied = false;
    dsi_bound d;
    ds_status st = ds_safetensors_load(path, &s);
    if (!st) {
        read_tag(s, path, &tags[j]);
        st = check_tags(tags, j);
    }
    if (!st)
        st = dsi_net_from_set(r->n, s, path);
    ds_tensor_set_free(s);
    if (!st && !(st = scaled_copy(r->n, f, &c, &copied)) && !(st = ds_net_check_feed(r->n, &c)) &&
        !(st = dsi_feed_bind(r->n, &c, &d))) {
        if (!r->ready)   /* the first member: every member sees the same samples */
            st = run_init(r, r->n, r->o, d.n, r->draws);
        if (!st)
            st = run_passes(r, &d, r->o->seed + (uint64_t)j, r->o->passes > 1);
    }
    free_copy(&c, copied);
    return st;
}

ds_status ds_net_predict_ensemble(ds_net *n, int k, const char *const *weights, const ds_feed *f,
                                  const ds_uq_opts *o, ds_uq_output *out)
{
    ds_status st = check_opts(n, o, f, out, "ds_net_predict_ensemble");
    if (st)
        return st;
    for (int i = 0; i < n->n_outputs; i++)
        out[i] = (ds_uq_output){0};
    if (k < 1 || !weights)
        return dsi_fail(DS_ERR_ARG, "ds_net_predict_ensemble: %d members: give at least 1", k);
    if ((int64_t)k * o->passes > 1 << 24)
        return dsi_fail(DS_ERR_ARG, "ds_net_predict_ensemble: %d members of %d passes: more "
                        "than %d draws", k, o->passes, 1 << 24);
    if (o->passes > 1 && (st = check_stochastic(n, o->passes)))
        return st;
    member_tag *tags = calloc((size_t)k, sizeof *tags);
    if (!tags)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %d ensemble members", k);
    run r = {.n = n, .o = o, .draws = k * o->passes};
    for (int j = 0; j < k && !st; j++)
        st = run_member(&r, f, weights[j], tags, j);
    if (!st)
        st = run_finish(&r, out);
    run_free(&r);
    free(tags);
    return st;
}
