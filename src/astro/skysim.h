/* skysim.h - private pieces shared by the blends, anomalies and segmentation simulators. */
#ifndef DS_ASTRO_SKYSIM_H
#define DS_ASTRO_SKYSIM_H

#include "deepsky.h"

/* Seed of row i's stream for the feature whose tag is xored into seed: a splitmix64
 * finalization of (seed ^ tag, i), as sim.c's noise streams. */
static inline uint64_t dsi_row_seed(uint64_t seed, uint64_t tag, int64_t i)
{
    uint64_t z = seed ^ tag ^ 0x5851f42d4c957f2dULL;
    z += 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Truth columns of ds_sim_galaxies (ds_sim_columns order). */
enum {
    DSI_SC_E1, DSI_SC_E2, DSI_SC_N, DSI_SC_HLR, DSI_SC_FLUX, DSI_SC_SNR, DSI_SC_FWHM,
    DSI_SC_DX, DSI_SC_DY, DSI_SC_PBETA, DSI_SC_PE1, DSI_SC_PE2, DSI_SC_PLOD, DSI_SC_POBSC,
    DSI_SC_NB_FLUX, DSI_SC_NB_DX, DSI_SC_NB_DY, DSI_SC_NB_HLR, DSI_SC_G1, DSI_SC_G2
};

/* The PSF of a ds_sim_galaxies truth row t (width ds_sim_column_count()) run with o. */
ds_psf dsi_sim_row_psf(const ds_sim_opts *o, const float *t);

#endif
