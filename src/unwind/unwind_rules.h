/* unwind_rules.h — how to step from a frame to its caller, per return
 * address, for the fast unwinder.
 * Owns: an insert-only map from return address to a packed x86-64 unwind
 * rule (CFA = RSP or RBP + offset; where the caller's RBP was saved), the
 * set of return addresses the unwinder missed, and the background service
 * that turns those misses into rules with elfutils' CFI reader.
 * The hot path reads the map. On a miss (a return address seen for the
 * first time: not the common case) it computes the rule right there when
 * no other thread is computing one (ml_unwind_rules_now: a trylock; libdw
 * then reads the CFI, at about a microsecond a rule, and its allocations
 * pass through the hooks untracked, since the thread is inside memledger);
 * otherwise it drops the address into the pending set (one CAS) for the
 * service on memledger's own thread. Must never wait for a lock or for the
 * loader on the hot path. */
#ifndef ML_UNWIND_RULES_H
#define ML_UNWIND_RULES_H

#include "common/common.h"
#include <stdatomic.h>

/* A rule, packed in 64 bits:
 *   bits 0-1   kind (below)
 *   bits 2-33  CFA offset, signed
 *   bits 34-41 where the caller's RBP was saved, in 8-byte units from the
 *              CFA, signed; 0 means RBP is unchanged
 * The return address is always at CFA - 8 (rules where it is not are
 * ML_RULE_UNKNOWN). */
enum {
    ML_RULE_UNKNOWN = 0,   /* no usable rule: the unwinder falls back */
    ML_RULE_RSP = 1,       /* CFA = RSP + offset */
    ML_RULE_RBP = 2,       /* CFA = RBP + offset */
    ML_RULE_OUTERMOST = 3, /* the return address is undefined: stack ends here */
};

static inline unsigned ml_rule_kind(uint64_t r) { return (unsigned)(r & 3); }
static inline int32_t ml_rule_cfa_off(uint64_t r) { return (int32_t)(uint32_t)(r >> 2); }
static inline int64_t ml_rule_rbp_off(uint64_t r) { return (int64_t)(int8_t)(uint8_t)(r >> 34) * 8; }

static inline uint64_t ml_rule_make(unsigned kind, int32_t cfa_off, int rbp_slots)
{
    return (uint64_t)kind | ((uint64_t)(uint32_t)cfa_off << 2) | ((uint64_t)(uint8_t)(int8_t)rbp_slots << 34);
}

/* The map: open addressing, linear probing, insert-only, one writer (the
 * service). A reader that sees a key sees its rule: the rule is stored
 * before the key is published. The map grows by being replaced with a
 * larger copy; its mask travels with it, so a reader always indexes the
 * slots of the map it loaded. */
typedef struct {
    _Atomic uint64_t key; /* return address; 0 empty */
    uint64_t rule;
} ml_rule_slot_t;

typedef struct {
    uint64_t mask;
    uint64_t pad;
    ml_rule_slot_t slot[];
} ml_rule_map_t;

extern ml_rule_map_t *_Atomic ml_rules;

/* Sets up the map and the pending set. Returns false on error (the fast
 * unwinder then stays off). */
bool ml_unwind_rules_init(void);

static inline uint64_t ml_rule_hash(uint64_t pc) { return (pc * 0x9e3779b97f4a7c15ull) >> 20; }

/* Looks up the rule for return address pc. Returns true and the rule when
 * known (possibly ML_RULE_UNKNOWN, a known failure); false when not yet
 * computed. Wait-free. */
static inline bool ml_rule_find(uint64_t pc, uint64_t *rule)
{
    ml_rule_map_t *map = atomic_load_explicit(&ml_rules, memory_order_acquire);
    for (uint64_t i = ml_rule_hash(pc);; i++) {
        ml_rule_slot_t *s = &map->slot[i & map->mask];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == pc) {
            *rule = s->rule;
            return true;
        }
        if (k == 0)
            return false;
    }
}

/* Bumped whenever the rules are thrown away (a library was unloaded, and
 * another may take its addresses): caches built on rules check it. */
extern _Atomic uint32_t ml_unwind_epoch;

/* Asks the service to start a fresh map (from dlclose; cheap, no lock). */
void ml_unwind_rules_invalidate(void);

/* Records that pc had no rule (from the hot path: one CAS, no syscall
 * unless the service must be woken). */
void ml_unwind_rules_miss(uint64_t pc);

/* The service: computes rules for pending misses. Runs on memledger's own
 * thread; returns true when misses remain (call again soon). */
bool ml_unwind_rules_service(void);

/* Computes the rule for one return address synchronously, waiting for the
 * module registry and the module's file if need be (tests and the service
 * use it). */
uint64_t ml_unwind_rule_compute(uint64_t pc);

/* From a hook that missed pc's rule: computes and publishes it now, when
 * no other thread holds the rule lock or reads pc's module file (never
 * waits for either, nor for the module registry). True with *rule set;
 * false when it could not. */
bool ml_unwind_rules_now(uint64_t pc, uint64_t *rule);

/* For tests: false makes ml_unwind_rules_now always decline, so that the
 * paths for a rule that is not there yet can be seen. */
void ml_unwind_rules_set_inline(bool on);

/* Statistics for snapshots: rules known, misses dropped. */
void ml_unwind_rules_stats(uint64_t *known, uint64_t *unknown, uint64_t *dropped);

/* Resident bytes of the map. */
uint64_t ml_unwind_rules_resident(void);

/* fork(): the pending set may have been mid-update. */
void ml_unwind_rules_after_fork_child(void);

#endif
