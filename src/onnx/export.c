/* export.c - a net's inference graph as an ONNX model (ds_onnx_export): one or a few ONNX
 * nodes per deepsky op, parameters as initializers, preprocessing as the first nodes. */
#include "pb.h"
#include "../io/io.h"
#include "../net/net.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dsi_arena a;
    const ds_net *net;
    ds_graph *g;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    Onnx__StringStringEntryProto **meta;
    size_t n_meta, cap_meta;
    const char **vname;    /* ONNX value of each deepsky node (by id), NULL: not yet */
    bool *needed;          /* on the way from an input to an output */
    int tmp;               /* counter for intermediate value names */
} ex;

/* Appends p to a growing array of pointers in the arena (old blocks stay until the end). */
static bool push(ex *e, void ***arr, size_t *n, size_t *cap, void *p)
{
    if (!p)
        return false;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        void **b = dsi_arena_alloc(&e->a, c * sizeof *b);
        if (!b)
            return false;
        if (*n)
            memcpy(b, *arr, *n * sizeof *b);
        *arr = b;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
    return true;
}

static const char *tmp_name(ex *e, const ds_node *y)
{
    return dsi_arena_printf(&e->a, "%s:%d/t%d", dsi_node_layer(y), y->id, e->tmp++);
}

/* ---- initializers ---- */
static Onnx__TensorProto *tensor(ex *e, const char *name, int ndim, const int64_t *shape,
                                 int type)
{
    Onnx__TensorProto *t = dsi_arena_alloc(&e->a, sizeof *t);
    int64_t *dims = dsi_arena_alloc(&e->a, (size_t)(ndim ? ndim : 1) * sizeof *dims);
    char *nm = dsi_arena_strdup(&e->a, name);
    if (!t || !dims || !nm)
        return NULL;
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    if (ndim)
        memcpy(dims, shape, (size_t)ndim * sizeof *dims);
    t->n_dims = (size_t)ndim;
    t->dims = dims;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = nm;
    return t;
}

/* A float initializer (the values copied). Returns its name, or NULL. */
static const char *init_f(ex *e, const char *name, int ndim, const int64_t *shape,
                          const float *v)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    Onnx__TensorProto *t = tensor(e, name, ndim, shape, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    float *data = dsi_arena_alloc(&e->a, (size_t)(n ? n : 1) * sizeof *data);
    if (!t || !data)
        return NULL;
    memcpy(data, v, (size_t)n * sizeof *data);
    t->n_float_data = (size_t)n;
    t->float_data = data;
    return push(e, (void ***)&e->inits, &e->n_inits, &e->cap_inits, t) ? t->name : NULL;
}

static const char *init_i64(ex *e, const char *name, int n, const int64_t *v)
{
    int64_t shape[1] = { n };
    Onnx__TensorProto *t = tensor(e, name, 1, shape, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    int64_t *data = dsi_arena_alloc(&e->a, (size_t)(n ? n : 1) * sizeof *data);
    if (!t || !data)
        return NULL;
    memcpy(data, v, (size_t)n * sizeof *data);
    t->n_int64_data = (size_t)n;
    t->int64_data = data;
    return push(e, (void ***)&e->inits, &e->n_inits, &e->cap_inits, t) ? t->name : NULL;
}

/* A scalar float constant for node y. */
static const char *scalar(ex *e, const ds_node *y, float v)
{
    const char *nm = tmp_name(e, y);
    return nm ? init_f(e, nm, 0, NULL, &v) : NULL;
}

/* ---- nodes ---- */
static Onnx__NodeProto *node(ex *e, const char *op, const ds_node *y, int n_in,
                             const char *const *in, const char *out)
{
    Onnx__NodeProto *p = dsi_arena_alloc(&e->a, sizeof *p);
    char **ins = dsi_arena_alloc(&e->a, (size_t)(n_in ? n_in : 1) * sizeof *ins);
    char **outs = dsi_arena_alloc(&e->a, sizeof *outs);
    if (!p || !ins || !outs || !out)
        return NULL;
    *p = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    for (int i = 0; i < n_in; i++)
        if (!in[i] || !(ins[i] = dsi_arena_strdup(&e->a, in[i])))
            return NULL;
    outs[0] = dsi_arena_strdup(&e->a, out);
    p->op_type = dsi_arena_strdup(&e->a, op);
    p->name = y ? dsi_arena_printf(&e->a, "%s/%s_%d", dsi_node_layer(y), op, (int)e->n_nodes)
                : dsi_arena_printf(&e->a, "%s_%d", op, (int)e->n_nodes);
    if (!outs[0] || !p->op_type || !p->name)
        return NULL;
    p->n_input = (size_t)n_in;
    p->input = ins;
    p->n_output = 1;
    p->output = outs;
    return push(e, (void ***)&e->nodes, &e->n_nodes, &e->cap_nodes, p) ? p : NULL;
}

static Onnx__AttributeProto *attr(ex *e, Onnx__NodeProto *p, const char *name, int type)
{
    if (!p)
        return NULL;
    Onnx__AttributeProto *a = dsi_arena_alloc(&e->a, sizeof *a);
    Onnx__AttributeProto **arr = dsi_arena_alloc(&e->a, (p->n_attribute + 1) * sizeof *arr);
    if (!a || !arr)
        return NULL;
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = dsi_arena_strdup(&e->a, name);
    a->has_type = 1;
    a->type = type;
    if (p->n_attribute)
        memcpy(arr, p->attribute, p->n_attribute * sizeof *arr);
    arr[p->n_attribute++] = a;
    p->attribute = arr;
    return a->name ? a : NULL;
}

static bool attr_i(ex *e, Onnx__NodeProto *p, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(e, p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a)
        a->has_i = 1, a->i = v;
    return a;
}

static bool attr_f(ex *e, Onnx__NodeProto *p, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(e, p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a)
        a->has_f = 1, a->f = v;
    return a;
}

static bool attr_s(ex *e, Onnx__NodeProto *p, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr(e, p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *s = dsi_arena_strdup(&e->a, v);
    if (!a || !s)
        return false;
    a->has_s = 1;
    a->s.data = (uint8_t *)s;
    a->s.len = strlen(s);
    return true;
}

static bool attr_ints(ex *e, Onnx__NodeProto *p, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(e, p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = dsi_arena_alloc(&e->a, (size_t)(n ? n : 1) * sizeof *d);
    if (!a || !d)
        return false;
    memcpy(d, v, (size_t)n * sizeof *d);
    a->n_ints = (size_t)n;
    a->ints = d;
    return true;
}

/* One-input node op(x) -> out; returns out (NULL on failure). */
static const char *unary(ex *e, const char *op, const ds_node *y, const char *x, const char *out)
{
    return node(e, op, y, 1, &x, out) ? out : NULL;
}

static const char *binary(ex *e, const char *op, const ds_node *y, const char *a, const char *b,
                          const char *out)
{
    const char *in[2] = { a, b };
    return node(e, op, y, 2, in, out) ? out : NULL;
}

/* ---- values of deepsky nodes ---- */
/* The value of a parameter node: its initializer, added on first use. */
static const char *param_value(ex *e, const ds_node *p)
{
    if (e->vname[p->id])
        return e->vname[p->id];
    const ds_param *q = p->param;
    const float *d = ds_model_data(e->g->m) + q->offset;
    return e->vname[p->id] = init_f(e, q->name, q->ndim, q->shape, d);
}

static const char *in_value(ex *e, const ds_node *y, int k)
{
    const ds_node *x = y->in[k];
    if (x->op == DS_OP_PARAM)
        return param_value(e, x);
    return e->vname[x->id];
}

/* The output value name of y: the net's output name if y is one, else "layer:id". */
static const char *out_name(ex *e, const ds_node *y)
{
    for (int k = 0; k < e->net->n_outputs; k++)
        if (e->net->outputs[k].node == y)
            return dsi_arena_strdup(&e->a, e->net->outputs[k].name);
    return dsi_arena_printf(&e->a, "%s:%d", dsi_node_layer(y), y->id);
}

static bool is_output(const ex *e, const ds_node *y)
{
    for (int k = 0; k < e->net->n_outputs; k++)
        if (e->net->outputs[k].node == y)
            return true;
    return false;
}

static ds_status unsupported(const ds_node *y, const char *why)
{
    return dsi_fail(DS_ERR_ARG, "ONNX export: layer '%s': op %s %s", dsi_node_layer(y),
                    dsi_op_names[y->op], why);
}

/* ---- the ops ---- */
static const char *emit_gelu(ex *e, const ds_node *y, const char *x, const char *out)
{
    const char *h = NULL;
    if (y->op == DS_OP_GELU) {   /* x/2 (1 + erf(x / sqrt 2)) */
        const char *s = binary(e, "Mul", y, x, scalar(e, y, (float)M_SQRT1_2), tmp_name(e, y));
        h = unary(e, "Erf", y, s, tmp_name(e, y));
    } else {                     /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
        const char *x2 = binary(e, "Mul", y, x, x, tmp_name(e, y));
        const char *x3 = binary(e, "Mul", y, x2, x, tmp_name(e, y));
        const char *c3 = binary(e, "Mul", y, x3, scalar(e, y, 0.044715f), tmp_name(e, y));
        const char *in = binary(e, "Add", y, x, c3, tmp_name(e, y));
        const char *k = binary(e, "Mul", y, in, scalar(e, y, (float)sqrt(2.0 / M_PI)),
                               tmp_name(e, y));
        h = unary(e, "Tanh", y, k, tmp_name(e, y));
    }
    const char *one = binary(e, "Add", y, h, scalar(e, y, 1.0f), tmp_name(e, y));
    const char *xs = binary(e, "Mul", y, x, one, tmp_name(e, y));
    return binary(e, "Mul", y, xs, scalar(e, y, 0.5f), out);
}

/* PRelu's slope broadcast from the right: [C] becomes [C, 1, ...] for [N, C, spatial...]. */
static const char *emit_prelu(ex *e, const ds_node *y, const char *x, const char *out)
{
    const char *w = in_value(e, y, 1);
    const ds_node *xn = y->in[0];
    if (y->in[1]->numel > 1 && xn->ndim > 2) {
        int64_t s[DS_MAX_DIMS];
        s[0] = y->in[1]->numel;
        for (int d = 1; d < xn->ndim - 1; d++)
            s[d] = 1;
        w = binary(e, "Reshape", y, w, init_i64(e, tmp_name(e, y), xn->ndim - 1, s),
                   tmp_name(e, y));
    }
    return binary(e, "PRelu", y, x, w, out);
}

static const char *emit_reduce(ex *e, const ds_node *y, const char *x, const char *out)
{
    const dsi_reduce_attr *at = &y->attr.reduce;
    int64_t axes[DS_MAX_DIMS];
    for (int i = 0; i < at->naxes; i++)
        axes[i] = at->axes[i];
    Onnx__NodeProto *p;
    if (y->op == DS_OP_SUM) {   /* opset 13: axes as an input */
        const char *in[2] = { x, at->naxes ? init_i64(e, tmp_name(e, y), at->naxes, axes) : NULL };
        p = node(e, "ReduceSum", y, at->naxes ? 2 : 1, in, out);
    } else {                    /* opset 17: axes as an attribute */
        p = node(e, "ReduceMean", y, 1, &x, out);
        if (at->naxes && !attr_ints(e, p, "axes", at->naxes, axes))
            return NULL;
    }
    return attr_i(e, p, "keepdims", at->keepdim) ? out : NULL;
}

static const char *emit_linear(ex *e, const ds_node *y, const char *x, const char *out)
{
    const char *w = in_value(e, y, 1), *b = y->n_in > 2 ? in_value(e, y, 2) : NULL;
    if (y->in[0]->ndim == 2) {
        const char *in[3] = { x, w, b };
        Onnx__NodeProto *p = node(e, "Gemm", y, b ? 3 : 2, in, out);
        return attr_i(e, p, "transB", 1) ? out : NULL;
    }
    Onnx__NodeProto *t = node(e, "Transpose", y, 1, &w, tmp_name(e, y));
    if (!t)
        return NULL;
    const char *m = binary(e, "MatMul", y, x, t->output[0], b ? tmp_name(e, y) : out);
    return b ? binary(e, "Add", y, m, b, out) : m;
}

static const char *emit_reshape(ex *e, const ds_node *y, const char *x, const char *out)
{
    const ds_node *xn = y->in[0];
    if (y->attr.reshape.flatten) {
        Onnx__NodeProto *p = node(e, "Flatten", y, 1, &x, out);
        return attr_i(e, p, "axis", 1) ? out : NULL;
    }
    int64_t s[DS_MAX_DIMS];
    memcpy(s, y->shape, sizeof s);
    if (y->ndim && xn->ndim && y->shape[0] == xn->shape[0])
        s[0] = 0;   /* the batch: copied from the input, whatever it is */
    return binary(e, "Reshape", y, x, init_i64(e, tmp_name(e, y), y->ndim, s), out);
}

static const char *emit_slice(ex *e, const ds_node *y, const char *x, const char *out)
{
    const dsi_slice_attr *at = &y->attr.slice;
    int64_t st = at->start, en = at->end, ax = at->axis;
    const char *in[4] = { x, init_i64(e, tmp_name(e, y), 1, &st),
                          init_i64(e, tmp_name(e, y), 1, &en), init_i64(e, tmp_name(e, y), 1, &ax) };
    return node(e, "Slice", y, 4, in, out) ? out : NULL;
}

static const char *emit_conv(ex *e, const ds_node *y, const char *x, const char *out)
{
    const dsi_conv_attr *at = &y->attr.conv;
    const char *in[3] = { x, in_value(e, y, 1), y->n_in > 2 ? in_value(e, y, 2) : NULL };
    Onnx__NodeProto *p = node(e, "Conv", y, y->n_in > 2 ? 3 : 2, in, out);
    int64_t pads[6], k[3];
    for (int j = 0; j < at->nd; j++) {
        pads[j] = at->pad_lo[j];
        pads[at->nd + j] = at->pad_hi[j];
        k[j] = y->in[1]->shape[2 + j];
    }
    bool ok = attr_ints(e, p, "kernel_shape", at->nd, k) && attr_ints(e, p, "pads", 2 * at->nd, pads) &&
              attr_ints(e, p, "strides", at->nd, at->stride) &&
              attr_ints(e, p, "dilations", at->nd, at->dilation);
    return ok ? out : NULL;
}

/* ONNX's output_padding adds rows at the end as deepsky's pad_hi = padding - output_padding
 * takes them off: symmetric pads with output_padding when that fits (OpenCV reads only
 * symmetric ones), else the end's pads, or output_padding rows for a negative pad_hi. */
static const char *emit_conv_transpose(ex *e, const ds_node *y, const char *x, const char *out)
{
    const dsi_conv_transpose_attr *at = &y->attr.conv_transpose;
    const char *in[3] = { x, in_value(e, y, 1), y->n_in > 2 ? in_value(e, y, 2) : NULL };
    Onnx__NodeProto *p = node(e, "ConvTranspose", y, y->n_in > 2 ? 3 : 2, in, out);
    int64_t pads[4], opad[2], k[2];
    for (int j = 0; j < 2; j++) {
        int64_t op = at->output_padding[j];
        bool sym = at->pad_hi[j] + op == at->pad_lo[j] && op < at->stride[j];
        pads[j] = at->pad_lo[j];   /* symmetric pads plus output_padding, as PyTorch's */
        pads[2 + j] = sym ? at->pad_lo[j] : at->pad_hi[j] > 0 ? at->pad_hi[j] : 0;
        opad[j] = sym ? op : at->pad_hi[j] < 0 ? -at->pad_hi[j] : 0;
        k[j] = y->in[1]->shape[2 + j];
    }
    bool ok = attr_ints(e, p, "kernel_shape", 2, k) && attr_ints(e, p, "pads", 4, pads) &&
              attr_ints(e, p, "strides", 2, at->stride) &&
              attr_ints(e, p, "dilations", 2, at->dilation) &&
              attr_ints(e, p, "output_padding", 2, opad);
    return ok ? out : NULL;
}

static const char *emit_upsample(ex *e, const ds_node *y, const char *x, const char *out)
{
    const dsi_upsample_attr *at = &y->attr.upsample;
    float s[4] = { 1, 1, (float)at->scale, (float)at->scale };
    int64_t four = 4;
    const char *in[3] = { x, "", init_f(e, tmp_name(e, y), 1, &four, s) };
    Onnx__NodeProto *p = node(e, "Resize", y, 3, in, out);
    if (at->mode == DS_UPSAMPLE_BILINEAR)
        return attr_s(e, p, "mode", "linear") &&
               attr_s(e, p, "coordinate_transformation_mode", "pytorch_half_pixel") ? out : NULL;
    return attr_s(e, p, "mode", "nearest") &&
           attr_s(e, p, "coordinate_transformation_mode", "asymmetric") &&
           attr_s(e, p, "nearest_mode", "floor") ? out : NULL;
}

static const char *emit_pool(ex *e, const ds_node *y, const char *x, const char *out)
{
    const dsi_pool_attr *at = &y->attr.pool;
    static const char *const ops[] = { [DS_POOL_MAX] = "MaxPool", [DS_POOL_AVG] = "AveragePool",
                                       [DS_POOL_SUM] = "AveragePool", [DS_POOL_L2] = "LpPool" };
    bool sum = at->kind == DS_POOL_SUM;
    Onnx__NodeProto *p = node(e, ops[at->kind], y, 1, &x, sum ? tmp_name(e, y) : out);
    int64_t pads[6], win = 1;
    for (int j = 0; j < at->nd; j++) {
        pads[j] = y->state.pool.lo[j];
        pads[at->nd + j] = y->state.pool.hi[j];
        win *= at->size[j];
    }
    bool ok = attr_ints(e, p, "kernel_shape", at->nd, at->size) &&
              attr_ints(e, p, "strides", at->nd, at->stride) &&
              attr_ints(e, p, "pads", 2 * at->nd, pads);
    if (ok && at->kind == DS_POOL_AVG)
        ok = attr_i(e, p, "count_include_pad", !at->exclude_pad);
    if (ok && at->kind == DS_POOL_L2)
        ok = attr_i(e, p, "p", 2);
    if (ok && sum)   /* a sum is the mean over the whole window, padding included, times it */
        return attr_i(e, p, "count_include_pad", 1) &&
               binary(e, "Mul", y, p->output[0], scalar(e, y, (float)win), out) ? out : NULL;
    return ok ? out : NULL;
}

static const char *emit_global_pool(ex *e, const ds_node *y, const char *x, const char *out)
{
    bool max = y->attr.global_pool.kind == DS_POOL_MAX;
    const char *g = unary(e, max ? "GlobalMaxPool" : "GlobalAveragePool", y, x, tmp_name(e, y));
    Onnx__NodeProto *p = node(e, "Flatten", y, 1, &g, out);   /* [N, C, 1, ...] -> [N, C] */
    return attr_i(e, p, "axis", 1) ? out : NULL;
}

/* Inference batch norm with the running statistics (kept, not folded; see README). */
static const char *emit_batchnorm(ex *e, const ds_node *y, const char *x, const char *out)
{
    const char *sc, *bi;
    if (y->n_in > 3) {
        sc = in_value(e, y, 3);
        bi = in_value(e, y, 4);
    } else {   /* affine=false: scale 1, bias 0 */
        int64_t C = y->in[1]->numel;
        float *v = dsi_arena_alloc(&e->a, (size_t)C * sizeof *v);
        if (!v)
            return NULL;
        for (int64_t c = 0; c < C; c++)
            v[c] = 1;
        sc = init_f(e, tmp_name(e, y), 1, &C, v);
        for (int64_t c = 0; c < C; c++)
            v[c] = 0;
        bi = init_f(e, tmp_name(e, y), 1, &C, v);
    }
    const char *in[5] = { x, sc, bi, in_value(e, y, 1), in_value(e, y, 2) };
    Onnx__NodeProto *p = node(e, "BatchNormalization", y, 5, in, out);
    return attr_f(e, p, "epsilon", y->attr.batchnorm.eps) ? out : NULL;
}

/* Ops whose inference value is their input's (or, Bayesian weights, their mean's). */
static bool passes_through(const ds_node *y)
{
    return y->op == DS_OP_DROPOUT || y->op == DS_OP_BAYES_SAMPLE;
}

static const char *emit_simple(ex *e, const ds_node *y, const char *x, const char *out)
{
    static const struct { ds_op op; const char *onnx; } un[] = {
        {DS_OP_NEG, "Neg"}, {DS_OP_EXP, "Exp"}, {DS_OP_LOG, "Log"}, {DS_OP_SQRT, "Sqrt"},
        {DS_OP_ABS, "Abs"}, {DS_OP_SIGMOID, "Sigmoid"}, {DS_OP_TANH, "Tanh"},
        {DS_OP_RELU, "Relu"}, {DS_OP_SOFTPLUS, "Softplus"},
    }, bin[] = {
        {DS_OP_ADD, "Add"}, {DS_OP_SUB, "Sub"}, {DS_OP_MUL, "Mul"}, {DS_OP_DIV, "Div"},
        {DS_OP_MATMUL, "MatMul"},
    }, sc[] = {
        {DS_OP_ADD_SCALAR, "Add"}, {DS_OP_MUL_SCALAR, "Mul"}, {DS_OP_POW_SCALAR, "Pow"},
    };
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++)
        if (un[i].op == y->op)
            return unary(e, un[i].onnx, y, x, out);
    for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++)
        if (bin[i].op == y->op)
            return binary(e, bin[i].onnx, y, x, in_value(e, y, 1), out);
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++)
        if (sc[i].op == y->op)
            return binary(e, sc[i].onnx, y, x, scalar(e, y, y->attr.scalar.c), out);
    return NULL;
}

/* The ReLU a convolution, dense or batch-norm op computes itself (DSI_FUSE_RELU), or 0. */
static int fused_act(const ds_node *y)
{
    switch (y->op) {
    case DS_OP_CONV:
        return y->attr.conv.act;
    case DS_OP_LINEAR:
        return y->attr.linear.act;
    case DS_OP_BATCHNORM:
        return y->attr.batchnorm.act;
    default:
        return DSI_FUSE_NONE;
    }
}

static const char *emit_op(ex *e, const ds_node *y, const char *x, const char *out)
{
    Onnx__NodeProto *p;
    switch (y->op) {
    case DS_OP_SQUARE:
        return binary(e, "Mul", y, x, x, out);
    case DS_OP_LEAKY_RELU:
        p = node(e, "LeakyRelu", y, 1, &x, out);
        return attr_f(e, p, "alpha", y->attr.leaky_relu.slope) ? out : NULL;
    case DS_OP_ELU:
        p = node(e, "Elu", y, 1, &x, out);
        return attr_f(e, p, "alpha", y->attr.elu.alpha) ? out : NULL;
    case DS_OP_GELU:
    case DS_OP_GELU_TANH:
        return emit_gelu(e, y, x, out);
    case DS_OP_SILU:
        return binary(e, "Mul", y, x, unary(e, "Sigmoid", y, x, tmp_name(e, y)), out);
    case DS_OP_PRELU:
        return emit_prelu(e, y, x, out);
    case DS_OP_SOFTMAX:
    case DS_OP_LOG_SOFTMAX:
        p = node(e, y->op == DS_OP_SOFTMAX ? "Softmax" : "LogSoftmax", y, 1, &x, out);
        return attr_i(e, p, "axis", y->attr.softmax.axis) ? out : NULL;
    case DS_OP_SUM:
    case DS_OP_MEAN:
        return emit_reduce(e, y, x, out);
    case DS_OP_LINEAR:
        return emit_linear(e, y, x, out);
    case DS_OP_CONCAT: {
        const char **in = dsi_arena_alloc(&e->a, (size_t)y->n_in * sizeof *in);
        if (!in)
            return NULL;
        for (int k = 0; k < y->n_in; k++)
            in[k] = in_value(e, y, k);
        p = node(e, "Concat", y, y->n_in, in, out);
        return attr_i(e, p, "axis", y->attr.concat.axis) ? out : NULL;
    }
    case DS_OP_RESHAPE:
        return emit_reshape(e, y, x, out);
    case DS_OP_SLICE:
        return emit_slice(e, y, x, out);
    case DS_OP_CONV:
        return emit_conv(e, y, x, out);
    case DS_OP_CONV_TRANSPOSE2D:
        return emit_conv_transpose(e, y, x, out);
    case DS_OP_UPSAMPLE2D:
        return emit_upsample(e, y, x, out);
    case DS_OP_POOL:
        return emit_pool(e, y, x, out);
    case DS_OP_GLOBAL_POOL:
        return emit_global_pool(e, y, x, out);
    case DS_OP_BATCHNORM:
        return emit_batchnorm(e, y, x, out);
    default:
        return emit_simple(e, y, x, out);
    }
}

/* Which ops have an ONNX form here (the rest are losses and the KL term: training only). */
static bool exportable(ds_op op)
{
    return op != DS_OP_BAYES_KL && !(op >= DS_OP_LOSS_MSE && op <= DS_OP_LOSS_MSB);
}

static ds_status emit_node(ex *e, const ds_node *y)
{
    if (!exportable(y->op))
        return unsupported(y, "is a training term with no ONNX form");
    if (fused_act(y) == DSI_FUSE_RELU) {   /* the op, then its ReLU */
        const char *x = in_value(e, y, 0), *pre = tmp_name(e, y), *out = out_name(e, y);
        if (!x || !pre || !out)
            return DS_ERR_NOMEM;
        const char *v = emit_op(e, y, x, pre);
        e->vname[y->id] = v ? unary(e, "Relu", y, v, out) : NULL;
        if (!v && !e->a.failed)
            return unsupported(y, "has no ONNX form in this exporter");
        return e->vname[y->id] ? DS_OK : DS_ERR_NOMEM;
    }
    bool relu_again = y->op == DS_OP_RELU && fused_act(y->in[0]) == DSI_FUSE_RELU;
    if ((passes_through(y) || relu_again) && !is_output(e, y)) {
        e->vname[y->id] = in_value(e, y, 0);
        return e->vname[y->id] ? DS_OK : DS_ERR_NOMEM;
    }
    const char *x = in_value(e, y, 0), *out = out_name(e, y);
    if (!x || !out)
        return DS_ERR_NOMEM;
    e->vname[y->id] = passes_through(y) || relu_again ? unary(e, "Identity", y, x, out)
                                                      : emit_op(e, y, x, out);
    if (!e->vname[y->id] && !e->a.failed)
        return unsupported(y, "has no ONNX form in this exporter");
    return e->vname[y->id] ? DS_OK : DS_ERR_NOMEM;
}

/* ---- graph inputs and outputs ---- */
static Onnx__ValueInfoProto *value_info(ex *e, const char *name, const ds_node *y)
{
    Onnx__ValueInfoProto *v = dsi_arena_alloc(&e->a, sizeof *v);
    Onnx__TypeProto *t = dsi_arena_alloc(&e->a, sizeof *t);
    Onnx__TypeProto__Tensor *tt = dsi_arena_alloc(&e->a, sizeof *tt);
    Onnx__TensorShapeProto *sh = dsi_arena_alloc(&e->a, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims =
        dsi_arena_alloc(&e->a, (size_t)(y->ndim ? y->ndim : 1) * sizeof *dims);
    if (!v || !t || !tt || !sh || !dims)
        return NULL;
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    *t = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    *sh = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int d = 0; d < y->ndim; d++) {
        Onnx__TensorShapeProto__Dimension *dm = dsi_arena_alloc(&e->a, sizeof *dm);
        if (!dm)
            return NULL;
        *dm = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (d == 0) {   /* the batch, any size */
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            if (!(dm->dim_param = dsi_arena_strdup(&e->a, "N")))
                return NULL;
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = y->shape[d];
        }
        dims[d] = dm;
    }
    sh->n_dim = (size_t)y->ndim;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->type = t;
    v->name = dsi_arena_strdup(&e->a, name);
    return v->name ? v : NULL;
}

static bool meta(ex *e, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *m = dsi_arena_alloc(&e->a, sizeof *m);
    if (!m)
        return false;
    *m = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    m->key = dsi_arena_strdup(&e->a, key);
    m->value = dsi_arena_strdup(&e->a, value);
    return m->key && m->value && push(e, (void ***)&e->meta, &e->n_meta, &e->cap_meta, m);
}

/* The preprocessing of input i as ONNX nodes from the raw input `raw`; the scaled value's name. */
static const char *emit_scaling(ex *e, const dsi_net_input *in, const char *raw)
{
    const ds_node *y = in->node;
    const char *out = dsi_arena_printf(&e->a, "%s/scaled", in->name);
    switch (in->scale) {
    case DS_SCALE_NONE:
        return raw;
    case DS_SCALE_DIVIDE:
        return binary(e, "Div", y, raw, scalar(e, y, in->scale_a), out);
    case DS_SCALE_ASINH:
        return unary(e, "Asinh", y, binary(e, "Div", y, raw, scalar(e, y, in->scale_a),
                                           tmp_name(e, y)), out);
    case DS_SCALE_STANDARDIZE: {   /* per feature: the statistics in the sample's shape */
        const char *mean = init_f(e, dsi_arena_printf(&e->a, "%s/mean", in->name), y->ndim - 1,
                                  y->shape + 1, in->mean->data);
        const char *sd = init_f(e, dsi_arena_printf(&e->a, "%s/std", in->name), y->ndim - 1,
                                y->shape + 1, in->std->data);
        return binary(e, "Div", y, binary(e, "Sub", y, raw, mean, tmp_name(e, y)), sd, out);
    }
    case DS_SCALE_PER_IMAGE: {     /* per sample: mean and standard deviation (1 if ~0) */
        int64_t axes[DS_MAX_DIMS];
        for (int d = 1; d < y->ndim; d++)
            axes[d - 1] = d;
        Onnx__NodeProto *m = node(e, "ReduceMean", y, 1, &raw, tmp_name(e, y));
        if (!attr_ints(e, m, "axes", y->ndim - 1, axes))
            return NULL;
        const char *c = binary(e, "Sub", y, raw, m->output[0], tmp_name(e, y));
        const char *c2 = binary(e, "Mul", y, c, c, tmp_name(e, y));
        Onnx__NodeProto *v = node(e, "ReduceMean", y, 1, &c2, tmp_name(e, y));
        if (!attr_ints(e, v, "axes", y->ndim - 1, axes))
            return NULL;
        const char *sd = unary(e, "Sqrt", y, v->output[0], tmp_name(e, y));
        /* sd, or 1 when sd is 0 (a constant image), without Where (which OpenCV lacks):
         * t = relu(1 - 1e12 sd) is 1 at sd = 0 and 0 from sd = 1e-12 on; sd + t (1 - sd) */
        const char *big = binary(e, "Mul", y, sd, scalar(e, y, 1e12f), tmp_name(e, y));
        const char *t = unary(e, "Relu", y, binary(e, "Sub", y, scalar(e, y, 1.0f), big,
                                                   tmp_name(e, y)), tmp_name(e, y));
        const char *rest = binary(e, "Sub", y, scalar(e, y, 1.0f), sd, tmp_name(e, y));
        const char *sd1 = binary(e, "Add", y, sd, binary(e, "Mul", y, t, rest, tmp_name(e, y)),
                                 tmp_name(e, y));
        return binary(e, "Div", y, c, sd1, out);
    }
    }
    return NULL;
}

static const char *scale_word(ds_scale_kind k)
{
    static const char *const w[] = { "none", "standardize", "per_image", "asinh", "divide" };
    return (unsigned)k < sizeof w / sizeof w[0] ? w[k] : "unknown";
}

/* Graph inputs (with their preprocessing) and the metadata saying what it is. */
static ds_status emit_inputs(ex *e, Onnx__GraphProto *gp)
{
    const ds_net *n = e->net;
    gp->input = dsi_arena_alloc(&e->a, (size_t)n->n_inputs * sizeof *gp->input);
    if (!gp->input)
        return DS_ERR_NOMEM;
    for (int i = 0; i < n->n_inputs; i++) {
        const dsi_net_input *in = &n->inputs[i];
        char key[DS_NAME_MAX + 64], val[64];
        if (!(gp->input[i] = value_info(e, in->name, in->node)))
            return DS_ERR_NOMEM;
        gp->n_input++;
        e->vname[in->node->id] = emit_scaling(e, in, in->name);
        snprintf(key, sizeof key, "deepsky.input.%s.scale", in->name);
        if (!e->vname[in->node->id] || !meta(e, key, scale_word(in->scale)))
            return DS_ERR_NOMEM;
        if (in->scale == DS_SCALE_ASINH || in->scale == DS_SCALE_DIVIDE) {
            snprintf(key, sizeof key, "deepsky.input.%s.scale_a", in->name);
            snprintf(val, sizeof val, "%.9g", (double)in->scale_a);
            if (!meta(e, key, val))
                return DS_ERR_NOMEM;
        }
    }
    return DS_OK;
}

/* Marks the nodes the outputs depend on; fails on a data input that is no net input
 * (a loss's labels). */
static ds_status mark_needed(ex *e)
{
    const ds_net *n = e->net;
    for (int k = 0; k < n->n_outputs; k++)
        e->needed[n->outputs[k].node->id] = true;
    for (int id = e->g->n_nodes - 1; id >= 0; id--) {
        const ds_node *y = e->g->nodes[id];
        if (!e->needed[id])
            continue;
        if (y->op == DS_OP_INPUT && !e->vname[id])
            return dsi_fail(DS_ERR_ARG, "ONNX export: the outputs read '%s', which is no data "
                            "input of the model (labels?)", dsi_node_layer(y));
        for (int i = 0; i < y->n_in; i++)
            e->needed[y->in[i]->id] = true;
    }
    return DS_OK;
}

static ds_status emit_graph(ex *e, Onnx__GraphProto *gp)
{
    ds_status st = emit_inputs(e, gp);
    if (!st)
        st = mark_needed(e);
    for (int id = 0; !st && id < e->g->n_nodes; id++) {
        const ds_node *y = e->g->nodes[id];
        if (e->needed[id] && y->op != DS_OP_INPUT && y->op != DS_OP_PARAM)
            st = emit_node(e, y);
    }
    const ds_net *n = e->net;
    if (!st && !(gp->output = dsi_arena_alloc(&e->a, (size_t)n->n_outputs * sizeof *gp->output)))
        st = DS_ERR_NOMEM;
    for (int k = 0; !st && k < n->n_outputs; k++) {
        const ds_node *y = n->outputs[k].node;
        if (y->op == DS_OP_INPUT || y->op == DS_OP_PARAM)
            return dsi_fail(DS_ERR_ARG, "ONNX export: output '%s' is an input or a parameter",
                            n->outputs[k].name);
        if (!(gp->output[k] = value_info(e, e->vname[y->id], y)))
            st = DS_ERR_NOMEM;
        gp->n_output++;
    }
    gp->node = e->nodes;
    gp->n_node = e->n_nodes;
    gp->initializer = e->inits;
    gp->n_initializer = e->n_inits;
    return st;
}

/* The weights' training metadata and the classifiers' temperatures, as they are. */
static bool copy_weights_meta(ex *e)
{
    const ds_tensor_set *s = e->net->wmeta;
    for (int i = 0; s && i < dsi_tensor_set_meta_count(s); i++) {
        const char *k = dsi_tensor_set_meta_key(s, i);
        if (!meta(e, k, ds_tensor_set_meta_get(s, k)))
            return false;
    }
    char key[DS_NAME_MAX + 48], val[40];
    for (int t = 0; t < e->net->n_targets; t++) {
        const dsi_net_target *tg = &e->net->targets[t];
        if (tg->temperature > 0) {
            snprintf(key, sizeof key, "deepsky.calibration.%s.temperature", tg->name);
            snprintf(val, sizeof val, "%.9g", tg->temperature);
            if (!meta(e, key, val))
                return false;
        }
    }
    return meta(e, "deepsky.version", DS_VERSION) &&
           meta(e, "deepsky.preprocessing", "in the graph: the inputs take raw data");
}

static ds_status build_model(ex *e, Onnx__ModelProto *m, Onnx__GraphProto *gp)
{
    *m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    *gp = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto *op = dsi_arena_alloc(&e->a, sizeof *op);
    Onnx__OperatorSetIdProto **ops = dsi_arena_alloc(&e->a, sizeof *ops);
    e->vname = dsi_arena_alloc(&e->a, (size_t)e->g->n_nodes * sizeof *e->vname);
    e->needed = dsi_arena_alloc(&e->a, (size_t)e->g->n_nodes * sizeof *e->needed);
    if (!op || !ops || !e->vname || !e->needed)
        return DS_ERR_NOMEM;
    *op = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    op->domain = dsi_arena_strdup(&e->a, "");
    op->has_version = 1;
    op->version = DSI_ONNX_OPSET;
    ops[0] = op;
    m->has_ir_version = 1;
    m->ir_version = DSI_ONNX_IR;
    m->n_opset_import = 1;
    m->opset_import = ops;
    m->producer_name = dsi_arena_strdup(&e->a, "deepsky");
    m->producer_version = dsi_arena_strdup(&e->a, DS_VERSION);
    const char *base = strrchr(e->net->path, '/');
    gp->name = dsi_arena_strdup(&e->a, base ? base + 1 : e->net->path[0] ? e->net->path : "deepsky");
    m->graph = gp;
    ds_status st = emit_graph(e, gp);
    if (!st && !copy_weights_meta(e))
        st = DS_ERR_NOMEM;
    m->metadata_props = e->meta;
    m->n_metadata_props = e->n_meta;
    if (!st && e->a.failed)
        st = DS_ERR_NOMEM;
    return st == DS_ERR_NOMEM ? dsi_fail(st, "ONNX export: out of memory") : st;
}

ds_status ds_onnx_export_mem(const ds_net *n, void **buf, size_t *len)
{
    if (!n || !buf || !len)
        return dsi_fail(DS_ERR_ARG, "ds_onnx_export_mem: NULL argument");
    *buf = NULL;
    *len = 0;
    ex e = { .net = n, .g = n->g };
    Onnx__ModelProto m;
    Onnx__GraphProto gp;
    ds_status st = ds_graph_status(n->g);
    if (!st)
        st = build_model(&e, &m, &gp);
    if (!st) {
        *len = onnx__model_proto__get_packed_size(&m);
        if (!(*buf = malloc(*len ? *len : 1)))
            st = dsi_fail(DS_ERR_NOMEM, "ONNX export: out of memory for %zu bytes", *len);
        else
            onnx__model_proto__pack(&m, *buf);
    }
    dsi_arena_free(&e.a);
    return st;
}

ds_status ds_onnx_export(const ds_net *n, const char *path)
{
    if (!path)
        return dsi_fail(DS_ERR_ARG, "ds_onnx_export: NULL path");
    void *buf;
    size_t len;
    ds_status st = ds_onnx_export_mem(n, &buf, &len);
    if (st)
        return st;
    dsi_wfile w;
    if ((st = dsi_wfile_open(&w, path))) {
        free(buf);
        return st;
    }
    if (fwrite(buf, 1, len, w.fp) == len) {
        st = dsi_wfile_commit(&w);
    } else {
        st = dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        dsi_wfile_abort(&w);
    }
    free(buf);
    return st;
}
