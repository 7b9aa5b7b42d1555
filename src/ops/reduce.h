/* reduce.h - the strided sum kernel of reduce.c, shared with elementwise.c (whose broadcast
 * gradients are sums over the broadcast axes). Private to src/ops. */
#ifndef DS_OPS_REDUCE_H
#define DS_OPS_REDUCE_H

#include "../internal.h"

/* out = alpha * (sum of x over the dimensions d with keep[d] false), or out += that when
 * accumulate is set. x is contiguous with shape[0..nd); out is laid out row-major over the
 * kept dimensions. Sums run in double; each output element is written by one thread in a
 * fixed order, so results do not depend on the thread count. */
void dsi_reduce_sum(const float *x, int nd, const int64_t *shape, const bool *keep,
                    double alpha, bool accumulate, float *out);
/* Sum of x[0..n) in double, vectorized; the order of the additions depends on n only. */
double dsi_sum_f64(const float *x, int64_t n);

#endif
