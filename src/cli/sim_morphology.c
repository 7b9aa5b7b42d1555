/* sim_morphology.c - deepsky sim morphology ...: bulge + disk galaxies of four morphological
 * classes (FITS or .npy cube, one or three bands), their labels (class or B/T) and truth. */
#include "sim_kinds.h"

#include <string.h>
#include <time.h>

/* --psf, --psf-fwhm, --psf-beta into o->psf; 0, or 2 after a usage error. */
static int psf_options(const cli_cmd *c, ds_morph_opts *o)
{
    const char *kind = cli_get(c, "psf");
    o->psf.fwhm = 2, o->psf.beta = 3;
    if (!cli_double(c, "psf-fwhm", 1e-3, 1000, 2, &o->psf.fwhm) ||
        !cli_double(c, "psf-beta", 1.000001, 100, 3, &o->psf.beta))
        return 2;
    if (!kind || !strcmp(kind, "gaussian"))
        o->psf.kind = DS_PSF_GAUSSIAN;
    else if (!strcmp(kind, "moffat"))
        o->psf.kind = DS_PSF_MOFFAT;
    else if (!strcmp(kind, "none"))
        o->psf.kind = DS_PSF_NONE;
    else
        return cli_usage_error(c, "option '--psf': '%s' is not gaussian, moffat or none", kind);
    if (o->psf.kind != DS_PSF_MOFFAT && cli_has(c, "psf-beta"))
        return cli_usage_error(c, "option '--psf-beta' is for --psf moffat only");
    if (o->psf.kind == DS_PSF_NONE && cli_has(c, "psf-fwhm"))
        return cli_usage_error(c, "option '--psf-fwhm' needs a PSF (--psf is none)");
    return 0;
}

/* The options into o; 0, or 2 after a usage error naming the option. */
static int morph_options(const cli_cmd *c, ds_morph_opts *o)
{
    long count, size, seed;
    if (!cli_has(c, "output") || !cli_has(c, "truth"))
        return cli_usage_error(c, "-o IMAGES and --truth TABLE are required");
    if (!cli_has(c, "count"))
        return cli_usage_error(c, "--count N is required");
    o->snr_min = 20, o->snr_max = 150, o->hlr_min = 3, o->hlr_max = 7;
    if (!cli_long(c, "count", 1, 100000000L, 0, &count) ||
        !cli_long(c, "size", 16, 1024, 48, &size) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, &seed) ||
        !cli_range(c, "snr", 0, 1e12, &o->snr_min, &o->snr_max) ||
        !cli_range(c, "hlr", 0.5, 1024, &o->hlr_min, &o->hlr_max) ||
        !cli_double(c, "offset", 0, 256, 1, &o->offset_max) ||
        !cli_double(c, "sky-sigma", 1e-30, 1e30, 1, &o->sky_sigma) ||
        !cli_double(c, "bar-prob", 0, 1, 0.3, &o->bar_prob) ||
        !cli_double(c, "merger-frac", 0, 1, 0.5, &o->merger_frac) || !cli_threads(c))
        return 2;
    if (o->snr_max > 0 && !(o->snr_min > 0))
        return cli_usage_error(c, "option '--snr': the range must be positive (or 0: noiseless)");
    if (o->hlr_max > size / 2.0)
        return cli_usage_error(c, "option '--hlr': %g pixels is more than half the %ld-pixel "
                               "stamp", o->hlr_max, size);
    if (o->offset_max > size / 4.0)
        return cli_usage_error(c, "option '--offset': %g pixels is more than a quarter of the "
                               "%ld-pixel stamp", o->offset_max, size);
    if (cli_has(c, "bt") && !cli_has(c, "labels"))
        return cli_usage_error(c, "option '--bt' chooses what --labels holds: give --labels");
    o->count = count, o->size = (int)size, o->seed = (uint64_t)seed;
    o->bands = cli_has(c, "multi-band") ? 3 : 1;
    return psf_options(c, o);
}

/* The labels: each row's class [N], or its B/T [N, 1] with --bt. 0, or 1 (printed). */
static int save_labels(const cli_cmd *c, const ds_tensor *truth)
{
    const int64_t n = ds_tensor_shape(truth)[0], nc = ds_tensor_shape(truth)[1];
    const int bt = cli_has(c, "bt");
    int64_t sh[2] = {n, 1};
    ds_tensor *y = ds_tensor_create(bt ? 2 : 1, sh);
    if (!y)
        return cli_fail();
    const float *t = ds_tensor_data((ds_tensor *)truth);
    for (int64_t i = 0; i < n; i++)
        ds_tensor_data(y)[i] = t[i * nc + (bt ? 1 : 0)];   /* columns class, bt */
    int rc = ds_array_save(y, cli_get(c, "labels"), NULL) == DS_OK ? 0 : cli_fail();
    ds_tensor_free(y);
    return rc;
}

/* The images ([N, S, S] for one band), the labels and the truth table. */
static int save_all(const cli_cmd *c, ds_tensor *images, const ds_tensor *truth, int bands)
{
    const int64_t *sh = ds_tensor_shape(images);
    int64_t s3[3] = {sh[0], sh[2], sh[3]};
    if (bands == 1 && ds_tensor_reshape(images, 3, s3) != DS_OK)
        return cli_fail();
    if (ds_array_save(images, cli_get(c, "output"), NULL) != DS_OK)
        return cli_fail();
    int rc = sim_save_table(truth, ds_morph_columns(), cli_get(c, "truth"));
    if (!rc && cli_has(c, "labels"))
        rc = save_labels(c, truth);
    return rc;
}

int cmd_sim_morphology(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("count", 0, "N", "number of stamps (required); row i is of class i mod 4"),
        CLI_OPT("size", 0, "S", "stamp size in pixels (default 48)"),
        CLI_OPT("seed", 0, "S", "seed of the draws and the noise (default 0)"),
        CLI_OPT("snr", 0, "MIN:MAX", "r-band GalSim SNR range; 0: noiseless, flux 1 (default "
                "20:150)"),
        CLI_OPT("hlr", 0, "MIN:MAX", "the disk's half-light radius range, pixels (default 3:7)"),
        CLI_OPT("offset", 0, "D", "centre offsets uniform in [-D, D] pixels (default 1)"),
        CLI_OPT("sky-sigma", 0, "S", "Gaussian sky noise sigma in every band (default 1)"),
        CLI_OPT("psf", 0, "KIND", "gaussian, moffat or none (default gaussian)"),
        CLI_OPT("psf-fwhm", 0, "F", "PSF FWHM in pixels (default 2)"),
        CLI_OPT("psf-beta", 0, "B", "Moffat beta > 1 (default 3)"),
        CLI_OPT("bar-prob", 0, "P", "probability of a bar in lenticulars and spirals (default "
                "0.3)"),
        CLI_OPT("merger-frac", 0, "F", "fraction of mergers in the irregular class (default "
                "0.5)"),
        CLI_OPT("multi-band", 0, NULL, "three bands g, r, i with a colour per component: "
                "images [N, 3, S, S]"),
        CLI_OPT("output", 'o', "IMAGES", "image cube [N, S, S] (.fits or .npy; required)"),
        CLI_OPT("labels", 0, "FILE", "each stamp's class, 0 elliptical, 1 lenticular, 2 "
                "spiral, 3 irregular/merger [N] (.npy or .fits)"),
        CLI_OPT("bt", 0, NULL, "--labels holds the bulge-to-total ratio [N, 1] instead"),
        CLI_OPT("truth", 0, "TABLE", "truth table (.fits or .csv; required)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"sim", "morphology --count N -o IMAGES --truth TRUTH [--labels FILE] [options]",
                 "Simulates bulge + disk galaxies of four classes (elliptical, lenticular,\n"
                 "spiral, irregular/merger): Sersic bulges and inclined disks, spiral arms and\n"
                 "bars, star-forming clumps, companions, convolved with the PSF, with sky noise.\n"
                 "The truth table has the columns class, bt, flux, snr, dx, dy, bulge_n,\n"
                 "bulge_hlr, bulge_e1, bulge_e2, disk_n, disk_hlr, incl, disk_pa, disk_e1,\n"
                 "disk_e2, arms, arm_amp, arm_pitch, lopsided, bar_frac, clumps, clump_frac,\n"
                 "comp_frac, comp_sep, merger, psf_fwhm, g_r, r_i.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = sim_parse_kind(&c, argc, argv, "morphology");
    if (rc)
        return rc;
    ds_morph_opts o = {0};
    if ((rc = morph_options(&c, &o)) || cli_stop_here(&c))
        return rc;
    if ((rc = sim_check_outputs(&c, "output", "truth", "labels", NULL)))
        return rc;
    ds_tensor *images = NULL, *truth = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ds_sim_morphology(&o, &images, &truth))
        return cli_fail();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    rc = save_all(&c, images, truth, o.bands);
    if (!rc)
        printf("simulated %lld %s of %d x %d in %d %s in %.2f s: %s, %s\n", (long long)o.count,
               cli_plural(o.count, "galaxy", "galaxies"), o.size, o.size, o.bands,
               cli_plural(o.bands, "band", "bands"), dt, cli_get(&c, "output"),
               cli_get(&c, "truth"));
    ds_tensor_free(images);
    ds_tensor_free(truth);
    return rc;
}
