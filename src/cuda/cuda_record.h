/* cuda_record.h — what a CUDA allocation or free does to the ledger,
 * whoever saw it: the wrapped entry points (the handlers of the allocating
 * families of cuda_entries.def, declared in cuda_entry.h and called by
 * shim/cuda.c and cuda_wrappers.c with the real function to call) or
 * CUPTI (cupti_backend.c).
 * Owns: the address tables for device pointers and for arrays, the undo
 * log that puts back what a free forgot when the driver then refuses the
 * free, and the handlers. Physical VMM handles are cuda_vmm.c's.
 * Must never fail or change a driver call: the real function always runs
 * with the caller's arguments and its result is returned unchanged. */
#ifndef ML_CUDA_RECORD_H
#define ML_CUDA_RECORD_H

#include "core/addrtab.h"
#include "cuda/cuda_api.h"
#include "core/track.h"

/* Device, managed and pinned host pointers share one table: under unified
 * addressing they are one address space, and apart from the heap's. */
extern ml_addrtab_t ml_cuda_ptrs;
extern ml_addrtab_t ml_cuda_arrays; /* CUarray handles */

/* Registers the tables (on first contact with the driver, so a process
 * that never uses CUDA keeps none). */
void ml_cuda_record_init(void);

/* What a free-like call removed before the real call, so that it can be
 * put back if the driver refuses the call. Entries undo in reverse. */
enum ml_cu_undo_op { ML_CU_UNDO_RECORD, ML_CU_UNDO_UNREF, ML_CU_UNDO_UNMAP };
typedef struct {
    uint8_t op;
    uint32_t id;
    ml_addrtab_t *t;
    uint64_t key, a, size;
} ml_cu_undo_entry_t;
#define ML_CU_UNDO_MAX 12
typedef struct {
    unsigned n;
    ml_cu_undo_entry_t e[ML_CU_UNDO_MAX];
} ml_cu_undo_t;

/* Appends to an undo log; an entry past ML_CU_UNDO_MAX is dropped (only
 * an unmap spanning many mappings gets there). */
void ml_cu_undo_push(ml_cu_undo_t *u, ml_cu_undo_entry_t e);

/* Events. The caller holds the thread's guard (ml_enter). */
void ml_cu_rec_alloc(unsigned domain, ml_addrtab_t *t, uint64_t key, uint64_t size, ml_stack_fn stack);
void ml_cu_rec_free(ml_addrtab_t *t, uint64_t key, ml_cu_undo_t *u);
/* Puts back everything u removed (the driver refused the free). */
void ml_cu_rec_undo(ml_cu_undo_t *u);
/* The real call succeeded: what the log forgot stays forgotten. */
void ml_cu_rec_keep(ml_cu_undo_t *u);

/* Nominal bytes of an array: width x height x depth x channels x element
 * size; 0 for formats without a plain element size (not recorded). */
uint64_t ml_cu_array_bytes(const ml_cu_array_desc *d);
uint64_t ml_cu_array3d_bytes(const ml_cu_array3d_desc *d);

#endif
