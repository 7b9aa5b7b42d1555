/* cmd_measure.c - deepsky measure: PSF-corrected ellipticities of galaxy stamps by the moments
 * estimators (re-Gaussianization, linear PSF subtraction), as a table for shear-bias. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool ends_with(const char *s, const char *ext)
{
    size_t n = strlen(s), e = strlen(ext);
    return n > e && !strcasecmp(s + n - e, ext);
}

/* Stamps [N, S, S], [N, 1, S, S] or one [S, S]: *n and *size; false if none fits. */
static bool stamp_shape(const ds_tensor *t, int64_t *n, int64_t *size)
{
    int nd = ds_tensor_ndim(t);
    const int64_t *sh = ds_tensor_shape(t);
    if (nd == 2 && sh[0] == sh[1])
        *n = 1, *size = sh[0];
    else if (nd == 3 && sh[1] == sh[2])
        *n = sh[0], *size = sh[1];
    else if (nd == 4 && sh[1] == 1 && sh[2] == sh[3])
        *n = sh[0], *size = sh[2];
    else
        return false;
    return true;
}

/* The images: stamps of size x size; the PSF one of that size or one per stamp. 0 or 1. */
static int check_shapes(const char *dpath, const ds_tensor *x, const char *ppath,
                        const ds_tensor *p, int64_t *n, int64_t *size, bool *per_stamp)
{
    int64_t np, ps;
    char xs[128], pshape[128];
    ds_shape_str(ds_tensor_ndim(x), ds_tensor_shape(x), xs, sizeof xs);
    ds_shape_str(ds_tensor_ndim(p), ds_tensor_shape(p), pshape, sizeof pshape);
    if (!stamp_shape(x, n, size) || *size < 1 || *size > 16384) {
        fprintf(stderr, "deepsky: error: %s: shape %s is not stamps [N, S, S] or [N, 1, S, S]\n",
                dpath, xs);
        return 1;
    }
    if (!stamp_shape(p, &np, &ps) || ps != *size || (np != 1 && np != *n)) {
        fprintf(stderr, "deepsky: error: %s: PSF shape %s is neither one PSF [%lld, %lld] (or "
                "[1, 1, %lld, %lld]) nor one per stamp [%lld, 1, %lld, %lld], for the stamps %s "
                "of %s\n", ppath, pshape, (long long)*size, (long long)*size, (long long)*size,
                (long long)*size, (long long)*n, (long long)*size, (long long)*size, xs, dpath);
        return 1;
    }
    *per_stamp = np > 1;
    return 0;
}

/* cols[4 N]: e1, e2, resolution, flag of each stamp (in parallel: stamps are independent). */
static int measure_all(const float *x, const float *p, int64_t n, int size, bool per_stamp,
                       ds_shear_method method, float *cols)
{
    const int64_t npix = (int64_t)size * size;
    int64_t bad = -1;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; i++) {
        ds_shear s;
        if (ds_shear_estimate(x + i * npix, p + (per_stamp ? i * npix : 0), size, 1.0, method,
                              &s) != DS_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            if (bad < 0 || i < bad)
                bad = i;
            continue;
        }
        cols[i] = (float)s.e1;
        cols[n + i] = (float)s.e2;
        cols[2 * n + i] = (float)s.resolution;
        cols[3 * n + i] = (float)s.flag;
    }
    if (bad >= 0) {   /* again on this thread, for the message */
        ds_shear s;
        ds_shear_estimate(x + bad * npix, p + (per_stamp ? bad * npix : 0), size, 1.0, method, &s);
        return cli_fail();
    }
    return 0;
}

/* Writes the table (.csv, .fits) or [N, 4] array (.npy) and prints the failures by stage. */
static int write_out(const char *path, const float *cols, int64_t n, const char *method)
{
    static const char *const names[] = {"e1", "e2", "resolution", "flag"};
    const float *cp[4] = {cols, cols + n, cols + 2 * n, cols + 3 * n};
    ds_status st;
    if (ends_with(path, ".npy")) {
        ds_tensor *t = ds_tensor_create(2, (int64_t[]){n, 4});
        if (!t)
            return cli_fail();
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < 4; k++)
                ds_tensor_data(t)[4 * i + k] = cols[k * n + i];
        st = ds_array_save(t, path, names);
        ds_tensor_free(t);
    } else {
        st = ds_table_save(path, 4, names, n, cp);
    }
    if (st != DS_OK)
        return cli_fail();
    int64_t failed = 0, stage[8] = {0};
    for (int64_t i = 0; i < n; i++)
        if (cols[3 * n + i] != 0) {
            failed++;
            stage[((int)cols[3 * n + i] >> 4) & 7]++;
        }
    printf("measured %lld %s (%s): %lld failed", (long long)n, cli_plural(n, "stamp", "stamps"),
           method, (long long)failed);
    for (int k = 1; k < 8; k++)
        if (stage[k])
            printf(", %lld %s", (long long)stage[k], ds_moments_flag_name(k << 4));
    printf(" (NaN e1, e2); wrote %s [%lld rows: e1, e2, resolution, flag]\n", path, (long long)n);
    return 0;
}

int cmd_measure(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("method", 0, "M", "regauss (re-Gaussianization, as GalSim's HSM) or linear "
                "(adaptive moments minus the PSF's) (default regauss)"),
        CLI_OPT("data", 0, "STAMPS", "galaxy stamps [N, S, S] or [N, 1, S, S] (FITS, .npy)"),
        CLI_OPT("psf", 0, "PSF", "PSF image [S, S] (or [1, 1, S, S]) for every stamp, or one "
                "per stamp [N, 1, S, S], pixel-integrated like the stamps"),
        CLI_OPT("output", 'o', "OUT", "table of e1, e2, resolution, flag (.csv, .fits or .npy)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
    };
    cli_cmd c = {"measure", "--data STAMPS --psf PSF -o OUT [--method regauss|linear]",
                 "Measures each stamp's PSF-corrected ellipticity (eps = (1-q)/(1+q) convention)\n"
                 "with adaptive moments. A failed measurement has NaN e1, e2 and a non-zero flag\n"
                 "(stage in bits 4-6, moments code in bits 0-3; see ds_moments_flag_name).",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 0, 0};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    const char *m = cli_get(&c, "method");
    ds_shear_method method = DS_SHEAR_REGAUSS;
    if (m && !strcmp(m, "linear"))
        method = DS_SHEAR_LINEAR;
    else if (m && strcmp(m, "regauss"))
        return cli_usage_error(&c, "option '--method': '%s' is not regauss or linear", m);
    if (!cli_has(&c, "data") || !cli_has(&c, "psf") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--data STAMPS, --psf PSF and -o OUT are required");
    const char *out = cli_get(&c, "output");
    if (!ends_with(out, ".csv") && !ends_with(out, ".fits") && !ends_with(out, ".npy"))
        return cli_usage_error(&c, "-o %s: the table is written as .csv, .fits or .npy", out);
    if (!cli_threads(&c))
        return 2;
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "--data", cli_get(&c, "data"));
    cli_files_input(&files, "--psf", cli_get(&c, "psf"));
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    ds_tensor *x = NULL, *p = NULL;
    float *cols = NULL;
    int64_t n, size;
    bool per_stamp;
    if (ds_array_load(cli_get(&c, "data"), NULL, &x) != DS_OK ||
        ds_array_load(cli_get(&c, "psf"), NULL, &p) != DS_OK) {
        rc = cli_fail();
        goto done;
    }
    if ((rc = check_shapes(cli_get(&c, "data"), x, cli_get(&c, "psf"), p, &n, &size, &per_stamp)))
        goto done;
    if (!(cols = malloc(sizeof *cols * 4 * (size_t)n))) {
        fprintf(stderr, "deepsky: error: out of memory for %lld measurements\n", (long long)n);
        rc = 1;
        goto done;
    }
    if (!(rc = measure_all(ds_tensor_data(x), ds_tensor_data(p), n, (int)size, per_stamp,
                           method, cols)))
        rc = write_out(out, cols, n, method == DS_SHEAR_LINEAR ? "linear" : "regauss");
done:
    free(cols);
    ds_tensor_free(x);
    ds_tensor_free(p);
    return rc;
}
