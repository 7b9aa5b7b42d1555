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
    free(g);
}

ds_model *ds_graph_model(const ds_graph *g) { return g->m; }
ds_status ds_graph_status(const ds_graph *g) { return g->status; }
void ds_graph_set_mode(ds_graph *g, int mode) { g->mode = mode; }
int ds_graph_mode(const ds_graph *g) { return g->mode; }
int ds_graph_node_count(const ds_graph *g) { return g->n_nodes; }
ds_node *ds_graph_node(const ds_graph *g, int i) { return (i >= 0 && i < g->n_nodes) ? g->nodes[i] : NULL; }
int ds_graph_input_count(const ds_graph *g) { return g->n_inputs; }
ds_node *ds_graph_input(const ds_graph *g, int i) { return (i >= 0 && i < g->n_inputs) ? g->inputs[i] : NULL; }
size_t ds_graph_bytes(const ds_graph *g) { return g->block_bytes + g->scratch_bytes; }

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
const char *ds_node_op_name(const ds_node *n) { return dsi_ops[n->op]->name; }
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
    return dsi_fail(s, "%s '%s': %s", dsi_ops[y->op]->name, dsi_node_layer(y), msg);
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
    } else {
        dsi_model_auto_name(g->m, auto_type, out_name, DS_NAME_MAX);
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

ds_node *dsi_node(ds_graph *g, ds_op op, int n_in, ds_node *const *in, const int64_t *ia,
                  int n_ia, const float *fa, int n_fa)
{
    if (!g || g->status != DS_OK)
        return NULL;
    for (int i = 0; i < n_in; i++) {
        if (!in[i])
            return NULL;
        if (in[i]->g != g) {
            dsi_fail(DS_ERR_ARG, "%s: input %d belongs to another graph", dsi_ops[op]->name, i);
            return dsi_build_fail(g, DS_ERR_ARG);
        }
    }
    DS_ASSERT(op < DS_OP_COUNT && dsi_ops[op]);
    DS_ASSERT(n_ia <= DS_IATTR && n_fa <= DS_FATTR);
    ds_node *y = calloc(1, sizeof *y);
    ds_node **ins = n_in ? malloc((size_t)n_in * sizeof *ins) : NULL;
    if (!y || (n_in && !ins)) {
        free(y);
        free(ins);
        dsi_fail(DS_ERR_NOMEM, "out of memory building %s", dsi_ops[op]->name);
        return dsi_build_fail(g, DS_ERR_NOMEM);
    }
    y->g = g;
    y->op = op;
    y->n_in = n_in;
    y->in = ins;
    for (int i = 0; i < n_in; i++)
        ins[i] = in[i];
    if (n_ia)
        memcpy(y->ia, ia, (size_t)n_ia * sizeof *ia);
    if (n_fa)
        memcpy(y->fa, fa, (size_t)n_fa * sizeof *fa);
    y->id = g->n_nodes;

    /* A bare op outside any layer becomes a layer of its own ("add_1"). */
    bool implicit = g->cur_layer < 0 && op != DS_OP_PARAM && op != DS_OP_INPUT;
    char name[DS_NAME_MAX];
    if (implicit) {
        dsi_model_auto_name(g->m, dsi_ops[op]->name, name, sizeof name);
        if (!push_layer(g, name, dsi_ops[op]->name)) {
            free(ins);
            free(y);
            dsi_fail(DS_ERR_NOMEM, "out of memory building %s", dsi_ops[op]->name);
            return dsi_build_fail(g, DS_ERR_NOMEM);
        }
        y->layer = g->n_layers - 1;
    } else {
        y->layer = g->cur_layer;
    }

    ds_status st = dsi_ops[op]->shape ? dsi_ops[op]->shape(y) : DS_OK;
    if (st == DS_OK && !push_node(g, y))
        st = dsi_fail(DS_ERR_NOMEM, "out of memory building %s", dsi_ops[op]->name);
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
    ds_node *y = dsi_node(g, DS_OP_INPUT, 0, NULL, NULL, 0, NULL, 0);
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
    ds_node *y = dsi_node(g, DS_OP_PARAM, 0, NULL, NULL, 0, NULL, 0);
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

/* ---- planning ---- */
static size_t align_up(size_t n) { return (n + DS_ALIGN - 1) / DS_ALIGN * DS_ALIGN; }

/* Points parameter nodes at the model's blocks (which move when parameters are added), and
 * alias nodes (reshape) at their input, which may be a parameter. */
static void bind_params(ds_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_PARAM) {
            y->data = ds_param_data(y->param);
            y->grad = y->needs_grad ? ds_param_grad(y->param) : NULL;
        } else if (dsi_ops[y->op]->alias) {
            y->data = y->in[0]->data;
            y->grad = y->needs_grad ? y->in[0]->grad : NULL;
        }
    }
}

ds_status ds_graph_plan(ds_graph *g)
{
    if (g->status != DS_OK)
        return dsi_fail(g->status, "the graph failed to build earlier");
    if (g->planned)
        return DS_OK;
    /* which nodes carry a gradient */
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_PARAM)
            y->needs_grad = y->param->trainable;
        else if (y->op == DS_OP_INPUT)
            y->needs_grad = y->wants_grad;
        else {
            y->needs_grad = false;
            for (int k = 0; k < y->n_in; k++)
                y->needs_grad |= y->in[k]->needs_grad;
        }
    }
    /* sizes */
    size_t total = 0, scratch = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        const ds_op_def *d = dsi_ops[y->op];
        if (y->op == DS_OP_PARAM)
            continue;
        if (!d->alias) {
            total += align_up((size_t)y->numel * sizeof(float));
            if (y->needs_grad)
                total += align_up((size_t)y->numel * sizeof(float));
        }
        if (d->saved_bytes)
            total += align_up(d->saved_bytes(y));
        if (d->scratch_bytes) {
            size_t s = d->scratch_bytes(y);
            if (s > scratch)
                scratch = s;
        }
    }
    if (total > g->block_cap) {
        char *nb = dsi_aligned_alloc(total);
        if (!nb)
            return dsi_fail(DS_ERR_NOMEM, "out of memory planning the graph (%zu bytes)", total);
        free(g->block);
        g->block = nb;
        g->block_cap = total;
    }
    if (scratch > g->scratch_bytes) {
        float *ns = dsi_aligned_alloc(scratch);
        if (!ns)
            return dsi_fail(DS_ERR_NOMEM, "out of memory for a workspace of %zu bytes", scratch);
        free(g->scratch);
        g->scratch = ns;
        g->scratch_bytes = scratch;
    }
    g->block_bytes = total;
    char *p = g->block;
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        const ds_op_def *d = dsi_ops[y->op];
        if (y->op == DS_OP_PARAM)
            continue;
        if (!d->alias) {
            y->data = (float *)p;
            p += align_up((size_t)y->numel * sizeof(float));
            y->grad = NULL;
            if (y->needs_grad) {
                y->grad = (float *)p;
                p += align_up((size_t)y->numel * sizeof(float));
            }
        }
        y->saved = NULL;
        if (d->saved_bytes) {
            y->saved = p;
            p += align_up(d->saved_bytes(y));
        }
    }
    bind_params(g);
    g->planned = true;
    g->ran_forward = false;
    return DS_OK;
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
ds_status ds_graph_forward(ds_graph *g)
{
    return ds_graph_forward_to(g, NULL);
}

ds_status ds_graph_forward_to(ds_graph *g, ds_node *last)
{
    if (last && last->g != g)
        return dsi_fail(DS_ERR_ARG, "forward: the node is not part of this graph");
    ds_status st = ds_graph_plan(g);
    if (st != DS_OK)
        return st;
    bind_params(g);
    g->run_status = DS_OK;
    int end = last ? last->id + 1 : g->n_nodes;
    for (int i = 0; i < end; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_INPUT || y->op == DS_OP_PARAM || dsi_ops[y->op]->alias)
            continue;
        dsi_ops[y->op]->forward(y);
    }
    g->step++;
    if (g->run_status != DS_OK)
        return g->run_status;
    g->ran_forward = end == g->n_nodes;   /* backward needs every node computed */
    return DS_OK;
}

static ds_status backward(ds_graph *g, ds_node *out, const float *seed, float one)
{
    if (!out || out->g != g)
        return dsi_fail(DS_ERR_ARG, "backward: the node is not part of this graph");
    if (!g->planned || !g->ran_forward)
        return dsi_fail(DS_ERR_STATE, "backward before forward (or after the graph changed)");
    bind_params(g);
    if (!out->needs_grad)
        return DS_OK;   /* nothing trainable upstream */
    for (int i = 0; i < g->n_nodes; i++) {
        ds_node *y = g->nodes[i];
        y->on_path = false;
        if (y->op != DS_OP_PARAM && !dsi_ops[y->op]->alias && y->grad)
            memset(y->grad, 0, (size_t)y->numel * sizeof(float));
    }
    out->on_path = true;
    for (int i = out->id; i >= 0; i--) {
        ds_node *y = g->nodes[i];
        if (!y->on_path)
            continue;
        for (int k = 0; k < y->n_in; k++)
            y->in[k]->on_path |= y->in[k]->needs_grad;
    }
    if (seed)
        for (int64_t i = 0; i < out->numel; i++)
            out->grad[i] += seed[i];
    else
        out->grad[0] += one;
    for (int i = out->id; i >= 0; i--) {
        ds_node *y = g->nodes[i];
        if (!y->on_path || !y->needs_grad || y->n_in == 0 || dsi_ops[y->op]->alias)
            continue;
        dsi_ops[y->op]->backward(y);
    }
    return DS_OK;
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
