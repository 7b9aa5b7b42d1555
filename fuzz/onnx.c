/* onnx.c - fuzz target for the ONNX reader (ds_onnx_import_mem): protobuf bytes in, a model
 * file's text and a net out, or an error with a message. Whatever imports also runs one
 * prediction on zeros, so a translated net that builds but cannot run is found too. */
#include "fuzz.h"

#include "deepsky.h"

#include <stdlib.h>
#include <string.h>

int fuzz_onnx(const uint8_t *data, size_t size)
{
    fuzz_setup();
    char *text = NULL;
    ds_net *n = NULL;
    ds_status st = ds_onnx_import_mem(data, size, "fuzz.onnx", &text, &n);
    if (st != DS_OK) {
        if (n || text || !ds_last_error()[0])
            abort();   /* a failure sets no outputs and says why */
        return 0;
    }
    if (!n || !text)
        abort();
    if (ds_net_input_count(n) == 1) {
        const ds_node *in = ds_net_input_at(n, 0);
        int64_t s[8];
        memcpy(s, ds_node_shape(in), (size_t)ds_node_ndim(in) * sizeof *s);
        s[0] = 1;
        ds_tensor *x = ds_tensor_create(ds_node_ndim(in), s), *y = NULL;
        if (x && ds_tensor_numel(x) <= (1 << 20))
            (void)ds_net_predict(n, x, 1, &y);
        ds_tensor_free(y);
        ds_tensor_free(x);
    }
    free(text);
    ds_net_free(n);
    return 0;
}
