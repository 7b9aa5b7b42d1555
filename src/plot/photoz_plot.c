/* photoz_plot.c - the photo-z figure: z_phot against z_spec, with the diagonal and the
 * outlier bounds |dz| / (1 + z) = 0.15, drawn with the figure API of plot.c. */
#include "../internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

ds_status ds_plot_photoz(int64_t n, const float *z_phot, const float *z_spec, const char *title,
                         const char *path)
{
    ds_photoz_stats s;
    if (!path)
        return dsi_fail(DS_ERR_ARG, "ds_plot_photoz: no path");
    ds_status st = ds_photoz_metrics(n, z_phot, z_spec, &s);
    if (st)
        return st;
    double *x = malloc(sizeof *x * (size_t)n), *y = malloc(sizeof *y * (size_t)n), top = 0;
    if (!x || !y) {
        free(x);
        free(y);
        return dsi_fail(DS_ERR_NOMEM, "ds_plot_photoz: out of memory for %lld points",
                        (long long)n);
    }
    for (int64_t i = 0; i < n; i++) {
        x[i] = z_spec[i];
        y[i] = z_phot[i];
        top = fmax(top, fmax(x[i], y[i]));
    }
    top = top > 0 ? ceil(top * 2) / 2 : 1;   /* a round upper limit, 0.5 steps */
    ds_figure *f = ds_figure_create(1, 1, 520, 520);
    if (!f) {
        free(x);
        free(y);
        return dsi_last_status();
    }
    ds_axes *a = ds_figure_axes(f, 0);
    char lab[160];
    snprintf(lab, sizeof lab, "%lld galaxies: sigma_NMAD %.4f, outliers %.2f%%, bias %+.4f",
             (long long)n, s.sigma_nmad, 100 * s.outlier_fraction, s.bias);
    ds_axes_labels(a, title ? title : "Photometric against spectroscopic redshift", "z_spec",
                   "z_phot");
    ds_axes_xlim(a, 0, top);
    ds_axes_ylim(a, 0, top);
    /* many points: fainter markers, so the density shows */
    double alpha = fmin(0.8, fmax(0.08, 3000.0 / (double)n));
    st = ds_axes_scatter(a, n, x, y, lab, 1.2, alpha);
    if (!st)
        st = ds_axes_refline(a, 1, 0, "z_phot = z_spec");
    if (!st)
        st = ds_axes_refline(a, 1.15, 0.15, "outliers above dz = +0.15 (1 + z_spec)");
    if (!st)
        st = ds_axes_refline(a, 0.85, -0.15, "and below dz = -0.15 (1 + z_spec)");
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    free(x);
    free(y);
    return st;
}
