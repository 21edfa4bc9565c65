/* capture.c — the stack capture contract and its two native unwinders
 * (see capture.h). Never locks, never allocates through the hooked
 * allocator; the frame-pointer walker reads only inside the thread's stack. */

#include "capture.h"
#include "config.h"
#include "thread.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sys/syscall.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

static ml_unwinder_fn unwinder = ml_unwind_libunwind;
static ml_merge_fn merge;
static uintptr_t self_lo, self_hi;

bool ml_capture_is_self(uintptr_t pc) { return pc >= self_lo && pc < self_hi; }

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t probe = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (probe >= lo && probe < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

void ml_capture_init(void)
{
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&ml_capture_init);
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    switch (ml_config.unwind) {
    case ML_UNWIND_FP:
        unwinder = ml_unwind_fp;
        break;
    case ML_UNWIND_AUTO:
    case ML_UNWIND_LIBUNWIND:
        unwinder = ml_unwind_libunwind;
        break;
    }
}

void ml_capture_set_unwinder(ml_unwinder_fn fn)
{
    if (!fn)
        fn = ml_config.unwind == ML_UNWIND_FP ? ml_unwind_fp : ml_unwind_libunwind;
    __atomic_store_n(&unwinder, fn, __ATOMIC_RELEASE);
}

void ml_capture_set_merge(ml_merge_fn fn) { __atomic_store_n(&merge, fn, __ATOMIC_RELEASE); }

unsigned ml_unwind_libunwind(uintptr_t *pcs, unsigned max)
{
    int n = unw_backtrace((void **)pcs, (int)max);
    return n > 0 ? (unsigned)n : 0;
}

/* The thread's stack bounds, found once per thread without allocating on
 * the main thread (its bounds come from __libc_stack_end and the rlimit). */
extern void *__libc_stack_end;

static void stack_bounds(void)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (syscall(SYS_gettid) == getpid()) {
        struct rlimit rl;
        uintptr_t top = (uintptr_t)__libc_stack_end;
        uint64_t size = 8u << 20;
        if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (1ull << 32))
            size = rl.rlim_cur;
        /* __libc_stack_end is near the top; environment and auxv sit above */
        ml_self.stack_hi = (top + 65536 + 4095) & ~(uintptr_t)4095;
        ml_self.stack_lo = top - size;
    } else {
        pthread_attr_t a;
        void *lo;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstack(&a, &lo, &size) == 0) {
                ml_self.stack_lo = (uintptr_t)lo;
                ml_self.stack_hi = (uintptr_t)lo + size;
            }
            pthread_attr_destroy(&a);
        }
    }
    if (here < ml_self.stack_lo || here >= ml_self.stack_hi) {
        ml_self.stack_lo = here;
        ml_self.stack_hi = here + 1; /* unknown: the walk stops at once */
    }
}

__attribute__((no_sanitize_address)) unsigned ml_unwind_fp(uintptr_t *pcs, unsigned max)
{
    if (ML_UNLIKELY(!ml_self.stack_hi))
        stack_bounds();
    uintptr_t lo = ml_self.stack_lo, hi = ml_self.stack_hi;
    const uintptr_t *fp = __builtin_frame_address(0);
    unsigned n = 0;
    while (n < max) {
        uintptr_t f = (uintptr_t)fp;
        if (f < lo || f + 16 > hi || (f & 7))
            break;
        uintptr_t ret = fp[1];
        const uintptr_t *next = (const uintptr_t *)fp[0];
        if (ret < 4096)
            break;
        pcs[n++] = ret;
        if ((uintptr_t)next <= f)
            break; /* frames only go up the stack; anything else is not a frame chain */
        fp = next;
    }
    return n;
}

unsigned ml_capture(uint64_t *words, unsigned cap)
{
    uintptr_t pcs[ML_MAX_DEPTH + 32];
    unsigned max = ml_config.depth < cap ? ml_config.depth : cap;
    /* room for memledger's own frames, which are trimmed below */
    unsigned want = max + 32 < ML_ARRAY_LEN(pcs) ? max + 32 : (unsigned)ML_ARRAY_LEN(pcs);
    ml_unwinder_fn fn = __atomic_load_n(&unwinder, __ATOMIC_ACQUIRE);
    unsigned n = fn(pcs, want);
    unsigned skip = 0;
    while (skip < n && ml_capture_is_self(pcs[skip]))
        skip++;
    unsigned k = 0;
    for (unsigned i = skip; i < n && k < max; i++)
        words[k++] = pcs[i];
    ml_merge_fn m = __atomic_load_n(&merge, __ATOMIC_ACQUIRE);
    if (m)
        k = m(words, k, cap);
    return k;
}
