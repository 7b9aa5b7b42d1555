/* sim_realism.c - `deepsky sim galaxies` options of the realism switches (a neighbour
 * galaxy, correlated noise, a size-magnitude population) into ds_sim_opts. */
#include "sim_realism.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The side k of a square of n values, if k is odd and at most 31; else 0. */
static int odd_side(int64_t n)
{
    for (int k = 1; k <= 31; k += 2)
        if ((int64_t)k * k == n)
            return k;
    return 0;
}

/* "a,b,c,..." all numbers: 1 with *out (n values), 0 if it is not such a list (a file),
 * -1 out of memory. */
static int parse_list(const char *v, double **out, int64_t *n)
{
    size_t cap = 1;
    for (const char *s = v; *s; s++)
        cap += *s == ',';
    double *x = malloc(sizeof *x * cap);
    if (!x)
        return -1;
    const char *s = v;
    int64_t k = 0;
    for (;;) {
        char *end;
        errno = 0;
        x[k] = strtod(s, &end);
        if (end == s || errno || (*end && *end != ',')) {
            free(x);
            return 0;
        }
        k++;
        if (!*end)
            break;
        s = end + 1;
    }
    *out = x;
    *n = k;
    return 1;
}

static bool check_kernel(const cli_cmd *c, const double *x, int64_t n, const char *v)
{
    if (!odd_side(n)) {
        cli_usage_error(c, "option '--noise-kernel': '%s' has %lld values, not the square of an "
                        "odd side k <= 31 (9 for 3 x 3, 25 for 5 x 5)", v, (long long)n);
        return false;
    }
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            cli_usage_error(c, "option '--noise-kernel': value %lld of '%s' is not finite",
                            (long long)i + 1, v);
            return false;
        }
        ss += x[i] * x[i];
    }
    if (!(ss > 0)) {
        cli_usage_error(c, "option '--noise-kernel': '%s' is all zero", v);
        return false;
    }
    return true;
}

/* Options that need another: each of deps given without on is a usage error. */
static bool needs(const cli_cmd *c, const char *on, const char *const *deps)
{
    for (; *deps; deps++)
        if (cli_has(c, *deps) && !cli_has(c, on)) {
            cli_usage_error(c, "option '--%s' needs --%s", *deps, on);
            return false;
        }
    return true;
}

int sim_realism_parse(const cli_cmd *c, ds_sim_opts *o, double **kernel,
                      const char **kernel_file)
{
    static const char *const nb_opts[] = {"neighbour-distance", "neighbour-flux", NULL};
    static const char *const pop_opts[] = {"pop-hlr", "pop-hlr-dex", "pop-flux", "pop-slope",
                                           "pop-size-slope", NULL};
    *kernel = NULL;
    *kernel_file = NULL;
    if (!needs(c, "neighbour", nb_opts) || !needs(c, "population", pop_opts))
        return 2;
    if (cli_has(c, "population") && cli_has(c, "snr"))
        return cli_usage_error(c, "options '--population' and '--snr' exclude each other (the "
                               "population's SNR follows from its fluxes)");
    o->population = cli_has(c, "population");
    if (!cli_double(c, "neighbour", 0, 1, 0, &o->nb_prob) ||
        !cli_range(c, "neighbour-distance", 0, o->size, &o->nb_r_min, &o->nb_r_max) ||
        !cli_range(c, "neighbour-flux", 1e-9, 1e9, &o->nb_flux_min, &o->nb_flux_max) ||
        !cli_double(c, "pop-hlr", 1e-6, 1e6, 0, &o->pop_hlr_median) ||
        !cli_double(c, "pop-hlr-dex", 1e-6, 3, 0, &o->pop_hlr_dex) ||
        !cli_range(c, "pop-flux", 1e-30, 1e30, &o->pop_flux_min, &o->pop_flux_max) ||
        !cli_double(c, "pop-slope", 1e-6, 10, 0, &o->pop_alpha) ||
        !cli_double(c, "pop-size-slope", -3, 3, 0, &o->pop_beta))
        return 2;
    if (cli_has(c, "neighbour") && !(o->nb_prob > 0))
        return cli_usage_error(c, "option '--neighbour': '%s' must be > 0 (a probability; 1: "
                               "always)", cli_get(c, "neighbour"));
    const char *v = cli_get(c, "noise-kernel");
    if (!v)
        return 0;
    int64_t n = 0;
    int got = parse_list(v, kernel, &n);
    if (got < 0) {
        fprintf(stderr, "deepsky: error: out of memory for --noise-kernel\n");
        return 1;
    }
    if (!got) {
        *kernel_file = v;
        return 0;
    }
    if (!check_kernel(c, *kernel, n, v)) {
        free(*kernel);
        *kernel = NULL;
        return 2;
    }
    o->noise_kernel = *kernel;
    o->noise_kernel_size = odd_side(n);
    return 0;
}

int sim_realism_load_kernel(const char *path, ds_sim_opts *o, double **kernel)
{
    ds_read_opts ro = {.header = DS_HEADER_NONE};
    ds_tensor *t = NULL;
    if (ds_array_load(path, &ro, &t) != DS_OK)
        return cli_fail();
    int64_t n = ds_tensor_numel(t);
    int k = odd_side(n);
    const float *x = ds_tensor_data(t);
    double *d = k ? malloc(sizeof *d * (size_t)n) : NULL;
    int rc = 0;
    double ss = 0;
    for (int64_t i = 0; d && i < n; i++) {
        d[i] = x[i];
        ss += d[i] * d[i];
    }
    if (!k)
        fprintf(stderr, "deepsky: error: %s: the noise kernel has %lld values (shape %lld..."
                "), not the square of an odd side k <= 31\n", path, (long long)n,
                (long long)ds_tensor_shape(t)[0]);
    else if (!d)
        fprintf(stderr, "deepsky: error: out of memory for the noise kernel of %s\n", path);
    else if (!(ss > 0 && isfinite(ss)))
        fprintf(stderr, "deepsky: error: %s: the noise kernel is all zero or not finite\n", path);
    rc = !k || !d || !(ss > 0 && isfinite(ss));
    ds_tensor_free(t);
    if (rc) {
        free(d);
        return 1;
    }
    *kernel = d;
    o->noise_kernel = d;
    o->noise_kernel_size = k;
    return 0;
}
