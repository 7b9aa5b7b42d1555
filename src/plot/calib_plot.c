/* calib_plot.c - calibration figures: the PIT histogram, the coverage curve and the
 * reliability diagram, drawn with the figure API of plot.c. */
#include "../internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PIT_BINS 20

/* Saves f to path and frees it; st is the status of building it. */
static ds_status finish(ds_figure *f, ds_status st, const char *path)
{
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st;
}

ds_status ds_plot_pit(const ds_regression_calib *r, int64_t output, const char *title,
                      const char *path)
{
    if (!r || !r->pit || !path || output < -1 || output >= r->outputs)
        return dsi_fail(DS_ERR_ARG, "ds_plot_pit: no calibration, no path, or no output %lld",
                        (long long)output);
    int64_t count[PIT_BINS] = {0}, total = 0;
    for (int64_t i = 0; i < r->samples; i++)
        for (int64_t j = 0; j < r->outputs; j++) {
            if (output >= 0 && j != output)
                continue;
            int b = (int)(r->pit[i * r->outputs + j] * PIT_BINS);
            count[b < 0 ? 0 : b >= PIT_BINS ? PIT_BINS - 1 : b]++;
            total++;
        }
    /* the histogram as a step line: two points per bin, a density (1 when uniform) */
    double x[2 * PIT_BINS], y[2 * PIT_BINS], top = 1;
    for (int b = 0; b < PIT_BINS; b++) {
        double d = (double)count[b] * PIT_BINS / (double)total;
        x[2 * b] = (double)b / PIT_BINS;
        x[2 * b + 1] = (double)(b + 1) / PIT_BINS;
        y[2 * b] = y[2 * b + 1] = d;
        top = fmax(top, d);
    }
    ds_figure *f = ds_figure_create(1, 1, 640, 480);
    if (!f)
        return dsi_last_status();
    ds_axes *a = ds_figure_axes(f, 0);
    char lab[96];
    snprintf(lab, sizeof lab, "PIT, %lld values", (long long)total);
    ds_axes_labels(a, title ? title : "PIT histogram", "PIT = Phi((y - mean) / std)", "density");
    ds_axes_xlim(a, 0, 1);
    ds_axes_ylim(a, 0, 1.1 * top);
    ds_status st = ds_axes_line(a, 2 * PIT_BINS, x, y, lab);
    if (!st)
        st = ds_axes_refline(a, 0, 1, "uniform (calibrated)");
    return finish(f, st, path);
}

ds_status ds_plot_coverage(const ds_regression_calib *r, const char *title, const char *path)
{
    if (!r || !r->samples || !path)
        return dsi_fail(DS_ERR_ARG, "ds_plot_coverage: no calibration or no path");
    double x[DS_CALIB_LEVELS + 2], y[DS_CALIB_LEVELS + 2];
    x[0] = y[0] = 0;
    for (int l = 0; l < DS_CALIB_LEVELS; l++) {
        x[l + 1] = r->level[l];
        y[l + 1] = r->empirical[l];
    }
    x[DS_CALIB_LEVELS + 1] = y[DS_CALIB_LEVELS + 1] = 1;
    double mx[2] = {0.68, 0.95}, my[2] = {r->all.cover68, r->all.cover95};
    ds_figure *f = ds_figure_create(1, 1, 560, 520);
    if (!f)
        return dsi_last_status();
    ds_axes *a = ds_figure_axes(f, 0);
    ds_axes_labels(a, title ? title : "Coverage of the central intervals",
                   "nominal coverage", "empirical coverage");
    ds_axes_xlim(a, 0, 1);
    ds_axes_ylim(a, 0, 1);
    ds_status st = ds_axes_line(a, DS_CALIB_LEVELS + 2, x, y, "empirical");
    if (!st)
        st = ds_axes_scatter(a, 2, mx, my, "68% and 95%", 4, 1);
    if (!st)
        st = ds_axes_refline(a, 1, 0, "ideal");
    return finish(f, st, path);
}

/* One calibration's points (non-empty bins) on the accuracy panel and its counts below, in
 * the same colour (the palette follows the series of each panel). */
static ds_status reliability_series(ds_axes *top, ds_axes *low, const ds_classifier_calib *c)
{
    double x[DS_CALIB_BINS], y[DS_CALIB_BINS], e[DS_CALIB_BINS];
    double cx[2 * DS_CALIB_BINS], cy[2 * DS_CALIB_BINS];
    int64_t m = 0;
    for (int b = 0; b < DS_CALIB_BINS; b++) {
        const ds_calib_bin *B = &c->bins[b];
        cx[2 * b] = B->lo;
        cx[2 * b + 1] = B->hi;
        cy[2 * b] = cy[2 * b + 1] = (double)B->count;
        if (B->count) {   /* with the binomial standard error of the accuracy */
            x[m] = B->confidence;
            y[m] = B->accuracy;
            e[m++] = sqrt(B->accuracy * (1 - B->accuracy) / (double)B->count);
        }
    }
    char lab[96];
    snprintf(lab, sizeof lab, "T = %.3g: ECE %.4f", c->temperature, c->ece);
    ds_status st = ds_axes_errorbar(top, m, x, y, e, lab);
    if (!st)
        st = ds_axes_line(low, 2 * DS_CALIB_BINS, cx, cy, lab);
    return st;
}

ds_status ds_plot_reliability(const ds_classifier_calib *before, const ds_classifier_calib *after,
                              const char *title, const char *path)
{
    if (!before || !before->samples || !path)
        return dsi_fail(DS_ERR_ARG, "ds_plot_reliability: no calibration or no path");
    ds_figure *f = ds_figure_create(2, 1, 600, 820);
    if (!f)
        return dsi_last_status();
    ds_axes *top = ds_figure_axes(f, 0), *low = ds_figure_axes(f, 1);
    char sub[96];
    snprintf(sub, sizeof sub, "Samples per bin (%d bins, %lld samples)", DS_CALIB_BINS,
             (long long)before->samples);
    ds_axes_labels(top, title ? title : "Reliability diagram", "confidence (top probability)",
                   "accuracy");
    ds_axes_labels(low, sub, "confidence", "samples");
    ds_axes_xlim(top, 0, 1);
    ds_axes_ylim(top, 0, 1);
    ds_axes_xlim(low, 0, 1);
    ds_status st = reliability_series(top, low, before);
    if (!st && after)
        st = reliability_series(top, low, after);
    if (!st)
        st = ds_axes_refline(top, 1, 0, "ideal");
    return finish(f, st, path);
}
