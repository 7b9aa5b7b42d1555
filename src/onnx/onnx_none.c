/* onnx_none.c - the ONNX entry points of a build without libprotobuf-c (make NO_ONNX=1, which
 * compiles this file instead of the rest of src/onnx/): each fails with a message saying so. */
#include "../internal.h"

static ds_status no_onnx(const char *what)
{
    return dsi_fail(DS_ERR_ARG, "%s: deepsky was built without ONNX support (NO_ONNX=1); "
                    "install libprotobuf-c-dev and protobuf-c-compiler and rebuild", what);
}

ds_status ds_onnx_export(const ds_net *n, const char *path)
{
    (void)n;
    return no_onnx(path ? path : "ONNX export");
}

ds_status ds_onnx_export_mem(const ds_net *n, void **buf, size_t *len)
{
    (void)n;
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    return no_onnx("ONNX export");
}

ds_status ds_onnx_import(const char *path, char **text, ds_net **net)
{
    if (text)
        *text = NULL;
    if (net)
        *net = NULL;
    return no_onnx(path ? path : "ONNX import");
}

ds_status ds_onnx_import_mem(const void *buf, size_t len, const char *name, char **text,
                             ds_net **net)
{
    (void)buf, (void)len;
    return ds_onnx_import(name ? name : "ONNX import", text, net);
}
