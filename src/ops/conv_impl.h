/* conv_impl.h - im2col / col2im and batch grouping shared by conv.c and conv_transpose.c. */
#ifndef DS_CONV_IMPL_H
#define DS_CONV_IMPL_H

#include "../internal.h"

/* Geometry of a convolution seen from its "image" side: 1D and 2D are 3D with leading
 * spatial dims of 1. Column position o (out[] grid) and kernel offset k read image position
 * i = o * s - p + k * d per axis; positions outside [0, in) are zero padding. */
typedef struct {
    int64_t in[3];         /* image spatial size */
    int64_t out[3];        /* column grid (convolution output) size */
    int64_t k[3], s[3], p[3], d[3];   /* kernel, stride, low pad, dilation */
    int64_t in_n, out_n, k_n;         /* products of in, out, k */
} dsi_conv_geom;

/* Fills the k_n rows (row stride ld) of one channel's columns from its image plane. */
void dsi_im2col(const dsi_conv_geom *q, const float *img, float *col, int64_t ld);
/* Adds one channel's k_n column rows back into its image plane (the adjoint of im2col). */
void dsi_col2im(const dsi_conv_geom *q, const float *col, int64_t ld, float *img);
/* db[f] += the sum of dy[n, f, :] over the batch n and the O output positions (the bias
 * gradient of a convolution with F filters). */
void dsi_channel_sum_add(const float *dy, int64_t N, int64_t F, int64_t O, float *db);
/* out[e] = (or += with add) the sum over the nch partials part[c * n + e], c in order; out
 * may be part itself (chunk 0's). */
void dsi_fold_partials(float *part, int64_t nch, int64_t n, float *out, bool add);
/* db[f] += the sum over c of dbs[c * F + f], in order. */
void dsi_fold_bias(const double *dbs, int64_t nch, int64_t F, float *db);
/* dst[o] = dy[o] where the fused ReLU passed y[o] > 0 (act DSI_FUSE_RELU), else dy[o] as it
 * is, for o < n; returns their sum (the row's share of the bias gradient). */
static inline float dsi_conv_dy_row(float *restrict dst, const float *restrict dy,
                                    const float *restrict y, int64_t n, int act)
{
    float t = 0;
    if (act == DSI_FUSE_RELU) {
#pragma omp simd reduction(+ : t)
        for (int64_t o = 0; o < n; o++) {
            float v = y[o] > 0 ? dy[o] : 0.0f;
            dst[o] = v;
            t += v;
        }
    } else {
#pragma omp simd reduction(+ : t)
        for (int64_t o = 0; o < n; o++) {
            dst[o] = dy[o];
            t += dy[o];
        }
    }
    return t;
}

/* True if the columns equal the image (1x1 kernel, stride 1, no padding). */
bool dsi_conv_pointwise(const dsi_conv_geom *q);
/* dsi_sgemm split into fixed tiles of C (at most 256 x 256), one single-threaded sgemm per
 * tile in an OpenMP loop: every element is computed the same way for any thread count. */
void dsi_sgemm_tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                     float *c, int64_t ldc);
/* Samples processed per sgemm: a function of the shapes only (never of the thread count),
 * so results do not depend on it. floats_per_col = scratch floats per column position. */
int64_t dsi_conv_group(int64_t batch, int64_t out_n, int64_t floats_per_col);

/* Winograd F(4x4, 3x3) and F(2x2, 3x3) (conv_winograd.c): whether it computes a convolution
 * of this geometry with C channels and F filters (ds_get_conv_algo is checked by the caller);
 * the output tile side it uses (4 or 2; 0 if it does not apply); its scratch for batch N and
 * nth threads;
 * forward and backward of a conv node. dsi_wino_set_max_tile(2) keeps to F(2x2, 3x3) (for
 * tests and comparisons; 4 is the default). */
bool dsi_wino_applies(const dsi_conv_geom *q, int64_t C, int64_t F);
int dsi_wino_tile(const dsi_conv_geom *q, int64_t C, int64_t F);
void dsi_wino_set_max_tile(int m);
size_t dsi_wino_scratch(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, int nth);
void dsi_wino_forward(ds_node *y, const dsi_conv_geom *q);
/* Floats of a conv node's cached transformed filters (0 if Winograd does not apply); brings
 * them up to date for a forward pass (see dsi_conv_prepare). */
size_t dsi_wino_cache_floats(const dsi_conv_geom *q, int64_t C, int64_t F);
void dsi_wino_prepare(ds_node *y, const dsi_conv_geom *q);
void dsi_wino_backward(ds_node *y, const dsi_conv_geom *q);
/* The Winograd tile side a conv node's next pass would use (conv.c): 0 for im2col. */
int dsi_conv_wino_tile(const ds_node *y);

/* Direct convolution (conv_direct.c) for the geometries conv.c's rule gives it (stride 1,
 * 1-D or 2-D): its scratch for batch N and nth threads; forward and backward of a conv node. */
size_t dsi_direct_scratch(const dsi_conv_geom *q, int64_t N, int64_t C, int64_t F, int nth);
void dsi_direct_forward(ds_node *y, const dsi_conv_geom *q);
void dsi_direct_backward(ds_node *y, const dsi_conv_geom *q);

/* Which algorithm the next pass of conv node y runs (for tests). */
enum { DSI_CONV_IM2COL, DSI_CONV_WINOGRAD, DSI_CONV_DIRECT };
int dsi_conv_algo_used(const ds_node *y);

/* ds_conv_op with a fused activation act (DSI_FUSE_NONE or DSI_FUSE_RELU). */
ds_node *dsi_conv_fused(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int nd,
                        const int *stride, const int *pad_lo, const int *pad_hi,
                        const int *dilation, int act);

/* Transposed 2D convolution with separate low/high padding (pad_hi may be negative: rows
 * added at the end, as Keras's 'same' when the kernel is smaller than the stride). */
ds_node *dsi_conv_transpose2d_pads(ds_graph *g, ds_node *x, ds_node *w, ds_node *b,
                                   const int *stride, const int *pad_lo, const int *pad_hi,
                                   const int *output_padding, const int *dilation);

#endif
