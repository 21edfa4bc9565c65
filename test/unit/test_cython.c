/* test_cython.c — Cython symbols to Python-level names (src/cli/cython.c), on
 * names Cython 0.29 generated for test/programs/cyleak.pyx and pandas. */
#include "check.h"
#include "cli/cython.h"

#include <string.h>

static void expect(const char *symbol, const char *want)
{
    char out[256];
    bool ok = ml_cython_name(symbol, out, sizeof out);
    if (!want) {
        if (ok)
            fprintf(stderr, "%s: decoded as %s, expected no name\n", symbol, out);
        CHECK(!ok);
        return;
    }
    if (!ok || strcmp(out, want) != 0)
        fprintf(stderr, "%s: got %s, expected %s\n", symbol, ok ? out : "(none)", want);
    CHECK(ok && strcmp(out, want) == 0);
}

static void module_functions(void)
{
    expect("__pyx_pw_6cyleak_1grab", "cyleak.grab");
    expect("__pyx_pf_6cyleak_grab", "cyleak.grab");
    expect("__pyx_pw_6cyleak_3a_b", "cyleak.a_b");
    expect("__pyx_pf_6cyleak_2a_b", "cyleak.a_b");
    expect("__pyx_pw_6cyleak_5__pyx_unpickle_Holder", "cyleak.__pyx_unpickle_Holder");
    expect("__pyx_f_6cyleak_helper", "cyleak.helper");
}

static void methods_and_packages(void)
{
    expect("__pyx_pw_6cyleak_6Holder_1add_item", "cyleak.Holder.add_item");
    expect("__pyx_pf_6cyleak_6Holder_add_item", "cyleak.Holder.add_item");
    expect("__pyx_pf_6cyleak_6Holder_2__reduce_cython__", "cyleak.Holder.__reduce_cython__");
    expect("__pyx_pw_6pandas_5_libs_5tslib_1array_to_datetime", "pandas._libs.tslib.array_to_datetime");
}

static void suffixes_and_strangers(void)
{
    expect("__pyx_pf_6cyleak_grab.constprop.0", "cyleak.grab");
    expect("__pyx_pw_6cyleak_1grab.cold", "cyleak.grab");
    expect("malloc", NULL);
    expect("__pyx_pw_", NULL);
    expect("__pyx_pw_6cyleak", NULL);
    expect("__pyx_pw_6cyleak_grab", NULL); /* a wrapper always has its counter */
    expect("__pyx_pymod_exec_cyleak", NULL);
}

int main(void)
{
    RUN(module_functions);
    RUN(methods_and_packages);
    RUN(suffixes_and_strangers);
    return check_failures ? 1 : 0;
}
