/* test_modules.c — a reused load address never joins an old frame. Plugin
 * A is loaded, unloaded, and plugin B loaded at exactly A's base (both are
 * linked at one address: test/CMakeLists.txt), so one return address
 * stands in A's code and then in B's. Each is its own frame word, whether
 * the registry knew the module when the word was made (module index +
 * offset) or not (an address word: a hook that found the registry busy
 * with another thread's refresh), and each word is named by its own
 * module. Also: address words' generations round-trip, across wrap-around,
 * and addresses too wide for a generation keep their bits.
 * Usage: test_modules PLUGIN_A.so PLUGIN_B.so */
#include "check.h"
#include "common/config.h"
#include "core/ledger.h"
#include "core/modules.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* While `hold` is set, the registry's refresh stops inside its observer
 * (which runs with the refresh lock held) as it adds a plugin. */
static _Atomic int hold, held;

static void observer(const ml_module_t *m)
{
    if (!strstr(m->path, "libplugin_") || !atomic_load(&hold))
        return;
    atomic_store(&held, 1);
    while (atomic_load(&hold))
        usleep(100);
}

static void *refresh(void *arg)
{
    (void)arg;
    ml_modules_sync(true);
    return NULL;
}

/* The word `pc` is encoded to while another thread is registering pc's
 * module: the hook's case, which cannot wait for the registry. */
static uint64_t encode_while_busy(uintptr_t pc)
{
    pthread_t t;
    atomic_store(&held, 0);
    atomic_store(&hold, 1);
    pthread_create(&t, NULL, refresh, NULL);
    while (!atomic_load(&held))
        usleep(100);
    uint64_t w = ml_ledger_encode(pc);
    atomic_store(&hold, 0);
    pthread_join(t, NULL);
    return w;
}

static void *load(const char *path, uintptr_t *base)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    Dl_info where;
    CHECK(h != NULL);
    if (!h || !dladdr(dlsym(h, "plugin_leak"), &where)) {
        fprintf(stderr, "%s: %s\n", path, dlerror());
        exit(1);
    }
    *base = (uintptr_t)where.dli_fbase;
    return h;
}

static int module_of(uint64_t w)
{
    return ML_WORD_KIND(w) == 0 ? (int)(w >> ML_WORD_MODULE_SHIFT) - 1 : -1;
}

static const char *plugin;  /* argv: plugin A's path */
static const char *plugin2; /* plugin B's */

static void test_reused_base(void)
{
    uintptr_t base_a, base_b;
    void *a = load(plugin, &base_a);
    uintptr_t pc = (uintptr_t)dlsym(a, "plugin_leak") + 5; /* a return address inside A */
    uint64_t abs_a = encode_while_busy(pc);
    CHECK_EQ(ML_WORD_KIND(abs_a), ML_WORD_ABS);
    CHECK_EQ(ml_word_abs_pc(abs_a), pc);
    uint64_t mod_a = ml_ledger_encode(pc); /* registered now */
    int ia = module_of(mod_a);
    CHECK(ia >= 0 && strcmp(ml_modules_get((uint32_t)ia)->path, plugin) == 0);
    uint64_t raw[] = {pc, 0x401000, 0x402000};
    uint32_t stack_a = ml_ledger_intern(ML_DOM_MALLOC, raw, 3);

    dlclose(a);
    ml_modules_sync(true); /* the unload is seen: A's entry is marked removed */
    void *b = load(plugin2, &base_b);
    CHECK_EQ(base_b, base_a); /* the test proves nothing otherwise */
    Dl_info where;
    CHECK(dladdr((void *)(pc - 1), &where) && strcmp(where.dli_fname, plugin2) == 0);

    uint64_t abs_b = encode_while_busy(pc);
    CHECK_EQ(ML_WORD_KIND(abs_b), ML_WORD_ABS);
    CHECK_EQ(ml_word_abs_pc(abs_b), pc);
    CHECK(abs_b != abs_a); /* the same address, another word */
    uint64_t mod_b = ml_ledger_encode(pc);
    int ib = module_of(mod_b);
    CHECK(ib >= 0 && ib != ia && strcmp(ml_modules_get((uint32_t)ib)->path, plugin2) == 0);
    CHECK(mod_b != mod_a);
    uint32_t stack_b = ml_ledger_intern(ML_DOM_MALLOC, raw, 3);
    CHECK(stack_b != stack_a); /* the same raw addresses, another stack */

    /* each address word is named by the module that held it when made;
     * the current generation alone would name both B */
    uint32_t now = ml_modules_generation();
    CHECK_EQ(ml_modules_find(ml_word_abs_pc(abs_a), ml_word_abs_gen(abs_a, now)), ia);
    CHECK_EQ(ml_modules_find(ml_word_abs_pc(abs_b), ml_word_abs_gen(abs_b, now)), ib);
    CHECK_EQ(ml_modules_find(pc, now), ib);
    dlclose(b);
}

static void test_abs_words(void)
{
    /* generations far apart and across the 13-bit wrap come back exactly */
    const uint32_t gens[] = {1, 2, 8191, 8192, 8193, 8194, 100000, 0x7fffffff};
    for (size_t i = 0; i < sizeof gens / sizeof *gens; i++)
        for (uint32_t later = 0; later < 8192; later += 1021) {
            uint64_t w = ml_word_abs(0x7f0012345678, gens[i]);
            CHECK_EQ(ml_word_abs_pc(w), 0x7f0012345678);
            CHECK_EQ(ml_word_abs_gen(w, gens[i] + later), gens[i]);
        }
    /* generation 1 (nothing registered yet) leaves the address as it is */
    CHECK_EQ(ml_word_abs(0x401000, 1), ML_WORD_ABS | 0x401000);
    /* an address of 2^48 or more keeps its bits, without a generation */
    uint64_t wide = ml_word_abs((uintptr_t)0x00ff123456789abcull, 5);
    CHECK_EQ(ml_word_abs_pc(wide), 0x00ff123456789abcull);
    CHECK_EQ(ml_word_abs_gen(wide, 77), 77);
    CHECK(ml_word_abs(0x401000, 2) != ml_word_abs(0x401000, 3));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_modules PLUGIN_A.so PLUGIN_B.so\n");
        return 2;
    }
    static char a[4096], b[4096]; /* as the loader names them */
    if (!realpath(argv[1], a) || !realpath(argv[2], b)) {
        perror("realpath");
        return 2;
    }
    plugin = a;
    plugin2 = b;
    if (!ml_ledger_init(ML_MIN_STACKS)) {
        fprintf(stderr, "ml_ledger_init failed\n");
        return 1;
    }
    ml_modules_init();
    ml_modules_set_observer(observer);
    ml_modules_sync(true);
    RUN(test_reused_base);
    RUN(test_abs_words);
    return check_failures != 0;
}
