/* cuda_record.c — CUDA allocations and frees into the ledger (see
 * cuda_record.h), and the handlers the wrapped entry points call: one per
 * allocating family of cuda_entries.def, declared in cuda_entry.h.
 *
 * A handler calls the real function outside memledger's guard, so what the
 * driver allocates from the heap meanwhile is seen as any other malloc;
 * its own recording runs inside the guard. A driver entry point that calls
 * another one we wrap (cuMemAllocHost through cuMemHostAlloc, say) would
 * be counted twice: a per-thread depth makes the inner call pass through.
 * Frees forget before the real call and put back if the driver refuses,
 * because a freed address may be handed out again at once. */
#include "cuda/cuda_record.h"
#include "cuda/cuda_entry.h"
#include "cuda/cuda_vmm.h"
#include "common/format.h"
#include "core/ledger.h"
#include "core/thread.h"

ml_addrtab_t ml_cuda_ptrs;
ml_addrtab_t ml_cuda_arrays;

static __thread int depth __attribute__((tls_model("initial-exec")));

void ml_cuda_record_init(void)
{
    ml_addrtab_register(&ml_cuda_ptrs, "cuda");
    ml_addrtab_register(&ml_cuda_arrays, "cuda-arrays");
    ml_cu_vmm_init();
}

void ml_cu_undo_push(ml_cu_undo_t *u, ml_cu_undo_entry_t e)
{
    if (u->n < ML_CU_UNDO_MAX)
        u->e[u->n++] = e;
}

void ml_cu_rec_alloc(unsigned domain, ml_addrtab_t *t, uint64_t key, uint64_t size, ml_stack_fn stack)
{
    if (key)
        ml_track_alloc_by(t, domain, (const void *)(uintptr_t)key, size, stack);
}

void ml_cu_rec_free(ml_addrtab_t *t, uint64_t key, ml_cu_undo_t *u)
{
    uint32_t id;
    uint64_t size;
    if (key && ml_track_free_held(t, (const void *)(uintptr_t)key, &id, &size))
        ml_cu_undo_push(u, (ml_cu_undo_entry_t){.op = ML_CU_UNDO_RECORD, .t = t, .key = key, .id = id,
                                                .size = size});
}

void ml_cu_rec_undo(ml_cu_undo_t *u)
{
    while (u->n) {
        const ml_cu_undo_entry_t *e = &u->e[--u->n];
        if (e->op == ML_CU_UNDO_RECORD) {
            ml_track_restore(e->t, (const void *)(uintptr_t)e->key, e->id, e->size);
            ml_ledger_unhold();
        } else {
            ml_cu_vmm_undo(e);
        }
    }
}

void ml_cu_rec_keep(ml_cu_undo_t *u)
{
    while (u->n)
        if (u->e[--u->n].op == ML_CU_UNDO_RECORD)
            ml_ledger_unhold();
}

static uint64_t elem_bytes(int format)
{
    switch (format) {
    case ML_CU_AD_FORMAT_UNSIGNED_INT8:
    case ML_CU_AD_FORMAT_SIGNED_INT8:
        return 1;
    case ML_CU_AD_FORMAT_UNSIGNED_INT16:
    case ML_CU_AD_FORMAT_SIGNED_INT16:
    case ML_CU_AD_FORMAT_HALF:
        return 2;
    case ML_CU_AD_FORMAT_UNSIGNED_INT32:
    case ML_CU_AD_FORMAT_SIGNED_INT32:
    case ML_CU_AD_FORMAT_FLOAT:
        return 4;
    default:
        return 0;
    }
}

static uint64_t dims(uint64_t n) { return n ? n : 1; } /* a 1D array has height 0 */

uint64_t ml_cu_array_bytes(const ml_cu_array_desc *d)
{
    return d ? d->Width * dims(d->Height) * d->NumChannels * elem_bytes(d->Format) : 0;
}

uint64_t ml_cu_array3d_bytes(const ml_cu_array3d_desc *d)
{
    return d ? d->Width * dims(d->Height) * dims(d->Depth) * d->NumChannels * elem_bytes(d->Format) : 0;
}

/* ---- the handlers ---- */

/* True when this call is to be recorded; then the caller must call end()
 * after the real function returns. */
static bool begin(void)
{
    if (depth || !ml_cuda_hooks_record())
        return false;
    depth++;
    return true;
}

static void end(void) { depth--; }

static void recorded_alloc(unsigned domain, ml_addrtab_t *t, uint64_t key, uint64_t size)
{
    if (ml_enter()) {
        ml_cu_rec_alloc(domain, t, key, size, NULL);
        ml_leave();
    }
}

static void forget(ml_addrtab_t *t, uint64_t key, ml_cu_undo_t *u)
{
    u->n = 0;
    if (ml_enter()) {
        ml_cu_rec_free(t, key, u);
        ml_leave();
    }
}

/* After a free-like real call: puts back what it forgot if it failed. */
static ml_cu_result settle(ml_cu_undo_t *u, ml_cu_result r)
{
    end();
    if (u->n && ml_enter()) {
        if (r != ML_CUDA_SUCCESS)
            ml_cu_rec_undo(u);
        else
            ml_cu_rec_keep(u);
        ml_leave();
    }
    return r;
}

/* fn: the real function, of its family's type <handler>_real_t (cuda_entry.h) */
#define REAL(real, type)                                                                     \
    type fn = (type)(real);                                                                  \
    if (ML_UNLIKELY(!fn))                                                                    \
        return ML_CUDA_ERROR_NOT_INITIALIZED

ml_cu_result ml_cu_mem_alloc(void *real, ml_cu_deviceptr *dptr, size_t bytes)
{
    REAL(real, ml_cu_mem_alloc_real_t);
    if (!begin())
        return fn(dptr, bytes);
    ml_cu_result r = fn(dptr, bytes);
    end();
    if (r == ML_CUDA_SUCCESS && dptr)
        recorded_alloc(ML_DOM_CUDA, &ml_cuda_ptrs, *dptr, bytes);
    return r;
}

ml_cu_result ml_cu_mem_alloc_pitch(void *real, ml_cu_deviceptr *dptr, size_t *pitch, size_t width,
                                   size_t height, unsigned elem)
{
    REAL(real, ml_cu_mem_alloc_pitch_real_t);
    if (!begin())
        return fn(dptr, pitch, width, height, elem);
    ml_cu_result r = fn(dptr, pitch, width, height, elem);
    end();
    if (r == ML_CUDA_SUCCESS && dptr && pitch)
        recorded_alloc(ML_DOM_CUDA, &ml_cuda_ptrs, *dptr, (uint64_t)*pitch * height);
    return r;
}

ml_cu_result ml_cu_mem_free(void *real, ml_cu_deviceptr dptr)
{
    REAL(real, ml_cu_mem_free_real_t);
    if (!begin())
        return fn(dptr);
    ml_cu_undo_t u;
    forget(&ml_cuda_ptrs, dptr, &u);
    return settle(&u, fn(dptr));
}

ml_cu_result ml_cu_mem_alloc_async(void *real, ml_cu_deviceptr *dptr, size_t bytes, ml_cu_stream s)
{
    REAL(real, ml_cu_mem_alloc_async_real_t);
    if (!begin())
        return fn(dptr, bytes, s);
    ml_cu_result r = fn(dptr, bytes, s);
    end();
    if (r == ML_CUDA_SUCCESS && dptr)
        recorded_alloc(ML_DOM_CUDA, &ml_cuda_ptrs, *dptr, bytes);
    return r;
}

ml_cu_result ml_cu_mem_alloc_pool(void *real, ml_cu_deviceptr *dptr, size_t bytes, ml_cu_mempool pool,
                                  ml_cu_stream s)
{
    REAL(real, ml_cu_mem_alloc_pool_real_t);
    if (!begin())
        return fn(dptr, bytes, pool, s);
    ml_cu_result r = fn(dptr, bytes, pool, s);
    end();
    if (r == ML_CUDA_SUCCESS && dptr)
        recorded_alloc(ML_DOM_CUDA, &ml_cuda_ptrs, *dptr, bytes);
    return r;
}

/* The memory goes back to its pool when the stream reaches the free; for
 * the program it is gone now, and the address may be handed out again in
 * stream order, so it is forgotten now. */
ml_cu_result ml_cu_mem_free_async(void *real, ml_cu_deviceptr dptr, ml_cu_stream s)
{
    REAL(real, ml_cu_mem_free_async_real_t);
    if (!begin())
        return fn(dptr, s);
    ml_cu_undo_t u;
    forget(&ml_cuda_ptrs, dptr, &u);
    return settle(&u, fn(dptr, s));
}

ml_cu_result ml_cu_mem_alloc_managed(void *real, ml_cu_deviceptr *dptr, size_t bytes, unsigned flags)
{
    REAL(real, ml_cu_mem_alloc_managed_real_t);
    if (!begin())
        return fn(dptr, bytes, flags);
    ml_cu_result r = fn(dptr, bytes, flags);
    end();
    if (r == ML_CUDA_SUCCESS && dptr)
        recorded_alloc(ML_DOM_CUDA_MANAGED, &ml_cuda_ptrs, *dptr, bytes);
    return r;
}

ml_cu_result ml_cu_mem_host_alloc(void *real, void **pp, size_t bytes, unsigned flags)
{
    REAL(real, ml_cu_mem_host_alloc_real_t);
    if (!begin())
        return fn(pp, bytes, flags);
    ml_cu_result r = fn(pp, bytes, flags);
    end();
    if (r == ML_CUDA_SUCCESS && pp)
        recorded_alloc(ML_DOM_CUDA_HOST, &ml_cuda_ptrs, (uintptr_t)*pp, bytes);
    return r;
}

ml_cu_result ml_cu_mem_alloc_host(void *real, void **pp, size_t bytes)
{
    REAL(real, ml_cu_mem_alloc_host_real_t);
    if (!begin())
        return fn(pp, bytes);
    ml_cu_result r = fn(pp, bytes);
    end();
    if (r == ML_CUDA_SUCCESS && pp)
        recorded_alloc(ML_DOM_CUDA_HOST, &ml_cuda_ptrs, (uintptr_t)*pp, bytes);
    return r;
}

ml_cu_result ml_cu_mem_free_host(void *real, void *p)
{
    REAL(real, ml_cu_mem_free_host_real_t);
    if (!begin())
        return fn(p);
    ml_cu_undo_t u;
    forget(&ml_cuda_ptrs, (uintptr_t)p, &u);
    return settle(&u, fn(p));
}

ml_cu_result ml_cu_mem_create(void *real, ml_cu_mem_handle *h, size_t size, const void *prop,
                              unsigned long long flags)
{
    REAL(real, ml_cu_mem_create_real_t);
    if (!begin())
        return fn(h, size, prop, flags);
    ml_cu_result r = fn(h, size, prop, flags);
    end();
    if (r == ML_CUDA_SUCCESS && h && ml_enter()) {
        ml_cu_vmm_created(*h, size, NULL);
        ml_leave();
    }
    return r;
}

ml_cu_result ml_cu_mem_release(void *real, ml_cu_mem_handle h)
{
    REAL(real, ml_cu_mem_release_real_t);
    if (!begin())
        return fn(h);
    ml_cu_undo_t u = {0};
    if (ml_enter()) {
        ml_cu_vmm_release(h, &u);
        ml_leave();
    }
    return settle(&u, fn(h));
}

ml_cu_result ml_cu_mem_map(void *real, ml_cu_deviceptr va, size_t size, size_t offset, ml_cu_mem_handle h,
                           unsigned long long flags)
{
    REAL(real, ml_cu_mem_map_real_t);
    if (!begin())
        return fn(va, size, offset, h, flags);
    ml_cu_result r = fn(va, size, offset, h, flags);
    end();
    if (r == ML_CUDA_SUCCESS && ml_enter()) {
        ml_cu_vmm_mapped(va, size, h);
        ml_leave();
    }
    return r;
}

ml_cu_result ml_cu_mem_unmap(void *real, ml_cu_deviceptr va, size_t size)
{
    REAL(real, ml_cu_mem_unmap_real_t);
    if (!begin())
        return fn(va, size);
    ml_cu_undo_t u = {0};
    if (ml_enter()) {
        ml_cu_vmm_unmap(va, size, &u);
        ml_leave();
    }
    return settle(&u, fn(va, size));
}

ml_cu_result ml_cu_mem_retain(void *real, ml_cu_mem_handle *h, void *addr)
{
    REAL(real, ml_cu_mem_retain_real_t);
    if (!begin())
        return fn(h, addr);
    ml_cu_result r = fn(h, addr);
    end();
    if (r == ML_CUDA_SUCCESS && h && ml_enter()) {
        ml_cu_vmm_retained(*h);
        ml_leave();
    }
    return r;
}

ml_cu_result ml_cu_array_create(void *real, ml_cu_array *a, const ml_cu_array_desc *d)
{
    REAL(real, ml_cu_array_create_real_t);
    if (!begin())
        return fn(a, d);
    ml_cu_result r = fn(a, d);
    end();
    uint64_t bytes = ml_cu_array_bytes(d);
    if (r == ML_CUDA_SUCCESS && a && bytes)
        recorded_alloc(ML_DOM_CUDA, &ml_cuda_arrays, (uintptr_t)*a, bytes);
    return r;
}

ml_cu_result ml_cu_array3d_create(void *real, ml_cu_array *a, const ml_cu_array3d_desc *d)
{
    REAL(real, ml_cu_array3d_create_real_t);
    if (!begin())
        return fn(a, d);
    ml_cu_result r = fn(a, d);
    end();
    uint64_t bytes = ml_cu_array3d_bytes(d);
    if (r == ML_CUDA_SUCCESS && a && bytes)
        recorded_alloc(ML_DOM_CUDA, &ml_cuda_arrays, (uintptr_t)*a, bytes);
    return r;
}

ml_cu_result ml_cu_array_destroy(void *real, ml_cu_array a)
{
    REAL(real, ml_cu_array_destroy_real_t);
    if (!begin())
        return fn(a);
    ml_cu_undo_t u;
    forget(&ml_cuda_arrays, (uintptr_t)a, &u);
    return settle(&u, fn(a));
}
