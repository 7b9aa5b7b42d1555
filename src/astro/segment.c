/* segment.c - classical segmentation of blends: Gaussian smoothing, a k-sigma threshold,
 * markers at the local maxima, a marker-based watershed; and the per-object IoU of label
 * images under the best one-to-one matching of labels. */
#include "skysim.h"

#include "../internal.h"

#include <math.h>

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 1.4826 times the median absolute deviation from the median: the sky's sigma where the
 * objects cover less than half the stamp. */
static double mad_sigma(const float *img, int64_t n, float *tmp)
{
    memcpy(tmp, img, sizeof *tmp * (size_t)n);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_float);
    float med = tmp[n / 2];
    for (int64_t i = 0; i < n; i++)
        tmp[i] = fabsf(img[i] - med);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_float);
    return 1.4826 * tmp[n / 2];
}

/* out = img convolved with a normalized Gaussian of sigma s (separable, truncated at 4 s,
 * the edges clamped); s <= 0: a copy. */
static void smooth(const float *img, int h, int w, double s, float *tmp, float *out)
{
    if (!(s > 0)) {
        memcpy(out, img, sizeof *out * (size_t)h * w);
        return;
    }
    const int r = (int)ceil(4 * s) < 32 ? (int)ceil(4 * s) : 32;
    double k[65], sum = 0;
    for (int j = -r; j <= r; j++)
        sum += k[j + r] = exp(-0.5 * j * j / (s * s));
    for (int j = 0; j <= 2 * r; j++)
        k[j] /= sum;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = 0;
            for (int j = -r; j <= r; j++) {
                int xx = x + j < 0 ? 0 : x + j >= w ? w - 1 : x + j;
                v += k[j + r] * img[(size_t)y * w + xx];
            }
            tmp[(size_t)y * w + x] = (float)v;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = 0;
            for (int j = -r; j <= r; j++) {
                int yy = y + j < 0 ? 0 : y + j >= h ? h - 1 : y + j;
                v += k[j + r] * tmp[(size_t)yy * w + x];
            }
            out[(size_t)y * w + x] = (float)v;
        }
}

/* ---- the watershed's priority queue: highest value first, then first pushed ---- */
typedef struct {
    float v;
    int64_t order, pix;
} item;
typedef struct {
    item *a;
    int64_t n, pushed;
} heap;

static int above(const item *x, const item *y)
{
    return x->v > y->v || (x->v == y->v && x->order < y->order);
}

static void heap_push(heap *q, float v, int64_t pix)
{
    int64_t i = q->n++;
    item it = {v, q->pushed++, pix};
    while (i > 0 && above(&it, &q->a[(i - 1) / 2])) {
        q->a[i] = q->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->a[i] = it;
}

static item heap_pop(heap *q)
{
    item top = q->a[0], last = q->a[--q->n];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && above(&q->a[c + 1], &q->a[c]))
            c++;
        if (!above(&q->a[c], &last))
            break;
        q->a[i] = q->a[c];
        i = c;
    }
    if (q->n > 0)
        q->a[i] = last;
    return top;
}

/* Markers: the local maxima (3 x 3, ties to the first in raster order) of sm in the
 * foreground, highest first, kept when min_distance from every kept one. */
static int find_markers(const float *sm, const unsigned char *fg, int h, int w,
                        const ds_segment_opts *o, int64_t *mk)
{
    int nm = 0;
    for (;;) {   /* selection by repeated scans: at most max_objects of them */
        int64_t best = -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int64_t p = (int64_t)y * w + x;
                if (!fg[p] || (best >= 0 && !(sm[p] > sm[best])))
                    continue;
                int peak = 1, taken = 0;
                for (int dy = -1; dy <= 1 && peak; dy++)
                    for (int dx = -1; dx <= 1 && peak; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if ((dy || dx) && yy >= 0 && yy < h && xx >= 0 && xx < w) {
                            float v = sm[(int64_t)yy * w + xx];
                            peak = v < sm[p] || (v == sm[p] && (int64_t)yy * w + xx > p);
                        }
                    }
                for (int k = 0; k < nm && peak && !taken; k++)
                    taken = hypot((double)(mk[k] % w - x), (double)(mk[k] / w - y)) <
                            o->min_distance || mk[k] == p;
                if (peak && !taken)
                    best = p;
            }
        if (best < 0 || nm == o->max_objects)
            return nm;
        mk[nm++] = best;
    }
}

/* Priority flood from the markers over the foreground (8-neighbours). */
static void flood(const float *sm, const unsigned char *fg, int h, int w, const int64_t *mk,
                  int nm, heap *q, float *lab)
{
    for (int k = 0; k < nm; k++) {
        lab[mk[k]] = (float)(k + 1);
        heap_push(q, sm[mk[k]], mk[k]);
    }
    while (q->n > 0) {
        item it = heap_pop(q);
        const int y = (int)(it.pix / w), x = (int)(it.pix % w);
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                    continue;
                int64_t p = (int64_t)yy * w + xx;
                if (fg[p] && lab[p] == 0) {
                    lab[p] = lab[it.pix];
                    heap_push(q, sm[p], p);
                }
            }
    }
}

static ds_status resolve(const ds_segment_opts *in, ds_segment_opts *o)
{
    ds_segment_opts z = {0};
    *o = in ? *in : z;
    if (o->k == 0)
        o->k = 1.3;
    if (o->smooth == 0)
        o->smooth = 1;
    if (o->max_objects == 0)
        o->max_objects = 2;
    if (o->min_distance == 0)
        o->min_distance = 2;
    if (!isfinite(o->k) || !isfinite(o->sky_sigma) || !(o->smooth <= 8) ||
        o->max_objects < 1 || o->max_objects > 255 || !(o->min_distance >= 0))
        return dsi_fail(DS_ERR_ARG, "ds_segment_watershed: options k %g, sky_sigma %g, smooth "
                        "%g (<= 8), max_objects %d (1 to 255), min_distance %g (>= 0) out of "
                        "range", o->k, o->sky_sigma, o->smooth, o->max_objects, o->min_distance);
    return DS_OK;
}

ds_status ds_segment_watershed(const float *img, int h, int w, const ds_segment_opts *opts,
                               float *labels, int *found)
{
    ds_segment_opts o;
    ds_status st;
    if (!img || !labels)
        return dsi_fail(DS_ERR_ARG, "ds_segment_watershed: image and labels must not be NULL");
    if (h < 1 || w < 1 || (int64_t)h * w > ((int64_t)1 << 28))
        return dsi_fail(DS_ERR_ARG, "ds_segment_watershed: image %d x %d is empty or too large",
                        h, w);
    if ((st = resolve(opts, &o)) != DS_OK)
        return st;
    const int64_t n = (int64_t)h * w;
    float *sm = malloc(sizeof *sm * (size_t)(2 * n));
    unsigned char *fg = malloc((size_t)n);
    heap q = {malloc(sizeof(item) * (size_t)n), 0, 0};
    int64_t mk[255];
    if (!sm || !fg || !q.a) {
        free(sm), free(fg), free(q.a);
        return dsi_fail(DS_ERR_NOMEM, "ds_segment_watershed: out of memory for %d x %d", h, w);
    }
    double sigma = o.sky_sigma > 0 ? o.sky_sigma : mad_sigma(img, n, sm);
    smooth(img, h, w, o.smooth, sm + n, sm);
    const double thr = o.k * sigma;
    for (int64_t i = 0; i < n; i++) {
        fg[i] = sm[i] > thr;
        labels[i] = 0;
    }
    int nm = find_markers(sm, fg, h, w, &o, mk);
    flood(sm, fg, h, w, mk, nm, &q, labels);
    if (found)
        *found = nm;
    free(sm), free(fg), free(q.a);
    return DS_OK;
}

/* The largest sum of inter[k][perm[k]] over one-to-one matchings (-1: unmatched), by
 * depth-first search over the true labels (n <= 8). */
static double best_match(const double *iou, int n, int k, unsigned used, int *cur, int *best,
                         double acc, double top)
{
    if (k == n) {
        if (acc > top)
            memcpy(best, cur, sizeof *cur * (size_t)n);
        return acc > top ? acc : top;
    }
    cur[k] = -1;
    top = best_match(iou, n, k + 1, used, cur, best, acc, top);
    for (int p = 0; p < n; p++)
        if (!(used >> p & 1u) && iou[k * n + p] > 0) {
            cur[k] = p;
            top = best_match(iou, n, k + 1, used | 1u << p, cur, best, acc + iou[k * n + p], top);
        }
    return top;
}

static ds_status check_labels(const float *x, int64_t npix, int n, const char *what)
{
    for (int64_t i = 0; i < npix; i++)
        if (!(x[i] >= 0 && x[i] <= n && x[i] == floorf(x[i])))
            return dsi_fail(DS_ERR_ARG, "ds_segment_iou: %s label %g at pixel %lld is not an "
                            "integer in [0, %d]", what, x[i], (long long)i, n);
    return DS_OK;
}

ds_status ds_segment_iou(const float *pred, const float *truth, int64_t npix, int n_labels,
                         double *iou)
{
    ds_status st;
    if (!pred || !truth || !iou || npix < 1)
        return dsi_fail(DS_ERR_ARG, "ds_segment_iou: NULL images or results, or no pixels");
    if (n_labels < 1 || n_labels > 8)
        return dsi_fail(DS_ERR_ARG, "ds_segment_iou: n_labels %d must be in [1, 8]", n_labels);
    if ((st = check_labels(pred, npix, n_labels, "predicted")) != DS_OK ||
        (st = check_labels(truth, npix, n_labels, "true")) != DS_OK)
        return st;
    int64_t inter[64] = {0}, np[8] = {0}, nt[8] = {0};
    for (int64_t i = 0; i < npix; i++) {
        int p = (int)pred[i], t = (int)truth[i];
        if (p)
            np[p - 1]++;
        if (t)
            nt[t - 1]++;
        if (p && t)
            inter[(t - 1) * n_labels + p - 1]++;
    }
    double m[64];
    for (int t = 0; t < n_labels; t++)
        for (int p = 0; p < n_labels; p++) {
            int64_t in = inter[t * n_labels + p], un = nt[t] + np[p] - in;
            m[t * n_labels + p] = un > 0 ? (double)in / un : 0;
        }
    int cur[8], best[8];
    for (int t = 0; t < n_labels; t++)
        best[t] = -1;
    best_match(m, n_labels, 0, 0, cur, best, 0, -1);
    for (int t = 0; t < n_labels; t++)
        iou[t] = nt[t] == 0 ? NAN : best[t] < 0 ? 0 : m[t * n_labels + best[t]];
    return DS_OK;
}
