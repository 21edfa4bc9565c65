/* no_cuda.c — a program that never touches CUDA, run under memledger:
 * nothing of CUDA may be mapped into it, and dlsym must answer exactly as
 * it does without memledger (memledger defines dlsym to see lookups in
 * libcuda): RTLD_NEXT from the executable finds the definition after it,
 * a handle finds its own symbol, a missing name gives NULL and an error.
 * Prints what it found; exits 1 on the first wrong answer. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *module_of(void *p)
{
    Dl_info di;
    if (!p || !dladdr(p, &di) || !di.dli_fname)
        return "?";
    const char *s = strrchr(di.dli_fname, '/');
    return s ? s + 1 : di.dli_fname;
}

int main(void)
{
    int bad = 0;
    /* the executable comes first in the global scope: RTLD_NEXT from it is
     * the first definition anywhere else, the same as RTLD_DEFAULT's */
    void *next = dlsym(RTLD_NEXT, "malloc"), *first = dlsym(RTLD_DEFAULT, "malloc");
    printf("RTLD_NEXT malloc %s\nRTLD_DEFAULT malloc %s\n", module_of(next), module_of(first));
    if (!next || next != first) {
        fprintf(stderr, "dlsym(RTLD_NEXT, \"malloc\") from the executable is %s, not %s\n", module_of(next),
                module_of(first));
        bad = 1;
    }
    void *m = dlopen("libm.so.6", RTLD_NOW);
    double (*cos_fn)(double) = m ? (double (*)(double))dlsym(m, "cos") : NULL;
    if (!cos_fn || cos_fn != cos || cos_fn(0.0) != 1.0) {
        fprintf(stderr, "dlsym(libm, \"cos\") is wrong\n");
        bad = 1;
    }
    dlerror();
    const char *err;
    if (dlsym(RTLD_DEFAULT, "memledger_no_such_symbol") || !(err = dlerror()) ||
        !strstr(err, "memledger_no_such_symbol")) {
        fprintf(stderr, "a missing symbol: no NULL with an error naming it\n");
        bad = 1;
    }
    free(malloc(1000));
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int cuda = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "libcuda") || strstr(line, "libcupti") || strstr(line, "libcudart")) {
            fprintf(stderr, "mapped: %s", line);
            cuda++;
        }
    if (f)
        fclose(f);
    printf("cuda mappings %d\n", cuda);
    return bad || cuda ? 1 : 0;
}
