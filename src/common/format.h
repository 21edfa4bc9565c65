/* format.h — the snapshot format, defined once for the writer (in the
 * library) and the reader (in the CLI): version, record names, domains.
 * docs/format.md is the prose for what is declared here. Must never hold
 * code: constants only, so both sides agree by construction. */
#ifndef ML_FORMAT_H
#define ML_FORMAT_H

#define ML_FORMAT_MAGIC   "memledger-snapshot"
#define ML_FORMAT_VERSION 2
#define ML_SNAPSHOT_EXT   "snap"
/* Snapshot files are memledger.<pid>.<seq>.snap; a <seq> past this is no
 * writer's, and readers looking for "the newest" ignore it. */
#define ML_SEQ_MAX        1000000000u

/* Allocation domains. The names are the snapshot's and --domain's; a name
 * with a dot is a sub-kind, and a prefix selects all of its sub-kinds. */
enum ml_domain {
    ML_DOM_MALLOC,        /* native heap: the malloc family */
    ML_DOM_PYTHON,        /* CPython PyMem RAW/MEM/OBJ domains */
    ML_DOM_CUDA,          /* device memory: cuMemAlloc and friends */
    ML_DOM_CUDA_MANAGED,  /* cuMemAllocManaged */
    ML_DOM_CUDA_HOST,     /* pinned host memory: cuMemHostAlloc, cuMemAllocHost */
    ML_DOM_CUDA_VMM,      /* physical handles: cuMemCreate */
    ML_DOM_COUNT
};

#define ML_DOMAIN_NAMES { "malloc", "python", "cuda", "cuda.managed", "cuda.host", "cuda.vmm" }

/* `memledger why` (docs/why.md): three files in the target's MEMLEDGER_DIR,
 * each written under a temporary name and renamed, mode 0600.
 *   memledger.<pid>.why-request   the CLI asks: the next snapshot starts a search
 *   memledger.<pid>.<seq>.why-select  the CLI names the stacks of snapshot <seq>
 *                                 (their places in it) to explain
 *   memledger.<pid>.<seq>.why     the target's answer
 * Each starts with its magic and ML_WHY_VERSION, tab-separated. */
#define ML_WHY_VERSION        1
#define ML_WHY_REQUEST_MAGIC  "memledger-why-request"
#define ML_WHY_SELECT_MAGIC   "memledger-why-select"
#define ML_WHY_RESULT_MAGIC   "memledger-why"
#define ML_WHY_REQUEST_SUFFIX "why-request"
#define ML_WHY_SELECT_SUFFIX  "why-select"
#define ML_WHY_RESULT_SUFFIX  "why"
#define ML_WHY_MAX_SAMPLES    16   /* blocks sampled per stack, at most */
#define ML_WHY_MAX_STACKS     64   /* stacks one search explains, at most */

#endif
