/* inject.h — calling functions inside another running process through
 * ptrace(2): what `memledger attach` and `memledger detach` use to load
 * libmemledger.so into a program started without it, and to start or stop
 * it there. x86-64 only (elsewhere every call fails, saying so).
 * Owns: choosing a thread that waits in a system call, stopping it alone,
 * calling functions on it (its registers, vector state included, saved and
 * put back), and finding a function's address in a module the process has
 * loaded (/proc/PID/maps and the module's ELF symbol table).
 * Must never leave the process stopped or changed: every way out restores
 * the thread and detaches, and the signals that arrived for it meanwhile
 * are delivered after. While a call runs, SIGINT, SIGTERM, SIGHUP and
 * SIGQUIT are held off in this process: the traced thread returns to a
 * fault address that only the tracer may catch. Prints nothing: errors
 * come back as text. */
#ifndef ML_INJECT_H
#define ML_INJECT_H

#include "common/common.h"

typedef struct ml_inject ml_inject_t;

/* Stops one thread of `pid` that waits in a system call (the main thread
 * first), trying for up to `wait_ms` while none does. Returns NULL with
 * `err` set, and *eperm true when ptrace itself was refused. */
ml_inject_t *ml_inject_open(long pid, uint64_t wait_ms, bool *eperm, char *err, size_t cap);

/* The stopped thread's id. */
long ml_inject_tid(const ml_inject_t *in);

/* Maps the scratch area the calls use in the target (a stack, and room
 * for their data); ml_inject_call does it when needed. False with `err`. */
bool ml_inject_scratch(ml_inject_t *in, char *err, size_t cap);

/* Copies n bytes into the scratch area (ml_inject_scratch first); their
 * address in the target, or 0 when out of room or the write failed. Valid
 * until ml_inject_close. */
uint64_t ml_inject_push(ml_inject_t *in, const void *data, size_t n);

/* Calls fn(a0, a1, a2) on the stopped thread and waits for it to return
 * (`progress` is told, once, when that takes over 10 s). Its return value
 * goes into *ret. False with `err` set when the call went wrong (the
 * process ended, or faulted elsewhere than the return address). */
bool ml_inject_call(ml_inject_t *in, uint64_t fn, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t *ret,
                    void (*progress)(long pid), char *err, size_t cap);

/* Reads n bytes of the target's memory. */
bool ml_inject_read(ml_inject_t *in, uint64_t addr, void *buf, size_t n);

/* Puts the thread back as it was, detaches, and delivers what arrived for
 * it meanwhile. Frees `in`. */
void ml_inject_close(ml_inject_t *in);

/* The address of function `name` in the module mapped in `pid` from
 * `path` (as /proc/PID/maps names it): the load address from the maps
 * plus the symbol's value in the file's dynamic symbol table (the default
 * version where there are several). 0 when not found. */
uint64_t ml_remote_symbol(long pid, const char *path, const char *name);

/* The path of the first module mapped in `pid` whose file name (after the
 * last '/') starts with `prefix`; false when none. */
bool ml_remote_module(long pid, const char *prefix, char *out, size_t cap);

#endif
