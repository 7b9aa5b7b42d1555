/* eval_uncertainty.h - `deepsky eval --uncertainty`: calibration reports, temperature
 * scaling and their figures (eval_uncertainty.c). */
#ifndef DS_EVAL_UNCERTAINTY_H
#define DS_EVAL_UNCERTAINTY_H

#include "cli.h"

/* The options, in eval's option table. */
#define CLI_UNCERTAINTY_OPTS                                                                  \
    CLI_OPT("uncertainty", 0, NULL, "calibration report of each labelled loss: gaussian_nll " \
            "heads: coverage of the 68%/95% intervals, z = (y - mean) / std, Gaussian NLL, "  \
            "CRPS; classifiers: ECE (15 bins), NLL, reliability bins"),                       \
    CLI_OPT("calibrate-temperature", 0, NULL, "classifiers: fit the temperature T minimizing " \
            "the NLL of logits / T on the data (or on --val-split's part) and report before " \
            "and after (implies --uncertainty)"),                                             \
    CLI_OPT("val-split", 0, "F", "with --calibrate-temperature: fit T on a random fraction F " \
            "of the samples (stratified by class) and report on the others (default: fit "    \
            "and report on all, in-sample)"),                                                 \
    CLI_OPT("seed", 0, "S", "seed of --val-split and of the --mc draws (default 0)"),          \
    CLI_OPT("mc", 0, "N", "Monte Carlo dropout (or Bayesian weights): the report of the mean " \
            "of N stochastic passes, with their spread as the std (gaussian_nll heads: total " \
            "= aleatoric + epistemic); implies --uncertainty; several --weights: an "         \
            "ensemble, pooled the same way"),                                                 \
    CLI_OPT("save-temperature", 0, "W2", "with --calibrate-temperature: write the weights of " \
            "--weights with the fitted T (.safetensors, a new file); predict then applies T"), \
    CLI_OPTS("pit", 0, "PNG", "gaussian_nll heads: PIT histogram figure; NAME=PNG per loss "   \
             "(implies --uncertainty)"),                                                      \
    CLI_OPTS("coverage", 0, "PNG", "gaussian_nll heads: coverage curve figure (empirical "     \
             "against nominal, 1%..99%); NAME=PNG per loss (implies --uncertainty)"),         \
    CLI_OPTS("reliability", 0, "PNG", "classifiers: reliability diagram figure (before and "  \
             "after T); NAME=PNG per loss (implies --uncertainty)")

/* Whether the command asks for any of it (--mc and several --weights do). */
bool cli_uncertainty_wanted(const cli_cmd *c);
/* Checks the options (ranges, which needs which, file extensions, plotting support) and
 * the files (cli_files_check, with eval's inputs). 0, 1 or 2 (printed). */
int cli_uncertainty_check(const cli_cmd *c);
/* Checks eval's input files and the outputs asked for (cli_files_check). 0, 1 or 2. */
int cli_uncertainty_files(const cli_cmd *c);
/* Prints the reports of every labelled loss of n on the (preprocessed, checked) feed f,
 * writes the figures and the weights asked for. With --mc N or an ensemble (several
 * --weights; raw: f's inputs before preprocessing, which each member applies its own) the
 * reports are of the pooled draws. 0 or 1 (printed). */
int cli_uncertainty_run(const cli_cmd *c, ds_net *n, const ds_feed *f, const ds_feed *raw,
                        long batch);

#endif
