/* unwind_env.h — what the unwinder's unit tests share: setting up capture
 * as init.c does (config, module registry, stack table, capture with the
 * fast unwinder and its rule service), the reference stack from libunwind,
 * and waiting for rules the way the library does (its own service, here
 * called directly instead of by the dumper thread).
 *
 * In a unit test "memledger's own code" is the test executable (the text
 * segment holding ml_capture_init), so the program frames to unwind live in
 * libml_unit_chain.so (chain.h). */
#ifndef ML_TEST_UNWIND_ENV_H
#define ML_TEST_UNWIND_ENV_H

#include "chain.h"
#include "common/config.h"
#include "core/ledger.h"
#include "core/modules.h"
#include "unwind/capture.h"
#include "unwind/unwind_fast.h"
#include "unwind/unwind_rules.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unwind_env_init(void)
{
    ml_config.depth = ML_DEFAULT_DEPTH;
    ml_config.unwind = ML_UNWIND_AUTO;
    ml_modules_init();
    if (!ml_ledger_init(ML_MIN_STACKS)) {
        fprintf(stderr, "ml_ledger_init failed\n");
        exit(1);
    }
    ml_capture_init();
}

/* The reference: libunwind's return addresses from here outward, with the
 * test executable's frames at the top left out (as capture leaves out
 * memledger's own). */
__attribute__((unused)) static unsigned reference_stack(uint64_t *words, unsigned max)
{
    uintptr_t pcs[ML_MAX_DEPTH + 32];
    unsigned n = ml_unwind_libunwind(pcs, ML_ARRAY_LEN(pcs)), skip = 0, k = 0;
    while (skip < n && ml_capture_is_self(pcs[skip]))
        skip++;
    for (unsigned i = skip; i < n && k < max; i++)
        words[k++] = pcs[i];
    return k;
}

/* The fast walk from the calling function's entry, with the rule service
 * run after each walk that met an address without a rule (it stepped that
 * frame by libunwind and recorded no checks; the dumper thread runs the
 * service in the library), until a walk needs no such step. Returns the
 * words, or ML_WALK_DEFER; *slow gets how many walks stepped by libunwind. */
__attribute__((unused)) static ML_NOINLINE unsigned walk_with_rules(ml_entry_t *e, uint64_t *words, unsigned max,
                                                                    ml_checks_t *checks, unsigned *slow)
{
    unsigned n = ML_WALK_DEFER;
    ml_checks_t own;
    if (!checks)
        checks = &own;
    *slow = 0;
    for (int round = 0; round < 64; round++) {
        if (!ml_unwind_entry(e))
            return ML_WALK_DEFER;
        n = ml_unwind_walk(e, words, max, checks);
        if (n != ML_WALK_DEFER && checks->n <= ML_CHECK_MAX)
            break;
        ++*slow;
        ml_unwind_rules_service();
    }
    return n;
}

/* The return address a word of the stack store stands for (core/ledger.h's
 * encoding: a module and an offset, or the address itself). */
__attribute__((unused)) static uint64_t word_pc(uint64_t w)
{
    if (ML_WORD_KIND(w) == ML_WORD_ABS)
        return ml_word_abs_pc(w);
    if (ML_WORD_KIND(w) != 0)
        return 0;
    return ml_modules_get((uint32_t)(w >> ML_WORD_MODULE_SHIFT) - 1)->bias + (w & ML_WORD_OFFSET_MASK);
}

/* Stack id's words in the store, as return addresses, into pcs[max]. */
__attribute__((unused)) static unsigned stack_pcs(uint32_t id, uint64_t *pcs, unsigned max)
{
    unsigned n = ml_ledger_stack_words(id, pcs, max);
    for (unsigned i = 0; i < n; i++)
        pcs[i] = word_pc(pcs[i]);
    return n;
}

/* The name of the function holding return address pc ("" if none). */
__attribute__((unused)) static const char *function_of(uint64_t pc)
{
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)(pc - 1), &info) || !info.dli_sname)
        return "";
    return info.dli_sname;
}

#endif
