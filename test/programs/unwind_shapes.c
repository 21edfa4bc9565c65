/* unwind_shapes.c — call chains that are hard on an unwinder, each leaking
 * a known number of blocks: deep recursion, variable-size frames (alloca),
 * two callers with identical frames reaching one leaf at the same depth
 * (same first return address, same stack depth: only the return addresses
 * further up tell them apart), calls through libc (qsort's comparator),
 * and an allocation inside a signal handler. Built twice, with and without
 * frame pointers. Each site runs many times, so the fast unwinder's rules
 * and its chain cache are in use for most of them. */
#include "snapshot_wait.h"

#include <alloca.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline, noclone))
#define ROUNDS 300

static void *volatile kept[20000]; /* volatile: -O2 may not drop the leaks */
static int nkept;
static volatile int sink;

NOINLINE static void leaf(size_t n)
{
    kept[nkept++] = malloc(n); /* LEAK:leaf */
    sink++;
}

/* twins: same frame shape, so leaf sees the same depth from both */
NOINLINE static void twin_a(size_t n)
{
    volatile char pad[64];
    pad[0] = 1;
    leaf(n);
    sink += pad[0];
}
NOINLINE static void twin_b(size_t n)
{
    volatile char pad[64];
    pad[0] = 2;
    leaf(n);
    sink += pad[0];
}

NOINLINE static void recurse(int depth, size_t n)
{
    if (depth == 0) {
        kept[nkept++] = malloc(n); /* LEAK:recurse */
        return;
    }
    recurse(depth - 1, n);
    sink++;
}

NOINLINE static void variable_frame(int k, size_t n)
{
    char *buf = alloca(16 + (size_t)(k % 7) * 48);
    buf[0] = (char)k;
    kept[nkept++] = malloc(n); /* LEAK:alloca */
    sink += buf[0];
}

static int cmp(const void *a, const void *b)
{
    static int calls;
    if (calls++ % 16 == 0)
        kept[nkept++] = malloc(24); /* LEAK:qsort */
    return *(const int *)a - *(const int *)b;
}

NOINLINE static void through_libc(void)
{
    int v[32];
    for (int i = 0; i < 32; i++)
        v[i] = (i * 7919) % 101;
    qsort(v, 32, sizeof *v, cmp);
}

static void on_alarm(int sig)
{
    (void)sig;
    kept[nkept++] = malloc(77); /* LEAK:signal */
}

int main(void)
{
    signal(SIGUSR1, on_alarm);
    for (int r = 0; r < ROUNDS; r++) {
        twin_a(100);
        if (r % 3 == 0)
            twin_b(100);
        recurse(r % 5 + 10, 200);
        variable_frame(r, 300);
        if (r % 30 == 0)
            through_libc();
        if (r % 50 == 0)
            raise(SIGUSR1);
        if (r == 1) {
            /* every call site has been seen once: give memledger's thread
             * time to compute their unwind rules, as it would have in any
             * program that runs longer than a few milliseconds */
            struct timespec pause = {0, 100000000};
            nanosleep(&pause, NULL);
        }
    }
    snapshot_wait(1);
    printf("%d blocks\n", nkept);
    return 0;
}
