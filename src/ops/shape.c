/* shape.c - shape ops: concat, reshape (an alias of its input), flatten (a layer) and slice:
 * shape rules, forward, backward. */
#include "../internal.h"

/* The shape of x seen as [outer, x->shape[axis], inner]. */
static void around(const ds_node *x, int axis, int64_t *outer, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        *inner *= x->shape[d];
}

/* ---- concat: n inputs along attr.concat.axis; all other dimensions must agree ---- */
static ds_status concat_shape(ds_node *y)
{
    const ds_node *x0 = y->in[0];
    int a = dsi_axis(y->attr.concat.axis, x0->ndim);
    if (a < 0)
        return dsi_fail_node(y, DS_ERR_SHAPE, "axis %d is out of range for input of shape %s",
                             y->attr.concat.axis, dsi_shape_str(x0->ndim, x0->shape));
    int64_t s[DS_MAX_DIMS];
    memcpy(s, x0->shape, sizeof s);
    for (int k = 1; k < y->n_in; k++) {
        const ds_node *x = y->in[k];
        bool ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++)
            ok = d == a || x->shape[d] == x0->shape[d];
        if (!ok)
            return dsi_fail_node(y, DS_ERR_SHAPE, "input %d has shape %s, which does not fit "
                                 "input 0's %s along axis %d", k, dsi_shape_str(x->ndim, x->shape),
                                 dsi_shape_str(x0->ndim, x0->shape), a);
        s[a] += x->shape[a];
    }
    dsi_set_shape(y, x0->ndim, s);
    return DS_OK;
}

static void concat_forward(ds_node *y)
{
    int a = dsi_axis(y->attr.concat.axis, y->ndim);
    int64_t outer, inner;
    around(y, a, &outer, &inner);
    int64_t row = y->shape[a] * inner;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        int64_t off = 0;
        for (int k = 0; k < y->n_in; k++) {
            int64_t len = y->in[k]->shape[a] * inner;
            memcpy(y->data + o * row + off, y->in[k]->data + o * len, (size_t)len * sizeof(float));
            off += len;
        }
    }
}

static void concat_backward(ds_node *y)
{
    int a = dsi_axis(y->attr.concat.axis, y->ndim);
    int64_t outer, inner;
    around(y, a, &outer, &inner);
    int64_t row = y->shape[a] * inner;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        int64_t off = 0;
        for (int k = 0; k < y->n_in; k++) {
            int64_t len = y->in[k]->shape[a] * inner;
            float *dx = y->in[k]->grad;
            if (dx) {
                const float *dy = y->grad + o * row + off;
                for (int64_t i = 0; i < len; i++)
                    dx[o * len + i] += dy[i];
            }
            off += len;
        }
    }
}

const ds_op_def dsi_op_concat = {
    .shape = concat_shape, .cpu = {concat_forward, concat_backward}, .bwd_reads = dsi_reads_none,
};

ds_node *ds_concat(ds_graph *g, int n, ds_node *const *xs, int axis)
{
    if (!g || g->status != DS_OK)
        return NULL;
    if (n < 1 || !xs) {
        dsi_fail(DS_ERR_ARG, "concat: %d inputs (at least 1)", n);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    return dsi_node(g, DS_OP_CONCAT, n, xs, &(dsi_concat_attr){ .axis = axis });
}

/* ---- reshape: attr.reshape.shape, ndim entries (one may be -1); with flatten set,
 * [N, ...] -> [N, prod(...)] instead. An alias: y shares x's data and gradient, so
 * forward and backward have nothing to do. ---- */
static ds_status reshape_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    const dsi_reshape_attr *at = &y->attr.reshape;
    if (at->flatten) {
        if (x->ndim < 1)
            return dsi_fail_node(y, DS_ERR_SHAPE, "cannot flatten a scalar: input has shape []");
        int64_t s[2] = {x->shape[0], x->numel / x->shape[0]};
        dsi_set_shape(y, 2, s);
        return DS_OK;
    }
    int nd = at->ndim;
    int64_t s[DS_MAX_DIMS], known = 1;
    int infer = -1;
    for (int d = 0; d < nd; d++) {
        s[d] = at->shape[d];
        if (s[d] == -1 && infer < 0) {
            infer = d;
        } else if (s[d] < 1) {
            return dsi_fail_node(y, DS_ERR_ARG, "target shape %s: sizes must be positive, with "
                                 "at most one -1", dsi_shape_str(nd, s));
        } else {
            known *= s[d];
        }
    }
    if (infer >= 0 ? x->numel % known != 0 : x->numel != known)
        return dsi_fail_node(y, DS_ERR_SHAPE, "cannot reshape %s (%lld values) into %s",
                             dsi_shape_str(x->ndim, x->shape), (long long)x->numel,
                             dsi_shape_str(nd, s));
    if (infer >= 0)
        s[infer] = x->numel / known;
    dsi_set_shape(y, nd, s);
    return DS_OK;
}

static void alias_noop(ds_node *y) { (void)y; }

const ds_op_def dsi_op_reshape = {
    .shape = reshape_shape, .cpu = {alias_noop, alias_noop},
    .alias = true, .bwd_reads = dsi_reads_none,
};

ds_node *ds_reshape(ds_graph *g, ds_node *x, int ndim, const int64_t *shape)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    if (ndim < 0 || ndim > DS_MAX_DIMS || (ndim > 0 && !shape)) {
        dsi_fail(DS_ERR_ARG, "reshape of '%s': %d target dimensions (0 to %d)",
                 dsi_node_layer(x), ndim, DS_MAX_DIMS);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    dsi_reshape_attr at = { .ndim = ndim };
    for (int d = 0; d < ndim; d++)
        at.shape[d] = shape[d];
    return dsi_node(g, DS_OP_RESHAPE, 1, &x, &at);
}

ds_node *ds_flatten(ds_graph *g, ds_node *x)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "Flatten", "flatten", NULL, name))
        return NULL;
    dsi_reshape_attr at = { .flatten = true };
    return dsi_layer_end(g, dsi_node(g, DS_OP_RESHAPE, 1, &x, &at));
}

/* ---- slice: x[..., start:end, ...] along attr.slice.axis (start, end as given) ---- */
static bool slice_range(const ds_node *y, int *axis, int64_t *start, int64_t *end)
{
    const ds_node *x = y->in[0];
    *start = *end = 0;
    const dsi_slice_attr *at = &y->attr.slice;
    *axis = dsi_axis(at->axis, x->ndim);
    if (*axis < 0)
        return false;
    int64_t n = x->shape[*axis];
    *start = at->start < 0 ? at->start + n : at->start;
    *end = at->end < 0 ? at->end + n : at->end;
    return *start >= 0 && *start < *end && *end <= n;
}

static ds_status slice_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    const dsi_slice_attr *at = &y->attr.slice;
    int a;
    int64_t s0, e0;
    if (!slice_range(y, &a, &s0, &e0)) {
        if (a < 0)
            return dsi_fail_node(y, DS_ERR_SHAPE, "axis %d is out of range for input of "
                                 "shape %s", at->axis, dsi_shape_str(x->ndim, x->shape));
        return dsi_fail_node(y, DS_ERR_SHAPE, "range %lld:%lld of axis %d (size %lld) of input "
                             "%s is empty or out of range", (long long)at->start,
                             (long long)at->end, a, (long long)x->shape[a],
                             dsi_shape_str(x->ndim, x->shape));
    }
    int64_t s[DS_MAX_DIMS];
    memcpy(s, x->shape, sizeof s);
    s[a] = e0 - s0;
    dsi_set_shape(y, x->ndim, s);
    return DS_OK;
}

static void slice_forward(ds_node *y)
{
    const ds_node *x = y->in[0];
    int a;
    int64_t s0, e0, outer, inner;
    slice_range(y, &a, &s0, &e0);
    around(x, a, &outer, &inner);
    int64_t xrow = x->shape[a] * inner, yrow = (e0 - s0) * inner;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        memcpy(y->data + o * yrow, x->data + o * xrow + s0 * inner, (size_t)yrow * sizeof(float));
}

static void slice_backward(ds_node *y)
{
    ds_node *x = y->in[0];
    int a;
    int64_t s0, e0, outer, inner;
    slice_range(y, &a, &s0, &e0);
    around(x, a, &outer, &inner);
    int64_t xrow = x->shape[a] * inner, yrow = (e0 - s0) * inner;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *dx = x->grad + o * xrow + s0 * inner;
        const float *dy = y->grad + o * yrow;
        for (int64_t i = 0; i < yrow; i++)
            dx[i] += dy[i];
    }
}

const ds_op_def dsi_op_slice = {
    .shape = slice_shape, .cpu = {slice_forward, slice_backward},
    .bwd_reads = dsi_reads_none,
};

ds_node *ds_slice(ds_graph *g, ds_node *x, int axis, int64_t start, int64_t end)
{
    dsi_slice_attr at = { .axis = axis, .start = start, .end = end };
    return dsi_node(g, DS_OP_SLICE, 1, &x, &at);
}
