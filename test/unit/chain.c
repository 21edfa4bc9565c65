/* chain.c — a call chain for the unwinder's unit tests, in a shared library
 * of its own and built like optimised user code without frame pointers
 * (test/CMakeLists.txt): in a unit test the whole test executable counts as
 * memledger's own code (ml_capture_is_self: the text segment that holds
 * ml_capture_init), so the program's frames the unwinder must step through
 * have to live outside it. The fast unwinder can step these frames only with
 * the rules derived from their CFI: chain_leaf's CFA is RSP-based, and
 * chain_alloca's frame has a variable size, so its CFA is RBP-based.
 *
 *   chain_run -> chain_rec (depth times) -> chain_alloca -> chain_leaf -> fn(arg)
 */
#include <alloca.h>
#include <string.h>

typedef unsigned (*chain_fn)(void *arg);

#define CHAIN_API __attribute__((noinline, visibility("default")))

static volatile unsigned sink;

CHAIN_API unsigned chain_leaf(chain_fn fn, void *arg)
{
    volatile char pad[72];
    pad[0] = (char)sink;
    unsigned r = fn(arg);
    sink = pad[0] + r;
    return r + sink;
}

CHAIN_API unsigned chain_alloca(chain_fn fn, void *arg, unsigned bytes)
{
    char *p = alloca(bytes + 16);
    memset(p, (int)sink, bytes + 16);
    unsigned r = chain_leaf(fn, arg);
    sink = (unsigned)p[bytes] + r;
    return r + sink;
}

CHAIN_API unsigned chain_rec(chain_fn fn, void *arg, unsigned depth, unsigned bytes)
{
    unsigned r = depth ? chain_rec(fn, arg, depth - 1, bytes) : chain_alloca(fn, arg, bytes);
    sink = r ^ depth;
    return r + sink;
}

/* Calls fn(arg) below depth + 3 frames of this library. */
CHAIN_API unsigned chain_run(chain_fn fn, void *arg, unsigned depth, unsigned alloca_bytes)
{
    unsigned r = chain_rec(fn, arg, depth, alloca_bytes);
    sink = r;
    return r + sink;
}
