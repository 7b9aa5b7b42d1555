/* blend_baseline.c - the classical segmentation baseline a U-Net must beat on `deepsky sim
 * blends`: threshold-and-watershed (ds_segment_watershed, defaults) on blends of the
 * default simulator (32 x 32, Gaussian PSF FWHM 2 px, masks at 1 sky sigma), mean
 * per-object IoU (ds_segment_iou) per SNR and separation bin, and the same on the noiseless
 * blends (what thresholding and watershed lose without any noise).
 * Usage: blend_baseline [--per N (default 500)] [--seed S (default 1)] */
#include "deepsky.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIZE = 32, NPIX = SIZE * SIZE };

/* Mean IoU of the watershed on the stamps x (or, if comp, the sum of the two components),
 * and the fraction of blends where two objects were found. */
static void score(const ds_tensor *x, const ds_tensor *comp, const ds_tensor *lab, int64_t n,
                  double *mean, double *two)
{
    double s = 0;
    int64_t cnt = 0, found2 = 0;
    float img[NPIX], pred[NPIX];
    for (int64_t i = 0; i < n; i++) {
        for (int p = 0; p < NPIX; p++)
            img[p] = comp ? ds_tensor_data((ds_tensor *)comp)[2 * i * NPIX + p] +
                                ds_tensor_data((ds_tensor *)comp)[(2 * i + 1) * NPIX + p]
                          : ds_tensor_data((ds_tensor *)x)[i * NPIX + p];
        ds_segment_opts so = {.sky_sigma = 1};
        double iou[2];
        int f = 0;
        ds_segment_watershed(img, SIZE, SIZE, &so, pred, &f);
        ds_segment_iou(pred, ds_tensor_data((ds_tensor *)lab) + i * NPIX, NPIX, 2, iou);
        for (int k = 0; k < 2; k++)
            if (!isnan(iou[k]))
                s += iou[k], cnt++;
        found2 += f == 2;
    }
    *mean = s / (double)cnt;
    *two = (double)found2 / (double)n;
}

int main(int argc, char **argv)
{
    long per = 500, seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--per"))
            per = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = atol(argv[i + 1]);
    }
    if (per < 1) {
        fprintf(stderr, "usage: blend_baseline [--per N] [--seed S]\n");
        return 2;
    }
    static const double snr[][2] = {{10, 20}, {20, 50}, {50, 100}};
    static const double sep[][2] = {{4, 6}, {6, 8}, {8, 10}};
    printf("| SNR (brighter) | separation (px) | mean IoU | two found | noiseless IoU |\n"
           "|---|---|---|---|---|\n");
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            ds_blend_opts o = {0};
            o.sim.count = per, o.sim.size = SIZE, o.sim.seed = (uint64_t)seed;
            o.sim.n_min = 0.5, o.sim.n_max = 6, o.sim.hlr_min = 1.5, o.sim.hlr_max = 5;
            o.sim.e_max = 0.6, o.sim.sky_sigma = 1, o.sim.offset_max = 0.5;
            o.sim.psf.kind = DS_PSF_GAUSSIAN, o.sim.psf.fwhm = 2;
            o.sim.snr_min = snr[a][0], o.sim.snr_max = snr[a][1];
            o.sep_min = sep[b][0], o.sep_max = sep[b][1];
            ds_tensor *x, *l, *t, *c;
            if (ds_sim_blends(&o, &x, &l, &t, &c) != DS_OK) {
                fprintf(stderr, "blend_baseline: %s\n", ds_last_error());
                return 1;
            }
            double m, two, m0, two0;
            score(x, NULL, l, per, &m, &two);
            score(x, c, l, per, &m0, &two0);
            printf("| %g-%g | %g-%g | %.3f | %.2f | %.3f |\n", snr[a][0], snr[a][1], sep[b][0],
                   sep[b][1], m, two, m0);
            ds_tensor_free(x), ds_tensor_free(l), ds_tensor_free(t), ds_tensor_free(c);
        }
    return 0;
}
