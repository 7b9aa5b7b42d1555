/* test_fuzz_dict.c - the committed fuzz dictionaries (fuzz/dict/<name>.dict) are those the
 * tables generate now (fuzz/dict.c): a keyword, option or flag added without `make
 * fuzz-dict` fails here, naming the entries missing from the file and those it has extra. */
#include "test.h"

#include "../fuzz/dict.h"
#include "../src/internal.h"

/* The lines of text as an array of pointers into it (text is modified); NULL if out of
 * memory. */
static char **split_lines(char *text, int *n)
{
    int cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == '\n';
    char **lines = malloc((size_t)cap * sizeof *lines);
    *n = 0;
    if (!lines)
        return NULL;
    for (char *p = text, *nl; *p; p = nl + 1) {
        lines[(*n)++] = p;
        if (!(nl = strchr(p, '\n')))
            break;
        *nl = 0;
    }
    return lines;
}

static int contains(char *const *lines, int n, const char *line)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(lines[i], line))
            return 1;
    return 0;
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (len + got + 1 > cap) {
            cap = 2 * (len + got + 1);
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        memcpy(buf + len, chunk, got);
        len += got;
    }
    fclose(fp);
    if (buf)
        buf[len] = 0;
    return buf ? buf : calloc(1, 1);
}

/* 0 if fuzz/dict/<name>.dict is the generated text; else 1 with the differences in msg. */
static int compare_dict(const char *name, char *msg, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "fuzz/dict/%s.dict", name);
    char *want = fuzz_dict_text(name), *have = read_all(path);
    int nw = 0, nh = 0, rc = 1;
    char **lw = want ? split_lines(want, &nw) : NULL, **lh = have ? split_lines(have, &nh) : NULL;
    if (!want || !lw)
        snprintf(msg, cap, "%s: the generator failed (out of memory?)", name);
    else if (!have || !lh)
        snprintf(msg, cap, "cannot read %s (run make fuzz-dict)", path);
    else {
        char missing[1024] = "", extra[1024] = "";
        for (int i = 0; i < nw; i++)
            if (!contains(lh, nh, lw[i]))
                dsi_snprintf_cat(missing, sizeof missing, " %s", lw[i]);
        for (int i = 0; i < nh; i++)
            if (!contains(lw, nw, lh[i]))
                dsi_snprintf_cat(extra, sizeof extra, " %s", lh[i]);
        bool same = nw == nh;
        for (int i = 0; same && i < nw; i++)
            same = !strcmp(lw[i], lh[i]);
        if (*missing || *extra)
            snprintf(msg, cap, "%s differs from the tables (run make fuzz-dict):%s%s%s%s", path,
                     *missing ? " missing:" : "", missing, *extra ? "; extra:" : "", extra);
        else if (!same)
            snprintf(msg, cap, "%s has the generated entries in another order or repeated "
                     "(run make fuzz-dict)", path);
        else
            rc = 0;
    }
    free(lw);
    free(lh);
    free(want);
    free(have);
    return rc;
}

TEST(fuzz_dictionaries_match_the_tables)
{
#define COMPARE(name) CHECK_OK(compare_dict(#name, msg_, cap_));
    FUZZ_DICTS(COMPARE)
#undef COMPARE
    return TEST_PASS;
}

/* The generated dictionaries hold what the tables hold: a sample of each kind of word, and
 * the flags added since the dictionaries were kept by hand. */
TEST(fuzz_dictionaries_list_keywords_options_and_flags)
{
    const struct {
        const char *dict, *entry;
    } want[] = {
        {"model", "\"conv2d\""}, {"model", "\"maxpooling2d\""}, {"model", "\"gelu\""},
        {"model", "\"leakyrelu\""}, {"model", "\"sparse_categorical_crossentropy\""},
        {"model", "\"adamw\""}, {"model", "\"kernel_initializer\""}, {"model", "\"he_normal\""},
        {"model", "\"inverse_time\""}, {"model", "\"bilinear\""}, {"model", "\"\\x0A\""},
        {"cli", "\"train\""}, {"cli", "\"--accumulate\""}, {"cli", "\"--val-split\""},
        {"cli", "\"-o\""}, {"cli", "\"--version\""}, {"cli", "\"rmsprop\""},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *text = fuzz_dict_text(want[i].dict);
        CHECK(text);
        char line[128];
        snprintf(line, sizeof line, "\n%s\n", want[i].entry);
        bool found = strstr(text, line) != NULL;
        free(text);
        if (!found)
            FAIL("%s.dict lacks %s", want[i].dict, want[i].entry);
    }
    CHECK(!fuzz_dict_text("nothing"));
    return TEST_PASS;
}
