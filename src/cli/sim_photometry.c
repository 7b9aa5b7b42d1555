/* sim_photometry.c - deepsky sim photometry: a galaxy catalogue for photometric redshifts
 * (ugrizy magnitudes, errors, colours, true redshift and type) from ds_sim_photometry, or
 * (--from) a user's catalogue checked and given the same colour columns. */
#include "sim_kinds.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NB DS_PHOTO_BANDS

/* A table being built: named columns of n floats each (the names borrowed or owned). */
typedef struct {
    int64_t n;
    int count;
    const char *names[64];
    char *owned[64];
    float *cols[64];
} table;

static void table_free(table *t)
{
    for (int j = 0; j < t->count; j++) {
        free(t->cols[j]);
        free(t->owned[j]);
    }
}

/* Appends column k of the [n, w] tensor x under name (copied when own). 0, or 1 (printed). */
static int table_add(table *t, const char *name, bool own, const ds_tensor *x, int64_t k)
{
    int64_t w = ds_tensor_shape(x)[1];
    if (t->count == 64) {
        fprintf(stderr, "deepsky: error: sim photometry: more than 64 columns\n");
        return 1;
    }
    float *col = malloc(sizeof *col * (size_t)(t->n ? t->n : 1));
    char *nm = own ? strdup(name) : NULL;
    if (!col || (own && !nm)) {
        free(col);
        free(nm);
        fprintf(stderr, "deepsky: error: sim photometry: out of memory\n");
        return 1;
    }
    const float *v = ds_tensor_data((ds_tensor *)x);
    for (int64_t i = 0; i < t->n; i++)
        col[i] = v[i * w + k];
    t->cols[t->count] = col;
    t->owned[t->count] = nm;
    t->names[t->count++] = own ? nm : name;
    return 0;
}

/* Every column of x [n, w] under names[0..w). */
static int table_add_all(table *t, const char *const *names, const ds_tensor *x)
{
    for (int64_t k = 0; k < ds_tensor_shape(x)[1]; k++)
        if (table_add(t, names[k], false, x, k))
            return 1;
    return 0;
}

static int table_save(const table *t, const char *path)
{
    return ds_table_save(path, t->count, t->names, t->n, (const float *const *)t->cols) == DS_OK
               ? 0 : cli_fail();
}

/* Whether the comma-separated list have names col (any case). */
static bool has_column(const char *have, const char *col)
{
    size_t n = strlen(col);
    for (const char *p = have; p && *p;) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && !strncasecmp(p, col, n))
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* The columns of path: mags (mag_u .. mag_y, all required) and errs (err_u .. err_y, all or
 * none), as "a,b,c" lists; the bands missing named in the error. 0, or 1 (printed). */
static int catalogue_columns(const char *path, const char *have, char *mags, char *errs,
                             size_t cap)
{
    const char *const *bands = ds_photo_bands();
    char missing[64] = "";
    size_t ml = 0, el = 0;
    int nerr = 0;
    mags[0] = errs[0] = 0;
    for (int b = 0; b < NB; b++) {
        char m[16], e[16];
        snprintf(m, sizeof m, "mag_%s", bands[b]);
        snprintf(e, sizeof e, "err_%s", bands[b]);
        if (!has_column(have, m))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", m);
        ml += (size_t)snprintf(mags + ml, cap - ml, "%s%s", b ? "," : "", m);
        if (has_column(have, e)) {
            el += (size_t)snprintf(errs + el, cap - el, "%s%s", nerr ? "," : "", e);
            nerr++;
        }
    }
    if (missing[0]) {
        fprintf(stderr, "deepsky: error: %s: no column %s: a catalogue needs the magnitudes "
                "mag_u, mag_g, mag_r, mag_i, mag_z, mag_y (ugrizy, AB); its columns are: "
                "%.300s\n", path, missing, have);
        return 1;
    }
    if (nerr && nerr < NB) {
        fprintf(stderr, "deepsky: error: %s: has %d of the 6 error columns err_u .. err_y "
                "(%s): give all or none\n", path, nerr, errs);
        return 1;
    }
    return 0;
}

/* --from CATALOGUE: the magnitudes (checked), their errors when present, the colours, then
 * every other numeric column as it is. */
static int from_catalogue(const char *path, const char *out)
{
    char *have = ds_table_columns(path, NULL);
    if (!have)
        return cli_fail();
    char mcols[128], ecols[128];
    ds_tensor *mags = NULL, *errs = NULL, *col = NULL, *colours = NULL;
    table t = {0};
    int rc = catalogue_columns(path, have, mcols, ecols, sizeof mcols);
    if (!rc && (ds_array_load(path, &(ds_read_opts){.columns = mcols}, &mags) ||
                (ecols[0] && ds_array_load(path, &(ds_read_opts){.columns = ecols}, &errs)) ||
                ds_photo_colour_table(mags, path, &colours)))
        rc = cli_fail();
    if (!rc) {
        t.n = ds_tensor_shape(mags)[0];
        rc = table_add_all(&t, ds_photo_columns(), mags) ||
             (errs && table_add_all(&t, ds_photo_columns() + NB, errs)) ||
             table_add_all(&t, ds_photo_colour_columns(), colours);
    }
    /* the other columns, passed through; text columns are left out, with a note */
    char *list = rc ? NULL : strdup(have), *save = NULL;
    for (char *tok = list ? strtok_r(list, ",", &save) : NULL; tok && !rc;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (has_column(mcols, tok) || has_column(ecols, tok) ||
            has_column("u_g,g_r,r_i,i_z,z_y", tok))
            continue;
        if (ds_array_load(path, &(ds_read_opts){.columns = tok}, &col)) {
            fprintf(stderr, "deepsky: note: %s: column '%s' left out (%s)\n", path, tok,
                    ds_last_error());
            continue;
        }
        rc = table_add(&t, tok, true, col, 0);
        ds_tensor_free(col);
        col = NULL;
    }
    free(list);
    if (!rc && !(rc = table_save(&t, out)))
        printf("catalogue of %lld %s with colours u_g .. z_y: %s (%d columns)\n",
               (long long)t.n, cli_plural(t.n, "galaxy", "galaxies"), out, t.count);
    table_free(&t);
    ds_tensor_free(mags);
    ds_tensor_free(errs);
    ds_tensor_free(colours);
    free(have);
    return rc;
}

/* --depth D,D,D,D,D,D: the 5-sigma depths of ugrizy, each band named in errors. */
static int parse_depths(const cli_cmd *c, double *depth)
{
    const char *v = cli_get(c, "depth");
    if (!v)
        return 0;
    const char *const *bands = ds_photo_bands();
    const char *p = v;
    for (int b = 0; b < NB; b++) {
        char *end;
        double d = strtod(p, &end);
        if (end == p)
            return cli_usage_error(c, "option '--depth': '%s' gives %d of the 6 depths "
                                   "(ugrizy): the %s band is missing", v, b, bands[b]);
        if (!(d >= 15 && d <= 35))
            return cli_usage_error(c, "option '--depth': the %s band's depth %g is not in "
                                   "[15, 35] (5-sigma AB magnitudes)", bands[b], d);
        depth[b] = d;
        if (b + 1 < NB && *end != ',')
            return cli_usage_error(c, "option '--depth': '%s' gives %d of the 6 depths "
                                   "(ugrizy): the %s band is missing", v, b + 1, bands[b + 1]);
        p = end + (b + 1 < NB);
        if (b + 1 == NB && *end)
            return cli_usage_error(c, "option '--depth': '%s' has more than 6 depths (ugrizy)",
                                   v);
    }
    return 0;
}

/* How many galaxies of each template type (nearest of 0..4). */
static void print_types(const ds_tensor *truth)
{
    int64_t n = ds_tensor_shape(truth)[0], cnt[DS_PHOTO_TYPES] = {0};
    const float *t = ds_tensor_data((ds_tensor *)truth);
    double zsum = 0;
    for (int64_t i = 0; i < n; i++) {
        int k = (int)(t[3 * i + 1] + 0.5f);
        cnt[k < 0 ? 0 : k >= DS_PHOTO_TYPES ? DS_PHOTO_TYPES - 1 : k]++;
        zsum += t[3 * i];
    }
    printf("mean z %.3f; nearest template:", zsum / (double)n);
    for (int k = 0; k < DS_PHOTO_TYPES; k++)
        printf(" %s %lld%s", ds_photo_type_name(k), (long long)cnt[k],
               k + 1 < DS_PHOTO_TYPES ? "," : "\n");
}

int cmd_sim_photometry(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("count", 0, "N", "number of galaxies (required unless --from)"),
        CLI_OPT("seed", 0, "S", "seed of the draws and the noise (default 0)"),
        CLI_OPT("mag-i", 0, "MIN:MAX", "i-band magnitude range, within [10, 30]; MAX is the "
                "catalogue's magnitude limit (default 18:24)"),
        CLI_OPT("z-max", 0, "Z", "largest redshift, in (0, 3] (default 3)"),
        CLI_OPT("depth", 0, "U,G,R,I,Z,Y", "5-sigma AB depths of the six bands (default "
                "25.6,26.9,26.9,26.4,25.6,24.8, about LSST's ten years)"),
        CLI_OPT("from", 0, "CATALOGUE", "instead of simulating: read a catalogue (.fits or "
                ".csv) with the columns mag_u .. mag_y (and err_u .. err_y), check them and "
                "write it with the colour columns added"),
        CLI_OPT("output", 'o', "CATALOGUE", "the catalogue (.fits or .csv; required)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"sim", "photometry --count N -o CATALOGUE.fits [options]",
                 "Simulates a galaxy catalogue for photometric redshifts: i-band magnitudes\n"
                 "from number counts up to the limit, redshifts over 0 < z <= 3 from p(z | m)\n"
                 "(Benitez 2000's form), five templates E, Sbc, Scd, Irr, SB mixed, through the\n"
                 "Lyman forests, observed in ugrizy with noise from the 5-sigma depths (a\n"
                 "non-detection gets its 1-sigma limit and error 1.0857). Columns: mag_u ..\n"
                 "mag_y, err_u .. err_y, the colours u_g, g_r, r_i, i_z, z_y, then redshift,\n"
                 "type (0 E .. 4 SB, fractional: a mix) and mag_i_true. --from puts a real\n"
                 "catalogue in the same form.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = sim_parse_kind(&c, argc, argv, "photometry");
    if (rc)
        return rc;
    if (!cli_has(&c, "output"))
        return cli_usage_error(&c, "-o CATALOGUE is required");
    const char *from = cli_get(&c, "from"), *out = cli_get(&c, "output");
    if (from && (cli_has(&c, "count") || cli_has(&c, "seed") || cli_has(&c, "mag-i") ||
                 cli_has(&c, "z-max") || cli_has(&c, "depth")))
        return cli_usage_error(&c, "--from reads a catalogue: --count, --seed, --mag-i, "
                               "--z-max and --depth are for simulating");
    if (!from && !cli_has(&c, "count"))
        return cli_usage_error(&c, "--count N (or --from CATALOGUE) is required");
    ds_photo_opts o = {.mag_min = 18, .mag_max = 24, .z_max = 3};
    long count = 0, seed = 0;
    if (!cli_long(&c, "count", 1, 100000000, 0, &count) ||
        !cli_long(&c, "seed", 0, 2147483647, 0, &seed) ||
        !cli_range(&c, "mag-i", 10, 30, &o.mag_min, &o.mag_max) ||
        !cli_double(&c, "z-max", 1e-3, 3, 3, &o.z_max) || !cli_threads(&c))
        return 2;
    if (cli_has(&c, "mag-i") && !(o.mag_min < o.mag_max))
        return cli_usage_error(&c, "option '--mag-i': give a range MIN:MAX with MIN < MAX");
    if ((rc = parse_depths(&c, o.depth)))
        return rc;
    size_t len = strlen(out);
    if (!(len > 5 && !strcasecmp(out + len - 5, ".fits")) &&
        !(len > 4 && !strcasecmp(out + len - 4, ".csv")))
        return cli_usage_error(&c, "-o %s: catalogues are written as FITS tables or CSV: give a "
                               "name ending in .fits or .csv", out);
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "--from", from);
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    if (from)
        return from_catalogue(from, out);
    o.count = count;
    o.seed = (uint64_t)seed;
    ds_tensor *mags = NULL, *truth = NULL, *colours = NULL, *obs = NULL;
    table t = {.n = count};
    if (ds_sim_photometry(&o, &mags, &truth))
        return cli_fail();
    /* the colours of the observed magnitudes: the first six columns of mags */
    if (!(obs = ds_tensor_create(2, (int64_t[]){count, NB})))
        rc = cli_fail();
    for (int64_t i = 0; !rc && i < count; i++)
        memcpy(ds_tensor_data(obs) + i * NB, ds_tensor_data(mags) + i * 2 * NB,
               NB * sizeof(float));
    if (!rc && ds_photo_colour_table(obs, "sim photometry", &colours))
        rc = cli_fail();
    if (!rc)
        rc = table_add_all(&t, ds_photo_columns(), mags) ||
             table_add_all(&t, ds_photo_colour_columns(), colours) ||
             table_add_all(&t, ds_photo_truth_columns(), truth) || table_save(&t, out);
    if (!rc) {
        printf("simulated %ld %s, i < %g, z <= %g: %s\n", count,
               cli_plural(count, "galaxy", "galaxies"), o.mag_max, o.z_max, out);
        print_types(truth);
    }
    table_free(&t);
    ds_tensor_free(mags);
    ds_tensor_free(truth);
    ds_tensor_free(colours);
    ds_tensor_free(obs);
    return rc;
}
