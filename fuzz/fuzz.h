/* fuzz.h - the fuzz targets: one function per reader of outside input. libfuzzer.c turns
 * one of them into a libFuzzer binary (make fuzz); tests/test_fuzz_corpus.c replays the
 * committed corpora (fuzz/corpus/<name>/) through all of them in make test. */
#ifndef DS_FUZZ_H
#define DS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 (libFuzzer's convention); a crash, leak or sanitizer report is the failure.
 * The readers' targets load each input from a file and from memory, and abort if the two
 * disagree in status, message or tensor bits. */
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_idx(const uint8_t *data, size_t size);
int fuzz_csv(const uint8_t *data, size_t size);
int fuzz_fits(const uint8_t *data, size_t size);
int fuzz_model(const uint8_t *data, size_t size);
int fuzz_cli(const uint8_t *data, size_t size);
int fuzz_classic(const uint8_t *data, size_t size);
int fuzz_onnx(const uint8_t *data, size_t size);   /* onnx.c: ds_onnx_import_mem */

typedef struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} fuzz_target;

#define FUZZ_TARGETS(X) \
    X(npy) X(safetensors) X(idx) X(csv) X(fits) X(model) X(cli) X(classic) X(onnx)

/* Process-wide set-up every target needs: one thread, a memory limit of 256 MB.
 * Cheap: every target calls it on every input. */
void fuzz_setup(void);
/* Writes data to this process's scratch file named ...<suffix> (in $TMPDIR or /tmp) and
 * returns its path (static storage), or NULL if it cannot be written. */
const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix);

#endif
