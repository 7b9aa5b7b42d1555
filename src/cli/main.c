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
    {"sim", cmd_sim, "simulate galaxy images with a truth table (sim galaxies ...)"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

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
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2)
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    char *h[] = {argv[2], "--help"};
                    return commands[i].fn(1, h + 1) == -1 ? 0 : 0;
                }
        help(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
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

#ifndef DS_CLI_NO_MAIN   /* the fuzz target and the tests call cli_main themselves */
int main(int argc, char **argv) { return cli_main(argc, argv); }
#endif
