/* stackset.h — stacks from any number of snapshots, matched by an identity
 * that does not depend on load addresses, so two different processes (a
 * base build and a PR build) can be compared.
 * Owns: frame identity (native: module build-id, or path when it has none,
 * plus offset; Python: file, function, line), stack identity (domain plus
 * frame identities), and the per-snapshot totals of each stack, with
 * duplicate entries of one snapshot summed. Never reads files, and keeps
 * nothing that points into a snapshot: a snapshot may be freed once added
 * (`memledger watch` keeps one in memory at a time). */
#ifndef ML_STACKSET_H
#define ML_STACKSET_H

#include "cli/snapshot_read.h"

/* A function inlined at a native frame's address (demangled, as frames). */
typedef struct {
    const char *function; /* NULL unknown */
    const char *file;     /* NULL unknown */
    int line;             /* 0 unknown */
} ml_sinlined_t;

typedef struct {
    enum ml_frame_kind kind;
    const char *function; /* demangled when it was a C++ symbol; NULL unknown */
    const char *file;     /* NULL unknown */
    int line;             /* 0 unknown */
    const char *module;   /* module path; NULL for Python frames and unknown */
    const char *build_id; /* NULL when none */
    const char *cython;   /* native: module.function of a Cython-generated function; else NULL */
    uint64_t offset;      /* native: offset in the module */
    /* Native: the functions inlined at the address, innermost first, as
     * the first snapshot that named the frame said (they are names, not
     * identity: the frame is still module and offset). The last was
     * inlined into `function`, at file:line. */
    uint32_t ninlined;
    const ml_sinlined_t *inlined;
    bool is_inlined;      /* a view made by ml_sframe_inlined: one inlined function */
} ml_sframe_t;

/* Inlined function k of frame f (k < f->ninlined) as a frame of its own
 * into *view, which it returns: its name and line, f's module and offset, is_inlined set.
 * The view points into f. Wherever a stack is shown, each frame stands as
 * its inlined functions, innermost first, then itself. */
const ml_sframe_t *ml_sframe_inlined(const ml_sframe_t *f, uint32_t k, ml_sframe_t *view);

typedef struct {
    int domain;
    uint32_t nframes;
    uint32_t *frames;     /* frame uids, innermost first */
    uint32_t node;        /* its leaf in the set's own call tree (0: no frames) */
} ml_sstack_t;

typedef struct {
    int64_t live_bytes, live_count, total_bytes, total_count;
    bool present;
} ml_sval_t;

typedef struct ml_stackset ml_stackset_t;

/* Figures are summed with this: it stops at INT64_MAX (or INT64_MIN)
 * rather than wrapping, so a hostile file cannot overflow a total. */
static inline int64_t ml_sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

ml_stackset_t *ml_stackset_new(void);
void ml_stackset_free(ml_stackset_t *set);

/* Adds a snapshot; the set copies what it needs, so the snapshot may be
 * freed afterwards. Returns its index, or -1 when out of memory. */
int ml_stackset_add(ml_stackset_t *set, const ml_snapshot_t *snap);
/* The same, and the uid of each of snap's stacks into uids[snap->nstacks]
 * (several of a snapshot's stacks may have one uid: `memledger why` names a
 * stack to the process by all of its places). */
int ml_stackset_add_mapped(ml_stackset_t *set, const ml_snapshot_t *snap, uint32_t *uids);

/* Adds a snapshot's figures into slot `slot` (an earlier snapshot's, or
 * nsnapshots for a new one): a slot so made is the sum of several
 * snapshots, as when the workers of a pre-fork server are taken together.
 * Returns the slot, or -1 when out of memory or past the end. */
int ml_stackset_add_into(ml_stackset_t *set, const ml_snapshot_t *snap, size_t slot);

/* Frees the per-stack totals of snapshot `snap`; it then reads as absent.
 * For long watches, which need only the first and the latest in full. */
void ml_stackset_drop_values(ml_stackset_t *set, size_t snap);

size_t ml_stackset_nsnapshots(const ml_stackset_t *set);
size_t ml_stackset_nstacks(const ml_stackset_t *set);
size_t ml_stackset_nframes(const ml_stackset_t *set);
/* Stack `uid`, its frames included. Its frames are written out of the
 * set's tree the first time it is asked for (most stacks of a large diff
 * never are), so the set is not to be read from two threads at once. */
const ml_sstack_t *ml_stackset_stack(const ml_stackset_t *set, uint32_t uid);
/* Its domain alone, without writing out its frames. */
int ml_stackset_domain(const ml_stackset_t *set, uint32_t uid);
const ml_sframe_t *ml_stackset_frame(const ml_stackset_t *set, uint32_t uid);
/* The totals of stack `uid` in snapshot `snap` (zero, present=false, when absent). */
ml_sval_t ml_stackset_value(const ml_stackset_t *set, size_t snap, uint32_t uid);

#endif
