/* sim_blends.c - deepsky sim blends ...: blended pairs of galaxies (FITS or .npy cube), their
 * segmentation masks (labels, or one-hot with --one-hot) and a truth table. */
#include "sim_kinds.h"

#include <string.h>
#include <time.h>

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* t [N, C, S, S] (C = 1: written as [N, S, S]) to path. 0, or 1 (printed). */
static int save_cube(ds_tensor *t, const char *path)
{
    const int64_t *sh = ds_tensor_shape(t);
    int64_t s3[3] = {sh[0], sh[2], sh[3]};
    if (sh[1] == 1 && ds_tensor_reshape(t, 3, s3) != DS_OK)
        return cli_fail();
    return ds_array_save(t, path, NULL) == DS_OK ? 0 : cli_fail();
}

/* The blends options into o; 0, or 2 after a usage error. */
static int blend_options(const cli_cmd *c, ds_blend_opts *o)
{
    int rc = sim_galaxy_options(c, &o->sim);
    if (rc)
        return rc;
    if (!cli_has(c, "output") || !cli_has(c, "masks") || !cli_has(c, "truth"))
        return cli_usage_error(c, "-o IMAGES, --masks MASKS and --truth TABLE are required");
    if (!cli_has(c, "count"))
        return cli_usage_error(c, "--count N is required");
    if (!(o->sim.snr_max > 0))
        return cli_usage_error(c, "option '--snr': blends need an SNR range > 0 (the masks' "
                               "threshold is in sky sigmas)");
    const double size = o->sim.size;
    o->sep_min = size / 8, o->sep_max = 5 * size / 16, o->ratio_min = 0.2, o->ratio_max = 1;
    if (!cli_range(c, "separation", 0, size, &o->sep_min, &o->sep_max) ||
        !cli_range(c, "flux-ratio", 1e-6, 1, &o->ratio_min, &o->ratio_max) ||
        !cli_double(c, "mask-threshold", 1e-6, 1e6, 1, &o->mask_threshold))
        return 2;
    if (o->sim.offset_max + o->sep_max / 2 > size / 2)
        return cli_usage_error(c, "options '--offset' %g and '--separation' up to %g put a "
                               "galaxy's centre outside the %d-pixel stamp", o->sim.offset_max,
                               o->sep_max, o->sim.size);
    return 0;
}

/* Writes the outputs of a run. 0, or 1 (printed). */
static int save_all(const cli_cmd *c, ds_tensor *images, ds_tensor *labels, ds_tensor *truth,
                    ds_tensor *comp)
{
    int rc = save_cube(images, cli_get(c, "output"));
    if (!rc && cli_has(c, "one-hot")) {
        ds_tensor *oh = NULL;
        rc = ds_labels_one_hot(labels, 3, &oh) == DS_OK ? save_cube(oh, cli_get(c, "masks"))
                                                        : cli_fail();
        ds_tensor_free(oh);
    } else if (!rc) {
        rc = save_cube(labels, cli_get(c, "masks"));
    }
    if (!rc)
        rc = sim_save_table(truth, ds_blend_columns(), cli_get(c, "truth"));
    if (!rc && comp)
        rc = save_cube(comp, cli_get(c, "components"));
    return rc;
}

int cmd_sim_blends(int argc, char **argv)
{
    cli_opt opts[] = {
        SIM_GALAXY_OPTS,
        CLI_OPT("separation", 0, "MIN:MAX", "distance between the two centres, pixels (default "
                "S/8:5S/16, 4:10 for 32)"),
        CLI_OPT("flux-ratio", 0, "MIN:MAX", "the fainter galaxy's flux over the brighter's, "
                "within (0, 1] (default 0.2:1)"),
        CLI_OPT("mask-threshold", 0, "T", "a pixel is an object's where its noiseless value "
                "exceeds T sky sigmas (default 1)"),
        CLI_OPT("output", 'o', "IMAGES", "blended stamps [N, S, S] (.fits or .npy; required)"),
        CLI_OPT("masks", 0, "MASKS", "labels [N, S, S]: 0 background, 1 the brighter galaxy, 2 "
                "the fainter (.fits or .npy; required)"),
        CLI_OPT("one-hot", 0, NULL, "write the masks one-hot, [N, 3, S, S]"),
        CLI_OPT("components", 0, "FILE", "also write each galaxy's noiseless image [N, 2, S, S]"),
        CLI_OPT("truth", 0, "TABLE", "truth table (.fits or .csv; required)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"sim", "blends --count N -o IMAGES --masks MASKS --truth TRUTH [options]",
                 "Simulates blended pairs of Sersic galaxies (each drawn as by 'sim galaxies',\n"
                 "the second at a drawn separation and flux ratio) with per-pixel masks, and a\n"
                 "truth table: a_e1, a_e2, a_n, a_hlr, a_flux, a_snr, a_dx, a_dy, the same for\n"
                 "b, psf_fwhm, psf_beta, psf_e1, psf_e2, psf_lod, psf_obsc, g1, g2, separation,\n"
                 "angle, flux_ratio, snr (the blend's), a_pixels, b_pixels, overlap. Label 1\n"
                 "(galaxy a) is the brighter; --snr is a's alone.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = sim_parse_kind(&c, argc, argv, "blends");
    if (rc)
        return rc;
    ds_blend_opts o = {0};
    if ((rc = blend_options(&c, &o)) || cli_stop_here(&c))
        return rc;
    if ((rc = sim_check_outputs(&c, "output", "masks", "truth", "components", NULL)))
        return rc;
    ds_tensor *images = NULL, *labels = NULL, *truth = NULL, *comp = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ds_sim_blends(&o, &images, &labels, &truth, cli_has(&c, "components") ? &comp : NULL))
        return cli_fail();
    double dt = seconds_since(&t0);
    rc = save_all(&c, images, labels, truth, comp);
    if (!rc)
        printf("simulated %lld %s of %d x %d in %.2f s: %s, %s, %s\n", (long long)o.sim.count,
               cli_plural(o.sim.count, "blend", "blends"), o.sim.size, o.sim.size, dt,
               cli_get(&c, "output"), cli_get(&c, "masks"), cli_get(&c, "truth"));
    ds_tensor_free(images);
    ds_tensor_free(labels);
    ds_tensor_free(truth);
    ds_tensor_free(comp);
    return rc;
}
