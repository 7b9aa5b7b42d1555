/* knn.c - k nearest neighbours (classes by vote, values by mean; uniform or 1/distance
 * weights, as scikit-learn's KNeighbors*): brute force, or a k-d tree above 10000 training
 * samples. Both find the same neighbours: the k smallest (squared distance in double,
 * index) pairs, so ties go to the earlier training sample. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KD_LEAF 16
#define KD_AUTO 10000   /* training samples above which algorithm=auto builds the tree */

typedef struct { double d; int64_t i; } nb;

typedef struct {
    int64_t start, end;      /* the node's points: idx[start, end) */
    int64_t left, right;     /* children, -1 for a leaf */
    int64_t dim;
    double split;
} kd_node;

typedef struct {
    int64_t *idx;
    kd_node *nodes;
    int64_t count;
} kd_tree;

static bool nb_less(nb a, nb b) { return a.d < b.d || (a.d == b.d && a.i < b.i); }

/* Offers c to the max-heap h of at most k (count *m). */
static void heap_offer(nb *h, int64_t k, int64_t *m, nb c)
{
    if (*m == k && !nb_less(c, h[0]))
        return;
    int64_t i;
    if (*m < k) {
        i = (*m)++;
        while (i > 0 && nb_less(h[(i - 1) / 2], c)) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = c;
        return;
    }
    for (i = 0;;) {   /* replace the root and sift down */
        int64_t l = 2 * i + 1, r = l + 1, big = i;
        nb at = big == i ? c : h[big];
        if (l < k && nb_less(at, h[l]))
            big = l, at = h[l];
        if (r < k && nb_less(at, h[r]))
            big = r;
        if (big == i)
            break;
        h[i] = h[big];
        i = big;
    }
    h[i] = c;
}

static double dist2(const float *a, const float *b, int64_t f)
{
    double s = 0;
    for (int64_t j = 0; j < f; j++) {
        double t = (double)a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* ---- the k-d tree ---- */

static void swap_i(int64_t *a, int64_t *b)
{
    int64_t t = *a;
    *a = *b;
    *b = t;
}

/* Quickselect: idx[lo, hi) ordered so that idx[mid] has the mid-th value along dim. */
static void select_mid(const float *x, int64_t f, int64_t dim, int64_t *idx, int64_t lo,
                       int64_t hi, int64_t mid)
{
    while (hi - lo > 1) {
        double pv = x[idx[lo + (hi - lo) / 2] * f + dim];
        int64_t i = lo, j = hi - 1;
        while (i <= j) {
            while (x[idx[i] * f + dim] < pv)
                i++;
            while (x[idx[j] * f + dim] > pv)
                j--;
            if (i <= j)
                swap_i(&idx[i++], &idx[j--]);
        }
        if (mid <= j)
            hi = j + 1;
        else if (mid >= i)
            lo = i;
        else
            return;
    }
}

static int64_t kd_build(kd_tree *t, const float *x, int64_t f, int64_t start, int64_t end)
{
    int64_t me = t->count++;
    kd_node *nd = &t->nodes[me];
    *nd = (kd_node){start, end, -1, -1, 0, 0};
    if (end - start <= KD_LEAF)
        return me;
    double best = -1;
    for (int64_t j = 0; j < f; j++) {   /* split the widest dimension */
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = start; i < end; i++) {
            double v = x[t->idx[i] * f + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi - lo > best)
            best = hi - lo, nd->dim = j;
    }
    if (!(best > 0))
        return me;   /* all points equal: a leaf */
    int64_t mid = start + (end - start) / 2;
    select_mid(x, f, nd->dim, t->idx, start, end, mid);
    nd->split = x[t->idx[mid] * f + nd->dim];
    int64_t l = kd_build(t, x, f, start, mid), r = kd_build(t, x, f, mid, end);
    t->nodes[me].left = l;
    t->nodes[me].right = r;
    return me;
}

/* Points left of the split have values <= split, right >= split. */
static void kd_search(const kd_tree *t, int64_t node, const float *x, int64_t f, const float *q,
                      nb *h, int64_t k, int64_t *m)
{
    const kd_node *nd = &t->nodes[node];
    if (nd->left < 0) {
        for (int64_t i = nd->start; i < nd->end; i++) {
            int64_t p = t->idx[i];
            heap_offer(h, k, m, (nb){dist2(q, x + p * f, f), p});
        }
        return;
    }
    double diff = (double)q[nd->dim] - nd->split;
    int64_t near = diff <= 0 ? nd->left : nd->right, far = diff <= 0 ? nd->right : nd->left;
    kd_search(t, near, x, f, q, h, k, m);
    if (*m < k || diff * diff <= h[0].d)
        kd_search(t, far, x, f, q, h, k, m);
}

static void kd_free(void *p)
{
    kd_tree *t = p;
    if (t) {
        free(t->idx);
        free(t->nodes);
        free(t);
    }
}

static ds_status kd_make(ds_classic *m, const float *x, int64_t n, int64_t f)
{
    kd_tree *t = calloc(1, sizeof *t);
    if (t) {
        t->idx = malloc((size_t)n * sizeof *t->idx);
        t->nodes = malloc((size_t)(n / 2 + 8) * sizeof *t->nodes);   /* leaves hold 8 or more */
    }
    if (!t || !t->idx || !t->nodes) {
        kd_free(t);
        return dsi_fail(DS_ERR_NOMEM, "knn: out of memory for the k-d tree of %lld samples",
                        (long long)n);
    }
    for (int64_t i = 0; i < n; i++)
        t->idx[i] = i;
    kd_build(t, x, f, 0, n);
    m->aux = t;
    return DS_OK;
}

/* ---- the method ---- */

static bool use_tree(const ds_classic *m, int64_t n)
{
    double a = dsi_classic_num(m, "algorithm");
    return a == 2 || (a == 0 && n > KD_AUTO);
}

static int64_t label_width(const ds_classic *m)
{
    return m->task == DS_CLASSIC_CLASSIFY ? 1 : m->outputs;
}

static ds_status knn_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    (void)seed;
    int64_t k = (int64_t)dsi_classic_num(m, "k"), w = label_width(m);
    if (k > d->n)
        return dsi_fail(DS_ERR_ARG, "knn: k = %lld is more than the %lld training %s",
                        (long long)k, (long long)d->n, dsi_plural(d->n, "sample", "samples"));
    int64_t s2[2] = {d->n, d->f}, sy[2] = {d->n, w};
    float *y = malloc((size_t)(d->n * w) * sizeof *y);
    if (!y)
        return dsi_fail(DS_ERR_NOMEM, "knn: out of memory");
    for (int64_t i = 0; i < d->n * w; i++)
        y[i] = d->cls ? (float)d->cls[i] : d->y[i];
    ds_status st = dsi_classic_put(m, "x", 2, s2, d->x);
    if (!st)
        st = dsi_classic_put(m, "y", 2, sy, y);
    free(y);
    if (!st && use_tree(m, d->n))
        st = kd_make(m, dsi_classic_arr(m, "x", d->n, d->f), d->n, d->f);
    return st;
}

static int64_t knn_width(const ds_classic *m)
{
    return m->task == DS_CLASSIC_CLASSIFY ? m->classes : m->outputs;
}

/* Class shares or the mean of the neighbours h[0, k) into out. */
static void vote(const ds_classic *m, const nb *h, int64_t k, const float *y, float *out)
{
    int64_t w = knn_width(m), lw = label_width(m);
    bool by_dist = dsi_classic_num(m, "weights") == 1, exact = false;
    for (int64_t q = 0; q < k && by_dist; q++)
        exact |= h[q].d == 0;
    double acc[256], *a = w <= 256 ? acc : NULL, total = 0;
    double *big = a ? NULL : calloc((size_t)w, sizeof *big);
    a = a ? a : big;
    if (!a) {   /* cannot happen for the sizes load accepts; stay defined */
        memset(out, 0, (size_t)w * sizeof *out);
        return;
    }
    memset(a, 0, (size_t)w * sizeof *a);
    for (int64_t q = 0; q < k; q++) {
        /* scikit-learn: a sample at distance 0 takes all the weight */
        double wt = !by_dist ? 1 : exact ? (h[q].d == 0) : 1 / sqrt(h[q].d);
        const float *yl = y + h[q].i * lw;
        if (m->task == DS_CLASSIC_CLASSIFY)
            a[(int64_t)yl[0]] += wt;
        else
            for (int64_t j = 0; j < w; j++)
                a[j] += wt * yl[j];
        total += wt;
    }
    for (int64_t j = 0; j < w; j++)
        out[j] = (float)(a[j] / total);
    free(big);
}

static void knn_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    const ds_tensor *tx = ds_classic_array(m, "x");
    int64_t N = tx->shape[0], f = m->features_in, k = (int64_t)dsi_classic_num(m, "k");
    const float *X = tx->data, *y = ds_classic_array(m, "y")->data;
    const kd_tree *t = m->aux;
    int64_t w = knn_width(m);
#pragma omp parallel
    {
        nb *h = malloc((size_t)k * sizeof *h);
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n; i++) {
            int64_t cnt = 0;
            const float *q = x + i * f;
            if (!h) {   /* no memory for k neighbours: a defined (empty) answer */
                memset(out + i * w, 0, (size_t)w * sizeof *out);
                continue;
            }
            if (t)
                kd_search(t, 0, X, f, q, h, k, &cnt);
            else
                for (int64_t p = 0; p < N; p++)
                    heap_offer(h, k, &cnt, (nb){dist2(q, X + p * f, f), p});
            vote(m, h, cnt, y, out + i * w);
        }
        free(h);
    }
}

static ds_status knn_check(ds_classic *m, const char *file)
{
    const ds_tensor *tx = ds_classic_array(m, "x");
    int64_t n = tx && tx->ndim == 2 ? tx->shape[0] : 0, k = (int64_t)dsi_classic_num(m, "k");
    ds_status st = dsi_classic_need(m, file, "x", n > 0 ? n : 1, m->features_in);
    if (!st)
        st = dsi_classic_need(m, file, "y", n, label_width(m));
    if (st)
        return st;
    if (k > n)
        return dsi_fail(DS_ERR_FORMAT, "%s: knn: k = %lld but %lld training samples", file,
                        (long long)k, (long long)n);
    const float *y = ds_classic_array(m, "y")->data;
    for (int64_t i = 0; i < n * label_width(m); i++)
        if (m->task == DS_CLASSIC_CLASSIFY ? !(y[i] >= 0 && y[i] < (float)m->classes &&
                                               y[i] == floorf(y[i]))
                                           : !isfinite(y[i]))
            return dsi_fail(DS_ERR_FORMAT, "%s: knn: label %lld (%g) is not %s", file,
                            (long long)i, y[i], m->task == DS_CLASSIC_CLASSIFY
                            ? "a class of the model" : "finite");
    return use_tree(m, n) ? kd_make(m, tx->data, n, m->features_in) : DS_OK;
}

static const dsi_classic_param knn_params[] = {
    {"k", "5", NULL, 1, 1e6, true, "neighbours"},
    {"weights", "uniform", "uniform|distance", 0, 0, false, "each neighbour counts the same, "
     "or 1/distance"},
    {"algorithm", "auto", "auto|brute|kd-tree", 0, 0, false, "auto: a k-d tree above 10000 "
     "training samples, brute force below"},
    {"task", "auto", "auto|classify|regress", 0, 0, false, "classify (vote) or regress (mean); "
     "auto: classify integer labels"},
};

const dsi_classic_method dsi_classic_knn = {
    "knn", "k nearest neighbours (brute force, or a k-d tree above 10000 samples)",
    DSI_TASK(DS_CLASSIC_CLASSIFY) | DSI_TASK(DS_CLASSIC_REGRESS), knn_params,
    (int)(sizeof knn_params / sizeof *knn_params), knn_fit, knn_width, knn_predict, knn_check,
    kd_free};
