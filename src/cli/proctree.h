/* proctree.h — a process and its descendants, as /proc shows them: what
 * `memledger snapshot --tree` and `memledger attach --tree` walk.
 * Owns: reading /proc/PID/stat (parent, start time) and cmdline. Must
 * never signal or trace anything: it only reads. */
#ifndef ML_PROCTREE_H
#define ML_PROCTREE_H

#include "common/common.h"

typedef struct {
    long pid, ppid;
    unsigned long long start; /* clock ticks after boot (/proc/PID/stat field 22) */
    unsigned depth;           /* 0: the root */
    char *cmdline;            /* arguments joined by spaces ("" when unreadable) */
} ml_proc_t;

/* `root` and every descendant of it, the root first, then level by level,
 * each level in order of start time. NULL with *n 0 when root does not
 * exist (errno says why) or out of memory. */
ml_proc_t *ml_proctree(long root, size_t *n);
void ml_proctree_free(ml_proc_t *p, size_t n);

/* Reads /proc/PID/stat's parent and start time; false when gone. */
bool ml_proc_stat(long pid, long *ppid, unsigned long long *start);

/* The command line, arguments joined by spaces and cut at `cap`. */
char *ml_proc_cmdline(long pid, char *buf, size_t cap);

#endif
