/* deepbind.c — opens a library with RTLD_DEEPBIND (test_deepbind.py).
 * Usage: deepbind LIBRARY lazy|now|ctor|own
 *   lazy, now: LIBRARY is mldeep (built lazy or -z now, opened with
 *     RTLD_LAZY or RTLD_NOW) between two snapshots; its functions are
 *     looked up with dlsym. The library keeps 10 x 3000 bytes (malloc),
 *     5 x 7 x 100 (calloc) and 4 blocks reallocated to 4096 bytes; the
 *     program allocates 8 x 5000 that the library frees, 4 x 64 that it
 *     reallocates, and 3 x 700 it frees through a pointer to free.
 *   ctor: the same with mldeep_lazy opened before snapshot 1, its functions
 *     taken from what its constructor registered: no dlsym at all.
 *   own: LIBRARY is mldeep_own, which keeps 6 x 2000 of its own arena.
 * Prints what it did as one JSON line. */
#include "mldeep.h"
#include "snapshot_wait.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
        exit(3);
    }
    return p;
}

static char *checked(void *p)
{
    if (!p) {
        fprintf(stderr, "allocation failed\n");
        exit(3);
    }
    memset(p, 7, 1); /* used: the call stays in the binary */
    return p;
}

NOINLINE static void *main_block(size_t n) { return checked(malloc(n)); /* MARK:main_block */ }

static const deep_api_t *registered;

/* Called by mldeep's constructor (found with dlsym(RTLD_DEFAULT)). */
__attribute__((visibility("default"))) void deepbind_register(const deep_api_t *api) { registered = api; }

static void *open_deep(const char *path, int mode)
{
    void *h = dlopen(path, mode | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(3);
    }
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    bool own = strcmp(argv[2], "own") == 0, ctor = strcmp(argv[2], "ctor") == 0;
    int mode = strcmp(argv[2], "now") == 0 || own ? RTLD_NOW : RTLD_LAZY;
    void *h = ctor ? open_deep(argv[1], mode) : NULL;
    snapshot_wait(1);
    if (!h)
        h = open_deep(argv[1], mode);
    if (own) {
        int (*own_leak)(int, size_t) = (int (*)(int, size_t))sym(h, "own_leak");
        int got = own_leak(6, 2000);
        snapshot_wait(2);
        printf("{\"own\": %d}\n", got);
        return got == 6 ? 0 : 1;
    }
    deep_api_t looked_up;
    const deep_api_t *api = registered;
    if (!ctor) {
        looked_up.malloc = (void *(*)(size_t))sym(h, "deep_malloc");
        looked_up.calloc = (void *(*)(size_t, size_t))sym(h, "deep_calloc");
        looked_up.realloc = (void *(*)(void *, size_t))sym(h, "deep_realloc");
        looked_up.free = (void (*)(void *))sym(h, "deep_free");
        looked_up.release = (void (*)(void *))sym(h, "deep_release");
        looked_up.kept = (int (*)(void))sym(h, "deep_kept");
        api = &looked_up;
    } else if (!api) {
        fprintf(stderr, "%s registered nothing\n", argv[1]);
        return 3;
    }
    void *(*d_malloc)(size_t) = api->malloc;
    void *(*d_calloc)(size_t, size_t) = api->calloc;
    void *(*d_realloc)(void *, size_t) = api->realloc;
    void (*d_free)(void *) = api->free;
    void (*d_release)(void *) = api->release;
    int (*d_kept)(void) = api->kept;
    for (int i = 0; i < 10; i++)
        checked(d_malloc(3000));
    for (int i = 0; i < 5; i++)
        checked(d_calloc(7, 100));
    for (int i = 0; i < 8; i++) /* allocated here, freed there: no leak */
        d_free(main_block(5000));
    for (int i = 0; i < 4; i++) /* allocated here, moved there */
        checked(d_realloc(main_block(64), 4096));
    for (int i = 0; i < 3; i++) /* freed there through a pointer to free */
        d_release(main_block(700));
    int kept = d_kept();
    snapshot_wait(2);
    printf("{\"kept\": %d}\n", kept);
    return kept == 19 ? 0 : 1;
}
