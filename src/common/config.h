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
    uint32_t stacks;           /* MEMLEDGER_STACKS, the stack store's ceiling */
    bool at_exit;              /* MEMLEDGER_AT_EXIT */
    uint64_t exit_stall_ms;    /* MEMLEDGER_EXIT_STALL: how long exit waits for a write that stopped moving */
    uint64_t interval_ms;      /* MEMLEDGER_INTERVAL, 0 = off */
    enum ml_unwind_kind unwind;/* MEMLEDGER_UNWIND */
    bool redact_cmdline;       /* MEMLEDGER_REDACT_CMDLINE */
    bool python;               /* MEMLEDGER_PYTHON: PyMem hooks and Python frames */
    enum ml_cuda_mode cuda;    /* MEMLEDGER_CUDA */
} ml_config_t;

#define ML_DEFAULT_DEPTH 256 /* native frames: whole stacks, so stacks of one path share their outer frames in the store */
#define ML_MAX_DEPTH 256
/* The stack store's ceiling: stacks held at once (live, or seen since the
 * store last collected). Memory follows what is held, not the ceiling. */
#define ML_DEFAULT_STACKS (1u << 22)
#define ML_MIN_STACKS 1024u
#define ML_MAX_STACKS 16000000u /* ids are 24 bits in the address table */
/* At exit, a snapshot in flight is waited for as long as it makes progress;
 * this long without any and exit goes on without it. */
#define ML_DEFAULT_EXIT_STALL_MS 20000u
#define ML_MIN_EXIT_STALL_MS 1000u

extern ml_config_t ml_config;

/* Reads the environment into ml_config. Safe to call before the allocator
 * is resolved: uses getenv and the io.h formatter only. */
void ml_config_load(void);

/* The same from "NAME=value" lines (newline-separated) in place of the
 * environment: what `memledger attach` hands a running process. */
void ml_config_load_settings(const char *settings);

/* Parses a signal given as a number, "USR2" or "SIGUSR2"; 0 for "0"/"off"/"none".
 * Returns false when it is not a signal a program may catch. */
bool ml_parse_signal(const char *s, int *out);

#endif
