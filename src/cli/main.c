/* main.c - the deepsky command line tool: dispatches to one cmd_<name>.c per command. */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *about;
} commands[] = {
    {"summary", cmd_summary, "print a model's layers, output shapes and parameter counts"},
    {"init", cmd_init, "write a model's initial weights"},
    {"train", cmd_train, "train a model on data (mini-batches, validation, checkpoints)"},
    {"eval", cmd_eval, "loss and metrics of trained weights on labelled data"},
    {"predict", cmd_predict, "outputs of trained weights for data"},
    {"grad", cmd_grad, "one forward and backward pass: loss, output and every gradient"},
    {"explain", cmd_explain, "attribution maps, filters, feature maps, class visualization"},
    {"sim", cmd_sim, "simulate galaxy images with a truth table (sim galaxies ...)"},
    {"measure", cmd_measure, "PSF-corrected ellipticities of stamps by adaptive moments"},
    {"shear-bias", cmd_shear_bias, "shear bias m, c of measured ellipticities of sheared galaxies"},
    {"classic", cmd_classic, "classic baselines: classic train|eval|predict --method M ..."},
    {"search", cmd_search, "hyperparameter search of a classic method by cross-validation"},
    {"curve", cmd_curve, "learning curve of a classic method (score against training size)"},
    {"generate", cmd_generate, "decode draws from the prior at a VAE's sampling layer"},
    {"train-gan", cmd_train_gan, "train a generator and a discriminator together (a GAN)"},
    {"export", cmd_export, "a model with trained weights as an ONNX file"},
    {"import", cmd_import, "an ONNX file as a model file and weights"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])
static const char *const help_words[] = {"help", "--help", "-h"};
static const char *const version_word = "--version";

static bool is_help(const char *a)
{
    for (size_t i = 0; i < sizeof help_words / sizeof help_words[0]; i++)
        if (!strcmp(a, help_words[i]))
            return true;
    return false;
}

static void help(FILE *fp)
{
    fprintf(fp, "deepsky %s - deep learning for astronomy, from the command line\n\n"
            "usage: deepsky COMMAND [options]\n\ncommands:\n", DS_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].about);
    fprintf(fp, "\n'deepsky COMMAND --help' lists a command's options. Model files, data formats\n"
            "and examples: see README.md.\n");
}

int cli_main(int argc, char **argv)
{
    cli_ignore_file_size_limit();
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (is_help(cmd)) {
        if (argc > 2)
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    char *h[] = {argv[2], "--help"};
                    return commands[i].fn(1, h + 1) == -1 ? 0 : 0;
                }
        help(stdout);
        return 0;
    }
    if (!strcmp(cmd, version_word)) {
        printf("deepsky %s\n", ds_build_info());
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) {
            int rc = commands[i].fn(argc - 2, argv + 2);
            return rc < 0 ? 0 : rc;
        }
    fprintf(stderr, "deepsky: unknown command '%s' (see 'deepsky help')\n", cmd);
    return 2;
}

typedef struct {
    void (*fn)(const char *word, void *ctx);
    void *ctx;
} word_sink;

static void option_words(const cli_cmd *c, void *ctx)
{
    const word_sink *w = ctx;
    char word[72];
    for (int i = 0; i < c->n_opts; i++) {
        snprintf(word, sizeof word, "--%s", c->opts[i].name);
        w->fn(word, w->ctx);
        if (c->opts[i].short_name) {
            snprintf(word, sizeof word, "-%c", c->opts[i].short_name);
            w->fn(word, w->ctx);
        }
    }
}

void cli_words(void (*fn)(const char *word, void *ctx), void *ctx)
{
    word_sink w = {fn, ctx};
    for (size_t i = 0; i < sizeof help_words / sizeof help_words[0]; i++)
        fn(help_words[i], ctx);
    fn(version_word, ctx);
    cli_visitor = option_words;
    cli_visitor_ctx = &w;
    for (int i = 0; i < N_COMMANDS; i++) {
        fn(commands[i].name, ctx);
        char *argv[] = {NULL};
        commands[i].fn(0, argv);
    }
    cli_visitor = NULL;
    cli_visitor_ctx = NULL;
}

#ifndef DS_CLI_NO_MAIN   /* the fuzz target and the tests call cli_main themselves */
int main(int argc, char **argv) { return cli_main(argc, argv); }
#endif
