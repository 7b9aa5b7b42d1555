/* net_job.h - what deepsky search (search_net.c) and curve (curve_net.c) share for a
 * network: the model file's text, the data set up once, a trial's net. */
#ifndef DS_CLI_NET_JOB_H
#define DS_CLI_NET_JOB_H

#include "cli.h"

/* What every trial shares: the model file's text, the data (split, scaled and preprocessed
 * once, by the base net), the training options. */
typedef struct {
    cli_cmd *c;
    const char *model;
    char *text;
    ds_net *base;
    ds_net_opts nopts;
    cli_data tr, va;
    ds_feed f, fv;
    long epochs, batch, seed;
    double every;
    bool quiet;
} net_job;

/* The options both commands check and the model file's text; 0, -1 (check-only mode) or
 * 1/2. Then net_job_load reads the data. */
int net_job_options(cli_cmd *c, net_job *j, cli_split *how);
/* Checks -o out (a .csv; what names its format in messages) and --plot (a .png, and the
 * plotting support it needs); 0 or a usage error's status. */
int net_job_outputs(cli_cmd *c, const char *out, const char *what);
/* The data, split, checked against the model, scaled and preprocessed; 0, 1 or 2. */
int net_job_load(cli_cmd *c, net_job *j, const cli_split *how);
void net_job_free(net_job *j);
/* A net from the model file's text with params ("a=1 b=2") set, scaled as the base net;
 * *text gets the text it was parsed from (the caller frees both). */
ds_status net_job_trial(const net_job *j, const char *params, uint64_t seed, char **text,
                        ds_net **out);

#endif
