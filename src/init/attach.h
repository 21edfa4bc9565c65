/* attach.h — starting the ledger in a process that is already running
 * (`memledger attach`), and ending it there again (`memledger detach`).
 * Owns: the two entry points the CLI calls inside the process through
 * ptrace (memledger_attach, memledger_detach); redirecting the program's
 * calls of the hooked functions by rewriting the GOT slots of every loaded
 * module, and of modules loaded later (a watcher thread); putting them
 * back.
 * Must never block or wait on the thread the CLI borrowed: it was stopped
 * wherever it was, and may hold a lock of the program's (the GIL, a
 * library's). What needs the GIL runs on the dumper thread (python.c). */
#ifndef ML_ATTACH_H
#define ML_ATTACH_H

#include "common/common.h"

/* A hooked function, by the name a module's relocations use. */
typedef struct {
    const char *name;
    void *hook;
    bool frees; /* patched first: a block the hooks recorded must never reach an unhooked free */
} ml_hook_t;

/* The shim's hooks (shim/malloc.c, shim/signal.c hand theirs over from
 * constructors that run before memledger's own). Up to 32 in all. */
void ml_attach_offer(const ml_hook_t *hooks, size_t n);

/* fork(): an attached child watches for new modules again. */
void ml_attach_after_fork_child(void);

/* The entry points (exported; only `memledger attach` and `detach` call
 * them, from a borrowed thread). `settings`: "MEMLEDGER_X=value" lines, in
 * place of the environment. A line of what happened goes into msg. Return
 * 0 or an errno value. */
int memledger_attach(const char *settings, char *msg, size_t cap);
int memledger_detach(char *msg, size_t cap);

/* In init.c: the start sequence attach shares with the constructor.
 * Returns false when tracking could not start (said on stderr). */
bool ml_start(bool attached);

#endif
