/* photoz_report.c - `eval --photoz` and `classic eval --photoz`: sigma_NMAD, outliers and
 * bias of predicted redshifts against the labels, beside the trivial predictor (their mean),
 * and the z_phot against z_spec figure. */
#include "photoz_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool cli_photoz_wanted(const cli_cmd *c)
{
    return cli_has(c, "photoz") || cli_has(c, "photoz-figure");
}

int cli_photoz_check(const cli_cmd *c, bool files)
{
    const char *png = cli_get(c, "photoz-figure");
    int rc;
    if (!png)
        return 0;
    if ((rc = cli_output_ext(c, "--photoz-figure", png, ".png", "figures")))
        return rc;
    if (!ds_has_feature("plot")) {
        fprintf(stderr, "deepsky: error: --photoz-figure draws a figure, but deepsky was built "
                "without plotting support (NO_PLOT=1); rebuild with cairo\n");
        return 1;
    }
    if (!files)
        return 0;
    cli_files fl = {0};
    cli_files_input(&fl, "the model file", c->positional[0]);
    const char *const *w;
    for (int i = 0, k = cli_values(c, "weights", &w); i < k; i++)
        cli_files_input(&fl, "--weights", w[i]);
    cli_files_inputs(&fl, c, "data");
    cli_files_inputs(&fl, c, "labels");
    cli_files_output(&fl, "--photoz-figure", png);
    return cli_files_check(c, &fl);
}

static void row(const char *name, const ds_photoz_stats *s)
{
    printf("%-22s %10.4f %8.2f%% %7lld %+9.4f %8.4f\n", name, s->sigma_nmad,
           100 * s->outlier_fraction, (long long)s->outliers, s->bias, s->rms);
}

int cli_photoz_report(const cli_cmd *c, const char *title, int64_t n, const float *z_phot,
                      const float *z_spec)
{
    ds_photoz_stats s, m;
    float *mean = malloc(sizeof *mean * (size_t)(n > 0 ? n : 1));
    if (!mean) {
        fprintf(stderr, "deepsky: error: --photoz: out of memory\n");
        return 1;
    }
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += z_spec[i];
    for (int64_t i = 0; i < n; i++)
        mean[i] = (float)(sum / (double)n);
    int rc = 0;
    if (ds_photoz_metrics(n, z_phot, z_spec, &s) || ds_photoz_metrics(n, mean, z_spec, &m))
        rc = cli_fail();
    free(mean);
    if (rc)
        return rc;
    char base[48];
    snprintf(base, sizeof base, "mean z (%.4f)", sum / (double)n);
    printf("\nphoto-z [%s]: %lld %s, dz = z_phot - z_spec\n", title, (long long)n,
           cli_plural(n, "galaxy", "galaxies"));
    printf("%-22s %10s %9s %7s %9s %8s\n", "predictor", "sigma_NMAD", "outliers", "count",
           "bias", "rms");
    row("model", &s);
    row(base, &m);
    printf("(sigma_NMAD = 1.48 median(|dz - median(dz)| / (1 + z_spec)); outliers: |dz| / "
           "(1 + z_spec) > 0.15; bias and rms of dz / (1 + z_spec))\n");
    const char *png = cli_get(c, "photoz-figure");
    if (png) {
        char t[200];
        const char *file = strrchr(c->positional[0], '/');
        snprintf(t, sizeof t, "Photo-z: %.80s, %.60s", file ? file + 1 : c->positional[0],
                 title);
        if (ds_plot_photoz(n, z_phot, z_spec, t, png))
            return cli_fail();
        printf("wrote %s\n", png);
    }
    return 0;
}

int cli_photoz_eval(const cli_cmd *c, ds_net *n, const ds_feed *f, long batch)
{
    for (int i = 0; i < ds_net_target_count(n); i++) {
        ds_target_values v = {0};
        if (ds_net_target_values(n, f, batch, i, &v))
            return cli_fail();
        if (v.kind == DS_TARGET_CLASSIFIER || v.width != 1) {
            ds_target_values_free(&v);
            continue;
        }
        int rc = cli_photoz_report(c, ds_net_target_name(n, i), v.rows, ds_tensor_data(v.pred),
                                   ds_tensor_data(v.truth));
        ds_target_values_free(&v);
        return rc;
    }
    fprintf(stderr, "deepsky: error: --photoz: %s has no labelled regression loss predicting "
            "one value per sample (the redshift)\n", c->positional[0]);
    return 1;
}

int cli_photoz_classic(const cli_cmd *c, const ds_classic *m, const ds_tensor *x,
                       const ds_tensor *y)
{
    if (ds_classic_task_of(m) != DS_CLASSIC_REGRESS || !y ||
        ds_tensor_numel(y) != ds_tensor_shape(x)[0]) {
        fprintf(stderr, "deepsky: error: --photoz: %s is no regression of one value per sample "
                "(the redshift)\n", c->positional[0]);
        return 1;
    }
    ds_tensor *p;
    if (ds_classic_predict(m, x, &p))
        return cli_fail();
    int rc = 0;
    if (ds_tensor_numel(p) != ds_tensor_shape(x)[0]) {
        fprintf(stderr, "deepsky: error: --photoz: %s predicts %lld values per sample, not one\n",
                c->positional[0], (long long)(ds_tensor_numel(p) / ds_tensor_shape(x)[0]));
        rc = 1;
    } else {
        rc = cli_photoz_report(c, ds_classic_method(m), ds_tensor_shape(x)[0],
                               ds_tensor_data(p), ds_tensor_data((ds_tensor *)y));
    }
    ds_tensor_free(p);
    return rc;
}
