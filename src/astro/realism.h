/* realism.h - the galaxy simulator's realism switches (realism.c), called from sim.c. */
#ifndef DS_ASTRO_REALISM_H
#define DS_ASTRO_REALISM_H

#include "deepsky.h"

/* A neighbour galaxy of one stamp. flux 0 and ratio 0: none. */
typedef struct {
    double n, hlr, e1, e2;   /* its profile */
    double dx, dy;           /* its centre from the stamp centre, pixels (as ds_galaxy) */
    double ratio;            /* its flux over the central galaxy's (NaN: flux given) */
    double flux;             /* its total flux, set by dsi_neighbour_add when ratio is used */
} dsi_neighbour;

/* Fills the defaults of the realism options (zero where zero makes no sense) and checks
 * them: DS_ERR_ARG naming the option and value. */
ds_status dsi_realism_resolve(ds_sim_opts *o);
/* Galaxy i's half-light radius and flux drawn from the size-magnitude population, from the
 * population's own stream (the parameters' stream is left alone). */
void dsi_population_draw(const ds_sim_opts *o, int64_t i, double *hlr, double *flux);
/* Galaxy i's neighbour (from the neighbour stream, drawn only when o->nb_prob > 0), placed
 * around the central galaxy at (cx, cy); given[4] = nb_flux, nb_dx, nb_dy, nb_hlr of a
 * params row (NaN: drawn) override the draws, nb_flux = 0 meaning none. DS_ERR_ARG naming
 * galaxy i for a bad given value. */
ds_status dsi_neighbour_draw(const ds_sim_opts *o, int64_t i, double cx, double cy,
                             const double given[4], dsi_neighbour *nb);
/* Adds the neighbour (flux ratio x central_flux unless its flux is given) rendered with the
 * stamp's PSF to img (size x size). DS_ERR_NOMEM only. */
ds_status dsi_neighbour_add(dsi_neighbour *nb, const ds_psf *psf, int size, double central_flux,
                            float *img);
/* Adds sky noise of per-pixel standard deviation sigma correlated by o's kernel: white
 * N(0, 1) noise drawn on a grid padded by k/2 pixels on every side, convolved with the
 * kernel scaled to unit sum of squares, so that every stamp pixel has variance sigma^2
 * and the edges are like the centre. DS_ERR_NOMEM only. */
ds_status dsi_correlated_noise(const ds_sim_opts *o, float *img, ds_rng *r);

#endif
