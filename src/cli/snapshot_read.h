/* snapshot_read.h — loading a snapshot file into memory, for the CLI.
 * Owns: parsing and validating the format of format.h / docs/format.md:
 * version 2 (gzip-compressed, stacks as paths in a tree of nodes) and
 * version 1 (plain text, each stack its list of frames). A version 1
 * stack is its list of frames, innermost first; a version 2 stack is its
 * leaf node, and its frames the path from there to the root: the tree is
 * kept as read (a large snapshot's stacks share most of their frames, and
 * readers match them node by node).
 * Must never crash or trust the file: a malformed, truncated or hostile
 * snapshot is an error naming the file and line, nothing else. */
#ifndef ML_SNAPSHOT_READ_H
#define ML_SNAPSHOT_READ_H

#include "common/common.h"
#include "common/format.h"

#include <stdio.h>

typedef struct {
    uint32_t index;
    char *build_id;        /* hex, NULL when the module had none */
    uint64_t bias, size;
    bool unloaded;
    char *path;
} ml_rmodule_t;

enum ml_frame_kind { ML_FRAME_NATIVE, ML_FRAME_PYTHON };

/* A function inlined at a native frame's address (an `inline` record). */
typedef struct {
    char *function;        /* NULL when unknown; mangled as in the file */
    char *file;            /* NULL when unknown */
    int line;              /* 0 when unknown */
} ml_rinlined_t;

typedef struct {
    enum ml_frame_kind kind;
    int32_t module;        /* index into modules[], -1 when none */
    uint64_t offset;       /* native: offset in the module, or the address */
    char *function;        /* NULL when unknown */
    char *file;            /* NULL when unknown */
    int line;              /* 0 when unknown */
    bool mark;             /* a `mark` (a note such as "[49 Python frames elided]"): kind native,
                              no module, told apart from other marks by its text */
    uint32_t ninlined;     /* native: the functions inlined at the address, innermost first; */
    ml_rinlined_t *inlined;/* the last was inlined into `function` at file:line */
} ml_rframe_t;

typedef struct {
    uint32_t id;
    int domain;            /* index into the domain names */
    int64_t live_bytes, live_count, total_bytes, total_count;
    uint32_t nframes;      /* its depth */
    uint32_t *frames;      /* version 1: indexes into frames[], innermost first; else NULL */
    uint32_t node;         /* version 2: its leaf node (0: no frames) */
} ml_rstack_t;

typedef struct {
    char *key, *value;     /* the raw line after the key (fields tab-separated) */
} ml_rheader_t;

typedef struct {
    char *path;
    int version;
    long pid, ppid;
    char *exe;
    char *cmdline;         /* arguments joined by spaces, for display */
    double time;
    long seq;
    char *trigger;
    uint64_t rss, peak_rss, sample_bytes;
    uint64_t stacks_used, stacks_capacity, stacks_overflowed;
    uint64_t stacks_degraded; /* version 2's store line: stacks kept smaller */
    int64_t domain_live_bytes[ML_DOM_COUNT], domain_live_count[ML_DOM_COUNT];
    int64_t domain_total_bytes[ML_DOM_COUNT], domain_total_count[ML_DOM_COUNT];
    ml_rheader_t *headers; /* every header line, known or not */
    size_t nheaders;
    ml_rmodule_t *modules;
    size_t nmodules;
    ml_rframe_t *frames;
    size_t nframes;
    ml_rstack_t *stacks;
    size_t nstacks;
    /* version 2's tree: node i (1..nnodes) is frame node_frame[i] called
     * from node node_parent[i], which comes before it; node 0 is the root.
     * NULL for version 1. */
    uint32_t *node_parent, *node_frame;
    size_t nnodes;
} ml_snapshot_t;

/* Loads `path`. Returns NULL and writes "PATH:LINE: what is wrong" into err
 * on any problem. */
ml_snapshot_t *ml_snapshot_load(const char *path, char *err, size_t errcap);
/* The same from an open stream (the fuzzer reads from memory); `path` names
 * it in errors. The stream is left open. */
ml_snapshot_t *ml_snapshot_read(FILE *fp, const char *path, char *err, size_t errcap);
void ml_snapshot_free(ml_snapshot_t *s);

/* Stack st's frames (indexes into s->frames[]), innermost first, into
 * out[0..st->nframes), whichever version it was read from. */
void ml_snapshot_stack_frames(const ml_snapshot_t *s, const ml_rstack_t *st, uint32_t *out);

/* Domain name <-> index (format.h's list); -1 when unknown. */
int ml_domain_index(const char *name);

/* The field readers of the format's text records, for other files in the
 * same format (why's answers): a field with ml_out_field's escaping undone
 * ("-" alone is NULL; false on a bad escape; the result is a fresh
 * string), and an unsigned number in `base` with nothing else around it. */
bool ml_field_unescape(const char *s, char **out);
bool ml_field_u64(const char *s, uint64_t *v, int base);
const char *ml_domain_name(int index);
/* True when `domain` is selected by `filter` ("cuda" selects cuda.*). */
bool ml_domain_matches(int domain, const char *filter);
/* True when `filter` names a domain or a prefix of some. */
bool ml_domain_filter_valid(const char *filter);

/* Value of a header line, NULL when absent. */
const char *ml_snapshot_header(const ml_snapshot_t *s, const char *key);

#endif
