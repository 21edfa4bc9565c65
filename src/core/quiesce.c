/* quiesce.c — announcements and grace periods (see quiesce.h).
 *
 * Why the hooks need no fence of their own: a thread announces (store)
 * and then reads the epoch again (load); x86 may let that load pass the
 * store. The collector moves the epoch and then calls
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which makes every running
 * thread of the process execute a full barrier (a thread that is not
 * running has passed one in its context switch). Wherever that barrier
 * falls in a hook's entry, either the thread's second load sees the new
 * epoch (and it rejects every cache entry of an older one), or its
 * announcement of the old epoch is visible to the collector, which then
 * waits for it to leave. This is the asymmetric-fence scheme of
 * liburcu's membarrier flavour. Without membarrier (old kernels, a
 * seccomp filter), the hooks pay a full fence on entry instead. */
#include "core/quiesce.h"
#include "core/sysmem.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t ml_store_epoch = 1;
ml_qslot_t *ml_qslots;
_Atomic uint64_t ml_q_shared;
_Atomic bool ml_q_fence = true;

static _Atomic uint64_t claimed[ML_QSLOTS / 64];
static _Atomic uint32_t high; /* slots ever claimed (the highest + 1): the collector scans no further */

static bool membarrier_register(void)
{
#if defined(__SANITIZE_THREAD__)
    return false; /* the thread sanitizer cannot see the kernel's barrier: fence in the hooks */
#else
    return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

bool ml_quiesce_init(void)
{
    if (!ml_qslots)
        ml_qslots = ml_sysmem_map(sizeof(ml_qslot_t) * ML_QSLOTS);
    atomic_store(&ml_q_fence, !membarrier_register());
    return ml_qslots != NULL;
}

void ml_quiesce_claim(void)
{
    if (!ml_qslots) {
        ml_self.qslot = UINT32_MAX;
        return;
    }
    for (unsigned w = 0; w < ML_QSLOTS / 64; w++) {
        uint64_t cur = atomic_load_explicit(&claimed[w], memory_order_relaxed);
        while (~cur) {
            unsigned bit = (unsigned)__builtin_ctzll(~cur);
            if (atomic_compare_exchange_weak_explicit(&claimed[w], &cur, cur | 1ull << bit, memory_order_acquire,
                                                      memory_order_relaxed)) {
                uint32_t slot = w * 64 + bit;
                uint32_t h = atomic_load_explicit(&high, memory_order_relaxed);
                while (h < slot + 1 && !atomic_compare_exchange_weak_explicit(&high, &h, slot + 1,
                                                                               memory_order_release,
                                                                               memory_order_relaxed))
                    ;
                ml_self.qslot = slot + 1;
                ml_thread_want_exit_call();
                return;
            }
        }
    }
    ml_self.qslot = UINT32_MAX; /* every slot taken: share the counter */
}

void ml_quiesce_release(void)
{
    uint32_t s = ml_self.qslot;
    /* allocations after this (later destructors) count in the shared counter */
    ml_self.qslot = UINT32_MAX;
    if (s && s != UINT32_MAX) {
        atomic_store_explicit(&ml_qslots[s - 1].epoch, 0, memory_order_release);
        atomic_fetch_and_explicit(&claimed[(s - 1) / 64], ~(1ull << ((s - 1) % 64)), memory_order_release);
    }
}

static void nap(void)
{
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
}

uint64_t ml_quiesce_advance_and_wait(void)
{
    uint64_t e = atomic_fetch_add_explicit(&ml_store_epoch, 1, memory_order_seq_cst) + 1;
    if (atomic_load(&ml_q_fence) || syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
        /* the kernel refused the barrier after all: from now on the hooks
         * announce with sequentially consistent operations, and a thread
         * that entered before this did not; wait for everyone to leave
         * once, whatever they announced */
        if (!atomic_load(&ml_q_fence)) {
            atomic_store(&ml_q_fence, true);
            uint32_t n = atomic_load(&high);
            for (uint32_t i = 0; i < n && ml_qslots; i++)
                while (atomic_load(&ml_qslots[i].epoch))
                    nap();
        }
    }
    /* sequentially consistent reads: without the barrier they are what
     * orders the announcements against the increment above */
    uint32_t n = atomic_load(&high);
    for (uint32_t i = 0; i < n && ml_qslots; i++) {
        uint64_t v;
        while ((v = atomic_load(&ml_qslots[i].epoch)) != 0 && v < e)
            nap();
    }
    while (atomic_load(&ml_q_shared))
        nap();
    return e;
}

void ml_quiesce_after_fork_child(void)
{
    /* the other threads are gone: their slots are free, nobody is inside */
    for (unsigned w = 0; w < ML_QSLOTS / 64; w++)
        atomic_store_explicit(&claimed[w], 0, memory_order_relaxed);
    uint32_t s = ml_self.qslot;
    for (uint32_t i = 0; ml_qslots && i < atomic_load_explicit(&high, memory_order_relaxed); i++)
        if (i + 1 != s)
            atomic_store_explicit(&ml_qslots[i].epoch, 0, memory_order_relaxed);
    if (s && s != UINT32_MAX)
        atomic_fetch_or_explicit(&claimed[(s - 1) / 64], 1ull << ((s - 1) % 64), memory_order_relaxed);
    atomic_store_explicit(&ml_q_shared, 0, memory_order_relaxed);
    if (!atomic_load(&ml_q_fence) && !membarrier_register())
        atomic_store(&ml_q_fence, true); /* the registration is the parent's process's; ask again */
}
