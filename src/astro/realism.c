/* realism.c - the galaxy simulator's realism switches: a neighbour galaxy, correlated sky
 * noise and a size-magnitude population, each drawing from its own per-galaxy stream. */
#include "realism.h"

#include "../internal.h"

#include <math.h>

/* Tags of the switches' streams, mixed into the seed of each galaxy's stream. */
enum { TAG_NEIGHBOUR = 0x6e62, TAG_POPULATION = 0x706f70 };

/* A stream of galaxy i for one switch: a splitmix64 finalization of (seed, i, tag), apart
 * from the parameters' stream and the noise stream of sim.c. */
static void stream(ds_rng *r, uint64_t seed, int64_t i, uint64_t tag)
{
    uint64_t z = seed ^ (0xd1b54a32d192ed03ULL * (tag + 1));
    z += 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    ds_rng_seed(r, z ^ (z >> 31));
}

static ds_status bad_opt(const char *what, double v, const char *rule)
{
    return dsi_fail(DS_ERR_ARG, "sim: %s = %g %s", what, v, rule);
}

static ds_status check_pair(const char *what, double lo, double hi, double min, double max)
{
    if (!(lo >= min && hi <= max && lo <= hi))
        return dsi_fail(DS_ERR_ARG, "sim: %s range [%g, %g] must be a non-empty interval within "
                        "[%g, %g]", what, lo, hi, min, max);
    return DS_OK;
}

static ds_status resolve_neighbour(ds_sim_opts *o)
{
    if (!(o->nb_prob >= 0 && o->nb_prob <= 1))
        return bad_opt("neighbour probability", o->nb_prob, "must be in [0, 1]");
    if (o->nb_r_min == 0 && o->nb_r_max == 0)
        o->nb_r_min = o->size / 8.0, o->nb_r_max = 3 * o->size / 8.0;
    if (o->nb_flux_min == 0 && o->nb_flux_max == 0)
        o->nb_flux_min = 0.1, o->nb_flux_max = 1;
    ds_status st = check_pair("neighbour distance", o->nb_r_min, o->nb_r_max, 0, o->size);
    if (!st)
        st = check_pair("neighbour flux ratio", o->nb_flux_min, o->nb_flux_max, 1e-9, 1e9);
    return st;
}

static ds_status resolve_kernel(const ds_sim_opts *o)
{
    const int k = o->noise_kernel_size;
    if (!o->noise_kernel)
        return k ? bad_opt("noise kernel size", k, "is given without a kernel") : DS_OK;
    if (k < 1 || k > 31 || k % 2 == 0)
        return bad_opt("noise kernel size", k, "must be odd, 1 to 31");
    double ss = 0;
    for (int j = 0; j < k * k; j++) {
        if (!isfinite(o->noise_kernel[j]))
            return dsi_fail(DS_ERR_ARG, "sim: noise kernel value %d (row %d, column %d) is %g, "
                            "not finite", j, j / k, j % k, o->noise_kernel[j]);
        ss += o->noise_kernel[j] * o->noise_kernel[j];
    }
    if (!(ss > 0 && isfinite(ss)))
        return dsi_fail(DS_ERR_ARG, "sim: the %d x %d noise kernel is all zero (or overflows)",
                        k, k);
    return DS_OK;
}

static ds_status resolve_population(ds_sim_opts *o)
{
    if (!o->population)
        return DS_OK;
    if (o->population != 1)
        return bad_opt("population", o->population, "must be 0 (off) or 1 (on)");
    if (o->pop_hlr_median == 0)
        o->pop_hlr_median = 3;
    if (o->pop_hlr_dex == 0)
        o->pop_hlr_dex = 0.2;
    if (o->pop_flux_min == 0 && o->pop_flux_max == 0)
        o->pop_flux_min = 60 * o->sky_sigma, o->pop_flux_max = 6000 * o->sky_sigma;
    if (o->pop_alpha == 0)
        o->pop_alpha = 1.8;
    if (!(o->pop_hlr_median > 0 && o->pop_hlr_median < 1e6))
        return bad_opt("population hlr median", o->pop_hlr_median, "must be in (0, 1e6) pixels");
    if (!(o->pop_hlr_dex > 0 && o->pop_hlr_dex <= 3))
        return bad_opt("population hlr scatter", o->pop_hlr_dex, "must be in (0, 3] dex");
    if (!(o->pop_alpha > 0 && o->pop_alpha <= 10))
        return bad_opt("population count slope alpha", o->pop_alpha, "must be in (0, 10]");
    if (!(fabs(o->pop_beta) <= 3))
        return bad_opt("population size-flux slope beta", o->pop_beta, "must be in [-3, 3]");
    return check_pair("population flux", o->pop_flux_min, o->pop_flux_max, 1e-30, 1e30);
}

ds_status dsi_realism_resolve(ds_sim_opts *o)
{
    ds_status st;
    if ((st = resolve_neighbour(o)) || (st = resolve_kernel(o)) || (st = resolve_population(o)))
        return st;
    return DS_OK;
}

/* ---- size-magnitude population ---- */

/* Inverse of the standard normal CDF: Acklam's rational approximation (relative error
 * 1.2e-9), refined by one Halley step on erfc, for p in (0, 1). */
static double normal_ppf(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    double x, q, r;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    double e = 0.5 * erfc(-x / M_SQRT2) - p, u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

/* A standard normal deviate truncated to [lo, hi] by inversion (one uniform, no rejection):
 * in the upper half the upper-tail probabilities keep their precision. */
static double truncated_normal(double lo, double hi, double u)
{
    if (lo >= 0) {
        double qa = 0.5 * erfc(lo / M_SQRT2), qb = 0.5 * erfc(hi / M_SQRT2);
        double q = qa - u * (qa - qb);
        return q > 0 && q < 1 ? fmin(hi, fmax(lo, -normal_ppf(q))) : lo;
    }
    double pa = 0.5 * erfc(-lo / M_SQRT2), pb = 0.5 * erfc(-hi / M_SQRT2);
    double p = pa + u * (pb - pa);
    return p > 0 && p < 1 ? fmin(hi, fmax(lo, normal_ppf(p))) : hi;
}

/* Flux F in [fmin, fmax] with density ~ F^-alpha, by inverting its CDF. */
static double power_law(double lo, double hi, double alpha, double u)
{
    if (fabs(alpha - 1) < 1e-12)
        return lo * pow(hi / lo, u);
    double s = 1 - alpha, a = pow(lo, s), b = pow(hi, s);
    return fmin(hi, fmax(lo, pow(a + u * (b - a), 1 / s)));
}

void dsi_population_draw(const ds_sim_opts *o, int64_t i, double *hlr, double *flux)
{
    ds_rng r;
    stream(&r, o->seed, i, TAG_POPULATION);
    double uf = ds_rng_uniform(&r), uh = ds_rng_uniform(&r);
    double f = power_law(o->pop_flux_min, o->pop_flux_max, o->pop_alpha, uf);
    double mu = log10(o->pop_hlr_median) + o->pop_beta * log10(f / o->pop_flux_min);
    double lo = (log10(o->hlr_min) - mu) / o->pop_hlr_dex;
    double hi = (log10(o->hlr_max) - mu) / o->pop_hlr_dex;
    double h = pow(10, mu + o->pop_hlr_dex * truncated_normal(lo, hi, uh));
    *flux = f;
    *hlr = fmin(o->hlr_max, fmax(o->hlr_min, h));   /* rounding at the range's ends */
}

/* ---- neighbour galaxy ---- */

static ds_status bad_nb(int64_t i, const char *what, double v, const char *rule)
{
    return dsi_fail(DS_ERR_ARG, "sim: galaxy %lld: %s = %g %s", (long long)i, what, v, rule);
}

/* Always the same 8 uniforms when drawn, so a given column does not shift the others. */
static void neighbour_uniforms(const ds_sim_opts *o, int64_t i, double cx, double cy,
                               dsi_neighbour *nb)
{
    double u[8];
    ds_rng r;
    stream(&r, o->seed, i, TAG_NEIGHBOUR);
    for (int j = 0; j < 8; j++)
        u[j] = ds_rng_uniform(&r);
    if (!(u[0] < o->nb_prob))
        return;
    double rad = o->nb_r_min + (o->nb_r_max - o->nb_r_min) * u[1], ang = 2 * M_PI * u[2];
    double e = o->e_max * sqrt(u[5]), th = 2 * M_PI * u[6];
    nb->dx = cx + rad * cos(ang);
    nb->dy = cy + rad * sin(ang);
    nb->ratio = o->nb_flux_min + (o->nb_flux_max - o->nb_flux_min) * u[3];
    nb->n = o->n_min + (o->n_max - o->n_min) * u[4];
    nb->hlr = o->hlr_min + (o->hlr_max - o->hlr_min) * u[7];
    nb->e1 = e * cos(th);
    nb->e2 = e * sin(th);
}

ds_status dsi_neighbour_draw(const ds_sim_opts *o, int64_t i, double cx, double cy,
                             const double given[4], dsi_neighbour *nb)
{
    *nb = (dsi_neighbour){0};
    const int has_flux = !isnan(given[0]);
    if (has_flux && !(given[0] >= 0 && isfinite(given[0])))
        return bad_nb(i, "nb_flux", given[0], "must be >= 0 (0: no neighbour)");
    if (has_flux ? given[0] == 0 : !(o->nb_prob > 0))
        return DS_OK;
    dsi_neighbour d = {0};
    ds_sim_opts always = *o;
    always.nb_prob = 1;   /* a given flux places a neighbour whatever the draw says */
    neighbour_uniforms(has_flux ? &always : o, i, cx, cy, &d);
    if (d.ratio == 0)
        return DS_OK;
    if (has_flux)
        d.ratio = NAN, d.flux = given[0];
    if (!isnan(given[1]))
        d.dx = given[1];
    if (!isnan(given[2]))
        d.dy = given[2];
    if (!isnan(given[3]))
        d.hlr = given[3];
    if (!(fabs(d.dx) <= o->size && fabs(d.dy) <= o->size))
        return bad_nb(i, "neighbour offset", fmax(fabs(d.dx), fabs(d.dy)),
                      "must be within the stamp size");
    if (!(d.hlr > 0 && d.hlr < 1e6))
        return bad_nb(i, "nb_hlr", d.hlr, "must be in (0, 1e6)");
    *nb = d;
    return DS_OK;
}

ds_status dsi_neighbour_add(dsi_neighbour *nb, const ds_psf *psf, int size, double central_flux,
                            float *img)
{
    if (!isnan(nb->ratio))
        nb->flux = nb->ratio * central_flux;
    if (nb->flux == 0)
        return DS_OK;
    const int64_t npix = (int64_t)size * size;
    float *tmp = malloc(sizeof *tmp * (size_t)npix);
    if (!tmp)
        return dsi_fail(DS_ERR_NOMEM, "sim: out of memory for a neighbour's %d x %d stamp", size,
                        size);
    ds_galaxy g = {nb->n, nb->hlr, nb->flux, nb->e1, nb->e2, nb->dx, nb->dy};
    ds_status st = ds_galaxy_render(&g, psf, size, tmp);
    if (!st)
        for (int64_t j = 0; j < npix; j++)
            img[j] += tmp[j];
    free(tmp);
    return st;
}

/* ---- correlated noise ---- */

ds_status dsi_correlated_noise(const ds_sim_opts *o, float *img, ds_rng *r)
{
    const int k = o->noise_kernel_size, h = k / 2, size = o->size, w = size + 2 * h;
    const double *ker = o->noise_kernel;
    double *white = malloc(sizeof *white * (size_t)w * (size_t)w);
    if (!white)
        return dsi_fail(DS_ERR_NOMEM, "sim: out of memory for a %d x %d noise grid", w, w);
    double ss = 0;
    for (int j = 0; j < k * k; j++)
        ss += ker[j] * ker[j];
    const double scale = o->sky_sigma / sqrt(ss);
    for (int64_t j = 0; j < (int64_t)w * w; j++)
        white[j] = ds_rng_normal(r);
    /* pixel (y, x) = sum over the kernel of K[a][b] white[y + a][x + b] (grid coordinates) */
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double s = 0;
            for (int a = 0; a < k; a++) {
                const double *row = white + (int64_t)(y + a) * w + x, *kr = ker + a * k;
                for (int b = 0; b < k; b++)
                    s += kr[b] * row[b];
            }
            img[y * size + x] = (float)(img[y * size + x] + scale * s);
        }
    free(white);
    return DS_OK;
}
