/* pyline_check.c — checks ml_pyline (src/python/pycode.c) against vectors on
 * stdin, as test/programs/py_linevectors.py prints them:
 *   table FORMAT FIRSTLINE HEX NAME
 *   at ADDRESS LINE        (as CPython itself maps it; -1 no line)
 * Prints each disagreement; exits with their count (0: all agree). */
#include "python/pycode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    static char line[1 << 20];
    static uint8_t table[1 << 19];
    size_t len = 0;
    int format = 0, first = 0, bad = 0, checked = 0, tables = 0;
    char name[256] = "";
    while (fgets(line, sizeof line, stdin)) {
        char hex[sizeof line];
        int addr, want;
        if (sscanf(line, "table %d %d %s %255s", &format, &first, hex, name) == 4) {
            len = 0;
            for (const char *h = hex; h[0] && h[1] && h[0] != '-' && len < sizeof table; h += 2) {
                unsigned v;
                sscanf(h, "%2x", &v);
                table[len++] = (uint8_t)v;
            }
            tables++;
        } else if (sscanf(line, "at %d %d", &addr, &want) == 2) {
            int got = ml_pyline(format, table, len, first, addr);
            checked++;
            if (got != want) {
                if (bad < 20)
                    printf("%s: address %d: line %d, CPython says %d\n", name, addr, got, want);
                bad++;
            }
        }
    }
    printf("%d tables, %d addresses, %d disagreements\n", tables, checked, bad);
    return bad ? 1 : checked ? 0 : 2;
}
