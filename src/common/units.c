/* units.c — sizes, durations, booleans (see units.h). No allocation, no output. */
#include "common/units.h"
#include "common/io.h"

#include <string.h>
#include <strings.h>

/* Parses "123" or "1.25" into a value scaled by 1000 (milli-units), so
 * fractional sizes and durations need no floating point. */
static bool parse_milli(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;
    while (*s >= '0' && *s <= '9') {
        if (whole > (UINT64_MAX / 10000))
            return false;
        whole = whole * 10 + (uint64_t)(*s++ - '0');
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            if (fdigits < 3) {
                frac = frac * 10 + (uint64_t)(*s - '0');
                fdigits++;
            }
            s++;
            digits++;
        }
    }
    if (!digits)
        return false;
    while (fdigits++ < 3)
        frac *= 10;
    *out = whole * 1000 + frac;
    *sp = s;
    return true;
}

bool ml_parse_size(const char *s, uint64_t *out)
{
    static const struct { const char *name; unsigned shift; } units[] = {
        {"", 0}, {"b", 0},
        {"k", 10}, {"kb", 10}, {"kib", 10},
        {"m", 20}, {"mb", 20}, {"mib", 20},
        {"g", 30}, {"gb", 30}, {"gib", 30},
        {"t", 40}, {"tb", 40}, {"tib", 40},
    };
    uint64_t milli;
    if (!s)
        return false;
    while (*s == ' ')
        s++;
    if (!parse_milli(&s, &milli))
        return false;
    while (*s == ' ')
        s++;
    for (size_t i = 0; i < ML_ARRAY_LEN(units); i++) {
        if (strcasecmp(s, units[i].name) != 0)
            continue;
        unsigned shift = units[i].shift;
        if (shift && milli > (UINT64_MAX >> shift))
            return false;
        uint64_t v = (milli << shift) / 1000;
        if (shift == 0 && milli % 1000)
            return false; /* fractional bytes make no sense */
        *out = v;
        return true;
    }
    return false;
}

bool ml_parse_duration_ms(const char *s, uint64_t *out)
{
    uint64_t milli;
    if (!s || !parse_milli(&s, &milli))
        return false;
    uint64_t mul;
    if (*s == '\0' || strcmp(s, "s") == 0)
        mul = 1;
    else if (strcmp(s, "ms") == 0) {
        *out = milli / 1000;
        return true;
    } else if (strcmp(s, "m") == 0)
        mul = 60;
    else if (strcmp(s, "h") == 0)
        mul = 3600;
    else
        return false;
    if (milli > UINT64_MAX / mul)
        return false;
    *out = milli * mul;
    return true;
}

bool ml_parse_u64_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool ml_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "yes", "true", "on"};
    static const char *no[] = {"0", "no", "false", "off"};
    if (!s)
        return false;
    for (size_t i = 0; i < ML_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

char *ml_human_size(char *buf, size_t cap, int64_t bytes)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    uint64_t mag = bytes < 0 ? (uint64_t)0 - (uint64_t)bytes : (uint64_t)bytes;
    const char *sign = bytes < 0 ? "-" : "";
    if (mag < 1024) {
        ml_fmt(buf, cap, "%s%llu B", sign, (unsigned long long)mag);
        return buf;
    }
    unsigned u = 0;
    uint64_t scaled = mag * 10; /* one decimal */
    while (u + 1 < ML_ARRAY_LEN(unit) && mag >= 1024 * ((uint64_t)1 << (10 * u))) {
        u++;
    }
    u = u ? u : 1;
    uint64_t div = (uint64_t)1 << (10 * u);
    scaled = (mag * 10 + div / 2) / div;
    if (mag > UINT64_MAX / 10)
        scaled = mag / div * 10;
    ml_fmt(buf, cap, "%s%llu.%llu %s", sign, (unsigned long long)(scaled / 10),
           (unsigned long long)(scaled % 10), unit[u]);
    return buf;
}
