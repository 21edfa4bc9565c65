/* cuda_vmm.h — the lifetime of physical memory made with cuMemCreate.
 * The driver frees a handle's memory only once every reference is gone:
 * the handle itself (cuMemRelease), each mapping of it (cuMemUnmap), and
 * each cuMemRetainAllocationHandle. So the ledger counts a handle once, at
 * cuMemCreate, however many times it is mapped, and forgets it when the
 * last reference goes, which may be an unmap after the release.
 * Owns: the handle address table (the ledger's record of each handle), a
 * reference count per handle and the mappings (address -> handle, size),
 * under one lock that fork handlers take. Must never hold that lock across
 * a call out of memledger, or record a handle it did not see created. */
#ifndef ML_CUDA_VMM_H
#define ML_CUDA_VMM_H

#include "core/addrtab.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_record.h"
#include "core/track.h"

extern ml_addrtab_t ml_cuda_vmm_handles;

/* Registers the table and the fork handlers (first contact). */
void ml_cu_vmm_init(void);

/* After the real call succeeded. The caller holds the thread's guard. */
void ml_cu_vmm_created(ml_cu_mem_handle h, uint64_t size, ml_stack_fn stack);
void ml_cu_vmm_retained(ml_cu_mem_handle h);
void ml_cu_vmm_mapped(ml_cu_deviceptr va, uint64_t size, ml_cu_mem_handle h);

/* Before the real call (a handle value, like an address, may be handed out
 * again the moment the driver frees it): drops the references the call
 * will drop, forgetting handles left with none; u can put it all back. */
void ml_cu_vmm_release(ml_cu_mem_handle h, ml_cu_undo_t *u);
void ml_cu_vmm_unmap(ml_cu_deviceptr va, uint64_t size, ml_cu_undo_t *u);

/* Undoes one UNREF or UNMAP entry (ml_cu_rec_undo calls it). */
void ml_cu_vmm_undo(const ml_cu_undo_entry_t *e);

/* Mappings or handles left untracked because the table could not grow. */
extern _Atomic uint64_t ml_cu_vmm_table_full;

#endif
