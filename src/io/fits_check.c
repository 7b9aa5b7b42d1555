/* fits_check.c - checks every header of a FITS file against the standard's card syntax
 * before cfitsio interprets it: header bytes are printable ASCII, every value is a
 * quoted string, a logical, a number or a complex number of at most 68 characters, and the
 * keywords that say how to read the data (BITPIX, NAXISn, BSCALE, BZERO, BLANK, ...) hold
 * numbers. Found by
 * fuzzing: cfitsio 4.2 copies an unquoted 70-character TTYPEn value (text, or a valid
 * 70-digit number) into a 70-byte column-name buffer, which aborts (or overflows) on a
 * hostile file; such a card is refused here, naming the HDU and the card. Walks HDU by HDU
 * with the data sizes from BITPIX, NAXISn, PCOUNT and GCOUNT. */
#include "io.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

enum { CARD = 80, BLOCK = 2880, MAX_HDUS = 100000 };

typedef struct {
    long long bitpix, naxis, pcount, gcount;
    long long axes[999];
    bool has_bitpix, has_naxis;
    bool ascii;          /* an ASCII table (XTENSION = 'TABLE') */
} hdu_sizes;

/* Whether v[0..len) (a card's value field) holds one FITS value, optionally followed by a
 * '/' comment: a quoted string ('' inside for a quote), T or F, an integer or float (E or
 * D exponent, lower case tolerated), a complex "(re, im)", or nothing. */
static bool value_ok(const char *v, int len)
{
    int i = 0;
    while (i < len && v[i] == ' ')
        i++;
    if (i == len || v[i] == '/')
        return true;   /* an undefined value */
    int start = i;
    if (v[i] == '\'') {
        for (i++;; i++) {
            if (i >= len)
                return false;   /* unterminated */
            if (v[i] == '\'') {
                if (i + 1 < len && v[i + 1] == '\'')
                    i++;
                else
                    break;
            }
        }
        i++;
    } else if (v[i] == '(') {
        while (i < len && v[i] != ')')
            i++;
        if (i == len)
            return false;
        i++;
    } else {
        char tok[CARD + 1];
        int n = 0;
        while (i < len && v[i] != ' ' && v[i] != '/') {
            char ch = v[i++];
            tok[n++] = ch == 'D' || ch == 'd' ? 'E' : ch == 'e' ? 'E' : ch;   /* D exponent */
        }
        tok[n] = 0;
        if (strcmp(tok, "T") && strcmp(tok, "F")) {
            /* digits, sign, point and exponent only: strtod alone would take "inf" or hex */
            for (int k = 0; k < n; k++)
                if (!isdigit((unsigned char)tok[k]) && !strchr("+-.E", tok[k]))
                    return false;
            char *end;
            errno = 0;
            strtod(tok, &end);
            if (end != tok + n || n == 0)
                return false;
        }
    }
    /* cfitsio copies a value into 70-byte buffers (column names): no value may be longer
     * than the longest quoted string, 68 characters (a valid 70-digit number overflowed) */
    if (v[start] != '\'' && i - start > 68)
        return false;
    while (i < len && v[i] == ' ')
        i++;
    return i == len || v[i] == '/';
}

/* An integer keyword's value, or false. */
static bool int_value(const char *v, int len, long long *out)
{
    char buf[CARD + 1];
    memcpy(buf, v, (size_t)len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (end == buf || errno)
        return false;
    while (*end == ' ')
        end++;
    if (*end && *end != '/')
        return false;
    *out = x;
    return true;
}

enum { V_NONE, V_STRING, V_LOGICAL, V_INT, V_REAL, V_COMPLEX };

/* The kind of a value field that value_ok accepted. */
static int value_kind(const char *v, int len)
{
    int i = 0;
    while (i < len && v[i] == ' ')
        i++;
    if (i == len || v[i] == '/')
        return V_NONE;
    if (v[i] == '\'')
        return V_STRING;
    if (v[i] == '(')
        return V_COMPLEX;
    if ((v[i] == 'T' || v[i] == 'F') && (i + 1 == len || v[i + 1] == ' ' || v[i + 1] == '/'))
        return V_LOGICAL;
    for (; i < len && v[i] != ' ' && v[i] != '/'; i++)
        if (!isdigit((unsigned char)v[i]) && v[i] != '+' && v[i] != '-')
            return V_REAL;
    return V_INT;
}

/* 'I' if keyword key (8 characters, blank-padded) needs an integer, 'R' a number, 0 neither:
 * the keywords that say how to read the data (astropy refuses a file where they are not
 * numbers; cfitsio ignored a BSCALE of text). TNULLn is text in an ASCII table. */
static char numeric_key(const char *key, bool ascii)
{
    static const char *const ints[] = {"BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS",
                                       "BLANK", "THEAP", "ZBITPIX", "ZNAXIS"};
    static const char *const reals[] = {"BSCALE", "BZERO"};
    static const struct { const char *stem; char kind; } indexed[] = {
        {"NAXIS", 'I'}, {"ZNAXIS", 'I'}, {"ZTILE", 'I'}, {"TBCOL", 'I'}, {"TNULL", 'I'},
        {"TSCAL", 'R'}, {"TZERO", 'R'},
    };
    char k[9];
    int n = 0;
    while (n < 8 && key[n] != ' ')
        k[n] = key[n], n++;
    k[n] = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(k, ints[i]))
            return 'I';
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        if (!strcmp(k, reals[i]))
            return 'R';
    for (size_t i = 0; i < sizeof indexed / sizeof indexed[0]; i++) {
        size_t m = strlen(indexed[i].stem);
        if (!strncmp(k, indexed[i].stem, m) && k[m] && strspn(k + m, "0123456789") == n - m)
            return ascii && !strcmp(indexed[i].stem, "TNULL") ? 0 : indexed[i].kind;
    }
    return 0;
}

/* A keyword that needs a number (numeric_key) and holds none: DS_ERR_FORMAT naming it. */
static ds_status check_number(const char *c, const char *v, int vlen, const char *path,
                              int hdu, long k, bool ascii)
{
    char need = numeric_key(c, ascii);
    int kind = value_kind(v, vlen);
    if (!need || kind == V_INT || (need == 'R' && kind == V_REAL))
        return DS_OK;
    int i = 0, n = 0;
    while (i < vlen && v[i] == ' ')
        i++;
    if (kind == V_STRING) {   /* the quoted string, '' inside for a quote */
        for (n = 1; i + n < vlen; n++)
            if (v[i + n] == '\'' && !(i + n + 1 < vlen && v[i + n + 1] == '\'' && ++n)) {
                n++;
                break;
            }
    } else {
        while (i + n < vlen && v[i + n] != ' ' && v[i + n] != '/')
            n++;
    }
    char key[9];
    int kl = 0;
    while (kl < 8 && c[kl] != ' ')
        key[kl] = c[kl], kl++;
    key[kl] = 0;
    if (kind == V_NONE)
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d, header card %ld ('%s'): no value, but %s "
                        "must be %s", path, hdu, k, key, key, need == 'I' ? "an integer" :
                        "a number");
    return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d, header card %ld ('%s'): the value %.*s%s is "
                    "not %s, which %s must be", path, hdu, k, key, n > 30 ? 30 : n, v + i,
                    n > 30 ? "..." : "", need == 'I' ? "an integer" : "a number", key);
}

/* Checks one card (card number k of HDU hdu, both from 1) and notes the size keywords. */
static ds_status check_card(const char *c, const char *path, int hdu, long k, hdu_sizes *s)
{
    for (int i = 0; i < CARD; i++)
        if ((unsigned char)c[i] < 0x20 || (unsigned char)c[i] > 0x7e)
            return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d, header card %ld: byte 0x%02x at column "
                            "%d is not printable ASCII (FITS headers are ASCII text)", path, hdu,
                            k, (unsigned char)c[i], i + 1);
    const char *v = NULL;
    int vlen = 0;
    if (!strncmp(c, "HIERARCH ", 9)) {   /* the ESO convention: HIERARCH A B C = value */
        const char *eq = memchr(c + 9, '=', CARD - 9);
        if (eq) {
            v = eq + 1;
            vlen = (int)(c + CARD - v);
        }
    } else if (c[8] == '=' && c[9] == ' ') {
        v = c + 10;
        vlen = CARD - 10;
    }
    if (!v)
        return DS_OK;   /* commentary: COMMENT, HISTORY, CONTINUE, blank keyword */
    if (!value_ok(v, vlen))
        return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d, header card %ld ('%.8s'): the value '%.*s' "
                        "is not a FITS value (a quoted string, T or F, a number or a complex "
                        "number)", path, hdu, k, c, vlen > 30 ? 30 : vlen, v);
    if (!strncmp(c, "XTENSION", 8))
        s->ascii = value_kind(v, vlen) == V_STRING && !strncmp(v + strspn(v, " "), "'TABLE", 6);
    ds_status st = check_number(c, v, vlen, path, hdu, k, s->ascii);
    if (st != DS_OK)
        return st;
    long long x = 0;
    bool isint = int_value(v, vlen, &x);
    if (!strncmp(c, "BITPIX  ", 8))
        s->has_bitpix = isint, s->bitpix = x;
    else if (!strncmp(c, "NAXIS   ", 8))
        s->has_naxis = isint, s->naxis = x;
    else if (!strncmp(c, "PCOUNT  ", 8) && isint)
        s->pcount = x;
    else if (!strncmp(c, "GCOUNT  ", 8) && isint)
        s->gcount = x;
    else if (!strncmp(c, "NAXIS", 5) && isdigit((unsigned char)c[5]) && isint) {
        int a = atoi(c + 5);
        if (a >= 1 && a <= 999)
            s->axes[a - 1] = x;
    }
    return DS_OK;
}

/* Bytes of data after the header, rounded up to whole blocks; -1 if the sizes are invalid. */
static long long data_bytes(const hdu_sizes *s)
{
    if (!s->has_bitpix || !s->has_naxis || s->naxis < 0 || s->naxis > 999 || s->pcount < 0 ||
        s->gcount < 0)
        return -1;
    long long b = s->bitpix < 0 ? -s->bitpix : s->bitpix;
    if (b != 8 && b != 16 && b != 32 && b != 64)
        return -1;
    if (s->naxis == 0)
        return 0;
    const long long lim = 1LL << 50;
    long long n = 1;
    /* random groups (NAXIS1 = 0) leave out the first axis */
    for (long long i = s->axes[0] == 0 ? 1 : 0; i < s->naxis; i++) {
        if (s->axes[i] < 0 || (s->axes[i] > 0 && n > lim / s->axes[i]))
            return -1;
        n *= s->axes[i];
    }
    if (n > lim - s->pcount || (s->gcount > 0 && n + s->pcount > lim / s->gcount))
        return -1;
    n = (n + s->pcount) * s->gcount * (b / 8);
    return (n + BLOCK - 1) / BLOCK * BLOCK;
}

ds_status dsi_fits_check(FILE *fp, const char *path)
{
    char block[BLOCK];
    long long pos = 0;
    for (int hdu = 1; hdu <= MAX_HDUS; hdu++) {
        if (fseeko(fp, (off_t)pos, SEEK_SET) != 0)
            return DS_OK;   /* past the end: cfitsio reports what is missing */
        hdu_sizes s = {.gcount = 1};
        bool end = false;
        long k = 0;
        for (int b = 0; !end; b++) {
            size_t got = fread(block, 1, BLOCK, fp);
            if (got < BLOCK)
                return DS_OK;   /* a truncated header: cfitsio reports it, nothing to copy */
            if (b == 0 && hdu > 1 && strncmp(block, "XTENSION= ", 10))
                return DS_OK;   /* trailing data after the last HDU, which cfitsio ignores */
            for (int i = 0; i < BLOCK / CARD && !end; i++) {
                const char *c = block + i * CARD;
                k++;
                if (!strncmp(c, "END     ", 8)) {
                    end = true;
                    break;
                }
                ds_status st = check_card(c, path, hdu, k, &s);
                if (st != DS_OK)
                    return st;
            }
            pos += BLOCK;
        }
        long long d = data_bytes(&s);
        if (d < 0)
            return dsi_fail(DS_ERR_FORMAT, "%s: HDU %d: BITPIX, NAXIS, NAXISn, PCOUNT or GCOUNT "
                            "is missing or invalid", path, hdu);
        pos += d;
    }
    return dsi_fail(DS_ERR_FORMAT, "%s: more than %d HDUs", path, MAX_HDUS);
}
