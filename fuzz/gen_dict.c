/* gen_dict.c - writes the fuzz dictionaries DIR/<name>.dict (make fuzz-dict: DIR is
 * fuzz/dict) from the tables they list (fuzz/dict.c). */
#include "dict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_dict(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dict", dir, name);
    char *text = fuzz_dict_text(name);
    FILE *fp = text ? fopen(path, "w") : NULL;
    int ok = fp && fputs(text, fp) >= 0;
    if (fp && fclose(fp))
        ok = 0;
    if (!ok)
        fprintf(stderr, "gen_dict: cannot write %s\n", path);
    else
        printf("wrote %s\n", path);
    free(text);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_dict DIR (writes DIR/model.dict and DIR/cli.dict)\n");
        return 2;
    }
    int rc = 0;
#define WRITE(name) rc |= write_dict(argv[1], #name);
    FUZZ_DICTS(WRITE)
#undef WRITE
    return rc;
}
