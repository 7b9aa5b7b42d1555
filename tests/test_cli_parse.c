/* test_cli_parse.c - the command line's option parser: a flag given without its value, in
 * each form, is a usage error naming the flag and what came instead (the tool under test is
 * spawned as test_cli.c does; all of these fail before any file is opened). */
#include "test.h"
#include "spawn.h"

TEST(cli_flag_without_a_value_names_the_flag)
{
    const struct {
        const char *args, *want;
    } cases[] = {
        /* the value left out before another option: the flag is named, not the option's
         * value reported as an unexpected argument */
        {"train m.model --data x.npy --labels y.npy --epochs -o w.safetensors",
         "deepsky train: option '--epochs' needs a value (N) but is followed by the option "
         "'-o' (a value that starts with '-': --epochs=VALUE)"},
        {"train m.model --data x.npy -o --epochs 3",
         "deepsky train: option '--output' needs a value (W.safetensors) but is followed by "
         "the option '--epochs'"},
        {"predict m.model --weights --data x.npy -o p.npy",
         "deepsky predict: option '--weights' needs a value (W) but is followed by the option "
         "'--data'"},
        {"eval m.model --weights w.safetensors --data x.npy --labels y.npy --batch-size -h",
         "option '--batch-size' needs a value (B) but is followed by the option '-h'"},
        /* the flag last */
        {"train m.model --data x.npy -o w.safetensors --epochs",
         "deepsky train: option '--epochs' needs a value (N) (see 'deepsky train --help')"},
        /* a value that looks like an option, given with '=': read as the value */
        {"train m.model --data x.npy --labels y.npy -o w.safetensors --epochs=-o",
         "deepsky train: option '--epochs': '-o' is not an integer in [1, "},
        /* a negative number is a value, not an option */
        {"train m.model --data x.npy --labels y.npy -o w.safetensors --epochs -3",
         "deepsky train: option '--epochs': '-3' is not an integer in [1, "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = cli_run("%s", cases[i].args);
        if (rc != 2 || !strstr(cli_out, cases[i].want) || strstr(cli_out, "unexpected argument"))
            FAIL("deepsky %s: status %d (expected 2), output '%s', expected '%s'", cases[i].args,
                 rc, cli_out, cases[i].want);
    }
    return TEST_PASS;
}

TEST(cli_augment_names_the_bad_item)
{
    const struct {
        const char *aug, *want;
    } cases[] = {
        {"shift:0", "option '--augment': 'shift:0': shift:N takes a whole number of pixels "
                    "from 1 to 1024"},
        {"hflip,shift:2x", "'shift:2x': shift:N takes a whole number"},
        {"shift:", "'shift:': shift:N takes a whole number"},
        {"flips,spin", "option '--augment': 'spin' is not flips, hflip, rot90, shift:N or noise:S[:INPUT]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "train m.model --data x.npy --labels y.npy -o w.safetensors "
                 "--augment %s", cases[i].aug);
        int rc = cli_run("%s", args);
        if (rc != 2 || !strstr(cli_out, cases[i].want))
            FAIL("--augment %s: status %d (expected 2), output '%s', expected '%s'",
                 cases[i].aug, rc, cli_out, cases[i].want);
    }
    return TEST_PASS;
}
