/* shear.c - constant shears in the simulator (composition law, 90-degree pairs, shear
 * cycles) and the shear-bias estimator: m and c of a population's mean response, with
 * errors by a bootstrap over the galaxies' groups. */
#include "sim.h"

#include "../internal.h"

#include <math.h>

ds_status ds_ellipticity_shear(double *e1, double *e2, double g1, double g2)
{
    if (!e1 || !e2)
        return dsi_fail(DS_ERR_ARG, "ds_ellipticity_shear: e1 and e2 must not be NULL");
    if (!(hypot(g1, g2) < 1))
        return dsi_fail(DS_ERR_ARG, "ds_ellipticity_shear: shear (%g, %g) must have |g| < 1",
                        g1, g2);
    if (!(hypot(*e1, *e2) < 1))
        return dsi_fail(DS_ERR_ARG, "ds_ellipticity_shear: ellipticity (%g, %g) must have "
                        "|e| < 1", *e1, *e2);
    /* (e + g) / (1 + conj(g) e), with conj(g) e = (g1 e1 + g2 e2) + i (g1 e2 - g2 e1) */
    double nr = *e1 + g1, ni = *e2 + g2;
    double dr = 1 + g1 * *e1 + g2 * *e2, di = g1 * *e2 - g2 * *e1;
    double d2 = dr * dr + di * di;
    *e1 = (nr * dr + ni * di) / d2;
    *e2 = (ni * dr - nr * di) / d2;
    return DS_OK;
}

/* ---- the simulator's hooks ---- */

int dsi_sim_group(const ds_sim_opts *o)
{
    return (o->pairs ? 2 : 1) * (o->shear_cycle > 0 ? 4 : 1);
}

ds_status dsi_sim_shear_check(const ds_sim_opts *o)
{
    if (!(hypot(o->g1, o->g2) < 1))
        return dsi_fail(DS_ERR_ARG, "sim: shear (%g, %g) must have |g| < 1", o->g1, o->g2);
    if (!(o->shear_cycle >= 0 && o->shear_cycle < M_SQRT1_2))
        return dsi_fail(DS_ERR_ARG, "sim: shear_cycle %g must be in [0, 1/sqrt(2)) (|g| < 1)",
                        o->shear_cycle);
    if (o->shear_cycle > 0 && (o->g1 != 0 || o->g2 != 0))
        return dsi_fail(DS_ERR_ARG, "sim: a shear cycle (%g) and a constant shear (%g, %g) "
                        "exclude each other", o->shear_cycle, o->g1, o->g2);
    int grp = dsi_sim_group(o);
    if (o->count % grp)
        return dsi_fail(DS_ERR_ARG, "sim: count %lld is not a multiple of %d, the galaxies of "
                        "a %s", (long long)o->count, grp,
                        o->shear_cycle > 0 ? (o->pairs ? "shear cycle of pairs" : "shear cycle")
                                           : "pair");
    return DS_OK;
}

void dsi_sim_shear_row(const ds_sim_opts *o, int64_t i, const double e0[2], double e_int[2],
                       double g[2], double e[2])
{
    double s = o->pairs && (i & 1) ? -1 : 1;   /* a quarter turn negates e */
    e_int[0] = s * e0[0];
    e_int[1] = s * e0[1];
    g[0] = o->g1;
    g[1] = o->g2;
    if (o->shear_cycle > 0) {
        int k = (int)(i % dsi_sim_group(o)) / (o->pairs ? 2 : 1);
        g[0] = k & 1 ? -o->shear_cycle : o->shear_cycle;
        g[1] = k & 2 ? -o->shear_cycle : o->shear_cycle;
    }
    e[0] = e_int[0];
    e[1] = e_int[1];
    if (g[0] != 0 || g[1] != 0)
        ds_ellipticity_shear(&e[0], &e[1], g[0], g[1]);   /* checked: |e|, |g| < 1 */
}

int64_t dsi_sim_noise_row(const ds_sim_opts *o, int64_t i)
{
    if (!(o->shear_cycle > 0))
        return i;
    return i - i % dsi_sim_group(o) + (o->pairs ? i % 2 : 0);
}

/* ---- the shear-bias estimator ---- */

/* Sums of one group per component k: rows, sum g, sum g^2, sum e, sum g e. */
typedef struct { double n, g[2], gg[2], e[2], ge[2]; } sums;

static void add_sums(sums *a, const sums *b)
{
    a->n += b->n;
    for (int k = 0; k < 2; k++) {
        a->g[k] += b->g[k];
        a->gg[k] += b->gg[k];
        a->e[k] += b->e[k];
        a->ge[k] += b->ge[k];
    }
}

/* Least squares e = a + b g of component k: m = b - 1, c = a. 0, or -1 when g takes a
 * single value. */
static int fit(const sums *s, int k, double *m, double *c)
{
    double gm = s->g[k] / s->n, em = s->e[k] / s->n;
    double sxx = s->gg[k] - s->n * gm * gm, sxy = s->ge[k] - s->n * gm * em;
    if (!(sxx > 1e-12 * s->gg[k]) || !(sxx > 0))
        return -1;
    double b = sxy / sxx;
    *m = b - 1;
    *c = em - b * gm;
    return 0;
}

/* Checks the rows and sums each group; groups with a NaN measurement are left out (ok 0). */
static ds_status group_sums(const float *e, const float *g, int64_t n, int grp, sums *gs,
                            unsigned char *ok)
{
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(g[2 * i]) || !isfinite(g[2 * i + 1]) || !(hypot(g[2 * i], g[2 * i + 1]) < 1))
            return dsi_fail(DS_ERR_ARG, "ds_shear_bias: row %lld: shear (%g, %g) is not finite "
                            "with |g| < 1", (long long)i, g[2 * i], g[2 * i + 1]);
        if (isinf(e[2 * i]) || isinf(e[2 * i + 1]))
            return dsi_fail(DS_ERR_ARG, "ds_shear_bias: row %lld: measured e (%g, %g) is infinite "
                            "(NaN marks a failed measurement)", (long long)i, e[2 * i], e[2 * i + 1]);
    }
    for (int64_t j = 0; j < n / grp; j++) {
        sums s = {0};
        ok[j] = 1;
        for (int64_t i = j * grp; i < (j + 1) * grp; i++) {
            if (isnan(e[2 * i]) || isnan(e[2 * i + 1]))
                ok[j] = 0;
            s.n += 1;
            for (int k = 0; k < 2; k++) {
                double gk = g[2 * i + k], ek = e[2 * i + k];
                s.g[k] += gk;
                s.gg[k] += gk * gk;
                s.e[k] += ek;
                s.ge[k] += gk * ek;
            }
        }
        gs[j] = s;
    }
    return DS_OK;
}

/* splitmix64 of (seed, b): replicate b's own stream, whatever thread draws it. */
static uint64_t boot_seed(uint64_t seed, int64_t b)
{
    uint64_t z = seed ^ 0xd1b54a32d192ed03ULL;
    z += 0x9e3779b97f4a7c15ULL * (uint64_t)(b + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Bootstrap replicates of (m1, m2, c1, c2) over the kept groups kg[0..ng); rep[4 b + q],
 * NaN for a replicate whose shears take a single value. */
static void bootstrap(const sums *gs, const int64_t *kg, int64_t ng, int nb, uint64_t seed,
                      double *rep)
{
#pragma omp parallel for schedule(static)
    for (int b = 0; b < nb; b++) {
        ds_rng r;
        ds_rng_seed(&r, boot_seed(seed, b));
        sums s = {0};
        for (int64_t j = 0; j < ng; j++) {
            int64_t pick = (int64_t)(ds_rng_uniform(&r) * (double)ng);
            add_sums(&s, &gs[kg[pick < ng ? pick : ng - 1]]);
        }
        for (int k = 0; k < 2; k++)
            if (fit(&s, k, &rep[4 * b + k], &rep[4 * b + 2 + k]))
                rep[4 * b + k] = rep[4 * b + 2 + k] = NAN;
    }
}

/* Standard deviations of the replicates' four values, over the replicates without NaN.
 * Returns their count. */
static int boot_std(const double *rep, int nb, double sd[4])
{
    double sum[4] = {0}, sq[4] = {0};
    int used = 0;
    for (int b = 0; b < nb; b++) {
        if (isnan(rep[4 * b]) || isnan(rep[4 * b + 1]))
            continue;
        used++;
        for (int q = 0; q < 4; q++)
            sum[q] += rep[4 * b + q];
    }
    for (int q = 0; q < 4; q++) {
        double mean = used ? sum[q] / used : 0;
        for (int b = 0; b < nb; b++)
            if (!isnan(rep[4 * b]) && !isnan(rep[4 * b + 1]))
                sq[q] += (rep[4 * b + q] - mean) * (rep[4 * b + q] - mean);
        sd[q] = used > 1 ? sqrt(sq[q] / (used - 1)) : NAN;
    }
    return used;
}

static ds_status check_bias_args(const float *e, const float *g, int64_t n,
                                 const ds_shear_bias_opts *o, ds_shear_bias_result *out,
                                 int *grp, int *nb)
{
    if (!e || !g || !out)
        return dsi_fail(DS_ERR_ARG, "ds_shear_bias: e, g and out must not be NULL");
    *grp = o && o->group > 0 ? o->group : 1;
    *nb = o && o->n_boot > 0 ? o->n_boot : 1000;
    if (o && (o->group < 0 || o->n_boot < 0 || o->n_boot == 1))
        return dsi_fail(DS_ERR_ARG, "ds_shear_bias: group %d must be >= 0 and n_boot %d 0 or "
                        ">= 2", o->group, o->n_boot);
    if (n < 1 || n % *grp)
        return dsi_fail(DS_ERR_ARG, "ds_shear_bias: %lld rows are not a positive multiple of "
                        "the group of %d", (long long)n, *grp);
    return DS_OK;
}

ds_status ds_shear_bias(const float *e, const float *g, int64_t n, const ds_shear_bias_opts *o,
                        ds_shear_bias_result *out)
{
    int grp = 1, nb = 1000;
    ds_status st;
    if ((st = check_bias_args(e, g, n, o, out, &grp, &nb)) != DS_OK)
        return st;
    *out = (ds_shear_bias_result){{NAN, NAN}, {NAN, NAN}, {NAN, NAN}, {NAN, NAN}, 0, 0, 0, 0};
    const int64_t ngr = n / grp;
    sums *gs = malloc(sizeof *gs * (size_t)ngr);
    int64_t *kg = malloc(sizeof *kg * (size_t)ngr);
    unsigned char *ok = malloc((size_t)ngr);
    double *rep = malloc(sizeof *rep * 4 * (size_t)nb);
    if (!gs || !kg || !ok || !rep) {
        st = dsi_fail(DS_ERR_NOMEM, "ds_shear_bias: out of memory for %lld groups",
                      (long long)ngr);
        goto done;
    }
    if ((st = group_sums(e, g, n, grp, gs, ok)) != DS_OK)
        goto done;
    sums all = {0};
    int64_t ng = 0;
    for (int64_t j = 0; j < ngr; j++)
        if (ok[j]) {
            kg[ng++] = j;
            add_sums(&all, &gs[j]);
        }
    out->groups = ng;
    out->rows = ng * grp;
    out->dropped_groups = ngr - ng;
    out->dropped_rows = (ngr - ng) * grp;
    if (!ng) {
        st = dsi_fail(DS_ERR_ARG, "ds_shear_bias: every one of the %lld groups has a failed "
                      "(NaN) measurement", (long long)ngr);
        goto done;
    }
    for (int k = 0; k < 2; k++)
        if (fit(&all, k, &out->m[k], &out->c[k])) {
            st = dsi_fail(DS_ERR_ARG, "ds_shear_bias: g%d takes the single value %g over the "
                          "%lld rows kept: m%d and c%d need at least two shears", k + 1,
                          all.g[k] / all.n, (long long)out->rows, k + 1, k + 1);
            goto done;
        }
    bootstrap(gs, kg, ng, nb, o ? o->seed : 0, rep);
    double sd[4];
    if (boot_std(rep, nb, sd) < (nb / 2 > 2 ? nb / 2 : 2)) {
        st = dsi_fail(DS_ERR_ARG, "ds_shear_bias: most bootstrap resamples of the %lld groups "
                      "have a single shear value: too few groups", (long long)ng);
        goto done;
    }
    for (int k = 0; k < 2; k++) {
        out->m_err[k] = sd[k];
        out->c_err[k] = sd[2 + k];
    }
done:
    free(gs);
    free(kg);
    free(ok);
    free(rep);
    return st;
}
