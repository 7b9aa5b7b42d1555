/* json.c - a small strict JSON reader: objects, arrays, strings and integers only. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *p, *end, *start;
    char *err;
    size_t errcap;
    int failed;
} parser;

static int fail(parser *ps, const char *what)
{
    if (!ps->failed)
        snprintf(ps->err, ps->errcap, "%s at byte %zu", what, (size_t)(ps->p - ps->start));
    ps->failed = 1;
    return 0;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void clear(dsi_json *v)
{
    if (v->type == DSI_JSON_STR) {
        free(v->s);
    } else if (v->type == DSI_JSON_ARR || v->type == DSI_JSON_OBJ) {
        for (int i = 0; i < v->n; i++) {
            clear(&v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
    v->type = DSI_JSON_INT;
}

void dsi_json_free(dsi_json *v)
{
    if (!v)
        return;
    clear(v);
    free(v);
}

static int hex4(parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4)
        return fail(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(ps, "bad hex digit in \\u escape");
    }
    ps->p += 4;
    *out = v;
    return 1;
}

/* Length of a valid UTF-8 sequence starting at p (0 if invalid). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0x3Fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at ps->p (the opening quote) into a malloc'd NUL-terminated copy. The
 * decoded text is never longer than the escaped text, so one allocation suffices. */
static int parse_string(parser *ps, char **out)
{
    ps->p++;  /* opening quote */
    const char *q = ps->p;
    while (q < ps->end && *q != '"')
        q += (*q == '\\' && ps->end - q > 1) ? 2 : 1;
    if (q >= ps->end)
        return fail(ps, "unterminated string");
    char *buf = malloc((size_t)(q - ps->p) + 1);
    if (!buf)
        return fail(ps, DSI_JSON_OOM);
    size_t n = 0;
    while (ps->p < q) {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            free(buf);
            return fail(ps, "control character in string");
        }
        if (c != '\\') {
            size_t k = utf8_len((const unsigned char *)ps->p, (const unsigned char *)q);
            if (!k) {
                free(buf);
                return fail(ps, "invalid UTF-8 in string");
            }
            memcpy(buf + n, ps->p, k);
            n += k;
            ps->p += k;
            continue;
        }
        ps->p++;
        char e = *ps->p++;
        unsigned cp;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u':
            if (!hex4(ps, &cp))
                break;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (q - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail(ps, "unpaired UTF-16 surrogate in \\u escape");
                    break;
                }
                ps->p += 2;
                if (!hex4(ps, &lo))
                    break;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, "unpaired UTF-16 surrogate in \\u escape");
                    break;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(ps, "unpaired UTF-16 surrogate in \\u escape");
                break;
            } else if (cp == 0) {
                fail(ps, "\\u0000 in string");
                break;
            }
            n += put_utf8(buf + n, cp);
            break;
        default:
            fail(ps, "bad escape in string");
        }
        if (ps->failed || ps->p > q) {
            free(buf);
            return fail(ps, "bad escape in string");
        }
    }
    buf[n] = 0;
    ps->p = q + 1;
    *out = buf;
    return 1;
}

static int parse_int(parser *ps, int64_t *out)
{
    int neg = 0;
    if (*ps->p == '-') {
        neg = 1;
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return fail(ps, "expected a digit");
    if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9')
        return fail(ps, "leading zero in number");
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        unsigned d = (unsigned)(*ps->p - '0');
        if (v > (lim - d) / 10)
            return fail(ps, "integer out of range");
        v = v * 10 + d;
        ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
        return fail(ps, "non-integer number");
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 1;
}

static int parse_value(parser *ps, dsi_json *v, int depth);

/* Appends a parsed value (moved) to an array or object; key is owned on success. */
static int append(parser *ps, dsi_json *c, int *cap, dsi_json *item, char *key)
{
    if (c->n == *cap) {
        int ncap = *cap ? 2 * *cap : 4;
        dsi_json *ni = realloc(c->items, (size_t)ncap * sizeof *ni);
        if (!ni)
            return fail(ps, DSI_JSON_OOM);
        c->items = ni;
        if (c->type == DSI_JSON_OBJ) {
            char **nk = realloc(c->keys, (size_t)ncap * sizeof *nk);
            if (!nk)
                return fail(ps, DSI_JSON_OOM);
            c->keys = nk;
        }
        *cap = ncap;
    }
    c->items[c->n] = *item;
    if (c->type == DSI_JSON_OBJ)
        c->keys[c->n] = key;
    c->n++;
    return 1;
}

static int parse_container(parser *ps, dsi_json *v, int depth)
{
    int obj = *ps->p == '{';
    char close = obj ? '}' : ']';
    int cap = 0;
    v->type = obj ? DSI_JSON_OBJ : DSI_JSON_ARR;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 1;
    }
    for (;;) {
        char *key = NULL;
        dsi_json item;
        memset(&item, 0, sizeof item);
        skip_ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, "expected a string key");
            if (!parse_string(ps, &key))
                return 0;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return fail(ps, "expected ':'");
            }
            ps->p++;
        }
        if (!parse_value(ps, &item, depth + 1) || !append(ps, v, &cap, &item, key)) {
            clear(&item);
            free(key);
            return 0;
        }
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, obj ? "unterminated object" : "unterminated array");
        if (*ps->p == close) {
            ps->p++;
            return 1;
        }
        if (*ps->p != ',')
            return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        ps->p++;
    }
}

static int parse_value(parser *ps, dsi_json *v, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(ps, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of text");
    char c = *ps->p;
    if (c == '{' || c == '[')
        return parse_container(ps, v, depth);
    if (c == '"') {
        v->type = DSI_JSON_STR;
        return parse_string(ps, &v->s);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        v->type = DSI_JSON_INT;
        return parse_int(ps, &v->i);
    }
    return fail(ps, "unexpected character");
}

dsi_json *dsi_json_parse(const char *text, size_t len, char *err, size_t errcap)
{
    parser ps = { text, text + len, text, err, errcap, 0 };
    dsi_json *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errcap, DSI_JSON_OOM);
        return NULL;
    }
    if (parse_value(&ps, v, 0)) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            fail(&ps, "trailing characters after the value");
    }
    if (ps.failed) {
        dsi_json_free(v);
        return NULL;
    }
    return v;
}

int dsi_json_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        size_t k = utf8_len(p, end);
        if (!k)
            return 0;
        p += k;
    }
    return 1;
}

const dsi_json *dsi_json_get(const dsi_json *v, const char *key)
{
    if (!v || v->type != DSI_JSON_OBJ)
        return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key))
            return &v->items[i];
    return NULL;
}
