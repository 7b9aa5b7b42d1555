/* sim_lenses.c - deepsky sim lenses ...: strong lenses and non-lenses for lens finding, space-
 * like (one band) or ground-like (u, g, r, i), as an image cube and a truth table. */
#include "sim_kinds.h"

#include <stdlib.h>
#include <string.h>

/* --negatives LIST ("galaxy,neighbour,ring") into o->negatives; 0, or 2 after a usage
 * error. */
static int parse_negatives(const cli_cmd *c, ds_lens_sim_opts *o)
{
    const char *v = cli_get(c, "negatives");
    if (!v)
        return 0;
    char *list = strdup(v), *save = NULL;
    if (!list)
        return cli_usage_error(c, "option '--negatives': out of memory");
    int rc = 0;
    for (char *tok = strtok_r(list, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        int k = ds_lens_scene_code(tok);
        if (k < 0 || k == DS_SCENE_LENS)
            rc = cli_usage_error(c, "option '--negatives': unknown non-lens kind '%s' (galaxy, "
                                 "neighbour or ring)", tok);
        else
            o->negatives |= 1u << k;
    }
    free(list);
    if (!rc && !o->negatives)
        rc = cli_usage_error(c, "option '--negatives': '%s' names no kind (galaxy, neighbour "
                             "or ring)", v);
    return rc;
}

/* The options into o; 0, or 2 after a usage error naming the option. */
static int lens_options(const cli_cmd *c, ds_lens_sim_opts *o)
{
    if (!cli_has(c, "output") || !cli_has(c, "truth"))
        return cli_usage_error(c, "-o IMAGES and --truth TABLE are required");
    if (!cli_has(c, "count"))
        return cli_usage_error(c, "--count N is required");
    const char *sv = cli_get(c, "survey");
    if (!sv || !strcmp(sv, "space"))
        o->survey = DS_LENS_SPACE;
    else if (!strcmp(sv, "ground"))
        o->survey = DS_LENS_GROUND;
    else
        return cli_usage_error(c, "option '--survey': '%s' is neither space nor ground", sv);
    long count, size, seed;
    if (!cli_long(c, "count", 1, 1L << 31, 0, &count) ||
        !cli_long(c, "size", 16, 256, 32, &size) ||
        !cli_long(c, "seed", 0, 0x7fffffffL, 0, &seed) || !cli_threads(c) ||
        !cli_double(c, "lens-fraction", 0, 1, 0.5, &o->lens_fraction) ||
        !cli_range(c, "theta-e", 0.1, size / 2.0, &o->theta_min, &o->theta_max) ||
        !cli_double(c, "q-min", 0.05, 1, 0, &o->q_min) ||
        !cli_double(c, "shear-max", 0, 0.5, 0, &o->gamma_max) ||
        !cli_range(c, "source-offset", 0, 10, &o->beta_min, &o->beta_max) ||
        !cli_range(c, "source-n", 0.3, 8, &o->src_n_min, &o->src_n_max) ||
        !cli_range(c, "source-hlr", 0.1, size / 2.0, &o->src_hlr_min, &o->src_hlr_max) ||
        !cli_double(c, "source-e-max", 0, 0.9, 0, &o->src_e_max) ||
        !cli_range(c, "source-snr", 1e-3, 1e6, &o->src_snr_min, &o->src_snr_max) ||
        !cli_range(c, "lens-n", 0.3, 8, &o->lens_n_min, &o->lens_n_max) ||
        !cli_range(c, "lens-hlr", 0.1, size / 2.0, &o->lens_hlr_min, &o->lens_hlr_max) ||
        !cli_double(c, "lens-e-max", 0, 0.9, 0, &o->lens_e_max) ||
        !cli_range(c, "lens-snr", 1e-3, 1e6, &o->lens_snr_min, &o->lens_snr_max) ||
        !cli_double(c, "offset", 0, size / 4.0, 0.5, &o->offset_max) ||
        !cli_double(c, "psf-fwhm", 0.5, size / 4.0, 0, &o->psf_fwhm) ||
        !cli_double(c, "sky-sigma", 1e-9, 1e9, 1, &o->sky_sigma))
        return 2;
    o->count = count, o->size = (int)size, o->seed = (uint64_t)seed;
    if (cli_has(c, "shear-max") && o->gamma_max == 0)
        o->gamma_max = -1;   /* none (the library's 0 is its default) */
    if (o->offset_max == 0)
        o->offset_max = -1;
    return parse_negatives(c, o);
}

/* A line per kind: how many stamps show it, and how many are flagged. */
static void print_counts(const ds_tensor *truth)
{
    const int64_t n = ds_tensor_shape(truth)[0], nc = ds_tensor_shape(truth)[1];
    const float *t = ds_tensor_data((ds_tensor *)truth);
    int64_t cnt[DS_SCENE_KINDS] = {0}, flagged = 0;
    int kcol = -1, ocol = -1;
    for (int j = 0; ds_lens_sim_columns()[j]; j++) {
        if (!strcmp(ds_lens_sim_columns()[j], "kind"))
            kcol = j;
        if (!strcmp(ds_lens_sim_columns()[j], "outside"))
            ocol = j;
    }
    for (int64_t i = 0; i < n; i++) {
        cnt[(int)t[i * nc + kcol]]++;
        flagged += t[i * nc + ocol] > 0;
    }
    printf("kinds:");
    for (int k = 0; k < DS_SCENE_KINDS; k++)
        printf(" %s %lld%s", ds_lens_scene_name(k), (long long)cnt[k],
               k + 1 < DS_SCENE_KINDS ? "," : "\n");
    if (flagged)
        printf("outside: %lld %s whose added light lies mostly off the stamp (flagged in the "
               "truth table, column outside)\n", (long long)flagged,
               cli_plural(flagged, "stamp", "stamps"));
}

int cmd_sim_lenses(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("count", 0, "N", "number of stamps (required)"),
        CLI_OPT("size", 0, "S", "stamp size in pixels, 16 to 256 (default 32)"),
        CLI_OPT("seed", 0, "S", "seed of the draws and the noise (default 0)"),
        CLI_OPT("survey", 0, "KIND", "space (one band, Gaussian PSF) or ground (u, g, r, i, "
                "Moffat PSFs) (default space)"),
        CLI_OPT("lens-fraction", 0, "F", "fraction of the stamps that are lenses, in [0, 1] "
                "(default 0.5): exactly round(F N), a seeded choice"),
        CLI_OPT("negatives", 0, "LIST", "non-lens kinds among galaxy, neighbour, ring, comma-"
                "separated, in turn (default all three)"),
        CLI_OPT("theta-e", 0, "MIN:MAX", "Einstein radius, pixels (default space 3:8, ground "
                "2:5)"),
        CLI_OPT("q-min", 0, "Q", "mass axis ratio uniform in [Q, 1] (default 0.5)"),
        CLI_OPT("shear-max", 0, "G", "external shear |gamma| uniform in [0, G] (default 0.05)"),
        CLI_OPT("source-offset", 0, "MIN:MAX", "source's distance from the lens centre, in "
                "Einstein radii, uniform over the annulus (default 0:0.8)"),
        CLI_OPT("source-n", 0, "MIN:MAX", "source Sersic index (default 0.5:1.5)"),
        CLI_OPT("source-hlr", 0, "MIN:MAX", "source half-light radius, pixels (default space "
                "0.5:1.5, ground 0.5:1)"),
        CLI_OPT("source-e-max", 0, "E", "source ellipticity uniform in |e| <= E (default 0.5)"),
        CLI_OPT("source-snr", 0, "MIN:MAX", "SNR of the lensed source (or neighbour, or ring) "
                "alone, reference band (default 10:40)"),
        CLI_OPT("lens-n", 0, "MIN:MAX", "lens galaxy Sersic index (default 2:5)"),
        CLI_OPT("lens-hlr", 0, "MIN:MAX", "lens galaxy half-light radius, pixels (default "
                "space 2:5, ground 1.5:3.5)"),
        CLI_OPT("lens-e-max", 0, "E", "lens galaxy ellipticity |e| <= E (default 0.4)"),
        CLI_OPT("lens-snr", 0, "MIN:MAX", "lens galaxy SNR, reference band (default 20:100)"),
        CLI_OPT("offset", 0, "D", "lens centre uniform in [-D, D] pixels (default 0.5)"),
        CLI_OPT("psf-fwhm", 0, "F", "reference band's PSF FWHM, pixels (default space 1.8, "
                "ground 3.2; u, g, i: 1.2, 1.1, 0.95 times it)"),
        CLI_OPT("sky-sigma", 0, "S", "Gaussian sky noise sigma per band (default 1)"),
        CLI_OPT("output", 'o', "IMAGES", "image cube [N, bands, S, S] (.fits or .npy; "
                "required)"),
        CLI_OPT("truth", 0, "TABLE", "truth table (.fits or .csv; required)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"sim", "lenses --count N -o IMAGES --truth TRUTH [options]",
                 "Simulates strong lenses for lens finding: a Sersic lens galaxy whose mass (a\n"
                 "singular isothermal ellipsoid with external shear) ray-traces a Sersic source,\n"
                 "and non-lenses: the same kind of galaxy alone, with an unlensed neighbour, or\n"
                 "with a ring in the source's colour. PSF and sky noise per band. The truth\n"
                 "table: is_lens (the label), kind (0 galaxy, 1 lens, 2 neighbour, 3 ring),\n"
                 "theta_e, q, phi, gamma1, gamma2, lens_dx, lens_dy, lens_n, lens_hlr, lens_e1,\n"
                 "lens_e2, lens_flux, lens_snr, src_x, src_y, src_n, src_hlr, src_e1, src_e2,\n"
                 "src_flux, src_snr, mu (magnification), in_stamp, outside (1: the source lies\n"
                 "mostly off the stamp; flagged, not dropped), ring_r, psf_fwhm.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = sim_parse_kind(&c, argc, argv, "lenses");
    if (rc)
        return rc;
    ds_lens_sim_opts o = {0};
    if ((rc = lens_options(&c, &o)) || cli_stop_here(&c))
        return rc;
    const char *out = cli_get(&c, "output"), *tpath = cli_get(&c, "truth");
    if ((rc = sim_check_outputs(&c, "output", "truth", NULL)))
        return rc;
    ds_tensor *images = NULL, *truth = NULL;
    if (ds_sim_lenses(&o, &images, &truth))
        return cli_fail();
    int64_t s3[3] = {o.count, o.size, o.size};   /* one band: [N, S, S] as the other kinds */
    if (ds_lens_bands(o.survey) == 1 && ds_tensor_reshape(images, 3, s3) != DS_OK)
        rc = cli_fail();
    if (!rc)
        rc = ds_array_save(images, out, NULL) == DS_OK ? 0 : cli_fail();
    if (!rc)
        rc = sim_save_table(truth, ds_lens_sim_columns(), tpath);
    if (!rc) {
        int nb = ds_lens_bands(o.survey);
        printf("simulated %lld %s of %d x %d in %d %s: %s, %s\n", (long long)o.count,
               cli_plural(o.count, "stamp", "stamps"), o.size, o.size, nb,
               cli_plural(nb, "band", "bands"), out, tpath);
        print_counts(truth);
    }
    ds_tensor_free(images);
    ds_tensor_free(truth);
    return rc;
}
