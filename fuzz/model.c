/* model.c - fuzz target for the model description parser (ds_net_parse): the input is a
 * model file's text. A model that parses is built, summarized, and, when small, run once
 * forward and backward on zero inputs, so the shapes the parser accepted are exercised by
 * the ops they feed. */
#include "fuzz.h"

#include "deepsky.h"

#include <stdlib.h>
#include <string.h>

int fuzz_model(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    ds_net_opts o = {.batch = 2, .seed = 1};
    ds_net *n = NULL;
    if (ds_net_parse(text, "fuzz.model", &o, &n) == DS_OK) {
        ds_graph *g = ds_net_graph(n);
        free(ds_graph_summary(g));
        /* small graphs only: the point is shape logic, not a slow convolution */
        if (ds_graph_bytes(g) < ((size_t)4 << 20) && ds_graph_forward(g) == DS_OK &&
            ds_net_loss(n))
            ds_graph_backward(g, ds_net_loss(n));
    }
    ds_net_free(n);
    free(text);
    return 0;
}
