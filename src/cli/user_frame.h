/* user_frame.h — which frame of a stack is the program's own code.
 * Owns the definition of "runtime" frames: the C library (glibc's libc,
 * libm, libpthread, libdl, librt), the C++ runtime (libstdc++, libgcc_s),
 * the dynamic loader (ld-linux, ld.so), the Python interpreter (libpython,
 * or a python executable that links it statically), allocators preloaded
 * beside memledger (jemalloc, tcmalloc, mimalloc) and memledger itself.
 * Every other frame is user code, Python frames included (the standard
 * library's .py files are code the program chose to run). In a stack with
 * Python frames the program's own line is its innermost Python frame
 * outside the installed libraries (site-packages, dist-packages, the
 * standard library, frozen modules), else its innermost Python frame: the
 * native frames inside are an extension it called (libtorch, numpy), and
 * numpy.ones or flask's dispatch are not lines the program wrote. Never
 * allocates. */
#ifndef ML_USER_FRAME_H
#define ML_USER_FRAME_H

#include "cli/stackset.h"

/* True when a native frame's module is one of the runtime's. Frames with
 * no known module (JIT code) count as user code. */
bool ml_frame_is_runtime(const ml_sframe_t *f);

/* True when a Python frame's file is an installed library's. */
bool ml_frame_is_library(const ml_sframe_t *f);

/* The position, in st->frames (innermost first), of the program's own line
 * (above), or in a stack without Python frames, of the innermost native
 * frame of user code; 0 when every frame is the runtime's; UINT32_MAX when the stack
 * has no frames at all (the overflow stacks). `cache`, when not NULL, has a
 * byte per frame uid of the set, zeroed before first use: answers are kept
 * there (matching module names is the costly part). */
uint32_t ml_stack_user_frame(const ml_stackset_t *set, const ml_sstack_t *st, uint8_t *cache);

#endif
