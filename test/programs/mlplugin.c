/* mlplugin.c — a shared object test programs dlopen (and Python loads with
 * ctypes): it allocates at known lines, so its frames must still be named
 * after it is unloaded. Built twice, as libmlplugin_a.so and
 * libmlplugin_b.so, each with its own exported names. */
#include "many_stacks.h"

#include <stdlib.h>

#define EXPORT __attribute__((visibility("default"), noinline))
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

static void *kept[1 << 16];
static unsigned nkept;

/* Leaks `count` blocks of `size` bytes; returns how many it got. */
EXPORT unsigned CAT(plugin_leak_, PLUGIN)(unsigned count, size_t size)
{
    unsigned got = 0;
    for (unsigned i = 0; i < count && nkept < sizeof kept / sizeof *kept; i++) {
        void *p = malloc(size); /* LEAK:plugin */
        if (p) {
            kept[nkept++] = p;
            got++;
        }
    }
    return got;
}

/* Leaks `size` bytes at each of 2^depth distinct stacks (depth <= 16). */
EXPORT unsigned CAT(plugin_many_stacks_, PLUGIN)(int depth, size_t size)
{
    static void *blocks[1 << 16];
    return depth >= 0 && depth <= 16 ? many_stacks(depth, size, blocks) : 0;
}
