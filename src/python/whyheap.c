/* whyheap.c — sampling live blocks and finding who points at them (see
 * whyheap.h).
 *
 * Sampling: one pass over the heap address table, shard by shard (each
 * shard copied out under its lock, then looked at with the lock released),
 * keeping for each chosen stack a uniform random sample of its live blocks
 * (reservoir sampling: the k-th block of a stack replaces a kept one with
 * probability per/k).
 *
 * The scan is conservative, as a garbage collector's scan of native memory
 * is: any aligned word whose value is the address of a block of interest
 * (or, for a block of the Python domain, the address of an object inside
 * it: 16 or 32 bytes on, past the gc header and the managed-dict
 * pre-header) counts as a pointer to it. Each pass reads the first
 * ML_WHY_SCAN_BYTES of every live block, and the writable segments of every
 * module but memledger's own, and finds the holders of the blocks the pass
 * before found (pass 1: of the samples). A holder in the malloc domain is
 * followed further (a tensor's data <- StorageImpl <- TensorImpl <- the
 * Python object); how far is ML_WHY_LEVELS. A word that happens to look
 * like a pointer makes a false holder; whygraph.c prefers a chain that
 * reaches a Python object with a path to a root, so a false native holder
 * costs a line in the answer at worst.
 *
 * Reads: other threads keep allocating and freeing, and a block freed
 * since the table was copied may be unmapped (large blocks, trimmed
 * arenas). process_vm_readv on the process itself reads memory through the
 * kernel, which reports EFAULT instead of faulting; a batch of up to 1024
 * blocks costs one system call. Where that call is refused (seccomp, old
 * kernels), write(2) into a pipe serves the same purpose one block at a
 * time. A block reused since holds someone else's words: again a false
 * holder at worst. */
#include "python/whyheap.h"
#include "common/format.h"
#include "core/addrtab.h"
#include "core/ledger.h"
#include "core/sysmem.h"
#include "core/track.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1024
#define BUF_BYTES (1u << 20)

uint64_t ml_why_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- reading without faulting ---- */

static int vm_state; /* 0 untried, 1 process_vm_readv works, -1 refused: use the pipe */

static bool pipe_read(uintptr_t addr, void *out, size_t len)
{
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) != 0)
        return false;
    bool ok = true;
    for (size_t done = 0; ok && done < len;) {
        size_t n = len - done < 65536 ? len - done : 65536; /* a pipe's default capacity */
        ssize_t w = write(fd[1], (const void *)(addr + done), n);
        if (w <= 0) {
            ok = false;
            break;
        }
        for (ssize_t r = 0; r < w;) {
            ssize_t k = read(fd[0], (char *)out + done + (size_t)r, (size_t)(w - r));
            if (k <= 0) {
                ok = false;
                break;
            }
            r += k;
        }
        done += (size_t)w;
    }
    close(fd[0]);
    close(fd[1]);
    return ok;
}

/* Reads remote[0..n) into buf[cap] back to back; ok[i] says which
 * arrived (those that would not fit in buf are not read). Returns how many
 * did. */
static size_t read_batch(const struct iovec *remote, size_t n, char *buf, size_t cap, bool *ok)
{
    size_t total = 0, good = 0;
    for (size_t i = 0; i < n; i++) {
        ok[i] = false;
        if (total + remote[i].iov_len > cap) {
            n = i;
            break;
        }
        total += remote[i].iov_len;
    }
    size_t i = 0, at = 0;
    while (i < n && vm_state >= 0) {
        struct iovec local = {buf + at, total - at};
        ssize_t r = process_vm_readv(getpid(), &local, 1, remote + i, n - i, 0);
        if (r < 0 && (errno == ENOSYS || errno == EPERM)) {
            vm_state = -1;
            break;
        }
        vm_state = 1;
        size_t got = r > 0 ? (size_t)r : 0;
        /* whole elements only: skip past those read, then the one that failed */
        while (i < n && got >= remote[i].iov_len) {
            got -= remote[i].iov_len;
            at += remote[i].iov_len;
            ok[i++] = true;
            good++;
        }
        if (i < n) {
            at += remote[i].iov_len;
            i++;
        }
    }
    if (vm_state < 0) {
        at = 0;
        for (size_t j = 0; j < n; j++) {
            if (!ok[j] && pipe_read((uintptr_t)remote[j].iov_base, buf + at, remote[j].iov_len)) {
                ok[j] = true;
                good++;
            }
            at += remote[j].iov_len;
        }
    }
    return good;
}

bool ml_why_read(uintptr_t addr, void *out, size_t len)
{
    struct iovec r = {(void *)addr, len};
    bool ok;
    return read_batch(&r, 1, out, len, &ok) == 1;
}

/* ---- sampling ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t x = rng_state ? rng_state : (ml_why_now_ns() | 1);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void *map(size_t bytes) { return ml_sysmem_map(bytes ? bytes : 1); }

static bool add_node(ml_why_heap_t *h, const ml_why_node_t *n)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 256;
        if (cap > ML_WHY_MAX_NODES)
            return false;
        ml_why_node_t *x = map(cap * sizeof *x);
        if (!x)
            return false;
        if (h->nodes) {
            memcpy(x, h->nodes, h->n * sizeof *x);
            ml_sysmem_unmap(h->nodes, h->cap * sizeof *x);
        }
        h->nodes = x;
        h->cap = cap;
    }
    h->nodes[h->n++] = *n;
    return true;
}

static unsigned domain_of(uint32_t id)
{
    ml_stack_view_t v;
    return ml_ledger_stack(id, &v) ? v.domain : ML_DOM_MALLOC;
}

/* Copies shard s of the heap table into *buf (grown as needed); returns
 * the number of entries, or SIZE_MAX when out of memory. */
static size_t copy_shard(unsigned s, ml_addr_entry_t **buf, size_t *cap)
{
    for (;;) {
        size_t n = ml_addrtab_copy_shard(&ml_heap_addrs, s, *buf, *cap);
        if (n <= *cap)
            return n;
        size_t want = n + n / 4 + 1024;
        ml_addr_entry_t *x = map(want * sizeof *x);
        if (!x)
            return SIZE_MAX;
        if (*buf)
            ml_sysmem_unmap(*buf, *cap * sizeof **buf);
        *buf = x;
        *cap = want;
    }
}

/* Every live block, in address order (the scan's). */
typedef struct {
    ml_addr_entry_t *e;
    size_t n, cap;
} blocks_t;

/* Grows the block list to hold want entries. */
static bool grow_blocks(blocks_t *b, size_t want)
{
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < want)
        cap *= 2;
    ml_addr_entry_t *x = map(cap * sizeof *x);
    if (!x)
        return false;
    if (b->e) {
        memcpy(x, b->e, b->n * sizeof *x);
        ml_sysmem_unmap(b->e, b->cap * sizeof *x);
    }
    b->e = x;
    b->cap = cap;
    return true;
}

bool ml_whyheap_sample(ml_why_heap_t *h, const uint32_t *ids, const uint32_t *slot, size_t n, uint32_t nslots,
                       unsigned per, uint64_t *live)
{
    memset(h, 0, sizeof *h);
    if (!n || !nslots || !per)
        return true;
    /* id -> slot, open addressing */
    size_t hcap = 64;
    while (hcap < n * 2)
        hcap *= 2;
    uint32_t *hid = map(hcap * sizeof *hid), *hslot = map(hcap * sizeof *hslot);
    ml_addr_entry_t *kept = map((size_t)nslots * per * sizeof *kept);
    ml_addr_entry_t *buf = NULL;
    size_t bcap = 0;
    bool ok = hid && hslot && kept;
    for (size_t i = 0; ok && i < n; i++) {
        size_t j = (ids[i] * 0x9e3779b1u) & (hcap - 1);
        while (hid[j] && hid[j] != ids[i] + 1)
            j = (j + 1) & (hcap - 1);
        hid[j] = ids[i] + 1;
        hslot[j] = slot[i];
    }
    for (uint32_t i = 0; i < nslots; i++)
        live[i] = 0;
    for (unsigned s = 0; ok && s < ML_ADDR_SHARDS; s++) {
        size_t m = copy_shard(s, &buf, &bcap);
        if (m == SIZE_MAX) {
            ok = false;
            break;
        }
        h->blocks_seen += m;
        for (size_t e = 0; e < m; e++) {
            uint32_t id = (uint32_t)(buf[e].val >> ML_ADDR_SIZE_BITS);
            size_t j = (id * 0x9e3779b1u) & (hcap - 1);
            while (hid[j] && hid[j] != id + 1)
                j = (j + 1) & (hcap - 1);
            if (!hid[j])
                continue;
            uint32_t sl = hslot[j];
            uint64_t k = ++live[sl];
            if (k <= per)
                kept[(size_t)sl * per + k - 1] = buf[e];
            else if (rng() % k < per)
                kept[(size_t)sl * per + rng() % per] = buf[e];
        }
    }
    for (uint32_t sl = 0; ok && sl < nslots; sl++) {
        uint64_t k = live[sl] < per ? live[sl] : per;
        for (uint64_t i = 0; ok && i < k; i++) {
            const ml_addr_entry_t *e = &kept[(size_t)sl * per + i];
            uint32_t id = (uint32_t)(e->val >> ML_ADDR_SIZE_BITS);
            ml_why_node_t nd = {.addr = e->key, .size = e->val & ML_ADDR_SIZE_MAX, .id = id,
                                .domain = (uint8_t)domain_of(id), .child = -1, .sample = h->n, .slot = sl,
                                .next_same = UINT32_MAX};
            ok = add_node(h, &nd);
        }
    }
    h->nsamples = h->n;
    if (hid)
        ml_sysmem_unmap(hid, hcap * sizeof *hid);
    if (hslot)
        ml_sysmem_unmap(hslot, hcap * sizeof *hslot);
    if (kept)
        ml_sysmem_unmap(kept, (size_t)nslots * per * sizeof *kept);
    if (buf)
        ml_sysmem_unmap(buf, bcap * sizeof *buf);
    return ok;
}

/* ---- the scan ---- */

typedef struct {
    uint64_t *key;       /* address a pointer may hold */
    uint32_t *node;      /* the first node it points into */
    size_t cap;
    uint64_t lo, hi;     /* smallest and largest key */
    bool python;         /* some key is a Python-domain block: pointers to 16 and 32 bytes in count too */
    uint64_t bloom[1u << 12]; /* a bit per (address / 16) modulo 2^18: most words miss here */
} targets_t;

static inline size_t bloom_bit(uint64_t a) { return (size_t)(a >> 4) & ((1u << 18) - 1); }

static inline size_t slot_of(const targets_t *t, uint64_t k)
{
    k ^= k >> 29;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 32;
    return (size_t)k & (t->cap - 1);
}

static void target_put(targets_t *t, uint64_t key, uint32_t node)
{
    size_t j = slot_of(t, key);
    while (t->key[j] && t->key[j] != key)
        j = (j + 1) & (t->cap - 1);
    if (t->key[j])
        return; /* an earlier node with this key: found through next_same */
    t->key[j] = key;
    t->node[j] = node;
    t->bloom[bloom_bit(key) >> 6] |= 1ull << (bloom_bit(key) & 63);
    t->lo = key < t->lo ? key : t->lo;
    t->hi = key > t->hi ? key : t->hi;
}

static inline uint32_t target_get(const targets_t *t, uint64_t key)
{
    for (size_t j = slot_of(t, key); t->key[j]; j = (j + 1) & (t->cap - 1))
        if (t->key[j] == key)
            return t->node[j];
    return UINT32_MAX;
}

typedef struct {
    ml_why_heap_t *h;
    targets_t t;
    uint32_t first, last; /* the nodes of the level being explained */
    bool full;
} pass_t;

/* True when block addr is already on node n's chain (down to its sample):
 * a cycle of native pointers is not a holder. */
static bool on_chain(const ml_why_heap_t *h, uint32_t n, uint64_t addr)
{
    for (int32_t k = (int32_t)n; k >= 0; k = h->nodes[k].child)
        if (h->nodes[k].addr == addr)
            return true;
    return false;
}

/* Whether t is a type object: its type is `type`, or a metaclass whose
 * type is `type` (type(type) is type). Read safely; the answers for recent
 * addresses are remembered. */
static bool is_type(uint64_t t)
{
    static uint64_t yes[256];
    if (!t || (t & 7))
        return false;
    size_t h = (size_t)(t >> 4) & 255;
    if (yes[h] == t)
        return true;
    uint64_t tt, ttt, tttt;
    if (!ml_why_read(t + 8, &tt, 8) || !tt || (tt & 7) || !ml_why_read(tt + 8, &ttt, 8))
        return false;
    bool ok = ttt == tt || (ttt && !(ttt & 7) && ml_why_read(ttt + 8, &tttt, 8) && tttt == ttt);
    if (ok)
        yes[h] = t;
    return ok;
}

static inline bool object_header(uint64_t refcnt, uint64_t type)
{
    return (int64_t)refcnt > 0 && refcnt < (1ull << 40) && is_type(type);
}

/* Where a Python-domain block's gc header ends, when the block is a gc
 * object: 16, or 32 on 3.11+ when the managed-dict pre-header (the
 * instance's values and dict pointers: real references) comes first; 0
 * when it is not a gc object. The header's two words link the object to
 * its neighbours in a generation list: they say nothing about ownership. */
static unsigned gc_prefix(const uint64_t *w, size_t nwords)
{
    if (nwords >= 4 && object_header(w[2], w[3]))
        return 16;
    if (nwords >= 6 && object_header(w[4], w[5]))
        return 32;
    return 0;
}

/* Word w at offset off of holder block e (whose first words are words[n])
 * points into a node: record it. */
static void hit_block(pass_t *p, uint64_t w, const ml_addr_entry_t *e, uint64_t off, const uint64_t *words,
                      size_t n)
{
    uint32_t id = (uint32_t)(e->val >> ML_ADDR_SIZE_BITS);
    unsigned dom = domain_of(id);
    if (dom == ML_DOM_PYTHON && off < 32) {
        unsigned end = gc_prefix(words, n);
        if (end && off >= end - 16 && off < end)
            return;
    }
    for (uint64_t d = 0; d <= (p->t.python ? 32u : 0u); d += 16) {
        uint32_t k = target_get(&p->t, w - d);
        for (; k != UINT32_MAX; k = p->h->nodes[k].next_same) {
            ml_why_node_t *c = &p->h->nodes[k];
            if (d && c->domain != ML_DOM_PYTHON)
                continue;
            if (c->nholders >= ML_WHY_HOLDERS || on_chain(p->h, k, e->key))
                continue;
            ml_why_node_t nd = {.addr = e->key, .size = e->val & ML_ADDR_SIZE_MAX, .id = id, .domain = (uint8_t)dom,
                                .level = (uint8_t)(c->level + 1), .child = (int32_t)k, .sample = c->sample,
                                .slot = c->slot, .off = (uint32_t)off, .next_same = UINT32_MAX};
            if (!add_node(p->h, &nd)) {
                p->full = true;
                return;
            }
            p->h->nodes[k].nholders++;
        }
    }
}

static void hit_global(pass_t *p, uint64_t w, uintptr_t at)
{
    for (uint64_t d = 0; d <= 32; d += 16) {
        for (uint32_t n = target_get(&p->t, w - d); n != UINT32_MAX; n = p->h->nodes[n].next_same) {
            ml_why_node_t *c = &p->h->nodes[n];
            if (d && c->domain != ML_DOM_PYTHON)
                continue;
            if (!c->root_at)
                c->root_at = at;
            if (c->nroots < UINT8_MAX)
                c->nroots++;
        }
    }
}

static inline bool bloom_has(const targets_t *t, uint64_t a)
{
    return t->bloom[bloom_bit(a) >> 6] >> (bloom_bit(a) & 63) & 1;
}

/* Whether word w may point into a node (cheap checks only). */
static inline bool maybe(const pass_t *p, uint64_t w)
{
    if (w < p->t.lo || w > p->t.hi + 32 || (w & 7))
        return false;
    return bloom_has(&p->t, w) || (p->t.python && (bloom_has(&p->t, w - 16) || bloom_has(&p->t, w - 32)));
}

typedef struct {
    uintptr_t lo[512], hi[512];
    unsigned n;
    uintptr_t self; /* memledger's own load address: not scanned */
} segs_t;

static int each_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    segs_t *s = arg;
    if (info->dlpi_addr == s->self && s->self)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && s->n < ML_ARRAY_LEN(s->lo); i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W) || !ph->p_memsz)
            continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)7;
        s->lo[s->n] = lo;
        s->hi[s->n] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        s->n++;
    }
    return 0;
}

static void scan_globals(pass_t *p, char *buf)
{
    static segs_t s;
    Dl_info self;
    s.n = 0;
    s.self = dladdr((void *)ml_why_read, &self) ? (uintptr_t)self.dli_fbase : 0;
    /* dli_fbase is the lowest mapped address; dlpi_addr the load bias:
     * equal for a shared object linked at 0, as memledger is */
    dl_iterate_phdr(each_module, &s);
    for (unsigned i = 0; i < s.n && !p->full; i++) {
        for (uintptr_t a = s.lo[i]; a < s.hi[i]; a += BUF_BYTES) {
            size_t len = s.hi[i] - a < BUF_BYTES ? s.hi[i] - a : BUF_BYTES;
            len &= ~(size_t)7;
            if (!len || !ml_why_read(a, buf, len))
                continue;
            const uint64_t *w = (const uint64_t *)buf;
            for (size_t k = 0; k < len / 8; k++)
                if (maybe(p, w[k]))
                    hit_global(p, w[k], a + k * 8);
        }
        p->h->segments_scanned++;
    }
}

/* ---- every live block, in address order ---- */

static int by_addr(const void *a, const void *b)
{
    uint64_t x = ((const ml_addr_entry_t *)a)->key, y = ((const ml_addr_entry_t *)b)->key;
    return x < y ? -1 : x > y;
}

/* Copies the whole heap table into b, sorted by address: neighbours in
 * memory are then read together (one read for a run of blocks). */
static bool all_blocks(blocks_t *b)
{
    ml_addr_entry_t *buf = NULL;
    size_t bcap = 0;
    bool ok = true;
    for (unsigned s = 0; ok && s < ML_ADDR_SHARDS; s++) {
        size_t m = copy_shard(s, &buf, &bcap);
        if (m == SIZE_MAX || (b->n + m > b->cap && !grow_blocks(b, b->n + m))) {
            ok = false;
            break;
        }
        if (m)
            memcpy(b->e + b->n, buf, m * sizeof *buf);
        b->n += m;
    }
    if (buf)
        ml_sysmem_unmap(buf, bcap * sizeof *buf);
    if (ok)
        qsort(b->e, b->n, sizeof *b->e, by_addr);
    return ok;
}

/* ---- a pass ---- */

#define RUN_GAP 256          /* blocks this close are read as one run */
#define RUN_MAX (64u << 10)  /* bytes in one run, at most */

typedef struct {
    uint64_t lo, hi;         /* bytes [lo, hi) */
    size_t first, last;      /* its blocks: b->e[first .. last) */
} run_t;

static inline uint64_t scan_len(const ml_addr_entry_t *e)
{
    uint64_t len = e->val & ML_ADDR_SIZE_MAX;
    return (len < ML_WHY_SCAN_BYTES ? len : ML_WHY_SCAN_BYTES) & ~(uint64_t)7;
}

static void scan_words(pass_t *p, const ml_addr_entry_t *e, const uint64_t *w, size_t n)
{
    for (size_t k = 0; k < n && !p->full; k++)
        if (maybe(p, w[k]))
            hit_block(p, w[k], e, k * 8, w, n);
    p->h->blocks_scanned++;
    p->h->bytes_scanned += n * 8;
}

/* Reads runs[0..n) and scans their blocks; a run that cannot be read
 * whole (a gap between its blocks is not mapped, or a block was freed and
 * unmapped) is read again block by block. */
static void scan_runs(pass_t *p, const blocks_t *b, const run_t *runs, size_t n, char *buf)
{
    static struct iovec iov[BATCH];
    static bool ok[BATCH];
    for (size_t i = 0; i < n; i++)
        iov[i] = (struct iovec){(void *)runs[i].lo, (size_t)(runs[i].hi - runs[i].lo)};
    read_batch(iov, n, buf, BUF_BYTES, ok);
    size_t at = 0;
    for (size_t i = 0; i < n && !p->full; i++) {
        const run_t *r = &runs[i];
        for (size_t k = r->first; k < r->last && !p->full; k++) {
            const ml_addr_entry_t *e = &b->e[k];
            uint64_t len = scan_len(e);
            if (!len)
                continue;
            if (ok[i]) {
                scan_words(p, e, (const uint64_t *)(buf + at + (e->key - r->lo)), len / 8);
            } else {
                static uint64_t one[ML_WHY_SCAN_BYTES / 8];
                if (ml_why_read(e->key, one, len))
                    scan_words(p, e, one, len / 8);
                else
                    p->h->read_failures++;
            }
        }
        at += iov[i].iov_len;
    }
}

/* One pass: the holders of the nodes [first, last) that want some. */
static bool pass(ml_why_heap_t *h, uint32_t first, uint32_t last, const bool *expand, const blocks_t *b,
                 uint64_t deadline, char *buf)
{
    pass_t p = {.h = h, .first = first, .last = last};
    p.t.cap = 64;
    while (p.t.cap < (size_t)(last - first) * 6)
        p.t.cap *= 2;
    p.t.key = map(p.t.cap * sizeof *p.t.key);
    p.t.node = map(p.t.cap * sizeof *p.t.node);
    p.t.lo = UINT64_MAX;
    bool good = p.t.key && p.t.node;
    if (good) {
        /* later nodes with the same address chain behind the first */
        for (uint32_t n = last; n-- > first;) {
            if (!expand[n - first])
                continue;
            p.t.python |= h->nodes[n].domain == ML_DOM_PYTHON;
            uint32_t prev = target_get(&p.t, h->nodes[n].addr);
            h->nodes[n].next_same = prev;
            if (prev == UINT32_MAX)
                target_put(&p.t, h->nodes[n].addr, n);
            else
                for (size_t j = slot_of(&p.t, h->nodes[n].addr);; j = (j + 1) & (p.t.cap - 1))
                    if (p.t.key[j] == h->nodes[n].addr) {
                        p.t.node[j] = n;
                        break;
                    }
        }
    }
    static run_t runs[BATCH];
    size_t nr = 0, bytes = 0;
    for (size_t k = 0; good && k < b->n && !p.full; k++) {
        if (!(k & 4095) && ml_why_now_ns() > deadline) {
            h->stopped = true;
            break;
        }
        const ml_addr_entry_t *e = &b->e[k];
        uint64_t len = scan_len(e);
        if (!len)
            continue;
        run_t *r = nr ? &runs[nr - 1] : NULL;
        if (r && e->key >= r->lo && e->key <= r->hi + RUN_GAP && e->key + len - r->lo <= RUN_MAX) {
            uint64_t hi = e->key + len > r->hi ? e->key + len : r->hi;
            bytes += hi - r->hi;
            r->hi = hi;
            r->last = k + 1;
            continue;
        }
        /* every run may grow to RUN_MAX: a batch of runs always fits buf */
        if (nr == BATCH || bytes + RUN_MAX > BUF_BYTES) {
            scan_runs(&p, b, runs, nr, buf);
            nr = bytes = 0;
        }
        runs[nr++] = (run_t){e->key, e->key + len, k, k + 1};
        bytes += len;
    }
    if (nr && !p.full)
        scan_runs(&p, b, runs, nr, buf);
    if (good && !h->stopped)
        scan_globals(&p, buf);
    for (uint32_t n = first; n < last; n++)
        h->nodes[n].next_same = UINT32_MAX;
    if (p.t.key)
        ml_sysmem_unmap(p.t.key, p.t.cap * sizeof *p.t.key);
    if (p.t.node)
        ml_sysmem_unmap(p.t.node, p.t.cap * sizeof *p.t.node);
    return good;
}

/* Whether node n's block is itself a Python object (read safely): the
 * nearest Python object owns what its chain leads to, so its own holders
 * are Python's business (whygraph.c), not the scan's. */
static bool python_object(const ml_why_node_t *n)
{
    uint64_t w[6];
    if (n->domain != ML_DOM_PYTHON || n->size < sizeof w || !ml_why_read(n->addr, w, sizeof w))
        return false;
    return gc_prefix(w, 6) || object_header(w[0], w[1]);
}

bool ml_whyheap_scan(ml_why_heap_t *h, uint64_t deadline_ns)
{
    if (!h->n)
        return true;
    char *buf = map(BUF_BYTES);
    static bool expand[ML_WHY_MAX_NODES];
    blocks_t b = {0};
    bool good = buf != NULL;
    uint32_t first = 0, last = h->n;
    for (unsigned level = 1; good && level <= ML_WHY_LEVELS && first < last && !h->stopped; level++) {
        /* which of the last pass's finds still need a holder: those that
         * are not Python objects themselves */
        bool any = false;
        for (uint32_t n = first; n < last; n++)
            any |= expand[n - first] = !python_object(&h->nodes[n]);
        if (!any)
            break;
        if (!b.e && !(good = all_blocks(&b)))
            break;
        good = pass(h, first, last, expand, &b, deadline_ns, buf);
        h->levels = level;
        first = last;
        last = h->n;
    }
    if (buf)
        ml_sysmem_unmap(buf, BUF_BYTES);
    if (b.e)
        ml_sysmem_unmap(b.e, b.cap * sizeof *b.e);
    return good;
}

void ml_whyheap_free(ml_why_heap_t *h)
{
    if (h->nodes)
        ml_sysmem_unmap(h->nodes, h->cap * sizeof *h->nodes);
    memset(h, 0, sizeof *h);
}
