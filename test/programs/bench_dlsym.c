/* bench_dlsym.c — the cost of a dlsym lookup, for the price memledger's
 * dlsym hook adds (shim/dlsym.c): N lookups of a name in libm (the common
 * case: passed straight to the real dlsym) and N of a driver-like name
 * that starts with "cu" but is not one memledger wraps (the hook looks it
 * up in its table first). Prints nanoseconds per lookup for each.
 * Usage: bench_dlsym N */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    void *m = dlopen("libm.so.6", RTLD_NOW);
    if (!m)
        return 3;
    volatile void *sink;
    double t = now();
    for (long i = 0; i < n; i++)
        sink = dlsym(m, "cos");
    double plain = (now() - t) / n * 1e9;
    t = now();
    for (long i = 0; i < n; i++)
        sink = dlsym(m, "cuNotAFunction");
    double cu = (now() - t) / n * 1e9;
    (void)sink;
    printf("dlsym_ns %.1f cu_name_ns %.1f\n", plain, cu);
    return 0;
}
