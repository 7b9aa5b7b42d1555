/* io.h - helpers shared by the file-format readers and writers. */
#ifndef DS_IO_H
#define DS_IO_H

#include "../internal.h"

#include <sys/types.h>
#ifndef DS_NO_ZLIB
#include <zlib.h>
#endif

/* The name a buffer goes by in messages when the caller gives none. */
#define DSI_MEM_NAME "<memory>"

/* A file written under a temporary name and renamed into place by dsi_wfile_commit. */
typedef struct {
    FILE *fp;
    const char *path;     /* as given, for messages */
    char target[4096];    /* the file replaced: path, or the end of its symbolic links */
    char tmp[4096];       /* "<target>.tmp.<pid>" */
} dsi_wfile;
/* The file a write to path replaces: path itself, or the end of its chain of symbolic
 * links (each resolved relative to its link's folder; the links stay). Fails with
 * DS_ERR_IO naming the kind when that file exists and is not a regular file (a device, a
 * FIFO, a socket, a folder): renaming over it would replace it. *mode: the existing file's
 * permission bits, 0 for a new file. Every writer calls it (dsi_wfile_open, FITS). */
ds_status dsi_wfile_target(const char *path, char *target, size_t cap, mode_t *mode);
ds_status dsi_wfile_open(dsi_wfile *w, const char *path);
/* Flushes, syncs and renames; on any failure removes the temporary file. */
ds_status dsi_wfile_commit(dsi_wfile *w);
/* Closes and removes the temporary file (the final path is untouched). */
void      dsi_wfile_abort(dsi_wfile *w);

/* Reads a whole file (NUL-terminated for convenience); the caller frees *data. */
ds_status dsi_read_file(const char *path, unsigned char **data, size_t *size);

/* A gzip stream held in memory, inflated piece by piece as zlib's gzread inflates a file
 * (gzmem.c): members one after another; bytes after a member that do not start another
 * (gzip magic) are ignored. */
typedef struct {
#ifdef DS_NO_ZLIB
    struct { unsigned char *next_in; unsigned avail_in; } z;   /* the WebAssembly build */
#else
    z_stream z;
#endif
    size_t rest;       /* input bytes after those handed to zlib (it counts in 32 bits) */
    bool member;       /* inside a member */
    bool done;         /* no more data */
    bool cut;          /* the data ended inside a member (zlib's "unexpected end of file") */
    ds_status status;  /* of a failure */
    const char *msg;   /* zlib's text for it */
} dsi_gz;
/* Starts on buf[0..len), which starts with the gzip magic 1f 8b; DS_ERR_NOMEM naming name.
 * Built with DS_NO_ZLIB (the WebAssembly playground's build, which has no zlib): fails with
 * DS_ERR_FORMAT naming name ("gzip data, and deepsky was built without zlib"). */
ds_status dsi_gz_open(dsi_gz *g, const unsigned char *buf, size_t len, const char *name);
/* Inflates up to n bytes into dst and returns the count; fewer than n at the end of the
 * data (g->cut says whether it was cut short). -1 on corrupt data (DS_ERR_FORMAT) or no
 * memory (DS_ERR_NOMEM): g->status and g->msg say which; no message is set. */
long long dsi_gz_read(dsi_gz *g, unsigned char *dst, size_t n);
void      dsi_gz_close(dsi_gz *g);
/* Whether buf[0..len) starts with the gzip magic. */
bool      dsi_is_gzip(const unsigned char *buf, size_t len);
/* Inflates the gzip data gzbuf[0..gzlen) whole into *out (malloc'd; *len bytes, then zero
 * bytes up to a multiple of pad when pad > 1), refusing more than ds_get_memory_limit() (a gzip
 * bomb) and data cut short; messages name path. */
ds_status dsi_gunzip(const unsigned char *gzbuf, size_t gzlen, const char *path, size_t pad,
                     unsigned char **out, size_t *len);

/* Checks the card syntax of every FITS header in fp (fits_check.c) before cfitsio reads it;
 * DS_ERR_FORMAT naming the HDU and the card. */
ds_status dsi_fits_check(FILE *fp, const char *path);

#endif
