/* explain_figures.h - the figures of deepsky explain (explain_figures.c). Each returns a
 * ds_status (the message set on failure). */
#ifndef DS_EXPLAIN_FIGURES_H
#define DS_EXPLAIN_FIGURES_H

#include "cli.h"

/* One sample i of t [N, ..., H, W] ([N, L]: 1 x L) as an H x W image: the mean (how 0),
 * sum (1) or largest value (2) over the other axes. malloc'd; NULL when out of memory. */
float *xfig_plane(const ds_tensor *t, int64_t i, int how, int64_t *h, int64_t *w);
/* Rows of input | map with colour bar | overlay with colour bar for the first 8 samples;
 * signed maps on the diverging colour map (sum over channels), magnitudes on the
 * sequential one (largest over channels). index, target, score: per row of map. */
int xfig_attribution(const char *path, const char *method, const ds_tensor *x,
                     const ds_tensor *map, bool signed_map, const int64_t *index,
                     const int64_t *target, const float *score);
/* t [n, planes, h, w] as one mosaic on one shared scale with a colour bar (diverging
 * about 0 when signed_vals). */
int xfig_mosaic(const char *path, const char *title, const ds_tensor *t, bool signed_vals);
/* Class visualizations: each image titled with its target and first and last score. */
int xfig_images(const char *path, const char *title, const ds_tensor *imgs,
                const int64_t *target, const float *scores, int64_t steps);

#endif
