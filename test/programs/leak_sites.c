/* leak_sites.c — one leak per allocation function, at a line the test
 * finds by its LEAK marker, plus churn that must net to zero.
 * Between snapshot 1 and 2 each site runs exactly ITER times. */
#include "snapshot_wait.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ITER 25
#define NOINLINE __attribute__((noinline))

static void *kept[64 * ITER];
static int nkept;

static void keep(void *p)
{
    if (!p) {
        fprintf(stderr, "allocation failed\n");
        exit(3);
    }
    kept[nkept++] = p;
}

NOINLINE static void *make_block(size_t n) { return malloc(n); /* LEAK:make_block */ }

NOINLINE static void leak_malloc(void) { keep(malloc(1000)); /* LEAK:malloc */ }
NOINLINE static void leak_calloc(void) { keep(calloc(10, 300)); /* LEAK:calloc */ }
NOINLINE static void leak_realloc_grow(void)
{
    void *p = make_block(64);
    keep(realloc(p, 5000)); /* LEAK:realloc_grow */
}
NOINLINE static void leak_realloc_shrink(void)
{
    void *p = make_block(100000);
    keep(realloc(p, 700)); /* LEAK:realloc_shrink */
}
NOINLINE static void leak_realloc_move(void)
{
    void *p = make_block(16);
    void *fence = make_block(16); /* keeps p from growing in place */
    void *q = realloc(p, 1 << 20); /* LEAK:realloc_move */
    free(fence);
    keep(q);
}
NOINLINE static void leak_posix_memalign(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 2000) != 0) /* LEAK:posix_memalign */
        p = NULL;
    keep(p);
}
NOINLINE static void leak_aligned_alloc(void) { keep(aligned_alloc(256, 4096)); /* LEAK:aligned_alloc */ }
NOINLINE static void leak_memalign(void) { keep(memalign(128, 3000)); /* LEAK:memalign */ }
NOINLINE static void leak_valloc(void) { keep(valloc(1234)); /* LEAK:valloc */ }
NOINLINE static void leak_pvalloc(void) { keep(pvalloc(100)); /* LEAK:pvalloc */ }
NOINLINE static void leak_reallocarray(void) { keep(reallocarray(NULL, 7, 111)); /* LEAK:reallocarray */ }

NOINLINE static void churn(void)
{
    for (int i = 0; i < 200; i++) {
        char *p = malloc((size_t)i * 13 + 1); /* LEAK:churn */
        p[0] = 1;
        char *q = realloc(p, (size_t)i * 7 + 3);
        free(q);
        free(calloc(3, (size_t)i + 1));
    }
}

static void round_of_leaks(void)
{
    leak_malloc();
    leak_calloc();
    leak_realloc_grow();
    leak_realloc_shrink();
    leak_realloc_move();
    leak_posix_memalign();
    leak_aligned_alloc();
    leak_memalign();
    leak_valloc();
    leak_pvalloc();
    leak_reallocarray();
    churn();
}

int main(void)
{
    /* which allocator serves memory: the jemalloc test checks this */
    printf("allocator %s\n", dlsym(RTLD_DEFAULT, "mallctl")     ? "jemalloc"
                              : dlsym(RTLD_DEFAULT, "tc_malloc") ? "tcmalloc"
                                                                 : "other");
    fflush(stdout);
    round_of_leaks(); /* every stack exists before the first snapshot */
    snapshot_wait(1);
    for (int i = 0; i < ITER; i++)
        round_of_leaks();
    snapshot_wait(2);
    printf("iterations %d\n", ITER);
    return 0;
}
