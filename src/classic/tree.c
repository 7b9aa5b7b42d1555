/* tree.c - histogram decision trees for forest.c and boost.c: binning, growing (depth
 * first, best split of a node by a sweep over each feature's histogram of statistics), the
 * trees' arrays in a model file and their check on loading. Sums run in sample order and
 * the features' best splits are compared in order, so a tree depends on its seed only. */
#include "tree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- binning ---- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The edges of one column (sorted in v, n values) into e; their count + 1. */
static int column_edges(float *v, int64_t n, float *e)
{
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    int64_t distinct = 1;
    for (int64_t i = 1; i < n; i++)
        distinct += v[i] != v[i - 1];
    int ne = 0;
    if (distinct <= DSI_MAX_BINS) {
        for (int64_t i = 1; i < n; i++)
            if (v[i] != v[i - 1])
                e[ne++] = (float)(0.5 * ((double)v[i - 1] + v[i]));
        return ne + 1;
    }
    for (int b = 1; b < DSI_MAX_BINS; b++) {   /* quantiles, between neighbouring values */
        double pos = (double)b / DSI_MAX_BINS * (double)(n - 1);
        int64_t lo = (int64_t)pos;
        float q = (float)(0.5 * ((double)v[lo] + v[lo + 1 < n ? lo + 1 : lo]));
        if (!ne || q > e[ne - 1])
            e[ne++] = q;
    }
    return ne + 1;
}

static uint8_t bin_of(const float *e, int ne, float x)
{
    int lo = 0, hi = ne;   /* the first edge with x <= edge, or ne */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x <= e[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return (uint8_t)lo;
}

ds_status dsi_bins_fit(dsi_bins *b, const float *x, int64_t n, int64_t f)
{
    *b = (dsi_bins){n, f, malloc((size_t)(n * f)), malloc((size_t)f * sizeof(int)),
                    malloc((size_t)f * (DSI_MAX_BINS - 1) * sizeof(float))};
    float *col = malloc((size_t)(n * f) * sizeof *col);
    if (!b->code || !b->nbins || !b->edge || !col) {
        free(col);
        dsi_bins_free(b);
        return dsi_fail(DS_ERR_NOMEM, "out of memory to bin %lld samples of %lld features",
                        (long long)n, (long long)f);
    }
#pragma omp parallel for schedule(dynamic, 1) if (n * f > 1 << 16)
    for (int64_t j = 0; j < f; j++) {
        float *v = col + j * n, *e = b->edge + j * (DSI_MAX_BINS - 1);
        for (int64_t i = 0; i < n; i++)
            v[i] = x[i * f + j];
        b->nbins[j] = column_edges(v, n, e);
        for (int64_t i = 0; i < n; i++)
            b->code[j * n + i] = bin_of(e, b->nbins[j] - 1, x[i * f + j]);
    }
    free(col);
    return DS_OK;
}

void dsi_bins_free(dsi_bins *b)
{
    free(b->code);
    free(b->nbins);
    free(b->edge);
    memset(b, 0, sizeof *b);
}

/* ---- growing ---- */

static bool tree_room(dsi_tree *t, int64_t more)
{
    if (t->count + more <= t->cap)
        return true;
    int64_t cap = t->cap ? 2 * t->cap : 64;
    while (cap < t->count + more)
        cap *= 2;
    int32_t *f = realloc(t->feat, (size_t)cap * sizeof *f);
    if (f)
        t->feat = f;
    int32_t *l = realloc(t->left, (size_t)cap * sizeof *l);
    if (l)
        t->left = l;
    int32_t *r = realloc(t->right, (size_t)cap * sizeof *r);
    if (r)
        t->right = r;
    float *th = realloc(t->thr, (size_t)cap * sizeof *th);
    if (th)
        t->thr = th;
    float *v = realloc(t->value, (size_t)(cap * t->width) * sizeof *v);
    if (v)
        t->value = v;
    if (!f || !l || !r || !th || !v)
        return false;
    t->cap = cap;
    return true;
}

static int64_t new_node(dsi_tree *t)
{
    int64_t k = t->count++;
    t->feat[k] = -1;
    t->left[k] = t->right[k] = -1;
    t->thr[k] = 0;
    return k;
}

typedef struct { int64_t node, start, end; int depth; } pending;

typedef struct { double gain; int bin; } best_split;

/* The best split of feature j for the node's samples idx[0, m) with totals tot; hist:
 * nb x S doubles of scratch. */
static best_split feature_best(const dsi_bins *b, int64_t j, const double *stat,
                               const int64_t *idx, int64_t m, const double *tot, double s_tot,
                               const dsi_criterion *c, double min_leaf, double min_s2,
                               double *hist)
{
    int S = c->S, nb = b->nbins[j];
    best_split best = {0, -1};
    if (nb < 2)
        return best;
    memset(hist, 0, (size_t)nb * (size_t)S * sizeof *hist);
    const uint8_t *code = b->code + j * b->n;
    for (int64_t q = 0; q < m; q++) {
        const double *s = stat + idx[q] * S;
        double *h = hist + code[idx[q]] * S;
        for (int k = 0; k < S; k++)
            h[k] += s[k];
    }
    double left[S], right[S];
    memset(left, 0, sizeof left);
    for (int bin = 0; bin < nb - 1; bin++) {
        for (int k = 0; k < S; k++)
            left[k] += hist[bin * S + k];
        if (left[0] < min_leaf)
            continue;
        for (int k = 0; k < S; k++)
            right[k] = tot[k] - left[k];
        if (right[0] < min_leaf)
            break;
        if (min_s2 > 0 && (left[2] < min_s2 || right[2] < min_s2))
            continue;
        double g = c->score(left, c->ctx) + c->score(right, c->ctx) - s_tot;
        if (g > best.gain)
            best = (best_split){g, bin};
    }
    return best;
}

/* Splits idx[0, m) stably: bin <= cut first; returns the left count. */
static int64_t partition(const uint8_t *code, int cut, int64_t *idx, int64_t m, int64_t *tmp)
{
    int64_t l = 0, r = 0;
    for (int64_t q = 0; q < m; q++) {
        if (code[idx[q]] <= cut)
            idx[l++] = idx[q];
        else
            tmp[r++] = idx[q];
    }
    memcpy(idx + l, tmp, (size_t)r * sizeof *idx);
    return l;
}

/* Halfway between the largest value of feature j left (ix[0, nl)) and the smallest right,
 * kept below the right's (float rounding). */
static float node_threshold(const float *x, int64_t f, int64_t j, const int64_t *ix, int64_t n,
                            int64_t nl)
{
    float lo = -INFINITY, hi = INFINITY;
    for (int64_t q = 0; q < nl; q++)
        lo = x[ix[q] * f + j] > lo ? x[ix[q] * f + j] : lo;
    for (int64_t q = nl; q < n; q++)
        hi = x[ix[q] * f + j] < hi ? x[ix[q] * f + j] : hi;
    float t = (float)(0.5 * ((double)lo + hi));
    return t < hi ? t : lo;
}

ds_status dsi_tree_grow(dsi_tree *t, const dsi_bins *b, const double *stat, int64_t *idx,
                        int64_t m, const dsi_criterion *c, const dsi_tree_opts *o, ds_rng *r,
                        double *importance)
{
    int S = c->S;
    int64_t f = b->f, mtry = o->mtry < 1 || o->mtry > f ? f : o->mtry;
    *t = (dsi_tree){.width = c->width};
    pending *stack = malloc((size_t)(2 * (m + 1)) * sizeof *stack);
    int64_t *perm = malloc((size_t)f * sizeof *perm), *tmp = malloc((size_t)(m + 1) * sizeof *tmp);
    double *hist = malloc((size_t)(mtry * DSI_MAX_BINS * S) * sizeof *hist);
    double *tot = malloc((size_t)S * sizeof *tot);
    best_split *fb = malloc((size_t)mtry * sizeof *fb);
    int64_t top = 0;
    bool ok = stack && perm && tmp && hist && tot && fb && tree_room(t, 1);
    if (ok)
        stack[top++] = (pending){new_node(t), 0, m, 0};
    for (int64_t j = 0; j < f; j++)
        if (perm)
            perm[j] = j;
    while (ok && top > 0) {
        pending p = stack[--top];
        int64_t *ix = idx + p.start, n = p.end - p.start;
        memset(tot, 0, (size_t)S * sizeof *tot);
        for (int64_t q = 0; q < n; q++)
            for (int k = 0; k < S; k++)
                tot[k] += stat[ix[q] * S + k];
        c->leaf(tot, t->value + p.node * c->width, c->ctx);
        if ((o->max_depth > 0 && p.depth >= o->max_depth) || tot[0] < 2 * o->min_leaf)
            continue;
        for (int64_t j = 0; j < mtry && mtry < f; j++) {   /* a random subset of features */
            int64_t k = j + (int64_t)ds_rng_below(r, (uint64_t)(f - j)), sw = perm[j];
            perm[j] = perm[k];
            perm[k] = sw;
        }
        double s_tot = c->score(tot, c->ctx);
#pragma omp parallel for schedule(dynamic, 1) if (o->parallel && n * mtry > 1 << 14)
        for (int64_t j = 0; j < mtry; j++)
            fb[j] = feature_best(b, perm[j], stat, ix, n, tot, s_tot, c, o->min_leaf, o->min_s2,
                                 hist + j * DSI_MAX_BINS * S);
        int64_t bj = -1;
        for (int64_t j = 0; j < mtry; j++)
            if (fb[j].bin >= 0 && (bj < 0 || fb[j].gain > fb[bj].gain))
                bj = j;
        if (bj < 0 || !(fb[bj].gain > 1e-12 * (fabs(s_tot) + 1e-30)))
            continue;
        int64_t feat = perm[bj];
        int cut = fb[bj].bin;
        int64_t nl = partition(b->code + feat * b->n, cut, ix, n, tmp);
        if (!tree_room(t, 2)) {
            ok = false;
            break;
        }
        t->feat[p.node] = (int32_t)feat;
        t->thr[p.node] = o->x ? node_threshold(o->x, f, feat, ix, n, nl)
                              : b->edge[feat * (DSI_MAX_BINS - 1) + cut];
        t->left[p.node] = (int32_t)new_node(t);
        t->right[p.node] = (int32_t)new_node(t);
        if (importance)
            importance[feat] += fb[bj].gain;
        stack[top++] = (pending){t->right[p.node], p.start + nl, p.end, p.depth + 1};
        stack[top++] = (pending){t->left[p.node], p.start, p.start + nl, p.depth + 1};
    }
    free(stack), free(perm), free(tmp), free(hist), free(tot), free(fb);
    if (!ok) {
        dsi_tree_free(t);
        return dsi_fail(DS_ERR_NOMEM, "out of memory growing a tree on %lld samples",
                        (long long)m);
    }
    return DS_OK;
}

void dsi_tree_free(dsi_tree *t)
{
    free(t->feat), free(t->left), free(t->right), free(t->thr), free(t->value);
    memset(t, 0, sizeof *t);
}

const float *dsi_tree_leaf(const float *nodes, const float *values, int width, const float *x)
{
    int64_t k = 0;
    while (nodes[4 * k + 2] >= 0)
        k = (int64_t)(x[(int64_t)nodes[4 * k]] <= nodes[4 * k + 1] ? nodes[4 * k + 2]
                                                                    : nodes[4 * k + 3]);
    return values + k * width;
}

/* ---- in model files ---- */

ds_status dsi_trees_put(ds_classic *m, const dsi_tree *trees, int64_t T, int width)
{
    int64_t N = 0;
    for (int64_t t = 0; t < T; t++)
        N += trees[t].count;
    if (N >= 1 << 24)
        return dsi_fail(DS_ERR_ARG, "%s: %lld tree nodes, more than a model file holds "
                        "(2^24): give a smaller max-depth or n-trees", m->method->name,
                        (long long)N);
    float *nodes = malloc((size_t)(4 * N) * sizeof *nodes);
    float *values = malloc((size_t)(N * width) * sizeof *values);
    float *roots = malloc((size_t)T * sizeof *roots);
    ds_status st = DS_OK;
    if (!nodes || !values || !roots)
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for %lld tree nodes", (long long)N);
    for (int64_t t = 0, at = 0; !st && t < T; t++) {
        const dsi_tree *tr = &trees[t];
        roots[t] = (float)at;
        for (int64_t k = 0; k < tr->count; k++, at++) {
            float *nd = nodes + 4 * at;
            nd[0] = (float)(tr->left[k] < 0 ? 0 : tr->feat[k]);
            nd[1] = tr->left[k] < 0 ? 0 : tr->thr[k];
            nd[2] = (float)tr->left[k];
            nd[3] = (float)tr->right[k];
            memcpy(values + at * width, tr->value + k * width, (size_t)width * sizeof *values);
        }
    }
    int64_t sn[2] = {N, 4}, sv[2] = {N, width};
    if (!st && !(st = dsi_classic_put(m, "nodes", 2, sn, nodes)) &&
        !(st = dsi_classic_put(m, "values", 2, sv, values)))
        st = dsi_classic_put(m, "roots", 1, &T, roots);
    free(nodes), free(values), free(roots);
    return st;
}

ds_status dsi_trees_check(ds_classic *m, const char *file, int64_t T, int width)
{
    const ds_tensor *nt = ds_tensor_set_get(m->arrays, "nodes");
    int64_t N = nt && nt->ndim == 2 ? nt->shape[0] : -1;
    ds_status st = N < 1 || N >= 1 << 24 ? dsi_classic_need(m, file, "nodes", 1, 4)
                                          : dsi_classic_need(m, file, "nodes", N, 4);
    if (!st)
        st = dsi_classic_need(m, file, "values", N, width);
    if (!st)
        st = dsi_classic_need(m, file, "roots", T, -1);
    if (st)
        return st;
    const float *nodes = nt->data, *roots = dsi_classic_arr(m, "roots", T, -1);
    for (int64_t t = 0; t < T; t++)
        if (!(roots[t] >= 0 && roots[t] < (float)N && roots[t] == floorf(roots[t])) ||
            (t == 0 && roots[0] != 0) || (t > 0 && !(roots[t] > roots[t - 1])))
            return dsi_fail(DS_ERR_FORMAT, "%s: classic model '%s': tree %lld's first node "
                            "%g is not inside the %lld nodes after the previous tree's",
                            file, m->method->name, (long long)t, (double)roots[t], (long long)N);
    for (int64_t t = 0; t < T; t++) {
        int64_t end = t + 1 < T ? (int64_t)roots[t + 1] : N;
        int64_t r0 = (int64_t)roots[t];
        for (int64_t k = r0; k < end; k++) {
            const float *nd = nodes + 4 * k;
            bool leaf = nd[2] == -1 && nd[3] == -1;
            bool ok = leaf || (nd[0] >= 0 && nd[0] < (float)m->features_in &&
                               nd[0] == floorf(nd[0]) && isfinite(nd[1]) &&
                               nd[2] == floorf(nd[2]) && nd[3] == floorf(nd[3]) &&
                               nd[2] > (float)(k - r0) && nd[3] > (float)(k - r0) &&
                               nd[2] < (float)(end - r0) && nd[3] < (float)(end - r0));
            if (!ok)
                return dsi_fail(DS_ERR_FORMAT, "%s: classic model '%s': tree %lld, node %lld: "
                                "feature %g, children %g and %g are not a leaf (-1, -1) nor "
                                "a feature below %lld with children after the node in its "
                                "tree", file, m->method->name, (long long)t,
                                (long long)(k - r0), (double)nd[0], (double)nd[2],
                                (double)nd[3], (long long)m->features_in);
        }
    }
    const float *v = dsi_classic_arr(m, "values", N, width);
    for (int64_t i = 0; i < N * width; i++)
        if (!isfinite(v[i]))
            return dsi_fail(DS_ERR_FORMAT, "%s: classic model '%s': array 'model.values' "
                            "holds a non-finite value", file, m->method->name);
    return DS_OK;
}
