/* internal.h - private structures and helpers shared by the library's files. */
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include "deepsky.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DS_DEBUG
#define DS_ASSERT(c) \
    ((c) ? (void)0 : (fprintf(stderr, "%s:%d: internal error: %s\n", __FILE__, __LINE__, #c), \
                      abort()))
#else
#define DS_ASSERT(c) ((void)0)
#endif

#define DS_NAME_MAX 64
#define DS_ALIGN 64

/* ---- errors (error.c) ---- */
ds_status dsi_fail(ds_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- tensors (tensor.c) ---- */
struct ds_tensor {
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    float *data;
    void *map;            /* a mapped file whose bytes data points into (ds_tensor_free
                           * unmaps it), or NULL: data was allocated */
    size_t map_len;
    bool borrowed;        /* data is the caller's (ds_tensor_borrow): ds_tensor_free keeps it */
    /* Every value is known finite, and no write access was ever handed out: set by a
     * loader of integers as it makes the tensor, kept by internal writers that check what
     * they write (scaling), cleared for good by ds_tensor_data (a caller may keep its
     * pointer and write later). Checks read it and skip the pass; they never set it.
     * Atomic: separate runs may read one tensor at once. */
    atomic_bool finite;
};
int64_t dsi_numel(int ndim, const int64_t *shape);
/* A tensor of shape whose values the caller writes at once (not zeroed), or NULL with
 * the message set. */
ds_tensor *dsi_tensor_uninit(int ndim, const int64_t *shape);
/* Whether every value of t is known finite, and saying so (see ds_tensor.finite). */
bool dsi_tensor_known_finite(const ds_tensor *t);
void dsi_tensor_set_finite(const ds_tensor *t, bool finite);
/* Whether x[0..n) are all finite: one vectorized pass, over threads when n is large. */
bool dsi_values_finite(const float *x, int64_t n);
/* A tensor over a file mapped with mmap: data = map + offset (4-byte aligned), which the
 * tensor now owns (freeing it unmaps). The mapping is no allocation of the library's: it
 * is not counted against ds_get_memory_limit(). NULL (with a message) and the mapping
 * left to the caller when the tensor's own small struct cannot be allocated. */
ds_tensor *dsi_tensor_mapped(int ndim, const int64_t *shape, void *map, size_t map_len,
                             size_t offset);
/* For shapes read from outside files: the element count if every dimension is >= 0 and the
 * product stays <= limit (computed without overflow), else -1. */
int64_t dsi_numel_limited(int ndim, const int64_t *shape, int64_t limit);
#define DSI_MAX_FILE_ELEMENTS ((int64_t)1 << 40)   /* what a reader accepts from a header */
/* Metadata of a tensor set, for writers. */
int dsi_tensor_set_meta_count(const ds_tensor_set *s);
const char *dsi_tensor_set_meta_key(const ds_tensor_set *s, int i);
/* Formats into a small rotating static-per-thread buffer: for error messages. */
const char *dsi_shape_str(int ndim, const int64_t *shape);

/* ---- name index (util.c) ---- */
/* A name index: finds an entry of an array of named things by name in constant time (the
 * model's parameters, a model file's layer names). The owner keeps the names; the index
 * keeps positions and asks name_of(ctx, pos) for the name at a position. Names are
 * unique. Zero-initialize; dsi_index_free releases it. */
typedef const char *(*dsi_name_of)(const void *ctx, int pos);
typedef struct {
    int *slot;            /* position + 1, 0: empty; open addressing, power-of-two size */
    int cap, n;
} dsi_name_index;

/* ---- parameters (model.c) ---- */
struct ds_param {
    char name[DS_NAME_MAX];
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    size_t offset;        /* into m->data */
    size_t goffset;       /* into m->grad (trainable only) */
    int trainable;
    ds_model *m;
    int index;            /* position in m->params */
};

struct ds_model {
    ds_param **params;
    int n, cap;
    dsi_name_index by_name; /* params by name */
    float *data, *grad;    /* contiguous blocks */
    size_t data_n, grad_n; /* floats used */
    size_t data_cap, grad_cap;
    ds_rng rng;
    uint64_t version;      /* bumped whenever the values may change (dsi_model_touch): an
                            * inference plan refolds batch norm when it differs */
    uint64_t weights_version; /* the same but for batch norm's running statistics moving in a
                            * forward pass (dsi_model_touch_stats): cached Winograd filters of
                            * a convolution (conv_winograd.c) are current while it is */
    /* counters for automatic layer names, per type */
    struct { char type[32]; int count; } *names;
    int n_names, cap_names;
};
/* Next automatic name "<type>_<k>" (k from 1) into buf. Fails only for want of memory for
 * the counters (no other name would do: names identify parameters in weights files). */
ds_status dsi_model_auto_name(ds_model *m, const char *type, char *buf, size_t cap);
/* Records that parameter values may have changed (any writer but the accessors, which
 * call it themselves). */
static inline void dsi_model_touch(ds_model *m)
{
    m->version++;
    m->weights_version++;
}
/* Records that batch norm's running statistics move (no other parameter). */
static inline void dsi_model_touch_stats(ds_model *m) { m->version++; }
/* Finds "<layer>.<suffix>" or creates it with init. Checks the shape of an existing one. */
ds_param *dsi_model_get_param(ds_model *m, const char *layer, const char *suffix, int ndim,
                              const int64_t *shape, int trainable, ds_init init);

/* ---- graph (graph.c) ---- */
/* The ops, in the order of the list in ops/op_list.h. */
#include "ops/op_list.h"
#define DSI_OP_ENUM(E, name, attr) DS_OP_##E,
typedef enum { DSI_OP_LIST(DSI_OP_ENUM) DS_OP_COUNT } ds_op;
#undef DSI_OP_ENUM

/* ---- op attributes (union dsi_attr) and run-time state (union dsi_state) ----
 * Attributes are what the builder gives an op: one struct per kind, read by name, as in
 * y->attr.conv.stride[0]; ops/op_list.h names each op's member. Nothing writes them after
 * the build except the planner's fusion pass, which sets the `act` of conv, linear and
 * batchnorm (dsi_fused_act), and ds_graph_set_kl_weight (a KL op's automatic weight). What an op derives or records while planning or running
 * lives apart, in y->state, so the attributes always say what was built. */
enum { DSI_FUSE_NONE = 0, DSI_FUSE_RELU = 1 };   /* values of an `act` attribute */

typedef struct { char unused; } dsi_none_attr;   /* ops without attributes */
typedef struct { float c; } dsi_scalar_attr;     /* add_scalar, mul_scalar: c; pow_scalar: p */
typedef struct { float slope; } dsi_leaky_relu_attr;
typedef struct { float alpha; } dsi_elu_attr;
typedef struct { int axis; } dsi_softmax_attr;   /* negative: from the end */
typedef struct {
    int naxes;                 /* 0: every axis */
    bool keepdim;
    int axes[DS_MAX_DIMS];     /* as given: negative from the end */
} dsi_reduce_attr;
typedef struct { int act; } dsi_linear_attr;     /* a fused activation (DSI_FUSE_*) */
typedef struct { int axis; } dsi_concat_attr;    /* negative: from the end */
typedef struct {
    bool flatten;              /* [N, ...] -> [N, prod(...)]; ndim and shape unused */
    int ndim;
    int64_t shape[DS_MAX_DIMS];   /* target; one entry may be -1 */
} dsi_reshape_attr;
typedef struct {
    int axis;
    int64_t start, end;        /* as given: negative from the end */
} dsi_slice_attr;
typedef struct {
    int nd;                    /* spatial axes: 1, 2 or 3; the arrays hold nd entries */
    int64_t stride[3], pad_lo[3], pad_hi[3], dilation[3];
    int act;                   /* a fused activation (DSI_FUSE_*) */
} dsi_conv_attr;
typedef struct {
    int64_t stride[2], pad_lo[2];
    int64_t pad_hi[2];         /* padding - output_padding: negative adds rows at the end */
    int64_t dilation[2];
    int64_t output_padding[2]; /* for the checks */
} dsi_conv_transpose_attr;
typedef struct {
    int64_t scale;
    ds_upsample_mode mode;
} dsi_upsample_attr;
typedef struct {
    int nd;                    /* spatial axes: 1, 2 or 3; the arrays hold nd entries */
    ds_pool_kind kind;
    ds_padding padding;
    bool exclude_pad;
    int64_t size[3], stride[3];
    int64_t pad[3];            /* DS_PAD_EXPLICIT: on both sides */
} dsi_pool_attr;
typedef struct { ds_pool_kind kind; } dsi_global_pool_attr;
typedef struct { float rate; } dsi_dropout_attr;
typedef struct {
    float momentum, eps;
    int act;                   /* a fused activation (DSI_FUSE_*), only ever set by the planner */
} dsi_batchnorm_attr;
typedef struct {
    ds_reduction reduction;
    int group;                   /* loss_msb: realizations per case */
    float mse;                   /* loss_msb: weight of the MSE term */
    int unbiased;                /* loss_msb: the noise's share taken out of b^2 */
} dsi_loss_attr;
typedef struct {
    float prior_sigma;         /* the prior N(0, prior_sigma^2) of every weight */
    /* The KL's factor in the loss. An automatic one (auto_weight) is the one attribute a
     * caller sets after the build (ds_graph_set_kl_weight: fit's 1/N); 0 until then. */
    float weight;
    bool auto_weight, weight_set;
} dsi_bayes_kl_attr;

union dsi_attr {
    dsi_none_attr none;
    dsi_scalar_attr scalar;
    dsi_leaky_relu_attr leaky_relu;
    dsi_elu_attr elu;
    dsi_softmax_attr softmax;
    dsi_reduce_attr reduce;
    dsi_linear_attr linear;
    dsi_concat_attr concat;
    dsi_reshape_attr reshape;
    dsi_slice_attr slice;
    dsi_conv_attr conv;
    dsi_conv_transpose_attr conv_transpose;
    dsi_upsample_attr upsample;
    dsi_pool_attr pool;
    dsi_global_pool_attr global_pool;
    dsi_dropout_attr dropout;
    dsi_batchnorm_attr batchnorm;
    dsi_loss_attr loss;
    dsi_bayes_kl_attr bayes_kl;
};
/* Bytes of each op's attribute struct (0 for none): what dsi_node copies (ops_table.c). */
extern const size_t dsi_attr_bytes[DS_OP_COUNT];

/* Written by the op's shape rule or forward, read by its later passes. */
union dsi_state {
    struct {
        int64_t lo[3], hi[3];  /* padding before and after, per axis (shape rule) */
    } pool;
    struct {
        bool batch_stats;      /* the last forward normalized with batch statistics */
        double group_count;    /* SyncBN: the values per channel over the ranks */
    } batchnorm;
    struct {
        bool dropped;          /* the last forward dropped (DS_DROPOUT_ON and rate > 0) */
    } dropout;
    struct {
        bool sampled;          /* the last forward sampled (DS_DROPOUT_ON): w = mu + sigma eps */
        const float *eps;      /* a fixed noise instead of the graph's stream (tests), or NULL */
    } bayes;
    struct {
        bool sampled;          /* the last forward drew z = mean + e^(logvar/2) eps */
        const float *eps;      /* a fixed noise instead of the graph's stream (tests), or NULL */
        const float *z;        /* values to output instead (generation from the prior), or NULL */
    } gauss;
};

/* What a convolution's cached Winograd filters (ds_node.wino_u) were transformed from. They
 * live in the graph's memory, not the node, so that the copies of a node an inference plan
 * runs on (infer.c's views) share them. */
typedef struct {
    const float *u;        /* where they are (a planning may move them) */
    const float *src;      /* the weights transformed (the conv's, or its batch-norm fold) */
    uint64_t version;      /* the model's version then (filters_version, conv_winograd.c) */
    uint64_t step;         /* g->step of the pass that transformed them */
    int m;                 /* output tile side of the transform; 0: nothing cached */
} dsi_wino_stamp;

struct ds_node {
    ds_graph *g;
    int id;                /* index in g->nodes; creation order is a topological order */
    ds_op op;
    int n_in;
    ds_node **in;          /* n_in inputs (g-owned array) */
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    float *data;           /* planned memory (or the parameter's, or an alias of in[0]) */
    float *grad;           /* NULL when no gradient flows here */
    void *saved;           /* op workspace kept from forward to backward (saved_bytes) */
    ds_param *param;       /* DS_OP_PARAM */
    int layer;             /* index into g->layers, -1 for parameter nodes */
    bool is_input;
    bool wants_grad;       /* user asked for the gradient of this input */
    bool needs_grad;       /* computed at planning: a gradient flows through this node */
    bool on_path;          /* scratch for backward: upstream of the seeded node */
    bool keep;             /* ds_node_keep: data and gradient kept for the whole run */
    bool persist;          /* planned: data and gradient own their memory for the whole run */
    bool grad_ready;       /* scratch for backward: the gradient was zeroed in this pass */
    bool fused;            /* planned: a ReLU computed by in[0]'s op (see dsi_fused_act),
                            * sharing in[0]'s data and gradient as an alias does */
    union dsi_attr attr;   /* the op's attributes: the member op_list.h names */
    union dsi_state state; /* the op's run-time state */
    /* Set by an inference plan (infer.c) only, cleared by every planning: */
    ds_node *fold;         /* the batch norm folded into this conv or linear op, or NULL */
    float *fold_w, *fold_b;/* its weights and bias with the batch norm folded in */
    bool folded;           /* a batch norm computed by in[0] through fold: an alias */
    ds_node *pool;         /* the pooling computed with this conv, sub-batch by sub-batch */
    int64_t pool_sub;      /* samples per sub-batch */
    int pool_slots;        /* sub-batches run at once, one per thread: data holds that many */
    size_t pool_slice;     /* scratch bytes of one of them */
    bool pooled;           /* a pooling computed by the conv that feeds it (its pool) */
    /* Set by every planning (conv.c's dsi_conv_cache_floats says which nodes): */
    float *wino_u;         /* this conv's Winograd-transformed filters in g->wino_buf, or NULL */
    dsi_wino_stamp *wino_stamp;   /* what wino_u holds (g->wino_stamps[id]) */
};

typedef struct {
    char name[DS_NAME_MAX];
    char type[24];         /* "Dense", "Conv2D", "InputLayer", ... */
    int out;               /* id of the output node (last node created in the layer) */
    int first;             /* id of the first node */
} dsi_layer;

struct ds_graph {
    ds_model *m;
    ds_node **nodes;
    int n_nodes, cap_nodes;
    ds_node **inputs;
    int n_inputs, cap_inputs;
    dsi_layer *layers;
    int n_layers, cap_layers;
    int cur_layer;         /* open layer scope, or -1 */
    int scope_depth;       /* nesting of dsi_layer_begin calls */
    bool ran_forward;      /* a forward has run since the last planning */
    bool keep_all;         /* ds_graph_keep_all: no memory is shared between nodes */
    bool infer;            /* planned for inference (DS_INFER): no gradients, folds, fusions */
    float *fold_buf;       /* inference plan: the folded weights and biases */
    size_t fold_bytes, fold_cap;
    uint64_t fold_version; /* the model's version they were folded from */
    bool fold_ready;       /* fold_buf holds the folds of fold_version */
    float *wino_buf;       /* the convolutions' cached Winograd filters (wino_u), any plan */
    size_t wino_bytes, wino_cap;
    dsi_wino_stamp *wino_stamps;   /* one per node (n_nodes at the last planning) */
    int wino_nstamps;
    bool bwd_clobbers;     /* planned: a backward pass overwrites values backward reads */
    bool bwd_spent;        /* a backward pass has clobbered the last forward's values */
    int64_t plan_batch;    /* batch size at the last planning (inputs keep their values) */
    ds_status status;      /* first build error */
    int mode;
    uint64_t seed;         /* dropout stream */
    uint64_t step;         /* forward calls so far: dropout masks differ per step */
    bool planned;
    char *block;           /* planned memory */
    size_t block_bytes, block_cap;
    float *scratch;        /* transient workspace shared by all ops (scratch_bytes) */
    size_t scratch_bytes;
    ds_status run_status;  /* runtime failure raised by an op during forward or backward */
    const ds_dist *sync;   /* SyncBN: batch norm's batch statistics are summed over these
                            * ranks (set by the trainer around its passes; NULL: none) */
    /* small allocations owned by the graph (input arrays) */
    void **allocs;
    int n_allocs, cap_allocs;
};

/* An op's kernels for one kind of memory. Forward and backward cannot fail: their memory
 * is reserved at planning. Backward ADDS into in[i]->grad (NULL when that input needs none). */
typedef struct {
    void (*forward)(ds_node *y);
    void (*backward)(ds_node *y);
} dsi_kernels;

/* Op definition (its name comes from ops/op_list.h). The shape rule runs when the node is
 * built (and again when the batch size changes) and may fail with a message. */
typedef struct {
    ds_status (*shape)(ds_node *y);
    /* The kernels on host memory: y->data, y->grad, y->saved and g->scratch point into the
     * graph's malloc'd blocks. The seam of a GPU backend (none is built): a `dsi_kernels
     * gpu;` slot would sit beside this one, its kernels taking the same node pointers as
     * offsets into a device copy of the planned block (see ds_graph_plan), and the drivers
     * (ds_graph_forward_to, backward in graph.c) would call the slot of the graph's device.
     * Everything else here (shape, sizes, reads) is the planner's and stays shared. */
    dsi_kernels cpu;
    size_t (*saved_bytes)(const ds_node *y);    /* optional, kept forward -> backward */
    size_t (*scratch_bytes)(const ds_node *y);  /* optional, transient, shared */
    bool alias;            /* output shares data and grad with in[0] (reshape) */
    /* For the memory plan: what backward reads besides y->grad and y->saved, as bits
     * DSI_READS_IN(k) (in[k]->data) and DSI_READS_OUT (y->data). NULL means everything,
     * the safe default. Bits of inputs past n_in are ignored; only in[0..30] can be named,
     * so an op with more inputs whose backward reads their data must leave this NULL. */
    uint32_t (*bwd_reads)(const ds_node *y);
    /* Forward is correct with y->data == in[0]->data when both have y's numel: the plan
     * then lets y overwrite in[0] when nothing reads in[0] after y's forward. */
    bool inplace;
    /* Forward accepts y->saved == NULL, which an inference plan gives it: it then skips what
     * it records only for backward (a max pool's argmax, batch norm's statistics). */
    bool saved_optional;
    /* Pointwise ops (y = f(x), element by element) only, NULL for the others: f'(x) and
     * f''(x) in double, which are all the Newton rules (optim/rop.c) need of them. */
    void (*derivs)(const ds_node *y, double x, double *d1, double *d2);
    /* random when the mode has DS_DROPOUT_ON (dropout, Bayesian weights): --mc samples it */
    bool stochastic;
} ds_op_def;

#define DSI_READS_IN(k) (1u << (k))
#define DSI_READS_OUT (1u << 31)
/* bwd_reads hooks for the common cases (graph.c). */
uint32_t dsi_reads_none(const ds_node *y);
uint32_t dsi_reads_out(const ds_node *y);
uint32_t dsi_reads_in0(const ds_node *y);
uint32_t dsi_reads_in1(const ds_node *y);
uint32_t dsi_reads_in01(const ds_node *y);
uint32_t dsi_reads_inputs(const ds_node *y);   /* every input, not the output */

extern const ds_op_def *const dsi_ops[DS_OP_COUNT];   /* indexed by ds_op (ops_table.c) */
extern const char *const dsi_op_names[DS_OP_COUNT];   /* "conv", "loss_mse", ... */

/* Creates a node with the given inputs (any NULL input: returns NULL silently; a failed
 * graph: NULL). attr points at the op's attribute struct (the member of union dsi_attr that
 * ops/op_list.h names for op), NULL for an op without attributes; it is copied into the
 * node before the shape rule runs. Runs the shape rule; on failure records the graph status
 * and returns NULL. */
ds_node *dsi_node(ds_graph *g, ds_op op, int n_in, ds_node *const *in, const void *attr);
/* Records a build error on g (first wins) and returns NULL. */
ds_node *dsi_build_fail(ds_graph *g, ds_status s);
/* Opens a named layer scope: nodes created until dsi_layer_end belong to it. name NULL or
 * "": automatic name from auto_type ("dense" -> "dense_1"). Writes the final name to
 * out_name (DS_NAME_MAX). Inside an open scope (an activation inside a dense layer) no new
 * layer is made: the nodes join the outer layer, but out_name still gets the given or
 * automatic name (for parameter names). A name may repeat: applying a layer twice shares
 * its parameters. Returns false (graph status set) if the name is too long or g failed. */
bool dsi_layer_begin(ds_graph *g, const char *type, const char *auto_type, const char *name,
                     char *out_name);
/* Closes the scope; returns y (NULL passes through). */
ds_node *dsi_layer_end(ds_graph *g, ds_node *y);
/* Name of the layer a node belongs to (for messages). */
const char *dsi_node_layer(const ds_node *n);
/* Fails with "<op> '<layer>': <message>" and returns the status. */
ds_status dsi_fail_node(const ds_node *y, ds_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Runtime data error raised inside forward (first wins). */
void dsi_run_fail(ds_graph *g, ds_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Sets y's shape. */
void dsi_set_shape(ds_node *y, int ndim, const int64_t *shape);
/* The shape rule of an op of two inputs of one shape (mean and a spread): y takes it; else
 * DS_ERR_SHAPE naming the inputs as a and b. */
ds_status dsi_shape_of_pair(ds_node *y, const char *a, const char *b);
/* Normalizes a possibly negative axis for ndim; -1 if out of range. */
int dsi_axis(int axis, int ndim);

/* Activations fused into the op that feeds them (conv, linear, batchnorm): one pass over the
 * output instead of an activation node with its own buffers. The `act` attribute of y's op,
 * or NULL if the op has none. The planner fuses a following ReLU into these ops when
 * nothing else reads their value (graph.c). */
int *dsi_fused_act(ds_node *y);
/* ---- Bayesian layers (ops/bayes.c, layers/bayes.c) ---- */
/* Makes a conv layer's weight and bias nodes (wn; bn NULL without a bias) of the given
 * shapes; false with the graph failed. */
typedef bool (*dsi_conv_weights_fn)(void *ctx, ds_graph *g, const char *name, int ndim,
                                    const int64_t *wshape, int64_t nbias, ds_node **wn,
                                    ds_node **bn);
/* The conv layer of ds_conv (inside its open layer scope, name its name) with weights from
 * make instead of its own parameters (layers/conv.c). */
ds_node *dsi_conv_layer(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o,
                        const char *name, dsi_conv_weights_fn make, void *ctx);
/* Makes the sampling op y = mu + softplus(rho) eps draw its noise from eps (numel floats,
 * borrowed until the next call) instead of the graph's stream; NULL restores the stream.
 * For tests that compare with a reference computed with the same noise. */
void dsi_bayes_fix_noise(ds_node *y, const float *eps);
/* The VAE's sampling op (ops/sample.c): draw eps from eps (numel floats, borrowed; NULL: the
 * graph's stream), for tests; output z (numel floats, borrowed; NULL: sample) instead. */
void dsi_sample_fix_noise(ds_node *y, const float *eps);
void dsi_sample_inject(ds_node *y, const float *z);

/* ds_linear with a fused activation act (matmul.c). */
ds_node *dsi_linear_fused(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int act);

/* A hash-based uniform in [0,1) for (seed, step, index): dropout masks are independent of
 * the thread count and reproducible. */
static inline uint64_t dsi_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Standard normal number i of the counter-based stream key (Box-Muller on two hashed
 * uniforms): the noise of Bayesian weights and of VAE samples, the same at any thread
 * count (rng.c). */
float dsi_normal_at(uint64_t key, int64_t i);

/* ---- threads (threads.c) ---- */
int dsi_threads(void);
/* Pragmas used by kernels: parallel only when the work is large enough to pay. */
#define DS_PAR_MIN 32768
/* OpenMP's run-time calls. The NO_OPENMP build compiles with -fopenmp-simd instead of
 * -fopenmp: the compiler ignores every pragma but "omp simd", and these stand-ins describe
 * the single thread that then runs each region. Files use them through this header and
 * never include <omp.h> themselves. */
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_level(void) { return 0; }
static inline int omp_in_parallel(void) { return 0; }
#endif
/* On a variable or function only an OpenMP clause reads (if, num_threads): without OpenMP
 * the clause is gone and it would be reported unused. */
#ifdef _OPENMP
#define DS_OMP_ONLY
#else
#define DS_OMP_ONLY __attribute__((unused))
#endif

/* Hot loops of the portable build (make PORTABLE=1, which targets the x86-64 baseline):
 * compiled three times, for the baseline, x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512),
 * and the dynamic loader picks one per function from the CPU (GCC's target_clones, an
 * ifunc). Empty in the default build, which uses -march=native everywhere. It goes on an
 * op's forward and backward, and on each helper of theirs that stays a function of its own:
 * one called from another file, a NOINLINE kernel, one gcc chose not to inline, and any
 * that holds an OpenMP region (the region's body is outlined before cloning, so it would
 * stay at the baseline). Small static helpers need nothing: they are inlined into each
 * clone. `nm` on a portable build's object lists the functions left without clones. */
#if defined(DS_PORTABLE) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DS_HOT __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define DS_HOT
#endif

/* ---- BLAS (src/blas/): row-major sgemm, C = alpha op(A) op(B) + beta C. With OpenBLAS
 * (the default) this is cblas_sgemm; we link its OpenMP build: called inside an OpenMP
 * parallel region it runs on the calling thread only, so kernels may split work over the
 * batch and call it per sample. The NO_BLAS build runs dsi_sgemm_own (sgemm.c), which does
 * the same: threads only when called outside any parallel region. ---- */
void dsi_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
               float *c, int64_t ldc);
/* Threads of the BLAS library (ds_set_num_threads; nothing for our own). */
void dsi_blas_set_threads(int n);
void dsi_sgemm_own(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc);
/* The double-precision pieces of the Newton optimizer's Cholesky (newton.c), row-major,
 * n x n matrices with leading dimension ld:
 * dsi_dtrsm_rlt:  B = B L^-T, L n x n lower triangular, B m x n;
 * dsi_dsyrk_ln:   C = C - A A^T on C's lower triangle, A n x k;
 * dsi_dtrsv_l:    x = L^-1 x (trans false) or L^-T x (trans true). */
void dsi_dtrsm_rlt(int64_t m, int64_t n, const double *L, int64_t ldl, double *B, int64_t ldb);
void dsi_dsyrk_ln(int64_t n, int64_t k, const double *A, int64_t lda, double *C, int64_t ldc);
void dsi_dtrsv_l(bool trans, int64_t n, const double *L, int64_t ldl, double *x);

/* ---- memory plan (plan.c) ---- */
/* One buffer of a graph's plan: its size, its lifetime on the timeline of a step (forward
 * 0..n-1, then backward n..2n-1), and the offset the plan gives it. */
typedef struct {
    size_t bytes, off;
    int start, end;        /* first and last time step, inclusive */
    bool value;            /* data or saved: what a second backward pass would read again */
} dsi_plan_buf;
/* Plans with more pairs of buffers overlapping in time than this use the sweep (plan.c). */
#define DSI_PLAN_GREEDY_PAIRS ((int64_t)1 << 20)
/* Sets each buffer's offset (steps: time steps, 2n) so that buffers overlapping in time
 * never share a byte, and returns the block size; SIZE_MAX when out of memory. */
size_t dsi_plan_offsets(dsi_plan_buf *b, int nb, int steps);
/* Pairs of buffers whose lifetimes overlap, or -1 when out of memory. */
int64_t dsi_plan_pairs(const dsi_plan_buf *b, int nb, int steps);
/* 1 when a backward pass (times n..2n-1) writes over a value it reads later, 0 if not, -1
 * when out of memory. */
int dsi_plan_clobbers(const dsi_plan_buf *b, int nb, int n);

/* ---- inference plans (infer.c) ----
 * What an inference plan (DS_INFER in the mode at planning) changes beyond dropping
 * gradients: batch norm folded into the conv or linear op before it, and a pooling computed
 * with the convolution before it, one sub-batch at a time. */
/* Undoes the last plan's folds and fusions (every planning starts with it). */
void dsi_infer_reset(ds_graph *g);
/* Marks the folds and fusions; count[i] is the number of readers of node i. */
void dsi_infer_mark(ds_graph *g, const int *count);
/* Scratch bytes node y needs as the driver runs it. */
size_t dsi_infer_scratch(ds_node *y);
/* Floats of g->fold_buf the marked folds need; dsi_infer_bind points them into it. */
size_t dsi_infer_fold_floats(const ds_graph *g);
void dsi_infer_bind(ds_graph *g);
/* Runs y's forward: through its folded weights and its fused pooling when it has them. */
void dsi_infer_forward(ds_node *y);
/* Refolds when the model's values changed since the last fold. */
void dsi_infer_refold(ds_graph *g);

/* ---- cached Winograd filters (ops/conv.c, ops/conv_winograd.c) ---- */
/* Floats of g->wino_buf that conv node y's transformed filters take: 0 (none cached) unless
 * Winograd may compute y and its weights are a parameter (so the model's version says when
 * they change). */
size_t dsi_conv_cache_floats(const ds_node *y);
/* Brings y's cached filters up to date before forward passes run on copies of y in
 * parallel (infer.c's pooled sub-batches), which then only read them. */
void dsi_conv_prepare(ds_node *y);

/* ---- small utilities (util.c) ---- */
/* A growing string. Appends never fail: oom records an allocation failure, checked once at
 * the end. p is NUL-terminated (or NULL before the first append); free(p) releases it. */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} dsi_buf;
void dsi_buf_put(dsi_buf *b, const char *s, size_t n);
void dsi_buf_puts(dsi_buf *b, const char *s);
void dsi_buf_printf(dsi_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void *dsi_aligned_alloc(size_t bytes);   /* zeroed, DS_ALIGN aligned; free with free() */
/* Not zeroed: for the graph's planned block and workspace, whose every value is written
 * before it is read (pages a pass never touches are never faulted in). */
void *dsi_aligned_alloc_raw(size_t bytes);
/* Both refuse (NULL) a request above ds_get_memory_limit(). dsi_mem_note(bytes) is "" or, for
 * such a request, "; more than the memory limit of ..." to append to the message. */
const char *dsi_mem_note(size_t bytes);
/* The status of the last dsi_fail on this thread (to pass a callee's failure on). */
ds_status dsi_last_status(void);
char *dsi_strdup(const char *s);
/* "1 sample", "2 samples": the word for a count in messages. */
static inline const char *dsi_plural(int64_t count, const char *one, const char *many)
{
    return count == 1 ? one : many;
}
/* The name index (dsi_name_index, declared above). */
/* Adds position pos (its name must be in place already). false when out of memory. */
bool dsi_index_add(dsi_name_index *ix, int pos, dsi_name_of name_of, const void *ctx);
/* The position of name, or -1. */
int  dsi_index_find(const dsi_name_index *ix, const char *name, dsi_name_of name_of,
                    const void *ctx);
void dsi_index_free(dsi_name_index *ix);
int   dsi_snprintf_cat(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
