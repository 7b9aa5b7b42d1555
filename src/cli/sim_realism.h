/* sim_realism.h - the options of `deepsky sim galaxies` for the realism switches. */
#ifndef DS_CLI_SIM_REALISM_H
#define DS_CLI_SIM_REALISM_H

#include "cli.h"

#define SIM_REALISM_OPTS                                                                       \
    CLI_OPT("neighbour", 0, "P", "a neighbour galaxy in each stamp with probability P (1: "    \
            "always; default 0: none)"),                                                       \
    CLI_OPT("neighbour-distance", 0, "MIN:MAX", "its distance from the galaxy, pixels "        \
            "(default S/8:3S/8, 4:12 for 32)"),                                                \
    CLI_OPT("neighbour-flux", 0, "MIN:MAX", "its flux over the galaxy's (default 0.1:1)"),     \
    CLI_OPT("noise-kernel", 0, "K|FILE", "correlated sky noise: a k x k kernel (k odd), "      \
            "row-major values a,b,c,... or a file of them (.npy, FITS, CSV, TSV); the "       \
            "variance per pixel stays sky-sigma^2 (default: white)"),                          \
    CLI_OPT("population", 0, NULL, "a size-magnitude population: log-normal sizes "            \
            "(truncated to --hlr), power-law fluxes; the SNR follows (not with --snr)"),       \
    CLI_OPT("pop-hlr", 0, "MEDIAN", "population: median half-light radius, pixels "            \
            "(default 3)"),                                                                    \
    CLI_OPT("pop-hlr-dex", 0, "S", "population: scatter of log10 hlr (default 0.2)"),          \
    CLI_OPT("pop-flux", 0, "MIN:MAX", "population: flux range (default 60:6000 times "         \
            "sky-sigma)"),                                                                     \
    CLI_OPT("pop-slope", 0, "ALPHA", "population: dN/dF ~ F^-ALPHA (default 1.8)"),            \
    CLI_OPT("pop-size-slope", 0, "BETA", "population: median hlr ~ (F / flux MIN)^BETA "       \
            "(default 0)")

/* Reads the options above into o; an inline --noise-kernel is parsed into *kernel (the
 * caller frees it), a file is only named (*kernel_file) for cli_files_input. Returns 0, or
 * 2 after a usage error naming the option and its value. */
int sim_realism_parse(const cli_cmd *c, ds_sim_opts *o, double **kernel,
                      const char **kernel_file);
/* Loads the kernel file into *kernel and o->noise_kernel_size: 0, or 1 after an error
 * naming the file (its shape or a value). */
int sim_realism_load_kernel(const char *path, ds_sim_opts *o, double **kernel);

#endif
