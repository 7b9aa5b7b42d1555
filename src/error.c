/* error.c - status names and the thread-local message of the last failure. */
#include "internal.h"

static _Thread_local char last_msg[1024];
static _Thread_local ds_status last_status;

ds_status dsi_last_status(void) { return last_status; }

/* Formats apart first: an argument may be ds_last_error() itself (a message that adds
 * context to the one before). */
ds_status dsi_fail(ds_status s, const char *fmt, ...)
{
    char msg[sizeof last_msg];
    last_status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_msg, msg, sizeof msg);
    return s;
}

const char *ds_last_error(void)
{
    return last_msg;
}

const char *ds_status_name(ds_status s)
{
    switch (s) {
    case DS_OK: return "ok";
    case DS_ERR_NOMEM: return "out of memory";
    case DS_ERR_ARG: return "bad argument";
    case DS_ERR_SHAPE: return "shape mismatch";
    case DS_ERR_IO: return "I/O error";
    case DS_ERR_FORMAT: return "bad file format";
    case DS_ERR_STATE: return "wrong state";
    case DS_ERR_VALUE: return "bad value";
    }
    return "unknown status";
}
