/* shim/dlsym.c — dlsym, so that a program that loads the CUDA driver with
 * dlopen and looks its functions up by name (TensorFlow's stub loader, the
 * CUDA runtime fetching cuGetProcAddress) is handed memledger's wrappers,
 * and so that a library's malloc-family slots that bypass the hooks
 * (RTLD_DEEPBIND) are pointed at them before the program first calls into
 * it: the first lookup in a handle asks init/rebind.h to look at the
 * modules loaded since (a hashed load when the handle was seen).
 *
 * glibc's dlsym resolves RTLD_NEXT relative to the object that called it,
 * which it finds from its return address; a C wrapper calling it would
 * make every RTLD_NEXT lookup in the process start after memledger. So on
 * x86-64 the entry is a few instructions that ask ml_dlsym_route where to
 * go and then *jump* there with the caller's arguments and return address
 * untouched: to the real dlsym for every lookup memledger does not want
 * (all but the driver's allocation entry points, and all RTLD_NEXT and
 * RTLD_DEFAULT lookups), else to ml_dlsym_wrap. Elsewhere a C tail call
 * stands in, which the compiler emits at -O1 and above.
 * Must never allocate, lock, or change what any other lookup returns. */
#include "common/common.h"
#ifdef ML_WITH_CUDA
#include "cuda/cuda_entry.h"
#endif
#include "core/real.h"
#include "init/rebind.h"

#include <dlfcn.h>

void *ml_dlsym_route(void *handle, const char *name);
#ifdef ML_WITH_CUDA
void *ml_dlsym_wrap(void *handle, const char *name);
#endif

/* A lookup memledger may answer differently: a real handle (RTLD_DEFAULT
 * already finds memledger's own definitions first, RTLD_NEXT must keep
 * its meaning) and one of the driver names memledger wraps. */
void *ml_dlsym_route(void *handle, const char *name)
{
    ml_dlsym_fn real = ml_real_dlsym();
    if (handle == RTLD_NEXT || handle == RTLD_DEFAULT)
        return (void *)real;
    ml_rebind_handle(handle);
#ifdef ML_WITH_CUDA
    if (name && name[0] == 'c' && name[1] == 'u' && ml_cuda_dlsym_wants(name))
        return (void *)ml_dlsym_wrap;
#else
    (void)name;
#endif
    return (void *)real;
}

#ifdef ML_WITH_CUDA
void *ml_dlsym_wrap(void *handle, const char *name)
{
    void *p = ml_real_dlsym()(handle, name);
    return p ? ml_cuda_dlsym_result(name, p) : p;
}
#endif

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
