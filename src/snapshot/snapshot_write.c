/* snapshot_write.c — one snapshot from the live ledger (see snapshot_write.h).
 * The ledger is read while threads keep allocating: counters are summed
 * shard by shard without stopping anyone, so a snapshot is a consistent
 * view of each stack, not an instant of the whole process. */

#include "snapshot/snapshot_write.h"
#include "core/addrtab.h"
#include "common/config.h"
#include "common/format.h"
#include "common/io.h"
#include "core/ledger.h"
#include "core/modules.h"
#include "snapshot/symbolize.h"
#include "core/track.h"
#include "core/sysmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t ml_snapshots_failed;

static ml_header_fn header_fns[8];
static _Atomic unsigned nheader_fns;
static ml_pyframe_fn pyframe_fn;

void ml_snapshot_add_header(ml_header_fn fn)
{
    unsigned i = atomic_fetch_add(&nheader_fns, 1);
    if (i < ML_ARRAY_LEN(header_fns))
        header_fns[i] = fn;
}

static struct {
    const char *name;
    uint64_t (*resident)(void);
} memory_fns[8];
static _Atomic unsigned nmemory_fns;

void ml_snapshot_add_memory(const char *name, uint64_t (*resident)(void))
{
    unsigned i = atomic_load(&nmemory_fns);
    if (i >= ML_ARRAY_LEN(memory_fns))
        return;
    memory_fns[i].name = name;
    memory_fns[i].resident = resident;
    atomic_store(&nmemory_fns, i + 1);
}

void ml_snapshot_set_pyframe_fn(ml_pyframe_fn fn) { pyframe_fn = fn; }

/* ---- the frame table: each distinct frame once, referenced by number ---- */

typedef struct {
    uint64_t a, b;   /* native: pc, module+1 ; python: the two words */
    bool python;
    uint32_t id;
    bool used;
} fkey_t;

typedef struct {
    fkey_t *slots;
    size_t cap, n;
    fkey_t **order; /* by id */
} frames_t;

static bool frames_init(frames_t *f, size_t expect)
{
    f->cap = 1024;
    while (f->cap < expect * 2)
        f->cap <<= 1;
    f->n = 0;
    f->slots = calloc(f->cap, sizeof *f->slots);
    f->order = malloc(f->cap * sizeof *f->order);
    return f->slots && f->order;
}

static uint32_t frames_get(frames_t *f, bool python, uint64_t a, uint64_t b)
{
    uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^ python;
    size_t i = (size_t)(h ^ (h >> 29)) & (f->cap - 1);
    for (;; i = (i + 1) & (f->cap - 1)) {
        fkey_t *k = &f->slots[i];
        if (!k->used) {
            k->used = true;
            k->a = a;
            k->b = b;
            k->python = python;
            k->id = (uint32_t)f->n;
            f->order[f->n++] = k;
            return k->id;
        }
        if (k->a == a && k->b == b && k->python == python)
            return k->id;
    }
}

/* ---- header pieces ---- */

static void read_status(uint64_t *rss, uint64_t *peak)
{
    char buf[4096];
    *rss = *peak = 0;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = strstr(buf, "VmRSS:");
    if (p)
        *rss = strtoull(p + 6, NULL, 10) * 1024;
    p = strstr(buf, "VmHWM:");
    if (p)
        *peak = strtoull(p + 6, NULL, 10) * 1024;
}

static void write_cmdline(ml_out_t *o)
{
    ml_out_str(o, "cmdline");
    if (ml_config.redact_cmdline) {
        ml_out_str(o, "\t[redacted]\n");
        return;
    }
    char buf[8192];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        buf[n] = '\0';
        for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
            ml_out_char(o, '\t');
            ml_out_field(o, p);
        }
    }
    ml_out_char(o, '\n');
}

static void write_kv_u64(ml_out_t *o, const char *k, uint64_t v)
{
    ml_out_str(o, k);
    ml_out_char(o, '\t');
    ml_out_u64(o, v);
    ml_out_char(o, '\n');
}

static const char *const domain_names[] = ML_DOMAIN_NAMES;

typedef struct {
    uint32_t id;
    ml_stack_view_t v;
    ml_totals_t t;
} row_t;

static void write_body(ml_out_t *o, pid_t pid, unsigned seq, const char *trigger, row_t *rows,
                       size_t nrows, frames_t *fr, uint32_t **frame_ids, uint32_t *nframe_ids)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t rss, peak;
    read_status(&rss, &peak);
    char exe[4096];
    ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[en > 0 ? en : 0] = '\0';

    ml_out_printf(o, "%s\t%d\n", ML_FORMAT_MAGIC, ML_FORMAT_VERSION);
    write_kv_u64(o, "pid", (uint64_t)pid);
    write_kv_u64(o, "ppid", (uint64_t)getppid());
    ml_out_str(o, "exe\t");
    ml_out_field(o, exe);
    ml_out_char(o, '\n');
    write_cmdline(o);
    ml_out_printf(o, "time\t%llu.%09llu\n", (unsigned long long)ts.tv_sec,
                  (unsigned long long)ts.tv_nsec);
    write_kv_u64(o, "seq", seq);
    ml_out_printf(o, "trigger\t%s\n", trigger);
    write_kv_u64(o, "rss", rss);
    write_kv_u64(o, "peak_rss", peak);
    write_kv_u64(o, "sample_bytes", ml_config.sample_bytes);
    write_kv_u64(o, "depth", ml_config.depth);

    ml_ledger_stats_t ls;
    ml_ledger_stats(&ls);
    ml_addrtab_stats_t as;
    ml_addrtab_stats(&as);
    ml_out_printf(o, "stacks\t%llu\t%llu\t%llu\n", (unsigned long long)(ls.used - ML_STACK_FIRST),
                  (unsigned long long)ls.capacity, (unsigned long long)ls.overflowed);
    ml_out_printf(o, "addresses\t%llu\t%llu\n", (unsigned long long)as.entries,
                  (unsigned long long)as.bytes);
    ml_out_printf(o, "memory\tstacks\t%llu\taddresses\t%llu", (unsigned long long)ml_ledger_resident(),
                  (unsigned long long)as.bytes);
    unsigned nm_fns = atomic_load(&nmemory_fns);
    for (unsigned i = 0; i < nm_fns && i < ML_ARRAY_LEN(memory_fns); i++)
        ml_out_printf(o, "\t%s\t%llu", memory_fns[i].name, (unsigned long long)memory_fns[i].resident());
    ml_out_char(o, '\n');
    ml_out_printf(o, "problem\taddress_reused_untracked\t%llu\n", (unsigned long long)as.replaced);
    ml_out_printf(o, "problem\taddress_table_full\t%llu\n", (unsigned long long)as.nomem);
    ml_out_printf(o, "problem\tstack_table_full\t%llu\n", (unsigned long long)ls.overflowed);
    ml_out_printf(o, "problem\tsnapshots_failed\t%llu\n",
                  (unsigned long long)atomic_load(&ml_snapshots_failed));

    ml_totals_t dom[ML_DOM_COUNT];
    memset(dom, 0, sizeof dom);
    for (size_t i = 0; i < nrows; i++) {
        ml_totals_t *d = &dom[rows[i].v.domain];
        d->live_bytes += rows[i].t.live_bytes;
        d->live_count += rows[i].t.live_count;
        d->total_bytes += rows[i].t.total_bytes;
        d->total_count += rows[i].t.total_count;
    }
    for (int d = 0; d < ML_DOM_COUNT; d++)
        ml_out_printf(o, "domain\t%s\t%llu\t%llu\t%llu\t%llu\n", domain_names[d],
                      (unsigned long long)dom[d].live_bytes, (unsigned long long)dom[d].live_count,
                      (unsigned long long)dom[d].total_bytes, (unsigned long long)dom[d].total_count);
    unsigned nh = atomic_load(&nheader_fns);
    for (unsigned i = 0; i < nh && i < ML_ARRAY_LEN(header_fns); i++)
        if (header_fns[i])
            header_fns[i](o);

    uint32_t nm = ml_modules_count();
    for (uint32_t i = 0; i < nm; i++) {
        const ml_module_t *m = ml_modules_get(i);
        char bid[2 * ML_BUILD_ID_MAX + 1];
        ml_build_id_hex(m, bid, sizeof bid);
        ml_out_printf(o, "module\t%u\t%s\t%llx\t%llx\t%s\t", i, bid[0] ? bid : "-",
                      (unsigned long long)m->bias, (unsigned long long)(m->hi - m->lo),
                      atomic_load(&m->removed_gen) ? "unloaded" : "loaded");
        ml_out_field(o, m->path);
        ml_out_char(o, '\n');
    }

    for (size_t f = 0; f < fr->n; f++) {
        const fkey_t *k = fr->order[f];
        ml_out_printf(o, "frame\t%zu\t", f);
        if (k->python) {
            ml_pyframe_t py = {NULL, NULL, 0};
            if (!pyframe_fn || !pyframe_fn(k->a, k->b, &py))
                py.function = "[unknown python frame]";
            ml_out_str(o, "python\t-\t-\t");
            ml_out_field(o, py.function);
            ml_out_char(o, '\t');
            ml_out_field(o, py.file);
            ml_out_char(o, '\t');
            if (py.line > 0)
                ml_out_u64(o, (uint64_t)py.line);
            else
                ml_out_char(o, '-');
        } else if (k->b == 0) {
            ml_out_printf(o, "native\t-\t%llx\t-\t-\t-", (unsigned long long)k->a);
        } else {
            uint32_t mi = (uint32_t)(k->b - 1);
            const ml_module_t *m = ml_modules_get(mi);
            ml_symbol_t s;
            ml_symbolize(mi, (uintptr_t)k->a, &s);
            ml_out_printf(o, "native\t%u\t%llx\t", mi, (unsigned long long)(k->a - m->bias));
            ml_out_field(o, s.function);
            ml_out_char(o, '\t');
            ml_out_field(o, s.file);
            ml_out_char(o, '\t');
            if (s.line > 0)
                ml_out_u64(o, (uint64_t)s.line);
            else
                ml_out_char(o, '-');
        }
        ml_out_char(o, '\n');
    }

    for (size_t i = 0; i < nrows; i++) {
        const row_t *r = &rows[i];
        ml_out_printf(o, "stack\t%u\t%s\t%llu\t%llu\t%llu\t%llu\t", r->id, domain_names[r->v.domain],
                      (unsigned long long)r->t.live_bytes, (unsigned long long)r->t.live_count,
                      (unsigned long long)r->t.total_bytes, (unsigned long long)r->t.total_count);
        if (!nframe_ids[i])
            ml_out_char(o, '-');
        for (uint32_t k = 0; k < nframe_ids[i]; k++) {
            if (k)
                ml_out_char(o, ' ');
            ml_out_u64(o, frame_ids[i][k]);
        }
        ml_out_char(o, '\n');
    }
    ml_out_printf(o, "end\t%zu\t%zu\n", nrows, fr->n);
}

/* Creates the temporary file: never through a symlink (O_NOFOLLOW), never
 * over an existing file (O_EXCL), mode 0600. The name carries a random part,
 * so a file left by an earlier process with the same pid, or one planted in
 * a shared directory, cannot block the snapshot. Returns the fd, or -1 with
 * errno set. */
/* The module of each return address, remembered: a big process has
 * hundreds of modules and its stacks share most of their addresses, so the
 * registry's scan would otherwise run tens of millions of times. */
typedef struct {
    uint64_t pc;
    uint32_t gen;
    int mi;
} modhit_t;
#define MODHITS 16384

static int module_of(modhit_t *hits, uint64_t pc, uint32_t gen)
{
    if (!hits)
        return ml_modules_find((uintptr_t)pc, gen);
    modhit_t *h = &hits[((pc ^ gen) * 0x9e3779b97f4a7c15ull) >> 50];
    if (h->pc != pc || h->gen != gen || !h->pc)
        *h = (modhit_t){pc, gen, ml_modules_find((uintptr_t)pc, gen)};
    return h->mi;
}

static int create_temp(int dfd, pid_t pid, unsigned seq, char *name, size_t cap)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)attempt << 56);
        }
        ml_fmt(name, cap, ".memledger.%d.%u.%s.%08llx.tmp", (int)pid, seq, ML_SNAPSHOT_EXT,
               (unsigned long long)(r & 0xffffffffffull));
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int ml_snapshot_write(const char *dir, pid_t pid, unsigned seq, const char *trigger,
                      char *path_out, size_t cap)
{
    char tmp[128], final[128];
    ml_fmt(final, sizeof final, "memledger.%d.%u.%s", (int)pid, seq, ML_SNAPSHOT_EXT);

    uint32_t gen = ml_modules_sync(true);
    (void)gen;
    uint32_t nids = ml_ledger_ids();
    row_t *rows = malloc((size_t)nids * sizeof *rows + 1);
    uint32_t **fids = calloc((size_t)nids + 1, sizeof *fids);
    uint32_t *nfids = calloc((size_t)nids + 1, sizeof *nfids);
    frames_t fr = {0};
    modhit_t *hits = calloc(MODHITS, sizeof *hits); /* optional: a miss is only slower */
    ml_out_t *o = malloc(sizeof *o);
    int err = 0, fd = -1, dfd = -1;
    size_t nrows = 0;
    if (!rows || !fids || !nfids || !o || !frames_init(&fr, 4096)) {
        err = ENOMEM;
        goto out;
    }
    for (uint32_t id = 0; id < nids; id++) {
        row_t *r = &rows[nrows];
        if (!ml_ledger_stack(id, &r->v))
            continue;
        ml_ledger_totals(id, &r->t);
        if (!r->t.total_count)
            continue;
        r->id = id;
        /* frames: python pairs stay pairs; native pcs get their module */
        uint32_t *ids = malloc((r->v.n + 1) * sizeof *ids);
        if (!ids) {
            err = ENOMEM;
            goto out;
        }
        uint32_t k = 0;
        for (unsigned w = 0; w < r->v.n; w++) {
            uint64_t word = r->v.words[w];
            if ((word & ML_WORD_PY) && w + 1 < r->v.n) {
                ids[k++] = frames_get(&fr, true, word, r->v.words[w + 1]);
                w++;
            } else {
                int mi = module_of(hits, word, r->v.modgen);
                ids[k++] = frames_get(&fr, false, word, mi >= 0 ? (uint64_t)mi + 1 : 0);
            }
            if (fr.n * 2 >= fr.cap) { /* grow the frame table */
                frames_t bigger;
                if (!frames_init(&bigger, fr.cap)) {
                    err = ENOMEM;
                    free(ids);
                    goto out;
                }
                for (size_t f = 0; f < fr.n; f++) {
                    fkey_t *old = fr.order[f];
                    frames_get(&bigger, old->python, old->a, old->b);
                }
                free(fr.slots);
                free(fr.order);
                fr = bigger;
            }
        }
        fids[nrows] = ids;
        nfids[nrows] = k;
        nrows++;
    }

    /* Every step is relative to one open descriptor of the directory, so a
     * directory renamed or replaced mid-write cannot split the temporary
     * file from its final name. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        err = errno;
        goto out;
    }
    fd = create_temp(dfd, pid, seq, tmp, sizeof tmp);
    if (fd < 0) {
        err = errno;
        goto out;
    }
    ml_out_init(o, fd);
    write_body(o, pid, seq, trigger, rows, nrows, &fr, fids, nfids);
    if (!ml_out_flush(o))
        err = o->err ? o->err : EIO;
    if (close(fd) != 0 && !err)
        err = errno;
    fd = -1;
    if (!err && renameat(dfd, tmp, dfd, final) != 0)
        err = errno;
    if (err)
        unlinkat(dfd, tmp, 0);
    else if (path_out)
        ml_fmt(path_out, cap, "%s/%s", dir, final);
out:
    if (fd >= 0) {
        close(fd);
        unlinkat(dfd, tmp, 0);
    }
    if (dfd >= 0)
        close(dfd);
    if (fids)
        for (size_t i = 0; i < nrows; i++)
            free(fids[i]);
    free(fids);
    free(nfids);
    free(rows);
    free(fr.slots);
    free(fr.order);
    free(hits);
    free(o);
    if (err)
        atomic_fetch_add(&ml_snapshots_failed, 1);
    return err;
}
