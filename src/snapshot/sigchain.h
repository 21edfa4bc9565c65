/* sigchain.h — the program's own handler for the snapshot signal.
 * Owns: what the program believes is installed for that one signal (the
 * disposition it had when memledger started, or whatever it has installed
 * since through sigaction, signal, bsd_signal, sysv_signal or sigset), and
 * calling that handler from memledger's, as the kernel would have.
 * The kernel keeps memledger's handler; the program's calls for the snapshot
 * signal are answered from here, so memledger stays first and chains.
 * Must never lock or allocate: sigaction is async-signal-safe, so what
 * stands in for it is too, and the chained call runs inside a handler. */
#ifndef ML_SIGCHAIN_H
#define ML_SIGCHAIN_H

#include "common/common.h"
#include <signal.h>

/* Resolves the next sigaction in line. Call once early (the constructor);
 * later calls are no-ops. */
void ml_sigchain_init(void);

/* The next sigaction in line (glibc's, or another interposer's): what
 * memledger itself uses, and what every other signal goes to. */
int ml_sigaction_next(int sig, const struct sigaction *act, struct sigaction *oact);

/* From now on answers for `sig`, with `prev` as the program's disposition. */
void ml_sigchain_own(int sig, const struct sigaction *prev);

/* Gives `sig` back: the program's disposition goes into the kernel, and
 * sigaction answers for it from the kernel again (`memledger detach`). */
void ml_sigchain_release(int sig);

/* True when sig is the one answered for here. */
bool ml_sigchain_owns(int sig);

/* For an owned sig: puts the program's view into *oact (when not NULL) and
 * makes *act (when not NULL) the program's new disposition. */
void ml_sigchain_swap(int sig, const struct sigaction *act, struct sigaction *oact);

/* Runs the program's handler for sig from inside memledger's: with the
 * program's sa_mask (and sig itself unless SA_NODEFER) blocked, honouring
 * SA_RESETHAND and SA_SIGINFO. SIG_DFL and SIG_IGN run nothing: the
 * default action of the snapshot signal would end the process. */
void ml_sigchain_call(int sig, siginfo_t *info, void *uctx);

#endif
