/* summary.c - the Keras-like summary table of a graph: one row per layer with its output
 * shape, parameter count and the layers feeding it, then the parameter totals. */
#include "internal.h"

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
    char shape[128];
    char params[32];
    char *conn;          /* malloc'd */
} row;

/* Parameters used by layer li: its own parameter nodes, and parameter nodes made outside
 * any layer that its nodes read. mark[] (one per model parameter) avoids double counts. */
static int64_t layer_params(const ds_graph *g, int li, int *mark, int stamp)
{
    int64_t n = 0;
    const ds_model *m = g->m;
    for (int i = 0; i < g->n_nodes; i++) {
        const ds_node *y = g->nodes[i];
        for (int k = -1; k < y->n_in; k++) {
            const ds_node *p = k < 0 ? y : y->in[k];
            if (p->op != DS_OP_PARAM)
                continue;
            bool mine = k < 0 ? p->layer == li : (p->layer < 0 && y->layer == li);
            if (!mine)
                continue;
            for (int j = 0; j < m->n; j++)
                if (m->params[j] == p->param && mark[j] != stamp) {
                    mark[j] = stamp;
                    n += p->param->numel;
                }
        }
    }
    return n;
}

char *ds_graph_summary(const ds_graph *g)
{
    if (!g) {
        dsi_fail(DS_ERR_ARG, "ds_graph_summary: graph is NULL");
        return NULL;
    }
    const ds_model *m = g->m;
    int nl = g->n_layers;
    row *rows = calloc((size_t)(nl ? nl : 1), sizeof *rows);
    int *mark = calloc((size_t)(m->n ? m->n : 1), sizeof *mark);
    bool *batched = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *batched);
    int *seen = calloc((size_t)(nl ? nl : 1), sizeof *seen);   /* per row: layer listed */
    dsi_buf out = { 0 };
    char *result = NULL;
    if (!rows || !mark || !batched || !seen)
        goto done;

    /* A node's dimension 0 is the batch (shown as None) if it descends from an input and
     * keeps dimension 0 at the batch size. */
    int64_t batch = ds_graph_batch(g);
    for (int i = 0; i < g->n_nodes; i++) {
        const ds_node *y = g->nodes[i];
        bool from_input = y->is_input;
        for (int k = 0; k < y->n_in; k++)
            from_input = from_input || batched[y->in[k]->id];
        batched[i] = from_input && y->ndim >= 1 && y->shape[0] == batch;
    }

    for (int li = 0; li < nl; li++) {
        const dsi_layer *L = &g->layers[li];
        row *r = &rows[li];
        char tn[32];
        type_name(L->type, tn, sizeof tn);
        snprintf(r->name, sizeof r->name, "%s (%s)", L->name, tn);
        /* output shape */
        if (L->out >= 0) {
            const ds_node *y = g->nodes[L->out];
            r->shape[0] = 0;
            dsi_snprintf_cat(r->shape, sizeof r->shape, "(");
            for (int d = 0; d < y->ndim; d++) {
                if (d == 0 && batched[y->id])
                    dsi_snprintf_cat(r->shape, sizeof r->shape, "None");
                else
                    dsi_snprintf_cat(r->shape, sizeof r->shape, "%s%lld", d ? ", " : "",
                                     (long long)y->shape[d]);
            }
            dsi_snprintf_cat(r->shape, sizeof r->shape, "%s)", y->ndim == 1 ? "," : "");
        } else {
            snprintf(r->shape, sizeof r->shape, "?");
        }
        thousands(layer_params(g, li, mark, li + 1), r->params, sizeof r->params);
        /* layers feeding this one, in order of first use */
        dsi_buf c = { 0 };
        dsi_buf_puts(&c, "");
        for (int i = L->first; i < g->n_nodes; i++) {
            const ds_node *y = g->nodes[i];
            if (y->layer != li || y->op == DS_OP_PARAM)
                continue;
            for (int k = 0; k < y->n_in; k++) {
                const ds_node *x = y->in[k];
                if (x->op == DS_OP_PARAM || x->layer == li || x->layer < 0)
                    continue;
                if (seen[x->layer] == li + 1)
                    continue;
                seen[x->layer] = li + 1;
                if (c.n)
                    dsi_buf_puts(&c, ", ");
                dsi_buf_puts(&c, g->layers[x->layer].name);
            }
        }
        if (c.oom) {
            free(c.p);
            goto done;
        }
        r->conn = c.p;
    }

    /* totals over the parameters the graph uses, each once */
    int64_t total = 0, trainable = 0;
    int stamp = nl + 2;
    for (int i = 0; i < g->n_nodes; i++) {
        const ds_node *y = g->nodes[i];
        if (y->op != DS_OP_PARAM)
            continue;
        for (int j = 0; j < m->n; j++)
            if (m->params[j] == y->param && mark[j] != stamp) {
                mark[j] = stamp;
                total += y->param->numel;
                if (y->param->trainable)
                    trainable += y->param->numel;
            }
    }

    /* column widths */
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
    pad(&out, '_', width);
    dsi_buf_puts(&out, "\n");
    for (int k = 0; k < 4; k++) {
        dsi_buf_puts(&out, head[k]);
        if (k < 3)
            pad(&out, ' ', w[k] - strlen(head[k]) + gap);
    }
    dsi_buf_puts(&out, "\n");
    pad(&out, '=', width);
    dsi_buf_puts(&out, "\n");
    for (int li = 0; li < nl; li++) {
        const char *cells[4] = { rows[li].name, rows[li].shape, rows[li].params, rows[li].conn };
        for (int k = 0; k < 4; k++) {
            dsi_buf_puts(&out, cells[k]);
            if (k < 3)
                pad(&out, ' ', w[k] - strlen(cells[k]) + gap);
        }
        /* no trailing blanks when the last column is empty */
        while (out.n && out.p[out.n - 1] == ' ')
            out.p[--out.n] = 0;
        dsi_buf_puts(&out, "\n");
    }
    pad(&out, '=', width);
    dsi_buf_puts(&out, "\n");
    char num[40], line[80];
    thousands(total, num, sizeof num);
    snprintf(line, sizeof line, "Total params: %s\n", num);
    dsi_buf_puts(&out, line);
    thousands(trainable, num, sizeof num);
    snprintf(line, sizeof line, "Trainable params: %s\n", num);
    dsi_buf_puts(&out, line);
    thousands(total - trainable, num, sizeof num);
    snprintf(line, sizeof line, "Non-trainable params: %s\n", num);
    dsi_buf_puts(&out, line);
    pad(&out, '_', width);
    dsi_buf_puts(&out, "\n");
    if (!out.oom) {
        result = out.p;
        out.p = NULL;
    }
done:
    if (!result)
        dsi_fail(DS_ERR_NOMEM, "out of memory for the graph summary");
    free(out.p);
    for (int li = 0; rows && li < nl; li++)
        free(rows[li].conn);
    free(rows);
    free(mark);
    free(batched);
    free(seen);
    return result;
}
