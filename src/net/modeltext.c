/* modeltext.c - a model file's options set by layer and option name (LAYER.OPTION, or a bare
 * OPTION that one line takes), the text rewritten: the substitution of `deepsky search`. */
#include "net.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int line;             /* 0: the optimizer line the file lacks (added at the end) */
    char name[DS_NAME_MAX], kind[48], keys[512];
} line_info;

typedef struct {
    line_info v[512];
    int n;
    bool has_optim;
} lines;

static void collect(void *ctx, int line, const char *name, const char *kind, const char *keys)
{
    lines *L = ctx;
    if (L->n == (int)(sizeof L->v / sizeof L->v[0]))
        return;   /* searching a layer past the 512th gives "no layer named" */
    line_info *e = &L->v[L->n++];
    e->line = line;
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->keys, sizeof e->keys, "%s", keys);
    L->has_optim |= !strcmp(kind, "optimizer");
}

/* The lines of text; without an optimizer line, one to add (its options from a probe). */
static ds_status read_lines(const char *text, const char *file, lines *L)
{
    memset(L, 0, sizeof *L);
    ds_status st = dsi_net_parse_lines(text, file, collect, L);
    if (st || L->has_optim)
        return st;
    lines probe;
    memset(&probe, 0, sizeof probe);
    if ((st = dsi_net_parse_lines("input shape=1\noptimizer adam\n", "(probe)", collect, &probe)))
        return st;
    if (L->n < (int)(sizeof L->v / sizeof L->v[0])) {
        L->v[L->n] = probe.v[probe.n - 1];
        L->v[L->n++].line = 0;
    }
    return DS_OK;
}

static bool in_words(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; n && (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

/* "a, b, c" of every layer's name (the optimizer last). */
static void layer_names(const lines *L, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < L->n; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "", L->v[i].name);
}

/* "a, b" from the space-separated words of keys. */
static void comma_words(const char *keys, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", keys);
    char tmp[1024] = "";
    for (char *p = buf; *p; p++)
        snprintf(tmp + strlen(tmp), sizeof tmp - strlen(tmp), *p == ' ' ? ", " : "%c", *p);
    snprintf(buf, cap, "%s", tmp);
}

/* A keyword alone stands for this option of its line (--param dropout=0.1:0.5). */
static const char *primary_option(const char *kind)
{
    static const char *const pairs[][2] = {{"dropout", "rate"}, {"leaky_relu", "alpha"},
                                           {"elu", "alpha"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (!strcmp(kind, pairs[i][0]))
            return pairs[i][1];
    return NULL;
}

/* The line (index into L) whose name is layer, else the only one whose keyword it is. */
static ds_status find_layer(const lines *L, const char *file, const char *param, const char *layer,
                            int *which)
{
    int count = 0;
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->v[i].name, layer))
            *which = i, count++;
    if (count)
        return DS_OK;
    char list[2048] = "";
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->v[i].kind, layer)) {
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", count ? ", " : "",
                     L->v[i].name);
            *which = i, count++;
        }
    if (count == 1)
        return DS_OK;
    if (count > 1)
        return dsi_fail(DS_ERR_ARG, "%s: parameter '%s': %d layers are %s lines (%s): name one",
                        file, param, count, layer, list);
    layer_names(L, list, sizeof list);
    return dsi_fail(DS_ERR_ARG, "%s: parameter '%s': no layer named '%s' (the layers: %s)", file,
                    param, layer, list);
}

/* Which line and option the parameter name param sets. */
static ds_status resolve(const lines *L, const char *file, const char *param, int *which,
                         char *key, size_t cap)
{
    const char *dot = strrchr(param, '.');
    ds_status st;
    char list[2048] = "";
    if (dot) {
        char layer[DS_NAME_MAX];
        snprintf(layer, sizeof layer, "%.*s", (int)(dot - param), param);
        if ((st = find_layer(L, file, param, layer, which)))
            return st;
        const line_info *e = &L->v[*which];
        if (!dot[1] || !in_words(e->keys, dot + 1)) {
            comma_words(e->keys, list, sizeof list);
            return dsi_fail(DS_ERR_ARG, "%s: parameter '%s': %s '%s'%s has no option '%s' "
                            "(its options: %s)", file, param, e->kind, e->name,
                            e->line ? "" : " (added: the file has none)", dot + 1,
                            list[0] ? list : "none");
        }
        snprintf(key, cap, "%s", dot + 1);
        return DS_OK;
    }
    int count = 0;
    for (int i = 0; i < L->n; i++)
        if (in_words(L->v[i].keys, param)) {
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s.%s", count ? ", " : "",
                     L->v[i].name, param);
            *which = i, count++;
        }
    if (count > 1)
        return dsi_fail(DS_ERR_ARG, "%s: parameter '%s' is an option of %d lines: name one (%s)",
                        file, param, count, list);
    if (count == 1) {
        snprintf(key, cap, "%s", param);
        return DS_OK;
    }
    for (int i = 0; i < L->n; i++)   /* a layer's name or keyword for its main option */
        if ((!strcmp(L->v[i].name, param) || !strcmp(L->v[i].kind, param)) &&
            primary_option(L->v[i].kind)) {
            *which = i, count++;
            snprintf(key, cap, "%s", primary_option(L->v[i].kind));
        }
    if (count == 1)
        return DS_OK;
    layer_names(L, list, sizeof list);
    return dsi_fail(DS_ERR_ARG, "%s: parameter '%s': no line takes an option '%s' (give "
                    "LAYER.OPTION, LAYER one of: %s)", file, param, param, list);
}

/* Line text (without its newline) with key=value set: the words kept, key=value replacing
 * the word of that key or added, the comment kept. */
static void set_word(const char *text, size_t len, const char *key, const char *value,
                     char *out, size_t cap)
{
    char code[2048];
    snprintf(code, sizeof code, "%.*s", (int)len, text);
    char *hash = strchr(code, '#');
    char comment[2048] = "";
    if (hash) {
        snprintf(comment, sizeof comment, "  %s", hash);
        *hash = 0;
    }
    out[0] = 0;
    size_t k = strlen(key);
    bool set = false;
    char *save = NULL;
    for (char *w = strtok_r(code, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
        bool mine = !strncmp(w, key, k) && w[k] == '=';
        snprintf(out + strlen(out), cap - strlen(out), "%s%s%s%s", out[0] ? " " : "",
                 mine ? key : w, mine ? "=" : "", mine ? value : "");
        set |= mine;
    }
    if (!set)
        snprintf(out + strlen(out), cap - strlen(out), " %s=%s", key, value);
    snprintf(out + strlen(out), cap - strlen(out), "%s", comment);
}

ds_status ds_net_text_set(const char *text, const char *filename, int n,
                          const char *const *names, const char *const *values, char **out)
{
    *out = NULL;
    const char *file = filename ? filename : "(model)";
    if (!text || n < 0 || n > 64 || (n && (!names || !values)))
        return dsi_fail(DS_ERR_ARG, "%s: setting options: no text, or not 0 to 64 of them", file);
    lines *L = malloc(sizeof *L);
    if (!L)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", file);
    ds_status st = read_lines(text, file, L);
    int which[64];
    char keys[64][48];
    for (int i = 0; i < n && !st; i++) {
        const char *v = values[i];
        if (!v || !*v || strcspn(v, " \t\r\n#=") != strlen(v) || strlen(v) > 255)
            st = dsi_fail(DS_ERR_ARG, "%s: parameter '%s': the value '%s' is not one word of 1 "
                          "to 255 characters without '#' or '='", file, names[i], v ? v : "");
        else
            st = resolve(L, file, names[i], &which[i], keys[i], sizeof keys[i]);
    }
    size_t cap = strlen(text) + (size_t)n * 600 + 64;
    char *res = st ? NULL : malloc(cap);
    if (!st && !res)
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory", file);
    if (st) {
        free(L);
        return st;
    }
    res[0] = 0;
    int line = 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 2047 ? len : 2047), p);
        line++;
        for (int i = 0; i < n; i++)
            if (L->v[which[i]].line == line) {
                char next[4096];
                set_word(buf, strlen(buf), keys[i], values[i], next, sizeof next);
                snprintf(buf, sizeof buf, "%s", next);
            }
        size_t at = strlen(res);
        snprintf(res + at, cap - at, "%s\n", buf);
        p += len + (p[len] == '\n');
    }
    bool added = false;   /* options of the optimizer line the file lacks */
    for (int i = 0; i < n; i++)
        if (!L->v[which[i]].line) {
            size_t at = strlen(res);
            snprintf(res + at, cap - at, "%s %s=%s", added ? "" : "optimizer adam", keys[i],
                     values[i]);
            added = true;
        }
    if (added)
        snprintf(res + strlen(res), cap - strlen(res), "\n");
    free(L);
    *out = res;
    return DS_OK;
}
