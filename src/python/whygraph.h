/* whygraph.h — `memledger why`'s Python half: from a block to the object
 * it is (or the object that owns it), and from that object to a root.
 * Owns: taking the GIL from the library's own thread (PyGILState_Ensure),
 * listing the objects the garbage collector tracks (its generation lists),
 * walking references with each type's tp_traverse (as gc does), the search
 * for a root (module globals first, then the threads' local variables,
 * then what is held from outside the object graph, and last the
 * unreachable cycles gc has not collected), naming each hop (attribute,
 * dict key, index, closure cell), and the pause that costs the program.
 * Must never call Python code of any kind: no __repr__, __eq__, __hash__,
 * __getattr__, descriptor or finalizer (dicts are read with PyDict_Next,
 * keys shown only for str, int, bytes, float, bool and None), never make a
 * Python object that gc tracks (that could start a collection), never keep
 * a reference (no Py_INCREF anywhere), and never hold the GIL past the
 * pause limit. */
#ifndef ML_WHYGRAPH_H
#define ML_WHYGRAPH_H

#include "python/whyheap.h"

enum ml_why_root_kind {
    ML_WHY_ROOT_UNKNOWN,     /* not found: a limit ran out, or Python could not be searched */
    ML_WHY_ROOT_GLOBAL,      /* a module's global: a = module, b = name */
    ML_WHY_ROOT_LOCAL,       /* a thread's local variable: a = file, b = function, c = name, line */
    ML_WHY_ROOT_EXTERNAL,    /* referenced from outside the object graph (C code, the interpreter) */
    ML_WHY_ROOT_UNREACHABLE, /* in a reference cycle gc has not collected */
    ML_WHY_ROOT_NATIVE,      /* a native global: a = module path, b = symbol, off */
    ML_WHY_ROOT_NONE,        /* nothing tracked points at it */
};

#define ML_WHY_HOP_TEXT 112

typedef struct {
    char type[64];              /* the holder's type */
    char via[20];               /* how it holds: global, attribute, key, index, closure, ... */
    char name[ML_WHY_HOP_TEXT]; /* the attribute, key (short repr), index, variable, offset */
    char func[ML_WHY_HOP_TEXT]; /* closure: the function's qualified name */
} ml_why_hop_t;

#define ML_WHY_MAX_HOPS 24      /* the first and last 12 of a longer path, and how many between */

typedef struct {
    int kind;                   /* enum ml_why_root_kind */
    char a[256], b[160], c[ML_WHY_HOP_TEXT];
    int line;
    uint64_t off;
    char type[64];              /* EXTERNAL: the type of the object held from outside */
    ml_why_hop_t hops[ML_WHY_MAX_HOPS];
    unsigned nhops;
    unsigned elided_at;         /* hops left out come before hops[elided_at] */
    uint64_t elided;
    int32_t node;               /* the whyheap node the path ends at (its block is, or holds, the object) */
    char object[64];            /* the type of the object at the end of the path, "" when none */
} ml_why_path_t;

typedef struct {
    bool searched;              /* the graph was walked (with the GIL) */
    char why_not[160];          /* when not */
    char version[48];
    int gc_enabled, gc_count[3];
    uint64_t objects;           /* objects gc tracks */
    uint64_t visited;           /* objects whose references were walked */
    uint64_t gil_wait_ns, pause_ns;
    char stopped[160];          /* a limit that cut the search short, "" when none */
} ml_why_graph_stats_t;

/* Finds a path for each sample of `h` (paths[h->nsamples]): samples are
 * resolved by the object they are, or else by the nearest Python object
 * on their chain of native holders. Takes the GIL for at most
 * `max_pause_ns`, and starts no later than `deadline_ns`. Without a
 * usable interpreter, paths stay UNKNOWN and stats say why. */
void ml_whygraph_run(const ml_why_heap_t *h, ml_why_path_t *paths, uint64_t max_pause_ns, uint64_t deadline_ns,
                     ml_why_graph_stats_t *stats);

#endif
