/* import.c - an ONNX model as a deepsky model file and weights (ds_onnx_import): the nodes in
 * dependency order, each translated into a layer line, the initializers into its parameters. */
#include "pb.h"
#include "../io/io.h"
#include "../net/net.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value of the ONNX graph: a layer's output (with its ONNX shape) or a constant. */
typedef struct {
    const char *name;          /* borrowed from the model */
    bool is_const;
    char layer[DS_NAME_MAX];   /* the layer computing it (not a constant) */
    char flat[DS_NAME_MAX];    /* a global pooling's layer giving [N, C] ("" if none) */
    int ndim;                  /* ONNX rank; shape[0] is the batch */
    int64_t shape[DS_MAX_DIMS];
    const Onnx__TensorProto *t;   /* a constant's tensor */
} val;

typedef struct {
    char name[DS_NAME_MAX + 16];
    float *data;
    int64_t numel;
} weight;

typedef struct {
    const char *file;
    Onnx__GraphProto *g;
    int64_t opset;
    val *vals;
    int n_vals, cap_vals;
    weight *w;
    int n_w, cap_w;
    char *text;
    size_t len, cap;
    bool *absorbed;            /* nodes folded into an earlier one (MatMul's bias Add) */
} im;

/* ---- helpers ---- */
static const char *node_name(const Onnx__NodeProto *n)
{
    return n->name && *n->name ? n->name : n->n_output && n->output[0] ? n->output[0] : "?";
}

static ds_status node_fail(const im *m, const Onnx__NodeProto *n, ds_status s, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
static ds_status node_fail(const im *m, const Onnx__NodeProto *n, ds_status s, const char *fmt,
                           ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsi_fail(s, "%s: node '%s' (%s): %s", m->file, node_name(n),
                    n->op_type ? n->op_type : "?", msg);
}

static ds_status emit(im *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ds_status emit(im *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(m->text + m->len, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (k < 0)
            return dsi_fail(DS_ERR_ARG, "%s: cannot format a line", m->file);
        if (m->len + (size_t)k < m->cap) {
            m->len += (size_t)k;
            return DS_OK;
        }
        size_t cap = 2 * m->cap + (size_t)k + 256;
        char *t = realloc(m->text, cap);
        if (!t)
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for the model text", m->file);
        m->text = t;
        m->cap = cap;
    }
}

static val *find_val(im *m, const char *name)
{
    for (int i = m->n_vals - 1; i >= 0; i--)
        if (!strcmp(m->vals[i].name, name))
            return &m->vals[i];
    return NULL;
}

static val *add_val(im *m, const char *name)
{
    if (m->n_vals == m->cap_vals) {
        int cap = m->cap_vals ? 2 * m->cap_vals : 64;
        val *v = realloc(m->vals, (size_t)cap * sizeof *v);
        if (!v) {
            dsi_fail(DS_ERR_NOMEM, "%s: out of memory", m->file);
            return NULL;
        }
        m->vals = v;
        m->cap_vals = cap;
    }
    val *v = &m->vals[m->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    return v;
}

/* A layer name from an ONNX name: letters, digits, '_' and '-', unique, 1 to 32 characters. */
static void layer_name(im *m, const char *from, char *out)
{
    char base[40];
    int k = 0;
    for (const char *p = from; *p && k < 32; p++)
        if (isalnum((unsigned char)*p) || *p == '-' || (*p == '_' && k))
            base[k++] = *p;
        else if (k && base[k - 1] != '_')
            base[k++] = '_';
    while (k && base[k - 1] == '_')
        k--;
    base[k] = 0;
    if (!k || !isalpha((unsigned char)base[0]))
        snprintf(base, sizeof base, "l%.30s", k ? base : "ayer");
    char cand[DS_NAME_MAX];   /* out may be a value's own field: compared only when done */
    snprintf(cand, sizeof cand, "%s", base);
    for (int i = 2;; i++) {
        bool used = false;
        for (int j = 0; j < m->n_vals && !used; j++)
            used = !m->vals[j].is_const && (!strcmp(m->vals[j].layer, cand) ||
                                            !strcmp(m->vals[j].flat, cand));
        if (!used)
            break;
        snprintf(cand, sizeof cand, "%s_%d", base, i);
    }
    memcpy(out, cand, sizeof cand);
}

/* Whether value name is an output of the graph. */
static bool graph_output(const im *m, const char *name)
{
    for (size_t i = 0; i < m->g->n_output; i++)
        if (m->g->output[i]->name && !strcmp(m->g->output[i]->name, name))
            return true;
    return false;
}

/* The layer value made by node n (its first output), named after that output when it is a
 * graph output (so predict's names are the ONNX ones), else after the node. */
static val *new_layer(im *m, const Onnx__NodeProto *n, int ndim, const int64_t *shape)
{
    char nm[DS_NAME_MAX];
    const char *out = n->output[0];
    layer_name(m, graph_output(m, out) ? out : node_name(n), nm);
    val *v = add_val(m, out);
    if (!v)
        return NULL;
    snprintf(v->layer, sizeof v->layer, "%s", nm);
    v->ndim = ndim;
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
    return v;
}

/* ---- constants ---- */
static int64_t tensor_numel(const Onnx__TensorProto *t)
{
    if (t->n_dims > DS_MAX_DIMS)
        return -1;
    return dsi_numel_limited((int)t->n_dims, t->dims, (int64_t)1 << 28);
}

/* A float tensor's values (float_data or little-endian raw_data) into a new array. */
static ds_status const_floats(const im *m, const Onnx__NodeProto *n, const val *v, float **out,
                              int64_t *numel)
{
    const Onnx__TensorProto *t = v->t;
    int64_t k = tensor_numel(t);
    *out = NULL;
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return node_fail(m, n, DS_ERR_FORMAT, "constant '%s' has data type %d, not float (1)",
                         v->name, (int)t->data_type);
    bool raw = t->has_raw_data && t->raw_data.len;
    if (k < 0 || (raw ? t->raw_data.len != (size_t)k * 4 : t->n_float_data != (size_t)k))
        return node_fail(m, n, DS_ERR_FORMAT, "constant '%s': its data do not match its shape "
                         "(%zu dimensions)", v->name, t->n_dims);
    float *f = malloc((size_t)(k ? k : 1) * sizeof *f);
    if (!f)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for '%s'", m->file, v->name);
    for (int64_t i = 0; i < k; i++) {
        if (raw) {
            const uint8_t *b = t->raw_data.data + 4 * i;
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                         (uint32_t)b[3] << 24;
            memcpy(&f[i], &u, 4);
        } else {
            f[i] = t->float_data[i];
        }
    }
    *out = f;
    *numel = k;
    return DS_OK;
}

/* An integer tensor (int64 or int32, data or raw) of at most cap values. */
static ds_status const_ints(const im *m, const Onnx__NodeProto *n, const val *v, int64_t *out,
                            int cap, int *count)
{
    const Onnx__TensorProto *t = v->t;
    int64_t k = tensor_numel(t);
    bool i64 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    if (!i64 && t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
        return node_fail(m, n, DS_ERR_FORMAT, "constant '%s' has data type %d, not int64",
                         v->name, (int)t->data_type);
    bool raw = t->has_raw_data && t->raw_data.len;
    size_t have = raw ? t->raw_data.len / (i64 ? 8 : 4) : i64 ? t->n_int64_data : t->n_int32_data;
    if (k < 0 || k > cap || have != (size_t)k || (raw && t->raw_data.len % (i64 ? 8 : 4)))
        return node_fail(m, n, DS_ERR_FORMAT, "constant '%s': %lld integers, at most %d expected "
                         "and matching its shape", v->name, (long long)k, cap);
    for (int64_t i = 0; i < k; i++) {
        uint64_t u = 0;
        if (raw) {
            for (int b = (i64 ? 7 : 3); b >= 0; b--)
                u = u << 8 | t->raw_data.data[(i64 ? 8 : 4) * i + b];
            out[i] = i64 ? (int64_t)u : (int64_t)(int32_t)(uint32_t)u;
        } else {
            out[i] = i64 ? t->int64_data[i] : t->int32_data[i];
        }
    }
    *count = (int)k;
    return DS_OK;
}

static ds_status add_weight(im *m, const Onnx__NodeProto *n, const char *layer, const char *suffix,
                            const val *v)
{
    if (m->n_w == m->cap_w) {
        int cap = m->cap_w ? 2 * m->cap_w : 32;
        weight *w = realloc(m->w, (size_t)cap * sizeof *w);
        if (!w)
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", m->file);
        m->w = w;
        m->cap_w = cap;
    }
    weight *w = &m->w[m->n_w];
    snprintf(w->name, sizeof w->name, "%s.%s", layer, suffix);
    ds_status st = const_floats(m, n, v, &w->data, &w->numel);
    if (!st)
        m->n_w++;
    return st;
}

/* ---- inputs of a node ---- */
/* Input k of n, which must exist ("" counts as absent). */
static ds_status input(im *m, const Onnx__NodeProto *n, size_t k, bool want_const, val **out)
{
    *out = NULL;
    if (k >= n->n_input || !*n->input[k]) {
        if (!want_const)
            return node_fail(m, n, DS_ERR_FORMAT, "input %zu is missing", k + 1);
        return DS_OK;
    }
    val *v = find_val(m, n->input[k]);
    if (!v)
        return node_fail(m, n, DS_ERR_FORMAT, "input '%s' is not defined", n->input[k]);
    if (v->is_const != want_const)
        return node_fail(m, n, DS_ERR_ARG, "input %zu ('%s') must be %s", k + 1, n->input[k],
                         want_const ? "a constant (initializer)" : "computed by a layer, not a "
                         "constant (deepsky layers take constants only as their weights)");
    *out = v;
    return DS_OK;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static float attr_f(const Onnx__NodeProto *n, const char *name, float dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : dflt;
}

static bool attr_s_is(const Onnx__NodeProto *n, const char *name, const char *dflt,
                      const char *want)
{
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a || !a->has_s)
        return !strcmp(dflt, want);
    return a->s.len == strlen(want) && !memcmp(a->s.data, want, a->s.len);
}

/* An ints attribute of nd values (dflt each when absent); fails on another count. */
static ds_status attr_ints(const im *m, const Onnx__NodeProto *n, const char *name, int nd,
                           int64_t dflt, int64_t *out)
{
    const Onnx__AttributeProto *a = attr(n, name);
    for (int i = 0; i < nd; i++)
        out[i] = dflt;
    if (!a)
        return DS_OK;
    if (a->n_ints != (size_t)nd)
        return node_fail(m, n, DS_ERR_FORMAT, "attribute '%s' has %zu values, %d expected", name,
                         a->n_ints, nd);
    if (nd)
        memcpy(out, a->ints, (size_t)nd * sizeof *out);
    return DS_OK;
}

/* "3" when every value is the same, else "3x5". */
static const char *tuple(const int64_t *v, int nd, char *buf, size_t cap)
{
    bool same = true;
    for (int i = 1; i < nd; i++)
        same = same && v[i] == v[0];
    buf[0] = 0;
    size_t k = 0;
    for (int i = 0; i < (same ? 1 : nd) && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "x" : "", (long long)v[i]);
    return buf;
}

/* The layer giving v in its ONNX shape: a global pooling's [N, C] becomes [N, C, 1, ...]
 * through a reshape layer, made the first time it is needed. */
static ds_status layer_of(im *m, val *v, const char **out)
{
    if (v->flat[0] && !v->layer[0]) {
        char nm[DS_NAME_MAX + 8], shape[64] = "";
        snprintf(nm, sizeof nm, "%s_nchw", v->flat);
        layer_name(m, nm, v->layer);
        size_t k = 0;
        for (int d = 1; d < v->ndim && k < sizeof shape; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d > 1 ? "x" : "",
                                  (long long)v->shape[d]);
        ds_status st = emit(m, "reshape name=%s inputs=%s shape=%s\n", v->layer, v->flat, shape);
        if (st)
            return st;
    }
    *out = v->layer;
    return DS_OK;
}

/* The one layer input of a layer-to-layer node, with its layer name. */
static ds_status layer_input(im *m, const Onnx__NodeProto *n, val **x, const char **lname)
{
    ds_status st = input(m, n, 0, false, x);
    return st ? st : layer_of(m, *x, lname);
}

/* ---- the ops ---- */
static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t lo, int64_t hi)
{
    return (in + lo + hi - d * (k - 1) - 1) / s + 1;
}

/* Spatial attributes of Conv, ConvTranspose and the pools: kernel, strides, dilations and
 * symmetric pads (auto_pad SAME_UPPER becomes padding=same, VALID valid). */
typedef struct {
    int nd;
    int64_t k[3], s[3], d[3], lo[3], hi[3];
    char padding[48];
} spatial;

static ds_status get_spatial(im *m, const Onnx__NodeProto *n, int nd, const int64_t *k,
                             const val *x, spatial *sp)
{
    ds_status st;
    int64_t pads[6];
    sp->nd = nd;
    memcpy(sp->k, k, (size_t)nd * sizeof *k);
    if ((st = attr_ints(m, n, "strides", nd, 1, sp->s)) ||
        (st = attr_ints(m, n, "dilations", nd, 1, sp->d)) ||
        (st = attr_ints(m, n, "pads", 2 * nd, 0, pads)))
        return st;
    for (int j = 0; j < nd; j++) {
        sp->lo[j] = pads[j];
        sp->hi[j] = pads[nd + j];
        if (sp->s[j] < 1 || sp->d[j] < 1 || sp->k[j] < 1 || pads[j] < 0 || pads[nd + j] < 0 ||
            sp->k[j] > 1 << 16 || sp->s[j] > 1 << 16 || sp->d[j] > 1 << 16 || pads[j] > 1 << 16 ||
            pads[nd + j] > 1 << 16)
            return node_fail(m, n, DS_ERR_FORMAT, "kernel, strides, dilations or pads out of "
                             "range on axis %d", j);
    }
    char buf[48];
    if (attr_s_is(n, "auto_pad", "NOTSET", "SAME_UPPER")) {
        snprintf(sp->padding, sizeof sp->padding, "same");
        for (int j = 0; j < nd; j++) {
            int64_t in = x->shape[2 + j], out = (in + sp->s[j] - 1) / sp->s[j];
            int64_t tot = (out - 1) * sp->s[j] + sp->d[j] * (sp->k[j] - 1) + 1 - in;
            sp->lo[j] = tot > 0 ? tot / 2 : 0;
            sp->hi[j] = tot > 0 ? tot - tot / 2 : 0;
        }
        return DS_OK;
    }
    if (!attr_s_is(n, "auto_pad", "NOTSET", "NOTSET") && !attr_s_is(n, "auto_pad", "NOTSET", "VALID"))
        return node_fail(m, n, DS_ERR_ARG, "auto_pad SAME_LOWER is not supported (deepsky's "
                         "'same' pads the extra pixel at the end: SAME_UPPER)");
    for (int j = 0; j < nd; j++)
        if (sp->lo[j] != sp->hi[j])
            return node_fail(m, n, DS_ERR_ARG, "pads differ at the two ends of axis %d (%lld, "
                             "%lld): deepsky pads both ends alike", j, (long long)sp->lo[j],
                             (long long)sp->hi[j]);
    snprintf(sp->padding, sizeof sp->padding, "%s", tuple(sp->lo, nd, buf, sizeof buf));
    return DS_OK;
}

static ds_status check_nd(im *m, const Onnx__NodeProto *n, const val *x, int nd, int max_nd)
{
    if (nd < 1 || nd > max_nd || x->ndim != nd + 2)
        return node_fail(m, n, DS_ERR_SHAPE, "input '%s' has %d dimensions; %dD with up to %d "
                         "spatial axes expected", x->name, x->ndim, nd, max_nd);
    return DS_OK;
}

static ds_status op_conv(im *m, const Onnx__NodeProto *n, bool transpose)
{
    val *x, *w, *b;
    const char *xl;
    ds_status st;
    if ((st = layer_input(m, n, &x, &xl)) || (st = input(m, n, 1, true, &w)) ||
        (st = input(m, n, 2, true, &b)))
        return st;
    int nd = (int)w->t->n_dims - 2;
    if ((st = check_nd(m, n, x, nd, transpose ? 2 : 3)))
        return st;
    if (attr_i(n, "group", 1) != 1)
        return node_fail(m, n, DS_ERR_ARG, "group %lld: deepsky's convolutions have one group",
                         (long long)attr_i(n, "group", 1));
    spatial sp;
    int64_t opad[2] = {0, 0};
    if ((st = get_spatial(m, n, nd, w->t->dims + 2, x, &sp)) ||
        (transpose && (st = attr_ints(m, n, "output_padding", nd, 0, opad))))
        return st;
    if (transpose && !strcmp(sp.padding, "same"))
        return node_fail(m, n, DS_ERR_ARG, "auto_pad is not supported (give pads)");
    if (transpose && attr(n, "output_shape"))
        return node_fail(m, n, DS_ERR_ARG, "attribute output_shape is not supported (give pads "
                         "and output_padding)");
    int64_t C = w->t->dims[transpose ? 0 : 1], F = w->t->dims[transpose ? 1 : 0];
    if (x->shape[1] != C)
        return node_fail(m, n, DS_ERR_SHAPE, "input '%s' has %lld channels, the weight expects "
                         "%lld", x->name, (long long)x->shape[1], (long long)C);
    int64_t s[DS_MAX_DIMS] = {x->shape[0], F};
    for (int j = 0; j < nd; j++) {
        int64_t in = x->shape[2 + j];
        s[2 + j] = transpose ? sp.s[j] * (in - 1) + opad[j] + sp.d[j] * (sp.k[j] - 1) + 1 -
                                   sp.lo[j] - sp.hi[j]
                             : conv_out(in, sp.k[j], sp.s[j], sp.d[j], sp.lo[j], sp.hi[j]);
        if (s[2 + j] < 1)
            return node_fail(m, n, DS_ERR_SHAPE, "the output would be empty on axis %d", j);
    }
    val *y = new_layer(m, n, nd + 2, s);
    if (!y)
        return DS_ERR_NOMEM;
    char kb[48], sb[48], db[48], ob[48];
    st = emit(m, "%s name=%s inputs=%s filters=%lld kernel=%s stride=%s padding=%s dilation=%s "
              "bias=%s", transpose ? "conv2d_transpose" : nd == 1 ? "conv1d" : nd == 2 ? "conv2d"
              : "conv3d", y->layer, xl, (long long)F, tuple(sp.k, nd, kb, sizeof kb),
              tuple(sp.s, nd, sb, sizeof sb), sp.padding, tuple(sp.d, nd, db, sizeof db),
              b ? "true" : "false");
    if (!st && transpose)
        st = emit(m, " output_padding=%s", tuple(opad, nd, ob, sizeof ob));
    if (!st)
        st = emit(m, "\n");
    if (!st)
        st = add_weight(m, n, y->layer, "weight", w);
    if (!st && b)
        st = add_weight(m, n, y->layer, "bias", b);
    return st;
}

static ds_status op_pool(im *m, const Onnx__NodeProto *n, bool max)
{
    val *x;
    const char *xl;
    ds_status st = layer_input(m, n, &x, &xl);
    if (st)
        return st;
    const Onnx__AttributeProto *ks = attr(n, "kernel_shape");
    int nd = ks ? (int)ks->n_ints : 0;
    if ((st = check_nd(m, n, x, nd, 3)))
        return st;
    if (attr_i(n, "ceil_mode", 0))
        return node_fail(m, n, DS_ERR_ARG, "ceil_mode=1 is not supported (deepsky rounds down)");
    if (max && attr_i(n, "storage_order", 0))
        return node_fail(m, n, DS_ERR_ARG, "storage_order=1 is not supported");
    if (n->n_output > 1 && *n->output[1])
        return node_fail(m, n, DS_ERR_ARG, "the indices output is not supported");
    spatial sp;
    if ((st = get_spatial(m, n, nd, ks->ints, x, &sp)))
        return st;
    for (int j = 0; j < nd; j++)
        if (sp.d[j] != 1)
            return node_fail(m, n, DS_ERR_ARG, "dilated pooling is not supported");
    int64_t s[DS_MAX_DIMS] = {x->shape[0], x->shape[1]};
    for (int j = 0; j < nd; j++)
        if ((s[2 + j] = conv_out(x->shape[2 + j], sp.k[j], sp.s[j], 1, sp.lo[j], sp.hi[j])) < 1)
            return node_fail(m, n, DS_ERR_SHAPE, "the window is larger than the input");
    val *y = new_layer(m, n, nd + 2, s);
    if (!y)
        return DS_ERR_NOMEM;
    char kb[48], sb[48];
    return emit(m, "%s name=%s inputs=%s size=%s stride=%s padding=%s%s\n",
                max ? "maxpool" : "avgpool", y->layer, xl, tuple(sp.k, nd, kb, sizeof kb),
                tuple(sp.s, nd, sb, sizeof sb), sp.padding,
                !max && !attr_i(n, "count_include_pad", 0) ? " exclude_pad=true" : "");
}

static ds_status op_global_pool(im *m, const Onnx__NodeProto *n, bool max)
{
    val *x;
    const char *xl;
    ds_status st = layer_input(m, n, &x, &xl);
    if (st || (st = check_nd(m, n, x, x->ndim - 2, 3)))
        return st;
    int64_t s[DS_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        s[d] = d < 2 ? x->shape[d] : 1;
    val *y = new_layer(m, n, x->ndim, s);
    if (!y)
        return DS_ERR_NOMEM;
    memcpy(y->flat, y->layer, sizeof y->flat);   /* [N, C]; [N, C, 1, ...] made on demand */
    y->layer[0] = 0;
    return emit(m, "%s name=%s inputs=%s\n", max ? "globalmaxpool" : "globalavgpool", y->flat, xl);
}

/* Gemm: Y = alpha A B' + beta C with B [units, in] (transB=1) or [in, units]. */
static ds_status op_gemm(im *m, const Onnx__NodeProto *n)
{
    val *x, *w, *b;
    const char *xl;
    ds_status st;
    if ((st = layer_input(m, n, &x, &xl)) || (st = input(m, n, 1, true, &w)) ||
        (st = input(m, n, 2, true, &b)))
        return st;
    if (attr_i(n, "transA", 0) || x->ndim != 2 || w->t->n_dims != 2)
        return node_fail(m, n, DS_ERR_ARG, "only A [N, in] times a 2-D constant B is supported");
    bool tb = attr_i(n, "transB", 0);
    int64_t units = w->t->dims[tb ? 0 : 1], in = w->t->dims[tb ? 1 : 0];
    if (in != x->shape[1])
        return node_fail(m, n, DS_ERR_SHAPE, "input '%s' has %lld features, B expects %lld",
                         x->name, (long long)x->shape[1], (long long)in);
    int64_t s[2] = {x->shape[0], units};
    val *y = new_layer(m, n, 2, s);
    if (!y || (st = emit(m, "dense name=%s inputs=%s units=%lld bias=%s\n", y->layer, xl,
                         (long long)units, b ? "true" : "false")))
        return y ? st : DS_ERR_NOMEM;
    if ((st = add_weight(m, n, y->layer, "weight", w)))
        return st;
    weight *wt = &m->w[m->n_w - 1];
    float alpha = attr_f(n, "alpha", 1), beta = attr_f(n, "beta", 1);
    if (!tb) {   /* [in, units] -> [units, in] */
        float *t = malloc((size_t)(units * in) * sizeof *t);
        if (!t)
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", m->file);
        for (int64_t i = 0; i < in; i++)
            for (int64_t u = 0; u < units; u++)
                t[u * in + i] = wt->data[i * units + u];
        free(wt->data);
        wt->data = t;
    }
    for (int64_t i = 0; i < wt->numel; i++)
        wt->data[i] *= alpha;
    if (!b)
        return DS_OK;
    if ((st = add_weight(m, n, y->layer, "bias", b)))
        return st;
    weight *bt = &m->w[m->n_w - 1];
    if (bt->numel != units)
        return node_fail(m, n, DS_ERR_SHAPE, "C has %lld values, %lld expected (one per unit)",
                         (long long)bt->numel, (long long)units);
    for (int64_t i = 0; i < bt->numel; i++)
        bt->data[i] *= beta;
    return DS_OK;
}

/* The node reading value name, if exactly one node does and the graph does not output it. */
static int sole_consumer(const im *m, const char *name)
{
    int who = -1;
    for (size_t i = 0; i < m->g->n_node; i++)
        for (size_t k = 0; k < m->g->node[i]->n_input; k++)
            if (!strcmp(m->g->node[i]->input[k], name)) {
                if (who >= 0 && who != (int)i)
                    return -1;
                who = (int)i;
            }
    return graph_output(m, name) ? -1 : who;
}

/* MatMul by a constant [in, units]: a dense layer, taking the bias of an Add that follows. */
static ds_status op_matmul(im *m, const Onnx__NodeProto *n)
{
    val *x, *w;
    const char *xl;
    ds_status st;
    if ((st = layer_input(m, n, &x, &xl)) || (st = input(m, n, 1, true, &w)))
        return st;
    if (w->t->n_dims != 2 || x->ndim < 2 || x->shape[x->ndim - 1] != w->t->dims[0])
        return node_fail(m, n, DS_ERR_SHAPE, "input '%s' does not fit the constant '%s' (a 2-D "
                         "[in, units] matrix is supported)", x->name, w->name);
    int64_t units = w->t->dims[1], in = w->t->dims[0];
    int c = sole_consumer(m, n->output[0]);
    const Onnx__NodeProto *add = c >= 0 ? m->g->node[c] : NULL;
    val *b = NULL;
    if (add && !strcmp(add->op_type, "Add") && add->n_input == 2) {
        int k = !strcmp(add->input[0], n->output[0]) ? 1 : 0;
        b = find_val(m, add->input[k]);
        if (!b || !b->is_const || tensor_numel(b->t) != units)
            b = NULL;
    }
    int64_t s[DS_MAX_DIMS];
    memcpy(s, x->shape, sizeof s);
    s[x->ndim - 1] = units;
    val *y = new_layer(m, b ? add : n, x->ndim, s);
    if (!y)
        return DS_ERR_NOMEM;
    if ((st = emit(m, "dense name=%s inputs=%s units=%lld bias=%s\n", y->layer, xl,
                   (long long)units, b ? "true" : "false")) ||
        (st = add_weight(m, n, y->layer, "weight", w)))
        return st;
    weight *wt = &m->w[m->n_w - 1];
    float *t = malloc((size_t)(units * in) * sizeof *t);
    if (!t)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", m->file);
    for (int64_t i = 0; i < in; i++)
        for (int64_t u = 0; u < units; u++)
            t[u * in + i] = wt->data[i * units + u];
    free(wt->data);
    wt->data = t;
    if (b) {
        m->absorbed[c] = true;
        y->name = add->output[0];   /* the Add's output is the dense layer's */
        if ((st = add_weight(m, add, y->layer, "bias", b)))
            return st;
    }
    return DS_OK;
}

static ds_status op_batchnorm(im *m, const Onnx__NodeProto *n)
{
    val *x, *p[4];
    const char *xl;
    ds_status st = layer_input(m, n, &x, &xl);
    for (int k = 0; !st && k < 4; k++)
        if (!(st = input(m, n, (size_t)k + 1, true, &p[k])) && !p[k])
            st = node_fail(m, n, DS_ERR_FORMAT, "input %d is missing", k + 2);
    if (st)
        return st;
    if (x->ndim < 2)
        return node_fail(m, n, DS_ERR_SHAPE, "input '%s' has no channels", x->name);
    if (attr_i(n, "training_mode", 0))
        return node_fail(m, n, DS_ERR_ARG, "training_mode=1 is not supported");
    for (int k = 0; k < 4; k++)
        if (tensor_numel(p[k]->t) != x->shape[1])
            return node_fail(m, n, DS_ERR_SHAPE, "'%s' has %lld values, %lld channels expected",
                             p[k]->name, (long long)tensor_numel(p[k]->t), (long long)x->shape[1]);
    val *y = new_layer(m, n, x->ndim, x->shape);
    if (!y)
        return DS_ERR_NOMEM;
    static const char *const suffix[] = {"weight", "bias", "running_mean", "running_var"};
    float eps = attr_f(n, "epsilon", 1e-5f);
    if (!(eps >= 1e-12f && eps <= 1))
        return node_fail(m, n, DS_ERR_ARG, "epsilon %g out of range [1e-12, 1]", (double)eps);
    st = emit(m, "batchnorm name=%s inputs=%s eps=%.9g\n", y->layer, xl, (double)eps);
    for (int k = 0; !st && k < 4; k++)
        st = add_weight(m, n, y->layer, suffix[k], p[k]);
    return st;
}

/* Activations and the other one-input layers that keep the shape. */
static ds_status op_unary(im *m, const Onnx__NodeProto *n, const char *kind, const char *opts)
{
    val *x;
    const char *xl;
    ds_status st = layer_input(m, n, &x, &xl);
    if (st)
        return st;
    val *y = new_layer(m, n, x->ndim, x->shape);
    return y ? emit(m, "%s name=%s inputs=%s%s\n", kind, y->layer, xl, opts) : DS_ERR_NOMEM;
}

static ds_status op_softmax(im *m, const Onnx__NodeProto *n, const char *kind)
{
    val *x = find_val(m, n->n_input ? n->input[0] : "");
    int64_t axis = attr_i(n, "axis", m->opset >= 13 ? -1 : 1);
    if (x && axis < 0)
        axis += x->ndim;
    if (!x || axis < 1 || axis >= x->ndim || (m->opset < 13 && x->ndim != 2))
        return x ? node_fail(m, n, DS_ERR_ARG, "axis %lld of a %d-D input is not supported",
                             (long long)attr_i(n, "axis", -1), x->ndim)
                 : input(m, n, 0, false, &x);
    char o[32];
    snprintf(o, sizeof o, " axis=%lld", (long long)axis);
    return op_unary(m, n, kind, o);
}

static ds_status op_prelu(im *m, const Onnx__NodeProto *n)
{
    val *x, *s;
    ds_status st;
    if ((st = input(m, n, 0, false, &x)) || (st = input(m, n, 1, true, &s)))
        return st;
    int64_t k = tensor_numel(s->t);
    if (k != 1 && (x->ndim < 2 || k != x->shape[1]))
        return node_fail(m, n, DS_ERR_SHAPE, "slope '%s' has %lld values: one, or one per "
                         "channel, is supported", s->name, (long long)k);
    if ((st = op_unary(m, n, "prelu", k == 1 ? " shared=true" : "")))
        return st;
    return add_weight(m, n, m->vals[m->n_vals - 1].layer, "weight", s);
}

static ds_status op_alias(im *m, const Onnx__NodeProto *n);

/* Add, Sub, Mul of two layers of one shape; Concat of several. */
static ds_status op_join(im *m, const Onnx__NodeProto *n, const char *kind)
{
    bool concat = !strcmp(kind, "concat");
    if (n->n_input < (concat ? 1u : 2u) || n->n_input > 16 || (!concat && n->n_input != 2))
        return node_fail(m, n, DS_ERR_FORMAT, "%zu inputs", n->n_input);
    char list[16 * DS_NAME_MAX + 16] = "";
    val *x0 = NULL;
    int64_t s[DS_MAX_DIMS], axis = attr_i(n, "axis", 1);
    for (size_t k = 0; k < n->n_input; k++) {
        val *x;
        const char *xl;
        ds_status st = input(m, n, k, false, &x);
        if (st || (st = layer_of(m, x, &xl)))
            return st;
        if (!x0) {
            x0 = x;
            memcpy(s, x->shape, sizeof s);
            if (concat && axis < 0)
                axis += x->ndim;
            if (concat && (axis < 1 || axis >= x->ndim))
                return node_fail(m, n, DS_ERR_ARG, "axis %lld of %d-D inputs is not supported",
                                 (long long)attr_i(n, "axis", 1), x->ndim);
        } else {
            bool same = x->ndim == x0->ndim;
            for (int d = 1; same && d < x->ndim; d++)
                same = d == axis && concat ? true : x->shape[d] == x0->shape[d];
            if (!same)
                return node_fail(m, n, DS_ERR_SHAPE, "inputs '%s' and '%s' differ in shape "
                                 "(broadcasting is not supported)", x0->name, x->name);
            if (concat)
                s[axis] += x->shape[axis];
        }
        dsi_snprintf_cat(list, sizeof list, "%s%s", k ? "," : "", xl);
    }
    if (n->n_input == 1)   /* a concat of one: the value itself */
        return op_alias(m, n);
    val *y = new_layer(m, n, x0->ndim, s);
    if (!y)
        return DS_ERR_NOMEM;
    if (concat)
        return emit(m, "concat name=%s inputs=%s axis=%lld\n", y->layer, list, (long long)axis);
    return emit(m, "%s name=%s inputs=%s\n", kind, y->layer, list);
}

/* Flatten (axis 1) and Reshape to [batch, ...]. */
static ds_status op_reshape(im *m, const Onnx__NodeProto *n, bool flatten)
{
    val *x, *sv = NULL;
    ds_status st = input(m, n, 0, false, &x);
    if (st || (!flatten && (st = input(m, n, 1, true, &sv))))
        return st;
    if (!flatten && !sv)
        return node_fail(m, n, DS_ERR_FORMAT, "input 2 (the shape) is missing");
    int64_t per = 1, t[DS_MAX_DIMS];
    for (int d = 1; d < x->ndim; d++)
        per *= x->shape[d];
    int nt = 2;
    t[0] = x->shape[0];
    t[1] = per;
    if (flatten && attr_i(n, "axis", 1) != 1)
        return node_fail(m, n, DS_ERR_ARG, "axis %lld: only axis 1 (keeping the batch) is "
                         "supported", (long long)attr_i(n, "axis", 1));
    if (!flatten) {
        if ((st = const_ints(m, n, sv, t, DS_MAX_DIMS, &nt)))
            return st;
        if (nt < 1 || !(t[0] == 0 || t[0] == -1 || (t[0] == x->shape[0] && x->shape[0] > 0)))
            return node_fail(m, n, DS_ERR_ARG, "the new shape must keep the batch first (0, -1 "
                             "or the batch size)");
        t[0] = x->shape[0];
        int64_t known = 1;
        int infer = -1;
        for (int d = 1; d < nt; d++) {
            if (t[d] == 0 && !attr_i(n, "allowzero", 0) && d < x->ndim)
                t[d] = x->shape[d];
            if (t[d] == -1 && infer < 0)
                infer = d;
            else if (t[d] < 1 || t[d] > per)
                return node_fail(m, n, DS_ERR_ARG, "the new shape has a size %lld", (long long)t[d]);
            else
                known *= t[d];
        }
        if (infer >= 0)
            t[infer] = known > 0 && per % known == 0 ? per / known : -1;
        if ((infer >= 0 && t[infer] < 1) || (infer < 0 && known != per))
            return node_fail(m, n, DS_ERR_SHAPE, "cannot reshape %lld values per sample",
                             (long long)per);
    }
    if (nt == 2 && x->flat[0] && !x->layer[0]) {   /* a global pooling's [N, C] as it is */
        val *y = add_val(m, n->output[0]);
        if (!y)
            return DS_ERR_NOMEM;
        snprintf(y->layer, sizeof y->layer, "%s", x->flat);
        y->ndim = 2;
        memcpy(y->shape, t, 2 * sizeof *t);
        return DS_OK;
    }
    const char *xl;
    if ((st = layer_of(m, x, &xl)))
        return st;
    val *y = new_layer(m, n, nt, t);
    if (!y)
        return DS_ERR_NOMEM;
    if (nt == 2)
        return emit(m, "flatten name=%s inputs=%s\n", y->layer, xl);
    char shape[96] = "";
    for (int d = 1; d < nt; d++)
        dsi_snprintf_cat(shape, sizeof shape, "%s%lld", d > 1 ? "x" : "", (long long)t[d]);
    return emit(m, "reshape name=%s inputs=%s shape=%s\n", y->layer, xl, shape);
}

/* Dropout and Identity: the input's value (dropout kept as a layer for MC dropout). */
static ds_status op_dropout(im *m, const Onnx__NodeProto *n)
{
    if (n->n_output > 1 && *n->output[1] && sole_consumer(m, n->output[1]) != -1)
        return node_fail(m, n, DS_ERR_ARG, "the mask output is not supported");
    float rate = attr_f(n, "ratio", 0.5f);
    val *r = NULL;
    ds_status st = n->n_input > 1 ? input(m, n, 1, true, &r) : DS_OK;
    if (st)
        return st;
    if (r) {
        float *f;
        int64_t k;
        if ((st = const_floats(m, n, r, &f, &k)))
            return st;
        rate = k == 1 ? f[0] : -1;
        free(f);
    }
    if (!(rate >= 0 && rate < 1))
        return node_fail(m, n, DS_ERR_ARG, "ratio must be one value in [0, 1)");
    char o[32];
    snprintf(o, sizeof o, " rate=%.9g", (double)rate);
    return op_unary(m, n, "dropout", o);
}

static ds_status op_alias(im *m, const Onnx__NodeProto *n)
{
    val *x;
    ds_status st = input(m, n, 0, false, &x);
    if (st)
        return st;
    if (graph_output(m, n->output[0]))   /* a layer of the output's name */
        return op_unary(m, n, "dropout", " rate=0");
    val copy = *x, *y = add_val(m, n->output[0]);
    if (!y)
        return DS_ERR_NOMEM;
    *y = copy;
    y->name = n->output[0];
    return DS_OK;
}

static ds_status op_constant(im *m, const Onnx__NodeProto *n)
{
    const Onnx__AttributeProto *a = attr(n, "value");
    if (!a || !a->t || n->n_attribute != 1)
        return node_fail(m, n, DS_ERR_ARG, "only a 'value' tensor is supported");
    val *v = add_val(m, n->output[0]);
    if (!v)
        return DS_ERR_NOMEM;
    v->is_const = true;
    v->t = a->t;
    return DS_OK;
}

static ds_status op_activation(im *m, const Onnx__NodeProto *n, const char *op)
{
    static const struct { const char *onnx, *kind; } acts[] = {
        {"Relu", "relu"}, {"Sigmoid", "sigmoid"}, {"Tanh", "tanh"}, {"Softplus", "softplus"},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(op, acts[i].onnx))
            return op_unary(m, n, acts[i].kind, "");
    char o[48];
    if (!strcmp(op, "LeakyRelu") || !strcmp(op, "Elu")) {
        bool leaky = op[0] == 'L';
        snprintf(o, sizeof o, " alpha=%.9g", (double)attr_f(n, "alpha", leaky ? 0.01f : 1.0f));
        return op_unary(m, n, leaky ? "leaky_relu" : "elu", o);
    }
    if (!attr_s_is(n, "approximate", "none", "none"))
        return node_fail(m, n, DS_ERR_ARG, "approximate=tanh is not supported (deepsky's gelu "
                         "layer is the exact one)");
    return op_unary(m, n, "gelu", "");
}

static const char *const supported =
    "Conv, ConvTranspose, Gemm, MatMul (by a constant, with an Add of the bias), MaxPool, "
    "AveragePool, GlobalAveragePool, GlobalMaxPool, BatchNormalization, Relu, LeakyRelu, Elu, "
    "Sigmoid, Tanh, Softplus, Gelu, PRelu, Softmax, LogSoftmax, Concat, Add, Sub, Mul, "
    "Flatten, Reshape, Dropout, Identity, Constant";

static ds_status op_node(im *m, const Onnx__NodeProto *n)
{
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
        return node_fail(m, n, DS_ERR_ARG, "domain '%s' is not supported (only the standard "
                         "ai.onnx ops)", n->domain);
    if (!n->n_output || !*n->output[0])
        return node_fail(m, n, DS_ERR_FORMAT, "no output");
    if (!strcmp(op, "Conv") || !strcmp(op, "ConvTranspose"))
        return op_conv(m, n, op[4] == 'T');
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool"))
        return op_pool(m, n, op[0] == 'M');
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool"))
        return op_global_pool(m, n, op[6] == 'M');
    if (!strcmp(op, "Gemm"))
        return op_gemm(m, n);
    if (!strcmp(op, "MatMul"))
        return op_matmul(m, n);
    if (!strcmp(op, "BatchNormalization"))
        return op_batchnorm(m, n);
    if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax"))
        return op_softmax(m, n, op[0] == 'S' ? "softmax" : "log_softmax");
    if (!strcmp(op, "PRelu"))
        return op_prelu(m, n);
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul"))
        return op_join(m, n, op[0] == 'A' ? "add" : op[0] == 'S' ? "subtract" : "multiply");
    if (!strcmp(op, "Concat"))
        return op_join(m, n, "concat");
    if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape"))
        return op_reshape(m, n, op[0] == 'F');
    if (!strcmp(op, "Dropout"))
        return op_dropout(m, n);
    if (!strcmp(op, "Identity"))
        return op_alias(m, n);
    if (!strcmp(op, "Constant"))
        return op_constant(m, n);
    if (!strcmp(op, "Relu") || !strcmp(op, "Sigmoid") || !strcmp(op, "Tanh") ||
        !strcmp(op, "Softplus") || !strcmp(op, "LeakyRelu") || !strcmp(op, "Elu") ||
        !strcmp(op, "Gelu"))
        return op_activation(m, n, op);
    return node_fail(m, n, DS_ERR_ARG, "op '%s' has no deepsky layer (supported: %s)", op,
                     supported);
}

/* ---- the graph ---- */
static ds_status read_inputs(im *m)
{
    Onnx__GraphProto *g = m->g;
    for (size_t i = 0; i < g->n_initializer; i++) {
        Onnx__TensorProto *t = g->initializer[i];
        val *v = t->name && *t->name ? add_val(m, t->name) : NULL;
        if (!v)
            return t->name && *t->name ? DS_ERR_NOMEM
                   : dsi_fail(DS_ERR_FORMAT, "%s: initializer %zu has no name", m->file, i + 1);
        v->is_const = true;
        v->t = t;
    }
    int inputs = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || find_val(m, vi->name))
            continue;   /* an initializer listed as an input (IR < 4) */
        const Onnx__TypeProto *tp = vi->type;
        const Onnx__TypeProto__Tensor *tt = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                                ? tp->tensor_type : NULL;
        const Onnx__TensorShapeProto *sh = tt ? tt->shape : NULL;
        if (!tt || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || !sh ||
            sh->n_dim < 2 || sh->n_dim > DS_MAX_DIMS)
            return dsi_fail(DS_ERR_ARG, "%s: input '%s' is not a float tensor of 2 to %d "
                            "dimensions with a known shape", m->file, vi->name, DS_MAX_DIMS);
        if (++inputs > DS_FEED_MAX)
            return dsi_fail(DS_ERR_ARG, "%s: more than %d inputs", m->file, DS_FEED_MAX);
        int64_t s[DS_MAX_DIMS];
        char shape[128] = "";
        for (size_t d = 0; d < sh->n_dim; d++) {
            const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
            bool fixed = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            s[d] = fixed ? dm->dim_value : -1;
            if (d && (!fixed || s[d] < 1 || s[d] > 1 << 24))
                return dsi_fail(DS_ERR_ARG, "%s: input '%s': dimension %zu must be a fixed size "
                                "(only the batch, the first, may vary)", m->file, vi->name, d);
            if (d)
                dsi_snprintf_cat(shape, sizeof shape, "%s%lld", d > 1 ? "x" : "", (long long)s[d]);
        }
        val *v = add_val(m, vi->name);
        if (!v)
            return DS_ERR_NOMEM;
        layer_name(m, vi->name, v->layer);
        v->ndim = (int)sh->n_dim;
        memcpy(v->shape, s, sizeof s);
        ds_status st = emit(m, "input name=%s shape=%s\n", v->layer, shape);
        if (st)
            return st;
    }
    return inputs ? DS_OK : dsi_fail(DS_ERR_ARG, "%s: the graph has no input", m->file);
}

/* The node producing value name, -1 for none. */
static int producer(const im *m, const char *name)
{
    for (size_t i = 0; i < m->g->n_node; i++)
        for (size_t k = 0; k < m->g->node[i]->n_output; k++)
            if (!strcmp(m->g->node[i]->output[k], name))
                return (int)i;
    return -1;
}

/* The nodes in an order where each comes after those it reads (Kahn's algorithm); a value
 * nothing defines or a cycle is an error naming a node. */
static ds_status topo_order(im *m, int *order)
{
    size_t N = m->g->n_node;
    int *deps = calloc(N ? N : 1, sizeof *deps);
    if (!deps)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", m->file);
    ds_status st = DS_OK;
    for (size_t i = 0; i < N && !st; i++) {
        const Onnx__NodeProto *n = m->g->node[i];
        for (size_t k = 0; k < n->n_input && !st; k++) {
            if (!*n->input[k] || find_val(m, n->input[k]))
                continue;
            if (producer(m, n->input[k]) < 0)
                st = node_fail(m, n, DS_ERR_FORMAT, "input '%s' is produced by no node, "
                               "initializer or graph input", n->input[k]);
            else
                deps[i]++;
        }
    }
    size_t done = 0;
    for (bool progress = true; !st && progress && done < N;) {
        progress = false;
        for (size_t i = 0; i < N; i++) {
            if (deps[i] != 0)
                continue;
            deps[i] = -1;
            order[done++] = (int)i;
            progress = true;
            const Onnx__NodeProto *n = m->g->node[i];
            for (size_t j = 0; j < N; j++)
                for (size_t k = 0; k < m->g->node[j]->n_input; k++)
                    for (size_t o = 0; o < n->n_output; o++)
                        if (*n->output[o] && !strcmp(m->g->node[j]->input[k], n->output[o]) &&
                            deps[j] > 0)
                            deps[j]--;
        }
    }
    for (size_t i = 0; !st && i < N; i++)
        if (deps[i] > 0)
            st = node_fail(m, m->g->node[i], DS_ERR_FORMAT, "the graph has a cycle through "
                           "this node (it depends on its own output)");
    free(deps);
    return st;
}

static ds_status read_outputs(im *m)
{
    char list[DS_FEED_MAX * DS_NAME_MAX + 16] = "";
    if (!m->g->n_output || m->g->n_output > DS_FEED_MAX)
        return dsi_fail(DS_ERR_ARG, "%s: %zu outputs (1 to %d supported)", m->file,
                        m->g->n_output, DS_FEED_MAX);
    for (size_t i = 0; i < m->g->n_output; i++) {
        const char *nm = m->g->output[i]->name ? m->g->output[i]->name : "";
        val *v = find_val(m, nm);
        const char *l;
        if (!v || v->is_const)
            return dsi_fail(DS_ERR_ARG, "%s: output '%s' is %s", m->file, nm,
                            v ? "a constant" : "computed by no node");
        ds_status st = layer_of(m, v, &l);
        if (st)
            return st;
        dsi_snprintf_cat(list, sizeof list, "%s%s", i ? "," : "", l);
    }
    return emit(m, "output %s\n", list);
}

static ds_status check_model(im *m, const Onnx__ModelProto *mp)
{
    if (!mp->graph)
        return dsi_fail(DS_ERR_FORMAT, "%s: no graph (not an ONNX model?)", m->file);
    m->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if ((!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) && o->has_version)
            m->opset = o->version;
    }
    if (m->opset < 7)
        return dsi_fail(DS_ERR_FORMAT, "%s: %s", m->file, m->opset < 0 ? "no ai.onnx opset "
                        "import (not an ONNX model?)" : "opset below 7 is not supported");
    m->g = mp->graph;
    if (m->g->n_node > 100000)
        return dsi_fail(DS_ERR_ARG, "%s: %zu nodes (at most 100000)", m->file, m->g->n_node);
    return DS_OK;
}

static ds_status translate(im *m, const Onnx__ModelProto *mp)
{
    ds_status st = check_model(m, mp);
    if (!st)
        st = emit(m, "# translated from the ONNX model %s by deepsky import\n", m->file);
    if (!st)
        st = read_inputs(m);
    if (st)
        return st;
    int *order = malloc((m->g->n_node ? m->g->n_node : 1) * sizeof *order);
    m->absorbed = calloc(m->g->n_node ? m->g->n_node : 1, sizeof *m->absorbed);
    if (!order || !m->absorbed)
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", m->file);
    if (!st)
        st = topo_order(m, order);
    for (size_t i = 0; !st && i < m->g->n_node; i++)
        if (!m->absorbed[order[i]])
            st = op_node(m, m->g->node[order[i]]);
    free(order);
    return st ? st : read_outputs(m);
}

/* The net of the text, with the weights copied into its parameters. */
static ds_status build_net(im *m, ds_net **net)
{
    char fname[600];
    snprintf(fname, sizeof fname, "%s (translated)", m->file);
    ds_status st = ds_net_parse(m->text, fname, NULL, net);
    if (st)
        return st;
    ds_model *md = ds_net_model(*net);
    for (int i = 0; i < m->n_w; i++) {
        ds_param *p = ds_model_find(md, m->w[i].name);
        if (!p || ds_param_numel(p) != m->w[i].numel)
            return dsi_fail(DS_ERR_SHAPE, "%s: weight '%s' has %lld values, the layer expects "
                            "%lld", m->file, m->w[i].name, (long long)m->w[i].numel,
                            p ? (long long)ds_param_numel(p) : 0LL);
        memcpy(ds_param_data(p), m->w[i].data, (size_t)m->w[i].numel * sizeof(float));
    }
    dsi_model_touch(md);
    return DS_OK;
}

ds_status ds_onnx_import_mem(const void *buf, size_t len, const char *name, char **text,
                             ds_net **net)
{
    if (text)
        *text = NULL;
    if (net)
        *net = NULL;
    if (!buf || !text || !net)
        return dsi_fail(DS_ERR_ARG, "ds_onnx_import_mem: NULL argument");
    im m = { .file = name ? name : DSI_MEM_NAME };
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    ds_status st = mp ? translate(&m, mp)
                      : dsi_fail(DS_ERR_FORMAT, "%s: not an ONNX model, or a truncated or "
                                 "corrupt one (the protobuf does not decode; %zu bytes)",
                                 m.file, len);
    if (!st)
        st = build_net(&m, net);
    if (st) {
        ds_net_free(*net);
        *net = NULL;
        free(m.text);
    } else {
        *text = m.text;
    }
    for (int i = 0; i < m.n_w; i++)
        free(m.w[i].data);
    free(m.w);
    free(m.vals);
    free(m.absorbed);
    if (mp)
        onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

ds_status ds_onnx_import(const char *path, char **text, ds_net **net)
{
    if (text)
        *text = NULL;
    if (net)
        *net = NULL;
    if (!path)
        return dsi_fail(DS_ERR_ARG, "ds_onnx_import: NULL path");
    unsigned char *buf;
    size_t len;
    ds_status st = dsi_read_file(path, &buf, &len);
    if (st)
        return st;
    st = ds_onnx_import_mem(buf, len, path, text, net);
    free(buf);
    return st;
}
