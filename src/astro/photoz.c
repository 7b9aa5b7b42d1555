/* photoz.c - photometric-redshift metrics: sigma_NMAD, the outlier fraction and the bias of
 * z_phot against z_spec, as the photo-z literature scores them. */
#include "../internal.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v): the mean of the two middle values for even n, as
 * numpy.median. */
static double median(double *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

ds_status ds_photoz_metrics(int64_t n, const float *z_phot, const float *z_spec,
                            ds_photoz_stats *out)
{
    if (!z_phot || !z_spec || !out || n < 1)
        return dsi_fail(DS_ERR_ARG, "ds_photoz_metrics: %s", n < 1 ? "no galaxies (n < 1)"
                        : "an array or the result is NULL");
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(z_phot[i]) || !isfinite(z_spec[i]))
            return dsi_fail(DS_ERR_VALUE, "ds_photoz_metrics: galaxy %lld: z_phot %g, z_spec %g "
                            "(both must be finite)", (long long)i, z_phot[i], z_spec[i]);
        if (!(z_spec[i] > -1))
            return dsi_fail(DS_ERR_VALUE, "ds_photoz_metrics: galaxy %lld: z_spec %g is not "
                            "above -1", (long long)i, z_spec[i]);
    }
    double *v = malloc(sizeof *v * (size_t)n);
    if (!v)
        return dsi_fail(DS_ERR_NOMEM, "ds_photoz_metrics: out of memory for %lld galaxies",
                        (long long)n);
    ds_photoz_stats s = {.count = n};
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double dz = (double)z_phot[i] - z_spec[i], e = dz / (1 + (double)z_spec[i]);
        v[i] = dz;
        sum += e;
        sum2 += e * e;
        s.outliers += fabs(e) > 0.15;
    }
    double med = median(v, n);   /* of dz, not of dz / (1 + z) */
    for (int64_t i = 0; i < n; i++) {
        double dz = (double)z_phot[i] - z_spec[i];
        v[i] = fabs(dz - med) / (1 + (double)z_spec[i]);
    }
    s.sigma_nmad = 1.48 * median(v, n);
    s.median_dz = med;
    s.outlier_fraction = (double)s.outliers / (double)n;
    s.bias = sum / (double)n;
    s.rms = sqrt(sum2 / (double)n);
    free(v);
    *out = s;
    return DS_OK;
}

static const char *const colour_names[] = {"u_g", "g_r", "r_i", "i_z", "z_y", NULL};

const char *const *ds_photo_colour_columns(void) { return colour_names; }

/* The first band with a value that is not finite: its rows (from 1) in the message. */
static ds_status bad_rows(const float *m, int64_t n, const char *what)
{
    for (int b = 0; b < DS_PHOTO_BANDS; b++) {
        int64_t count = 0, nan = 0;
        char rows[160] = "";
        size_t len = 0;
        for (int64_t i = 0; i < n; i++) {
            float v = m[i * DS_PHOTO_BANDS + b];
            if (isfinite(v))
                continue;
            nan += isnan(v);
            if (count++ < 10 && len < sizeof rows)
                len += (size_t)snprintf(rows + len, sizeof rows - len, "%s%lld",
                                        count > 1 ? ", " : "", (long long)i + 1);
        }
        if (count)
            return dsi_fail(DS_ERR_VALUE, "%s%smag_%s is %s in %lld %s: %s%s (rows counted from "
                            "1; give a non-detection its limiting magnitude)", what ? what : "",
                            what ? ": " : "", ds_photo_bands()[b],
                            nan == count ? "NaN" : "NaN or infinite", (long long)count,
                            count == 1 ? "row" : "rows", rows, count > 10 ? ", ..." : "");
    }
    return DS_OK;
}

ds_status ds_photo_colour_table(const ds_tensor *mags, const char *what, ds_tensor **colours)
{
    if (!colours)
        return dsi_fail(DS_ERR_ARG, "ds_photo_colour_table: colours is NULL");
    *colours = NULL;
    if (!mags || mags->ndim != 2 || mags->shape[1] != DS_PHOTO_BANDS)
        return dsi_fail(mags ? DS_ERR_SHAPE : DS_ERR_ARG, "%s%smagnitudes must be [rows, 6] "
                        "(ugrizy)%s", what ? what : "", what ? ": " : "",
                        mags ? "" : ", not NULL");
    int64_t n = mags->shape[0];
    const float *m = mags->data;
    ds_status st = bad_rows(m, n, what);
    if (st)
        return st;
    ds_tensor *c = ds_tensor_create(2, (int64_t[]){n, DS_PHOTO_BANDS - 1});
    if (!c)
        return dsi_last_status();
    float *o = c->data;
    for (int64_t i = 0; i < n; i++)
        for (int b = 0; b + 1 < DS_PHOTO_BANDS; b++)
            o[i * (DS_PHOTO_BANDS - 1) + b] =
                m[i * DS_PHOTO_BANDS + b] - m[i * DS_PHOTO_BANDS + b + 1];
    *colours = c;
    return DS_OK;
}
