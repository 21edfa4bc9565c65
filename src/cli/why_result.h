/* why_result.h — the answer a process under the ledger writes for
 * `memledger why` (memledger.<pid>.<seq>.why, docs/why.md), read into
 * memory. Owns parsing and checking it, and the file's vocabulary (root
 * kinds, hop kinds). Must never trust the file: anything malformed is an
 * error that names the file and line. */
#ifndef ML_WHY_RESULT_H
#define ML_WHY_RESULT_H

#include "common/common.h"

#include <stddef.h>

typedef struct {
    bool native;       /* a native hop: `type` holds a pointer at `off` into the next block */
    char *type, *via, *name, *func;
    uint64_t off, size;
    char *domain;
} ml_why_rhop_t;

typedef struct {
    uint64_t addr, size;
    char *domain;
    char *kind;        /* unknown, global, local, external, unreachable, native, none */
    char *a, *b, *c, *type;
    long line;         /* native: the offset past the symbol (or module start) */
    ml_why_rhop_t *hops;
    size_t nhops;
    uint64_t elided;   /* hops left out before hops[elided_at] */
    size_t elided_at;
    char *object;      /* the type of the object the block is, NULL when it is none */
} ml_why_rsample_t;

typedef struct {
    uint32_t slot;
    uint64_t live_blocks;
    ml_why_rsample_t *samples;
    size_t nsamples;
} ml_why_rstack_t;

typedef struct {
    char *token;
    long pid, seq;
    char *error;              /* the process refused (another search running, ...) */
    char *py_version, *why_not;
    bool searched, has_gc;
    int gc_enabled, gc_count[3];
    uint64_t gil_wait_us, pause_us, run_us, scan_us;
    uint64_t objects, visited, blocks_seen, blocks_scanned, bytes_scanned, read_failures;
    unsigned levels;
    char **stopped;
    size_t nstopped;
    ml_why_rstack_t *stacks;
    size_t nstacks;
} ml_why_result_t;

/* Reads `path`. Returns NULL and writes "PATH:LINE: what is wrong" into
 * err on any problem. */
ml_why_result_t *ml_why_result_load(const char *path, char *err, size_t errcap);
void ml_why_result_free(ml_why_result_t *r);

/* The stack for slot `slot`, NULL when the answer has none. */
const ml_why_rstack_t *ml_why_result_stack(const ml_why_result_t *r, uint32_t slot);

#endif
