/* cmd_export.c - deepsky export MODEL --weights W -o model.onnx: a trained net as ONNX. */
#include "cli.h"

int cmd_export(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("weights", 0, "W.safetensors", "the trained weights, with their preprocessing "
                "(required)"),
        CLI_OPT("output", 'o', "FILE.onnx", "where to write the ONNX model (required)"),
    };
    cli_cmd c = {"export", "MODEL --weights W.safetensors -o FILE.onnx",
                 "Writes MODEL with the weights W as an ONNX model (opset 17): the inference "
                 "graph from the inputs to the outputs, each input's preprocessing as its first "
                 "nodes (so it takes raw data), the batch dimension free (\"N\"). Runs in "
                 "onnxruntime, OpenCV's dnn and other ONNX runtimes.", opts, 2, {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    const char *w = cli_get(&c, "weights"), *out = cli_get(&c, "output");
    if (!w)
        return cli_usage_error(&c, "--weights W.safetensors is required (the trained weights)");
    if (!out)
        return cli_usage_error(&c, "-o FILE.onnx is required");
    if ((rc = cli_output_ext(&c, "-o", out, ".onnx", "ONNX models")))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    if (!ds_has_feature("onnx")) {
        fprintf(stderr, "deepsky: error: export: deepsky was built without ONNX support "
                "(NO_ONNX=1); install libprotobuf-c-dev and protobuf-c-compiler and rebuild\n");
        return 1;
    }
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_input(&files, "--weights", w);
    cli_files_output(&files, "-o", out);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    ds_net *n;
    if ((rc = cli_load_net(c.positional[0], w, 1, 0, NULL, &n)))
        return rc;
    cli_weights_note(w, n);
    rc = ds_onnx_export(n, out) == DS_OK ? 0 : cli_fail();
    if (!rc)
        printf("wrote %s: %d %s, %d %s, %lld parameters (ONNX opset 17)\n", out,
               ds_net_input_count(n), cli_plural(ds_net_input_count(n), "input", "inputs"),
               ds_net_output_count(n), cli_plural(ds_net_output_count(n), "output", "outputs"),
               (long long)ds_model_numel(ds_net_model(n), 0));
    ds_net_free(n);
    return rc;
}
