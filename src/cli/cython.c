/* cython.c — Cython symbols to Python names (see cython.h).
 *
 * __pyx_pw_6cyleak_6Holder_1add_item  ->  cyleak.Holder.add_item
 *          ^module ^class  ^counter and function
 * A part is <digits><that many characters> followed by '_'; what cannot be
 * read as a part is the function: an optional counter (always there in
 * __pyx_pw_ names), then the name. "3a_b" reads both as a part "a" then "b"
 * and as counter 3, function "a_b"; the reading where the function keeps
 * the counter its prefix requires wins, and otherwise the longer module. */
#include "cli/cython.h"

#include <ctype.h>
#include <string.h>

static bool ident(const char *s, size_t n)
{
    if (!n || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* The function part: [counter] name. */
static bool final(const char *s, size_t n, bool counter, const char **name, size_t *len)
{
    size_t d = 0;
    while (d < n && isdigit((unsigned char)s[d]))
        d++;
    if ((counter && !d) || !ident(s + d, n - d))
        return false;
    *name = s + d;
    *len = n - d;
    return true;
}

typedef struct {
    const char *part[16];
    size_t len[16];
    int n;
} parts_t;

static bool parse(const char *s, size_t n, bool counter, parts_t *p)
{
    size_t d = 0, k = 0;
    while (d < n && isdigit((unsigned char)s[d]))
        k = k * 10 + (size_t)(s[d++] - '0');
    if (d && k && d + k < n && s[d + k] == '_' && ident(s + d, k) && p->n < 15) {
        p->part[p->n] = s + d;
        p->len[p->n] = k;
        p->n++;
        if (parse(s + d + k + 1, n - d - k - 1, counter, p))
            return true;
        p->n--;
    }
    return p->n > 0 && final(s, n, counter, &p->part[p->n], &p->len[p->n]) && (p->n++, true);
}

bool ml_cython_name(const char *symbol, char *out, size_t cap)
{
    static const struct { const char *prefix; bool counter; } kinds[] = {
        {"__pyx_pw_", true}, {"__pyx_pf_", false}, {"__pyx_f_", false},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(kinds); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncmp(symbol, kinds[i].prefix, pl) != 0)
            continue;
        const char *s = symbol + pl;
        size_t n = strcspn(s, ".");
        parts_t p = {.n = 0};
        if (!parse(s, n, kinds[i].counter, &p) || p.n < 2)
            return false;
        size_t k = 0;
        for (int j = 0; j < p.n; j++) {
            if (k + p.len[j] + 2 > cap)
                return false;
            if (j)
                out[k++] = '.';
            memcpy(out + k, p.part[j], p.len[j]);
            k += p.len[j];
        }
        out[k] = '\0';
        return true;
    }
    return false;
}
