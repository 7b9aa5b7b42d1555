/* cmd_sim.c - deepsky sim galaxies ...: simulated galaxy stamps (FITS cube) and their truth
 * table (FITS binary table), for the ellipticity demo. */
#include "cli.h"
#include "sim_kinds.h"
#include "sim_realism.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void sim_npy_name(const char *path, char *out, size_t cap)
{
    static const char *const ext[] = {".fits.gz", ".fits", ".fit", ".fts", ".csv", ".npy"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcasecmp(path + n - e, ext[i])) {
            n -= e;
            break;
        }
    }
    snprintf(out, cap, "%.*s.npy", (int)n, path);
}

/* The params table's columns: the first PARAMS_COLS of ds_sim_columns(), the drawn ones
 * (e1 ... dy, the variable PSF's, the neighbour's); the shear's follow from them. */
enum { PARAMS_COLS = 18 };


/* The params table: every params column the file has (case-insensitive), the others NaN
 * (drawn). */
static int load_params(const char *path, ds_tensor **out)
{
    const char *const *names = ds_sim_columns();
    char *have = ds_table_columns(path, NULL);
    if (!have)
        return cli_fail();
    ds_tensor *t = NULL;
    int found = 0, rc = 0;
    for (int j = 0; j < PARAMS_COLS && !rc; j++) {
        bool present = false;
        char *list = strdup(have), *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (!strcasecmp(tok, names[j]))
                present = true;
        }
        free(list);
        if (!present)
            continue;
        ds_read_opts o = {.columns = names[j]};
        ds_tensor *col;
        if (ds_array_load(path, &o, &col) != DS_OK) {
            rc = cli_fail();
            break;
        }
        int64_t rows = ds_tensor_shape(col)[0];
        if (!t) {
            int64_t sh[2] = {rows, PARAMS_COLS};
            t = ds_tensor_create(2, sh);
            if (!t) {
                ds_tensor_free(col);
                rc = cli_fail();
                break;
            }
            for (int64_t i = 0; i < rows * PARAMS_COLS; i++)
                ds_tensor_data(t)[i] = NAN;
        }
        if (ds_tensor_numel(col) != ds_tensor_shape(t)[0]) {
            fprintf(stderr, "deepsky: error: %s: column '%s' has %lld values, expected %lld\n",
                    path, names[j], (long long)ds_tensor_numel(col),
                    (long long)ds_tensor_shape(t)[0]);
            rc = 1;
        } else {
            for (int64_t i = 0; i < ds_tensor_numel(col); i++)
                ds_tensor_data(t)[i * PARAMS_COLS + j] = ds_tensor_data(col)[i];
            found++;
        }
        ds_tensor_free(col);
    }
    if (!rc && !found) {
        fprintf(stderr, "deepsky: error: %s: no column named as one of the truth table's (e1, "
                "e2, n, hlr, flux, snr, psf_fwhm, dx, dy, ...) (it has: %s)\n", path, have);
        rc = 1;
    }
    free(have);
    if (rc) {
        ds_tensor_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* --shear G1,G2, --pairs, --shear-cycle A (shear.c) into o; 0, or 2 after a usage error. */
static int shear_options(const cli_cmd *c, ds_sim_opts *o)
{
    const char *v = cli_get(c, "shear");
    if (v) {
        char *end, *end2 = NULL;
        errno = 0;
        o->g1 = strtod(v, &end);
        if (end != v && *end == ',')
            o->g2 = strtod(end + 1, &end2);
        if (errno || end == v || *end != ',' || end2 == end + 1 || !end2 || *end2 ||
            !isfinite(o->g1) || !isfinite(o->g2))
            return cli_usage_error(c, "option '--shear': '%s' is not two numbers G1,G2", v);
        if (!(hypot(o->g1, o->g2) < 1))
            return cli_usage_error(c, "option '--shear': |g| = %g must be < 1", hypot(o->g1, o->g2));
    }
    if (!cli_double(c, "shear-cycle", 1e-9, 0.7071, 0, &o->shear_cycle))
        return 2;
    if (v && cli_has(c, "shear-cycle"))
        return cli_usage_error(c, "--shear and --shear-cycle exclude each other (the cycle sets "
                               "the shears)");
    o->pairs = cli_has(c, "pairs");
    return 0;
}

/* The count must fill whole pairs and cycles; 0, or 2 after a usage error. */
static int check_groups(const cli_cmd *c, const ds_sim_opts *o)
{
    int grp = (o->pairs ? 2 : 1) * (o->shear_cycle > 0 ? 4 : 1);
    if (o->count % grp == 0)
        return 0;
    if (grp == 2)
        return cli_usage_error(c, "--pairs needs an even number of galaxies (%lld)",
                               (long long)o->count);
    return cli_usage_error(c, "--shear-cycle%s needs a number of galaxies that is a multiple of "
                           "%d (%lld)", o->pairs ? " with --pairs" : "", grp, (long long)o->count);
}

int sim_parse_kind(cli_cmd *c, int argc, char **argv, const char *kind)
{
    int rc = cli_parse(c, argc, argv);
    if (!rc && strcmp(c->positional[0], kind))
        rc = cli_usage_error(c, "'%s' and '%s': give one kind", c->positional[0], kind);
    return rc;
}

int sim_check_outputs(const cli_cmd *c, ...)
{
    char flags[8][40];   /* cli_files keeps the names until the check */
    cli_files files = {0};
    va_list ap;
    va_start(ap, c);
    const char *name;
    for (int k = 0; k < 8 && (name = va_arg(ap, const char *)); k++) {
        snprintf(flags[k], sizeof flags[k], strcmp(name, "output") ? "--%s" : "-o", name);
        cli_files_output(&files, flags[k], cli_get(c, name));
    }
    va_end(ap);
    return cli_files_check(c, &files);
}

int sim_save_table(const ds_tensor *truth, const char *const *names, const char *path)
{
    const int64_t n = ds_tensor_shape(truth)[0];
    const int nc = (int)ds_tensor_shape(truth)[1];
    float *cols = malloc(sizeof *cols * (size_t)(nc * n));
    const float **col_ptr = malloc(sizeof *col_ptr * (size_t)nc);
    if (!cols || !col_ptr) {
        free(cols);
        free(col_ptr);
        fprintf(stderr, "deepsky: error: out of memory for the truth table\n");
        return 1;
    }
    const float *t = ds_tensor_data((ds_tensor *)truth);
    for (int j = 0; j < nc; j++) {
        for (int64_t i = 0; i < n; i++)
            cols[j * n + i] = t[i * nc + j];
        col_ptr[j] = cols + j * n;
    }
    int rc = ds_table_save(path, nc, names, n, col_ptr) == DS_OK ? 0 : cli_fail();
    free(cols);
    free(col_ptr);
    return rc;
}

/* --psf-beta (or --beta), --psf-e, --psf-lod, --psf-obscuration. */
static bool parse_psf_opts(const cli_cmd *c, ds_sim_opts *o)
{
    const char *beta = cli_has(c, "psf-beta") ? "psf-beta" : "beta";
    if (cli_has(c, "psf-beta") && cli_has(c, "beta")) {
        cli_usage_error(c, "options '--psf-beta' and '--beta' are the same: give one");
        return false;
    }
    o->psf.beta = 3;
    if (!cli_range(c, beta, 1.000001, 100, &o->psf_beta_min, &o->psf_beta_max) ||
        !cli_range(c, "psf-lod", 0, 1000, &o->psf_lod_min, &o->psf_lod_max) ||
        !cli_double(c, "psf-obscuration", 0, 0.999999, 0, &o->psf.obscuration))
        return false;
    if (cli_has(c, beta))
        o->psf.beta = o->psf_beta_min;
    o->psf.lam_over_diam = o->psf_lod_min;
    const char *e = cli_get(c, "psf-e");
    if (!e)
        return true;
    char *end;
    double a = strtod(e, &end), b = 0;
    bool pair = end != e && *end == ',';
    if (pair) {
        const char *s = end + 1;
        b = strtod(s, &end);
        if (end == s)
            end = (char *)s - 1;
    }
    if (end == e || *end || !(hypot(a, b) < 1) || (!pair && !(a >= 0))) {
        cli_usage_error(c, "option '--psf-e': '%s' is not E in [0, 1) or E1,E2 with |e| < 1", e);
        return false;
    }
    if (pair)
        o->psf.e1 = a, o->psf.e2 = b;
    else
        o->psf_e_max = a;
    return true;
}

/* What each PSF kind needs and refuses among the PSF options (exit status, 0 if fine). */
static int psf_kind_rules(const cli_cmd *c, const ds_sim_opts *o, double fwhm_lo)
{
    const ds_psf_kind k = o->psf.kind;
    if (k != DS_PSF_OPTICAL && fwhm_lo <= 0 && k != DS_PSF_NONE)
        return cli_usage_error(c, "option '--psf-fwhm': must be > 0 (0, no atmosphere, is for "
                               "--psf optical only)");
    if (k == DS_PSF_OPTICAL && !cli_has(c, "psf-lod"))
        return cli_usage_error(c, "--psf optical needs --psf-lod L (lambda/D in pixels)");
    if (k != DS_PSF_OPTICAL && (cli_has(c, "psf-lod") || cli_has(c, "psf-obscuration")))
        return cli_usage_error(c, "options '--psf-lod' and '--psf-obscuration' are for "
                               "--psf optical only");
    if (k != DS_PSF_MOFFAT && (cli_has(c, "psf-beta") || cli_has(c, "beta")))
        return cli_usage_error(c, "option '--%s' is for --psf moffat only",
                               cli_has(c, "beta") ? "beta" : "psf-beta");
    if (k == DS_PSF_NONE && cli_has(c, "psf-e"))
        return cli_usage_error(c, "option '--psf-e' needs a PSF (--psf is none)");
    return 0;
}

/* The options of SIM_GALAXY_OPTS (and --threads) into o (count 0 when absent); 0, or 2
 * after a usage error naming the option. */
int sim_galaxy_options(const cli_cmd *c, ds_sim_opts *o)
{
    long count, size, seed;
    double fwhm_lo = 2, fwhm_hi = 2;
    o->n_min = 0.5, o->n_max = 6, o->hlr_min = 1.5, o->hlr_max = 5, o->snr_min = 10;
    o->snr_max = 100;
    if (!cli_long(c, "count", 1, 100000000L, 0, &count) ||
        !cli_long(c, "size", 4, 4096, 32, &size) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_range(c, "n", 0.3, 8, &o->n_min, &o->n_max) ||
        !cli_range(c, "hlr", 1e-3, 1e6, &o->hlr_min, &o->hlr_max) ||
        !cli_double(c, "e-max", 0, 0.999999, 0.6, &o->e_max) ||
        !cli_range(c, "snr", 0, 1e12, &o->snr_min, &o->snr_max) ||
        !cli_range(c, "psf-fwhm", 0, 1000, &fwhm_lo, &fwhm_hi) ||
        !parse_psf_opts(c, o) ||
        !cli_double(c, "offset", 0, 4096, 0.5, &o->offset_max) ||
        !cli_double(c, "sky-sigma", 1e-30, 1e30, 1, &o->sky_sigma) ||
        !cli_double(c, "gain", 0, 1e30, 0, &o->gain) || !cli_threads(c))
        return 2;
    if (o->snr_max > 0 && !(o->snr_min > 0))
        return cli_usage_error(c, "option '--snr': the range must be positive (or 0: noiseless)");
    const char *kind = cli_get(c, "psf");
    if (!kind || !strcmp(kind, "gaussian"))
        o->psf.kind = DS_PSF_GAUSSIAN;
    else if (!strcmp(kind, "moffat"))
        o->psf.kind = DS_PSF_MOFFAT;
    else if (!strcmp(kind, "optical"))
        o->psf.kind = DS_PSF_OPTICAL;
    else if (!strcmp(kind, "none"))
        o->psf.kind = DS_PSF_NONE;
    else
        return cli_usage_error(c, "option '--psf': '%s' is not gaussian, moffat, optical or none",
                               kind);
    int rc = psf_kind_rules(c, o, fwhm_lo);
    if (rc)
        return rc;
    o->psf.fwhm = fwhm_lo;
    o->psf_fwhm_min = fwhm_lo;
    o->psf_fwhm_max = fwhm_hi;
    o->size = (int)size;
    o->seed = (uint64_t)seed;
    o->count = count;
    return 0;
}

/* The PSF image of each stamp, [N, S, S], written as the stamps are (atomically). */
static int save_psf_images(const ds_sim_opts *o, const ds_tensor *truth, const char *path)
{
    ds_tensor *p = NULL;
    if (ds_sim_psf_images(o, truth, &p) != DS_OK)
        return cli_fail();
    int64_t shape[3] = {ds_tensor_shape(p)[0], o->size, o->size};
    int rc = ds_tensor_reshape(p, 3, shape) == DS_OK && ds_array_save(p, path, NULL) == DS_OK
                 ? 0 : cli_fail();
    ds_tensor_free(p);
    return rc;
}

static int cmd_sim_galaxies(int argc, char **argv);

/* The first argument naming a kind picks the command: galaxies (below), blends
 * (sim_blends.c) or anomalies (sim_anomalies.c). The fuzz dictionary's visit sees all. */
int cmd_sim(int argc, char **argv)
{
    if (cli_visitor) {
        cmd_sim_blends(argc, argv);
        cmd_sim_anomalies(argc, argv);
        cmd_sim_photometry(argc, argv);
        cmd_sim_lenses(argc, argv);
        cmd_sim_morphology(argc, argv);
        return cmd_sim_galaxies(argc, argv);
    }
    for (int i = 0; i < argc && strcmp(argv[i], "galaxies"); i++) {
        if (!strcmp(argv[i], "blends"))
            return cmd_sim_blends(argc, argv);
        if (!strcmp(argv[i], "anomalies"))
            return cmd_sim_anomalies(argc, argv);
        if (!strcmp(argv[i], "photometry"))
            return cmd_sim_photometry(argc, argv);
        if (!strcmp(argv[i], "lenses"))
            return cmd_sim_lenses(argc, argv);
        if (!strcmp(argv[i], "morphology"))
            return cmd_sim_morphology(argc, argv);
    }
    return cmd_sim_galaxies(argc, argv);
}

static int cmd_sim_galaxies(int argc, char **argv)
{
    cli_opt opts[] = {
        SIM_GALAXY_OPTS,
        CLI_OPT("psf-out", 0, "PSF", "also write each stamp's PSF image [N, S, S] (.fits or "
                ".npy; unit sum, centred)"),
        CLI_OPT("params", 0, "TABLE", "FITS or CSV table whose columns (those of the truth "
                "table: e1, e2, n, hlr, flux, snr, psf_fwhm, dx, dy, psf_beta, ... psf_obsc, "
                "nb_flux, nb_dx, nb_dy, nb_hlr) override the draws where not NaN (e1, e2: "
                "intrinsic)"),
        CLI_OPT("shear", 0, "G1,G2", "constant shear applied to the intrinsic shapes, |g| < 1 "
                "(default 0,0)"),
        CLI_OPT("pairs", 0, NULL, "90-degree pairs: rows 2i, 2i+1 share every parameter, the "
                "second's intrinsic shape turned by 90 degrees; independent noise"),
        CLI_OPT("shear-cycle", 0, "A", "groups of 4 galaxies (8 with --pairs) share a galaxy and "
                "its noise under the shears (+A,+A), (-A,+A), (+A,-A), (-A,-A)"),
        SIM_REALISM_OPTS,
        CLI_OPT("output", 'o', "IMAGES", "image cube [N, S, S] (.fits or .npy; required)"),
        CLI_OPT("truth", 0, "TABLE", "truth table (.fits or .csv; required)"),
        CLI_OPT("npy", 0, NULL, "also write .npy copies of the images and the truth"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"sim", "galaxies --count N -o IMAGES.fits --truth TRUTH.fits [options]",
                 "Simulates Sersic galaxies (pixel-integrated, convolved with the PSF, with sky\n"
                 "noise) and writes the stamps and a truth table with the columns e1, e2, n, hlr,\n"
                 "flux, snr, psf_fwhm, dx, dy, psf_beta, psf_e1, psf_e2, psf_lod, psf_obsc,\n"
                 "nb_flux, nb_dx, nb_dy, nb_hlr (the neighbour; 0 without one), g1, g2, e1_int,\n"
                 "e2_int (e1, e2: the sheared shape; e_int: the intrinsic one). Flux outside a\n"
                 "stamp is lost. Other kinds: 'deepsky sim blends --help' (blended pairs with\n"
                 "segmentation masks), 'deepsky sim anomalies --help' (injected anomalies).",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    if (strcmp(c.positional[0], "galaxies"))
        return cli_usage_error(&c, "unknown kind '%s' (galaxies, blends or anomalies)",
                               c.positional[0]);
    if (!cli_has(&c, "output") || !cli_has(&c, "truth"))
        return cli_usage_error(&c, "-o IMAGES and --truth TABLE are required");
    if (!cli_has(&c, "count") && !cli_has(&c, "params"))
        return cli_usage_error(&c, "--count N (or --params TABLE) is required");
    ds_sim_opts o = {0};
    if ((rc = sim_galaxy_options(&c, &o)) || (rc = shear_options(&c, &o)))
        return rc;
    const long count = (long)o.count;
    if (cli_has(&c, "count") && (rc = check_groups(&c, &o)))
        return rc;
    double *kernel = NULL;
    const char *kernel_file = NULL;
    if ((rc = sim_realism_parse(&c, &o, &kernel, &kernel_file)))
        return rc;
    if (cli_stop_here(&c)) {
        free(kernel);
        return 0;
    }
    const char *out = cli_get(&c, "output"), *tpath = cli_get(&c, "truth");
    char npy_out[1024], npy_truth[1024];
    sim_npy_name(out, npy_out, sizeof npy_out);
    sim_npy_name(tpath, npy_truth, sizeof npy_truth);
    cli_files files = {0};
    cli_files_input(&files, "--params", cli_get(&c, "params"));
    cli_files_input(&files, "--noise-kernel", kernel_file);
    cli_files_output(&files, "-o", out);
    cli_files_output(&files, "--truth", tpath);
    if (cli_has(&c, "npy") && strcmp(npy_out, out))
        cli_files_output(&files, "the .npy copy of -o,", npy_out);
    if (cli_has(&c, "npy") && strcmp(npy_truth, tpath))
        cli_files_output(&files, "the .npy copy of --truth,", npy_truth);
    cli_files_output(&files, "--psf-out", cli_get(&c, "psf-out"));
    if ((rc = cli_files_check(&c, &files)) ||
        (kernel_file && (rc = sim_realism_load_kernel(kernel_file, &o, &kernel)))) {
        free(kernel);
        return rc;
    }
    ds_tensor *params = NULL, *images = NULL, *truth = NULL;
    if (cli_has(&c, "params")) {
        if ((rc = load_params(cli_get(&c, "params"), &params))) {
            free(kernel);
            return rc;
        }
        int64_t rows = ds_tensor_shape(params)[0];
        if (cli_has(&c, "count") && rows != count) {
            ds_tensor_free(params);
            free(kernel);
            return cli_usage_error(&c, "--count %ld differs from the %lld rows of '%s'", count,
                                   (long long)rows, cli_get(&c, "params"));
        }
        o.count = rows;
        o.params = params;
        if ((rc = check_groups(&c, &o))) {
            ds_tensor_free(params);
            free(kernel);
            return rc;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ds_status st = ds_sim_galaxies(&o, &images, &truth);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    ds_tensor_free(params);
    free(kernel);
    if (st != DS_OK)
        return cli_fail();
    int64_t shape[3] = {o.count, o.size, o.size};
    rc = ds_tensor_reshape(images, 3, shape) == DS_OK && ds_array_save(images, out, NULL) == DS_OK
             ? 0 : cli_fail();
    if (!rc)
        rc = sim_save_table(truth, ds_sim_columns(), tpath);
    if (!rc && cli_has(&c, "npy")) {
        if (strcmp(npy_out, out) && ds_npy_save(images, npy_out) != DS_OK)
            rc = cli_fail();
        if (!rc && strcmp(npy_truth, tpath) && ds_npy_save(truth, npy_truth) != DS_OK)
            rc = cli_fail();
    }
    if (!rc && cli_has(&c, "psf-out"))
        rc = save_psf_images(&o, truth, cli_get(&c, "psf-out"));
    if (!rc)
        printf("simulated %lld %s of %d x %d in %.2f s (%.0f galaxies/s): %s, %s\n",
               (long long)o.count, cli_plural(o.count, "galaxy", "galaxies"), o.size, o.size,
               dt, o.count / (dt > 0 ? dt : 1e-9), out, tpath);
    ds_tensor_free(images);
    ds_tensor_free(truth);
    return rc;
}
