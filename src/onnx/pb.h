/* pb.h - what the ONNX export and import share: the schema compiled by protoc-c (onnx.pb-c.h,
 * made by the Makefile in $(BUILD)/gen), the opset written, and an arena for messages. */
#ifndef DS_ONNX_PB_H
#define DS_ONNX_PB_H

#include "../internal.h"

#include "onnx.pb-c.h"

#define DSI_ONNX_OPSET 17      /* ai.onnx opset written; the reader takes 7 and later */
#define DSI_ONNX_IR 8          /* IR version of opset 17 */

/* Every block allocated for one model's messages, freed together. */
typedef struct {
    void **blocks;
    size_t n, cap;
    bool failed;           /* an allocation failed: the model is incomplete */
} dsi_arena;

/* Zeroed memory owned by a (NULL and a->failed on failure). */
void *dsi_arena_alloc(dsi_arena *a, size_t bytes);
char *dsi_arena_strdup(dsi_arena *a, const char *s);
char *dsi_arena_printf(dsi_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dsi_arena_free(dsi_arena *a);

#endif
