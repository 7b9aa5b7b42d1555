/* stream.h - what the training loop and preprocessing use of a stream (stream.c) beyond the
 * public header: the hooks its reader thread runs, a pass over an item's files, and the
 * description a checkpoint records. */
#ifndef DS_IO_STREAM_H
#define DS_IO_STREAM_H

#include "io.h"

/* Run by the reader thread, so they may only read what the consumer leaves alone while it
 * trains: check on each block of samples as read (the block's tensors hold rows
 * [first, first + count) of their files, each item's file as source), the first time a
 * run reads the file, before they enter the shuffle buffer; prepare on each sample (a
 * feed of one sample) once it is in the stream's memory (it may change the values). A
 * status other than DS_OK stops the reader; ds_stream_next then returns it. */
typedef struct {
    ds_status (*check)(void *ctx, const ds_feed *block, int64_t first);
    ds_status (*prepare)(void *ctx, ds_feed *batch);
    void *ctx;
} dsi_stream_hooks;
/* Sets the hooks of the next ds_stream_start (NULL: none). */
void dsi_stream_set_hooks(ds_stream *s, const dsi_stream_hooks *h);

/* ds_stream_next without the copy: the batch stays in the stream's memory, row r of item i
 * (inputs first, in options order) at dsi_stream_row(s, i, r), until the next call. */
ds_status dsi_stream_next_rows(ds_stream *s, ds_stream_batch *info);
const float *dsi_stream_row(const ds_stream *s, int i, int64_t r);

/* The stream's items in options order, inputs first: their count, and the feed of one
 * tensor per item whose shape is [N, sample shape] and whose data is NULL (for binding
 * and shape checks, never for values). */
int dsi_stream_items(const ds_stream *s);
void dsi_stream_shape_feed(const ds_stream *s, ds_tensor *t, ds_feed *f);

/* Calls fn with the samples of item i (labels: of the labels list) shard by shard in file
 * order: count samples of per floats each. Reads on the calling thread. */
typedef ds_status (*dsi_stream_fn)(void *ctx, const float *x, int64_t count, int64_t per);
ds_status dsi_stream_scan(ds_stream *s, int labels, int i, dsi_stream_fn fn, void *ctx);
/* The index of the input item called name (NULL: the only input item), or -1. */
int dsi_stream_find_input(const ds_stream *s, const char *name);

/* For a checkpoint's settings: the shuffle buffer's size (a run with no_shuffle has none)
 * and, per item, a line "<what> stream data|labels '<name>': ..." naming its files
 * (without folders), shapes and sizes. */
void dsi_stream_describe(const ds_stream *s, dsi_buf *b, const char *what, int no_shuffle);

#endif
