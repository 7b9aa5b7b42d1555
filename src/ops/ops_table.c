/* ops_table.c - each op's definition and name, indexed by its enum: made from ops/op_list.h. */
#include "../internal.h"

#define DSI_OP_EXTERN(E, name, attr) extern const ds_op_def dsi_op_##name;
DSI_OP_LIST(DSI_OP_EXTERN)
#undef DSI_OP_EXTERN

#define DSI_OP_ENTRY(E, name, attr) [DS_OP_##E] = &dsi_op_##name,
const ds_op_def *const dsi_ops[DS_OP_COUNT] = { DSI_OP_LIST(DSI_OP_ENTRY) };
#undef DSI_OP_ENTRY

#define DSI_OP_NAME(E, name, attr) [DS_OP_##E] = #name,
const char *const dsi_op_names[DS_OP_COUNT] = { DSI_OP_LIST(DSI_OP_NAME) };
#undef DSI_OP_NAME

#define DSI_OP_ATTR_BYTES(E, name, attr)                                                       \
    [DS_OP_##E] = _Generic(((union dsi_attr *)0)->attr, dsi_none_attr: 0,                     \
                           default: sizeof(((union dsi_attr *)0)->attr)),
const size_t dsi_attr_bytes[DS_OP_COUNT] = { DSI_OP_LIST(DSI_OP_ATTR_BYTES) };
#undef DSI_OP_ATTR_BYTES
