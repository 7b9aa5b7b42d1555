/* roc_plot.c - the ROC curve of a binary classifier's scores as a figure: linear axes, and
 * the false-positive rate on a log axis where the lens-finding challenge's TPR0 and TPR10
 * live. */
#include "../internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

ds_status ds_plot_roc(int64_t n, const float *score, const float *label, const char *title,
                      const char *path)
{
    if (!path)
        return dsi_fail(DS_ERR_ARG, "ds_plot_roc: no path");
    double *fpr = malloc(sizeof *fpr * (size_t)(n + 1)), *tpr = malloc(sizeof *tpr * (size_t)(n + 1));
    int64_t pts = 0;
    ds_status st = fpr && tpr ? ds_roc_curve(n, score, label, fpr, tpr, &pts)
                              : dsi_fail(DS_ERR_NOMEM, "ds_plot_roc: out of memory");
    ds_figure *f = NULL;
    if (!st && !(f = ds_figure_create(1, 2, 1000, 470)))
        st = dsi_last_status();
    if (!st) {
        double auc = ds_auroc(n, score, label), fp_step = fpr[pts - 1];
        for (int64_t i = 1; i < pts; i++)   /* the smallest non-zero FPR: 1 / negatives */
            if (fpr[i] > 0 && fpr[i] < fp_step)
                fp_step = fpr[i];
        char lab[96], t1[160];
        snprintf(lab, sizeof lab, "AUROC %.4f, TPR0 %.3f, TPR10 %.3f", auc,
                 ds_tpr_at_fp(n, score, label, 0), ds_tpr_at_fp(n, score, label, 9));
        snprintf(t1, sizeof t1, "%s", title ? title : "ROC curve");
        ds_axes *a = ds_figure_axes(f, 0), *b = ds_figure_axes(f, 1);
        ds_axes_labels(a, t1, "false-positive rate", "true-positive rate");
        ds_axes_xlim(a, 0, 1);
        ds_axes_ylim(a, 0, 1.02);
        st = ds_axes_line(a, pts, fpr, tpr, lab);
        if (!st)
            st = ds_axes_refline(a, 1, 0, "chance");
        /* the log axis starts at one false positive (the points at FPR 0 are TPR0's) */
        int64_t i0 = 0;
        while (i0 < pts && fpr[i0] <= 0)
            i0++;
        ds_axes_labels(b, "low false-positive rates", "false-positive rate (log)",
                       "true-positive rate");
        ds_axes_log_x(b, 1);
        ds_axes_xlim(b, fp_step, 1);
        ds_axes_ylim(b, 0, 1.02);
        if (!st && i0 < pts)
            st = ds_axes_line(b, pts - i0, fpr + i0, tpr + i0, lab);
        if (!st)
            st = ds_figure_save_png(f, path);
    }
    ds_figure_free(f);
    free(fpr);
    free(tpr);
    return st;
}
