/* modelfile.c - the model description format: parses "kind key=value ..." lines and builds
 * the network (layers, DAG through inputs=, losses, optimizer) with the C API. */
#include "net.h"
#include "../io/io.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
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
#define MAX_KW_ROWS 64   /* rows of a keyword table (checked where each table is defined) */

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
    dsi_name_index by_name;   /* names by name */
    ds_node *prev;
    int64_t batch;
    ds_node *losses[MAX_LOSSES];
    char loss_names[MAX_LOSSES][DS_NAME_MAX];   /* name=, else the loss's keyword */
    float weights[MAX_LOSSES];
    int loss_line[MAX_LOSSES];
    int n_losses;
    output_ref outputs[DS_FEED_MAX];   /* from output lines */
    int n_outputs;
    dsi_net_output preds[MAX_LOSSES];  /* each loss's prediction, named like the loss */
    int n_preds;
    bool used[DSI_KW_TABLES][MAX_KW_ROWS];   /* the keyword rows the file used (for the hook) */
    dsi_line_fn line_fn;      /* dsi_net_parse_lines: each layer and optimizer line, or NULL */
    void *line_ctx;
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

/* ---- option values: the words each option accepts, indexed by the value they stand for ---- */
#define N_WORDS(words) ((int)(sizeof(words) / sizeof(words)[0]))
static const char *const true_words[] = {"true", "yes", "1", "on"};
static const char *const false_words[] = {"false", "no", "0", "off"};
static const char *const pad_words[] = {[DS_PAD_VALID] = "valid", [DS_PAD_SAME] = "same"};
static const char *const upsample_words[] = {
    [DS_UPSAMPLE_NEAREST] = "nearest", [DS_UPSAMPLE_BILINEAR] = "bilinear",
};
static const char *const reduction_words[] = {[DS_REDUCE_MEAN] = "mean", [DS_REDUCE_SUM] = "sum"};
static const char *const schedule_words[] = {
    [DS_SCHED_CONSTANT] = "constant", [DS_SCHED_STEP] = "step", [DS_SCHED_EXP] = "exponential",
    [DS_SCHED_INV_TIME] = "inverse_time", [DS_SCHED_COSINE] = "cosine",
};
static const char *const schedule_exp_alias = "exp";   /* Keras' name of DS_SCHED_EXP */

/* The index of word in words[0..n-1] (NULL entries are holes), or -1. */
static int word_index(const char *const *words, int n, const char *word)
{
    for (int i = 0; i < n; i++)
        if (words[i] && !strcmp(words[i], word))
            return i;
    return -1;
}

/* Appends word to the comma-separated list in buf: "a, b, c". */
static void list_add(char *buf, size_t cap, const char *word)
{
    dsi_snprintf_cat(buf, cap, "%s%s", *buf ? ", " : "", word);
}

/* The list's last ", " becomes " or ": "a, b or c". Returns buf. */
static const char *list_or(char *buf, size_t cap)
{
    char *last = NULL;
    for (char *p = strstr(buf, ", "); p; p = strstr(p + 1, ", "))
        last = p;
    size_t len = strlen(buf);
    if (last && len + 2 < cap) {
        memmove(last + 4, last + 2, len - (size_t)(last + 2 - buf) + 1);
        memcpy(last, " or ", 4);
    }
    return buf;
}

/* "a, b or c" from words[0..n-1]. */
static const char *words_list(const char *const *words, int n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++)
        if (words[i])
            list_add(buf, cap, words[i]);
    return list_or(buf, cap);
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
    int t = word_index(true_words, N_WORDS(true_words), o->val);
    int f = word_index(false_words, N_WORDS(false_words), o->val);
    if (t < 0 && f < 0)
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not true or false", s->kind,
                       o->key, o->val);
    *out = t >= 0;
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
    int w = word_index(pad_words, N_WORDS(pad_words), o->val);
    if (w >= 0) {
        *mode = (ds_padding)w;
        return DS_OK;
    }
    int64_t v[3];
    int n;
    char list[64];
    if (!isdigit((unsigned char)o->val[0]) && o->val[0] != '(')
        return fail_at(s, DS_ERR_ARG, "%s: option 'padding': '%s' is not %s, or a number of "
                       "pixels", s->kind, o->val,
                       words_list(pad_words, N_WORDS(pad_words), list, sizeof list));
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

/* ---- activations: the library's list (ds_activation_name over DS_ACT_*) and these other
 * spellings, for activation= and the activation layers alike. A new activation needs no
 * change here. ---- */
static const struct {
    const char *spelling;
    ds_activation act;
} act_aliases[] = {
    {.spelling = "none", .act = DS_ACT_NONE},
    {.spelling = "leakyrelu", .act = DS_ACT_LEAKY_RELU},
    {.spelling = "logsoftmax", .act = DS_ACT_LOG_SOFTMAX},
};

static bool find_activation(const char *word, ds_activation *out)
{
    for (int a = 0; a < DS_ACT_COUNT; a++)
        if (!strcmp(word, ds_activation_name((ds_activation)a))) {
            *out = (ds_activation)a;
            return true;
        }
    for (int i = 0; i < N_WORDS(act_aliases); i++)
        if (!strcmp(word, act_aliases[i].spelling)) {
            *out = act_aliases[i].act;
            return true;
        }
    return false;
}

/* "linear, relu, ... or silu" (first: the name of DS_ACT_NONE). */
static const char *activation_list(char *buf, size_t cap)
{
    buf[0] = 0;
    for (int a = 0; a < DS_ACT_COUNT; a++)
        list_add(buf, cap, ds_activation_name((ds_activation)a));
    return list_or(buf, cap);
}

static ds_status get_activation(spec *s, ds_activation *out)
{
    opt *o = find_opt(s, "activation");
    *out = DS_ACT_NONE;
    if (!o || find_activation(o->val, out))
        return DS_OK;
    char list[256];
    return fail_at(s, DS_ERR_ARG, "%s: option 'activation': unknown activation '%s' (expected "
                   "%s)", s->kind, o->val, activation_list(list, sizeof list));
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
    char list[320] = "";
    for (int k = 0; k < DS_INIT_COUNT; k++)
        list_add(list, sizeof list, ds_init_name((ds_init_kind)k));
    return fail_at(s, DS_ERR_ARG, "%s: option '%s': unknown initializer '%s' (expected a number "
                   "or %s)", s->kind, o->key, o->val, list_or(list, sizeof list));
}

/* ---- names and inputs ---- */
static const char *name_at(const void *b, int i)
{
    return ((const builder *)b)->names[i].name;
}

static named *lookup(builder *b, const char *name)
{
    int i = dsi_index_find(&b->by_name, name, name_at, b);
    return i < 0 ? NULL : &b->names[i];
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
    named *e = &b->names[b->n_names];
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!dsi_index_add(&b->by_name, b->n_names, name_at, b))
        return dsi_fail(DS_ERR_NOMEM, "out of memory");
    b->n_names++;
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
typedef struct layer_def layer_def;

/* What a builder gets: its table row, the layer's name and its inputs. */
typedef struct {
    const layer_def *def;
    const char *name;
    ds_node **in;
    int n_in;
} layer_args;

typedef ds_status (*build_fn)(builder *b, spec *s, const layer_args *a, ds_node **out);

typedef enum { MERGE_CONCAT, MERGE_ADD, MERGE_SUB, MERGE_MUL } merge_op;

/* One layer keyword of the model file. Several keywords share a builder, which reads the
 * fields after .keys to know which layer it makes. */
struct layer_def {
    const char *kind;        /* the keyword: "conv2d" */
    const char *keras;       /* Keras class shown by deepsky summary: "Conv2D" (pools of any
                              * rank get "1D", "2D", "3D" appended) */
    const char *auto_name;   /* prefix of automatic names: "conv2d" -> conv2d_1, conv2d_2 */
    build_fn build;          /* reads the options and adds the layer's nodes */
    int min_in, max_in;      /* inputs it takes (inputs=a,b,...; default: the layer above) */
    const char *keys;        /* its options besides name and inputs, space-separated */
    int nd;                  /* spatial axes the keyword fixes (conv2d: 2); 0: the input's */
    bool has_params;         /* the builder names its own parameters (no layer scope) */
    /* builder-specific */
    bool transposed;         /* b_conv: transposed convolution */
    bool bayes;              /* b_dense, b_conv: Bayesian weights (ds_dense_bayes, ds_conv_bayes) */
    ds_pool_kind pool;       /* b_pool, b_global_pool */
    merge_op merge;          /* b_merge */
    ds_activation act;       /* b_activation */
};

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

/* The options of dense_bayes and conv2d_bayes (ds_bayes_opts). */
static ds_status get_bayes(spec *s, ds_bayes_opts *o)
{
    double prior, post, kl;
    ds_status st;
    if ((st = get_float(s, KEYS("prior_sigma"), 1e-6, 1e6, 1.0, &prior)) ||
        (st = get_float(s, KEYS("posterior_init"), 1e-12, 1e6, 0.05, &post)) ||
        (st = get_float(s, KEYS("kl_weight"), 0, 1e12, 0.0, &kl)))
        return st;
    *o = (ds_bayes_opts){.prior_sigma = (float)prior, .posterior_init = (float)post,
                         .kl_weight = (float)kl};
    return DS_OK;
}

static ds_status b_dense(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    long units;
    bool bias;
    ds_dense_opts o = {.name = a->name};
    ds_status st;
    if ((st = get_int(s, KEYS("units"), 1, 1L << 24, 0, true, &units)) ||
        (st = get_bool(s, KEYS("bias", "use_bias"), true, &bias)) ||
        (st = get_activation(s, &o.activation)) ||
        (st = get_init(s, KEYS("init", "kernel_initializer"), &o.weight_init)) ||
        (st = get_init(s, KEYS("bias_init", "bias_initializer"), &o.bias_init)))
        return st;
    o.units = units;
    o.no_bias = !bias;
    ds_bayes_opts bo;
    if (a->def->bayes && (st = get_bayes(s, &bo)))
        return st;
    *out = a->def->bayes ? ds_dense_bayes(b->net->g, a->in[0], &o, &bo)
                         : ds_dense(b->net->g, a->in[0], &o);
    return DS_OK;
}

static ds_status b_conv(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    int nd = a->def->nd;
    ds_status st = check_nd(s, a->in[0], nd);
    if (st)
        return st;
    long filters;
    bool bias;
    ds_conv_opts o = {.name = a->name};
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
    if (a->def->transposed) {
        if ((st = get_axes(s, KEYS("output_padding"), nd, 0, 0, false, o.output_padding)))
            return st;
        *out = ds_conv_transpose2d(b->net->g, a->in[0], &o);
    } else if (a->def->bayes) {
        ds_bayes_opts bo;
        if ((st = get_bayes(s, &bo)))
            return st;
        *out = ds_conv_bayes(b->net->g, a->in[0], nd, &o, &bo);
    } else {
        *out = ds_conv(b->net->g, a->in[0], nd, &o);
    }
    return DS_OK;
}

static ds_status b_upsample(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    long size;
    ds_status st = check_nd(s, a->in[0], 2);
    if (st || (st = get_int(s, KEYS("size", "scale"), 1, 64, 2, false, &size)))
        return st;
    opt *o = find_any(s, KEYS("mode", "interpolation"));
    int mode = o ? word_index(upsample_words, N_WORDS(upsample_words), o->val)
                 : DS_UPSAMPLE_NEAREST;
    char list[64];
    if (mode < 0)
        return fail_at(s, DS_ERR_ARG, "%s: option '%s': '%s' is not %s", s->kind, o->key, o->val,
                       words_list(upsample_words, N_WORDS(upsample_words), list, sizeof list));
    *out = ds_upsample2d(b->net->g, a->in[0], (int)size, (ds_upsample_mode)mode);
    return DS_OK;
}

static ds_status b_pool(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    int nd = spatial_nd(a->def, a->in[0]);
    ds_status st = check_nd(s, a->in[0], nd);
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
    *out = ds_pool(b->net->g, a->in[0], nd, a->def->pool, &o);
    return DS_OK;
}

static ds_status b_global_pool(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    if (ds_node_ndim(a->in[0]) < 3)
        return check_nd(s, a->in[0], 0);
    *out = ds_global_pool(b->net->g, a->in[0], a->def->pool);
    return DS_OK;
}

static ds_status b_flatten(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    (void)s;
    *out = ds_flatten(b->net->g, a->in[0]);
    return DS_OK;
}

static ds_status b_reshape(builder *b, spec *s, const layer_args *a, ds_node **out)
{
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
    *out = ds_reshape(b->net->g, a->in[0], n + 1, shape);
    return DS_OK;
}

static ds_status b_merge(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    ds_graph *g = b->net->g;
    merge_op op = a->def->merge;
    if (op == MERGE_CONCAT) {
        long axis;
        ds_status st = get_int(s, KEYS("axis"), -6, 5, 1, false, &axis);
        if (st)
            return st;
        *out = ds_concat(g, a->n_in, a->in, (int)axis);
        return DS_OK;
    }
    ds_node *y = a->in[0];
    for (int i = 1; i < a->n_in; i++)
        y = op == MERGE_ADD ? ds_add(g, y, a->in[i]) : op == MERGE_SUB ? ds_sub(g, y, a->in[i])
                                                                       : ds_mul(g, y, a->in[i]);
    *out = y;
    return DS_OK;
}

static ds_status b_dropout(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    double rate;
    ds_status st = get_float(s, KEYS("rate", "p"), 0, 0.999999, 0.5, &rate);
    if (st)
        return st;
    *out = ds_dropout(b->net->g, a->in[0], (float)rate);
    return DS_OK;
}

static ds_status b_batchnorm(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    double mom, eps;
    bool affine;
    ds_status st;
    if ((st = get_float(s, KEYS("momentum"), 1e-6, 1, 0.1, &mom)) ||
        (st = get_float(s, KEYS("eps", "epsilon"), 1e-12, 1, 1e-5, &eps)) ||
        (st = get_bool(s, KEYS("affine"), true, &affine)))
        return st;
    ds_batchnorm_opts o = {.name = a->name, .momentum = (float)mom, .eps = (float)eps,
                           .no_affine = !affine};
    *out = ds_batchnorm(b->net->g, a->in[0], &o);
    return DS_OK;
}

/* Activation layers ("relu", "softmax axis=1", "activation relu"), with the options of the
 * activations that have some. */
static ds_status b_activation(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    ds_activation act = a->def->act;
    ds_graph *g = b->net->g;
    ds_node *x = a->in[0];
    double alpha;
    long axis;
    bool shared;
    ds_status st;
    switch (act) {
    case DS_ACT_LEAKY_RELU:
        if ((st = get_float(s, KEYS("alpha", "slope", "negative_slope"), -1e6, 1e6, 0.01, &alpha)))
            return st;
        *out = ds_leaky_relu(g, x, (float)alpha);
        return DS_OK;
    case DS_ACT_ELU:
        if ((st = get_float(s, KEYS("alpha"), 0, 1e6, 1.0, &alpha)))
            return st;
        *out = ds_elu(g, x, (float)alpha);
        return DS_OK;
    case DS_ACT_SOFTMAX:
    case DS_ACT_LOG_SOFTMAX:
        if ((st = get_int(s, KEYS("axis"), -6, 5, 1, false, &axis)))
            return st;
        *out = act == DS_ACT_SOFTMAX ? ds_softmax(g, x, (int)axis) : ds_log_softmax(g, x, (int)axis);
        return DS_OK;
    case DS_ACT_PRELU:
        if ((st = get_bool(s, KEYS("shared"), false, &shared)))
            return st;
        *out = ds_prelu(g, x, a->name, shared);
        return DS_OK;
    default:
        *out = ds_activate(g, x, act, a->name);
        return DS_OK;
    }
}

/* sample_gaussian mean=LAYER logvar=LAYER: the VAE's sampling layer (ops/sample.c). */
static ds_status b_sample(builder *b, spec *s, const layer_args *a, ds_node **out)
{
    (void)a;
    if (find_any(s, KEYS("inputs", "input", "from")))
        return fail_at(s, DS_ERR_ARG, "%s: name its inputs with mean=LAYER logvar=LAYER, not "
                       "inputs=", s->kind);
    named *m[2];
    const char *keys[2] = {"mean", "logvar"};
    for (int k = 0; k < 2; k++) {
        opt *o = find_opt(s, keys[k]);
        if (!o)
            return fail_at(s, DS_ERR_ARG, "%s: option '%s' is required (a layer name)", s->kind,
                           keys[k]);
        if (!(m[k] = lookup(b, o->val)))
            return fail_at(s, DS_ERR_ARG, "%s: option '%s': no layer named '%s' before this "
                           "line", s->kind, keys[k], o->val);
    }
    *out = ds_sample_gaussian(b->net->g, m[0]->node, m[1]->node);
    return DS_OK;
}

#define LAYER_KEYS "name inputs input from"   /* every layer line's options */
#define INPUT_KEYS "name shape"                /* the input line's */
#define K_DENSE "units activation bias use_bias init kernel_initializer bias_init bias_initializer"
#define K_CONV  "filters kernel kernel_size stride strides dilation dilation_rate padding pad " \
                "activation bias use_bias init kernel_initializer bias_init bias_initializer"
#define K_BAYES "prior_sigma posterior_init kl_weight"
#define K_POOL  "size pool_size kernel stride strides padding pad exclude_pad"
#define K_UPSAMPLE "size scale mode interpolation"
#define POOL(kind_, keras_, auto_, nd_, pool_)                                              \
    {.kind = kind_, .keras = keras_, .auto_name = auto_, .build = b_pool, .min_in = 1,       \
     .max_in = 1, .keys = K_POOL, .nd = nd_, .pool = pool_}
#define MERGE(kind_, keras_, auto_, max_, keys_, op_)                                       \
    {.kind = kind_, .keras = keras_, .auto_name = auto_, .build = b_merge, .min_in = 2,      \
     .max_in = max_, .keys = keys_, .merge = op_}

/* Every layer keyword but those of the activations (act_layers below). */
static const layer_def layer_defs[] = {
    {.kind = "dense", .keras = "Dense", .auto_name = "dense", .build = b_dense, .min_in = 1,
     .max_in = 1, .keys = K_DENSE, .has_params = true},
    {.kind = "dense_bayes", .keras = "DenseBayes", .auto_name = "dense_bayes", .build = b_dense,
     .min_in = 1, .max_in = 1, .keys = K_DENSE " " K_BAYES, .has_params = true, .bayes = true},
    {.kind = "conv1d", .keras = "Conv1D", .auto_name = "conv1d", .build = b_conv, .min_in = 1,
     .max_in = 1, .keys = K_CONV, .nd = 1, .has_params = true},
    {.kind = "conv2d", .keras = "Conv2D", .auto_name = "conv2d", .build = b_conv, .min_in = 1,
     .max_in = 1, .keys = K_CONV, .nd = 2, .has_params = true},
    {.kind = "conv3d", .keras = "Conv3D", .auto_name = "conv3d", .build = b_conv, .min_in = 1,
     .max_in = 1, .keys = K_CONV, .nd = 3, .has_params = true},
    {.kind = "conv2d_transpose", .keras = "Conv2DTranspose", .auto_name = "conv2d_transpose",
     .build = b_conv, .min_in = 1, .max_in = 1, .keys = K_CONV " output_padding", .nd = 2,
     .has_params = true, .transposed = true},
    {.kind = "conv2d_bayes", .keras = "Conv2DBayes", .auto_name = "conv2d_bayes", .build = b_conv,
     .min_in = 1, .max_in = 1, .keys = K_CONV " " K_BAYES, .nd = 2, .has_params = true,
     .bayes = true},
    {.kind = "upsample2d", .keras = "UpSampling2D", .auto_name = "up_sampling2d",
     .build = b_upsample, .min_in = 1, .max_in = 1, .keys = K_UPSAMPLE, .nd = 2},
    {.kind = "upsampling2d", .keras = "UpSampling2D", .auto_name = "up_sampling2d",
     .build = b_upsample, .min_in = 1, .max_in = 1, .keys = K_UPSAMPLE, .nd = 2},
    POOL("maxpool", "MaxPooling", "max_pooling", 0, DS_POOL_MAX),
    POOL("maxpool1d", "MaxPooling1D", "max_pooling1d", 1, DS_POOL_MAX),
    POOL("maxpool2d", "MaxPooling2D", "max_pooling2d", 2, DS_POOL_MAX),
    POOL("maxpool3d", "MaxPooling3D", "max_pooling3d", 3, DS_POOL_MAX),
    POOL("avgpool", "AveragePooling", "average_pooling", 0, DS_POOL_AVG),
    POOL("avgpool1d", "AveragePooling1D", "average_pooling1d", 1, DS_POOL_AVG),
    POOL("avgpool2d", "AveragePooling2D", "average_pooling2d", 2, DS_POOL_AVG),
    POOL("avgpool3d", "AveragePooling3D", "average_pooling3d", 3, DS_POOL_AVG),
    POOL("sumpool", "SumPooling", "sum_pooling", 0, DS_POOL_SUM),
    POOL("l2pool", "L2Pooling", "l2_pooling", 0, DS_POOL_L2),
    {.kind = "globalavgpool", .keras = "GlobalAveragePooling",
     .auto_name = "global_average_pooling", .build = b_global_pool, .min_in = 1, .max_in = 1,
     .keys = "", .pool = DS_POOL_AVG},
    {.kind = "globalmaxpool", .keras = "GlobalMaxPooling", .auto_name = "global_max_pooling",
     .build = b_global_pool, .min_in = 1, .max_in = 1, .keys = "", .pool = DS_POOL_MAX},
    {.kind = "flatten", .keras = "Flatten", .auto_name = "flatten", .build = b_flatten,
     .min_in = 1, .max_in = 1, .keys = ""},
    {.kind = "reshape", .keras = "Reshape", .auto_name = "reshape", .build = b_reshape,
     .min_in = 1, .max_in = 1, .keys = "shape"},
    MERGE("concat", "Concatenate", "concatenate", 16, "axis", MERGE_CONCAT),
    MERGE("add", "Add", "add", 16, "", MERGE_ADD),
    MERGE("subtract", "Subtract", "subtract", 2, "", MERGE_SUB),
    MERGE("multiply", "Multiply", "multiply", 16, "", MERGE_MUL),
    {.kind = "dropout", .keras = "Dropout", .auto_name = "dropout", .build = b_dropout,
     .min_in = 1, .max_in = 1, .keys = "rate p"},
    {.kind = "batchnorm", .keras = "BatchNormalization", .auto_name = "batch_normalization",
     .build = b_batchnorm, .min_in = 1, .max_in = 1, .keys = "momentum eps epsilon affine",
     .has_params = true},
    {.kind = "sample_gaussian", .keras = "SampleGaussian", .auto_name = "sample_gaussian",
     .build = b_sample, .min_in = 1, .max_in = 1, .keys = "mean logvar"},
    /* "activation relu" or "activation fn=relu": the activation's options join these */
    {.kind = "activation", .keras = "Activation", .auto_name = "activation",
     .build = b_activation, .min_in = 1, .max_in = 1, .keys = "fn activation"},
};
#define N_LAYER_DEFS N_WORDS(layer_defs)
_Static_assert(N_LAYER_DEFS <= MAX_KW_ROWS, "layer_defs: raise MAX_KW_ROWS");
_Static_assert(DS_ACT_COUNT <= MAX_KW_ROWS, "activations: raise MAX_KW_ROWS");

/* Each activation is a layer keyword too: its name (ds_activation_name) or one of
 * act_aliases; "linear" is dense's, so DS_ACT_NONE has none. The layer is a Keras
 * "Activation" named after the activation unless given here. */
static const struct {
    const char *keras;       /* Keras class of its own */
    const char *auto_name;   /* Keras' automatic name, when not the activation's name */
    const char *keys;        /* its options */
    bool has_params;
} act_layers[DS_ACT_COUNT] = {
    [DS_ACT_RELU] = {.keras = "ReLU", .auto_name = "re_lu"},
    [DS_ACT_LEAKY_RELU] = {.keras = "LeakyReLU", .auto_name = "leaky_re_lu",
                           .keys = "alpha slope negative_slope"},
    [DS_ACT_ELU] = {.keras = "ELU", .keys = "alpha"},
    [DS_ACT_PRELU] = {.keras = "PReLU", .auto_name = "p_re_lu", .keys = "shared",
                      .has_params = true},
    [DS_ACT_SOFTMAX] = {.keras = "Softmax", .keys = "axis"},
    [DS_ACT_LOG_SOFTMAX] = {.keras = "LogSoftmax", .keys = "axis"},
};

/* Keras' and PyTorch's spellings of layer keywords (the activations' are in act_aliases). */
static const struct {
    const char *alias, *kind;
} layer_aliases[] = {
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
};

/* A line's layer: a row of layer_defs, or one made for an activation. */
typedef struct {
    layer_def def;
    int row;             /* in layer_defs, or -1 for an activation keyword */
    char keys[160];      /* def.keys of activation layers: their own options added */
} layer_kind;

/* The layer of activation act: the "activation" row (row) with the activation's options
 * added, or, for the activation's own keyword (row NULL), one made from act_layers. */
static void activation_layer(ds_activation act, const layer_def *row, layer_kind *k)
{
    const char *name = ds_activation_name(act);
    if (row)
        k->def = *row;
    else
        k->def = (layer_def){.kind = name, .build = b_activation, .min_in = 1, .max_in = 1,
                             .keras = act_layers[act].keras ? act_layers[act].keras : "Activation",
                             .auto_name = act_layers[act].auto_name ? act_layers[act].auto_name
                                                                    : name};
    snprintf(k->keys, sizeof k->keys, "%s%s%s", row ? row->keys : "",
             row && act_layers[act].keys ? " " : "",
             act_layers[act].keys ? act_layers[act].keys : "");
    k->def.keys = k->keys;
    k->def.act = act;
    if (!row)   /* "activation prelu" keeps the row's layer scope, as it always had */
        k->def.has_params = act_layers[act].has_params;
}

/* "dense, conv1d, ..., relu, ..." for the unknown-layer message. */
static const char *layer_list(char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < N_LAYER_DEFS; i++)
        list_add(buf, cap, layer_defs[i].kind);
    for (int a = 0; a < DS_ACT_COUNT; a++)
        if (a != DS_ACT_NONE)
            list_add(buf, cap, ds_activation_name((ds_activation)a));
    return list_or(buf, cap);
}

/* The layer of the line's keyword; "activation" reads which one from fn= or the word after
 * it. Fails naming the keyword. */
static ds_status find_layer(spec *s, layer_kind *k)
{
    const char *kind = s->kind;
    k->row = -1;
    for (int i = 0; i < N_WORDS(layer_aliases); i++)
        if (!strcmp(kind, layer_aliases[i].alias))
            kind = layer_aliases[i].kind;
    for (int i = 0; i < N_LAYER_DEFS && k->row < 0; i++)
        if (!strcmp(kind, layer_defs[i].kind))
            k->row = i;
    ds_activation act;
    char list[1024];
    if (k->row >= 0 && layer_defs[k->row].build != b_activation) {
        k->def = layer_defs[k->row];
        return DS_OK;
    }
    if (k->row >= 0) {
        opt *o = find_any(s, KEYS("fn", "activation"));
        const char *v = o ? o->val : s->pos;
        if (!*v)
            return fail_at(s, DS_ERR_ARG, "activation: which one? e.g. 'activation relu'");
        if (!find_activation(v, &act))
            return fail_at(s, DS_ERR_ARG, "activation: unknown activation '%s' (expected %s)", v,
                           activation_list(list, sizeof list));
        s->pos[0] = 0;
        activation_layer(act, &layer_defs[k->row], k);
        return DS_OK;
    }
    if (find_activation(kind, &act) && act != DS_ACT_NONE) {
        activation_layer(act, NULL, k);
        return DS_OK;
    }
    return fail_at(s, DS_ERR_ARG, "unknown layer '%s' (expected %s; the README's model file "
                   "reference lists their options)", s->kind, layer_list(list, sizeof list));
}

/* Whether word is one of the space-separated words of list. */
static bool in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    if (!n)
        return false;
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

/* Options not in the space-separated list keys (besides name and inputs) are errors that
 * list the allowed ones. Checked before building, so a misspelt option is reported as such
 * rather than as a missing one. */
static ds_status check_known(const spec *s, const char *keys, const char *allowed)
{
    for (int i = 0; i < s->n; i++) {
        const char *k = s->opts[i].key;
        if (!in_list(LAYER_KEYS, k) && !in_list(keys, k))
            return fail_at(s, DS_ERR_ARG, "%s: unknown option '%s' (options: %s)", s->kind, k,
                           allowed);
    }
    return DS_OK;
}

/* Options the line's builder did not read are errors that list the allowed ones. */
static ds_status check_unused(const spec *s, const char *allowed)
{
    for (int i = 0; i < s->n; i++)
        if (!s->opts[i].used)
            return fail_at(s, DS_ERR_ARG, "%s: unknown option '%s' (options: %s)", s->kind,
                           s->opts[i].key, allowed);
    return DS_OK;
}

/* "a, b, c" from the space-separated words of keys, after those already in buf. */
static void list_allowed(const char *keys, char *buf, size_t cap)
{
    char tmp[512], *save = NULL;
    snprintf(tmp, sizeof tmp, "%s", keys);
    for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save))
        list_add(buf, cap, t);
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
    layer_kind k;
    ds_status st = find_layer(s, &k);
    if (st)
        return st;
    const layer_def *d = &k.def;
    ds_graph *g = b->net->g;
    char allowed[768] = "name, inputs";
    list_allowed(d->keys, allowed, sizeof allowed);
    if ((st = check_known(s, d->keys, allowed)))
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
        if (!d->nd && (d->build == b_pool || d->build == b_global_pool))
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
    snprintf(type, sizeof type, "%s", d->keras);
    if (!d->nd && (d->build == b_pool || d->build == b_global_pool))
        snprintf(type, sizeof type, "%s%dD", d->keras, ds_node_ndim(in[0]) - 2);
    char scoped[DS_NAME_MAX];
    bool wrap = !d->has_params;
    if (wrap && !dsi_layer_begin(g, type, type, name, scoped))
        return fail_at(s, g->status ? g->status : DS_ERR_ARG, "%s", ds_last_error());
    ds_node *y = NULL;
    layer_args args = {.def = d, .name = name, .in = in, .n_in = n_in};
    st = d->build(b, s, &args, &y);
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
    if (k.row >= 0)
        b->used[DSI_KW_LAYER][k.row] = true;
    else
        b->used[DSI_KW_ACTIVATION][d->act - 1] = true;   /* DS_ACT_NONE is no keyword */
    if ((st = add_name(b, s, name, y, act, pre)))
        return st;
    if (b->line_fn)
        b->line_fn(b->line_ctx, s->line, name, s->kind, d->keys);
    return DS_OK;
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
    char allowed[64] = "";
    list_allowed(INPUT_KEYS, allowed, sizeof allowed);
    if ((st = check_unused(s, allowed)))
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

/* One loss keyword: "loss mse". */
struct loss_def {
    const char *kind;       /* keyword */
    const char *synonyms;   /* other keywords, space-separated */
    loss_fn build;          /* reads the options and adds the loss's nodes */
    dsi_loss_kind loss;
    label_kind labels;
    const char *keys;       /* options besides output, on, name, weight and reduction */
    bool sparse;            /* l_cce: class indices whatever the labels' shape */
};
#define LOSS_KEYS "output name weight reduction"   /* every loss line's options (output: or on) */

/* The labels input of the loss line l, as the next target. The first is named "labels"
 * (as with one labelled loss), the others "labels_<loss>"; a layer or input already named
 * so (an input line may say name=labels) keeps its name, and the labels take the first of
 * "<name>_2", "<name>_3", ... that is free. Data is fed by the loss's name, never this one. */
static ds_node *target_input(builder *b, spec *s, loss_line *l, int ndim, const int64_t *shape)
{
    ds_net *net = b->net;
    char base[DS_NAME_MAX + 8], name[DS_NAME_MAX + 24];
    if (net->n_targets)
        snprintf(base, sizeof base, "labels_%s", l->name);
    else
        snprintf(base, sizeof base, "labels");
    snprintf(name, sizeof name, "%s", base);
    for (int k = 2; ds_graph_find(net->g, name) && k < 1000000; k++)
        snprintf(name, sizeof name, "%s_%d", base, k);
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

/* target=INPUT (mse, mae, bce): the loss compares the prediction with that input of the net
 * (an autoencoder's) instead of labels; *t stays NULL without the option. */
static ds_status input_target(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **t)
{
    opt *o = find_opt(s, "target");
    *t = NULL;
    if (!o)
        return DS_OK;
    ds_net *net = b->net;
    int k = dsi_net_find_input(net, o->val);
    named *e = lookup(b, o->val);
    if (k < 0)
        return fail_at(s, DS_ERR_ARG, "loss %s: target=%s: %s; target= names an input line "
                       "(an autoencoder compares its output '%s' with its input)", s->pos, o->val,
                       e ? "that layer is not an input of the model" : "no input of that name",
                       ds_node_layer_name(l->y));
    ds_node *x = net->inputs[k].node;
    if (ds_node_ndim(x) != ds_node_ndim(l->y) ||
        memcmp(ds_node_shape(x), ds_node_shape(l->y), (size_t)ds_node_ndim(x) * sizeof(int64_t)))
        return fail_at(s, DS_ERR_SHAPE, "loss %s: the output '%s' has shape %s but its target, "
                       "input '%s', has shape %s", s->pos, ds_node_layer_name(l->y),
                       dsi_shape_str(ds_node_ndim(l->y), ds_node_shape(l->y)), o->val,
                       dsi_shape_str(ds_node_ndim(x), ds_node_shape(x)));
    dsi_net_recon *r = &net->recons[net->n_recons++];
    *r = (dsi_net_recon){.pred = l->y, .input = k, .kind = d->loss};
    snprintf(r->name, sizeof r->name, "%s", l->name);
    *t = x;
    return DS_OK;
}

/* mse, mae: targets of the prediction's shape (labels, or an input: target=). */
static ds_status l_pointwise(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    ds_node *t;
    ds_status st = input_target(b, s, d, l, &t);
    if (st)
        return st;
    if (!t && !(t = target_input(b, s, l, ds_node_ndim(l->y), ds_node_shape(l->y))))
        return dsi_last_status();
    ds_graph *g = b->net->g;
    *out = d->loss == DSI_LOSS_MAE ? ds_loss_mae(g, l->y, t, l->red)
                                   : ds_loss_mse(g, l->y, t, l->red);
    l->pred = l->y;
    return DS_OK;
}

/* msb (mean squared bias): targets of the prediction's shape, rows in groups of
 * realizations. */
static ds_status l_msb(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    (void)d;
    long group;
    double mse;
    bool unbiased;
    ds_status st;
    if ((st = get_int(s, KEYS("group"), 1, 1 << 20, 0, true, &group)) ||
        (st = get_float(s, KEYS("mse"), 0, 1e30, 0, &mse)) ||
        (st = get_bool(s, KEYS("unbiased"), group > 1, &unbiased)))
        return st;
    if (unbiased && group < 2)
        return fail_at(s, DS_ERR_ARG, "loss %s: unbiased=true needs group >= 2 (the spread "
                       "of one realization is unknown)", s->pos);
    ds_node *t = target_input(b, s, l, ds_node_ndim(l->y), ds_node_shape(l->y));
    if (!t)
        return dsi_last_status();
    ds_msb_opts o = {.group = (int)group, .mse = mse, .unbiased = unbiased};
    if (b->line_fn)   /* a parse for the lines only (batch 1, never run): options checked */
        o.group = 1, o.unbiased = false;
    *out = ds_loss_msb(b->net->g, l->y, t, &o, l->red);
    l->pred = l->y;
    return DS_OK;
}

/* binary cross-entropy: after a sigmoid layer the logits before it are used (stable). */
static ds_status l_bce(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    bool logits;
    ds_node *t;
    ds_status st = get_bool(s, KEYS("from_logits"), false, &logits);
    if (st || (st = input_target(b, s, d, l, &t)))
        return st;
    if (!t && !(t = target_input(b, s, l, ds_node_ndim(l->y), ds_node_shape(l->y))))
        return dsi_last_status();
    ds_graph *g = b->net->g;
    bool after_sigmoid = l->self && l->self->act == DS_ACT_SIGMOID && l->self->pre_act;
    if (after_sigmoid)
        *out = ds_loss_bce_logits(g, l->self->pre_act, t, l->red);
    else
        *out = logits ? ds_loss_bce_logits(g, l->y, t, l->red) : ds_loss_bce(g, l->y, t, l->red);
    if (l->t) {
        l->t->output_logits = logits && !(l->self && l->self->act == DS_ACT_SIGMOID);
        l->t->classes = 2;
    }
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
    bool sparse = d->sparse || label_mode(b, l->name) == DS_LABELS_INDEX;
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
    l->t->index_too = !sparse && label_mode(b, l->name) == DS_LABELS_AUTO;
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
    /* predict writes the mean and the standard deviation exp(logvar / 2) side by side */
    ds_node *sd = ds_exp(g, ds_mul_scalar(g, lv->node, 0.5f));
    l->pred = l->t->pred = ds_concat(g, 2, (ds_node *[]){mu->node, sd}, 1);
    return DS_OK;
}

/* soft Dice (segmentation): probabilities [N, C, ...] against masks of their shape. */
static ds_status l_dice(builder *b, spec *s, const loss_def *d, loss_line *l, ds_node **out)
{
    (void)d;
    if (ds_node_ndim(l->y) < 2)
        return fail_at(s, DS_ERR_SHAPE, "loss %s: output '%s' has shape %s, expected [batch, "
                       "classes, ...]", s->pos, ds_node_layer_name(l->y),
                       dsi_shape_str(ds_node_ndim(l->y), ds_node_shape(l->y)));
    ds_node *t = target_input(b, s, l, ds_node_ndim(l->y), ds_node_shape(l->y));
    if (!t)
        return dsi_last_status();
    *out = ds_loss_dice(b->net->g, l->y, t, l->red);
    l->t->labels = DS_LABELS_DENSE;
    l->t->classes = ds_node_shape(l->y)[1];
    l->pred = l->y;
    return DS_OK;
}

static const loss_def loss_defs[] = {
    {.kind = "mse", .synonyms = "mean_squared_error", .build = l_pointwise,
     .loss = DSI_LOSS_MSE, .labels = LAB_PRED, .keys = "target"},
    {.kind = "mae", .synonyms = "mean_absolute_error", .build = l_pointwise,
     .loss = DSI_LOSS_MAE, .labels = LAB_PRED, .keys = "target"},
    {.kind = "binary_crossentropy", .synonyms = "bce", .build = l_bce, .loss = DSI_LOSS_BCE,
     .labels = LAB_PRED, .keys = "from_logits target"},
    {.kind = "categorical_crossentropy", .synonyms = "cce", .build = l_cce,
     .loss = DSI_LOSS_CCE, .labels = LAB_CLASSES, .keys = "from_logits"},
    {.kind = "sparse_categorical_crossentropy", .synonyms = "", .build = l_cce,
     .loss = DSI_LOSS_CCE, .labels = LAB_CLASSES, .keys = "from_logits", .sparse = true},
    {.kind = "gaussian_nll", .synonyms = "", .build = l_gaussian, .loss = DSI_LOSS_GAUSS_NLL,
     .labels = LAB_MEAN, .keys = "mean logvar"},
    {.kind = "msb", .synonyms = "mean_squared_bias", .build = l_msb, .loss = DSI_LOSS_MSB,
     .labels = LAB_PRED, .keys = "group mse unbiased"},
    {.kind = "kl_gaussian", .synonyms = "kl", .build = l_gaussian, .loss = DSI_LOSS_KL,
     .labels = LAB_NONE, .keys = "mean logvar"},
    {.kind = "dice", .synonyms = "soft_dice", .build = l_dice, .loss = DSI_LOSS_DICE,
     .labels = LAB_PRED, .keys = ""},
};
#define N_LOSS_DEFS N_WORDS(loss_defs)
_Static_assert(N_LOSS_DEFS <= MAX_KW_ROWS, "loss_defs: raise MAX_KW_ROWS");

static const loss_def *find_loss(const char *kind)
{
    for (int i = 0; i < N_LOSS_DEFS; i++)
        if (!strcmp(kind, loss_defs[i].kind) || in_list(loss_defs[i].synonyms, kind))
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
    char keys[256], allowed[320] = "";
    snprintf(keys, sizeof keys, "%s %s", LOSS_KEYS, d->keys);
    list_allowed(keys, allowed, sizeof allowed);
    for (int i = 0; i < s->n; i++)
        if (!s->opts[i].used)
            return fail_at(s, DS_ERR_ARG, "loss %s: unknown option '%s' (options: %s)", s->pos,
                           s->opts[i].key, allowed);
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
    int red = ro ? word_index(reduction_words, N_WORDS(reduction_words), ro->val) : DS_REDUCE_MEAN;
    char list[64];
    if (red < 0)
        return fail_at(s, DS_ERR_ARG, "loss: option 'reduction': '%s' is not %s", ro->val,
                       words_list(reduction_words, N_WORDS(reduction_words), list, sizeof list));
    l->red = (ds_reduction)red;
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
    if ((st = d->build(b, s, d, &l, &out)) || (st = check_loss_options(s, d)))
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
    opt *nm = find_opt(s, "name");
    snprintf(b->loss_names[b->n_losses], DS_NAME_MAX, "%.*s", DS_NAME_MAX - 1,
             nm ? nm->val : d->kind);
    b->weights[b->n_losses] = (float)weight;
    b->loss_line[b->n_losses] = s->line;
    b->n_losses++;
    b->used[DSI_KW_LOSS][d - loss_defs] = true;
    if (b->line_fn) {   /* searchable as its name= or loss_KIND, or the keyword "loss" */
        char name[DS_NAME_MAX], keys[320];
        snprintf(name, sizeof name, "%s%.*s", nm ? "" : "loss_", DS_NAME_MAX - 8,
                 nm ? nm->val : d->kind);
        snprintf(keys, sizeof keys, "%s %s", LOSS_KEYS, d->keys);
        b->line_fn(b->line_ctx, s->line, name, "loss", keys);
    }
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
typedef enum { OPT_FLOAT, OPT_BOOL, OPT_INT64, OPT_SCHEDULE } optim_value;

/* The options of the optimizer line, each with the ds_optim_opts field it sets. */
static const struct {
    const char *key, *synonym;
    optim_value type;
    double lo, hi;          /* OPT_FLOAT, OPT_INT64 */
    size_t offset;          /* of the field in ds_optim_opts: float, int or int64_t */
} optim_keys[] = {
#define FIELD(f) .offset = offsetof(ds_optim_opts, f)
    {.key = "lr", .synonym = "learning_rate", .type = OPT_FLOAT, .lo = 1e-12, .hi = 1e3, FIELD(lr)},
    {.key = "momentum", .type = OPT_FLOAT, .lo = 0, .hi = 0.999999, FIELD(momentum)},
    {.key = "nesterov", .type = OPT_BOOL, FIELD(nesterov)},
    {.key = "weight_decay", .synonym = "decay_l2", .type = OPT_FLOAT, .lo = 0, .hi = 10,
     FIELD(weight_decay)},
    {.key = "beta1", .synonym = "beta_1", .type = OPT_FLOAT, .lo = 0, .hi = 0.999999, FIELD(beta1)},
    {.key = "beta2", .synonym = "beta_2", .type = OPT_FLOAT, .lo = 0, .hi = 0.999999999,
     FIELD(beta2)},
    {.key = "eps", .synonym = "epsilon", .type = OPT_FLOAT, .lo = 1e-20, .hi = 1, FIELD(eps)},
    {.key = "alpha", .synonym = "rho", .type = OPT_FLOAT, .lo = 0, .hi = 0.999999, FIELD(alpha)},
    {.key = "amsgrad", .type = OPT_BOOL, FIELD(amsgrad)},
    {.key = "clipnorm", .synonym = "clip_norm", .type = OPT_FLOAT, .lo = 0, .hi = 1e12,
     FIELD(clip_norm)},
    {.key = "schedule", .type = OPT_SCHEDULE, FIELD(schedule.kind)},
    {.key = "step_size", .type = OPT_INT64, .lo = 1, .hi = (double)((int64_t)1 << 40),
     FIELD(schedule.step_size)},
    {.key = "gamma", .type = OPT_FLOAT, .lo = 0, .hi = 1, FIELD(schedule.gamma)},
    {.key = "decay", .type = OPT_FLOAT, .lo = 0, .hi = 1e6, FIELD(schedule.decay)},
    {.key = "t_max", .type = OPT_INT64, .lo = 1, .hi = (double)((int64_t)1 << 40),
     FIELD(schedule.t_max)},
    {.key = "min_lr", .type = OPT_FLOAT, .lo = 0, .hi = 1e3, FIELD(schedule.min_lr)},
    {.key = "per_epoch", .type = OPT_BOOL, FIELD(schedule.per_epoch)},
#undef FIELD
};

/* schedule=constant|step|exponential (exp)|inverse_time|cosine */
static ds_status optim_schedule(spec *s, ds_schedule_kind *out)
{
    opt *so = find_opt(s, "schedule");
    if (!so)
        return DS_OK;
    int k = word_index(schedule_words, N_WORDS(schedule_words), so->val);
    if (!strcmp(so->val, schedule_exp_alias))
        k = DS_SCHED_EXP;
    char list[128];
    if (k < 0)
        return fail_at(s, DS_ERR_ARG, "optimizer: option 'schedule': '%s' is not %s", so->val,
                       words_list(schedule_words, N_WORDS(schedule_words), list, sizeof list));
    *out = (ds_schedule_kind)k;
    return DS_OK;
}

/* Sets the field of optim_keys[i] if the line gives it. */
static ds_status optim_key(spec *s, int i, ds_optim_opts *o)
{
    const char *const keys[] = {optim_keys[i].key, optim_keys[i].synonym, NULL};
    char *field = (char *)o + optim_keys[i].offset;
    double v;
    long n;
    bool flag;
    ds_status st;
    switch (optim_keys[i].type) {
    case OPT_FLOAT:
        if ((st = get_float(s, keys, optim_keys[i].lo, optim_keys[i].hi, NAN, &v)))
            return st;
        if (!isnan(v))
            *(float *)field = (float)v;
        return DS_OK;
    case OPT_BOOL:
        if ((st = get_bool(s, keys, false, &flag)))
            return st;
        *(int *)field = flag;
        return DS_OK;
    case OPT_INT64: {
        /* where long has 32 bits (WebAssembly), the range stops at LONG_MAX */
        long hi = optim_keys[i].hi < (double)LONG_MAX ? (long)optim_keys[i].hi : LONG_MAX;
        if ((st = get_int(s, keys, (long)optim_keys[i].lo, hi, 0, false, &n)))
            return st;
        *(int64_t *)field = n;
        return DS_OK;
    }
    case OPT_SCHEDULE:
        return optim_schedule(s, (ds_schedule_kind *)field);
    }
    return DS_OK;
}

static ds_status build_optimizer(builder *b, spec *s)
{
    ds_optim_opts *o = &b->net->optim;
    memset(o, 0, sizeof *o);
    int k = -1;
    for (int i = 0; i < DS_OPT_COUNT; i++)
        if (!strcmp(s->pos, ds_optim_name((ds_optim_kind)i)))
            k = i;
    char list[256] = "";
    if (k < 0) {
        for (int i = 0; i < DS_OPT_COUNT; i++)
            list_add(list, sizeof list, ds_optim_name((ds_optim_kind)i));
        return fail_at(s, DS_ERR_ARG, "unknown optimizer '%s' (expected %s)",
                       s->pos[0] ? s->pos : "(none)", list_or(list, sizeof list));
    }
    o->kind = (ds_optim_kind)k;
    ds_status st;
    for (int i = 0; i < N_WORDS(optim_keys); i++)
        if ((st = optim_key(s, i, o)))
            return st;
    for (int i = 0; i < N_WORDS(optim_keys); i++)
        list_add(list, sizeof list, optim_keys[i].key);
    b->used[DSI_KW_OPTIMIZER][k] = true;
    if ((st = check_unused(s, list)))
        return st;
    if (b->line_fn) {
        char keys[512] = "";
        for (int i = 0; i < N_WORDS(optim_keys); i++)
            snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s%s%s", i ? " " : "",
                     optim_keys[i].key, optim_keys[i].synonym ? " " : "",
                     optim_keys[i].synonym ? optim_keys[i].synonym : "");
        b->line_fn(b->line_ctx, s->line, "optimizer", "optimizer", keys);
    }
    return DS_OK;
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
    ds_tensor_set_free(n->wmeta);
    for (int i = 0; i < n->n_inputs; i++) {
        ds_tensor_free(n->inputs[i].mean);
        ds_tensor_free(n->inputs[i].std);
    }
    free(n);
}

/* One non-empty line, by its keyword. */
/* The keywords of the lines that are not layers. */
typedef enum { LINE_INPUT, LINE_OUTPUT, LINE_LOSS, LINE_OPTIMIZER } line_kind;
static const char *const line_words[] = {
    [LINE_INPUT] = "input", [LINE_OUTPUT] = "output", [LINE_LOSS] = "loss",
    [LINE_OPTIMIZER] = "optimizer",
};

static ds_status build_line(builder *b, spec *s, bool *have_optim, bool *have_loss)
{
    int kind = word_index(line_words, N_WORDS(line_words), s->kind);
    switch (kind) {
    case LINE_LOSS:
        *have_loss = true;
        return build_loss(b, s);
    case LINE_OUTPUT:
        return build_output(b, s);
    case LINE_OPTIMIZER:
        if (*have_optim)
            return fail_at(s, DS_ERR_ARG, "optimizer: given twice");
        *have_optim = true;
        return build_optimizer(b, s);
    default:
        if (*have_loss)
            return fail_at(s, DS_ERR_ARG, "%s: layers must come before the loss lines", s->kind);
        return kind == LINE_INPUT ? build_input(b, s) : build_layer(b, s);
    }
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
        if (b->n_losses > 1 && l)
            dsi_net_add_term(net, l, b->loss_names[i]);
    }
    /* Bayesian layers: the ELBO's KL term, kept for the training log's column */
    if (total && (net->kl = ds_graph_kl_loss(net->g))) {
        ds_node_keep(net->kl, 1);
        total = ds_add(net->g, total, net->kl);
    }
    net->loss = total;
    if (b->n_losses && !total)
        return dsi_fail(ds_graph_status(net->g) ? ds_graph_status(net->g) : DS_ERR_SHAPE, "%s: combining the losses: %s", b->file, ds_last_error());
    return DS_OK;
}

/* ---- the keyword tables, for tests and the fuzz dictionary ---- */
/* The tests' hook: atomic, so a parse on another thread reads either value, never a torn one. */
static dsi_modelfile_hook_fn _Atomic keyword_hook;

void dsi_modelfile_set_hook(dsi_modelfile_hook_fn fn) { keyword_hook = fn; }

const char *dsi_modelfile_keyword(dsi_kw_table t, int row)
{
    if (row < 0)
        return NULL;
    switch (t) {
    case DSI_KW_LAYER:
        return row < N_LAYER_DEFS ? layer_defs[row].kind : NULL;
    case DSI_KW_ACTIVATION:   /* row a - 1 for DS_ACT a: DS_ACT_NONE is no keyword */
        return row + 1 < DS_ACT_COUNT ? ds_activation_name((ds_activation)(row + 1)) : NULL;
    case DSI_KW_LOSS:
        return row < N_LOSS_DEFS ? loss_defs[row].kind : NULL;
    case DSI_KW_OPTIMIZER:
        return row < DS_OPT_COUNT ? ds_optim_name((ds_optim_kind)row) : NULL;
    case DSI_KW_TABLES:
        break;
    }
    return NULL;
}

static void report_keywords(const builder *b)
{
    dsi_modelfile_hook_fn hook = keyword_hook;
    for (int t = 0; t < DSI_KW_TABLES && hook; t++)
        for (int row = 0; dsi_modelfile_keyword((dsi_kw_table)t, row); row++)
            if (b->used[t][row])
                hook(b->file, (dsi_kw_table)t, row);
}

/* fn on each space-separated word of list. */
static void each_word(const char *list, void (*fn)(const char *word, void *ctx), void *ctx)
{
    char tmp[512], *save = NULL;
    snprintf(tmp, sizeof tmp, "%s", list ? list : "");
    for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save))
        fn(t, ctx);
}

static void each_of(const char *const *words, int n, void (*fn)(const char *, void *), void *ctx)
{
    for (int i = 0; i < n; i++)
        if (words[i])
            fn(words[i], ctx);
}

void dsi_modelfile_words(void (*fn)(const char *word, void *ctx), void *ctx)
{
    each_of(line_words, N_WORDS(line_words), fn, ctx);
    each_word(LAYER_KEYS " " INPUT_KEYS " " LOSS_KEYS, fn, ctx);
    for (int i = 0; i < N_LAYER_DEFS; i++) {
        const layer_def *d = &layer_defs[i];
        fn(d->kind, ctx);
        fn(d->auto_name, ctx);
        each_word(d->keys, fn, ctx);
    }
    for (int i = 0; i < N_WORDS(layer_aliases); i++)
        fn(layer_aliases[i].alias, ctx);
    for (int a = 0; a < DS_ACT_COUNT; a++) {
        fn(ds_activation_name((ds_activation)a), ctx);
        if (act_layers[a].auto_name)
            fn(act_layers[a].auto_name, ctx);
        each_word(act_layers[a].keys, fn, ctx);
    }
    for (int i = 0; i < N_WORDS(act_aliases); i++)
        fn(act_aliases[i].spelling, ctx);
    for (int i = 0; i < N_LOSS_DEFS; i++) {
        fn(loss_defs[i].kind, ctx);
        each_word(loss_defs[i].synonyms, fn, ctx);
        each_word(loss_defs[i].keys, fn, ctx);
    }
    for (int k = 0; k < DS_OPT_COUNT; k++)
        fn(ds_optim_name((ds_optim_kind)k), ctx);
    for (int i = 0; i < N_WORDS(optim_keys); i++) {
        fn(optim_keys[i].key, ctx);
        if (optim_keys[i].synonym)
            fn(optim_keys[i].synonym, ctx);
    }
    for (int k = 0; k < DS_INIT_COUNT; k++)
        fn(ds_init_name((ds_init_kind)k), ctx);
    each_of(schedule_words, N_WORDS(schedule_words), fn, ctx);
    fn(schedule_exp_alias, ctx);
    each_of(true_words, N_WORDS(true_words), fn, ctx);
    each_of(false_words, N_WORDS(false_words), fn, ctx);
    each_of(pad_words, N_WORDS(pad_words), fn, ctx);
    each_of(upsample_words, N_WORDS(upsample_words), fn, ctx);
    each_of(reduction_words, N_WORDS(reduction_words), fn, ctx);
}

static ds_status parse(const char *text, const char *filename, const ds_net_opts *o,
                       dsi_line_fn line_fn, void *line_ctx, ds_net **out);

ds_status ds_net_parse(const char *text, const char *filename, const ds_net_opts *o, ds_net **out)
{
    return parse(text, filename, o, NULL, NULL, out);
}

ds_status dsi_net_parse_lines(const char *text, const char *filename, dsi_line_fn fn, void *ctx)
{
    ds_net_opts o = {.batch = 1};
    ds_net *n = NULL;
    ds_status st = parse(text, filename, &o, fn, ctx, &n);
    ds_net_free(n);
    return st;
}

static ds_status parse(const char *text, const char *filename, const ds_net_opts *o,
                       dsi_line_fn line_fn, void *line_ctx, ds_net **out)
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
    builder b = {.net = net, .file = file, .opts = o ? o : &def, .line_fn = line_fn,
                 .line_ctx = line_ctx};
    b.batch = b.opts->batch > 0 ? b.opts->batch : 32;
    net->optim.kind = DS_OPT_ADAM;
    int lines = 0;
    if (text && !strncmp(text, "\xEF\xBB\xBF", 3))   /* a UTF-8 byte order mark, as editors write */
        text += 3;
    ds_status st = net->g ? build_lines(&b, text, &lines) : DS_ERR_NOMEM;
    if (!st && !net->n_inputs) {
        spec s = {.file = file, .line = lines};
        st = fail_at(&s, DS_ERR_ARG, "no 'input' line: the model needs one, e.g. 'input "
                     "shape=1x28x28'");
    }
    if (!st && !(st = resolve_outputs(&b)))
        st = total_loss(&b);
    free(b.names);
    dsi_index_free(&b.by_name);
    if (!st)
        report_keywords(&b);
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
