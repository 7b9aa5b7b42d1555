/* modelfile.c - the model description format: parses "kind key=value ..." lines and builds
 * the network (layers, DAG through inputs=, losses, optimizer) with the C API. */
#include "net.h"
#include "../io/io.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

#define MAX_OPTS 32
#define MAX_LINE 1024

typedef struct {
    char key[32];
    char val[256];
    bool used;
} opt;

typedef struct {
    const char *file;
    int line;
    char kind[48];
    char pos[64];        /* positional word: "loss mse", "optimizer adam", "activation relu" */
    opt opts[MAX_OPTS];
    int n;
} spec;

/* A named node the file can refer to with inputs=. */
typedef struct {
    char name[DS_NAME_MAX];
    ds_node *node;
    int line;
    ds_activation act;   /* activation applied at the end of the layer (for losses) */
    ds_node *pre_act;    /* the node before that activation */
} named;

#define MAX_LOSSES 8

/* An output line's layer name, resolved once the whole file is read. */
typedef struct {
    char name[DS_NAME_MAX];
    int line;
} output_ref;

typedef struct {
    ds_net *net;
    const char *file;
    const ds_net_opts *opts;
    named *names;
    int n_names, cap_names;
    ds_node *prev;
    int64_t batch;
    ds_node *losses[MAX_LOSSES];
    float weights[MAX_LOSSES];
    int loss_line[MAX_LOSSES];
    int n_losses;
    output_ref outputs[DS_FEED_MAX];   /* from output lines */
    int n_outputs;
    dsi_net_output preds[MAX_LOSSES];  /* each loss's prediction, named like the loss */
    int n_preds;
} builder;

/* ---- error helpers ---- */
static ds_status fail_at(const spec *s, ds_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ds_status fail_at(const spec *s, ds_status st, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsi_fail(st, "%s:%d: %s", s->file, s->line, msg);
}

/* ---- options ---- */
static opt *find_opt(spec *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->opts[i].key, key)) {
            s->opts[i].used = true;
            return &s->opts[i];
        }
    return NULL;
}

/* First of several synonyms (Keras and short names). */
static opt *find_any(spec *s, const char *const *keys)
{
    opt *o = NULL;
    for (int i = 0; keys[i]; i++) {
        opt *k = find_opt(s, keys[i]);
        if (k && !o)
            o = k;
    }
    return o;
}
#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

static ds_status get_int(spec *s, const char *const *keys, long lo, long hi, long dflt,
                         bool required, long *out)
{
    opt *o = find_any(s, keys);
    if (!o) {
        if (required)
            return fail_at(s, DS_ERR_ARG, "%s: option '%s' is required", s->kind, keys[0]);
        *out = dflt;
        return DS_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(o->val, &end, 10);
    if (errno || end == o->val || *end || v < lo || v > hi)
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not an integer in [%ld, %ld]",
                       s->kind, o->key, o->val, lo, hi);
    *out = v;
    return DS_OK;
}

static ds_status get_float(spec *s, const char *const *keys, double lo, double hi, double dflt,
                           double *out)
{
    opt *o = find_any(s, keys);
    if (!o) {
        *out = dflt;
        return DS_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(o->val, &end);
    if (errno || end == o->val || *end || !(v >= lo && v <= hi))
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not a number in [%g, %g]",
                       s->kind, o->key, o->val, lo, hi);
    *out = v;
    return DS_OK;
}

static ds_status get_bool(spec *s, const char *const *keys, bool dflt, bool *out)
{
    opt *o = find_any(s, keys);
    if (!o) {
        *out = dflt;
        return DS_OK;
    }
    const char *v = o->val;
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "on"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0") || !strcmp(v, "off"))
        *out = false;
    else
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not true or false", s->kind,
                       o->key, v);
    return DS_OK;
}

/* "3", "3x3", "3,3" or "(3,3)" -> up to max positive ints. */
static ds_status parse_tuple(const spec *s, const opt *o, int max, long lo, int64_t *vals, int *n)
{
    const char *p = o->val;
    *n = 0;
    if (*p == '(' || *p == '[')
        p++;
    while (*p && *p != ')' && *p != ']') {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < lo || v > (1L << 30) || *n == max)
            goto bad;
        vals[(*n)++] = v;
        p = end;
        if (*p == 'x' || *p == ',' || *p == 'X')
            p++;
        else if (*p && *p != ')' && *p != ']')
            goto bad;
    }
    if (*n == 0)
        goto bad;
    return DS_OK;
bad:
    return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not a list of at most %d integers "
                   ">= %ld such as 3 or 3x3", s->kind, o->key, o->val, max, lo);
}

/* Per-spatial-axis ints for an nd layer: one value repeats, or exactly nd values. */
static ds_status get_axes(spec *s, const char *const *keys, int nd, long lo, int dflt,
                          bool required, int *out)
{
    opt *o = find_any(s, keys);
    for (int i = 0; i < 3; i++)
        out[i] = 0;
    if (!o) {
        if (required)
            return fail_at(s, DS_ERR_ARG, "%s: option '%s' is required", s->kind, keys[0]);
        for (int i = 0; i < nd; i++)
            out[i] = dflt;
        return DS_OK;
    }
    int64_t v[3];
    int n;
    ds_status st = parse_tuple(s, o, 3, lo, v, &n);
    if (st != DS_OK)
        return st;
    if (n != 1 && n != nd)
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': %d values for a %dD layer (give 1 or %d)",
                       s->kind, o->key, n, nd, nd);
    for (int i = 0; i < nd; i++)
        out[i] = (int)(n == 1 ? v[0] : v[i]);
    return DS_OK;
}

/* padding=valid|same|N|NxM -> mode and explicit pads */
static ds_status get_padding(spec *s, int nd, ds_padding *mode, int *pad)
{
    opt *o = find_any(s, KEYS("padding", "pad"));
    for (int i = 0; i < 3; i++)
        pad[i] = 0;
    *mode = DS_PAD_VALID;
    if (!o)
        return DS_OK;
    if (!strcmp(o->val, "valid"))
        return DS_OK;
    if (!strcmp(o->val, "same")) {
        *mode = DS_PAD_SAME;
        return DS_OK;
    }
    int64_t v[3];
    int n;
    if (!isdigit((unsigned char)o->val[0]) && o->val[0] != '(')
        return fail_at(s, DS_ERR_ARG, "%s: option 'padding': '%s' is not valid, same or a "
                       "number of pixels", s->kind, o->val);
    ds_status st = parse_tuple(s, o, 3, 0, v, &n);
    if (st != DS_OK)
        return st;
    if (n != 1 && n != nd)
        return fail_at(s, DS_ERR_ARG, "%s: option 'padding': %d values for a %dD layer", s->kind,
                       n, nd);
    *mode = DS_PAD_EXPLICIT;
    for (int i = 0; i < nd; i++)
        pad[i] = (int)(n == 1 ? v[0] : v[i]);
    return DS_OK;
}

static const struct { const char *name; ds_activation act; } act_names[] = {
    {"linear", DS_ACT_NONE}, {"none", DS_ACT_NONE}, {"relu", DS_ACT_RELU},
    {"sigmoid", DS_ACT_SIGMOID}, {"tanh", DS_ACT_TANH}, {"softplus", DS_ACT_SOFTPLUS},
    {"leaky_relu", DS_ACT_LEAKY_RELU}, {"leakyrelu", DS_ACT_LEAKY_RELU}, {"elu", DS_ACT_ELU},
    {"softmax", DS_ACT_SOFTMAX}, {"log_softmax", DS_ACT_LOG_SOFTMAX}, {"prelu", DS_ACT_PRELU},
    {"gelu", DS_ACT_GELU}, {"silu", DS_ACT_SILU},
};

static ds_status get_activation(spec *s, ds_activation *out)
{
    opt *o = find_opt(s, "activation");
    *out = DS_ACT_NONE;
    if (!o)
        return DS_OK;
    for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
        if (!strcmp(o->val, act_names[i].name)) {
            *out = act_names[i].act;
            return DS_OK;
        }
    return fail_at(s, DS_ERR_ARG, "%s: option 'activation': unknown activation '%s' (expected "
                   "relu, sigmoid, tanh, softplus, leaky_relu, elu, gelu, silu, prelu, softmax, "
                   "log_softmax or linear)", s->kind, o->val);
}

static ds_status get_init(spec *s, const char *const *keys, ds_init *out)
{
    opt *o = find_any(s, keys);
    out->kind = DS_INIT_DEFAULT;
    out->a = out->b = 0;
    if (!o)
        return DS_OK;
    for (int k = 0; k < DS_INIT_COUNT; k++)
        if (!strcmp(o->val, ds_init_name((ds_init_kind)k))) {
            out->kind = (ds_init_kind)k;
            /* Keras' defaults for the parametrized ones */
            if (k == DS_INIT_NORMAL || k == DS_INIT_TRUNC_NORMAL)
                out->b = 0.05f;
            if (k == DS_INIT_UNIFORM) {
                out->a = -0.05f;
                out->b = 0.05f;
            }
            return DS_OK;
        }
    char *end;
    double v = strtod(o->val, &end);
    if (end != o->val && !*end && isfinite(v)) {
        out->kind = DS_INIT_CONSTANT;
        out->a = (float)v;
        return DS_OK;
    }
    return fail_at(s, DS_ERR_ARG, "%s: option '%s': unknown initializer '%s' (expected zeros, "
                   "ones, a number, uniform, normal, truncated_normal, glorot_uniform, "
                   "glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal or "
                   "torch_default)", s->kind, o->key, o->val);
}

/* ---- names and inputs ---- */
static named *lookup(builder *b, const char *name)
{
    for (int i = b->n_names - 1; i >= 0; i--)
        if (!strcmp(b->names[i].name, name))
            return &b->names[i];
    return NULL;
}

static ds_status add_name(builder *b, const spec *s, const char *name, ds_node *node,
                          ds_activation act, ds_node *pre)
{
    named *old = lookup(b, name);
    if (old)
        return fail_at(s, DS_ERR_ARG, "layer name '%s' is already used at line %d", name,
                       old->line);
    if (b->n_names == b->cap_names) {
        int cap = b->cap_names ? 2 * b->cap_names : 32;
        named *nn = realloc(b->names, (size_t)cap * sizeof *nn);
        if (!nn)
            return fail_at(s, DS_ERR_NOMEM, "out of memory for the name of layer '%s'", name);
        b->names = nn;
        b->cap_names = cap;
    }
    named *e = &b->names[b->n_names++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->node = node;
    e->line = s->line;
    e->act = act;
    e->pre_act = pre;
    return DS_OK;
}

/* The layer's inputs: inputs=a,b (or input=a), else the previous layer. */
static ds_status get_inputs(builder *b, spec *s, int min, int max, ds_node **in, int *n)
{
    opt *o = find_any(s, KEYS("inputs", "input", "from"));
    *n = 0;
    if (!o) {
        if (!b->prev)
            return fail_at(s, DS_ERR_ARG, "%s: no input: the file must start with an 'input' "
                           "line", s->kind);
        in[(*n)++] = b->prev;
    } else {
        char buf[256], *save = NULL;
        snprintf(buf, sizeof buf, "%s", o->val);
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            named *e = lookup(b, tok);
            if (!e)
                return fail_at(s, DS_ERR_ARG, "%s: option '%s': no layer named '%s' before this "
                               "line", s->kind, o->key, tok);
            if (*n == max)
                return fail_at(s, DS_ERR_ARG, "%s: option '%s': at most %d inputs", s->kind,
                               o->key, max);
            in[(*n)++] = e->node;
        }
    }
    if (*n < min)
        return fail_at(s, DS_ERR_ARG, "%s: needs at least %d inputs (inputs=a,b)", s->kind, min);
    return DS_OK;
}

/* ---- layer builders ---- */
typedef ds_status (*build_fn)(builder *b, spec *s, const char *name, ds_node **in, int n_in,
                              ds_node **out);

typedef struct {
    const char *kind;       /* keyword in the file */
    const char *type;       /* Keras class name for the summary */
    const char *auto_name;  /* prefix of automatic names */
    build_fn fn;
    int min_in, max_in;
    const char *keys;       /* allowed options besides name and inputs */
    int nd;                 /* spatial dims fixed by the keyword (0: from the input) */
    int arg;                /* builder-specific (pool kind, activation, ...) */
    bool has_params;        /* the builder names its own parameters */
} layer_def;

static const layer_def *find_layer(const char *kind);

static int spatial_nd(const layer_def *d, const ds_node *x)
{
    return d->nd ? d->nd : ds_node_ndim(x) - 2;
}

static ds_status check_nd(const spec *s, const ds_node *x, int nd)
{
    if (nd < 1 || nd > 3 || ds_node_ndim(x) != nd + 2)
        return fail_at(s, DS_ERR_SHAPE, "%s: input '%s' has shape %s; expected [batch, channels, "
                       "%s]", s->kind, ds_node_layer_name(x),
                       dsi_shape_str(ds_node_ndim(x), ds_node_shape(x)),
                       nd == 1 ? "length" : nd == 2 ? "height, width" : nd == 3 ? "depth, height, width"
                                                                       : "spatial axes (1 to 3)");
    return DS_OK;
}

static ds_status b_dense(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)b;
    (void)n_in;
    long units;
    bool bias;
    ds_dense_opts o = {.name = name};
    ds_status st;
    if ((st = get_int(s, KEYS("units"), 1, 1L << 24, 0, true, &units)) ||
        (st = get_bool(s, KEYS("bias", "use_bias"), true, &bias)) ||
        (st = get_activation(s, &o.activation)) ||
        (st = get_init(s, KEYS("init", "kernel_initializer"), &o.weight_init)) ||
        (st = get_init(s, KEYS("bias_init", "bias_initializer"), &o.bias_init)))
        return st;
    o.units = units;
    o.no_bias = !bias;
    *out = ds_dense(b->net->g, in[0], &o);
    return DS_OK;
}

static ds_status b_conv(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)n_in;
    const layer_def *d = find_layer(s->kind);
    int nd = d->nd;
    ds_status st = check_nd(s, in[0], nd);
    if (st)
        return st;
    long filters;
    bool bias;
    ds_conv_opts o = {.name = name};
    if ((st = get_int(s, KEYS("filters"), 1, 1L << 20, 0, true, &filters)) ||
        (st = get_axes(s, KEYS("kernel", "kernel_size"), nd, 1, 0, true, o.kernel)) ||
        (st = get_axes(s, KEYS("stride", "strides"), nd, 1, 1, false, o.stride)) ||
        (st = get_axes(s, KEYS("dilation", "dilation_rate"), nd, 1, 1, false, o.dilation)) ||
        (st = get_padding(s, nd, &o.padding, o.pad)) ||
        (st = get_bool(s, KEYS("bias", "use_bias"), true, &bias)) ||
        (st = get_activation(s, &o.activation)) ||
        (st = get_init(s, KEYS("init", "kernel_initializer"), &o.weight_init)) ||
        (st = get_init(s, KEYS("bias_init", "bias_initializer"), &o.bias_init)))
        return st;
    o.filters = filters;
    o.no_bias = !bias;
    if (d->arg) {   /* transposed */
        if ((st = get_axes(s, KEYS("output_padding"), nd, 0, 0, false, o.output_padding)))
            return st;
        *out = ds_conv_transpose2d(b->net->g, in[0], &o);
    } else {
        *out = ds_conv(b->net->g, in[0], nd, &o);
    }
    return DS_OK;
}

static ds_status b_upsample(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)name;
    (void)n_in;
    long size;
    ds_status st = check_nd(s, in[0], 2);
    if (st || (st = get_int(s, KEYS("size", "scale"), 1, 64, 2, false, &size)))
        return st;
    ds_upsample_mode mode = DS_UPSAMPLE_NEAREST;
    opt *o = find_any(s, KEYS("mode", "interpolation"));
    if (o && !strcmp(o->val, "bilinear"))
        mode = DS_UPSAMPLE_BILINEAR;
    else if (o && strcmp(o->val, "nearest"))
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not nearest or bilinear",
                       s->kind, o->key, o->val);
    *out = ds_upsample2d(b->net->g, in[0], (int)size, mode);
    return DS_OK;
}

static ds_status b_pool(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)name;
    (void)n_in;
    const layer_def *d = find_layer(s->kind);
    int nd = spatial_nd(d, in[0]);
    ds_status st = check_nd(s, in[0], nd);
    if (st)
        return st;
    ds_pool_opts o = {0};
    bool excl;
    if ((st = get_axes(s, KEYS("size", "pool_size", "kernel"), nd, 1, 2, false, o.size)) ||
        (st = get_axes(s, KEYS("stride", "strides"), nd, 1, 0, false, o.stride)) ||
        (st = get_padding(s, nd, &o.padding, o.pad)) ||
        (st = get_bool(s, KEYS("exclude_pad"), false, &excl)))
        return st;
    o.exclude_pad = excl;
    if (!find_any(s, KEYS("stride", "strides")))
        for (int i = 0; i < nd; i++)
            o.stride[i] = o.size[i];
    *out = ds_pool(b->net->g, in[0], nd, (ds_pool_kind)d->arg, &o);
    return DS_OK;
}

static ds_status b_global_pool(builder *b, spec *s, const char *name, ds_node **in, int n_in,
                               ds_node **out)
{
    (void)name;
    (void)n_in;
    const layer_def *d = find_layer(s->kind);
    if (ds_node_ndim(in[0]) < 3)
        return check_nd(s, in[0], 0);
    *out = ds_global_pool(b->net->g, in[0], (ds_pool_kind)d->arg);
    return DS_OK;
}

static ds_status b_flatten(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)s;
    (void)name;
    (void)n_in;
    *out = ds_flatten(b->net->g, in[0]);
    return DS_OK;
}

static ds_status b_reshape(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)name;
    (void)n_in;
    opt *o = find_opt(s, "shape");
    if (!o)
        return fail_at(s, DS_ERR_ARG, "%s: option 'shape' is required (per sample, e.g. 1x28x28)",
                       s->kind);
    int64_t v[DS_MAX_DIMS];
    int n;
    ds_status st = parse_tuple(s, o, DS_MAX_DIMS - 1, 1, v, &n);
    if (st)
        return st;
    int64_t shape[DS_MAX_DIMS];
    shape[0] = -1;
    for (int i = 0; i < n; i++)
        shape[i + 1] = v[i];
    *out = ds_reshape(b->net->g, in[0], n + 1, shape);
    return DS_OK;
}

static ds_status b_merge(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)name;
    const layer_def *d = find_layer(s->kind);
    ds_graph *g = b->net->g;
    if (d->arg == 0) {   /* concat */
        long axis;
        ds_status st = get_int(s, KEYS("axis"), -6, 5, 1, false, &axis);
        if (st)
            return st;
        *out = ds_concat(g, n_in, in, (int)axis);
        return DS_OK;
    }
    ds_node *y = in[0];
    for (int i = 1; i < n_in; i++)
        y = d->arg == 1 ? ds_add(g, y, in[i]) : d->arg == 2 ? ds_sub(g, y, in[i])
                                                             : ds_mul(g, y, in[i]);
    *out = y;
    return DS_OK;
}

static ds_status b_dropout(builder *b, spec *s, const char *name, ds_node **in, int n_in, ds_node **out)
{
    (void)name;
    (void)n_in;
    double rate;
    ds_status st = get_float(s, KEYS("rate", "p"), 0, 0.999999, 0.5, &rate);
    if (st)
        return st;
    *out = ds_dropout(b->net->g, in[0], (float)rate);
    return DS_OK;
}

static ds_status b_batchnorm(builder *b, spec *s, const char *name, ds_node **in, int n_in,
                             ds_node **out)
{
    (void)n_in;
    double mom, eps;
    bool affine;
    ds_status st;
    if ((st = get_float(s, KEYS("momentum"), 1e-6, 1, 0.1, &mom)) ||
        (st = get_float(s, KEYS("eps", "epsilon"), 1e-12, 1, 1e-5, &eps)) ||
        (st = get_bool(s, KEYS("affine"), true, &affine)))
        return st;
    ds_batchnorm_opts o = {.name = name, .momentum = (float)mom, .eps = (float)eps,
                           .no_affine = !affine};
    *out = ds_batchnorm(b->net->g, in[0], &o);
    return DS_OK;
}

/* Activation layers: "relu", "softmax axis=1", "activation relu" / "activation fn=relu". */
static ds_status b_activation(builder *b, spec *s, const char *name, ds_node **in, int n_in,
                              ds_node **out)
{
    (void)n_in;
    const layer_def *d = find_layer(s->kind);
    ds_activation act = (ds_activation)d->arg;
    ds_graph *g = b->net->g;
    if (!strcmp(s->kind, "activation")) {
        opt *o = find_any(s, KEYS("fn", "activation"));
        const char *v = o ? o->val : s->pos;
        if (!*v)
            return fail_at(s, DS_ERR_ARG, "activation: which one? e.g. 'activation relu'");
        bool found = false;
        for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
            if (!strcmp(v, act_names[i].name)) {
                act = act_names[i].act;
                found = true;
            }
        if (!found)
            return fail_at(s, DS_ERR_ARG, "activation: unknown activation '%s'", v);
        s->pos[0] = 0;
    }
    double alpha;
    long axis;
    bool shared;
    ds_status st;
    switch (act) {
    case DS_ACT_LEAKY_RELU:
        if ((st = get_float(s, KEYS("alpha", "slope", "negative_slope"), -1e6, 1e6, 0.01, &alpha)))
            return st;
        *out = ds_leaky_relu(g, in[0], (float)alpha);
        return DS_OK;
    case DS_ACT_ELU:
        if ((st = get_float(s, KEYS("alpha"), 0, 1e6, 1.0, &alpha)))
            return st;
        *out = ds_elu(g, in[0], (float)alpha);
        return DS_OK;
    case DS_ACT_SOFTMAX:
    case DS_ACT_LOG_SOFTMAX:
        if ((st = get_int(s, KEYS("axis"), -6, 5, 1, false, &axis)))
            return st;
        *out = act == DS_ACT_SOFTMAX ? ds_softmax(g, in[0], (int)axis)
                                     : ds_log_softmax(g, in[0], (int)axis);
        return DS_OK;
    case DS_ACT_PRELU:
        if ((st = get_bool(s, KEYS("shared"), false, &shared)))
            return st;
        *out = ds_prelu(g, in[0], name, shared);
        return DS_OK;
    default:
        *out = ds_activate(g, in[0], act, name);
        return DS_OK;
    }
}

#define K_DENSE "units activation bias use_bias init kernel_initializer bias_init bias_initializer"
#define K_CONV  "filters kernel kernel_size stride strides dilation dilation_rate padding pad " \
                "activation bias use_bias init kernel_initializer bias_init bias_initializer"
#define K_POOL  "size pool_size kernel stride strides padding pad exclude_pad"

static const layer_def layer_defs[] = {
    {"dense", "Dense", "dense", b_dense, 1, 1, K_DENSE, 0, 0, true},
    {"conv1d", "Conv1D", "conv1d", b_conv, 1, 1, K_CONV, 1, 0, true},
    {"conv2d", "Conv2D", "conv2d", b_conv, 1, 1, K_CONV, 2, 0, true},
    {"conv3d", "Conv3D", "conv3d", b_conv, 1, 1, K_CONV, 3, 0, true},
    {"conv2d_transpose", "Conv2DTranspose", "conv2d_transpose", b_conv, 1, 1,
     K_CONV " output_padding", 2, 1, true},
    {"upsample2d", "UpSampling2D", "up_sampling2d", b_upsample, 1, 1, "size scale mode interpolation", 2, 0, false},
    {"upsampling2d", "UpSampling2D", "up_sampling2d", b_upsample, 1, 1, "size scale mode interpolation", 2, 0, false},
    {"maxpool", "MaxPooling", "max_pooling", b_pool, 1, 1, K_POOL, 0, DS_POOL_MAX, false},
    {"maxpool1d", "MaxPooling1D", "max_pooling1d", b_pool, 1, 1, K_POOL, 1, DS_POOL_MAX, false},
    {"maxpool2d", "MaxPooling2D", "max_pooling2d", b_pool, 1, 1, K_POOL, 2, DS_POOL_MAX, false},
    {"maxpool3d", "MaxPooling3D", "max_pooling3d", b_pool, 1, 1, K_POOL, 3, DS_POOL_MAX, false},
    {"avgpool", "AveragePooling", "average_pooling", b_pool, 1, 1, K_POOL, 0, DS_POOL_AVG, false},
    {"avgpool1d", "AveragePooling1D", "average_pooling1d", b_pool, 1, 1, K_POOL, 1, DS_POOL_AVG, false},
    {"avgpool2d", "AveragePooling2D", "average_pooling2d", b_pool, 1, 1, K_POOL, 2, DS_POOL_AVG, false},
    {"avgpool3d", "AveragePooling3D", "average_pooling3d", b_pool, 1, 1, K_POOL, 3, DS_POOL_AVG, false},
    {"sumpool", "SumPooling", "sum_pooling", b_pool, 1, 1, K_POOL, 0, DS_POOL_SUM, false},
    {"l2pool", "L2Pooling", "l2_pooling", b_pool, 1, 1, K_POOL, 0, DS_POOL_L2, false},
    {"globalavgpool", "GlobalAveragePooling", "global_average_pooling", b_global_pool, 1, 1, "", 0, DS_POOL_AVG, false},
    {"globalmaxpool", "GlobalMaxPooling", "global_max_pooling", b_global_pool, 1, 1, "", 0, DS_POOL_MAX, false},
    {"flatten", "Flatten", "flatten", b_flatten, 1, 1, "", 0, 0, false},
    {"reshape", "Reshape", "reshape", b_reshape, 1, 1, "shape", 0, 0, false},
    {"concat", "Concatenate", "concatenate", b_merge, 2, 16, "axis", 0, 0, false},
    {"add", "Add", "add", b_merge, 2, 16, "", 0, 1, false},
    {"subtract", "Subtract", "subtract", b_merge, 2, 2, "", 0, 2, false},
    {"multiply", "Multiply", "multiply", b_merge, 2, 16, "", 0, 3, false},
    {"dropout", "Dropout", "dropout", b_dropout, 1, 1, "rate p", 0, 0, false},
    {"batchnorm", "BatchNormalization", "batch_normalization", b_batchnorm, 1, 1,
     "momentum eps epsilon affine", 0, 0, true},
    {"activation", "Activation", "activation", b_activation, 1, 1,
     "fn activation alpha slope negative_slope axis shared", 0, DS_ACT_NONE, false},
    {"relu", "ReLU", "re_lu", b_activation, 1, 1, "", 0, DS_ACT_RELU, false},
    {"sigmoid", "Activation", "sigmoid", b_activation, 1, 1, "", 0, DS_ACT_SIGMOID, false},
    {"tanh", "Activation", "tanh", b_activation, 1, 1, "", 0, DS_ACT_TANH, false},
    {"softplus", "Activation", "softplus", b_activation, 1, 1, "", 0, DS_ACT_SOFTPLUS, false},
    {"leaky_relu", "LeakyReLU", "leaky_re_lu", b_activation, 1, 1, "alpha slope negative_slope", 0, DS_ACT_LEAKY_RELU, false},
    {"elu", "ELU", "elu", b_activation, 1, 1, "alpha", 0, DS_ACT_ELU, false},
    {"gelu", "Activation", "gelu", b_activation, 1, 1, "", 0, DS_ACT_GELU, false},
    {"silu", "Activation", "silu", b_activation, 1, 1, "", 0, DS_ACT_SILU, false},
    {"prelu", "PReLU", "p_re_lu", b_activation, 1, 1, "shared", 0, DS_ACT_PRELU, true},
    {"softmax", "Softmax", "softmax", b_activation, 1, 1, "axis", 0, DS_ACT_SOFTMAX, false},
    {"log_softmax", "LogSoftmax", "log_softmax", b_activation, 1, 1, "axis", 0, DS_ACT_LOG_SOFTMAX, false},
};

/* Keras spellings accepted as synonyms. */
static const struct { const char *alias, *kind; } aliases[] = {
    {"linear", "dense"}, {"convolution1d", "conv1d"}, {"convolution2d", "conv2d"},
    {"convolution3d", "conv3d"}, {"conv2dtranspose", "conv2d_transpose"},
    {"conv_transpose2d", "conv2d_transpose"}, {"deconv2d", "conv2d_transpose"},
    {"up_sampling2d", "upsampling2d"}, {"upsample", "upsample2d"},
    {"maxpooling1d", "maxpool1d"}, {"maxpooling2d", "maxpool2d"}, {"maxpooling3d", "maxpool3d"},
    {"max_pooling1d", "maxpool1d"}, {"max_pooling2d", "maxpool2d"}, {"max_pooling3d", "maxpool3d"},
    {"averagepooling1d", "avgpool1d"}, {"averagepooling2d", "avgpool2d"},
    {"averagepooling3d", "avgpool3d"}, {"average_pooling1d", "avgpool1d"},
    {"average_pooling2d", "avgpool2d"}, {"average_pooling3d", "avgpool3d"},
    {"globalaveragepooling", "globalavgpool"}, {"global_average_pooling", "globalavgpool"},
    {"globalaveragepooling1d", "globalavgpool"}, {"globalaveragepooling2d", "globalavgpool"},
    {"globalaveragepooling3d", "globalavgpool"}, {"global_average_pooling1d", "globalavgpool"},
    {"global_average_pooling2d", "globalavgpool"}, {"global_average_pooling3d", "globalavgpool"},
    {"globalmaxpooling1d", "globalmaxpool"}, {"globalmaxpooling2d", "globalmaxpool"},
    {"globalmaxpooling3d", "globalmaxpool"}, {"global_max_pooling1d", "globalmaxpool"},
    {"global_max_pooling2d", "globalmaxpool"}, {"global_max_pooling3d", "globalmaxpool"},
    {"concatenate", "concat"}, {"sub", "subtract"}, {"mul", "multiply"},
    {"batch_normalization", "batchnorm"}, {"batchnormalization", "batchnorm"},
    {"batchnorm1d", "batchnorm"}, {"batchnorm2d", "batchnorm"}, {"batchnorm3d", "batchnorm"},
    {"leakyrelu", "leaky_relu"}, {"logsoftmax", "log_softmax"},
};

static const layer_def *find_layer(const char *kind)
{
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcmp(kind, aliases[i].alias))
            kind = aliases[i].kind;
    for (size_t i = 0; i < sizeof layer_defs / sizeof layer_defs[0]; i++)
        if (!strcmp(kind, layer_defs[i].kind))
            return &layer_defs[i];
    return NULL;
}

/* Options not in the space-separated list keys (besides name and inputs) are errors that
 * list the allowed ones. Checked before building, so a misspelt option is reported as such
 * rather than as a missing one. */
static ds_status check_known(const spec *s, const char *keys, const char *allowed)
{
    for (int i = 0; i < s->n; i++) {
        const char *k = s->opts[i].key;
        if (!strcmp(k, "name") || !strcmp(k, "inputs") || !strcmp(k, "input") || !strcmp(k, "from"))
            continue;
        size_t n = strlen(k);
        const char *p = keys;
        bool found = false;
        while ((p = strstr(p, k))) {
            if ((p == keys || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) {
                found = true;
                break;
            }
            p += n;
        }
        if (!found)
            return fail_at(s, DS_ERR_ARG, "%s: unknown option '%s' (options: name, inputs%s%s)",
                           s->kind, k, *allowed ? ", " : "", allowed);
    }
    return DS_OK;
}

/* Unknown options are errors that list the allowed ones. */
static ds_status check_unused(const spec *s, const char *allowed)
{
    for (int i = 0; i < s->n; i++)
        if (!s->opts[i].used)
            return fail_at(s, DS_ERR_ARG, "%s: unknown option '%s' (options: name, inputs%s%s)",
                           s->kind, s->opts[i].key, *allowed ? ", " : "", allowed);
    return DS_OK;
}

static void list_allowed(const char *keys, char *buf, size_t cap)
{
    buf[0] = 0;
    char tmp[512], *save = NULL;
    snprintf(tmp, sizeof tmp, "%s", keys);
    for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save))
        dsi_snprintf_cat(buf, cap, "%s%s", buf[0] ? ", " : "", t);
}

/* The node before a final activation of the layer: losses take logits from it. */
static ds_node *pre_activation(ds_node *y, ds_activation *act)
{
    *act = DS_ACT_NONE;
    if (!y || y->n_in < 1)
        return NULL;
    if (y->op == DS_OP_SOFTMAX)
        *act = DS_ACT_SOFTMAX;
    else if (y->op == DS_OP_SIGMOID)
        *act = DS_ACT_SIGMOID;
    else
        return NULL;
    return y->in[0];
}

static ds_status build_layer(builder *b, spec *s)
{
    const layer_def *d = find_layer(s->kind);
    if (!d)
        return fail_at(s, DS_ERR_ARG, "unknown layer '%s' (see the README's model file reference "
                       "for the layers: dense, conv1d, conv2d, conv3d, conv2d_transpose, "
                       "upsample2d, maxpool, avgpool, sumpool, l2pool, globalavgpool, "
                       "globalmaxpool, flatten, reshape, concat, add, subtract, multiply, "
                       "dropout, batchnorm, activation, relu, sigmoid, tanh, softplus, "
                       "leaky_relu, elu, gelu, silu, prelu, softmax, log_softmax)", s->kind);
    ds_graph *g = b->net->g;
    char allowed[768];
    list_allowed(d->keys, allowed, sizeof allowed);
    ds_status st = check_known(s, d->keys, allowed);
    if (st)
        return st;
    opt *nm = find_opt(s, "name");
    ds_node *in[16];
    int n_in;
    if ((st = get_inputs(b, s, d->min_in, d->max_in, in, &n_in)))
        return st;
    char name[DS_NAME_MAX];
    if (nm) {
        if (!*nm->val || strlen(nm->val) >= DS_NAME_MAX - 24 || strchr(nm->val, '.') ||
            strchr(nm->val, ','))
            return fail_at(s, DS_ERR_ARG, "%s: option 'name': '%s' must be 1 to %d characters "
                           "without '.' or ','", s->kind, nm->val, DS_NAME_MAX - 25);
        snprintf(name, sizeof name, "%.*s", DS_NAME_MAX - 1, nm->val);
        if (lookup(b, name))
            return fail_at(s, DS_ERR_ARG, "layer name '%s' is already used at line %d", name,
                           lookup(b, name)->line);
    } else {
        char auto_type[48];
        snprintf(auto_type, sizeof auto_type, "%s", d->auto_name);
        if (!d->nd && (d->fn == b_pool || d->fn == b_global_pool))
            snprintf(auto_type, sizeof auto_type, "%s%dd", d->auto_name,
                     ds_node_ndim(in[0]) - 2 > 0 ? ds_node_ndim(in[0]) - 2 : 1);
        do
            if ((st = dsi_model_auto_name(b->net->m, auto_type, name, sizeof name)))
                return fail_at(s, st, "%s", ds_last_error());
        while (lookup(b, name));
    }
    /* Layers that name their own parameters get the name; the others are wrapped in a
     * scope of that name, which their own scopes join. */
    char type[40];
    snprintf(type, sizeof type, "%s", d->type);
    if (!d->nd && (d->fn == b_pool || d->fn == b_global_pool))
        snprintf(type, sizeof type, "%s%dD", d->type, ds_node_ndim(in[0]) - 2);
    char scoped[DS_NAME_MAX];
    bool wrap = !d->has_params;
    if (wrap && !dsi_layer_begin(g, type, type, name, scoped))
        return fail_at(s, g->status ? g->status : DS_ERR_ARG, "%s", ds_last_error());
    ds_node *y = NULL;
    st = d->fn(b, s, name, in, n_in, &y);
    if (wrap)
        dsi_layer_end(g, y);
    if (st)
        return st;
    if (!y)
        return fail_at(s, g->status ? g->status : DS_ERR_SHAPE, "%s", ds_last_error());
    if ((st = check_unused(s, allowed)))
        return st;
    if (s->pos[0])
        return fail_at(s, DS_ERR_ARG, "%s: unexpected word '%s' (options are key=value)", s->kind,
                       s->pos);
    ds_activation act;
    ds_node *pre = pre_activation(y, &act);
    b->prev = y;
    return add_name(b, s, name, y, act, pre);
}

static ds_status build_input(builder *b, spec *s)
{
    opt *nm = find_opt(s, "name");
    opt *sh = find_opt(s, "shape");
    if (!sh)
        return fail_at(s, DS_ERR_ARG, "input: option 'shape' is required, per sample without the "
                       "batch (e.g. shape=1x64x64)");
    int64_t v[DS_MAX_DIMS];
    int n;
    ds_status st = parse_tuple(s, sh, DS_MAX_DIMS - 1, 1, v, &n);
    if (st)
        return st;
    if ((st = check_unused(s, "shape")))
        return st;
    if (b->net->n_inputs == DS_FEED_MAX)
        return fail_at(s, DS_ERR_ARG, "input: at most %d input lines", DS_FEED_MAX);
    char name[DS_NAME_MAX];
    if (nm && (!*nm->val || strlen(nm->val) >= DS_NAME_MAX - 24 || strchr(nm->val, '.') ||
               strchr(nm->val, '=') || strchr(nm->val, ',')))
        return fail_at(s, DS_ERR_ARG, "input: option 'name': '%s' must be 1 to %d characters "
                       "without '.', ',' or '='", nm->val, DS_NAME_MAX - 25);
    if (nm)
        snprintf(name, sizeof name, "%.*s", DS_NAME_MAX - 1, nm->val);
    else if ((st = dsi_model_auto_name(b->net->m, "input", name, sizeof name)))
        return fail_at(s, st, "%s", ds_last_error());
    if (lookup(b, name))
        return fail_at(s, DS_ERR_ARG, "layer name '%s' is already used at line %d", name,
                       lookup(b, name)->line);
    int64_t shape[DS_MAX_DIMS];
    shape[0] = b->batch;
    for (int i = 0; i < n; i++)
        shape[i + 1] = v[i];
    ds_node *x = ds_input(b->net->g, name, n + 1, shape);
    if (!x)
        return fail_at(s, ds_graph_status(b->net->g), "%s", ds_last_error());
    dsi_net_input *in = &b->net->inputs[b->net->n_inputs++];
    *in = (dsi_net_input){.node = x};
    snprintf(in->name, sizeof in->name, "%s", name);
    b->prev = x;
    return add_name(b, s, name, x, DS_ACT_NONE, NULL);
}

/* ---- losses: one row per keyword in loss_defs ---- */
typedef enum {
    LAB_NONE,      /* reads no labels */
    LAB_PRED,      /* targets of the prediction's shape */
    LAB_CLASSES,   /* class indices, or one-hot rows of the prediction's shape */
    LAB_MEAN,      /* targets of the mean= layer's shape */
} label_kind;

/* A loss line as its builder sees it. */
typedef struct {
    named *self;          /* the predicted layer (output=, else the layer before), or NULL */
    ds_node *y;           /* its node */
    ds_reduction red;
    char name[DS_NAME_MAX];   /* the loss's name: the key of its labels */
    dsi_net_target *t;    /* the target, for losses that read labels */
    ds_node *pred;        /* the prediction predict returns for this loss, or NULL */
} loss_line;

typedef struct loss_def loss_def;
typedef ds_status (*loss_fn)(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out);

struct loss_def {
    const char *kind;       /* keyword */
    const char *synonyms;   /* other keywords, space-separated */
    loss_fn fn;
    dsi_loss_kind loss;
    label_kind labels;
    const char *keys;       /* options besides output, name, weight and reduction */
    int arg;                /* builder-specific: mae, sparse */
};

/* The labels input of the loss line l, as the next target. The first is named "labels"
 * (as with one labelled loss), the others "labels_<loss>". */
static ds_node *target_input(builder *b, spec *s, loss_line *l, int ndim, const int64_t *shape)
{
    ds_net *net = b->net;
    char name[DS_NAME_MAX + 8];
    if (net->n_targets)
        snprintf(name, sizeof name, "labels_%s", l->name);
    else
        snprintf(name, sizeof name, "labels");
    ds_node *t = ds_input(net->g, name, ndim, shape);
    if (!t) {
        fail_at(s, ds_graph_status(net->g), "%s", ds_last_error());
        return NULL;
    }
    l->t = &net->targets[net->n_targets++];
    *l->t = (dsi_net_target){.target = t, .pred = l->y};
    snprintf(l->t->name, sizeof l->t->name, "%s", l->name);
    return t;
}

static ds_status get_named(builder *b, spec *s, const char *const *keys, bool required,
                           named **out)
{
    opt *o = find_any(s, keys);
    *out = NULL;
    if (!o) {
        if (!required)
            return DS_OK;
        return fail_at(s, DS_ERR_ARG, "loss %s: option '%s' is required (a layer name)", s->pos,
                       keys[0]);
    }
    *out = lookup(b, o->val);
    if (!*out)
        return fail_at(s, DS_ERR_ARG, "loss %s: option '%s': no layer named '%s'", s->pos, o->key,
                       o->val);
    return DS_OK;
}

static ds_label_mode label_mode(const builder *b, const char *loss)
{
    for (int i = 0; i < DS_FEED_MAX && b->opts->label_choices[i].loss; i++)
        if (!strcmp(b->opts->label_choices[i].loss, loss))
            return b->opts->label_choices[i].mode;
    return b->opts->labels;
}

/* mse, mae: targets of the prediction's shape. */
static ds_status l_pointwise(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    ds_node *t = target_input(b, s, l, ds_node_ndim(l->y), ds_node_shape(l->y));
    if (!t)
        return dsi_last_status();
    ds_graph *g = b->net->g;
    *out = d->arg ? ds_loss_mae(g, l->y, t, l->red) : ds_loss_mse(g, l->y, t, l->red);
    l->pred = l->y;
    return DS_OK;
}

/* binary cross-entropy: after a sigmoid layer the logits before it are used (stable). */
static ds_status l_bce(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    (void)d;
    bool logits;
    ds_status st = get_bool(s, KEYS("from_logits"), false, &logits);
    if (st)
        return st;
    ds_node *t = target_input(b, s, l, ds_node_ndim(l->y), ds_node_shape(l->y));
    if (!t)
        return dsi_last_status();
    ds_graph *g = b->net->g;
    bool after_sigmoid = l->self && l->self->act == DS_ACT_SIGMOID && l->self->pre_act;
    if (after_sigmoid)
        *out = ds_loss_bce_logits(g, l->self->pre_act, t, l->red);
    else
        *out = logits ? ds_loss_bce_logits(g, l->y, t, l->red) : ds_loss_bce(g, l->y, t, l->red);
    l->t->output_logits = logits && !(l->self && l->self->act == DS_ACT_SIGMOID);
    l->t->classes = 2;
    l->pred = l->y;
    return DS_OK;
}

/* categorical cross-entropy on logits: class indices (sparse) or one-hot rows. */
static ds_status l_cce(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    bool logits;
    ds_status st = get_bool(s, KEYS("from_logits"), false, &logits);
    if (st)
        return st;
    ds_node *y = l->y, *logit;
    if (l->self && l->self->act == DS_ACT_SOFTMAX && l->self->pre_act)
        logit = l->self->pre_act;
    else if (logits)
        logit = y;
    else
        return fail_at(s, DS_ERR_ARG, "loss %s expects class probabilities: end the network "
                       "with activation=softmax (the loss then uses the logits before it, "
                       "stably) or set from_logits=true", s->pos);
    int nd = ds_node_ndim(y);
    const int64_t *shape = ds_node_shape(y);
    if (nd < 2)
        return fail_at(s, DS_ERR_SHAPE, "loss %s: output '%s' has shape %s, expected [batch, "
                       "classes, ...]", s->pos, ds_node_layer_name(y), dsi_shape_str(nd, shape));
    bool sparse = d->arg || label_mode(b, l->name) == DS_LABELS_INDEX;
    int64_t ts[DS_MAX_DIMS];
    ts[0] = shape[0];
    for (int i = 2; i < nd; i++)
        ts[i - 1] = shape[i];
    ds_node *t = sparse ? target_input(b, s, l, nd - 1, ts) : target_input(b, s, l, nd, shape);
    if (!t)
        return dsi_last_status();
    ds_graph *g = b->net->g;
    *out = sparse ? ds_loss_cce_logits_int(g, logit, t, l->red)
                  : ds_loss_cce_logits(g, logit, t, l->red);
    l->t->labels = sparse ? DS_LABELS_INDEX : DS_LABELS_DENSE;
    l->t->output_logits = logit == y;   /* as Keras: the last layer's values (logits if
                                         * from_logits) */
    l->t->classes = shape[1];
    l->pred = y;
    return DS_OK;
}

/* gaussian_nll, kl_gaussian: a mean and a log-variance layer. */
static ds_status l_gaussian(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    named *mu, *lv;
    ds_status st;
    if ((st = get_named(b, s, KEYS("mean"), true, &mu)) ||
        (st = get_named(b, s, KEYS("logvar"), true, &lv)))
        return st;
    ds_graph *g = b->net->g;
    if (d->labels == LAB_NONE) {
        *out = ds_loss_kl_gaussian(g, mu->node, lv->node, NULL, NULL, l->red);
        return DS_OK;
    }
    ds_node *t = target_input(b, s, l, ds_node_ndim(mu->node), ds_node_shape(mu->node));
    if (!t)
        return dsi_last_status();
    *out = ds_loss_gaussian_nll(g, mu->node, lv->node, t, l->red);
    /* predict writes mean and log-variance side by side */
    l->pred = l->t->pred = ds_concat(g, 2, (ds_node *[]){mu->node, lv->node}, 1);
    return DS_OK;
}

static const loss_def loss_defs[] = {
    {.kind = "mse", .synonyms = "mean_squared_error", .fn = l_pointwise, .loss = DSI_LOSS_MSE,
     .labels = LAB_PRED, .keys = ""},
    {.kind = "mae", .synonyms = "mean_absolute_error", .fn = l_pointwise, .loss = DSI_LOSS_MAE,
     .labels = LAB_PRED, .keys = "", .arg = 1},
    {.kind = "binary_crossentropy", .synonyms = "bce", .fn = l_bce, .loss = DSI_LOSS_BCE,
     .labels = LAB_PRED, .keys = "from_logits"},
    {.kind = "categorical_crossentropy", .synonyms = "cce", .fn = l_cce, .loss = DSI_LOSS_CCE,
     .labels = LAB_CLASSES, .keys = "from_logits"},
    {.kind = "sparse_categorical_crossentropy", .synonyms = "", .fn = l_cce,
     .loss = DSI_LOSS_CCE, .labels = LAB_CLASSES, .keys = "from_logits", .arg = 1},
    {.kind = "gaussian_nll", .synonyms = "", .fn = l_gaussian, .loss = DSI_LOSS_GAUSS_NLL,
     .labels = LAB_MEAN, .keys = "mean logvar"},
    {.kind = "kl_gaussian", .synonyms = "kl", .fn = l_gaussian, .loss = DSI_LOSS_KL,
     .labels = LAB_NONE, .keys = "mean logvar"},
};
#define N_LOSS_DEFS (int)(sizeof loss_defs / sizeof loss_defs[0])

/* Whether word is one of the space-separated words of list. */
static bool in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

static const loss_def *find_loss(const char *kind)
{
    for (int i = 0; i < N_LOSS_DEFS; i++)
        if (!strcmp(kind, loss_defs[i].kind) || (*kind && in_list(loss_defs[i].synonyms, kind)))
            return &loss_defs[i];
    return NULL;
}

static ds_status unknown_loss(const spec *s)
{
    char list[512] = "";
    for (int i = 0; i < N_LOSS_DEFS; i++)
        dsi_snprintf_cat(list, sizeof list, "%s%s",
                         i == 0 ? "" : i + 1 < N_LOSS_DEFS ? ", " : " or ", loss_defs[i].kind);
    return fail_at(s, DS_ERR_ARG, "unknown loss '%s' (expected %s)", s->pos, list);
}

/* Options the loss line does not know are errors that list the ones it does. */
static ds_status check_loss_options(const spec *s, const loss_def *d)
{
    for (int i = 0; i < s->n; i++)
        if (!s->opts[i].used)
            return fail_at(s, DS_ERR_ARG, "loss %s: unknown option '%s' (options: output, name, "
                           "weight, reduction%s%s)", s->pos, s->opts[i].key, *d->keys ? ", " : "",
                           *d->keys ? d->keys : "");
    return DS_OK;
}

/* The loss line's prediction, reduction and name (name=, else the mean= layer's name for
 * losses with labels of the mean's shape, else the predicted layer's). */
static ds_status loss_line_init(builder *b, spec *s, const loss_def *d, loss_line *l)
{
    ds_status st = get_named(b, s, KEYS("output", "on"), false, &l->self);
    if (st)
        return st;
    l->y = l->self ? l->self->node : b->prev;
    if (!l->y)
        return fail_at(s, DS_ERR_ARG, "loss: no layer before this line");
    for (int i = b->n_names - 1; i >= 0 && !l->self; i--)
        if (b->names[i].node == l->y)
            l->self = &b->names[i];
    opt *ro = find_opt(s, "reduction");
    l->red = DS_REDUCE_MEAN;
    if (ro && !strcmp(ro->val, "sum"))
        l->red = DS_REDUCE_SUM;
    else if (ro && strcmp(ro->val, "mean"))
        return fail_at(s, DS_ERR_ARG, "loss: option 'reduction': '%s' is not mean or sum", ro->val);
    opt *nm = find_opt(s, "name");
    named *mean = NULL;
    if (!nm && d->labels == LAB_MEAN && (st = get_named(b, s, KEYS("mean"), true, &mean)))
        return st;
    const char *name = nm ? nm->val : mean ? mean->name : l->self ? l->self->name : "loss";
    if (!*name || strlen(name) >= DS_NAME_MAX - 24 || strchr(name, '.') || strchr(name, '=') ||
        strchr(name, ','))
        return fail_at(s, DS_ERR_ARG, "loss %s: option 'name': '%s' must be 1 to %d characters "
                       "without '.', ',' or '='", s->pos, name, DS_NAME_MAX - 25);
    snprintf(l->name, sizeof l->name, "%.*s", DS_NAME_MAX - 1, name);
    for (int i = 0; d->labels != LAB_NONE && i < b->net->n_targets; i++)
        if (!strcmp(b->net->targets[i].name, l->name))
            return fail_at(s, DS_ERR_ARG, "loss %s: another loss that reads labels is named '%s' "
                           "(each needs its own name: name=...)", s->pos, l->name);
    return DS_OK;
}

static ds_status build_loss(builder *b, spec *s)
{
    ds_net *net = b->net;
    if (!s->pos[0])
        return fail_at(s, DS_ERR_ARG, "loss: which loss? e.g. 'loss mse'");
    const loss_def *d = find_loss(s->pos);
    if (!d)
        return unknown_loss(s);
    if (b->n_losses == MAX_LOSSES)
        return fail_at(s, DS_ERR_ARG, "loss: at most %d loss lines", MAX_LOSSES);
    loss_line l = {0};
    double weight;
    ds_status st;
    if ((st = loss_line_init(b, s, d, &l)) ||
        (st = get_float(s, KEYS("weight"), 0, 1e12, 1.0, &weight)))
        return st;
    ds_node *out = NULL;
    if ((st = d->fn(b, s, d, &l, &out)) || (st = check_loss_options(s, d)))
        return st;
    if (!out || (d->labels != LAB_NONE && !l.pred))
        return fail_at(s, net->g->status ? net->g->status : DS_ERR_SHAPE, "loss %s: %s", s->pos,
                       ds_last_error());
    if (l.t)
        l.t->kind = d->loss;
    if (l.pred) {
        dsi_net_output *p = &b->preds[b->n_preds++];
        p->node = l.pred;
        snprintf(p->name, sizeof p->name, "%s", l.name);
    }
    net->reductions |= 1 << l.red;
    b->losses[b->n_losses] = out;
    b->weights[b->n_losses] = (float)weight;
    b->loss_line[b->n_losses] = s->line;
    b->n_losses++;
    return DS_OK;
}

/* "output LAYER[,LAYER...]": the net's outputs, resolved when the file has been read. */
static ds_status build_output(builder *b, spec *s)
{
    if (!s->pos[0] || s->n)
        return fail_at(s, DS_ERR_ARG, "output: name the layers, e.g. 'output e' or "
                       "'output e,logvar'");
    char buf[sizeof s->pos], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s->pos);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (b->n_outputs == DS_FEED_MAX)
            return fail_at(s, DS_ERR_ARG, "output: at most %d outputs", DS_FEED_MAX);
        for (int i = 0; i < b->n_outputs; i++)
            if (!strcmp(b->outputs[i].name, t))
                return fail_at(s, DS_ERR_ARG, "output: '%s' is already an output (line %d)", t,
                               b->outputs[i].line);
        output_ref *r = &b->outputs[b->n_outputs++];
        snprintf(r->name, sizeof r->name, "%s", t);
        r->line = s->line;
    }
    return DS_OK;
}

/* ---- optimizer ---- */
static ds_status build_optimizer(builder *b, spec *s)
{
    ds_optim_opts *o = &b->net->optim;
    memset(o, 0, sizeof *o);
    static const char *const kinds[] = {"sgd", "adagrad", "rmsprop", "adam", "adamw"};
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(s->pos, kinds[i]))
            k = i;
    if (k < 0)
        return fail_at(s, DS_ERR_ARG, "unknown optimizer '%s' (expected sgd, adagrad, rmsprop, "
                       "adam or adamw)", s->pos[0] ? s->pos : "(none)");
    o->kind = (ds_optim_kind)k;
    double v;
    bool flag;
    long n;
    ds_status st;
#define F(keys, lo, hi, field)                                   \
    if ((st = get_float(s, keys, lo, hi, NAN, &v)))              \
        return st;                                               \
    if (!isnan(v))                                               \
        o->field = (float)v;
    F(KEYS("lr", "learning_rate"), 1e-12, 1e3, lr)
    F(KEYS("momentum"), 0, 0.999999, momentum)
    F(KEYS("weight_decay", "decay_l2"), 0, 10, weight_decay)
    F(KEYS("beta1", "beta_1"), 0, 0.999999, beta1)
    F(KEYS("beta2", "beta_2"), 0, 0.999999999, beta2)
    F(KEYS("eps", "epsilon"), 1e-20, 1, eps)
    F(KEYS("alpha", "rho"), 0, 0.999999, alpha)
    F(KEYS("clipnorm", "clip_norm"), 0, 1e12, clip_norm)
    F(KEYS("gamma"), 0, 1, schedule.gamma)
    F(KEYS("decay"), 0, 1e6, schedule.decay)
    F(KEYS("min_lr"), 0, 1e3, schedule.min_lr)
#undef F
    if ((st = get_bool(s, KEYS("nesterov"), false, &flag)))
        return st;
    o->nesterov = flag;
    if ((st = get_bool(s, KEYS("amsgrad"), false, &flag)))
        return st;
    o->amsgrad = flag;
    if ((st = get_bool(s, KEYS("per_epoch"), false, &flag)))
        return st;
    o->schedule.per_epoch = flag;
    if ((st = get_int(s, KEYS("step_size"), 1, 1L << 40, 0, false, &n)))
        return st;
    o->schedule.step_size = n;
    if ((st = get_int(s, KEYS("t_max"), 1, 1L << 40, 0, false, &n)))
        return st;
    o->schedule.t_max = n;
    opt *so = find_opt(s, "schedule");
    if (so) {
        static const char *const sn[] = {"constant", "step", "exponential", "inverse_time", "cosine"};
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(so->val, sn[i]))
                found = i;
        if (!strcmp(so->val, "exp"))
            found = 2;
        if (found < 0)
            return fail_at(s, DS_ERR_ARG, "optimizer: option 'schedule': '%s' is not constant, "
                           "step, exponential, inverse_time or cosine", so->val);
        o->schedule.kind = (ds_schedule_kind)found;
    }
    return check_unused(s, "lr, momentum, nesterov, weight_decay, beta1, beta2, eps, alpha, "
                        "amsgrad, clipnorm, schedule, step_size, gamma, decay, t_max, min_lr, "
                        "per_epoch");
}

/* ---- tokenizer ---- */
static ds_status tokenize(const char *file, int line, char *text, spec *s)
{
    memset(s, 0, sizeof *s);
    s->file = file;
    s->line = line;
    char *save = NULL;
    bool first = true;
    for (char *tok = strtok_r(text, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
        if (first) {
            if (strlen(tok) >= sizeof s->kind)
                return fail_at(s, DS_ERR_ARG, "unknown layer '%.40s...'", tok);
            for (char *c = tok; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            snprintf(s->kind, sizeof s->kind, "%s", tok);
            first = false;
            continue;
        }
        char *eq = strchr(tok, '=');
        if (!eq) {
            if (s->pos[0])
                return fail_at(s, DS_ERR_ARG, "%s: unexpected word '%s' (options are key=value)",
                               s->kind, tok);
            if (strlen(tok) >= sizeof s->pos)
                return fail_at(s, DS_ERR_ARG, "%s: word '%.40s...' is too long", s->kind, tok);
            snprintf(s->pos, sizeof s->pos, "%s", tok);
            continue;
        }
        *eq = 0;
        if (!*tok || !eq[1])
            return fail_at(s, DS_ERR_ARG, "%s: option '%s=%s' needs a key and a value (no spaces "
                           "around '=')", s->kind, tok, eq + 1);
        if (s->n == MAX_OPTS)
            return fail_at(s, DS_ERR_ARG, "%s: too many options", s->kind);
        if (strlen(tok) >= sizeof s->opts[0].key || strlen(eq + 1) >= sizeof s->opts[0].val)
            return fail_at(s, DS_ERR_ARG, "%s: option '%.32s' is too long", s->kind, tok);
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->opts[i].key, tok))
                return fail_at(s, DS_ERR_ARG, "%s: option '%s' is given twice", s->kind, tok);
        snprintf(s->opts[s->n].key, sizeof s->opts[0].key, "%s", tok);
        snprintf(s->opts[s->n].val, sizeof s->opts[0].val, "%s", eq + 1);
        s->n++;
    }
    return DS_OK;
}

/* ---- public ---- */
void ds_net_free(ds_net *n)
{
    if (!n)
        return;
    ds_graph_free(n->g);
    ds_model_free(n->m);
    for (int i = 0; i < n->n_inputs; i++) {
        ds_tensor_free(n->inputs[i].mean);
        ds_tensor_free(n->inputs[i].std);
    }
    free(n);
}

/* One non-empty line, by its keyword. */
static ds_status build_line(builder *b, spec *s, bool *have_optim, bool *have_loss)
{
    if (!strcmp(s->kind, "loss")) {
        *have_loss = true;
        return build_loss(b, s);
    }
    if (!strcmp(s->kind, "output"))
        return build_output(b, s);
    if (!strcmp(s->kind, "optimizer")) {
        if (*have_optim)
            return fail_at(s, DS_ERR_ARG, "optimizer: given twice");
        *have_optim = true;
        return build_optimizer(b, s);
    }
    if (*have_loss)
        return fail_at(s, DS_ERR_ARG, "%s: layers must come before the loss lines", s->kind);
    return !strcmp(s->kind, "input") ? build_input(b, s) : build_layer(b, s);
}

/* Reads the text line by line; *lines is the number of the last line. */
static ds_status build_lines(builder *b, const char *text, int *lines)
{
    bool have_optim = false, have_loss = false;
    const char *p = text;
    int line = 0;
    ds_status st = DS_OK;
    while (*p && !st) {
        line++;
        size_t len = strcspn(p, "\n");
        spec s;
        if (len >= MAX_LINE) {
            s.file = b->file;
            s.line = line;
            st = fail_at(&s, DS_ERR_ARG, "line longer than %d characters", MAX_LINE - 1);
            break;
        }
        char buf[MAX_LINE];
        memcpy(buf, p, len);
        buf[len] = 0;
        p += len + (p[len] == '\n');
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = 0;
        if (!(st = tokenize(b->file, line, buf, &s)) && s.kind[0])
            st = build_line(b, &s, &have_optim, &have_loss);
    }
    *lines = line;
    return st;
}

/* The outputs: the layers (or losses) output lines name; else each loss's prediction
 * (once per node); else the last layer. predict and the metrics read them after the
 * passes, so their values are kept. */
static ds_status resolve_outputs(builder *b)
{
    ds_net *net = b->net;
    for (int i = 0; i < b->n_outputs; i++) {
        const output_ref *r = &b->outputs[i];
        named *e = lookup(b, r->name);
        ds_node *node = e ? e->node : NULL;
        for (int k = 0; k < b->n_preds && !node; k++)
            if (!strcmp(b->preds[k].name, r->name))
                node = b->preds[k].node;
        if (!node) {
            spec s = {.file = b->file, .line = r->line};
            return fail_at(&s, DS_ERR_ARG, "output: no layer or loss named '%s'", r->name);
        }
        dsi_net_output *o = &net->outputs[net->n_outputs++];
        o->node = node;
        snprintf(o->name, sizeof o->name, "%s", r->name);
    }
    for (int k = 0; k < b->n_preds && !b->n_outputs; k++) {
        bool dup = false;
        for (int i = 0; i < net->n_outputs; i++)
            dup |= net->outputs[i].node == b->preds[k].node;
        if (!dup)
            net->outputs[net->n_outputs++] = b->preds[k];
    }
    if (!net->n_outputs) {   /* the last line added the last name */
        net->outputs[0].node = b->prev;
        snprintf(net->outputs[0].name, DS_NAME_MAX, "%s", b->names[b->n_names - 1].name);
        net->n_outputs = 1;
    }
    for (int i = 0; i < net->n_outputs; i++)
        ds_node_keep(net->outputs[i].node, 1);
    for (int i = 0; i < net->n_targets; i++)
        ds_node_keep(net->targets[i].pred, 1);
    return DS_OK;
}

/* The total loss: the loss lines' sum with their weights. */
static ds_status total_loss(builder *b)
{
    ds_net *net = b->net;
    ds_node *total = NULL;
    for (int i = 0; i < b->n_losses; i++) {
        ds_node *l = b->losses[i];
        if (b->weights[i] != 1.0f)
            l = ds_mul_scalar(net->g, l, b->weights[i]);
        total = total ? ds_add(net->g, total, l) : l;
    }
    net->loss = total;
    if (b->n_losses && !total)
        return dsi_fail(ds_graph_status(net->g) ? ds_graph_status(net->g) : DS_ERR_SHAPE, "%s: combining the losses: %s", b->file, ds_last_error());
    return DS_OK;
}

ds_status ds_net_parse(const char *text, const char *filename, const ds_net_opts *o, ds_net **out)
{
    *out = NULL;
    ds_net_opts def = {0};
    const char *file = filename ? filename : "(model)";
    ds_net *net = calloc(1, sizeof *net);
    if (!net)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for a network", file);
    snprintf(net->path, sizeof net->path, "%s", file);
    net->m = ds_model_create(o ? o->seed : 0);
    net->g = net->m ? ds_graph_create(net->m, o ? o->seed : 0) : NULL;
    builder b = {.net = net, .file = file, .opts = o ? o : &def};
    b.batch = b.opts->batch > 0 ? b.opts->batch : 32;
    net->optim.kind = DS_OPT_ADAM;
    int lines = 0;
    ds_status st = net->g ? build_lines(&b, text, &lines) : DS_ERR_NOMEM;
    if (!st && !net->n_inputs) {
        spec s = {.file = file, .line = lines};
        st = fail_at(&s, DS_ERR_ARG, "no 'input' line: the model needs one, e.g. 'input "
                     "shape=1x28x28'");
    }
    if (!st && !(st = resolve_outputs(&b)))
        st = total_loss(&b);
    free(b.names);
    if (st != DS_OK) {
        ds_net_free(net);
        return st;
    }
    *out = net;
    return DS_OK;
}

ds_status ds_net_load(const char *path, const ds_net_opts *o, ds_net **out)
{
    unsigned char *text;
    size_t size;
    *out = NULL;
    ds_status st = dsi_read_file(path, &text, &size);
    if (st)
        return st;
    if (memchr(text, 0, size)) {
        free(text);
        return dsi_fail(DS_ERR_FORMAT, "%s: not a text file (NUL byte)", path);
    }
    st = ds_net_parse((const char *)text, path, o, out);
    free(text);
    return st;
}

ds_graph *ds_net_graph(const ds_net *n) { return n->g; }
ds_model *ds_net_model(const ds_net *n) { return n->m; }
ds_node *ds_net_input(const ds_net *n) { return n->inputs[0].node; }
ds_node *ds_net_output(const ds_net *n) { return n->outputs[0].node; }
ds_node *ds_net_target(const ds_net *n) { return n->n_targets ? n->targets[0].target : NULL; }
ds_node *ds_net_loss(const ds_net *n) { return n->loss; }
int ds_net_input_count(const ds_net *n) { return n->n_inputs; }
int ds_net_output_count(const ds_net *n) { return n->n_outputs; }
int ds_net_target_count(const ds_net *n) { return n->n_targets; }
#define IN_RANGE(i, count) ((i) >= 0 && (i) < (count))
ds_node *ds_net_input_at(const ds_net *n, int i)
{
    return IN_RANGE(i, n->n_inputs) ? n->inputs[i].node : NULL;
}
const char *ds_net_input_name(const ds_net *n, int i)
{
    return IN_RANGE(i, n->n_inputs) ? n->inputs[i].name : NULL;
}
ds_node *ds_net_output_at(const ds_net *n, int i)
{
    return IN_RANGE(i, n->n_outputs) ? n->outputs[i].node : NULL;
}
const char *ds_net_output_name(const ds_net *n, int i)
{
    return IN_RANGE(i, n->n_outputs) ? n->outputs[i].name : NULL;
}
ds_node *ds_net_target_at(const ds_net *n, int i)
{
    return IN_RANGE(i, n->n_targets) ? n->targets[i].target : NULL;
}
const char *ds_net_target_name(const ds_net *n, int i)
{
    return IN_RANGE(i, n->n_targets) ? n->targets[i].name : NULL;
}
const ds_optim_opts *ds_net_optim_opts(const ds_net *n) { return &n->optim; }
ds_optim_opts *ds_net_optim_opts_mut(ds_net *n) { return &n->optim; }
int ds_net_is_classifier(const ds_net *n)
{
    return n->n_targets &&
           (n->targets[0].kind == DSI_LOSS_BCE || n->targets[0].kind == DSI_LOSS_CCE);
}
int64_t ds_net_classes(const ds_net *n)
{
    return ds_net_is_classifier(n) ? n->targets[0].classes : 0;
}
