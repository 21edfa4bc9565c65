/* plugin.c — built twice, as two plugins with different code (PLUGIN_B
 * pads plugin_leak's frame and calls through an extra level), so after one
 * is unloaded the other may be loaded at the same addresses with other
 * unwind rules. Each leaks `count` blocks of `size` bytes. */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline, noclone))
static void *volatile kept[4096];
static int nkept;

#ifdef PLUGIN_B
NOINLINE static void inner(size_t size)
{
    volatile char pad[200];
    pad[0] = 1;
    kept[nkept++] = malloc(size + (size_t)pad[0] - 1); /* LEAK:plugin_b */
}
NOINLINE void plugin_leak(int count, size_t size)
{
    for (int i = 0; i < count; i++)
        inner(size);
}
#else
NOINLINE void plugin_leak(int count, size_t size)
{
    for (int i = 0; i < count; i++)
        kept[nkept++] = malloc(size); /* LEAK:plugin_a */
}
#endif
