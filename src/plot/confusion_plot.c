/* confusion_plot.c - a confusion matrix as a figure: cells coloured by their row's share,
 * labelled with the share and the count, each class named in its diagonal cell. */
#include "../internal.h"

#include <stdio.h>
#include <stdlib.h>

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
    ds_figure *f = share ? ds_figure_create(1, 1, 200 + 140 * k, 120 + 125 * k) : NULL;
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
    ds_axes *ax = ds_figure_axes(f, 0);
    ds_axes_labels(ax, title ? title : "Confusion matrix (share of each true class)",
                   "predicted class (each diagonal cell names its class)", "true class");
    ds_status st = ds_axes_image_cmap(ax, k, k, share, 0, 1, DS_CMAP_SEQUENTIAL);
    if (!st)
        st = ds_axes_colorbar(ax);
    for (int i = 0; i < k * k && !st; i++) {
        char txt[64];
        snprintf(txt, sizeof txt, "%.1f%% (%lld)", 100.0 * share[i], (long long)counts[i]);
        const int diag = i % k == i / k;
        st = ds_axes_text(ax, i % k, i / k + (diag ? 0.15 : 0), txt, share[i] < 0.55);
        if (!st && diag) {   /* the class's name above its diagonal cell's numbers */
            char nm[32];
            if (names && names[i / k])
                snprintf(nm, sizeof nm, "%s", names[i / k]);
            else
                snprintf(nm, sizeof nm, "class %d", i / k);
            st = ds_axes_text(ax, i % k, i / k - 0.15, nm, share[i] < 0.55);
        }
    }
    free(share);
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st;
}
