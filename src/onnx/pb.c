/* pb.c - the arena the ONNX writer builds its protobuf-c messages in. */
#include "pb.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *dsi_arena_alloc(dsi_arena *a, size_t bytes)
{
    if (a->failed)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **b = realloc(a->blocks, cap * sizeof *b);
        if (!b) {
            a->failed = true;
            return NULL;
        }
        a->blocks = b;
        a->cap = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        a->failed = true;
        return NULL;
    }
    a->blocks[a->n++] = p;
    return p;
}

char *dsi_arena_strdup(dsi_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = dsi_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *dsi_arena_printf(dsi_arena *a, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return dsi_arena_strdup(a, buf);
}

void dsi_arena_free(dsi_arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
    *a = (dsi_arena){ 0 };
}
