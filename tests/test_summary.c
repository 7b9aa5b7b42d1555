/* test_summary.c - the Keras-like summary table: rows, shapes, parameter counts, inputs,
 * totals and column alignment. */
#include "test.h"

/* Finds the row whose first cell is `first` and splits it on runs of 2+ spaces into up to
 * 4 cells. Returns the number of cells, or -1 if no such row. */
static int row_cells(const char *table, const char *first, char cells[4][128], int nth)
{
    size_t fl = strlen(first);
    for (const char *line = table; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > fl && !strncmp(line, first, fl) && line[fl] == ' ' && line[fl + 1] == ' ' &&
            nth-- == 0) {
            int n = 0;
            size_t i = 0;
            while (i < len && n < 4) {
                size_t k = 0;
                while (i < len && !(line[i] == ' ' && i + 1 < len && line[i + 1] == ' ') &&
                       k < 127)
                    cells[n][k++] = line[i++];
                cells[n][k] = 0;
                n++;
                while (i < len && line[i] == ' ')
                    i++;
            }
            for (int j = n; j < 4; j++)
                cells[j][0] = 0;
            return n;
        }
        line += len + (end ? 1 : 0);
    }
    return -1;
}

#define CHECK_ROW(tab, first, nth, shape, params, conn)                                    \
    do {                                                                                   \
        char c_[4][128];                                                                   \
        if (row_cells(tab, first, c_, nth) < 0)                                            \
            FAIL("no row '%s' in\n%s", first, tab);                                        \
        if (strcmp(c_[1], shape) || strcmp(c_[2], params) || strcmp(c_[3], conn))         \
            FAIL("row '%s': '%s' | '%s' | '%s', expected '%s' | '%s' | '%s'\n%s", first,   \
                 c_[1], c_[2], c_[3], shape, params, conn, tab);                           \
    } while (0)

TEST(summary_dag_two_inputs)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 2, (int64_t[]){4, 8});
    ds_node *b = ds_input(g, "b", 2, (int64_t[]){4, 6});
    ds_node *a2 = ds_input(g, "a2", 2, (int64_t[]){4, 8});
    ds_node *da = ds_dense(g, a, &(ds_dense_opts){ .name = "fc_a", .units = 16 });
    ds_node *db = ds_dense(g, b, &(ds_dense_opts){ .name = "fc_b", .units = 16 });
    ds_node *s = ds_add(g, da, db);
    ds_node *c = ds_concat(g, 2, (ds_node *[]){da, s}, 1);
    ds_node *h = ds_dense(g, c, &(ds_dense_opts){ .name = "head", .units = 3,
                                                   .activation = DS_ACT_RELU });
    /* the same layer applied again: its row repeats, its parameters count once in totals */
    ds_node *da2 = ds_dense(g, a2, &(ds_dense_opts){ .name = "fc_a", .units = 16 });
    /* a non-trainable parameter read outside any layer, by an implicit add layer */
    ds_param *st = ds_model_add_param(m, "stats", 1, (int64_t[]){3}, 0,
                                      (ds_init){ DS_INIT_ZEROS, 0, 0 });
    ds_node *out = ds_add(g, h, ds_param_node(g, st));
    CHECK(da2 && out && ds_graph_status(g) == DS_OK);
    char *t = ds_graph_summary(g);
    CHECK(t);
    CHECK(strstr(t, "Layer (type)") && strstr(t, "Output Shape") && strstr(t, "Param #") &&
          strstr(t, "Connected to"));
    CHECK_ROW(t, "a (InputLayer)", 0, "(None, 8)", "0", "");
    CHECK_ROW(t, "b (InputLayer)", 0, "(None, 6)", "0", "");
    CHECK_ROW(t, "a2 (InputLayer)", 0, "(None, 8)", "0", "");
    CHECK_ROW(t, "fc_a (Dense)", 0, "(None, 16)", "144", "a");
    CHECK_ROW(t, "fc_b (Dense)", 0, "(None, 16)", "112", "b");
    CHECK_ROW(t, "add_1 (Add)", 0, "(None, 16)", "0", "fc_a, fc_b");
    CHECK_ROW(t, "concat_1 (Concatenate)", 0, "(None, 32)", "0", "fc_a, add_1");
    CHECK_ROW(t, "head (Dense)", 0, "(None, 3)", "99", "concat_1");
    CHECK_ROW(t, "fc_a (Dense)", 1, "(None, 16)", "144", "a2");
    CHECK_ROW(t, "add_2 (Add)", 0, "(None, 3)", "3", "head");
    /* 144 + 112 + 99 + 3 (fc_a once) */
    CHECK(strstr(t, "Total params: 358\n"));
    CHECK(strstr(t, "Trainable params: 355\n"));
    CHECK(strstr(t, "Non-trainable params: 3\n"));
    /* rows in layer order: one per layer */
    CHECK(strstr(t, "a (InputLayer)") < strstr(t, "fc_a (Dense)"));
    CHECK(strstr(t, "head (Dense)") < strstr(t, "add_2 (Add)"));
    free(t);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(summary_shapes_alignment_and_thousands)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "image", 4, (int64_t[]){2, 32, 64, 64});
    ds_node *r = ds_relu(g, x);
    ds_node *v = ds_input(g, "a_rather_long_input_name_for_width", 2, (int64_t[]){2, 100});
    ds_node *d = ds_dense(g, v, &(ds_dense_opts){ .name = "big", .units = 1000 });
    CHECK(r && d);
    /* a parameter not used by this graph does not count */
    CHECK(ds_model_add_param(m, "unused", 1, (int64_t[]){7}, 1, (ds_init){ DS_INIT_ZEROS, 0, 0 }));
    char *t = ds_graph_summary(g);
    CHECK(t);
    CHECK_ROW(t, "image (InputLayer)", 0, "(None, 32, 64, 64)", "0", "");
    CHECK_ROW(t, "relu_1 (ReLU)", 0, "(None, 32, 64, 64)", "0", "image");
    CHECK_ROW(t, "big (Dense)", 0, "(None, 1000)", "101,000", "a_rather_long_input_name_for_width");
    CHECK(strstr(t, "Total params: 101,000\n") && strstr(t, "Trainable params: 101,000\n") &&
          strstr(t, "Non-trainable params: 0\n"));
    /* every column starts at the same offset in the header and in each row */
    const char *hdr = strstr(t, "Layer (type)");
    size_t col_shape = (size_t)(strstr(hdr, "Output Shape") - hdr);
    size_t col_param = (size_t)(strstr(hdr, "Param #") - hdr);
    const char *names[] = { "image (InputLayer)", "relu_1 (ReLU)", "big (Dense)" };
    const char *shapes[] = { "(None, 32, 64, 64)", "(None, 32, 64, 64)", "(None, 1000)" };
    const char *params[] = { "0", "0", "101,000" };
    for (int i = 0; i < 3; i++) {
        const char *line = strstr(t, names[i]);
        CHECK(line && line[-1] == '\n');
        CHECK((size_t)(strstr(line, shapes[i]) - line) == col_shape);
        CHECK((size_t)(strstr(line + col_shape, params[i]) - line) == col_param);
        CHECK(col_param > col_shape + strlen("(None, 32, 64, 64)"));
    }
    /* batch changes show the same table (the batch is None) */
    CHECK(ds_graph_set_batch(g, 5) == DS_OK);
    char *t2 = ds_graph_summary(g);
    CHECK(t2 && !strcmp(t, t2));
    free(t);
    free(t2);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(summary_empty_graph)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    char *t = ds_graph_summary(g);
    CHECK(t && strstr(t, "Total params: 0\n") && strstr(t, "Non-trainable params: 0\n"));
    free(t);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}
