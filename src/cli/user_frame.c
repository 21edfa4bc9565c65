/* user_frame.c — the innermost frame of user code (see user_frame.h).
 * Modules are recognised by their file name, matched as glob patterns, so
 * versioned names (libc.so.6, libc-2.31.so, libpython3.11.so.1.0) and
 * install locations do not matter. */
#include "cli/user_frame.h"

#include <fnmatch.h>
#include <string.h>

static const char *const runtime_modules[] = {
    "libc.so*", "libc-*.so", "libm.so*", "libm-*.so", "libpthread.so*", "libpthread-*.so",
    "libdl.so*", "libdl-*.so", "librt.so*", "librt-*.so",
    "libstdc++.so*", "libgcc_s.so*",
    "ld-linux*.so*", "ld.so*", "ld-*.so",
    "libpython*.so*", "python", "python[0-9]", "python[0-9].[0-9]", "python[0-9].[0-9][0-9]",
    "python[0-9].[0-9]d", "python[0-9].[0-9][0-9]d",
    "libjemalloc.so*", "libtcmalloc*.so*", "libmimalloc.so*",
    "libmemledger*.so*",
};

bool ml_frame_is_runtime(const ml_sframe_t *f)
{
    if (f->kind != ML_FRAME_NATIVE || !f->module)
        return false;
    const char *slash = strrchr(f->module, '/');
    const char *name = slash ? slash + 1 : f->module;
    for (size_t i = 0; i < ML_ARRAY_LEN(runtime_modules); i++)
        if (fnmatch(runtime_modules[i], name, 0) == 0)
            return true;
    return false;
}

bool ml_frame_is_library(const ml_sframe_t *f)
{
    if (f->kind != ML_FRAME_PYTHON || !f->file)
        return false;
    return f->file[0] == '<' || strstr(f->file, "/site-packages/") || strstr(f->file, "/dist-packages/") ||
           fnmatch("*/lib/python[0-9]*/*", f->file, 0) == 0;
}

enum { UNKNOWN, USER, RUNTIME, PY_PROGRAM, PY_LIBRARY };

uint32_t ml_stack_user_frame(const ml_stackset_t *set, const ml_sstack_t *st, uint8_t *cache)
{
    if (!st->nframes)
        return UINT32_MAX;
    /* Python frames: the program's own, else any */
    uint32_t any_py = UINT32_MAX;
    for (uint32_t i = 0; i < st->nframes; i++) {
        uint32_t uid = st->frames[i];
        uint8_t c = cache ? cache[uid] : UNKNOWN;
        if (c == UNKNOWN) {
            const ml_sframe_t *f = ml_stackset_frame(set, uid);
            c = f->kind != ML_FRAME_PYTHON           ? (ml_frame_is_runtime(f) ? RUNTIME : USER)
                : ml_frame_is_library(f) ? PY_LIBRARY
                                         : PY_PROGRAM;
            if (cache)
                cache[uid] = c;
        }
        if (c == PY_PROGRAM)
            return i;
        if (c == PY_LIBRARY && any_py == UINT32_MAX)
            any_py = i;
    }
    if (any_py != UINT32_MAX)
        return any_py;
    for (uint32_t i = 0; i < st->nframes; i++) {
        uint32_t uid = st->frames[i];
        uint8_t c = cache ? cache[uid] : UNKNOWN;
        if (c == UNKNOWN) {
            c = ml_frame_is_runtime(ml_stackset_frame(set, uid)) ? RUNTIME : USER;
            if (cache)
                cache[uid] = c;
        }
        if (c == USER)
            return i;
    }
    return 0;
}
