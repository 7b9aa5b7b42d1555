/* sim_anomalies.c - deepsky sim anomalies ...: galaxy stamps, a fraction of them with an
 * injected anomaly (cosmic ray, satellite trail, hot pixels, ring galaxy), and a truth table
 * naming each stamp's anomaly and its parameters. */
#include "sim_kinds.h"

#include <stdlib.h>
#include <string.h>

/* --types LIST ("cosmic,trail,hot,ring") into o->kinds; 0, or 2 after a usage error. */
static int parse_types(const cli_cmd *c, ds_anomaly_opts *o)
{
    const char *v = cli_get(c, "types");
    if (!v)
        return 0;
    char *list = strdup(v), *save = NULL;
    if (!list)
        return cli_usage_error(c, "option '--types': out of memory");
    int rc = 0;
    for (char *tok = strtok_r(list, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        int k = ds_anomaly_code(tok);
        if (k < 1)
            rc = cli_usage_error(c, "option '--types': unknown anomaly type '%s' (cosmic, trail, "
                                 "hot or ring)", tok);
        else
            o->kinds |= 1u << k;
    }
    free(list);
    if (!rc && !o->kinds)
        rc = cli_usage_error(c, "option '--types': '%s' names no type (cosmic, trail, hot or "
                             "ring)", v);
    return rc;
}

/* The anomalies options into o; 0, or 2 after a usage error. */
static int anomaly_options(const cli_cmd *c, ds_anomaly_opts *o)
{
    int rc = sim_galaxy_options(c, &o->sim);
    if (rc)
        return rc;
    if (!cli_has(c, "output") || !cli_has(c, "truth"))
        return cli_usage_error(c, "-o IMAGES and --truth TABLE are required");
    if (!cli_has(c, "count") || !cli_has(c, "fraction"))
        return cli_usage_error(c, "--count N and --fraction F are required");
    if (!(o->sim.snr_max > 0))
        return cli_usage_error(c, "option '--snr': anomalies need an SNR range > 0 (their "
                               "amplitudes are in sky sigmas)");
    if (!cli_double(c, "fraction", 0, 1, 0, &o->fraction) ||
        !cli_range(c, "cr-amp", 1e-6, 1e9, &o->cr_amp_min, &o->cr_amp_max) ||
        !cli_range(c, "cr-length", 0.5, 4096, &o->cr_len_min, &o->cr_len_max) ||
        !cli_range(c, "trail-amp", 1e-6, 1e9, &o->trail_amp_min, &o->trail_amp_max) ||
        !cli_range(c, "hot-amp", 1e-6, 1e9, &o->hot_amp_min, &o->hot_amp_max) ||
        !cli_range(c, "ring-radius", 0.1, 100, &o->ring_radius_min, &o->ring_radius_max) ||
        !cli_range(c, "ring-fraction", 1e-6, 1, &o->ring_frac_min, &o->ring_frac_max))
        return 2;
    return parse_types(c, o);
}

/* A line per kind: how many stamps have it. */
static void print_counts(const ds_tensor *truth)
{
    const int64_t n = ds_tensor_shape(truth)[0], nc = ds_tensor_shape(truth)[1];
    const int col = ds_sim_column_count();   /* the anomaly column */
    int64_t cnt[DS_ANOMALY_KINDS] = {0};
    for (int64_t i = 0; i < n; i++)
        cnt[(int)ds_tensor_data((ds_tensor *)truth)[i * nc + col]]++;
    printf("kinds:");
    for (int k = 0; k < DS_ANOMALY_KINDS; k++)
        printf(" %s %lld%s", ds_anomaly_name(k), (long long)cnt[k],
               k + 1 < DS_ANOMALY_KINDS ? "," : "\n");
}

int cmd_sim_anomalies(int argc, char **argv)
{
    cli_opt opts[] = {
        SIM_GALAXY_OPTS,
        CLI_OPT("fraction", 0, "F", "fraction of the stamps with an anomaly, in [0, 1] "
                "(required): exactly round(F N) stamps, the types in turn"),
        CLI_OPT("types", 0, "LIST", "anomaly types among cosmic, trail, hot, ring, comma-"
                "separated (default all four)"),
        CLI_OPT("cr-amp", 0, "MIN:MAX", "cosmic rays: deposit per pixel of track, sky sigmas "
                "(default 100:1000)"),
        CLI_OPT("cr-length", 0, "MIN:MAX", "cosmic rays: track length, pixels (default 2:8)"),
        CLI_OPT("trail-amp", 0, "MIN:MAX", "satellite trails: peak, sky sigmas (default 3:20)"),
        CLI_OPT("hot-amp", 0, "MIN:MAX", "hot pixels (1 to 3): value, sky sigmas (default "
                "20:200)"),
        CLI_OPT("ring-radius", 0, "MIN:MAX", "ring galaxies: ring radius over the hlr (default "
                "1.5:3)"),
        CLI_OPT("ring-fraction", 0, "MIN:MAX", "ring galaxies: fraction of the flux in the "
                "ring, within (0, 1] (default 0.4:0.8)"),
        CLI_OPT("output", 'o', "IMAGES", "image cube [N, S, S] (.fits or .npy; required)"),
        CLI_OPT("truth", 0, "TABLE", "truth table (.fits or .csv; required)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"sim", "anomalies --count N --fraction F -o IMAGES --truth TRUTH [options]",
                 "Simulates galaxy stamps as 'sim galaxies' does and injects an anomaly into a\n"
                 "fraction of them: cosmic-ray tracks, satellite trails, hot pixels or ring\n"
                 "galaxies. The truth table has the columns of 'sim galaxies', then anomaly (0\n"
                 "normal, 1 cosmic, 2 trail, 3 hot, 4 ring), an_x, an_y, an_amp, an_length,\n"
                 "an_angle, an_width (README: their meaning per type). Stamps without an\n"
                 "anomaly are those of 'sim galaxies' with the same options, bit for bit.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = sim_parse_kind(&c, argc, argv, "anomalies");
    if (rc)
        return rc;
    ds_anomaly_opts o = {0};
    if ((rc = anomaly_options(&c, &o)) || cli_stop_here(&c))
        return rc;
    const char *out = cli_get(&c, "output"), *tpath = cli_get(&c, "truth");
    if ((rc = sim_check_outputs(&c, "output", "truth", NULL)))
        return rc;
    ds_tensor *images = NULL, *truth = NULL;
    if (ds_sim_anomalies(&o, &images, &truth))
        return cli_fail();
    int64_t shape[3] = {o.sim.count, o.sim.size, o.sim.size};
    rc = ds_tensor_reshape(images, 3, shape) == DS_OK && ds_array_save(images, out, NULL) == DS_OK
             ? 0 : cli_fail();
    if (!rc)
        rc = sim_save_table(truth, ds_anomaly_columns(), tpath);
    if (!rc) {
        printf("simulated %lld %s of %d x %d: %s, %s\n", (long long)o.sim.count,
               cli_plural(o.sim.count, "stamp", "stamps"), o.sim.size, o.sim.size, out, tpath);
        print_counts(truth);
    }
    ds_tensor_free(images);
    ds_tensor_free(truth);
    return rc;
}
