/* cuda_vmm.c — physical VMM handles and their references (see
 * cuda_vmm.h). Two small open-addressing maps (linear probing, deletion by
 * backward shift, so no tombstones build up), grown by doubling in memory
 * mapped here. VMM calls are rare (one per 2 MiB or 20 MiB segment) and
 * slow in the driver, so one lock for both maps is plenty. Never calls the
 * allocator; never holds the lock across a call out of memledger. */
#include "cuda/cuda_vmm.h"
#include "core/sysmem.h"
#include "common/format.h"
#include "core/thread.h"

#include <pthread.h>
#include <sched.h>

ml_addrtab_t ml_cuda_vmm_handles;
_Atomic uint64_t ml_cu_vmm_table_full;

/* key 0 marks an empty slot: no handle or address is 0 */
typedef struct {
    uint64_t key, a, b;
} slot_t;

typedef struct {
    slot_t *s;
    unsigned log2; /* 0 until first used */
    uint64_t used;
} map_t;

static map_t refs; /* handle -> a: references */
static map_t maps; /* mapped address -> a: handle, b: size */
static _Atomic int vmm_lock;

static void lock(void)
{
    while (atomic_exchange_explicit(&vmm_lock, 1, memory_order_acquire))
        while (atomic_load_explicit(&vmm_lock, memory_order_relaxed))
            sched_yield();
}

static void unlock(void) { atomic_store_explicit(&vmm_lock, 0, memory_order_release); }

static void fork_prepare(void) { lock(); }
static void fork_release(void) { unlock(); }

void ml_cu_vmm_init(void)
{
    ml_addrtab_register(&ml_cuda_vmm_handles, "cuda-vmm");
    /* registered after init.c's handlers, so the prepare handler runs
     * before theirs: this lock, then the address tables, as in use */
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

static size_t home(const map_t *m, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> (64 - m->log2));
}

static slot_t *find(map_t *m, uint64_t key)
{
    if (!m->log2)
        return NULL;
    size_t mask = ((size_t)1 << m->log2) - 1;
    for (size_t i = home(m, key);; i = (i + 1) & mask) {
        if (m->s[i].key == key)
            return &m->s[i];
        if (!m->s[i].key)
            return NULL;
    }
}

static void put_fresh(map_t *m, slot_t v)
{
    size_t mask = ((size_t)1 << m->log2) - 1;
    size_t i = home(m, v.key);
    while (m->s[i].key)
        i = (i + 1) & mask;
    m->s[i] = v;
    m->used++;
}

/* Keeps the load at most one half. Returns false when it cannot grow. */
static bool make_room(map_t *m)
{
    if (m->log2 && (m->used + 1) * 2 <= ((uint64_t)1 << m->log2))
        return true;
    unsigned nlog2 = m->log2 ? m->log2 + 1 : 10;
    slot_t *ns = ml_sysmem_map(sizeof(slot_t) << nlog2);
    if (!ns)
        return false;
    map_t old = *m;
    m->s = ns;
    m->log2 = nlog2;
    m->used = 0;
    for (size_t i = 0; old.log2 && i < ((size_t)1 << old.log2); i++)
        if (old.s[i].key)
            put_fresh(m, old.s[i]);
    if (old.log2)
        ml_sysmem_unmap(old.s, sizeof(slot_t) << old.log2);
    return true;
}

/* Sets key's values, adding it if absent. Returns false when full. */
static bool put(map_t *m, uint64_t key, uint64_t a, uint64_t b)
{
    slot_t *s = find(m, key);
    if (s) {
        s->a = a;
        s->b = b;
        return true;
    }
    if (!make_room(m)) {
        atomic_fetch_add_explicit(&ml_cu_vmm_table_full, 1, memory_order_relaxed);
        return false;
    }
    put_fresh(m, (slot_t){key, a, b});
    return true;
}

static void del(map_t *m, slot_t *s)
{
    size_t mask = ((size_t)1 << m->log2) - 1;
    size_t hole = (size_t)(s - m->s);
    for (size_t i = (hole + 1) & mask; m->s[i].key; i = (i + 1) & mask) {
        /* move back an entry whose probe run passes over the hole */
        size_t h = home(m, m->s[i].key);
        if (((i - h) & mask) >= ((i - hole) & mask)) {
            m->s[hole] = m->s[i];
            hole = i;
        }
    }
    m->s[hole].key = 0;
    m->used--;
}

void ml_cu_vmm_created(ml_cu_mem_handle h, uint64_t size, ml_stack_fn stack)
{
    if (!h)
        return;
    /* recorded outside the lock: the handle is this thread's alone until
     * cuMemCreate's caller passes it on */
    ml_track_alloc_by(&ml_cuda_vmm_handles, ML_DOM_CUDA_VMM, (const void *)(uintptr_t)h, size, stack);
    lock();
    put(&refs, h, 1, 0);
    unlock();
}

void ml_cu_vmm_retained(ml_cu_mem_handle h)
{
    lock();
    slot_t *s = find(&refs, h);
    if (s)
        s->a++;
    unlock();
}

void ml_cu_vmm_mapped(ml_cu_deviceptr va, uint64_t size, ml_cu_mem_handle h)
{
    lock();
    slot_t *s = find(&refs, h);
    if (s && va && put(&maps, va, h, size))
        s->a++; /* s is in the other map: put cannot have moved it */
    unlock();
}

/* Drops one reference to h; forgets h when none is left. Lock held. */
static void unref(ml_cu_mem_handle h, ml_cu_undo_t *u)
{
    slot_t *s = find(&refs, h);
    if (!s)
        return;
    ml_cu_undo_push(u, (ml_cu_undo_entry_t){.op = ML_CU_UNDO_UNREF, .key = h});
    if (--s->a > 0)
        return;
    del(&refs, s);
    ml_cu_rec_free(&ml_cuda_vmm_handles, h, u);
}

void ml_cu_vmm_release(ml_cu_mem_handle h, ml_cu_undo_t *u)
{
    lock();
    unref(h, u);
    unlock();
}

void ml_cu_vmm_unmap(ml_cu_deviceptr va, uint64_t size, ml_cu_undo_t *u)
{
    lock();
    /* one call may unmap several mappings that lie end to end */
    uint64_t at = va, end = va + size;
    while (at < end) {
        slot_t *s = find(&maps, at);
        if (!s || !s->b)
            break;
        uint64_t h = s->a, len = s->b;
        del(&maps, s);
        ml_cu_undo_push(u, (ml_cu_undo_entry_t){.op = ML_CU_UNDO_UNMAP, .key = at, .a = h, .size = len});
        unref(h, u);
        at += len;
    }
    unlock();
}

void ml_cu_vmm_undo(const ml_cu_undo_entry_t *e)
{
    lock();
    if (e->op == ML_CU_UNDO_UNREF) {
        slot_t *s = find(&refs, e->key);
        if (s)
            s->a++;
        else
            put(&refs, e->key, 1, 0);
    } else if (e->op == ML_CU_UNDO_UNMAP) {
        put(&maps, e->key, e->a, e->size);
    }
    unlock();
}
