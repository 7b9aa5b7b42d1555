/* json.h - a small strict JSON reader (objects, arrays, strings, integers) for file headers. */
#ifndef DS_JSON_H
#define DS_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DSI_JSON_INT, DSI_JSON_STR, DSI_JSON_ARR, DSI_JSON_OBJ } dsi_json_type;

typedef struct dsi_json dsi_json;
#define DSI_JSON_OOM "out of memory"
struct dsi_json {
    dsi_json_type type;
    int64_t i;           /* INT */
    char *s;             /* STR: UTF-8, NUL-terminated (an escaped \u0000 is rejected) */
    int n;               /* ARR, OBJ: number of items */
    dsi_json *items;     /* ARR, OBJ: n values, in file order */
    char **keys;         /* OBJ: n keys (duplicates are kept; callers decide) */
};

/* Parses text[0, len): one value, surrounded by optional whitespace. Returns a malloc'd tree
 * (free with dsi_json_free), or NULL with a reason and a byte offset written into err (a
 * reason starting with DSI_JSON_OOM when memory ran out, else the text is at fault).
 * Nesting deeper than 64 levels, floats, true/false/null, bad escapes, invalid UTF-16
 * surrogates, raw control characters and integers outside int64 are rejected. */
dsi_json *dsi_json_parse(const char *text, size_t len, char *err, size_t errcap);
void dsi_json_free(dsi_json *v);
/* Whether s (NUL-terminated) is valid UTF-8 without surrogates or overlong forms, as the
 * reader requires: writers check names with it so that what they write can be read back. */
int dsi_json_utf8_ok(const char *s);
/* First value under key in an object (NULL if absent or v is not an object). */
const dsi_json *dsi_json_get(const dsi_json *v, const char *key);

#endif
