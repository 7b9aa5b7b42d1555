/* explain_figures.c - the figures of deepsky explain: input, map and overlay with colour
 * bars per sample; mosaics (filters, feature maps) on one shared scale; class
 * visualizations. */
#include "explain_figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIG_ROWS_MAX 10

/* One sample's values of a [N, C..., H, W] (or [N, L]) tensor as an H x W image: the mean
 * (how = 0), the sum (1) or the largest value (2) over the leading axes. */
float *xfig_plane(const ds_tensor *t, int64_t i, int how, int64_t *h, int64_t *w)
{
    int nd = ds_tensor_ndim(t);
    const int64_t *s = ds_tensor_shape(t);
    *w = s[nd - 1];
    *h = nd >= 3 ? s[nd - 2] : 1;
    int64_t hw = *h * *w, per = ds_tensor_numel(t) / s[0], planes = per / hw;
    const float *v = ds_tensor_data((ds_tensor *)t) + i * per;
    float *p = malloc((size_t)hw * sizeof *p);
    for (int64_t q = 0; p && q < hw; q++) {
        double a = how == 2 ? -INFINITY : 0;
        for (int64_t c = 0; c < planes; c++)
            a = how == 2 ? fmax(a, v[c * hw + q]) : a + v[c * hw + q];
        p[q] = (float)(how == 0 ? a / (double)planes : a);
    }
    return p;
}

/* The map over the input in a, with a colour bar; the map alone when their sizes differ
 * (a 1-D Grad-CAM of a multi-channel spectrum). */
static ds_status overlay(ds_axes *a, const float *img, int64_t h, int64_t w, const float *m,
                         int64_t mh, int64_t mw, ds_colormap cm, const double *r)
{
    ds_status st;
    if (mh != h || mw != w)
        st = ds_axes_image_cmap(a, mh, mw, m, r[0], r[1], cm);
    else if ((st = ds_axes_image(a, h, w, img, 0, 0, 0)) == DS_OK)
        st = ds_axes_image_overlay(a, h, w, m, r[0], r[1], cm, 0.75);
    return st ? st : ds_axes_colorbar(a);
}

/* A magnitude map's range: from 0 to its largest value (0 to 1 for a map of zeros, which
 * would otherwise show in the middle colour); a signed map's: automatic (0, 0). */
static void map_range(const float *m, int64_t n, bool signed_map, double *r)
{
    r[0] = r[1] = 0;
    if (signed_map)
        return;
    for (int64_t q = 0; q < n; q++)
        r[1] = isfinite(m[q]) && m[q] > r[1] ? m[q] : r[1];
    if (r[1] == 0)
        r[1] = 1;
}

/* The input, the map and the map over the input, one row per sample (at most 10). */
int xfig_attribution(const char *path, const char *method, const ds_tensor *x,
                     const ds_tensor *map, bool signed_map, const int64_t *index,
                     const int64_t *target, const float *score)
{
    int64_t N = ds_tensor_shape(map)[0], rows = N < FIG_ROWS_MAX ? N : FIG_ROWS_MAX;
    ds_figure *f = ds_figure_create((int)rows, 3, 1020, (int)(300 * rows + 40));
    ds_colormap cm = signed_map ? DS_CMAP_DIVERGING : DS_CMAP_SEQUENTIAL;
    ds_status st = f ? DS_OK : DS_ERR_NOMEM;
    char title[160];
    snprintf(title, sizeof title, "deepsky explain: %s", method);
    if (!st)
        st = ds_figure_title(f, title);
    for (int64_t r = 0; r < rows && !st; r++) {
        int64_t h, w, mh, mw;
        float *img = xfig_plane(x, r, 0, &h, &w);
        float *m = xfig_plane(map, r, signed_map ? 1 : 2, &mh, &mw);
        ds_axes *a0 = ds_figure_axes(f, (int)(3 * r)), *a1 = ds_figure_axes(f, (int)(3 * r + 1));
        ds_axes *a2 = ds_figure_axes(f, (int)(3 * r + 2));
        char t0[96], t1[96];
        snprintf(t0, sizeof t0, "sample %lld", (long long)index[r]);
        snprintf(t1, sizeof t1, "%s, value %lld: %.4g", signed_map ? "signed" : "magnitude",
                 (long long)target[r], score[r]);
        ds_axes_labels(a0, t0, NULL, NULL);
        ds_axes_labels(a1, t1, NULL, NULL);
        ds_axes_labels(a2, "overlay", NULL, NULL);
        double rg[2] = {0, 0};
        if (img && m)
            map_range(m, mh * mw, signed_map, rg);
        if (!img || !m)
            st = DS_ERR_NOMEM;
        else if ((st = ds_axes_image(a0, h, w, img, 0, 0, 0)) == DS_OK &&
                 (st = ds_axes_image_cmap(a1, mh, mw, m, rg[0], rg[1], cm)) == DS_OK &&
                 (st = ds_axes_colorbar(a1)) == DS_OK)
            st = overlay(a2, img, h, w, m, mh, mw, cm, rg);
        free(img);
        free(m);
    }
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st;
}

/* Tiles t [n, planes, h, w] (or [n, h, w]) in a mosaic of n rows by planes columns (a
 * square-ish grid when planes is 1), a NaN pixel between tiles; *mh x *mw. */
static float *mosaic(const ds_tensor *t, int64_t *mh, int64_t *mw)
{
    int nd = ds_tensor_ndim(t);
    const int64_t *s = ds_tensor_shape(t);
    int64_t n = s[0], h = nd >= 3 ? s[nd - 2] : 1, w = s[nd - 1];
    int64_t planes = ds_tensor_numel(t) / (n * h * w), tiles = n * planes;
    int64_t cols = planes > 1 ? planes : (int64_t)ceil(sqrt((double)n));
    int64_t rows = (tiles + cols - 1) / cols;
    *mh = rows * (h + 1) - 1;
    *mw = cols * (w + 1) - 1;
    float *m = malloc((size_t)(*mh * *mw) * sizeof *m);
    if (!m)
        return NULL;
    for (int64_t q = 0; q < *mh * *mw; q++)
        m[q] = NAN;
    const float *v = ds_tensor_data((ds_tensor *)t);
    for (int64_t k = 0; k < tiles; k++) {
        int64_t r0 = k / cols * (h + 1), c0 = k % cols * (w + 1);
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                m[(r0 + y) * *mw + c0 + x] = v[k * h * w + y * w + x];
    }
    return m;
}

int xfig_mosaic(const char *path, const char *title, const ds_tensor *t, bool signed_vals)
{
    int64_t mh, mw;
    float *m = mosaic(t, &mh, &mw);
    ds_figure *f = ds_figure_create(1, 1, 900, 860);
    ds_status st = m && f ? DS_OK : DS_ERR_NOMEM;
    if (!st && !(st = ds_figure_title(f, title)) &&
        !(st = ds_axes_image_cmap(ds_figure_axes(f, 0), mh, mw, m, 0, 0,
                                  signed_vals ? DS_CMAP_DIVERGING : DS_CMAP_SEQUENTIAL)) &&
        !(st = ds_axes_colorbar(ds_figure_axes(f, 0))))
        st = ds_figure_save_png(f, path);
    free(m);
    ds_figure_free(f);
    return st;
}

int xfig_images(const char *path, const char *title, const ds_tensor *imgs,
                const int64_t *target, const float *scores, int64_t steps)
{
    int64_t n = ds_tensor_shape(imgs)[0], cols = n < 5 ? n : 5, rows = (n + cols - 1) / cols;
    ds_figure *f = ds_figure_create((int)rows, (int)cols, (int)(220 * cols),
                                    (int)(230 * rows + 40));
    ds_status st = f ? ds_figure_title(f, title) : DS_ERR_NOMEM;
    for (int64_t i = 0; i < n && !st; i++) {
        int64_t h, w;
        float *p = xfig_plane(imgs, i, 0, &h, &w);
        char t[96];
        snprintf(t, sizeof t, "%lld: %.3g -> %.3g", (long long)target[i],
                 scores[i * (steps + 1)], scores[i * (steps + 1) + steps]);
        ds_axes_labels(ds_figure_axes(f, (int)i), t, NULL, NULL);
        st = p ? ds_axes_image(ds_figure_axes(f, (int)i), h, w, p, 0, 0, 0) : DS_ERR_NOMEM;
        free(p);
    }
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st;
}
