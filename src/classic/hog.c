/* hog.c - histograms of oriented gradients (Dalal & Triggs 2005) computed as scikit-image's
 * skimage.feature.hog (0.19): central-difference gradients, orientation bins without
 * interpolation, per-cell sums, blocks normalized L2-Hys. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ds_hog_opts hog_defaults(const ds_hog_opts *o)
{
    ds_hog_opts r = o ? *o : (ds_hog_opts){0, 0, 0};
    r.orientations = r.orientations > 0 ? r.orientations : 9;
    r.cell = r.cell > 0 ? r.cell : 8;
    r.block = r.block > 0 ? r.block : 3;
    return r;
}

int64_t ds_hog_size(int rows, int cols, const ds_hog_opts *o)
{
    ds_hog_opts p = hog_defaults(o);
    if (rows < 1 || cols < 1)
        return 0;
    int64_t cr = rows / p.cell, cc = cols / p.cell;
    int64_t br = cr - p.block + 1, bc = cc - p.block + 1;
    if (br < 1 || bc < 1)
        return 0;
    return br * bc * p.block * p.block * p.orientations;
}

/* numpy's float modulo: the result takes the divisor's sign. */
static double py_mod(double a, double b)
{
    double r = fmod(a, b);
    if (r != 0) {
        if ((b < 0) != (r < 0))
            r += b;
    } else {
        r = copysign(0.0, b);
    }
    return r;
}

/* Per-cell orientation histograms [cr, cc, nb] into hist. As skimage's cython code, a cell's
 * sum runs in float and is divided by the cell's area; bin i takes orientations in
 * [180 i / nb, 180 (i + 1) / nb) with the edges in float. */
static void cell_histograms(const float *img, int rows, int cols, const ds_hog_opts *p,
                            double *mag, double *ori, double *hist)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double gr = r > 0 && r < rows - 1 ? (double)img[(r + 1) * cols + c] -
                                                img[(r - 1) * cols + c] : 0;
            double gc = c > 0 && c < cols - 1 ? (double)img[r * cols + c + 1] -
                                                img[r * cols + c - 1] : 0;
            mag[r * cols + c] = hypot(gc, gr);
            ori[r * cols + c] = py_mod(atan2(gr, gc) * (180.0 / M_PI), 180.0);
        }
    int nb = p->orientations, cs = p->cell, cr = rows / cs, cc = cols / cs;
    double per = 180.0 / nb;
    for (int i = 0; i < cr; i++)
        for (int j = 0; j < cc; j++)
            for (int b = 0; b < nb; b++) {
                float lo = (float)(per * b), hi = (float)(per * (b + 1)), total = 0;
                for (int r = i * cs; r < (i + 1) * cs; r++)
                    for (int c = j * cs; c < (j + 1) * cs; c++) {
                        double o = ori[r * cols + c];
                        if (o < hi && o >= lo)
                            total = (float)(total + mag[r * cols + c]);
                    }
                hist[((int64_t)i * cc + j) * nb + b] = total / (float)(cs * cs);
            }
}

ds_status ds_hog(const float *img, int rows, int cols, const ds_hog_opts *o, float *out)
{
    ds_hog_opts p = hog_defaults(o);
    int64_t n = ds_hog_size(rows, cols, &p);
    if (!img || !out || !n)
        return dsi_fail(DS_ERR_ARG, "hog: an image of %d x %d holds no block of %d x %d cells "
                        "of %d x %d pixels", rows, cols, p.block, p.block, p.cell, p.cell);
    int nb = p.orientations, cs = p.cell, B = p.block, cr = rows / cs, cc = cols / cs;
    size_t npx = (size_t)rows * (size_t)cols;
    double *mag = malloc(npx * sizeof *mag), *ori = malloc(npx * sizeof *ori);
    double *hist = malloc((size_t)cr * (size_t)cc * (size_t)nb * sizeof *hist);
    double *blk = malloc((size_t)(B * B * nb) * sizeof *blk);
    if (!mag || !ori || !hist || !blk) {
        free(mag), free(ori), free(hist), free(blk);
        return dsi_fail(DS_ERR_NOMEM, "hog: out of memory for an image of %d x %d", rows, cols);
    }
    cell_histograms(img, rows, cols, &p, mag, ori, hist);
    const double eps2 = 1e-5 * 1e-5;
    int64_t k = 0, per = (int64_t)B * B * nb;
    for (int br = 0; br + B <= cr; br++)
        for (int bc = 0; bc + B <= cc; bc++) {
            double s = 0, s2 = 0;
            int64_t q = 0;
            for (int i = 0; i < B; i++)
                for (int j = 0; j < B; j++)
                    for (int b = 0; b < nb; b++, q++) {
                        blk[q] = hist[((int64_t)(br + i) * cc + bc + j) * nb + b];
                        s += blk[q] * blk[q];
                    }
            double inv = 1 / sqrt(s + eps2);
            for (q = 0; q < per; q++) {   /* L2, clipped at 0.2, L2 again (L2-Hys) */
                blk[q] = fmin(blk[q] * inv, 0.2);
                s2 += blk[q] * blk[q];
            }
            inv = 1 / sqrt(s2 + eps2);
            for (q = 0; q < per; q++)
                out[k++] = (float)(blk[q] * inv);
        }
    free(mag), free(ori), free(hist), free(blk);
    return DS_OK;
}
