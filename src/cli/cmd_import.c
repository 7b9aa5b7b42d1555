/* cmd_import.c - deepsky import FILE.onnx -o MODEL --weights W: an ONNX model as a model file
 * and weights. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_import(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("output", 'o', "MODEL", "where to write the model file (required)"),
        CLI_OPT("weights", 0, "W.safetensors", "where to write the weights (required)"),
    };
    cli_cmd c = {"import", "FILE.onnx -o MODEL --weights W.safetensors",
                 "Translates an ONNX model into a deepsky model file (one layer per ONNX node, "
                 "named after it) and its weights. The ops deepsky's layers cover: Conv, "
                 "ConvTranspose, Gemm, MatMul, the pools, BatchNormalization, the activations, "
                 "Softmax, Concat, Add, Sub, Mul, Flatten, Reshape, Dropout (see README).",
                 opts, 2, {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    const char *out = cli_get(&c, "output"), *w = cli_get(&c, "weights");
    if (!out)
        return cli_usage_error(&c, "-o MODEL is required (the model file to write)");
    if (!w)
        return cli_usage_error(&c, "--weights W.safetensors is required");
    if ((rc = cli_output_ext(&c, "--weights", w, ".safetensors", "weights")))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    if (!ds_has_feature("onnx")) {
        fprintf(stderr, "deepsky: error: import: deepsky was built without ONNX support "
                "(NO_ONNX=1); install libprotobuf-c-dev and protobuf-c-compiler and rebuild\n");
        return 1;
    }
    cli_files files = {0};
    cli_files_input(&files, "the ONNX file", c.positional[0]);
    cli_files_output(&files, "-o", out);
    cli_files_output(&files, "--weights", w);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    char *text;
    ds_net *n;
    if (ds_onnx_import(c.positional[0], &text, &n) != DS_OK)
        return cli_fail();
    rc = ds_net_save_weights(n, w) == DS_OK ? 0 : cli_fail();
    if (!rc)
        rc = cli_write_text(out, text);
    if (!rc)
        printf("wrote %s (%d %s, %d %s) and %s (%lld parameters)\n", out,
               ds_net_input_count(n), cli_plural(ds_net_input_count(n), "input", "inputs"),
               ds_net_output_count(n), cli_plural(ds_net_output_count(n), "output", "outputs"),
               w, (long long)ds_model_numel(ds_net_model(n), 0));
    free(text);
    ds_net_free(n);
    return rc;
}
