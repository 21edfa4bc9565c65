/* dlsym_libc.c — the malloc family reached through an explicitly opened
 * libc: every function is looked up with dlsym(dlopen("libc.so.6",
 * RTLD_NOW), name), which finds libc's own definition past every
 * interposer. Between snapshots 1 and 2 each LEAK site runs ITER times and
 * the FREED site allocates ITER blocks of 8000 bytes; between 2 and 3 those
 * are freed through the looked-up free. Prints what it saw as JSON.
 * Usage: dlsym_libc [LIBRARY]: LIBRARY's own malloc is looked up too
 * (through its handle), and the JSON says whether it was left as found. */
#include "snapshot_wait.h"

#include <dlfcn.h>
#include <string.h>

#define ITER 50
#define NOINLINE __attribute__((noinline))

static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void (*free)(void *);
    size_t (*malloc_usable_size)(void *);
} libc;

static void *kept[16 * ITER];
static int nkept;
static void *freed[ITER];

static void keep(void *p)
{
    if (!p) {
        fprintf(stderr, "allocation failed\n");
        exit(3);
    }
    memset(p, 1, 8); /* used, so the call cannot go */
    kept[nkept++] = p;
}

static void *look_up(void *h, const char *name)
{
    void *f = dlsym(h, name);
    if (!f) {
        fprintf(stderr, "dlsym(libc, %s): %s\n", name, dlerror());
        exit(3);
    }
    return f;
}

NOINLINE static void *make_block(size_t n) { return libc.malloc(n); /* MARK:make_block */ }

NOINLINE static void leak_malloc(void) { keep(libc.malloc(1000)); /* LEAK:malloc */ }
NOINLINE static void leak_calloc(void) { keep(libc.calloc(10, 300)); /* LEAK:calloc */ }
NOINLINE static void leak_realloc(void)
{
    void *p = make_block(64);
    keep(libc.realloc(p, 5000)); /* LEAK:realloc */
}
NOINLINE static void leak_reallocarray(void) { keep(libc.reallocarray(NULL, 7, 111)); /* LEAK:reallocarray */ }
NOINLINE static void leak_posix_memalign(void)
{
    void *p = NULL;
    if (libc.posix_memalign(&p, 64, 2000) != 0) /* LEAK:posix_memalign */
        p = NULL;
    keep(p);
}
NOINLINE static void leak_aligned_alloc(void) { keep(libc.aligned_alloc(256, 4096)); /* LEAK:aligned_alloc */ }
NOINLINE static void leak_memalign(void) { keep(libc.memalign(128, 3000)); /* LEAK:memalign */ }
NOINLINE static void leak_valloc(void) { keep(libc.valloc(1234)); /* LEAK:valloc */ }
NOINLINE static void *hold(void) { return libc.malloc(8000); /* LEAK:freed */ }

int main(int argc, char **argv)
{
    void *h = dlopen("libc.so.6", RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen libc.so.6: %s\n", dlerror());
        return 3;
    }
    libc.malloc = look_up(h, "malloc");
    libc.calloc = look_up(h, "calloc");
    libc.realloc = look_up(h, "realloc");
    libc.reallocarray = look_up(h, "reallocarray");
    libc.posix_memalign = look_up(h, "posix_memalign");
    libc.aligned_alloc = look_up(h, "aligned_alloc");
    libc.memalign = look_up(h, "memalign");
    libc.valloc = look_up(h, "valloc");
    libc.free = look_up(h, "free");
    libc.malloc_usable_size = look_up(h, "malloc_usable_size");
    /* whether the lookup found the process's malloc (the one every library calls) */
    int same = libc.malloc == dlsym(RTLD_DEFAULT, "malloc") && libc.free == dlsym(RTLD_DEFAULT, "free");
    /* a library's own malloc (not the allocator in use) stays its own */
    void *lib = argc > 1 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
    if (argc > 1 && !lib) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 3;
    }
    void *own = lib ? dlsym(lib, "malloc") : NULL;
    Dl_info where;
    int own_left = own && own != dlsym(RTLD_DEFAULT, "malloc") && dladdr(own, &where) &&
                   strcmp(where.dli_fname, argv[1]) == 0;
    snapshot_wait(1);
    for (int i = 0; i < ITER; i++) {
        leak_malloc();
        leak_calloc();
        leak_realloc();
        leak_reallocarray();
        leak_posix_memalign();
        leak_aligned_alloc();
        leak_memalign();
        leak_valloc();
        freed[i] = hold();
    }
    size_t usable = libc.malloc_usable_size(freed[0]);
    snapshot_wait(2);
    for (int i = 0; i < ITER; i++)
        libc.free(freed[i]);
    snapshot_wait(3);
    printf("{\"kept\": %d, \"usable\": %zu, \"same_as_default\": %s, \"own_malloc_left\": %s}\n", nkept, usable,
           same ? "true" : "false", own_left ? "true" : "false");
    return nkept == 8 * ITER && usable >= 8000 ? 0 : 1;
}
