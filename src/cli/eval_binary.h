/* eval_binary.h - `deepsky eval --metrics auroc,tpr0,tpr10 --roc FILE.png`: the metrics of a
 * binary classifier as the lens-finding challenge scored them (eval_binary.c). */
#ifndef DS_EVAL_BINARY_H
#define DS_EVAL_BINARY_H

#include "cli.h"

#define CLI_BINARY_OPTS                                                                       \
    CLI_OPT("metrics", 0, "LIST", "binary classifiers: metrics to print, comma-separated, "   \
            "among auroc and tprK, the true-positive rate at fewer than K false positives "   \
            "(tpr0: at none), e.g. auroc,tpr0,tpr10 (the lens-finding challenge's)"),         \
    CLI_OPT("roc", 0, "PNG", "binary classifiers: the ROC curve figure (linear, and on a "    \
            "log false-positive axis)")

/* Checks --metrics' list and --roc's extension and plotting support. 0, 1 or 2 (printed). */
int cli_binary_check(const cli_cmd *c);
/* Whether --metrics or --roc is given. */
bool cli_binary_wanted(const cli_cmd *c);
/* Prints the metrics of n's binary classifier on the (preprocessed, checked) feed f and
 * draws the ROC figure. 0, or 1 (printed). */
int cli_binary_run(const cli_cmd *c, ds_net *n, const ds_feed *f, int64_t batch);
/* The same for m scores and labels (0 or 1) from elsewhere (classic eval). 0, or 1. */
int cli_binary_report(const cli_cmd *c, int64_t m, const float *scores, const float *labels);

#endif
