/* whyheap.h — `memledger why`'s native half: which live blocks to explain,
 * and which blocks (or module globals) hold pointers to them.
 * Owns: sampling live blocks of chosen stacks from the heap address table
 * (core/addrtab.h), reading memory that another thread may free at any
 * moment without faulting (process_vm_readv on the process itself), and
 * the conservative scan that, level by level, finds the blocks whose
 * words point at a block of interest: a tensor's data is pointed at by its
 * StorageImpl, which its TensorImpl points at, which the Python object
 * points at. Needs no GIL and calls no Python code: it runs before
 * whygraph.c takes the GIL, so Python threads keep running meanwhile.
 * Must never dereference a block it has not read safely, never run in a
 * hook, and never allocate through the hooked allocator (its thread is
 * the library's own, so what it allocates passes untracked; big tables
 * come from core/sysmem.h). */
#ifndef ML_WHYHEAP_H
#define ML_WHYHEAP_H

#include "common/common.h"

#define ML_WHY_LEVELS 4        /* native hops followed from a sample */
#define ML_WHY_HOLDERS 4       /* holders kept per block of interest */
#define ML_WHY_SCAN_BYTES 4096 /* bytes of each block read for pointers */
#define ML_WHY_MAX_NODES 8192  /* samples and holders in all */

/* A block of interest: a sampled block (level 0), or a block found to hold
 * a pointer into one (level >= 1; `child` is that one, `off` where the
 * pointer sits in this block). */
typedef struct {
    uint64_t addr, size;
    uint32_t id;           /* its stack in the ledger */
    uint8_t domain;        /* ML_DOM_* */
    uint8_t level;
    uint8_t nholders;      /* holders found for it */
    uint8_t nroots;        /* module globals found pointing at it */
    int32_t child;         /* -1 for a sample */
    uint32_t sample;       /* the sample this chain explains */
    uint32_t slot;         /* that sample's stack slot (ml_whyheap_sample) */
    uint32_t off;
    uint32_t next_same;    /* another node with the same address (scan hash), or UINT32_MAX */
    uintptr_t root_at;     /* the first module-global word found pointing at it, 0: none */
} ml_why_node_t;

typedef struct {
    ml_why_node_t *nodes;  /* samples first, in the order of their stacks */
    uint32_t n, cap;
    uint32_t nsamples;
    uint64_t blocks_seen;  /* live blocks in the table during sampling */
    uint64_t blocks_scanned, bytes_scanned, segments_scanned;
    uint64_t read_failures; /* blocks freed (unmapped) while being read */
    unsigned levels;       /* scan passes done */
    bool stopped;          /* the time limit cut the scan short */
} ml_why_heap_t;

/* Stacks to sample: ids[n] (a stack may appear more than once: its places
 * in a snapshot), each with its caller's slot (0 .. nslots-1). Takes up to
 * `per` random live blocks of each slot; live[slot] gets the slot's live
 * blocks. Returns false when out of memory. */
bool ml_whyheap_sample(ml_why_heap_t *h, const uint32_t *ids, const uint32_t *slot, size_t n, uint32_t nslots,
                       unsigned per, uint64_t *live);

/* Scans the heap and the modules' writable data for pointers into the
 * nodes, up to ML_WHY_LEVELS levels, until `deadline_ns` (CLOCK_MONOTONIC).
 * Returns false when out of memory. */
bool ml_whyheap_scan(ml_why_heap_t *h, uint64_t deadline_ns);

/* Copies len bytes at addr into out without faulting; false when any of
 * it is not mapped. */
bool ml_why_read(uintptr_t addr, void *out, size_t len);

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t ml_why_now_ns(void);

void ml_whyheap_free(ml_why_heap_t *h);

#endif
