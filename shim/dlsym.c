/* shim/dlsym.c — dlsym, so that a lookup by name through a library handle
 * finds memledger's entry points where the process's own calls would:
 *  - the malloc family: ctypes.CDLL("libc.so.6").malloc, cffi's
 *    dlopen("c"), C code calling dlsym(dlopen("libc.so.6"), "malloc") find
 *    libc's definition in libc alone, past every interposer; when the
 *    definition found is the allocator's (libc's, or that of a jemalloc or
 *    tcmalloc preloaded behind memledger: core/real.h), the caller gets
 *    memledger's hook (shim/malloc.c) instead;
 *  - dlclose, found the same way: memledger's, which notices the unload
 *    (shim/dlclose.c);
 *  - the CUDA driver's allocating entry points, for a program that loads
 *    the driver with dlopen and looks its functions up by name
 *    (TensorFlow's stub loader, the CUDA runtime fetching
 *    cuGetProcAddress): memledger's wrappers.
 * And so that a library's malloc-family slots that bypass the hooks
 * (RTLD_DEEPBIND) are pointed at them before the program first calls into
 * it, the first lookup in a handle asks init/rebind.h to look at the
 * modules loaded since (a hashed load when the handle was seen).
 *
 * glibc's dlsym resolves RTLD_NEXT relative to the object that called it,
 * which it finds from its return address; a C wrapper calling it would
 * make every RTLD_NEXT lookup in the process start after memledger. So on
 * x86-64 the entry is a few instructions that ask ml_dlsym_route where to
 * go and then *jump* there with the caller's arguments and return address
 * untouched: to the real dlsym for every lookup memledger does not want
 * (all names but those above, and all RTLD_NEXT and RTLD_DEFAULT lookups:
 * memledger resolves the allocator it forwards to with RTLD_NEXT, and
 * RTLD_DEFAULT finds memledger's own definitions first anyway), else to
 * a wrapper that asks the real dlsym and may swap the answer. Elsewhere a
 * C tail call stands in, which the compiler emits at -O1 and above.
 * Must never allocate, lock (but for the loader's lock, through dladdr, on
 * a malloc-family lookup), or change what any other lookup returns. */
#include "common/common.h"
#include "core/real.h"
#include "init/rebind.h"
#ifdef ML_WITH_CUDA
#include "cuda/cuda_entry.h"
#endif

#include <dlfcn.h>
#include <string.h>

void *ml_dlsym_route(void *handle, const char *name);
#ifdef ML_WITH_CUDA
void *ml_dlsym_wrap(void *handle, const char *name);
#endif
void *ml_dlsym_wrap_alloc(void *handle, const char *name);
/* shim/malloc.c: memledger's own entry point of a malloc-family name, or NULL */
void *ml_shim_alloc_entry(const char *name);
/* shim/dlclose.c: memledger's dlclose when `found` is the one it forwards to */
void *ml_shim_dlclose_entry(void *found);

/* A lookup memledger may answer differently: a real handle and one of the
 * names above. */
void *ml_dlsym_route(void *handle, const char *name)
{
    ml_dlsym_fn real = ml_real_dlsym();
    if (handle == RTLD_NEXT || handle == RTLD_DEFAULT || !name)
        return (void *)real;
    ml_rebind_handle(handle);
#ifdef ML_WITH_CUDA
    if (name[0] == 'c' && name[1] == 'u' && ml_cuda_dlsym_wants(name))
        return (void *)ml_dlsym_wrap;
#endif
    if (ml_shim_alloc_entry(name) || (name[0] == 'd' && strcmp(name, "dlclose") == 0))
        return (void *)ml_dlsym_wrap_alloc;
    return (void *)real;
}

#ifdef ML_WITH_CUDA
void *ml_dlsym_wrap(void *handle, const char *name)
{
    void *p = ml_real_dlsym()(handle, name);
    return p ? ml_cuda_dlsym_result(name, p) : p;
}
#endif

/* A definition of the handle's own (a library with a private malloc, an
 * allocator opened by name that is not the one in use) is left alone. */
void *ml_dlsym_wrap_alloc(void *handle, const char *name)
{
    void *p = ml_real_dlsym()(handle, name);
    if (name[0] == 'd')
        return ml_shim_dlclose_entry(p);
    return p && ml_real_is_allocator(p) ? ml_shim_alloc_entry(name) : p;
}

#if defined(__x86_64__)
#ifdef __CET__
#define ML_ENDBR "endbr64\n"
#else
#define ML_ENDBR ""
#endif
/* Saves the two arguments (and keeps the stack 16-byte aligned for the
 * call), asks the route, restores them and jumps. */
__asm__(".text\n"
        ".globl dlsym\n"
        ".type dlsym, @function\n"
        "dlsym:\n"
        ".cfi_startproc\n" ML_ENDBR
        "pushq %rdi\n"
        ".cfi_adjust_cfa_offset 8\n"
        "pushq %rsi\n"
        ".cfi_adjust_cfa_offset 8\n"
        "subq $8, %rsp\n"
        ".cfi_adjust_cfa_offset 8\n"
        "call ml_dlsym_route\n"
        "addq $8, %rsp\n"
        ".cfi_adjust_cfa_offset -8\n"
        "popq %rsi\n"
        ".cfi_adjust_cfa_offset -8\n"
        "popq %rdi\n"
        ".cfi_adjust_cfa_offset -8\n"
        "jmp *%rax\n"
        ".cfi_endproc\n"
        ".size dlsym, .-dlsym\n");
#else
ML_EXPORT void *dlsym(void *handle, const char *name)
{
    void *(*to)(void *, const char *) = (void *(*)(void *, const char *))ml_dlsym_route(handle, name);
    return to(handle, name);
}
#endif
