/* classviz.c - class visualization (deep dream): gradient ascent on the input for a class
 * score or a channel's mean activation, with L2 and total-variation penalties and jitter;
 * the images of all targets share each pass. */
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dsx_run *r;
    int64_t count, D;
    const int64_t *tgt;
    dsx_layout L;
    float *img;              /* count x D: the images being ascended */
    float *grad;             /* count x D: the objective's gradient, unshifted */
    int64_t *dy, *dx;        /* this step's jitter of each image */
    float *score;            /* count: this step's explained values */
    ds_node *chan;           /* a channel's layer output, or NULL for the net's output */
    int64_t C, S;            /* its channels and values per channel */
} viz_ctx;

/* Circular shift of every plane by (dy, dx); sign -1 undoes it. */
static void roll(const float *src, float *dst, dsx_layout L, int64_t dy, int64_t dx)
{
    int64_t hw = L.h * L.w;
    for (int64_t p = 0; p < L.planes; p++)
        for (int64_t y = 0; y < L.h; y++)
            for (int64_t x = 0; x < L.w; x++) {
                int64_t yy = ((y + dy) % L.h + L.h) % L.h, xx = ((x + dx) % L.w + L.w) % L.w;
                dst[p * hw + yy * L.w + xx] = src[p * hw + y * L.w + x];
            }
}

static void fill_viz(void *ctx, int64_t r, float *dst)
{
    viz_ctx *c = ctx;
    roll(c->img + r * c->D, dst, c->L, c->dy[r], c->dx[r]);
}

static int64_t seed_viz(void *ctx, int64_t r)
{
    viz_ctx *c = ctx;
    return c->tgt[r];
}

/* A channel's objective: the mean of channel tgt[r] of the layer. */
static void seedv_viz(void *ctx, int64_t r, float *dst)
{
    viz_ctx *c = ctx;
    for (int64_t q = 0; q < c->S; q++)
        dst[c->tgt[r] * c->S + q] = 1.0f / (float)c->S;
}

static void take_viz(void *ctx, int64_t r, int64_t j, const float *out, const float *grad)
{
    viz_ctx *c = ctx;
    if (c->chan) {
        const float *a = ds_node_data(c->chan) + (j * c->C + c->tgt[r]) * c->S;
        double s = 0;
        for (int64_t q = 0; q < c->S; q++)
            s += a[q];
        c->score[r] = (float)(s / (double)c->S);
    } else {
        c->score[r] = out[c->tgt[r]];
    }
    if (grad)
        roll(grad, c->grad + r * c->D, c->L, -c->dy[r], -c->dx[r]);
}

/* d/dx of tv * sum of squared differences of neighbours (rows and columns), added to g. */
static void tv_grad(const float *x, dsx_layout L, double tv, float *g)
{
    int64_t hw = L.h * L.w;
    for (int64_t p = 0; p < L.planes; p++)
        for (int64_t y = 0; y < L.h; y++)
            for (int64_t i = 0; i < L.w; i++) {
                const float *a = x + p * hw + y * L.w + i;
                float *d = g + p * hw + y * L.w + i;
                if (i + 1 < L.w) {
                    double e = 2 * tv * (a[1] - a[0]);
                    d[0] += (float)e;
                    d[1] -= (float)e;
                }
                if (y + 1 < L.h) {
                    double e = 2 * tv * (a[L.w] - a[0]);
                    d[0] += (float)e;
                    d[L.w] -= (float)e;
                }
            }
}

/* One ascent step of every image: x += lr d / mean|d|, d = grad - 2 l2 x - d TV. */
static void ascend(viz_ctx *c, const ds_explain_opts *o)
{
    double lr = o->lr > 0 ? o->lr : 0.05;
    for (int64_t r = 0; r < c->count; r++) {
        float *x = c->img + r * c->D, *g = c->grad + r * c->D;
        for (int64_t k = 0; k < c->D; k++)
            g[k] -= (float)(2 * o->l2 * x[k]);
        if (o->tv > 0)
            tv_grad(x, c->L, o->tv, g);
        double m = 0;
        for (int64_t k = 0; k < c->D; k++)
            m += fabs(g[k]);
        m /= (double)c->D;
        if (m > 0)
            for (int64_t k = 0; k < c->D; k++)
                x[k] += (float)(lr * g[k] / m);
    }
}

/* This step's jitter of each image, from (seed, step, image) alone; none when !on. */
static void draw_jitter(viz_ctx *c, const ds_explain_opts *o, int step, bool on)
{
    for (int64_t r = 0; r < c->count; r++) {
        c->dy[r] = c->dx[r] = 0;
        if (!o->jitter || !on)
            continue;
        ds_rng g;
        ds_rng_seed(&g, dsi_mix64(dsi_mix64(o->seed ^ 0x6a177e5ULL) + (uint64_t)step * 7919u +
                                  (uint64_t)r));
        c->dy[r] = (int64_t)ds_rng_below(&g, 2 * (uint64_t)o->jitter + 1) - o->jitter;
        c->dx[r] = (int64_t)ds_rng_below(&g, 2 * (uint64_t)o->jitter + 1) - o->jitter;
    }
}

/* The start images: a copy of start, or Gaussian noise of sigma 0.1. */
static ds_status start_images(viz_ctx *c, const ds_tensor *start, const ds_explain_opts *o)
{
    if (start) {
        memcpy(c->img, ds_tensor_data((ds_tensor *)start),
               (size_t)(c->count * c->D) * sizeof(float));
        return DS_OK;
    }
    for (int64_t r = 0; r < c->count; r++) {
        ds_rng g;
        ds_rng_seed(&g, dsi_mix64(dsi_mix64(o->seed) + (uint64_t)r));
        ds_rng_fill_normal(&g, c->img + r * c->D, c->D);
        for (int64_t k = 0; k < c->D; k++)
            c->img[r * c->D + k] *= 0.1f;
    }
    return DS_OK;
}

/* The channel layer of o->layer, with its targets checked. */
static ds_status channel_layer(dsx_run *r, const ds_explain_opts *o, viz_ctx *c)
{
    const dsi_layer *l = dsx_find_layer(r->net, o->layer, "class-visualization --layer");
    if (!l)
        return DS_ERR_ARG;
    c->chan = r->net->g->nodes[l->out];
    if (c->chan->ndim < 2)
        return dsi_fail(DS_ERR_ARG, "%s: class-visualization: layer '%s' has no channels "
                        "(shape %s)", r->net->path, l->name,
                        dsi_shape_str(c->chan->ndim, c->chan->shape));
    c->C = c->chan->shape[1];
    c->S = c->chan->numel / (c->chan->shape[0] * c->C);
    for (int64_t i = 0; i < c->count; i++)
        if (c->tgt[i] < 0 || c->tgt[i] >= c->C)
            return dsi_fail(DS_ERR_ARG, "%s: class-visualization: channel %lld is past layer "
                            "'%s', which has %lld (0..%lld)", r->net->path,
                            (long long)c->tgt[i], l->name, (long long)c->C,
                            (long long)c->C - 1);
    r->seed_node = c->chan;
    dsx_keep(r, c->chan);
    return DS_OK;
}

static ds_status check_targets(const dsx_run *r, const viz_ctx *c)
{
    for (int64_t i = 0; i < c->count; i++)
        if (c->tgt[i] < 0 || c->tgt[i] >= r->K)
            return dsi_fail(DS_ERR_ARG, "%s: target %lld is past output '%s', which has %lld "
                            "%s per sample (0..%lld)", r->net->path, (long long)c->tgt[i],
                            r->net->outputs[r->output].name, (long long)r->K,
                            r->K == 1 ? "value" : "values", (long long)r->K - 1);
    return DS_OK;
}

static ds_status run_ascent(dsx_run *r, viz_ctx *c, const ds_explain_opts *o, int steps,
                            float *scores)
{
    dsx_pass p = {.fill = fill_viz, .take = take_viz, .ctx = c};
    if (c->chan)
        p.seedv = seedv_viz;
    else
        p.seed = seed_viz;
    ds_status st = DS_OK;
    for (int s = 0; s <= steps && !st; s++) {
        draw_jitter(c, o, s, s < steps);   /* the final images as they are */
        if ((st = dsx_rows(r, c->count, &p)))
            break;
        for (int64_t i = 0; scores && i < c->count; i++)
            scores[i * (steps + 1) + s] = c->score[i];
        if (s < steps)
            ascend(c, o);
    }
    return st;
}

static ds_status check_start(const dsx_run *r, int64_t count, const ds_tensor *start)
{
    if (!start)
        return DS_OK;
    const int64_t *s = ds_tensor_shape(start);
    bool ok = ds_tensor_ndim(start) == r->in->ndim && s[0] == count;
    for (int i = 1; ok && i < r->in->ndim; i++)
        ok = s[i] == r->in->shape[i];
    if (ok)
        return ds_tensor_check_finite(start, "class-visualization: the start images");
    char want[96];
    int64_t w[DS_MAX_DIMS];
    memcpy(w, r->in->shape, sizeof w);
    w[0] = count;
    snprintf(want, sizeof want, "%s", dsi_shape_str(r->in->ndim, w));
    return dsi_fail(DS_ERR_SHAPE, "class-visualization: start images of shape %s, expected %s "
                    "(one per target)", dsi_shape_str(ds_tensor_ndim(start), s), want);
}

ds_status ds_explain_class_visualization(ds_net *n, int64_t count, const int64_t *targets,
                                         const ds_tensor *start, const ds_explain_opts *o,
                                         ds_tensor **images, ds_tensor **scores)
{
    ds_explain_opts d = dsx_opts(o);
    dsx_run r;
    *images = NULL;
    if (scores)
        *scores = NULL;
    if (count < 1 || !targets)
        return dsi_fail(DS_ERR_ARG, "class-visualization: %lld targets (at least one)",
                        (long long)count);
    ds_status st = dsx_begin(n, NULL, &d, &r);
    if (st)
        return st;
    int steps = d.steps ? d.steps : 100;
    viz_ctx c = {.r = &r, .count = count, .D = r.D, .tgt = targets,
                 .L = dsx_sample_layout(r.in)};
    c.grad = malloc((size_t)(count * r.D) * sizeof(float));
    c.dy = malloc((size_t)count * sizeof *c.dy);
    c.dx = malloc((size_t)count * sizeof *c.dx);
    c.score = malloc((size_t)count * sizeof *c.score);
    *images = dsx_map(count, r.in->ndim - 1, r.in->shape + 1, "class-visualization");
    if (scores)
        *scores = ds_tensor_create(2, (int64_t[]){count, steps + 1});
    if (!c.grad || !c.dy || !c.dx || !c.score || !*images || (scores && !*scores)) {
        st = dsi_fail(DS_ERR_NOMEM, "class-visualization: out of memory");
        goto done;
    }
    c.img = ds_tensor_data(*images);
    if ((st = check_start(&r, count, start)) || (st = dsx_check_others(&r, count)) ||
        (st = d.layer ? channel_layer(&r, &d, &c) : check_targets(&r, &c)) ||
        (st = start_images(&c, start, &d)))
        goto done;
    st = run_ascent(&r, &c, &d, steps, scores ? ds_tensor_data(*scores) : NULL);
done:
    dsx_end(&r);
    free(c.grad);
    free(c.dy);
    free(c.dx);
    free(c.score);
    if (st) {
        ds_tensor_free(*images);
        *images = NULL;
        if (scores) {
            ds_tensor_free(*scores);
            *scores = NULL;
        }
    }
    return st;
}
