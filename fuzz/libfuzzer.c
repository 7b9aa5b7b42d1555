/* libfuzzer.c - the libFuzzer entry point for one target, chosen at compile time with
 * -DFUZZ_TARGET=npy (see make fuzz). */
#include "fuzz.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return CAT(fuzz_, FUZZ_TARGET)(data, size);
}
