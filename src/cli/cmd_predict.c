/* cmd_predict.c - deepsky predict MODEL --weights W --data X -o P: every output for data. */
#include "cli.h"
#include "../mpi/dist.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Which -o item takes each output of the model: a plain file for a model with one output,
 * else NAME=FILE for every output. 0, or 1 after printing. */
static int match_outputs(const ds_net *n, const cli_item *items, int count, int *which)
{
    int no = ds_net_output_count(n);
    char list[512] = "";
    for (int k = 0; k < no; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                 ds_net_output_name(n, k));
    if (!items[0].name[0]) {
        which[0] = 0;
        if (no == 1)
            return 0;
        fprintf(stderr, "deepsky: error: the model has %d outputs (%s): give -o NAME=FILE for "
                "each\n", no, list);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        int k = 0;
        while (k < no && strcmp(items[i].name, ds_net_output_name(n, k)))
            k++;
        if (k == no) {
            fprintf(stderr, "deepsky: error: -o %s=%s: the model has no output named '%s' "
                    "(its outputs: %s)\n", items[i].name, items[i].path, items[i].name, list);
            return 1;
        }
    }
    for (int k = 0; k < no; k++) {
        which[k] = -1;
        for (int i = 0; i < count; i++)
            if (!strcmp(items[i].name, ds_net_output_name(n, k)))
                which[k] = i;
        if (which[k] < 0) {
            fprintf(stderr, "deepsky: error: the model's output '%s' has no file: give -o "
                    "%s=FILE (its outputs: %s)\n", ds_net_output_name(n, k),
                    ds_net_output_name(n, k), list);
            return 1;
        }
    }
    return 0;
}

/* Whether path ends with ext, or with ext".gz" when gz (any case). */
static bool has_ext_gz(const char *path, const char *ext, bool gz)
{
    size_t n = strlen(path), k = strlen(ext);
    if (gz && n > 3 && !strcasecmp(path + n - 3, ".gz"))
        n -= 3;
    return n > k && !strncasecmp(path + n - k, ext, k);
}

static bool has_ext(const char *path, const char *ext) { return has_ext_gz(path, ext, false); }

static bool is_fits_name(const char *path)
{
    return has_ext_gz(path, ".fits", true) || has_ext_gz(path, ".fit", true) ||
           has_ext_gz(path, ".fts", true);
}

/* Whether two shapes are the same once axes of size one are dropped. */
static bool same_squeezed(int na, const int64_t *a, int nb, const int64_t *b)
{
    int i = 0, k = 0;
    for (;;) {
        while (i < na && a[i] == 1)
            i++;
        while (k < nb && b[k] == 1)
            k++;
        if (i == na || k == nb)
            return i == na && k == nb;
        if (a[i++] != b[k++])
            return false;
    }
}

/* The FITS image input whose shape (as read) the prediction p has, or NULL. */
static const cli_item *image_like(const cli_data *d, const ds_tensor *p)
{
    for (int i = 0; i < d->nx; i++)
        if (d->x[i].fits_image && same_squeezed(d->x[i].ndim0, d->x[i].shape0,
                                                ds_tensor_ndim(p), ds_tensor_shape(p)))
            return &d->x[i];
    return NULL;
}

/* A FITS image in the shape of the input image it maps, with that input's header (WCS
 * included). */
static int write_with_header(const cli_data *d, const cli_item *in, const ds_tensor *p,
                             const char *path)
{
    ds_read_opts ro = {.hdu = d->ro.hdu, .hdu_name = d->ro.hdu_name};
    char *hdr = ds_fits_header(in->path, &ro);
    ds_tensor *t = hdr ? ds_tensor_from(in->ndim0, in->shape0,
                                        ds_tensor_data((ds_tensor *)p)) : NULL;
    int rc = !t || ds_fits_save_image(t, path, hdr) != DS_OK ? cli_fail() : 0;
    char shape[96];
    ds_shape_str(in->ndim0, in->shape0, shape, sizeof shape);
    if (!rc)
        printf("wrote %s %s with the header of %s (WCS included)\n", path, shape, in->path);
    ds_tensor_free(t);
    free(hdr);
    return rc;
}

/* --classes: the probabilities p [N, K] of a classifier's output k with its classes c beside
 * them, as a table: prob_0..prob_K-1 then class (binary outputs: prob_j, class_j each). */
static int write_classes(const ds_net *n, int k, ds_tensor *p, ds_tensor *c, const char *path)
{
    int rc = 0;
    const int64_t *ps = ds_tensor_shape(p);
    if (ds_tensor_ndim(p) != 2) {
        char shape[96];
        ds_shape_str(ds_tensor_ndim(p), ps, shape, sizeof shape);
        fprintf(stderr, "deepsky: error: --classes: output '%s' has shape %s: the class column "
                "goes beside one row of probabilities per sample [N, K]\n",
                ds_net_output_name(n, k), shape);
        return 1;
    }
    int64_t N = ps[0], K = ps[1], M = ds_tensor_numel(c) / (N ? N : 1), W = K + M;
    char (*names)[32] = calloc((size_t)W, sizeof *names);
    const char **np = calloc((size_t)W, sizeof *np);
    float **cols = calloc((size_t)W, sizeof *cols);
    const float *pv = ds_tensor_data(p), *cv = ds_tensor_data(c);
    for (int64_t j = 0; names && np && cols && j < W; j++) {
        bool prob = j < K;
        int64_t q = prob ? j : j - K, w = prob ? K : M;
        if (prob && K == 1)
            snprintf(names[j], sizeof names[j], "prob");
        else if (!prob && M == 1)
            snprintf(names[j], sizeof names[j], "class");
        else
            snprintf(names[j], sizeof names[j], "%s_%lld", prob ? "prob" : "class",
                     (long long)q);
        np[j] = names[j];
        if (!(cols[j] = malloc(((size_t)N + 1) * sizeof **cols)))
            break;
        for (int64_t i = 0; i < N; i++)
            cols[j][i] = (prob ? pv : cv)[i * w + q];
    }
    bool ok = names && np && cols && (W == 0 || cols[W - 1]);
    if (!ok) {
        fprintf(stderr, "deepsky: error: out of memory for the class table\n");
        rc = 1;
    } else if (has_ext(path, ".npy")) {   /* the columns side by side: [N, K + M] */
        ds_tensor *t = ds_tensor_create(2, (int64_t[]){N, W});
        for (int64_t i = 0; t && i < N * W; i++)
            ds_tensor_data(t)[i] = cols[i % W][i / W];
        rc = !t || ds_array_save(t, path, np) != DS_OK ? cli_fail() : 0;
        ds_tensor_free(t);
    } else if (ds_table_save(path, (int)W, np, N, (const float *const *)cols) != DS_OK) {
        rc = cli_fail();   /* a FITS binary table, CSV or TSV */
    }
    if (!rc)
        printf("wrote %s [%lld, %lld]: %lld %s and %lld %s\n", path, (long long)N,
               (long long)W, (long long)K, cli_plural(K, "probability", "probabilities"),
               (long long)M, cli_plural(M, "class column", "class columns"));
    for (int64_t j = 0; cols && j < W; j++)
        free(cols[j]);
    free(cols);
    free(np);
    free(names);
    return rc;
}

/* Writes each output to its file. */
/* --classes: the classes of each output that is a classifier's (NULL for the others); at
 * least one must be. 0, or 1 after printing. */
static int classes_of(const ds_net *n, ds_tensor **p, ds_tensor **c)
{
    char first[512] = "";
    int found = 0;
    for (int k = 0; k < ds_net_output_count(n); k++) {
        c[k] = NULL;
        if (ds_net_output_classes(n, k, p[k], &c[k]) == DS_OK)
            found++;
        else if (!first[0])
            snprintf(first, sizeof first, "%s", ds_last_error());
    }
    if (found)
        return 0;
    fprintf(stderr, "deepsky: error: --classes: %s\n", first);
    return 1;
}

static int write_outputs(const ds_net *n, const cli_data *d, ds_tensor **p,
                         const cli_item *items, const int *which, bool classes)
{
    ds_tensor *c[DS_FEED_MAX] = {0};
    int rc = classes ? classes_of(n, p, c) : 0;
    for (int k = 0; k < ds_net_output_count(n) && !rc; k++) {
        const char *path = items[which[k]].path;
        const cli_item *img = image_like(d, p[k]);
        if (c[k])
            rc = write_classes(n, k, p[k], c[k], path);
        else if (img && is_fits_name(path))
            rc = write_with_header(d, img, p[k], path);
        else if ((rc = ds_array_save(p[k], path, NULL) ? cli_fail() : 0) == 0) {
            char shape[96];
            ds_shape_str(ds_tensor_ndim(p[k]), ds_tensor_shape(p[k]), shape, sizeof shape);
            printf("wrote %s %s\n", path, shape);
        }
    }
    for (int k = 0; k < DS_FEED_MAX; k++)
        ds_tensor_free(c[k]);
    return rc;
}

/* The flags of a prediction with uncertainty that do not go together. 0, or 2 (printed). */
static int uq_flags(const cli_cmd *c, long mc, int n_weights)
{
    bool uq = mc > 0 || n_weights > 1;
    if (mc && cli_has(c, "mc-dropout"))
        return cli_usage_error(c, "--mc-dropout draws one sample and --mc N pools N: give one "
                               "of them");
    if (!uq && cli_has(c, "samples"))
        return cli_usage_error(c, "--samples keeps the draws of --mc N or of an ensemble "
                               "(several --weights): give one of them");
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPTS("weights", 0, "W", "trained weights (required); given several times, the "
                 "members of an ensemble (train --ensemble): each output's mean and std"),
        CLI_OPTS("data", 0, "X", "data (.npy, .fits, .csv or IDX) (required); NAME=X for each "
                 "input of a model with several (repeat the option)"),
        CLI_OPTS("columns", 0, "COLS", "table data: feature columns; NAME=COLS for one input's "
                 "file"),
        CLI_OPTS("label-columns", 0, "COLS", "table data: label columns, left out of the "
                 "features (as in train and eval)"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "
                "data)"),
        CLI_READ_OPTS,
        CLI_OPT("classes", 0, NULL, "classifiers: write the predicted class (argmax) beside "
                "the probabilities; with --mc or an ensemble the argmax of the mean "
                "probabilities, beside each class's mean and std (columns prob_J_mean, "
                "prob_J_std, class)"),
        CLI_OPT("batch-size", 0, "B", "batch size (default 256)"),
        CLI_OPT("mc-dropout", 0, NULL, "keep dropout on (one Monte Carlo sample per call; "
                "--mc N pools N)"),
        CLI_OPT("mc", 0, "N", "Monte Carlo dropout: N passes with dropout on, written as each "
                "output's mean and std (gaussian_nll outputs: also std_aleatoric and "
                "std_epistemic); .npy [N, ..., 2 or 4], tables NAME_mean, NAME_std, ..."),
        CLI_OPTS("samples", 0, "FILE", "with --mc or an ensemble: every draw too, .npy "
                 "[draws, N, ...] or a table (draw, sample, NAME...); NAME=FILE for each "
                 "output of a model with several"),
        CLI_OPT("seed", 0, "S", "seed of the dropout draws with --mc or --mc-dropout (default "
                "0)"),
        CLI_OPT("score", 0, "KIND", "reconstruction: instead of the outputs, each sample's "
                "reconstruction error, one column 'score' (an autoencoder's loss, target=INPUT; "
                "a VAE's negative ELBO), in eval mode"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPTS("output", 'o', "P", "output file: .npy, .fits, .csv or .tsv (required); NAME=P "
                 "for each output of a model with several; a FITS output in the shape of a "
                 "FITS image input gets that input's header; a folder (DIR/): one DIR/<name>.npy "
                 "per file of --data FILES (a glob, folder or @LIST), files whose output "
                 "exists skipped, failed ones listed (exit 1); under mpirun shared out by a "
                 "queue on rank 0"),
        CLI_OPT("mpi-timeout", 0, "SECONDS", "under mpirun (make MPI=1): seconds a rank waits "
                "for the others before the job stops with an error (default 300)"),
        CLI_OPT("merge", 0, "T", "with -o FOLDER/: once every file has its output, also one "
                "table T (.fits, .csv, .tsv) of all samples, a row each: file, hdu (FITS: the "
                "HDU read; else 0), row (in its file), the output's values"),
    };
    cli_cmd c = {"predict", "MODEL --weights W --data X -o P.npy",
                 "Writes the model's outputs for every sample of X: the layers its output "
                 "lines name, else each loss's prediction (class probabilities after a "
                 "softmax or sigmoid; logits with from_logits=true), else the last layer. "
                 "The preprocessing stored with the weights is applied.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    long batch, seed, mc;
    if (!cli_long(&c, "batch-size", 1, 1L << 24, 256, &batch) ||
        !cli_long(&c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_long(&c, "mc", 1, 100000, 0, &mc) || !cli_threads(&c))
        return 2;
    const char *const *wv;
    int n_weights = cli_values(&c, "weights", &wv);
    bool uq = mc > 0 || n_weights > 1;
    if ((rc = uq_flags(&c, mc, n_weights)) || (rc = cli_score_check(&c, uq)))
        return rc;
    if (!cli_has(&c, "weights") || !cli_has(&c, "data") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--weights W, --data X and -o P are required");
    double timeout;
    if (!cli_double(&c, "mpi-timeout", 0.01, 1e7, CLI_MPI_TIMEOUT, &timeout))
        return 2;
    if (cli_has(&c, "merge") && !cli_predict_sharded(cli_get(&c, "output")))
        return cli_usage_error(&c, "--merge %s gathers the outputs of -o FOLDER/ (one per file "
                               "of --data): give -o a folder", cli_get(&c, "merge"));
    if (cli_predict_sharded(cli_get(&c, "output")))   /* -o FOLDER/: predict_shard.c */
        return uq || cli_has(&c, "classes") || cli_has(&c, "mc-dropout")
                   ? cli_usage_error(&c, "-o %s (a folder) writes each file's outputs as they "
                                     "are: --mc, --mc-dropout, --classes, --samples and "
                                     "ensembles write to files", cli_get(&c, "output"))
               : cli_stop_here(&c) ? 0
               : cli_predict_shard(&c, cli_get(&c, "output"), batch, (uint64_t)seed, timeout);
    cli_item outs[DS_FEED_MAX], ins[DS_FEED_MAX], smp[DS_FEED_MAX];
    int n_outs, n_ins, n_smp = 0, which[DS_FEED_MAX], swhich[DS_FEED_MAX];
    if ((rc = cli_named_list(&c, "data", ins, &n_ins)) ||
        (rc = cli_named_list(&c, "output", outs, &n_outs)) ||
        (cli_has(&c, "samples") && (rc = cli_named_list(&c, "samples", smp, &n_smp))))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    for (int i = 0; i < n_weights; i++)
        cli_files_input(&files, "--weights", wv[i]);
    cli_files_inputs(&files, &c, "data");
    for (int i = 0; i < n_outs; i++)
        cli_files_output(&files, "-o", outs[i].path);
    for (int i = 0; i < n_smp; i++)
        cli_files_output(&files, "--samples", smp[i].path);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    cli_data d = {0};
    ds_feed f;
    ds_tensor *p[DS_FEED_MAX] = {0};
    ds_net *n = NULL;
    if ((rc = cli_load_set(&c, "data", NULL, &d)) ||
        (rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, (uint64_t)seed,
                           NULL, &n)) ||
        (rc = cli_feed(n, &d, &f)) ||
        (!cli_has(&c, "score") && (rc = match_outputs(n, outs, n_outs, which))) ||
        (n_smp && (rc = match_outputs(n, smp, n_smp, swhich))))
        goto done;
    cli_weights_note(cli_get(&c, "weights"), n);
    for (int i = 0; i < ds_net_target_count(n); i++)   /* eval --save-temperature's */
        if (ds_net_temperature(n, i) != 1)
            fprintf(stderr, "deepsky: note: the prediction of '%s' is calibrated by the "
                    "temperature T = %.6g stored with the weights\n", ds_net_target_name(n, i),
                    ds_net_temperature(n, i));
    if (uq) {   /* predict_uq.c: --mc N, ensembles */
        cli_uq_job job = {mc, (uint64_t)seed, batch, outs, n_smp ? smp : NULL, which, swhich,
                          cli_has(&c, "classes")};
        rc = cli_predict_uq(&c, n, &f, &job);
        goto done;
    }
    if (cli_has(&c, "score")) {   /* predict_score.c */
        rc = cli_predict_score(&c, n, &f, outs[0].path);
        goto done;
    }
    if (cli_has(&c, "mc-dropout"))
        ds_graph_set_mode(ds_net_graph(n), DS_MODE_MC_DROPOUT);
    if (ds_net_check_feed(n, &f) || ds_net_preprocess_feed(n, &f) ||
        ds_net_predict_feed(n, &f, batch, p)) {
        rc = cli_fail();
        goto done;
    }
    rc = write_outputs(n, &d, p, outs, which, cli_has(&c, "classes"));
done:
    for (int k = 0; k < DS_FEED_MAX; k++)
        ds_tensor_free(p[k]);
    cli_data_free(&d);
    ds_net_free(n);
    return rc;
}
