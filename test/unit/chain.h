/* chain.h — the call chain of chain.c (a shared library of its own: see
 * there why). chain_run calls fn(arg) below depth + 3 frames of it. */
#ifndef ML_TEST_CHAIN_H
#define ML_TEST_CHAIN_H

typedef unsigned (*chain_fn)(void *arg);
unsigned chain_run(chain_fn fn, void *arg, unsigned depth, unsigned alloca_bytes);
unsigned chain_rec(chain_fn fn, void *arg, unsigned depth, unsigned bytes);
unsigned chain_alloca(chain_fn fn, void *arg, unsigned bytes);
unsigned chain_leaf(chain_fn fn, void *arg);

#endif
