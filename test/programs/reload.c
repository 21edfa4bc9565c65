/* reload.c — loads plugin A, leaks through it, unloads it; loads plugin B
 * (often at A's old addresses), leaks through it; then A again. Snapshots
 * once at the end. Usage: reload PLUGIN_A.so PLUGIN_B.so */
#include "snapshot_wait.h"

#include <dlfcn.h>

static void use(const char *path, int count, size_t size, int close_it)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        exit(3);
    }
    void (*leak)(int, size_t) = (void (*)(int, size_t))dlsym(h, "plugin_leak");
    for (int round = 0; round < 10; round++) {
        leak(count / 10, size);
        struct timespec pause = {0, 5000000}; /* let memledger learn the rules */
        nanosleep(&pause, NULL);
    }
    if (close_it)
        dlclose(h);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    use(argv[1], 300, 111, 1);
    use(argv[2], 500, 222, 1);
    use(argv[1], 700, 111, 0);
    snapshot_wait(1);
    return 0;
}
