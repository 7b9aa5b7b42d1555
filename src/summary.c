/* summary.c - the Keras-like summary table of a graph or a net: one row per layer with its
 * output shape, parameter count and the layers feeding it, then the parameter totals. Each
 * node and edge is visited a bounded number of times: linear in the size of the graph. */
#include "net/net.h"

#include <ctype.h>

static void pad(dsi_buf *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dsi_buf_put(b, &c, 1);
}

/* 1234567 -> "1,234,567". */
static void thousands(int64_t v, char *out, size_t cap)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(digits), k = 0;
    if (v < 0 && k + 1 < cap)
        out[k++] = '-';
    for (size_t i = 0; i < n && k + 2 < cap; i++) {
        out[k++] = digits[i];
        if ((n - 1 - i) % 3 == 0 && i + 1 < n)
            out[k++] = ',';
    }
    out[k] = 0;
}

/* Keras-like class name for a layer type: implicit layers carry the op's name ("add",
 * "loss_mse"), shown in CamelCase ("Add", "LossMse"). */
static void type_name(const char *type, char *out, size_t cap)
{
    static const struct { const char *op, *keras; } known[] = {
        { "concat", "Concatenate" }, { "relu", "ReLU" }, { "matmul", "MatMul" },
        { "prelu", "PReLU" }, { "elu", "ELU" }, { "leaky_relu", "LeakyReLU" },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(type, known[i].op)) {
            snprintf(out, cap, "%s", known[i].keras);
            return;
        }
    size_t k = 0;
    bool up = true;
    for (const char *s = type; *s && k + 1 < cap; s++) {
        if (*s == '_') {
            up = true;
            continue;
        }
        out[k++] = up ? (char)toupper((unsigned char)*s) : *s;
        up = false;
    }
    out[k] = 0;
}

typedef struct {
    char name[DS_NAME_MAX + 40];
    char shape[160];
    char params[32];
    char *conn;          /* malloc'd */
} row;

/* Another shape a layer's row shows after its own ("(None, 3) or (None,)"): the labels of a
 * categorical loss, which may be one-hot rows or class indices. */
typedef struct {
    int layer;
    int ndim;
    int64_t shape[DS_MAX_DIMS];
} alt_shape;

/* The graph's working state: its nodes grouped by layer (bucket li holds the ids
 * order[start[li] .. start[li+1]) in graph order), which nodes carry the batch, and one
 * stamp per parameter and per layer against double counts. */
typedef struct {
    const ds_graph *g;
    int *start, *order, *mark, *seen;
    bool *batched;
} walk;

static void walk_free(walk *w)
{
    free(w->start);
    free(w->order);
    free(w->mark);
    free(w->seen);
    free(w->batched);
}

/* A node's dimension 0 is the batch (shown as None) if it descends from an input and keeps
 * dimension 0 at the batch size. */
static bool walk_init(walk *w, const ds_graph *g)
{
    int nl = g->n_layers, n = g->n_nodes;
    *w = (walk){.g = g};
    w->start = calloc((size_t)nl + 2, sizeof *w->start);
    w->order = malloc(((size_t)n + 1) * sizeof *w->order);
    w->mark = calloc((size_t)g->m->n + 1, sizeof *w->mark);
    w->seen = calloc((size_t)nl + 1, sizeof *w->seen);
    w->batched = calloc((size_t)n + 1, sizeof *w->batched);
    if (!w->start || !w->order || !w->mark || !w->seen || !w->batched)
        return false;
    int64_t batch = ds_graph_batch(g);
    for (int i = 0; i < n; i++) {
        const ds_node *y = g->nodes[i];
        bool from_input = y->is_input;
        for (int k = 0; k < y->n_in; k++)
            from_input = from_input || w->batched[y->in[k]->id];
        w->batched[i] = from_input && y->ndim >= 1 && y->shape[0] == batch;
    }
    /* counting sort by layer (nodes outside any layer are left out) */
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->layer >= 0 && g->nodes[i]->layer < nl)
            w->start[g->nodes[i]->layer + 1]++;
    for (int li = 0; li < nl; li++)
        w->start[li + 1] += w->start[li];
    int *fill = w->seen;   /* borrowed as the fill pointers, cleared below */
    for (int i = 0; i < n; i++) {
        int li = g->nodes[i]->layer;
        if (li >= 0 && li < nl)
            w->order[w->start[li] + fill[li]++] = i;
    }
    memset(w->seen, 0, ((size_t)nl + 1) * sizeof *w->seen);
    return true;
}

/* Parameters used by layer li: its own parameter nodes, and parameter nodes made outside
 * any layer that its nodes read, each once. */
static int64_t layer_params(walk *w, int li)
{
    int64_t n = 0;
    for (int j = w->start[li]; j < w->start[li + 1]; j++) {
        const ds_node *y = w->g->nodes[w->order[j]];
        for (int k = -1; k < y->n_in; k++) {
            const ds_node *p = k < 0 ? y : y->in[k];
            if (p->op != DS_OP_PARAM || (k >= 0 && p->layer >= 0))
                continue;
            if (w->mark[p->param->index] != li + 1) {
                w->mark[p->param->index] = li + 1;
                n += p->param->numel;
            }
        }
    }
    return n;
}

/* The layers feeding layer li, in order of first use: "dense_1, labels". NULL: no memory. */
static char *feeders(walk *w, int li)
{
    const ds_graph *g = w->g;
    dsi_buf c = { 0 };
    dsi_buf_puts(&c, "");
    for (int j = w->start[li]; j < w->start[li + 1]; j++) {
        const ds_node *y = g->nodes[w->order[j]];
        if (y->id < g->layers[li].first || y->op == DS_OP_PARAM)
            continue;
        for (int k = 0; k < y->n_in; k++) {
            const ds_node *x = y->in[k];
            if (x->op == DS_OP_PARAM || x->layer == li || x->layer < 0 ||
                w->seen[x->layer] == li + 1)
                continue;
            w->seen[x->layer] = li + 1;
            if (c.n)
                dsi_buf_puts(&c, ", ");
            dsi_buf_puts(&c, g->layers[x->layer].name);
        }
    }
    if (c.oom)
        free(c.p);
    return c.oom ? NULL : c.p;
}

/* "(None, 28, 28)": dimension 0 shows None when it is the batch. */
static void shape_text(char *out, size_t cap, int ndim, const int64_t *shape, bool batched)
{
    dsi_snprintf_cat(out, cap, "(");
    for (int d = 0; d < ndim; d++) {
        if (d == 0 && batched)
            dsi_snprintf_cat(out, cap, "None");
        else
            dsi_snprintf_cat(out, cap, "%s%lld", d ? ", " : "", (long long)shape[d]);
    }
    dsi_snprintf_cat(out, cap, "%s)", ndim == 1 ? "," : "");
}

static bool fill_row(walk *w, int li, const alt_shape *alt, int n_alt, row *r)
{
    const ds_graph *g = w->g;
    const dsi_layer *L = &g->layers[li];
    char tn[32];
    type_name(L->type, tn, sizeof tn);
    snprintf(r->name, sizeof r->name, "%s (%s)", L->name, tn);
    r->shape[0] = 0;
    if (L->out >= 0) {
        const ds_node *y = g->nodes[L->out];
        shape_text(r->shape, sizeof r->shape, y->ndim, y->shape, w->batched[y->id]);
        for (int a = 0; a < n_alt; a++)
            if (alt[a].layer == li) {
                dsi_snprintf_cat(r->shape, sizeof r->shape, " or ");
                shape_text(r->shape, sizeof r->shape, alt[a].ndim, alt[a].shape,
                           w->batched[y->id]);
            }
    } else {
        snprintf(r->shape, sizeof r->shape, "?");
    }
    thousands(layer_params(w, li), r->params, sizeof r->params);
    return (r->conn = feeders(w, li)) != NULL;
}

/* Totals over the parameters the graph uses, each once. */
static void totals(walk *w, int64_t *total, int64_t *trainable)
{
    int stamp = w->g->n_layers + 2;
    *total = *trainable = 0;
    for (int i = 0; i < w->g->n_nodes; i++) {
        const ds_node *y = w->g->nodes[i];
        if (y->op != DS_OP_PARAM || w->mark[y->param->index] == stamp)
            continue;
        w->mark[y->param->index] = stamp;
        *total += y->param->numel;
        if (y->param->trainable)
            *trainable += y->param->numel;
    }
}

/* The rows under their header, columns as wide as their widest cell, then the totals. */
static void print_table(dsi_buf *out, const row *rows, int nl, int64_t total, int64_t trainable)
{
    const char *head[4] = { "Layer (type)", "Output Shape", "Param #", "Connected to" };
    size_t w[4];
    for (int k = 0; k < 4; k++)
        w[k] = strlen(head[k]);
    for (int li = 0; li < nl; li++) {
        const char *cells[4] = { rows[li].name, rows[li].shape, rows[li].params, rows[li].conn };
        for (int k = 0; k < 4; k++)
            if (strlen(cells[k]) > w[k])
                w[k] = strlen(cells[k]);
    }
    const size_t gap = 3;
    size_t width = w[0] + w[1] + w[2] + w[3] + 3 * gap;
    pad(out, '_', width);
    dsi_buf_puts(out, "\n");
    for (int li = -1; li < nl; li++) {
        const char *const *cells = li < 0 ? head : (const char *[4]){ rows[li].name,
            rows[li].shape, rows[li].params, rows[li].conn };
        for (int k = 0; k < 4; k++) {
            dsi_buf_puts(out, cells[k]);
            if (k < 3)
                pad(out, ' ', w[k] - strlen(cells[k]) + gap);
        }
        /* no trailing blanks when the last column is empty */
        while (out->n && out->p[out->n - 1] == ' ')
            out->p[--out->n] = 0;
        dsi_buf_puts(out, "\n");
        if (li < 0) {
            pad(out, '=', width);
            dsi_buf_puts(out, "\n");
        }
    }
    pad(out, '=', width);
    dsi_buf_puts(out, "\n");
    char num[40];
    thousands(total, num, sizeof num);
    dsi_buf_printf(out, "Total params: %s\n", num);
    thousands(trainable, num, sizeof num);
    dsi_buf_printf(out, "Trainable params: %s\n", num);
    thousands(total - trainable, num, sizeof num);
    dsi_buf_printf(out, "Non-trainable params: %s\n", num);
    pad(out, '_', width);
    dsi_buf_puts(out, "\n");
}

static char *summary(const ds_graph *g, const alt_shape *alt, int n_alt)
{
    int nl = g->n_layers;
    row *rows = calloc((size_t)nl + 1, sizeof *rows);
    walk w;
    bool ok = walk_init(&w, g) && rows;
    for (int li = 0; ok && li < nl; li++)
        ok = fill_row(&w, li, alt, n_alt, &rows[li]);
    dsi_buf out = { 0 };
    if (ok) {
        int64_t total, trainable;
        totals(&w, &total, &trainable);
        print_table(&out, rows, nl, total, trainable);
    }
    char *result = ok && !out.oom ? out.p : NULL;
    if (!result) {
        free(out.p);
        dsi_fail(DS_ERR_NOMEM, "out of memory for the graph summary");
    }
    for (int li = 0; rows && li < nl; li++)
        free(rows[li].conn);
    free(rows);
    walk_free(&w);
    return result;
}

char *ds_graph_summary(const ds_graph *g)
{
    if (!g) {
        dsi_fail(DS_ERR_ARG, "ds_graph_summary: graph is NULL");
        return NULL;
    }
    return summary(g, NULL, 0);
}

/* The labels row of a categorical loss built for one-hot rows by default also shows the
 * shape of class indices: the class dimension (1) dropped. */
char *ds_net_summary(const ds_net *n)
{
    if (!n) {
        dsi_fail(DS_ERR_ARG, "ds_net_summary: net is NULL");
        return NULL;
    }
    alt_shape alt[DS_FEED_MAX];
    int n_alt = 0;
    for (int i = 0; i < n->n_targets; i++) {
        const dsi_net_target *t = &n->targets[i];
        const ds_node *y = t->target;
        if (!t->index_too || y->layer < 0 || y->ndim < 2)
            continue;
        alt_shape *a = &alt[n_alt++];
        *a = (alt_shape){.layer = y->layer, .ndim = y->ndim - 1};
        a->shape[0] = y->shape[0];
        for (int d = 2; d < y->ndim; d++)
            a->shape[d - 1] = y->shape[d];
    }
    return summary(n->g, alt, n_alt);
}
