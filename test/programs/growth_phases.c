/* growth_phases.c — the three shapes memory takes in a service after
 * warm-up, at known sizes, for the "only grows" tests:
 *   a cache of CACHE_SLOTS entries of CACHE_BYTES that fills up and then
 *     only replaces: warm-up fills part of it, the first round the rest,
 *     the second adds nothing. Entries are strdup'ed, so the allocation's
 *     innermost frame is the C library's and the user's code (cache_put)
 *     is one frame out;
 *   a steady churn: a ring of CHURN_SLOTS buffers, one replaced per
 *     request, and a temporary per request: the same live bytes at every
 *     snapshot;
 *   a real leak: every request keeps LEAK_BYTES (keep_copy's malloc).
 * Requests alternate between two entry points, serve_get (even ids) and
 * serve_post (odd ids), so each site has two stacks; a cache or ring slot
 * is always refilled from the same one. Warm-up and the two rounds run
 * from one call site, as a service's request loop does, so their stacks
 * are the same. Snapshots 1, 2 and 3 are taken after warm-up and after
 * each round: between snapshots nothing else allocates. */
#include "snapshot_wait.h"

#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

#define CACHE_SLOTS 64
#define CACHE_BYTES 8192
#define CHURN_SLOTS 32
#define CHURN_BYTES 1024
#define LEAK_BYTES 4096
#define WARM_REQUESTS 48
#define ROUND_REQUESTS 100

static char *cache[CACHE_SLOTS];
static char *ring[CHURN_SLOTS];
static char **kept;
static size_t nkept;
static char entry[CACHE_BYTES];

NOINLINE static void cache_put(long id)
{
    size_t slot = (size_t)id % CACHE_SLOTS;
    free(cache[slot]); /* a full cache replaces: it stops growing */
    cache[slot] = strdup(entry); /* LEAK:cache */
}

NOINLINE static void churn(long id)
{
    size_t slot = (size_t)id % CHURN_SLOTS;
    free(ring[slot]);
    ring[slot] = malloc(CHURN_BYTES); /* LEAK:churn */
    char *tmp = malloc(300 + (size_t)id % 700);
    memset(tmp, 2, 300);
    free(tmp);
}

NOINLINE static void keep_copy(void)
{
    char *copy = malloc(LEAK_BYTES); /* LEAK:leak */
    memset(copy, 'x', LEAK_BYTES);
    kept[nkept++] = copy;
}

NOINLINE static void handle(long id)
{
    cache_put(id);
    churn(id);
    keep_copy();
}

NOINLINE static void serve_get(long id) { handle(id); }
NOINLINE static void serve_post(long id) { handle(id); }

static long next_id;

NOINLINE static void serve(int requests)
{
    for (int i = 0; i < requests; i++, next_id++) {
        if (next_id % 2)
            serve_post(next_id);
        else
            serve_get(next_id);
    }
}

int main(void)
{
    static const int phases[] = {WARM_REQUESTS, ROUND_REQUESTS, ROUND_REQUESTS};
    memset(entry, 'c', CACHE_BYTES - 1);
    kept = malloc((WARM_REQUESTS + 2 * ROUND_REQUESTS) * sizeof *kept);
    for (int p = 0; p < 3; p++) {
        serve(phases[p]);
        snapshot_wait(p + 1);
    }
    return 0;
}
