/* dlopen_leak.c — a library that allocates is loaded, leaks, and is
 * unloaded; then another library takes its turn, then the first comes back.
 * Between snapshots 1 and 2: plugin a leaks 10 x 4321 bytes, plugin b
 * 7 x 1234, plugin a again 3 x 4321, each unloaded right after, so every
 * leaking frame belongs to a module that is gone when the snapshot is taken.
 * Usage: dlopen_leak PLUGIN_A PLUGIN_B */
#include "snapshot_wait.h"

#include <dlfcn.h>

typedef unsigned (*leak_fn)(unsigned, size_t);

static void *load(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(3);
    }
    return h;
}

static void unload(void *h, const char *path)
{
    dlclose(h);
    if (dlopen(path, RTLD_NOW | RTLD_NOLOAD)) { /* still there: the test would prove nothing */
        fprintf(stderr, "%s was not unloaded\n", path);
        exit(3);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    snapshot_wait(1);
    void *a = load(argv[1]);
    unsigned got = ((leak_fn)dlsym(a, "plugin_leak_a"))(10, 4321); /* first load */
    unload(a, argv[1]);
    void *b = load(argv[2]);
    got += ((leak_fn)dlsym(b, "plugin_leak_b"))(7, 1234);
    unload(b, argv[2]);
    a = load(argv[1]);
    got += ((leak_fn)dlsym(a, "plugin_leak_a"))(3, 4321); /* second load */
    unload(a, argv[1]);
    snapshot_wait(2);
    printf("{\"leaked\": %u}\n", got);
    return got == 20 ? 0 : 1;
}
