/* cmd_train_gan.c - deepsky train-gan: a generator and a discriminator model file trained
 * together on images (ds_gan_fit): both weights files, a checkpoint to resume from, a CSV log
 * of both losses and a grid of samples per epoch, in one output folder. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* FNV-1a of a file's bytes as 16 hex digits; false if it cannot be read. */
static bool file_hash(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    uint64_t h = 1469598103934665603ULL;
    int ch;
    while ((ch = fgetc(fp)) != EOF)
        h = (h ^ (uint64_t)ch) * 1099511628211ULL;
    bool ok = !ferror(fp);
    fclose(fp);
    snprintf(buf, cap, "%016llx", (unsigned long long)h);
    return ok;
}

/* --scale none|divide:A|asinh:A for the discriminator's input. */
static bool parse_scale(const cli_cmd *c, ds_scale_kind *kind, float *a)
{
    const char *v = cli_get(c, "scale");
    *kind = DS_SCALE_NONE;
    *a = 0;
    if (!v || !strcmp(v, "none"))
        return true;
    const char *colon = strchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : strlen(v);
    if (!colon || !((len == 6 && !strncmp(v, "divide", 6)) || (len == 5 && !strncmp(v, "asinh", 5)))) {
        cli_usage_error(c, "option '--scale': '%s' is not none, divide:A or asinh:A", v);
        return false;
    }
    char *end;
    double x = strtod(colon + 1, &end);
    if (end == colon + 1 || *end || !(x > 0 && x < 1e30)) {
        cli_usage_error(c, "option '--scale': '%s' is not a positive number", colon + 1);
        return false;
    }
    *kind = len == 6 ? DS_SCALE_DIVIDE : DS_SCALE_ASINH;
    *a = (float)x;
    return true;
}

/* --grid RxC (default 8x8) or none. */
static bool parse_grid(const cli_cmd *c, int *rows, int *cols)
{
    const char *v = cli_get(c, "grid");
    *rows = *cols = 8;
    if (!v)
        return true;
    if (!strcmp(v, "none")) {
        *rows = *cols = 0;
        return true;
    }
    char x;
    char tail;
    if (sscanf(v, "%d%c%d%c", rows, &x, cols, &tail) != 3 || x != 'x' || *rows < 1 ||
        *rows > 64 || *cols < 1 || *cols > 64) {
        cli_usage_error(c, "option '--grid': '%s' is not ROWSxCOLS (each 1 to 64) or none", v);
        return false;
    }
    return true;
}

typedef struct {
    long epochs, batch, latent, d_steps, seed;
    double smoothing;
    ds_scale_kind scale;
    float scale_a;
    int rows, cols;
    const char *dir;
} gan_flags;

static int check_flags(const cli_cmd *c, gan_flags *f)
{
    if (!cli_has(c, "generator") || !cli_has(c, "discriminator") || !cli_has(c, "data") ||
        !cli_has(c, "out"))
        return cli_usage_error(c, "--generator G.model, --discriminator D.model, --data X and "
                               "--out DIR are required");
    if (!cli_long(c, "epochs", 1, 1000000, 10, &f->epochs) ||
        !cli_long(c, "batch-size", 1, 1L << 24, 32, &f->batch) ||
        !cli_long(c, "latent", 1, 1L << 24, 0, &f->latent) ||
        !cli_long(c, "d-steps", 1, 1000, 1, &f->d_steps) ||
        !cli_long(c, "seed", 0, 2147483647L, 0, &f->seed) ||
        !cli_double(c, "label-smoothing", 0, 0.4999, 0, &f->smoothing) ||
        !parse_scale(c, &f->scale, &f->scale_a) || !parse_grid(c, &f->rows, &f->cols) ||
        !cli_threads(c))
        return 2;
    f->dir = cli_get(c, "out");
    if (f->rows && !ds_has_feature("plot")) {
        fprintf(stderr, "deepsky: note: built without plotting support (NO_PLOT=1): no sample "
                "grids\n");
        f->rows = f->cols = 0;
    }
    return 0;
}

/* The output folder (made if missing, one level) and its files, checked before anything
 * is read or written. */
static int check_outputs(const cli_cmd *c, const gan_flags *f)
{
    static const char *const names[] = {"generator.safetensors", "discriminator.safetensors",
                                        "gan.ckpt.safetensors", "log.csv"};
    char paths[4][4200];
    cli_files files = {0};
    cli_files_input(&files, "--generator", cli_get(c, "generator"));
    cli_files_input(&files, "--discriminator", cli_get(c, "discriminator"));
    cli_files_inputs(&files, c, "data");
    if (mkdir(f->dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "deepsky: error: --out %s: cannot make the folder: %s\n", f->dir,
                strerror(errno));
        return 1;
    }
    struct stat sb;
    if (stat(f->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "deepsky: error: --out %s: not a folder\n", f->dir);
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", f->dir, names[i]);
        cli_files_output(&files, "--out", paths[i]);
    }
    return cli_files_check(c, &files);
}

/* "deepsky train-gan ..." as given, quoted to run again (stored in the weights). */
static char *command_line(int argc, char **argv)
{
    const char **w = malloc(((size_t)argc + 2) * sizeof *w);
    if (!w)
        return NULL;
    w[0] = "deepsky";
    w[1] = "train-gan";
    for (int i = 0; i < argc; i++)
        w[i + 2] = argv[i];
    char *line = ds_command_line(argc + 2, (const char *const *)w);
    free(w);
    return line;
}

/* What the library does not see and a resume must match: the model files' bytes and the
 * options that select the data. */
static void run_settings(const cli_cmd *c, char *buf, size_t cap)
{
    char hg[32], hd[32];
    const char *hdu = cli_get(c, "hdu"), *nan = cli_get(c, "nan"), *sc = cli_get(c, "scale");
    snprintf(buf, cap, "generator file: %s\ndiscriminator file: %s\nscale: %s\n--hdu: %s\n"
             "--nan: %s\n",
             file_hash(cli_get(c, "generator"), hg, sizeof hg) ? hg : "unreadable",
             file_hash(cli_get(c, "discriminator"), hd, sizeof hd) ? hd : "unreadable",
             sc ? sc : "none", hdu ? hdu : "(not given)", nan ? nan : "(not given)");
}

static void show(void *ctx, const ds_gan_progress *p)
{
    (void)ctx;
    printf("epoch %d/%d: d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  (%lld D, %lld G "
           "steps, %.1f s)\n", p->epoch, p->epochs, p->d_loss, p->g_loss, p->d_real, p->d_fake,
           (long long)p->d_steps, (long long)p->g_steps, p->seconds);
    fflush(stdout);
}

/* The data for D's input, scaled as --scale says (stored with D's weights). */
static int load_data(const cli_cmd *c, const gan_flags *f, ds_net *d, cli_data *data,
                     ds_feed *feed)
{
    int rc = cli_load_set(c, "data", NULL, data);
    if (rc || (rc = cli_feed(d, data, feed)))
        return rc;
    if (f->scale != DS_SCALE_NONE &&
        ds_net_set_input_scaling(d, NULL, f->scale, f->scale_a, feed->inputs[0].data))
        return cli_fail();
    return ds_net_preprocess_feed(d, feed) ? cli_fail() : 0;
}

static int run(const cli_cmd *c, const gan_flags *f, int argc, char **argv)
{
    ds_net *g = NULL, *d = NULL;
    cli_data data = {0};
    ds_feed feed;
    char *command = NULL;
    char settings[1024];
    int rc = cli_load_net(cli_get(c, "generator"), NULL, f->batch, (uint64_t)f->seed, NULL, &g);
    if (!rc)
        rc = cli_load_net(cli_get(c, "discriminator"), NULL, f->batch, (uint64_t)f->seed + 1,
                          NULL, &d);
    if (!rc && ds_gan_check(g, d, f->latent))
        rc = cli_fail();
    if (!rc)
        rc = load_data(c, f, d, &data, &feed);
    if (!rc && !(command = command_line(argc, argv)))
        rc = cli_fail();
    if (rc)
        goto done;
    run_settings(c, settings, sizeof settings);
    ds_gan_opts o = {
        .epochs = (int)f->epochs, .batch_size = f->batch, .d_steps = (int)f->d_steps,
        .label_smoothing = f->smoothing, .latent = f->latent, .seed = (uint64_t)f->seed,
        .out_dir = f->dir, .grid_rows = f->rows, .grid_cols = f->cols,
        .resume = cli_has(c, "resume"), .settings = settings, .command = command,
        .progress = cli_has(c, "quiet") ? NULL : show,
    };
    ds_gan_result r;
    if (ds_gan_fit(g, d, feed.inputs[0].data, &o, &r)) {
        rc = cli_fail();
        goto done;
    }
    if (!cli_has(c, "quiet")) {
        if (r.resumed_from)
            printf("resumed after epoch %d\n", r.resumed_from);
        printf("wrote %s/generator.safetensors, %s/discriminator.safetensors, "
               "%s/gan.ckpt.safetensors, %s/log.csv%s\n", f->dir, f->dir, f->dir, f->dir,
               f->rows ? " and samples_EEEE.png" : "");
    }
done:
    free(command);
    cli_data_free(&data);
    ds_net_free(g);
    ds_net_free(d);
    return rc;
}

int cmd_train_gan(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("generator", 0, "G.model", "generator model file: latent vector -> image"),
        CLI_OPT("discriminator", 0, "D.model", "discriminator model file: image -> one logit"),
        CLI_OPT("data", 0, "X", "real images [N, C, H, W] (FITS, .npy, ...), the "
                "discriminator's input shape per sample"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "
                "data)"),
        CLI_READ_OPTS,
        CLI_OPT("latent", 0, "N", "latent size, checked against the generator's input "
                "(default: the generator's)"),
        CLI_OPT("label-smoothing", 0, "S", "the real images' label is 1 - S (one-sided), "
                "0 <= S < 0.5 (default 0)"),
        CLI_OPT("d-steps", 0, "K", "discriminator steps per generator step (default 1)"),
        CLI_OPT("epochs", 0, "E", "passes over the data (default 10)"),
        CLI_OPT("batch-size", 0, "B", "real images per discriminator step, and generated "
                "images per step (default 32)"),
        CLI_OPT("seed", 0, "S", "seed of both initializations, shuffling and z (default 0)"),
        CLI_OPT("scale", 0, "HOW", "none, divide:A or asinh:A: the data's scaling, stored with "
                "the discriminator's weights; the generator learns the scaled images "
                "(default none)"),
        CLI_OPT("grid", 0, "RxC", "grid of samples drawn every epoch into DIR/samples_EEEE.png "
                "(default 8x8; none: no figure)"),
        CLI_OPT("resume", 0, NULL, "continue an interrupted run of the same command from "
                "DIR/gan.ckpt.safetensors, which must match every setting"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPT("quiet", 'q', NULL, "no progress output"),
        CLI_OPT("out", 'o', "DIR", "output folder (made if missing): generator.safetensors, "
                "discriminator.safetensors, gan.ckpt.safetensors, log.csv, samples_EEEE.png"),
    };
    cli_cmd c = {"train-gan", "--generator G.model --discriminator D.model --data X --out DIR "
                 "[options]",
                 "Trains a GAN: the generator maps z ~ N(0, 1) to images, the discriminator "
                 "images to one logit; alternating updates with the non-saturating loss, each "
                 "model with the optimizer of its own file (loss lines are not used). After "
                 "every epoch it writes both weights files, the checkpoint, the log (d_loss, "
                 "g_loss, D(x), D(G(z))) and a grid of samples, each atomically.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 0, 0};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    gan_flags f;
    if ((rc = check_flags(&c, &f)))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    if ((rc = check_outputs(&c, &f)))
        return rc;
    return run(&c, &f, argc, argv);
}
