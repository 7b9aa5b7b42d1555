/* native.c - the playground's engine built natively: trains as the page does and prints the
 * losses, for make test-playground's WASM-against-native check.
 * Usage: playground-native MODEL DATA SEED BATCH L1 EPOCHS
 *   DATA: text, "n_train n_test nf ycols" then n_train + n_test rows of nf features and
 *   max(ycols, 1) labels. Prints "epoch train_loss test_loss" per epoch (%.9g). */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

/* Reads one data set of the file: n rows of nf features and ny labels. */
static int read_rows(FILE *f, int n, int nf, int ny, float *x, float *y)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < nf; j++)
            if (fscanf(f, "%f", &x[(size_t)i * nf + j]) != 1)
                return 1;
        for (int j = 0; j < ny; j++)
            if (fscanf(f, "%f", &y[(size_t)i * ny + j]) != 1)
                return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL DATA SEED BATCH L1 EPOCHS\n", argv[0]);
        return 2;
    }
    char *text = read_text(argv[1]);
    FILE *f = fopen(argv[2], "r");
    int n[2], nf, ycols;
    if (!text || !f || fscanf(f, "%d %d %d %d", &n[0], &n[1], &nf, &ycols) != 4 || n[0] < 1 ||
        n[1] < 1 || nf < 1 || ycols < 0) {
        fprintf(stderr, "playground-native: cannot read %s or %s\n", argv[1], argv[2]);
        return 1;
    }
    int ny = ycols > 0 ? ycols : 1, rc = 0;
    if (pg_build(text, strtod(argv[3], NULL), atoi(argv[4]), strtod(argv[5], NULL))) {
        fprintf(stderr, "playground-native: %s\n", pg_error());
        return 1;
    }
    for (int k = 0; k < 2 && !rc; k++) {
        float *x = malloc(sizeof(float) * (size_t)n[k] * nf);
        float *y = malloc(sizeof(float) * (size_t)n[k] * ny);
        if (!x || !y || read_rows(f, n[k], nf, ny, x, y) ||
            pg_set_data(k, x, y, n[k], nf, ycols)) {
            fprintf(stderr, "playground-native: data set %d: %s\n", k, pg_error());
            rc = 1;
        }
        free(x);
        free(y);
    }
    for (int e = 1; !rc && e <= atoi(argv[6]); e++) {
        if (isnan(pg_train(1))) {
            fprintf(stderr, "playground-native: %s\n", pg_error());
            rc = 1;
            break;
        }
        printf("%d %.9g %.9g\n", e, pg_loss(0), pg_loss(1));
    }
    fclose(f);
    free(text);
    pg_reset();
    return rc;
}
