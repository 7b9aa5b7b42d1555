/* predict_shard.c - deepsky predict -o FOLDER/: one output per input file of a glob, folder
 * or @LIST, restartable (an output that exists is complete, being written atomically, and
 * its file is skipped), failed files logged and left for the next run, a summary; under
 * mpirun the files go out one at a time from rank 0's queue (src/mpi/dist.c). */
#include "cli.h"
#include "../mpi/dist.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { FILE_MINE_NONE = 0, FILE_WRITTEN = 1, FILE_SKIPPED = 2, FILE_FAILED = 3 };

bool cli_predict_sharded(const char *out)
{
    struct stat st;
    size_t n = strlen(out);
    return (n > 0 && out[n - 1] == '/') || (stat(out, &st) == 0 && S_ISDIR(st.st_mode));
}

/* "<dir>/<base>.npy" for input path: its name without folders, .gz and one extension. */
static void output_name(const char *dir, const char *path, char *buf, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 3 && !strcasecmp(base + n - 3, ".gz"))
        n -= 3;
    const char *dot = memchr(base, '.', n) ? base + n : NULL;
    while (dot && dot > base && dot[-1] != '.')
        dot--;
    if (dot && dot > base + 1)
        n = (size_t)(dot - 1 - base);
    size_t d = strlen(dir);
    snprintf(buf, cap, "%.*s/%.*s.npy", (int)(d && dir[d - 1] == '/' ? d - 1 : d), dir,
             (int)n, base);
}

/* Two inputs with the same output name would overwrite each other's. 0, or 2 (printed). */
static int check_unique(const cli_cmd *c, char **outs, char **paths, int count)
{
    for (int i = 0; i < count; i++)
        for (int j = i + 1; j < count; j++)
            if (!strcmp(outs[i], outs[j]))
                return cli_usage_error(c, "%s and %s would both write %s: one output folder "
                                       "takes files of distinct names", paths[i], paths[j],
                                       outs[i]);
    return 0;
}

/* The command with --data naming one file: what cli_load_set reads. */
static void with_data(const cli_cmd *c, cli_opt *opts, const char *path, cli_cmd *out)
{
    *out = *c;
    memcpy(opts, c->opts, (size_t)c->n_opts * sizeof *opts);
    for (int i = 0; i < c->n_opts; i++)
        if (!strcmp(opts[i].name, "data")) {
            opts[i].value = opts[i].values[0] = path;
            opts[i].n_values = 1;
        }
    out->opts = opts;
}

/* One input file's outputs into out (a model with one output). 0, or 1 (printed). */
static int predict_file(const cli_cmd *c, cli_opt *opts, ds_net *n, int64_t batch,
                        const char *path, const char *out)
{
    cli_cmd cf;
    with_data(c, opts, path, &cf);
    cli_data d = {0};
    ds_feed f;
    ds_tensor *p[DS_FEED_MAX] = {0};
    int rc = cli_load_set(&cf, "data", NULL, &d);
    if (!rc && !(rc = cli_feed(n, &d, &f)) &&
        (ds_net_check_feed(n, &f) || ds_net_preprocess_feed(n, &f) ||
         ds_net_predict_feed(n, &f, batch, p) || ds_array_save(p[0], out, NULL)))
        rc = cli_fail();
    if (!rc) {
        char shape[96];
        ds_shape_str(ds_tensor_ndim(p[0]), ds_tensor_shape(p[0]), shape, sizeof shape);
        printf("wrote %s %s\n", out, shape);
    }
    for (int k = 0; k < DS_FEED_MAX; k++)
        ds_tensor_free(p[k]);
    cli_data_free(&d);
    return rc;
}

/* The files this rank takes from the queue, each one's result into status. */
static int run_queue(const cli_cmd *c, ds_net *n, int64_t batch, char **paths, char **outs,
                     int count, long *status)
{
    cli_opt *opts = malloc((size_t)c->n_opts * sizeof *opts);
    if (!opts) {
        fprintf(stderr, "deepsky: error: out of memory\n");
        return 1;
    }
    long i;
    while ((i = cli_mpi_next(count)) >= 0) {
        if (access(outs[i], F_OK) == 0) {   /* written whole (atomically) by an earlier run */
            status[i] = FILE_SKIPPED;
            continue;
        }
        status[i] = predict_file(c, opts, n, batch, paths[i], outs[i]) ? FILE_FAILED
                                                                        : FILE_WRITTEN;
        if (status[i] == FILE_FAILED)
            fprintf(stderr, "deepsky: %s failed: no %s written; going on with the other "
                    "files\n", paths[i], outs[i]);
        fflush(stdout);
    }
    free(opts);
    return i == -2;
}

/* Rank 0's summary of every rank's files; 0 when none failed, else 1. */
static int summary(char **paths, const long *status, int count, double seconds)
{
    long k[4] = {0};
    for (int i = 0; i < count; i++)
        k[status[i] & 3]++;
    if (cli_mpi_rank() == 0) {
        printf("predict: %d %s in %.1f s on %d %s: %ld written, %ld skipped (output already "
               "there), %ld failed\n", count, cli_plural(count, "file", "files"), seconds,
               cli_mpi_size(), cli_plural(cli_mpi_size(), "rank", "ranks"), k[FILE_WRITTEN],
               k[FILE_SKIPPED], k[FILE_FAILED]);
        for (int i = 0; i < count; i++)
            if (status[i] == FILE_FAILED)
                printf("failed: %s\n", paths[i]);
        if (k[FILE_FAILED])
            printf("run the same command again to retry the failed files only\n");
    }
    return k[FILE_FAILED] ? 1 : 0;
}

/* ---- --merge TABLE: every file's outputs in one table, a row per sample ---- */
typedef struct {
    ds_tensor **t;       /* each file's outputs, [N_i, ...] */
    int64_t rows, width; /* all samples, values per sample */
    float **cols;        /* hdu, row, then the width output values */
    const char **file;   /* the input file of each row */
} merged;

/* The HDU predict read from a FITS input (its --hdu, else the first with data); 0 for the
 * other formats. */
static int input_hdu(const cli_cmd *c, const char *path)
{
    cli_read_opts r;
    ds_read_info info = {0};
    if (cli_read_options(c, &r))
        return 0;
    ds_read_opts o = {.hdu = r.hdu, .hdu_name = r.hdu_name, .info = &info};
    char *h = ds_fits_header(path, &o);
    free(h);
    return h ? info.hdu : 0;
}

/* The outputs read back, their rows counted; 0 or 1 (printed). */
static int merge_read(char **outs, int count, merged *m)
{
    for (int i = 0; i < count; i++) {
        if (ds_array_load(outs[i], NULL, &m->t[i]))
            return cli_fail();
        const int64_t *s = ds_tensor_shape(m->t[i]);
        int64_t w = ds_tensor_ndim(m->t[i]) > 1 ? ds_tensor_numel(m->t[i]) / s[0] : 1;
        if (i && w != m->width) {
            fprintf(stderr, "deepsky: error: --merge: %s holds %lld values per sample, %s "
                    "%lld\n", outs[i], (long long)w, outs[0], (long long)m->width);
            return 1;
        }
        m->width = w;
        m->rows += s[0];
    }
    return 0;
}

/* The table's columns filled from the outputs; 0 or 1 (printed). */
static int merge_fill(const cli_cmd *c, char **paths, int count, merged *m)
{
    m->file = malloc((size_t)(m->rows ? m->rows : 1) * sizeof *m->file);
    m->cols = calloc((size_t)(m->width + 2), sizeof *m->cols);
    for (int64_t j = 0; m->cols && j < m->width + 2; j++)
        if (!(m->cols[j] = malloc((size_t)(m->rows ? m->rows : 1) * sizeof(float))))
            break;
    if (!m->file || !m->cols || !m->cols[m->width + 1]) {
        fprintf(stderr, "deepsky: error: --merge: out of memory for %lld rows\n",
                (long long)m->rows);
        return 1;
    }
    int64_t at = 0;
    for (int i = 0; i < count; i++) {
        int hdu = input_hdu(c, paths[i]);
        const float *v = ds_tensor_data(m->t[i]);
        for (int64_t r = 0; r < ds_tensor_shape(m->t[i])[0]; r++, at++) {
            m->file[at] = paths[i];
            m->cols[0][at] = (float)hdu;
            m->cols[1][at] = (float)r;
            for (int64_t j = 0; j < m->width; j++)
                m->cols[2 + j][at] = v[r * m->width + j];
        }
    }
    return 0;
}

/* Writes the merged table: columns file, hdu, row and the output's values (NAME, or
 * NAME_0, NAME_1, ...). 0 or 1 (printed). */
static int merge_write(const char *path, const char *name, merged *m)
{
    int64_t nc = m->width + 3;
    ds_column *col = calloc((size_t)nc, sizeof *col);
    char (*names)[CLI_NAME_MAX + 24] = calloc((size_t)nc, sizeof *names);
    int rc = 1;
    if (col && names) {
        col[0] = (ds_column){.name = "file", .s = m->file};
        col[1] = (ds_column){.name = "hdu", .f = m->cols[0]};
        col[2] = (ds_column){.name = "row", .f = m->cols[1]};
        for (int64_t j = 0; j < m->width; j++) {
            if (m->width == 1)
                snprintf(names[j], sizeof names[j], "%s", name);
            else
                snprintf(names[j], sizeof names[j], "%s_%lld", name, (long long)j);
            col[3 + j] = (ds_column){.name = names[j], .f = m->cols[2 + j]};
        }
        rc = ds_table_save_columns(path, (int)nc, col, m->rows) ? cli_fail() : 0;
    } else {
        fprintf(stderr, "deepsky: error: --merge: out of memory\n");
    }
    if (!rc)
        printf("wrote %s: %lld rows (file, hdu, row, %lld %s)\n", path, (long long)m->rows,
               (long long)m->width, cli_plural(m->width, "output value", "output values"));
    free(col);
    free(names);
    return rc;
}

/* Rank 0, when every file has its output: the merged table at path. 0 or 1 (printed). */
static int merge_outputs(const cli_cmd *c, const ds_net *n, char **paths, char **outs,
                         int count, const char *path)
{
    merged m = {.t = calloc((size_t)count + 1, sizeof *m.t)};
    int rc = m.t ? merge_read(outs, count, &m) : 1;
    if (!rc)
        rc = merge_fill(c, paths, count, &m);
    if (!rc)
        rc = merge_write(path, ds_net_output_name(n, 0), &m);
    for (int i = 0; m.t && i < count; i++)
        ds_tensor_free(m.t[i]);
    for (int64_t j = 0; m.cols && j < m.width + 2; j++)
        free(m.cols[j]);
    free(m.t);
    free(m.cols);
    free(m.file);
    return rc;
}

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Outputs never go to the device folder (or a new folder in it). 0, or 2 (printed). */
static int check_folder(const cli_cmd *c, const char *dir)
{
    char buf[4096], real[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    if (!realpath(buf, real)) {   /* a new folder: where it goes */
        char *slash = strrchr(buf, '/');
        if (slash == buf)
            slash[1] = 0;
        else if (slash)
            *slash = 0;
        else
            snprintf(buf, sizeof buf, ".");
        if (!realpath(buf, real))
            return 0;   /* its parent is missing too: mkdir says so */
    }
    if (cli_in_device_folder(real, "/dev"))
        return cli_usage_error(c, "-o %s is in the device folder %s: outputs never go there; "
                               "give a folder elsewhere", dir, real);
    return 0;
}

/* The files, their outputs and the folder. 0, 1 or 2 (printed). */
static int list_files(const cli_cmd *c, const char *data, const char *dir, char ***paths,
                      char ***outs, int *count)
{
    if (ds_stream_files(data, paths, count))
        return cli_fail();
    *outs = calloc((size_t)*count, sizeof **outs);
    for (int i = 0; *outs && i < *count; i++) {
        char buf[4096];
        output_name(dir, (*paths)[i], buf, sizeof buf);
        if (!((*outs)[i] = strdup(buf)))
            break;
    }
    if (!*outs || (*count && !(*outs)[*count - 1])) {
        fprintf(stderr, "deepsky: error: out of memory for %d file names\n", *count);
        return 1;
    }
    int rc = check_unique(c, *outs, *paths, *count);
    if (!rc)
        rc = check_folder(c, dir);
    if (!rc && mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "deepsky: error: cannot make the output folder %s: %s\n", dir,
                strerror(errno));
        rc = 1;
    }
    return rc;
}

static void free_list(char **l, int count)
{
    for (int i = 0; l && i < count; i++)
        free(l[i]);
    free(l);
}

int cli_predict_shard(const cli_cmd *c, const char *dir, int64_t batch, uint64_t seed,
                      double timeout)
{
    cli_item items[DS_FEED_MAX];
    int count = 0, rc = cli_named_list(c, "data", items, &count), partial = 0;
    if (rc)
        return rc;
    if (count != 1 || items[0].name[0])
        return cli_usage_error(c, "-o %s (a folder): one output per file of --data, for a "
                               "model with one input (--data FILES, not NAME=FILES)", dir);
    const char *data = items[0].path;
    char **paths = NULL, **outs = NULL;
    count = 0;
    ds_net *n = NULL;
    long *status = NULL;
    if ((rc = cli_mpi_start(timeout)))
        return rc;
    double t0 = wall();
    if ((rc = list_files(c, data, dir, &paths, &outs, &count)) ||
        (rc = cli_load_net(c->positional[0], cli_get(c, "weights"), batch, seed, NULL, &n)))
        goto done;
    if (ds_net_output_count(n) != 1) {
        fprintf(stderr, "deepsky: error: -o %s (a folder) takes a model with one output; this "
                "one has %d\n", dir, ds_net_output_count(n));
        rc = 1;
        goto done;
    }
    if (cli_mpi_rank() == 0)
        cli_weights_note(cli_get(c, "weights"), n);
    if (!(status = calloc((size_t)count + 1, sizeof *status))) {
        fprintf(stderr, "deepsky: error: out of memory\n");
        rc = 1;
        goto done;
    }
    if (!(rc = run_queue(c, n, batch, paths, outs, count, status)) &&
        !(rc = cli_mpi_sum_long(status, count)))
        partial = rc = summary(paths, status, count, wall() - t0);
    const char *merge = cli_get(c, "merge");
    if (merge && cli_mpi_rank() == 0 && partial)
        printf("no merged table %s: it waits for the failed files\n", merge);
    else if (merge && cli_mpi_rank() == 0 && !rc)
        partial = rc = merge_outputs(c, n, paths, outs, count, merge);
done:
    free(status);
    ds_net_free(n);
    free_list(paths, count);
    free_list(outs, count);
    /* a failure other than files that failed: the other ranks must not wait for this one */
    return rc && !partial ? cli_mpi_fail(rc) : cli_mpi_end(rc);
}
