/* graph.c - graph building (nodes, layer scopes, shape rules), memory planning, and the
 * forward and backward drivers. */
#include "internal.h"

ds_graph *ds_graph_create(ds_model *m, uint64_t seed)
{
    if (!m) {
        dsi_fail(DS_ERR_ARG, "ds_graph_create: model is NULL");
        return NULL;
    }
    ds_graph *g = calloc(1, sizeof *g);
    if (!g) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for a graph");
        return NULL;
    }
    g->m = m;
    g->cur_layer = -1;
    g->seed = dsi_mix64(seed ^ 0x5eed5eed5eedULL);
    g->mode = DS_MODE_EVAL;
    return g;
}

void ds_graph_free(ds_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i]->in);
        free(g->nodes[i]);
    }
    free(g->nodes);
    free(g->inputs);
    free(g->layers);
    free(g->block);
    free(g->scratch);
    free(g->fold_buf);
    free(g->wino_buf);
    free(g->wino_stamps);
    free(g);
}

ds_model *ds_graph_model(const ds_graph *g) { return g->m; }
ds_status ds_graph_status(const ds_graph *g) { return g->status; }
/* An inference plan is made for DS_INFER, and folds batch norm only without DS_BN_BATCH:
 * changing either plans again. */
void ds_graph_set_mode(ds_graph *g, int mode)
{
    bool infer = (mode & DS_INFER) != 0;
    if (g->planned && (infer != g->infer ||
                       (infer && ((mode ^ g->mode) & DS_BN_BATCH))))
        g->planned = false;
    g->mode = mode;
}
int ds_graph_mode(const ds_graph *g) { return g->mode; }
int ds_graph_node_count(const ds_graph *g) { return g->n_nodes; }
ds_node *ds_graph_node(const ds_graph *g, int i) { return (i >= 0 && i < g->n_nodes) ? g->nodes[i] : NULL; }
int ds_graph_input_count(const ds_graph *g) { return g->n_inputs; }
ds_node *ds_graph_input(const ds_graph *g, int i) { return (i >= 0 && i < g->n_inputs) ? g->inputs[i] : NULL; }
size_t ds_graph_bytes(const ds_graph *g)
{
    return g->block_bytes + g->scratch_bytes + g->fold_bytes + g->wino_bytes;
}

int64_t ds_graph_batch(const ds_graph *g)
{
    return (g->n_inputs && g->inputs[0]->ndim) ? g->inputs[0]->shape[0] : 0;
}

ds_node *dsi_build_fail(ds_graph *g, ds_status s)
{
    if (g->status == DS_OK)
        g->status = s;
    return NULL;
}

int ds_node_ndim(const ds_node *n) { return n->ndim; }
const int64_t *ds_node_shape(const ds_node *n) { return n->shape; }
int64_t ds_node_numel(const ds_node *n) { return n->numel; }
const char *ds_node_op_name(const ds_node *n) { return dsi_op_names[n->op]; }
/* Host pointers into the planned block. The host-copy seam of a GPU backend (none is built):
 * with the block on a device, these two and ds_graph_set_input would copy between the
 * device block and a host buffer instead of handing out the node's pointer. */
float *ds_node_data(ds_node *n) { return n->data; }
float *ds_node_grad(ds_node *n) { return n->grad; }

const char *dsi_node_layer(const ds_node *n)
{
    if (n->op == DS_OP_PARAM)
        return n->param->name;
    return n->layer >= 0 ? n->g->layers[n->layer].name : "?";
}
const char *ds_node_layer_name(const ds_node *n) { return dsi_node_layer(n); }

ds_status dsi_fail_node(const ds_node *y, ds_status s, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsi_fail(s, "%s '%s': %s", dsi_op_names[y->op], dsi_node_layer(y), msg);
}

void dsi_run_fail(ds_graph *g, ds_status s, const char *fmt, ...)
{
    if (g->run_status != DS_OK)
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g->run_status = dsi_fail(s, "%s", msg);
}

void dsi_set_shape(ds_node *y, int ndim, const int64_t *shape)
{
    y->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        y->shape[i] = shape[i];
    y->numel = dsi_numel(ndim, shape);
}

ds_status dsi_shape_of_pair(ds_node *y, const char *a, const char *b)
{
    const ds_node *x0 = y->in[0], *x1 = y->in[1];
    if (x0->ndim != x1->ndim || memcmp(x0->shape, x1->shape, (size_t)x0->ndim * sizeof *x0->shape))
        return dsi_fail_node(y, DS_ERR_SHAPE, "%s %s and %s %s differ in shape", a,
                             dsi_shape_str(x0->ndim, x0->shape), b,
                             dsi_shape_str(x1->ndim, x1->shape));
    dsi_set_shape(y, x0->ndim, x0->shape);
    return DS_OK;
}

int dsi_axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis >= 0 && axis < ndim) ? axis : -1;
}

/* ---- layers ---- */
static bool push_layer(ds_graph *g, const char *name, const char *type)
{
    if (g->n_layers == g->cap_layers) {
        int cap = g->cap_layers ? 2 * g->cap_layers : 32;
        dsi_layer *nl = realloc(g->layers, (size_t)cap * sizeof *nl);
        if (!nl)
            return false;
        g->layers = nl;
        g->cap_layers = cap;
    }
    dsi_layer *l = &g->layers[g->n_layers];
    snprintf(l->name, sizeof l->name, "%s", name);
    snprintf(l->type, sizeof l->type, "%s", type);
    l->first = g->n_nodes;
    l->out = -1;
    g->n_layers++;
    return true;
}

bool dsi_layer_begin(ds_graph *g, const char *type, const char *auto_type, const char *name,
                     char *out_name)
{
    if (!g || g->status != DS_OK)
        return false;
    if (name && *name) {
        if (strlen(name) >= DS_NAME_MAX - 16) {
            dsi_fail(DS_ERR_ARG, "layer name '%s' is longer than %d characters", name,
                     DS_NAME_MAX - 17);
            dsi_build_fail(g, DS_ERR_ARG);
            return false;
        }
        strcpy(out_name, name);
    } else if (dsi_model_auto_name(g->m, auto_type, out_name, DS_NAME_MAX)) {
        dsi_build_fail(g, DS_ERR_NOMEM);
        return false;
    }
    if (g->scope_depth++ > 0)
        return true;
    if (!push_layer(g, out_name, type)) {
        g->scope_depth--;
        dsi_fail(DS_ERR_NOMEM, "out of memory for layer '%s'", out_name);
        dsi_build_fail(g, DS_ERR_NOMEM);
        return false;
    }
    g->cur_layer = g->n_layers - 1;
    return true;
}

ds_node *dsi_layer_end(ds_graph *g, ds_node *y)
{
    if (!g || g->scope_depth == 0)
        return y;
    if (--g->scope_depth > 0)
        return y;
    int li = g->cur_layer;
    g->cur_layer = -1;
    if (!y || g->layers[li].out < 0)
        g->n_layers = li;   /* the layer failed: drop its record */
    return y;
}

/* ---- nodes ---- */
static bool push_node(ds_graph *g, ds_node *n)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
        ds_node **nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return false;
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    n->id = g->n_nodes;
    g->nodes[g->n_nodes++] = n;
    return true;
}

ds_node *dsi_node(ds_graph *g, ds_op op, int n_in, ds_node *const *in, const void *attr)
{
    if (!g || g->status != DS_OK)
        return NULL;
    for (int i = 0; i < n_in; i++) {
        if (!in[i])
            return NULL;
        if (in[i]->g != g) {
            dsi_fail(DS_ERR_ARG, "%s: input %d belongs to another graph", dsi_op_names[op], i);
            return dsi_build_fail(g, DS_ERR_ARG);
        }
    }
    DS_ASSERT(op < DS_OP_COUNT && dsi_ops[op]);
    DS_ASSERT((attr != NULL) == (dsi_attr_bytes[op] > 0));
    ds_node *y = calloc(1, sizeof *y);
    ds_node **ins = n_in ? malloc((size_t)n_in * sizeof *ins) : NULL;
    if (!y || (n_in && !ins)) {
        free(y);
        free(ins);
        dsi_fail(DS_ERR_NOMEM, "out of memory building %s", dsi_op_names[op]);
        return dsi_build_fail(g, DS_ERR_NOMEM);
    }
    y->g = g;
    y->op = op;
    y->n_in = n_in;
    y->in = ins;
    for (int i = 0; i < n_in; i++)
        ins[i] = in[i];
    if (attr)
        memcpy(&y->attr, attr, dsi_attr_bytes[op]);
    y->id = g->n_nodes;

    /* A bare op outside any layer becomes a layer of its own ("add_1"). */
    bool implicit = g->cur_layer < 0 && op != DS_OP_PARAM && op != DS_OP_INPUT;
    char name[DS_NAME_MAX];
    if (implicit) {
        bool named = !dsi_model_auto_name(g->m, dsi_op_names[op], name, sizeof name);
        if (!named || !push_layer(g, name, dsi_op_names[op])) {
            free(ins);
            free(y);
            if (named)
                dsi_fail(DS_ERR_NOMEM, "out of memory building %s", dsi_op_names[op]);
            return dsi_build_fail(g, DS_ERR_NOMEM);
        }
        y->layer = g->n_layers - 1;
    } else {
        y->layer = g->cur_layer;
    }

    ds_status st = dsi_ops[op]->shape ? dsi_ops[op]->shape(y) : DS_OK;
    if (st == DS_OK && !push_node(g, y))
        st = dsi_fail(DS_ERR_NOMEM, "out of memory building %s", dsi_op_names[op]);
    if (st != DS_OK) {
        if (implicit)
            g->n_layers--;
        free(ins);
        free(y);
        return dsi_build_fail(g, st);
    }
    if (y->layer >= 0 && op != DS_OP_PARAM)
        g->layers[y->layer].out = y->id;
    g->planned = false;
    return y;
}

ds_node *ds_input(ds_graph *g, const char *name, int ndim, const int64_t *shape)
{
    if (!g || g->status != DS_OK)
        return NULL;
    if (!name || !*name || strlen(name) >= DS_NAME_MAX) {
        dsi_fail(DS_ERR_ARG, "input name '%s' is empty or too long", name ? name : "");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    if (ds_graph_find(g, name)) {
        dsi_fail(DS_ERR_ARG, "input '%s': the graph already has a node of that name", name);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    if (ndim < 1 || ndim > DS_MAX_DIMS) {
        dsi_fail(DS_ERR_SHAPE, "input '%s': %d dimensions (1 to %d, the first is the batch)",
                 name, ndim, DS_MAX_DIMS);
        return dsi_build_fail(g, DS_ERR_SHAPE);
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            dsi_fail(DS_ERR_SHAPE, "input '%s': shape %s has a dimension < 1", name,
                     dsi_shape_str(ndim, shape));
            return dsi_build_fail(g, DS_ERR_SHAPE);
        }
    if (g->n_inputs == g->cap_inputs) {
        int cap = g->cap_inputs ? 2 * g->cap_inputs : 8;
        ds_node **ni = realloc(g->inputs, (size_t)cap * sizeof *ni);
        if (!ni) {
            dsi_fail(DS_ERR_NOMEM, "out of memory for input '%s'", name);
            return dsi_build_fail(g, DS_ERR_NOMEM);
        }
        g->inputs = ni;
        g->cap_inputs = cap;
    }
    if (g->scope_depth > 0) {
        dsi_fail(DS_ERR_STATE, "input '%s' created inside a layer", name);
        return dsi_build_fail(g, DS_ERR_STATE);
    }
    if (!push_layer(g, name, "InputLayer")) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for input '%s'", name);
        return dsi_build_fail(g, DS_ERR_NOMEM);
    }
    g->cur_layer = g->n_layers - 1;
    ds_node *y = dsi_node(g, DS_OP_INPUT, 0, NULL, NULL);
    g->cur_layer = -1;
    if (!y) {
        g->n_layers--;
        return NULL;
    }
    y->is_input = true;
    dsi_set_shape(y, ndim, shape);
    g->inputs[g->n_inputs++] = y;
    return y;
}

ds_node *ds_param_node(ds_graph *g, ds_param *p)
{
    if (!g || g->status != DS_OK || !p)
        return NULL;
    if (p->m != g->m) {
        dsi_fail(DS_ERR_ARG, "parameter '%s' belongs to another model", p->name);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    ds_node *y = dsi_node(g, DS_OP_PARAM, 0, NULL, NULL);
    if (!y)
        return NULL;
    y->param = p;
    dsi_set_shape(y, p->ndim, p->shape);
    return y;
}

ds_node *ds_graph_find(const ds_graph *g, const char *name)
{
    for (int i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->layers[g->inputs[i]->layer].name, name))
            return g->inputs[i];
    for (int i = g->n_layers - 1; i >= 0; i--)
        if (!strcmp(g->layers[i].name, name) && g->layers[i].out >= 0)
            return g->nodes[g->layers[i].out];
    return NULL;
}

ds_status ds_node_requires_grad(ds_node *n, int on)
{
    if (!n->is_input)
        return dsi_fail(DS_ERR_ARG, "ds_node_requires_grad: '%s' is not a graph input",
                        dsi_node_layer(n));
    n->wants_grad = on != 0;
    n->g->planned = false;
    return DS_OK;
}

void ds_node_keep(ds_node *n, int on)
{
    if (!n || n->keep == (on != 0))
        return;
    n->keep = on != 0;
    /* a node the current plan keeps anyway needs no new plan (the memory stays put) */
    if (!(on && n->g->planned && (n->persist || n->op == DS_OP_PARAM)))
        n->g->planned = false;
}

void ds_graph_keep_all(ds_graph *g, int on)
{
    if (g->keep_all == (on != 0))
        return;
    g->keep_all = on != 0;
    g->planned = false;
}

ds_status ds_graph_set_batch(ds_graph *g, int64_t batch)
{
    if (g->status != DS_OK)
        return dsi_fail(g->status, "the graph failed to build earlier");
    if (batch < 1)
        return dsi_fail(DS_ERR_ARG, "batch size %lld must be at least 1", (long long)batch);
    if (batch == ds_graph_batch(g))
        return DS_OK;
    for (int i = 0; i < g->n_inputs; i++) {
        ds_node *x = g->inputs[i];
        x->shape[0] = batch;
        x->numel = dsi_numel(x->ndim, x->shape);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_INPUT || y->op == DS_OP_PARAM || !dsi_ops[y->op]->shape)
            continue;
        ds_status st = dsi_ops[y->op]->shape(y);
        if (st != DS_OK)
            return st;
    }
    g->planned = false;
    return DS_OK;
}

/* ---- planning ----
 * Every non-parameter node owns up to three buffers in the graph's block: its data (an alias
 * such as reshape shares its input's), its gradient when one flows, and its saved workspace.
 * On the timeline of a step, forward 0..n-1 then backward n-1..0 (node i's backward at
 * time 2n-1-i), a buffer lives
 *   data:      from its node's forward to its last reader, a later forward or the latest
 *              backward that reads it (ds_op_def.bwd_reads);
 *   gradient:  from the backward of its latest consumer (the first to add into it) to its
 *              own backward;
 *   saved:     from its node's forward to its backward (its forward alone without one).
 * Persistent nodes own their data and gradient for the whole run: graph inputs, nodes no
 * other node reads (outputs, losses), inputs whose gradient is wanted, nodes marked with
 * ds_node_keep, and every node under ds_graph_keep_all. Buffers whose lifetimes do not
 * overlap share memory (plan.c): largest first, each goes at the lowest offset clear of the
 * placed buffers it overlaps in time; in graphs of thousands of layers a sweep along time
 * does it in a time linear in the buffers instead. An inplace op writes its output over in[0] when its forward
 * is the last use of in[0]'s data. Without any gradient the backward reads vanish and data
 * is reused along the forward alone. */
static size_t align_up(size_t n) { return (n + DS_ALIGN - 1) / DS_ALIGN * DS_ALIGN; }

uint32_t dsi_reads_none(const ds_node *y) { (void)y; return 0; }
uint32_t dsi_reads_out(const ds_node *y) { (void)y; return DSI_READS_OUT; }
uint32_t dsi_reads_in0(const ds_node *y) { (void)y; return DSI_READS_IN(0); }
uint32_t dsi_reads_in1(const ds_node *y) { (void)y; return DSI_READS_IN(1); }
uint32_t dsi_reads_in01(const ds_node *y) { (void)y; return DSI_READS_IN(0) | DSI_READS_IN(1); }
uint32_t dsi_reads_inputs(const ds_node *y) { (void)y; return ~DSI_READS_OUT; }

/* Shares data and gradient with in[0]: a reshape, a ReLU fused into the op before it, or
 * (in an inference plan) a batch norm folded into it. */
static inline bool is_alias(const ds_node *y)
{
    return dsi_ops[y->op]->alias || y->fused || y->folded;
}

int *dsi_fused_act(ds_node *y)
{
    switch (y->op) {
    case DS_OP_CONV: return &y->attr.conv.act;
    case DS_OP_LINEAR: return &y->attr.linear.act;
    case DS_OP_BATCHNORM: return &y->attr.batchnorm.act;
    default: return NULL;
    }
}

/* A ReLU whose input p is a convolution, linear or batchnorm op read by nothing else (and
 * not kept) runs inside p: p applies it in the same pass (its backward masks dy), and the
 * ReLU node shares p's memory. For batchnorm this also frees p's value after its last
 * forward reader, since its backward needs only its input. Redone at every planning, as
 * readers may have been added since; never under keep_all, whose users read every node.
 * count is n ints of workspace. */
static void fuse_relus(ds_graph *g, int *count)
{
    int n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        ds_node *y = g->nodes[i];
        if (y->fused) {
            *dsi_fused_act(y->in[0]) = DSI_FUSE_NONE;
            y->fused = false;
        }
        count[i] = 0;
    }
    if (g->keep_all)
        return;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i]->n_in; k++)
            count[g->nodes[i]->in[k]->id]++;
    for (int i = 0; i < n; i++) {
        ds_node *r = g->nodes[i], *p = r->n_in ? r->in[0] : NULL;
        if (r->op != DS_OP_RELU || count[p->id] != 1 || p->keep || p->is_input)
            continue;
        int *act = dsi_fused_act(p);
        if (!act || *act != DSI_FUSE_NONE)
            continue;
        *act = DSI_FUSE_RELU;
        r->fused = true;
    }
}

/* Points parameter nodes at the model's blocks (which move when parameters are added), and
 * alias nodes (reshape) at their input, which may be a parameter. */
static void bind_params(ds_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_PARAM) {
            y->data = g->m->data + y->param->offset;   /* no ds_param_data: no write */
            y->grad = y->needs_grad ? ds_param_grad(y->param) : NULL;
        } else if (is_alias(y)) {
            y->data = y->in[0]->data;
            y->grad = y->needs_grad ? y->in[0]->grad : NULL;
        }
    }
}

/* The node whose buffers n uses: n itself, or what an alias (reshape) chain starts from. */
static ds_node *owner(ds_node *n)
{
    while (is_alias(n))
        n = n->in[0];
    return n;
}

/* Whether y's backward runs when a gradient reaches it. */
static bool runs_backward(const ds_node *y)
{
    return y->needs_grad && y->n_in > 0 && !is_alias(y);
}

/* Marks the persistent nodes and computes every buffer's lifetime into b (at most three per
 * node); ix[3 i + 0, 1, 2] get node i's data, gradient and saved buffer (-1: none). dend
 * and gstart are n ints of workspace. Returns the number of buffers. */
static int lifetimes(ds_graph *g, dsi_plan_buf *b, int *ix, int *dend, int *gstart)
{
    int n = g->n_nodes, last = 2 * n - 1, nb = 0;
    for (int i = 0; i < n; i++)
        dend[i] = -1;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < g->nodes[j]->n_in; k++)
            dend[g->nodes[j]->in[k]->id] = j;
    for (int i = 0; i < n; i++) {
        ds_node *y = g->nodes[i];
        y->persist = g->keep_all || y->keep || y->is_input || y->wants_grad || dend[i] < 0;
    }
    for (int i = n - 1; i >= 0; i--)   /* a persistent alias keeps what it aliases */
        if (is_alias(g->nodes[i]) && g->nodes[i]->persist)
            g->nodes[i]->in[0]->persist = true;

    for (int i = 0; i < n; i++) {
        dend[i] = i;
        gstart[i] = last - i;
    }
    for (int j = 0; j < n; j++) {
        ds_node *y = g->nodes[j];
        const ds_op_def *d = dsi_ops[y->op];
        if (is_alias(y))
            continue;   /* computes nothing: its readers count as readers of its owner */
        bool bw = runs_backward(y);
        uint32_t m = d->bwd_reads ? d->bwd_reads(y) : UINT32_MAX;
        int tb = last - j;
        for (int k = 0; k < y->n_in; k++) {
            ds_node *o = owner(y->in[k]);
            if (dend[o->id] < j)
                dend[o->id] = j;
            if (!bw)
                continue;
            if ((!d->bwd_reads || (k < 31 && (m >> k & 1u))) && dend[o->id] < tb)
                dend[o->id] = tb;
            if (o->needs_grad && gstart[o->id] > tb)
                gstart[o->id] = tb;
        }
        if (bw && (m & DSI_READS_OUT) && dend[j] < tb)
            dend[j] = tb;
    }

    for (int i = 0; i < n; i++) {
        ds_node *y = g->nodes[i];
        const ds_op_def *d = dsi_ops[y->op];
        int *yi = ix + 3 * i;
        yi[0] = yi[1] = yi[2] = -1;
        if (y->op == DS_OP_PARAM)
            continue;
        if (!is_alias(y)) {
            /* a conv computing a pooling holds a sub-batch per thread, which the pooling,
             * writing its output from the conv's time on, reads */
            int64_t numel = y->pool ? y->numel / y->shape[0] * y->pool_sub * y->pool_slots
                                    : y->numel;
            size_t bytes = align_up((size_t)numel * sizeof(float));
            int s = y->persist ? 0 : y->pooled ? owner(y->in[0])->id : i;
            int e = y->persist ? last : dend[i];
            ds_node *o = y->n_in ? owner(y->in[0]) : NULL;
            if (d->inplace && o && o->op != DS_OP_PARAM && !o->persist && o->numel == y->numel &&
                dend[o->id] == i) {
                dsi_plan_buf *ob = &b[ix[3 * o->id]];   /* in[0]'s data dies here: take it over */
                ob->start = s < ob->start ? s : ob->start;
                ob->end = e > ob->end ? e : ob->end;
                yi[0] = ix[3 * o->id];
            } else {
                b[nb] = (dsi_plan_buf){bytes, 0, s, e, true};
                yi[0] = nb++;
            }
            if (y->needs_grad) {
                DS_ASSERT(y->persist || gstart[i] < last - i);
                s = y->persist ? 0 : gstart[i];
                e = y->persist ? last : last - i;
                b[nb] = (dsi_plan_buf){bytes, 0, s, e, false};
                yi[1] = nb++;
            }
        }
        size_t sb = d->saved_bytes && !(g->infer && d->saved_optional) ? d->saved_bytes(y) : 0;
        if (sb) {
            int e = runs_backward(y) ? last - i : i;
            b[nb] = g->keep_all ? (dsi_plan_buf){align_up(sb), 0, 0, last, true}
                                : (dsi_plan_buf){align_up(sb), 0, i, e, true};
            yi[2] = nb++;
        }
    }
    return nb;
}

/* Copies the graph inputs' values out of the old block into *keep (malloc'd; NULL when
 * there is nothing to keep: no plan yet, another batch size, or an input added since) and
 * then back into the new one, so that a new plan at the same batch size keeps them. */
static ds_status stash_inputs(ds_graph *g, float **keep, bool back)
{
    if (!back) {
        size_t total = 0;
        *keep = NULL;
        for (int i = 0; i < g->n_inputs; i++) {
            if (!g->inputs[i]->data)
                return DS_OK;
            total += (size_t)g->inputs[i]->numel;
        }
        if (!total || !g->block || g->plan_batch != ds_graph_batch(g))
            return DS_OK;
        if (!(*keep = malloc(total * sizeof(float))))
            return dsi_fail(DS_ERR_NOMEM, "out of memory planning the graph (%zu bytes)",
                            total * sizeof(float));
    }
    if (!*keep) {
        /* nothing to restore: inputs start at zero (the block is not zeroed) */
        if (back)
            for (int i = 0; i < g->n_inputs; i++)
                memset(g->inputs[i]->data, 0, (size_t)g->inputs[i]->numel * sizeof(float));
        return DS_OK;
    }
    float *p = *keep;
    for (int i = 0; i < g->n_inputs; i++) {
        ds_node *x = g->inputs[i];
        size_t bytes = (size_t)x->numel * sizeof(float);
        if (back)
            memcpy(x->data, p, bytes);
        else
            memcpy(p, x->data, bytes);
        p += x->numel;
    }
    return DS_OK;
}

/* The convolutions' cached Winograd filters (dsi_conv_cache_floats): one region per node that
 * has them, in node order, kept from one planning to the next. A region that keeps its place
 * keeps its contents and stamp; one that moves, or a new buffer, starts empty. */
static ds_status plan_wino(ds_graph *g)
{
    size_t floats = 0;
    for (int i = 0; i < g->n_nodes; i++)
        floats += dsi_conv_cache_floats(g->nodes[i]);
    size_t bytes = floats * sizeof(float);
    if (g->n_nodes > g->wino_nstamps) {
        dsi_wino_stamp *ns = realloc(g->wino_stamps, (size_t)g->n_nodes * sizeof *ns);
        if (!ns)
            return dsi_fail(DS_ERR_NOMEM, "out of memory planning the graph (%d nodes)",
                            g->n_nodes);
        memset(ns + g->wino_nstamps, 0, (size_t)(g->n_nodes - g->wino_nstamps) * sizeof *ns);
        g->wino_stamps = ns;
        g->wino_nstamps = g->n_nodes;
        for (int i = 0; i < g->n_nodes; i++)   /* valid should the buffer fail below */
            g->nodes[i]->wino_stamp = &ns[i];
    }
    if (bytes > g->wino_cap) {
        float *nb = dsi_aligned_alloc_raw(bytes);
        if (!nb)
            return dsi_fail(DS_ERR_NOMEM, "out of memory for %zu bytes of Winograd-transformed "
                            "filters%s", bytes, dsi_mem_note(bytes));
        free(g->wino_buf);
        g->wino_buf = nb;
        g->wino_cap = bytes;
        for (int i = 0; i < g->wino_nstamps; i++)   /* (nb may sit where the old one did) */
            g->wino_stamps[i].u = NULL;
    }
    g->wino_bytes = bytes;
    float *p = g->wino_buf;
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        size_t f = dsi_conv_cache_floats(y);
        y->wino_u = f ? p : NULL;
        y->wino_stamp = &g->wino_stamps[i];
        if (y->wino_stamp->u != y->wino_u)
            y->wino_stamp->m = 0;
        y->wino_stamp->u = y->wino_u;
        p += f;
    }
    return DS_OK;
}

ds_status ds_graph_plan(ds_graph *g)
{
    if (g->status != DS_OK)
        return dsi_fail(g->status, "the graph failed to build earlier");
    if (g->planned)
        return DS_OK;
    int n = g->n_nodes, cap = 3 * n + 1;
    dsi_plan_buf *b = malloc((size_t)cap * sizeof *b);
    int *ix = malloc((size_t)cap * sizeof *ix), *work = malloc((size_t)(2 * n + 1) * sizeof *work);
    float *inputs = NULL;
    ds_status st = DS_OK;
    if (!b || !ix || !work) {
        st = dsi_fail(DS_ERR_NOMEM, "out of memory planning the graph (%d nodes)", n);
        goto done;
    }
    /* first: these change workspaces and saved sizes */
    dsi_infer_reset(g);
    g->infer = (g->mode & DS_INFER) != 0;
    fuse_relus(g, work);
    if (g->infer && !g->keep_all)
        dsi_infer_mark(g, work);
    /* which nodes carry a gradient: none in an inference plan */
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (g->infer)
            y->needs_grad = false;
        else if (y->op == DS_OP_PARAM)
            y->needs_grad = y->param->trainable;
        else if (y->op == DS_OP_INPUT)
            y->needs_grad = y->wants_grad;
        else {
            y->needs_grad = false;
            for (int k = 0; k < y->n_in; k++)
                y->needs_grad |= y->in[k]->needs_grad;
        }
    }
    size_t scratch = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        size_t sz = dsi_infer_scratch(g->nodes[i]);
        if (sz > scratch)
            scratch = sz;
    }
    /* lifetimes and offsets */
    int nb = lifetimes(g, b, ix, work, work + n);
    size_t total = dsi_plan_offsets(b, nb, 2 * n);
    int clob = total == SIZE_MAX ? -1 : dsi_plan_clobbers(b, nb, n);
    if (clob < 0) {
        st = dsi_fail(DS_ERR_NOMEM, "out of memory planning the graph (%d nodes)", n);
        goto done;
    }
    if ((st = stash_inputs(g, &inputs, false)) != DS_OK)
        goto done;
    size_t fold = dsi_infer_fold_floats(g) * sizeof(float);
    if (fold > g->fold_cap) {
        float *nf = dsi_aligned_alloc_raw(fold);
        if (!nf) {
            st = dsi_fail(DS_ERR_NOMEM, "out of memory for %zu bytes of folded weights%s", fold,
                          dsi_mem_note(fold));
            goto done;
        }
        free(g->fold_buf);
        g->fold_buf = nf;
        g->fold_cap = fold;
    }
    g->fold_bytes = fold;
    dsi_infer_bind(g);
    if ((st = plan_wino(g)) != DS_OK)
        goto done;
    if (scratch > g->scratch_bytes) {
        float *ns = dsi_aligned_alloc_raw(scratch);
        if (!ns) {
            st = dsi_fail(DS_ERR_NOMEM, "out of memory for a workspace of %zu bytes%s", scratch,
                              dsi_mem_note(scratch));
            goto done;
        }
        free(g->scratch);
        g->scratch = ns;
        g->scratch_bytes = scratch;
    }
    /* last: on failure the old block and the nodes' pointers into it stay valid. The
     * planned-block seam of a GPU backend (none is built): it would allocate this block and
     * the scratch on its device, the pointers set below then being device addresses; the
     * plan (fusion, lifetimes, offsets, inplace and alias sharing) stays as it is. */
    if (total > g->block_cap) {
        char *nblock = dsi_aligned_alloc_raw(total);
        if (!nblock) {
            st = dsi_fail(DS_ERR_NOMEM, "out of memory planning the graph (%zu bytes for its "
                          "values and gradients%s)", total, dsi_mem_note(total));
            goto done;
        }
        free(g->block);
        g->block = nblock;
        g->block_cap = total;
    }
    g->block_bytes = total;
    for (int i = 0; i < n; i++) {
        ds_node *y = g->nodes[i];
        const int *yi = ix + 3 * i;
        if (y->op == DS_OP_PARAM)
            continue;
        if (!is_alias(y)) {
            y->data = (float *)(g->block + b[yi[0]].off);
            y->grad = yi[1] >= 0 ? (float *)(g->block + b[yi[1]].off) : NULL;
        }
        y->saved = yi[2] >= 0 ? g->block + b[yi[2]].off : NULL;
    }
    bind_params(g);
    stash_inputs(g, &inputs, true);
    g->planned = true;
    g->ran_forward = false;
    g->bwd_clobbers = clob > 0;
    g->bwd_spent = false;
    g->plan_batch = ds_graph_batch(g);
done:
    free(b);
    free(ix);
    free(work);
    free(inputs);
    return st;
}

ds_status ds_graph_set_input(ds_graph *g, ds_node *in, const float *data, int64_t numel)
{
    if (!in->is_input)
        return dsi_fail(DS_ERR_ARG, "'%s' is not a graph input", dsi_node_layer(in));
    if (numel != in->numel)
        return dsi_fail(DS_ERR_SHAPE, "input '%s' holds %lld values (shape %s), got %lld",
                        dsi_node_layer(in), (long long)in->numel,
                        dsi_shape_str(in->ndim, in->shape), (long long)numel);
    ds_status st = ds_graph_plan(g);
    if (st != DS_OK)
        return st;
    memcpy(in->data, data, (size_t)numel * sizeof(float));
    return DS_OK;
}

/* ---- running ---- */

/* Whether an inference plan's fold or fusion keeps n's own value from existing: a
 * convolution or linear op holding its batch norm's output, or a convolution (or a ReLU on
 * it) holding one sub-batch for its pooling. */
static bool hides_value(ds_node *n)
{
    return n->fold || owner(n)->pool;
}
ds_status ds_graph_forward(ds_graph *g)
{
    return ds_graph_forward_to(g, NULL);
}

ds_status ds_graph_forward_to(ds_graph *g, ds_node *last)
{
    if (last && last->g != g)
        return dsi_fail(DS_ERR_ARG, "forward: the node is not part of this graph");
    ds_status st = ds_graph_plan(g);
    if (st == DS_OK && last && hides_value(last)) {
        ds_node_keep(last, 1);   /* its value is asked for: planned again without the fusion */
        st = ds_graph_plan(g);
    }
    if (st != DS_OK)
        return st;
    bind_params(g);
    if (g->infer)
        dsi_infer_refold(g);
    g->run_status = DS_OK;
    g->bwd_spent = false;
    int end = last ? last->id + 1 : g->n_nodes;
    for (int i = 0; i < end; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_INPUT || y->op == DS_OP_PARAM || is_alias(y) || y->pooled)
            continue;
        if (y->fold || y->pool)
            dsi_infer_forward(y);
        else
            dsi_ops[y->op]->cpu.forward(y);
    }
    g->step++;
    if (g->run_status != DS_OK)
        return g->run_status;
    g->ran_forward = end == g->n_nodes;   /* backward needs every node computed */
    return DS_OK;
}

/* Zeroes n's gradient buffer (its owner's, for an alias) unless this pass did already:
 * right before the first backward that adds into it, since the memory held another buffer
 * until then. Parameter gradients belong to the model and accumulate. */
static void zero_grad_once(ds_node *n)
{
    n = owner(n);
    if (n->op == DS_OP_PARAM || !n->grad || n->grad_ready)
        return;
    memset(n->grad, 0, (size_t)n->numel * sizeof(float));
    n->grad_ready = true;
}

static ds_status backward(ds_graph *g, ds_node *out, const float *seed, float one)
{
    if (!out || out->g != g)
        return dsi_fail(DS_ERR_ARG, "backward: the node is not part of this graph");
    if (!g->planned || !g->ran_forward)
        return dsi_fail(DS_ERR_STATE, "backward before forward (or after the graph changed)");
    if (g->infer)
        return dsi_fail(DS_ERR_STATE, "backward: the graph is planned for inference (DS_INFER "
                        "in its mode), without gradients; set a mode without DS_INFER and run "
                        "forward again");
    if (g->bwd_spent)
        return dsi_fail(DS_ERR_STATE, "backward: the last backward pass reused the memory of "
                        "values it read; run forward again first, or keep every node "
                        "(ds_graph_keep_all) for several backward passes after one forward");
    bind_params(g);
    if (!out->needs_grad)
        return DS_OK;   /* nothing trainable upstream */
    /* persistent gradients read zero where this pass brings nothing */
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        y->on_path = false;
        y->grad_ready = false;
        if (y->persist && y->op != DS_OP_PARAM && !is_alias(y) && y->grad) {
            memset(y->grad, 0, (size_t)y->numel * sizeof(float));
            y->grad_ready = true;
        }
    }
    out->on_path = true;
    for (int i = out->id; i >= 0; i--) {
        ds_node *y = g->nodes[i];
        if (!y->on_path)
            continue;
        for (int k = 0; k < y->n_in; k++)
            y->in[k]->on_path |= y->in[k]->needs_grad;
    }
    g->bwd_spent = g->bwd_clobbers;
    g->run_status = DS_OK;
    zero_grad_once(out);
    if (seed)
        for (int64_t i = 0; i < out->numel; i++)
            out->grad[i] += seed[i];
    else
        out->grad[0] += one;
    for (int i = out->id; i >= 0; i--) {
        ds_node *y = g->nodes[i];
        if (!y->on_path || !y->needs_grad || y->n_in == 0 || is_alias(y))
            continue;
        for (int k = 0; k < y->n_in; k++)
            if (y->in[k]->grad)
                zero_grad_once(y->in[k]);
        dsi_ops[y->op]->cpu.backward(y);
    }
    return g->run_status;   /* a failed collective (SyncBN) */
}

ds_status ds_graph_backward(ds_graph *g, ds_node *loss)
{
    if (loss && loss->numel != 1)
        return dsi_fail(DS_ERR_SHAPE, "backward: '%s' has shape %s, not a scalar; use "
                        "ds_graph_backward_seed", dsi_node_layer(loss),
                        dsi_shape_str(loss->ndim, loss->shape));
    return backward(g, loss, NULL, 1.0f);
}

ds_status ds_graph_backward_seed(ds_graph *g, ds_node *out, const float *seed)
{
    return backward(g, out, seed, 0.0f);
}
