/* photoz_report.h - `--photoz` of eval and classic eval: the photo-z metrics of a redshift
 * regression and the z_phot against z_spec figure (photoz_report.c). */
#ifndef DS_CLI_PHOTOZ_REPORT_H
#define DS_CLI_PHOTOZ_REPORT_H

#include "cli.h"

#define CLI_PHOTOZ_OPTS                                                                       \
    CLI_OPT("photoz", 0, NULL, "photometric redshifts: sigma_NMAD, the outlier fraction "      \
            "(|dz| / (1 + z) > 0.15), the bias and rms of dz / (1 + z), of the predicted "     \
            "redshift (the first one-valued regression output; a gaussian_nll head's mean) "  \
            "against the labels, beside predicting their mean"),                              \
    CLI_OPT("photoz-figure", 0, "PNG", "the z_phot against z_spec figure (implies --photoz)")

bool cli_photoz_wanted(const cli_cmd *c);
/* The figure's name and plotting support; with files, the figure as an output beside the
 * command's inputs (the model file, --weights, --data, --labels). 0, 1 or 2 (printed). */
int cli_photoz_check(const cli_cmd *c, bool files);
/* Prints the report of z_phot against z_spec (n values each) under title and writes the
 * figure asked for. 0 or 1 (printed). */
int cli_photoz_report(const cli_cmd *c, const char *title, int64_t n, const float *z_phot,
                      const float *z_spec);
/* eval: the report of the net's first labelled loss that predicts one value per sample, on
 * the preprocessed, checked feed f. 0 or 1. */
int cli_photoz_eval(const cli_cmd *c, ds_net *n, const ds_feed *f, long batch);
/* classic eval: the report of a regression model m's prediction on x against y. 0 or 1. */
int cli_photoz_classic(const cli_cmd *c, const ds_classic *m, const ds_tensor *x,
                       const ds_tensor *y);

#endif
