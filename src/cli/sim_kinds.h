/* sim_kinds.h - the pieces `deepsky sim galaxies` (cmd_sim.c) shares with `sim blends`
 * (sim_blends.c) and `sim anomalies` (sim_anomalies.c). */
#ifndef DS_CLI_SIM_KINDS_H
#define DS_CLI_SIM_KINDS_H

#include "cli.h"

/* The galaxy options of every kind (read by sim_galaxy_options). */
#define SIM_GALAXY_OPTS                                                                        \
    CLI_OPT("count", 0, "N", "number of stamps (sim galaxies: default the rows of --params)"), \
    CLI_OPT("size", 0, "S", "stamp size in pixels (default 32)"),                              \
    CLI_OPT("seed", 0, "S", "seed of the draws and the noise (default 0)"),                    \
    CLI_OPT("n", 0, "MIN:MAX", "Sersic index range, within [0.3, 8] (default 0.5:6)"),         \
    CLI_OPT("hlr", 0, "MIN:MAX", "half-light radius range, pixels (default 1.5:5)"),           \
    CLI_OPT("e-max", 0, "E", "ellipticity uniform in the disc |e| <= E < 1 (default 0.6)"),    \
    CLI_OPT("snr", 0, "MIN:MAX", "GalSim SNR range; 0: noiseless, flux 1 (default 10:100)"),   \
    CLI_OPT("psf", 0, "KIND", "gaussian, moffat, optical (obscured Airy * Kolmogorov) or "     \
            "none (default gaussian)"),                                                        \
    CLI_OPT("psf-fwhm", 0, "F[:G]", "PSF FWHM in pixels, or a range (default 2); optical: "    \
            "the Kolmogorov part's, 0 for none"),                                              \
    CLI_OPT("psf-beta", 0, "B[:C]", "Moffat beta > 1, or a range (default 3)"),                \
    CLI_OPT("beta", 0, "B[:C]", "the same as --psf-beta"),                                     \
    CLI_OPT("psf-e", 0, "E|E1,E2", "PSF ellipticity: |e| uniform in [0, E] at a uniform "      \
            "angle, or the fixed E1,E2 (|e| < 1; default 0: round)"),                          \
    CLI_OPT("psf-lod", 0, "L[:M]", "optical PSF: lambda/D in pixels, or a range (0: no "       \
            "diffraction, else >= 0.25; required with --psf optical)"),                        \
    CLI_OPT("psf-obscuration", 0, "F", "optical PSF: central obscuration, a fraction of the "  \
            "diameter in [0, 1) (default 0)"),                                                 \
    CLI_OPT("offset", 0, "D", "centroid offsets uniform in [-D, D] pixels (default 0.5)"),     \
    CLI_OPT("sky-sigma", 0, "S", "Gaussian sky noise sigma (default 1)"),                      \
    CLI_OPT("gain", 0, "G", "source Poisson noise, counts per flux unit (default 0: none)")

/* SIM_GALAXY_OPTS and --threads into o (count 0 when absent); 0, or 2 after a usage error
 * naming the option. */
int sim_galaxy_options(const cli_cmd *c, ds_sim_opts *o);
/* path with its extension (.fits, .fits.gz, .fit, .fts, .csv, .npy) replaced by .npy */
void sim_npy_name(const char *path, char *out, size_t cap);
/* Writes the table t [rows, columns] with the column names (FITS or CSV by extension):
 * 0, or 1 (printed). */
int sim_save_table(const ds_tensor *t, const char *const *names, const char *path);

/* cli_parse of a sim kind's command line, which must name that kind alone: 0, or the
 * parser's status, or 2 after a usage error. */
int sim_parse_kind(cli_cmd *c, int argc, char **argv, const char *kind);
/* The options named (a NULL-ended list: "output" is -o, others --NAME), each a file the
 * command writes, checked as outputs together (cli_files_check): 0, or 2 (printed). */
int sim_check_outputs(const cli_cmd *c, ...);

int cmd_sim_blends(int argc, char **argv);
int cmd_sim_anomalies(int argc, char **argv);
int cmd_sim_photometry(int argc, char **argv);   /* sim_photometry.c */
int cmd_sim_lenses(int argc, char **argv);   /* sim_lenses.c */
int cmd_sim_morphology(int argc, char **argv);   /* sim_morphology.c */

#endif
