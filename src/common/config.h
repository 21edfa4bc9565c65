/* config.h — the library's settings, read once from MEMLEDGER_* variables.
 * Owns: parsing, defaults, and the one-line complaint about a bad value.
 * Must never allocate or abort: a bad value means the default (or tracking
 * off), one clear line on stderr, and the program runs on. */
#ifndef ML_CONFIG_H
#define ML_CONFIG_H

#include "common/common.h"
#include <limits.h>

enum ml_unwind_kind { ML_UNWIND_AUTO, ML_UNWIND_FP, ML_UNWIND_LIBUNWIND };
/* MEMLEDGER_CUDA: how CUDA allocations are seen (docs/cuda.md). */
enum ml_cuda_mode { ML_CUDA_AUTO, ML_CUDA_HOOKS, ML_CUDA_CUPTI, ML_CUDA_OFF };

typedef struct {
    bool enabled;              /* MEMLEDGER_ENABLE, default on */
    char dir[PATH_MAX];        /* MEMLEDGER_DIR, made absolute at start */
    int signal;                /* MEMLEDGER_SIGNAL, default SIGUSR2, 0 = none */
    uint64_t sample_bytes;     /* MEMLEDGER_SAMPLE_BYTES, 0 = every allocation */
    unsigned depth;            /* MEMLEDGER_DEPTH, native frames per stack */
    uint32_t stacks;           /* MEMLEDGER_STACKS, capacity of the stack table */
    bool at_exit;              /* MEMLEDGER_AT_EXIT */
    uint64_t interval_ms;      /* MEMLEDGER_INTERVAL, 0 = off */
    enum ml_unwind_kind unwind;/* MEMLEDGER_UNWIND */
    bool redact_cmdline;       /* MEMLEDGER_REDACT_CMDLINE */
    bool python;               /* MEMLEDGER_PYTHON: PyMem hooks and Python frames */
    enum ml_cuda_mode cuda;    /* MEMLEDGER_CUDA */
} ml_config_t;

#define ML_DEFAULT_DEPTH 64
#define ML_MAX_DEPTH 256
#define ML_DEFAULT_STACKS (1u << 18)
#define ML_MIN_STACKS 1024u
#define ML_MAX_STACKS 16000000u /* ids are 24 bits in the stack table */

extern ml_config_t ml_config;

/* Reads the environment into ml_config. Safe to call before the allocator
 * is resolved: uses getenv and the io.h formatter only. */
void ml_config_load(void);

/* Parses a signal given as a number, "USR2" or "SIGUSR2"; 0 for "0"/"off"/"none".
 * Returns false when it is not a signal a program may catch. */
bool ml_parse_signal(const char *s, int *out);

#endif
