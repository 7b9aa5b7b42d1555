/* infer.c - what an inference plan adds: batch norm folded into the conv or linear op
 * before it, and a pooling run with the convolution before it, one sub-batch at a time. */
#include "internal.h"

#include <math.h>

/* Bytes of a convolution's output per sub-batch when a pooling follows: small enough to stay
 * in a core's L2 cache between the convolution and the pooling. */
#define POOL_SUB_BYTES ((int64_t)1 << 20)

static bool aliasish(const ds_node *n) { return dsi_ops[n->op]->alias || n->fused || n->folded; }

static ds_node *owner_of(ds_node *n)
{
    while (aliasish(n))
        n = n->in[0];
    return n;
}

void dsi_infer_reset(ds_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (y->fold)
            *dsi_fused_act(y) = DSI_FUSE_NONE;   /* it had none: it took the batch norm's */
        y->fold = NULL;
        y->fold_w = y->fold_b = NULL;
        y->folded = false;
        y->pool = NULL;
        y->pool_sub = 0;
        y->pool_slots = 0;
        y->pool_slice = 0;
        y->pooled = false;
    }
}

/* A batch norm b with running statistics can be folded into p = b->in[0], a convolution or
 * a 2-D linear op without an activation of its own that nothing else reads, when every
 * weight involved is a parameter (so the model's version says when they change). */
static bool can_fold(const ds_node *b, const int *count)
{
    if (b->op != DS_OP_BATCHNORM)
        return false;
    ds_node *p = b->in[0];
    bool lin = p->op == DS_OP_LINEAR && p->ndim == 2;
    if (!(p->op == DS_OP_CONV || lin) || count[p->id] != 1 || p->keep ||
        *dsi_fused_act(p) != DSI_FUSE_NONE)
        return false;
    for (int k = 1; k < p->n_in; k++)
        if (p->in[k]->op != DS_OP_PARAM)
            return false;
    for (int k = 1; k < b->n_in; k++)
        if (b->in[k]->op != DS_OP_PARAM)
            return false;
    return true;
}

/* The convolution a pooling q can run with: q's input is a convolution (through ReLUs and
 * folded batch norms sharing its memory) read by q alone, with nothing else to compute
 * between them, and not kept. NULL if none. */
static ds_node *pool_source(ds_graph *g, ds_node *q, const int *count)
{
    if (q->op != DS_OP_POOL)
        return NULL;
    ds_node *c = q->in[0];
    for (;;) {
        if (count[c->id] != 1 || c->keep || c->is_input)
            return NULL;
        if (!aliasish(c))
            break;
        if (dsi_ops[c->op]->alias)
            return NULL;   /* a reshape: the shapes differ */
        c = c->in[0];
    }
    if (c->op != DS_OP_CONV || c->pool)
        return NULL;
    for (int i = c->id + 1; i < q->id; i++) {
        ds_node *n = g->nodes[i];
        if (n->op != DS_OP_PARAM && !(aliasish(n) && owner_of(n) == c))
            return NULL;
    }
    return c;
}

void dsi_infer_mark(ds_graph *g, const int *count)
{
    bool fold = !(g->mode & DS_BN_BATCH);
    for (int i = 0; fold && i < g->n_nodes; i++) {
        ds_node *b = g->nodes[i];
        if (!can_fold(b, count))
            continue;
        ds_node *p = b->in[0];
        p->fold = b;
        b->folded = true;
        *dsi_fused_act(p) = b->attr.batchnorm.act;   /* a ReLU fused into b */
    }
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *q = g->nodes[i], *c = pool_source(g, q, count);
        if (!c)
            continue;
        int64_t N = c->shape[0], per = c->numel / N * (int64_t)sizeof(float);
        int64_t sub = POOL_SUB_BYTES / per;
        c->pool = q;
        c->pool_sub = sub < 1 ? 1 : sub > N ? N : sub;
        int64_t nsub = (N + c->pool_sub - 1) / c->pool_sub, th = dsi_threads();
        c->pool_slots = (int)(th < nsub ? th : nsub);
        q->pooled = true;
    }
}

/* ---- views: a node's copy over other memory, which its kernels run on ---- */

/* n narrowed to samples [n0, n0 + cnt) of dimension 0. */
static void narrow(ds_node *n, int64_t n0, int64_t cnt)
{
    int64_t per = n->numel / n->shape[0];
    if (n->data)
        n->data += n0 * per;
    n->shape[0] = cnt;
    n->numel = per * cnt;
}

typedef struct {
    ds_node y, x, w, b;
    ds_node *in[3];
} op_view;

/* y over samples [n0, n0 + cnt) of its input, its output at out, with its folded weights
 * and bias when it has them (a bias of its own, or one made for the fold). */
static void make_view(ds_node *y, op_view *v, int64_t n0, int64_t cnt, float *out)
{
    v->x = *y->in[0];
    narrow(&v->x, n0, cnt);
    v->y = *y;
    v->y.in = v->in;
    v->in[0] = &v->x;
    for (int k = 1; k < y->n_in; k++)
        v->in[k] = y->in[k];
    if (y->fold) {
        int64_t F = y->in[1]->shape[0];
        v->w = *y->in[1];
        v->w.data = y->fold_w;
        v->b = y->n_in == 3 ? *y->in[2] : *y->in[1];
        v->b.ndim = 1;
        v->b.shape[0] = F;
        v->b.numel = F;
        v->b.data = y->fold_b;
        v->in[1] = &v->w;
        v->in[2] = &v->b;
        v->y.n_in = 3;
    }
    v->y.data = out;
    narrow(&v->y, 0, cnt);
}

size_t dsi_infer_scratch(ds_node *y)
{
    const ds_op_def *d = dsi_ops[y->op];
    DS_ASSERT(!y->pooled || !d->scratch_bytes);   /* a pooling's view gets none */
    if (!d->scratch_bytes || y->pooled)
        return 0;
    if (!y->fold && !y->pool)
        return d->scratch_bytes(y);
    op_view v;
    make_view(y, &v, 0, y->pool ? y->pool_sub : y->shape[0], NULL);
    size_t bytes = d->scratch_bytes(&v.y);
    if (!y->pool)
        return bytes;
    y->pool_slice = (bytes + DS_ALIGN - 1) / DS_ALIGN * DS_ALIGN;
    return y->pool_slice * (size_t)y->pool_slots;
}

/* ---- folds ---- */
static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

size_t dsi_infer_fold_floats(const ds_graph *g)
{
    int64_t n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ds_node *y = g->nodes[i];
        if (y->fold)
            n += round16(y->in[1]->numel) + round16(y->in[1]->shape[0]);
    }
    return (size_t)n;
}

void dsi_infer_bind(ds_graph *g)
{
    float *p = g->fold_buf;
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (!y->fold)
            continue;
        y->fold_w = p;
        p += round16(y->in[1]->numel);
        y->fold_b = p;
        p += round16(y->in[1]->shape[0]);
    }
    g->fold_ready = false;
}

/* Batch norm with running statistics is y = a z + s per channel f, a = gamma / sqrt(var +
 * eps), s = beta - mean a (computed as batchnorm.c's channel_affine does). With z = W x +
 * bias: y = (a W) x + (a bias + s), row f of W scaled by a[f]. */
static void fold_one(ds_node *y)
{
    const ds_node *bn = y->fold, *w = y->in[1];
    int64_t F = w->shape[0], row = w->numel / F;
    const float *rm = bn->in[1]->data, *rv = bn->in[2]->data;
    const float *gamma = bn->n_in > 3 ? bn->in[3]->data : NULL;
    const float *beta = bn->n_in > 3 ? bn->in[4]->data : NULL;
    const float *bias = y->n_in == 3 ? y->in[2]->data : NULL;
    double eps = bn->attr.batchnorm.eps;
    for (int64_t f = 0; f < F; f++) {
        double r = 1.0 / sqrt((double)rv[f] + eps), gm = gamma ? gamma[f] : 1.0f;
        float a = (float)(r * gm);
        float s = (float)((beta ? beta[f] : 0.0f) - (double)rm[f] * r * gm);
        const float *wr = w->data + f * row;
        float *fr = y->fold_w + f * row;
        for (int64_t k = 0; k < row; k++)
            fr[k] = a * wr[k];
        y->fold_b[f] = bias ? fmaf(a, bias[f], s) : s;
    }
}

void dsi_infer_refold(ds_graph *g)
{
    if (g->fold_ready && g->fold_version == g->m->version)
        return;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->fold)
            fold_one(g->nodes[i]);
    g->fold_version = g->m->version;
    g->fold_ready = true;
}

/* ---- running ---- */

/* Sub-batch s of y's convolution into chunk, on graph gv (whose scratch it uses), then its
 * pooling into its place in the pooling's output, while it is still in cache. The
 * pooling's view keeps no argmax (saved NULL). */
static void pooled_sub(ds_node *y, ds_graph *gv, int64_t s, float *chunk)
{
    ds_node *q = y->pool;
    int64_t N = y->in[0]->shape[0], n0 = s * y->pool_sub;
    int64_t cnt = N - n0 < y->pool_sub ? N - n0 : y->pool_sub;
    op_view v;
    make_view(y, &v, n0, cnt, chunk);
    v.y.g = gv;
    dsi_ops[y->op]->cpu.forward(&v.y);
    ds_node pin = *q->in[0], *pins[1] = {&pin}, pv = *q;
    pin.data = chunk;
    narrow(&pin, 0, cnt);
    pv.in = pins;
    pv.g = gv;
    pv.saved = NULL;
    narrow(&pv, n0, cnt);
    dsi_ops[q->op]->cpu.forward(&pv);
}

/* Sub-batches split over threads, whole ones each (in one parallel region, where the kernels
 * run on their thread alone), each thread with its own chunk of y's data and slice of the
 * scratch, seen through a copy of the graph. One thread (or one sub-batch, as at batch 1)
 * runs them in order, the kernels splitting each over the threads themselves. Every
 * sub-batch is computed the same way in both cases. */
static void forward_pooled(ds_node *y)
{
    ds_graph *g = y->g;
    int64_t N = y->in[0]->shape[0], nsub = (N + y->pool_sub - 1) / y->pool_sub;
    int64_t chunk = y->numel / N * y->pool_sub, slots = y->pool_slots;
    int64_t avail = y->pool_slice ? (int64_t)(g->scratch_bytes / y->pool_slice) : slots;
    int64_t th = omp_get_max_threads();
    slots = slots < th ? slots : th;
    slots = slots < avail ? slots : avail;
    slots = slots < nsub ? slots : nsub;
    if (slots <= 1) {
        for (int64_t s = 0; s < nsub; s++)
            pooled_sub(y, g, s, y->data);
        return;
    }
    op_view v;   /* the sub-batches' filters (their weights are the view's, folded or not) */
    make_view(y, &v, 0, y->pool_sub, y->data);
    dsi_conv_prepare(&v.y);
#pragma omp parallel for schedule(static) num_threads((int)slots)
    for (int64_t s = 0; s < nsub; s++) {
        int t = omp_get_thread_num();
        ds_graph gv = *g;
        gv.scratch = (float *)((char *)g->scratch + (size_t)t * y->pool_slice);
        gv.scratch_bytes = y->pool_slice;
        gv.run_status = DS_OK;
        pooled_sub(y, &gv, s, y->data + t * chunk);
        if (gv.run_status != DS_OK) {
#ifdef _OPENMP   /* the minimal build has -fopenmp-simd only, which warns on it */
#pragma omp critical
#endif
            if (g->run_status == DS_OK)
                g->run_status = gv.run_status;
        }
    }
}

void dsi_infer_forward(ds_node *y)
{
    if (y->pool) {
        forward_pooled(y);
        return;
    }
    op_view v;
    make_view(y, &v, 0, y->in[0]->shape[0], y->data);
    dsi_ops[y->op]->cpu.forward(&v.y);
}
