/* cli.c - fuzz target for the command line: the input is an argument list, one argument per
 * line (at most 32 of at most 255 bytes), given to the tool's dispatcher in check-only mode
 * (cli_check_only): every command parses and validates its flags, then returns before it
 * opens a file, so the fuzzer never reads or writes outside its scratch files. */
#include "fuzz.h"

#include "../src/cli/cli.h"

#include <string.h>

enum { MAX_ARGS = 32, MAX_ARG = 255 };

int fuzz_cli(const uint8_t *data, size_t size)
{
    fuzz_setup();
    static char buf[MAX_ARGS][MAX_ARG + 1];
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "deepsky";
    size_t i = 0;
    while (i < size && argc <= MAX_ARGS) {
        size_t j = i;
        while (j < size && data[j] != '\n')
            j++;
        size_t len = j - i < MAX_ARG ? j - i : MAX_ARG;
        char *a = buf[argc - 1];
        memcpy(a, data + i, len);
        a[len] = 0;   /* an embedded NUL just ends the argument early, as in a real argv */
        argv[argc++] = a;
        i = j + 1;
    }
    argv[argc] = NULL;
    cli_check_only = true;
    cli_main(argc, argv);
    cli_check_only = false;
    ds_set_num_threads(1);   /* --threads N took effect */
    return 0;
}
