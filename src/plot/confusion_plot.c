/* confusion_plot.c - a confusion matrix as a figure: cells coloured by their row's share,
 * labelled with the share and the count, class names along the axes. */
#include "../internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ds_status ds_plot_confusion(const int64_t *counts, int k, const char *const *names,
                            const char *title, const char *path)
{
    if (!counts || !path || k < 2 || k > 64)
        return dsi_fail(DS_ERR_ARG, "ds_plot_confusion: %s, %d classes (2..64)",
                        counts ? "no path" : "no counts", k);
    for (int i = 0; i < k * k; i++)
        if (counts[i] < 0)
            return dsi_fail(DS_ERR_ARG, "ds_plot_confusion: count [%d, %d] = %lld is negative",
                            i / k, i % k, (long long)counts[i]);
    float *share = malloc(sizeof *share * (size_t)(k * k));
    ds_figure *f = share ? ds_figure_create(1, 1, 180 + 90 * k, 120 + 80 * k) : NULL;
    if (!f) {
        free(share);
        return dsi_fail(DS_ERR_NOMEM, "ds_plot_confusion: out of memory");
    }
    for (int t = 0; t < k; t++) {
        int64_t row = 0;
        for (int p = 0; p < k; p++)
            row += counts[t * k + p];
        for (int p = 0; p < k; p++)
            share[t * k + p] = row ? (float)((double)counts[t * k + p] / (double)row) : 0;
    }
    /* the axis labels name the classes in order: "predicted, left to right: a | b | c" */
    char xl[1024] = "predicted, left to right:", yl[1024] = "true, top to bottom:";
    for (int i = 0; i < k; i++) {
        char nm[32];
        if (names && names[i])
            snprintf(nm, sizeof nm, "%s", names[i]);
        else
            snprintf(nm, sizeof nm, "%d", i);
        size_t a = strlen(xl), b = strlen(yl);
        snprintf(xl + a, sizeof xl - a, "%s %s", i ? " |" : "", nm);
        snprintf(yl + b, sizeof yl - b, "%s %s", i ? " |" : "", nm);
    }
    ds_axes *ax = ds_figure_axes(f, 0);
    ds_axes_labels(ax, title ? title : "Confusion matrix (share of each true class)", xl, yl);
    ds_status st = ds_axes_image_cmap(ax, k, k, share, 0, 1, DS_CMAP_SEQUENTIAL);
    if (!st)
        st = ds_axes_colorbar(ax);
    for (int i = 0; i < k * k && !st; i++) {
        char txt[64];
        snprintf(txt, sizeof txt, "%.1f%% (%lld)", 100.0 * share[i], (long long)counts[i]);
        st = ds_axes_text(ax, i % k, i / k, txt, share[i] < 0.55);
    }
    free(share);
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st;
}
