/* reload.c — loads plugin A, leaks through it, unloads it; loads plugin B
 * at A's old base, leaks through it, unloads it; then A again. Snapshots
 * once at the end, and prints where each load was as JSON.
 * Both plugins are linked at one address (test/CMakeLists.txt), which the
 * loader takes as the place to map them when it is free: left to itself it
 * would take the highest free gap, and memledger's own mappings (a fresh
 * rule table after an unload) often take A's hole first.
 * With "libc-dlclose", the plugins are unloaded through the dlclose that
 * dlsym finds in libc's own handle (past every interposer), as a program
 * holding libc's functions by handle would.
 * Usage: reload PLUGIN_A.so PLUGIN_B.so [libc-dlclose] */
#include "snapshot_wait.h"

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* Opens path; its lowest mapped address goes to *base. */
static void *open_lib(const char *path, uintptr_t *base)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    Dl_info where;
    if (!h || !dladdr(dlsym(h, "plugin_leak"), &where)) {
        fprintf(stderr, "%s: %s\n", path, dlerror());
        exit(3);
    }
    *base = (uintptr_t)where.dli_fbase;
    return h;
}

static int (*unload)(void *) = dlclose;

static void use(void *h, int count, size_t size, int close_it)
{
    void (*leak)(int, size_t) = (void (*)(int, size_t))dlsym(h, "plugin_leak");
    for (int round = 0; round < 10; round++) {
        leak(count / 10, size);
        struct timespec pause = {0, 5000000}; /* let memledger learn the rules */
        nanosleep(&pause, NULL);
    }
    if (close_it)
        unload(h);
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "libc-dlclose") == 0))
        return 2;
    if (argc == 4) {
        void *libc = dlopen("libc.so.6", RTLD_NOW);
        unload = (int (*)(void *))dlsym(libc, "dlclose");
        if (!unload)
            return 3;
    }
    uintptr_t a_base, b_base, a2_base;
    use(open_lib(argv[1], &a_base), 300, 111, 1);
    use(open_lib(argv[2], &b_base), 500, 222, 1);
    use(open_lib(argv[1], &a2_base), 700, 111, 0);
    snapshot_wait(1);
    printf("{\"a_base\": %lu, \"b_base\": %lu, \"a2_base\": %lu}\n", (unsigned long)a_base, (unsigned long)b_base,
           (unsigned long)a2_base);
    return 0;
}
