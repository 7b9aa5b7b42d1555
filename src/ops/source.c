/* source.c - the leaf ops: graph inputs and parameter reads (no computation). */
#include "../internal.h"

static void leaf_forward(ds_node *y) { (void)y; }
static void leaf_backward(ds_node *y) { (void)y; }

const ds_op_def dsi_op_input = {
    .cpu = {leaf_forward, leaf_backward},
    .bwd_reads = dsi_reads_none,
};
const ds_op_def dsi_op_param = {
    .cpu = {leaf_forward, leaf_backward},
    .bwd_reads = dsi_reads_none,
};
